"""Flags on a cell whose training went wrong: in its record, in the report, for old runs folders too."""

import json
import os

import numpy as np
import pytest

from keras_mixkd.analysis import load_results
from keras_mixkd.analysis import main_table
from keras_mixkd.analysis import pair_table
from keras_mixkd.analysis import write_report
from keras_mixkd.study.training_flags import LOSS_JUMP_FACTOR
from keras_mixkd.study.training_flags import NEAR_CHANCE_MARGIN
from keras_mixkd.study.training_flags import record_flags
from keras_mixkd.study.training_flags import training_flags
from tests.test_analysis import CONFIG
from tests.test_analysis import synthetic_records
from tests.test_analysis import write_run


def history(losses, accuracy=0.9):
    return [{"epoch": i + 1, "loss": loss, "test_accuracy": accuracy} for i, loss in enumerate(losses)]


@pytest.mark.backend_independent
def test_each_flag_is_raised_by_its_own_sign_only():
    assert training_flags(history([2.3, 1.0, 0.5]), 10) == []
    # near_chance: at most chance + the margin, on the last epoch's test accuracy (or the one given).
    assert NEAR_CHANCE_MARGIN == 0.05
    assert training_flags(history([2.3, 1.0], accuracy=0.15), 10) == ["near_chance"]
    assert training_flags(history([2.3, 1.0], accuracy=0.16), 10) == []
    assert training_flags(history([2.3, 1.0], accuracy=0.02), 10) == ["near_chance"]  # below chance too
    assert training_flags(history([0.7, 0.3], accuracy=0.55), 2) == ["near_chance"]
    assert training_flags(history([0.7, 0.3], accuracy=0.9), 2, test_accuracy=0.5) == ["near_chance"]
    assert training_flags(history([2.3, 1.0], accuracy=0.1), None) == []  # class count unknown: not checked
    # loss_rose: the last epoch above the first; a dip in between is fine.
    assert training_flags(history([1.0, 0.5, 1.01]), 10) == ["loss_rose"]
    assert training_flags(history([1.0, 3.0, 0.99]), 10) == []
    # loss_jumped: one epoch more than LOSS_JUMP_FACTOR times the one before, even when it ends lower.
    assert LOSS_JUMP_FACTOR == 10.0
    assert training_flags(history([1.0, 0.01, 0.2, 0.05]), 10) == ["loss_jumped"]
    assert training_flags(history([1.0, 0.01, 0.1, 0.05]), 10) == []  # exactly 10x is no jump
    # nan_stop: a non-finite loss (NaN is stored as null in a history).
    assert training_flags(history([1.0, None]), 10) == ["nan_stop"]
    assert training_flags(history([1.0, float("inf")]), 10) == ["nan_stop"]
    # Several at once, in FLAG_NAMES's order; an empty history raises none.
    assert training_flags(history([2.3, 40.0], accuracy=0.1), 10) == ["near_chance", "loss_rose", "loss_jumped"]
    assert training_flags([], 10) == []


@pytest.mark.backend_independent
def test_a_record_keeps_its_flags_and_an_old_one_gets_them_from_its_history():
    old = {"history": history([1.0, 2.0], accuracy=0.5), "model_card": {"num_classes": 2},
           "test_accuracy_last": 0.5}
    assert record_flags(old) == ["near_chance", "loss_rose"]
    assert record_flags(dict(old, flags=[])) == []  # the record's own flags win
    no_card = {"history": history([1.0, 0.5], accuracy=0.1), "test_accuracy_last": 0.1}
    assert record_flags(no_card) == [] and record_flags(no_card, {"data": {"dataset": "digits"}}) == ["near_chance"]


def bad_run(tmp_path, rng):
    """A synthetic runs folder written before flags existed, with one collapsed student and one rising teacher."""
    records = synthetic_records(rng)
    for record in records:
        for row in record["history"]:
            row["loss"] = 1.0 / row["epoch"]
    collapsed = next(r for r in records if r["role"] == "student" and r["recipe"] == "kd"
                     and r["teacher_augmentation"] == "mixup" and r["seed"] == 1)
    collapsed["history"][-1]["test_accuracy"] = collapsed["test_accuracy_last"] = 0.1
    rising = next(r for r in records if r["role"] == "teacher" and r["teacher_augmentation"] == "none"
                  and r["seed"] == 2)
    rising["history"][-1]["loss"] = 1.5  # above the first epoch (1.0), under 10x the epoch before (0.2)
    run = str(tmp_path / "old")
    write_run(run, records, rng)
    return run, records, collapsed, rising


@pytest.mark.backend_independent
def test_the_report_marks_flagged_cells_and_says_what_its_means_include(tmp_path, rng):
    run, records, collapsed, rising = bad_run(tmp_path, rng)
    config, loaded, _ = load_results(run)  # results.json without "flags": computed from the histories
    flags = {r["key"]: r["flags"] for r in loaded}
    assert flags[collapsed["key"]] == ["near_chance"] and flags[rising["key"]] == ["loss_rose"]
    assert sum(bool(f) for f in flags.values()) == 2
    lines = []
    written = write_report(run, print_fn=lines.append)
    assert any(line.startswith("⚑ 2 of 27 cells flagged (training went wrong: near_chance 1, loss_rose 1)")
               for line in lines), lines
    # The means include the flagged cells, whose entries are marked with their count.
    header, rows = pair_table(loaded, "big", "small", "test_accuracy_last", config, mark_flags=True)
    mixup = next(row for row in rows if row[0] == "mixup")
    students = [r["test_accuracy_last"] for r in loaded if r["role"] == "student" and r["recipe"] == "kd"
                and r["teacher_augmentation"] == "mixup"]
    assert mixup[header.index("small · kd")] == f"{np.mean(students) * 100:.2f} ± " \
        f"{np.std(students, ddof=1) * 100:.2f} ⚑1"
    assert mixup[header.index("small · kd_T1")].count("⚑") == 0
    assert "⚑1" in main_table(loaded, config)
    text = open(written["report"]).read()
    assert "**Every mean includes all 27 finished cells, flagged ones too**" in text
    section = text.split("## Cells whose training went wrong")[1].split("\n## ")[0]
    assert f"`{collapsed['key']}` | student | near_chance | 10.00 |" in section
    assert f"`{rising['key']}` | teacher | loss_rose |" in section
    # ... and the same table without them: the mean of the two unflagged seeds.
    without = section.split("without the flagged cells (25 of 27 cells)")[1]
    kept = [s for s in students if s != 0.1]
    assert f"| {np.mean(kept) * 100:.2f} ± {np.std(kept, ddof=1) * 100:.2f} |" in without
    assert "| flagged |" in text  # the long table counts them per group


@pytest.mark.backend_independent
def test_a_run_without_flagged_cells_says_so(tmp_path, rng):
    run = str(tmp_path / "clean")
    write_run(run, synthetic_records(rng), rng)
    lines = []
    text = open(write_report(run, print_fn=lines.append)["report"]).read()
    assert "none raised; every mean includes all 27 finished cells" in text
    assert "## Cells whose training went wrong" not in text and "⚑" not in text.split("## Every setting")[0]
    assert lines[-1] == ("No cell flagged (checks: near_chance, loss_rose, loss_jumped, nan_stop); means include "
                         "all 27 finished cells.")


def test_every_cell_of_a_study_records_its_flags(tiny_study):
    run_dir, records, _ = tiny_study
    for record in records:
        expected = training_flags(record["history"], 10, record["test_accuracy_last"])
        assert record["flags"] == expected, record["key"]
        stored = json.load(open(os.path.join(run_dir, "cells", record["key"] + ".json")))
        assert stored["flags"] == expected
    rows = (run_dir / "results.csv").read_text().splitlines()
    assert rows[0].split(",")[-1] == "flags"
    assert {row.split(",")[-1] for row in rows[1:]} == {"+".join(r["flags"]) for r in records}
    assert "- **Flags** (training that went wrong):" in (run_dir / "report.md").read_text()
