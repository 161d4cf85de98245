"""Student cells that share a teacher and an input stream, trained together by one `fit`.

Recipes that distil the same student model from the same teacher cell with
the same seed, student augmentation, recipe augmentation (and its options),
`teacher_sees` and `teacher_outputs` see exactly the same batches: they differ
only in their loss (e.g. study B's KD at T = 4, KD at T = 1 and standardised
KD). `run_study` (in-process executor, `group_students=True`, the default)
runs each such group as one fit of a `keras_mixkd.Distiller` of several
students (`keras_mixkd.study.execute_cells`): each batch runs the teacher once
and updates every student of the group.

Each student is built as its own cell builds it (`keras.utils.set_random_seed
(seed)` then the student), the data pipeline is the cell's (same seed, same
augmentation), and each student has its own loss, recorder, history, CSV log,
record and saved model: every cell's result equals that of the cell run alone,
up to float round-off. Resumable: the group's backup (every student's weights
and the shared optimizer state) lives in `work/group__<hash of its cells>/`,
each cell's history in its own `work/<key>/`; a killed group continues from
its backup. Finished cells are never rerun: a group is made of pending cells
only, so it shrinks when some of its cells are finished.

Recipes with a feature loss group among themselves only (their projector is
initialised from the seeded random state before the augmentation draws its
seeds from it, so, alone, they see other batches than logit-only recipes).
Not grouped (trained alone as before): teachers and baselines, a cell that
has a backup of its own (it continues alone), and every cell under
`mixed_float16` precision (its loss-scale optimizer couples the students),
data-parallel devices, TensorBoard logs, or the Ray executor.

Example:

>>> from keras_mixkd.study import enumerate_cells, load_recipe
>>> config = load_recipe("digits")
>>> pending = list(enumerate(enumerate_cells(config), 1))
>>> [len(item) for item in plan_groups(pending, config)][:3]
[1, 1, 3]
"""

import hashlib
import json
import os
import shutil

GROUP_PREFIX = "group__"


def grouping_problem(*, precision="float32", devices=None, tensorboard=False, executor="in_process"):
    """Why a study's students cannot be grouped with these run options, or None."""
    if executor != "in_process":
        return f"the {executor} executor runs each cell as its own task"
    if precision == "mixed_float16":
        return "mixed_float16's loss-scale optimizer would skip every student's step when one overflows"
    if devices not in (None, 1):
        return "data-parallel training is run per cell"
    if tensorboard:
        return "TensorBoard logs are written per cell"
    return None


def group_identity(cell, config):
    """What a student cell's input stream depends on, or None when the cell is never grouped.

    Two cells with the same identity distil the same student model from the
    same teacher with the same seed and see the same batches.

    Example:

    >>> config = load_recipe("digits")
    >>> kd_t1, standardized = (Cell("student", "digits_cnn", "mixup", 0, "digits_cnn_small", name)
    ...                        for name in ("kd_T1", "standardized"))
    >>> group_identity(kd_t1, config) == group_identity(standardized, config)
    True
    """
    if cell.kind != "student":
        return None
    recipe = next(r for r in config["distillation"] if r["name"] == cell.recipe)
    # A feature loss's projector is initialised, when its Distiller is built, from the seeded
    # random state the augmentation's seeds are then drawn from: such recipes leave another
    # state than logit-only ones, and so (alone) see other batches; they group among themselves.
    feature = recipe.get("feature_layer", "features") if recipe.get("feature_loss_weight", 0.0) > 0 else None
    stream = {
        "feature_layer": feature,
        "student_augmentation": list(config["student"]["augmentation"]),
        "student_augmentation_options": config["student"]["augmentation_options"],
        "augmentation": list(recipe["augmentation"]),
        "augmentation_options": recipe["augmentation_options"],
        "teacher_sees": recipe["teacher_sees"],
        "teacher_outputs": recipe.get("teacher_outputs", "logits"),
    }
    return (cell.teacher_key, cell.student_model, cell.seed, json.dumps(stream, sort_keys=True, default=str))


def plan_groups(pending, config, *, folder=None):
    """The pending cells as work items: lists of `(index, cell)`, one or several cells each.

    A list of several cells is a group (same `group_identity`), placed where
    its first cell is in the grid (after its teacher, which precedes all its
    students). A cell that has a backup of its own in `folder` (an interrupted
    run of it alone) is left alone, so it continues from that backup.

    Arguments:
        pending: `[(index, cell)]` in grid order (finished cells left out).
        config: the study config.
        folder: the `RunFolder`, or None (no backups are looked for).
    """
    items, by_identity = [], {}
    for index, cell in pending:
        identity = group_identity(cell, config)
        if identity is not None and folder is not None and _has_own_backup(folder, cell.key):
            identity = None
        if identity is None:
            items.append([(index, cell)])
        elif identity in by_identity:
            by_identity[identity].append((index, cell))
        else:
            by_identity[identity] = [(index, cell)]
            items.append(by_identity[identity])
    return items


def _has_own_backup(folder, key):
    return os.path.exists(os.path.join(folder.work_dir(key), "backup", "training_metadata.json"))


def group_work_dir(folder, cells):
    """`work/group__<hash>/` of the run folder: the backup of a group, named by its cells' keys."""
    digest = hashlib.sha1("\n".join(sorted(cell.key for cell in cells)).encode()).hexdigest()[:16]
    return os.path.join(folder.path, "work", GROUP_PREFIX + digest)


def remove_stale_group_dirs(folder):
    """Delete the backups of groups that cannot continue: one of their cells is finished.

    Such a group is planned again, smaller (its pending cells only), under
    another name; its students start again from their first epoch.
    """
    work = os.path.join(folder.path, "work")
    if not os.path.isdir(work):
        return
    for name in os.listdir(work):
        path = os.path.join(work, name)
        if not name.startswith(GROUP_PREFIX) or not os.path.isdir(path):
            continue
        members = os.path.join(path, "group.json")
        try:
            with open(members, encoding="utf-8") as f:
                keys = json.load(f)["cells"]
        except (OSError, ValueError, KeyError):
            keys = None  # written before its backup: nothing to continue
        if keys is None or any(folder.is_done(key) for key in keys):
            shutil.rmtree(path, ignore_errors=True)
