"""Checks of user arrays shared by the data pipeline and the Distiller (NumPy only).

Each check raises a `ValueError` or `TypeError` whose message names the
argument, what was given and what is expected, so that a bad input stops a run
before Keras traces a step (where the error would surface deep inside a
backend, or not at all: a NaN image trains to NaN weights without a word, an
out-of-range class id gives a zero loss on JAX and TensorFlow).

This module imports no Keras: the command line may use it before the backend
is chosen.
"""

import errno
import os

import numpy as np


def check_not_empty(array, what):
    """Raise `ValueError` when `array` has no examples (length 0).

    Example:

    >>> check_not_empty(np.zeros((0, 8, 8, 1)), "images")
    Traceback (most recent call last):
    ...
    ValueError: images is empty (shape (0, 8, 8, 1)): training needs at least one example.
    """
    if np.ndim(array) == 0 or len(array) == 0:
        raise ValueError(
            f"{what} is empty (shape {np.shape(array)}): training needs at least one example."
        )


def check_finite(array, what, hint="remove or repair those examples"):
    """Raise `ValueError` when a float array holds NaN or infinite values.

    The message gives how many values are bad and the first bad example's
    index, so the user can find it in their data.

    Arguments:
        array: a NumPy array (integer arrays are always finite).
        what: the argument's name in the message, e.g. "images".
        hint: what to do, appended to the message.

    Example:

    >>> check_finite(np.array([[0.5, np.nan]]), "labels")
    Traceback (most recent call last):
    ...
    ValueError: labels holds 1 NaN and 0 infinite values (first in example 0): remove or repair those examples.
    """
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        return
    # One pass, no copy, in the common case: a finite sum means no NaN and no Inf.
    if np.isfinite(array.sum(dtype=np.float64)):
        return
    nan = int(np.isnan(array).sum())
    inf = int(np.isinf(array).sum())
    if nan == 0 and inf == 0:
        return  # the sum overflowed on large finite values
    bad = ~np.isfinite(array.reshape(len(array), -1) if array.ndim > 1 else array[:, None])
    first = int(np.flatnonzero(bad.any(axis=1))[0])
    raise ValueError(
        f"{what} holds {nan} NaN and {inf} infinite values (first in example {first}): {hint}."
    )


def check_class_ids(labels, num_classes, what="labels"):
    """Raise when integer class ids are not whole numbers in `[0, num_classes)`.

    Arguments:
        labels: a NumPy array of shape (N,) or (N, 1).
        num_classes: the model's number of classes, or None (then only
            negative ids are refused).
        what: the argument's name in the message.

    Example:

    >>> check_class_ids(np.array([0, 3, 10]), 10)
    Traceback (most recent call last):
    ...
    ValueError: labels hold class id 10 (example 2), out of range for 10 classes: class ids must lie in [0, 10).
    """
    labels = np.asarray(labels).reshape(-1)
    if labels.size == 0:
        return
    if np.issubdtype(labels.dtype, np.floating):
        check_finite(labels, what)
        if np.any(labels != np.round(labels)):
            index = int(np.flatnonzero(labels != np.round(labels))[0])
            raise TypeError(
                f"{what} must be integer class ids, got the non-integer value {labels[index]} "
                f"(example {index}, dtype {labels.dtype}); pass int class ids, or soft labels "
                "as rows (N, num_classes)."
            )
    elif not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{what} must be integer class ids, got dtype {labels.dtype}.")
    low, high = labels.min(), labels.max()
    if low < 0:
        index = int(np.argmin(labels))
        raise ValueError(
            f"{what} hold the negative class id {low:g} (example {index}): class ids must "
            f"lie in [0, num_classes)."
        )
    if num_classes is not None and high >= num_classes:
        index = int(np.argmax(labels))
        raise ValueError(
            f"{what} hold class id {high:g} (example {index}), out of range for {num_classes} "
            f"classes: class ids must lie in [0, {num_classes})."
        )


def check_soft_labels(labels, num_classes=None, what="labels", tolerance=1e-3):
    """Raise when dense labels are not finite, non-negative rows summing to 1.

    Example:

    >>> check_soft_labels(np.array([[0.5, 0.6]]), 2)
    Traceback (most recent call last):
    ...
    ValueError: labels rows must be probabilities summing to 1; row 0 sums to 1.1.
    """
    labels = np.asarray(labels)
    if num_classes is not None and labels.shape[-1] != num_classes:
        raise ValueError(
            f"{what} are dense rows with {labels.shape[-1]} columns, but the model "
            f"predicts {num_classes} classes."
        )
    if labels.size == 0:
        return
    check_finite(labels, what)
    if labels.min() < 0:
        row = int(np.flatnonzero((labels < 0).any(axis=-1))[0])
        raise ValueError(f"{what} rows must be probabilities; row {row} holds a negative value.")
    sums = labels.sum(axis=-1, dtype=np.float64)
    wrong = np.abs(sums - 1.0) > tolerance
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        raise ValueError(
            f"{what} rows must be probabilities summing to 1; row {row} sums to {sums[row]:.6g}."
        )


def check_fit_arrays(x, y, num_classes=None):
    """Check NumPy inputs of `fit` / `evaluate` before any step is traced.

    `x` may be an image array or a dict of them (`{"images", "teacher_images"}`);
    `y` integer class ids `(N,)` / `(N, 1)` or soft label rows `(N, classes)`.
    Other kinds (tensors, `tf.data` datasets, generators) pass unchecked:
    reading them here would cost a copy or consume data.

    Example:

    >>> check_fit_arrays(np.zeros((4, 8, 8, 1)), np.array([0, 1, 2, 12]), num_classes=10)
    Traceback (most recent call last):
    ...
    ValueError: labels hold class id 12 (example 3), out of range for 10 classes: class ids must lie in [0, 10).
    """
    images = x.items() if isinstance(x, dict) else [("x", x)]
    for name, array in images:
        if isinstance(array, np.ndarray):
            check_not_empty(array, name)
            check_finite(array, name, "repair or drop those images before training")
    if not isinstance(y, np.ndarray):
        return
    check_not_empty(y, "labels")
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        check_class_ids(y, num_classes)
    elif y.ndim == 2 and np.issubdtype(y.dtype, np.floating) and y.shape[1] == (num_classes or y.shape[1]):
        # Rows of another width are left to the caller, which knows what it accepts.
        check_soft_labels(y, num_classes)


class NonFiniteLossError(FloatingPointError, ValueError):
    """Training stopped because its loss became NaN or infinite.

    A `ValueError` too, so that callers catching bad-input errors (the
    command line) report it as one line.
    """


def diverged_message(epoch):
    """The message of `NonFiniteLossError` for a run stopped in `epoch` (1-based)."""
    return (
        f"Training diverged in epoch {epoch}: the loss or the model's outputs became NaN or "
        "infinite, so training stopped (keras.callbacks.TerminateOnNaN). Lower the learning rate (optimizer.learning_rate "
        "in the recipe, or --set ...learning_rate=...) or check the data for extreme values. "
        "Finished results are kept; a rerun continues from the last finished epoch."
    )


def explain_error(error):
    """The one line the command line prints for `error`: what went wrong, what to do.

    Errors of the library already say both; an operating-system error (a full
    disk, a path under a file, a read-only folder) gets the path and advice.

    Example:

    >>> explain_error(OSError(errno.ENOSPC, "No space left on device"))
    'No space left on device: free some space or write elsewhere (--runs-dir, --output), then rerun the same command; finished results are kept.'
    """
    if not isinstance(error, OSError) or error.errno is None:
        return str(error)
    where = f" ({error.filename})" if error.filename else ""
    if error.errno == errno.ENOSPC:
        return (
            f"No space left on device{where}: free some space or write elsewhere (--runs-dir, "
            "--output), then rerun the same command; finished results are kept."
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        return (
            f"Cannot use {error.filename or 'the path'}: {error.strerror}. Outputs need a folder "
            "you can write to (--runs-dir, --output); inputs an existing file."
        )
    return f"{error.strerror}{where}."


def keras_file_problem(path):
    """Why the file at `path` cannot be a `.keras` archive, or None if it may be one.

    Keras reports a file that is not a zip archive as "File not found"; this
    says what is wrong with a file that exists.

    Example:

    >>> keras_file_problem("notes.txt")
    'it is not a .keras archive (not a zip file: cut short by an interrupted copy or save, or another format)'
    """
    import zipfile

    if not os.path.isfile(path):
        return None
    if not zipfile.is_zipfile(path):
        return ("it is not a .keras archive (not a zip file: cut short by an interrupted copy or save, "
                "or another format)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        return f"its zip archive is damaged ({error})"
    if "config.json" not in names:
        return f"the zip archive holds no Keras model (no config.json; it holds {sorted(names)[:5]})"
    return None
