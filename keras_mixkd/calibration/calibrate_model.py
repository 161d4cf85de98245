"""`calibrate_model`: a model whose outputs are its logits / T, T fitted on the validation split."""

import numpy as np

from keras_mixkd.calibration.fit_temperature import DEFAULT_BOUNDS
from keras_mixkd.calibration.fit_temperature import check_logits_and_labels
from keras_mixkd.calibration.fit_temperature import fit_temperature
from keras_mixkd.calibration.temperature_scaling import TemperatureScaling

METHOD = "temperature scaling (Guo et al., On Calibration of Modern Neural Networks, ICML 2017)"


def calibrate_model(model, x_val, y_val, *, x_test=None, y_test=None, num_bins=15, batch_size=256,
                    bounds=DEFAULT_BOUNDS):
    """Fit a temperature on `(x_val, y_val)` and append it to `model` as a `TemperatureScaling` layer.

    The calibrated model shares `model`'s layers and outputs
    `model(x) / T`, `T` minimising the NLL of the validation split
    (`fit_temperature`); its argmax, hence its accuracy, is `model`'s. A
    model that already ends in `TemperatureScaling` is calibrated afresh (its
    old temperature is dropped). Expected calibration error (`num_bins`
    equal-width bins) and NLL are measured before and after on the
    validation split and, when given, on `(x_test, y_test)`.

    Arguments:
        model: a functional `keras.Model` with one output of logits.
        x_val, y_val: the validation split: images as the model takes them,
            integer class ids.
        x_test, y_test: optionally the test split, measured (not fitted on).
        num_bins: ECE bins (the study's `measure.ece_bins`: 15).
        batch_size: of the `predict` passes.
        bounds: `(T_min, T_max)`, the search range of `T`.

    Returns:
        `(calibrated_model, info)`; `info` is JSON-ready: `method`,
        `temperature`, `fitted_on` ("val"), `num_bins`, and per split
        (`"val"`, `"test"`) its `examples`, `accuracy`, `ece_before`,
        `ece_after`, `nll_before`, `nll_after`.

    Example:

    >>> from keras_mixkd.calibration import calibrate_model
    >>> calibrated, info = calibrate_model(student, splits.x_val, splits.y_val,
    ...                                    x_test=splits.x_test, y_test=splits.y_test)
    >>> info["temperature"], info["test"]["ece_before"], info["test"]["ece_after"]   # doctest: +SKIP
    """
    import keras

    base = uncalibrated(model)
    if len(base.outputs) != 1:
        raise ValueError(f"calibrate_model needs a model with one output (logits); {model.name!r} has "
                         f"{len(base.outputs)}.")
    if len(y_val) == 0:
        raise ValueError("The validation split is empty (0 examples): temperature scaling fits T on held-out "
                         "data. Give a validation split (data.validation_fraction > 0, or a val/ folder).")
    logits = _logits(base, x_val, batch_size)
    temperature = fit_temperature(logits, y_val, bounds=bounds,
                                  what=f"the outputs of {model.name!r} on the validation split")
    outputs = TemperatureScaling(temperature)(base.outputs[0])
    calibrated = keras.Model(_input_structure(base), outputs, name=base.name)
    info = {"method": METHOD, "temperature": temperature, "fitted_on": "val", "num_bins": int(num_bins),
            "val": calibration_measures(logits, y_val, temperature, num_bins)}
    if x_test is not None and y_test is not None and len(y_test):
        info["test"] = calibration_measures(_logits(base, x_test, batch_size), y_test, temperature, num_bins,
                                            what=f"the outputs of {model.name!r} on the test split")
    return calibrated, info


def calibration_measures(logits, labels, temperature, num_bins=15, *, what="logits"):
    """`{"examples", "accuracy", "ece_before", "ece_after", "nll_before", "nll_after"}` of logits and `T`.

    ECE and NLL are `keras_mixkd.metrics`' (float32 on the backend), of
    `logits` ("before") and of `logits / T` in float32, what the calibrated
    model outputs ("after").

    Example:

    >>> calibration_measures(logits, labels, 1.7)["ece_after"]   # doctest: +SKIP
    """
    from keras_mixkd import metrics

    z, y = check_logits_and_labels(logits, labels, what=what)
    before = z.astype(np.float32)
    after = (before / np.float32(temperature)).astype(np.float32)
    return {
        "examples": int(len(y)),
        "accuracy": metrics.accuracy(before, y),
        "ece_before": metrics.expected_calibration_error(before, y, num_bins=num_bins, from_logits=True),
        "ece_after": metrics.expected_calibration_error(after, y, num_bins=num_bins, from_logits=True),
        "nll_before": metrics.negative_log_likelihood(before, y, from_logits=True),
        "nll_after": metrics.negative_log_likelihood(after, y, from_logits=True),
    }


def uncalibrated(model):
    """`model` without a final `TemperatureScaling` layer (itself when it has none)."""
    import keras

    layers = getattr(model, "layers", None) or ()
    if layers and isinstance(layers[-1], TemperatureScaling) and getattr(model, "inputs", None):
        return keras.Model(_input_structure(model), layers[-1].input, name=model.name)
    return model


def _logits(model, x, batch_size):
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def _input_structure(model):
    # One input stays one tensor, not a list of one: a model built on `model.inputs` would expect a
    # list and warn ("The structure of `inputs` doesn't match") on every call with an image batch.
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs
