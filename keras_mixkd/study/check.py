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
        if data["dataset"] == "folder" and os.path.isdir(data["path"]):
            from keras_mixkd.data.folder import folder_layout

            try:
                folder_layout(data["path"])  # a layout the loader does not understand, before any training
            except ValueError as error:
                raise RecipeError(f"{_where(config, ('data', 'path'))}: {error}") from None
    from keras_mixkd.data import known_image_size

    check_augmentation_sizes(config, known_image_size(data["dataset"], data["image_size"]))
    check_calibration_split(config)
    return RunFolder(path).check(config)


def check_calibration_split(config, splits=None):
    """Refuse `[student] calibrate = true` without a validation split to fit the temperature on.

    With `splits` (the loaded data) its validation split is counted; without,
    `data.validation_fraction = 0` is refused (a folder with its own `val/`
    folder is left to the loaded data's check).
    """
    if not config["student"].get("calibrate", False):
        return
    data = config["data"]
    empty = len(splits.y_val) == 0 if splits is not None else (
        data.get("validation_fraction") == 0 and data["dataset"] != "folder")
    if empty:
        raise RecipeError(f"{_where(config, ('student', 'calibrate'))}: calibrate = true fits each student's "
                          "temperature on the validation split, and the data has none (data.validation_fraction "
                          "= 0). Give one (e.g. data.validation_fraction = 0.1) or set calibrate = false.")


def check_augmentation_sizes(config, image_size):
    """Refuse augmentation options in pixels that cannot fit the study's images (e.g. `cutout.size` 100 at 8x8).

    Every `augmentation_options` table of the study (teacher, student, each
    distillation recipe) is checked with
    `keras_mixkd.augment.check_augmentation_options(..., image_size=...)`;
    the error names the recipe key with its file and line. `check_study`
    runs it with the size the data set name tells, `run_study` again with
    the loaded data's (an .npz file's size is known only then).

    Arguments:
        config: a `StudySpec` (from `load_recipe`) or its dict.
        image_size: `(height, width)` of the images, or None (nothing checked).

    Example:

    >>> check_augmentation_sizes(load_recipe("digits", overrides={"teacher.augmentation_options.cutout.size": 100}),
    ...                          (8, 8))
    Traceback (most recent call last):
    ...
    RecipeError: ... teacher.augmentation_options.cutout.size: augmentation 'cutout': size 100 does not fit 8x8 ...
    """
    from keras_mixkd.augment import check_augmentation_options

    if image_size is None:
        return
    tables = [(("teacher",), config["teacher"]), (("student",), config["student"])]
    tables += [(("distillation", index), recipe) for index, recipe in enumerate(config["distillation"])]
    for path, table in tables:
        for name, options in (table.get("augmentation_options") or {}).items():
            try:
                check_augmentation_options(name, options, image_size=image_size)
            except ValueError as error:
                option = getattr(error, "option", None)
                where = path + ("augmentation_options", name) + ((option,) if option else ())
                raise RecipeError(f"{_where(config, where)}: {error}") from None


def _where(config, path):
    source = (config.get("recipe") or {}).get("source")
    text = ""
    if source and os.path.isfile(source):
        with open(source, encoding="utf-8") as f:
            text = f.read()
    return RecipeSource(source or "<dict>", text).where(path)
