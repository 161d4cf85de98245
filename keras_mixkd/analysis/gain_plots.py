"""The KD-gain figure: distilled − student alone, paired by seed, per teacher augmentation and recipe.

The report's first figure. Its numbers come from `tables.gain_grid`, the
same function that builds the KD-gain table.
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import AutoMinorLocator

from keras_mixkd.analysis.plots import save_figure
from keras_mixkd.analysis.tables import ALONE
from keras_mixkd.analysis.tables import METRICS
from keras_mixkd.analysis.tables import format_mean_std
from keras_mixkd.analysis.tables import gain_grid
from keras_mixkd.analysis.tables import mean_std
from keras_mixkd.analysis.tables import select
from keras_mixkd.analysis.tables import study_axes

# Up to this many seeds per cell, each seed's gain is drawn as a point beside its mean ± std.
MAX_SEED_POINTS = 10

_EPOCH_WORDS = {
    "test_accuracy_last": "test accuracy at the last epoch",
    "test_accuracy_best": "test accuracy at the best-validation epoch",
}


def kd_gain_figure(records, config=None, metric="test_accuracy_last"):
    """The KD-gain figure as a matplotlib `Figure` (not saved), or None when there is no gain.

    One panel per teacher → student pair that has a student-alone
    baseline; in each, one group per teacher augmentation and in it one
    marker per distillation recipe: the mean over seeds of (distilled −
    alone, paired by seed) with the sample std as error bar, and each
    seed's gain as a hollow point when there are at most
    `MAX_SEED_POINTS` seeds. A line marks zero (no gain); the y axis spans
    the gains and zero.

    Each recipe's markers are one `ErrorbarContainer` labelled with the
    recipe (`ax.containers`); the x position of a marker rounds to the
    index of its teacher augmentation among the x tick labels.

    Arguments:
        records: result records.
        config: the study config, for the order of augmentations and recipes.
        metric: "test_accuracy_last" (the report's first figure),
            "test_accuracy_best", or another numeric field of the records.

    Returns:
        A `Figure`, or None when no pair has a student-alone baseline and a
        distilled student of the same seed.

    Example:

    >>> figure = kd_gain_figure(records, config)
    >>> [c.get_label() for c in figure.axes[0].containers]
    ['kd', 'kd_T1', 'standardized', 'partial_mixup']
    """
    _, scale, decimals = METRICS.get(metric, (metric, 1.0, 4))
    _, recipes, pairs, _ = study_axes(records, config)
    panels = []
    for teacher_model, student_model in pairs:
        grid = gain_grid(records, teacher_model, student_model, metric, config)
        if grid is not None and any(grid[2].values()):
            panels.append((teacher_model, student_model, grid))
    if not panels:
        return None
    counts = sorted({len(g) for _, _, (_, _, gains) in panels for g in gains.values() if g})
    width = max(len(a) * (0.5 + 0.3 * len(r)) for _, _, (a, r, _) in panels) + 3.0
    figure = Figure(figsize=(max(7.0, width), 0.9 + 3.3 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (teacher_model, student_model, grid) in zip(axes, panels):
        _gain_panel(ax, grid, scale, counts[-1] <= MAX_SEED_POINTS, recipes)
        alone = format_mean_std([r.get(metric) for r in select(records, role=ALONE, student_model=student_model)],
                                scale, decimals)
        unit = " %" if scale == 100.0 else ""
        ax.set_title(f"{teacher_model} → {student_model}   (student alone: {alone}{unit})", fontsize=10)
    points = "percentage points" if scale == 100.0 else "difference"
    axes[-1].set_xlabel("teacher augmentation")
    for ax in axes:
        ax.set_ylabel(f"KD gain ({points})\ndistilled − alone")
    figure.suptitle(f"KD gain over the student alone, {_EPOCH_WORDS.get(metric, metric)}: "
                    f"distilled − alone, paired by seed\n{_seed_words(counts)}", fontsize=11)
    return figure


def plot_kd_gain(records, path, config=None, metric="test_accuracy_last"):
    """Write the KD-gain figure (`kd_gain_figure`) to `path`; returns the path, or None when there is no gain.

    Example:

    >>> plot_kd_gain(records, "runs/digits/plots/kd_gain.png", config)
    'runs/digits/plots/kd_gain.png'
    """
    figure = kd_gain_figure(records, config, metric)
    return None if figure is None else save_figure(figure, path)


def _seed_words(counts):
    """What the markers are, saying how many seeds (one seed: no spread)."""
    if counts == [1]:
        return "one seed: each marker is that seed's gain; no spread over seeds is shown"
    seeds = f"{counts[0]}–{counts[-1]} seeds (varies by cell)" if len(counts) > 1 else f"{counts[0]} seeds"
    points = "; hollow points: each seed" if counts[-1] <= MAX_SEED_POINTS else ""
    return f"markers: mean ± sample std over {seeds}{points}"


def _gain_panel(ax, grid, scale, seed_points, all_recipes):
    augmentations, recipes, gains = grid
    slot = 0.8 / max(len(recipes), 1)
    # A recipe keeps its colour in every panel, even where a pair lacks another recipe.
    colours = [f"C{all_recipes.index(r) % 10}" for r in recipes]
    span = [0.0]
    for i, (recipe, colour) in enumerate(zip(recipes, colours)):
        offset = (i - (len(recipes) - 1) / 2) * slot
        xs, means, stds = [], [], []
        for j, augmentation in enumerate(augmentations):
            values = gains[(augmentation, recipe)]
            mean, std, n = mean_std(values)
            if n == 0:
                continue
            xs.append(j + offset)
            means.append(mean * scale)
            stds.append(std * scale if n > 1 else np.nan)
            span += [mean * scale - (std * scale if n > 1 else 0.0), mean * scale + (std * scale if n > 1 else 0.0)]
            if seed_points and n > 1:
                # Beside the marker (not on it), a little apart, so each seed shows.
                spread = (0.3 + np.linspace(-0.08, 0.08, n)) * slot
                ys = np.asarray(values, dtype=np.float64) * scale
                ax.scatter(j + offset + spread, ys, s=12, facecolors="none", edgecolors=colour, linewidths=0.8,
                           alpha=0.8, zorder=2, gid=f"seeds {augmentation} {recipe}")
                span += list(ys)
        yerr = None if all(np.isnan(stds)) else np.nan_to_num(stds, nan=0.0)
        ax.errorbar(xs, means, yerr=yerr, fmt="o", color=colour, markersize=6, capsize=3, elinewidth=1.4,
                    label=recipe, zorder=3)
    ax.axhline(0.0, color="black", linewidth=0.9, zorder=1)
    for j in range(1, len(augmentations)):
        ax.axvline(j - 0.5, color="0.85", linewidth=0.8, zorder=0)
    low, high = min(span), max(span)
    # Every gain zero (a smoke run): one unit either side rather than a collapsed axis.
    pad = 0.08 * (high - low) if high - low > 1e-9 else 1.0
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlim(-0.5, len(augmentations) - 0.5)
    ax.set_xticks(range(len(augmentations)), augmentations)
    ax.yaxis.set_minor_locator(AutoMinorLocator())
    ax.grid(axis="y", which="major", alpha=0.35)
    ax.grid(axis="y", which="minor", alpha=0.12)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    handles, labels = ax.get_legend_handles_labels()
    if seed_points and any(len(v) > 1 for v in gains.values()):
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="0.3",
                              markersize=4))
        labels.append("one seed")
    ax.legend(handles, labels, fontsize=8, title="distillation recipe", title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
