"""`list_entries`: the names `keras-mixkd list` shows, each with what it is.

Every description lives beside its registry (`describe_model`,
`describe_augmentation`, `describe_dataset`, a recipe's `description`).
"""

LISTS = ("models", "augmentations", "recipes", "datasets")


def list_entries(what):
    """`[(name, description)]` of the models, augmentations, recipes or data sets.

    Arguments:
        what: one of "models", "augmentations", "recipes", "datasets".

    Example:

    >>> from keras_mixkd.catalog import list_entries
    >>> dict(list_entries("datasets"))["digits"]
    "scikit-learn's 8x8 handwritten digits, 10 classes, embedded (no download)"
    """
    if what not in LISTS:
        raise ValueError(f"Cannot list {what!r}; choose one of {', '.join(LISTS)}.")
    if what == "models":
        from keras_mixkd.models import describe_model
        from keras_mixkd.models import list_models

        return [(name, describe_model(name)) for name in list_models()]
    if what == "augmentations":
        from keras_mixkd.augment import describe_augmentation
        from keras_mixkd.augment import list_augmentations

        return [(name, describe_augmentation(name)) for name in list_augmentations()]
    if what == "recipes":
        return [(name, describe_recipe(name)) for name in _recipes()]
    from keras_mixkd.data import describe_dataset
    from keras_mixkd.data import list_datasets

    return [(name, describe_dataset(name)) for name in list_datasets()]


def describe_recipe(name):
    """A packaged recipe's `description` and the path of its TOML file (copy it to make your own)."""
    import tomllib

    from keras_mixkd.study.config import recipe_path

    path = recipe_path(name)
    with open(path, "rb") as f:
        description = tomllib.load(f).get("description", "")
    return f"{description} · {path}"


def _recipes():
    from keras_mixkd.study.config import list_recipes

    return list_recipes()
