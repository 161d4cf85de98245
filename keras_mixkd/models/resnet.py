"""CIFAR ResNets of the KD benchmarks: resnet8 ... resnet110, resnet8x4, resnet32x4.

The 6n+2-layer ResNets of He et al. (2016) for 32x32 images, as in the
RepDistiller / mdistiller benchmark code: a 3x3 stem, three stages of n basic
blocks (stride 1, 2, 2), global average pooling and a linear classifier. The
"x4" variants are four times wider (stem 32, stages 64/128/256 channels).
A projection shortcut (1x1 convolution + BN) is used wherever the shape
changes, including the first block of resnet8x4/32x4 (32 -> 64 channels).
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


def basic_block(x, filters, strides, name):
    """conv3x3-BN-relu-conv3x3-BN plus shortcut, then relu."""
    init = kaiming_normal_fan_out()
    shortcut = x
    out = conv2d(x, filters, 3, strides=strides, name=f"{name}_conv1", kernel_initializer=init)
    out = batch_norm(name=f"{name}_bn1")(out)
    out = keras.layers.ReLU(name=f"{name}_relu1")(out)
    out = conv2d(out, filters, 3, name=f"{name}_conv2", kernel_initializer=init)
    out = batch_norm(name=f"{name}_bn2")(out)
    if strides != 1 or channels(x) != filters:
        shortcut = conv2d(
            x, filters, 1, strides=strides, name=f"{name}_shortcut_conv", kernel_initializer=init
        )
        shortcut = batch_norm(name=f"{name}_shortcut_bn")(shortcut)
    out = keras.layers.Add(name=f"{name}_add")([out, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(out)


def resnet_body(x, stem_filters, stage_filters, stage_blocks):
    """A ResNet without its head: conv3x3-BN-relu stem, then stages of basic blocks.

    The first block of every stage but the first halves the resolution
    (stride 2). Layers are named "stem_conv", "stem_bn", "stem_relu" and
    "stage{s}_block{b}_..." (s from 1, b from 0).

    Arguments:
        x: the input tensor, in the data format being built.
        stem_filters: channels of the stem.
        stage_filters: channels of each stage.
        stage_blocks: number of basic blocks of each stage.

    Returns:
        The last block's output.

    Example:

    >>> inputs = keras.Input((32, 32, 3))
    >>> resnet_body(inputs, 16, (16, 32, 64), (3, 3, 3)).shape
    (None, 8, 8, 64)
    """
    x = conv2d(x, stem_filters, 3, name="stem_conv", kernel_initializer=kaiming_normal_fan_out())
    x = batch_norm(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, (filters, blocks) in enumerate(zip(stage_filters, stage_blocks), 1):
        for block in range(blocks):
            strides = 2 if stage > 1 and block == 0 else 1
            x = basic_block(x, filters, strides, name=f"stage{stage}_block{block}")
    return x


def cifar_resnet(depth, widths, num_classes, input_shape, name):
    """A 6n+2-layer CIFAR ResNet.

    Arguments:
        depth: number of weighted layers, 6n+2 (8, 14, 20, 32, 44, 56, 110).
        widths: channels of the stem and of the three stages.
        num_classes: number of output logits.
        input_shape: (height, width, channels).
        name: name of the returned model.
    """
    blocks = blocks_per_stage(depth, 2, "CIFAR ResNet")
    num_classes, inputs, x = model_input(num_classes, input_shape, name)
    x = resnet_body(x, widths[0], widths[1:], (blocks,) * len(widths[1:]))
    return pooled_classifier(inputs, x, num_classes, name, init="torch")


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)


def _builder(depth, widths, name):
    def build(num_classes=100, input_shape=(32, 32, 3)):
        return cifar_resnet(depth, widths, num_classes, input_shape, name)

    summary = f"CIFAR ResNet of depth {depth}, widths {widths} ({widths[-1]}-d features)"
    return zoo_builder(build, name, summary)


resnet8 = _builder(8, _NARROW, "resnet8")
resnet14 = _builder(14, _NARROW, "resnet14")
resnet20 = _builder(20, _NARROW, "resnet20")
resnet32 = _builder(32, _NARROW, "resnet32")
resnet44 = _builder(44, _NARROW, "resnet44")
resnet56 = _builder(56, _NARROW, "resnet56")
resnet110 = _builder(110, _NARROW, "resnet110")
resnet8x4 = _builder(8, _WIDE, "resnet8x4")
resnet32x4 = _builder(32, _WIDE, "resnet32x4")
