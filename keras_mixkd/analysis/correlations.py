"""The studies' links: student accuracy against what its teacher is, over the cells of a study.

Study A links a student's accuracy to its teacher's class-discrimination
(CD of the penultimate features); study B to its teacher's smoothness (the
mean entropy of its outputs, and the per-sample std of its logits); and to
Wang et al.'s (NeurIPS 2022) "T. stddev" of its teacher on its distillation
set (`keras_mixkd.metrics.teacher_stddev`, in the student's record: it
depends on the teacher and the distillation augmentation). Each link
is measured over the cells of a study (every teacher augmentation x seed,
per student and distillation recipe) by Pearson's r and Spearman's rho.

Needs neither Keras nor the study's code: it reads the records of
`results.json` (`keras_mixkd.analysis.load_results`).
"""

import math

import numpy as np

from keras_mixkd.analysis.tables import select
from keras_mixkd.analysis.tables import study_axes

# teacher measure (record key) -> (label, the study it comes from)
TEACHER_MEASURES = {
    "class_discrimination_last": ("teacher class-discrimination", "study A"),
    "mean_entropy_last": ("teacher mean output entropy (nats)", "study B"),
    "logit_std_last": ("teacher logit std", "study B"),
    "teacher_stddev": ("teacher T. stddev on the distillation set", "Wang et al. 2022"),
}

# Teacher measures that depend on the distillation augmentation too: read from the student's record.
DISTILLATION_SET_MEASURES = ("teacher_stddev",)


def pearson(x, y):
    """Pearson's correlation coefficient of two sequences (NaN when undefined).

    Computed in float64 on the centred values, so data far from the origin
    loses no precision. Fewer than 3 pairs, or a constant sequence, give NaN.

    Example:

    >>> pearson([1, 2, 3], [2, 4, 7])
    0.9933992677987828
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"pearson needs two 1-D sequences of one length; got shapes {x.shape} and {y.shape}.")
    if x.size < 3:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(np.sum(dx * dx)) * float(np.sum(dy * dy)))
    if denominator == 0.0:
        return float("nan")
    return float(np.clip(np.sum(dx * dy) / denominator, -1.0, 1.0))


def spearman(x, y):
    """Spearman's rank correlation: Pearson's r of the ranks (ties get their mean rank).

    Example:

    >>> spearman([1, 2, 3, 4], [1, 3, 2, 4])
    0.8
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman needs two 1-D sequences of one length; got shapes {x.shape} and {y.shape}.")
    return pearson(_ranks(x), _ranks(y))


def _ranks(values):
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def link_points(records, measure, *, student_metric="test_accuracy_last"):
    """`{(teacher_model, student_model, recipe): [(teacher value, student value, augmentation, seed)]}`.

    One point per student cell whose teacher finished: its teacher's `measure`
    and its own `student_metric`.
    """
    teachers = {(r["teacher_model"], r["teacher_augmentation"], r["seed"]): r
                for r in records if r["role"] == "teacher"}
    points = {}
    for record in records:
        if record["role"] != "student":
            continue
        teacher = teachers.get((record["teacher_model"], record["teacher_augmentation"], record["seed"]))
        if teacher is None:
            continue
        x = (record if measure in DISTILLATION_SET_MEASURES else teacher).get(measure)
        y = record.get(student_metric)
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        key = (record["teacher_model"], record["student_model"], record["recipe"])
        points.setdefault(key, []).append((float(x), float(y), record["teacher_augmentation"], record["seed"]))
    return points


def link_table(records, config=None, *, student_metric="test_accuracy_last", measures=None):
    """The links as a table: one row per teacher measure x teacher -> student pair x recipe.

    Returns:
        `(header, rows)` for `keras_mixkd.analysis.tables.markdown_table`:
        measure, pair, recipe, cells, Pearson r, Spearman rho. `measures`:
        keys of `TEACHER_MEASURES` to include (default all).

    Example:

    >>> config, records, _ = load_results("runs/digits")
    >>> header, rows = link_table(records, config)
    """
    _, recipes, pairs, _ = study_axes(records, config)
    header = ["teacher measure", "teacher → student", "recipe", "cells", "Pearson r", "Spearman ρ"]
    rows = []
    for measure in measures or TEACHER_MEASURES:
        if measure not in TEACHER_MEASURES:
            raise ValueError(f"Unknown teacher measure {measure!r}; expected one of {list(TEACHER_MEASURES)}.")
        label, study = TEACHER_MEASURES[measure]
        points = link_points(records, measure, student_metric=student_metric)
        for teacher_model, student_model in pairs:
            for recipe in recipes:
                cells = points.get((teacher_model, student_model, recipe), [])
                if not cells:
                    continue
                x = [p[0] for p in cells]
                y = [p[1] for p in cells]
                rows.append([f"{label} ({study})", f"{teacher_model} → {student_model}", recipe, str(len(cells)),
                             _format(pearson(x, y)), _format(spearman(x, y))])
    return header, rows


def temperature_grid(records, config=None, *, metric="test_accuracy_last"):
    """Student `metric` by teacher augmentation x distillation temperature (study B's heatmap).

    Returns:
        `(augmentations, temperatures, means)`, `means[i][j]` the mean over
        seeds and recipes of that temperature (NaN where no cell finished);
        `temperatures` holds only the recipes' distinct temperatures of
        losses that use one ("kd").
    """
    augmentations, _, _, _ = study_axes(records, config)
    students = [r for r in records if r["role"] == "student" and r.get("loss", "kd") == "kd"
                and r.get("temperature") is not None]
    temperatures = sorted({float(r["temperature"]) for r in students})
    means = np.full((len(augmentations), len(temperatures)), np.nan)
    for i, augmentation in enumerate(augmentations):
        for j, temperature in enumerate(temperatures):
            values = [r[metric] for r in select(students, teacher_augmentation=augmentation)
                      if float(r["temperature"]) == temperature and r.get(metric) is not None]
            if values:
                means[i, j] = float(np.mean(values))
    return augmentations, temperatures, means


def _format(value):
    return "–" if not math.isfinite(value) else f"{value:+.3f}"
