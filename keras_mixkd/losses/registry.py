"""Built-in losses by name, and turning what a user gives into a `DistillationLoss`."""

import difflib

import keras

from keras_mixkd.losses.base import DistillationLoss
from keras_mixkd.losses.dkd import DecoupledDistillation
from keras_mixkd.losses.feature import FeatureDistillation
from keras_mixkd.losses.keras_loss import KerasDistillationLoss
from keras_mixkd.losses.kd import KnowledgeDistillation
from keras_mixkd.losses.standardized import StandardizedDistillation

# name -> (class, fixed options). Study recipes and the command line use these names; a
# name's options are its class's `OPTIONS` (declared beside the loss) less the fixed ones.
# Plain KD fixes `std_ddof` too: without standardisation it is never read.
_BUILT_IN = {
    "kd": (KnowledgeDistillation, {"standardize": False, "std_ddof": 1}),
    "standardized": (StandardizedDistillation, {}),
    "lskd": (KnowledgeDistillation, {"standardize": True}),
    "dkd": (DecoupledDistillation, {}),
}
LOSS_NAMES = tuple(_BUILT_IN)


def list_losses():
    """Names of the built-in distillation losses (`Distiller(loss=name)`)."""
    return list(LOSS_NAMES)


def loss_options(name):
    """The options a built-in loss name takes, as `LossOption`s (name, default, check).

    Arguments:
        name: a name of `list_losses()`.

    Returns:
        A tuple of `LossOption`, in the constructor's order.

    Example:

    >>> [option.name for option in loss_options("lskd")]
    ['temperature', 'std_ddof']
    """
    cls, fixed = _entry(name)
    return tuple(option for option in cls.OPTIONS if option.name not in fixed)


def check_loss_options(name, options):
    """Check option names and values for a built-in loss; return them with defaults filled.

    Every error names the option, what was given and what is expected, and
    suggests the closest option for a misspelled name.

    Arguments:
        name: a name of `list_losses()`.
        options: `{option: value}`; options not given take their defaults.

    Returns:
        `{option: value}` for every option of the loss, values normalised
        (numbers as floats where the loss takes floats).

    Example:

    >>> check_loss_options("dkd", {"beta": 2})["beta"]
    2.0
    """
    declared = {option.name: option for option in loss_options(name)}
    unknown = sorted(set(options) - set(declared))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(declared), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Loss {name!r} takes no option(s) {unknown}; it takes {sorted(declared)}.{hint}"
        )
    return {
        key: option.check(options[key]) if key in options else option.default
        for key, option in declared.items()
    }


def get_loss(name_or_loss, **options):
    """A `DistillationLoss` from a built-in name, one of ours, or a `keras.distillation` loss.

    Arguments:
        name_or_loss: `"kd"`, `"standardized"`, `"lskd"` (logit-standardised
            KD), `"dkd"`; a `DistillationLoss` (returned as is); or a
            `keras.distillation.DistillationLoss` (wrapped in
            `KerasDistillationLoss`).
        **options: Options of a named loss (`loss_options(name)`, e.g.
            `alpha`, `beta`, `temperature`, `warmup_epochs`, `standardize`,
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
    cls, fixed = _entry(name_or_loss)
    return cls(**fixed, **check_loss_options(name_or_loss, options))


def _entry(name):
    if not isinstance(name, str) or name not in _BUILT_IN:
        raise ValueError(
            f"Unknown distillation loss {name!r}; expected one of {list(LOSS_NAMES)}, "
            "a keras_mixkd.losses.DistillationLoss or a keras.distillation loss object."
        )
    return _BUILT_IN[name]


def is_feature_loss(loss):
    """True for a loss that reads features (FeatureDistillation, a Keras feature loss)."""
    return getattr(loss, "feature_layers", None) is not None


__all__ = ["LOSS_NAMES", "check_loss_options", "get_loss", "is_feature_loss", "list_losses", "loss_options"]
