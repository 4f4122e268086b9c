import os

import pytest
import yaml

from sgg.config import ConfigError, DatasetCatalog, get_cfg, get_protocol, load_config, protocol_name, save_config
from sgg.config.paths_catalog import resolve_data_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_defaults_follow_sgb():
    cfg = get_cfg()
    head = cfg.MODEL.ROI_RELATION_HEAD
    assert head.NUM_CLASSES == 51
    assert head.BATCH_SIZE_PER_IMAGE == 64 and head.POSITIVE_FRACTION == 0.25
    assert head.USE_GT_BOX is True and head.USE_GT_OBJECT_LABEL is False
    assert cfg.SOLVER.BASE_LR == 0.002 and cfg.SOLVER.GRAD_NORM_CLIP == 5.0
    assert cfg.TEST.RELATION.RECALL_KS == (20, 50, 100)
    assert cfg.DATASETS.VAL_SIZE == 5000 and cfg.DATASETS.DATA_DIR == "datasets"


@pytest.mark.parametrize("box,label,expected", [(True, True, "predcls"), (True, False, "sgcls"),
                                                (False, False, "sgdet")])
def test_protocol_from_switches(box, label, expected):
    assert protocol_name(box, label) == expected
    cfg = load_config(None, ["MODEL.ROI_RELATION_HEAD.USE_GT_BOX", str(box),
                             "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", str(label)])
    assert get_protocol(cfg) == expected


def test_gt_labels_without_gt_boxes_is_rejected():
    with pytest.raises(ValueError, match="USE_GT_OBJECT_LABEL"):
        protocol_name(False, True)


def test_command_line_overrides_yaml_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"SOLVER": {"BASE_LR": 0.01, "MAX_ITER": 100}}))
    cfg = load_config(str(path), ["SOLVER.BASE_LR", "0.05"])
    assert cfg.SOLVER.BASE_LR == 0.05  # command line wins
    assert cfg.SOLVER.MAX_ITER == 100  # yaml wins over the default
    assert cfg.SOLVER.WEIGHT_DECAY == 0.0005  # default
    assert cfg.is_frozen()


def test_values_are_decoded_and_coerced():
    cfg = load_config(None, ["SOLVER.BASE_LR", "1", "SOLVER.STEPS", "(100, 200)", "INPUT.MIN_SIZE_TRAIN", "600",
                             "MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS", "false"])
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.SOLVER.STEPS == (100, 200)
    assert cfg.INPUT.MIN_SIZE_TRAIN == (600,)
    assert cfg.MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS is False


def test_unknown_command_line_key_names_the_closest_keys():
    with pytest.raises(KeyError) as err:
        load_config(None, ["MODEL.ROI_RELATION_HEAD.PREDICTR", "MotifPredictor"])
    message = str(err.value)
    assert "MODEL.ROI_RELATION_HEAD.PREDICTR" in message
    assert "MODEL.ROI_RELATION_HEAD.PREDICTOR" in message


def test_key_in_wrong_group_suggests_the_right_one():
    with pytest.raises(ConfigError, match="SOLVER.BASE_LR"):
        load_config(None, ["MODEL.BASE_LR", "0.1"])


def test_unknown_yaml_key_names_file_and_key(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("SOLVER:\n  MAX_ITERS: 10\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert str(path) in str(err.value) and "SOLVER.MAX_ITER" in str(err.value)


def test_wrong_type_is_rejected_with_key_and_expected_type():
    with pytest.raises(ConfigError, match="SOLVER.MAX_ITER expects a value of type int"):
        load_config(None, ["SOLVER.MAX_ITER", "lots"])
    with pytest.raises(ConfigError, match="expects a value of type int"):
        load_config(None, ["SOLVER.MAX_ITER", "1.5"])


def test_odd_number_of_overrides_is_rejected():
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        load_config(None, ["SOLVER.MAX_ITER"])


def test_renamed_sgb_key_says_which_key_to_use():
    with pytest.raises(ConfigError, match="MODEL.BACKBONE.OUT_CHANNELS"):
        load_config(None, ["MODEL.BACKBONE.BACKBONE_OUT_CHANNELS", "256"])


def test_iterative_sg_solver_names_set_our_keys_and_model_weights_is_refused():
    cfg = load_config(None, ["SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "0.01", "SOLVER.BACKBONE_MULTIPLIER", "0.1"])
    assert cfg.SOLVER.GRAD_NORM_CLIP == 0.01 and cfg.SOLVER.BACKBONE_LR_FACTOR == 0.1
    with pytest.raises(ConfigError, match="MODEL.WEIGHTS is another codebase's name.*use MODEL.WEIGHT"):
        load_config(None, ["MODEL.WEIGHTS", "detr.pth"])


def test_ignored_sgb_key_is_accepted():
    cfg = load_config(None, ["MODEL.RPN.USE_FPN", "True"])
    assert "USE_FPN" not in cfg.MODEL.RPN


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config("nope.yaml")


def test_base_inheritance_and_saved_config_round_trip(tmp_path):
    cfg = load_config(os.path.join(REPO, "configs", "synthetic", "relation_sgcls.yaml"),
                      ["OUTPUT_DIR", str(tmp_path)])
    assert get_protocol(cfg) == "sgcls"
    assert cfg.DATASETS.TRAIN == ("SyntheticVG_train",)  # from base.yaml
    path = save_config(cfg)
    assert path == os.path.join(str(tmp_path), "config.yaml")
    again = load_config(path)
    assert again == cfg


def test_schedule_scale_stretches_every_iteration_count_once(tmp_path):
    base = os.path.join(REPO, "configs", "synthetic", "penet_reweight.yaml")
    # that yaml: MAX_ITER 600, STEPS (450, 550), WARMUP_ITERS 30, CHECKPOINT/VAL_PERIOD 300, DECAY_ITERS 300
    cfg = load_config(base, ["SOLVER.SCHEDULE_SCALE", "2", "OUTPUT_DIR", str(tmp_path)])
    solver = cfg.SOLVER
    assert (solver.MAX_ITER, tuple(solver.STEPS), solver.WARMUP_ITERS) == (1200, (900, 1100), 60)
    assert (solver.CHECKPOINT_PERIOD, solver.VAL_PERIOD) == (600, 600)
    assert cfg.MODEL.ROI_RELATION_HEAD.REWEIGHT.DECAY_ITERS == 600
    # keys that are not iteration counts keep their values
    assert solver.LOG_PERIOD == 20 and solver.GAMMA == 0.1 and cfg.MODEL.ROI_RELATION_HEAD.IMP.NUM_ITER == 3
    # the saved config holds the stretched counts and scale 1.0: loading it (a resume) does not stretch again
    assert solver.SCHEDULE_SCALE == 1.0
    assert load_config(save_config(cfg)) == cfg
    # rounding, the at-least-one rule and 0 = off
    cfg = load_config(base, ["SOLVER.SCHEDULE_SCALE", "0.0015", "SOLVER.WARMUP_ITERS", "0"])
    assert (cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS), cfg.SOLVER.WARMUP_ITERS) == (1, (1, 1), 0)
    cfg = load_config(base, ["SOLVER.SCHEDULE_SCALE", "1.5"])
    assert (cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS), cfg.SOLVER.WARMUP_ITERS) == (900, (675, 825), 45)
    with pytest.raises(ConfigError, match="SOLVER.SCHEDULE_SCALE must be positive, got 0"):
        load_config(base, ["SOLVER.SCHEDULE_SCALE", "0"])


def test_flip_aug_enables_flips_and_probability_is_checked():
    assert load_config(None, ["INPUT.FLIP_PROB_TRAIN", "0.0", "MODEL.FLIP_AUG", "True"]).INPUT.FLIP_PROB_TRAIN == 0.5
    with pytest.raises(ValueError, match="FLIP_PROB_TRAIN"):
        load_config(None, ["INPUT.FLIP_PROB_TRAIN", "2.0"])


def test_catalog_names_and_sgb_aliases(monkeypatch):
    monkeypatch.delenv("SGG_DATA_DIR", raising=False)
    args = DatasetCatalog.get("VG150_test")
    assert args["split"] == "test"
    assert args["roidb_file"] == os.path.join("datasets", "vg", "VG-SGG-with-attri.h5")
    alias = DatasetCatalog.get("VG_stanford_filtered_with_attribute_val", "/data")
    assert alias["split"] == "val" and alias["img_dir"] == os.path.join("/data", "vg", "VG_100K")


def test_catalog_unknown_name_suggests():
    with pytest.raises(KeyError, match="VG150_train"):
        DatasetCatalog.get("VG150_trian")


def test_data_dir_environment_variable(monkeypatch):
    monkeypatch.setenv("SGG_DATA_DIR", "/mnt/vg")
    assert resolve_data_dir("datasets") == "/mnt/vg"  # the default yields to the environment
    assert resolve_data_dir("/explicit") == "/explicit"  # an explicit key wins
    assert DatasetCatalog.get("SyntheticVG_train", "datasets")["dict_file"].startswith("/mnt/vg")


def test_sgb_readme_command_line_loads_unchanged():
    # SGB README's PredCls MotifPredictor command (paths shortened), minus the tool name.
    opts = ("MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL True "
            "MODEL.ROI_RELATION_HEAD.PREDICTOR MotifPredictor SOLVER.IMS_PER_BATCH 12 TEST.IMS_PER_BATCH 2 "
            "DTYPE float16 SOLVER.MAX_ITER 50000 SOLVER.VAL_PERIOD 2000 SOLVER.CHECKPOINT_PERIOD 2000 "
            "GLOVE_DIR /home/u/glove MODEL.PRETRAINED_DETECTOR_CKPT /ckpt/model_final.pth OUTPUT_DIR /out "
            "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE none").split()
    cfg = load_config(None, opts)
    assert get_protocol(cfg) == "predcls" and cfg.SOLVER.IMS_PER_BATCH == 12 and cfg.DTYPE == "float16"


def test_unknown_key_next_to_an_ignored_group_is_still_an_error():
    with pytest.raises(ConfigError, match="unknown config key MODEL.ROI_RELATION_HEAD.CAUSAL_TYPO"):
        load_config(None, ["MODEL.ROI_RELATION_HEAD.CAUSAL_TYPO", "1"])


def test_base_cycle_is_an_error_naming_the_chain_of_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("_BASE_: sub/b.yaml\nSOLVER:\n  MAX_ITER: 3\n")
    (tmp_path / "sub" / "b.yaml").write_text("_BASE_: ../c.yaml\n")
    (tmp_path / "c.yaml").write_text("_BASE_: ./a.yaml\n")  # back to a.yaml under another spelling
    with pytest.raises(ConfigError) as err:
        load_config(str(tmp_path / "a.yaml"))
    text = str(err.value)
    chain = text[text.index("cycle: ") + len("cycle: "):].split(";")[0].split(" -> ")
    assert [os.path.basename(f) for f in chain] == ["a.yaml", "b.yaml", "c.yaml", "a.yaml"]
    assert text.startswith(str(tmp_path / "a.yaml"))
    # a file that includes itself
    (tmp_path / "self.yaml").write_text("_BASE_: self.yaml\n")
    with pytest.raises(ConfigError, match=r"self.yaml -> .*self.yaml"):
        load_config(str(tmp_path / "self.yaml"))
    # a chain of distinct files is no cycle
    (tmp_path / "base.yaml").write_text("SOLVER:\n  MAX_ITER: 5\n")
    (tmp_path / "mid.yaml").write_text("_BASE_: base.yaml\nSOLVER:\n  BASE_LR: 0.5\n")
    (tmp_path / "top.yaml").write_text("_BASE_: mid.yaml\n")
    cfg = load_config(str(tmp_path / "top.yaml"))
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.BASE_LR) == (5, 0.5)


def test_detector_checks_only_the_object_count_and_names_the_dataset():
    from sgg.engine.detection import check_num_classes

    cfg = load_config(None, ["DATASETS.TRAIN", "('SyntheticVG_train',)", "MODEL.ROI_BOX_HEAD.NUM_CLASSES", "4"])
    names = {"ind_to_classes": ["__background__", "a", "b", "c"], "ind_to_predicates": ["__background__", "near"]}
    check_num_classes(cfg, names)  # ROI_RELATION_HEAD.NUM_CLASSES (51) does not size the detector: not checked
    with pytest.raises(ConfigError, match=r"^MODEL.ROI_BOX_HEAD.NUM_CLASSES is 4 but SyntheticVG_train has 3 object "
                                          r"classes .* set MODEL.ROI_BOX_HEAD.NUM_CLASSES 3$"):
        check_num_classes(cfg, {"ind_to_classes": names["ind_to_classes"][:3]})


def test_every_config_key_has_its_one_line_comment():
    """Each key in defaults.py says what it does: a comment on its line or on the line above (nodes excepted)."""
    import re

    import sgg.config.defaults as defaults

    with open(defaults.__file__) as f:
        lines = f.read().split("\n")
    bare = [line for number, line in enumerate(lines)
            if re.match(r"^_C\.[A-Z0-9_.]+ = ", line) and "CN()" not in line and "#" not in line
            and not lines[number - 1].startswith("#")]
    assert not bare, "config keys without a comment in sgg/config/defaults.py:\n" + "\n".join(bare)
