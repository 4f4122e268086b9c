"""benchmarks/sgcls_on_gt_labels.py: which weights an SGCls checkpoint keeps in PredCls, and the tool end to end on a
tiny synthetic VG with a VCTree SGCls model (random weights): its PredCls test matches the same weights tested by
the PredCls model directly, and it never writes into the run's folder or over an earlier result."""
import importlib.util
import json
import os

import pytest
import torch

from tool_process import synthetic_data_root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("sgcls_on_gt_labels",
                                              os.path.join(REPO, "benchmarks", "sgcls_on_gt_labels.py"))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def test_extra_weights_are_dropped_and_missing_ones_refused():
    state = {"a": 1, "decoder.w": 2, "b": 3}
    kept, dropped = tool.keep_predcls_weights(state, ["a", "b"])
    assert kept == {"a": 1, "b": 3} and dropped == ["decoder.w"]
    with pytest.raises(SystemExit, match="lacks 1 weights of the PredCls model .first: c"):
        tool.keep_predcls_weights(state, ["a", "b", "c"])


@pytest.fixture(scope="module")
def sgcls_run(tmp_path_factory):
    """A run folder as relation_train_net.py leaves it: config.yaml, model_final.pth ({"model": state}) and the
    SGCls results.json (made-up numbers: the tool only prints them)."""
    from sgg.config import load_config
    from sgg.engine.relation import build_scene_graph_model, load_statistics

    data = synthetic_data_root(tmp_path_factory)
    run = tmp_path_factory.mktemp("run")
    cfg = load_config(os.path.join(REPO, "configs", "synthetic", "vctree.yaml"),
                      ["DATASETS.DATA_DIR", str(data), "DATASETS.VAL_SIZE", "6", "GLOVE_DIR", str(data / "no_glove"),
                       "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "True",
                       "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "False", "OUTPUT_DIR", str(run),
                       "TEST.IMS_PER_BATCH", "4"])
    torch.manual_seed(0)
    model = build_scene_graph_model(cfg, load_statistics(cfg))
    torch.save({"model": model.state_dict(), "iteration": 4}, run / "model_final.pth")
    (run / "config.yaml").write_text(cfg.dump())
    folder = run / "inference" / "SyntheticVG_test"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"R@20": 0.1, "R@50": 0.2, "R@100": 0.3, "mR@50": 0.05}))
    return run


def test_predcls_test_of_the_sgcls_weights(sgcls_run, tmp_path, capsys):
    from sgg.config import load_config
    from sgg.engine.relation import build_scene_graph_model, load_statistics
    from sgg.engine.relation_eval import test_relations

    out = tmp_path / "gt_labels"
    tool.main([str(sgcls_run), "--output-dir", str(out)])
    printed = capsys.readouterr().out
    assert "dropped 9 that PredCls does not build (e.g. relation_head.predictor.context.decoder_rnn." in printed
    assert "on its own labels (SGCls) 10.0 / 20.0 / 30.0, mR@50 5.0" in printed
    with open(out / "inference" / "SyntheticVG_test" / "results.json") as f:
        on_gt = json.load(f)
    assert f"{100 * on_gt['R@50']:.1f}" in printed.split("on the GT labels (PredCls)")[1]

    # the same weights in a PredCls model built by hand, tested directly, give the same numbers
    cfg = load_config(str(sgcls_run / "config.yaml"), ["MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "True",
                                                      "OUTPUT_DIR", str(tmp_path / "direct")])
    statistics = load_statistics(cfg)
    model = build_scene_graph_model(cfg, statistics)
    state = torch.load(sgcls_run / "model_final.pth", weights_only=False)["model"]
    model.load_state_dict({k: v for k, v in state.items() if "decoder_rnn" not in k})
    test_relations(cfg, model, statistics, "test")
    with open(tmp_path / "direct" / "inference" / "SyntheticVG_test" / "results.json") as f:
        direct = json.load(f)
    assert {k: v for k, v in on_gt.items() if "@" in k} == {k: v for k, v in direct.items() if "@" in k}

    # a second call into the same folder would overwrite: refused, the first result kept
    with pytest.raises(SystemExit, match="results.json exists"):
        tool.main([str(sgcls_run), "--output-dir", str(out)])
    with open(out / "inference" / "SyntheticVG_test" / "results.json") as f:
        assert json.load(f) == on_gt


def test_refuses_the_runs_own_folder_and_other_protocols(sgcls_run, tmp_path):
    with pytest.raises(SystemExit, match="the run's own folder"):
        tool.main([str(sgcls_run), "--output-dir", str(sgcls_run)])
    predcls = tmp_path / "predcls_run"
    predcls.mkdir()
    text = (sgcls_run / "config.yaml").read_text().replace("USE_GT_OBJECT_LABEL: false", "USE_GT_OBJECT_LABEL: true")
    assert text != (sgcls_run / "config.yaml").read_text()
    (predcls / "config.yaml").write_text(text)
    with pytest.raises(SystemExit, match="not an SGCls run .USE_GT_BOX True, USE_GT_OBJECT_LABEL True"):
        tool.main([str(predcls), "--output-dir", str(tmp_path / "out")])
