"""Distillation and supervised losses, written with `keras.ops` for every backend.

Every loss of the `Distiller` is a `DistillationLoss` (one class per file,
mdistiller-style): a per-sample loss from teacher logits, student logits,
labels and, for feature losses, both models' features. Built-in names
(`list_losses()`): `"kd"`, `"standardized"`, `"lskd"`, `"dkd"`. Each public
function returns the batch mean as a scalar tensor; the `per_sample_*`
variants return one value per sample.

Conventions (see `docs/methods.md` and `../shared/papers.md`):

- Hinton KD: `T² · KL(softmax(t/T) ‖ softmax(s/T))`, batch mean.
- Study B's standardised loss (MIX-KD's `MIXSTD`): logits divided by their
  own std (unbiased, `ddof=1`, as `torch.std`; `ddof=0` optional), no `T²`.
- Logit-standardised KD (Sun et al. 2024): z-scored logits, then KD at a base
  temperature with `τ²`.
- DKD (Zhao et al. 2022): `T² (α TCKD + β NCKD)`; for soft labels the
  label-weighted sum over target classes.
- FitNets feature distillation: MSE of projected student features to the
  teacher's.
- Cross-entropy accepts integer class ids `(B,)` / `(B, 1)` or dense soft
  labels `(B, K)` whose rows sum to 1 (mixed or smoothed targets).
"""

from keras_mixkd.losses._common import STD_EPSILON
from keras_mixkd.losses._common import check_ddof
from keras_mixkd.losses.base import DistillationLoss
from keras_mixkd.losses.cross_entropy import per_sample_cross_entropy
from keras_mixkd.losses.cross_entropy import soft_cross_entropy
from keras_mixkd.losses.dkd import DecoupledDistillation
from keras_mixkd.losses.dkd import decoupled_distillation
from keras_mixkd.losses.dkd import per_sample_decoupled_distillation
from keras_mixkd.losses.feature import FeatureDistillation
from keras_mixkd.losses.kd import KnowledgeDistillation
from keras_mixkd.losses.kd import knowledge_distillation
from keras_mixkd.losses.kd import logit_standardized_distillation
from keras_mixkd.losses.kd import per_sample_knowledge_distillation
from keras_mixkd.losses.kd import per_sample_logit_standardized_distillation
from keras_mixkd.losses.keras_loss import KerasDistillationLoss
from keras_mixkd.losses.option import LossOption
from keras_mixkd.losses.registry import LOSS_NAMES
from keras_mixkd.losses.registry import check_loss_options
from keras_mixkd.losses.registry import get_loss
from keras_mixkd.losses.registry import is_feature_loss
from keras_mixkd.losses.registry import list_losses
from keras_mixkd.losses.registry import loss_options
from keras_mixkd.losses.standardize import standardize_logits
from keras_mixkd.losses.standardize import zscore_logits
from keras_mixkd.losses.standardized import StandardizedDistillation
from keras_mixkd.losses.standardized import per_sample_standardized_distillation
from keras_mixkd.losses.standardized import standardized_distillation

__all__ = [
    "STD_EPSILON",
    "check_ddof",
    "LOSS_NAMES",
    "DistillationLoss",
    "KnowledgeDistillation",
    "StandardizedDistillation",
    "DecoupledDistillation",
    "FeatureDistillation",
    "KerasDistillationLoss",
    "LossOption",
    "get_loss",
    "loss_options",
    "check_loss_options",
    "list_losses",
    "is_feature_loss",
    "knowledge_distillation",
    "standardized_distillation",
    "logit_standardized_distillation",
    "decoupled_distillation",
    "soft_cross_entropy",
    "per_sample_knowledge_distillation",
    "per_sample_standardized_distillation",
    "per_sample_logit_standardized_distillation",
    "per_sample_decoupled_distillation",
    "per_sample_cross_entropy",
    "standardize_logits",
    "zscore_logits",
]
