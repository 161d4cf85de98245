"""MobileNetV2 at half width for CIFAR, as in the KD benchmarks ("mobile_half").

The variant of RepDistiller / mdistiller (from "Knowledge Distillation via
Route Constrained Optimization"): width multiplier 0.5, expansion 6, a
stride-2 3x3 stem with 16 channels, inverted-residual stages
(t, c, n, s) = (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
(6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1) with c halved, a 1x1
convolution to 1280 channels (not halved), average pooling, linear
classifier. Every inverted residual, even with t = 1, has its 1x1 expansion.
"""

import keras

from keras_mixkd.models._common import batch_norm
from keras_mixkd.models._common import channels as channel_count
from keras_mixkd.models._common import conv2d
from keras_mixkd.models._common import depthwise_conv2d
from keras_mixkd.models._common import kaiming_normal_fan_out
from keras_mixkd.models._common import model_input
from keras_mixkd.models._common import pooled_classifier

SETTINGS = (
    # expansion t, channels c, repeats n, first stride s
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def inverted_residual(x, filters, strides, expansion, name):
    """1x1 expand-BN-relu, 3x3 depthwise-BN-relu, 1x1 project-BN (+ input)."""
    channels = channel_count(x)
    out = conv2d(x, channels * expansion, 1, name=f"{name}_expand", kernel_initializer=kaiming_normal_fan_out())
    out = batch_norm(name=f"{name}_expand_bn")(out)
    out = keras.layers.ReLU(name=f"{name}_expand_relu")(out)
    out = depthwise_conv2d(
        out, 3, strides=strides, name=f"{name}_depthwise",
        initializer=kaiming_normal_fan_out(depthwise_channels=channels * expansion),
    )
    out = batch_norm(name=f"{name}_depthwise_bn")(out)
    out = keras.layers.ReLU(name=f"{name}_depthwise_relu")(out)
    out = conv2d(out, filters, 1, name=f"{name}_project", kernel_initializer=kaiming_normal_fan_out())
    out = batch_norm(name=f"{name}_project_bn")(out)
    if strides == 1 and channels == filters:
        out = keras.layers.Add(name=f"{name}_add")([x, out])
    return out


def mobilenetv2(num_classes=100, input_shape=(32, 32, 3), width_multiplier=0.5, expansion=6):
    """MobileNetV2 for CIFAR, half width by default (1280-d features).

    Arguments:
        num_classes: number of output logits.
        input_shape: (height, width, channels), (32, 32, 3) for CIFAR.
        width_multiplier: channel multiplier of the stem and the stages
            (0.5 is the benchmarks' "mobile_half").
        expansion: expansion ratio t of the inverted residuals after the
            first.

    Example:

    >>> model = mobilenetv2(num_classes=100)
    >>> model.get_layer("features").output.shape
    (None, 1280)
    """
    name = "mobilenetv2"
    num_classes, inputs, x = model_input(num_classes, input_shape, name)
    x = conv2d(
        x, int(32 * width_multiplier), 3, strides=2, name="stem_conv",
        kernel_initializer=kaiming_normal_fan_out(),
    )
    x = batch_norm(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, (t, c, n, s) in enumerate(SETTINGS):
        ratio = t if stage == 0 else expansion
        filters = int(c * width_multiplier)
        for block in range(n):
            strides = s if block == 0 else 1
            x = inverted_residual(x, filters, strides, ratio, name=f"stage{stage}_block{block}")
    last_channels = int(1280 * width_multiplier) if width_multiplier > 1.0 else 1280
    x = conv2d(x, last_channels, 1, name="head_conv", kernel_initializer=kaiming_normal_fan_out())
    x = batch_norm(name="head_bn")(x)
    x = keras.layers.ReLU(name="head_relu")(x)
    return pooled_classifier(inputs, x, num_classes, name, init="normal_0.01")
