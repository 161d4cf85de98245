"""Studies: teacher-augmentation x distillation-recipe x seed grids, resumable.

Recipe loading and the grid do not import Keras (the command line reads a
recipe before it sets the backend); the runner and the training functions do,
and are loaded on first use.

Example (what `keras-mixkd study` runs):

>>> from keras_mixkd.study import load_recipe, run_study
>>> config = load_recipe("digits")           # or a TOML file; smoke=True for tiny
>>> check_study(config, "runs")               # what a run refuses, refused now
>>> records = run_study(config, runs_dir="runs")
>>> records = run_study(config, executor="ray", workers=2)   # cells as Ray tasks
"""

import importlib

from keras_mixkd.study.config import RecipeError
from keras_mixkd.study.config import complete_config
from keras_mixkd.study.config import list_recipes
from keras_mixkd.study.config import load_recipe
from keras_mixkd.study.config import scale_milestones
from keras_mixkd.study.grid import Cell
from keras_mixkd.study.grid import enumerate_cells
from keras_mixkd.study.spec import DistillationRecipe
from keras_mixkd.study.spec import StudySpec

_LAZY = {
    "run_study": "keras_mixkd.study.runner",
    "select_cells": "keras_mixkd.study.runner",
    "load_teacher": "keras_mixkd.study.cell_execution",
    "execute_cell": "keras_mixkd.study.cell_execution",
    "execute_cells": "keras_mixkd.study.cell_execution",
    "CellFolders": "keras_mixkd.study.cell_folders",
    "RunOptions": "keras_mixkd.study.run_options",
    "TrainingSettings": "keras_mixkd.study.training_settings",
    "StudyProgress": "keras_mixkd.study.progress",
    "RunFolder": "keras_mixkd.study.run_folder",
    "check_study": "keras_mixkd.study.check",
    "train_teacher": "keras_mixkd.study.training",
    "distill_student": "keras_mixkd.study.training",
    "distill_students": "keras_mixkd.study.training",
    "train_student_alone": "keras_mixkd.study.training",
    "prepare_data": "keras_mixkd.study.training",
    "measure_model": "keras_mixkd.study.training",
    "ResumableBackup": "keras_mixkd.study.backup",
    "EpochRecorder": "keras_mixkd.study.epoch_recorder",
    "study_config": "keras_mixkd.study.milestones",
    "choose_cells": "keras_mixkd.study.selection",
    "RunSettings": "keras_mixkd.study.single_run",
    "train_teacher_file": "keras_mixkd.study.single_run",
    "distill_file": "keras_mixkd.study.single_run",
    "distillation_recipe": "keras_mixkd.study.single_run",
    "evaluate_file": "keras_mixkd.study.single_run",
    "measure_file": "keras_mixkd.study.single_run",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_mixkd.study' has no attribute {name!r}")


__all__ = ["Cell", "DistillationRecipe", "RecipeError", "StudySpec", "complete_config", "enumerate_cells",
           "list_recipes", "load_recipe", "scale_milestones", *_LAZY]
