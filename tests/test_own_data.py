"""A researcher's own image folder and own model through the command line: classes, inputs, flags, messages."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from tests.helpers import run_cli
from tests.helpers import run_cli_ok

CLASSES = ("one", "two", "zero")


def _write_classes(root, per_class=10, size=(8, 8), classes=CLASSES):
    """`root/<class>/<i>.png`: each class one colour (plus a little noise), tiny images."""
    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((*size, 3), 60 + 80 * index, np.uint8)
            pixels = np.clip(pixels + rng.integers(0, 30, pixels.shape), 0, 255).astype(np.uint8)
            keras.utils.save_img(str(root / name / f"{i}.png"), pixels)
    return root


def test_a_teacher_of_other_classes_is_refused_for_evaluate_and_distill(capsys, tmp_path):
    """Issue #26, 2: a teacher trained on one, two, zero; the data's `zero` renamed `a_zero` shifts every label."""
    from keras_mixkd.data import load_dataset
    from keras_mixkd.models import get_model
    from keras_mixkd.models import with_preprocessing
    from keras_mixkd.models.model_card import model_card

    data = _write_classes(tmp_path / "data")
    trained_on = load_dataset("folder", path=data, image_size=(8, 8))
    assert trained_on.class_names == CLASSES
    # What train-teacher writes: the .keras file and its record, whose model card names the classes.
    teacher = str(tmp_path / "t.keras")
    model = with_preprocessing(get_model("digits_cnn_small", 3, (8, 8, 3)), trained_on.normalization)
    model.save(teacher)
    (tmp_path / "t.keras.json").write_text(json.dumps({"model_card": model_card(model, splits=trained_on)}))
    renamed = tmp_path / "renamed"
    shutil.copytree(data, renamed)
    os.rename(renamed / "zero", renamed / "a_zero")
    flags = ("--dataset", "folder", "--data-path", str(renamed), "--image-size", "8")
    expected = ("was trained on the classes one, two, zero (in label order) but the data has a_zero, one, two: "
                "class id 0 is 'one' for the {what} and 'a_zero' for the data")
    status, _, err = run_cli(capsys, "evaluate", teacher, *flags)
    assert status == 2 and err.startswith("keras-mixkd evaluate: error: The model ")
    assert expected.format(what="model") in err and "rename the class subfolders" in err
    status, _, err = run_cli(capsys, "distill", "--teacher", teacher, "--student", "digits_cnn_small", *flags,
                             "--epochs", "1", "--output", str(tmp_path / "s.keras"))
    assert status == 2 and err.startswith("keras-mixkd distill: error: The teacher ")
    assert expected.format(what="teacher") in err
    assert not os.path.exists(tmp_path / "s.keras.work")
    # The same classes in another order, and another count, are refused too; the data it was trained on is not.
    from keras_mixkd.models.model_card import check_class_names
    from keras_mixkd.saving import load_model

    card = {"class_names": list(CLASSES)}
    with pytest.raises(ValueError, match="the same classes in another order"):
        check_class_names(card, ("two", "one", "zero"))
    with pytest.raises(ValueError, match="3 classes against 2"):
        check_class_names(card, ("one", "two"))
    check_class_names(None, ("a", "b"))  # a user's model without a card: nothing to compare
    assert load_model(teacher, num_classes=3, class_names=CLASSES).output_shape == (None, 3)


def test_a_study_teacher_is_checked_against_the_data_classes(tmp_path):
    """`load_teacher` (what every distillation cell of a study loads) compares the teacher's card with the data."""
    from keras_mixkd.models import get_model
    from keras_mixkd.study.cell_execution import load_teacher

    models, cells = tmp_path / "models", tmp_path / "cells"
    models.mkdir()
    cells.mkdir()
    path = str(models / "teacher__a.keras")
    get_model("digits_cnn_small", 3, (8, 8, 1)).save(path)
    (cells / "teacher__a.json").write_text(json.dumps({"model_card": {"class_names": list(CLASSES)}}))
    assert load_teacher(path, 3, CLASSES).output_shape == (None, 3)
    with pytest.raises(ValueError, match=f"The teacher {path} was trained on the classes one, two, zero"):
        load_teacher(path, 3, ("a_zero", "one", "two"))


@pytest.mark.backend_independent
def test_messages_count_epochs_name_the_output_and_say_plus_joins(capsys, tmp_path):
    """Issue #26, also seen: "1 epochs"; `t.keras.work` in a folder error; no hint that '+' joins augmentations."""
    from keras_mixkd.study.milestones import fit_milestones

    assert fit_milestones([9], 12, 1, "teacher")[1].startswith("note: teacher: 1 epoch instead of the recipe's 12")
    assert fit_milestones([9], 12, 1, "teacher", keep=True)[1].startswith("warning: teacher runs 1 epoch;")
    assert fit_milestones([9], 12, 2, "teacher")[1].startswith("note: teacher: 2 epochs instead")
    status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", "--augmentation", "mixup+flip",
                             "--output", str(tmp_path / "t.keras"))
    assert status == 2
    assert "--augmentation mixup+flip: unknown augmentation 'flip'" in err and "'+' joins several" in err
    status, _, err = run_cli(capsys, "study", "--dry-run", "--set", 'teacher.augmentations=["mixup,cutmix"]')
    assert status == 2 and "'+' joins several, e.g. 'standard+mixup'" in err
    from keras_mixkd.augment import get_augmentation

    with pytest.raises(ValueError, match="'\\+' joins several"):
        get_augmentation("mixup+cutmix")


@pytest.mark.backend_independent
def test_an_output_that_cannot_be_written_is_named_as_given(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    open("t.keras.work", "w").close()  # something in the way of the work folder
    status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", "--epochs", "1",
                             "--output", "t.keras")
    assert status == 2, err
    assert err.startswith("keras-mixkd train-teacher: error: --output t.keras: cannot write its work folder "
                          "t.keras.work (where an interrupted run continues): File exists.")


def test_training_flags_reach_the_training(capsys, tmp_path):
    """Issue #26, also seen: --batch-size, --learning-rate, --image-size, --set; distill --distillation-loss-weight."""
    teacher, student = str(tmp_path / "t.keras"), str(tmp_path / "s.keras")
    common = ("--epochs", "1", "--set", "data.train_examples=64", "--image-size", "10x12")
    run_cli_ok(capsys, "train-teacher", "--model", "digits_cnn_small", *common, "--batch-size", "16",
               "--learning-rate", "0.02", "--set", "teacher.optimizer.momentum=0.5", "--output", teacher)
    record = json.load(open(teacher + ".json"))
    assert record["batch_size"] == 16 and record["input_shape"] == [10, 12, 1]
    assert record["optimizer"]["learning_rate"] == 0.02 and record["optimizer"]["momentum"] == 0.5
    model = keras.saving.load_model(teacher)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 64 // 16  # 4 steps of 16
    run_cli_ok(capsys, "distill", "--teacher", teacher, "--student", "digits_cnn_small", *common, "--batch-size",
               "32", "--learning-rate", "0.03", "--loss", "standardized", "--distillation-loss-weight", "9",
               "--output", student)
    record = json.load(open(student + ".json"))
    assert record["distillation_loss_weight"] == 9.0 and record["student_loss_weight"] == 0.1
    assert record["batch_size"] == 32 and record["optimizer"]["learning_rate"] == 0.03
    assert record["input_shape"] == [10, 12, 1]


@pytest.mark.backend_independent
def test_training_flags_are_checked(capsys, tmp_path):
    output = str(tmp_path / "t.keras")
    for flags, message in ((("--image-size", "0x8"), "argument --image-size: expected SIZE or HEIGHTxWIDTH"),
                           (("--set", "teacher.lr=0.1"), "Unknown setting 'teacher.lr'"),
                           (("--batch-size", "0"), "batch_size"),
                           (("--epochs", "2", "--set", "teacher.epochs=3"), "--epochs 2 and --set teacher.epochs=3")):
        status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", *flags, "--output", output)
        assert status == 2 and message in err, err
    status, _, err = run_cli(capsys, "distill", "--teacher", output, "--student", "digits_cnn_small",
                             "--distillation-loss-weight", "-1", "--output", output)
    assert status == 2 and "--distillation-loss-weight must be >= 0, got -1" in err


@pytest.mark.backend_independent
def test_augmentation_sizes_that_cannot_fit_the_images_are_refused(capsys, tmp_path):
    """Issue #26, also seen: `--option cutout.size=100` on 8x8 images was accepted (the hole blanked every image)."""
    status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", "--augmentation", "cutout",
                             "--option", "cutout.size=100", "--output", str(tmp_path / "t.keras"))
    assert status == 2, err
    assert ("augmentation 'cutout': size 100 does not fit 8x8 images: at most 8 px" in err
            and "--option cutout.size=N" in err)
    status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", "--augmentation", "standard",
                             "--option", "standard.padding=8", "--output", str(tmp_path / "t.keras"))
    assert status == 2 and "padding 8 does not fit 8x8 images: at most 7 px" in err
    assert not os.path.exists(tmp_path / "t.keras.work")
    # The study's check (--dry-run, and a run before any training) names the recipe key.
    status, _, err = run_cli(capsys, "study", "--dry-run", "--set", "teacher.augmentation_options={cutout={size=100}}")
    assert status == 2 and "teacher.augmentation_options.cutout.size: augmentation 'cutout': size 100" in err
    run_cli_ok(capsys, "study", "--dry-run", "--set", "teacher.augmentation_options={cutout={size=8}}")
    # An .npz file's image size is known once loaded: the run refuses it there, before training.
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x_train=rng.random((40, 6, 6, 1)).astype("float32"), y_train=np.arange(40) % 2,
             x_test=rng.random((10, 6, 6, 1)).astype("float32"), y_test=np.arange(10) % 2)
    status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", "--augmentation", "cutout",
                             "--option", "cutout.size=7", "--dataset", "npz", "--data-path", str(data),
                             "--output", str(tmp_path / "t.keras"))
    assert status == 2 and "size 7 does not fit 6x6 images: at most 6 px" in err
    from keras_mixkd.study.check import check_augmentation_sizes
    from keras_mixkd.study.config import RecipeError
    from tests.helpers import tiny_config

    config = tiny_config(**{"distillation": [{"name": "c", "augmentation": "cutout",
                                              "augmentation_options": {"cutout": {"size": 7}}}]})
    check_augmentation_sizes(config, (8, 8))
    with pytest.raises(RecipeError, match="distillation.*cutout.size: augmentation 'cutout': size 7 does not fit 6x6"):
        check_augmentation_sizes(config, (6, 6))


def _own_sequential(splits, name):
    """A user's `keras.Sequential` trained on digits images as loaded, in [0, 1] (no normalisation layer)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(splits.input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu", name="features"),
                              keras.layers.Dense(splits.num_classes, name="logits")], name=name)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(splits.x_train, splits.y_train, epochs=3, batch_size=64, verbose=0)
    return model


def test_measure_feeds_a_model_of_images_in_0_1_as_told(capsys, tmp_path):
    """Issue #26, 5: a Sequential trained on [0, 1] images gives its Keras accuracy through `measure` when told
    (`--input-normalized no`)."""
    from keras_mixkd.study.data_prep import prepare_data
    from keras_mixkd.study.single_run import RunSettings

    data = prepare_data(RunSettings.from_recipe("student", "digits").data)  # what `measure` measures on
    model = _own_sequential(data, "own_sequential_26")
    path = str(tmp_path / "own.keras")
    model.save(path)
    logits = keras.ops.convert_to_numpy(model.predict(data.x_test, verbose=0))
    keras_accuracy = float(np.mean(np.argmax(logits, 1) == data.y_test))
    values = tmp_path / "m.json"
    run_cli_ok(capsys, "measure", path, "--input-normalized", "no", "--measures", "accuracy", "--json", str(values))
    assert json.load(open(values))["accuracy"] == pytest.approx(keras_accuracy, abs=1e-6)
    # Left out (auto), the warning names the flag; yes on a model that normalises inside is refused.
    from keras_mixkd.study import measuring

    measuring._WARNED_NO_PREPROCESSING.discard("own_sequential_26")
    with pytest.warns(UserWarning, match="--input-normalized no on the command line"):
        run_cli_ok(capsys, "measure", path, "--measures", "accuracy")
    from keras_mixkd.models import get_model
    from keras_mixkd.models import with_preprocessing

    inside = str(tmp_path / "inside.keras")
    with_preprocessing(get_model("digits_cnn_small", 10, (8, 8, 1)), data.normalization).save(inside)
    status, _, err = run_cli(capsys, "evaluate", inside, "--input-normalized", "yes")
    assert status == 2 and "--input-normalized yes: model 'digits_cnn_small' already normalises its input" in err


def test_distill_and_export_take_the_input_normalized_flag(capsys, tmp_path, splits):
    from keras_mixkd.study import measuring
    from keras_mixkd.study.single_run import export_normalization

    path = str(tmp_path / "own.keras")
    _own_sequential(splits, "own_teacher_26").save(path)
    measuring._WARNED_NO_PREPROCESSING.discard("own_teacher_26")
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*has no normalisation inside.*")
        run_cli_ok(capsys, "distill", "--teacher", path, "--student", "digits_cnn_small", "--input-normalized", "no",
                   "--epochs", "1", "--set", "data.train_examples=64", "--output", str(tmp_path / "s.keras"))
    assert export_normalization(path, "auto") is None
    assert export_normalization(path, "no") == (0.0, 1.0)  # the identity: the SavedModel takes [0, 1] as it did
    with pytest.raises(ValueError, match="name that data \\(--dataset"):
        export_normalization(path, "yes")
    mean, std = export_normalization(path, "yes", dataset="digits")
    assert len(mean) == len(std) == 1 and 0.0 < mean[0] < 1.0
    status, _, err = run_cli(capsys, "export", path, str(tmp_path / "out"), "--input-normalized", "yes")
    assert status == 2 and "name that data" in err


@pytest.mark.backend_independent
def test_the_study_check_refuses_a_folder_layout_it_does_not_understand(capsys, tmp_path):
    _write_classes(tmp_path / "data" / "train", per_class=1)
    _write_classes(tmp_path / "data" / "validation", per_class=1)
    status, _, err = run_cli(capsys, "study", "--dry-run", "--dataset", "folder", "--data-path",
                             str(tmp_path / "data"))
    assert status == 2 and "data.path: Image folder" in err and "not a layout the folder data set understands" in err
