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


def augmentations_in_use(in_use):
    """The recipe names a run uses: `["standard+mixup", "none"]` -> `["standard", "mixup"]`.

    Arguments:
        in_use: a name or a list of names; `+` joins several recipes in one
            name, `"none"` is none.
    """
    names = [in_use] if isinstance(in_use, str) else list(in_use)
    parts = [part.strip() for name in names for part in str(name).split("+")]
    return list(dict.fromkeys(part for part in parts if part and part != "none"))


def check_options_in_use(options, in_use, *, given_as=None):
    """Refuse options for augmentations a run does not use: the one rule of every path.

    An option given for an augmentation that does not run would be dropped
    without a word (a run recorded as "augmentation: none" that the user
    meant to mix). The command line (`train-teacher --option`, `distill
    --option`, `--alpha`, `--fraction`) and the study spec's
    `augmentation_options` tables all refuse it through this function.

    Arguments:
        options: the option keys given: `"augmentation.option"` (an option of
            that recipe, e.g. `"mixup.alpha"`) or a bare `"option"` that goes
            to every recipe in use that takes it (e.g. `"alpha"` for
            `distill --alpha`).
        in_use: the augmentations the run uses (a name or a list; `+` joins
            several, `"none"` is none).
        given_as: `{key: how the user gave it}` for the message, e.g.
            `{"alpha": "--alpha 0.2"}`; default: `option 'key'`.

    Raises:
        ValueError: naming the option as given, the augmentations it belongs
            to and the augmentations in use; `ValueError.option` holds the key.

    Example:

    >>> check_options_in_use(["mixup.alpha"], "standard+mixup")
    >>> check_options_in_use(["fraction"], "none", given_as={"fraction": "--fraction 0.5"})
    Traceback (most recent call last):
    ...
    ValueError: --fraction 0.5 is an option of augmentation 'partial_mixup', which this run does not use (augmentations in use: none). Add partial_mixup ...
    """
    used = augmentations_in_use(in_use)
    given_as = given_as or {}
    for key in options:
        name, _, option = key.rpartition(".")
        if name:
            _check_name(name)
            owners = [name]
        else:
            owners = [recipe for recipe, (_, accepts, _) in _RECIPES.items() if option in accepts]
        if any(owner in used for owner in owners):
            continue
        label = given_as.get(key, f"option {key!r}")
        if owners:
            belongs = (f"augmentation {owners[0]!r}, which this run does not use" if len(owners) == 1 else
                       f"the augmentations {', '.join(map(repr, owners))}, none of which this run uses")
            fix = (f"Add {owners[0]} to the augmentation ('+' joins several, e.g. standard+{owners[0]}), "
                   "or leave the option out.")
        else:
            belongs = "no augmentation"
            fix = "Known augmentations and their options: `keras-mixkd list augmentations`."
        error = ValueError(f"{label} is an option of {belongs} (augmentations in use: "
                           f"{', '.join(used) or 'none'}). {fix}")
        error.option = key
        raise error


# Options measured in pixels, and the largest value that fits an image of side `side`.
_PIXEL_OPTIONS = {
    ("cutout", "size"): (lambda side: side, "a larger hole would be clipped to the image, blanking it whole"),
    ("standard", "padding"): (lambda side: side - 1, "a larger padding can crop nothing but padding"),
}


def check_augmentation_options(name, options, *, in_use=None, image_size=None):
    """Check a recipe's option names and values by building it once (nothing runs).

    What `get_augmentation` would refuse is refused here, before any training:
    an unknown recipe or option name (with the closest known one suggested),
    or a value out of range (e.g. `alpha <= 0`, `fraction > 1`); with
    `in_use`, also options of a recipe the run does not use
    (`check_options_in_use`).

    Arguments:
        name: a recipe name (see `list_augmentations()`).
        options: `{option: value}` for it.
        in_use: `None`, or the augmentations the run uses (a name or a list;
            `+` joins several): options for `name` are then refused unless
            `name` is one of them.
        image_size: `(height, width)` of the images it will see, when known:
            options in pixels must fit them (`cutout.size` at most the
            shorter side, `standard.padding` below it).

    Raises:
        ValueError: naming the recipe, the option and what is expected;
            `ValueError.option` holds the offending option's name, or None.

    Example:

    >>> check_augmentation_options("mixup", {"alpha": 0.2})
    >>> check_augmentation_options("mixup", {"alpah": 0.2})
    Traceback (most recent call last):
    ...
    ValueError: Unknown option 'alpah' for augmentation 'mixup'. Did you mean 'alpha'? ...
    >>> check_augmentation_options("mixup", {"alpha": 0.2}, in_use=["standard"])
    Traceback (most recent call last):
    ...
    ValueError: option 'mixup.alpha' is an option of augmentation 'mixup', which this run does not use ...
    >>> check_augmentation_options("cutout", {"size": 100}, image_size=(8, 8))
    Traceback (most recent call last):
    ...
    ValueError: augmentation 'cutout': size 100 does not fit 8x8 images: at most 8 px (a larger hole ...).
    """
    _check_name(name)
    if in_use is not None and options:
        try:
            check_options_in_use([f"{name}.{option}" for option in options], in_use)
        except ValueError as error:
            error.option = error.option.split(".", 1)[1]
            raise
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
    if image_size is not None:
        side = min(int(d) for d in image_size)
        for option, value in options.items():
            if (name, option) in _PIXEL_OPTIONS and value is not None:
                largest, what = _PIXEL_OPTIONS[(name, option)]
                if value > largest(side):
                    error = ValueError(
                        f"augmentation {name!r}: {option} {value} does not fit "
                        f"{'x'.join(str(int(d)) for d in image_size)} images: at most {largest(side)} px "
                        f"({what}).")
                    error.option = option
                    raise error


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
        joined = "; '+' joins several, e.g. 'standard+mixup'" if isinstance(name, str) else ""
        raise ValueError(
            f"Unknown augmentation recipe {name!r}. Known recipes: "
            f"{list_augmentations()}{joined}."
        )
