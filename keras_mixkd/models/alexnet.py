"""AlexNet at CIFAR size (study A's larger student)."""

import keras

from keras_mixkd.models._common import classifier_head
from keras_mixkd.models._common import model_input
from keras_mixkd.models._common import torch_default_bias
from keras_mixkd.models._common import torch_default_kernel

# 11x11 stride-4 stem then three 2x2 max-pools: 29x29 is the smallest input
# that leaves one pixel.
MIN_SIZE = 29


def alexnet(num_classes=10, input_shape=(32, 32, 3)):
    """AlexNet for 32x32 images, as in the common CIFAR port (bearpaw's).

    conv11x11/4(64)-relu, max-pool 2, conv5x5(192)-relu, max-pool 2,
    conv3x3(384)-relu, conv3x3(256)-relu, conv3x3(256)-relu, max-pool 2,
    flatten ("features", 256-d at 32x32), Dense ("logits"). No dropout, no
    hidden fully connected layers. 2.47 M parameters at 10 classes.

    Arguments:
        num_classes: number of output logits.
        input_shape: (height, width, channels), at least 29x29.

    Example:

    >>> model = alexnet(num_classes=10)
    >>> model.get_layer("features").output.shape
    (None, 256)
    """
    name = "alexnet"
    num_classes, inputs, x = model_input(num_classes, input_shape, name, min_size=MIN_SIZE)
    x = keras.layers.ZeroPadding2D(5, name="conv1_pad")(x)
    x = _conv(x, 64, 11, "conv1", strides=4, padding="valid")
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv(x, 192, 5, "conv2")
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = _conv(x, 384, 3, "conv3")
    x = _conv(x, 256, 3, "conv4")
    x = _conv(x, 256, 3, "conv5")
    x = keras.layers.MaxPooling2D(2, name="pool3")(x)
    features = keras.layers.Flatten(name="features")(x)
    logits = classifier_head(features, num_classes, init="torch")
    return keras.Model(inputs, logits, name=name)


def _conv(x, filters, kernel_size, name, strides=1, padding="same"):
    # PyTorch's default initialisation, as the CIFAR ports of AlexNet use.
    fan_in = x.shape[-1] * kernel_size * kernel_size
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        activation="relu",
        kernel_initializer=torch_default_kernel(),
        bias_initializer=torch_default_bias(fan_in),
        name=name,
    )(x)
