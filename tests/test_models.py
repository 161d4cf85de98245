"""The model zoo: names, forward passes, features, parameter counts, bad input."""

import keras
import numpy as np
import pytest

from keras_mixkd.models import count_params_pytorch_style
from keras_mixkd.models import get_model
from keras_mixkd.models import list_models

DIGITS_MODELS = ("digits_cnn_small", "digits_cnn")


def _forward(model, input_shape, rng):
    images = rng.random((2, *input_shape)).astype("float32")
    logits = keras.ops.convert_to_numpy(model(images, training=False))
    return images, logits


def _check_contract(model, num_classes):
    features = model.get_layer("features")
    head = model.get_layer("logits")
    assert isinstance(head, keras.layers.Dense)
    assert head.units == num_classes
    assert len(features.output.shape) == 2  # flat feature vector
    assert model.outputs[0] is head.output or model.output_shape == (None, num_classes)
    # The classifier reads the features directly.
    assert head.input is features.output


@pytest.mark.parametrize("name", DIGITS_MODELS)
def test_digits_models_on_digits_shape(name, rng):
    model = get_model(name, 10, (8, 8, 1))
    _check_contract(model, 10)
    _, logits = _forward(model, (8, 8, 1), rng)
    assert logits.shape == (2, 10) and np.all(np.isfinite(logits))
    extractor = keras.Model(model.inputs, model.get_layer("features").output)
    features = keras.ops.convert_to_numpy(extractor(rng.random((2, 8, 8, 1)).astype("float32")))
    assert features.ndim == 2 and features.shape[0] == 2


@pytest.mark.parametrize("name", DIGITS_MODELS)
def test_digits_models_take_cifar_shape(name, rng):
    model = get_model(name, 7, (32, 32, 3))
    _, logits = _forward(model, (32, 32, 3), rng)
    assert logits.shape == (2, 7)


def test_logits_are_the_dense_of_the_features(rng):
    # The output is a linear map of the "features" output: no softmax.
    model = get_model("digits_cnn", 10, (8, 8, 1))
    images = rng.random((2, 8, 8, 1)).astype("float32")
    features = keras.ops.convert_to_numpy(
        keras.Model(model.inputs, model.get_layer("features").output)(images)
    ).astype(np.float64)
    kernel, bias = (keras.ops.convert_to_numpy(w).astype(np.float64) for w in model.get_layer("logits").weights)
    logits = keras.ops.convert_to_numpy(model(images)).astype(np.float64)
    np.testing.assert_allclose(logits, features @ kernel + bias, rtol=1e-4, atol=1e-5)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown model 'resnet9'.*digits_cnn"):
        get_model("resnet9", 10)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_classes": 1}, ValueError, "at least 2"),
        ({"num_classes": 2.5}, TypeError, "num_classes"),
        ({"input_shape": (8, 8)}, ValueError, "three positive ints"),
        ({"input_shape": (8, 0, 1)}, ValueError, "three positive ints"),
        ({"input_shape": (1, 1, 1)}, ValueError, "at least 2x2"),
        ({"input_shape": "8x8"}, TypeError, "input_shape"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"num_classes": 10, "input_shape": (8, 8, 1)}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        get_model("digits_cnn", **arguments)


def test_pytorch_style_count_drops_only_moving_statistics():
    model = get_model("digits_cnn", 10, (8, 8, 1))
    moving = sum(
        int(np.prod(layer.moving_mean.shape)) * 2
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert moving > 0
    assert count_params_pytorch_style(model) == model.count_params() - moving
    # Hand count: 3x3 convs without bias, BN gamma/beta, Dense 64->10.
    convs = 9 * (1 * 32 + 32 * 32 + 32 * 64 + 64 * 64)
    batch_norms = 2 * (32 + 32 + 64 + 64)
    assert count_params_pytorch_style(model) == convs + batch_norms + 64 * 10 + 10


def test_list_models_is_sorted_and_buildable_names():
    names = list_models()
    assert names == sorted(names)
    assert set(DIGITS_MODELS) <= set(names)
