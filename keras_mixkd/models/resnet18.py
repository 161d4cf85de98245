"""ResNet-18 for CIFAR (study A's teacher; "ResNet18" of the KD benchmarks).

He et al.'s ResNet-18 adapted to 32x32 images as in kuangliu's pytorch-cifar
and RepDistiller's resnetv2.py: a 3x3 stride-1 stem with 64 channels and no
max-pool, four stages of two basic blocks (64, 128, 256, 512 channels;
strides 1, 2, 2, 2), global average pooling (512-d features), linear
classifier.
"""

from keras_mixkd.models._common import model_input
from keras_mixkd.models._common import pooled_classifier
from keras_mixkd.models.resnet import resnet_body

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
    num_classes, inputs, x = model_input(num_classes, input_shape, name)
    x = resnet_body(x, 64, STAGE_CHANNELS, STAGE_BLOCKS)
    return pooled_classifier(inputs, x, num_classes, name, init="torch")
