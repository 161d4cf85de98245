"""`StudentSpec`: the `[student]` table of a study."""

from keras_mixkd.study.spec.optimizer import OptimizerSpec
from keras_mixkd.study.spec.table import SpecTable


class StudentSpec(SpecTable):
    """The students' augmentation, options, epochs, optimizer and the student-alone baseline.

    Example:

    >>> load_recipe("digits").student.baseline
    True
    """

    FIELDS = {
        # Augmentation of the distillation data before any recipe's own mixing
        # (study B distils with pad-crop + flip; study A without augmentation).
        "augmentation": (["none"], "names"),
        "augmentation_options": ({}, "options_by_name"),
        "epochs": (10, "positive_int"),
        "optimizer": OptimizerSpec,
        # Train every student model once per seed without a teacher (cross-entropy,
        # the same augmentation, optimizer and schedule): the "student alone" column.
        "baseline": (True, "bool"),
        # Calibrate every student (distilled and alone) by temperature scaling on the validation
        # split (keras_mixkd.calibration.calibrate_model): the cell keeps the calibrated model
        # (its logits / T) and its record the temperature and ECE / NLL before and after.
        "calibrate": (False, "bool"),
    }
