"""Plots of a study (PNG through matplotlib's Agg canvas; no display, no pyplot state).

Each function takes the result records (and, for projections, the saved
features), writes one PNG atomically and returns its path.
"""

import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import AutoMinorLocator
from matplotlib.ticker import MaxNLocator
from matplotlib.ticker import MultipleLocator

from keras_mixkd.analysis.tables import mean_std
from keras_mixkd.analysis.tables import select
from keras_mixkd.analysis.tables import study_axes
from keras_mixkd.study import atomic


def save_figure(figure, path):
    with atomic.atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def _per_pair_dots(records, config, metric, scale, ylabel, title, path, accuracy=False):
    """A dot plot per teacher → student pair: mean ± std over seeds, the axis fitted to the data.

    Markers, not bars, so the axis need not start at 0 and differences of a
    point stay visible. Per teacher augmentation: the teacher, then each
    recipe's student; the student alone (the same for every teacher) is a
    line with a ± std band across the panel.
    """
    augmentations, recipes, pairs, _ = study_axes(records, config)
    if not pairs:
        pairs = [(t, None) for t in sorted({r["teacher_model"] for r in records})]
    figure = Figure(figsize=(max(7.0, len(augmentations) * (0.4 + 0.25 * (len(recipes) + 1)) + 3.5),
                             0.6 + 3.4 * len(pairs)), layout="constrained")
    axes = np.atleast_1d(figure.subplots(len(pairs), 1, squeeze=False)[:, 0])
    count = len({r["seed"] for r in records})
    seeds = "one seed" if count == 1 else f"mean ± std over {count} seeds"
    for ax, (teacher_model, student_model) in zip(axes, pairs):
        series = [(f"teacher {teacher_model}", "s", "black",
                   [select(records, role="teacher", teacher_model=teacher_model, teacher_augmentation=a)
                    for a in augmentations])]
        for number, recipe in enumerate(recipes if student_model else []):
            series.append((f"{student_model} · {recipe}", "o", f"C{number % 10}",
                           [select(records, role="student", teacher_model=teacher_model, student_model=student_model,
                                   teacher_augmentation=a, recipe=recipe) for a in augmentations]))
        slot = 0.8 / len(series)
        for i, (label, marker, colour, groups) in enumerate(series):
            stats = [mean_std([g.get(metric) for g in group]) for group in groups]
            x = [j + (i - (len(series) - 1) / 2) * slot for j, s in enumerate(stats) if s[2]]
            means = [s[0] * scale for s in stats if s[2]]
            stds = [s[1] * scale if s[2] > 1 else 0.0 for s in stats if s[2]]
            if x:
                ax.errorbar(x, means, yerr=stds, fmt=marker, color=colour, markersize=5, capsize=2.5, label=label)
        baselines = select(records, role="alone", student_model=student_model) if student_model else []
        mean, std, n = mean_std([g.get(metric) for g in baselines])
        if n:  # the student trained without a teacher: the same for every teacher augmentation
            ax.axhline(mean * scale, color="0.35", linestyle="--", linewidth=1.0, label=f"{student_model} alone" + (" (band: ± std)" if n > 1 else ""))
            if n > 1:
                ax.axhspan((mean - std) * scale, (mean + std) * scale, color="0.5", alpha=0.15, linewidth=0)
        for j in range(1, len(augmentations)):
            ax.axvline(j - 0.5, color="0.85", linewidth=0.8, zorder=0)
        ax.set_xlim(-0.5, len(augmentations) - 0.5)
        ax.set_xticks(range(len(augmentations)), augmentations)
        name = f"{teacher_model} → {student_model}" if student_model else teacher_model
        ax.set_title(f"{title}: {name}", fontsize=10)
        ax.set_ylabel(ylabel)
        if accuracy:
            _point_grid(ax)
        else:
            ax.yaxis.set_minor_locator(AutoMinorLocator())
        ax.grid(axis="y", which="major", alpha=0.35)
        ax.grid(axis="y", which="minor", alpha=0.12)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title=seeds, title_fontsize=7)
    axes[-1].set_xlabel("teacher augmentation")
    return save_figure(figure, path)


def _point_grid(ax):
    """Ticks every 1, 2 or 5 points and a light grid line at every point, so a 1-point gap reads off."""
    low, high = ax.get_ylim()
    step = 1.0 if high - low <= 8 else 2.0 if high - low <= 16 else 5.0
    ax.yaxis.set_major_locator(MultipleLocator(step))
    ax.yaxis.set_minor_locator(MultipleLocator(1.0 if high - low <= 40 else step))


def plot_accuracy(records, path, config=None):
    """Teacher vs student test accuracy (last epoch) per teacher augmentation, as a dot plot.

    Markers are means over seeds, error bars the sample std; one panel per
    teacher → student pair, one marker per distillation recipe, the student
    alone as a dashed line with a ± std band. The y axis is fitted to the
    data (it does not start at 0: markers, not bars), with a grid line at
    every percentage point.
    """
    return _per_pair_dots(records, config, "test_accuracy_last", 100.0,
                          "test accuracy (%), last epoch\n(axis fitted to the data)",
                          "Teacher vs student accuracy", path, accuracy=True)


def plot_class_discrimination(records, path, config=None):
    """Class-discrimination of teacher and student features per teacher augmentation (dot plot)."""
    return _per_pair_dots(records, config, "class_discrimination_last", 1.0,
                          "class-discrimination (test, last epoch)", "Class-discrimination", path)


def plot_cd_over_epochs(records, path, config=None, key="val_class_discrimination"):
    """Class-discrimination on the validation split over epochs, mean over seeds.

    One panel for the teachers and one per distillation recipe (students),
    one line per teacher augmentation.
    """
    augmentations, recipes, pairs, teacher_models = study_axes(records, config)
    panels = _role_panels(pairs, recipes)
    columns = min(3, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, where) in zip(axes, panels):
        for augmentation in augmentations:
            curves = _epoch_curves(select(records, teacher_augmentation=augmentation, **where), key)
            _mean_band(ax, curves, augmentation)
        ax.set_title(title, fontsize=10)
        _epoch_axis(ax)
        ax.set_ylabel("CD (test)" if key.startswith("test_") else "CD (validation)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # records without per-epoch histories draw no line
            ax.legend(fontsize=7, title="mean ± std over seeds", title_fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return save_figure(figure, path)


def _role_panels(pairs, recipes):
    """`[(title, where)]`: the teachers' panel, then one per student model · recipe.

    `where` holds the `select` filters of the records the panel draws.
    """
    panels = [("teachers", dict(role="teacher"))]
    for teacher_model, student_model in pairs:
        for recipe in recipes:
            where = dict(role="student", teacher_model=teacher_model, student_model=student_model, recipe=recipe)
            panels.append((f"{student_model} · {recipe}", where))
    return panels


def _epoch_curves(records, key):
    """`{epoch: [values]}`: the finite values of `key` in the records' per-epoch histories."""
    curves = {}
    for record in records:
        for entry in record.get("history", []):
            value = entry.get(key)
            if value is not None and np.isfinite(value):
                curves.setdefault(int(entry["epoch"]), []).append(float(value))
    return curves


def _mean_band(ax, curves, label):
    """Plot the mean over seeds of `{epoch: [values]}` with a shaded ± sample-std band."""
    if not curves:
        return
    epochs = sorted(curves)
    means = np.array([np.mean(curves[e]) for e in epochs])
    stds = np.array([np.std(curves[e], ddof=1) if len(curves[e]) > 1 else 0.0 for e in epochs])
    line, = ax.plot(epochs, means, marker=".", label=label)
    if np.any(stds > 0):
        ax.fill_between(epochs, means - stds, means + stds, color=line.get_color(), alpha=0.2, linewidth=0)


def _epoch_axis(ax):
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")


def project_2d(features, method="pca", seed=0):
    """2-D projection of features with scikit-learn's PCA or t-SNE.

    Arguments:
        features: `(N, D)` array.
        method: "pca" (default, fast, deterministic) or "tsne".
        seed: random state of t-SNE.
    """
    features = np.asarray(features, dtype=np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA

        components = min(2, features.shape[1], features.shape[0])
        points = PCA(n_components=components).fit_transform(features)
        if points.shape[1] < 2:
            points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
        return points
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3)))
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(features)
    raise ValueError(f"Unknown projection {method!r}; expected 'pca' or 'tsne'.")


def plot_projection(feature_sets, path, method="pca", title="Penultimate features"):
    """Scatter the 2-D projection of several feature sets, one panel each, coloured by class.

    Arguments:
        feature_sets: list of `(title, features, labels)`.
        path: the PNG to write.
        method: "pca" or "tsne".
    """
    columns = min(3, max(len(feature_sets), 1))
    rows = int(np.ceil(max(len(feature_sets), 1) / columns))
    figure = Figure(figsize=(4.0 * columns, 3.8 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (name, features, labels) in zip(axes, feature_sets):
        points = project_2d(features, method)
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, s=6, cmap="tab10" if labels.max() < 10 else "viridis")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if method == "pca":
            ratios = explained_variance(features)
            ax.set_xlabel(f"PC 1 ({100 * ratios[0]:.1f} % of variance)", fontsize=8)
            ax.set_ylabel(f"PC 2 ({100 * ratios[1]:.1f} % of variance)", fontsize=8)
        else:
            ax.set_xlabel("t-SNE 1", fontsize=8)
            ax.set_ylabel("t-SNE 2", fontsize=8)
    for ax in axes[len(feature_sets):]:
        ax.set_visible(False)
    if feature_sets:
        figure.colorbar(scatter, ax=list(axes[: len(feature_sets)]), shrink=0.6, label="class")
    figure.suptitle(f"{title} ({method.upper() if method == 'pca' else 't-SNE'})")
    return save_figure(figure, path)


def explained_variance(features):
    """Shares of the variance of `features` along its first two principal components (float64)."""
    features = np.asarray(features, dtype=np.float64)
    centred = features - features.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    total = float(np.sum(singular ** 2))
    ratios = (singular ** 2 / total) if total > 0 else np.zeros_like(singular)
    return np.pad(ratios, (0, max(0, 2 - len(ratios))))[:2]


def load_features(run_dir, key):
    """Saved `(features, labels)` of a cell, or None."""
    path = os.path.join(run_dir, "features", f"{key}.npz")
    if not os.path.exists(path):
        return None
    with np.load(path) as data:
        return data["features"], data["labels"]


def plot_links(records, path, config=None, student_metric="test_accuracy_last", measures=None):
    """The studies' links: student accuracy against each teacher measure, one point per cell.

    One column per teacher measure (class-discrimination: study A; mean
    entropy and logit std: study B), one row per teacher → student pair,
    one colour per distillation recipe; each legend entry gives Pearson's r
    and Spearman's rho over that recipe's cells. `measures`: keys of
    `correlations.TEACHER_MEASURES` to draw (default all).
    """
    from keras_mixkd.analysis.correlations import TEACHER_MEASURES
    from keras_mixkd.analysis.correlations import link_points
    from keras_mixkd.analysis.correlations import pearson
    from keras_mixkd.analysis.correlations import spearman

    chosen = {m: TEACHER_MEASURES[m] for m in (measures or TEACHER_MEASURES)}
    _, recipes, pairs, _ = study_axes(records, config)
    pairs = pairs or [(None, None)]
    figure = Figure(figsize=(4.2 * len(chosen), 3.4 * len(pairs)), layout="constrained")
    axes = figure.subplots(len(pairs), len(chosen), squeeze=False)
    for column, (measure, (label, study)) in enumerate(chosen.items()):
        points = link_points(records, measure, student_metric=student_metric)
        for row, (teacher_model, student_model) in enumerate(pairs):
            ax = axes[row, column]
            for recipe in recipes:
                cells = points.get((teacher_model, student_model, recipe), [])
                if not cells:
                    continue
                x = np.array([p[0] for p in cells])
                y = 100.0 * np.array([p[1] for p in cells])
                r, rho = pearson(x, y), spearman(x, y)
                ax.scatter(x, y, s=14, label=f"{recipe}: r {r:+.2f}, ρ {rho:+.2f} (n={len(cells)})")
            ax.set_xlabel(f"{label}", fontsize=8)
            ax.set_ylabel("student test accuracy (%)", fontsize=8)
            ax.set_title(f"{study}: {teacher_model} → {student_model}", fontsize=9)
            ax.ticklabel_format(useOffset=False, style="plain")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
    return save_figure(figure, path)


def plot_curves(records, path, config=None):
    """Per-epoch accuracy and loss of teachers and students: mean over seeds with a ± std band.

    Columns: training loss, validation accuracy, test accuracy. Rows: the
    teachers, then each student · recipe; one line per teacher augmentation.
    """
    augmentations, recipes, pairs, _ = study_axes(records, config)
    panels = _role_panels(pairs, recipes)
    keys = [("loss", "training loss"), ("val_accuracy", "validation accuracy"), ("test_accuracy", "test accuracy")]
    figure = Figure(figsize=(4.0 * len(keys), 2.8 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), len(keys), squeeze=False)
    for row, (title, where) in enumerate(panels):
        for column, (key, label) in enumerate(keys):
            ax = axes[row, column]
            for augmentation in augmentations:
                curves = _epoch_curves(select(records, teacher_augmentation=augmentation, **where), key)
                _mean_band(ax, curves, augmentation)
            ax.set_title(f"{title}: {label}", fontsize=9)
            _epoch_axis(ax)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, title="teacher aug. (mean ± std over seeds)", title_fontsize=6)
    return save_figure(figure, path)


def plot_temperature_heatmap(records, path, config=None, metric="test_accuracy_last"):
    """Student accuracy by teacher augmentation x distillation temperature (study B's figure).

    Returns the path, or None when the study has fewer than two temperatures.
    """
    from keras_mixkd.analysis.correlations import temperature_grid

    augmentations, temperatures, means = temperature_grid(records, config, metric=metric)
    if len(temperatures) < 2 or not augmentations:
        return None
    figure = Figure(figsize=(1.3 * len(temperatures) + 3.0, 0.55 * len(augmentations) + 2.0), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(100.0 * means, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(temperatures)), [f"T = {t:g}" for t in temperatures])
    ax.set_yticks(range(len(augmentations)), augmentations)
    ax.set_xlabel("distillation temperature")
    ax.set_ylabel("teacher augmentation")
    for i in range(len(augmentations)):
        for j in range(len(temperatures)):
            if np.isfinite(means[i, j]):
                ax.text(j, i, f"{100 * means[i, j]:.1f}", ha="center", va="center", fontsize=8, color="white")
    figure.colorbar(image, ax=ax, label="student test accuracy (%), mean over seeds")
    ax.set_title("Student accuracy: teacher augmentation x temperature", fontsize=10)
    return save_figure(figure, path)
