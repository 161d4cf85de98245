"""The papers' protocols: the student-alone baseline and its KD gain, training on the whole training split."""

import json
import math

import numpy as np
import pytest

from keras_mixkd.analysis.tables import gain_table
from keras_mixkd.analysis.tables import kd_gains
from keras_mixkd.analysis.tables import pair_table
from keras_mixkd.study import RecipeError
from keras_mixkd.study import enumerate_cells
from keras_mixkd.study import load_recipe
from keras_mixkd.study.runner import select_cells
from keras_mixkd.study.training import summarize_history

# ---------------------------------------------------------------- the grid


@pytest.mark.backend_independent
def test_alone_cells_once_per_student_model_and_seed_before_the_teachers():
    config = load_recipe("study_b_cifar100", overrides={"seeds": [0, 1]})
    cells = enumerate_cells(config)
    alone = [c for c in cells if c.kind == "alone"]
    students = sorted({p["student"] for p in config["pairs"]})  # resnet20 is in two pairs: one baseline
    assert len(students) < len(config["pairs"])
    assert sorted(c.key for c in alone) == sorted(
        f"student__{model}__alone__s{seed}" for model in students for seed in (0, 1))
    assert len({c.key for c in cells}) == len(cells)
    for cell in alone:
        assert cell.depends_on == () and cell.teacher_key is None and cell.recipe == "alone"
    # Each seed starts with its baselines; a student depends on its teacher only.
    position = {c.key: i for i, c in enumerate(cells)}
    for seed in (0, 1):
        first_teacher = min(position[c.key] for c in cells if c.kind == "teacher" and c.seed == seed)
        assert all(position[c.key] < first_teacher for c in alone if c.seed == seed)
    student = next(c for c in cells if c.kind == "student")
    assert student.depends_on == (student.teacher_key,)
    off = load_recipe("study_b_cifar100", overrides={"seeds": [0, 1], "student.baseline": False})
    assert [c.key for c in enumerate_cells(off)] == [c.key for c in cells if c.kind != "alone"]


@pytest.mark.backend_independent
def test_only_filters_the_alone_cells_sensibly():
    config = load_recipe("study_b_cifar100", overrides={"seeds": [0, 1]})
    cells = enumerate_cells(config)

    def kinds(**only):
        chosen = select_cells(cells, {k: v if isinstance(v, list) else [v] for k, v in only.items()})
        return {(c.kind, c.student_model, c.seed) for c in chosen if c.kind == "alone"}, chosen

    alone, _ = kinds(student_model="resnet20")
    assert alone == {("alone", "resnet20", 0), ("alone", "resnet20", 1)}
    alone, chosen = kinds(teacher_model="vgg13", seed=1)  # the students of that row bring their baselines
    assert alone == {("alone", "vgg8", 1), ("alone", "mobilenetv2", 1)}
    assert {c.kind for c in chosen} == {"alone", "teacher", "student"}
    alone, _ = kinds(teacher_augmentation="standard+mixup", recipe="kd_T1", student_model="wrn_40_1")
    assert alone == {("alone", "wrn_40_1", 0), ("alone", "wrn_40_1", 1)}
    alone, chosen = kinds(kind="alone")
    assert len(alone) == len(chosen) == 2 * 8
    assert kinds(recipe="alone")[1] == kinds(kind="alone")[1]
    alone, chosen = kinds(kind="student", teacher_model="vgg13")  # `kind` without alone leaves them out
    assert not alone and {c.kind for c in chosen} == {"teacher", "student"}
    assert not kinds(kind="teacher")[0]


# ---------------------------------------------------------------- recipe keys


@pytest.mark.backend_independent
def test_the_new_keys_take_their_values_and_refuse_bad_ones(tmp_path):
    config = load_recipe("digits", overrides={"data.validation_fraction": 0, "measure.split": "test",
                                              "student.baseline": False})
    assert config["data"]["validation_fraction"] == 0.0 and config["measure"]["split"] == "test"
    assert load_recipe("digits")["measure"]["split"] == "val" and load_recipe("digits")["student"]["baseline"]
    for value in (1, 1.5, -0.1, "none"):
        with pytest.raises(RecipeError, match=r"data\.validation_fraction: expected a number in \[0, 1\) "
                                              r"\(0: no validation split.*got " + repr(value).replace(".", r"\.")):
            load_recipe("digits", overrides={"data.validation_fraction": value})
    with pytest.raises(RecipeError, match=r"measure\.split: expected one of 'val', 'test', got 'train'"):
        load_recipe("digits", overrides={"measure.split": "train"})
    with pytest.raises(RecipeError, match=r"student\.baseline: expected true or false, got 'yes'"):
        load_recipe("digits", overrides={"student.baseline": "yes"})
    path = tmp_path / "r.toml"
    path.write_text('name = "r"\nseeds = [0]\n[[pairs]]\nteacher = "digits_cnn"\nstudent = "digits_cnn_small"\n'
                    '[[distillation]]\nname = "alone"\n')
    with pytest.raises(RecipeError, match=r"line 7: distillation\[0\]\.name: the name 'alone' is reserved"):
        load_recipe(str(path))
    path.write_text('name = "r"\nseeds = [0]\n[measure]\nsplit = "validation"\n[[pairs]]\nteacher = "a"\n'
                    'student = "b"\n[[distillation]]\nname = "kd"\n')
    with pytest.raises(RecipeError, match=r"r\.toml, line 4: measure\.split: expected one of 'val', 'test'"):
        load_recipe(str(path))


# ---------------------------------------------------------------- the KD gain


def _records(rng, offset):
    """Two recipes x two augmentations x three seeds of students, their teachers, and three baselines."""
    records = []
    for seed in (0, 1, 2):
        records.append({"key": f"a{seed}", "role": "alone", "teacher_model": "", "teacher_augmentation": "",
                        "student_model": "small", "recipe": "alone", "seed": seed,
                        "test_accuracy_last": offset + float(rng.uniform(0.5, 0.9))})
        for augmentation in ("none", "mixup"):
            records.append({"key": f"t{augmentation}{seed}", "role": "teacher", "teacher_model": "big",
                            "teacher_augmentation": augmentation, "seed": seed,
                            "test_accuracy_last": offset + float(rng.uniform(0.5, 0.9))})
            for recipe in ("kd", "kd_T1"):
                if (augmentation, recipe, seed) == ("mixup", "kd_T1", 2):
                    continue  # not finished yet: that cell pairs two seeds only
                records.append({"key": f"s{augmentation}{recipe}{seed}", "role": "student", "teacher_model": "big",
                                "teacher_augmentation": augmentation, "student_model": "small", "recipe": recipe,
                                "seed": seed, "test_accuracy_last": offset + float(rng.uniform(0.5, 0.9))})
    return records


@pytest.mark.backend_independent
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_gain_is_distilled_minus_alone_paired_by_seed(rng, offset):
    records = _records(rng, offset)
    rng.shuffle(records)  # pairing goes by seed, not by order
    alone = {r["seed"]: np.float64(r["test_accuracy_last"]) for r in records if r["role"] == "alone"}
    config = {"teacher": {"augmentations": ["none", "mixup"]}}
    header, rows = gain_table(records, "big", "small", "test_accuracy_last", config)
    assert header == ["teacher augmentation", "small · kd − alone", "small · kd_T1 − alone"]
    assert [row[0] for row in rows] == ["none", "mixup"]
    for row, augmentation in zip(rows, ("none", "mixup")):
        for column, recipe in enumerate(("kd", "kd_T1"), 1):
            students = sorted((r for r in records if r["role"] == "student" and r["recipe"] == recipe
                               and r["teacher_augmentation"] == augmentation), key=lambda r: r["seed"])
            by_hand = np.array([np.float64(s["test_accuracy_last"]) - alone[s["seed"]] for s in students])
            assert len(by_hand) == (2 if (augmentation, recipe) == ("mixup", "kd_T1") else 3)
            np.testing.assert_allclose(kd_gains(records, "big", "small", augmentation, recipe), by_hand,
                                       rtol=0, atol=1e-9 * max(1.0, offset))
            mean, std = 100 * by_hand.mean(), 100 * by_hand.std(ddof=1)
            if offset == 0.0:  # far from the origin the last digit may differ by rounding
                assert row[column] == f"{'+' if mean >= 0 else ''}{mean:.2f} ± {std:.2f}"
            else:
                text = row[column].lstrip("+")
                assert abs(float(text.split(" ± ")[0]) - mean) <= 0.0051
                assert abs(float(text.split(" ± ")[1]) - std) <= 0.0051
    header, rows = pair_table(records, "big", "small", "test_accuracy_last")
    assert header[:3] == ["teacher augmentation", "teacher big", "small · student alone"]
    values = np.array(list(alone.values()))
    expected = f"{100 * values.mean():.2f} ± {100 * values.std(ddof=1):.2f}"
    assert all(row[2] == expected for row in rows)  # the same baseline in every row
    without = [r for r in records if r["role"] != "alone"]
    assert gain_table(without, "big", "small") == (None, [])
    assert "small · student alone" not in pair_table(without, "big", "small", "test_accuracy_last")[0]


@pytest.mark.backend_independent
def test_summaries_without_a_validation_split_select_no_epoch():
    history = [{"epoch": e + 1, "test_accuracy": 0.5 + 0.1 * e} for e in range(3)]
    summary = summarize_history(history)
    assert summary["last_epoch"] == 3 and summary["test_accuracy_last"] == pytest.approx(0.7)
    assert summary["best_epoch"] is None and summary["test_accuracy_best"] is None
    assert summary["val_accuracy_best"] is None and summary["val_accuracy_last"] is None


# ---------------------------------------------------------------- whole training split


def test_recorder_without_validation_split_measures_only_what_was_asked(tmp_path):
    import keras

    from keras_mixkd.models import get_model
    from keras_mixkd.study.epoch_recorder import EpochRecorder

    rng = np.random.default_rng(0)
    model = get_model("digits_cnn_small", 10, (8, 8, 1))
    test = (rng.normal(size=(40, 8, 8, 1)).astype("float32"), np.arange(40) % 10)
    empty = (np.zeros((0, 8, 8, 1), "float32"), np.zeros((0,), "int32"))
    rows = {}
    for split in ("val", "test"):
        recorder = EpochRecorder(str(tmp_path / f"{split}.json"), empty, test, measure_split=split)
        recorder.set_model(model)
        recorder.set_params({"epochs": 1})
        recorder.on_train_begin()
        recorder.on_epoch_end(0, {"loss": 1.0})
        rows[split] = json.loads((tmp_path / f"{split}.json").read_text())[0]
    assert set(rows["val"]) == {"epoch", "loss", "test_accuracy"}  # no val split: nothing per epoch but test
    assert set(rows["test"]) == {"epoch", "loss", "test_accuracy", "test_class_discrimination"}
    logits = keras.ops.convert_to_numpy(model(test[0]))
    assert rows["test"]["test_accuracy"] == pytest.approx(np.mean(np.argmax(logits, 1) == test[1]))
    with pytest.raises(ValueError, match="measure_split must be 'val' or 'test', got 'train'"):
        EpochRecorder(str(tmp_path / "x.json"), None, test, measure_split="train")


def test_whole_training_split_study_end_to_end(tmp_path):
    """validation_fraction = 0: all training examples train, the report says no epoch was selected."""
    import keras

    from keras_mixkd.study import run_study
    from keras_mixkd.study.training import prepare_data

    keras.utils.set_random_seed(0)
    config = load_recipe("digits", smoke=True, overrides={
        "teacher.augmentations": ["none"], "distillation": [{"name": "kd_T1", "temperature": 1.0}],
        "data.validation_fraction": 0, "data.train_examples": 64, "data.test_examples": 32,
        "measure.split": "test", "student.baseline": False, "backup_interval_seconds": 0.0})
    splits = prepare_data(config["data"])
    assert len(splits.y_val) == 0 and len(splits.y_train) == config["data"]["train_examples"]
    lines = []
    records = run_study(config, runs_dir=str(tmp_path), name="full", verbose=0, print_fn=lines.append)
    assert sorted(r["role"] for r in records) == ["student", "teacher"]  # the alone cell: tests/test_study.py
    for record in records:
        assert record["best_epoch"] is None and record["test_accuracy_best"] is None
        assert math.isfinite(record["test_accuracy_last"]) and record["last_epoch"] == 1
        assert "val_accuracy" not in record["history"][-1]
        assert math.isfinite(record["history"][-1]["test_class_discrimination"])
    assert any("no epoch selected (no validation split)" in line for line in lines)
    assert any(line.strip().startswith("!!! No epoch was selected") for line in lines)
    report = (tmp_path / "full" / "report.md").read_text()
    assert "> **No epoch was selected: this study trained on the whole training split" in report
    best = report.split("### Test accuracy (%) at the best-validation epoch")[1].split("###")[0]
    assert "data.validation_fraction = 0" in best and "| none | – | – |" in best
    assert "CD over epochs on the **test** split" in report
    rows = (tmp_path / "full" / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 and all(",,,," in row for row in rows[1:])  # best-validation fields empty
