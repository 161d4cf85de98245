"""`run_study`: every cell of a study's grid, resumably, then the tables and the report."""

import os
import time

import numpy as np

from keras_mixkd.distribute import training_scope
from keras_mixkd.study import atomic
from keras_mixkd.study.config import check_names
from keras_mixkd.study.grid import enumerate_cells
from keras_mixkd.study.run_folder import RunFolder


def run_study(config, *, runs_dir="runs", name=None, only=None, verbose="auto", report=True, print_fn=print,
              devices=None, precision="float32"):
    """Run (or continue) a study and write its results, report and plots.

    Finished cells are skipped; a cell that was interrupted continues from
    its last finished epoch; each cell's result is written once, atomically,
    so killing the process at any moment loses at most the epoch in progress.

    Arguments:
        config: a study config from `keras_mixkd.study.load_recipe`.
        runs_dir: parent folder of runs.
        name: the run's folder name (default: the config's `name`).
        only: optional `{field: [values]}` restricting the grid, fields being
            those of `keras_mixkd.study.Cell` (e.g. `{"teacher_augmentation":
            ["mixup"]}`); the teachers the chosen students need are kept.
        verbose: `fit`'s verbosity (Keras's progress bar per epoch by default).
        report: write report.md and the plots at the end.
        print_fn: where progress lines go.
        devices: train each cell data-parallel on these devices (see
            `keras_mixkd.distribute.data_parallel`; `None` or 1: one device).
        precision: dtype policy of each cell's models (`"float32"`,
            `"mixed_float16"`, `"mixed_bfloat16"`).

    Returns:
        The list of finished cell records (teachers and students).

    Example:

    >>> from keras_mixkd.study import load_recipe, run_study
    >>> records = run_study(load_recipe("digits"))
    """
    import keras

    from keras_mixkd.study import training

    check_names(config)
    # Data first: a missing data set must not leave a runs folder behind.
    splits = training.prepare_data(config["data"])
    folder = RunFolder(os.path.join(runs_dir, name or config["name"]))
    folder.open(config)
    cells = select_cells(enumerate_cells(config), only)
    done = sum(folder.is_done(cell.key) for cell in cells)
    backend = keras.backend.backend()
    print_fn(
        f"study {config['name']!r} in {folder.path} · backend {backend} · {len(cells)} cells"
        + (f" · {done} already finished" if done else "")
    )
    batch_size = config["data"]["batch_size"]
    measure = config["measure"]
    recipes = {recipe["name"]: recipe for recipe in config["distillation"]}
    first_seed = config["seeds"][0]
    start = time.time()
    for index, cell in enumerate(cells, 1):
        if folder.is_done(cell.key):
            continue
        print_fn(f"cell {index}/{len(cells)} · {cell.describe()}")
        keras.backend.clear_session()
        work_dir = folder.work_dir(cell.key)
        os.makedirs(work_dir, exist_ok=True)
        # Entered after each clear_session, which forgets the strategy and the dtype policy.
        with training_scope(devices=devices, precision=precision):
            model, record, features = _run_cell(
                cell, config, splits, folder, recipes, work_dir, measure, batch_size, verbose)
        record.update(teacher_model=cell.teacher_model, teacher_augmentation=cell.teacher_augmentation,
                      backend=backend)
        card = record.get("model_card") or {}
        if card.get("distilled_from") is not None:  # Name the teacher as the grid knows it.
            card["distilled_from"].update(teacher=cell.teacher_key, teacher_model=cell.teacher_model,
                                          teacher_augmentation=cell.teacher_augmentation)
        with atomic.atomic_path(folder.model_path(cell.key)) as tmp:
            model.save(tmp)
        if cell.seed == first_seed:
            save_features(folder.features_path(cell.key), features, splits.y_test,
                          measure["projection_examples"], seed=cell.seed)
        folder.write_cell(cell.key, record)
        folder.write_results()
        print_fn(
            f"    test accuracy {100 * record['test_accuracy_last']:.2f} % (last epoch {record['last_epoch']}), "
            f"{100 * record['test_accuracy_best']:.2f} % (best-val epoch {record['best_epoch']}) · "
            f"CD {record['class_discrimination_last']:.4f} · {record['seconds']:.1f} s"
        )
    records = folder.write_results()
    if report:
        from keras_mixkd.analysis import write_report

        write_report(folder.path, print_fn=print_fn)
    print_fn(f"study {config['name']!r}: {len(cells)} cells in {folder.path} ({time.time() - start:.0f} s this run)")
    return records


def _run_cell(cell, config, splits, folder, recipes, work_dir, measure, batch_size, verbose):
    """Trains one teacher or distils one student; returns `(model, record, features)`."""
    from keras_mixkd.study import training

    if cell.kind == "teacher":
        model, record, features = training.train_teacher(
            splits, cell.teacher_model, cell.teacher_augmentation, seed=cell.seed,
            epochs=config["teacher"]["epochs"], optimizer=config["teacher"]["optimizer"],
            batch_size=batch_size, augmentation_options=config["teacher"]["augmentation_options"],
            measure=measure, work_dir=work_dir, verbose=verbose,
            backup_interval=config["backup_interval_seconds"])
    else:
        teacher = load_teacher(folder.model_path(cell.teacher_key), splits.num_classes)
        distiller, record, features = training.distill_student(
            splits, teacher, cell.student_model, recipes[cell.recipe], seed=cell.seed,
            epochs=config["student"]["epochs"], optimizer=config["student"]["optimizer"],
            batch_size=batch_size, student_augmentation=config["student"]["augmentation"],
            augmentation_options=config["student"]["augmentation_options"], measure=measure,
            work_dir=work_dir, verbose=verbose,
            backup_interval=config["backup_interval_seconds"])
        model = distiller.student
    return model, record, features


def select_cells(cells, only):
    """The cells matching `only` (`{field: values}`), with the teachers they need."""
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
    return [cell for cell in cells if matches(cell) or (cell.kind == "teacher" and cell.key in needed)]


def load_teacher(path, num_classes):
    """Load a saved teacher and check it predicts `num_classes` classes."""
    import keras

    from keras_mixkd.study.training import check_teacher_classes

    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Teacher file {path} is missing although its cell is recorded as finished. "
            "Delete the matching file in cells/ to train that teacher again."
        )
    try:
        teacher = keras.saving.load_model(path)
    except Exception as error:  # a corrupt or foreign file: say which file
        from keras_mixkd._checks import keras_file_problem

        raise ValueError(f"Cannot load the teacher {path}: {keras_file_problem(path) or error}") from error
    check_teacher_classes(teacher, num_classes, where=f"teacher {path}")
    return teacher


def save_features(path, features, labels, max_examples, seed=0):
    """Keep a seeded subsample of test features and labels for the projection plots."""
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(labels))[:max_examples])
    with atomic.atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, features=np.asarray(features)[keep].astype("float32"),
                            labels=np.asarray(labels)[keep])
