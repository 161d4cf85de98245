"""`RunFolder`: the on-disk state of one study, resumable and never half-written."""

import csv
import io
import json
import os
import shutil

from keras_mixkd.study import atomic
from keras_mixkd.study.spec.diff import GRID_LISTS
from keras_mixkd.study.spec.diff import entry_key
from keras_mixkd.study.spec.diff import spec_differences
from keras_mixkd.version import __version__

# Version of the layout of a runs folder. Bump it when a change makes old
# folders unreadable; folders of another format are refused with a message.
RUN_FORMAT = 1

# Settings that change how a study runs, not what it computes (teacher_cache and data_format:
# up to float round-off, see docs/performance.md): not compared on reruns.
RUN_ONLY_KEYS = ("backup_interval_seconds", "teacher_cache", "data_format")

# Columns of results.csv, in order (histories stay in results.json).
CSV_COLUMNS = (
    "key", "role", "teacher_model", "teacher_augmentation", "student_model", "recipe", "loss",
    "temperature", "student_loss_weight", "distillation_augmentation", "seed", "epochs",
    "test_accuracy_last", "val_accuracy_last", "last_epoch",
    "test_accuracy_best", "val_accuracy_best", "best_epoch",
    "class_discrimination_last", "teacher_class_discrimination", "ece_last",
    "teacher_agreement_last", "teacher_test_accuracy_last", "mean_entropy_last", "logit_std_last",
    "teacher_stddev",
    "parameters", "seconds", "backend", "alone_test_accuracy_last", "kd_gain_last",
    "teacher_cache", "flags",
)


def run_folder_path(runs_dir, name):
    """`runs_dir/name`, once `name` is checked to be a plain folder name (it cannot leave `runs_dir`).

    Refused with a `ValueError`: an empty name, `.` or `..`, an absolute
    path, and any name holding a path separator (`../../escaped`, `a/b`).

    Example:

    >>> run_folder_path("runs", "digits-smoke")
    'runs/digits-smoke'
    """
    text = os.fspath(name) if isinstance(name, os.PathLike) else name
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if (not isinstance(text, str) or not text.strip() or text in (".", "..") or os.path.isabs(text)
            or any(sep in text for sep in separators) or "\0" in text):
        raise ValueError(
            f"Run name {name!r} is not a plain folder name: a run lives in a folder of its own directly "
            f"under the runs folder ({os.fspath(runs_dir)}). Give a name without '/' or '..' such as "
            "'digits-smoke' (--name), and choose where runs go with --runs-dir."
        )
    return os.path.join(os.fspath(runs_dir), text)


class RunFolder:
    """The folder of one study: its config, one result file per cell, models, tables.

    Layout of `runs/<name>/`:

    - `study.json`: the package version, the folder format, who mixes by default
      here (`mixing_implementation`: `"keras_cv"`, or `"keras_mixkd"` when KerasCV
      cannot be imported) and the config.
    - `cells/<key>.json`: one finished cell's record, written once, atomically;
      a cell counts as finished exactly when this file exists.
    - `models/<key>.keras`: each trained teacher (reused by every student
      distilled from it) and each student; `models/<key>.logits.npz`: a
      teacher's logits of the training split, read by its students whose
      teacher sees each image as loaded (the `teacher_cache` key).
    - `work/<key>/`: the backup and per-epoch history of a cell in progress,
      and `owner.json`, the lock of the process training it
      (`keras_mixkd.study.cell_lock.CellLock`); removed when the cell is finished.
    - `features/<key>.npz`: penultimate test features of the first seed's
      teachers and students, for the 2-D projection plots.
    - `results.json`, `results.csv`, `report.md`, `plots/*.png`: derived from
      `cells/` and rewritten (atomically) after every cell.

    Rule for reruns: the same config continues the study; a config that only
    adds seeds, distillation recipes, teacher augmentations or pairs extends
    it (its finished cells are kept: cells are independent, and study.json
    then holds the extended config); any other difference (a changed setting
    of an existing cell, a dropped seed or recipe) or a folder written by
    another format (or another minor version of keras-mixkd) is refused with
    a message saying what differs, one `dotted.key: old -> new` per value.
    Pick a new `--name` to start another study.

    Arguments:
        path: the folder.

    Example:

    >>> folder = RunFolder("runs/digits")
    >>> folder.open(config)
    >>> folder.is_done("teacher__digits_cnn__mixup__s0")
    False
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    # -- files --
    @property
    def manifest_path(self):
        return os.path.join(self.path, "study.json")

    def cell_path(self, key):
        return os.path.join(self.path, "cells", f"{key}.json")

    def model_path(self, key):
        return os.path.join(self.path, "models", f"{key}.keras")

    def work_dir(self, key):
        return os.path.join(self.path, "work", key)

    def features_path(self, key):
        return os.path.join(self.path, "features", f"{key}.npz")

    # -- manifest --
    def check(self, config):
        """Refuse `config` where `open` would, writing nothing; returns the study.json it would hold.

        Returns the manifest as it is (a new folder: None), or extended when
        `config` adds seeds, recipes, teacher augmentations or pairs.
        """
        if os.path.exists(self.manifest_path):
            manifest = self.read_manifest()
            check_version(manifest, self.path)
            differences = config_differences(manifest["config"], config)
            if differences:
                shown = "; ".join(differences[:8]) + (" ..." if len(differences) > 8 else "")
                raise ValueError(
                    f"The runs folder {self.path} holds a study with another config ({shown}). "
                    "Rerun with the same recipe and flags to continue it (adding seeds or recipes "
                    "extends it), or choose another --name (or --runs-dir) to start a new study."
                )
            new = _comparable(config)
            if new != _comparable(manifest["config"]):
                manifest = dict(manifest, config=new)  # extended by new cells
            return manifest
        if os.path.isdir(self.path) and os.listdir(self.path):
            raise ValueError(
                f"{self.path} exists, is not empty and has no study.json: it is not a runs "
                "folder of keras-mixkd. Choose another --name or --runs-dir."
            )
        return None

    def open(self, config):
        """Create the folder for `config`, or check that it was made for it (or extend it)."""
        manifest = self.check(config)
        if manifest is not None:
            if os.path.exists(self.manifest_path) and manifest != self.read_manifest():
                atomic.write_json(self.manifest_path, manifest)
            _remove_partial_files(self.path)
            return manifest
        from keras_mixkd.augment import default_mixing_implementation

        manifest = {"format": RUN_FORMAT, "keras_mixkd_version": __version__,
                    "mixing_implementation": default_mixing_implementation(), "config": _comparable(config)}
        atomic.write_json(self.manifest_path, manifest)
        return manifest

    def read_manifest(self):
        """The parsed study.json, with a clear error when it is missing."""
        if not os.path.exists(self.manifest_path):
            raise ValueError(
                f"{self.path} is not a runs folder of keras-mixkd: it has no study.json."
            )
        return atomic.read_json(self.manifest_path)

    # -- cells --
    def is_done(self, key):
        return os.path.exists(self.cell_path(key))

    def write_cell(self, key, record):
        """Store a finished cell's record (once: the key names the file)."""
        atomic.write_json(self.cell_path(key), dict(record, key=key))
        work = self.work_dir(key)
        if os.path.isdir(work):
            shutil.rmtree(work, ignore_errors=True)

    def read_cells(self):
        """Every finished cell's record, sorted by key."""
        folder = os.path.join(self.path, "cells")
        if not os.path.isdir(folder):
            return []
        return [atomic.read_json(os.path.join(folder, name))
                for name in sorted(os.listdir(folder))
                if name.endswith(".json") and not name.startswith(".")]

    # -- tables --
    def write_results(self, records=None):
        """Rewrite results.json and results.csv from the finished cells."""
        records = self.read_cells() if records is None else records
        records = join_teachers(records)
        manifest = self.read_manifest()
        atomic.write_json(os.path.join(self.path, "results.json"), {
            "format": RUN_FORMAT,
            "keras_mixkd_version": manifest["keras_mixkd_version"],
            "config": manifest["config"],
            "cells": records,
        })
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _csv_value(record.get(k, "")) for k in CSV_COLUMNS})
        atomic.write_text(os.path.join(self.path, "results.csv"), buffer.getvalue())
        return records


def join_teachers(records):
    """Copy each teacher's test accuracy and CD into the rows of its students.

    Also the test accuracy of the student-alone baseline of the same student
    model and seed (`alone_test_accuracy_last`) and the KD gain over it
    (`kd_gain_last`, distilled minus alone, last epoch).
    """
    teachers = {}
    alone = {}
    for record in records:
        if record["role"] == "teacher":
            teachers[(record["teacher_model"], record["teacher_augmentation"], record["seed"])] = record
        elif record["role"] == "alone":
            alone[(record["student_model"], record["seed"])] = record
    out = []
    for record in records:
        record = dict(record)
        if record["role"] == "student":
            teacher = teachers.get((record["teacher_model"], record["teacher_augmentation"], record["seed"]))
            if teacher is not None:
                record["teacher_class_discrimination"] = teacher["class_discrimination_last"]
                record["teacher_test_accuracy_last"] = teacher["test_accuracy_last"]
            baseline = alone.get((record["student_model"], record["seed"]))
            if baseline is not None:
                record["alone_test_accuracy_last"] = baseline["test_accuracy_last"]
                record["kd_gain_last"] = record["test_accuracy_last"] - baseline["test_accuracy_last"]
        out.append(record)
    return out


def check_version(manifest, where):
    """Refuse a runs folder of another format or minor version."""
    if manifest.get("format") != RUN_FORMAT:
        raise ValueError(
            f"{where} was written in runs-folder format {manifest.get('format')!r} "
            f"(keras-mixkd {manifest.get('keras_mixkd_version', '?')}); this keras-mixkd "
            f"({__version__}) reads format {RUN_FORMAT}. Use that version to continue it, or start a new study."
        )
    theirs = str(manifest.get("keras_mixkd_version", "?")).split(".")[:2]
    ours = __version__.split(".")[:2]
    if theirs != ours:
        raise ValueError(
            f"{where} was made by keras-mixkd {manifest.get('keras_mixkd_version')}, and this is "
            f"{__version__}: a study is only continued by the same minor version, so that its cells "
            "stay comparable. Start a new study (another --name), or use that version."
        )


def config_differences(old, new):
    """What keeps `new` from continuing a study made with `old`, one "dotted.key: old -> new" each.

    New seeds, distillation recipes, teacher augmentations and pairs are not
    differences (they extend the study); a dropped one is, and so is a changed
    setting of one kept (named by its index in `new`, e.g.
    `distillation[0].temperature: 4.0 -> 8.0`).

    Example:

    >>> config_differences(config, dict(config, seeds=[0, 1, 2, 3]))
    []
    """
    old, new = _comparable(old), _comparable(new)
    out = []
    for dotted in GRID_LISTS:
        before, after = _pop(old, dotted), _pop(new, dotted)
        if not isinstance(before, list) or not isinstance(after, list):
            spec_differences_into(before, after, dotted, out)
            continue
        index = {repr(entry_key(dotted, entry)): i for i, entry in enumerate(after)}
        dropped = [entry_key(dotted, e) for e in before if repr(entry_key(dotted, e)) not in index]
        if dropped:
            out.append(f"{dotted}: {', '.join(map(repr, dropped))} dropped (a study is extended by new "
                       "entries, not shrunk: --only runs a part of it)")
        for entry in before:
            i = index.get(repr(entry_key(dotted, entry)))
            if i is not None:
                spec_differences_into(entry, after[i], f"{dotted}[{i}]", out)
    out += spec_differences(old, new)
    return out


def spec_differences_into(old, new, prefix, out):
    """Append `spec_differences(old, new)` with each line under `prefix`."""
    if isinstance(old, dict) and isinstance(new, dict):
        out += [f"{prefix}.{line}" for line in spec_differences(old, new)]
    elif old != new:
        out.append(f"{prefix}: {old!r} -> {new!r}")


def _pop(config, dotted):
    *tables, key = dotted.split(".")
    for table in tables:
        config = config.get(table, {})
    return config.pop(key, None)


def _comparable(config):
    # Where the recipe was read from does not change the study; --smoke does.
    config = json.loads(json.dumps(config))
    recipe = config.pop("recipe", None) or {}
    config["smoke"] = bool(recipe.get("smoke", config.get("smoke", False)))
    for key in RUN_ONLY_KEYS:
        config.pop(key, None)
    student = config.get("student")
    if isinstance(student, dict) and student.get("calibrate") is False:
        # Off (the default) is what a study.json written before the key existed means: the same study.
        student.pop("calibrate")
    data = config.get("data")
    if isinstance(data, dict) and data.get("path"):
        # A recipe file's relative path is now read next to it (before: from the working folder).
        data["path"] = os.path.realpath(data["path"])
    return config


def _remove_partial_files(folder):
    # Temporary files of `atomic` writes that a killed process never moved into place.
    for root, _, names in os.walk(folder):
        for name in names:
            if name.startswith(".") and ".partial" in name:
                try:
                    os.remove(os.path.join(root, name))
                except OSError:
                    pass


def _csv_value(value):
    if isinstance(value, list):  # the flags: "near_chance+loss_rose", "" for none
        return "+".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
