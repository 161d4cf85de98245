"""Callbacks: `LatentMeasures` logs class-discrimination and friends per epoch."""

from keras_mixkd.callbacks.latent_measures import ClassDiscrimination
from keras_mixkd.callbacks.latent_measures import LatentMeasures

__all__ = ["ClassDiscrimination", "LatentMeasures"]
