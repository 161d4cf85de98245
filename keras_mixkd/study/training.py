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
from keras_mixkd.study import atomic
from keras_mixkd.study.backup import ResumableBackup
from keras_mixkd.study.config import split_augmentation
from keras_mixkd.study.epoch_recorder import EpochRecorder
from keras_mixkd.study.epoch_recorder import features_and_logits
from keras_mixkd.study.epoch_recorder import run_in_chunks


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
    return _shrink(splits, data_config)


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
            built.append(get_augmentation(part, **options))
        except (TypeError, ValueError) as error:
            raise ValueError(f"Augmentation {part!r} with options {options}: {error}") from error
    return built[0] if len(built) == 1 else Compose(built)


def build_optimizer(optimizer_config, model_name, steps_per_epoch):
    """SGD / Adam / AdamW with the step schedule of a study config.

    The learning rate is multiplied by `decay` at each epoch of `milestones`,
    through `keras.optimizers.schedules.PiecewiseConstantDecay` (its step
    counter is part of the optimizer state, so a resumed run keeps its place
    in the schedule).
    """
    rate = optimizer_config["model_learning_rates"].get(model_name.lower(), optimizer_config["learning_rate"])
    milestones = optimizer_config["milestones"]
    if milestones:
        boundaries = [int(m * steps_per_epoch) for m in milestones]
        values = [rate * optimizer_config["decay"] ** i for i in range(len(milestones) + 1)]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    decay = optimizer_config["weight_decay"] or None
    name = optimizer_config["name"]
    if name == "sgd":
        return keras.optimizers.SGD(rate, momentum=optimizer_config["momentum"],
                                    nesterov=optimizer_config["nesterov"], weight_decay=decay)
    if name == "adam":
        return keras.optimizers.Adam(rate, weight_decay=decay)
    return keras.optimizers.AdamW(rate, weight_decay=optimizer_config["weight_decay"])


def normalized(splits, split):
    """Images of a split normalised as the training pipeline does, and their labels."""
    x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
    if len(y) == 0:
        raise ValueError(
            f"The {split} split of {splits.name!r} is empty: a study needs validation and "
            "test examples (raise data.validation_fraction or data.test_examples)."
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


def warn_expects_normalized_input(model, normalization=None):
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
        UserWarning, stacklevel=3)


_WARNED_NO_PREPROCESSING = set()


def build_model(model_name, splits, *, output_layer=None):
    """A zoo model that takes `splits`' images as loaded and normalises them inside.

    `get_model(model_name, ...)` behind the training split's normalisation
    (`keras_mixkd.models.with_preprocessing`), optionally ending in
    `output_layer`.
    """
    from keras_mixkd.models import get_model
    from keras_mixkd.models import with_preprocessing

    model = get_model(model_name, splits.num_classes, input_shape=splits.input_shape)
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
    test split never takes part in the choice.
    """
    if not history:
        raise ValueError("The training history is empty: no epoch finished.")
    last = history[-1]
    best = max(history, key=lambda row: (row["val_accuracy"], -row["epoch"]))
    return {
        "last_epoch": last["epoch"],
        "val_accuracy_last": last["val_accuracy"],
        "test_accuracy_last": last["test_accuracy"],
        "best_epoch": best["epoch"],
        "val_accuracy_best": best["val_accuracy"],
        "test_accuracy_best": best["test_accuracy"],
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


def _fit(model, splits, train_ds, *, epochs, work_dir, measure, verbose, batch_size, backup_interval):
    """`fit` with the study's callbacks; returns the whole history (restarts included) and the recorder."""
    evaluated = model.student if hasattr(model, "student") and hasattr(model, "teacher") else model
    recorder = EpochRecorder(os.path.join(work_dir, "history.json"), model_inputs(evaluated, splits, "val"),
                             model_inputs(evaluated, splits, "test"), cd_every=measure["every"],
                             max_cd_examples=measure["max_examples"], chunk_size=max(batch_size, 256))
    backup = ResumableBackup(os.path.join(work_dir, "backup"), min_interval=backup_interval)
    # Stop at the first NaN batch, before an epoch's end can back up NaN weights.
    stop_on_nan = keras.callbacks.TerminateOnNaN(raise_error=True)
    try:
        # shuffle=False: the tf.data pipeline shuffles, seeded, itself.
        model.fit(train_ds, epochs=epochs, verbose=verbose, shuffle=False,
                  callbacks=[stop_on_nan, recorder, backup])
    except RuntimeError as error:
        if "NaN or Inf loss" not in str(error):
            raise
        epoch = (recorder.history[-1]["epoch"] if recorder.history else 0) + 1
        raise NonFiniteLossError(diverged_message(epoch)) from None
    return recorder.history, recorder


def train_teacher(splits, model_name, augmentation, *, seed, epochs, optimizer, batch_size=64,
                  augmentation_options=None, measure=None, work_dir, verbose="auto", backup_interval=0.0):
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

    Returns:
        `(model, record, features)`: the trained `keras.Model`, a dict of
        results, and its penultimate features on the test split.

    Example:

    >>> splits = prepare_data(load_recipe("digits")["data"])
    >>> teacher, record = train_teacher(splits, "digits_cnn", "mixup", seed=0, epochs=5,
    ...                                 optimizer=config["teacher"]["optimizer"], work_dir="t")
    """
    from keras_mixkd.data import make_dataset
    from keras_mixkd.models.model_card import model_card

    measure = measure or _default_measure()
    start = time.time()
    keras.utils.set_random_seed(seed)
    # The model normalises inside: the pipeline gives it images as loaded.
    model = build_model(model_name, splits)
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
                   verbose=verbose, batch_size=batch_size, backup_interval=backup_interval)
    measures = measure_model(model, splits, batch_size=max(batch_size, 256), ece_bins=measure["ece_bins"],
                             runner=recorder.runner)
    record = {
        "role": "teacher",
        "teacher_model": model_name,
        "teacher_augmentation": augmentation,
        "seed": seed,
        "epochs": epochs,
        **summarize_history(history),
        **_last_epoch_measures(measures),
        "parameters": int(model.count_params()),
        "seconds": time.time() - start,
        "history": history,
        "model_card": model_card(model, splits=splits, role="teacher", trained={
            "augmentation": augmentation, "epochs": epochs, "seed": seed}),
    }
    return model, record, measures["features"]


def distill_student(splits, teacher, student_model_name, recipe, *, seed, epochs, optimizer, batch_size=64,
                    student_augmentation=("none",), augmentation_options=None, measure=None, work_dir,
                    verbose="auto", backup_interval=0.0):
    """Distil one student from a frozen teacher with a distillation recipe, resumably.

    Arguments:
        splits: `DatasetSplits` of the data.
        teacher: the trained teacher (`keras.Model`, logits).
        student_model_name: a name of `keras_mixkd.models.list_models()`.
        recipe: a `[[distillation]]` table of a study config: `loss`,
            `temperature`, `student_loss_weight`, `augmentation` (mixing at
            distillation time), `augmentation_options`, `teacher_sees`.
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

    Returns:
        `(distiller, record, features)`.

    Example:

    >>> distiller, record, _ = distill_student(splits, teacher, "digits_cnn_small",
    ...     {"loss": "kd", "temperature": 1.0, "student_loss_weight": 0.1,
    ...      "augmentation": ["none"], "augmentation_options": {}, "teacher_sees": "same"},
    ...     seed=0, epochs=5, optimizer=config["student"]["optimizer"], work_dir="s")
    """
    from keras_mixkd import Distiller
    from keras_mixkd.data import make_dataset
    from keras_mixkd.distill import StandardizedLogits
    from keras_mixkd.models import input_normalization
    from keras_mixkd.models import with_preprocessing
    from keras_mixkd.models.model_card import model_card

    measure = measure or _default_measure()
    check_teacher_classes(teacher, splits.num_classes)
    start = time.time()
    if input_normalization(teacher) is None:
        # A teacher saved before models carried their normalisation: give it the data's.
        warn_expects_normalized_input(teacher, splits.normalization)
        teacher = with_preprocessing(teacher, splits.normalization)
    keras.utils.set_random_seed(seed)
    # The student normalises inside and, trained with the standardised loss,
    # outputs the standardised logits it is trained on (measured and shipped so).
    output_layer = None
    if recipe["loss"] == "standardized":
        output_layer = StandardizedLogits(ddof=recipe.get("std_ddof"))
    student = build_model(student_model_name, splits, output_layer=output_layer)
    distiller = Distiller(teacher, student, loss=recipe["loss"], temperature=recipe["temperature"],
                          student_loss_weight=recipe["student_loss_weight"])
    options = dict(augmentation_options or {})
    options.update(recipe["augmentation_options"])
    names = [n for n in list(student_augmentation) + list(recipe["augmentation"]) if split_augmentation(n)]
    aug = build_augmentation(names, options, splits.num_classes)
    train_ds = make_dataset(splits.x_train, splits.y_train, batch_size=batch_size, shuffle=True, seed=seed,
                            normalization=None, augmentation=aug,
                            num_classes=splits.num_classes, teacher_sees=recipe["teacher_sees"])
    steps = int(np.ceil(len(splits.y_train) / batch_size))
    distiller.compile(optimizer=build_optimizer(optimizer, student_model_name, steps))
    # Build the distiller (a subclassed model) so a backup can be restored into it.
    distiller(model_inputs(student, splits, "val")[0][:2])
    history, recorder = _fit(distiller, splits, train_ds, epochs=epochs, work_dir=work_dir, measure=measure,
                   verbose=verbose, batch_size=batch_size, backup_interval=backup_interval)
    measures = measure_model(student, splits, batch_size=max(batch_size, 256), teacher=teacher,
                             ece_bins=measure["ece_bins"], runner=recorder.runner,
                             teacher_runner=recorder.teacher_runner)
    record = {
        "role": "student",
        "student_model": student_model_name,
        "recipe": recipe.get("name", ""),
        "loss": recipe["loss"],
        "temperature": recipe["temperature"],
        "student_loss_weight": recipe["student_loss_weight"],
        "distillation_augmentation": "+".join(names) or "none",
        "seed": seed,
        "epochs": epochs,
        **summarize_history(history),
        **_last_epoch_measures(measures),
        "teacher_agreement_last": measures["teacher_agreement"],
        "parameters": int(student.count_params()),
        "seconds": time.time() - start,
        "history": history,
        "model_card": model_card(student, splits=splits, role="student", trained={
            "epochs": epochs, "seed": seed, "distillation_augmentation": "+".join(names) or "none"},
            distilled_from={"teacher": teacher.name, "recipe": recipe.get("name", ""), "loss": recipe["loss"],
                            "temperature": recipe["temperature"],
                            "student_loss_weight": recipe["student_loss_weight"],
                            "teacher_sees": recipe["teacher_sees"]}),
    }
    return distiller, record, measures["features"]


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
