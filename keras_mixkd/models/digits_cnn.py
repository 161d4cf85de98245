"""Small convolutional nets sized for the embedded 8x8x1 digits data.

Both end in global average pooling, so they take any image size from 2x2 up
(8x8x1 digits, 32x32x3 CIFAR, ...) and train in seconds on a CPU.
"""

import keras

from keras_mixkd.models._common import batch_norm
from keras_mixkd.models._common import model_input
from keras_mixkd.models._common import pooled_classifier


def digits_cnn_small(num_classes=10, input_shape=(8, 8, 1)):
    """A two-convolution net (about 1.4 k parameters at 10 classes).

    conv3x3(8)-relu, max-pool 2, conv3x3(16)-relu, global average pool
    ("features", 16-d), Dense ("logits").

    Arguments:
        num_classes: number of output logits.
        input_shape: (height, width, channels), at least 2x2.

    Example:

    >>> model = digits_cnn_small(10, (8, 8, 1))
    >>> model.count_params()
    1418
    >>> model.get_layer("features").output.shape
    (None, 16)
    """
    blocks = ((8, True), (16, False))
    return _digits_net("digits_cnn_small", blocks, num_classes, input_shape, normalize=False)


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
    blocks = ((32, False), (32, True), (64, False), (64, False))
    return _digits_net("digits_cnn", blocks, num_classes, input_shape, normalize=True)


def _digits_net(name, blocks, num_classes, input_shape, normalize):
    # One conv3x3 per `(filters, pool)` of `blocks`: "conv{i}", then "bn{i}" and
    # "relu{i}" when `normalize`, else a relu inside the convolution; a 2x2
    # max-pool "pool{i}" after it when `pool`; then global average pooling and
    # the head.
    num_classes, inputs, x = model_input(num_classes, input_shape, name, min_size=2)
    for block, (filters, pool) in enumerate(blocks, 1):
        if normalize:
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{block}")(x)
            x = batch_norm(name=f"bn{block}")(x)
            x = keras.layers.ReLU(name=f"relu{block}")(x)
        else:
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{block}")(x)
        if pool:
            x = keras.layers.MaxPooling2D(2, name=f"pool{block}")(x)
    return pooled_classifier(inputs, x, num_classes, name)
