"""LeNet-5 at CIFAR size (study A's small student)."""

import keras

from keras_mixkd.models._common import check_input_shape
from keras_mixkd.models._common import check_num_classes
from keras_mixkd.models._common import classifier_head

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
    >>> model.get_layer("features").output.shape
    (None, 84)
    """
    name = "lenet5"
    num_classes = check_num_classes(num_classes, name)
    input_shape = check_input_shape(input_shape, name, min_size=MIN_SIZE)
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(6, 5, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(16, 5, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(120, activation="relu", name="fc1")(x)
    features = keras.layers.Dense(84, activation="relu", name="features")(x)
    logits = classifier_head(features, num_classes)
    return keras.Model(inputs, logits, name=name)
