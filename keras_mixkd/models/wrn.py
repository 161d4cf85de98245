"""Wide ResNets of the KD benchmarks: wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2.

WRN-d-k of Zagoruyko & Komodakis (2016) for 32x32 images, as in the
RepDistiller / mdistiller benchmark code: a 3x3 stem with 16 channels, three
stages of (d-4)/6 pre-activation blocks with 16k, 32k, 64k channels
(strides 1, 2, 2), a final BN-relu, global average pooling, linear
classifier. No dropout (the benchmarks use dropRate 0).
"""

import keras

from keras_mixkd.models._common import batch_norm
from keras_mixkd.models._common import blocks_per_stage
from keras_mixkd.models._common import channels
from keras_mixkd.models._common import conv2d
from keras_mixkd.models._common import kaiming_normal_fan_out
from keras_mixkd.models._common import model_input
from keras_mixkd.models._common import pooled_classifier
from keras_mixkd.models._common import zoo_builder


def wide_basic_block(x, filters, strides, name):
    """Pre-activation block: BN-relu-conv3x3-BN-relu-conv3x3 plus shortcut.

    When the channel count changes, the shortcut is a 1x1 convolution of the
    pre-activated input (as in the reference code); otherwise it is the
    input itself.
    """
    preactivated = batch_norm(name=f"{name}_bn1")(x)
    preactivated = keras.layers.ReLU(name=f"{name}_relu1")(preactivated)
    if channels(x) == filters and strides == 1:
        shortcut = x
    else:
        shortcut = conv2d(
            preactivated, filters, 1, strides=strides, name=f"{name}_shortcut_conv",
            kernel_initializer=kaiming_normal_fan_out(),
        )
    out = conv2d(
        preactivated, filters, 3, strides=strides, name=f"{name}_conv1",
        kernel_initializer=kaiming_normal_fan_out(),
    )
    out = batch_norm(name=f"{name}_bn2")(out)
    out = keras.layers.ReLU(name=f"{name}_relu2")(out)
    out = conv2d(out, filters, 3, name=f"{name}_conv2", kernel_initializer=kaiming_normal_fan_out())
    return keras.layers.Add(name=f"{name}_add")([out, shortcut])


def wide_resnet(depth, widen_factor, num_classes, input_shape, name):
    """A WRN-depth-widen_factor for CIFAR.

    Arguments:
        depth: 6n+4 (16, 22, 28, 40, ...).
        widen_factor: channel multiplier k.
        num_classes: number of output logits.
        input_shape: (height, width, channels).
        name: name of the returned model.
    """
    blocks = blocks_per_stage(depth, 4, "wide ResNet")
    num_classes, inputs, x = model_input(num_classes, input_shape, name)
    x = conv2d(x, 16, 3, name="stem_conv", kernel_initializer=kaiming_normal_fan_out())
    for stage, filters in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor), 1):
        for block in range(blocks):
            strides = 2 if stage > 1 and block == 0 else 1
            x = wide_basic_block(x, filters, strides, name=f"stage{stage}_block{block}")
    x = batch_norm(name="final_bn")(x)
    x = keras.layers.ReLU(name="final_relu")(x)
    return pooled_classifier(inputs, x, num_classes, name, init="torch_zero_bias")


def _builder(depth, widen_factor):
    name = f"wrn_{depth}_{widen_factor}"

    def build(num_classes=100, input_shape=(32, 32, 3)):
        return wide_resnet(depth, widen_factor, num_classes, input_shape, name)

    summary = f"WRN-{depth}-{widen_factor} for CIFAR ({64 * widen_factor}-d features)"
    return zoo_builder(build, name, summary)


wrn_16_1 = _builder(16, 1)
wrn_16_2 = _builder(16, 2)
wrn_40_1 = _builder(40, 1)
wrn_40_2 = _builder(40, 2)
