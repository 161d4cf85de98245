"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022), hard and soft labels."""

import keras
from keras import ops

from keras_mixkd.losses._common import center
from keras_mixkd.losses._common import check_bool
from keras_mixkd.losses._common import check_ddof
from keras_mixkd.losses._common import check_logit_pair
from keras_mixkd.losses._common import check_nonnegative
from keras_mixkd.losses._common import check_nonnegative_int
from keras_mixkd.losses._common import check_temperature
from keras_mixkd.losses._common import label_rows
from keras_mixkd.losses.base import DistillationLoss
from keras_mixkd.losses.option import LossOption

_DDOF = "0 (population std) or 1 (unbiased std, as torch.std)"
from keras_mixkd.losses.standardize import zscore_logits

# Subtracted from a class's logit to take it out of a log-sum-exp.
_EXCLUDE = 1e9


def _log_sum_exp_without_each(z):
    """`(LSE(z), [LSE(z without class g)]_g)` per row, both stable, in O(K).

    For every class but the row's top one, `p_g ≤ 1/2`, so
    `LSE − log1p(−p_g)`... is accurate; for the top class the sum of the other
    classes is taken directly, shifted by the second-largest logit, so a
    confident row (`1 − p_top` below float32 precision) loses nothing.
    """
    num_classes = z.shape[-1]
    top = ops.max(z, axis=-1, keepdims=True)
    lse = top + ops.log(ops.sum(ops.exp(z - top), axis=-1, keepdims=True))
    probs = ops.exp(z - lse)
    # p ≤ 1/2 for every non-top class; the clip keeps the discarded top branch finite.
    general = lse + ops.log1p(-ops.minimum(probs, 0.5))
    is_top = ops.one_hot(ops.argmax(z, axis=-1), num_classes, dtype=z.dtype)
    others = z - _EXCLUDE * is_top
    second = ops.max(others, axis=-1, keepdims=True)
    rest = second + ops.log(ops.sum(ops.exp(others - second), axis=-1, keepdims=True))
    return lse, ops.where(is_top > 0, rest, general), is_top


def per_sample_decoupled_distillation(
    teacher_logits, student_logits, labels, alpha=1.0, beta=8.0, temperature=4.0
):
    """DKD per sample, `T² · Σ_g y_g (α·TCKD_g + β·NCKD_g)`, for hard or soft labels.

    For a hard label `g` this is mdistiller's `dkd_loss` per sample. For a
    soft row `y` (MixUp, CutMix, label smoothing) it is the label-weighted sum
    of DKD over target classes; each `TCKD_g`, `NCKD_g` has a closed form
    from the two log-softmax rows and `LSE` of each row without class `g`, so
    all `K` targets cost O(K) together:

    - `TCKD_g = p_g log(p_g/q_g) + (1−p_g) log((1−p_g)/(1−q_g))`
    - `NCKD_g = Σ_{j≠g} p̂_j (a_j − b_j) − LSE_{≠g}(a) + LSE_{≠g}(b)` with
      `a = t/T`, `b = s/T`, `p̂_j = exp(a_j − LSE_{≠g}(a))`.
    """
    teacher_logits, student_logits = check_logit_pair(teacher_logits, student_logits)
    if labels is None:
        raise ValueError("DKD needs the labels (its target class); got labels=None.")
    num_classes = teacher_logits.shape[-1]
    if num_classes is not None and num_classes < 2:
        raise ValueError(f"DKD needs at least 2 classes; got logits with {num_classes}.")
    rows = label_rows(labels, num_classes)
    a = center(teacher_logits) / temperature
    b = center(student_logits) / temperature
    lse_a, without_a, top_a = _log_sum_exp_without_each(a)
    lse_b, without_b, top_b = _log_sum_exp_without_each(b)
    log_p, log_q = a - lse_a, b - lse_b
    p, q = ops.exp(log_p), ops.exp(log_q)
    log_not_p = without_a - lse_a
    d = a - b  # mean 0: both rows are centred

    # L = LSE(a) − LSE(b) and L_g = LSE_{≠g}(a) − LSE_{≠g}(b). For rows with small
    # differences they come from `log1p(Σ q·expm1(d))` (as in `kl_from_logits`), so
    # TCKD and NCKD, of order d², keep their precision; else directly.
    is_near = ops.max(ops.abs(d), axis=-1, keepdims=True) < 1.0
    growth = ops.expm1(ops.clip(d, -1.0, 1.0))
    total = ops.sum(q * growth, axis=-1, keepdims=True)
    general_rest = (total - q * growth) / ops.exp(ops.maximum(without_b - lse_b, -0.7))
    without_top_b = ops.sum(top_b * without_b, axis=-1, keepdims=True)
    direct_rest = ops.sum(
        (1.0 - top_b) * ops.exp(ops.minimum(b - without_top_b, 0.0)) * growth, axis=-1, keepdims=True
    )
    rest = ops.where(top_b > 0, direct_rest, general_rest)
    log_ratio = ops.where(is_near, ops.log1p(ops.maximum(total, -0.5)), lse_a - lse_b)
    log_ratio_without = ops.where(
        is_near, ops.log1p(ops.maximum(rest, -0.5)), without_a - without_b
    )
    tckd = p * (d - log_ratio) + ops.exp(log_not_p) * (log_ratio_without - log_ratio)

    # Σ_{j≠g} p̂_j d_j / (1 − p_g) for the non-top classes (1 − p_g ≥ 1/2) ...
    weighted = ops.sum(p * d, axis=-1, keepdims=True)
    general = (weighted - p * d) / ops.exp(ops.maximum(log_not_p, -0.7))
    # ... and directly for the top class, whose 1 − p may be below float32's reach.
    without_top = ops.sum(top_a * without_a, axis=-1, keepdims=True)
    direct = ops.sum(
        (1.0 - top_a) * ops.exp(ops.minimum(a - without_top, 0.0)) * d, axis=-1, keepdims=True
    )
    non_target_mean = ops.where(top_a > 0, direct, general)
    nckd = non_target_mean - log_ratio_without
    per_target = alpha * tckd + beta * nckd
    per_target = ops.where(rows > 0, per_target, 0.0)
    return (temperature**2) * ops.sum(rows * per_target, axis=-1)


def decoupled_distillation(
    teacher_logits,
    student_logits,
    labels,
    alpha=1.0,
    beta=8.0,
    temperature=4.0,
    standardize=False,
    ddof=1,
):
    """Decoupled knowledge distillation (Zhao et al., CVPR 2022), batch mean.

    `T² · (α · TCKD + β · NCKD)` as mdistiller's `dkd_loss` computes it for
    integer labels: TCKD is the KL of the binary (target, rest) probabilities,
    NCKD the KL of the distributions over the non-target classes. For soft
    labels `y` (rows summing to 1) it is `Σ_g y_g DKD(t, s, g)`, equal to the
    hard-label value on one-hot rows. The reference's warm-up of the DKD term
    over the first epochs is applied by the `Distiller` (see
    `DecoupledDistillation`), not here.

    Arguments:
        teacher_logits: Tensor `(batch, classes)`.
        student_logits: Tensor `(batch, classes)`.
        labels: Integer class ids `(batch,)` / `(batch, 1)` or soft rows
            `(batch, classes)`.
        alpha: Weight of TCKD (reference 1).
        beta: Weight of NCKD (reference 8 on CIFAR-100).
        temperature: Positive float `T` (reference 4).
        standardize: Z-score both logit rows first (Sun et al. 2024's
            pre-process, "DKD + logit standardisation").
        ddof: The std's ddof when standardising (1, as `torch.std`, or 0).

    Returns:
        Scalar tensor.

    Example:

    >>> import numpy as np
    >>> t = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> float(decoupled_distillation(t, t, np.array([0])))
    0.0
    """
    loss = DecoupledDistillation(
        alpha=alpha, beta=beta, temperature=temperature, warmup_epochs=0,
        standardize=standardize, std_ddof=ddof,
    )
    return ops.mean(loss.compute_loss(teacher_logits, student_logits, labels))


@keras.saving.register_keras_serializable(package="keras_mixkd")
class DecoupledDistillation(DistillationLoss):
    """DKD (Zhao et al., CVPR 2022) with the reference's warm-up, for hard or soft labels.

    Per sample `w(e) · T² · Σ_g y_g (α·TCKD_g + β·NCKD_g)` (see
    `decoupled_distillation`), where `w(e) = min((e + 1) / warmup_epochs, 1)`
    during the 0-based epoch `e` of `fit`: mdistiller's `min(epoch / 20, 1)`
    with its epochs counted from 1. The epoch is a non-trainable variable of
    this loss that the `Distiller` sets at the start of every epoch (a
    callback it adds to `fit`), so a compiled step reads it on every backend;
    outside `fit`, before the first epoch, `w = 1`. `warmup_epochs=0` turns
    the warm-up off.

    Reference CIFAR-100 setting: `Distiller(teacher, student,
    loss=DecoupledDistillation(), student_loss_weight=1.0,
    distillation_loss_weight=1.0)` (CE weight 1, DKD weight 1).

    Arguments:
        alpha: Weight of TCKD (reference 1).
        beta: Weight of NCKD (reference 8).
        temperature: Positive float `T` (reference 4).
        warmup_epochs: Epochs of the linear warm-up (reference 20; 0 = none).
        standardize: Z-score the logits first (DKD + logit standardisation).
        std_ddof: The std's ddof when standardising (1 or 0).
        **kwargs: Passed to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> t = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> float(DecoupledDistillation()(t, t, np.array([0])))
    0.0
    """

    needs_labels = True
    # The constructor's options, read by the loss registry and study recipes.
    OPTIONS = (
        LossOption("alpha", 1.0, lambda v: check_nonnegative(v, "alpha"), "weight of TCKD", "a number >= 0"),
        LossOption("beta", 8.0, lambda v: check_nonnegative(v, "beta"), "weight of NCKD", "a number >= 0"),
        LossOption("temperature", 4.0, check_temperature, "temperature T (> 0)", "a number > 0"),
        LossOption("warmup_epochs", 20, lambda v: check_nonnegative_int(v, "warmup_epochs"),
                   "epochs of the linear warm-up (0 = none)", "an integer >= 0"),
        LossOption("standardize", False, lambda v: check_bool(v, "standardize"), "z-score the logits first",
                   "true or false"),
        LossOption("std_ddof", 1, check_ddof, "ddof of the std when standardising (1 or 0)", _DDOF),
    )

    def __init__(
        self,
        alpha=1.0,
        beta=8.0,
        temperature=4.0,
        warmup_epochs=20,
        standardize=False,
        std_ddof=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.alpha = check_nonnegative(alpha, "alpha")
        self.beta = check_nonnegative(beta, "beta")
        self.temperature = check_temperature(temperature)
        self.warmup_epochs = check_nonnegative_int(warmup_epochs, "warmup_epochs")
        self.standardize = check_bool(standardize, "standardize")
        self.std_ddof = check_ddof(std_ddof)
        # -1 until `fit` starts: no warm-up outside training.
        self.epoch = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(-1.0), trainable=False,
            name="epoch", dtype="float32",
        )

    def on_epoch_begin(self, epoch):
        self.epoch.assign(float(epoch))

    def warmup_factor(self):
        """`min((epoch + 1) / warmup_epochs, 1)`, 1 outside `fit` or without warm-up."""
        if not self.warmup_epochs:
            return ops.ones((), "float32")
        epoch = ops.cast(self.epoch, "float32")
        ramp = ops.minimum((epoch + 1.0) / float(self.warmup_epochs), 1.0)
        return ops.where(epoch < 0, 1.0, ramp)

    def compute_loss(self, teacher_logits, student_logits, labels=None, **kwargs):
        teacher_logits, student_logits = check_logit_pair(teacher_logits, student_logits)
        if self.standardize:
            teacher_logits = zscore_logits(teacher_logits, self.std_ddof)
            student_logits = zscore_logits(student_logits, self.std_ddof)
        values = per_sample_decoupled_distillation(
            teacher_logits, student_logits, labels, self.alpha, self.beta, self.temperature
        )
        return values * self.warmup_factor()

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "alpha": self.alpha,
                "beta": self.beta,
                "temperature": self.temperature,
                "warmup_epochs": self.warmup_epochs,
                "standardize": self.standardize,
                "std_ddof": self.std_ddof,
            }
        )
        return config
