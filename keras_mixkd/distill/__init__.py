"""Distillation: the `Distiller` model of one or several students (losses live in `keras_mixkd.losses`)."""

from keras_mixkd.distill.distiller import Distiller
from keras_mixkd.distill.feature_extractor import FeatureExtractor
from keras_mixkd.distill.loss_epochs import LossEpochs
from keras_mixkd.distill.shared_teacher_distiller import SharedTeacherDistiller
from keras_mixkd.distill.standardized_logits import StandardizedLogits
from keras_mixkd.distill.teacher_logits import compute_teacher_logits

__all__ = ["Distiller", "FeatureExtractor", "LossEpochs", "SharedTeacherDistiller", "StandardizedLogits", "compute_teacher_logits"]
