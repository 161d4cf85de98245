"""Shared numerics of the distillation losses (`keras.ops`, every backend)."""

from keras import ops

# A sample whose logits are all equal has std 0; it is clamped to this (or this
# is added to it, as the logit-standardisation reference code does).
STD_EPSILON = 1e-7


def check_temperature(temperature, name="temperature"):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"`{name}` must be a number; got {name}={temperature!r}.")
    if not temperature > 0:
        raise ValueError(f"`{name}` must be > 0; got {name}={temperature}.")
    return float(temperature)


def check_ddof(ddof):
    if ddof not in (0, 1) or isinstance(ddof, bool):
        raise ValueError(
            f"`std_ddof` must be 0 (population std) or 1 (unbiased std, as "
            f"torch.std); got {ddof!r}."
        )
    return int(ddof)


def check_nonnegative(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number; got {name}={value!r}.")
    if not value >= 0:
        raise ValueError(f"`{name}` must be >= 0; got {name}={value}.")
    return float(value)


def check_nonnegative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0; got {name}={value!r}.")
    return value


def check_bool(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False; got {value!r}.")
    return value


def check_logit_pair(teacher_logits, student_logits):
    """Converts both to float32 tensors of one `(batch, classes)` shape."""
    teacher_logits = ops.cast(ops.convert_to_tensor(teacher_logits), "float32")
    student_logits = ops.cast(ops.convert_to_tensor(student_logits), "float32")
    if not (
        len(teacher_logits.shape) == 2
        and len(student_logits.shape) == 2
        and teacher_logits.shape[-1] == student_logits.shape[-1]
    ):
        raise ValueError(
            "Teacher and student logits must both have shape (batch, classes); "
            f"got teacher {tuple(teacher_logits.shape)} and student "
            f"{tuple(student_logits.shape)}."
        )
    return teacher_logits, student_logits


def center(logits):
    """Removes each row's mean: softmax ignores it, and far from the origin it
    keeps a later division by `T` from rounding the differences away."""
    # Shifted by the first logit first: the differences are exact in float32,
    # and the mean of those small numbers carries no rounding of the offset.
    shifted = logits - logits[..., :1]
    return shifted - ops.mean(shifted, axis=-1, keepdims=True)


def row_std(logits, ddof=1):
    """Each row's standard deviation with `ddof` (two-pass, translation-robust)."""
    centered = center(logits)
    classes = logits.shape[-1]
    if ddof and classes is not None and classes <= ddof:
        raise ValueError(
            f"The unbiased std (ddof={ddof}) needs at least {ddof + 1} classes; "
            f"got logits of shape {tuple(logits.shape)}."
        )
    variance = ops.sum(ops.square(centered), axis=-1, keepdims=True) / (classes - ddof)
    return ops.sqrt(variance)


def kl_from_logits(teacher_logits, student_logits):
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


def label_rows(labels, num_classes):
    """Dense float32 label rows `(batch, classes)` from class ids or soft rows."""
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == 2 and labels.shape[-1] == num_classes and (
        "float" in str(labels.dtype)
    ):
        return ops.cast(labels, "float32")
    if len(labels.shape) == 1 or (len(labels.shape) == 2 and labels.shape[-1] == 1):
        class_ids = ops.reshape(ops.cast(labels, "int32"), (-1,))
        return ops.one_hot(class_ids, num_classes, dtype="float32")
    raise ValueError(
        f"Labels of shape {tuple(labels.shape)} fit neither integer class ids of shape "
        f"(batch,) or (batch, 1) nor soft labels of shape (batch, {num_classes})."
    )
