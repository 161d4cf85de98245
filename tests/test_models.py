"""The model zoo: names, forward passes, features, parameter counts, bad input."""

import keras
import numpy as np
import pytest

from keras_mixkd.models import count_params_pytorch_style
from keras_mixkd.models import get_model
from keras_mixkd.models import list_models

DIGITS_MODELS = ("digits_cnn_small", "digits_cnn")

# Parameter counts of the reference zoo at 100 classes (../shared/papers.md,
# counted from RepDistiller / mdistiller), in millions to the printed
# precision, and the width of each model's feature vector.
REFERENCE_MILLIONS = {
    "resnet20": 0.278,
    "resnet32": 0.473,
    "resnet56": 0.862,
    "resnet110": 1.737,
    "resnet8x4": 1.234,
    "resnet32x4": 7.434,
    "wrn_16_2": 0.703,
    "wrn_40_1": 0.570,
    "wrn_40_2": 2.255,
    "vgg8": 3.965,
    "vgg13": 9.462,
    "mobilenetv2": 0.813,
    "shufflev1": 0.949,
    "shufflev2": 1.356,
}
FEATURE_WIDTH = {
    **{f"resnet{d}": 64 for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": 256,
    "resnet32x4": 256,
    "wrn_16_1": 64,
    "wrn_16_2": 128,
    "wrn_40_1": 64,
    "wrn_40_2": 128,
    **{f"vgg{d}": 512 for d in (8, 11, 13, 16, 19)},
    "mobilenetv2": 1280,
    "shufflev1": 960,
    "shufflev2": 1024,
    "resnet18": 512,
    "lenet5": 84,
    "alexnet": 256,
    "digits_cnn_small": 16,
    "digits_cnn": 64,
}
CIFAR_ZOO = sorted(set(FEATURE_WIDTH) - set(DIGITS_MODELS))

# Initialisation of the reference code, one representative weight per model:
# (layer, weight index, kind, scale). "normal": N(0, scale); "uniform":
# U(-scale, scale) (PyTorch's default, scale = 1 / sqrt(fan_in)); "zeros".
_KAIMING = lambda fan_out: ("normal", (2.0 / fan_out) ** 0.5)  # noqa: E731
_TORCH = lambda fan_in: ("uniform", fan_in ** -0.5)  # noqa: E731
REFERENCE_INIT = {
    **{f"resnet{d}": [("stage3_block0_conv2", 0, *_KAIMING(9 * 64)), ("logits", 0, *_TORCH(64)),
                      ("logits", 1, *_TORCH(64))] for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": [("stage3_block0_conv2", 0, *_KAIMING(9 * 256)), ("logits", 1, *_TORCH(256))],
    "resnet32x4": [("stage3_block0_conv2", 0, *_KAIMING(9 * 256)), ("logits", 0, *_TORCH(256))],
    "resnet18": [("stage4_block1_conv2", 0, *_KAIMING(9 * 512)), ("logits", 0, *_TORCH(512))],
    **{f"wrn_{d}_{k}": [("stage3_block0_conv2", 0, *_KAIMING(9 * 64 * k)), ("logits", 0, *_TORCH(64 * k)),
                        ("logits", 1, "zeros", 0.0)] for d in (16, 40) for k in (1, 2)},
    **{f"vgg{d}": [("block4_conv0", 0, *_KAIMING(9 * 512)), ("block4_conv0", 1, "zeros", 0.0),
                   ("logits", 0, "normal", 0.01), ("logits", 1, "zeros", 0.0)] for d in (8, 11, 13, 16, 19)},
    # PyTorch counts a depthwise kernel's fans over its own channel only.
    "mobilenetv2": [("stage3_block0_depthwise", 0, *_KAIMING(9 * 96)), ("stage3_block0_expand", 0, *_KAIMING(96)),
                    ("logits", 0, "normal", 0.01)],
    "shufflev1": [("stage2_block1_conv2", 0, *_TORCH(9)), ("stage2_block1_conv3", 0, *_TORCH(120 // 3)),
                  ("logits", 0, *_TORCH(960))],
    "shufflev2": [("stage2_block0_dw_conv", 0, *_TORCH(9)), ("head_conv", 0, *_TORCH(464)),
                  ("logits", 1, *_TORCH(1024))],
    "lenet5": [("fc1", 0, *_TORCH(400)), ("fc1", 1, *_TORCH(400)), ("logits", 0, *_TORCH(84))],
    "alexnet": [("conv3", 0, *_TORCH(192 * 9)), ("logits", 0, *_TORCH(256))],
}


def _check_initialisation(model, layer, index, kind, scale):
    values = keras.ops.convert_to_numpy(model.get_layer(layer).weights[index]).astype(np.float64).ravel()
    where = f"{model.name}/{layer}[{index}]"
    if kind == "zeros":
        assert np.all(values == 0.0), where
        return
    # Four standard errors of a sample std (relative error ~ 1 / sqrt(2n)).
    tolerance = 4.0 / np.sqrt(2 * values.size)
    expected_std = scale if kind == "normal" else scale / np.sqrt(3.0)
    if values.size >= 500:
        assert abs(values.std() / expected_std - 1.0) < tolerance, (where, values.std(), expected_std)
    if kind == "uniform":
        assert np.abs(values).max() <= scale * (1 + 1e-6), where
        assert np.abs(values).max() > 0.8 * scale, where


def _conv(cin, cout, k):
    return cin * cout * k * k


# Models outside the table, counted by hand from their architectures at 100
# classes. ResNet-18: the well-known 11,173,962 at 10 classes, +90 outputs.
HAND_COUNTS = {
    "resnet18": 11_173_962 + 90 * (512 + 1),
    "lenet5": _conv(3, 6, 5) + 6 + _conv(6, 16, 5) + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 100 + 100,
    "alexnet": (
        _conv(3, 64, 11) + 64 + _conv(64, 192, 5) + 192 + _conv(192, 384, 3) + 384
        + _conv(384, 256, 3) + 256 + _conv(256, 256, 3) + 256 + 256 * 100 + 100
    ),
}


def _predict(model, images):
    if keras.backend.backend() == "jax":
        # One compiled call: JAX's eager mode would compile every op of a
        # deep net separately, many times slower.
        return keras.ops.convert_to_numpy(model.predict_on_batch(images))
    return keras.ops.convert_to_numpy(model(images, training=False))


def _forward(model, input_shape, rng):
    images = rng.random((2, *input_shape)).astype("float32")
    return images, _predict(model, images)


def _check_contract(model, num_classes):
    features = model.get_layer("features")
    head = model.get_layer("logits")
    assert isinstance(head, keras.layers.Dense)
    assert head.units == num_classes
    assert len(features.output.shape) == 2  # flat feature vector
    assert model.outputs[0] is head.output or model.output_shape == (None, num_classes)
    # The classifier reads the features directly.
    assert head.input is features.output


@pytest.mark.parametrize("name", CIFAR_ZOO)
def test_zoo_model_builds_runs_and_matches_the_reference_count(name, rng):
    # Built once at 100 classes: counted, then run at batch 2.
    model = get_model(name, 100)
    _check_contract(model, 100)
    assert model.get_layer("features").output.shape == (None, FEATURE_WIDTH[name])
    if name in REFERENCE_MILLIONS:
        millions = count_params_pytorch_style(model) / 1e6
        assert round(millions, 3) == REFERENCE_MILLIONS[name], (name, millions)
    if name in HAND_COUNTS:
        assert count_params_pytorch_style(model) == HAND_COUNTS[name]
    for check in REFERENCE_INIT[name]:
        _check_initialisation(model, *check)
    _, logits = _forward(model, (32, 32, 3), rng)
    assert logits.shape == (2, 100) and np.all(np.isfinite(logits))


def test_every_listed_model_is_covered():
    assert set(list_models()) == set(FEATURE_WIDTH)


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_1", "vgg8", "shufflev2"])
def test_zoo_models_take_small_grey_images(name, rng):
    model = get_model(name, 10, (8, 8, 1))
    _, logits = _forward(model, (8, 8, 1), rng)
    assert logits.shape == (2, 10)


@pytest.mark.parametrize("name, size", [("lenet5", 16), ("alexnet", 29), ("vgg8", 8)])
def test_too_small_inputs_are_refused(name, size):
    with pytest.raises(ValueError, match=f"at least {size}x{size}"):
        get_model(name, 10, (size - 1, size - 1, 3))


def test_aliases_of_the_reference_code():
    assert get_model("LeNet", 10).name == "lenet5"
    # Argument checks run before building: the error names the model that
    # the alias resolved to, at no building cost.
    for alias, name in (("MobileNetV2", "mobilenetv2"), ("mobile_half", "mobilenetv2"),
                        ("ShuffleV1", "shufflev1"), ("vgg8_bn", "vgg8")):
        with pytest.raises(ValueError, match=f"^{name}: `num_classes`"):
            get_model(alias, 1)


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
    with pytest.raises(TypeError, match="string"):
        get_model(None, 10)


def test_vgg_pools_a_fourth_time_only_at_64_pixels():
    # As the reference code: 32x32 reaches the last block at 4x4, 64x64 too.
    small = get_model("vgg8", 10, (32, 32, 3))
    large = get_model("vgg8", 10, (64, 64, 3))
    assert small.get_layer("block4_conv0").output.shape[1:3] == (4, 4)
    assert large.get_layer("block4_conv0").output.shape[1:3] == (4, 4)
    assert "pool3" in [layer.name for layer in large.layers]
    assert "pool3" not in [layer.name for layer in small.layers]


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


# --- building blocks against NumPy references ------------------------------


def test_channel_shuffle_matches_the_shufflenet_permutation(rng):
    from keras_mixkd.models.channel_shuffle import ChannelShuffle

    groups, per_group = 3, 4
    x = rng.random((2, 3, 5, groups * per_group)).astype("float32")
    out = keras.ops.convert_to_numpy(ChannelShuffle(groups)(x))
    # Channel g * per_group + j moves to position j * groups + g.
    expected = np.empty_like(x)
    for g in range(groups):
        for j in range(per_group):
            expected[..., j * groups + g] = x[..., g * per_group + j]
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="cannot be split into 3 groups"):
        ChannelShuffle(3)(np.zeros((1, 2, 2, 4), "float32"))


def test_channel_split(rng):
    from keras_mixkd.models.channel_split import ChannelSplit

    x = rng.random((2, 3, 3, 6)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ChannelSplit(2, 5)(x)), x[..., 2:5])
    with pytest.raises(ValueError, match="start < stop"):
        ChannelSplit(3, 3)
    with pytest.raises(ValueError, match="exceeds the 6 channels"):
        ChannelSplit(0, 7)(x)


@pytest.mark.parametrize("size", [8, 7])
def test_strided_convolution_pads_like_pytorch(rng, size):
    # A 3x3 stride-2 convolution with one zero pixel on every side
    # (PyTorch's padding=1), written from the definition in float64.
    from keras_mixkd.models._common import conv2d

    inputs = keras.Input((size, size, 2))
    model = keras.Model(inputs, conv2d(inputs, 3, 3, strides=2, name="conv"))
    kernel = rng.normal(size=(3, 3, 2, 3))
    model.get_layer("conv").set_weights([kernel.astype("float32")])
    x = rng.random((1, size, size, 2))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out_size = (size + 2 - 3) // 2 + 1
    expected = np.zeros((1, out_size, out_size, 3))
    for i in range(out_size):
        for j in range(out_size):
            patch = padded[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            expected[0, i, j] = np.einsum("hwc,hwco->o", patch, kernel)
    out = keras.ops.convert_to_numpy(model(x.astype("float32")))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_shortcut_average_pool_counts_the_padding(rng):
    # ShuffleNetV1's stride-2 shortcut averages 3x3 windows over a zero-padded
    # input, dividing by 9 even at the border (PyTorch's AvgPool2d default).
    from keras_mixkd.models.shufflenetv1 import shuffle_bottleneck

    inputs = keras.Input((4, 4, 6))
    block = keras.Model(inputs, shuffle_bottleneck(inputs, 18, strides=2, groups=3, name="b"))
    probe = keras.Model(inputs, block.get_layer("b_shortcut_pool").output)
    stem = rng.random((1, 4, 4, 6))
    pooled = keras.ops.convert_to_numpy(probe(stem.astype("float32"))).astype(np.float64)
    assert block.output.shape == (None, 2, 2, 18)
    padded = np.pad(stem, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.array([[padded[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].sum(axis=(0, 1)) / 9.0
                          for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(pooled[0], expected, rtol=1e-4, atol=1e-6)


def test_custom_layers_round_trip_through_keras_files(tmp_path, rng):
    # A small net made of ShuffleNetV2's blocks: ChannelSplit and
    # ChannelShuffle must save and load with the model.
    from keras_mixkd.models.shufflenetv2 import basic_block
    from keras_mixkd.models.shufflenetv2 import down_block

    inputs = keras.Input((8, 8, 3))
    x = down_block(inputs, 8, name="down")
    x = basic_block(x, name="block")
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="logits")(features))
    images = rng.random((2, 8, 8, 3)).astype("float32")
    path = tmp_path / "small_shufflenet.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(_predict(restored, images), _predict(model, images), rtol=1e-5, atol=1e-5)
