"""Models that take images as loaded: the training normalisation inside the model.

`with_preprocessing(model, (mean, std))` returns the same network (a copy of
its layers with its weights) behind a `keras.layers.Normalization` layer
named `"input_normalization"`: it takes float32 NHWC images in [0, 1], as the
data loaders give them, and normalises them with the training split's
per-channel statistics itself. Every model that keras-mixkd trains for a study
or the command line is built this way, so the `.keras` files it saves and the
SavedModels it exports need no preprocessing step outside the model.

The graph stays flat (no nested model): the layer named `"features"` is still
the penultimate layer and `"logits"` the classifier, so the `Distiller`,
`feature_extractor`, `LatentMeasures` and `.keras` round trips see the network
they always saw. `keras.layers.Normalization` is a core Keras layer: such a
file loads with plain `keras.saving.load_model`, without keras-mixkd.

Example:

>>> from keras_mixkd.data import load_dataset
>>> from keras_mixkd.models import get_model, with_preprocessing
>>> splits = load_dataset("digits")
>>> model = with_preprocessing(get_model("digits_cnn_small", 10, (8, 8, 1)),
...                            splits.normalization)
>>> input_normalization(model)["mean"]   # doctest: +SKIP
(0.3032...,)
"""

import math
import numbers

INPUT_NORMALIZATION_LAYER = "input_normalization"
# What `resolve_input_normalization` (the command line's --input-normalized) accepts.
INPUT_NORMALIZED = ("auto", "yes", "no")


def _check_model(model, what="model"):
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"`{what}` must be a keras.Model; got {type(model).__name__}.")
    inputs = getattr(model, "inputs", None)
    outputs = getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise ValueError(
            f"`{what}` {model.name!r} must be a functional keras.Model (built from keras.Input); "
            "a subclassed model has no graph to put a layer in front of. Normalise its input in "
            "the pipeline instead (`make_dataset(normalization=...)`)."
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"`{what}` {model.name!r} must have one input and one output; it has "
            f"{len(inputs)} input(s) and {len(outputs)} output(s)."
        )


def _check_statistics(normalization, channels):
    """`(mean, std)` as tuples of `channels` floats (a scalar applies to every channel)."""
    if not isinstance(normalization, (tuple, list)) or len(normalization) != 2:
        raise ValueError(
            f"`normalization` must be a pair (mean, std), each a float or one float per "
            f"channel ({channels}); got {normalization!r}."
        )
    checked = []
    for name, value in zip(("mean", "std"), normalization):
        values = [value] if isinstance(value, numbers.Real) else list(value)
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            raise ValueError(f"`normalization` {name} must be numbers; got {value!r}.") from None
        if len(values) == 1:
            values = values * channels
        if len(values) != channels:
            raise ValueError(
                f"`normalization` {name} must have one value per channel ({channels}) or one "
                f"for all; got {len(values)}: {value!r}."
            )
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"`normalization` {name} must be finite; got {value!r}.")
        if name == "std" and not all(v > 0 for v in values):
            raise ValueError(f"`normalization` std must be > 0 in every channel; got {value!r}.")
        checked.append(tuple(values))
    return tuple(checked)


def with_preprocessing(model, normalization=None, *, output_layer=None, input_dtype=None, name=None):
    """The same network behind the training normalisation (and an output layer).

    The returned functional model is a copy of `model` (same layers, names and
    weights; training it does not change `model`); its graph is flat:
    `Input -> Normalization("input_normalization") -> model's layers
    [-> output_layer]`.

    Arguments:
        model: a functional `keras.Model` with one input and one output (every
            model of `get_model`, or the user's own).
        normalization: `(mean, std)` per channel (or one float each), e.g.
            `splits.normalization`; the model computes `(x - mean) / std`
            first. `None` adds none.
        output_layer: an optional layer applied to the model's output (e.g.
            `keras_mixkd.distill.StandardizedLogits()`).
        input_dtype: `None` (the model's input dtype, float32 images in
            [0, 1]) or `"uint8"`: the new model takes raw 0-255 pixels and
            divides them by 255 first (a `Rescaling` layer named
            `"input_rescaling"`).
        name: the new model's name (default: `model.name`).

    Returns:
        A functional `keras.Model` (or `model` itself when there is nothing to add).

    Example:

    >>> student = with_preprocessing(get_model("resnet20", 100),
    ...                              ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276)))
    >>> student.get_layer("input_normalization")   # doctest: +SKIP
    """
    import keras

    _check_model(model)
    if input_dtype not in (None, "uint8"):
        raise ValueError(f"`input_dtype` must be None (float32 in [0, 1]) or 'uint8'; got {input_dtype!r}.")
    if normalization is None and output_layer is None and input_dtype is None:
        return model
    source_input = model.inputs[0]
    shape = tuple(source_input.shape[1:])
    inputs = keras.Input(shape, dtype=input_dtype or source_input.dtype,
                         name=getattr(source_input, "name", None) or "images")
    prefix = []
    if input_dtype == "uint8":
        prefix.append(keras.layers.Rescaling(1.0 / 255.0, name="input_rescaling"))
    if normalization is not None:
        if input_normalization(model) is not None:
            raise ValueError(
                f"Model {model.name!r} already normalises its input (it has a layer "
                f"{INPUT_NORMALIZATION_LAYER!r}); normalising twice would be wrong."
            )
        if shape[-1] is None:
            raise ValueError(
                f"Model {model.name!r} takes inputs of shape {shape}: the channel axis must be "
                "known to normalise per channel."
            )
        mean, std = _check_statistics(normalization, int(shape[-1]))
        prefix.append(keras.layers.Normalization(
            axis=-1, mean=list(mean), variance=[s * s for s in std], name=INPUT_NORMALIZATION_LAYER,
        ))
    normalized = []

    def call_function(layer, *args, **kwargs):
        # Every layer that read the model's input now reads the normalised images.
        def swap(value):
            if value is inputs:
                if not normalized:
                    x = inputs
                    for layer_in_front in prefix:
                        x = layer_in_front(x)
                    normalized.append(x)
                return normalized[0]
            return value

        if prefix:
            args, kwargs = keras.tree.map_structure(swap, (args, kwargs))
        return layer(*args, **kwargs)

    # A copy of each layer (a layer called in two graphs would report the first
    # graph's tensor as its `.output`, which `feature_extractor` reads), with the
    # model's weights; one flat graph, no nested model.
    # The input structure must match the model's own (a Sequential model keeps a list).
    input_tensors = [inputs] if isinstance(model.input, (list, tuple)) else inputs
    rewired = keras.models.clone_model(model, input_tensors=input_tensors, call_function=call_function)
    for layer in model.layers:
        if layer.weights:
            rewired.get_layer(layer.name).set_weights(layer.get_weights())
    outputs = rewired.outputs[0]
    if output_layer is not None:
        outputs = output_layer(outputs)
    return keras.Model(inputs, outputs, name=name or model.name)


def input_normalization(model):
    """The normalisation a model applies to its input, or `None` when it applies none.

    Arguments:
        model: a `keras.Model`.

    Returns:
        `{"mean": (...), "std": (...)}` per channel (floats) when `model` has
        the layer `"input_normalization"` of `with_preprocessing`, else `None`
        (a model that expects normalised input, such as a `.keras` file saved
        by an earlier keras-mixkd, or a user's own model).

    Example:

    >>> input_normalization(get_model("digits_cnn_small", 10, (8, 8, 1))) is None
    True
    """
    import keras
    import numpy as np

    for layer in getattr(model, "layers", ()):
        if layer.name == INPUT_NORMALIZATION_LAYER and isinstance(layer, keras.layers.Normalization):
            mean = np.ravel(np.asarray(layer.input_mean, dtype="float64"))
            variance = np.ravel(np.asarray(layer.input_variance, dtype="float64"))
            return {"mean": tuple(float(v) for v in mean),
                    "std": tuple(float(v) for v in np.sqrt(variance))}
    return None


def resolve_input_normalization(model, input_normalized="auto", normalization=None):
    """A model that takes images as loaded, as its user says it expects its input.

    What the command line's `--input-normalized` does for a model the user
    brings (`measure`, `evaluate`, `distill`'s teacher; `export` maps it to
    `export_student(normalization=...)`):

    - `"auto"`: `model` unchanged. One with normalisation inside takes images
      in [0, 1]; one without is assumed to expect normalised images, and is fed
      them with a warning (`keras_mixkd.study.training.model_inputs`).
    - `"no"`: the model expects images as loaded, in [0, 1] (e.g. a
      `keras.Sequential` trained on them): one without normalisation inside
      gets the identity (`with_preprocessing(model, (0.0, 1.0))`), so it is
      fed images in [0, 1] with no warning.
    - `"yes"`: the model expects images normalised with `normalization`
      (the training data's `(mean, std)`): it gets them inside
      (`with_preprocessing(model, normalization)`), with no warning. Refused
      for a model that already normalises inside (twice would be wrong).

    Arguments:
        model: a functional `keras.Model` (a loaded `.keras` file).
        input_normalized: "auto", "yes" or "no".
        normalization: `(mean, std)` of the data, needed for "yes".

    Returns:
        A `keras.Model`.

    Example:

    >>> model = resolve_input_normalization(own_sequential, "no")
    >>> input_normalization(model)
    {'mean': (0.0,), 'std': (1.0,)}
    """
    if input_normalized not in INPUT_NORMALIZED:
        raise ValueError(f"--input-normalized must be one of {', '.join(INPUT_NORMALIZED)}; got {input_normalized!r} "
                         "(input_normalized= in Python).")
    stats = input_normalization(model)
    if input_normalized == "auto" or (input_normalized == "no" and stats is not None):
        return model
    if input_normalized == "yes":
        if stats is not None:
            raise ValueError(
                f"--input-normalized yes: model {model.name!r} already normalises its input inside (mean "
                f"{[round(v, 4) for v in stats['mean']]}, std {[round(v, 4) for v in stats['std']]}); it takes "
                "images in [0, 1]. Leave the flag out (auto) or give no."
            )
        if normalization is None:
            raise ValueError("--input-normalized yes needs the data's (mean, std) (normalization= in Python).")
        return with_preprocessing(model, normalization)
    return with_preprocessing(model, (0.0, 1.0))
