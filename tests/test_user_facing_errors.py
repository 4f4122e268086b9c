"""Every error a user can cause is an SggError (the tools print it as one line, exit 2): the plain ValueError /
KeyError / RuntimeError raises left in sgg/ and tools/ are exactly the internal ones listed below, and every
exception class the framework defines is an SggError.

A new plain raise fails this test. If a config key, a data file, a checkpoint, predictions or a command-line argument
can trigger it, raise the fitting subclass instead (ConfigError from sgg.config.sgg_config; DataError,
CheckpointError, EvaluationError, RunError from sgg.utils.errors) with a message naming the key or file and what was
expected; if only a programming error can (a broken invariant, a misused internal API), add it to INTERNAL_RAISES.
"""
import ast
import os
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED = ("sgg", "tools")
PLAIN = ("ValueError", "KeyError", "RuntimeError")

# "file:function" -> number of plain raises there; each reachable only through a programming error (the framework's
# own data flow already guarantees what it checks), never from a config, data file, checkpoint or command line.
INTERNAL_RAISES = {
    # constructor / API arguments the builders always pass valid (split from the validated dataset name, ...)
    "sgg/data/datasets/visual_genome.py:VGDataset.__init__": 1,
    "sgg/data/datasets/visual_genome.py:VGDataset.keep_images": 1,
    "sgg/data/samplers/samplers.py:GroupedBatchSampler.__init__": 1,  # IMS_PER_BATCH > 0 is checked at load_config
    "sgg/data/synthetic_render.py:write_jpeg": 1,  # cv2 failing to encode an array it was given
    "sgg/utils/plots.py:save_bar_chart": 1,
    "sgg/utils/result_plots.py:plot_predicate_distribution": 1,
    "sgg/utils/word_vectors.py:obj_edge_vectors": 1,  # multiword mode chosen by the calling code
    "sgg/utils/registry.py:Registry.register.decorator": 1,  # two classes registered under one name
    # evaluator internals: inputs come from the model or from a prediction file already checked (CRC, meta)
    "sgg/evaluation/coco_eval.py:evaluate_detections": 4,
    "sgg/evaluation/predicate_split.py:split_head_body_tail": 4,
    "sgg/evaluation/prediction_file.py:PredictionFileWriter.__init__": 1,
    "sgg/evaluation/prediction_file.py:PredictionFileWriter.add": 1,
    "sgg/evaluation/ranking.py:rank_prediction": 1,
    "sgg/evaluation/sg_evaluator.py:SceneGraphEvaluator._check_compatible": 1,
    # model forward contracts: targets in training mode, batches of the mode the model was built for, fields the
    # data loader always provides, class-count agreement already enforced by sgg.config.class_counts
    "sgg/modeling/detector/generalized_rcnn.py:GeneralizedRCNN.forward": 1,
    "sgg/modeling/detector/generalized_rcnn.py:GeneralizedRCNN.prepare_images": 1,
    "sgg/modeling/detector/generalized_rcnn.py:GeneralizedRCNN.propose": 1,
    "sgg/modeling/detector/generalized_rcnn.py:GeneralizedRCNN.to_torchvision_targets": 6,
    "sgg/modeling/detector/scene_graph_rcnn.py:SceneGraphRCNN._boxes_for_relations": 1,
    "sgg/modeling/detector/scene_graph_rcnn.py:SceneGraphRCNN.forward": 1,
    "sgg/modeling/iterative_sg/detr.py:DETRDetector.forward": 2,
    "sgg/modeling/iterative_sg/detr.py:object_targets": 1,
    "sgg/modeling/iterative_sg/losses.py:predicate_loss_weights": 2,
    "sgg/modeling/iterative_sg/matcher.py:hungarian_match": 1,
    "sgg/modeling/iterative_sg/model.py:IterativeSceneGraph.forward": 3,
    "sgg/modeling/iterative_sg/targets.py:build_triplet_targets": 2,
    "sgg/modeling/roi_heads/relation_head/layers/batch_access.py:box_field": 1,
    "sgg/modeling/roi_heads/relation_head/layers/batch_access.py:check_mode": 1,
    "sgg/modeling/roi_heads/relation_head/layers/batch_access.py:class_counts": 1,
    "sgg/modeling/roi_heads/relation_head/layers/edge_head.py:union_for_pairs": 2,
    "sgg/modeling/roi_heads/relation_head/layers/frequency_bias.py:FrequencyBias.__init__": 1,
    "sgg/modeling/roi_heads/relation_head/layers/image_context.py:global_image_features": 2,
    "sgg/modeling/roi_heads/relation_head/layers/object_labels.py:require_object_classifier": 1,
    "sgg/modeling/roi_heads/relation_head/losses/cdl.py:CategoryDiscriminatingLoss.forward": 1,
    "sgg/modeling/roi_heads/relation_head/losses/cdl.py:predicate_lattice": 2,  # the file is checked when read
    "sgg/modeling/roi_heads/relation_head/losses/gce_ranker.py:RankerLoss.forward": 1,
    "sgg/modeling/roi_heads/relation_head/losses/reweight.py:ReweightedRelationCE.forward": 1,
    "sgg/modeling/roi_heads/relation_head/losses/reweight.py:ReweightedRelationCE.from_config": 2,
    "sgg/modeling/roi_heads/relation_head/predictors/__init__.py:build_predictor": 1,
    "sgg/modeling/roi_heads/relation_head/predictors/linknet.py:LinkNetPredictor.forward": 1,
    # the heads of SGB's zoo: the same checks (mode the model was built for, tensor shapes from the relation head)
    "sgg/modeling/roi_heads/relation_head/predictors/causal.py:CausalAnalysisPredictor._pair_features": 2,
    "sgg/modeling/roi_heads/relation_head/predictors/imp.py:IMPPredictor._union_features": 1,
    "sgg/modeling/roi_heads/relation_head/predictors/tree_lstm.py:BiTreeLSTM.__init__": 1,  # width checked as config
    "sgg/modeling/roi_heads/relation_head/predictors/vctree.py:pair_score_targets": 2,
    "sgg/modeling/roi_heads/relation_head/predictors/vctree.py:VCTreeEdgeHead.forward": 1,
    "sgg/modeling/roi_heads/relation_head/relation_head.py:RelationHead.forward": 1,
    # box structures: shapes and fields produced by the framework's own code
    "sgg/structures/bounding_box.py:BoxList.__getitem__": 1,
    "sgg/structures/bounding_box.py:BoxList.__init__": 2,
    "sgg/structures/bounding_box.py:BoxList.copy_with_fields": 1,
    "sgg/structures/bounding_box.py:BoxList.get_field": 1,
    "sgg/structures/bounding_box.py:BoxList.transpose": 1,
    "sgg/structures/bounding_box.py:cat_boxlist": 3,
    "sgg/structures/boxlist_ops.py:boxlist_iou": 1,
    "sgg/structures/image_list.py:to_image_list": 1,
}

USER_ERROR_BASES = {"SggError", "ConfigError", "DataError", "CheckpointError", "EvaluationError", "RunError"}
# exception classes of the framework that are deliberately not user errors
OTHER_EXCEPTIONS = {"sgg/engine/trainer.py:TrainingInterrupted"}  # a SystemExit: Ctrl-C ends the run


def plain_raises(source: str, path: str) -> Counter:
    """``"path:Class.function"`` -> how many ``raise ValueError/KeyError/RuntimeError`` it holds."""
    found = Counter()

    def visit(node, scope):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, scope + [child.name])
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                if isinstance(exc, ast.Name) and exc.id in PLAIN:
                    found[f"{path}:{'.'.join(scope) or '<module>'}"] += 1
            visit(child, scope)

    visit(ast.parse(source), [])
    return found


def exception_classes(source: str, path: str) -> dict:
    """``"path:Class"`` -> names of its bases, for every class deriving from something named *Error/*Exception."""
    classes = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b).rpartition(".")[2] for b in node.bases]
            if any(b.endswith(("Error", "Exception", "Exit", "Interrupt")) for b in bases):
                classes[f"{path}:{node.name}"] = bases
    return classes


def _sources():
    for top in SCANNED:
        for folder, _, files in os.walk(os.path.join(REPO, top)):
            for name in sorted(files):
                if name.endswith(".py"):
                    full = os.path.join(folder, name)
                    with open(full) as f:
                        yield os.path.relpath(full, REPO).replace(os.sep, "/"), f.read()


def test_the_scanner_finds_plain_raises_by_function():
    source = ("def load(path):\n    raise ValueError(f'{path}: bad')\n"
              "class Reader:\n    def read(self):\n        if 1:\n            raise KeyError\n"
              "        raise RuntimeError('x') from None\n"
              "    def ok(self):\n        raise DataError('fine')\n"
              "raise ValueError('at import')\n")
    assert plain_raises(source, "m.py") == Counter({"m.py:load": 1, "m.py:Reader.read": 2, "m.py:<module>": 1})
    assert exception_classes("class A(errors.DataError, RuntimeError):\n    pass\nclass B:\n    pass\n",
                             "m.py") == {"m.py:A": ["DataError", "RuntimeError"]}


def test_only_internal_raises_stay_plain():
    found = Counter()
    for path, source in _sources():
        found.update(plain_raises(source, path))
    new = {where: count for where, count in found.items() if count > INTERNAL_RAISES.get(where, 0)}
    assert not new, ("plain ValueError/KeyError/RuntimeError raises a user may trigger? Raise an SggError subclass "
                     f"(see this file's docstring) or list them in INTERNAL_RAISES: {new}")
    stale = {where: count for where, count in INTERNAL_RAISES.items() if found.get(where, 0) != count}
    assert not stale, f"INTERNAL_RAISES lists raises that are gone or fewer (update it): {stale}"


def test_every_exception_class_of_the_framework_is_a_user_error():
    classes = {}
    for path, source in _sources():
        classes.update(exception_classes(source, path))
    user_errors = set(USER_ERROR_BASES)
    for _ in range(len(classes)):  # a subclass of a subclass: grow the family until it is stable
        user_errors |= {where.rpartition(":")[2] for where, bases in classes.items() if user_errors & set(bases)}
    others = {where for where in classes if where.rpartition(":")[2] not in user_errors}
    assert others == OTHER_EXCEPTIONS, others - OTHER_EXCEPTIONS
