"""Helpers shared by every model family: input checks and the named head."""

import numbers

import keras


def check_input_shape(input_shape, model_name, min_size=1, channels=None):
    """Validate `input_shape` (H, W, C) and return it as a tuple of ints.

    Arguments:
        input_shape: sequence of three positive ints, channels last.
        model_name: the model asked for, named in error messages.
        min_size: smallest height/width the architecture can take (its
            downsampling needs at least this many pixels per side).
        channels: if given, the only accepted number of channels.
    """
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TypeError(
            f"{model_name}: `input_shape` must be a tuple (height, width, "
            f"channels) of ints, got {input_shape!r}."
        ) from None
    if len(shape) != 3 or any(d <= 0 for d in shape):
        raise ValueError(
            f"{model_name}: `input_shape` must be three positive ints "
            f"(height, width, channels), channels last; got {input_shape!r}."
        )
    height, width, depth = shape
    if height < min_size or width < min_size:
        raise ValueError(
            f"{model_name} downsamples its input and needs images of at "
            f"least {min_size}x{min_size} pixels; got input_shape={shape}. "
            "Resize the images (e.g. `load_dataset(..., image_size=(32, 32))`) "
            "or choose a smaller model such as 'digits_cnn'."
        )
    if channels is not None and depth != channels:
        raise ValueError(
            f"{model_name} takes {channels}-channel images; got "
            f"input_shape={shape}."
        )
    return shape


def check_num_classes(num_classes, model_name):
    """Validate `num_classes` (an int >= 2) and return it as a Python int."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(
            f"{model_name}: `num_classes` must be an int, got "
            f"{num_classes!r} of type {type(num_classes).__name__}."
        )
    if num_classes < 2:
        raise ValueError(
            f"{model_name}: `num_classes` must be at least 2, got {num_classes}."
        )
    return int(num_classes)


def model_input(num_classes, input_shape, model_name, min_size=1, channels=None):
    """Check a builder's arguments and make its input: `(num_classes, inputs, x)`.

    What every model of the zoo does before its first layer:
    `check_num_classes`, `check_input_shape`, then `image_input`.

    Arguments:
        num_classes: number of output logits, an int >= 2.
        input_shape: (height, width, channels), channels last.
        model_name: the model asked for, named in error messages.
        min_size: smallest height/width the architecture can take.
        channels: if given, the only accepted number of channels.

    Returns:
        `num_classes` as a Python int, the NHWC input named "images", and
        `x`, that input as the layers being built expect it.

    Example:

    >>> num_classes, inputs, x = model_input(10, (32, 32, 3), "resnet20")
    >>> num_classes, inputs.shape
    (10, (None, 32, 32, 3))
    """
    num_classes = check_num_classes(num_classes, model_name)
    input_shape = check_input_shape(input_shape, model_name, min_size=min_size, channels=channels)
    inputs, x = image_input(input_shape)
    return num_classes, inputs, x


def pooled_classifier(inputs, x, num_classes, name, init="keras"):
    """The model that ends `x` with global average pooling ("features") and the "logits" head.

    Arguments:
        inputs: the model's input (from `model_input`).
        x: the last feature map, in the data format being built.
        num_classes: number of output logits.
        name: name of the returned model.
        init: the head's initialisation, as in `classifier_head`.

    Returns:
        A `keras.Model` from `inputs` to the logits.

    Example:

    >>> num_classes, inputs, x = model_input(10, (8, 8, 1), "tiny")
    >>> x = keras.layers.Conv2D(4, 3, name="conv")(x)
    >>> pooled_classifier(inputs, x, num_classes, "tiny").get_layer("features").output.shape
    (None, 4)
    """
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = classifier_head(features, num_classes, init=init)
    return keras.Model(inputs, logits, name=name)


def blocks_per_stage(depth, extra_layers, family):
    """Blocks in each of the three stages of a `6n + extra_layers`-layer CIFAR net: n.

    Arguments:
        depth: the number of weighted layers asked for.
        extra_layers: the layers outside the stages (2 for a ResNet, 4 for a WRN).
        family: the architecture, named in the error message.

    Returns:
        n, an int.

    Example:

    >>> blocks_per_stage(20, 2, "CIFAR ResNet")
    3
    """
    if (depth - extra_layers) % 6 != 0:
        raise ValueError(f"A {family} has 6n+{extra_layers} layers, got depth={depth}.")
    return (depth - extra_layers) // 6


def classifier_head(features, num_classes, init="keras"):
    """The final Dense layer, named "logits", on the flat feature vector.

    Under a mixed-precision policy (`mixed_float16`, `mixed_bfloat16`) it
    computes in float32, as Keras's mixed-precision guide asks of the last
    layer: the logits, the losses and a SavedModel's outputs stay float32.

    `init` picks the reference code's initialisation: "keras" (Keras'
    defaults), "torch" (PyTorch's Linear default), "torch_zero_bias"
    (PyTorch's default weight, zero bias: WRN) or "normal_0.01"
    (N(0, 0.01) weight, zero bias: VGG, MobileNetV2).
    """
    policy = keras.config.dtype_policy()
    dtype = "float32" if policy.compute_dtype != policy.variable_dtype else None
    fan_in = features.shape[-1]
    kernel, bias = {
        "keras": ("glorot_uniform", "zeros"),
        "torch": (torch_default_kernel(), torch_default_bias(fan_in)),
        "torch_zero_bias": (torch_default_kernel(), "zeros"),
        "normal_0.01": (keras.initializers.RandomNormal(0.0, 0.01), "zeros"),
    }[init]
    return keras.layers.Dense(
        num_classes,
        kernel_initializer=kernel,
        bias_initializer=bias,
        name="logits",
        dtype=dtype,
    )(features)


def batch_norm(name=None):
    # PyTorch's BatchNorm2d defaults (momentum 0.1 there = 0.9 here, eps 1e-5),
    # so a trained reference model and this one normalise alike. Under the PyTorch
    # backend, the layer that calls PyTorch's fused kernel (Keras's own runs
    # several element-wise passes); elsewhere Keras's layer, so the models and
    # files the other backends build are Keras's alone.
    from keras_mixkd.models.batch_normalization import BatchNormalization

    layer = BatchNormalization if keras.backend.backend() == "torch" else keras.layers.BatchNormalization
    return layer(axis=channel_axis(), momentum=0.9, epsilon=1e-5, name=name)


def channel_axis():
    """The channel axis of the layers being built: 1 under "channels_first", else -1.

    `get_model(..., data_format=...)` sets Keras's image data format while a
    model is built; every layer reads it when it is created.
    """
    return 1 if keras.config.image_data_format() == "channels_first" else -1


def channels(x):
    """Number of channels of a 4-D tensor in the data format being built."""
    return x.shape[channel_axis()]


def image_input(input_shape):
    """`(inputs, x)`: the NHWC input named "images", and `x` as the layers being built expect it.

    A channels-first model still takes the images as loaded (NHWC): its first
    layer, `Permute((3, 1, 2))` named "to_channels_first", transposes them once.
    """
    inputs = keras.Input(input_shape, name="images")
    if keras.config.image_data_format() != "channels_first":
        return inputs, inputs
    return inputs, keras.layers.Permute((3, 1, 2), name="to_channels_first")(inputs)


def conv2d(
    x,
    filters,
    kernel_size,
    strides=1,
    groups=1,
    use_bias=False,
    name=None,
    kernel_initializer="glorot_uniform",
    bias_initializer="zeros",
):
    """A convolution padded like PyTorch's `padding=kernel_size // 2`.

    Keras' "same" padding puts the odd pixel of a strided convolution at the
    bottom/right, PyTorch pads both sides alike; explicit zero padding keeps
    the sampling grid of the reference models (so their weights would carry
    over), at no cost in parameters.
    """
    x, padding = pad_like_torch(x, kernel_size, strides, name)
    layer = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, groups=groups, use_bias=use_bias,
        kernel_initializer=kernel_initializer, bias_initializer=bias_initializer, name=name,
    )
    return layer(x)


def depthwise_conv2d(x, kernel_size, strides=1, name=None, initializer="glorot_uniform"):
    """A depthwise convolution (no bias) padded like PyTorch's."""
    x, padding = pad_like_torch(x, kernel_size, strides, name)
    layer = keras.layers.DepthwiseConv2D(
        kernel_size, strides=strides, padding=padding, use_bias=False,
        depthwise_initializer=initializer, name=name,
    )
    return layer(x)


def pad_like_torch(x, kernel_size, strides=1, name=None):
    """`(x, padding)`: pad `x` as PyTorch's `padding=kernel_size // 2` would.

    Keras' "same" padding puts the odd pixel of a strided convolution at the
    bottom/right, PyTorch pads both sides alike. A strided convolution gets
    explicit zero padding (a `ZeroPadding2D` named "{name}_pad") and
    `padding="valid"`; any other keeps `x` and takes `padding="same"`, which
    then pads like PyTorch.

    Arguments:
        x: the 4-D tensor the convolution will take.
        kernel_size: the convolution's (square) kernel size, an int.
        strides: the convolution's stride, an int.
        name: the convolution's name (None: Keras names the padding layer).

    Example:

    >>> x, padding = pad_like_torch(keras.Input((32, 32, 3)), 3, strides=2, name="conv")
    >>> padding, x.shape
    ('valid', (None, 34, 34, 3))
    """
    pad = kernel_size // 2
    if strides > 1 and pad > 0:
        x = keras.layers.ZeroPadding2D(pad, name=None if name is None else f"{name}_pad")(x)
        return x, "valid"
    return x, "same"


# Initialisers of the reference PyTorch code, so a network starts where the
# benchmarks' networks start (the parameter count alone does not say that).


def kaiming_normal_fan_out(depthwise_channels=None):
    """`kaiming_normal_(mode="fan_out", nonlinearity="relu")`: N(0, 2 / fan_out).

    Also the `normal_(0, sqrt(2 / (k * k * out_channels)))` of the WRN, VGG
    and MobileNetV2 reference code. PyTorch counts a depthwise kernel's
    fan-out as k * k * channels, Keras as k * k: `depthwise_channels`
    corrects for it.
    """
    scale = 2.0 if depthwise_channels is None else 2.0 / depthwise_channels
    return keras.initializers.VarianceScaling(scale, "fan_out", "untruncated_normal")


def torch_default_kernel(depthwise_channels=None):
    """PyTorch's default for Conv2d/Linear weights: U(+-1 / sqrt(fan_in)).

    (`kaiming_uniform_(a=sqrt(5))`.) PyTorch's fan-in of a depthwise kernel
    is k * k, Keras' k * k * channels: `depthwise_channels` corrects for it.
    """
    scale = 1.0 / 3.0 if depthwise_channels is None else depthwise_channels / 3.0
    return keras.initializers.VarianceScaling(scale, "fan_in", "uniform")


def torch_default_bias(fan_in):
    """PyTorch's default bias of Conv2d/Linear: U(+-1 / sqrt(fan_in))."""
    bound = 1.0 / float(fan_in) ** 0.5
    return keras.initializers.RandomUniform(-bound, bound)


def zoo_builder(build, name, summary, input_note="(32, 32, 3) for CIFAR"):
    """Name and document `build(num_classes=100, input_shape=(32, 32, 3))`, a CIFAR zoo entry.

    The model families that register one builder per depth or width (ResNet,
    WRN, ...) make each with a closure; this gives it the name it is
    registered under and the docstring `help()` shows.

    Arguments:
        build: the builder, a function of `num_classes` and `input_shape`.
        name: the model's name, e.g. "resnet20".
        summary: one line on what it is, e.g. "CIFAR ResNet of depth 20".
        input_note: what the docstring says of `input_shape` after
            "(height, width, channels), ".

    Returns:
        `build`, named and documented.

    Example:

    >>> from keras_mixkd.models.resnet import cifar_resnet
    >>> def build(num_classes=100, input_shape=(32, 32, 3)):
    ...     return cifar_resnet(20, (16, 16, 32, 64), num_classes, input_shape, "resnet20")
    >>> resnet20 = zoo_builder(build, "resnet20", "CIFAR ResNet of depth 20")
    """
    build.__name__ = name
    build.__doc__ = (
        f"{name}: {summary}.\n\n"
        "    Arguments:\n"
        "        num_classes: number of output logits.\n"
        f"        input_shape: (height, width, channels), {input_note}.\n\n"
        "    Example:\n\n"
        f"    >>> model = {name}(num_classes=100)\n"
    )
    return build
