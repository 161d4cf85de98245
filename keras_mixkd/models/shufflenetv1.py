"""ShuffleNetV1 for CIFAR, as in the KD benchmarks ("ShuffleV1").

The CIFAR variant of RepDistiller / mdistiller (Zhang et al. 2018, groups 3):
a 1x1 stem with 24 channels (no stride), three stages of 4, 8, 4 bottlenecks
with 240, 480, 960 output channels. A stage's first bottleneck has stride 2
and concatenates a 3x3 average-pooled shortcut (zero padding counted, as
PyTorch's AvgPool2d does); the others add the identity. The first grouped
1x1 convolution of the network (on the 24-channel stem) is ungrouped.
Global average pooling gives 960-d features.
"""

import keras

from keras_mixkd.models._common import batch_norm
from keras_mixkd.models._common import conv2d
from keras_mixkd.models._common import depthwise_conv2d
from keras_mixkd.models._common import model_input
from keras_mixkd.models._common import pooled_classifier
from keras_mixkd.models._common import torch_default_kernel
from keras_mixkd.models.channel_shuffle import ChannelShuffle

STEM_CHANNELS = 24
STAGE_CHANNELS = (240, 480, 960)
STAGE_BLOCKS = (4, 8, 4)
GROUPS = 3


def shuffle_bottleneck(x, out_channels, strides, groups, name):
    """Grouped 1x1, shuffle, 3x3 depthwise, grouped 1x1, with a shortcut."""
    in_channels = x.shape[-1]
    branch_channels = out_channels - in_channels if strides == 2 else out_channels
    mid_channels = branch_channels // 4
    first_groups = 1 if in_channels == STEM_CHANNELS else groups
    out = conv2d(
        x, mid_channels, 1, groups=first_groups, name=f"{name}_conv1",
        kernel_initializer=torch_default_kernel(),
    )
    out = batch_norm(name=f"{name}_bn1")(out)
    out = keras.layers.ReLU(name=f"{name}_relu1")(out)
    if first_groups > 1:
        out = ChannelShuffle(first_groups, name=f"{name}_shuffle")(out)
    out = depthwise_conv2d(
        out, 3, strides=strides, name=f"{name}_conv2",
        initializer=torch_default_kernel(depthwise_channels=mid_channels),
    )
    out = batch_norm(name=f"{name}_bn2")(out)
    out = keras.layers.ReLU(name=f"{name}_relu2")(out)
    out = conv2d(
        out, branch_channels, 1, groups=groups, name=f"{name}_conv3",
        kernel_initializer=torch_default_kernel(),
    )
    out = batch_norm(name=f"{name}_bn3")(out)
    if strides == 2:
        shortcut = keras.layers.ZeroPadding2D(1, name=f"{name}_shortcut_pad")(x)
        shortcut = keras.layers.AveragePooling2D(3, strides=2, name=f"{name}_shortcut_pool")(shortcut)
        out = keras.layers.Concatenate(name=f"{name}_concat")([out, shortcut])
    else:
        out = keras.layers.Add(name=f"{name}_add")([out, x])
    return keras.layers.ReLU(name=f"{name}_out")(out)


def shufflev1(num_classes=100, input_shape=(32, 32, 3)):
    """ShuffleNetV1 (groups 3) for CIFAR (960-d features).

    Arguments:
        num_classes: number of output logits.
        input_shape: (height, width, channels), (32, 32, 3) for CIFAR.

    Example:

    >>> model = shufflev1(num_classes=100)
    >>> model.get_layer("features").output.shape
    (None, 960)
    """
    name = "shufflev1"
    num_classes, inputs, x = model_input(num_classes, input_shape, name)
    x = conv2d(x, STEM_CHANNELS, 1, name="stem_conv", kernel_initializer=torch_default_kernel())
    x = batch_norm(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, (channels, blocks) in enumerate(zip(STAGE_CHANNELS, STAGE_BLOCKS), 1):
        for block in range(blocks):
            strides = 2 if block == 0 else 1
            x = shuffle_bottleneck(x, channels, strides, GROUPS, name=f"stage{stage}_block{block}")
    return pooled_classifier(inputs, x, num_classes, name, init="torch")
