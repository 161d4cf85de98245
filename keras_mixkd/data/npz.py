"""Arrays saved in a `.npz` file: x_train, y_train, x_test, y_test."""

import os

import numpy as np

from keras_mixkd.data._arrays import build_splits
from keras_mixkd.data._arrays import to_int_labels
from keras_mixkd.data._arrays import to_unit_float_images

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path, *, validation_fraction=0.1, seed=0):
    """Load train and test arrays from a `.npz` file.

    Keys `x_train`, `y_train`, `x_test`, `y_test` are required; an optional
    `class_names` array names the classes (and fixes their number). Images:
    (N, H, W, C) or (N, H, W), either integers in [0, 255] (uint8, divided
    by 255) or floats already in [0, 1]. Labels: integer class ids (N,) or
    (N, 1). Without `class_names`, the number of classes is the largest
    training label + 1. The validation split is carved out of the training
    arrays (stratified, seeded); normalisation statistics are computed from
    the training split.

    Arguments:
        path: the `.npz` file (as written by `numpy.savez`).
        validation_fraction: share of the training data held out, in [0, 1).
        seed: seed of the validation split.

    Example:

    >>> np.savez("toy.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    >>> splits = load_npz("toy.npz")
    """
    if path is None:
        raise ValueError(
            "The 'npz' data set needs a path (--data-path on the command line, data.path in a "
            f"recipe, path= in Python) pointing to a .npz file with keys {', '.join(REQUIRED_KEYS)}."
        )
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No .npz file at {path!r}.")
    import zipfile

    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(6)
        kind = "a single NumPy array (.npy)" if head == b"\x93NUMPY" else "not a NumPy archive"
        raise ValueError(
            f"{path!r} is {kind}: the 'npz' data set reads a .npz archive written by "
            f"numpy.savez(path, {'=..., '.join(REQUIRED_KEYS)}=...)."
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise ValueError(f"Could not read {path!r} as a .npz file: {error}") from error
    with archive:
        if not hasattr(archive, "files"):
            raise ValueError(f"{path!r} holds a single array, not a .npz archive of named arrays.")
        missing = [key for key in REQUIRED_KEYS if key not in archive.files]
        if missing:
            raise ValueError(
                f"{path!r} lacks the key(s) {', '.join(missing)}; a .npz data set "
                f"needs {', '.join(REQUIRED_KEYS)} (found: "
                f"{', '.join(archive.files) or 'none'})."
            )
        arrays = {key: archive[key] for key in REQUIRED_KEYS}
        class_names = archive["class_names"] if "class_names" in archive.files else None

    x_train = to_unit_float_images(arrays["x_train"], "x_train")
    x_test = to_unit_float_images(arrays["x_test"], "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"x_train images have shape {x_train.shape[1:]} but x_test images "
            f"{x_test.shape[1:]}; both splits need the same image shape."
        )
    if len(x_train) == 0:
        raise ValueError("x_train holds no images.")
    num_classes = None if class_names is None else len(class_names)
    y_train = to_int_labels(arrays["y_train"], "y_train", len(x_train), num_classes)
    if num_classes is None:
        num_classes = int(y_train.max()) + 1
        class_names = [str(c) for c in range(num_classes)]
        counts = np.bincount(y_train, minlength=num_classes)
        missing = np.flatnonzero(counts == 0)
        if missing.size:
            used = ", ".join(f"{c}: {n}" for c, n in enumerate(counts) if n)
            raise ValueError(
                f"y_train skips class id(s) {', '.join(map(str, missing))} below its largest id "
                f"{num_classes - 1}, which would make a {num_classes}-class model with classes it never "
                f"sees (examples per id: {used}). Renumber the labels 0..{np.count_nonzero(counts) - 1}, "
                f"or add a class_names array of {num_classes} names to {path!r} if those classes are meant."
            )
    if num_classes < 2:
        raise ValueError(
            f"y_train holds a single class; classification needs at least 2 "
            f"(got num_classes={num_classes})."
        )
    y_test = to_int_labels(arrays["y_test"], "y_test", len(x_test), num_classes)
    return build_splits(
        "npz",
        x_train,
        y_train,
        x_test,
        y_test,
        num_classes=num_classes,
        class_names=[str(c) for c in class_names],
        validation_fraction=validation_fraction,
        seed=seed,
    )
