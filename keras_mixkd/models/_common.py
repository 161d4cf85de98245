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
    pad = kernel_size // 2
    if strides > 1 and pad > 0:
        x = keras.layers.ZeroPadding2D(pad, name=None if name is None else f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        name=name,
    )(x)


def depthwise_conv2d(x, kernel_size, strides=1, name=None, initializer="glorot_uniform"):
    """A depthwise convolution (no bias) padded like PyTorch's."""
    pad = kernel_size // 2
    if strides > 1 and pad > 0:
        x = keras.layers.ZeroPadding2D(pad, name=None if name is None else f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        depthwise_initializer=initializer,
        name=name,
    )(x)


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
