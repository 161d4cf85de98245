"""`RunOptions`: how a study runs, as opposed to what it computes (the spec)."""

import dataclasses

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)


class RunOptions:
    """Run-time options of a study or of one training: output, devices, precision, speed-ups.

    None of them is part of a study's spec (`study.json`): a study resumed
    with other run options continues the same cells.

    Arguments:
        verbose: `fit`'s verbosity ("auto", 0, 1 or 2).
        devices: train each cell data-parallel on this many devices (`None`
            or 1: one device; see `keras_mixkd.distribute.data_parallel`).
        precision: dtype policy of each cell's models: "float32",
            "mixed_float16" or "mixed_bfloat16".
        tensorboard: also write TensorBoard logs per cell, in
            `logs/<cell>/tensorboard`.
        group_students: train the student cells that share a teacher and an
            input stream as one `Distiller` of several students, the teacher
            running once per batch for all (`keras_mixkd.study.groups`); each
            cell's result is the one it gets alone, up to float round-off.
        fixed_cost_cuts: the number-preserving cuts of a cell's fixed cost
            (`keras_mixkd.study.fixed_cost`); off only to measure them.

    Example:

    >>> run_study(load_recipe("digits"), options=RunOptions(verbose=0, group_students=False))
    """

    verbose: object = "auto"
    devices: object = None
    precision: str = "float32"
    tensorboard: bool = False
    group_students: bool = True
    fixed_cost_cuts: bool = True

    def __post_init__(self):
        if self.verbose not in ("auto", 0, 1, 2) or isinstance(self.verbose, bool):
            raise ValueError(f"verbose must be 'auto', 0, 1 or 2; got {self.verbose!r}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}.")
        if self.devices is not None and (isinstance(self.devices, bool) or not isinstance(self.devices, int)
                                         or self.devices < 1):
            raise ValueError(f"devices must be a whole number >= 1 (or None); got {self.devices!r}.")
        for name in ("tensorboard", "group_students", "fixed_cost_cuts"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False; got {getattr(self, name)!r}.")

    @classmethod
    def from_keywords(cls, options, keywords, owner):
        """`options` (or the defaults) updated by the deprecated keyword arguments of `owner`.

        Arguments:
            options: a `RunOptions` or `None`.
            keywords: a dict of keyword arguments; those naming a field of
                `RunOptions` are taken out of it (with a `DeprecationWarning`).
            owner: the function's name, for the warning.
        """
        import warnings

        fields = {field.name for field in dataclasses.fields(cls)}
        given = {key: keywords.pop(key) for key in list(keywords) if key in fields}
        options = options if options is not None else cls()
        if not given:
            return options
        warnings.warn(
            f"{owner}({', '.join(f'{k}=' for k in given)}...): pass options=RunOptions("
            f"{', '.join(f'{k}=...' for k in given)}) instead; the keywords are deprecated.",
            DeprecationWarning, stacklevel=3)
        return dataclasses.replace(options, **given)
