"""VGG nets with batch norm for CIFAR, as in the KD benchmarks: vgg8 ... vgg19.

The reference code (RepDistiller / mdistiller, "FC layers are removed"):
five blocks of conv3x3 (with bias) - BN - relu, max-pooling (2x2) after the
first three blocks, global average pooling after the fifth, and one linear
layer 512 -> classes. The fourth max-pool is applied only to 64x64 inputs
(as in the reference), so 32x32 images reach the last block at 4x4.
"""

import keras

from keras_mixkd.models._common import batch_norm
from keras_mixkd.models._common import kaiming_normal_fan_out
from keras_mixkd.models._common import model_input
from keras_mixkd.models._common import pooled_classifier
from keras_mixkd.models._common import zoo_builder

# Channels of the convolutions of each of the five blocks.
CONFIGS = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": (
        (64, 64),
        (128, 128),
        (256, 256, 256, 256),
        (512, 512, 512, 512),
        (512, 512, 512, 512),
    ),
}

# Three 2x2 max-pools (floor) must leave at least one pixel.
MIN_SIZE = 8


def cifar_vgg(config, num_classes, input_shape, name):
    """A VGG with batch norm for small images.

    Arguments:
        config: channels of each convolution, five tuples (one per block).
        num_classes: number of output logits.
        input_shape: (height, width, channels), at least 8x8.
        name: name of the returned model.
    """
    num_classes, inputs, x = model_input(num_classes, input_shape, name, min_size=MIN_SIZE)
    for block, filters_list in enumerate(config):
        if block > 0 and (block < 4 or input_shape[0] == 64):
            x = keras.layers.MaxPooling2D(2, name=f"pool{block - 1}")(x)
        for index, filters in enumerate(filters_list):
            prefix = f"block{block}_conv{index}"
            x = keras.layers.Conv2D(
                filters, 3, padding="same", kernel_initializer=kaiming_normal_fan_out(), name=prefix
            )(x)
            x = batch_norm(name=f"{prefix}_bn")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
    return pooled_classifier(inputs, x, num_classes, name, init="normal_0.01")


def _builder(name):
    def build(num_classes=100, input_shape=(32, 32, 3)):
        return cifar_vgg(CONFIGS[name], num_classes, input_shape, name)

    return zoo_builder(
        build, name, "VGG with batch norm for CIFAR (512-d features)", input_note="at least 8x8"
    )


vgg8 = _builder("vgg8")
vgg11 = _builder("vgg11")
vgg13 = _builder("vgg13")
vgg16 = _builder("vgg16")
vgg19 = _builder("vgg19")
