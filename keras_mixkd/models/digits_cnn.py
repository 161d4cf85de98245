"""Small convolutional nets sized for the embedded 8x8x1 digits data.

Both end in global average pooling, so they take any image size from 2x2 up
(8x8x1 digits, 32x32x3 CIFAR, ...) and train in seconds on a CPU.
"""

import keras

from keras_mixkd.models._common import batch_norm
from keras_mixkd.models._common import check_input_shape
from keras_mixkd.models._common import check_num_classes
from keras_mixkd.models._common import classifier_head
from keras_mixkd.models._common import image_input


def digits_cnn_small(num_classes=10, input_shape=(8, 8, 1)):
    """A two-convolution net (about 1.4 k parameters at 10 classes).

    conv3x3(8)-relu, max-pool 2, conv3x3(16)-relu, global average pool
    ("features", 16-d), Dense ("logits").

    Arguments:
        num_classes: number of output logits.
        input_shape: (height, width, channels), at least 2x2.

    Example:

    >>> model = digits_cnn_small(10, (8, 8, 1))
    >>> model.get_layer("features").output.shape
    (None, 16)
    """
    name = "digits_cnn_small"
    num_classes = check_num_classes(num_classes, name)
    input_shape = check_input_shape(input_shape, name, min_size=2)
    inputs, x = image_input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = classifier_head(features, num_classes)
    return keras.Model(inputs, logits, name=name)


def digits_cnn(num_classes=10, input_shape=(8, 8, 1)):
    """A four-convolution net with batch norm (about 66 k parameters).

    Two conv3x3(32)-BN-relu, max-pool 2, two conv3x3(64)-BN-relu, global
    average pool ("features", 64-d), Dense ("logits"). Reaches about 97-98 %
    on the digits test split within a few epochs.

    Arguments:
        num_classes: number of output logits.
        input_shape: (height, width, channels), at least 2x2.

    Example:

    >>> model = digits_cnn(10, (8, 8, 1))
    >>> model.get_layer("features").output.shape
    (None, 64)
    """
    name = "digits_cnn"
    num_classes = check_num_classes(num_classes, name)
    input_shape = check_input_shape(input_shape, name, min_size=2)
    inputs, x = image_input(input_shape)
    for block, (filters, pool) in enumerate(((32, False), (32, True), (64, False), (64, False)), 1):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{block}")(x)
        x = batch_norm(name=f"bn{block}")(x)
        x = keras.layers.ReLU(name=f"relu{block}")(x)
        if pool:
            x = keras.layers.MaxPooling2D(2, name=f"pool{block}")(x)
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = classifier_head(features, num_classes)
    return keras.Model(inputs, logits, name=name)
