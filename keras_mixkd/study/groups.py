"""Student cells that share a teacher and an input stream, trained together by one `fit`.

Recipes that distil the same student model from the same teacher cell with
the same seed, student augmentation, recipe augmentation (and its options),
`teacher_sees` and `teacher_outputs` see exactly the same batches: they differ
only in their loss (e.g. study B's KD at T = 4, KD at T = 1 and standardised
KD). `run_study` (in-process executor, `group_students=True`, the default)
runs each such group as one `keras_mixkd.distill.SharedTeacherDistiller`
fit: each batch runs the teacher once and updates every student of the group.

Each student is built as its own cell builds it (`keras.utils.set_random_seed
(seed)` then the student), the data pipeline is the cell's (same seed, same
augmentation), and each student has its own loss, recorder, history, CSV log,
record and saved model: every cell's result equals that of the cell run alone,
up to float round-off. Resumable: the group's backup (every student's weights
and the shared optimizer state) lives in `work/group__<hash of its cells>/`,
each cell's history in its own `work/<key>/`; a killed group continues from
its backup. Finished cells are never rerun: a group is made of pending cells
only, so it shrinks when some of its cells are finished.

Recipes with a feature loss group among themselves only (their projector is
initialised from the seeded random state before the augmentation draws its
seeds from it, so, alone, they see other batches than logit-only recipes).
Not grouped (trained alone as before): teachers and baselines, a cell that
has a backup of its own (it continues alone), and every cell under
`mixed_float16` precision (its loss-scale optimizer couples the students),
data-parallel devices, TensorBoard logs, or the Ray executor.

Example:

>>> from keras_mixkd.study import enumerate_cells, load_recipe
>>> config = load_recipe("digits")
>>> pending = list(enumerate(enumerate_cells(config), 1))
>>> [len(item) for item in plan_groups(pending, config)][:3]
[1, 1, 3]
"""

import hashlib
import json
import os
import shutil

GROUP_PREFIX = "group__"


def grouping_problem(*, precision="float32", devices=None, tensorboard=False, executor="in_process"):
    """Why a study's students cannot be grouped with these run options, or None."""
    if executor != "in_process":
        return f"the {executor} executor runs each cell as its own task"
    if precision == "mixed_float16":
        return "mixed_float16's loss-scale optimizer would skip every student's step when one overflows"
    if devices not in (None, 1):
        return "data-parallel training is run per cell"
    if tensorboard:
        return "TensorBoard logs are written per cell"
    return None


def group_identity(cell, config):
    """What a student cell's input stream depends on, or None when the cell is never grouped.

    Two cells with the same identity distil the same student model from the
    same teacher with the same seed and see the same batches.

    Example:

    >>> config = load_recipe("digits")
    >>> kd_t1, standardized = (Cell("student", "digits_cnn", "mixup", 0, "digits_cnn_small", name)
    ...                        for name in ("kd_T1", "standardized"))
    >>> group_identity(kd_t1, config) == group_identity(standardized, config)
    True
    """
    if cell.kind != "student":
        return None
    recipe = next(r for r in config["distillation"] if r["name"] == cell.recipe)
    # A feature loss's projector is initialised, when its Distiller is built, from the seeded
    # random state the augmentation's seeds are then drawn from: such recipes leave another
    # state than logit-only ones, and so (alone) see other batches; they group among themselves.
    feature = recipe.get("feature_layer", "features") if recipe.get("feature_loss_weight", 0.0) > 0 else None
    stream = {
        "feature_layer": feature,
        "student_augmentation": list(config["student"]["augmentation"]),
        "student_augmentation_options": config["student"]["augmentation_options"],
        "augmentation": list(recipe["augmentation"]),
        "augmentation_options": recipe["augmentation_options"],
        "teacher_sees": recipe["teacher_sees"],
        "teacher_outputs": recipe.get("teacher_outputs", "logits"),
    }
    return (cell.teacher_key, cell.student_model, cell.seed, json.dumps(stream, sort_keys=True, default=str))


def plan_groups(pending, config, *, folder=None):
    """The pending cells as work items: lists of `(index, cell)`, one or several cells each.

    A list of several cells is a group (same `group_identity`), placed where
    its first cell is in the grid (after its teacher, which precedes all its
    students). A cell that has a backup of its own in `folder` (an interrupted
    run of it alone) is left alone, so it continues from that backup.

    Arguments:
        pending: `[(index, cell)]` in grid order (finished cells left out).
        config: the study config.
        folder: the `RunFolder`, or None (no backups are looked for).
    """
    items, by_identity = [], {}
    for index, cell in pending:
        identity = group_identity(cell, config)
        if identity is not None and folder is not None and _has_own_backup(folder, cell.key):
            identity = None
        if identity is None:
            items.append([(index, cell)])
        elif identity in by_identity:
            by_identity[identity].append((index, cell))
        else:
            by_identity[identity] = [(index, cell)]
            items.append(by_identity[identity])
    return items


def _has_own_backup(folder, key):
    return os.path.exists(os.path.join(folder.work_dir(key), "backup", "training_metadata.json"))


def group_work_dir(folder, cells):
    """`work/group__<hash>/` of the run folder: the backup of a group, named by its cells' keys."""
    digest = hashlib.sha1("\n".join(sorted(cell.key for cell in cells)).encode()).hexdigest()[:16]
    return os.path.join(folder.path, "work", GROUP_PREFIX + digest)


def remove_stale_group_dirs(folder):
    """Delete the backups of groups that cannot continue: one of their cells is finished.

    Such a group is planned again, smaller (its pending cells only), under
    another name; its students start again from their first epoch.
    """
    work = os.path.join(folder.path, "work")
    if not os.path.isdir(work):
        return
    for name in os.listdir(work):
        path = os.path.join(work, name)
        if not name.startswith(GROUP_PREFIX) or not os.path.isdir(path):
            continue
        members = os.path.join(path, "group.json")
        try:
            with open(members, encoding="utf-8") as f:
                keys = json.load(f)["cells"]
        except (OSError, ValueError, KeyError):
            keys = None  # written before its backup: nothing to continue
        if keys is None or any(folder.is_done(key) for key in keys):
            shutil.rmtree(path, ignore_errors=True)


def execute_group(cells, config, splits, *, teacher_path, work_dir, work_dirs, verbose="auto", log_dirs=None,
                  precision="float32"):
    """Run a group of student cells (one teacher, one input stream) as one fit.

    The group analogue of `keras_mixkd.study.execute_cell`.

    Arguments:
        cells: the group's student cells (`plan_groups`).
        config, splits, teacher_path, verbose: as for `execute_cell`.
        work_dir: the group's folder (`group_work_dir`): its backup.
        work_dirs: each cell's folder (its history), in the order of `cells`.
        log_dirs: each cell's `CSVLogger` folder, or None.
        precision: `"float32"` or `"mixed_bfloat16"` (see `grouping_problem`).

    Returns:
        A `CellResult` per cell, in the order of `cells`.
    """
    import keras

    from keras_mixkd.distribute import training_scope
    from keras_mixkd.study import atomic
    from keras_mixkd.study.executors.cell_result import CellResult
    from keras_mixkd.study.config import study_data_format
    from keras_mixkd.study.runner import load_teacher
    from keras_mixkd.study.teacher_cache import teacher_cache_path

    first = cells[0]
    identities = {group_identity(cell, config) for cell in cells}
    if len(identities) != 1 or None in identities:
        raise ValueError(f"Cells {[cell.key for cell in cells]} do not share a teacher and an input stream.")
    keras.backend.clear_session()
    os.makedirs(work_dir, exist_ok=True)
    atomic.write_json(os.path.join(work_dir, "group.json"), {"cells": [cell.key for cell in cells]})
    recipes = {recipe["name"]: recipe for recipe in config["distillation"]}
    student_config = config["student"]
    # Entered after clear_session, which forgets the dtype policy.
    with training_scope(precision=precision):
        teacher_file = teacher_path(first.teacher_key)
        teacher = load_teacher(teacher_file, splits.num_classes)
        cache = teacher_cache_path(teacher_file) if config.get("teacher_cache", True) else False
        outcomes = distill_students(
            splits, teacher, first.student_model, [recipes[cell.recipe] for cell in cells], seed=first.seed,
            epochs=student_config["epochs"], optimizer=student_config["optimizer"],
            batch_size=config["data"]["batch_size"], student_augmentation=student_config["augmentation"],
            augmentation_options=student_config["augmentation_options"], measure=config["measure"],
            work_dir=work_dir, work_dirs=work_dirs, verbose=verbose,
            backup_interval=config["backup_interval_seconds"], log_dirs=log_dirs, teacher_cache=cache,
            data_format=study_data_format(config))
    results = []
    for cell, (student, record, features) in zip(cells, outcomes):
        record.update(teacher_model=cell.teacher_model, teacher_augmentation=cell.teacher_augmentation,
                      backend=keras.backend.backend(), group=[other.key for other in cells])
        results.append(CellResult(record=record, features=features, model=student))
    return results


def distill_students(splits, teacher, student_model_name, recipes, *, seed, epochs, optimizer, batch_size=64,
                     student_augmentation=("none",), augmentation_options=None, measure=None, work_dir,
                     work_dirs, verbose="auto", backup_interval=0.0, log_dirs=None, teacher_cache=False,
                     data_format=None):
    """Distil one student per recipe from one teacher, the teacher running once per batch.

    What `keras_mixkd.study.distill_student` does for each recipe, in one
    `SharedTeacherDistiller` fit: each student is built right after
    `keras.utils.set_random_seed(seed)` (the weights it gets alone), the
    batches are those of its own run (the recipes must share their
    augmentation, `teacher_sees` and `teacher_outputs`), and each gets its own
    loss, per-epoch history (`work_dirs[i]/history.json`), record and
    features. The group is backed up in `work_dir/backup`: rerunning with the
    same folders continues after the last backed-up epoch.

    Arguments:
        splits, teacher, student_model_name, seed, epochs, optimizer,
        batch_size, student_augmentation, augmentation_options, measure,
        verbose, backup_interval: as for `distill_student` (one optimizer
            configuration for every student).
        recipes: `[[distillation]]` tables of a study config, one per student.
        work_dir: folder of the group's backup.
        work_dirs: one folder per recipe for its history.
        log_dirs: optional folders, one per recipe, for its `history.csv`.
        teacher_cache: as for `distill_student`: False, True or a cache file;
            used where every recipe's teacher sees each image as loaded, and
            then the teacher does not run at all during the fit.
        data_format: layout inside every student (as for `distill_student`).

    Returns:
        A list of `(student, record, features)`, one per recipe.

    Example:

    >>> outcomes = distill_students(splits, teacher, "digits_cnn_small", [kd_t4, kd_t1, standardized],
    ...     seed=0, epochs=5, optimizer=config["student"]["optimizer"], work_dir="g",
    ...     work_dirs=["a", "b", "c"])
    >>> student, record, features = outcomes[0]
    """
    import random
    import time

    import keras
    import numpy as np

    from keras_mixkd import Distiller
    from keras_mixkd.data import make_dataset
    from keras_mixkd.distill import SharedTeacherDistiller
    from keras_mixkd.study import training
    from keras_mixkd.study.teacher_cache import cached_teacher_logits
    from keras_mixkd.study.teacher_cache import teacher_input_is_fixed

    if not recipes:
        raise ValueError("distill_students needs at least one recipe; got none.")
    work_dirs = list(work_dirs)
    log_dirs = list(log_dirs) if log_dirs is not None else [None] * len(recipes)
    if len(work_dirs) != len(recipes) or len(log_dirs) != len(recipes):
        raise ValueError(
            f"distill_students needs one work dir and one log dir per recipe: {len(recipes)} recipes, "
            f"{len(work_dirs)} work dirs, {len(log_dirs)} log dirs.")
    streams = {(tuple(r["augmentation"]), json.dumps(r["augmentation_options"], sort_keys=True, default=str),
                r["teacher_sees"], r.get("teacher_outputs", "logits")) for r in recipes}
    if len(streams) > 1:
        raise ValueError(
            "The recipes of one group must share their input stream (augmentation, its options, teacher_sees, "
            f"teacher_outputs); got {[r.get('name', '') for r in recipes]} with {len(streams)} different ones.")
    measure = measure or training._default_measure()
    training.check_teacher_classes(teacher, splits.num_classes)
    epochs = training.check_epochs(epochs)
    start = time.time()
    teacher = training.distillation_teacher(teacher, splits)
    names = [f"s{i}" for i in range(len(recipes))]
    distillers, states = {}, []
    for name, recipe in zip(names, recipes):
        # Each student exactly as its cell builds it alone.
        keras.utils.set_random_seed(seed)
        student = training.build_distilled_student(student_model_name, recipe, splits, data_format=data_format)
        distillers[name] = Distiller(teacher, student, **training.distiller_arguments(recipe))
        states.append((random.getstate(), np.random.get_state()[1].tobytes()))
    if any(state != states[0] for state in states):
        # The augmentation's seeds are drawn from this state: alone, each cell would see other batches.
        raise ValueError(
            f"The students of recipes {[r.get('name', '') for r in recipes]} leave different random states "
            "once built, so alone they would draw different augmentation seeds: they cannot share one input "
            "stream. Run the study with group_students=False (--no-group).")
    augmentation_names, aug = training.build_distillation_augmentation(
        student_augmentation, augmentation_options, recipes[0], splits.num_classes)
    cached = None
    if teacher_cache is not False and teacher_cache is not None and all(
            teacher_input_is_fixed(recipe, augmentation_names) for recipe in recipes):
        cached = cached_teacher_logits(teacher, splits.x_train, None if teacher_cache is True else teacher_cache,
                                       teacher_outputs=recipes[0].get("teacher_outputs", "logits"))
    train_ds = make_dataset(splits.x_train, splits.y_train, batch_size=batch_size, shuffle=True, seed=seed,
                            normalization=None, augmentation=aug, num_classes=splits.num_classes,
                            teacher_sees=recipes[0]["teacher_sees"], teacher_logits=cached)
    steps = int(np.ceil(len(splits.y_train) / batch_size))
    group = SharedTeacherDistiller(teacher, distillers)
    group.compile(optimizer=training.build_optimizer(optimizer, student_model_name, steps))
    students = group.students
    # Build the group (a subclassed model) so a backup can be restored into it.
    group(training.model_inputs(students[names[0]], splits, "test")[0][:2])
    recorders = _fit_group(group, names, splits, train_ds, epochs=epochs, work_dir=work_dir, work_dirs=work_dirs,
                           log_dirs=log_dirs, measure=measure, verbose=verbose, batch_size=batch_size,
                           backup_interval=backup_interval)
    seconds = (time.time() - start) / len(recipes)  # each cell's share of the group's time
    outcomes = []
    for name, recipe, recorder in zip(names, recipes, recorders):
        student = students[name]
        measures = training.measure_model(student, splits, batch_size=max(batch_size, 256), teacher=teacher,
                                          ece_bins=measure["ece_bins"], runner=recorder.runner,
                                          teacher_runner=recorder.teacher_runner)
        record = training.distilled_record(student, teacher, student_model_name, recipe, augmentation_names,
                                           seed=seed, epochs=epochs, history=recorder.history, measures=measures,
                                           seconds=seconds, splits=splits, teacher_cache=cached is not None)
        outcomes.append((student, record, measures["features"]))
    return outcomes


def _fit_group(group, names, splits, train_ds, *, epochs, work_dir, work_dirs, log_dirs, measure, verbose,
               batch_size, backup_interval):
    """The group's `fit` with a recorder and CSV log per student; returns the recorders."""
    import keras

    from keras_mixkd._checks import NonFiniteLossError
    from keras_mixkd._checks import diverged_message
    from keras_mixkd.study import fixed_cost
    from keras_mixkd.study import training
    from keras_mixkd.study.backup import ResumableBackup
    from keras_mixkd.study.student_callbacks import StudentCallbacks
    from keras_mixkd.study.student_recorder import StudentRecorder

    backup = ResumableBackup(os.path.join(work_dir, "backup"), min_interval=backup_interval)
    recorders, members = [], []
    for name, student_dir, log_dir in zip(names, work_dirs, log_dirs):
        os.makedirs(student_dir, exist_ok=True)
        history_path = os.path.join(student_dir, "history.json")
        if backup.resume_epoch == 0 and os.path.exists(history_path):
            # Left by a larger group that cannot continue: this one starts at epoch 1, and so do
            # the cell's history and CSV log (which `_log_callbacks` then starts anew).
            os.remove(history_path)
        student = group.students[name]
        validation = training.model_inputs(student, splits, "val") if len(splits.y_val) else None
        recorder = StudentRecorder(name, history_path, validation,
                                    training.model_inputs(student, splits, "test"), cd_every=measure["every"],
                                    max_cd_examples=measure["max_examples"], chunk_size=max(batch_size, 256),
                                    measure_split=measure.get("split", "val"))
        recorders.append(recorder)
        keys = ["loss"] + list(group.distillers[name]._trackers())
        members.append(StudentCallbacks(name, keys, [recorder] + training._log_callbacks(student_dir, log_dir,
                                                                                           False)))
    stop_on_nan = keras.callbacks.TerminateOnNaN(raise_error=True)
    fixed_cost.prebuild_for_fit(group, train_ds)  # TensorFlow: one trace of the group's step, not two
    try:
        # shuffle=False: the tf.data pipeline shuffles, seeded, itself.
        group.fit(train_ds, epochs=epochs, initial_epoch=backup.resume_epoch, verbose=verbose, shuffle=False,
                  callbacks=[stop_on_nan, *members, backup])
    except RuntimeError as error:
        if "NaN or Inf loss" not in str(error):
            raise
        history = recorders[0].history
        epoch = (history[-1]["epoch"] if history else 0) + 1
        raise NonFiniteLossError(diverged_message(epoch)) from None
    return recorders
