"""The command line is a face: what it computes lives in the library, under public names.

Milestone scaling, `--only` checks, data-source checks, augmentation options,
distillation recipes, descriptions of models and data sets; and the face
itself holds no function-level import and rewrites no library message.
"""

import ast
import os

import pytest

from keras_mixkd import cli
from keras_mixkd.catalog import list_entries
from keras_mixkd.data import check_data_source
from keras_mixkd.data import describe_dataset
from keras_mixkd.data import list_datasets
from keras_mixkd.study import enumerate_cells
from keras_mixkd.study import load_recipe
from keras_mixkd.study import scale_milestones
from keras_mixkd.study.milestones import fit_milestones
from keras_mixkd.study.milestones import milestone_epochs
from keras_mixkd.study.milestones import study_config
from keras_mixkd.study.selection import check_only
from keras_mixkd.study.selection import choose_cells
from keras_mixkd.study.selection import parse_only
from keras_mixkd.study.single_run import RunSettings
from keras_mixkd.study.single_run import augmentation_options
from keras_mixkd.study.single_run import check_output
from keras_mixkd.study.single_run import distillation_recipe

CLI_DIR = os.path.dirname(cli.__file__)


def test_the_face_has_no_function_level_imports_and_is_small():
    for name in os.listdir(CLI_DIR):
        if not name.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(CLI_DIR, name)).read())
        inner = [(function.name, node.lineno) for function in ast.walk(tree) if isinstance(function, ast.FunctionDef)
                 for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))]
        # The report's plotting library (matplotlib): --help and list stay quick; the study runner, RunOptions
        # (which import Keras): after --backend has chosen the backend.
        assert sorted(set(function for function, _ in inner)) in ([], ["cmd_report", "cmd_study"]), \
            f"{name}: imports inside {inner}"
        assert sum(1 for _ in open(os.path.join(CLI_DIR, name))) <= 400
    for gone in ("cli_advice", "_CLI_ADVICE", "_load_model", "_DATASETS", "_model_description", "CommandError"):
        assert not hasattr(cli, gone)


def test_fit_milestones_scales_as_scale_milestones_and_says_so():
    for milestones, recipe_epochs, epochs in (([150, 180, 210], 240, 24), ([9], 12, 4), ([30, 60], 90, 300)):
        scaled, note = fit_milestones(milestones, recipe_epochs, epochs, "student")
        assert scaled == scale_milestones(milestones, recipe_epochs, epochs)
        assert note.startswith(f"note: student: {epochs} epochs instead of the recipe's {recipe_epochs}")
        assert f"{milestones} scaled to {scaled}" in note
    assert fit_milestones([9], 12, 12, "teacher") == ([9], None)
    assert fit_milestones([], 12, 4, "teacher") == ([], None)
    kept, warning = fit_milestones([3, 9], 12, 6, "teacher", keep=True, flag="keep_milestones=True")
    assert kept == [3, 9] and warning.startswith("warning:") and "[9] (kept by keep_milestones=True)" in warning
    assert fit_milestones([3], 12, 6, "teacher", keep=True) == ([3], None)


def test_study_config_returns_the_notes_instead_of_printing(capsys):
    config, notes = study_config("digits", overrides={"teacher.epochs": 24})
    recipe = load_recipe("digits")["teacher"]
    assert config["teacher"]["optimizer"]["milestones"] == scale_milestones(
        recipe["optimizer"]["milestones"], recipe["epochs"], 24)
    assert len(notes) == 1 and "scaled to" in notes[0]
    # KEY=VALUE strings as --set takes them; explicit milestones are used as given.
    config, notes = study_config("digits", overrides=["teacher.epochs=6", "teacher.optimizer.milestones=[2]"])
    assert config["teacher"]["optimizer"]["milestones"] == [2] and notes == []
    config, notes = study_config("digits", smoke=True, overrides={"teacher.epochs": 4})
    assert milestone_epochs("digits", True, "teacher") in (load_recipe("digits")["teacher"]["epochs"],
                                                           load_recipe("digits", smoke=True)["teacher"]["epochs"])
    assert capsys.readouterr().out == ""
    with pytest.raises(TypeError, match="overrides must be a dict or a list"):
        study_config("digits", overrides="teacher.epochs=4")


def test_only_is_parsed_checked_and_chosen():
    config = load_recipe("digits")
    assert parse_only(["seed=0,1", "seed=2", "recipe=kd"]) == {"seed": ["0", "1", "2"], "recipe": ["kd"]}
    with pytest.raises(ValueError, match="--only expects FIELD=VALUE"):
        parse_only(["seed"])
    chosen = choose_cells(config, {"teacher_augmentation": ["mixup"]})
    assert chosen and {c.teacher_augmentation for c in chosen if c.kind != "alone"} == {"mixup"}
    with pytest.raises(ValueError, match="'mixpu' matches no cell.*valid values of teacher_augmentation"):
        choose_cells(config, {"teacher_augmentation": ["mixpu"]})
    cells = enumerate_cells(config)
    with pytest.raises(ValueError, match="together these match no cell"):
        check_only(cells, {"kind": ["teacher"], "recipe": ["kd"]}, [])
    assert choose_cells(config) == cells


def test_data_sources_are_described_and_checked_in_their_registry(tmp_path):
    assert [name for name, _ in list_entries("datasets")] == list_datasets()
    assert all(describe_dataset(name) for name in list_datasets())
    with pytest.raises(ValueError, match="Unknown data set 'mnist'.*--dataset.*known: digits"):
        check_data_source("mnist")
    with pytest.raises(ValueError, match="'npz' data set needs a path.*--data-path"):
        check_data_source("npz", None, need_path=True)
    with pytest.raises(FileNotFoundError, match="no.npz: no such file"):
        check_data_source("npz", str(tmp_path / "no.npz"))
    check_data_source("npz", None)  # a path is only required where loading would need it


def test_models_and_augmentations_are_described_in_their_registry():
    from keras_mixkd.models import describe_model
    from keras_mixkd.models import list_models

    entries = dict(list_entries("models"))
    assert sorted(entries) == list_models() and all(entries.values())
    assert describe_model("MobileNetV2") == describe_model("mobile_half") == entries["mobilenetv2"]
    assert describe_model("wrn_16_2") == "Wide ResNet, depth 16, width 2"
    with pytest.raises(ValueError, match="Unknown model 'resnet9'"):
        describe_model("resnet9")
    with pytest.raises(ValueError, match="Cannot list 'colours'"):
        list_entries("colours")
    recipes = dict(list_entries("recipes"))
    assert recipes["digits"].endswith("digits.toml")


def test_run_settings_fit_epochs_and_options_to_the_run():
    settings = RunSettings.from_recipe("teacher", "digits", epochs=6)
    table = load_recipe("digits")["teacher"]
    assert settings.epochs == 6
    assert settings.optimizer["milestones"] == scale_milestones(table["optimizer"]["milestones"], table["epochs"], 6)
    assert settings.notes and settings.notes[0].startswith("note: teacher: 6 epochs")
    for epochs in (0, -2, 1.5):
        with pytest.raises(ValueError, match=f"--epochs must be a whole number >= 1, got {epochs}"):
            RunSettings.from_recipe("teacher", "digits", epochs=epochs)
    with pytest.raises(ValueError, match="role must be 'teacher' or 'student'"):
        RunSettings.from_recipe("coach", "digits")
    settings = RunSettings.from_recipe("student", "digits", options=["mixup.alpha=0.2"], augmentations=["mixup"])
    assert settings.augmentation_options["mixup"]["alpha"] == 0.2
    with pytest.raises(ValueError, match=r"--option cutout.size=2 is an option of augmentation 'cutout', which "
                                         r"this run does not use \(augmentations in use: mixup\)"):
        RunSettings.from_recipe("student", "digits", options=["cutout.size=2"], augmentations=["mixup"])
    with pytest.raises(ValueError, match="--option expects AUGMENTATION.KEY=VALUE"):
        augmentation_options(load_recipe("digits"), "student", load_recipe("digits")["data"], ["mixup"], ["alpha=1"])


def test_distillation_recipe_and_output_checks(tmp_path):
    recipe = distillation_recipe(augmentation="standard+partial_mixup", fraction=0.25, alpha=0.4,
                                 augmentation_options={"standard": {"padding": 1}})
    assert recipe["augmentation"] == ["standard+partial_mixup"]
    assert recipe["augmentation_options"] == {"standard": {"padding": 1},
                                              "partial_mixup": {"fraction": 0.25, "alpha": 0.4}}
    with pytest.raises(ValueError, match="--alpha must be > 0"):
        distillation_recipe(augmentation="mixup", alpha=0)
    # Refused, not dropped, without an augmentation that takes them.
    with pytest.raises(ValueError, match=r"--fraction 0.5 \(fraction= in Python\) is an option of augmentation "
                                         r"'partial_mixup'.*in use: mixup\)"):
        distillation_recipe(augmentation="mixup", fraction=0.5)
    with pytest.raises(ValueError, match=r"--alpha 0.2 \(alpha= in Python\) is an option of the augmentations "
                                         r"'mixup', .*in use: standard\)"):
        distillation_recipe(augmentation="standard", alpha=0.2)
    for fraction in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="--fraction must lie in \\(0, 1\\]"):
            distillation_recipe(augmentation="partial_mixup", fraction=fraction)
    existing = tmp_path / "t.keras"
    existing.write_bytes(b"x")
    with pytest.raises(FileExistsError, match="already exists; pass --overwrite \\(overwrite=True\\)"):
        check_output(str(existing))
    check_output(str(existing), overwrite=True)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_output(str(tmp_path))
    with pytest.raises(ValueError, match="cannot create its folder"):
        check_output(str(existing / "s.keras"))
