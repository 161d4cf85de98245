"""`StudySpec`: a whole study, as `load_recipe` returns it."""

from keras_mixkd.study.spec.data import DataSpec
from keras_mixkd.study.spec.measure import MeasureSpec
from keras_mixkd.study.spec.student import StudentSpec
from keras_mixkd.study.spec.table import SpecTable
from keras_mixkd.study.spec.teacher import TeacherSpec


class StudySpec(SpecTable):
    """A study: data, teachers, students, pairs, distillation recipes, seeds, measures.

    Built and checked whole by `keras_mixkd.study.load_recipe` (or
    `complete_config` from a dict): every table is typed (`spec.teacher` a
    `TeacherSpec`, `spec.distillation` a list of `DistillationRecipe`,
    `spec.pairs` a list of `PairSpec`), and every table is still the dict of
    earlier versions (`spec["student"]["epochs"]`, `json.dumps(spec)`).
    `spec["recipe"]` (`spec.source`) says which file it was read from and
    whether `--smoke` applied.

    Example:

    >>> spec = load_recipe("digits", overrides={"seeds": [0]})
    >>> (spec.seeds, spec.student.epochs == spec["student"]["epochs"])
    ([0], True)
    """

    FIELDS = {
        "name": ("study", "name"),
        "description": ("", "str"),
        "seeds": ([0, 1, 2], "seeds"),
        # Back a training run up at most this often (seconds; the last epoch always):
        # a kill loses at most this much training. Does not change results.
        "backup_interval_seconds": (30.0, "nonnegative"),
        # Compute each teacher's logits of the training split once and let its students read
        # them, where the teacher sees each image as loaded (no augmentation, or teacher_sees =
        # "clean"). Equal to running the teacher every batch up to float round-off.
        "teacher_cache": (True, "bool"),
        # Layout of the tensors inside every model a cell builds: "auto" (channels-first on the
        # PyTorch backend for the models that offer it, where it is faster; channels-last
        # elsewhere, and for every model of a study with a feature-based recipe such as
        # FitNets), "channels_last" or "channels_first". Changes float round-off only; the
        # models take images as loaded either way (see `keras_mixkd.models.get_model`).
        "data_format": ("auto", "data_format"),
        "data": DataSpec,
        "teacher": TeacherSpec,
        "student": StudentSpec,
        # [[pairs]] teacher = "resnet110" student = "resnet20"
        "pairs": ([], "pairs"),
        # [[distillation]] name = "kd" loss = "kd" temperature = 4.0 ...
        "distillation": ([], "recipes"),
        "measure": MeasureSpec,
    }

    @property
    def source(self):
        """`{"source": file, "smoke": bool}` of a loaded recipe, or None for a dict."""
        return self.get("recipe")
