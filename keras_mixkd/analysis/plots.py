"""Plots of a study (PNG through matplotlib's Agg canvas; no display, no pyplot state).

Each function takes the result records (and, for projections, the saved
features), writes one PNG atomically and returns its path.
"""

import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from keras_mixkd.analysis.tables import mean_std
from keras_mixkd.analysis.tables import select
from keras_mixkd.analysis.tables import study_axes
from keras_mixkd.study import atomic


def _save(figure, path):
    with atomic.atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def _grouped_bars(ax, groups, series, title, ylabel):
    """groups: x labels; series: [(label, [(mean, std)] per group)]."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (label, stats) in enumerate(series):
        means = [s[0] for s in stats]
        stds = [0.0 if not np.isfinite(s[1]) else s[1] for s in stats]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=label)
    ax.set_xticks(x, groups, rotation=20, ha="right")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")


def _per_pair_bars(records, config, metric, scale, ylabel, title, path, limits=None):
    augmentations, recipes, pairs, _ = study_axes(records, config)
    if not pairs:
        pairs = [(t, None) for t in sorted({r["teacher_model"] for r in records})]
    figure = Figure(figsize=(max(6.0, 1.3 * len(augmentations) * (1 + 0.25 * len(recipes))), 3.6 * len(pairs)), layout="constrained")
    axes = np.atleast_1d(figure.subplots(len(pairs), 1, squeeze=False)[:, 0])
    for ax, (teacher_model, student_model) in zip(axes, pairs):
        series = []
        stats = []
        for augmentation in augmentations:
            group = select(records, role="teacher", teacher_model=teacher_model, teacher_augmentation=augmentation)
            mean, std, _ = mean_std([g.get(metric) for g in group])
            stats.append((mean * scale, std * scale))
        series.append((f"teacher {teacher_model}", stats))
        baselines = select(records, role="alone", student_model=student_model) if student_model else []
        if baselines:  # the student trained without a teacher: the same bar in every group
            mean, std, _ = mean_std([g.get(metric) for g in baselines])
            series.append((f"{student_model} alone", [(mean * scale, std * scale)] * len(augmentations)))
        for recipe in recipes if student_model else []:
            stats = []
            for augmentation in augmentations:
                group = select(records, role="student", teacher_model=teacher_model, student_model=student_model,
                               teacher_augmentation=augmentation, recipe=recipe)
                mean, std, _ = mean_std([g.get(metric) for g in group])
                stats.append((mean * scale, std * scale))
            series.append((f"{student_model} · {recipe}", stats))
        name = f"{teacher_model} → {student_model}" if student_model else teacher_model
        _grouped_bars(ax, augmentations, series, f"{title}: {name}", ylabel)
        if limits == "accuracy":
            # From 0, so bar heights compare honestly; up to the top of the highest error bar.
            tops = [m + (sd if np.isfinite(sd) else 0.0) for _, s in series for m, sd in s if np.isfinite(m)]
            if tops:
                ax.set_ylim(0.0, max(100.0, max(tops) + 1.0))
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1].set_xlabel("teacher augmentation")
    return _save(figure, path)


def plot_accuracy(records, path, config=None):
    """Teacher vs student test accuracy (last epoch) per teacher augmentation.

    Bars are means over seeds, error bars the sample std; one panel per
    teacher → student pair, one bar per distillation recipe. The y axis runs
    from 0 to 100 %, so gaps look as large as they are.
    """
    return _per_pair_bars(records, config, "test_accuracy_last", 100.0, "test accuracy (%), last epoch",
                          "Teacher vs student accuracy", path, limits="accuracy")


def plot_class_discrimination(records, path, config=None):
    """Class-discrimination of teacher and student features per teacher augmentation."""
    return _per_pair_bars(records, config, "class_discrimination_last", 1.0,
                          "class-discrimination (test, last epoch)", "Class-discrimination", path)


def plot_cd_over_epochs(records, path, config=None, key="val_class_discrimination"):
    """Class-discrimination on the validation split over epochs, mean over seeds.

    One panel for the teachers and one per distillation recipe (students),
    one line per teacher augmentation.
    """
    augmentations, recipes, pairs, teacher_models = study_axes(records, config)
    panels = [("teachers", dict(role="teacher"))]
    for teacher_model, student_model in pairs:
        for recipe in recipes:
            panels.append((f"{student_model} · {recipe}", dict(role="student", teacher_model=teacher_model,
                                                               student_model=student_model, recipe=recipe)))
    columns = min(3, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, where) in zip(axes, panels):
        for augmentation in augmentations:
            group = select(records, teacher_augmentation=augmentation, **where)
            curves = {}
            for record in group:
                for row in record.get("history", []):
                    value = row.get(key)
                    if value is not None and np.isfinite(value):
                        curves.setdefault(row["epoch"], []).append(value)
            _mean_band(ax, curves, augmentation)
        ax.set_title(title, fontsize=10)
        _epoch_axis(ax)
        ax.set_ylabel("CD (test)" if key.startswith("test_") else "CD (validation)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="mean ± std over seeds", title_fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return _save(figure, path)


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
    return _save(figure, path)


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
    return _save(figure, path)


def plot_curves(records, path, config=None):
    """Per-epoch accuracy and loss of teachers and students: mean over seeds with a ± std band.

    Columns: training loss, validation accuracy, test accuracy. Rows: the
    teachers, then each student · recipe; one line per teacher augmentation.
    """
    augmentations, recipes, pairs, _ = study_axes(records, config)
    panels = [("teachers", dict(role="teacher"))]
    for teacher_model, student_model in pairs:
        for recipe in recipes:
            panels.append((f"{student_model} · {recipe}", dict(role="student", teacher_model=teacher_model,
                                                               student_model=student_model, recipe=recipe)))
    keys = [("loss", "training loss"), ("val_accuracy", "validation accuracy"), ("test_accuracy", "test accuracy")]
    figure = Figure(figsize=(4.0 * len(keys), 2.8 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), len(keys), squeeze=False)
    for row, (title, where) in enumerate(panels):
        for column, (key, label) in enumerate(keys):
            ax = axes[row, column]
            for augmentation in augmentations:
                curves = {}
                for record in select(records, teacher_augmentation=augmentation, **where):
                    for entry in record.get("history", []):
                        value = entry.get(key)
                        if value is not None and np.isfinite(value):
                            curves.setdefault(int(entry["epoch"]), []).append(float(value))
                _mean_band(ax, curves, augmentation)
            ax.set_title(f"{title}: {label}", fontsize=9)
            _epoch_axis(ax)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, title="teacher aug. (mean ± std over seeds)", title_fontsize=6)
    return _save(figure, path)


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
    return _save(figure, path)
