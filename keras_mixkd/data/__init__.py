"""Data sources and the input pipeline.

`load_dataset(name)` returns a `DatasetSplits` (train / validation / test
numpy arrays, float32 NHWC images in [0, 1], int32 labels, and the
normalisation statistics); `make_dataset(images, labels, ...)` turns arrays
into the tf.data pipeline that `fit` consumes.

Example:

>>> from keras_mixkd.data import load_dataset, make_dataset
>>> splits = load_dataset("digits")
>>> train = make_dataset(splits.x_train, splits.y_train,
...                      normalization=splits.normalization)
"""

from keras_mixkd.data.pipeline import make_dataset
from keras_mixkd.data.splits import DatasetSplits

# Sources that need `path=...` (a folder of class subfolders, a .npz file).
_NEEDS_PATH = ("folder", "npz")
_SOURCES = ("digits",)


def list_datasets():
    """Names accepted by `load_dataset`."""
    return list(_SOURCES)


def load_dataset(name="digits", *, path=None, validation_fraction=0.1, seed=0, image_size=None):
    """Load a data set as train / validation / test splits.

    Arguments:
        name: one of `list_datasets()`: "digits" (embedded, no network).
        path: the folder or `.npz` file, for "folder" and "npz".
        validation_fraction: share of the training data held out as the
            validation split (stratified, seeded), in [0, 1).
        seed: seed of the validation split.
        image_size: (height, width) the "folder" source resizes to.

    Returns:
        A `DatasetSplits`.

    Example:

    >>> splits = load_dataset("digits", validation_fraction=0.1, seed=0)
    >>> splits.input_shape
    (8, 8, 1)
    """
    if not isinstance(name, str):
        raise TypeError(f"Data set name must be a string, got {name!r}.")
    key = name.strip().lower()
    if key not in _SOURCES:
        raise ValueError(
            f"Unknown data set {name!r}. Known data sets: {', '.join(list_datasets())}."
        )
    if key == "digits":
        from keras_mixkd.data.digits import load_digits

        return load_digits(validation_fraction=validation_fraction, seed=seed)
    raise AssertionError(key)  # pragma: no cover


__all__ = ["DatasetSplits", "list_datasets", "load_dataset", "make_dataset"]
