"""Input checks shared by the measures.

Features stay on the backend's device (`keras.ops`); labels are small and
are checked on the host with NumPy, where their values decide shapes (the
number of classes) that must be static on every backend.
"""

import numpy as np
from keras import ops


def _to_host(values):
    if isinstance(values, np.ndarray):
        return values
    try:
        return np.asarray(ops.convert_to_numpy(values))
    except Exception:  # plain Python lists, tuples
        return np.asarray(values)


def _describe(values):
    shape = getattr(values, "shape", None)
    dtype = getattr(values, "dtype", None)
    return f"{type(values).__name__} of shape {tuple(shape) if shape is not None else '?'} and dtype {dtype}"


def check_finite(tensor, name):
    """Raises `ValueError` when `tensor` holds NaN or Inf (one device sync)."""
    if not bool(ops.convert_to_numpy(ops.all(ops.isfinite(tensor)))):
        bad = int(ops.convert_to_numpy(ops.sum(ops.cast(ops.logical_not(ops.isfinite(tensor)), "int32"))))
        raise ValueError(
            f"`{name}` must be finite, but it holds {bad} NaN or Inf "
            f"value(s) (shape {tuple(tensor.shape)})."
        )


def check_finite_summary(summary, tensor, name):
    """Raises `ValueError` unless `summary` (sums or means of `tensor`) is finite.

    NaN and Inf propagate into sums, so a finite summary proves `tensor`
    finite without a separate pass over it; only a failing summary costs a
    full check, to say which it is.
    """
    if bool(ops.convert_to_numpy(ops.all(ops.isfinite(summary)))):
        return
    check_finite(tensor, name)
    raise ValueError(
        f"`{name}` is finite but too large: its float32 sums overflow "
        f"(shape {tuple(tensor.shape)}). Rescale it."
    )


def as_features(features, name="features", check=True):
    """Returns features as a float32 `(N, D)` tensor on the backend's device.

    Arrays of more than two dimensions (e.g. convolutional maps) are flattened
    per sample. With `check=False` the caller checks finiteness itself (see
    `check_finite_summary`).
    """
    if features is None:
        raise ValueError(f"`{name}` must be an array of shape (N, D), got None.")
    shape = getattr(features, "shape", None)
    if shape is None:
        features = np.asarray(features)
        shape = features.shape
    if len(shape) < 2:
        raise ValueError(
            f"`{name}` must have shape (N, D) (one row per example), got "
            f"{_describe(features)}."
        )
    dtype = str(getattr(features, "dtype", ""))
    if not any(kind in dtype for kind in ("float", "int", "uint", "bool")):
        raise TypeError(
            f"`{name}` must hold numbers, got {_describe(features)}."
        )
    tensor = ops.convert_to_tensor(features)
    tensor = ops.cast(tensor, "float32")
    if len(shape) > 2:
        tensor = ops.reshape(tensor, (shape[0], -1))
    if check:
        check_finite(tensor, name)
    return tensor


def integer_labels(labels, num_examples, name="labels"):
    """Integer class ids `(N,)` (int64 NumPy) from integer or one-hot labels.

    Accepts ids `(N,)` or `(N, 1)` (integer dtype, or floats with whole
    values) and one-hot rows `(N, C)`; anything else raises. The ids are
    returned as given, not re-indexed.
    """
    if labels is None:
        raise ValueError(f"`{name}` must be integer class ids or one-hot rows, got None.")
    host = _to_host(labels)
    if host.dtype.kind not in "biuf":
        raise TypeError(
            f"`{name}` must be integer class ids (N,) or one-hot rows (N, C), "
            f"got {_describe(host)}."
        )
    if host.ndim == 2 and host.shape[1] == 1:
        host = host[:, 0]
    if host.ndim == 2:
        good_rows = np.all((host == 0) | (host == 1), axis=1) & (host.sum(axis=1) == 1)
        if not np.all(good_rows):
            bad = int(np.flatnonzero(~good_rows)[0])
            raise ValueError(
                f"`{name}` of shape {host.shape} must be one-hot (one 1 per "
                f"row, zeros elsewhere), but row {bad} is "
                f"{np.round(host[bad], 4).tolist()[:12]}. Mixed or smoothed "
                "labels do not define classes: pass the integer class ids of "
                "the clean examples."
            )
        host = np.argmax(host, axis=1)
    elif host.ndim != 1:
        raise ValueError(
            f"`{name}` must be integer class ids (N,) or one-hot rows (N, C), "
            f"got {_describe(host)}."
        )
    if host.dtype.kind == "f":
        whole = np.isfinite(host) & (host == np.round(host))
        if not np.all(whole):
            raise ValueError(
                f"`{name}` must be integer class ids, got non-integer values "
                f"such as {host[~whole][:3].tolist()}."
            )
    if host.shape[0] != num_examples:
        raise ValueError(
            f"features and `{name}` must have the same length: got "
            f"{num_examples} feature rows and {host.shape[0]} labels."
        )
    return host.astype(np.int64)


def class_ids(labels, num_examples, name="labels"):
    """Turns integer or one-hot labels into contiguous ids `0..L-1`.

    Arguments:
        labels: integer class ids `(N,)` or `(N, 1)`, or one-hot rows `(N, C)`.
        num_examples: N, the number of feature rows the labels must match.

    Returns:
        `(ids, counts)`: int32 NumPy ids in `0..L-1` (classes ordered by their
        original id) and the number of examples of each of the L classes that
        occur. Classes that never occur are not counted.
    """
    host = integer_labels(labels, num_examples, name)
    unique, ids, counts = np.unique(host, return_inverse=True, return_counts=True)
    if unique.size < 2:
        raise ValueError(
            f"At least two classes are needed, but `{name}` holds only "
            f"{unique.size} ({unique.tolist()[:5]})."
        )
    return ids.reshape(-1).astype(np.int32), counts.astype(np.int64)


def as_probabilities(predictions, from_logits, name="predictions"):
    """Returns float32 `(N, L)` probabilities, checking they look like ones."""
    tensor = as_features(predictions, name)
    if from_logits:
        # The row max is subtracted first (exactly, in float32), so logits far
        # from 0 give the softmax of their differences whatever the backend does.
        return ops.softmax(tensor - ops.max(tensor, axis=-1, keepdims=True), axis=-1)
    low = float(ops.convert_to_numpy(ops.min(tensor)))
    high = float(ops.convert_to_numpy(ops.max(tensor)))
    row_sums = ops.sum(tensor, axis=-1)
    worst = float(ops.convert_to_numpy(ops.max(ops.abs(row_sums - 1.0))))
    if low < 0.0 or high > 1.0 or worst > 1e-3:
        raise ValueError(
            f"`{name}` must be probabilities (rows in [0, 1] summing to 1) "
            f"when from_logits=False, got values in [{low:.4g}, {high:.4g}] "
            f"with row sums off by up to {worst:.3g}. Pass from_logits=True "
            "for logits."
        )
    return tensor
