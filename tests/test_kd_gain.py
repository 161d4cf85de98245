"""The KD-gain figure: built from the numbers of the KD-gain table, recomputed here from results.csv.

The runs folders are written without training: cell records through the
study's own `RunFolder` (cells/, results.json, results.csv), then the report.
"""

import csv
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.container import BarContainer

from keras_mixkd.analysis import gain_table
from keras_mixkd.analysis import kd_gain_figure
from keras_mixkd.analysis import load_results
from keras_mixkd.analysis import plot_accuracy
from keras_mixkd.analysis import write_report
from keras_mixkd.study.run_folder import RunFolder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUGMENTATIONS = ["none", "standard", "mixup", "cutmix"]
RECIPES = ["kd", "kd_T1", "standardized"]
PAIRS = [("big", "small"), ("big", "tiny")]
# Mean KD gain (fraction) per teacher augmentation for plain KD, as in the default study: a few points apart.
PLAIN_GAIN = {"none": 0.0316, "standard": 0.023, "mixup": 0.0111, "cutmix": -0.0149}

pytestmark = pytest.mark.backend_independent  # records written without training, tables and plots from them


def config_of(seeds, validation_fraction=0.15):
    return {
        "name": "gains", "seeds": list(seeds),
        "data": {"dataset": "digits", "validation_fraction": validation_fraction},
        "teacher": {"augmentations": AUGMENTATIONS},
        "pairs": [{"teacher": t, "student": s} for t, s in PAIRS],
        "distillation": [{"name": r, "loss": "kd", "temperature": 4.0, "student_loss_weight": 0.1,
                          "augmentation": ["none"]} for r in RECIPES],
        "measure": {"projection": "pca"},
    }


def gain_study(rng, seeds, best=True):
    """Teachers, students alone and distilled students with accuracies near 94 %, gains of a few points."""
    records = []

    def cell(key, **fields):
        last = float(np.clip(fields.pop("accuracy") + rng.normal(scale=0.015), 0.0, 1.0))
        record = dict(key=key, seed=seed, epochs=10, last_epoch=10, test_accuracy_last=last,
                      best_epoch=int(rng.integers(5, 11)) if best else None,
                      test_accuracy_best=float(np.clip(last + rng.normal(scale=0.01), 0, 1)) if best else None,
                      class_discrimination_last=float(rng.uniform(0.05, 0.3)), ece_last=float(rng.uniform(0, 0.1)),
                      mean_entropy_last=float(rng.uniform(0, 1)), logit_std_last=float(rng.uniform(1, 3)),
                      backend="tensorflow", seconds=1.0, history=[], **fields)
        records.append(record)

    for seed in seeds:
        for augmentation in AUGMENTATIONS:
            cell(f"teacher__big__{augmentation}__s{seed}", role="teacher", teacher_model="big",
                 teacher_augmentation=augmentation, accuracy=0.985)
        for _, student in PAIRS:
            cell(f"student__{student}__alone__s{seed}", role="alone", teacher_model="", teacher_augmentation="",
                 student_model=student, recipe="alone", accuracy=0.94)
            for augmentation in AUGMENTATIONS:
                for number, recipe in enumerate(RECIPES):
                    gain = PLAIN_GAIN[augmentation] / (1 + number)
                    cell(f"student__{student}__{recipe}__from__big__{augmentation}__s{seed}", role="student",
                         teacher_model="big", teacher_augmentation=augmentation, student_model=student,
                         recipe=recipe, loss="kd", temperature=4.0, student_loss_weight=0.1,
                         teacher_agreement_last=0.95, accuracy=0.94 + gain)
    return records


def write_study(folder, records, config):
    """A runs folder as the study writes it: study.json, cells/, results.json and results.csv."""
    run = RunFolder(folder)
    run.open(config)
    for record in records:
        run.write_cell(record["key"], record)
    run.write_results()
    return str(folder)


def gains_from_csv(path, metric):
    """{(teacher, student, augmentation, recipe): [distilled − alone per seed]} from results.csv, in points."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    alone = {(r["student_model"], r["seed"]): float(r[metric]) for r in rows
             if r["role"] == "alone" and r[metric] != ""}
    gains = {}
    for r in rows:
        if r["role"] == "student" and r[metric] != "" and (r["student_model"], r["seed"]) in alone:
            key = (r["teacher_model"], r["student_model"], r["teacher_augmentation"], r["recipe"])
            gains.setdefault(key, []).append(100.0 * (float(r[metric]) - alone[(r["student_model"], r["seed"])]))
    return gains


def mean_and_std(values):
    """Float64 mean and sample std from their definitions (std NaN for one value)."""
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, std


def drawn_gains(figure):
    """{(teacher, student, augmentation, recipe): (mean, std, [seed points])} read back from the figure's artists."""
    drawn = {}
    for ax in figure.axes:
        if not ax.get_title():
            continue  # a legend or colour-bar axis
        teacher, student = ax.get_title().split("(")[0].strip().split(" → ")
        labels = [t.get_text() for t in ax.get_xticklabels()]
        points = {}
        for collection in ax.collections:
            if (collection.get_gid() or "").startswith("seeds "):
                _, augmentation, recipe = collection.get_gid().split(" ")
                points[(augmentation, recipe)] = sorted(collection.get_offsets()[:, 1].tolist())
        for container in ax.containers:
            recipe = container.get_label()
            line, _, bars = container.lines
            segments = bars[0].get_segments() if bars else [None] * len(line.get_xdata())
            for x, y, segment in zip(line.get_xdata(), line.get_ydata(), segments):
                augmentation = labels[int(round(x))]
                std = float("nan") if segment is None else (segment[1][1] - segment[0][1]) / 2
                drawn[(teacher, student, augmentation, recipe)] = (
                    float(y), std, points.get((augmentation, recipe), []))
    return drawn


def table_numbers(records, config, teacher, student, metric):
    """{(augmentation, recipe): (mean, std)} parsed from the KD-gain table's cells."""
    header, rows = gain_table(records, teacher, student, metric, config)
    recipes = [h.split(" · ")[1].removesuffix(" − alone") for h in header[1:]]
    numbers = {}
    for row in rows:
        for recipe, text in zip(recipes, row[1:]):
            parts = [float(p) for p in text.split(" ± ")]
            numbers[(row[0], recipe)] = (parts[0], parts[1] if len(parts) > 1 else float("nan"))
    return numbers


@pytest.mark.parametrize("metric", ["test_accuracy_last", "test_accuracy_best"])
def test_figure_and_table_show_the_gains_recomputed_from_results_csv(tmp_path, rng, metric):
    config = config_of([0, 1, 2])
    run = write_study(tmp_path / "run", gain_study(rng, [0, 1, 2]), config)
    expected = gains_from_csv(os.path.join(run, "results.csv"), metric)
    assert len(expected) == len(PAIRS) * len(AUGMENTATIONS) * len(RECIPES)
    config, records, _ = load_results(run)
    drawn = drawn_gains(kd_gain_figure(records, config, metric=metric))
    assert set(drawn) == set(expected)
    for key, values in expected.items():
        mean, std = mean_and_std(values)
        # results.csv keeps 6 significant digits: two of them per gain, in points.
        assert drawn[key][0] == pytest.approx(mean, abs=5e-4), key
        assert drawn[key][1] == pytest.approx(std, abs=5e-4), key
        np.testing.assert_allclose(drawn[key][2], sorted(values), atol=5e-4)
        table = table_numbers(records, config, key[0], key[1], metric)[(key[2], key[3])]
        assert table == pytest.approx((mean, std), abs=0.005 + 5e-4), key  # the table rounds to 2 decimals
    # The gain really spans a few points here: the axis is scaled to it, with zero in view.
    figure = kd_gain_figure(records, config, metric=metric)
    low, high = figure.axes[0].get_ylim()
    assert low < 0 < high and high - low < 15


def test_report_opens_with_the_kd_gain_figure(tmp_path, rng):
    config = config_of([0, 1, 2])
    run = write_study(tmp_path / "run", gain_study(rng, [0, 1, 2]), config)
    result = write_report(run, print_fn=None)
    names = [os.path.basename(p) for p in result["plots"]]
    assert names[:2] == ["kd_gain.png", "kd_gain_best.png"]
    text = open(result["report"]).read()
    assert "Teachers big trained with 4 augmentation(s)" in text  # named once, though in two pairs
    first_image = text.index("![")
    assert text[first_image:].startswith("![KD gain over the student alone](plots/kd_gain.png)")
    assert "\n## " not in text[:first_image]  # before every table
    appendix = text.index("## Appendix")
    assert "plots/kd_gain_best.png" in text[appendix:] and "plots/kd_gain.png" not in text[appendix:]
    for path in result["plots"]:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_one_seed_says_so_and_draws_no_spread(tmp_path, rng):
    config = config_of([0], validation_fraction=0)
    records = gain_study(rng, [0], best=False)
    figure = kd_gain_figure(records, config)
    assert "one seed" in figure.get_suptitle()
    drawn = drawn_gains(figure)
    assert drawn and all(np.isnan(std) and not points for _, std, points in drawn.values())
    # No validation split: no best-validation gain to draw.
    assert kd_gain_figure(records, config, metric="test_accuracy_best") is None
    run = write_study(tmp_path / "run", records, config)
    names = [os.path.basename(p) for p in write_report(run, print_fn=None)["plots"]]
    assert "kd_gain.png" in names and "kd_gain_best.png" not in names


def test_no_baseline_no_figure_and_the_report_says_why(tmp_path, rng):
    config = config_of([0, 1])
    records = [r for r in gain_study(rng, [0, 1]) if r["role"] != "alone"]
    assert kd_gain_figure(records, config) is None
    run = write_study(tmp_path / "run", records, config)
    result = write_report(run, print_fn=None)
    assert "kd_gain.png" not in [os.path.basename(p) for p in result["plots"]]
    assert "No KD-gain figure: this run trained no student alone" in open(result["report"]).read()


def test_accuracy_plot_is_a_dot_plot_on_an_axis_fitted_to_the_data(tmp_path, rng, monkeypatch):
    from keras_mixkd.analysis import plots

    kept = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: kept.append(figure) or path)
    records = gain_study(rng, [0, 1, 2])
    plot_accuracy(records, str(tmp_path / "accuracy.png"), config_of([0, 1, 2]))
    ax = kept[0].axes[0]
    assert ax.containers and not [c for c in ax.containers if isinstance(c, BarContainer)]  # markers, not bars
    low, high = ax.get_ylim()
    means = [y for c in ax.containers for y in c.lines[0].get_ydata()]
    teachers = [100 * r["test_accuracy_last"] for r in records if r["role"] == "teacher"]
    assert max(means) == pytest.approx(max(np.mean(teachers[i::len(AUGMENTATIONS)]) for i in range(4)))
    assert low > 50 and high - low < 20  # the axis spans the data, so the few points between students show
    assert low < min(means) and high > max(means)
    lines = np.sort(np.concatenate([ax.yaxis.get_majorticklocs(), ax.yaxis.get_minorticklocs()]))
    lines = lines[(lines >= low) & (lines <= high)]
    assert len(lines) > 5 and np.allclose(np.diff(lines), 1.0)  # a grid line at every percentage point


def test_kd_gain_script_rebuilds_the_figure(tmp_path, rng):
    config = config_of([0, 1, 2])
    run = write_study(tmp_path / "run", gain_study(rng, [0, 1, 2]), config)
    out = str(tmp_path / "out")
    process = subprocess.run([sys.executable, os.path.join(ROOT, "analysis", "kd_gain.py"), run, "--out", out],
                             capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert process.returncode == 0, process.stderr
    assert "KD gain over the student alone" in process.stdout
    assert sorted(os.listdir(out)) == ["kd_gain.png", "kd_gain_best.png"]


def test_kd_gain_script_says_why_there_is_no_figure(tmp_path, rng):
    config = config_of([0, 1])
    run = write_study(tmp_path / "run", [r for r in gain_study(rng, [0, 1]) if r["role"] != "alone"], config)
    process = subprocess.run([sys.executable, os.path.join(ROOT, "analysis", "kd_gain.py"), run,
                              "--out", str(tmp_path / "out")],
                             capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert process.returncode != 0
    assert "no student-alone baseline (student.baseline = false)" in process.stderr


def test_a_partial_run_says_how_many_seeds_each_cell_has(rng):
    records = gain_study(rng, [0, 1, 2])
    missing = "student__small__kd__from__big__mixup__s2"
    records = [r for r in records if r["key"] != missing]
    figure = kd_gain_figure(records, config_of([0, 1, 2]))
    assert "2–3 seeds (varies by cell)" in figure.get_suptitle()
    mean, std, points = drawn_gains(figure)[("big", "small", "mixup", "kd")]
    assert len(points) == 2 and mean == pytest.approx(np.mean(points)) and std == pytest.approx(
        np.std(points, ddof=1))
