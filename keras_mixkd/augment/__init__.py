"""Augmentation recipes for teachers and for distillation, run inside tf.data.

`get_augmentation(name_or_names, **options)` builds a named recipe (see
`list_augmentations()`); every recipe is a callable `aug(batch, training=True)`
on `{"images", "labels"}` batches of TensorFlow tensors, made of TF ops so it
runs in `tf.data.Dataset.map` under every Keras backend.
"""

from keras_mixkd.augment.aug_mix import AugMix
from keras_mixkd.augment.augmentation import Augmentation
from keras_mixkd.augment.compose import Compose
from keras_mixkd.augment.cutout import Cutout
from keras_mixkd.augment.label_smoothing import LabelSmoothing
from keras_mixkd.augment.mixing import Mixing
from keras_mixkd.augment.mixing import default_mixing_implementation
from keras_mixkd.augment.mixing import mixing_implementation
from keras_mixkd.augment.mixing_switch_off import MixingSwitchOff
from keras_mixkd.augment.pad_crop_flip import PadCropFlip
from keras_mixkd.augment.rand_augment import RandAugment
from keras_mixkd.augment.recipes import augmentations_in_use
from keras_mixkd.augment.recipes import check_augmentation_options
from keras_mixkd.augment.recipes import check_options_in_use
from keras_mixkd.augment.recipes import describe_augmentation
from keras_mixkd.augment.recipes import get_augmentation
from keras_mixkd.augment.recipes import list_augmentations
from keras_mixkd.augment.recipes import recipe_options
from keras_mixkd.augment.student_side_mixup import StudentSideMixup

__all__ = [
    "augmentations_in_use",
    "check_augmentation_options",
    "check_options_in_use",
    "AugMix",
    "Augmentation",
    "Compose",
    "Cutout",
    "LabelSmoothing",
    "Mixing",
    "MixingSwitchOff",
    "PadCropFlip",
    "RandAugment",
    "StudentSideMixup",
    "default_mixing_implementation",
    "describe_augmentation",
    "get_augmentation",
    "list_augmentations",
    "mixing_implementation",
    "recipe_options",
]
