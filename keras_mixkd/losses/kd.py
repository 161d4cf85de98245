"""Hinton KD, and logit-standardised KD (Sun et al., CVPR 2024)."""

import keras
from keras import ops

from keras_mixkd.losses._common import center
from keras_mixkd.losses._common import check_bool
from keras_mixkd.losses._common import check_ddof
from keras_mixkd.losses._common import check_logit_pair
from keras_mixkd.losses._common import check_temperature
from keras_mixkd.losses._common import kl_from_logits
from keras_mixkd.losses.base import DistillationLoss
from keras_mixkd.losses.option import LossOption

_DDOF = "0 (population std) or 1 (unbiased std, as torch.std)"
from keras_mixkd.losses.standardize import zscore_logits


def per_sample_knowledge_distillation(teacher_logits, student_logits, temperature=4.0):
    """Hinton KD per sample: `T² · KL(softmax(t/T) ‖ softmax(s/T))`."""
    teacher_logits, student_logits = check_logit_pair(teacher_logits, student_logits)
    # Centred first (softmax ignores it): logits far from 0 keep their differences.
    kl = kl_from_logits(center(teacher_logits) / temperature, center(student_logits) / temperature)
    return kl * (temperature**2)


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
    temperature = check_temperature(temperature)
    return ops.mean(
        per_sample_knowledge_distillation(teacher_logits, student_logits, temperature)
    )


def per_sample_logit_standardized_distillation(
    teacher_logits, student_logits, temperature=2.0, ddof=1
):
    """Logit-standardised KD per sample: `τ² · KL(softmax(Z(t)/τ) ‖ softmax(Z(s)/τ))`."""
    teacher_logits, student_logits = check_logit_pair(teacher_logits, student_logits)
    return per_sample_knowledge_distillation(
        zscore_logits(teacher_logits, ddof), zscore_logits(student_logits, ddof), temperature
    )


def logit_standardized_distillation(teacher_logits, student_logits, temperature=2.0, ddof=1):
    """Logit-standardised KD (Sun et al., CVPR 2024), batch mean.

    `τ² · KL(softmax(Z(t)/τ) ‖ softmax(Z(s)/τ))` with the z-score
    `Z(z) = (z − mean(z)) / (1e-7 + std(z))` of each sample's logits
    (unbiased std by default, as the reference's `torch.std`) and the base
    temperature `τ` (2 in the reference's CIFAR-100 commands).

    Arguments:
        teacher_logits: Tensor `(batch, classes)`.
        student_logits: Tensor `(batch, classes)`.
        temperature: Positive float, the base temperature `τ`.
        ddof: 1 (default, unbiased std) or 0 (population std).

    Returns:
        Scalar tensor.

    Example:

    >>> import numpy as np
    >>> t = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> round(float(logit_standardized_distillation(t, 5.0 * t + 1.0)), 6)
    0.0
    """
    temperature = check_temperature(temperature)
    ddof = check_ddof(ddof)
    return ops.mean(
        per_sample_logit_standardized_distillation(teacher_logits, student_logits, temperature, ddof)
    )


@keras.saving.register_keras_serializable(package="keras_mixkd")
class KnowledgeDistillation(DistillationLoss):
    """Hinton KD, optionally on z-scored logits (logit-standardised KD).

    Per sample: `T² · KL(softmax(t/T) ‖ softmax(s/T))`. With
    `standardize=True` the logits are first z-scored per sample,
    `(z − mean) / (1e-7 + std)` (Sun et al., CVPR 2024), and `T` is their
    base temperature; the supervised cross-entropy stays on the raw logits,
    as in the reference code. `Distiller(loss="kd")` is
    `KnowledgeDistillation(temperature)`, `loss="lskd"` is
    `KnowledgeDistillation(temperature, standardize=True)`.

    Arguments:
        temperature: Positive float `T` (reference: 4 for KD, 2 for LS-KD).
        standardize: Z-score both logit rows first.
        std_ddof: 1 (default, unbiased std as `torch.std`) or 0.
        **kwargs: Passed to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> loss = KnowledgeDistillation(temperature=4.0)
    >>> t = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> float(loss(t, t))
    0.0
    """

    # The constructor's options, read by the loss registry and study recipes.
    OPTIONS = (
        LossOption("temperature", 4.0, check_temperature, "temperature T (> 0)", "a number > 0"),
        LossOption("standardize", False, lambda v: check_bool(v, "standardize"),
                   "z-score both logit rows first", "true or false"),
        LossOption("std_ddof", 1, check_ddof, "ddof of the std when standardising (1 or 0)", _DDOF),
    )

    def __init__(self, temperature=4.0, standardize=False, std_ddof=1, **kwargs):
        super().__init__(**kwargs)
        self.temperature = check_temperature(temperature)
        self.standardize = check_bool(standardize, "standardize")
        self.std_ddof = check_ddof(std_ddof)

    def compute_loss(self, teacher_logits, student_logits, labels=None, **kwargs):
        if self.standardize:
            return per_sample_logit_standardized_distillation(
                teacher_logits, student_logits, self.temperature, self.std_ddof
            )
        return per_sample_knowledge_distillation(teacher_logits, student_logits, self.temperature)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "temperature": self.temperature,
                "standardize": self.standardize,
                "std_ddof": self.std_ddof,
            }
        )
        return config
