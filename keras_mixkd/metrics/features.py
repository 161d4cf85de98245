"""Penultimate features of a functional Keras model."""

import keras

# The zoo's models name their penultimate layer so (docs/ARCHITECTURE.md).
FEATURES_LAYER_NAME = "features"


def _check_functional(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"feature_extractor expects a keras.Model, got {type(model).__name__}."
        )
    try:
        inputs = model.inputs
        # Only a layer graph (functional, built Sequential) has symbolic outputs.
        if model.layers:
            model.layers[-1].output
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise TypeError(
            f"feature_extractor needs a functional (or built Sequential) "
            f"model, whose layer graph can be cut; got the subclassed model "
            f"{model.name!r} ({type(model).__name__}). Build it with the "
            "functional API, or compute its features yourself and pass them "
            "to the measures."
        )
    return inputs


def _last_dense(model):
    for layer in reversed(model.layers):
        if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)):
            return layer
    return None


def feature_tensor(model, layer_name=None, *, argument="layer_name"):
    """The symbolic penultimate-feature tensor of a functional model.

    See `feature_extractor` for how the layer is chosen and what `argument` is.
    """
    _check_functional(model)
    names = [layer.name for layer in model.layers]
    if layer_name is not None:
        if layer_name not in names:
            raise ValueError(
                f"Model {model.name!r} has no layer named {layer_name!r} (given as {argument}); "
                f"its layers are {names[-12:]} (last 12 shown)."
            )
        return model.get_layer(layer_name).output
    if FEATURES_LAYER_NAME in names:
        return model.get_layer(FEATURES_LAYER_NAME).output
    classifier = _last_dense(model)
    if classifier is None:
        raise ValueError(
            f"Model {model.name!r} has no layer named "
            f"{FEATURES_LAYER_NAME!r} and no Dense classifier whose input "
            f"could serve as the penultimate features; name the feature layer with {argument}."
        )
    return classifier.input


def feature_extractor(model, layer_name=None, *, argument="layer_name"):
    """A model mapping `model`'s inputs to its penultimate features.

    The feature layer is, in order of preference: the layer named
    `layer_name` (its output); the layer named `"features"` (every model of
    the keras-mixkd zoo has one); the input of the model's last `Dense`
    layer (the classifier). The extractor shares the model's weights, so it
    follows the model as it trains.

    Arguments:
        model: a functional or built Sequential `keras.Model`. Subclassed
            models have no layer graph to cut and raise a `TypeError`.
        layer_name: name of the layer whose output to return.
        argument: how the caller's user gives `layer_name`, for the messages
            (e.g. `"--layer"` on the command line).

    Returns:
        A `keras.Model` with the same inputs as `model`.

    Example:

    >>> import keras
    >>> from keras_mixkd.metrics import feature_extractor
    >>> inputs = keras.Input((8,))
    >>> hidden = keras.layers.Dense(4, activation="relu", name="features")(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(hidden))
    >>> extractor = feature_extractor(model)
    >>> extractor.output_shape
    (None, 4)
    """
    features = feature_tensor(model, layer_name, argument=argument)
    return keras.Model(model.inputs, features, name=f"{model.name}_features")
