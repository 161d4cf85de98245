"""The model card: what a saved or exported model takes, gives, and came from.

`model_card(model, ...)` describes a model as a JSON-ready dict. keras-mixkd
writes it into the record JSON beside every `.keras` file it saves (key
`"model_card"`) and as `metadata.json` inside every SavedModel it exports.
The input and output facts are read from the model itself (its
`"input_normalization"` layer, its last layer), never assumed.
"""

import json
import os

MODEL_CARD_VERSION = 1
STANDARDIZED_LOGITS_CLASS = "StandardizedLogits"
TEMPERATURE_SCALING_CLASS = "TemperatureScaling"


def output_kind(model):
    """`"standardized_logits"` when the model ends in `StandardizedLogits`, else `"logits"`.

    A final `TemperatureScaling` (a calibrated model) is looked through: it
    divides the kind of outputs below it by its temperature.
    """
    layers = list(getattr(model, "layers", None) or ())
    if layers and type(layers[-1]).__name__ == TEMPERATURE_SCALING_CLASS:
        layers.pop()
    if layers and type(layers[-1]).__name__ == STANDARDIZED_LOGITS_CLASS:
        return "standardized_logits"
    return "logits"


def output_temperature(model):
    """The temperature of the model's final `TemperatureScaling` layer (a calibrated model), else None."""
    layers = getattr(model, "layers", None) or ()
    if layers and type(layers[-1]).__name__ == TEMPERATURE_SCALING_CLASS:
        return float(layers[-1].temperature)
    return None


def _shape(shape):
    return [None if dim is None else int(dim) for dim in shape]


def versions():
    """keras-mixkd, Keras, backend and TensorFlow versions of this process."""
    import keras

    from keras_mixkd.version import __version__

    found = {"keras_mixkd": __version__, "keras": keras.__version__, "backend": keras.backend.backend()}
    try:
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        pass
    return found


def describe_io(model, input_dtype=None):
    """The `"input"` and `"output"` sections of a card, read from the model."""
    from keras_mixkd.models.preprocessing import input_normalization

    inputs = getattr(model, "inputs", None) or [None]
    source = inputs[0]
    dtype = input_dtype or str(getattr(source, "dtype", None) or "float32")
    stats = input_normalization(model)
    is_uint8 = dtype == "uint8"
    input_section = {
        "name": getattr(source, "name", None),
        "shape": _shape(source.shape) if source is not None else None,
        "dtype": dtype,
        "layout": "NHWC (batch, height, width, channels)",
        "range": [0, 255] if is_uint8 else [0.0, 1.0],
        "normalization_inside": stats is not None,
        "normalization": None if stats is None else {
            "mean": list(stats["mean"]), "std": list(stats["std"]),
            "formula": ("(x / 255 - mean) / std" if is_uint8 else "(x - mean) / std") + ", per channel, inside the model",
        },
    }
    if stats is None:
        input_section["range"] = None
        input_section["note"] = ("This model has no normalisation inside: it expects images already "
                                 "normalised with its training statistics.")
    kind = output_kind(model)
    outputs = getattr(model, "outputs", None)
    output_section = {
        "shape": _shape(outputs[0].shape) if outputs else None,
        "kind": kind,
        "standardized": kind == "standardized_logits",
        "meaning": ("logits divided by their own standard deviation (what a student trained with the "
                    "standardised loss was trained to give); softmax(output) is the predictive distribution"
                    if kind == "standardized_logits" else
                    "logits; softmax(output) is the predictive distribution"),
    }
    temperature = output_temperature(model)
    if temperature is not None:
        output_section["temperature"] = temperature
        output_section["meaning"] = (
            output_section["meaning"].split(";")[0] + f", divided by the temperature T = {temperature:.6g} fitted "
            "on the validation split (temperature scaling); softmax(output) is the calibrated predictive distribution")
    return input_section, output_section


def model_card(model, *, splits=None, role=None, trained=None, distilled_from=None, calibration=None):
    """A JSON-ready description of a model.

    Arguments:
        model: the functional `keras.Model` (saved or exported).
        splits: the `DatasetSplits` it was trained on (data set name and class
            names in label order), or `None`.
        role: `"teacher"`, `"student"` or `None`.
        trained: dict of how it was trained (augmentation, epochs, seed, ...).
        distilled_from: dict naming the teacher and the distillation recipe.
        calibration: the `info` of `keras_mixkd.calibration.calibrate_model`
            (temperature, ECE and NLL before and after), or `None`.

    Returns:
        A dict with keys `model_card_version`, `model`, `role`, `dataset`,
        `num_classes`, `class_names`, `input`, `output`, `trained`,
        `distilled_from`, `versions`, and `calibration` for a calibrated
        model (its `output` then holds the `temperature`).

    Example:

    >>> card = model_card(student, splits=splits, role="student",
    ...                   distilled_from={"teacher_model": "resnet56", "loss": "kd"})
    >>> card["input"]["normalization_inside"]
    True
    """
    input_section, output_section = describe_io(model)
    card = {
        "model_card_version": MODEL_CARD_VERSION,
        "model": model.name,
        "role": role,
        "dataset": None if splits is None else splits.name,
        "num_classes": output_section["shape"][-1] if output_section["shape"] else None,
        "class_names": None if splits is None else [str(name) for name in splits.class_names],
        "input": input_section,
        "output": output_section,
        "trained": dict(trained) if trained else None,
        "distilled_from": dict(distilled_from) if distilled_from else None,
        "versions": versions(),
    }
    if calibration:
        card["calibration"] = dict(calibration)
    return card


def read_model_card(keras_path):
    """The `"model_card"` of the record JSON keras-mixkd wrote beside a `.keras` file, or `None`.

    Looks at `<file>.json` (what `keras-mixkd train-teacher` / `distill`
    write) and at a study's `cells/<key>.json` for `models/<key>.keras`.

    Example:

    >>> read_model_card("teacher.keras")["class_names"]   # doctest: +SKIP
    ['cat', 'dog']
    """
    keras_path = os.path.abspath(os.fspath(keras_path))
    folder, filename = os.path.split(keras_path)
    candidates = [keras_path + ".json"]
    if os.path.basename(folder) == "models" and filename.endswith(".keras"):
        candidates.append(os.path.join(os.path.dirname(folder), "cells", filename[: -len(".keras")] + ".json"))
    for candidate in candidates:
        if os.path.isfile(candidate):
            try:
                with open(candidate, encoding="utf-8") as handle:
                    card = json.load(handle).get("model_card")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(card, dict):
                return card
    return None


def check_class_names(card, class_names, *, what="model", path=None):
    """Refuse a model whose card's classes are not the data's, in the same order.

    A model predicts class ids; the data gives them meaning by its class
    names (sorted subfolder names for an image folder). A model trained on
    classes `one, two, zero` and fed a copy where `zero` became `a_zero`
    reads every label of the copy shifted: accuracy 0 % for evaluation,
    permuted targets for distillation. Nothing is checked when the card
    (or its `class_names`) is missing, e.g. for a user's own model.

    Arguments:
        card: a model card (`model_card(...)`, `read_model_card(path)`) or None.
        class_names: the data's class names, in label order
            (`DatasetSplits.class_names`).
        what: how the message names the model ("teacher", "model").
        path: the model's file, for the message.

    Raises:
        ValueError: the class counts or names (or their order) differ; the
            message lists both and says how to map them.

    Example:

    >>> check_class_names({"class_names": ["one", "two", "zero"]}, ("a_zero", "one", "two"), what="teacher")
    Traceback (most recent call last):
    ...
    ValueError: The teacher was trained on the classes one, two, zero (in label order) but the data has ...
    """
    trained = (card or {}).get("class_names")
    if trained is None or class_names is None:
        return
    trained, given = [str(name) for name in trained], [str(name) for name in class_names]
    if trained == given:
        return
    name = f"{what} {path}" if path else what
    head = (f"The {name} was trained on the classes {', '.join(trained)} (in label order) but the data has "
            f"{', '.join(given)}: ")
    if len(trained) != len(given):
        problem = f"{len(trained)} classes against {len(given)}."
    elif sorted(trained) == sorted(given):
        problem = "the same classes in another order, so every class id would mean another class."
    else:
        index = next(i for i, (a, b) in enumerate(zip(trained, given)) if a != b)
        problem = (f"class id {index} is {trained[index]!r} for the {what} and {given[index]!r} for the data "
                   f"(not in the {what}'s classes: {', '.join(n for n in given if n not in trained) or 'none'}).")
    raise ValueError(
        head + problem + f" Map them before using this {what}: give the data the {what}'s class names so that "
        "their label order is its order (an image folder: rename the class subfolders, whose sorted names are "
        "the label order; a .npz file: its class_names array and labels), or use a model trained on this data."
    )
