"""Per-sample logit standardisation, as the two reference codes compute it."""

from keras import ops

from keras_mixkd.losses._common import STD_EPSILON
from keras_mixkd.losses._common import center
from keras_mixkd.losses._common import check_ddof
from keras_mixkd.losses._common import row_std


def standardize_logits(logits, ddof=1):
    """Divides each sample's logits by their own standard deviation (MIX-KD's MIXSTD).

    `z / max(std(z), 1e-7)`, with the unbiased std by default (`ddof=1`, as
    `torch.std` in the reference code); `ddof=0` gives the population std.
    Softmax ignores shifts, so this equals the z-score of the logits as far as
    every loss here is concerned.

    Arguments:
        logits: Tensor of shape `(batch, classes)`.
        ddof: 1 (default, unbiased std) or 0 (population std).

    Returns:
        Tensor of the same shape.

    Example:

    >>> import numpy as np
    >>> out = standardize_logits(np.array([[1.0, 3.0]], "float32"), ddof=0)
    >>> [round(float(v), 3) for v in np.asarray(out)[0]]
    [1.0, 3.0]
    """
    ddof = check_ddof(ddof)
    logits = ops.convert_to_tensor(logits)
    return logits / ops.maximum(row_std(logits, ddof), STD_EPSILON)


def zscore_logits(logits, ddof=1):
    """The z-score of each sample's logits (Sun et al. 2024's pre-process).

    `(z − mean(z)) / (1e-7 + std(z))` with the unbiased std by default, as the
    logit-standardisation reference code computes it.

    Arguments:
        logits: Tensor of shape `(batch, classes)`.
        ddof: 1 (default, unbiased std) or 0 (population std).

    Returns:
        Tensor of the same shape: each row has mean 0 and std ≈ 1.

    Example:

    >>> import numpy as np
    >>> out = zscore_logits(np.array([[1.0, 3.0]], "float32"))
    >>> [round(float(v), 3) for v in np.asarray(out)[0]]
    [-0.707, 0.707]
    """
    ddof = check_ddof(ddof)
    logits = ops.convert_to_tensor(logits)
    return center(logits) / (STD_EPSILON + row_std(logits, ddof))
