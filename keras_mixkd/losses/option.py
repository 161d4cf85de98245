"""`LossOption`: one option of a distillation loss, declared beside the loss."""

import dataclasses
from typing import Any
from typing import Callable


@dataclasses.dataclass(frozen=True)
class LossOption:
    """One constructor option of a `DistillationLoss`: its name, default and check.

    Each loss class lists its options in its `OPTIONS` attribute, beside its
    code; the loss registry (`keras_mixkd.losses.loss_options`,
    `check_loss_options`, `get_loss`) and the study recipes read them from
    there, so an option is declared once.

    Arguments:
        name: The keyword of the loss's constructor (and of a study recipe).
        default: The constructor's default.
        check: `check(value) -> value`: raises `ValueError` or `TypeError`
            saying what is expected, returns the value normalised (e.g. a
            float).
        doc: One line saying what the option does.
        expected: What a valid value is, for error messages ("a number > 0").

    Example:

    >>> option = LossOption("beta", 8.0, float, "weight of NCKD", "a number >= 0")
    >>> option.check(2)
    2.0
    """

    name: str
    default: Any
    check: Callable[[Any], Any]
    doc: str = ""
    expected: str = "a valid value"
