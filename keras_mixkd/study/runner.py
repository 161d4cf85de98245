"""`run_study`: every cell of a study's grid, resumably, then the tables and the report."""

import os
import time

import numpy as np

from keras_mixkd.distribute import training_scope
from keras_mixkd.study import atomic
from keras_mixkd.study.config import check_names
from keras_mixkd.study.grid import enumerate_cells
from keras_mixkd.study.groups import grouping_problem
from keras_mixkd.study.groups import plan_groups
from keras_mixkd.study.run_folder import RunFolder
from keras_mixkd.study.teacher_cache import teacher_cache_path


def run_study(config, *, runs_dir="runs", name=None, only=None, verbose="auto", report=True, print_fn=print,
              devices=None, precision="float32", tensorboard=False, executor="in_process", address=None,
              workers=None, cpus_per_cell=1.0, gpus_per_cell=None, max_retries=3, threads=None,
              group_students=True):
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
        verbose: `fit`'s verbosity (Keras's progress bar per epoch by default).
            Cells run by Ray write one line per epoch to their log file instead.
        report: write report.md and the plots at the end.
        print_fn: where progress lines go.
        devices: train each cell data-parallel on these devices (see
            `keras_mixkd.distribute.data_parallel`; `None` or 1: one device).
        precision: dtype policy of each cell's models (`"float32"`,
            `"mixed_float16"`, `"mixed_bfloat16"`).
        tensorboard: also write TensorBoard logs per cell, in
            `logs/<cell>/tensorboard` (every cell writes `logs/<cell>/history.csv`).
        executor: `"in_process"` (default: one cell after the other, in this
            process) or `"ray"` (each cell a Ray task; see
            `keras_mixkd.study.executors.RayExecutor`).
        address, workers, cpus_per_cell, gpus_per_cell, max_retries: options
            of the Ray executor: the cluster to join (`None`: start Ray here
            with `workers` cells at once), the resources of one cell
            (`gpus_per_cell=None`: 1 where the cluster has GPUs, else 0), and
            how often a cell whose worker process died is run again.
        threads: math threads of each cell (None: in-process, the backend's
            default, every core; Ray, `cpus_per_cell`). On a CPU they change
            the round-off and so the numbers: the same `threads` under both
            executors gives the same results (see `executors.threads`).
        group_students: train the student cells that share a teacher and an
            input stream (same student model, seed and augmentations; e.g.
            KD at T = 4, KD at T = 1 and standardised KD) together, the
            teacher running once per batch for all of them
            (`keras_mixkd.study.groups`). Each cell's result is the one it
            gets alone, up to float round-off. In-process executor only, and
            not with `mixed_float16`, several `devices` or `tensorboard`
            (there every cell runs alone); False: every cell alone.

    Returns:
        The list of finished cell records (teachers, students and the
        student-alone baselines).

    Example:

    >>> from keras_mixkd.study import load_recipe, run_study
    >>> records = run_study(load_recipe("digits"))
    >>> records = run_study(load_recipe("digits"), executor="ray", workers=2)
    """
    import keras

    from keras_mixkd.study import training
    from keras_mixkd.study.executors import get_executor
    from keras_mixkd.study.progress import StudyProgress

    # Bad executor options are refused before anything is loaded or written.
    runner = get_executor(executor, address=address, workers=workers, cpus_per_cell=cpus_per_cell,
                          gpus_per_cell=gpus_per_cell, max_retries=max_retries, threads=threads)
    check_names(config)
    # Data first: a missing data set must not leave a runs folder behind.
    splits = training.prepare_data(config["data"])
    folder = RunFolder(os.path.join(runs_dir, name or config["name"]))
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
    group = bool(group_students) and grouping_problem(
        precision=precision, devices=devices, tensorboard=tensorboard, executor=runner.name) is None
    if group:
        planned = [item for item in plan_groups(pending, config, folder=folder) if len(item) > 1]
        if planned:
            print_fn(f"{sum(len(item) for item in planned)} student cells in {len(planned)} groups sharing a "
                     "teacher pass (group_students=False / --no-group: each alone)")
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
        runner.run(pending, config=config, splits=splits, folder=folder, on_done=on_done, verbose=verbose,
                   devices=devices, precision=precision, tensorboard=tensorboard, group_students=group)
    finally:
        progress.close()
    records = folder.write_results()
    if report:
        from keras_mixkd.analysis import write_report

        write_report(folder.path, print_fn=print_fn)
    print_fn(f"study {config['name']!r}: {len(cells)} cells in {folder.path} ({time.time() - start:.0f} s this run)")
    return records


def execute_cell(cell, config, splits, *, teacher_path, work_dir, verbose="auto", devices=None,
                 precision="float32", log_dir=None, tensorboard=False):
    """Run one cell of a study (any kind) and return its `CellResult`; writes only in `work_dir`.

    This is the unit every executor runs, in this process or in a Ray worker.

    Arguments:
        cell: a `keras_mixkd.study.Cell`.
        config: the study config.
        splits: the study's `DatasetSplits` (`keras_mixkd.study.prepare_data`).
        teacher_path: function of a teacher cell's key giving its `.keras` file.
        work_dir: the cell's backup and history folder (a rerun continues there).
        verbose, devices, precision: as in `run_study`.
        log_dir: the cell's `CSVLogger` (and TensorBoard) folder; None: none.
        tensorboard: also write TensorBoard logs in `log_dir/tensorboard`.
    """
    import keras

    from keras_mixkd.study.executors.cell_result import CellResult

    keras.backend.clear_session()
    os.makedirs(work_dir, exist_ok=True)
    recipes = {recipe["name"]: recipe for recipe in config["distillation"]}
    # Entered after each clear_session, which forgets the strategy and the dtype policy.
    with training_scope(devices=devices, precision=precision):
        model, record, features = _run_cell(
            cell, config, splits, teacher_path, recipes, work_dir, config["measure"],
            config["data"]["batch_size"], verbose, log_dir=log_dir, tensorboard=tensorboard)
    record.update(teacher_model=cell.teacher_model, teacher_augmentation=cell.teacher_augmentation,
                  backend=keras.backend.backend())
    return CellResult(record=record, features=features, model=model)


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


def _run_cell(cell, config, splits, teacher_path, recipes, work_dir, measure, batch_size, verbose, log_dir=None,
              tensorboard=False):
    """Trains one teacher or distils one student; returns `(model, record, features)`.

    `teacher_path(key)` is the `.keras` file of the teacher cell `key`.
    """
    from keras_mixkd.study import training
    from keras_mixkd.study.config import study_data_format

    logs = {"log_dir": log_dir, "tensorboard": tensorboard, "data_format": study_data_format(config)}
    if cell.kind == "alone":  # the student-alone baseline: no teacher, nothing to wait for
        model, record, features = training.train_student_alone(
            splits, cell.student_model, seed=cell.seed, epochs=config["student"]["epochs"],
            optimizer=config["student"]["optimizer"], batch_size=batch_size,
            student_augmentation=config["student"]["augmentation"],
            augmentation_options=config["student"]["augmentation_options"], measure=measure,
            work_dir=work_dir, verbose=verbose, backup_interval=config["backup_interval_seconds"], **logs)
    elif cell.kind == "teacher":
        model, record, features = training.train_teacher(
            splits, cell.teacher_model, cell.teacher_augmentation, seed=cell.seed,
            epochs=config["teacher"]["epochs"], optimizer=config["teacher"]["optimizer"],
            batch_size=batch_size, augmentation_options=config["teacher"]["augmentation_options"],
            measure=measure, work_dir=work_dir, verbose=verbose,
            backup_interval=config["backup_interval_seconds"], **logs)
    else:
        teacher_file = teacher_path(cell.teacher_key)
        teacher = load_teacher(teacher_file, splits.num_classes)
        # The teacher's logits of the training split, beside its file, shared by its students.
        cache = teacher_cache_path(teacher_file) if config.get("teacher_cache", True) else False
        distiller, record, features = training.distill_student(
            splits, teacher, cell.student_model, recipes[cell.recipe], seed=cell.seed,
            epochs=config["student"]["epochs"], optimizer=config["student"]["optimizer"],
            batch_size=batch_size, student_augmentation=config["student"]["augmentation"],
            augmentation_options=config["student"]["augmentation_options"], measure=measure,
            work_dir=work_dir, verbose=verbose,
            backup_interval=config["backup_interval_seconds"], teacher_cache=cache, **logs)
        model = distiller.student
    return model, record, features


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


def load_teacher(path, num_classes):
    """Load a saved teacher and check it predicts `num_classes` classes (see `keras_mixkd.saving.load_model`)."""
    from keras_mixkd.saving import load_model

    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Teacher file {path} is missing although its cell is recorded as finished. "
            "Delete the matching file in cells/ to train that teacher again."
        )
    return load_model(path, num_classes=num_classes, what="teacher")


def save_features(path, features, labels, max_examples, seed=0):
    """Keep a seeded subsample of test features and labels for the projection plots."""
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(labels))[:max_examples])
    with atomic.atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, features=np.asarray(features)[keep].astype("float32"),
                            labels=np.asarray(labels)[keep])
