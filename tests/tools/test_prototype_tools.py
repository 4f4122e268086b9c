"""The SPL prototype tools: concept prototypes from each source (and their errors), class means, and end to end on a
tiny synthetic VG: baseline -> visual prototypes -> a few SPL iterations reading both files."""
import os
import sys
import types

import pytest
import torch

from sgg.data.synthetic import generate_synthetic_vg

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))

import compute_concept_prototypes as concept  # noqa: E402
import compute_visual_prototypes as visual  # noqa: E402

from tool_process import run_tool  # noqa: E402

CONFIGS = os.path.join(REPO, "configs", "synthetic")
SYNTHETIC_DESCRIPTIONS = os.path.join(REPO, "configs", "spl", "predicate_descriptions_synthetic.txt")
VG150_DESCRIPTIONS = os.path.join(REPO, "configs", "spl", "predicate_descriptions_vg150.txt")


def write(path, text):
    path.write_text(text)
    return str(path)


# ------------------------------------------------------------------------------------------- concept prototypes
def test_glove_source_averages_the_description_words(tmp_path):
    glove = tmp_path / "glove"
    glove.mkdir()
    write(glove / "glove.6B.2d.txt", "cat 1 0\non 0 2\nmat 3 4\nnothing 5 5\n")
    descriptions = write(tmp_path / "d.txt", "# comment\n__background__: nothing\non: cat on mat.\n")
    prototypes, names = concept.compute("glove", descriptions, None, str(glove), 2)
    assert names == ["__background__", "on"]
    # "cat on mat." -> words cat, on, mat: ((1 + 0 + 3) / 3, (0 + 2 + 4) / 3)
    assert torch.allclose(prototypes, torch.tensor([[5.0, 5.0], [4 / 3, 2.0]]))


def test_glove_missing_falls_back_to_seeded_random_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="not found in GLOVE_DIR"):
        first, _ = concept.compute("glove", SYNTHETIC_DESCRIPTIONS, None, str(tmp_path / "none"), 7)
    second, _ = concept.compute("glove", SYNTHETIC_DESCRIPTIONS, None, str(tmp_path / "none"), 7)
    assert first.shape == (23, 7) and torch.equal(first, second)


def test_reference_file_source_checks_shape(tmp_path):
    torch.save(torch.randn(23, 2304), tmp_path / "clip.pt")
    prototypes, names = concept.compute("file", SYNTHETIC_DESCRIPTIONS, str(tmp_path / "clip.pt"), "", 0)
    assert prototypes.shape == (23, 2304) and len(names) == 23
    torch.save(torch.randn(51, 4096), tmp_path / "llama.pt")
    with pytest.raises(ValueError, match="llama.pt has 51 rows but .* describes 23 predicate classes"):
        concept.compute("file", SYNTHETIC_DESCRIPTIONS, str(tmp_path / "llama.pt"), "", 0)
    torch.save(torch.randn(4096), tmp_path / "flat.pt")
    with pytest.raises(ValueError, match="flat.pt has shape \\(4096,\\), expected"):
        concept.compute("file", None, str(tmp_path / "flat.pt"), "", 0)


def test_sentence_source_uses_the_local_model_folder(monkeypatch, tmp_path):
    calls = {}

    class FakeModel:
        def __init__(self, path, device=None):
            calls["path"], calls["device"] = path, device

        def encode(self, sentences):
            calls["sentences"] = list(sentences)
            return [[float(len(s)), 1.0, 0.0] for s in sentences]

    fake = types.ModuleType(concept.SENTENCE_MODULE)
    fake.SentenceTransformer = FakeModel
    monkeypatch.setitem(sys.modules, concept.SENTENCE_MODULE, fake)
    prototypes, names = concept.compute("sentence", SYNTHETIC_DESCRIPTIONS, None, "", 0, sentence_model=str(tmp_path))
    assert prototypes.shape == (23, 3) and calls["device"] == "cpu" and calls["path"] == str(tmp_path)
    assert calls["sentences"][1] == "the subject shape is higher in the image than the object shape"
    assert prototypes[1, 0].item() == len(calls["sentences"][1])


def test_sentence_source_without_the_package_or_model_names_them(monkeypatch, tmp_path, caplog):
    with pytest.raises(FileNotFoundError, match="--sentence-model: '' is not a folder"):
        concept.compute("sentence", SYNTHETIC_DESCRIPTIONS, None, "", 0)
    monkeypatch.setitem(sys.modules, concept.SENTENCE_MODULE, None)  # import fails
    with pytest.raises(ImportError, match="sentence-transformers.*pip install"):
        concept.compute("sentence", SYNTHETIC_DESCRIPTIONS, None, "", 0, sentence_model=str(tmp_path))
    code = concept.main(["--source", "sentence", "--descriptions", SYNTHETIC_DESCRIPTIONS,
                         "--sentence-model", str(tmp_path), "--output", str(tmp_path / "x.pt")])
    assert code == 2 and "sentence-transformers" in caplog.text and not (tmp_path / "x.pt").exists()


def test_description_files_match_their_datasets(tmp_path):
    dict_file = os.path.join(REPO, "datasets", "synthetic_vg", "VG-SGG-dicts-with-attri.json")
    if not os.path.exists(dict_file):  # the synthetic dataset of the repository; regenerate it in a temp dir
        generate_synthetic_vg(str(tmp_path / "vg"), num_train=4, num_test=2, seed=1, workers=1)
        dict_file = str(tmp_path / "vg" / "VG-SGG-dicts-with-attri.json")
    names, _ = concept.read_descriptions(SYNTHETIC_DESCRIPTIONS)
    concept.check_against_dataset(names, dict_file)
    vg_names, _ = concept.read_descriptions(VG150_DESCRIPTIONS)
    assert len(vg_names) == 51 and vg_names[31] == "on" and vg_names[50] == "with"
    with pytest.raises(ValueError, match="the descriptions name 51 predicates but .* has 23"):
        concept.check_against_dataset(vg_names, dict_file)


def test_bad_description_files(tmp_path):
    with pytest.raises(ValueError, match="d1.txt:1: expected 'predicate: description'"):
        concept.read_descriptions(write(tmp_path / "d1.txt", "__background__ nothing\n"))
    with pytest.raises(ValueError, match="the first entry must be '__background__"):
        concept.read_descriptions(write(tmp_path / "d2.txt", "on: on top\n"))
    with pytest.raises(FileNotFoundError, match="--descriptions: .*nope.txt does not exist"):
        concept.read_descriptions(str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match="--source glove needs --descriptions"):
        concept.compute("glove", "", None, "", 5)


def test_main_writes_the_file_the_predictor_reads(tmp_path):
    from sgg.modeling.roi_heads.relation_head.layers.spl import load_prototype_file

    out = tmp_path / "con.pt"
    with pytest.warns(UserWarning):
        assert concept.main(["--source", "glove", "--descriptions", SYNTHETIC_DESCRIPTIONS, "--dim", "6",
                             "--glove-dir", str(tmp_path), "--output", str(out)]) == 0
    assert load_prototype_file(str(out), "CON_PRO_PATH", 23, 6, "CON_PRO_DIM").shape == (23, 6)


# -------------------------------------------------------------------------------------------- visual prototypes
def test_class_means_by_hand():
    sums = torch.tensor([[0.0, 0.0], [2.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    counts = torch.tensor([0, 2, 0])
    means = visual.class_means(sums, counts, seed=3)
    assert means[1].tolist() == [1.0, 2.0]
    again = visual.class_means(sums, counts, seed=3)
    assert torch.equal(means, again) and not torch.equal(means[0], means[2])  # seeded N(0, 1) rows


def test_visual_prototypes_end_to_end_then_spl_trains(tmp_path):
    data = tmp_path / "data"
    generate_synthetic_vg(str(data / "synthetic_vg"), num_train=24, num_test=6, seed=5, workers=1)
    common = ["DATASETS.DATA_DIR", str(data), "SOLVER.IMS_PER_BATCH", "4", "TEST.IMS_PER_BATCH", "4",
              "DATASETS.VAL_SIZE", "4", "GLOVE_DIR", str(tmp_path / "no_glove"), "DATALOADER.NUM_WORKERS", "0",
              "SOLVER.PRE_VAL", "False", "SOLVER.VAL_PERIOD", "0", "SOLVER.CHECKPOINT_PERIOD", "2"]
    baseline = tmp_path / "baseline"
    run_tool(["tools/relation_train_net.py", "--config-file", os.path.join(CONFIGS, "relation_predcls.yaml"), *common,
          "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(baseline), "--skip-test"])
    vis = tmp_path / "vis.pt"
    log = run_tool(["tools/compute_visual_prototypes.py", "--config-file", str(baseline / "config.yaml"),
                "--output", str(vis), "OUTPUT_DIR", str(baseline)])
    assert "visual prototypes (23, 256)" in log
    stored = torch.load(vis, weights_only=True)
    assert stored["prototypes"].shape == (23, 256) and stored["counts"][0] == 0 and stored["counts"].sum() > 0
    assert stored["predicates"][0] == "__background__"

    con = tmp_path / "con.pt"
    assert concept.main(["--source", "glove", "--descriptions", SYNTHETIC_DESCRIPTIONS, "--dim", "50",
                         "--glove-dir", str(tmp_path / "no_glove"), "--output", str(con)]) == 0
    out = tmp_path / "spl"
    log = run_tool(["tools/relation_train_net.py", "--config-file", os.path.join(CONFIGS, "spl_reweight.yaml"), *common,
                "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "True", "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "True",
                "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(out), "--skip-test",
                "MODEL.ROI_RELATION_HEAD.VIS_PRO_PATH", str(vis), "MODEL.ROI_RELATION_HEAD.CON_PRO_PATH", str(con)])
    assert "loss_vis_vae" in log and "loss_con_simi" in log and (out / "model_final.pth").exists()
    state = torch.load(out / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    assert any(k.endswith("spl.fusion.vis") for k in state)
    assert any(k.endswith("loss_terms.terms.0.iteration") and int(v) == 2 for k, v in state.items())


def test_visual_prototypes_of_a_model_without_union_features_is_explained(tmp_path):
    class Head:
        union_feature_extractor = None

    class Model:
        relation_head = Head()

    with pytest.raises(ValueError, match="no union-feature extractor"):
        visual.accumulate_union_features(Model(), [], 23, "cpu")
