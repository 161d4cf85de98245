"""ShuffleNetV2 (1x) for CIFAR, as in the KD benchmarks ("ShuffleV2").

The CIFAR variant of RepDistiller / mdistiller (Ma et al. 2018, net size 1):
a 1x1 stem with 24 channels (no stride, no max-pool), three stages of one
down-sampling block plus 3, 7, 3 basic blocks with 116, 232, 464 channels,
a 1x1 convolution to 1024 channels, global average pooling (1024-d
features), linear classifier.
"""

import keras

from keras_mixkd.models._common import batch_norm
from keras_mixkd.models._common import conv2d
from keras_mixkd.models._common import depthwise_conv2d
from keras_mixkd.models._common import model_input
from keras_mixkd.models._common import pooled_classifier
from keras_mixkd.models._common import torch_default_kernel
from keras_mixkd.models.channel_shuffle import ChannelShuffle
from keras_mixkd.models.channel_split import ChannelSplit

STEM_CHANNELS = 24
STAGE_CHANNELS = (116, 232, 464)
STAGE_BLOCKS = (3, 7, 3)
HEAD_CHANNELS = 1024


def _conv_bn(x, filters, name, relu=True):
    x = conv2d(x, filters, 1, name=f"{name}_conv", kernel_initializer=torch_default_kernel())
    x = batch_norm(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _depthwise_bn(x, strides, name):
    x = depthwise_conv2d(
        x, 3, strides=strides, name=f"{name}_conv",
        initializer=torch_default_kernel(depthwise_channels=x.shape[-1]),
    )
    return batch_norm(name=f"{name}_bn")(x)


def down_block(x, out_channels, name):
    """Both branches stride 2, concatenated then shuffled: channels -> out_channels."""
    half = out_channels // 2
    left = _depthwise_bn(x, 2, f"{name}_left_dw")
    left = _conv_bn(left, half, f"{name}_left_pw")
    right = _conv_bn(x, half, f"{name}_right_pw1")
    right = _depthwise_bn(right, 2, f"{name}_right_dw")
    right = _conv_bn(right, half, f"{name}_right_pw2")
    out = keras.layers.Concatenate(name=f"{name}_concat")([left, right])
    return ChannelShuffle(2, name=f"{name}_shuffle")(out)


def basic_block(x, name):
    """Split the channels in halves, transform the second, concat, shuffle."""
    channels = x.shape[-1]
    half = channels // 2
    kept = ChannelSplit(0, half, name=f"{name}_split_kept")(x)
    out = ChannelSplit(half, channels, name=f"{name}_split_branch")(x)
    out = _conv_bn(out, half, f"{name}_pw1")
    out = _depthwise_bn(out, 1, f"{name}_dw")
    out = _conv_bn(out, half, f"{name}_pw2")
    out = keras.layers.Concatenate(name=f"{name}_concat")([kept, out])
    return ChannelShuffle(2, name=f"{name}_shuffle")(out)


def shufflev2(num_classes=100, input_shape=(32, 32, 3)):
    """ShuffleNetV2 1x for CIFAR (1024-d features).

    Arguments:
        num_classes: number of output logits.
        input_shape: (height, width, channels), (32, 32, 3) for CIFAR.

    Example:

    >>> model = shufflev2(num_classes=100)
    >>> model.get_layer("features").output.shape
    (None, 1024)
    """
    name = "shufflev2"
    num_classes, inputs, x = model_input(num_classes, input_shape, name)
    x = _conv_bn(x, STEM_CHANNELS, "stem")
    for stage, (channels, blocks) in enumerate(zip(STAGE_CHANNELS, STAGE_BLOCKS), 1):
        x = down_block(x, channels, name=f"stage{stage}_down")
        for block in range(blocks):
            x = basic_block(x, name=f"stage{stage}_block{block}")
    x = _conv_bn(x, HEAD_CHANNELS, "head")
    return pooled_classifier(inputs, x, num_classes, name, init="torch")
