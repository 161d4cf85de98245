"""`DatasetSplits`: what every data source returns."""

import dataclasses

import numpy as np


# eq=False: comparing arrays elementwise has no single truth value.
@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class DatasetSplits:
    """Train / validation / test arrays of one data set, and how to read them.

    Images are `float32`, NHWC, values in `[0, 1]`; labels are `int32` class
    ids. The validation split is always carved out of the training data
    (stratified, seeded), never out of the test set.

    Arguments:
        name: the data set's name, e.g. "digits", "cifar100", "folder".
        x_train, y_train: training images and labels.
        x_val, y_val: validation images and labels (may hold 0 examples).
        x_test, y_test: test images and labels.
        num_classes: number of classes; labels lie in `[0, num_classes)`.
        class_names: one name per class id.
        mean, std: per-channel normalisation statistics (tuples of floats,
            one per channel) to hand to `make_dataset(normalization=...)`:
            the published CIFAR statistics, else computed from `x_train`.

    Example:

    >>> splits = load_dataset("digits")
    >>> splits.input_shape, splits.num_classes
    ((8, 8, 1), 10)
    >>> train = make_dataset(splits.x_train, splits.y_train,
    ...                      normalization=splits.normalization)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple
    mean: tuple
    std: tuple

    @property
    def input_shape(self):
        """(height, width, channels) of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def normalization(self):
        """`(mean, std)`, the form `make_dataset(normalization=...)` takes."""
        return (self.mean, self.std)

    def __repr__(self):
        return (
            f"DatasetSplits(name={self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, train={len(self.y_train)}, "
            f"val={len(self.y_val)}, test={len(self.y_test)})"
        )
