"""LeNet-5 at CIFAR size (study A's small student)."""

import keras

from keras_mixkd.models._common import classifier_head
from keras_mixkd.models._common import model_input
from keras_mixkd.models._common import torch_default_bias
from keras_mixkd.models._common import torch_default_kernel

# Two unpadded 5x5 convolutions, each followed by a 2x2 max-pool.
MIN_SIZE = 16


def lenet5(num_classes=10, input_shape=(32, 32, 3)):
    """LeNet-5 for 32x32 colour images, as in the common CIFAR ports.

    conv5x5(6)-relu, max-pool 2, conv5x5(16)-relu, max-pool 2, flatten,
    Dense(120)-relu, Dense(84)-relu ("features", 84-d), Dense ("logits").
    62,006 parameters at 10 classes and 32x32x3 input.

    Arguments:
        num_classes: number of output logits.
        input_shape: (height, width, channels), at least 16x16.

    Example:

    >>> model = lenet5(num_classes=10)
    >>> model.count_params()
    62006
    >>> model.get_layer("features").output.shape
    (None, 84)
    """
    name = "lenet5"
    num_classes, inputs, x = model_input(num_classes, input_shape, name, min_size=MIN_SIZE)
    x = _conv(x, 6, 5, "conv1")
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv(x, 16, 5, "conv2")
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = _dense(x, 120, "fc1")
    features = _dense(x, 84, "features")
    logits = classifier_head(features, num_classes, init="torch")
    return keras.Model(inputs, logits, name=name)


# PyTorch's default initialisation, as the CIFAR ports of LeNet-5 use.
def _conv(x, filters, kernel_size, name):
    fan_in = x.shape[-1] * kernel_size * kernel_size
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        activation="relu",
        kernel_initializer=torch_default_kernel(),
        bias_initializer=torch_default_bias(fan_in),
        name=name,
    )(x)


def _dense(x, units, name):
    return keras.layers.Dense(
        units,
        activation="relu",
        kernel_initializer=torch_default_kernel(),
        bias_initializer=torch_default_bias(x.shape[-1]),
        name=name,
    )(x)
