"""Plots of a study (PNG through matplotlib's Agg canvas; no display, no pyplot state).

Each function takes the result records (and, for projections, the saved
features), writes one PNG atomically and returns its path.
"""

import os

import numpy as np
from matplotlib.figure import Figure

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
            finite = [m for _, s in series for m, _ in s if np.isfinite(m)]
            if finite:
                ax.set_ylim(max(0.0, min(finite) - 10), min(100.0, max(finite) + 5))
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1].set_xlabel("teacher augmentation")
    return _save(figure, path)


def plot_accuracy(records, path, config=None):
    """Teacher vs student test accuracy (last epoch) per teacher augmentation.

    Bars are means over seeds, error bars the sample std; one panel per
    teacher → student pair, one bar per distillation recipe.
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
            if curves:
                epochs = sorted(curves)
                ax.plot(epochs, [np.mean(curves[e]) for e in epochs], marker=".", label=augmentation)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("CD (test)" if key.startswith("test_") else "CD (validation)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return _save(figure, path)


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
    for ax in axes[len(feature_sets):]:
        ax.set_visible(False)
    if feature_sets:
        figure.colorbar(scatter, ax=list(axes[: len(feature_sets)]), shrink=0.6, label="class")
    figure.suptitle(f"{title} ({method.upper() if method == 'pca' else 't-SNE'})")
    return _save(figure, path)


def load_features(run_dir, key):
    """Saved `(features, labels)` of a cell, or None."""
    path = os.path.join(run_dir, "features", f"{key}.npz")
    if not os.path.exists(path):
        return None
    with np.load(path) as data:
        return data["features"], data["labels"]
