"""The study's progress: one line per finished cell, done / total, elapsed, ETA; no ANSI or CR off a terminal."""

import io
import re

import pytest

from keras_mixkd import cli
from keras_mixkd.study import Cell
from keras_mixkd.study import progress as progress_module
from keras_mixkd.study.progress import StudyProgress

pytestmark = pytest.mark.backend_independent  # tables, plots, progress lines: nothing Keras computes

CONTROL = re.compile(r"\x1b|\r")
RECORD = {"test_accuracy_last": 0.5, "test_accuracy_best": 0.625, "last_epoch": 3, "best_epoch": 2,
          "class_discrimination_last": 0.1234, "seconds": 4.25}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_plain_lines_count_elapsed_and_eta(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    lines = []
    progress = StudyProgress(5, done=1, print_fn=lines.append)
    assert not progress.uses_bar
    assert progress.eta() is None and progress.progress_line().endswith("ETA ?")
    teacher = Cell("teacher", "digits_cnn", "mixup", 0)
    clock.now += 30.0
    progress.cell_done(2, teacher, RECORD)
    clock.now += 10.0
    progress.cell_done(3, Cell("student", "digits_cnn", "mixup", 0, "digits_cnn_small", "kd"), RECORD)
    progress.close()
    assert lines[0] == (
        "cell 2/5 · teacher=mixup · seed 0 · train teacher digits_cnn · test accuracy 50.00 % (last epoch 3), "
        "62.50 % (best-val epoch 2) · CD 0.1234 · 4.2 s")
    # The cell finished before this run is counted, not timed: 30 s for 1 cell, 3 cells left.
    assert lines[1] == "progress 2/5 cells · elapsed 00:30 · ETA 01:30"
    assert lines[2].startswith("cell 3/5 · teacher=mixup · seed 0 · distil kd: digits_cnn -> digits_cnn_small")
    # 40 s for 2 cells of this run, 2 left: 20 s each.
    assert lines[3] == "progress 3/5 cells · elapsed 00:40 · ETA 00:40"
    assert len(lines) == 4 and not any(CONTROL.search(line) for line in lines)


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Pipe(io.StringIO):
    def isatty(self):
        return False


def test_a_terminal_gets_a_bar_and_anything_else_plain_lines(capsys):
    terminal = Terminal()
    progress = StudyProgress(2, stream=terminal)
    assert progress.uses_bar
    progress.cell_done(1, Cell("teacher", "digits_cnn", "none", 0), RECORD)
    progress.close()
    assert "cell 1/2 · teacher=none" in terminal.getvalue() and "1/2 cells" in terminal.getvalue()
    assert "\r" in terminal.getvalue()  # the bar redraws itself, on a terminal only
    assert capsys.readouterr().out == ""

    pipe = Pipe()
    progress = StudyProgress(2, stream=pipe)
    assert not progress.uses_bar
    progress.cell_done(1, Cell("teacher", "digits_cnn", "none", 0), RECORD)
    progress.close()
    out = capsys.readouterr().out
    assert pipe.getvalue() == "" and not CONTROL.search(out)
    assert out.splitlines()[1].startswith("progress 1/2 cells · elapsed ")


@pytest.mark.parametrize("kwargs, message", [
    ({"total": -1}, "`total` must be an int >= 0"),
    ({"total": 2.0}, "`total` must be an int >= 0"),
    ({"total": 2, "done": 3}, "`done` must be an int between 0 and total=2; got 3"),
])
def test_bad_counts_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        StudyProgress(**kwargs)


def test_study_command_output_off_a_terminal_has_no_ansi_or_carriage_return(capsys, tmp_path):
    argv = ["study", "--smoke", "--teacher-epochs", "1", "--set", 'teacher.augmentations=["none"]',
            "--set", "data.train_examples=48", "--set", "data.test_examples=32", "--only", "kind=teacher",
            "--no-report", "--verbose", "0", "--runs-dir", str(tmp_path), "--name", "plain"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert not CONTROL.search(out), repr(out)
    lines = out.splitlines()
    # Notes (the milestone scaling of a --smoke run) may come before the header; the cell line follows the header.
    header = next(i for i, line in enumerate(lines) if line.startswith("study 'digits' in "))
    assert lines[header + 1].startswith("cell 1/1 · teacher=none · seed 0 · train teacher digits_cnn · test accuracy")
    assert lines[header + 2].startswith("progress 1/1 cells · elapsed ") and lines[header + 2].endswith("ETA 00:00")


def test_bad_executor_options_are_refused_before_anything_runs(capsys, tmp_path):
    base = ["study", "--smoke", "--runs-dir", str(tmp_path), "--name", "bad"]
    cases = [
        (["--executor", "in_process", "--workers", "2"], "workers=2 is an option of the ray executor"),
        (["--executor", "ray", "--workers", "0"], "workers must be an int >= 1 (cells run at once); got 0"),
        (["--executor", "ray", "--cpus-per-cell", "0"], "cpus_per_cell must be a number > 0; got 0.0"),
        (["--executor", "ray", "--gpus-per-cell", "-1"], "gpus_per_cell must be a number >= 0"),
        (["--executor", "ray", "--workers", "2", "--address", "auto"], "Give one of the two"),
    ]
    for extra, message in cases:
        assert cli.main(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()
    from keras_mixkd.study.executors import get_executor

    with pytest.raises(ValueError, match="Unknown executor 'dask'; choose one of in_process, ray"):
        get_executor("dask")
