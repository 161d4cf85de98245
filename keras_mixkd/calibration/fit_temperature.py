"""`fit_temperature`: the temperature that minimises the validation NLL (Guo et al., ICML 2017)."""

import math
import warnings

import numpy as np

from keras_mixkd.distill.output_checks import looks_like_probabilities

# The search range of T (a bound that binds is said in a warning).
DEFAULT_BOUNDS = (1e-3, 1e3)
# Relative width of the final bracket of T.
TOLERANCE = 1e-12
MAX_STEPS = 400


def fit_temperature(logits, labels, *, bounds=DEFAULT_BOUNDS, what="logits"):
    """The temperature `T > 0` minimising the mean NLL of `softmax(logits / T)`.

    Temperature scaling (Guo et al., "On Calibration of Modern Neural
    Networks", ICML 2017) fits one `T` on held-out data:
    `T* = argmin_T (1/N) sum_i [logsumexp_k(z_ik / T) - z_{i,y_i} / T]`.
    With `b = 1 / T` that NLL is convex (a log-sum-exp of linear functions of
    `b`, minus a linear one), so its derivative
    `mean_i (E_{softmax(b z_i)}[z_i] - z_{i,y_i})` increases with `b`, and
    its one root is found by bisection on `log T` in float64 to a relative
    width of 1e-12: the true minimiser, not a local one. When the NLL still
    falls at a bound of the search (every example right with a margin: it
    falls as `T -> 0`; logits no better than chance: as `T -> inf`) that
    bound is returned, with a warning.

    Arguments:
        logits: `(N, L)` logits (array or backend tensor), finite, N >= 1,
            L >= 2; not probabilities.
        labels: integer class ids `(N,)` (or one-hot rows `(N, L)`).
        bounds: `(T_min, T_max)` of the search, 0 < T_min < T_max.
        what: how messages name `logits` ("the model's outputs on the
            validation split", ...).

    Returns:
        `T` as a Python float.

    Example:

    >>> import numpy as np
    >>> from keras_mixkd.calibration import fit_temperature
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 10, 500)
    >>> logits = 5 * (np.eye(10)[labels] + rng.normal(size=(500, 10)))
    >>> fit_temperature(logits, labels) > 1     # overconfident logits: T > 1 softens them
    True
    """
    z, y = check_logits_and_labels(logits, labels, what=what)
    low, high = _check_bounds(bounds)
    z = z - z.max(axis=1, keepdims=True)  # softmax is shift-invariant: no overflow far from the origin
    target = z[np.arange(len(y)), y]

    def slope(log_b):  # dNLL/db at b = exp(log_b); increasing in b
        scaled = np.exp(log_b) * z
        weights = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        return float(np.mean((weights * z).sum(axis=1) - target))

    lo, hi = -math.log(high), -math.log(low)  # log b, b = 1 / T
    if slope(hi) <= 0:
        _warn_bound(low, "the NLL still falls as T -> 0 (every example is predicted right, with a margin)")
        return float(low)
    if slope(lo) >= 0:
        _warn_bound(high, "the NLL still falls as T grows (the logits predict the labels no better than chance)")
        return float(high)
    for _ in range(MAX_STEPS):
        if hi - lo <= TOLERANCE:
            break
        middle = 0.5 * (lo + hi)
        if slope(middle) > 0:
            hi = middle
        else:
            lo = middle
    return float(math.exp(-0.5 * (lo + hi)))


def negative_log_likelihood(logits, labels, temperature=1.0):
    """Mean NLL of `softmax(logits / temperature)` in float64 (NumPy), nats.

    Example:

    >>> round(negative_log_likelihood([[0.0, 0.0]], [1]), 6)
    0.693147
    """
    z, y = check_logits_and_labels(logits, labels)
    scaled = z / float(temperature)
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(scaled).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(y)), y]))


def check_logits_and_labels(logits, labels, *, what="logits"):
    """`(logits as float64 (N, L), labels as int (N,))`, refused with a clear message when unusable."""
    z = np.asarray(_to_numpy(logits), dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"{what} must be a 2-D array (examples, classes >= 2); got shape {tuple(z.shape)}.")
    if z.shape[0] == 0:
        raise ValueError(f"{what} hold no examples: temperature scaling fits T on a held-out (validation) split, "
                         "and it is empty. Give a validation split (data.validation_fraction > 0).")
    bad = ~np.isfinite(z)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise ValueError(f"{what} are not finite (NaN or inf) in {len(rows)} of {z.shape[0]} examples (first: "
                         f"example {int(rows[0])}); a temperature cannot be fitted to them. Check the model "
                         "(a diverged training?) and its inputs.")
    if looks_like_probabilities(z):
        raise ValueError(f"{what} look like probabilities (rows >= 0 summing to 1), not logits: temperature "
                         "scaling divides logits. Give the model without its final softmax (its logits).")
    y = np.asarray(_to_numpy(labels))
    if y.ndim == 2 and y.shape == z.shape:
        y = y.argmax(axis=1)
    if y.ndim != 1 or y.shape[0] != z.shape[0]:
        raise ValueError(f"labels must be {z.shape[0]} class ids (one per example of the {what}); got shape "
                         f"{tuple(y.shape)}.")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"labels must be integer class ids; got values like {y[:3].tolist()}.")
        y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must be class ids in [0, {z.shape[1]}); got values in [{y.min()}, {y.max()}].")
    return z, y.astype(np.int64)


def _check_bounds(bounds):
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be (T_min, T_max) with 0 < T_min < T_max; got {bounds!r}.") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise ValueError(f"bounds must be (T_min, T_max) with 0 < T_min < T_max; got {bounds!r}.")
    return low, high


def _warn_bound(bound, reason):
    warnings.warn(f"temperature scaling: {reason}; T is set to the search bound {bound:g} (bounds=).",
                  RuntimeWarning, stacklevel=3)


def _to_numpy(value):
    if isinstance(value, (np.ndarray, list, tuple)):
        return value
    import keras

    return keras.ops.convert_to_numpy(value)
