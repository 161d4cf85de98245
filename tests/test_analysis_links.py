"""The studies' analyses in the report, and the top-level analysis/ scripts on a real tiny study."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_mixkd.analysis import link_table
from keras_mixkd.analysis import main_table
from keras_mixkd.analysis import pearson
from keras_mixkd.analysis import spearman
from keras_mixkd.analysis import temperature_grid
from keras_mixkd.analysis import write_report
from tests.test_analysis import CONFIG
from tests.test_analysis import synthetic_records
from tests.test_analysis import write_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["accuracy_table", "cd_vs_accuracy", "smoothness_vs_accuracy", "temperature_heatmap", "curves"]


def pearson_reference(x, y):
    """Pearson's r from its definition, float64: cov(x, y) / (std x std y)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return cov / np.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def ranks_reference(values):
    """1-based ranks, ties sharing the mean of the ranks they span."""
    values = list(values)
    ordered = sorted(values)
    return [np.mean([i + 1 for i, v in enumerate(ordered) if v == value]) for value in values]


@pytest.mark.backend_independent
@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_pearson_and_spearman_against_their_definitions(rng, offset):
    for size in (3, 7, 40):
        x = rng.normal(size=size) + offset
        y = 0.5 * x + rng.normal(size=size) * 0.3 + offset
        assert pearson(x, y) == pytest.approx(pearson_reference(x, y), abs=1e-9)
        rounded = np.round(x - offset, 1) + offset  # ties
        assert spearman(rounded, y) == pytest.approx(
            pearson_reference(ranks_reference(rounded), ranks_reference(y)), abs=1e-9)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(pearson([1, 2], [1, 2])) and np.isnan(pearson([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(2,\)"):
        pearson([1, 2, 3], [1, 2])


@pytest.mark.backend_independent
def test_link_table_and_heatmap_grid_on_synthetic_records(rng):
    records = synthetic_records(rng)
    header, rows = link_table(records, CONFIG)
    assert header[-2:] == ["Pearson r", "Spearman ρ"]
    assert len(rows) == 3 * 2  # three teacher measures x two recipes
    teachers = {(r["teacher_augmentation"], r["seed"]): r for r in records if r["role"] == "teacher"}
    students = [r for r in records if r["role"] == "student" and r["recipe"] == "kd"]
    x = [teachers[(s["teacher_augmentation"], s["seed"])]["class_discrimination_last"] for s in students]
    y = [s["test_accuracy_last"] for s in students]
    cd_kd = next(row for row in rows if row[0].startswith("teacher class-discrimination") and row[2] == "kd")
    assert cd_kd[3] == "9" and float(cd_kd[4]) == pytest.approx(pearson_reference(x, y), abs=5e-4)
    augmentations, temperatures, means = temperature_grid(records, CONFIG)
    assert temperatures == [1.0, 4.0]
    expected = np.mean([r["test_accuracy_last"] for r in records if r["role"] == "student"
                        and r["teacher_augmentation"] == "mixup" and r["temperature"] == 1.0])
    assert means[augmentations.index("mixup"), 0] == pytest.approx(expected)


@pytest.mark.backend_independent
def test_report_holds_the_studies_analyses(rng, tmp_path):
    run = str(tmp_path / "run")
    write_run(run, synthetic_records(rng), rng)
    written = write_report(run, print_fn=None)
    names = {os.path.basename(p) for p in written["plots"]}
    assert {"curves.png", "links.png", "temperature_heatmap.png", "projection_student_small_from_big.png",
            "projection_student_small_from_big_kd_T1.png"} <= names  # students of every recipe
    text = open(written["report"]).read()
    assert "## The studies' links" in text and "Spearman ρ" in text
    assert text.startswith("# Study `synthetic` on the embedded digits data")


@pytest.mark.backend_independent
def test_teachers_only_and_folder_runs_are_described_as_they_are(rng, tmp_path):
    teachers = [r for r in synthetic_records(rng) if r["role"] == "teacher"]
    table = main_table(teachers, CONFIG)
    assert "teacher big" in table and "mixup" in table
    config = dict(CONFIG, data={"dataset": "folder", "path": "/data/flowers"})
    run = str(tmp_path / "folder_run")
    os.makedirs(run)
    from keras_mixkd.study import atomic

    manifest = {"format": 1, "keras_mixkd_version": "0.1.0", "config": config}
    atomic.write_json(os.path.join(run, "results.json"), dict(manifest, cells=teachers))
    text = open(write_report(run, print_fn=None)["report"]).read()
    assert text.startswith("# Study `synthetic` on the image folder `/data/flowers`")
    assert "digits" not in text.splitlines()[0] and "## Teachers big" in text


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """A runs folder of synthetic records: three augmentations, three seeds, two temperatures."""
    rng = np.random.default_rng(3)
    run = str(tmp_path_factory.mktemp("synthetic") / "run")
    write_run(run, synthetic_records(rng), rng)
    return run


def test_every_cell_logs_a_csv_and_tensorboard(tiny_study):
    """The session's tiny study (tests/conftest.py) ran with TensorBoard logs: five cells, two epochs each."""
    smoke_run = str(tiny_study[0])
    cells = json.load(open(os.path.join(smoke_run, "results.json")))["cells"]
    assert len(cells) == 5
    for cell in cells:
        folder = os.path.join(smoke_run, "logs", cell["key"])
        with open(os.path.join(folder, "history.csv")) as f:
            rows = list(csv.DictReader(f))
        assert [int(r["epoch"]) for r in rows] == [0, 1]  # CSVLogger counts from 0; two epochs
        for row, epoch in zip(rows, cell["history"]):
            assert float(row["val_accuracy"]) == pytest.approx(epoch["val_accuracy"], abs=1e-6)
        events = [name for _, _, files in os.walk(os.path.join(folder, "tensorboard")) for name in files]
        assert any(name.startswith("events.out.tfevents") for name in events)
    text = open(os.path.join(smoke_run, "report.md")).read()
    assert "plots/curves.png" in text and "plots/links.png" in text


@pytest.mark.backend_independent
@pytest.mark.parametrize("script", SCRIPTS)
def test_analysis_scripts_rebuild_their_figure(tiny_study, synthetic_run, tmp_path, script):
    """Every script on the synthetic run (all axes); the table and curves also on the session's real tiny study."""
    runs = [synthetic_run] + ([str(tiny_study[0])] if script in ("accuracy_table", "curves") else [])
    for number, run in enumerate(runs):
        out = str(tmp_path / f"{script}{number}")
        process = subprocess.run([sys.executable, os.path.join(ROOT, "analysis", f"{script}.py"), run,
                                  "--out", out], capture_output=True, text=True, timeout=120,
                                 env=dict(os.environ, PYTHONPATH=ROOT))
        assert process.returncode == 0, process.stderr
        assert process.stdout.strip()
        if script != "accuracy_table":
            assert os.listdir(out) and all(name.endswith(".png") for name in os.listdir(out))


@pytest.mark.backend_independent  # the script reads results.csv: no Keras
def test_kd_gain_script_on_the_smoke_study(tiny_study, tmp_path):
    """analysis/kd_gain.py on a real study: the gain it prints and draws is distilled − alone from results.csv."""
    from keras_mixkd.analysis import kd_gain_figure
    from keras_mixkd.analysis import load_results
    from tests.test_kd_gain import drawn_gains

    smoke_run = str(tiny_study[0])
    out = str(tmp_path / "kd_gain")
    process = subprocess.run([sys.executable, os.path.join(ROOT, "analysis", "kd_gain.py"), smoke_run, "--out", out],
                             capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert process.returncode == 0, process.stderr
    assert sorted(os.listdir(out)) == ["kd_gain.png", "kd_gain_best.png"]
    with open(os.path.join(smoke_run, "results.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    alone = {r["seed"]: float(r["test_accuracy_last"]) for r in rows if r["role"] == "alone"}
    expected = {(r["teacher_model"], r["student_model"], r["teacher_augmentation"], r["recipe"]):
                100 * (float(r["test_accuracy_last"]) - alone[r["seed"]]) for r in rows if r["role"] == "student"}
    assert len(expected) == 2  # two teacher augmentations, one recipe, one seed
    lines = process.stdout.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("KD gain") and "last epoch" in line)
    printed = {}
    for line in lines[title + 1:]:
        if not line.strip():
            break
        parts = line.split()
        if len(parts) == 2 and parts[0] in {key[2] for key in expected}:
            printed[parts[0]] = float(parts[1])
    assert printed == pytest.approx({key[2]: gain for key, gain in expected.items()}, abs=0.005 + 1e-3)
    config, records, _ = load_results(smoke_run)
    drawn = drawn_gains(kd_gain_figure(records, config))
    assert set(drawn) == set(expected)
    for key, gain in expected.items():
        assert drawn[key][0] == pytest.approx(gain, abs=1e-3)
    report = open(os.path.join(smoke_run, "report.md")).read()
    assert report.index("plots/kd_gain.png") < report.index("\n## ")  # the report opens with it


@pytest.mark.backend_independent
def test_compare_runs_script_finds_identical_and_changed_runs(tiny_study, tmp_path, capsys, monkeypatch):
    """analysis/compare_runs.py, the before/after check of a refactoring: same folder, then a changed teacher."""
    import shutil

    run = str(tiny_study[0])
    copy = str(tmp_path / "copy")
    shutil.copytree(run, copy)
    script = [sys.executable, os.path.join(ROOT, "analysis", "compare_runs.py")]
    # TensorFlow's start-up lines unsilenced, as a user's terminal shows them: the script filters them.
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONPATH=ROOT)
    same = subprocess.run(script + [run, copy], capture_output=True, text=True, timeout=300, env=env)
    assert same.returncode == 0, same.stderr
    assert same.stderr == "", same.stderr
    assert "teachers identical: 2/2" in same.stdout and "difference 0.000 points (0.0 of" in same.stdout
    results_path = os.path.join(copy, "results.json")
    results = json.load(open(results_path))
    teacher = next(cell for cell in results["cells"] if cell["role"] == "teacher")
    teacher["test_accuracy_last"] -= 0.01
    json.dump(results, open(results_path, "w"))
    # The script's main in this process: the command ran above (a fresh process, importing Keras, 5 s).
    monkeypatch.syspath_prepend(os.path.join(ROOT, "analysis"))
    import compare_runs

    capsys.readouterr()
    assert compare_runs.main([run, copy]) == 1
    assert f"teacher {teacher['key']} differs in test_accuracy_last" in capsys.readouterr().out
