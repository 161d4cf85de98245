"""Differences between two study configs, one dotted line per changed value."""

# Lists whose entries are cells' axes: an entry is named by this key (or is its own value).
GRID_LISTS = {"seeds": None, "distillation": "name", "pairs": ("teacher", "student"),
              "teacher.augmentations": None}


def spec_differences(old, new):
    """`["distillation[0].temperature: 4.0 -> 8.0", ...]` for the values that differ.

    Tables are compared key by key and lists of tables entry by entry (by
    index), so one changed value gives one short line.

    Arguments:
        old, new: two configs (dicts or `StudySpec`s).

    Example:

    >>> spec_differences({"a": [{"t": 4.0}]}, {"a": [{"t": 8.0}]})
    ['a[0].t: 4.0 -> 8.0']
    """
    out = []
    _diff(old, new, "", out)
    return out


def entry_key(dotted, entry):
    """The identity of a grid list's entry: a recipe's name, a pair's models, a seed."""
    by = GRID_LISTS[dotted]
    if by is None:
        return entry
    if isinstance(by, tuple):
        return tuple(entry.get(k) for k in by) if isinstance(entry, dict) else entry
    return entry.get(by) if isinstance(entry, dict) else entry


def _diff(old, new, prefix, out):
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _diff(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key, out)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and any(
        isinstance(v, (dict, list)) for v in old + new
    ):
        for i, (a, b) in enumerate(zip(old, new)):
            _diff(a, b, f"{prefix}[{i}]", out)
        return
    if old != new:
        out.append(f"{prefix}: {old!r} -> {new!r}")
