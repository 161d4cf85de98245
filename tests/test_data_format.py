"""Channels-first zoo models (`get_model(..., data_format=...)`) and the fused BatchNormalization."""

import keras
import numpy as np
import pytest

from keras_mixkd.models import BatchNormalization
from keras_mixkd.models import get_model

CHANNELS_FIRST = ["resnet8", "wrn_16_1", "vgg8", "mobilenetv2", "digits_cnn", "digits_cnn_small"]


def _pair(name, shape, num_classes=5):
    keras.utils.set_random_seed(3)
    last = get_model(name, num_classes, input_shape=shape)
    keras.utils.set_random_seed(3)
    first = get_model(name, num_classes, input_shape=shape, data_format="channels_first")
    return last, first


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.mark.parametrize("name", CHANNELS_FIRST)
def test_channels_first_model_computes_what_the_channels_last_one_does(name):
    shape = (8, 8, 1) if name.startswith("digits") else (32, 32, 3)
    last, first = _pair(name, shape)
    assert first.get_layer("to_channels_first") is not None
    assert first.input_shape == last.input_shape == (None, *shape)  # both take NHWC images
    assert first.get_layer("features").output.shape == last.get_layer("features").output.shape
    assert [w.shape for w in first.weights] == [w.shape for w in last.weights]
    x = np.random.default_rng(0).random((3, *shape)).astype("float32")
    for training in (False, True):
        np.testing.assert_allclose(_np(first(x, training=training)), _np(last(x, training=training)),
                                   rtol=1e-4, atol=1e-4)
    # The global setting is left as it was.
    assert keras.config.image_data_format() == "channels_last"


def test_channels_first_distillation_step_matches_channels_last():
    from keras_mixkd.distill import Distiller

    x = np.random.default_rng(1).random((8, 32, 32, 3)).astype("float32")
    y = np.random.default_rng(2).integers(0, 5, 8)
    losses = {}
    students = {}
    for data_format in ("channels_last", "channels_first"):
        keras.utils.set_random_seed(0)
        teacher = get_model("resnet8", 5, data_format=data_format)
        student = get_model("resnet8", 5, data_format=data_format)
        distiller = Distiller(teacher, student, loss="standardized", student_loss_weight=0.1)
        distiller.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        losses[data_format] = [float(distiller.train_on_batch(x, y, return_dict=True)["loss"]) for _ in range(2)]
        students[data_format] = student
    np.testing.assert_allclose(losses["channels_first"], losses["channels_last"], rtol=1e-4)
    for a, b in zip(students["channels_first"].weights, students["channels_last"].weights):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-3, atol=1e-5)


def test_channels_first_model_saves_and_loads(tmp_path):
    import keras_mixkd.models  # noqa: F401  (registers BatchNormalization for loading)

    _, first = _pair("resnet8", (32, 32, 3))
    path = str(tmp_path / "m.keras")
    first.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(_np(loaded(x, training=False)), _np(first(x, training=False)), rtol=1e-5, atol=1e-6)


def test_bad_data_format_is_refused():
    with pytest.raises(ValueError, match="data_format must be 'channels_last', 'channels_first' or None, got 'NCHW'"):
        get_model("resnet8", 5, data_format="NCHW")
    with pytest.raises(ValueError, match="'shufflev2' is built channels-last only.*resnet8"):
        get_model("shufflev2", 5, data_format="channels_first")


def test_default_is_channels_last_whatever_the_global_setting():
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        model = get_model("resnet8", 5)
    finally:
        keras.config.set_image_data_format(previous)
    assert "to_channels_first" not in [layer.name for layer in model.layers]
    assert model.get_layer("stem_conv").data_format == "channels_last"


@pytest.mark.parametrize("axis", [1, -1])
def test_batch_normalization_matches_keras(axis):
    """Outputs, moving statistics and gradients of the fused layer equal Keras's own (every backend)."""
    rng = np.random.default_rng(4)
    shape = (6, 3, 5, 4) if axis == 1 else (6, 5, 4, 3)
    x = (rng.standard_normal(shape) * 3 + 1).astype("float32")
    ours = BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)
    reference = keras.layers.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)
    for layer in (ours, reference):
        layer.build(shape)
        layer.gamma.assign(rng.uniform(0.5, 2.0, 3).astype("float32"))
        layer.beta.assign(rng.uniform(-1.0, 1.0, 3).astype("float32"))
    reference.set_weights(ours.get_weights())
    for training in (True, False, True):
        np.testing.assert_allclose(_np(ours(x, training=training)), _np(reference(x, training=training)),
                                   rtol=1e-5, atol=1e-5)
    for a, b in zip(ours.weights, reference.weights):  # gamma, beta, moving mean and variance
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-6)
    # The moving variance uses the batch's biased variance, as Keras does (float64 NumPy).
    reduce = (0, 2, 3) if axis == 1 else (0, 1, 2)
    fresh = BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)
    fresh(x, training=True)
    np.testing.assert_allclose(_np(fresh.moving_variance), 0.9 + 0.1 * x.astype("float64").var(axis=reduce),
                               rtol=1e-5)
    if keras.backend.backend() == "torch":
        import torch

        grads = []
        for layer in (ours, reference):
            inputs = torch.tensor(x, requires_grad=True)
            layer(inputs, training=True).pow(2).sum().backward()
            grads.append((inputs.grad.numpy(), layer.gamma.value.grad.numpy()))
        np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-3, atol=1e-3)


def test_zoo_uses_the_fused_layer_only_under_torch():
    model = get_model("resnet8", 5)
    layer = model.get_layer("stem_bn")
    assert isinstance(layer, keras.layers.BatchNormalization)
    assert (type(layer) is BatchNormalization) == (keras.backend.backend() == "torch")
