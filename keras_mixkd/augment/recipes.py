"""Named recipes: `get_augmentation(name_or_names, **options)`."""

import difflib

from keras_mixkd.augment.aug_mix import AugMix
from keras_mixkd.augment.compose import Compose
from keras_mixkd.augment.cutout import Cutout
from keras_mixkd.augment.label_smoothing import LabelSmoothing
from keras_mixkd.augment.mixing import Mixing
from keras_mixkd.augment.pad_crop_flip import PadCropFlip
from keras_mixkd.augment.rand_augment import RandAugment
from keras_mixkd.augment.student_side_mixup import StudentSideMixup

_MIXING_COMMON = ("prob", "mode", "label_smoothing", "num_classes", "implementation", "seed")


def _mixup(alpha=1.0, **options):
    return Mixing(alpha=alpha, cutmix_alpha=None, **options)


def _cutmix(alpha=1.0, **options):
    return Mixing(alpha=None, cutmix_alpha=alpha, **options)


def _mixup_cutmix(alpha=1.0, cutmix_alpha=1.0, switch_prob=0.5, **options):
    return Mixing(
        alpha=alpha, cutmix_alpha=cutmix_alpha, switch_prob=switch_prob, **options
    )


def _partial_mixup(alpha=1.0, fraction=0.5, **options):
    return Mixing(alpha=alpha, cutmix_alpha=None, fraction=fraction, **options)


# name -> (factory, options it accepts, one-line description)
_RECIPES = {
    "none": (Compose, (), "the identity"),
    "standard": (
        PadCropFlip,
        ("padding", "flip", "seed"),
        "zero-pad 4 px (scaled with the image), random crop, horizontal flip",
    ),
    "cutout": (Cutout, ("size", "fill_value", "seed"), "one square hole, 16 px at 32x32"),
    "label_smoothing": (
        LabelSmoothing,
        ("epsilon", "num_classes"),
        "dense targets y (1 - epsilon) + epsilon / K",
    ),
    "mixup": (_mixup, ("alpha",) + _MIXING_COMMON, "MixUp, lambda ~ Beta(alpha, alpha)"),
    "cutmix": (_cutmix, ("alpha",) + _MIXING_COMMON, "CutMix, lambda ~ Beta(alpha, alpha)"),
    "mixup_cutmix": (
        _mixup_cutmix,
        ("alpha", "cutmix_alpha", "switch_prob") + _MIXING_COMMON,
        "MixUp or CutMix, CutMix with probability switch_prob",
    ),
    "partial_mixup": (
        _partial_mixup,
        ("alpha", "fraction", "mode", "label_smoothing", "num_classes"),
        "MixUp on exactly round(fraction * B) rows of every batch",
    ),
    "student_side_mixup": (
        StudentSideMixup,
        ("alpha", "temperature", "mode", "num_classes"),
        "distillation only: MixUp of the student's images; its target the same mix of the teacher's "
        "softened outputs on the clean images",
    ),
    "randaugment": (
        RandAugment,
        ("num_ops", "magnitude", "implementation", "seed"),
        "RandAugment (Keras core or KerasCV)",
    ),
    "augmix": (
        AugMix,
        ("severity", "num_chains", "chain_depth", "implementation", "seed"),
        "AugMix (Keras core or KerasCV)",
    ),
}


def list_augmentations():
    """Names of the recipes `get_augmentation` knows, in a stable order."""
    return list(_RECIPES)


def describe_augmentation(name):
    """One line saying what recipe `name` does (what `keras-mixkd list augmentations` prints).

    Example:

    >>> describe_augmentation("mixup")
    'MixUp, lambda ~ Beta(alpha, alpha)'
    """
    _check_name(name)
    return _RECIPES[name][2]


def recipe_options(name):
    """The option names recipe `name` accepts."""
    _check_name(name)
    return list(_RECIPES[name][1])


def check_augmentation_options(name, options):
    """Check a recipe's option names and values by building it once (nothing runs).

    What `get_augmentation` would refuse is refused here, before any training:
    an unknown recipe or option name (with the closest known one suggested),
    or a value out of range (e.g. `alpha <= 0`, `fraction > 1`).

    Arguments:
        name: a recipe name (see `list_augmentations()`).
        options: `{option: value}` for it.

    Raises:
        ValueError: naming the recipe, the option and what is expected;
            `ValueError.option` holds the offending option's name, or None.

    Example:

    >>> check_augmentation_options("mixup", {"alpha": 0.2})
    >>> check_augmentation_options("mixup", {"alpah": 0.2})
    Traceback (most recent call last):
    ...
    ValueError: Unknown option 'alpah' for augmentation 'mixup'. Did you mean 'alpha'? ...
    """
    _check_name(name)
    accepts = _RECIPES[name][1]
    for option in options:
        if option not in accepts:
            close = difflib.get_close_matches(option, accepts, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            error = ValueError(
                f"Unknown option {option!r} for augmentation {name!r}. {hint}"
                f"{name!r} takes {', '.join(accepts) or 'no options'}."
            )
            error.option = option
            raise error
    try:
        get_augmentation(name, **options)
    except (ValueError, TypeError) as error:
        named = [option for option in options if option in str(error)]
        checked = ValueError(f"augmentation {name!r}: {error}")
        checked.option = named[0] if named else None
        raise checked from None


def get_augmentation(name_or_names, **options):
    """Build a named augmentation recipe, or several applied in order.

    Arguments:
        name_or_names: a recipe name (see `list_augmentations()`), a list of
            names applied in order, or an `Augmentation` (returned as is).
        **options: recipe options. With several recipes, each option goes to
            every recipe that accepts it (so `num_classes` or `seed` can serve
            several); an option no recipe accepts is an error.

    Returns:
        An `Augmentation`: `aug(batch, training=True) -> batch` on
        `{"images", "labels"}` TF tensors, usable in `tf.data.Dataset.map`.

    Recipes and their options:

    - `none`: the identity.
    - `standard`: `padding` (default 4 px at 32 px, scaled), `flip`, `seed`.
    - `cutout`: `size` (default 16 px at 32 px, scaled), `fill_value`, `seed`.
    - `label_smoothing`: `epsilon` (0.1), `num_classes`.
    - `mixup`: `alpha` (1.0), `prob`, `mode` (`"sample"`|`"batch"`),
      `label_smoothing`, `num_classes`, `implementation` (`None`: KerasCV when it
      imports, else ours with the same distributions; `"keras_cv"`|`"keras"`|`"keras_mixkd"`),
      `seed`.
    - `cutmix`: the same, `alpha` being CutMix's concentration.
    - `mixup_cutmix`: `alpha`, `cutmix_alpha` (1.0 each), `switch_prob` (0.5) and
      the mixup options.
    - `partial_mixup`: `alpha` (1.0), `fraction` (0.5), `mode`, `label_smoothing`,
      `num_classes`.
    - `student_side_mixup` (distillation only): `alpha` (1.0), `temperature` (4.0; a
      study takes the recipe's), `mode`, `num_classes`; needs the teacher's logits of
      the clean images with each batch (see `StudentSideMixup`).
    - `randaugment`: `num_ops` (2), `magnitude` (0.5), `implementation`
      (`"keras_cv"`|`"keras"`), `seed`.
    - `augmix`: `severity` (0.3), `num_chains` (3), `chain_depth` ((1, 3)),
      `implementation`, `seed`.

    See `Mixing` for what each mixing option does.

    Example:

    ```python
    aug = get_augmentation("partial_mixup", fraction=0.1, alpha=1.0, num_classes=100)
    aug = get_augmentation(["standard", "mixup"], alpha=1.0, num_classes=10)
    train = tf.data.Dataset.from_tensor_slices({"images": x, "labels": y})
    train = train.batch(64, drop_remainder=True).map(aug)
    ```
    """
    from keras_mixkd.augment.augmentation import Augmentation

    if isinstance(name_or_names, Augmentation):
        if options:
            raise ValueError(
                "get_augmentation received an Augmentation object and options "
                f"{sorted(options)}; pass options when building it instead."
            )
        return name_or_names
    if isinstance(name_or_names, str):
        names = [name_or_names]
    elif isinstance(name_or_names, (list, tuple)):
        names = list(name_or_names)
    else:
        raise TypeError(
            "get_augmentation expects a recipe name or a list of names; "
            f"received {type(name_or_names).__name__}: {name_or_names!r}. "
            f"Known recipes: {list_augmentations()}."
        )
    for name in names:
        _check_name(name)
    accepted = set()
    for name in names:
        accepted.update(_RECIPES[name][1])
    unknown = sorted(set(options) - accepted)
    if unknown:
        takes = "; ".join(
            f"{name!r} takes {list(_RECIPES[name][1]) or 'no options'}" for name in names
        )
        raise ValueError(f"Unknown option(s) {unknown} for recipe(s) {names}: {takes}.")
    parts = []
    for name in names:
        factory, accepts, _ = _RECIPES[name]
        if name == "none":
            continue
        parts.append(factory(**{k: v for k, v in options.items() if k in accepts}))
    if len(parts) == 1:
        return parts[0]
    return Compose(parts)


def _check_name(name):
    if not isinstance(name, str) or name not in _RECIPES:
        raise ValueError(
            f"Unknown augmentation recipe {name!r}. Known recipes: "
            f"{list_augmentations()}."
        )
