"""Data sources and the input pipeline.

`load_dataset(name)` returns a `DatasetSplits` (train / validation / test
numpy arrays, float32 NHWC images in [0, 1], int32 labels, and the
normalisation statistics); `make_dataset(images, labels, ...)` turns arrays
into the tf.data pipeline that `fit` consumes.

Sources (`list_datasets()`):

- "digits": scikit-learn's 8x8 digits, embedded (no network): the default.
- "cifar10", "cifar100": through `keras.datasets` (downloaded on first use
  into ~/.keras/datasets; offline, the error says which file to put where).
- "folder": `path/<class>/<images>` (or `path/train/...` + `path/test/...`,
  `path/train/...` + `path/val/...` [+ `path/test/...`]; other layouts are
  refused with the list of these) through `keras.utils.image_dataset_from_directory`, resized to
  `image_size` (default 32x32). Corrupt image files are skipped with a
  warning giving their count.
- "npz": a `.npz` file with x_train, y_train, x_test, y_test.

The validation split is always carved out of the training data, stratified
by class and drawn with `seed`; the test split never changes with `seed`.

Example:

>>> from keras_mixkd.data import load_dataset, make_dataset
>>> splits = load_dataset("digits")
>>> train = make_dataset(splits.x_train, splits.y_train,
...                      normalization=splits.normalization)
"""

import dataclasses
import os

from keras_mixkd.data.pipeline import make_dataset
from keras_mixkd.data.splits import DatasetSplits

_SOURCES = ("digits", "cifar10", "cifar100", "folder", "npz")
_NEEDS_PATH = ("folder", "npz")
DEFAULT_FOLDER_IMAGE_SIZE = (32, 32)


def list_datasets():
    """Names accepted by `load_dataset`."""
    return list(_SOURCES)


# name -> one line saying what the data set is (`keras-mixkd list datasets`).
_DESCRIPTIONS = {
    "digits": "scikit-learn's 8x8 handwritten digits, 10 classes, embedded (no download)",
    "cifar10": "CIFAR-10, 32x32 colour, 10 classes (keras.datasets; downloads once)",
    "cifar100": "CIFAR-100, 32x32 colour, 100 classes (keras.datasets; downloads once)",
    "folder": "your images: --data-path DIR with one subfolder per class (or DIR/train + DIR/val and/or DIR/test)",
    "npz": "your arrays: --data-path FILE.npz with x_train, y_train, x_test, y_test (optional class_names)",
}


# (height, width) of each source's images as loaded, where it is fixed (an .npz file tells only when read).
_IMAGE_SIZES = {"digits": (8, 8), "cifar10": (32, 32), "cifar100": (32, 32), "folder": DEFAULT_FOLDER_IMAGE_SIZE}


def known_image_size(name, image_size=None):
    """`(height, width)` of the images `load_dataset(name, image_size=...)` gives, or None (npz: only loading tells).

    Example:

    >>> from keras_mixkd.data import known_image_size
    >>> known_image_size("digits"), known_image_size("digits", (32, 32)), known_image_size("npz")
    ((8, 8), (32, 32), None)
    """
    if image_size:
        return tuple(int(d) for d in image_size)
    return _IMAGE_SIZES.get(name)


def describe_dataset(name):
    """One line saying what the data set `name` is and where it comes from.

    Example:

    >>> from keras_mixkd.data import describe_dataset
    >>> describe_dataset("cifar10")
    'CIFAR-10, 32x32 colour, 10 classes (keras.datasets; downloads once)'
    """
    check_data_source(name)
    return _DESCRIPTIONS[name]


def check_data_source(name, path=None, *, need_path=False):
    """Refuse an unknown data set name, or a missing file or folder, before anything loads.

    Arguments:
        name: a data set name (`list_datasets()`).
        path: the file or folder of the "npz" and "folder" sources.
        need_path: also refuse those two sources without a `path` (what
            loading would do; `describe_dataset` leaves it out).

    Example:

    >>> from keras_mixkd.data import check_data_source
    >>> check_data_source("mnist")
    Traceback (most recent call last):
    ...
    ValueError: Unknown data set 'mnist' (data.dataset in a recipe, --dataset on the command line); known: digits, cifar10, cifar100, folder, npz.
    """
    if name not in _SOURCES:
        raise ValueError(f"Unknown data set {name!r} (data.dataset in a recipe, --dataset on the command "
                         f"line); known: {', '.join(_SOURCES)}.")
    if name in _NEEDS_PATH and need_path and not path:
        raise ValueError(f"The {name!r} data set needs a path (data.path in a recipe, --data-path on the "
                         "command line).")
    if name in _NEEDS_PATH and path and not os.path.exists(path):
        raise FileNotFoundError(f"data.path / --data-path {path}: no such file or folder.")


def load_dataset(name="digits", *, path=None, validation_fraction=0.1, seed=0, image_size=None):
    """Load a data set as train / validation / test splits.

    Arguments:
        name: one of `list_datasets()`: "digits" (embedded, the default),
            "cifar10", "cifar100", "folder", "npz".
        path: the folder ("folder") or `.npz` file ("npz").
        validation_fraction: share of the training data held out as the
            validation split (stratified, seeded), in [0, 1). 0 gives an
            empty validation split.
        seed: seed of the validation split.
        image_size: (height, width). "folder" resizes every image to it
            (default (32, 32)); for the other sources it is optional and
            resizes all splits (bilinear), e.g. digits to (32, 32) for the
            CIFAR zoo.

    Returns:
        A `DatasetSplits`.

    Example:

    >>> splits = load_dataset("digits", validation_fraction=0.1, seed=0)
    >>> splits.input_shape
    (8, 8, 1)
    >>> load_dataset("cifar100").normalization
    ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
    """
    from keras_mixkd.data.folder import check_image_size

    if not isinstance(name, str):
        raise TypeError(f"Data set name must be a string, got {name!r}.")
    key = name.strip().lower()
    if key not in _SOURCES:
        raise ValueError(
            f"Unknown data set {name!r}. Known data sets: {', '.join(list_datasets())}."
        )
    if key not in _NEEDS_PATH and path is not None:
        raise ValueError(
            f"path=... is for the 'folder' and 'npz' data sets; {key!r} takes none "
            f"(got path={path!r})."
        )
    if image_size is not None:
        image_size = check_image_size(image_size)
    options = {"validation_fraction": validation_fraction, "seed": seed}
    if key == "digits":
        from keras_mixkd.data.digits import load_digits

        splits = load_digits(**options)
    elif key in ("cifar10", "cifar100"):
        from keras_mixkd.data.cifar import load_cifar

        splits = load_cifar(key, **options)
    elif key == "npz":
        from keras_mixkd.data.npz import load_npz

        splits = load_npz(path, **options)
    else:
        from keras_mixkd.data.folder import load_folder

        return load_folder(path, image_size=image_size or DEFAULT_FOLDER_IMAGE_SIZE, **options)
    if image_size is not None and image_size != splits.input_shape[:2]:
        splits = _resized(splits, image_size)
    return splits


def _resized(splits, image_size):
    """The same splits with every image resized (bilinear) to image_size."""
    import numpy as np
    import tensorflow as tf

    def resize(images):
        if len(images) == 0:
            return np.zeros((0, *image_size, images.shape[-1]), np.float32)
        out = tf.image.resize(images, image_size, method="bilinear").numpy()
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    from keras_mixkd.data._arrays import channel_statistics

    x_train = resize(splits.x_train)
    mean, std = splits.mean, splits.std
    if splits.name not in ("cifar10", "cifar100"):
        # Statistics of the images the model will see; CIFAR keeps the
        # published ones.
        mean, std = channel_statistics(x_train)
    return dataclasses.replace(
        splits,
        x_train=x_train,
        x_val=resize(splits.x_val),
        x_test=resize(splits.x_test),
        mean=mean,
        std=std,
    )


__all__ = ["DatasetSplits", "check_data_source", "describe_dataset", "known_image_size", "list_datasets",
           "load_dataset", "make_dataset"]
