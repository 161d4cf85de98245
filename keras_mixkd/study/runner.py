"""`run_study`: every cell of a study's grid, resumably, then the tables and the report."""

import dataclasses
import os
import time

import keras
import numpy as np

from keras_mixkd.distribute import check_batch_size
from keras_mixkd.study import atomic
from keras_mixkd.study.cell_execution import execute_cell  # noqa: F401  (re-exported)
from keras_mixkd.study.cell_execution import execute_cells  # noqa: F401  (re-exported)
from keras_mixkd.study.cell_execution import load_teacher  # noqa: F401  (re-exported)
from keras_mixkd.study.check import check_augmentation_sizes
from keras_mixkd.study.check import check_calibration_split
from keras_mixkd.study.config import check_names
from keras_mixkd.study.data_prep import prepare_data
from keras_mixkd.study.executors import get_executor
from keras_mixkd.study.grid import enumerate_cells
from keras_mixkd.study.groups import grouping_problem
from keras_mixkd.study.groups import plan_groups
from keras_mixkd.study.progress import StudyProgress
from keras_mixkd.study.run_folder import RunFolder
from keras_mixkd.study.run_folder import run_folder_path
from keras_mixkd.study.run_options import RunOptions


def run_study(config, *, runs_dir="runs", name=None, only=None, report=True, print_fn=print, options=None,
              executor="in_process", **keywords):
    """Run (or continue) a study and write its results, report and plots.

    Finished cells are skipped; a cell that was interrupted continues from
    its last backup; each cell's result is written once, atomically, by this
    process only (whichever executor trains the cells), so killing it at any
    moment loses at most the training since each running cell's last backup.

    It prints one line per finished cell (its result and time) and the
    overall progress: cells done / total, elapsed time and ETA (a bar on a
    terminal, plain lines elsewhere; see `keras_mixkd.study.StudyProgress`).

    Arguments:
        config: a study config from `keras_mixkd.study.load_recipe`.
        runs_dir: parent folder of runs.
        name: the run's folder name (default: the config's `name`).
        only: optional `{field: [values]}` restricting the grid, fields being
            those of `keras_mixkd.study.Cell` (e.g. `{"teacher_augmentation":
            ["mixup"]}`); the teachers the chosen students need are kept.
        report: write report.md and the plots at the end.
        print_fn: where progress lines go.
        options: a `keras_mixkd.study.RunOptions`: `fit`'s verbosity,
            data-parallel `devices`, `precision`, `tensorboard` logs,
            `group_students` (train the student cells that share a teacher
            and an input stream as one `Distiller` of several students, the
            teacher running once per batch; in-process executor only, and
            not with `mixed_float16`, several `devices` or `tensorboard`) and
            `fixed_cost_cuts`. None: the defaults.
        executor: `"in_process"` (default: one cell after the other, in this
            process), `"ray"` (each cell a Ray task; see
            `keras_mixkd.study.executors.RayExecutor`), or an `Executor`.
        **keywords: the executor's own options, checked by it (Ray:
            `address`, `workers`, `cpus_per_cell`, `gpus_per_cell`,
            `max_retries`; both: `threads`, the math threads of each cell,
            which on a CPU change the round-off: the same `threads` under both
            executors gives the same results). The former keywords `verbose`,
            `devices`, `precision`, `tensorboard` and `group_students` are
            accepted with a `DeprecationWarning` (use `options`).

    Returns:
        The list of finished cell records (teachers, students and the
        student-alone baselines).

    Example:

    >>> from keras_mixkd.study import RunOptions, load_recipe, run_study
    >>> records = run_study(load_recipe("digits"), options=RunOptions(verbose=0))
    >>> records = run_study(load_recipe("digits"), executor="ray", workers=2)
    """
    options = RunOptions.from_keywords(options, keywords, "run_study")
    # Bad executor options are refused before anything is loaded or written.
    if isinstance(executor, str):
        runner = get_executor(executor, **keywords)
    elif keywords:
        raise TypeError(f"run_study(): options {sorted(keywords)} belong to the executor; give them to "
                        "get_executor(...) when passing an Executor.")
    else:
        runner = executor
    path = run_folder_path(runs_dir, name or config["name"])
    check_batch_size(config["data"]["batch_size"], options.devices or 1, where="The batch size (data.batch_size)")
    check_names(config)
    # Data first: a missing data set must not leave a runs folder behind.
    splits = prepare_data(config["data"])
    check_augmentation_sizes(config, splits.input_shape[:2])  # an .npz file's size is known only now
    check_calibration_split(config, splits)
    folder = RunFolder(path)
    folder.open(config)
    cells = select_cells(enumerate_cells(config), only)
    pending = [(index, cell) for index, cell in enumerate(cells, 1) if not folder.is_done(cell.key)]
    done = len(cells) - len(pending)
    backend = keras.backend.backend()
    print_fn(
        f"study {config['name']!r} in {folder.path} · backend {backend} · {len(cells)} cells"
        + (f" · {done} already finished" if done else "")
        + ("" if runner.name == "in_process" else f" · executor {runner.describe()}")
    )
    group = options.group_students and grouping_problem(
        precision=options.precision, devices=options.devices, tensorboard=options.tensorboard,
        executor=runner.name) is None
    if group:
        planned = [item for item in plan_groups(pending, config, folder=folder) if len(item) > 1]
        if planned:
            print_fn(f"{sum(len(item) for item in planned)} student cells in {len(planned)} groups sharing a "
                     "teacher pass (group_students=False / --no-group: each alone)")
    options = dataclasses.replace(options, group_students=group)
    first_seed = config["seeds"][0]
    start = time.time()
    progress = StudyProgress(len(cells), done=done, print_fn=None if print_fn is print else print_fn)

    def on_done(index, cell, result):
        card = result.record.get("model_card") or {}
        if card.get("distilled_from") is not None:  # Name the teacher as the grid knows it.
            card["distilled_from"].update(teacher=cell.teacher_key, teacher_model=cell.teacher_model,
                                          teacher_augmentation=cell.teacher_augmentation)
        # The one writer of the run folder: every executor hands its results here.
        write_cell_result(folder, cell, result, splits, config["measure"], backend, first_seed)
        progress.cell_done(index, cell, result.record)

    try:
        runner.run(pending, config=config, splits=splits, folder=folder, on_done=on_done, options=options)
    finally:
        progress.close()
    records = folder.write_results()
    if report:
        from keras_mixkd.analysis import write_report

        write_report(folder.path, print_fn=print_fn)
    print_fn(f"study {config['name']!r}: {len(cells)} cells in {folder.path} ({time.time() - start:.0f} s this run)")
    return records


def write_cell_result(folder, cell, result, splits, measure, backend, first_seed):
    """Store a finished cell in the run folder: model, features, log, then its record (last)."""
    if result.record.get("backend", backend) != backend:
        raise ValueError(
            f"Cell {cell.key} was trained with the {result.record['backend']} backend, this study runs "
            f"on {backend}: every worker must use the driver's backend."
        )
    with atomic.atomic_path(folder.model_path(cell.key)) as tmp:
        if result.model_bytes is not None:
            with open(tmp, "wb") as f:
                f.write(result.model_bytes)
        else:
            result.model.save(tmp)
    if cell.seed == first_seed:
        save_features(folder.features_path(cell.key), result.features, splits.y_test,
                      measure["projection_examples"], seed=cell.seed)
    if result.log is not None:
        atomic.write_text(log_path(folder, cell.key), result.log)
    for relative, data in (result.log_files or {}).items():
        # history.csv and TensorBoard events a Ray worker wrote on its node: logs/<key>/ here.
        target = os.path.join(folder.path, "logs", cell.key, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with atomic.atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
    folder.write_cell(cell.key, result.record)
    folder.write_results()


def log_path(folder, key):
    """Where a cell's worker output is kept: `logs/<key>.log` of the run folder."""
    return os.path.join(folder.path, "logs", f"{key}.log")


def select_cells(cells, only):
    """The cells matching `only` (`{field: values}`), with the teachers and baselines they need.

    A chosen student brings its teacher (it needs it) and the student-alone
    baseline of its student model and seed (its KD gain is measured against
    it), unless `kind` is given without "alone". Alone cells are chosen
    directly by `kind=alone`, `recipe=alone`, `seed` or `student_model`.
    """
    if not only:
        return list(cells)
    for field in only:
        if field not in ("kind", "teacher_model", "teacher_augmentation", "seed", "student_model", "recipe"):
            raise ValueError(
                f"Unknown grid field {field!r} in --only; known: kind, teacher_model, "
                "teacher_augmentation, seed, student_model, recipe."
            )
    wanted = {field: {str(v) for v in values} for field, values in only.items()}

    def matches(cell):
        return all(str(getattr(cell, field)) in values for field, values in wanted.items())

    chosen = [cell for cell in cells if matches(cell)]
    needed = {cell.teacher_key for cell in chosen if cell.kind == "student"}
    needed |= {(cell.student_model, cell.seed) for cell in chosen if cell.kind == "student"}

    baselines_wanted = "kind" not in wanted or "alone" in wanted["kind"]

    def comes_along(cell):
        if cell.kind == "teacher":
            return cell.key in needed
        return cell.kind == "alone" and baselines_wanted and (cell.student_model, cell.seed) in needed

    return [cell for cell in cells if matches(cell) or comes_along(cell)]


def save_features(path, features, labels, max_examples, seed=0):
    """Keep a seeded subsample of test features and labels for the projection plots."""
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(labels))[:max_examples])
    with atomic.atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, features=np.asarray(features)[keep].astype("float32"),
                            labels=np.asarray(labels)[keep])
