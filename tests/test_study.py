"""The study: recipes, grid, run folder, resumable cells, a tiny grid end to end."""

import json
import os

import numpy as np
import pytest

from keras_mixkd.study import RecipeError
from keras_mixkd.study import enumerate_cells
from keras_mixkd.study import list_recipes
from keras_mixkd.study import load_recipe
from keras_mixkd.study import atomic
from keras_mixkd.study.config import check_names
from keras_mixkd.study.config import parse_override
from keras_mixkd.study.run_folder import RunFolder
from keras_mixkd.study.training import summarize_history

from tests.helpers import PMU
from tests.helpers import tiny_config as _tiny_config

# The tiny grid of the run tests (the session's `tiny_study` in tests/conftest.py):
# 2 teacher augmentations x 1 recipe, one seed.
GRID = {"teacher.augmentations": ["none", "mixup"], "distillation": [PMU]}


def tiny_config(**extra):
    return _tiny_config(**GRID, **extra)


def write(tmp_path, text, name="recipe.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = """
name = "mine"
seeds = [0]
[[pairs]]
teacher = "digits_cnn"
student = "digits_cnn_small"
[[distillation]]
name = "kd"
"""


# ---------------------------------------------------------------- recipes


@pytest.mark.backend_independent
def test_packaged_recipes_load_at_both_scales_and_name_real_parts():
    names = list_recipes()
    assert {"digits", "study_a_cifar10", "study_b_cifar100"} <= set(names)
    for name in names:
        for smoke in (False, True):
            config = load_recipe(name, smoke=smoke)
            check_names(config)  # every model and augmentation exists in the zoo
            assert enumerate_cells(config)


@pytest.mark.backend_independent
def test_digits_default_is_the_main_job():
    config = load_recipe("digits")
    assert config["teacher"]["augmentations"] == [
        "none", "standard", "cutout", "label_smoothing", "mixup", "cutmix"]
    assert config["seeds"] == [0, 1, 2]
    recipes = {r["name"]: r for r in config["distillation"]}
    assert recipes["kd_T1"]["temperature"] == 1.0
    assert recipes["standardized"]["loss"] == "standardized"
    assert recipes["partial_mixup"]["augmentation"] == ["partial_mixup"]
    assert recipes["partial_mixup"]["teacher_sees"] == "same"


@pytest.mark.backend_independent
def test_study_recipes_follow_the_papers():
    a = load_recipe("study_a_cifar10")
    assert a["data"]["dataset"] == "cifar10"
    assert a["teacher"]["epochs"] == 150 and a["teacher"]["optimizer"]["milestones"] == [60, 80, 120]
    assert a["teacher"]["optimizer"]["learning_rate"] == 0.1 and a["data"]["batch_size"] == 128
    assert {(p["teacher"], p["student"]) for p in a["pairs"]} == {("resnet18", "lenet5"), ("resnet18", "alexnet")}
    assert [(r["temperature"], r["student_loss_weight"]) for r in a["distillation"]] == [(20.0, 0.5)]
    b = load_recipe("study_b_cifar100")
    assert b["data"]["dataset"] == "cifar100" and b["data"]["batch_size"] == 64
    assert b["student"]["epochs"] == 240 and b["student"]["optimizer"]["milestones"] == [150, 180, 210]
    assert b["student"]["optimizer"]["weight_decay"] == 5e-4
    assert ("resnet110", "resnet20") == (b["pairs"][0]["teacher"], b["pairs"][0]["student"])
    recipes = {r["name"]: r for r in b["distillation"]}
    assert recipes["kd_T4"]["temperature"] == 4.0 and recipes["kd_T1"]["temperature"] == 1.0
    assert recipes["standardized"]["loss"] == "standardized"
    for name in ("partial_mixup", "full_mixup", "standardized_partial_mixup"):
        assert recipes[name]["teacher_sees"] == "same"
    assert recipes["full_mixup"]["augmentation_options"]["mixup"]["mode"] == "sample"
    # MIX-KD's own combination: the standardised loss with exactly 10 % of each batch mixed.
    mixstd = recipes["standardized_partial_mixup"]
    assert mixstd["loss"] == "standardized" and mixstd["augmentation"] == ["partial_mixup"]
    assert mixstd["augmentation_options"]["partial_mixup"] == {"fraction": 0.1, "alpha": 1.0, "mode": "sample"}
    assert all(config["student"]["baseline"] for config in (a, b))


@pytest.mark.backend_independent
def test_unknown_key_names_key_file_and_line(tmp_path):
    path = write(tmp_path, GOOD + "\n[teacher.optimizer]\nlearning_rate = 0.1\nmomentm = 0.9\n")
    with pytest.raises(RecipeError, match=r"recipe\.toml, line 12: .*'momentm'.*Did you mean 'momentum'"):
        load_recipe(path)
    path = write(tmp_path, GOOD + "temprature = 2.0\n")
    with pytest.raises(RecipeError, match=r"line 9: distillation\[0\]\.temprature"):
        load_recipe(path)


@pytest.mark.backend_independent
@pytest.mark.parametrize("extra, message", [
    ("[teacher]\nepochs = 0\n", "integer >= 1"),
    ("[teacher]\nepochs = 'ten'\n", "integer >= 1"),
    ("[teacher.optimizer]\nmilestones = [80, 60]\n", "increasing"),
    ("[measure]\nprojection = 'umap'\n", "pca, tsne"),
])
def test_bad_values_are_refused_with_the_line(tmp_path, extra, message):
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(RecipeError, match=message):
        load_recipe(path)
    try:
        load_recipe(path)
    except RecipeError as error:
        assert "recipe.toml, line " in str(error)


@pytest.mark.backend_independent
def test_bad_recipes_and_overrides(tmp_path):
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(write(tmp_path, "name = \n"))
    with pytest.raises(RecipeError, match="at least one \\[\\[pairs\\]\\]"):
        load_recipe(write(tmp_path, 'name = "x"\n[[distillation]]\nname = "kd"\n'))
    with pytest.raises(RecipeError, match="unique"):
        load_recipe(write(tmp_path, GOOD + '[[distillation]]\nname = "kd"\n'))
    with pytest.raises(RecipeError, match="Unknown recipe 'nope'.*digits"):
        load_recipe("nope")
    with pytest.raises(RecipeError, match="no \\[smoke\\] table"):
        load_recipe(write(tmp_path, GOOD), smoke=True)
    with pytest.raises(RecipeError, match="Unknown setting 'teacher.epoch'.*Did you mean 'epochs'"):
        load_recipe("digits", overrides={"teacher.epoch": 3})
    with pytest.raises(RecipeError, match="seeds"):
        load_recipe("digits", overrides={"seeds": []})
    with pytest.raises(RecipeError, match="unknown model 'resnet999'"):
        check_names(load_recipe("digits", overrides={"pairs": [{"teacher": "resnet999", "student": "digits_cnn"}]}))
    with pytest.raises(RecipeError, match="unknown augmentation 'mixpu'"):
        check_names(load_recipe("digits", overrides={"teacher.augmentations": ["standard+mixpu"]}))
    assert parse_override("teacher.epochs=3") == ("teacher.epochs", 3)
    assert parse_override("seeds=[0, 1]") == ("seeds", [0, 1])
    assert parse_override("data.dataset=cifar10") == ("data.dataset", "cifar10")
    with pytest.raises(RecipeError, match="key=value"):
        parse_override("teacher.epochs")


# ---------------------------------------------------------------- grid, files


@pytest.mark.backend_independent
def test_grid_trains_each_teacher_once_before_its_students():
    config = load_recipe("digits", overrides={"seeds": [0, 1]})
    cells = enumerate_cells(config)
    teachers = [c for c in cells if c.kind == "teacher"]
    students = [c for c in cells if c.kind == "student"]
    alone = [c for c in cells if c.kind == "alone"]
    assert len(teachers) == 2 * 6 and len(students) == 2 * 6 * 4 and len(alone) == 2
    assert len({c.key for c in cells}) == len(cells)
    position = {c.key: i for i, c in enumerate(cells)}
    for student in students:
        assert position[student.teacher_key] < position[student.key]


@pytest.mark.backend_independent
def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "r.json"
    atomic.write_json(path, {"a": 1, "nan": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1, "nan": None}

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic.atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write('{"half": ')
            raise Boom
    assert json.loads(path.read_text()) == {"a": 1, "nan": None}
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary file left behind


@pytest.mark.backend_independent
def test_run_folder_refuses_changed_config_other_version_and_foreign_folders(tmp_path):
    config = tiny_config()
    folder = RunFolder(tmp_path / "run")
    folder.open(config)
    folder.open(dict(config, recipe={"source": "elsewhere.toml", "smoke": True}))  # same study
    folder.open(dict(config, backup_interval_seconds=99.0))  # runs differently, same results
    with pytest.raises(ValueError, match=r"another config \(teacher\.epochs: 2 -> 5\)"):
        folder.open(tiny_config(**{"teacher.epochs": 5}))
    manifest = folder.read_manifest()
    atomic.write_json(folder.manifest_path, dict(manifest, keras_mixkd_version="0.0.1"))
    with pytest.raises(ValueError, match="made by keras-mixkd 0.0.1"):
        folder.open(config)
    atomic.write_json(folder.manifest_path, dict(manifest, format=99))
    with pytest.raises(ValueError, match="format 99"):
        folder.open(config)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a runs folder"):
        RunFolder(tmp_path / "other").open(config)


@pytest.mark.backend_independent
def test_best_epoch_is_chosen_on_validation_never_on_test():
    rng = np.random.default_rng(0)
    val = rng.uniform(0.5, 0.9, size=8)
    test = rng.uniform(0.5, 0.9, size=8)
    history = [{"epoch": e + 1, "val_accuracy": float(v), "test_accuracy": float(t)}
               for e, (v, t) in enumerate(zip(val, test))]
    summary = summarize_history(history)
    best = int(np.argmax(val))
    assert summary["best_epoch"] == best + 1
    assert summary["test_accuracy_best"] == pytest.approx(test[best])
    assert summary["val_accuracy_best"] == pytest.approx(val.max())
    assert summary["last_epoch"] == 8 and summary["test_accuracy_last"] == pytest.approx(test[-1])
    with pytest.raises(ValueError, match="empty"):
        summarize_history([])


# ---------------------------------------------------------------- running


def test_tiny_grid_end_to_end(tiny_study):
    import keras

    run_dir, records, lines = tiny_study
    assert len(records) == 2 + 2 + 1  # two teachers, two students, the student alone
    teachers = [r for r in records if r["role"] == "teacher"]
    students = [r for r in records if r["role"] == "student"]
    (alone,) = [r for r in records if r["role"] == "alone"]
    assert alone["key"] == "student__digits_cnn_small__alone__s0" and alone["recipe"] == "alone"
    assert alone["student_model"] == "digits_cnn_small" and alone["loss"] == "cross_entropy"
    # Its model card says what it is: a student, trained on labels alone (no teacher it was distilled from).
    assert alone["model_card"]["role"] == "student" and not alone["model_card"].get("distilled_from")
    assert sorted(r["teacher_augmentation"] for r in teachers) == ["mixup", "none"]
    assert sorted((r["teacher_augmentation"], r["recipe"]) for r in students) == [("mixup", "pmu"), ("none", "pmu")]
    for record in records:
        assert record["backend"] == keras.backend.backend()
        assert [row["epoch"] for row in record["history"]] == [1, 2]
        assert 0.0 <= record["test_accuracy_last"] <= 1.0 and np.isfinite(record["class_discrimination_last"])
        assert record["history"][-1]["test_accuracy"] == pytest.approx(record["test_accuracy_last"])
        assert 0.0 <= record["ece_last"] <= 1.0
    for student in students:
        assert student["teacher_class_discrimination"] is not None
        assert student["alone_test_accuracy_last"] == alone["test_accuracy_last"]
        assert student["kd_gain_last"] == pytest.approx(student["test_accuracy_last"] - alone["test_accuracy_last"])
        assert student["distillation_augmentation"] == "partial_mixup" and student["temperature"] == 1.0
    # Files: one result per cell, models, tables, report, plots; no work left behind.
    assert len(os.listdir(run_dir / "cells")) == 5
    assert not os.listdir(run_dir / "work")
    rows = (run_dir / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 5 and rows[0].startswith("key,role,")
    assert any(row.startswith("student__digits_cnn_small__alone__s0,alone,") for row in rows)
    assert len(json.loads((run_dir / "results.json").read_text())["cells"]) == 5
    report = (run_dir / "report.md").read_text()
    assert "## digits_cnn → digits_cnn_small" in report
    assert "digits_cnn_small · student alone" in report and "KD gain over the student alone" in report
    for name in ("accuracy", "class_discrimination", "class_discrimination_over_epochs",
                 "projection_teacher_digits_cnn"):
        assert (run_dir / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lines[1].startswith("cell 1/5 · seed 0 · train student digits_cnn_small alone (no teacher) · test accuracy")
    assert any(line.startswith("cell 2/5 · teacher=none · seed 0") for line in lines)
    # A teacher saved by the study reloads and predicts the data's classes.
    teacher = keras.saving.load_model(run_dir / "models" / "teacher__digits_cnn__mixup__s0.keras")
    assert teacher.output_shape[-1] == 10


def test_rerun_skips_finished_cells(tiny_study, tmp_path):
    import shutil

    from keras_mixkd.study import run_study

    shared, records, _ = tiny_study
    run_dir = tmp_path / "tiny"
    shutil.copytree(shared, run_dir)  # copy2: the cells' times are kept
    before = {name: os.path.getmtime(run_dir / "cells" / name) for name in os.listdir(run_dir / "cells")}
    lines = []
    again = run_study(tiny_config(), runs_dir=str(run_dir.parent), name="tiny", verbose=0, report=False,
                      print_fn=lines.append)
    assert not [line for line in lines if line.startswith("cell ")]
    assert "5 already finished" in lines[0]  # the student alone is resumable like every cell
    assert {name: os.path.getmtime(run_dir / "cells" / name) for name in before} == before
    assert [r["key"] for r in again] == [r["key"] for r in records]


def test_resume_continues_a_cell_from_its_last_backup(tmp_path):
    """A cell stopped after epoch 2 of 4 continues at epoch 3 with its weights and optimizer state."""
    import keras

    from keras_mixkd.study import training

    config = tiny_config()
    splits = training.prepare_data(config["data"])
    kwargs = dict(seed=0, optimizer=config["teacher"]["optimizer"], batch_size=32, measure=config["measure"],
                  work_dir=str(tmp_path / "work"), verbose=0)

    class StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    original_fit = keras.Model.fit

    def interrupted_fit(self, *args, **kw):
        kw["callbacks"] = list(kw["callbacks"]) + [StopAfter()]
        return original_fit(self, *args, **kw)

    keras.Model.fit = interrupted_fit
    try:
        with pytest.raises(KeyboardInterrupt):
            training.train_teacher(splits, "digits_cnn_small", "none", epochs=4, **kwargs)
    finally:
        keras.Model.fit = original_fit
    saved = json.loads((tmp_path / "work" / "history.json").read_text())
    assert [row["epoch"] for row in saved] == [1, 2]
    backup = tmp_path / "work" / "backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    weights_at_2 = None
    from keras_mixkd.models import get_model

    probe = get_model("digits_cnn_small", 10, splits.input_shape)
    probe.compile(optimizer=training.build_optimizer(config["teacher"]["optimizer"], "x", 3), loss="mse")
    probe.optimizer.build(probe.trainable_variables)
    probe.load_weights(backup / "epoch-2.weights.h5")
    weights_at_2 = [np.array(w) for w in probe.get_weights()]

    resumed_starts = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if not resumed_starts:
                resumed_starts.append((epoch, [np.array(w) for w in self.model.get_weights()],
                                       int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))))

    def watched_fit(self, *args, **kw):
        kw["callbacks"] = list(kw["callbacks"]) + [Watch()]
        return original_fit(self, *args, **kw)

    keras.Model.fit = watched_fit
    try:
        model, record, _ = training.train_teacher(splits, "digits_cnn_small", "none", epochs=4, **kwargs)
    finally:
        keras.Model.fit = original_fit
    epoch, weights, iterations = resumed_starts[0]
    assert epoch == 2  # continues with the third epoch
    steps = int(np.ceil(len(splits.y_train) / 32))
    assert iterations == 2 * steps  # the optimizer (and its schedule) kept its place
    for restored, expected in zip(weights, weights_at_2):
        np.testing.assert_array_equal(restored, expected)
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3, 4]
    assert record["history"][:2] == saved  # the epochs before the stop are kept as they were


def test_teacher_with_other_class_count_is_refused(tmp_path):
    from keras_mixkd.models import get_model
    from keras_mixkd.study import load_teacher

    teacher = get_model("digits_cnn_small", 3, (8, 8, 1))
    path = str(tmp_path / "three.keras")
    teacher.save(path)
    with pytest.raises(ValueError, match="predicts 3 classes but the data has 10"):
        load_teacher(path, 10)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_teacher(str(tmp_path / "gone.keras"), 10)
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="Cannot load the teacher"):
        load_teacher(str(tmp_path / "junk.keras"), 10)


# The recipe files are what this tests (each one's parts build, its cells run), and no backend changes
# them: it runs under one backend. What it trains is tested under every backend elsewhere: the zoo models
# (tests/test_models.py, test_direct_graph_call.py; resnet8 distilled in test_data_format.py), the study's
# cells (the tiny study), each augmentation and distillation recipe (test_augment.py, test_losses.py,
# test_determinism.py, test_distiller_methods.py). Under JAX it cost 35 s, under TensorFlow 22 s.
@pytest.mark.slow
@pytest.mark.one_backend
def test_smoke_scale_of_every_recipe_runs(tmp_path):
    """Each recipe's smoke scale builds all its parts and runs a teacher and a student.

    The digits recipe's smoke scale is the tiny grid above. For the CIFAR
    recipes every augmentation (teachers, students, each distillation recipe)
    is built; one teacher (the last augmentation) is trained and one student
    distilled with the recipe's last distillation recipe (study B: full
    mixup at distillation, the teacher seeing the mixed images).
    """
    from keras_mixkd.study import run_study
    from keras_mixkd.study.training import build_augmentation

    for name in list_recipes():
        if name == "digits":
            continue
        config = load_recipe(name, smoke=True)
        check_names(config)
        teacher, student = config["teacher"], config["student"]
        for augmentation in teacher["augmentations"]:
            build_augmentation([augmentation], teacher["augmentation_options"], 10)
        for recipe in config["distillation"]:
            options = {**student["augmentation_options"], **recipe["augmentation_options"]}
            build_augmentation(student["augmentation"] + recipe["augmentation"], options, 10)
        # kind without "alone": the chosen student brings its teacher, not its baseline
        # (the baseline is a plain teacher-style run: the tiny grid has one).
        only = {"kind": ["teacher", "student"], "teacher_augmentation": [teacher["augmentations"][-1]],
                "recipe": [config["distillation"][-1]["name"]],
                "student_model": [config["pairs"][0]["student"]]}
        records = run_study(config, runs_dir=str(tmp_path), only=only, verbose=0, report=False,
                            print_fn=lambda *a: None)
        assert sorted(r["role"] for r in records) == ["student", "teacher"]
        (student,) = [r for r in records if r["role"] == "student"]
        assert student["recipe"] == config["distillation"][-1]["name"]
        assert student["teacher_augmentation"] == teacher["augmentations"][-1]
        for record in records:
            epochs = config["teacher" if record["role"] == "teacher" else "student"]["epochs"]
            assert [row["epoch"] for row in record["history"]] == list(range(1, epochs + 1)), (name, record["key"])
            assert 0.0 <= record["test_accuracy_last"] <= 1.0
            assert record["history"][-1]["test_accuracy"] == pytest.approx(record["test_accuracy_last"])


def test_a_finished_backup_is_restored_without_training(tmp_path):
    """Killed after `fit` but before the result was stored: the rerun trains no epoch."""
    import keras

    from keras_mixkd.study import training

    config = tiny_config()
    splits = training.prepare_data(config["data"])
    kwargs = dict(seed=0, epochs=2, optimizer=config["teacher"]["optimizer"], batch_size=32,
                  measure=config["measure"], work_dir=str(tmp_path / "work"), verbose=0)
    first_model, first, _ = training.train_teacher(splits, "digits_cnn_small", "none", **kwargs)
    trained = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            trained.append(batch)

    original_fit = keras.Model.fit

    def counted_fit(self, *args, **kw):
        kw["callbacks"] = list(kw["callbacks"]) + [Count()]
        return original_fit(self, *args, **kw)

    keras.Model.fit = counted_fit
    try:
        model, again, _ = training.train_teacher(splits, "digits_cnn_small", "none", **kwargs)
    finally:
        keras.Model.fit = original_fit
    assert trained == []
    assert again["history"] == first["history"]
    for restored, expected in zip(model.get_weights(), first_model.get_weights()):
        np.testing.assert_array_equal(restored, expected)
    assert again["test_accuracy_last"] == first["test_accuracy_last"]
