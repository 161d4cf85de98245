"""The embedded default: scikit-learn's 8x8 handwritten digits (no network)."""

import numpy as np

from keras_mixkd.data._arrays import build_splits
from keras_mixkd.data._arrays import stratified_split

# The test split is fixed (same examples whatever `seed` is), so results of
# different seeds are measured on the same test set.
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0


def load_digits(*, validation_fraction=0.1, seed=0):
    """scikit-learn's `load_digits` as 8x8x1 float32 images in [0, 1].

    1797 images of 10 classes, pixel values 0..16 divided by 16. A fixed
    stratified 20 % is the test split (359 images); the validation split is
    `validation_fraction` of the rest, stratified and drawn with `seed`.
    Normalisation statistics are computed from the training split.

    Arguments:
        validation_fraction: share of the training data held out, in [0, 1).
        seed: seed of the validation split.

    Example:

    >>> splits = load_digits()
    >>> splits.x_train.shape, splits.x_test.shape
    ((1294, 8, 8, 1), (359, 8, 8, 1))
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[..., None]
    labels = bunch.target.astype(np.int32)
    train_index, test_index = stratified_split(labels, TEST_FRACTION, TEST_SPLIT_SEED)
    return build_splits(
        "digits",
        images[train_index],
        labels[train_index],
        images[test_index],
        labels[test_index],
        num_classes=10,
        class_names=[str(c) for c in bunch.target_names],
        validation_fraction=validation_fraction,
        seed=seed,
    )
