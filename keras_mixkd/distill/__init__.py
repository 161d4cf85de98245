"""Distillation: the `Distiller` model, `SharedTeacherDistiller` (losses live in `keras_mixkd.losses`)."""

from keras_mixkd.distill.distiller import Distiller
from keras_mixkd.distill.shared_teacher_distiller import SharedTeacherDistiller
from keras_mixkd.distill.standardized_logits import StandardizedLogits
from keras_mixkd.distill.teacher_logits import compute_teacher_logits

__all__ = ["Distiller", "SharedTeacherDistiller", "StandardizedLogits", "compute_teacher_logits"]
