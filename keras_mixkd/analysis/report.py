"""`write_report`: report.md and the plots of a runs folder, old or new."""

import os

from keras_mixkd.analysis import correlations
from keras_mixkd.analysis import gain_plots
from keras_mixkd.analysis import plots
from keras_mixkd.analysis import tables
from keras_mixkd.analysis.compression_section import compression_lines
from keras_mixkd.study import atomic
from keras_mixkd.study.training_flags import FLAG_MEANINGS
from keras_mixkd.study.training_flags import record_flags

RESULTS_FORMAT = 1


def load_results(run_dir):
    """`(config, records, manifest)` of a runs folder.

    Reads `results.json`, or, when it is missing (a run killed before its
    first table), the finished cells in `cells/`. A record of a run made
    before flags existed gets its `"flags"` computed from its history
    (`keras_mixkd.study.training_flags.record_flags`).

    For the results as pandas DataFrames, see `results_frame` and `history_frame`.
    """
    run_dir = os.fspath(run_dir)
    results_path = os.path.join(run_dir, "results.json")
    manifest_path = os.path.join(run_dir, "study.json")
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"No runs folder at {run_dir}.")
    if os.path.exists(results_path):
        results = atomic.read_json(results_path)
        manifest = {k: results.get(k) for k in ("format", "keras_mixkd_version", "config")}
        records = results.get("cells", [])
    elif os.path.exists(manifest_path):
        from keras_mixkd.study.run_folder import RunFolder
        from keras_mixkd.study.run_folder import join_teachers

        folder = RunFolder(run_dir)
        manifest = folder.read_manifest()
        records = join_teachers(folder.read_cells())
    else:
        raise ValueError(
            f"{run_dir} is not a runs folder of keras-mixkd: it has neither results.json nor study.json."
        )
    if manifest.get("format") != RESULTS_FORMAT:
        raise ValueError(
            f"{run_dir} was written in runs-folder format {manifest.get('format')!r} by keras-mixkd "
            f"{manifest.get('keras_mixkd_version')}; this version reads format {RESULTS_FORMAT}."
        )
    config = manifest.get("config") or {}
    records = [r if r.get("flags") is not None else dict(r, flags=record_flags(r, config)) for r in records]
    return config, records, manifest


NO_SELECTION_NOTE = (
    "No epoch was selected: this study trained on the whole training split (data.validation_fraction = 0), "
    "so there is no validation split to choose an epoch on. Every number is from the last epoch; the "
    "best-validation columns show \"–\"."
)


def no_validation_split(config, records):
    """True when the study had no validation split (`data.validation_fraction = 0`): no epoch was selected."""
    fraction = (config or {}).get("data", {}).get("validation_fraction")
    if fraction is not None:
        return fraction == 0
    return bool(records) and all(r.get("best_epoch") is None for r in records)


def main_table(records, config=None, metric="test_accuracy_last", text=True):
    """The headline table(s): one per teacher → student pair, then its KD gain over the student alone."""
    _, _, pairs, teacher_models = tables.study_axes(records, config)
    label = tables.METRICS[metric][0]
    render = tables.text_table if text else tables.markdown_table
    out = []
    if not pairs:  # a teachers-only study (or one whose students have not finished yet)
        for teacher_model in teacher_models:
            header, rows = tables.pair_table(records, teacher_model, None, metric, config, mark_flags=True)
            out.append(f"{label} · teacher {teacher_model}\n" + render(header, rows))
    for teacher_model, student_model in pairs:
        header, rows = tables.pair_table(records, teacher_model, student_model, metric, config, mark_flags=True)
        out.append(f"{label} · {teacher_model} → {student_model}\n" + render(header, rows))
        header, rows = tables.gain_table(records, teacher_model, student_model, metric, config, mark_flags=True)
        if header is not None and rows:
            out.append(f"KD gain over the student alone ({_gain_unit(metric)}, distilled − alone, paired by seed) · "
                       f"{label} · {teacher_model} → {student_model}\n" + render(header, rows))
    return "\n\n".join(out)


def _gain_unit(metric):
    return "percentage points" if tables.METRICS.get(metric, ("", 1.0))[1] == 100.0 else "difference"


def write_report(run_dir, *, projection=None, print_fn=print):
    """Write `report.md` and `plots/*.png` for a runs folder and print the main table.

    Arguments:
        run_dir: a folder written by `run_study` (`runs/<name>`).
        projection: "pca" or "tsne" for the feature projections; default the
            config's `measure.projection`.
        print_fn: where the main table goes (None: nowhere).

    Returns:
        A dict: "report" (path of report.md), "plots" (list of PNG paths) and
        "table" (the main table as text).

    Example:

    >>> from keras_mixkd.analysis import write_report
    >>> write_report("runs/digits")["plots"]
    ['runs/digits/plots/accuracy.png', ...]
    """
    run_dir = os.fspath(run_dir)
    config, records, manifest = load_results(run_dir)
    if not records:
        raise ValueError(f"{run_dir} holds no finished cell yet: nothing to report.")
    projection = projection or config.get("measure", {}).get("projection", "pca")
    plot_dir = os.path.join(run_dir, "plots")
    cd_split = config.get("measure", {}).get("split", "val")
    # The report's first figure (the finding); its best-validation twin goes to the appendix.
    gain = gain_plots.plot_kd_gain(records, os.path.join(plot_dir, "kd_gain.png"), config)
    gain_best = gain_plots.plot_kd_gain(records, os.path.join(plot_dir, "kd_gain_best.png"), config,
                                        metric="test_accuracy_best")
    written = [path for path in (gain, gain_best) if path] + [
        plots.plot_accuracy(records, os.path.join(plot_dir, "accuracy.png"), config),
        plots.plot_class_discrimination(records, os.path.join(plot_dir, "class_discrimination.png"), config),
        plots.plot_cd_over_epochs(records, os.path.join(plot_dir, "class_discrimination_over_epochs.png"), config,
                                  key=f"{cd_split}_class_discrimination"),
    ]
    written.append(plots.plot_curves(records, os.path.join(plot_dir, "curves.png"), config))
    if any(r["role"] == "student" for r in records):
        written.append(plots.plot_links(records, os.path.join(plot_dir, "links.png"), config))
    heatmap = plots.plot_temperature_heatmap(records, os.path.join(plot_dir, "temperature_heatmap.png"), config)
    if heatmap:
        written.append(heatmap)
    written += _projection_plots(run_dir, records, config, projection, plot_dir)
    text = _report_markdown(run_dir, config, records, manifest, written, (gain, gain_best))
    report_path = os.path.join(run_dir, "report.md")
    atomic.write_text(report_path, text)
    table = main_table(records, config)
    best = main_table(records, config, metric="test_accuracy_best")
    if print_fn is not None:
        print_fn("")
        print_fn(table)
        if no_validation_split(config, records):
            print_fn(f"\n!!! {NO_SELECTION_NOTE}")
            print_fn(f"\nmean ± std over seeds; {tables.epoch_note(records)}. Report: {report_path}")
        else:
            print_fn("")
            print_fn(best)
            print_fn(f"\nmean ± std over seeds; {tables.epoch_note(records)}; best-val = epoch of highest "
                     f"validation accuracy. Report: {report_path}")
        print_fn(flag_note(records, config))
    return {"report": report_path, "plots": written, "table": table}


def flag_note(records, config=None):
    """One line on the cells whose training went wrong and what the means include.

    Example:

    >>> flag_note(records)
    '⚑ 2 of 5 cells flagged (training went wrong: near_chance 1, loss_rose 2). Means include them ...'
    """
    bad = tables.flagged(records, config)
    if not bad:
        return (f"No cell flagged (checks: {', '.join(FLAG_MEANINGS)}); means include all {len(records)} "
                "finished cells.")
    counts = {}
    for r in bad:
        for name in record_flags(r, config):
            counts[name] = counts.get(name, 0) + 1
    names = ", ".join(f"{name} {counts[name]}" for name in FLAG_MEANINGS if name in counts)
    return (f"{tables.FLAG_MARK} {len(bad)} of {len(records)} cells flagged (training went wrong: {names}). "
            f"Means include them (entries marked {tables.FLAG_MARK}N: N flagged cells in that mean); report.md "
            "lists each and repeats the test-accuracy tables without them.")


def _flag_lines(records, config):
    """The report's bullet on flagged cells: how many, and which cells the means include."""
    bad = tables.flagged(records, config)
    checks = "; ".join(f"`{name}`: {meaning}" for name, meaning in FLAG_MEANINGS.items())
    if not bad:
        return [f"- **Flags** (training that went wrong): none raised; every mean includes all {len(records)} "
                f"finished cells. Checks: {checks}."]
    return [f"- **Flags** (training that went wrong): {len(bad)} of {len(records)} cells flagged. **Every mean "
            f"includes all {len(records)} finished cells, flagged ones too**; an entry marked "
            f"{tables.FLAG_MARK}N has N flagged cells in its mean. Section \"Cells whose training went wrong\" "
            f"lists them and repeats the test-accuracy tables without them. Checks: {checks}."]


def _flagged_section(records, config, pairs, teacher_models):
    """The flagged cells, one row each, and the headline tables without them."""
    bad = tables.flagged(records, config)
    if not bad:
        return []
    lines = ["## Cells whose training went wrong", "",
             "Each flagged cell, its flags and the numbers they are read from (`flags` in its record, "
             "`results.json`; `keras_mixkd.analysis.results_frame` for a DataFrame).", ""]
    rows = []
    for r in bad:
        losses = [row.get("loss") for row in r.get("history") or []]
        loss = (f"{_number(losses[0])} → {_number(losses[-1])} (max {_number(max(_finite(losses), default=None))})"
                if losses else "–")
        accuracy = r.get("test_accuracy_last")
        rows.append([f"`{r.get('key', '?')}`", r.get("role", "?"), ", ".join(record_flags(r, config)),
                     "–" if accuracy is None else f"{accuracy * 100:.2f}", loss])
    lines += [tables.markdown_table(["cell", "role", "flags", "test acc last (%)", "training loss first → last"],
                                    rows), ""]
    clean = tables.without_flagged(records, config)
    lines += [f"### Test accuracy (%), last epoch, without the flagged cells ({len(clean)} of {len(records)} "
              "cells)", ""]
    for teacher_model, student_model in pairs or [(t, None) for t in teacher_models]:
        header, rows = tables.pair_table(clean, teacher_model, student_model, "test_accuracy_last", config)
        title = f"{teacher_model} → {student_model}" if student_model else f"teachers {teacher_model}"
        lines += [f"{title}:", "", tables.markdown_table(header, rows) if rows else "No cell left.", ""]
        if student_model:
            gain_header, gain_rows = tables.gain_table(clean, teacher_model, student_model, "test_accuracy_last",
                                                       config)
            if gain_header is not None and gain_rows:
                lines += [f"KD gain over the student alone (percentage points), {title}, without the flagged "
                          "cells:", "", tables.markdown_table(gain_header, gain_rows), ""]
    return lines


def _finite(values):
    import math

    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _number(value):
    import math

    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "NaN"
    return f"{value:.4g}"


def _projection_plots(run_dir, records, config, method, plot_dir):
    written = []
    seeds = sorted({r["seed"] for r in records})
    if not seeds:
        return written
    augmentations, recipes, pairs, teacher_models = tables.study_axes(records, config)
    for teacher_model in teacher_models:
        sets = []
        for augmentation in augmentations:
            for record in tables.select(records, role="teacher", teacher_model=teacher_model,
                                        teacher_augmentation=augmentation, seed=seeds[0]):
                loaded = plots.load_features(run_dir, record["key"])
                if loaded is not None:
                    sets.append((f"teacher={augmentation}", *loaded))
        if sets:
            written.append(plots.plot_projection(
                sets, os.path.join(plot_dir, f"projection_teacher_{teacher_model}.png"), method,
                title=f"Penultimate features of the {teacher_model} teachers, test split, seed {seeds[0]}"))
    for teacher_model, student_model in pairs:
        for number, recipe in enumerate(recipes):
            sets = []
            for augmentation in augmentations:
                for record in tables.select(records, role="student", teacher_model=teacher_model,
                                            student_model=student_model, recipe=recipe,
                                            teacher_augmentation=augmentation, seed=seeds[0]):
                    loaded = plots.load_features(run_dir, record["key"])
                    if loaded is not None:
                        sets.append((f"teacher={augmentation}", *loaded))
            if sets:
                # The first recipe keeps the file name of earlier versions.
                tail = "" if number == 0 else f"_{recipe}"
                written.append(plots.plot_projection(
                    sets, os.path.join(plot_dir, f"projection_student_{student_model}_from_{teacher_model}{tail}.png"),
                    method, title=f"Penultimate features of {student_model} students ({recipe}), seed {seeds[0]}"))
    return written


def _whole_epochs(cell):
    """"9.0" -> "9" (one seed: an epoch is a whole number); means over seeds keep their decimal."""
    number, mark = (cell.split(" " + tables.FLAG_MARK, 1) + [None])[:2]
    number = number[:-2] if number.endswith(".0") and "±" not in number else number
    return number if mark is None else f"{number} {tables.FLAG_MARK}{mark}"


_DATA_WORDS = {
    "digits": "the embedded digits data",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
}


def _data_words(data):
    dataset = data.get("dataset", "?")
    if dataset in ("folder", "npz"):
        kind = "the image folder" if dataset == "folder" else "the arrays"
        return f"{kind} `{data.get('path') or '?'}`"
    words = _DATA_WORDS.get(dataset, f"`{dataset}`")
    size = data.get("image_size")
    return f"{words} at {size[0]}x{size[1]}" if size else words


def _run_sentence(records, config):
    """What this run holds, in words taken from its records (not from the recipe's wording)."""
    augmentations, recipes, pairs, teacher_models = tables.study_axes(records, config)
    seeds = sorted({r["seed"] for r in records})
    text = (f"Teachers {', '.join(teacher_models)} trained with {len(augmentations)} augmentation(s) "
            f"({', '.join(augmentations)})")
    if pairs:
        students = ", ".join(f"{t} → {s}" for t, s in pairs)
        text += f"; students distilled from them ({students}) by {len(recipes)} recipe(s) ({', '.join(recipes)})"
    else:
        text += "; no student in this run (a teachers-only study, or its students have not finished)"
    return text + f"; seeds {', '.join(map(str, seeds))}."


def _recipe_description(config):
    """The recipe's own description, quoted only when the run uses the recipe's data set."""
    import tomllib

    description = config.get("description", "")
    source = config.get("recipe", {}).get("source")
    if not description or not source or not os.path.isfile(source):
        return []
    try:
        with open(source, "rb") as f:
            recipe_data = tomllib.load(f).get("data", {})
    except (OSError, tomllib.TOMLDecodeError):
        return []
    if recipe_data.get("dataset", "digits") != config.get("data", {}).get("dataset"):
        return [f"- Recipe `{os.path.basename(source)}`, run on other data than its own "
                f"({recipe_data.get('dataset', 'digits')}).", ""]
    return [f"- Recipe `{os.path.basename(source)}`: {description}", ""]


def _teacher_cache_lines(records):
    """Which student cells read their teacher's logits computed once (`teacher_cache`), by recipe."""
    students = [r for r in records if r.get("role") == "student" and "teacher_cache" in r]
    if not students:
        return []
    used = sorted({r["recipe"] for r in students if r["teacher_cache"]})
    ran = sorted({r["recipe"] for r in students if not r["teacher_cache"]})
    count = sum(1 for r in students if r["teacher_cache"])

    def names(recipes):
        return ", ".join(f"`{name}`" for name in recipes) or "none"

    return [f"- **Teacher outputs computed once**: {count} of {len(students)} student cells read their "
            f"teacher's logits of the training split, computed once (recipes {names(used)}: the teacher sees "
            f"each image as loaded); the teacher ran on every batch in the others (recipes {names(ran)}: "
            "random augmentation before the teacher, a feature loss, or the cache switched off). Equal up to "
            "float round-off (docs/performance.md).", ""]


def _data_format_lines(records):
    """Which layout the cells' models computed in (`data_format`), when any was built channels-first."""
    built = [r for r in records if r.get("data_format")]
    first = sum(1 for r in built if r["data_format"] == "channels_first")
    if not first:
        return []
    return [f"- **Layout**: {first} of {len(built)} cells built their model channels-first (NCHW inside, the "
            "faster layout on the PyTorch backend; `data_format`), the others channels-last. The same numbers up "
            "to float round-off (docs/performance.md).", ""]


def _gain_figure_lines(run_dir, records, pairs, gain_path, best_path):
    """The report's opening figure, the KD gain, with what its markers are; or why there is none."""
    if gain_path:
        seeds = len({r["seed"] for r in records if r["role"] == "student"})
        if seeds == 1:
            markers = "One seed: each marker is that seed's gain; no spread over seeds is shown."
        else:
            markers = "Markers: mean over seeds with the sample std as error bar" + (
                "; hollow points: each seed." if seeds <= gain_plots.MAX_SEED_POINTS else ".")
        best = (" At the best-validation epoch: `plots/kd_gain_best.png`, in the appendix." if best_path else "")
        return [f"![KD gain over the student alone]({os.path.relpath(gain_path, run_dir)})", "",
                "*The finding: **KD gain** = distilled − student alone, in percentage points of test accuracy at "
                "the last epoch, paired by seed, per teacher augmentation and distillation recipe; above the zero "
                f"line distillation helped. {markers} The same numbers as the KD-gain tables below.{best}*", ""]
    if pairs:
        if not tables.select(records, role=tables.ALONE):
            why = "this run trained no student alone (`student.baseline = false`), so there is no gain to draw"
        else:
            why = "no distilled student has a finished student-alone cell of the same seed yet"
        return [f"> No KD-gain figure: {why}.", ""]
    return []


def _report_markdown(run_dir, config, records, manifest, plot_paths, gain_paths=(None, None)):
    augmentations, recipes, pairs, teacher_models = tables.study_axes(records, config)
    seeds = sorted({r["seed"] for r in records})
    backends = sorted({r.get("backend", "?") for r in records})
    data = config.get("data", {})
    no_validation = no_validation_split(config, records)
    cd_split = config.get("measure", {}).get("split", "val")
    if cd_split == "test":
        over_epochs = ("CD over epochs on the **test** split (`measure.split = \"test\"`, as asked; it chooses "
                       "nothing).")
    elif no_validation:
        over_epochs = ("CD over epochs was not measured: there is no validation split, and "
                       "`measure.split = \"test\"` was not asked for.")
    else:
        over_epochs = "CD over epochs on the validation split."
    lines = [
        f"# Study `{config.get('name', os.path.basename(run_dir))}` on {_data_words(data)}",
        "",
        _run_sentence(records, config),
        "",
    ]
    if no_validation:
        lines += [f"> **{NO_SELECTION_NOTE}**", ""]
    lines += _gain_figure_lines(run_dir, records, pairs, *gain_paths)
    lines += [
        *_recipe_description(config),
        f"- keras-mixkd {manifest.get('keras_mixkd_version')}, backend {', '.join(backends)}; "
        f"data `{data.get('dataset', '?')}`; seeds {seeds}; {len(records)} finished cells.",
        *_mixing_line(records),
        f"- Every number is the **mean ± sample std over seeds** (the value alone when one seed finished).",
        f"- **Last epoch**: the final epoch of training ({tables.epoch_note(records)}).",
        ("- **Best-validation epoch**: none — no validation split, so no epoch was selected (\"–\" in those "
         "tables)." if no_validation else
         "- **Best-validation epoch**: the epoch with the highest accuracy on the validation split "
         "(held out of the training data); the test accuracy *at that epoch* is reported. The test split "
         "never takes part in the choice."),
        "- **Student alone**: each student model trained once per seed without a teacher (cross-entropy, the "
        "students' augmentation, optimizer and schedule). **KD gain** = distilled − alone, paired by seed, "
        "mean ± std over seeds.",
        "- Class-discrimination (CD) and ECE are measured on the test split at the last epoch; " + over_epochs,
        *_flag_lines(records, config),
        "",
    ]
    recipes_by_name = {d["name"]: d for d in config.get("distillation", [])}
    if recipes_by_name:
        lines += ["Distillation recipes:", ""]
        for name in recipes:
            d = recipes_by_name.get(name)
            if d:
                mixing = "+".join(d.get("augmentation", [])) or "none"
                temperature = "σ per sample" if d.get("loss") == "standardized" else f"T = {d.get('temperature')}"
                lines.append(f"- `{name}`: loss {d.get('loss')}, {temperature}, CE weight "
                             f"{d.get('student_loss_weight')}, mixing at distillation: {mixing}")
        lines.append("")
    lines += _teacher_cache_lines(records)
    lines += _data_format_lines(records)
    sections = [
        ("test_accuracy_last", "Test accuracy (%), last epoch"),
        ("test_accuracy_best", "Test accuracy (%) at the best-validation epoch"),
        ("best_epoch", "Best-validation epoch (mean over seeds)"),
        ("class_discrimination_last", "Class-discrimination of penultimate features (test, last epoch)"),
        ("ece_last", "Expected calibration error (test, last epoch)"),
        ("teacher_agreement_last", "Top-1 agreement of student and teacher (%) (test, last epoch)"),
        ("mean_entropy_last", "Mean output entropy, nats (test, last epoch) — teacher smoothness"),
    ]
    gains = {"test_accuracy_last": "KD gain over the student alone (percentage points), last epoch",
             "test_accuracy_best": "KD gain over the student alone (percentage points), best-validation epoch"}
    for teacher_model, student_model in pairs or [(t, None) for t in teacher_models]:
        lines += [f"## {teacher_model} → {student_model}" if student_model else f"## Teachers {teacher_model}", ""]
        for metric, title in sections:
            if metric == "teacher_agreement_last" and not student_model:
                continue
            header, rows = tables.pair_table(records, teacher_model, student_model, metric, config,
                                             alone=bool(student_model) and metric != "teacher_agreement_last",
                                             mark_flags=True)
            if metric == "teacher_agreement_last":
                header, rows = header[:1] + header[2:], [r[:1] + r[2:] for r in rows]
            if metric in ("best_epoch", "last_epoch"):
                rows = [[_whole_epochs(cell) for cell in row] for row in rows]
            lines += [f"### {title}", ""]
            if no_validation and metric in ("test_accuracy_best", "best_epoch"):
                lines += [f"*{NO_SELECTION_NOTE}*", ""]
            lines += [tables.markdown_table(header, rows), ""]
            gain_header, gain_rows = tables.gain_table(records, teacher_model, student_model, metric, config,
                                                       mark_flags=True) \
                if metric in gains and student_model else (None, [])
            if gain_header is not None and gain_rows:
                lines += [f"### {gains[metric]}", "", "Distilled − student alone, paired by seed; mean ± std "
                          "over seeds.", "", tables.markdown_table(gain_header, gain_rows), ""]
    lines += _calibration_lines(records)
    lines += compression_lines(run_dir)
    if pairs:
        header, rows = correlations.link_table(records, config)
        lines += ["## The studies' links: student accuracy against its teacher", "",
                  "Over the cells of the study (every teacher augmentation × seed), per student and recipe: "
                  "the student's test accuracy (last epoch) against its teacher's class-discrimination "
                  "(study A's link) and against its teacher's smoothness, the mean entropy and the logit std "
                  "of its outputs (study B's link), and against Wang et al.'s T. stddev of its teacher on the recipe's "
                  "distillation set (docs/measures.md). Pearson's r and Spearman's ρ; – where fewer than 3 cells "
                  "or no spread. Figure: `plots/links.png`.", "",
                  tables.markdown_table(header, rows) if rows else "No student with a finished teacher yet.", ""]
    lines += _flagged_section(records, config, pairs, teacher_models)
    header, rows = tables.long_table(records, config)
    lines += ["## Every setting", "", tables.markdown_table(header, rows), "", "## Appendix: plots", ""]
    for path in [p for p in plot_paths if p != gain_paths[0]]:  # the KD gain opens the report
        name = os.path.relpath(path, run_dir)
        lines += [f"![{os.path.basename(path)}]({name})", ""]
    lines += ["Per-cell records with per-epoch histories: `results.json`; one row per cell: `results.csv`.", ""]
    return "\n".join(lines)


def _calibration_lines(records):
    """The students calibrated by temperature scaling (`[student] calibrate = true`): T and test ECE before and after."""
    groups = {}
    for record in records:
        info = record.get("calibration")
        if record.get("role") == "teacher" or not isinstance(info, dict) or "test" not in info:
            continue
        key = (record.get("teacher_model") or "—", record.get("teacher_augmentation") or "—",
               record.get("student_model", "?"), record.get("recipe", "?"))
        groups.setdefault(key, []).append((info["temperature"], info["test"]["ece_before"], info["test"]["ece_after"]))
    if not groups:
        return []
    rows = [[*key, len(values), *(f"{sum(column) / len(column):.{digits}f}"
                                  for column, digits in zip(zip(*values), (3, 4, 4)))]
            for key, values in sorted(groups.items())]
    header = ["teacher", "teacher augmentation", "student", "recipe", "seeds", "T", "ECE before", "ECE after"]
    return ["## Calibrated students (temperature scaling)", "",
            "Each student's temperature T is fitted on the validation split by minimising its negative "
            "log-likelihood (Guo et al., ICML 2017); ECE on the test split, last epoch, before and after; "
            "means over seeds.", "", tables.markdown_table(header, rows), ""]


def _mixing_line(records):
    """Who mixed the images (KerasCV, Keras core or keras-mixkd's ops), when any cell mixed."""
    used = sorted({r["mixing_implementation"] for r in records if r.get("mixing_implementation")})
    if not used:
        return []
    return ["- Mixed-sample augmentations ran on " + ", ".join(f"`{u}`" for u in used)
            + " (`keras_mixkd`: keras-mixkd's own TensorFlow ops, which serve `mode=\"batch\"`, partial mixup, "
            "and every mixing, with KerasCV's distributions, where KerasCV cannot be imported)."]
