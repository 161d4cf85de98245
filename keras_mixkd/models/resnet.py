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
from keras_mixkd.models._common import channels
from keras_mixkd.models._common import check_input_shape
from keras_mixkd.models._common import check_num_classes
from keras_mixkd.models._common import classifier_head
from keras_mixkd.models._common import conv2d
from keras_mixkd.models._common import image_input
from keras_mixkd.models._common import kaiming_normal_fan_out


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


def cifar_resnet(depth, widths, num_classes, input_shape, name):
    """A 6n+2-layer CIFAR ResNet.

    Arguments:
        depth: number of weighted layers, 6n+2 (8, 14, 20, 32, 44, 56, 110).
        widths: channels of the stem and of the three stages.
        num_classes: number of output logits.
        input_shape: (height, width, channels).
        name: name of the returned model.
    """
    if (depth - 2) % 6 != 0:
        raise ValueError(f"A CIFAR ResNet has 6n+2 layers, got depth={depth}.")
    blocks_per_stage = (depth - 2) // 6
    num_classes = check_num_classes(num_classes, name)
    input_shape = check_input_shape(input_shape, name)
    inputs, x = image_input(input_shape)
    x = conv2d(x, widths[0], 3, name="stem_conv", kernel_initializer=kaiming_normal_fan_out())
    x = batch_norm(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate(widths[1:], 1):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 1 and block == 0 else 1
            x = basic_block(x, filters, strides, name=f"stage{stage}_block{block}")
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = classifier_head(features, num_classes, init="torch")
    return keras.Model(inputs, logits, name=name)


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)


def _builder(depth, widths, name):
    def build(num_classes=100, input_shape=(32, 32, 3)):
        return cifar_resnet(depth, widths, num_classes, input_shape, name)

    build.__name__ = name
    build.__doc__ = (
        f"{name}: CIFAR ResNet of depth {depth}, widths {widths} "
        f"({widths[-1]}-d features).\n\n"
        "    Arguments:\n"
        "        num_classes: number of output logits.\n"
        "        input_shape: (height, width, channels), (32, 32, 3) for CIFAR.\n\n"
        "    Example:\n\n"
        f"    >>> model = {name}(num_classes=100)\n"
    )
    return build


resnet8 = _builder(8, _NARROW, "resnet8")
resnet14 = _builder(14, _NARROW, "resnet14")
resnet20 = _builder(20, _NARROW, "resnet20")
resnet32 = _builder(32, _NARROW, "resnet32")
resnet44 = _builder(44, _NARROW, "resnet44")
resnet56 = _builder(56, _NARROW, "resnet56")
resnet110 = _builder(110, _NARROW, "resnet110")
resnet8x4 = _builder(8, _WIDE, "resnet8x4")
resnet32x4 = _builder(32, _WIDE, "resnet32x4")
