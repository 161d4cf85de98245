"""A runs folder as pandas DataFrames: one row per cell, one row per cell and epoch."""

import os
import sys

import pytest

from keras_mixkd.analysis import history_frame
from keras_mixkd.analysis import results_frame

pd = pytest.importorskip("pandas", reason="results_frame needs pandas: pip install pandas")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDENTITY = ["key", "role", "teacher_model", "teacher_augmentation", "student_model", "recipe", "seed"]


@pytest.mark.backend_independent
def test_the_tiny_study_as_a_cell_frame_and_an_epoch_frame(tiny_study):
    run_dir, records, _ = tiny_study
    cells = results_frame(run_dir)
    assert isinstance(cells, pd.DataFrame) and len(cells) == len(records) == 5
    assert list(cells.columns[:7]) == IDENTITY
    assert "history" not in cells.columns and "model_card" not in cells.columns
    by_key = {r["key"]: r for r in records}
    assert set(cells.key) == set(by_key)
    for row in cells.itertuples():
        record = by_key[row.key]
        assert row.test_accuracy_last == pytest.approx(record["test_accuracy_last"])
        assert row.flags == record["flags"] and row.flagged == bool(record["flags"])
        assert row.num_classes == 10 and row.role == record["role"]
    students = cells[cells.role == "student"]
    assert sorted(students.teacher_augmentation) == ["mixup", "none"]
    # Students carry their teacher's numbers and their gain over the student alone, as in results.csv.
    alone = cells[cells.role == "alone"].test_accuracy_last.iloc[0]
    assert (students.kd_gain_last == students.test_accuracy_last - alone).all()
    # The question a researcher asks: the mean per group, as pandas answers it.
    means = cells.groupby("role").test_accuracy_last.mean()
    assert means["teacher"] == pytest.approx(
        sum(r["test_accuracy_last"] for r in records if r["role"] == "teacher") / 2)

    epochs = history_frame(run_dir)
    assert list(epochs.columns[:8]) == IDENTITY + ["epoch"]
    assert len(epochs) == sum(len(r["history"]) for r in records) == 10
    for key, group in epochs.groupby("key"):
        history = by_key[key]["history"]
        assert list(group.epoch) == [row["epoch"] for row in history] == [1, 2]
        assert list(group.test_accuracy) == pytest.approx([row["test_accuracy"] for row in history])
        assert list(group.loss) == pytest.approx([row["loss"] for row in history])
    # Distillation losses are columns of the students' rows, NaN in the others.
    assert epochs[epochs.role == "teacher"].distillation_loss.isna().all()
    assert epochs[epochs.role == "student"].distillation_loss.notna().all()
    joined = epochs.merge(cells[["key", "flagged"]], on="key")
    assert len(joined) == len(epochs)


@pytest.mark.backend_independent
def test_without_pandas_the_frames_say_how_to_install_it(tiny_study, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError
    for frame in (results_frame, history_frame):
        with pytest.raises(ImportError, match=r"need pandas, which is not installed: pip install pandas"):
            frame(tiny_study[0])


@pytest.mark.backend_independent
def test_the_frames_refuse_what_is_not_a_runs_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="No runs folder at"):
        results_frame(tmp_path / "missing")
    with pytest.raises(ValueError, match="neither results.json nor study.json"):
        history_frame(tmp_path)


@pytest.mark.backend_independent
def test_the_results_as_data_script_on_the_tiny_study(tiny_study, tmp_path, capsys):
    """analysis/results_as_data.py, the frames' example, run in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("results_as_data", os.path.join(ROOT, "analysis",
                                                                                  "results_as_data.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main([str(tiny_study[0]), "--csv", str(tmp_path / "csv")])
    out = capsys.readouterr().out
    flagged = int(results_frame(tiny_study[0]).flagged.sum())
    assert out.startswith(f"5 cells, 10 epochs; {flagged} cells flagged")
    assert "Test accuracy (%), last epoch, unflagged cells only:" in out
    cells = pd.read_csv(tmp_path / "csv" / "cells.csv")
    assert len(cells) == 5 and len(pd.read_csv(tmp_path / "csv" / "epochs.csv")) == 10
