"""The typed study spec: one declarative schema, tables that are still dicts.

`keras_mixkd.study.load_recipe` returns a `StudySpec`; its tables are
`DataSpec`, `TeacherSpec`, `StudentSpec` (each with an `OptimizerSpec`),
`MeasureSpec`, and lists of `PairSpec` and `DistillationRecipe`. Each class
declares its keys (`FIELDS`); a distillation recipe's loss options are
declared beside each loss (`keras_mixkd.losses.loss_options`).
"""

from keras_mixkd.study.spec.data import DataSpec
from keras_mixkd.study.spec.diff import spec_differences
from keras_mixkd.study.spec.measure import MeasureSpec
from keras_mixkd.study.spec.optimizer import OptimizerSpec
from keras_mixkd.study.spec.pair import PairSpec
from keras_mixkd.study.spec.recipe import DistillationRecipe
from keras_mixkd.study.spec.source import RecipeSource
from keras_mixkd.study.spec.student import StudentSpec
from keras_mixkd.study.spec.study import StudySpec
from keras_mixkd.study.spec.table import SpecTable
from keras_mixkd.study.spec.teacher import TeacherSpec

__all__ = ["DataSpec", "DistillationRecipe", "MeasureSpec", "OptimizerSpec", "PairSpec", "RecipeSource",
           "SpecTable", "StudentSpec", "StudySpec", "TeacherSpec", "spec_differences"]
