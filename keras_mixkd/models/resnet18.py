"""ResNet-18 for CIFAR (study A's teacher; "ResNet18" of the KD benchmarks).

He et al.'s ResNet-18 adapted to 32x32 images as in kuangliu's pytorch-cifar
and RepDistiller's resnetv2.py: a 3x3 stride-1 stem with 64 channels and no
max-pool, four stages of two basic blocks (64, 128, 256, 512 channels;
strides 1, 2, 2, 2), global average pooling (512-d features), linear
classifier.
"""

import keras

from keras_mixkd.models._common import batch_norm
from keras_mixkd.models._common import check_input_shape
from keras_mixkd.models._common import check_num_classes
from keras_mixkd.models._common import classifier_head
from keras_mixkd.models._common import conv2d
from keras_mixkd.models._common import image_input
from keras_mixkd.models._common import kaiming_normal_fan_out
from keras_mixkd.models.resnet import basic_block

STAGE_CHANNELS = (64, 128, 256, 512)
STAGE_BLOCKS = (2, 2, 2, 2)


def resnet18(num_classes=10, input_shape=(32, 32, 3)):
    """ResNet-18, CIFAR variant (512-d features).

    Arguments:
        num_classes: number of output logits.
        input_shape: (height, width, channels), (32, 32, 3) for CIFAR.

    Example:

    >>> model = resnet18(num_classes=10)
    >>> model.get_layer("features").output.shape
    (None, 512)
    """
    name = "resnet18"
    num_classes = check_num_classes(num_classes, name)
    input_shape = check_input_shape(input_shape, name)
    inputs, x = image_input(input_shape)
    x = conv2d(x, 64, 3, name="stem_conv", kernel_initializer=kaiming_normal_fan_out())
    x = batch_norm(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, (channels, blocks) in enumerate(zip(STAGE_CHANNELS, STAGE_BLOCKS), 1):
        for block in range(blocks):
            strides = 2 if stage > 1 and block == 0 else 1
            x = basic_block(x, channels, strides, name=f"stage{stage}_block{block}")
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = classifier_head(features, num_classes, init="torch")
    return keras.Model(inputs, logits, name=name)
