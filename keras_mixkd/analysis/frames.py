"""`results_frame` and `history_frame`: a finished runs folder as pandas DataFrames.

pandas is imported when one of them is called (`pip install pandas`); the rest
of keras-mixkd works without it.
"""

from keras_mixkd.analysis.report import load_results

# The columns that name a cell, first in both frames.
IDENTITY_COLUMNS = ("key", "role", "teacher_model", "teacher_augmentation", "student_model", "recipe", "seed")

# Record fields left out of the results frame: the history (`history_frame`) and the model card (a nested dict).
_NOT_SCALAR = ("history", "model_card")


def import_pandas():
    """`import pandas`, or an `ImportError` saying how to install it."""
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "keras_mixkd.analysis.results_frame and history_frame need pandas, which is not installed: "
            "pip install pandas (or pip install 'keras-mixkd[all]')."
        ) from None
    return pandas


def results_frame(run_dir):
    """A runs folder's finished cells as a `pandas.DataFrame`, one row per cell.

    The columns are the record fields of `results.json` (the numbers of the
    last and best-validation epochs, the settings, `teacher_*` and
    `kd_gain_last` joined in for students), `flags` (the list of
    `keras_mixkd.study.training_flags` names, computed from the history for
    runs made before flags existed), `flagged` (True when `flags` is not
    empty) and `num_classes` (from the model card). The per-epoch history
    is `history_frame`'s.

    Arguments:
        run_dir: a folder written by `run_study` (`runs/<name>`), finished or not.

    Returns:
        A `pandas.DataFrame` with columns `key`, `role`, `teacher_model`,
        `teacher_augmentation`, `student_model`, `recipe`, `seed` first.

    Example:

    >>> from keras_mixkd.analysis import results_frame
    >>> cells = results_frame("runs/digits")
    >>> students = cells[(cells.role == "student") & ~cells.flagged]
    >>> students.groupby(["teacher_augmentation", "recipe"]).kd_gain_last.agg(["mean", "std", "count"])
    """
    pandas = import_pandas()
    _, records, _ = load_results(run_dir)
    rows = []
    for record in records:
        row = {key: value for key, value in record.items() if key not in _NOT_SCALAR}
        row["flagged"] = bool(record.get("flags"))
        row["num_classes"] = (record.get("model_card") or {}).get("num_classes")
        rows.append(row)
    return _ordered(pandas.DataFrame(rows), IDENTITY_COLUMNS)


def history_frame(run_dir):
    """A runs folder's per-epoch histories as a `pandas.DataFrame`, one row per cell and epoch.

    The columns name the cell (`key`, `role`, `teacher_model`,
    `teacher_augmentation`, `student_model`, `recipe`, `seed`), then
    `epoch` (1-based) and every number the cell logged that epoch: the
    training loss and accuracy, `val_accuracy`, `test_accuracy`, the
    distillation losses, `val_class_discrimination` where measured (NaN
    where a cell did not log a number).

    Arguments:
        run_dir: a folder written by `run_study`.

    Returns:
        A `pandas.DataFrame`; join it to `results_frame(run_dir)` on `key`.

    Example:

    >>> from keras_mixkd.analysis import history_frame
    >>> epochs = history_frame("runs/digits")
    >>> epochs.pivot_table(index="epoch", columns="recipe", values="test_accuracy")
    """
    pandas = import_pandas()
    _, records, _ = load_results(run_dir)
    rows = []
    for record in records:
        identity = {column: record.get(column) for column in IDENTITY_COLUMNS}
        for epoch in record.get("history") or []:
            rows.append({**identity, **epoch})
    frame = pandas.DataFrame(rows, columns=None if rows else [*IDENTITY_COLUMNS, "epoch"])
    return _ordered(frame, (*IDENTITY_COLUMNS, "epoch"))


def _ordered(frame, first):
    columns = [c for c in first if c in frame.columns]
    return frame[columns + [c for c in frame.columns if c not in columns]]
