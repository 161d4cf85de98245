"""`SpecTable`: a typed table of a study spec that is also the dict it replaces."""

import json


class SpecTable(dict):
    """A table of a study spec: typed attributes over a plain dict.

    Subclasses declare their keys once, in `FIELDS`: `key -> (default, kind)`
    for a value (the kind names its check, see `keras_mixkd.study.config`),
    `key -> SpecTable subclass` for a sub-table. Each key is readable as an
    attribute (`spec.student.epochs`) and, as before the spec was typed, by
    item (`config["student"]["epochs"]`); the table is a `dict`, so
    `json.dumps`, `copy.deepcopy` and `dict(...)` work on it unchanged.

    Arguments:
        values: the table's values (checked by `keras_mixkd.study.config`).

    Example:

    >>> class Pair(SpecTable):
    ...     FIELDS = {"teacher": (None, "str"), "student": (None, "str")}
    >>> pair = Pair({"teacher": "resnet56", "student": "resnet20"})
    >>> (pair.teacher, pair["student"])
    ('resnet56', 'resnet20')
    """

    FIELDS = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for key in cls.FIELDS:
            if not hasattr(dict, key):
                setattr(cls, key, property(lambda self, key=key: self[key], doc=f"The `{key}` key."))

    @classmethod
    def schema(cls):
        """The declared keys as nested `{key: (default, kind)}` dicts (sub-tables nested)."""
        return {
            key: spec.schema() if isinstance(spec, type) and issubclass(spec, SpecTable) else spec
            for key, spec in cls.FIELDS.items()
        }

    def to_dict(self):
        """A plain, JSON-serialisable copy (nested tables and lists as dicts and lists)."""
        return json.loads(json.dumps(self))

    def __reduce__(self):
        return (type(self), (dict(self),))
