"""Learning-rate milestones that follow a changed number of epochs.

A recipe's milestones are written for its epochs (e.g. [150, 180, 210] of
240). Run for fewer or more epochs, they are scaled in proportion unless the
user keeps them; either way the functions here return the sentence that says
what happened, for the caller to show (the command line prints it).

Imports no Keras: the command line reads recipes before it sets the backend.
"""

from keras_mixkd.study.config import load_recipe
from keras_mixkd.study.config import parse_override
from keras_mixkd.study.config import scale_milestones

ROLES = ("teacher", "student")


def milestone_epochs(recipe, smoke, role):
    """The number of epochs a recipe's `role` milestones were written for.

    The full recipe's, unless its [smoke] table sets milestones of its own (a
    smoke table usually shortens the epochs and leaves the full schedule's
    milestones).

    Arguments:
        recipe: a packaged recipe name or a TOML file.
        smoke: whether the recipe is read at its smoke scale.
        role: "teacher" or "student".

    Example:

    >>> from keras_mixkd.study.milestones import milestone_epochs
    >>> epochs = milestone_epochs("digits", smoke=True, role="teacher")
    """
    full = load_recipe(recipe)[role]
    if not smoke:
        return full["epochs"]
    shrunk = load_recipe(recipe, smoke=True)[role]
    same = shrunk["optimizer"]["milestones"] == full["optimizer"]["milestones"]
    return full["epochs"] if same else shrunk["epochs"]


def fit_milestones(milestones, recipe_epochs, epochs, role, *, keep=False, flag="--keep-milestones"):
    """Milestones for `epochs` instead of `recipe_epochs`, and the note that says so.

    Arguments:
        milestones: the recipe's milestones (epochs, ascending).
        recipe_epochs: the epochs they were written for.
        epochs: the epochs the run will train.
        role: "teacher" or "student", named in the note.
        keep: keep the milestones as they are (only warn about those that
            never take effect).
        flag: how the note names the way to keep them (the command line's
            flag; `keep_milestones=True` in Python).

    Returns:
        `(milestones, note)`: the milestones to use and a sentence starting
        with "note:" or "warning:", or None when there is nothing to say.

    Example:

    >>> from keras_mixkd.study.milestones import fit_milestones
    >>> fit_milestones([150, 180, 210], 240, 24, "teacher")
    ([15, 18, 21], "note: teacher: 24 epochs instead of the recipe's 240: learning-rate milestones [150, 180, 210] scaled to [15, 18, 21] (--keep-milestones keeps them as they are)")
    """
    milestones = list(milestones or [])
    if epochs == recipe_epochs or not milestones:
        return milestones, None
    if keep:
        late = [m for m in milestones if m >= epochs]
        if not late:
            return milestones, None
        return milestones, (f"warning: {role} runs {_epochs(epochs)}; its learning-rate milestones {late} (kept by "
                            f"{flag}) come at or after the last epoch and never take effect.")
    scaled = scale_milestones(milestones, recipe_epochs, epochs)
    return scaled, (f"note: {role}: {_epochs(epochs)} instead of the recipe's {recipe_epochs}: learning-rate "
                    f"milestones {milestones} scaled to {scaled} ({flag} keeps them as they are)")


def _epochs(count):
    """"1 epoch", "24 epochs"."""
    return f"{count} epoch{'' if count == 1 else 's'}"


def study_config(recipe="digits", *, smoke=False, overrides=None, keep_milestones=False):
    """A study config whose milestones follow overridden epochs, and the notes that say so.

    `load_recipe` with `overrides` (`{"teacher.epochs": 24, ...}`, or
    "KEY=VALUE" strings as `--set` takes), then, for each role whose epochs
    are overridden and whose milestones are not, the recipe's milestones
    scaled to the new epochs (or kept, with `keep_milestones=True`).

    Arguments:
        recipe: a packaged recipe name or a TOML file.
        smoke: the recipe's smoke scale.
        overrides: a dict of dotted keys, or an iterable of "KEY=VALUE"
            strings (values in TOML syntax), or None.
        keep_milestones: keep the milestones as written.

    Returns:
        `(config, notes)`: the config `run_study` takes, and a list of
        sentences ("note: ..." / "warning: ...") to show the user.

    Example:

    >>> from keras_mixkd.study.milestones import study_config
    >>> config, notes = study_config("digits", overrides={"teacher.epochs": 4})
    >>> for note in notes:
    ...     print(note)
    """
    overrides = as_overrides(overrides)
    config = load_recipe(recipe, smoke=smoke, overrides=overrides)
    notes, scaled = [], {}
    for role in ROLES:
        if f"{role}.epochs" not in overrides or f"{role}.optimizer.milestones" in overrides:
            continue  # epochs not changed, or milestones given explicitly: used as given
        table = config[role]
        milestones, note = fit_milestones(table["optimizer"]["milestones"], milestone_epochs(recipe, smoke, role),
                                          table["epochs"], role, keep=keep_milestones)
        if note:
            notes.append(note)
        if milestones != list(table["optimizer"]["milestones"] or []):
            scaled[f"{role}.optimizer.milestones"] = milestones
    if scaled:  # loaded again rather than edited, so the config is checked as any other
        config = load_recipe(recipe, smoke=smoke, overrides={**overrides, **scaled})
    return config, notes


def as_overrides(overrides):
    """`{"dotted.key": value}` from a dict, from "KEY=VALUE" strings, or from None."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a dict or a list of 'KEY=VALUE' strings, got the string {overrides!r}.")
    result = {}
    for text in overrides:
        key, value = parse_override(text)
        result[key] = value
    return result
