"""tools/plot_results.py and the test tool's automatic plots, on small hand-written results files."""
import json
import os
import sys

import cv2
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import plot_results  # noqa: E402

from sgg.engine.relation_eval import write_result_plots  # noqa: E402
from sgg.utils.result_plots import frequency_order, load_per_predicate  # noqa: E402


def _results(path, names=("on", "has", "near"), counts=(5, 50, 20), recall=(0.2, 0.9, 0.5)):
    block = {"names": list(names), "gt_count": list(counts), "num_images": [1, 9, 4], "R@20": list(recall),
             "R@50": list(recall), "R@100": list(recall)}
    path.write_text(json.dumps({"mode": "predcls", "R@100": 0.7, "per_predicate": block}))
    return str(path)


def _image_size(path):
    image = cv2.imread(str(path))
    assert image is not None, path
    return image.shape[1], image.shape[0]


def test_each_figure_is_written(tmp_path):
    a = _results(tmp_path / "a.json")
    b = _results(tmp_path / "b.json", recall=(0.6, 0.8, 0.5))
    assert plot_results.main(["distribution", "--results", a, "--log", "--output", str(tmp_path / "d.png")]) == 0
    assert plot_results.main(["recall", "--results", a, "--k", "50", "--output", str(tmp_path / "r.png")]) == 0
    assert plot_results.main(["compare", "--results-a", a, "--results-b", b, "--label-a", "CE", "--label-b", "CCE",
                              "--output", str(tmp_path / "c.png")]) == 0
    for name in ("d.png", "r.png", "c.png"):
        width, height = _image_size(tmp_path / name)
        assert width >= 500 and height >= 300  # figsize (>= 6 x 4.2 inches) at 100 dpi


def test_distribution_of_a_config_split(tmp_path):
    from sgg.data.synthetic import generate_synthetic_vg

    generate_synthetic_vg(str(tmp_path / "synthetic_vg"), num_train=10, num_test=2, seed=2, workers=1)
    out = tmp_path / "train.png"
    config = os.path.join(REPO, "configs/synthetic/relation_predcls.yaml")
    code = plot_results.main(["distribution", "--config-file", config,
                              "--split", "train", "--output", str(out), "DATASETS.DATA_DIR", str(tmp_path),
                              "DATASETS.VAL_SIZE", "2"])
    assert code == 0 and out.exists()


def test_predicates_are_ordered_by_frequency():
    assert frequency_order([5, 50, 20, 50]).tolist() == [1, 3, 2, 0]


def test_bad_inputs_name_the_problem(tmp_path, caplog):
    a = _results(tmp_path / "a.json")
    other = _results(tmp_path / "o.json", names=("on", "has", "under"))
    assert plot_results.main(["recall", "--results", str(tmp_path / "none.json"), "--output", "x.png"]) == 2
    assert "none.json does not exist" in caplog.text
    (tmp_path / "plain.json").write_text(json.dumps({"R@100": 0.5}))
    with pytest.raises(ValueError, match="no 'per_predicate' block"):
        load_per_predicate(str(tmp_path / "plain.json"))
    assert plot_results.main(["recall", "--results", a, "--k", "10", "--output", str(tmp_path / "x.png")]) == 2
    assert "no per-predicate R@10; available: R@100, R@20, R@50" in caplog.text
    assert plot_results.main(["compare", "--results-a", a, "--results-b", other, "--output", "x.png"]) == 2
    assert "evaluate different predicate lists" in caplog.text
    assert plot_results.main(["distribution", "--output", "x.png"]) == 2
    assert "exactly one of --results and --config-file" in caplog.text
    assert not (tmp_path / "x.png").exists()


def test_without_matplotlib_the_error_says_how_to_install(tmp_path, monkeypatch, caplog):
    a = _results(tmp_path / "a.json")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert plot_results.main(["recall", "--results", a, "--output", str(tmp_path / "r.png")]) == 2
    assert "pip install matplotlib" in caplog.text
    write_result_plots(a, str(tmp_path))  # the test tool goes on without plots
    assert not (tmp_path / "per_predicate_R@100.png").exists()


def test_the_test_tool_plots(tmp_path):
    a = _results(tmp_path / "results.json")
    write_result_plots(a, str(tmp_path))
    assert (tmp_path / "per_predicate_R@100.png").exists() and (tmp_path / "predicate_distribution.png").exists()


def test_plots_from_the_evaluators_own_results_file(tmp_path):
    """results.json written by the evaluator's writer (compute_metrics + write_results), not by hand."""
    import numpy as np

    from sgg.evaluation.metrics import compute_metrics
    from sgg.evaluation.report import write_results

    # records: (predicate, zero_shot, graph_rank, no_graph_rank, accuracy_rank) per GT relation
    records = [np.array([[1, 0, 0, 0, 0], [2, 0, 60, 60, 60]]), np.array([[2, 0, 5, 5, 5]])]
    results = compute_metrics(records, (20, 50, 100), 3, "predcls", predicate_names=["__bg__", "on", "has"])
    path = write_results(results, "", str(tmp_path))["json"]
    block = load_per_predicate(path)
    # "on": image 0 recalls 1 of 1 -> 1.0; "has": image 0 0 of 1 (rank 60), image 1 1 of 1 (rank 5) -> (0 + 1) / 2
    assert block["names"] == ["on", "has"] and block["gt_count"] == [1, 2]
    assert block["R@50"] == [1.0, 0.5] and block["R@100"] == [1.0, 1.0]
    for figure, extra in (("recall", ["--results", path, "--k", "50"]), ("distribution", ["--results", path])):
        out = tmp_path / f"{figure}.png"
        assert plot_results.main([figure, *extra, "--output", str(out)]) == 0 and _image_size(out)[0] >= 500


def _metrics(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


# a detector-like and a relation-like metrics.json: training lines every 20 iterations, a validation line between
DETECTOR_LINES = [{"iteration": 1, "loss": 3.0, "loss_classifier": 2.0, "lr": 0.1}, {"iteration": 20, "loss": 2.0},
                  {"iteration": 20, "val/AP50": 0.25}, {"iteration": 40, "loss": 1.0}, {"iteration": 60, "loss": 0.5}]
RELATION_LINES = [{"iteration": 1, "loss": 4.0, "loss_rel": 3.5}, {"iteration": 20, "loss": 1.5, "loss_rel": 1.25}]


def test_curves_read_one_key_and_skip_the_lines_without_it(tmp_path):
    from sgg.utils.result_plots import load_curve

    path = _metrics(tmp_path / "metrics.json", DETECTOR_LINES)
    iterations, values = load_curve(path, "loss")
    assert iterations.tolist() == [1, 20, 40, 60] and values.tolist() == [3.0, 2.0, 1.0, 0.5]
    iterations, values = load_curve(path, "val/AP50")
    assert iterations.tolist() == [20] and values.tolist() == [0.25]


def test_moving_average_is_trailing_and_keeps_the_length():
    from sgg.utils.result_plots import moving_average

    # window 2: 1, (1+2)/2, (2+3)/2, (3+10)/2 -- a centred or leading mean would give other values
    assert moving_average([1, 2, 3, 10], 2).tolist() == [1.0, 1.5, 2.5, 6.5]
    assert moving_average([1, 2, 3, 10], 3).tolist() == [1.0, 1.5, 2.0, 5.0]
    assert moving_average([4, 7], 1).tolist() == [4.0, 7.0]
    with pytest.raises(ValueError, match="at least 1, got 0"):
        moving_average([1.0], 0)


def test_curves_figure_has_one_panel_per_key(tmp_path):
    det = _metrics(tmp_path / "det.json", DETECTOR_LINES)
    rel = _metrics(tmp_path / "rel.json", RELATION_LINES)
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    assert plot_results.main(["curves", "--run", f"detector={det}", "--run", f"Motif={rel}", "--window", "2",
                              "--output", str(one)]) == 0
    # loss_rel is logged by the relation run only: its panel shows that run
    assert plot_results.main(["curves", "--run", f"detector={det}", "--run", f"Motif={rel}", "--key", "loss",
                              "--key", "loss_rel", "--output", str(two)]) == 0
    (w1, h1), (w2, h2) = _image_size(one), _image_size(two)
    assert h1 == h2 == 360 and w1 == 460 and w2 == 920  # 4.6 x 3.6 inches per panel at 100 dpi


def test_curves_keep_a_runs_colour_in_every_panel(tmp_path, monkeypatch):
    from sgg.utils import result_plots

    figures = []
    monkeypatch.setattr(result_plots, "_save", lambda fig, path: figures.append(fig) or path)
    det = _metrics(tmp_path / "det.json", DETECTOR_LINES)
    rel = _metrics(tmp_path / "rel.json", RELATION_LINES)
    result_plots.plot_training_curves([("detector", det), ("Motif", rel)], str(tmp_path / "c.png"),
                                      keys=("loss", "loss_rel"))
    loss_panel, rel_panel = figures[0].axes
    colours = {line.get_label(): line.get_color() for line in loss_panel.get_lines()}
    # the detector has no loss_rel: Motif is the only line there, yet keeps its second-run colour
    assert [line.get_label() for line in rel_panel.get_lines()] == ["Motif"]
    assert rel_panel.get_lines()[0].get_color() == colours["Motif"] != colours["detector"]


def test_curves_bad_inputs_name_the_problem(tmp_path, caplog):
    det = _metrics(tmp_path / "det.json", DETECTOR_LINES)
    out = tmp_path / "x.png"
    assert plot_results.main(["curves", "--run", f"detector={det}", "--key", "loss_rel", "--output", str(out)]) == 2
    assert "det.json: no logged value 'loss_rel'; available: loss, loss_classifier, lr, val/AP50" in caplog.text
    assert plot_results.main(["curves", "--run", det, "--output", str(out)]) == 2
    assert "expected LABEL=PATH to a metrics.json" in caplog.text
    assert plot_results.main(["curves", "--run", f"a={tmp_path / 'none.json'}", "--output", str(out)]) == 2
    assert "none.json does not exist" in caplog.text
    (tmp_path / "broken.json").write_text('{"iteration": 1, "loss": 2.0}\n{"iteration": 2,\n')
    assert plot_results.main(["curves", "--run", f"a={tmp_path / 'broken.json'}", "--output", str(out)]) == 2
    assert "broken.json:2: not a JSON object" in caplog.text
    assert not out.exists()


def _benchmark_json(path):
    rows = [{"name": "Motif", "protocol": "predcls", "metrics": {"R@50": 0.433, "mR@50": 0.130}},
            {"name": "Motif+BA-SGG", "protocol": "predcls", "metrics": {"R@50": 0.459, "mR@50": 0.276}},
            {"name": "Motif", "protocol": "sgcls", "metrics": {"R@50": 0.358, "mR@50": 0.125}}]
    path.write_text(json.dumps(rows))
    return str(path)


def test_tradeoff_points_are_one_protocols_rows_in_percent(tmp_path):
    from sgg.utils.result_plots import load_tradeoff

    path = _benchmark_json(tmp_path / "benchmark.json")
    points = load_tradeoff(path, "predcls", 50)
    assert set(points) == {"Motif", "Motif+BA-SGG"}
    assert points["Motif+BA-SGG"] == pytest.approx((45.9, 27.6))  # (R@50, mR@50), not swapped
    assert load_tradeoff(path, "sgcls", 50) == {"Motif": pytest.approx((35.8, 12.5))}


def test_tradeoff_marks_rows_that_emit_fewer_triplets_than_k(tmp_path):
    rows = [{"name": "Motif", "protocol": "sgdet", "metrics": {"R@50": 0.36, "mR@50": 0.12},
             "model": {"max_triplets_per_image": None}},
            {"name": "IterativeSG", "protocol": "sgdet", "metrics": {"R@20": 0.26, "R@50": 0.26, "mR@20": 0.09,
                                                                       "mR@50": 0.09},
             "model": {"max_triplets_per_image": 16}},
            {"name": "Wide", "protocol": "sgdet", "metrics": {"R@50": 0.3, "mR@50": 0.1},
             "model": {"max_triplets_per_image": 50}},
            {"name": "Old", "protocol": "sgdet", "metrics": {"R@50": 0.3, "mR@50": 0.1}},
            {"name": "IterativeSG", "protocol": "predcls", "metrics": {"R@50": 0.3, "mR@50": 0.1},
             "model": {"max_triplets_per_image": 16}}]
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps(rows))
    assert plot_results.capped_rows(str(path), "sgdet", 50) == {"IterativeSG": 16}  # 50 triplets suffice for K = 50
    assert plot_results.capped_rows(str(path), "sgdet", 100) == {"IterativeSG": 16, "Wide": 50}
    assert plot_results.capped_rows(str(path), "sgdet", 16) == {}  # K = the cap: nothing is cut off
    out = tmp_path / "t.png"
    assert plot_results.main(["tradeoff", "--benchmark", str(path), "--protocol", "sgdet", "--output", str(out)]) == 0
    assert _image_size(out)[0] >= 700


def test_tradeoff_figure_and_its_errors(tmp_path, caplog):
    path = _benchmark_json(tmp_path / "benchmark.json")
    listing = tmp_path / "list.yaml"
    listing.write_text("experiments:\n  - {name: Motif, config: c.yaml}\n  - {name: Motif+BA-SGG, config: c.yaml}\n")
    out = tmp_path / "t.png"
    assert plot_results.main(["tradeoff", "--benchmark", path, "--experiments", str(listing), "--output",
                              str(out)]) == 0
    width, height = _image_size(out)
    assert width >= 700 and height >= 500  # 8 x 6 inches at 100 dpi
    assert plot_results.main(["tradeoff", "--benchmark", path, "--protocol", "sgdet", "--output",
                              str(tmp_path / "x.png")]) == 2
    assert "has no sgdet rows (it has: predcls, sgcls)" in caplog.text
    assert plot_results.main(["tradeoff", "--benchmark", path, "--k", "20", "--output", str(tmp_path / "y.png")]) == 2
    assert "row Motif predcls has no R@20 / mR@20" in caplog.text
    assert plot_results.main(["tradeoff", "--benchmark", str(tmp_path / "none.json"), "--output",
                              str(tmp_path / "z.png")]) == 2
    assert "none.json does not exist" in caplog.text
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_tradeoff_labels_stay_by_their_points_and_apart():
    """Three rows on one spot and one far off: the first label right of the spot, the second left of it (both on its
    line, no leader), the third moved down one step with its leader line shown; no two labels overlap."""
    from sgg.utils.result_plots import _point_label, _pyplot, _separate_labels, _text_box

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 6.0))
    spots = [(50.0, 20.0), (50.0, 20.0), (50.0, 20.0), (10.0, 5.0)]
    ax.scatter([x for x, _ in spots], [y for _, y in spots])
    labels = [_point_label(ax, name, xy, "#3b6ea8") for name, xy in zip(["A", "B", "C", "D"], spots)]
    _separate_labels(fig, labels)
    assert [label.xyann for label in labels] == [(4.0, 3.0), (-4.0, 3.0), (4.0, -6.0), (4.0, 3.0)]
    assert [label.get_horizontalalignment() for label in labels] == ["left", "right", "left", "left"]
    assert [label.arrow_patch.get_visible() for label in labels] == [False, False, True, False]
    boxes = [_text_box(label, fig.canvas.get_renderer()) for label in labels]
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(4) for j in range(i + 1, 4))
    point = ax.transData.transform((50.0, 20.0))
    assert boxes[0].x0 > point[0] and boxes[1].x1 < point[0]  # right of the spot, left of it
    plt.close(fig)


def test_tradeoff_label_keeps_off_a_neighbours_point():
    """A point just right of another on its line: the first point's label would cover the neighbour's marker on the
    right, so it goes left; the neighbour's own label stays right of it."""
    from sgg.utils.result_plots import _point_label, _pyplot, _separate_labels

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 6.0))
    ax.set_xlim(0.0, 100.0)
    ax.set_ylim(0.0, 100.0)
    # 6.2 x 4.62 pixels per unit here; right of its point, "first" would span 5.6-24.6 px right of it and 1.8-12.2 px
    # above: the neighbour's centre (15 px right, 1.5 px below) stays outside that, but its marker (4.2 px either
    # side) reaches in
    spots = [(50.0, 50.0), (52.42, 49.68)]
    labels = [_point_label(ax, name, xy, "#3b6ea8") for name, xy in zip(["first", "next"], spots)]
    _separate_labels(fig, labels)
    assert [label.xyann for label in labels] == [(-4.0, 3.0), (4.0, 3.0)]
    plt.close(fig)


def test_curves_write_long_runs_iterations_in_thousands(tmp_path, monkeypatch):
    from sgg.utils import result_plots

    figures = []
    monkeypatch.setattr(result_plots, "_save", lambda fig, path: figures.append(fig) or path)
    lines = [{"iteration": i, "loss": 1.0 / i} for i in range(1, 20001, 20)]
    long_run = tmp_path / "long.json"
    long_run.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result_plots.plot_training_curves([("DETR", str(long_run))], str(tmp_path / "c.png"))
    axis = figures[0].axes[0].xaxis
    ticks = [t for t in axis.get_majorticklocs() if 0 <= t <= 20000]
    labels = [axis.get_major_formatter()(t, i) for i, t in enumerate(ticks)]
    # matplotlib's default put nine five-digit labels (0, 2500, ..., 20000) on the panel, which ran together
    assert labels == ["0", "5k", "10k", "15k", "20k"]


def test_curves_draw_validations_as_logged_while_losses_are_smoothed(tmp_path, monkeypatch):
    from sgg.utils import result_plots

    figures = []
    monkeypatch.setattr(result_plots, "_save", lambda fig, path: figures.append(fig) or path)
    lines = [{"iteration": i, "loss": float(i)} for i in (20, 40, 60)]
    lines += [{"iteration": 4000, "val/R@50": 0.10}, {"iteration": 8000, "val/R@50": 0.20},
              {"iteration": 12000, "val/R@50": 0.40}]
    run = tmp_path / "run.json"
    run.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result_plots.plot_training_curves([("IterativeSG", str(run))], str(tmp_path / "c.png"),
                                      keys=("loss", "val/R@50"), window=10)
    loss_panel, val_panel = figures[0].axes
    assert loss_panel.get_lines()[0].get_ydata().tolist() == [20.0, 30.0, 40.0]  # trailing mean over the window
    # a window over validation passes would draw 0.10, 0.15, 0.233...: every pass after the first misstated
    assert val_panel.get_lines()[0].get_ydata().tolist() == [0.10, 0.20, 0.40]
    assert val_panel.get_lines()[0].get_marker() == "o"
    assert loss_panel.get_ylabel() == "loss (mean of 10 logs)" and val_panel.get_ylabel() == "val/R@50"
