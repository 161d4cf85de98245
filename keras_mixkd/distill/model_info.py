"""What the `Distiller` reads of a model before any call: output width, input shape, a final softmax."""

import keras


def output_width(model):
    """The model's output width (its number of classes), or `None` when not known before a call.

    Example:

    >>> output_width(get_model("resnet8", 10))
    10
    """
    try:
        shape = model.output_shape
    except (AttributeError, ValueError):
        return None
    if isinstance(shape, list):  # A single-output model may report [shape].
        if len(shape) != 1:
            return None
        shape = shape[0]
    return shape[-1] if shape else None


def single_input_shape(model):
    """The model's input shape (batch axis included) when it has one input, else `None`."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return None
    if isinstance(shape, list):
        return tuple(shape[0]) if len(shape) == 1 else None
    return tuple(shape) if shape is not None else None


def ends_in_softmax(model):
    """True when a functional or sequential model's last layer applies a softmax.

    Seen: a `Softmax` layer, a layer whose `activation` is softmax, and a
    `Lambda` of `keras.activations.softmax` or `keras.ops.softmax`. A softmax
    inside a `Lambda` of a Python `lambda`, or in a subclassed model's `call`,
    shows only in the outputs (`output_checks.looks_like_probabilities`).

    Example:

    >>> inputs = keras.Input((4,))
    >>> ends_in_softmax(keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs)))
    True
    """
    layers = getattr(model, "layers", None)
    if not layers:
        return False
    last = layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    if isinstance(last, keras.layers.Lambda):
        return getattr(getattr(last, "function", None), "__name__", None) == "softmax"
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"
