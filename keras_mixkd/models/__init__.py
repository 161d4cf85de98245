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
(Keras lists those as non-trainable weights, PyTorch keeps them as buffers).
`count_params_pytorch_style(model)` gives that count.
"""

import importlib

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


def get_model(name, num_classes, input_shape=(32, 32, 3)):
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

    Returns:
        A functional `keras.Model` producing logits, with layers named
        "features" (flat penultimate features) and "logits".

    Example:

    >>> model = get_model("digits_cnn", num_classes=10, input_shape=(8, 8, 1))
    >>> model.output_shape
    (None, 10)
    """
    if not isinstance(name, str):
        raise TypeError(f"Model name must be a string, got {name!r}.")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(
            f"Unknown model {name!r}. Known models: {', '.join(list_models())}."
        )
    module_name, builder_name = _REGISTRY[key]
    module = importlib.import_module(f"keras_mixkd.models.{module_name}")
    return getattr(module, builder_name)(num_classes=num_classes, input_shape=input_shape)


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
    return model._flatten_layers(include_self=False, recursive=True)


__all__ = ["get_model", "list_models", "count_params_pytorch_style"]
