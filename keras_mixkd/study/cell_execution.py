"""`execute_cells`: the unit every executor runs — one cell, or a group of student cells as one fit."""

import contextlib
import os

import keras

from keras_mixkd.distribute import training_scope
from keras_mixkd.study import atomic
from keras_mixkd.study import fixed_cost
from keras_mixkd.study.cell_folders import CellFolders
from keras_mixkd.study.cell_lock import CellLock
from keras_mixkd.study.executors.cell_result import CellResult
from keras_mixkd.study.groups import group_identity
from keras_mixkd.study.records import calibrated_record
from keras_mixkd.study.run_options import RunOptions
from keras_mixkd.study.teacher_cache import teacher_cache_path
from keras_mixkd.study.training import distill_students
from keras_mixkd.study.training import train_student_alone
from keras_mixkd.study.training import train_teacher
from keras_mixkd.study.training_settings import TrainingSettings


def execute_cells(cells, config, splits, *, teacher_path, folders, options=None):
    """Train one cell, or a group of student cells as one fit; returns a `CellResult` per cell.

    This is the unit every executor runs, in this process or in a Ray worker,
    and it writes only in `folders`, as their one owner: it holds each
    folder's `CellLock` while it trains (a live owner is waited for, then
    refused with `CellBusyError`; a dead one's lock is taken over). A group (several student cells with the
    same `keras_mixkd.study.groups.group_identity`) trains as one `Distiller`
    of several students, the teacher running once per batch; one cell is a
    group of one.

    Arguments:
        cells: a list of `keras_mixkd.study.Cell`: one cell of any kind, or
            student cells of one group (`plan_groups`).
        config: the study config.
        splits: the study's `DatasetSplits` (`keras_mixkd.study.prepare_data`).
        teacher_path: function of a teacher cell's key giving its `.keras` file.
        folders: a `CellFolders`: the backup folder (a cell's `work/<key>/`,
            a group's `work/group__<hash>/`), and per cell its history and
            `CSVLogger` (and TensorBoard) folders.
        options: a `RunOptions` (verbosity, devices, precision, TensorBoard,
            fixed-cost cuts); None: the defaults.

    Example:

    >>> [result] = execute_cells([cell], config, splits, teacher_path=folder.model_path,
    ...                          folders=CellFolders.of_one(folder.work_dir(cell.key)))
    """
    options = options if options is not None else RunOptions()
    cells = list(cells)
    if len(cells) != len(folders.work_dirs):
        raise ValueError(f"execute_cells needs one work dir per cell: {len(cells)} cells, "
                         f"{len(folders.work_dirs)} work dirs.")
    if len(cells) > 1:
        identities = {group_identity(cell, config) for cell in cells}
        if len(identities) != 1 or None in identities:
            raise ValueError(f"Cells {[cell.key for cell in cells]} do not share a teacher and an input stream.")
    keras.backend.clear_session()
    # One owner per work folder: a process still training one of these cells (a Ray worker of a killed
    # driver, a second study on this runs folder) is waited for; a dead one's lock is taken over.
    with contextlib.ExitStack() as locks:
        for work_dir in dict.fromkeys((folders.backup_dir, *folders.work_dirs)):
            locks.enter_context(CellLock(work_dir))
        if len(cells) > 1:
            # What `groups.remove_stale_group_dirs` reads: which cells this backup belongs to.
            atomic.write_json(os.path.join(folders.backup_dir, "group.json"),
                              {"cells": [cell.key for cell in cells]})
        # Entered after each clear_session, which forgets the strategy and the dtype policy.
        with training_scope(devices=options.devices, precision=options.precision), \
                fixed_cost.cuts(options.fixed_cost_cuts):
            outcomes = _train(cells, config, splits, teacher_path, folders, options)
    results = []
    calibrate = cells[0].kind != "teacher" and config["student"].get("calibrate", False)
    for cell, (model, record, features) in zip(cells, outcomes):
        if calibrate:  # [student] calibrate = true: the cell keeps the calibrated student
            model, record = calibrated_record(model, record, splits, config["measure"]["ece_bins"])
        record.update(teacher_model=cell.teacher_model, teacher_augmentation=cell.teacher_augmentation,
                      backend=keras.backend.backend())
        if len(cells) > 1:
            record["group"] = [other.key for other in cells]
        results.append(CellResult(record=record, features=features, model=model))
    return results


def execute_cell(cell, config, splits, *, teacher_path, work_dir, log_dir=None, options=None, **deprecated):
    """Run one cell of a study (any kind) and return its `CellResult`; writes only in `work_dir`.

    `execute_cells([cell], ...)` with the cell's backup and history in
    `work_dir`.

    Arguments:
        cell, config, splits, teacher_path, options: as for `execute_cells`.
        work_dir: the cell's backup and history folder (a rerun continues there).
        log_dir: the cell's `CSVLogger` (and TensorBoard) folder; None: none.
        **deprecated: the former keywords `verbose`, `devices`,
            `precision`, `tensorboard` (use `options`), with a `DeprecationWarning`.
    """
    options = RunOptions.from_keywords(options, deprecated, "execute_cell")
    if deprecated:
        raise TypeError(f"execute_cell() got unexpected keyword argument(s): {', '.join(sorted(deprecated))}.")
    return execute_cells([cell], config, splits, teacher_path=teacher_path,
                         folders=CellFolders.of_one(work_dir, log_dir), options=options)[0]


def _train(cells, config, splits, teacher_path, folders, options):
    """`[(model, record, features)]` of the cells: a teacher, a baseline, or one or several students."""
    cell = cells[0]
    place = {"work_dir": folders.work_dirs[0], "log_dir": folders.log_dirs[0], "options": options}
    if cell.kind == "alone":  # the student-alone baseline: no teacher, nothing to wait for
        return [train_student_alone(splits, cell.student_model, seed=cell.seed,
                                    settings=TrainingSettings.from_config(config, "student"), **place)]
    if cell.kind == "teacher":
        return [train_teacher(splits, cell.teacher_model, cell.teacher_augmentation, seed=cell.seed,
                              settings=TrainingSettings.from_config(config, "teacher"), **place)]
    teacher_file = teacher_path(cell.teacher_key)
    teacher = load_teacher(teacher_file, splits.num_classes, splits.class_names)
    # The teacher's logits of the training split, beside its file, shared by its students.
    cache = teacher_cache_path(teacher_file) if config.get("teacher_cache", True) else False
    recipes = {recipe["name"]: recipe for recipe in config["distillation"]}
    return distill_students(splits, teacher, cell.student_model, [recipes[other.recipe] for other in cells],
                            seed=cell.seed, settings=TrainingSettings.from_config(config, "student"),
                            folders=folders, options=options, teacher_cache=cache)


def load_teacher(path, num_classes, class_names=None):
    """Load a saved teacher and check it predicts `num_classes` classes, and, given `class_names`, that its
    model card names the same classes in the same order (see `keras_mixkd.saving.load_model`)."""
    from keras_mixkd.saving import load_model

    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Teacher file {path} is missing although its cell is recorded as finished. "
            "Delete the matching file in cells/ to train that teacher again."
        )
    return load_model(path, num_classes=num_classes, what="teacher", class_names=class_names)
