"""The typed arguments of the study API: `RunOptions`, `TrainingSettings`, `CellFolders`, and the former keywords."""

import dataclasses

import pytest

from keras_mixkd.study import CellFolders
from keras_mixkd.study import RunOptions
from keras_mixkd.study import TrainingSettings
from keras_mixkd.study import load_recipe

pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize("kwargs, message", [
    ({"verbose": 3}, "verbose must be 'auto', 0, 1 or 2; got 3"),
    ({"precision": "float16"}, "precision must be one of float32, mixed_float16, mixed_bfloat16; got 'float16'"),
    ({"devices": 0}, "devices must be a whole number >= 1 \\(or None\\); got 0"),
    ({"tensorboard": "yes"}, "tensorboard must be True or False; got 'yes'"),
])
def test_run_options_refuse_bad_values(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        RunOptions(**kwargs)


def test_run_options_take_the_former_keywords_with_a_warning():
    keywords = {"verbose": 0, "group_students": False, "threads": 2}
    with pytest.warns(DeprecationWarning, match="pass options=RunOptions"):
        options = RunOptions.from_keywords(None, keywords, "run_study")
    assert options == RunOptions(verbose=0, group_students=False)
    assert keywords == {"threads": 2}  # what is not a run option is left for the executor


def test_training_settings_of_a_recipe():
    config = load_recipe("digits")
    teacher, student = (TrainingSettings.from_config(config, role) for role in ("teacher", "student"))
    assert teacher.epochs == config["teacher"]["epochs"] and student.epochs == config["student"]["epochs"]
    assert teacher.optimizer == config["teacher"]["optimizer"]
    assert teacher.batch_size == student.batch_size == config["data"]["batch_size"]
    assert student.augmentation == tuple(config["student"]["augmentation"]) and teacher.augmentation == ("none",)
    assert teacher.measure == config["measure"]
    assert teacher.backup_interval == config["backup_interval_seconds"]
    with pytest.raises(ValueError, match="role must be 'teacher' or 'student'; got 'pupil'"):
        TrainingSettings.from_config(config, "pupil")


def test_training_settings_from_the_former_keywords():
    config = load_recipe("digits")
    keywords = {"epochs": 3, "optimizer": config["student"]["optimizer"], "student_augmentation": ["standard"],
                "verbose": 0}
    with pytest.warns(DeprecationWarning, match="pass settings=TrainingSettings"):
        settings = TrainingSettings.from_keywords(None, keywords, "distill_student")
    assert settings.epochs == 3 and settings.augmentation == ("standard",) and settings.batch_size == 64
    assert settings.measure["ece_bins"] > 0  # the default measure table
    assert keywords == {"verbose": 0}
    with pytest.raises(TypeError, match="not both"):
        TrainingSettings.from_keywords(settings, {"epochs": 2}, "distill_student")
    with pytest.raises(TypeError, match="missing required keyword argument\\(s\\): optimizer"):
        TrainingSettings.from_keywords(None, {"epochs": 2}, "train_teacher")
    with pytest.raises(TypeError, match="needs settings=TrainingSettings"):
        TrainingSettings.from_keywords(None, {}, "train_teacher")
    assert dataclasses.replace(settings, epochs=5).epochs == 5


def test_cell_folders_need_one_log_dir_per_work_dir():
    one = CellFolders.of_one("work/a", "logs/a")
    assert (one.backup_dir, one.work_dirs, one.log_dirs) == ("work/a", ("work/a",), ("logs/a",))
    assert CellFolders("g", ["a", "b"]).log_dirs == (None, None)
    with pytest.raises(ValueError, match="one log dir per work dir: 2 work dirs, 1 log dirs"):
        CellFolders("g", ["a", "b"], ["la"])


def test_run_study_refuses_executor_options_beside_an_executor(tmp_path):
    from keras_mixkd.study import run_study
    from keras_mixkd.study.executors import get_executor

    with pytest.raises(TypeError, match="belong to the executor"):
        run_study(load_recipe("digits", smoke=True), runs_dir=str(tmp_path), executor=get_executor("in_process"),
                  workers=2)
    assert not list(tmp_path.iterdir())  # refused before anything is written


def test_execute_cells_needs_one_work_dir_per_cell(tmp_path):
    from keras_mixkd.study import enumerate_cells
    from keras_mixkd.study import execute_cells

    config = load_recipe("digits", smoke=True)
    cells = [cell for cell in enumerate_cells(config) if cell.kind == "student"][:2]
    with pytest.raises(ValueError, match="one work dir per cell: 2 cells, 1 work dirs"):
        execute_cells(cells, config, None, teacher_path=None, folders=CellFolders.of_one(str(tmp_path)))
