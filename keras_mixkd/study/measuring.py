"""What a study measures of a trained model: inputs as it expects them, accuracy, CD, ECE, smoothness."""

import warnings

import numpy as np

from keras_mixkd import metrics
from keras_mixkd.models import input_normalization
from keras_mixkd.study.epoch_recorder import features_and_logits
from keras_mixkd.study.epoch_recorder import run_in_chunks


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
    if input_normalization(model) is not None:
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        if len(y) == 0:
            normalized(splits, split)  # The same clear error.
        return np.asarray(x, dtype="float32"), np.asarray(y)
    warn_expects_normalized_input(model, splits.normalization)
    return normalized(splits, split)


def warn_expects_normalized_input(model, normalization=None, stacklevel=3):
    """Warns (once per process and model name) that `model` has no normalisation inside."""
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
        f"without `with_preprocessing`), so it is assumed it expects normalised images, not images in [0, 1].{stats} "
        "If it takes images in [0, 1], say so: --input-normalized no on the command line (measure, evaluate, "
        "distill, export), `with_preprocessing(model, (0.0, 1.0))` in Python; --input-normalized yes "
        "(`with_preprocessing(model, normalization)`) confirms normalised input and silences this warning.",
        UserWarning, stacklevel=stacklevel)



_WARNED_NO_PREPROCESSING = set()


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


def check_epochs(epochs, flag="epochs"):
    """Raise a clear `ValueError` unless `epochs` is a whole number >= 1."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"{flag} must be a whole number of epochs >= 1, got {epochs!r}.")
    return int(epochs)


def last_epoch_measures(measures):
    """The record fields of `measure_model`'s results on the test split."""
    return {
        "ece_last": measures["expected_calibration_error"],
        "class_discrimination_last": measures["class_discrimination"],
        "mean_entropy_last": measures["mean_entropy"],
        "logit_std_last": measures["logit_std"],
    }

