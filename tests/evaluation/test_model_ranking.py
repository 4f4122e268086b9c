"""A model's own ranking of its triplets (prediction field ``rel_rank_scores``, docs/evaluation.md): the
graph-constrained list follows it, the no-graph-constraint list does not, bad values are refused by name."""
import numpy as np
import pytest

from sgg.evaluation import SceneGraphEvaluator
from sgg.evaluation.prediction_file import PredictionFileWriter, read_prediction_file
from sgg.utils.errors import EvaluationError

C = 3  # background + 2 predicates
BOXES = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [0, 20, 10, 30]], dtype=np.float32)
LABELS = np.array([1, 2, 3])
# The GT relation is (box 2, box 0, predicate 1).
GT = {"boxes": BOXES, "labels": LABELS, "relations": np.array([[2, 0, 1]])}


def prediction(rank_scores=None):
    # Row 0: pair (0, 1), predicate 1 at 0.6 -> by the entities' scores 0.9 * 0.5 * 0.6 = 0.27 (first);
    # row 1: pair (2, 0), predicate 1 at 0.9 -> 0.2 * 0.9 * 0.9 = 0.162 (second). It is the GT triplet.
    pred = {"boxes": BOXES, "labels": LABELS, "scores": np.array([0.9, 0.5, 0.2], dtype=np.float32),
            "rel_pair_idxs": np.array([[0, 1], [2, 0]]),
            "rel_scores": np.array([[0.1, 0.6, 0.3], [0.05, 0.9, 0.05]], dtype=np.float32)}
    if rank_scores is not None:
        pred["rel_rank_scores"] = np.asarray(rank_scores, dtype=np.float32)
    return pred


def recalls(pred, **kwargs):
    evaluator = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=(1, 2), **kwargs)
    evaluator.update(GT, pred, image_id=0)
    result = evaluator.compute()
    return result["R@1"], result["ngR@1"]


def test_without_a_model_ranking_the_entities_scores_rank():
    assert recalls(prediction()) == (0.0, 0.0)


def test_the_model_ranking_orders_the_graph_constrained_list_only():
    # The model puts row 1 first: R@1 finds the GT triplet. The ng list still ranks (pair, predicate) by the
    # entities' scores (0.27 > 0.162), as the references do, so ng-R@1 stays 0.
    assert recalls(prediction(rank_scores=[0.1, 0.5])) == (1.0, 0.0)
    # and a ranking that agrees with the entities' keeps R@1 at 0
    assert recalls(prediction(rank_scores=[0.5, 0.1])) == (0.0, 0.0)


def test_ties_in_the_model_ranking_keep_the_input_order():
    assert recalls(prediction(rank_scores=[0.3, 0.3])) == (0.0, 0.0)


def test_the_prediction_file_keeps_the_model_ranking(tmp_path):
    path = tmp_path / "predictions.sgg"
    writer = PredictionFileWriter(str(path), {"mode": "sgdet", "num_predicates": C, "ks": [1, 2]})
    writer.add(0, prediction(rank_scores=[0.1, 0.5]), GT)
    writer.close()
    (record,) = list(read_prediction_file(str(path)))
    assert record.image_id == 0
    assert record.ranked.graph.tolist() == [[2, 0, 1], [0, 1, 1]]
    # stored rows are in rank order: row 1 of the input first, with its own rank score
    assert record.prediction["rel_pair_idxs"].tolist() == [[2, 0], [0, 1]]
    assert record.prediction["rel_rank_scores"].tolist() == pytest.approx([0.5, 0.1])
    evaluator = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=(1, 2))
    evaluator.update(GT, record.ranked, image_id=0)
    assert evaluator.compute()["R@1"] == 1.0


@pytest.mark.parametrize("bad, expected", [([0.1], r"'rel_rank_scores'.*\(2,\)"),
                                           ([0.1, float("nan")], r"'rel_rank_scores'.*finite")])
def test_bad_model_ranking_is_refused_by_name(bad, expected):
    with pytest.raises(ValueError, match=expected):
        recalls(prediction(rank_scores=bad))


def test_model_ranking_and_relation_nms_cannot_be_combined():
    with pytest.raises(EvaluationError, match="rel_rank_scores.*TEST.RELATION.RELATION_NMS.*EVAL_QUERY_RANKING"):
        recalls(prediction(rank_scores=[0.1, 0.5]), relation_nms=True)
