"""Measures of a model's outputs: calibration, smoothness, agreement with humans.

Each takes the model's outputs `(N, L)` — probabilities, or logits with
`from_logits=True` — runs with `keras.ops` on the backend's device, and
returns a Python float.
"""

import numpy as np
from keras import ops

from keras_mixkd.metrics._inputs import as_features
from keras_mixkd.metrics._inputs import as_probabilities
from keras_mixkd.metrics._inputs import class_ids
from keras_mixkd.metrics._inputs import integer_labels

# Probabilities are clipped here before a logarithm.
_LOG_FLOOR = 1e-12


def _output_labels(labels, num_examples, num_outputs):
    """Integer labels that index the outputs (not re-indexed)."""
    ids = integer_labels(labels, num_examples)
    if ids.size and (ids.min() < 0 or ids.max() >= num_outputs):
        raise ValueError(
            f"labels must be class ids in [0, {num_outputs}) to index the "
            f"{num_outputs} outputs, got values in [{ids.min()}, {ids.max()}]."
        )
    return ops.convert_to_tensor(ids.astype(np.int32))


def accuracy(predictions, labels):
    """Top-1 accuracy: fraction of examples whose argmax output is the label.

    Arguments:
        predictions: probabilities or logits `(N, L)` (the argmax is the same).
        labels: integer class ids `(N,)` or one-hot rows `(N, L)`.

    Returns:
        A Python float in [0, 1].

    Example:

    >>> from keras_mixkd.metrics import accuracy
    >>> accuracy([[0.1, 0.9], [0.8, 0.2]], [1, 1])
    0.5
    """
    predictions = as_features(predictions, "predictions")
    num_examples, num_outputs = (int(s) for s in predictions.shape)
    labels = _output_labels(labels, num_examples, num_outputs)
    hits = ops.cast(
        ops.cast(ops.argmax(predictions, axis=-1), "int32") == labels, "float32"
    )
    return float(ops.convert_to_numpy(ops.mean(hits)))


def expected_calibration_error(predictions, labels, num_bins=15, from_logits=False):
    """Expected calibration error (Guo et al., 2017), equal-width bins.

    Confidence is the largest probability, the prediction its class. With
    bins `((b-1)/B, b/B]`, `ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)|`,
    i.e. `(1/N) sum_b |sum_{i in B_b} (correct_i - conf_i)|`.

    Arguments:
        predictions: probabilities `(N, L)` or, with `from_logits=True`,
            logits.
        labels: integer class ids `(N,)` or one-hot rows `(N, L)`.
        num_bins: number of equal-width confidence bins (15, as usual).
        from_logits: whether `predictions` are logits.

    Returns:
        A Python float in [0, 1].

    Example:

    >>> import numpy as np
    >>> from keras_mixkd.metrics import expected_calibration_error
    >>> logits = np.random.default_rng(0).normal(size=(100, 10))
    >>> ece = expected_calibration_error(logits, np.zeros(100, int), from_logits=True)
    """
    if not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"`num_bins` must be a positive integer, got {num_bins!r}.")
    probabilities = as_probabilities(predictions, from_logits)
    num_examples, num_outputs = (int(s) for s in probabilities.shape)
    labels = _output_labels(labels, num_examples, num_outputs)
    confidence = ops.max(probabilities, axis=-1)
    correct = ops.cast(
        ops.cast(ops.argmax(probabilities, axis=-1), "int32") == labels, "float32"
    )
    bins = ops.clip(
        ops.cast(ops.ceil(confidence * num_bins), "int32") - 1, 0, num_bins - 1
    )
    gaps = ops.segment_sum(correct - confidence, bins, num_segments=int(num_bins))
    return float(ops.convert_to_numpy(ops.sum(ops.abs(gaps)) / num_examples))


def negative_log_likelihood(predictions, labels, from_logits=False):
    """Mean negative log-likelihood (nats) of the labels under the outputs.

    `-(1/N) sum_i log p_i[y_i]`; from logits, `log p = log_softmax(logits)`
    (no clipping), from probabilities `log max(p, 1e-12)`.

    Arguments:
        predictions: probabilities `(N, L)` or, with `from_logits=True`,
            logits.
        labels: integer class ids `(N,)` or one-hot rows `(N, L)`.
        from_logits: whether `predictions` are logits.

    Returns:
        A Python float.

    Example:

    >>> from keras_mixkd.metrics import negative_log_likelihood
    >>> round(negative_log_likelihood([[0.0, 0.0]], [1], from_logits=True), 4)
    0.6931
    """
    if from_logits:
        logits = as_features(predictions, "predictions")
        log_p = ops.log_softmax(logits - ops.max(logits, axis=-1, keepdims=True), axis=-1)
    else:
        log_p = ops.log(ops.maximum(as_probabilities(predictions, from_logits=False), _LOG_FLOOR))
    num_examples, num_outputs = (int(s) for s in log_p.shape)
    ids = _output_labels(labels, num_examples, num_outputs)
    picked = ops.take_along_axis(log_p, ops.expand_dims(ids, -1), axis=-1)
    return float(ops.convert_to_numpy(-ops.mean(picked)))


def mean_entropy(predictions, from_logits=False):
    """Mean Shannon entropy (nats) of the output distributions.

    `mean_i H(p_i)`, `H(p) = -sum_k p_k log p_k` with `0 log 0 = 0`. Higher
    means smoother (less confident) outputs; at most `log L`.

    Arguments:
        predictions: probabilities `(N, L)` or, with `from_logits=True`,
            logits (then computed from `log_softmax`, without clipping).
        from_logits: whether `predictions` are logits.

    Returns:
        A Python float.

    Example:

    >>> from keras_mixkd.metrics import mean_entropy
    >>> round(mean_entropy([[0.5, 0.5], [1.0, 0.0]]), 4)
    0.3466
    """
    if from_logits:
        logits = as_features(predictions, "predictions")
        log_p = ops.log_softmax(logits - ops.max(logits, axis=-1, keepdims=True), axis=-1)
        entropy = -ops.sum(ops.exp(log_p) * log_p, axis=-1)
    else:
        p = as_probabilities(predictions, from_logits=False)
        entropy = -ops.sum(p * ops.log(ops.maximum(p, _LOG_FLOOR)), axis=-1)
    return float(ops.convert_to_numpy(ops.mean(entropy)))


def logit_std(logits, ddof=0):
    """Mean over examples of the standard deviation of each example's logits.

    The per-example `sigma` that logit-standardised distillation divides by;
    a smooth (e.g. mixup-trained) teacher has a small one.

    Arguments:
        logits: array or backend tensor `(N, L)`, finite.
        ddof: delta degrees of freedom of each std (0: population std, as
            `numpy.std`; 1: unbiased, as `torch.std`).

    Returns:
        A Python float.

    Example:

    >>> from keras_mixkd.metrics import logit_std
    >>> logit_std([[1.0, -1.0], [2.0, 0.0]])
    1.0
    """
    logits = as_features(logits, "logits")
    num_outputs = int(logits.shape[1])
    if ddof not in (0, 1) or num_outputs - ddof < 1:
        raise ValueError(
            f"`ddof` must be 0 or 1 and smaller than the number of logits "
            f"({num_outputs}), got {ddof!r}."
        )
    # Two passes: the first mean's float32 error far from 0 is removed by the second.
    centered = logits - ops.mean(logits, axis=-1, keepdims=True)
    centered = centered - ops.mean(centered, axis=-1, keepdims=True)
    variance = ops.sum(ops.square(centered), axis=-1) / (num_outputs - ddof)
    return float(ops.convert_to_numpy(ops.mean(ops.sqrt(variance))))


def soft_label_kl(predictions, soft_labels, labels, from_logits=False):
    """Mean over classes of `KL(human_c || model_c)` (study A's first measure).

    For each class c (by the integer `labels`), `human_c` is the mean of the
    `soft_labels` rows (e.g. CIFAR-10H human label distributions) of its
    examples and `model_c` the mean of the model's probability rows; the
    result is `mean_c sum_k human_c[k] log(human_c[k] / model_c[k])`, with
    `0 log 0 = 0` and `model_c` clipped below at 1e-12. 0 when the model's
    class-conditional outputs match the humans'.

    Arguments:
        predictions: model probabilities `(N, L)` or, with
            `from_logits=True`, logits.
        soft_labels: human label distributions `(N, L)`, rows summing to 1.
        labels: integer class ids `(N,)` or one-hot rows: the classes the
            means are taken over (usually the dataset's hard labels).
        from_logits: whether `predictions` are logits.

    Returns:
        A Python float (nats).

    Example:

    >>> import numpy as np
    >>> from keras_mixkd.metrics import soft_label_kl
    >>> human = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> soft_label_kl(human, human, [0, 1])
    0.0
    """
    probabilities = as_probabilities(predictions, from_logits)
    human = as_probabilities(soft_labels, from_logits=False, name="soft_labels")
    if tuple(human.shape) != tuple(probabilities.shape):
        raise ValueError(
            f"predictions and soft_labels must have the same shape, got "
            f"{tuple(probabilities.shape)} and {tuple(human.shape)}."
        )
    ids, counts = class_ids(labels, int(probabilities.shape[0]))
    num_classes = counts.size
    n = ops.convert_to_tensor(counts.astype(np.float32))[:, None]
    ids_tensor = ops.convert_to_tensor(ids)
    human_means = ops.segment_sum(human, ids_tensor, num_segments=num_classes) / n
    model_means = ops.segment_sum(probabilities, ids_tensor, num_segments=num_classes) / n
    positive = human_means > 0
    safe_human = ops.where(positive, human_means, ops.ones_like(human_means))
    terms = ops.where(
        positive,
        human_means * (ops.log(safe_human) - ops.log(ops.maximum(model_means, _LOG_FLOOR))),
        ops.zeros_like(human_means),
    )
    return float(ops.convert_to_numpy(ops.mean(ops.sum(terms, axis=-1))))
