"""`TeacherSpec`: the `[teacher]` table of a study."""

from keras_mixkd.study.spec.optimizer import OptimizerSpec
from keras_mixkd.study.spec.table import SpecTable


class TeacherSpec(SpecTable):
    """The teachers' augmentations (one teacher per name), options, epochs and optimizer.

    Example:

    >>> load_recipe("digits").teacher.augmentation_options["mixup"]
    {'alpha': 1.0}
    """

    FIELDS = {
        "augmentations": (["none"], "names"),
        # Options per augmentation name, e.g. [teacher.augmentation_options.mixup] alpha = 1.0
        "augmentation_options": ({}, "options_by_name"),
        "epochs": (10, "positive_int"),
        "optimizer": OptimizerSpec,
    }
