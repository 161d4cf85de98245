"""Distillation: the `Distiller` model (losses live in `keras_mixkd.losses`)."""

from keras_mixkd.distill.distiller import Distiller
from keras_mixkd.distill.standardized_logits import StandardizedLogits

__all__ = ["Distiller", "StandardizedLogits"]
