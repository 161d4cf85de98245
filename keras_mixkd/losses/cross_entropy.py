"""Cross-entropy on integer labels or dense soft labels."""

from keras import ops


def per_sample_cross_entropy(labels, logits):
    """Cross-entropy per sample, on integer class ids or on dense soft labels.

    Integer labels of shape `(B,)` or `(B, 1)` are hard labels; a float tensor
    of shape `(B, K)` is a row-stochastic soft target. The caller is
    responsible for telling them apart by shape (see `Distiller`).
    """
    logits = ops.convert_to_tensor(logits)
    labels = ops.convert_to_tensor(labels)
    log_probs = ops.log_softmax(logits, axis=-1)
    if len(labels.shape) == 2 and labels.shape[-1] == logits.shape[-1] and (
        "float" in str(labels.dtype)
    ):
        return -ops.sum(ops.cast(labels, log_probs.dtype) * log_probs, axis=-1)
    class_ids = ops.reshape(ops.cast(labels, "int32"), (-1,))
    one_hot = ops.one_hot(class_ids, logits.shape[-1], dtype=log_probs.dtype)
    return -ops.sum(one_hot * log_probs, axis=-1)


def soft_cross_entropy(labels, logits):
    """Cross-entropy on integer labels or on dense (mixed, smoothed) soft labels.

    Arguments:
        labels: Integer class ids `(batch,)` / `(batch, 1)`, or float soft
            labels `(batch, classes)` with rows summing to 1.
        logits: Tensor `(batch, classes)`.

    Returns:
        Scalar tensor, the batch mean of `-Σ_k y_k log softmax(logits)_k`.

    Example:

    >>> import numpy as np
    >>> logits = np.zeros((1, 4), "float32")
    >>> round(float(soft_cross_entropy(np.array([2]), logits)), 4)
    1.3863
    """
    return ops.mean(per_sample_cross_entropy(labels, logits))
