"""Part of a study's grid: `--only` parsed, checked against the grid, and chosen.

`runner.select_cells` picks the cells; `check_only` refuses values that pick
nothing, listing the valid ones, so a typo does not silently run nothing.
"""

from keras_mixkd.study.grid import enumerate_cells


def parse_only(items):
    """`["teacher_augmentation=mixup,cutmix"]` -> `{"teacher_augmentation": ["mixup", "cutmix"]}`.

    Example:

    >>> parse_only(["seed=0,1", "recipe=kd"])
    {'seed': ['0', '1'], 'recipe': ['kd']}
    """
    only = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--only expects FIELD=VALUE[,VALUE], got {item!r}.")
        field, values = item.split("=", 1)
        only.setdefault(field.strip(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return only


def check_only(cells, only, chosen):
    """Refuse `only` values that match no cell of the grid `cells`, listing the valid ones.

    Arguments:
        cells: every cell of the grid (`enumerate_cells(config)`).
        only: `{field: [values]}`.
        chosen: the cells `select_cells(cells, only)` picked.
    """
    for field, values in only.items():
        valid = []
        for cell in cells:
            value = str(getattr(cell, field))
            if getattr(cell, field) != "" and value not in valid:
                valid.append(value)
        unknown = [str(v) for v in values if str(v) not in valid]
        if unknown:
            raise ValueError(
                f"--only {field}={','.join(map(str, values))} (only= in Python): "
                f"{', '.join(map(repr, unknown))} matches no cell of this study; valid values of {field}: "
                f"{', '.join(valid) or 'none'}."
            )
    if only and not chosen:
        given = " ".join(f"{field}={','.join(map(str, values))}" for field, values in only.items())
        raise ValueError(f"--only {given}: together these match no cell of this study; loosen one of "
                         "them (see --dry-run).")


def choose_cells(config, only=None):
    """The cells of `config`'s grid that `only` picks (with the teachers and baselines they need), checked.

    Example:

    >>> from keras_mixkd.study import load_recipe
    >>> cells = choose_cells(load_recipe("digits"), {"teacher_augmentation": ["mixup"]})
    """
    from keras_mixkd.study.runner import select_cells

    cells = enumerate_cells(config)
    chosen = select_cells(cells, only or {})
    check_only(cells, only or {}, chosen)
    return chosen
