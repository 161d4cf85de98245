"""Student cells sharing a teacher and an input stream, run as one group: same results as alone."""

import json
import os
import shutil

import numpy as np
import pytest

from keras_mixkd.study import enumerate_cells
from keras_mixkd.study import load_recipe
from keras_mixkd.study.groups import group_identity
from keras_mixkd.study.groups import grouping_problem
from keras_mixkd.study.groups import plan_groups
from tests.helpers import TINY_SETTINGS

# The module's tests share one run of the tiny study (`alone_run`): one pytest-xdist worker runs it once.
pytestmark = pytest.mark.xdist_group("study_groups")

# Library MixUp draws its seed, when built, from the seeded state the student's construction
# leaves: a group must reproduce it for every student.
MIX = {"augmentation": "mixup"}
PMU = {"augmentation": "partial_mixup", "augmentation_options": {"partial_mixup": {"fraction": 0.5}}}
# Three recipes of one input stream, differing only in their loss; two with a feature loss
# (a projector each), which group among themselves.
GROUP = [
    {"name": "kd_T4", "temperature": 4.0, **MIX},
    {"name": "kd_T1", "temperature": 1.0, **MIX},
    {"name": "std", "loss": "standardized", **MIX},
]
FEATURES = [
    {"name": "fit_a", "temperature": 4.0, "feature_loss_weight": 1.0, **MIX},
    {"name": "fit_b", "temperature": 1.0, "feature_loss_weight": 2.0, **MIX},
]
# On top of the suite's tiny settings (tests/helpers.py): one teacher epoch, no student alone.
GRID = {
    "teacher.augmentations": ["none"],
    "distillation": GROUP + FEATURES,
    "teacher.epochs": 1,
    "student.baseline": False,
}
TINY = {**TINY_SETTINGS, **GRID}
KEYS = [f"student__digits_cnn_small__{r['name']}__from__digits_cnn__none__s0" for r in GROUP]
FEATURE_KEYS = [f"student__digits_cnn_small__{r['name']}__from__digits_cnn__none__s0" for r in FEATURES]
TEACHER = "teacher__digits_cnn__none__s0"


def tiny_config(**extra):
    return load_recipe("digits", smoke=True, overrides={**TINY, **extra})


def cell_record(run_dir, key):
    with open(os.path.join(run_dir, "cells", f"{key}.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def alone_run(tmp_path_factory):
    """The tiny study with every cell alone (`group_students=False`), run once for the module."""
    from keras_mixkd.study import run_study

    runs = tmp_path_factory.mktemp("runs")
    lines = []
    run_study(tiny_config(), runs_dir=str(runs), name="alone", verbose=0, report=False, print_fn=lines.append,
              group_students=False)
    assert not any("sharing a teacher pass" in line for line in lines)
    return runs / "alone"


def copy_without(alone_run, tmp_path, keys):
    """A copy of the alone run whose cells `keys` are to be run again (their results removed)."""
    run_dir = tmp_path / "runs" / "copy"
    shutil.copytree(alone_run, run_dir)
    for key in keys:
        os.remove(run_dir / "cells" / f"{key}.json")
        os.remove(run_dir / "models" / f"{key}.keras")
    return run_dir


def run_copy(run_dir, **kwargs):
    from keras_mixkd.study import run_study

    lines = []
    run_study(tiny_config(), runs_dir=str(run_dir.parent), name=run_dir.name, verbose=0, report=False,
              print_fn=lines.append, **kwargs)
    return lines


def assert_same_cell(grouped_dir, alone_dir, key):
    """The grouped cell's record and model equal the alone cell's, up to float round-off."""
    import keras

    grouped, alone = cell_record(grouped_dir, key), cell_record(alone_dir, key)
    assert set(grouped) - set(alone) == {"group"}
    for field, value in alone.items():
        if field in ("seconds", "history"):
            continue
        if isinstance(value, float):
            assert grouped[field] == pytest.approx(value, rel=1e-4, abs=1e-5), (key, field)
        else:
            assert grouped[field] == value, (key, field)
    assert len(grouped["history"]) == len(alone["history"])
    for row, expected in zip(grouped["history"], alone["history"]):
        assert set(row) == set(expected), key
        assert row == pytest.approx(expected, rel=1e-4, abs=1e-5), key
    weights = [keras.saving.load_model(os.path.join(run, "models", f"{key}.keras")).get_weights()
               for run in (grouped_dir, alone_dir)]
    for got, want in zip(*weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- planning (no training)


def test_plan_groups_joins_the_recipes_of_one_stream_only():
    config = load_recipe("digits", smoke=True, overrides={
        **TINY, "seeds": [0, 1], "student.baseline": True,
        "distillation": [*GROUP, {"name": "plain", "temperature": 4.0}, {"name": "pmu", **PMU}, *FEATURES,
                         {"name": "fit_layer", "feature_loss_weight": 1.0, "feature_layer": "logits", **MIX},
                         {"name": "fit_plain", "feature_loss_weight": 1.0}]})
    pending = list(enumerate(enumerate_cells(config), 1))
    items = plan_groups(pending, config)
    groups = [[cell.recipe for _, cell in item] for item in items if len(item) > 1]
    # Per seed, the mixup recipes with a logit loss, and those with a feature loss on the same
    # layer; each recipe of another stream ("plain", "pmu", "fit_plain") or layer alone.
    assert groups == [["kd_T4", "kd_T1", "std"], ["fit_a", "fit_b"]] * 2
    assert sum(len(item) for item in items) == len(pending)
    for item in items:
        teacher_index = next(i for i, cell in pending if cell.key == item[0][1].teacher_key) \
            if item[0][1].kind == "student" else 0
        assert teacher_index < item[0][0]  # a group comes after its teacher
    kinds = {cell.kind: group_identity(cell, config) for _, cell in pending}
    assert kinds["teacher"] is None and kinds["alone"] is None


def test_plan_groups_leaves_alone_a_cell_with_a_backup_of_its_own(tmp_path):
    from keras_mixkd.study.run_folder import RunFolder

    config = tiny_config()
    folder = RunFolder(str(tmp_path / "run"))
    backup = os.path.join(folder.work_dir(KEYS[1]), "backup")
    os.makedirs(backup)
    with open(os.path.join(backup, "training_metadata.json"), "w") as f:
        json.dump({"epoch": 1, "batch": 0, "weights": "epoch-1.weights.h5"}, f)
    items = plan_groups(list(enumerate(enumerate_cells(config), 1)), config, folder=folder)
    assert [[cell.key for _, cell in item] for item in items] == [
        [TEACHER], [KEYS[0], KEYS[2]], [KEYS[1]], FEATURE_KEYS]


def test_grouping_problem_names_the_run_options_that_forbid_it():
    assert grouping_problem() is None
    assert grouping_problem(precision="mixed_bfloat16") is None
    assert "loss-scale" in grouping_problem(precision="mixed_float16")
    assert "data-parallel" in grouping_problem(devices=2)
    assert "TensorBoard" in grouping_problem(tensorboard=True)
    assert "ray" in grouping_problem(executor="ray")


def test_distill_students_refuses_recipes_of_other_streams_and_bad_folders(tmp_path):
    from keras_mixkd.study import training
    from keras_mixkd.study import distill_students

    config = tiny_config()
    splits = training.prepare_data(config["data"])
    teacher = training.build_model("digits_cnn_small", splits)
    recipes = config["distillation"]
    kwargs = dict(seed=0, epochs=1, optimizer=config["student"]["optimizer"], work_dir=str(tmp_path))
    with pytest.raises(ValueError, match="at least one recipe"):
        distill_students(splits, teacher, "digits_cnn_small", [], work_dirs=[], **kwargs)
    with pytest.raises(ValueError, match="5 recipes, 2 work dirs"):
        distill_students(splits, teacher, "digits_cnn_small", recipes, work_dirs=["a", "b"], **kwargs)
    other = dict(recipes[1], augmentation=["none"], augmentation_options={})
    with pytest.raises(ValueError, match="share their input stream"):
        distill_students(splits, teacher, "digits_cnn_small", [recipes[0], other], work_dirs=["a", "b"], **kwargs)
    # A feature loss's projector draws from the seeded state: alone, that cell would see other batches.
    with pytest.raises(ValueError, match="leave different random states.*--no-group"):
        distill_students(splits, teacher, "digits_cnn_small", [recipes[0], recipes[3]], work_dirs=["a", "b"],
                         **kwargs)


# ---------------------------------------------------------------- grouped runs


def test_a_group_gives_each_cell_its_result_alone(alone_run, tmp_path):
    run_dir = copy_without(alone_run, tmp_path, KEYS + FEATURE_KEYS)
    lines = run_copy(run_dir)
    assert "5 student cells in 2 groups sharing a teacher pass" in "\n".join(lines)
    assert sum(line.startswith("cell ") for line in lines) == 5
    for key in KEYS + FEATURE_KEYS:
        assert cell_record(run_dir, key)["group"] == (KEYS if key in KEYS else FEATURE_KEYS)
        assert_same_cell(run_dir, alone_run, key)
        csv_rows = (run_dir / "logs" / key / "history.csv").read_text().strip().splitlines()
        alone_rows = (alone_run / "logs" / key / "history.csv").read_text().strip().splitlines()
        assert len(csv_rows) == 1 + 2 and csv_rows[0] == alone_rows[0]  # the columns of the cell alone
        assert "val_accuracy" in csv_rows[0] and "s0_" not in csv_rows[0]
    assert not os.listdir(run_dir / "work")  # the group's backup and the cells' histories are gone


def test_a_group_runs_the_teacher_once_per_batch(alone_run, tmp_path, monkeypatch):
    from keras_mixkd.distill import Distiller

    calls = []
    original_forward = Distiller.run_teacher

    def counting_forward(self, inputs, *args, **kwargs):
        calls.append(1)
        return original_forward(self, inputs, *args, **kwargs)

    original_compile = Distiller.compile  # eager steps: each batch's teacher pass is counted
    monkeypatch.setattr(Distiller, "compile", lambda self, *a, _c=original_compile, **k: _c(self, *a, **{
        **k, "run_eagerly": True}))
    monkeypatch.setattr(Distiller, "run_teacher", counting_forward)
    from keras_mixkd.study import training

    config = tiny_config()
    splits = training.prepare_data(config["data"])
    steps = int(np.ceil(len(splits.y_train) / config["data"]["batch_size"]))
    assert steps >= 2
    # The three students of one group (run eagerly: seconds each; the grouping of all five cells
    # into two groups is checked above).
    grouped = copy_without(alone_run, tmp_path / "g", KEYS)
    run_copy(grouped)
    assert len(calls) == 2 * steps  # one group, two epochs, one teacher pass per batch
    calls.clear()
    alone = copy_without(alone_run, tmp_path / "a", KEYS)
    run_copy(alone, group_students=False)
    assert len(calls) == 3 * 2 * steps  # three cells alone: a teacher pass each


def test_a_killed_group_continues_from_its_backup(alone_run, tmp_path, monkeypatch):
    import keras

    from keras_mixkd.distill import Distiller

    run_dir = copy_without(alone_run, tmp_path, KEYS)
    original_fit = Distiller.fit
    starts = []

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # after the group's backup of epoch 1 (the callbacks before it)

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            starts.append(epoch)

    def fit(extra):
        def patched(self, *args, **kwargs):
            kwargs["callbacks"] = list(kwargs["callbacks"]) + [extra]
            return original_fit(self, *args, **kwargs)
        return patched

    monkeypatch.setattr(Distiller, "fit", fit(StopAfterFirstEpoch()))
    with pytest.raises(KeyboardInterrupt):
        run_copy(run_dir)
    assert not any(os.path.exists(run_dir / "cells" / f"{key}.json") for key in KEYS)
    (group_dir,) = [name for name in os.listdir(run_dir / "work") if name.startswith("group__")]
    metadata = json.loads((run_dir / "work" / group_dir / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 1
    first_epochs = {key: json.loads((run_dir / "work" / key / "history.json").read_text()) for key in KEYS}
    assert all([row["epoch"] for row in rows] == [1] for rows in first_epochs.values())

    monkeypatch.setattr(Distiller, "fit", fit(Watch()))
    lines = run_copy(run_dir)
    assert starts == [1]  # continued with the second epoch
    assert sum(line.startswith("cell ") for line in lines) == 3  # each cell written once
    for key in KEYS:
        record = cell_record(run_dir, key)
        assert [row["epoch"] for row in record["history"]] == [1, 2]
        assert record["history"][:1] == first_epochs[key]
        # The first epoch, before the kill, is the alone cell's.
        assert record["history"][0] == pytest.approx(cell_record(alone_run, key)["history"][0], rel=1e-4, abs=1e-5)
    assert not os.listdir(run_dir / "work")


def test_a_group_with_a_finished_cell_runs_only_the_rest(alone_run, tmp_path):
    run_dir = copy_without(alone_run, tmp_path, KEYS[1:])
    # A stale backup of the three-cell group (killed while its results were written) cannot continue.
    stale = run_dir / "work" / "group__0123456789abcdef"
    (stale / "backup").mkdir(parents=True)
    (stale / "group.json").write_text(json.dumps({"cells": KEYS}))
    # ... nor the histories and CSV rows of its cells: the smaller group starts at epoch 1.
    os.makedirs(run_dir / "work" / KEYS[1])
    (run_dir / "work" / KEYS[1] / "history.json").write_text(json.dumps([{"epoch": 1, "loss": 9.0}]))
    (run_dir / "logs" / KEYS[1] / "history.csv").write_text("epoch,loss\n0,9.0\n")
    finished = (run_dir / "cells" / f"{KEYS[0]}.json").read_bytes()
    lines = run_copy(run_dir)
    assert "2 student cells in 1 groups" in "\n".join(lines)
    assert sum(line.startswith("cell ") for line in lines) == 2
    assert (run_dir / "cells" / f"{KEYS[0]}.json").read_bytes() == finished
    for key in KEYS[1:]:
        assert cell_record(run_dir, key)["group"] == KEYS[1:]
        assert_same_cell(run_dir, alone_run, key)
        assert len((run_dir / "logs" / key / "history.csv").read_text().strip().splitlines()) == 1 + 2
    assert not os.listdir(run_dir / "work")


def test_cli_no_group_runs_every_cell_alone(monkeypatch, tmp_path):
    from keras_mixkd import cli
    from keras_mixkd.study import runner

    seen = []
    monkeypatch.setattr(runner, "run_study", lambda config, **kwargs: seen.append(kwargs["options"].group_students))
    for flag, expected in (([], True), (["--no-group"], False)):
        assert cli.main(["study", "--smoke", "--runs-dir", str(tmp_path), *flag]) == 0
        assert seen[-1] is expected


def test_execute_cells_refuses_cells_of_other_streams(tmp_path):
    from keras_mixkd.study import CellFolders
    from keras_mixkd.study import execute_cells

    config = load_recipe("digits", smoke=True, overrides={**TINY, "distillation": [*GROUP, {"name": "plain"}]})
    cells = [cell for cell in enumerate_cells(config) if cell.recipe in ("kd_T4", "plain")]
    with pytest.raises(ValueError, match="do not share a teacher and an input stream"):
        execute_cells(cells, config, None, teacher_path=None, folders=CellFolders(str(tmp_path), ["a", "b"]))


def test_student_callbacks_show_each_student_its_own_logs():
    import keras

    from keras_mixkd.study.student_callbacks import StudentCallbacks

    class Keep(keras.callbacks.Callback):
        def __init__(self, add=None):
            super().__init__()
            self.seen, self.add = [], add

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(dict(logs))
            if self.add:
                logs[self.add] = 1.0

    first, second = Keep(add="val_accuracy"), Keep()
    member = StudentCallbacks("s1", ["loss", "accuracy"], [first, second])
    logs = {"loss": 3.0, "s1_loss": 1.0, "s1_accuracy": 0.5, "s10_loss": 7.0, "s0_loss": 2.0}
    member.on_epoch_end(0, logs)
    assert first.seen == [{"loss": 1.0, "accuracy": 0.5}]
    assert second.seen == [{"loss": 1.0, "accuracy": 0.5, "val_accuracy": 1.0}]  # what the first one added
    assert "val_accuracy" not in logs  # never in the group's (the other students') logs
    with pytest.raises(ValueError, match="non-empty str"):
        StudentCallbacks("", ["loss"], [])


def test_a_group_of_cacheable_recipes_reads_the_teacher_cache(tmp_path):
    # No augmentation: the teacher sees each image as loaded, so the group reads its cached
    # logits and never runs the teacher in its fit; the numbers are those of the plain cells.
    from keras_mixkd.study import run_study

    plain = [{k: v for k, v in recipe.items() if k not in MIX} for recipe in GROUP]
    config = tiny_config(distillation=plain)
    run_study(config, runs_dir=str(tmp_path), name="grouped", report=False, verbose=0, print_fn=lambda *a: None)
    config_off = tiny_config(distillation=plain, teacher_cache=False)
    run_study(config_off, runs_dir=str(tmp_path), name="alone", report=False, verbose=0,
              print_fn=lambda *a: None, group_students=False)
    keys = [f"student__digits_cnn_small__{r['name']}__from__digits_cnn__none__s0" for r in plain]
    for key in keys:
        grouped = cell_record(tmp_path / "grouped", key)
        alone = cell_record(tmp_path / "alone", key)
        assert grouped["teacher_cache"] is True and alone["teacher_cache"] is False
        assert sorted(grouped["group"]) == sorted(keys)
        assert os.path.exists(tmp_path / "grouped" / "models" / f"{TEACHER}.logits.npz")
        for g, a in zip(grouped["history"], alone["history"]):
            assert g["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert grouped["test_accuracy_last"] == pytest.approx(alone["test_accuracy_last"], abs=1 / 64 + 1e-9)
