"""The model zoo of the two studies, and small nets for the embedded digits.

Every model is a functional `keras.Model` that outputs **logits**; its flat
penultimate feature vector is the output of the layer named `"features"` and
its classifier is the Dense layer named `"logits"`.

Example:

>>> from keras_mixkd.models import get_model
>>> student = get_model("resnet20", num_classes=100)
>>> features = student.get_layer("features").output   # (None, 64)

Parameter counts of the CIFAR zoo equal those of the reference PyTorch code
(RepDistiller / mdistiller) when counted the PyTorch way: trainable weights
plus BatchNorm gamma/beta, *without* BatchNorm's moving mean and variance
(Keras lists those as non-trainable weights, PyTorch keeps them as buffers,
so `model.count_params()` is larger). `count_params_pytorch_style(model)`
gives the papers' count. At 100 classes, 32x32x3 input:

| model | params | features | | model | params | features |
|---|---|---|---|---|---|---|
| resnet8 | 0.084 M | 64 | | wrn_16_1 | 0.181 M | 64 |
| resnet14 | 0.181 M | 64 | | wrn_16_2 | 0.703 M | 128 |
| resnet20 | 0.278 M | 64 | | wrn_40_1 | 0.570 M | 64 |
| resnet32 | 0.473 M | 64 | | wrn_40_2 | 2.255 M | 128 |
| resnet44 | 0.667 M | 64 | | vgg8 | 3.965 M | 512 |
| resnet56 | 0.862 M | 64 | | vgg11 | 9.277 M | 512 |
| resnet110 | 1.737 M | 64 | | vgg13 | 9.462 M | 512 |
| resnet8x4 | 1.234 M | 256 | | vgg16 | 14.774 M | 512 |
| resnet32x4 | 7.434 M | 256 | | vgg19 | 20.087 M | 512 |
| mobilenetv2 (half) | 0.813 M | 1280 | | resnet18 | 11.220 M | 512 |
| shufflev1 | 0.949 M | 960 | | lenet5 | 0.070 M | 84 |
| shufflev2 | 1.356 M | 1024 | | alexnet | 2.495 M | 256 |

Small nets for the embedded 8x8x1 digits: digits_cnn_small (1.4 k params,
16-d features) and digits_cnn (66 k, 64-d); both take any size from 2x2 up.

Strided convolutions pad one pixel on every side, as PyTorch's
`padding=1` does (Keras' "same" would pad only the bottom/right), and
ShuffleNetV1's pooled shortcut counts the zero padding like PyTorch's
`AvgPool2d`: the networks compute what the reference code computes.
They also start where it starts: convolutions of the ResNets, WRNs, VGGs and
MobileNetV2 are kaiming-normal (fan-out), the ShuffleNets, LeNet-5 and
AlexNet use PyTorch's default U(+-1/sqrt(fan_in)), the classifiers follow
each reference file (PyTorch's Linear default; zero bias for WRN; N(0, 0.01)
and zero bias for VGG and MobileNetV2). The digits nets use Keras' defaults.
The CIFAR nets end in global average pooling, so they also take other image
sizes (e.g. 8x8x1 digits); LeNet-5 needs at least 16x16, AlexNet 29x29 and
the VGGs 8x8, and say so when given less.
"""

import importlib

import keras

from keras_mixkd.models.batch_normalization import BatchNormalization
from keras_mixkd.models.direct_graph_call import DirectGraphCall
from keras_mixkd.models.direct_graph_call import direct_call_or_model
from keras_mixkd.models.direct_graph_call import direct_call_problem
from keras_mixkd.models.preprocessing import INPUT_NORMALIZATION_LAYER
from keras_mixkd.models.preprocessing import INPUT_NORMALIZED
from keras_mixkd.models.preprocessing import input_normalization
from keras_mixkd.models.preprocessing import resolve_input_normalization
from keras_mixkd.models.preprocessing import with_preprocessing

# name -> (module in this package, builder function).
_REGISTRY = {
    **{
        f"resnet{depth}": ("resnet", f"resnet{depth}")
        for depth in (8, 14, 20, 32, 44, 56, 110)
    },
    "resnet8x4": ("resnet", "resnet8x4"),
    "resnet32x4": ("resnet", "resnet32x4"),
    **{name: ("wrn", name) for name in ("wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2")},
    **{name: ("vgg", name) for name in ("vgg8", "vgg11", "vgg13", "vgg16", "vgg19")},
    "mobilenetv2": ("mobilenetv2", "mobilenetv2"),
    "shufflev1": ("shufflenetv1", "shufflev1"),
    "shufflev2": ("shufflenetv2", "shufflev2"),
    "resnet18": ("resnet18", "resnet18"),
    "lenet5": ("lenet", "lenet5"),
    "alexnet": ("alexnet", "alexnet"),
    "digits_cnn_small": ("digits_cnn", "digits_cnn_small"),
    "digits_cnn": ("digits_cnn", "digits_cnn"),
}

# Other spellings users of RepDistiller / mdistiller type (matched after
# lower-casing, so "MobileNetV2", "ShuffleV1", "ResNet18" work as they are).
_ALIASES = {
    "mobile_half": "mobilenetv2",
    "mobilenetv2_half": "mobilenetv2",
    "shufflenetv1": "shufflev1",
    "shufflenetv2": "shufflev2",
    "lenet": "lenet5",
    **{f"{name}_bn": name for name in ("vgg8", "vgg11", "vgg13", "vgg16", "vgg19")},
}


def list_models():
    """Names accepted by `get_model`, sorted."""
    return sorted(_REGISTRY)


# name -> one line saying what the model is (`keras-mixkd list models`).
_DESCRIPTIONS = {
    **{f"resnet{depth}": f"CIFAR ResNet-{depth} (He et al.; 16/32/64 channels)"
       for depth in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": "CIFAR ResNet-8, 4x wider (64/128/256 channels)",
    "resnet32x4": "CIFAR ResNet-32, 4x wider (64/128/256 channels)",
    **{f"wrn_{depth}_{width}": f"Wide ResNet, depth {depth}, width {width}"
       for depth, width in ((16, 1), (16, 2), (40, 1), (40, 2))},
    **{f"vgg{depth}": f"VGG-{depth} with batch norm (CIFAR)" for depth in (8, 11, 13, 16, 19)},
    "resnet18": "ResNet-18 with a CIFAR stem (study A's teacher)",
    "mobilenetv2": "MobileNetV2, half width (CIFAR distillation benchmark student)",
    "shufflev1": "ShuffleNetV1 (CIFAR)",
    "shufflev2": "ShuffleNetV2 (CIFAR)",
    "lenet5": "LeNet-5 (study A's student; images >= 16x16)",
    "alexnet": "AlexNet for small images (study A's student; images >= 29x29)",
    "digits_cnn": "small CNN for the embedded 8x8 digits (teacher)",
    "digits_cnn_small": "tiny CNN for the embedded 8x8 digits (student)",
}


def describe_model(name):
    """One line saying what the model `name` (a `list_models()` name or an alias) is.

    Arguments:
        name: a name `get_model` accepts.

    Returns:
        The description, e.g. "Wide ResNet, depth 40, width 2".

    Example:

    >>> from keras_mixkd.models import describe_model
    >>> describe_model("wrn_40_2")
    'Wide ResNet, depth 40, width 2'
    """
    return _DESCRIPTIONS[_registry_key(name)]


def get_model(name, num_classes, input_shape=(32, 32, 3), data_format=None):
    """Build a model of the zoo by name.

    Arguments:
        name: one of `list_models()`, e.g. "resnet20", "wrn_40_2",
            "resnet32x4", "digits_cnn" (case-insensitive; the reference
            code's spellings "MobileNetV2", "mobile_half", "ShuffleV1",
            "vgg8_bn" are accepted too).
        num_classes: number of output logits.
        input_shape: (height, width, channels), channels last. The CIFAR zoo
            is made for (32, 32, 3) and takes other sizes its downsampling
            allows; the digits nets take anything from 2x2 up (e.g. (8, 8, 1)).
        data_format: layout of the tensors inside the model, "channels_last"
            (NHWC) or "channels_first" (NCHW); None: the shipped default,
            "channels_last" (not `keras.config.image_data_format()`: see
            docs/performance.md for why); "auto": the faster layout of the
            current backend for this model (`resolve_data_format`:
            channels-first on PyTorch where the model offers it, where
            Keras's channels-last convolutions copy their tensors around
            every call; channels-last elsewhere). Either way the model takes NHWC
            images as loaded: a channels-first model transposes them once,
            in its first layer ("to_channels_first"), and computes the same
            numbers (to float round-off) from the same seed. Channels-first is
            offered by the ResNets, WRNs, VGGs, ResNet-18, MobileNetV2 and
            the digits nets.

    Returns:
        A functional `keras.Model` producing logits, with layers named
        "features" (flat penultimate features) and "logits".

    Example:

    >>> model = get_model("digits_cnn", num_classes=10, input_shape=(8, 8, 1))
    >>> model.output_shape
    (None, 10)
    """
    key = _registry_key(name)
    module_name, builder_name = _REGISTRY[key]
    data_format = resolve_data_format(data_format, key)
    module = importlib.import_module(f"keras_mixkd.models.{module_name}")
    # Every layer reads Keras's image data format when it is created (and keeps it in its config).
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(data_format)
    try:
        return getattr(module, builder_name)(num_classes=num_classes, input_shape=input_shape)
    finally:
        keras.config.set_image_data_format(previous)


# Families whose layers all follow the data format (the others reshape or split channels last).
_CHANNELS_FIRST_MODULES = ("resnet", "wrn", "vgg", "resnet18", "mobilenetv2", "digits_cnn")


def resolve_data_format(data_format, name):
    """The layout `get_model(name, ..., data_format=data_format)` builds: "channels_last" or "channels_first".

    "auto" picks channels-first on the PyTorch backend for the models that
    offer it (Keras's PyTorch convolutions copy a channels-last tensor to and
    from PyTorch's layout around every call: measured 0.82 of plain PyTorch's
    speed channels-last against 0.95 channels-first, docs/performance.md) and
    channels-last everywhere else (TensorFlow's oneDNN and XLA:CPU prefer
    NHWC). Both compute the same numbers up to float round-off.

    Arguments:
        data_format: None, "auto", "channels_last" or "channels_first".
        name: a model name of `list_models()`.

    Returns:
        "channels_last" or "channels_first".

    Example:

    >>> resolve_data_format("auto", "lenet5")   # offers channels-last only
    'channels_last'
    """
    key = _registry_key(name)
    module_name = _REGISTRY[key][0]
    if data_format == "auto":
        if keras.backend.backend() == "torch" and module_name in _CHANNELS_FIRST_MODULES:
            return "channels_first"
        return "channels_last"
    return _check_data_format(data_format, key, module_name)


def offers_channels_first(name):
    """Whether the zoo model `name` can be built channels-first (`get_model(..., data_format="channels_first")`)."""
    return _REGISTRY[_registry_key(name)][0] in _CHANNELS_FIRST_MODULES


def model_data_format(model):
    """The layout a zoo model computes in: "channels_first" if it transposes its input to NCHW, else "channels_last".

    Reads the model (a zoo model, or one wrapping it as `with_preprocessing`
    does), so it also tells the layout of a model loaded from a file.
    """
    def layers_of(layer):
        yield layer
        for inner in getattr(layer, "layers", ()):
            yield from layers_of(inner)

    return ("channels_first" if any(layer.name == "to_channels_first" for layer in layers_of(model))
            else "channels_last")


def _registry_key(name):
    """The zoo's key of a model name (case and the reference code's spellings aside); unknown names raise."""
    if not isinstance(name, str):
        raise TypeError(f"Model name must be a string, got {name!r}.")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}. Known models: {', '.join(list_models())}.")
    return key


def _check_data_format(data_format, key, module_name):
    if data_format is None:
        return "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format must be 'channels_last', 'channels_first', 'auto' or None, got {data_format!r}."
        )
    if data_format == "channels_first" and module_name not in _CHANNELS_FIRST_MODULES:
        supported = sorted(k for k, (m, _) in _REGISTRY.items() if m in _CHANNELS_FIRST_MODULES)
        raise ValueError(
            f"Model {key!r} is built channels-last only (data_format='channels_first' was given); "
            f"channels-first models: {', '.join(supported)}."
        )
    return data_format


def count_params_pytorch_style(model):
    """Number of parameters as PyTorch counts them.

    Trainable weights plus BatchNorm's gamma/beta (trainable or frozen), but
    not BatchNorm's moving mean/variance, which PyTorch stores as buffers.
    This is the count the KD papers print (e.g. resnet20: 0.278 M).

    Arguments:
        model: a `keras.Model`.

    Example:

    >>> count_params_pytorch_style(get_model("resnet20", 100))
    278324
    """
    import keras

    moving = set()
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            moving.add(id(layer.moving_mean))
            moving.add(id(layer.moving_variance))
    total = 0
    seen = set()
    for weight in model.weights:
        if id(weight) in seen or id(weight) in moving:
            continue
        seen.add(id(weight))
        size = 1
        for dim in weight.shape:
            size *= int(dim)
        total += size
    return total


def _all_layers(model):
    # Nested models and layers too: a BatchNormalization inside a sub-block.
    from keras_mixkd._keras_compat import sublayers

    return sublayers(model, recursive=True)


__all__ = [
    "describe_model",
    "BatchNormalization",
    "DirectGraphCall",
    "direct_call_or_model",
    "direct_call_problem",
    "get_model",
    "list_models",
    "resolve_data_format",
    "offers_channels_first",
    "model_data_format",
    "count_params_pytorch_style",
    "resolve_input_normalization",
    "with_preprocessing",
    "input_normalization",
    "INPUT_NORMALIZATION_LAYER",
]
