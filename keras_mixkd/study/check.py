"""`check_study`: what a run of a study checks before it trains, without training."""

import os

from keras_mixkd.study.config import RecipeError
from keras_mixkd.study.config import check_names
from keras_mixkd.study.run_folder import RunFolder
from keras_mixkd.study.run_folder import run_folder_path
from keras_mixkd.study.spec.source import RecipeSource


def check_study(config, runs_dir="runs", name=None):
    """Refuse, before any training, what a run of `config` would refuse.

    `load_recipe` has already checked every key and value (with file and
    line); this adds what needs the model zoo, the data and the runs folder:
    model names and `data_format` (`check_names`), the data set name and its
    file or folder, and whether `runs_dir/name` can hold this study (new, the
    same study, or the same study extended by new seeds or recipes; a changed
    setting is refused with `dotted.key: old -> new`). Nothing is written.
    `keras-mixkd study --dry-run` runs it.

    Arguments:
        config: a `StudySpec` (from `load_recipe`) or its dict.
        runs_dir: the folder of runs folders.
        name: the study's folder name (default: `config["name"]`).

    Returns:
        The study.json the run would write or keep (None for a new folder).

    Example:

    >>> spec = load_recipe("digits", smoke=True)
    >>> check_study(spec, "runs", "digits-smoke")
    """
    path = run_folder_path(runs_dir, name or config["name"])
    check_names(config)
    data = config["data"]
    from keras_mixkd.data import list_datasets

    if data["dataset"] not in list_datasets():
        raise RecipeError(f"{_where(config, ('data', 'dataset'))}: unknown data set {data['dataset']!r}; "
                          f"known: {', '.join(list_datasets())}.")
    if data["dataset"] in ("npz", "folder"):
        if not data["path"]:
            raise RecipeError(f"{_where(config, ('data', 'path'))}: the {data['dataset']!r} data set needs "
                              "a path (data.path, --data-path).")
        if not os.path.exists(data["path"]):
            raise RecipeError(f"{_where(config, ('data', 'path'))}: {data['path']}: no such file or folder.")
    return RunFolder(path).check(config)


def _where(config, path):
    source = (config.get("recipe") or {}).get("source")
    text = ""
    if source and os.path.isfile(source):
        with open(source, encoding="utf-8") as f:
            text = f.read()
    return RecipeSource(source or "<dict>", text).where(path)
