"""Executors: how a study's cells are run — here, one after the other, or as Ray tasks.

Every executor hands each finished cell to the study's driver, the only
writer of the run folder. `get_executor(name, **options)` builds one by name.

Example:

>>> from keras_mixkd.study.executors import get_executor, list_executors
>>> list_executors()
['in_process', 'ray']
>>> executor = get_executor("ray", workers=2)
"""

import importlib

from keras_mixkd.study.executors.cell_result import CellResult
from keras_mixkd.study.executors.executor import Executor
from keras_mixkd.study.executors.executor import teacher_dependency

# name -> (module, class); the Ray module imports Ray only when it runs.
_EXECUTORS = {
    "in_process": ("keras_mixkd.study.executors.in_process", "InProcessExecutor"),
    "ray": ("keras_mixkd.study.executors.ray", "RayExecutor"),
}


def list_executors():
    """Names `get_executor` accepts."""
    return list(_EXECUTORS)


def get_executor(name="in_process", **options):
    """The executor called `name`, built with `options` (checked now, before any cell runs)."""
    if not isinstance(name, str) or name not in _EXECUTORS:
        raise ValueError(f"Unknown executor {name!r}; choose one of {', '.join(_EXECUTORS)}.")
    module, cls = _EXECUTORS[name]
    return getattr(importlib.import_module(module), cls)(**options)


def __getattr__(name):
    for module, cls in _EXECUTORS.values():
        if name == cls:
            return getattr(importlib.import_module(module), cls)
    raise AttributeError(f"module 'keras_mixkd.study.executors' has no attribute {name!r}")


__all__ = ["CellResult", "Executor", "get_executor", "list_executors", "teacher_dependency",
           "InProcessExecutor", "RayExecutor"]
