"""One cell of a study: train a teacher, or distil a student from a saved teacher.

These functions are what the study runner calls for each cell, and what
`keras-mixkd train-teacher` / `distill` call for one model. Each returns the
trained model and a record: the last-epoch and best-validation-epoch numbers,
the measures on the test split, and the per-epoch history.
"""

import os
import time

import keras
import numpy as np

from keras_mixkd._checks import NonFiniteLossError
from keras_mixkd._checks import diverged_message
from keras_mixkd.models import model_data_format
from keras_mixkd.study import atomic
from keras_mixkd.study import fixed_cost
from keras_mixkd.study.backup import ResumableBackup
from keras_mixkd.study.config import split_augmentation
from keras_mixkd.study.config import weight_decay_mode
from keras_mixkd.study.epoch_recorder import EpochRecorder
from keras_mixkd.study.epoch_recorder import features_and_logits
from keras_mixkd.study.epoch_recorder import run_in_chunks
from keras_mixkd.study.teacher_cache import cached_teacher_logits
from keras_mixkd.study.teacher_cache import teacher_input_is_fixed


def prepare_data(data_config):
    """Load the data set a study config names, cut to its smoke size if asked.

    Arguments:
        data_config: the `data` table of a study config.

    Returns:
        A `keras_mixkd.data.DatasetSplits`.
    """
    from keras_mixkd.data import load_dataset

    kwargs = {"validation_fraction": data_config["validation_fraction"], "seed": data_config["split_seed"]}
    if data_config["path"]:
        kwargs["path"] = data_config["path"]
    if data_config["image_size"]:
        kwargs["image_size"] = tuple(data_config["image_size"])
    splits = load_dataset(data_config["dataset"], **kwargs)
    splits = _shrink(splits, data_config)
    check_split_sizes(splits)
    return splits


def check_split_sizes(splits):
    """Refuse splits too small for the study's measures, with their counts, before any training.

    Accuracy, calibration and class-discrimination are measured on the test
    split (and the validation split, when it is not empty) every epoch: each
    needs at least 2 examples of at least 2 classes.
    """
    counts = {split: np.bincount(np.asarray(getattr(splits, f"y_{split}"), dtype=np.int64),
                                 minlength=splits.num_classes)
              for split in ("train", "val", "test")}
    for split in ("train", "val", "test"):
        total, classes = int(counts[split].sum()), int(np.count_nonzero(counts[split]))
        if split == "val" and total == 0:
            continue
        if total < 2 or classes < 2:
            sizes = "; ".join(f"{name} {int(c.sum())} examples of {np.count_nonzero(c)} classes"
                              for name, c in counts.items())
            raise ValueError(
                f"The {split} split of {splits.name!r} is too small for the measures: it holds {total} "
                f"examples of {classes} class(es), and needs at least 2 examples of 2 classes ({sizes}). "
                "Use more data, or raise data.train_examples / data.test_examples / "
                "data.validation_fraction."
            )


def _shrink(splits, data_config):
    import dataclasses

    changes = {}
    rng = np.random.default_rng(data_config["split_seed"])
    for split, limit in (("train", data_config["train_examples"]), ("test", data_config["test_examples"])):
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        if limit and limit < len(y):
            keep = np.sort(rng.permutation(len(y))[:limit])
            changes[f"x_{split}"], changes[f"y_{split}"] = x[keep], y[keep]
    size = data_config["image_size"]
    if size and tuple(splits.input_shape[:2]) != tuple(size):
        # A source that does not resize itself (digits at CIFAR size, for smoke runs).
        for split in ("train", "val", "test"):
            x = changes.get(f"x_{split}", getattr(splits, f"x_{split}"))
            resized = keras.ops.image.resize(x, tuple(size), interpolation="bilinear") if len(x) else np.zeros((0, *size, x.shape[-1]), "float32")
            changes[f"x_{split}"] = np.clip(keras.ops.convert_to_numpy(resized), 0.0, 1.0).astype("float32")
    return dataclasses.replace(splits, **changes) if changes else splits


def build_augmentation(names, options_by_name, num_classes):
    """The augmentation of a list of recipe names (None when there is none).

    `names` may hold combinations written "standard+mixup". Each part is built
    by `keras_mixkd.augment.get_augmentation` with its own options
    (`options_by_name[part]`, plus `num_classes` where the part takes it), and
    the parts are applied in order (`keras_mixkd.augment.Compose`).
    """
    from keras_mixkd.augment import Compose
    from keras_mixkd.augment import get_augmentation
    from keras_mixkd.augment import recipe_options

    parts = [part for name in names for part in split_augmentation(name)]
    if not parts:
        return None
    built = []
    for part in parts:
        options = dict(options_by_name.get(part, {}))
        if "num_classes" in recipe_options(part):
            options.setdefault("num_classes", num_classes)
        try:
            # An ImportError here is implementation="keras_cv" where KerasCV cannot be imported.
            built.append(get_augmentation(part, **options))
        except (TypeError, ValueError, ImportError) as error:
            raise ValueError(f"Augmentation {part!r} with options {options}: {error}") from error
    return built[0] if len(built) == 1 else Compose(built)


def build_optimizer(optimizer_config, model_name, steps_per_epoch):
    """SGD / Adam / AdamW with the step schedule and weight decay of a study config.

    The learning rate is multiplied by `decay` at each epoch of `milestones`,
    through `keras.optimizers.schedules.PiecewiseConstantDecay` (its step
    counter is part of the optimizer state, so a resumed run keeps its place
    in the schedule). Weight decay follows `weight_decay_mode` (see
    `config.weight_decay_mode`): sgd and adam are `keras_mixkd.optimizers.SGD`
    and `Adam`, which compute it as `torch.optim.SGD` / `Adam` do by default
    ("l2", added to the gradient), adamw is `keras.optimizers.AdamW`.
    """
    from keras_mixkd import optimizers

    rate = optimizer_config["model_learning_rates"].get(model_name.lower(), optimizer_config["learning_rate"])
    milestones = optimizer_config["milestones"]
    if milestones:
        boundaries = [int(m * steps_per_epoch) for m in milestones]
        values = [rate * optimizer_config["decay"] ** i for i in range(len(milestones) + 1)]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    decay = optimizer_config["weight_decay"] or None
    mode = weight_decay_mode(optimizer_config)
    name = optimizer_config["name"]
    if name == "sgd":
        return optimizers.SGD(rate, momentum=optimizer_config["momentum"], nesterov=optimizer_config["nesterov"],
                              weight_decay=decay, weight_decay_mode=mode)
    if name == "adam":
        return optimizers.Adam(rate, weight_decay=decay, weight_decay_mode=mode)
    return keras.optimizers.AdamW(rate, weight_decay=optimizer_config["weight_decay"])


def normalized(splits, split):
    """Images of a split normalised as the training pipeline does, and their labels."""
    x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
    if len(y) == 0:
        raise ValueError(
            f"The {split} split of {splits.name!r} is empty: a study needs test examples, and "
            "validation examples unless data.validation_fraction = 0 (raise "
            "data.validation_fraction or data.test_examples)."
        )
    mean, std = (np.asarray(v, dtype="float32") for v in splits.normalization)
    return ((x - mean) / std).astype("float32"), np.asarray(y)


def model_inputs(model, splits, split):
    """Images of a split as `model` expects them, and their labels.

    A model built by keras-mixkd (`keras_mixkd.models.with_preprocessing`)
    normalises inside: it gets the images as loaded, in [0, 1]. A model
    without that layer (a `.keras` file of an earlier keras-mixkd, a user's own
    model) gets them normalised with the data's statistics, and a warning
    says so once.
    """
    from keras_mixkd.models import input_normalization

    if input_normalization(model) is not None:
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        if len(y) == 0:
            normalized(splits, split)  # The same clear error.
        return np.asarray(x, dtype="float32"), np.asarray(y)
    warn_expects_normalized_input(model, splits.normalization)
    return normalized(splits, split)


def warn_expects_normalized_input(model, normalization=None, stacklevel=3):
    """Warns (once per process and model name) that `model` has no normalisation inside."""
    import warnings

    if model.name in _WARNED_NO_PREPROCESSING:
        return
    _WARNED_NO_PREPROCESSING.add(model.name)
    stats = ""
    if normalization is not None:
        mean, std = normalization
        stats = (f" It is fed images normalised with the data's statistics: mean "
                 f"{[round(float(v), 4) for v in np.ravel(mean)]}, std {[round(float(v), 4) for v in np.ravel(std)]}.")
    warnings.warn(
        f"Model {model.name!r} has no normalisation inside (saved by an earlier keras-mixkd, or built "
        f"without `with_preprocessing`): it expects normalised images, not images in [0, 1].{stats}",
        UserWarning, stacklevel=stacklevel)


_WARNED_NO_PREPROCESSING = set()


def build_model(model_name, splits, *, output_layer=None, data_format=None):
    """A zoo model that takes `splits`' images as loaded and normalises them inside.

    `get_model(model_name, ..., data_format=data_format)` behind the training
    split's normalisation (`keras_mixkd.models.with_preprocessing`),
    optionally ending in `output_layer`.
    """
    from keras_mixkd.models import get_model
    from keras_mixkd.models import with_preprocessing

    model = get_model(model_name, splits.num_classes, input_shape=splits.input_shape, data_format=data_format)
    return with_preprocessing(model, splits.normalization, output_layer=output_layer)


def measure_model(model, splits, *, batch_size=256, teacher=None, ece_bins=15, split="test", runner=None,
                  teacher_runner=None):
    """Accuracy, ECE, class-discrimination and smoothness of a model on a split.

    The model is fed the split's images as it expects them (`model_inputs`),
    and every probability-based measure is taken on its outputs: for a
    student trained with the standardised loss, which ends in
    `StandardizedLogits`, on the standardised logits it was trained to give.

    Arguments:
        model: a functional `keras.Model` producing logits.
        splits: the `DatasetSplits`.
        batch_size: examples per forward pass.
        teacher: optional teacher model; adds `teacher_agreement` (top-1).
        ece_bins: bins of the expected calibration error.
        split: "test", "val" or "train".
        runner, teacher_runner: `features_and_logits` of the model and of the
            teacher, if already built (each saves a compile).

    Returns:
        A dict of floats keyed by measure name ("accuracy",
        "expected_calibration_error", "class_discrimination", "mean_entropy",
        "logit_std", "teacher_agreement"), plus "features" (the penultimate
        features of the split, NumPy).
    """
    from keras_mixkd import metrics

    x, y = model_inputs(model, splits, split)
    features, logits = run_in_chunks(runner or features_and_logits(model), x, batch_size)
    out = {
        "accuracy": float(metrics.accuracy(logits, y)),
        "expected_calibration_error": float(metrics.expected_calibration_error(
            logits, y, num_bins=ece_bins, from_logits=True)),
        "class_discrimination": float(metrics.class_discrimination(features, y)),
        "mean_entropy": float(metrics.mean_entropy(logits, from_logits=True)),
        "logit_std": float(metrics.logit_std(logits)),
        "features": features,
    }
    if teacher is not None:
        teacher_x = x if _same_input_kind(teacher, model) else model_inputs(teacher, splits, split)[0]
        teacher_logits = run_in_chunks(teacher_runner or features_and_logits(teacher), teacher_x, batch_size)[1]
        out["teacher_agreement"] = float(np.mean(np.argmax(teacher_logits, 1) == np.argmax(logits, 1)))
    return out


def _same_input_kind(a, b):
    from keras_mixkd.models import input_normalization

    return (input_normalization(a) is None) == (input_normalization(b) is None)


def summarize_history(history):
    """Last-epoch and best-validation-epoch numbers of a per-epoch history.

    The best epoch is the first with the highest validation accuracy; the
    test split never takes part in the choice. A history without validation
    accuracy (trained on the whole training split, `validation_fraction = 0`)
    selects no epoch: the best-validation fields are None and only the last
    epoch is reported.
    """
    if not history:
        raise ValueError("The training history is empty: no epoch finished.")
    last = history[-1]
    scored = [row for row in history if row.get("val_accuracy") is not None]
    best = max(scored, key=lambda row: (row["val_accuracy"], -row["epoch"])) if scored else {}
    return {
        "last_epoch": last["epoch"],
        "val_accuracy_last": last.get("val_accuracy"),
        "test_accuracy_last": last["test_accuracy"],
        "best_epoch": best.get("epoch"),
        "val_accuracy_best": best.get("val_accuracy"),
        "test_accuracy_best": best.get("test_accuracy"),
    }


def check_teacher_classes(teacher, num_classes, where="teacher"):
    """Raise a clear error when a teacher's output width is not the data's class count."""
    width = teacher.output_shape[-1]
    if width != num_classes:
        raise ValueError(
            f"The {where} predicts {width} classes but the data has {num_classes}: "
            "it was trained on other data. Train a teacher on this data set, or pick "
            "the data set it was trained on."
        )


def _fit(model, splits, train_ds, *, epochs, work_dir, measure, verbose, batch_size, backup_interval,
         log_dir=None, tensorboard=False):
    """`fit` with the study's callbacks; returns the whole history (restarts included) and the recorder."""
    evaluated = model.student if hasattr(model, "student") and hasattr(model, "teacher") else model
    # No validation split (validation_fraction = 0): the recorder selects no epoch.
    validation = model_inputs(evaluated, splits, "val") if len(splits.y_val) else None
    recorder = EpochRecorder(os.path.join(work_dir, "history.json"), validation,
                             model_inputs(evaluated, splits, "test"), cd_every=measure["every"],
                             max_cd_examples=measure["max_examples"], chunk_size=max(batch_size, 256),
                             measure_split=measure.get("split", "val"))
    backup = ResumableBackup(os.path.join(work_dir, "backup"), min_interval=backup_interval)
    # Stop at the first NaN batch, before an epoch's end can back up NaN weights.
    stop_on_nan = keras.callbacks.TerminateOnNaN(raise_error=True)
    callbacks = [stop_on_nan, recorder, backup] + _log_callbacks(work_dir, log_dir, tensorboard)
    fixed_cost.prebuild_for_fit(model, train_ds)  # one trace of the train step, not two
    try:
        # shuffle=False: the tf.data pipeline shuffles, seeded, itself.
        model.fit(train_ds, epochs=epochs, verbose=verbose, shuffle=False, callbacks=callbacks)
    except RuntimeError as error:
        if "NaN or Inf loss" not in str(error):
            raise
        epoch = (recorder.history[-1]["epoch"] if recorder.history else 0) + 1
        raise NonFiniteLossError(diverged_message(epoch)) from None
    return recorder.history, recorder


def _log_callbacks(work_dir, log_dir, tensorboard):
    """`CSVLogger` (log_dir/history.csv) and, if asked, `TensorBoard` (log_dir/tensorboard).

    They come after the `EpochRecorder`, so the CSV and TensorBoard see the
    validation and test numbers it adds to each epoch's logs. A resumed run
    appends to the CSV; a run that starts again from epoch 1 starts a new one.
    """
    if log_dir is None:
        return []
    os.makedirs(log_dir, exist_ok=True)
    csv_path = os.path.join(log_dir, "history.csv")
    if not os.path.exists(os.path.join(work_dir, "history.json")) and os.path.exists(csv_path):
        os.remove(csv_path)  # rows of an earlier, abandoned start
    callbacks = [keras.callbacks.CSVLogger(csv_path, append=True)]
    if tensorboard:
        try:
            import tensorboard as _  # noqa: F401  keras.callbacks.TensorBoard writes through it
        except ImportError:
            raise ImportError("TensorBoard logs (tensorboard=True, --tensorboard) need the tensorboard "
                              "package: pip install tensorboard.") from None
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(log_dir, "tensorboard"), write_graph=False,
                                                     profile_batch=0))
    return callbacks


def check_epochs(epochs, flag="epochs"):
    """Raise a clear `ValueError` unless `epochs` is a whole number >= 1."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"{flag} must be a whole number of epochs >= 1, got {epochs!r}.")
    return int(epochs)


def train_teacher(splits, model_name, augmentation, *, seed, epochs, optimizer, batch_size=64,
                  augmentation_options=None, measure=None, work_dir, verbose="auto", backup_interval=0.0,
                  log_dir=None, tensorboard=False, data_format=None):
    """Train one teacher with an augmentation recipe, resumably.

    Arguments:
        splits: `DatasetSplits` of the data.
        model_name: a name of `keras_mixkd.models.list_models()`.
        augmentation: a recipe name, e.g. "mixup" or "standard+mixup".
        seed: seeds the weights and the data order.
        epochs: number of epochs.
        optimizer: an optimizer table of a study config (see
            `keras_mixkd.study.config`).
        batch_size: examples per step.
        augmentation_options: `{name: {option: value}}`.
        measure: the `measure` table of a study config.
        work_dir: folder for the backup and history of this run; rerunning
            with the same folder continues after the last finished epoch.
        verbose: passed to `fit`.
        backup_interval: least seconds between two backups (see `ResumableBackup`).
        log_dir: optional folder for `history.csv` (`keras.callbacks.CSVLogger`)
            and, with `tensorboard=True`, TensorBoard logs in `log_dir/tensorboard`.
        tensorboard: also write TensorBoard logs (needs `log_dir`).
        data_format: layout inside the model (`keras_mixkd.models.get_model`):
            None or "channels_last", "channels_first", or "auto" (the faster
            one of the backend). The record's `data_format` says which.

    Returns:
        `(model, record, features)`: the trained `keras.Model`, a dict of
        results, and its penultimate features on the test split.

    Example:

    >>> splits = prepare_data(load_recipe("digits")["data"])
    >>> teacher, record = train_teacher(splits, "digits_cnn", "mixup", seed=0, epochs=5,
    ...                                 optimizer=config["teacher"]["optimizer"], work_dir="t")
    """
    from keras_mixkd.augment import mixing_implementation
    from keras_mixkd.data import make_dataset
    from keras_mixkd.models.model_card import model_card

    measure = measure or _default_measure()
    epochs = check_epochs(epochs)
    start = time.time()
    keras.utils.set_random_seed(seed)
    # The model normalises inside: the pipeline gives it images as loaded.
    model = build_model(model_name, splits, data_format=data_format)
    aug = build_augmentation([augmentation], augmentation_options or {}, splits.num_classes)
    train_ds = make_dataset(splits.x_train, splits.y_train, batch_size=batch_size, shuffle=True, seed=seed,
                            normalization=None, augmentation=aug,
                            num_classes=splits.num_classes)
    steps = int(np.ceil(len(splits.y_train) / batch_size))
    dense = len(train_ds.element_spec[1].shape) == 2
    loss = (keras.losses.CategoricalCrossentropy(from_logits=True) if dense
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.compile(optimizer=build_optimizer(optimizer, model_name, steps), loss=loss, metrics=["accuracy"])
    history, recorder = _fit(model, splits, train_ds, epochs=epochs, work_dir=work_dir, measure=measure,
                   verbose=verbose, batch_size=batch_size, backup_interval=backup_interval,
                   log_dir=log_dir, tensorboard=tensorboard)
    measures = measure_model(model, splits, batch_size=max(batch_size, 256), ece_bins=measure["ece_bins"],
                             runner=recorder.runner)
    record = {
        "role": "teacher",
        "teacher_model": model_name,
        "teacher_augmentation": augmentation,
        "mixing_implementation": mixing_implementation(aug),
        "seed": seed,
        "epochs": epochs,
        **summarize_history(history),
        **_last_epoch_measures(measures),
        "parameters": int(model.count_params()),
        "data_format": model_data_format(model),
        "seconds": time.time() - start,
        "history": history,
        "model_card": model_card(model, splits=splits, role="teacher", trained={
            "augmentation": augmentation, "epochs": epochs, "seed": seed}),
    }
    return model, record, measures["features"]


def distill_student(splits, teacher, student_model_name, recipe, *, seed, epochs, optimizer, batch_size=64,
                    student_augmentation=("none",), augmentation_options=None, measure=None, work_dir,
                    verbose="auto", backup_interval=0.0, log_dir=None, tensorboard=False, teacher_cache=False,
                    data_format=None):
    """Distil one student from a frozen teacher with a distillation recipe, resumably.

    Arguments:
        splits: `DatasetSplits` of the data.
        teacher: the trained teacher (`keras.Model`, logits).
        student_model_name: a name of `keras_mixkd.models.list_models()`.
        recipe: a `[[distillation]]` table of a study config: `loss`,
            `temperature`, `student_loss_weight`, `augmentation` (mixing at
            distillation time), `augmentation_options`, `teacher_sees`, and
            optionally `teacher_outputs` ("logits", the default, or "probabilities").
        seed: seeds the student's weights and the data order.
        epochs: number of epochs.
        optimizer: an optimizer table of a study config.
        student_augmentation: recipe names applied before the recipe's own
            (study B distils with "standard").
        augmentation_options: `{name: {option: value}}` for `student_augmentation`.
        measure: the `measure` table of a study config.
        work_dir: folder for the backup and history; rerunning continues.
        verbose: passed to `fit`.
        backup_interval: least seconds between two backups (see `ResumableBackup`).
        log_dir: optional folder for `history.csv` (`keras.callbacks.CSVLogger`)
            and, with `tensorboard=True`, TensorBoard logs in `log_dir/tensorboard`.
        tensorboard: also write TensorBoard logs (needs `log_dir`).
        teacher_cache: False (the teacher runs on every batch), True (its
            logits of the training split are computed once, in memory) or the
            path of a cache file shared by the students of this teacher (see
            `keras_mixkd.study.teacher_cache`). Used only where the teacher's
            input is a fixed function of the example; the record's
            `teacher_cache` says whether it was.
        data_format: layout inside the student (as for `train_teacher`; the
            teacher keeps the one it was built with).

    Returns:
        `(distiller, record, features)`.

    Example:

    >>> distiller, record, _ = distill_student(splits, teacher, "digits_cnn_small",
    ...     {"loss": "kd", "temperature": 1.0, "student_loss_weight": 0.1,
    ...      "augmentation": ["none"], "augmentation_options": {}, "teacher_sees": "same"},
    ...     seed=0, epochs=5, optimizer=config["student"]["optimizer"], work_dir="s")
    """
    from keras_mixkd import Distiller
    from keras_mixkd.augment import mixing_implementation
    from keras_mixkd.data import make_dataset

    measure = measure or _default_measure()
    check_teacher_classes(teacher, splits.num_classes)
    epochs = check_epochs(epochs)
    start = time.time()
    teacher = distillation_teacher(teacher, splits)
    keras.utils.set_random_seed(seed)
    student = build_distilled_student(student_model_name, recipe, splits, data_format=data_format)
    distiller = Distiller(teacher, student, **distiller_arguments(recipe))
    names, aug = build_distillation_augmentation(student_augmentation, augmentation_options, recipe,
                                                 splits.num_classes)
    cached = None
    if teacher_cache is not False and teacher_cache is not None and teacher_input_is_fixed(recipe, names):
        # The teacher sees each image as loaded: its logits, once, instead of every batch.
        cached = cached_teacher_logits(teacher, splits.x_train, None if teacher_cache is True else teacher_cache,
                                       teacher_outputs=recipe.get("teacher_outputs", "logits"))
    train_ds = make_dataset(splits.x_train, splits.y_train, batch_size=batch_size, shuffle=True, seed=seed,
                            normalization=None, augmentation=aug,
                            num_classes=splits.num_classes, teacher_sees=recipe["teacher_sees"],
                            teacher_logits=cached)
    steps = int(np.ceil(len(splits.y_train) / batch_size))
    distiller.compile(optimizer=build_optimizer(optimizer, student_model_name, steps))
    # Build the distiller (a subclassed model) so a backup can be restored into it.
    distiller(model_inputs(student, splits, "test")[0][:2])
    history, recorder = _fit(distiller, splits, train_ds, epochs=epochs, work_dir=work_dir, measure=measure,
                   verbose=verbose, batch_size=batch_size, backup_interval=backup_interval,
                   log_dir=log_dir, tensorboard=tensorboard)
    measures = measure_model(student, splits, batch_size=max(batch_size, 256), teacher=teacher,
                             ece_bins=measure["ece_bins"], runner=recorder.runner,
                             teacher_runner=recorder.teacher_runner)
    record = distilled_record(student, teacher, student_model_name, recipe, names, seed=seed, epochs=epochs,
                              history=history, measures=measures, seconds=time.time() - start, splits=splits,
                              teacher_cache=cached is not None)
    record["mixing_implementation"] = mixing_implementation(aug)
    return distiller, record, measures["features"]


def distillation_teacher(teacher, splits):
    """`teacher`, given the data's normalisation inside when it has none (a teacher saved before models
    carried their normalisation), with a warning."""
    from keras_mixkd.models import input_normalization
    from keras_mixkd.models import with_preprocessing

    if input_normalization(teacher) is None:
        # The warning names the caller of `distill_student` (or of the group's function), as before.
        warn_expects_normalized_input(teacher, splits.normalization, stacklevel=4)
        teacher = with_preprocessing(teacher, splits.normalization)
    return teacher


def build_distilled_student(student_model_name, recipe, splits, data_format=None):
    """The student model a distillation recipe trains, built with the current random state.

    It normalises inside and, trained with the standardised loss, outputs the
    standardised logits it is trained on (measured and shipped so).
    `distill_student` calls it right after `keras.utils.set_random_seed(seed)`;
    a group of students sharing a teacher (`keras_mixkd.study.groups`) does
    the same for each of its students, so each starts from the weights it
    gets alone.
    """
    from keras_mixkd.distill import StandardizedLogits

    output_layer = None
    if recipe["loss"] == "standardized":
        output_layer = StandardizedLogits(ddof=recipe.get("std_ddof"))
    return build_model(student_model_name, splits, output_layer=output_layer, data_format=data_format)


def distiller_arguments(recipe):
    """Every `Distiller` keyword argument of a recipe but the teacher and the student."""
    return {"student_loss_weight": recipe["student_loss_weight"],
            "teacher_outputs": recipe.get("teacher_outputs", "logits"), **distiller_loss_arguments(recipe)}


def build_distillation_augmentation(student_augmentation, augmentation_options, recipe, num_classes):
    """`(names, augmentation)` of a distilled student: its own augmentation, then the recipe's.

    The recipe's `augmentation_options` override the student's. Built after
    the student (the augmentations that draw a seed draw it from the random
    state the student's construction left).
    """
    options = dict(augmentation_options or {})
    options.update(recipe["augmentation_options"])
    names = [n for n in list(student_augmentation) + list(recipe["augmentation"]) if split_augmentation(n)]
    return names, build_augmentation(names, options, num_classes)


def distilled_record(student, teacher, student_model_name, recipe, names, *, seed, epochs, history, measures,
                     seconds, splits, teacher_cache=False):
    """The record of a distilled student (`distill_student`'s second result)."""
    from keras_mixkd.models.model_card import model_card

    return {
        "role": "student",
        "student_model": student_model_name,
        "recipe": recipe.get("name", ""),
        "loss": recipe["loss"],
        "temperature": recipe["temperature"],
        "student_loss_weight": recipe["student_loss_weight"],
        **{key: recipe[key] for key in ("distillation_loss_weight", "std_ddof", "alpha", "beta", "warmup_epochs",
                                        "standardize", "feature_loss_weight") if key in recipe},
        "distillation_augmentation": "+".join(names) or "none",
        "teacher_cache": bool(teacher_cache),
        "seed": seed,
        "epochs": epochs,
        **summarize_history(history),
        **_last_epoch_measures(measures),
        "teacher_agreement_last": measures["teacher_agreement"],
        "parameters": int(student.count_params()),
        "data_format": model_data_format(student),
        "seconds": seconds,
        "history": history,
        "model_card": model_card(student, splits=splits, role="student", trained={
            "epochs": epochs, "seed": seed, "distillation_augmentation": "+".join(names) or "none"},
            distilled_from={"teacher": teacher.name, "recipe": recipe.get("name", ""), "loss": recipe["loss"],
                            "temperature": recipe["temperature"],
                            "student_loss_weight": recipe["student_loss_weight"],
                            "teacher_sees": recipe["teacher_sees"]}),
    }


def distiller_loss_arguments(recipe):
    """`Distiller` keyword arguments of a `[[distillation]]` recipe's loss keys.

    `loss`, `temperature`, `std_ddof`, `distillation_loss_weight` (-1: the
    default `1 - student_loss_weight`), DKD's `alpha`, `beta`,
    `warmup_epochs`, `standardize`, and `feature_loss_weight` /
    `feature_layer` (FitNets features with a projector). Keys a recipe dict
    lacks take the recipe defaults.
    """
    from keras_mixkd import losses
    from keras_mixkd.study.config import _DISTILLATION

    def get(key):
        return recipe.get(key, _DISTILLATION[key][0])

    name = recipe["loss"]
    loss = name
    if name == "dkd":
        loss = losses.DecoupledDistillation(
            alpha=get("alpha"), beta=get("beta"), temperature=get("temperature"),
            warmup_epochs=get("warmup_epochs"), standardize=get("standardize"), std_ddof=get("std_ddof"))
    arguments = {"loss": loss, "temperature": get("temperature"), "std_ddof": get("std_ddof")}
    if get("distillation_loss_weight") >= 0:
        arguments["distillation_loss_weight"] = get("distillation_loss_weight")
    if get("feature_loss_weight") > 0:
        arguments["feature_loss"] = losses.FeatureDistillation(teacher_layer=get("feature_layer"))
        arguments["feature_loss_weight"] = get("feature_loss_weight")
    return arguments

def train_student_alone(splits, model_name, *, seed, epochs, optimizer, batch_size=64,
                        student_augmentation=("none",), augmentation_options=None, measure=None, work_dir,
                        verbose="auto", backup_interval=0.0, log_dir=None, tensorboard=False, data_format=None):
    """Train one student model without a teacher: the student-alone baseline, resumably.

    Cross-entropy on the labels (dense after a mixing augmentation), with the
    student's augmentation, optimizer and schedule: what a distilled student
    of the same study gets, minus the teacher. The KD gain of a distillation
    recipe is the distilled student's accuracy minus this one's, paired by
    seed.

    Arguments:
        splits: `DatasetSplits` of the data.
        model_name: a name of `keras_mixkd.models.list_models()`.
        seed: seeds the weights and the data order (as the distilled
            students of that seed).
        epochs: number of epochs.
        optimizer: an optimizer table of a study config (the student's).
        batch_size: examples per step.
        student_augmentation: recipe names of the student's augmentation.
        augmentation_options: `{name: {option: value}}` for them.
        measure: the `measure` table of a study config.
        work_dir: folder for the backup and history; rerunning continues.
        verbose: passed to `fit`.
        backup_interval: least seconds between two backups (see `ResumableBackup`).
        data_format: layout inside the model (as for `train_teacher`).

    Returns:
        `(model, record, features)`; the record's `role` is "alone" and its
        `recipe` "alone".

    Example:

    >>> model, record, _ = train_student_alone(splits, "digits_cnn_small", seed=0, epochs=5,
    ...                                        optimizer=config["student"]["optimizer"], work_dir="a")
    >>> record["role"], record["recipe"]
    ('alone', 'alone')
    """
    from keras_mixkd.study.config import ALONE

    names = [name for name in student_augmentation if split_augmentation(name)]
    augmentation = "+".join(names) or "none"
    model, record, features = train_teacher(
        splits, model_name, augmentation, seed=seed, epochs=epochs, optimizer=optimizer, batch_size=batch_size,
        augmentation_options=augmentation_options, measure=measure, work_dir=work_dir, verbose=verbose,
        backup_interval=backup_interval, log_dir=log_dir, tensorboard=tensorboard, data_format=data_format)
    record.update(role=ALONE, teacher_model="", teacher_augmentation="", student_model=model_name, recipe=ALONE,
                  loss="cross_entropy", distillation_augmentation=augmentation)
    return model, record, features


def _last_epoch_measures(measures):
    """The record fields of `measure_model`'s results on the test split."""
    return {
        "ece_last": measures["expected_calibration_error"],
        "class_discrimination_last": measures["class_discrimination"],
        "mean_entropy_last": measures["mean_entropy"],
        "logit_std_last": measures["logit_std"],
    }


def _default_measure():
    from keras_mixkd.study.config import _SCHEMA

    return {key: spec[0] for key, spec in _SCHEMA["measure"].items()}
