"""Train a teacher or a baseline, or distil one or several students from a saved teacher.

These are what the study runner calls for its cells and what `keras-mixkd
train-teacher` / `distill` call for one model. Each returns the trained
model(s) with a record: the last-epoch and best-validation-epoch numbers, the
measures on the test split, and the per-epoch history. A cell that distils
one student is a group of one: `distill_student` and `distill_students` are
the same path.

What a model trains with is a `TrainingSettings` (from the study spec), how
it runs a `RunOptions`; the helpers these build on live in `data_prep`,
`model_building`, `measuring`, `fit` and `records`, and are re-exported here.
"""

import dataclasses
import json
import random
import time

import keras
import numpy as np

from keras_mixkd import Distiller
from keras_mixkd.augment import mixing_implementation
from keras_mixkd.data import make_dataset
from keras_mixkd.distribute import check_batch_size
from keras_mixkd.study.config import ALONE
from keras_mixkd.study.cell_folders import CellFolders
from keras_mixkd.study.config import split_augmentation
from keras_mixkd.study.data_prep import check_split_sizes  # noqa: F401  (re-exported)
from keras_mixkd.study.data_prep import prepare_data  # noqa: F401  (re-exported)
from keras_mixkd.study.distillation_set import measure_teacher_stddev
from keras_mixkd.study.fit import FitMember
from keras_mixkd.study.fit import fit_and_record
from keras_mixkd.study.measuring import check_epochs
from keras_mixkd.study.measuring import check_teacher_classes
from keras_mixkd.study.measuring import measure_model
from keras_mixkd.study.measuring import model_inputs
from keras_mixkd.study.measuring import normalized  # noqa: F401  (re-exported)
from keras_mixkd.study.measuring import summarize_history  # noqa: F401  (re-exported)
from keras_mixkd.study.measuring import warn_expects_normalized_input  # noqa: F401  (re-exported)
from keras_mixkd.study.model_building import build_augmentation
from keras_mixkd.study.model_building import build_distillation_augmentation
from keras_mixkd.study.model_building import build_distilled_student
from keras_mixkd.study.model_building import build_model
from keras_mixkd.study.model_building import build_optimizer
from keras_mixkd.study.model_building import distillation_teacher
from keras_mixkd.study.model_building import distiller_arguments
from keras_mixkd.study.model_building import distiller_loss_arguments  # noqa: F401  (re-exported)
from keras_mixkd.study.records import TrainingOutcome
from keras_mixkd.study.records import distilled_record
from keras_mixkd.study.records import teacher_record
from keras_mixkd.study.run_options import RunOptions
from keras_mixkd.study.teacher_cache import cached_teacher_logits
from keras_mixkd.study.teacher_cache import teacher_input_is_fixed
from keras_mixkd.study.training_settings import TrainingSettings


def train_teacher(splits, model_name, augmentation, *, seed, settings=None, work_dir, log_dir=None, options=None,
                  **deprecated):
    """Train one model on the labels with an augmentation recipe (a teacher), resumably.

    Arguments:
        splits: `DatasetSplits` of the data.
        model_name: a name of `keras_mixkd.models.list_models()`.
        augmentation: a recipe name, e.g. "mixup" or "standard+mixup".
        seed: seeds the weights and the data order.
        settings: a `TrainingSettings` (epochs, optimizer, batch size,
            augmentation options, measures, layout, backup interval).
        work_dir: folder for the backup and history of this run; rerunning
            with the same folder continues after the last finished epoch.
        log_dir: optional folder for `history.csv` (`keras.callbacks.CSVLogger`)
            and, with `options.tensorboard`, TensorBoard logs in `log_dir/tensorboard`.
        options: a `RunOptions` (verbosity, TensorBoard); None: the defaults.
        **deprecated: the former keywords (`epochs`, `optimizer`,
            `batch_size`, `augmentation_options`, `measure`, `data_format`,
            `backup_interval`, `verbose`, `tensorboard`), accepted with a
            `DeprecationWarning`.

    Returns:
        `(model, record, features)`: the trained `keras.Model`, a dict of
        results, and its penultimate features on the test split.

    Example:

    >>> splits = prepare_data(load_recipe("digits")["data"])
    >>> teacher, record, _ = train_teacher(splits, "digits_cnn", "mixup", seed=0, work_dir="t",
    ...                                    settings=TrainingSettings.from_config(config, "teacher"))
    """
    settings, options = _settings_and_options(settings, options, deprecated, "train_teacher")
    epochs = check_epochs(settings.epochs)
    start = time.time()
    keras.utils.set_random_seed(seed)
    # The model normalises inside: the pipeline gives it images as loaded.
    model = build_model(model_name, splits, data_format=settings.data_format)
    aug = build_augmentation([augmentation], settings.augmentation_options or {}, splits.num_classes)
    train_ds = make_dataset(splits.x_train, splits.y_train, batch_size=settings.batch_size, shuffle=True,
                            seed=seed, normalization=None, augmentation=aug, num_classes=splits.num_classes)
    steps = int(np.ceil(len(splits.y_train) / settings.batch_size))
    dense = len(train_ds.element_spec[1].shape) == 2
    loss = (keras.losses.CategoricalCrossentropy(from_logits=True) if dense
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.compile(optimizer=build_optimizer(settings.optimizer, model_name, steps), loss=loss,
                  metrics=["accuracy"])
    [recorder] = fit_and_record(model, [FitMember(model, work_dir, log_dir)], train_ds, splits,
                                dataclasses.replace(settings, epochs=epochs), work_dir, options)
    measures = measure_model(model, splits, batch_size=max(settings.batch_size, 256),
                             ece_bins=settings.measure["ece_bins"], runner=recorder.runner)
    outcome = TrainingOutcome(recorder.history, measures, time.time() - start, seed, epochs)
    record = teacher_record(model, model_name, augmentation, outcome, splits, mixing_implementation(aug))
    return model, record, measures["features"]


def train_student_alone(splits, model_name, *, seed, settings=None, work_dir, log_dir=None, options=None,
                        **deprecated):
    """Train one student model without a teacher: the student-alone baseline, resumably.

    Cross-entropy on the labels (dense after a mixing augmentation), with the
    student's augmentation (`settings.augmentation`), optimizer and schedule:
    what a distilled student of the same study gets, minus the teacher. The
    KD gain of a distillation recipe is the distilled student's accuracy
    minus this one's, paired by seed.

    Arguments:
        splits, seed, settings, work_dir, log_dir, options: as for `train_teacher`
            (`settings` the student's).
        model_name: a name of `keras_mixkd.models.list_models()`.
        **deprecated: the former keywords (those of `train_teacher`, and
            `student_augmentation`), with a `DeprecationWarning`.

    Returns:
        `(model, record, features)`; the record's `role` is "alone" and its
        `recipe` "alone".

    Example:

    >>> model, record, _ = train_student_alone(splits, "digits_cnn_small", seed=0, work_dir="a",
    ...                                        settings=TrainingSettings.from_config(config, "student"))
    >>> record["role"], record["recipe"]
    ('alone', 'alone')
    """
    settings, options = _settings_and_options(settings, options, deprecated, "train_student_alone")
    names = [name for name in settings.augmentation if split_augmentation(name)]
    augmentation = "+".join(names) or "none"
    model, record, features = train_teacher(splits, model_name, augmentation, seed=seed, settings=settings,
                                            work_dir=work_dir, log_dir=log_dir, options=options)
    record.update(role=ALONE, teacher_model="", teacher_augmentation="", student_model=model_name, recipe=ALONE,
                  loss="cross_entropy", distillation_augmentation=augmentation)
    # The card of what a deployer exports: a student (trained on labels alone: it names no teacher).
    record["model_card"] = {**record["model_card"], "role": "student"}
    return model, record, features


def distill_student(splits, teacher, student_model_name, recipe, *, seed, settings=None, work_dir, log_dir=None,
                    options=None, teacher_cache=False, **deprecated):
    """Distil one student from a frozen teacher with a distillation recipe, resumably.

    `distill_students` with one recipe: the same path, with a `Distiller` of
    one student.

    Arguments:
        splits: `DatasetSplits` of the data.
        teacher: the trained teacher (`keras.Model`, logits).
        student_model_name: a name of `keras_mixkd.models.list_models()`.
        recipe: a `[[distillation]]` table of a study config: `loss`,
            `temperature`, `student_loss_weight`, `augmentation` (mixing at
            distillation time), `augmentation_options`, `teacher_sees`, and
            optionally `teacher_outputs` ("logits", the default, or "probabilities").
        seed: seeds the student's weights and the data order.
        settings: the student's `TrainingSettings` (its `augmentation` is
            applied before the recipe's own; study B distils with "standard").
        work_dir: folder for the backup and history; rerunning continues.
        log_dir, options: as for `train_teacher`.
        teacher_cache: False (the teacher runs on every batch), True (its
            logits of the training split are computed once, in memory) or the
            path of a cache file shared by the students of this teacher (see
            `keras_mixkd.study.teacher_cache`). Used only where the teacher's
            input is a fixed function of the example; the record's
            `teacher_cache` says whether it was.
        **deprecated: the former keywords (`epochs`, `optimizer`,
            `batch_size`, `student_augmentation`, `augmentation_options`,
            `measure`, `data_format`, `backup_interval`, `verbose`,
            `tensorboard`), with a `DeprecationWarning`.

    Returns:
        `(distiller, record, features)`.

    Example:

    >>> distiller, record, _ = distill_student(splits, teacher, "digits_cnn_small",
    ...     {"loss": "kd", "temperature": 1.0, "student_loss_weight": 0.1,
    ...      "augmentation": ["none"], "augmentation_options": {}, "teacher_sees": "same"},
    ...     seed=0, settings=TrainingSettings.from_config(config, "student"), work_dir="s")
    """
    settings, options = _settings_and_options(settings, options, deprecated, "distill_student")
    distiller, outcomes = _distill(splits, teacher, student_model_name, [recipe], seed, settings,
                                   CellFolders.of_one(work_dir, log_dir), options, teacher_cache)
    _, record, features = outcomes[0]
    return distiller, record, features


def distill_students(splits, teacher, student_model_name, recipes, *, seed, settings=None, folders=None,
                     options=None, teacher_cache=False, **deprecated):
    """Distil one student per recipe from one teacher, the teacher running once per batch.

    Each student is built right after `keras.utils.set_random_seed(seed)`
    (the weights it gets alone), the batches are those of its own run (the
    recipes must share their augmentation, its options, `teacher_sees` and
    `teacher_outputs`), and each gets its own loss, per-epoch history, record
    and features: each result is the one `distill_student` gives for its
    recipe, up to float round-off. Several recipes train as one `Distiller`
    of several students (one compiled step, one teacher pass per batch).

    Arguments:
        splits, teacher, student_model_name, seed, options, teacher_cache: as
            for `distill_student` (`teacher_cache` is used where every
            recipe's teacher sees each image as loaded).
        recipes: `[[distillation]]` tables of a study config, one per student.
        settings: the students' `TrainingSettings` (one optimizer
            configuration for every student).
        folders: `CellFolders`: the run's backup, and per recipe the
            folders of its history and CSV log.
        **deprecated: the former keywords (those of `distill_student`, and
            `work_dir`, `work_dirs`, `log_dirs` for `folders`), with a
            `DeprecationWarning`.

    Returns:
        A list of `(student, record, features)`, one per recipe.

    Example:

    >>> outcomes = distill_students(splits, teacher, "digits_cnn_small", [kd_t4, kd_t1, standardized],
    ...     seed=0, settings=TrainingSettings.from_config(config, "student"),
    ...     folders=CellFolders("g", ["a", "b", "c"]))
    >>> student, record, features = outcomes[0]
    """
    if "work_dirs" in deprecated or "work_dir" in deprecated:
        if folders is not None:
            raise TypeError("distill_students(): give folders=CellFolders(...) or work_dir/work_dirs, not both.")
        folders = CellFolders(deprecated.pop("work_dir", None), deprecated.pop("work_dirs", ()),
                                 deprecated.pop("log_dirs", None))
    settings, options = _settings_and_options(settings, options, deprecated, "distill_students")
    if folders is None:
        raise TypeError("distill_students() needs folders=CellFolders(backup_dir, work_dirs, log_dirs).")
    if not recipes:
        raise ValueError("distill_students needs at least one recipe; got none.")
    if len(folders.work_dirs) != len(recipes):
        raise ValueError(f"distill_students needs one work dir and one log dir per recipe: {len(recipes)} "
                         f"recipes, {len(folders.work_dirs)} work dirs, {len(folders.log_dirs)} log dirs.")
    return _distill(splits, teacher, student_model_name, list(recipes), seed, settings, folders, options,
                    teacher_cache)[1]


def _distill(splits, teacher, student_model_name, recipes, seed, settings, folders, options, teacher_cache):
    """`(distiller, [(student, record, features)])`: the one distillation path, for one or several recipes."""
    _check_one_stream(recipes)
    check_teacher_classes(teacher, splits.num_classes)
    epochs = check_epochs(settings.epochs)
    start = time.time()
    teacher = distillation_teacher(teacher, splits)
    students, states = [], []
    for recipe in recipes:
        # Each student exactly as it is built alone.
        keras.utils.set_random_seed(seed)
        student = build_distilled_student(student_model_name, recipe, splits, data_format=settings.data_format)
        students.append(Distiller(teacher, student, **distiller_arguments(recipe)))
        states.append((random.getstate(), np.random.get_state()[1].tobytes()))
    if any(state != states[0] for state in states):
        # The augmentation's seeds are drawn from this state: alone, each cell would see other batches.
        raise ValueError(
            f"The students of recipes {[r.get('name', '') for r in recipes]} leave different random states "
            "once built, so alone they would draw different augmentation seeds: they cannot share one input "
            "stream. Run the study with group_students=False (--no-group).")
    names, aug = build_distillation_augmentation(settings.augmentation, settings.augmentation_options,
                                                 recipes[0], splits.num_classes)
    cached = None
    # student_side_mixup mixes the teacher's logits of the clean images: they come from the cache, always.
    needs_cache = any("student_side_mixup" in split_augmentation(name) for name in names)
    if (needs_cache or teacher_cache is not False and teacher_cache is not None) and all(
            teacher_input_is_fixed(recipe, names) for recipe in recipes):
        # The teacher sees each image as loaded: its logits, once, instead of every batch.
        cached = cached_teacher_logits(teacher, splits.x_train, None if teacher_cache in (True, False, None)
                                       else teacher_cache,
                                       teacher_outputs=recipes[0].get("teacher_outputs", "logits"))
    train_ds = make_dataset(splits.x_train, splits.y_train, batch_size=settings.batch_size, shuffle=True,
                            seed=seed, normalization=None, augmentation=aug, num_classes=splits.num_classes,
                            teacher_sees=recipes[0]["teacher_sees"], teacher_logits=cached)
    if len(students) == 1:
        distiller = students[0]
        members = [FitMember(distiller.student, folders.work_dirs[0], folders.log_dirs[0])]
    else:
        keys = [f"s{i}" for i in range(len(students))]
        distiller = Distiller(teacher, students=dict(zip(keys, students)))
        members = [FitMember(member.student, work_dir, log_dir, key) for key, member, work_dir, log_dir
                   in zip(keys, students, folders.work_dirs, folders.log_dirs)]
    steps = int(np.ceil(len(splits.y_train) / settings.batch_size))
    distiller.compile(optimizer=build_optimizer(settings.optimizer, student_model_name, steps))
    # Build the distiller (a subclassed model) so a backup can be restored into it.
    distiller(model_inputs(members[0].model, splits, "test")[0][:2])
    recorders = fit_and_record(distiller, members, train_ds, splits, dataclasses.replace(settings, epochs=epochs),
                               folders.backup_dir, options)
    seconds = (time.time() - start) / len(recipes)  # each cell's share of the group's time
    outcomes = []
    for member, recipe, recorder in zip(members, recipes, recorders):
        measures = measure_model(member.model, splits, batch_size=max(settings.batch_size, 256), teacher=teacher,
                                 ece_bins=settings.measure["ece_bins"], runner=recorder.runner,
                                 teacher_runner=recorder.teacher_runner)
        outcome = TrainingOutcome(recorder.history, measures, seconds, seed, epochs)
        record = distilled_record(member.model, teacher, student_model_name, recipe, names, outcome, splits,
                                  teacher_cache=cached is not None)
        record["mixing_implementation"] = mixing_implementation(aug)
        outcomes.append((member.model, record, measures["features"]))
    stddev = _teacher_stddev(teacher, splits, settings, recipes[0], seed,
                             cached if recipes[0].get("teacher_outputs", "logits") == "logits" else None)
    for _, record, _ in outcomes:
        record["teacher_stddev"] = stddev
    return distiller, outcomes


def _teacher_stddev(teacher, splits, settings, recipe, seed, clean_logits):
    """T. stddev of the teacher on the group's distillation stream, after training (its draws change nothing).

    The augmentation is built again from `seed`, so the value is the same
    whichever cells trained before. `student_side_mixup` is measured on the
    images the student sees: a MixUp of its `alpha` and `mode`.
    """
    keras.utils.set_random_seed(seed)
    if any("student_side_mixup" in split_augmentation(name) for name in recipe["augmentation"]):
        options = recipe["augmentation_options"].get("student_side_mixup", {})
        recipe = {**recipe, "augmentation": ["mixup"], "augmentation_options": {
            **recipe["augmentation_options"], "mixup": {
                key: options[key] for key in ("alpha", "mode") if key in options}}}
    _, aug = build_distillation_augmentation(settings.augmentation, settings.augmentation_options, recipe,
                                             splits.num_classes)
    return measure_teacher_stddev(teacher, splits, aug, batch_size=settings.batch_size, seed=seed,
                                  clean_logits=clean_logits)


def _check_one_stream(recipes):
    streams = {(tuple(r["augmentation"]), json.dumps(r["augmentation_options"], sort_keys=True, default=str),
                r["teacher_sees"], r.get("teacher_outputs", "logits")) for r in recipes}
    if len(streams) > 1:
        raise ValueError(
            "The recipes of one group must share their input stream (augmentation, its options, teacher_sees, "
            f"teacher_outputs); got {[r.get('name', '') for r in recipes]} with {len(streams)} different ones.")


def _settings_and_options(settings, options, deprecated, owner):
    """The `TrainingSettings` and `RunOptions` of a call, from the deprecated keywords where given."""
    options = RunOptions.from_keywords(options, deprecated, owner)
    settings = TrainingSettings.from_keywords(settings, deprecated, owner)
    if deprecated:
        raise TypeError(f"{owner}() got unexpected keyword argument(s): {', '.join(sorted(deprecated))}.")
    # Inside a data-parallel scope, every device gets an equal slice of each batch.
    check_batch_size(settings.batch_size, where="The batch size (data.batch_size)")
    return settings, options
