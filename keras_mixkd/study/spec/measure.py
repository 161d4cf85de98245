"""`MeasureSpec`: the `[measure]` table of a study."""

from keras_mixkd.study.spec.table import SpecTable


class MeasureSpec(SpecTable):
    """What is measured every epoch (class discrimination, ECE) and on which split.

    Example:

    >>> load_recipe("digits").measure.split
    'val'
    """

    FIELDS = {
        # Class-discrimination of the model being trained, every this many epochs.
        "every": (1, "nonnegative_int"),
        # Split of those per-epoch measures: "val" (skipped when there is no
        # validation split) or "test" (only when asked: it is never used to choose).
        "split": ("val", "measure_split"),
        "max_examples": (2000, "positive_int"),
        "ece_bins": (15, "positive_int"),
        "projection": ("pca", "projection"),
        # Points per teacher kept for the 2-D projection plot.
        "projection_examples": (1000, "positive_int"),
    }
