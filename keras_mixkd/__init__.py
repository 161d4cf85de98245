"""keras-mixkd: how MixUp, CutMix and friends change knowledge distillation.

Importing this package does not import Keras: the command line must be able to
choose the backend (`KERAS_BACKEND`) first. Public names are resolved lazily.

Pipeline, and the subpackage of each step (imports run left to right only):

    data -> augment -> models -> distill -> measure -> study
"""

import importlib

from keras_mixkd.version import __version__

# name -> module that defines it; loaded on first access.
_LAZY_ATTRIBUTES = {
    "Distiller": "keras_mixkd.distill.distiller",
    "SharedTeacherDistiller": "keras_mixkd.distill.shared_teacher_distiller",
}
_LAZY_SUBMODULES = (
    "analysis",
    "augment",
    "callbacks",
    "data",
    "distill",
    "distribute",
    "export",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "precision",
    "saving",
    "study",
)


def __getattr__(name):
    if name in _LAZY_ATTRIBUTES:
        module = importlib.import_module(_LAZY_ATTRIBUTES[name])
        return getattr(module, name)
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"keras_mixkd.{name}")
    raise AttributeError(f"module 'keras_mixkd' has no attribute {name!r}")


def __dir__():
    return sorted(
        list(globals()) + list(_LAZY_ATTRIBUTES) + list(_LAZY_SUBMODULES)
    )


__all__ = ["Distiller", "SharedTeacherDistiller", "__version__"]
