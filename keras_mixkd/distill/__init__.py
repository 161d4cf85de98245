"""Distillation: the `Distiller` model (losses live in `keras_mixkd.losses`)."""

from keras_mixkd.distill.distiller import Distiller

__all__ = ["Distiller"]
