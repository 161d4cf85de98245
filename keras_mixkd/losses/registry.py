"""Built-in losses by name, and turning what a user gives into a `DistillationLoss`."""

import keras

from keras_mixkd.losses.base import DistillationLoss
from keras_mixkd.losses.dkd import DecoupledDistillation
from keras_mixkd.losses.feature import FeatureDistillation
from keras_mixkd.losses.keras_loss import KerasDistillationLoss
from keras_mixkd.losses.kd import KnowledgeDistillation
from keras_mixkd.losses.standardized import StandardizedDistillation

# name -> (class, fixed options). Study recipes and the command line use these names.
_BUILT_IN = {
    "kd": (KnowledgeDistillation, {}),
    "standardized": (StandardizedDistillation, {}),
    "lskd": (KnowledgeDistillation, {"standardize": True}),
    "dkd": (DecoupledDistillation, {}),
}
LOSS_NAMES = tuple(_BUILT_IN)


def list_losses():
    """Names of the built-in distillation losses (`Distiller(loss=name)`)."""
    return list(LOSS_NAMES)


def get_loss(name_or_loss, **options):
    """A `DistillationLoss` from a built-in name, one of ours, or a `keras.distillation` loss.

    Arguments:
        name_or_loss: `"kd"`, `"standardized"`, `"lskd"` (logit-standardised
            KD), `"dkd"`; a `DistillationLoss` (returned as is); or a
            `keras.distillation.DistillationLoss` (wrapped in
            `KerasDistillationLoss`).
        **options: Constructor arguments of a named loss (e.g. `alpha`,
            `beta`, `temperature`, `warmup_epochs`, `standardize`,
            `std_ddof` for `"dkd"`); options a loss does not take are refused.

    Returns:
        A `DistillationLoss`.

    Example:

    >>> loss = get_loss("dkd", beta=2.0, warmup_epochs=0)
    >>> (type(loss).__name__, loss.beta)
    ('DecoupledDistillation', 2.0)
    """
    if isinstance(name_or_loss, DistillationLoss):
        if options:
            raise ValueError(
                f"Options {sorted(options)} apply to a loss given by name only; "
                f"got a {type(name_or_loss).__name__} instance."
            )
        return name_or_loss
    if isinstance(name_or_loss, keras.distillation.DistillationLoss):
        if options:
            raise ValueError(
                f"Options {sorted(options)} apply to a loss given by name only; "
                f"got a {type(name_or_loss).__name__} instance."
            )
        return KerasDistillationLoss(name_or_loss)
    if not isinstance(name_or_loss, str) or name_or_loss not in _BUILT_IN:
        raise ValueError(
            f"Unknown distillation loss {name_or_loss!r}; expected one of {list(LOSS_NAMES)}, "
            "a keras_mixkd.losses.DistillationLoss or a keras.distillation loss object."
        )
    cls, fixed = _BUILT_IN[name_or_loss]
    import inspect

    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"} - set(fixed)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"Loss {name_or_loss!r} takes no option(s) {unknown}; it takes {sorted(accepted)}."
        )
    return cls(**fixed, **options)


def is_feature_loss(loss):
    """True for a loss that reads features (FeatureDistillation, a Keras feature loss)."""
    return getattr(loss, "feature_layers", None) is not None


__all__ = ["LOSS_NAMES", "get_loss", "is_feature_loss", "list_losses"]
