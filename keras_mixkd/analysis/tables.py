"""Result tables of a study: mean ± std over seeds, saying which epoch each number is from.

Works on the records of `results.json` (one dict per finished cell, teachers
and students); needs neither Keras nor the study's code.
"""

import math

import numpy as np

from keras_mixkd.study.training_flags import record_flags

# Role and recipe of the student-alone baseline's records (trained without a teacher).
ALONE = "alone"

# metric -> (label, scale, decimals)
METRICS = {
    "test_accuracy_last": ("test accuracy (%), last epoch", 100.0, 2),
    "test_accuracy_best": ("test accuracy (%), best-validation epoch", 100.0, 2),
    "best_epoch": ("best-validation epoch", 1.0, 1),
    "class_discrimination_last": ("class-discrimination of penultimate features, last epoch", 1.0, 4),
    "ece_last": ("expected calibration error, last epoch", 1.0, 4),
    "teacher_agreement_last": ("top-1 agreement with the teacher (%), last epoch", 100.0, 1),
    "mean_entropy_last": ("mean output entropy (nats), last epoch", 1.0, 3),
    "logit_std_last": ("mean per-sample logit std, last epoch", 1.0, 3),
}


# What marks a table entry whose mean includes flagged cells (training that went wrong), with their count.
FLAG_MARK = "⚑"


def flagged(records, config=None):
    """The records whose training went wrong (`keras_mixkd.study.training_flags.record_flags`).

    Records of runs made before flags existed get them computed from their history.
    """
    return [r for r in records if record_flags(r, config)]


def without_flagged(records, config=None):
    """The records whose training raised no flag."""
    return [r for r in records if not record_flags(r, config)]


def flag_mark(records, config=None):
    """" ⚑2" when 2 of `records` are flagged, "" when none is."""
    count = len(flagged(records, config))
    return f" {FLAG_MARK}{count}" if count else ""


def _marked(text, records, config, mark):
    return text + flag_mark(records, config) if mark and text != "–" else text


def mean_std(values):
    """`(mean, sample std, n)` of the finite values (std NaN when n < 2)."""
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan"), 0
    std = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    return float(values.mean()), std, int(values.size)


def format_mean_std(values, scale=1.0, decimals=2):
    """"97.50 ± 0.42" over seeds; one seed shows the value alone; none shows "–".

    Example:

    >>> format_mean_std([0.9, 0.92], scale=100)
    '91.00 ± 1.41'
    """
    mean, std, n = mean_std(values)
    if n == 0:
        return "–"
    if n == 1:
        return f"{mean * scale:.{decimals}f}"
    return f"{mean * scale:.{decimals}f} ± {std * scale:.{decimals}f}"


def ordered(values, preferred):
    """`values` (a set) ordered as in `preferred` (first occurrence), the rest sorted after."""
    preferred = [v for v in dict.fromkeys(preferred) if v in values]
    return preferred + sorted(v for v in values if v not in preferred)


def study_axes(records, config=None):
    """The axes of a study: teacher augmentations, recipes and pairs, in config order."""
    config = config or {}
    augmentations = ordered({r["teacher_augmentation"] for r in records if r["role"] != ALONE},
                            config.get("teacher", {}).get("augmentations", []))
    recipes = ordered({r["recipe"] for r in records if r["role"] == "student"},
                      [d["name"] for d in config.get("distillation", [])])
    pairs_seen = {(r["teacher_model"], r["student_model"]) for r in records if r["role"] == "student"}
    pairs = [(p["teacher"], p["student"]) for p in config.get("pairs", [])
             if (p["teacher"], p["student"]) in pairs_seen]
    pairs += sorted(pairs_seen - set(pairs))
    teachers_only = ordered({r["teacher_model"] for r in records if r["role"] == "teacher"},
                            [p[0] for p in pairs])
    return augmentations, recipes, pairs, teachers_only


def select(records, **where):
    """Records whose fields equal the given values."""
    return [r for r in records if all(r.get(k) == v for k, v in where.items())]


def values_of(records, metric):
    return [r.get(metric) for r in records]


def pair_table(records, teacher_model, student_model, metric, config=None, alone=True, mark_flags=False):
    """Rows = teacher augmentations; columns = the teacher, the student alone, then each recipe's student.

    Arguments:
        records: result records.
        teacher_model, student_model: the pair.
        metric: a key of `METRICS` (or any numeric field of the records).
        config: the study config, for the order of rows and columns.
        alone: add the "student alone" column (the student model trained
            without a teacher; the same in every row) when the records hold
            such baselines.
        mark_flags: append `FLAG_MARK` and a count to an entry whose mean
            includes cells whose training went wrong (" ⚑1"); the mean
            itself includes them.

    Returns:
        `(header, rows)`: a list of column titles and a list of rows (lists
        of strings), ready for `markdown_table`.
    """
    label, scale, decimals = METRICS.get(metric, (metric, 1.0, 4))
    augmentations, recipes, _, _ = study_axes(records, config)
    recipes = [r for r in recipes if select(records, role="student", teacher_model=teacher_model,
                                            student_model=student_model, recipe=r)]
    baselines = select(records, role=ALONE, student_model=student_model) if alone else []
    header = ["teacher augmentation", f"teacher {teacher_model}"]
    header += [f"{student_model} · student alone"] if baselines else []
    header += [f"{student_model} · {r}" for r in recipes]
    rows = []
    for augmentation in augmentations:
        teachers = select(records, role="teacher", teacher_model=teacher_model, teacher_augmentation=augmentation)
        row = [augmentation, _marked(format_mean_std(values_of(teachers, metric), scale, decimals), teachers,
                                     config, mark_flags)]
        if baselines:
            row.append(_marked(format_mean_std(values_of(baselines, metric), scale, decimals), baselines, config,
                               mark_flags))
        found = bool(teachers)
        for recipe in recipes:
            students = select(records, role="student", teacher_model=teacher_model, student_model=student_model,
                              teacher_augmentation=augmentation, recipe=recipe)
            found = found or bool(students)
            row.append(_marked(format_mean_std(values_of(students, metric), scale, decimals), students, config,
                               mark_flags))
        # A row of finished cells stays even when the metric is missing ("–": e.g. no
        # best-validation epoch without a validation split).
        if found:
            rows.append(row)
    return header, rows


def kd_gains(records, teacher_model, student_model, teacher_augmentation, recipe, metric="test_accuracy_last"):
    """Distilled minus student-alone `metric`, one value per seed that has both (paired by seed).

    Example:

    >>> kd_gains(records, "digits_cnn", "digits_cnn_small", "mixup", "kd")
    [0.011, -0.004, 0.02]
    """
    baseline = {r["seed"]: r.get(metric) for r in select(records, role=ALONE, student_model=student_model)}
    gains = []
    students = select(records, role="student", teacher_model=teacher_model, student_model=student_model,
                      teacher_augmentation=teacher_augmentation, recipe=recipe)
    for student in sorted(students, key=lambda r: r["seed"]):
        distilled, alone = student.get(metric), baseline.get(student["seed"])
        if distilled is not None and alone is not None and math.isfinite(distilled) and math.isfinite(alone):
            gains.append(float(distilled) - float(alone))
    return gains


def gain_grid(records, teacher_model, student_model, metric="test_accuracy_last", config=None):
    """The KD gains of one teacher → student pair, per teacher augmentation and recipe, per seed.

    The one computation behind the KD-gain table (`gain_table`) and figure
    (`plot_kd_gain`): for each teacher augmentation and distillation recipe
    of the pair, `kd_gains` (distilled − student alone, paired by seed, in
    the metric's own unit: a fraction for accuracies).

    Arguments:
        records: result records.
        teacher_model, student_model: the pair.
        metric: the record field compared (default the last epoch's test accuracy).
        config: the study config, for the order of rows and columns.

    Returns:
        `(augmentations, recipes, gains)`: the teacher augmentations that
        have a student of the pair and the recipes that distilled one, in
        config order, and a dict `{(augmentation, recipe): [gain per seed,
        by seed]}` (an empty list where no seed has both cells); or None
        when the records hold no student-alone baseline of `student_model`.

    Example:

    >>> augmentations, recipes, gains = gain_grid(records, "digits_cnn", "digits_cnn_small")
    >>> gains[("mixup", "kd")]
    [0.011, -0.004, 0.02]
    """
    if not select(records, role=ALONE, student_model=student_model):
        return None
    augmentations, recipes, _, _ = study_axes(records, config)
    students = select(records, role="student", teacher_model=teacher_model, student_model=student_model)
    recipes = [r for r in recipes if select(students, recipe=r)]
    augmentations = [a for a in augmentations if select(students, teacher_augmentation=a)]
    gains = {(a, r): kd_gains(records, teacher_model, student_model, a, r, metric)
             for a in augmentations for r in recipes}
    return augmentations, recipes, gains


def format_gain(values, scale=1.0, decimals=2):
    """`format_mean_std` with a sign: "+3.16 ± 1.85", "-1.49 ± 2.53"; "–" for none.

    Example:

    >>> format_gain([0.02, 0.04], scale=100)
    '+3.00 ± 1.41'
    """
    text = format_mean_std(values, scale, decimals)
    return text if text == "–" or text.startswith("-") else "+" + text


def gain_table(records, teacher_model, student_model, metric="test_accuracy_last", config=None, mark_flags=False):
    """The KD gain per cell of the main table: rows = teacher augmentations, columns = recipes.

    Each cell is the mean ± sample std over seeds of (distilled − student
    alone), paired by seed (`gain_grid`, the numbers of the KD-gain figure),
    in the metric's scale (percentage points for accuracies, with a sign);
    "–" where no seed has both. With `mark_flags`, an entry whose distilled
    or student-alone cells include flagged ones gets `FLAG_MARK` and their count.

    Returns:
        `(header, rows)` as `pair_table`, or `(None, [])` when the records
        hold no student-alone baseline of `student_model`.
    """
    _, scale, decimals = METRICS.get(metric, (metric, 1.0, 4))
    grid = gain_grid(records, teacher_model, student_model, metric, config)
    if grid is None:
        return None, []
    augmentations, recipes, gains = grid
    header = ["teacher augmentation"] + [f"{student_model} · {r} − alone" for r in recipes]
    baselines = select(records, role=ALONE, student_model=student_model)

    def entry(augmentation, recipe):
        students = select(records, role="student", teacher_model=teacher_model, student_model=student_model,
                          teacher_augmentation=augmentation, recipe=recipe)
        seeds = {r["seed"] for r in students}
        paired = students + [r for r in baselines if r["seed"] in seeds]
        return _marked(format_gain(gains[(augmentation, recipe)], scale, decimals), paired, config, mark_flags)

    rows = [[a] + [entry(a, r) for r in recipes] for a in augmentations]
    return header, rows


def markdown_table(header, rows):
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header, rows):
    """A plain-text table with aligned columns, for the terminal."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line("-" * w for w in widths)] + [line(r) for r in rows])


def epoch_note(records, config=None):
    """Which epochs the numbers come from, e.g. "last epoch = 12 (teachers), 10 (students)"."""
    parts = []
    for role, roles in (("teacher", ("teacher",)), ("student", ("student", ALONE))):
        epochs = sorted({r["last_epoch"] for r in records if r["role"] in roles})
        if epochs:
            parts.append(f"{', '.join(str(e) for e in epochs)} ({role}s)")
    return "last epoch = " + "; ".join(parts) if parts else "last epoch = ?"


def _flag_count(group, config):
    count = len(flagged(group, config))
    return f"{FLAG_MARK}{count}" if count else "–"


def long_table(records, config=None):
    """Every group (teacher or student setting) with all its numbers: the full table.

    Its last column counts the group's flagged cells (training that went wrong; "–" for none).
    """
    augmentations, recipes, pairs, teachers = study_axes(records, config)
    metrics = ["test_accuracy_last", "test_accuracy_best", "best_epoch", "class_discrimination_last",
               "ece_last", "teacher_agreement_last", "mean_entropy_last"]
    header = ["model", "teacher augmentation", "recipe", "seeds",
              "acc last (%)", "acc best-val (%)", "best epoch", "CD", "ECE", "agreement (%)", "entropy",
              "flagged"]
    rows = []
    for teacher_model in teachers:
        for augmentation in augmentations:
            group = select(records, role="teacher", teacher_model=teacher_model, teacher_augmentation=augmentation)
            if group:
                rows.append([f"teacher {teacher_model}", augmentation, "–", str(len(group))]
                            + [format_mean_std(values_of(group, m), *METRICS[m][1:]) for m in metrics]
                    + [_flag_count(group, config)])
    for student_model in ordered({r["student_model"] for r in records if r["role"] == ALONE},
                                 [p[1] for p in pairs]):
        group = select(records, role=ALONE, student_model=student_model)
        rows.append([f"{student_model} alone (no teacher)", "–", ALONE, str(len(group))]
                    + [format_mean_std(values_of(group, m), *METRICS[m][1:]) for m in metrics]
                    + [_flag_count(group, config)])
    for teacher_model, student_model in pairs:
        for augmentation in augmentations:
            for recipe in recipes:
                group = select(records, role="student", teacher_model=teacher_model, student_model=student_model,
                               teacher_augmentation=augmentation, recipe=recipe)
                if group:
                    rows.append([f"{teacher_model} → {student_model}", augmentation, recipe, str(len(group))]
                                + [format_mean_std(values_of(group, m), *METRICS[m][1:]) for m in metrics]
                    + [_flag_count(group, config)])
    return header, rows
