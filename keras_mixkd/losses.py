"""Distillation and supervised losses, written with `keras.ops` for every backend.

Each public function returns the batch mean as a scalar tensor. The
`per_sample_*` variants return one value per sample; the `Distiller` uses them
to apply sample weights.

Conventions (see `../shared/papers.md` for the studies they come from):

- Hinton KD: `T² · KL(softmax(t/T) ‖ softmax(s/T))`, batch mean. The `T²`
  factor keeps gradient magnitudes comparable across temperatures.
- Logit-standardised KD (study B): each sample's logits are divided by their
  own standard deviation (population std, `ddof=0`) instead of by a fixed `T`;
  no `T²` factor. A sample whose logits are all equal has std 0: its std is
  clamped to `STD_EPSILON`, which leaves its softmax uniform, as it should be.
- Cross-entropy accepts integer class ids `(B,)` / `(B, 1)` or dense soft
  labels `(B, K)` whose rows sum to 1 (mixed or smoothed targets).
"""

from keras import ops

STD_EPSILON = 1e-7

__all__ = [
    "knowledge_distillation",
    "standardized_distillation",
    "soft_cross_entropy",
    "per_sample_knowledge_distillation",
    "per_sample_standardized_distillation",
    "per_sample_cross_entropy",
    "standardize_logits",
]


def _kl_from_logits(teacher_logits, student_logits):
    """Per-sample `KL(softmax(t) ‖ softmax(s))`, accurate in float32.

    The direct form `Σ p (log p − log q)` subtracts two log-probabilities of
    about `−log K` each, so when the two logit rows are close (high `T`, early
    training) float32 rounding swamps a KL of order `d²`. For rows whose logit
    differences `d = t − s` are small, the exact identity
    `KL = Σ p·d − log1p(Σ q·expm1(d))` keeps full relative precision.
    """
    teacher_log_probs = ops.log_softmax(teacher_logits, axis=-1)
    student_log_probs = ops.log_softmax(student_logits, axis=-1)
    teacher_probs = ops.exp(teacher_log_probs)
    direct = ops.sum(teacher_probs * (teacher_log_probs - student_log_probs), axis=-1)

    difference = teacher_logits - student_logits
    difference = difference - ops.mean(difference, axis=-1, keepdims=True)
    # Clipped so the branch `where` discards stays finite (and so do its gradients).
    small = ops.clip(difference, -1.0, 1.0)
    student_probs = ops.exp(student_log_probs)
    near = ops.sum(teacher_probs * small, axis=-1) - ops.log1p(
        ops.sum(student_probs * ops.expm1(small), axis=-1)
    )
    is_near = ops.max(ops.abs(difference), axis=-1) < 1.0
    return ops.where(is_near, near, direct)


def standardize_logits(logits):
    """Divides each sample's logits by their own (population) standard deviation.

    Softmax ignores shifts, so this equals the z-score of the logits as far
    as every loss here is concerned.

    Arguments:
        logits: Tensor of shape `(batch, classes)`.

    Returns:
        Tensor of the same shape.

    Example:

    >>> import numpy as np
    >>> out = standardize_logits(np.array([[1.0, 3.0]], "float32"))
    >>> [round(float(v), 3) for v in np.asarray(out)[0]]
    [1.0, 3.0]
    """
    logits = ops.convert_to_tensor(logits)
    std = ops.std(logits, axis=-1, keepdims=True)
    return logits / ops.maximum(std, STD_EPSILON)


def per_sample_knowledge_distillation(teacher_logits, student_logits, temperature=4.0):
    """Hinton KD per sample: `T² · KL(softmax(t/T) ‖ softmax(s/T))`."""
    teacher_logits = ops.convert_to_tensor(teacher_logits)
    student_logits = ops.convert_to_tensor(student_logits)
    kl = _kl_from_logits(teacher_logits / temperature, student_logits / temperature)
    return kl * (temperature**2)


def per_sample_standardized_distillation(teacher_logits, student_logits):
    """Logit-standardised KD per sample: `KL(softmax(t/σ_t) ‖ softmax(s/σ_s))`."""
    return _kl_from_logits(
        standardize_logits(teacher_logits), standardize_logits(student_logits)
    )


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


def knowledge_distillation(teacher_logits, student_logits, temperature=4.0):
    """Hinton's knowledge-distillation loss, batch mean.

    `T² · KL(softmax(teacher_logits / T) ‖ softmax(student_logits / T))`.

    Arguments:
        teacher_logits: Tensor `(batch, classes)`, the teacher's logits.
        student_logits: Tensor `(batch, classes)`, the student's logits.
        temperature: Positive float `T`.

    Returns:
        Scalar tensor.

    Example:

    >>> import numpy as np
    >>> t = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> float(knowledge_distillation(t, t, temperature=4.0))
    0.0
    """
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0; got temperature={temperature}.")
    return ops.mean(
        per_sample_knowledge_distillation(teacher_logits, student_logits, temperature)
    )


def standardized_distillation(teacher_logits, student_logits):
    """Logit-standardised distillation loss (study B), batch mean.

    `KL(softmax(t / σ_t) ‖ softmax(s / σ_s))` where `σ` is each sample's own
    standard deviation of its logits; no `T²` factor.

    Arguments:
        teacher_logits: Tensor `(batch, classes)`.
        student_logits: Tensor `(batch, classes)`.

    Returns:
        Scalar tensor.

    Example:

    >>> import numpy as np
    >>> t = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> round(float(standardized_distillation(t, 3.0 * t)), 6)
    0.0
    """
    return ops.mean(per_sample_standardized_distillation(teacher_logits, student_logits))


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
