"""Study B's logit-standardised loss (MIX-KD's `MIXSTD`)."""

import keras
from keras import ops

from keras_mixkd.losses._common import center
from keras_mixkd.losses._common import check_ddof
from keras_mixkd.losses._common import check_logit_pair
from keras_mixkd.losses._common import kl_from_logits
from keras_mixkd.losses.base import DistillationLoss
from keras_mixkd.losses.option import LossOption

_DDOF = "0 (population std) or 1 (unbiased std, as torch.std)"
from keras_mixkd.losses.standardize import standardize_logits


def per_sample_standardized_distillation(teacher_logits, student_logits, ddof=1):
    """Logit-standardised KD per sample: `KL(softmax(t/σ_t) ‖ softmax(s/σ_s))`."""
    ddof = check_ddof(ddof)
    teacher_logits, student_logits = check_logit_pair(teacher_logits, student_logits)
    # Centred first (softmax ignores the mean): far from the origin, `z / σ`
    # would round the differences that matter away.
    return kl_from_logits(
        standardize_logits(center(teacher_logits), ddof),
        standardize_logits(center(student_logits), ddof),
    )


def standardized_distillation(teacher_logits, student_logits, ddof=1):
    """Logit-standardised distillation loss (study B), batch mean.

    `KL(softmax(t / σ_t) ‖ softmax(s / σ_s))` where `σ` is each sample's own
    standard deviation of its logits (unbiased, `ddof=1`, as `torch.std` in
    MIX-KD's code; `ddof=0` for the population std); no `T²` factor.

    Arguments:
        teacher_logits: Tensor `(batch, classes)`.
        student_logits: Tensor `(batch, classes)`.
        ddof: 1 (default) or 0.

    Returns:
        Scalar tensor.

    Example:

    >>> import numpy as np
    >>> t = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> round(float(standardized_distillation(t, 3.0 * t)), 6)
    0.0
    """
    return ops.mean(per_sample_standardized_distillation(teacher_logits, student_logits, ddof))


@keras.saving.register_keras_serializable(package="keras_mixkd")
class StandardizedDistillation(DistillationLoss):
    """Study B's standardised loss: each sample's logits divided by their own std.

    Per sample `KL(softmax(t/σ_t) ‖ softmax(s/σ_s))`, no temperature and no
    `T²` factor; the supervised cross-entropy is taken on `s/σ_s` too, as
    MIX-KD's code does. `Distiller(loss="standardized")` is this loss.

    Arguments:
        std_ddof: 1 (default, unbiased std as `torch.std`) or 0 (population).
        **kwargs: Passed to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> t = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> round(float(StandardizedDistillation()(t, 3.0 * t)), 6)
    0.0
    """

    # The constructor's options, read by the loss registry and study recipes.
    OPTIONS = (LossOption("std_ddof", 1, check_ddof, "ddof of the logits' std (1 unbiased, 0 population)", _DDOF),)

    def __init__(self, std_ddof=1, **kwargs):
        super().__init__(**kwargs)
        self.std_ddof = check_ddof(std_ddof)

    def compute_loss(self, teacher_logits, student_logits, labels=None, **kwargs):
        return per_sample_standardized_distillation(teacher_logits, student_logits, self.std_ddof)

    def supervised_logits(self, student_logits):
        return standardize_logits(center(student_logits), self.std_ddof)

    def get_config(self):
        config = super().get_config()
        config["std_ddof"] = self.std_ddof
        return config
