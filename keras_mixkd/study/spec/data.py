"""`DataSpec`: the `[data]` table of a study."""

from keras_mixkd.study.spec.table import SpecTable


class DataSpec(SpecTable):
    """Which data a study trains on, its validation split and batch size.

    A relative `path` in a recipe file is read relative to that file.

    Example:

    >>> load_recipe("digits").data.dataset
    'digits'
    """

    FIELDS = {
        "dataset": ("digits", "str"),
        # File or folder for the "npz" and "folder" sources.
        "path": ("", "str"),
        # Share of the training split held out for choosing the best epoch; 0 trains
        # on the whole training split (the reference protocol): no epoch is then
        # selected, the last one is reported.
        "validation_fraction": (0.1, "validation_fraction"),
        # The validation split is fixed by this seed, the same for every run seed.
        "split_seed": (0, "int"),
        # Resize images to [height, width] (folder sources, or digits at CIFAR size).
        "image_size": ([], "size"),
        "batch_size": (64, "positive_int"),
        # Keep only this many training / test examples (0 = all): smoke runs.
        "train_examples": (0, "nonnegative_int"),
        "test_examples": (0, "nonnegative_int"),
    }
