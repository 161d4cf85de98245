"""The typed study spec: load-time checks with file and line, mapping compatibility, run-folder rules."""

import copy
import json
import pickle

import numpy as np
import pytest

from keras_mixkd import cli
from keras_mixkd import losses
from keras_mixkd.study import check_study
from keras_mixkd.study import load_recipe
from keras_mixkd.study.config import RecipeError
from keras_mixkd.study.run_folder import RunFolder
from keras_mixkd.study.run_folder import config_differences
from keras_mixkd.study.spec import DistillationRecipe
from keras_mixkd.study.spec import StudySpec
from keras_mixkd.study.spec import TeacherSpec
from keras_mixkd.study.spec import spec_differences

BASE = """\
name = "t"
seeds = [0]

[teacher]
augmentations = ["none", "mixup"]

[teacher.augmentation_options.mixup]
alpha = 1.0

[[pairs]]
teacher = "digits_cnn"
student = "digits_cnn_small"

[[distillation]]
name = "kd"

[[distillation]]
name = "pmu"
augmentation = "partial_mixup"

[distillation.augmentation_options.partial_mixup]
fraction = 0.25
"""


def _recipe(tmp_path, text, name="recipe.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _line(text, needle):
    return text.splitlines().index(needle) + 1


@pytest.mark.parametrize(
    "old,new,match",
    [
        ("[teacher.augmentation_options.mixup]", "[teacher.augmentation_options.mixpu]",
         r"line {line}: teacher\.augmentation_options\.mixpu: unknown augmentation 'mixpu'.*Did you mean 'mixup'"),
        ("fraction = 0.25", "fracton = 0.25",
         r"line {line}: distillation\[1\]\.augmentation_options\.partial_mixup\.fracton: Unknown option 'fracton'"
         r".*Did you mean 'fraction'"),
        ("alpha = 1.0", "alpah = 1.0",
         r"line {line}: teacher\.augmentation_options\.mixup\.alpah: .*Did you mean 'alpha'"),
        ("alpha = 1.0", "alpha = -1.0",
         r"line {line}: teacher\.augmentation_options\.mixup\.alpha: augmentation 'mixup': alpha must be > 0"),
        ("fraction = 0.25", "fraction = 1.5",
         r"line {line}: distillation\[1\]\.augmentation_options\.partial_mixup\.fraction: .*fraction must be in"),
        ('augmentations = ["none", "mixup"]', 'augmentations = ["none", "mixpu"]',
         r"line {line}: teacher\.augmentations: unknown augmentation 'mixpu'.*Did you mean 'mixup'"),
        ('augmentation = "partial_mixup"', 'augmentation = "partial_mixpu"',
         r"line {line}: distillation\[1\]\.augmentation: unknown augmentation 'partial_mixpu'"),
    ],
)
def test_what_a_run_would_refuse_is_refused_at_load_with_file_and_line(tmp_path, old, new, match):
    text = BASE.replace(old, new, 1)
    path = _recipe(tmp_path, text)
    with pytest.raises(RecipeError, match=match.format(line=_line(text, new.strip()))) as error:
        load_recipe(path)
    assert str(error.value).startswith(path)


def test_an_options_table_of_an_augmentation_not_in_use_is_refused_with_file_and_line(tmp_path):
    text = BASE.replace('augmentations = ["none", "mixup"]', 'augmentations = ["none", "cutmix"]')
    with pytest.raises(RecipeError, match=rf"line {_line(text, 'alpha = 1.0')}: teacher\.augmentation_options\."
                                          r"mixup\.alpha: option 'mixup\.alpha' is an option of augmentation "
                                          r"'mixup', which this run does not use \(augmentations in use: cutmix\)"):
        load_recipe(_recipe(tmp_path, text))
    # The student's table serves every recipe: in use when one recipe mixes.
    text = BASE.replace('[[pairs]]', '[student.augmentation_options.partial_mixup]\nalpha = 0.5\n\n[[pairs]]')
    load_recipe(_recipe(tmp_path, text, "student.toml"))
    with pytest.raises(RecipeError, match=r"student\.augmentation_options\.partial_mixup\.alpha: .*in use: none\)"):
        load_recipe(_recipe(tmp_path, text.replace('augmentation = "partial_mixup"\n', ""), "unused.toml"))
    # A table of the recipe may go unused when the command line trains fewer augmentations;
    # one the command line sets must be in use.
    path = _recipe(tmp_path, BASE, "base.toml")
    assert load_recipe(path, overrides={"teacher.augmentations": ["none"]})["teacher"]["augmentations"] == ["none"]
    with pytest.raises(RecipeError, match=r"command line: teacher\.augmentation_options\.cutout\.size: "
                                          r"option 'cutout\.size' is an option of augmentation 'cutout'"):
        load_recipe(path, overrides={"teacher.augmentation_options": {"cutout": {"size": 2}}})


def test_the_line_of_a_later_array_entry_is_its_own(tmp_path):
    # Both recipes have an [distillation.augmentation_options.partial_mixup] table: the error
    # points at the second recipe's, not the first's.
    text = BASE.replace('name = "kd"\n', 'name = "kd"\naugmentation = "partial_mixup"\n\n'
                        '[distillation.augmentation_options.partial_mixup]\nfraction = 0.5\n')
    text = text.replace("fraction = 0.25", "fraction = 2.0")
    path = _recipe(tmp_path, text)
    with pytest.raises(RecipeError, match=rf"line {_line(text, 'fraction = 2.0')}: distillation\[1\]"):
        load_recipe(path)


def test_a_loss_option_is_checked_by_the_loss_registry_with_file_and_line(tmp_path):
    text = BASE.replace('name = "kd"\n', 'name = "kd"\nloss = "dkd"\nwarmup_epochs = -3\n')
    path = _recipe(tmp_path, text)
    with pytest.raises(RecipeError, match=rf"line {_line(text, 'warmup_epochs = -3')}: distillation\[0\]"
                                          r"\.warmup_epochs: expected an integer >= 0, got -3"):
        load_recipe(path)
    text = BASE.replace('name = "kd"\n', 'name = "kd"\ntemprature = 2.0\n')
    with pytest.raises(RecipeError, match=rf"line {_line(text, 'temprature = 2.0')}: .*unknown key "
                                          r"'temprature'.*Did you mean 'temperature'"):
        load_recipe(_recipe(tmp_path, text, "typo.toml"))


def test_loss_options_are_declared_beside_each_loss_and_checked_by_the_registry():
    assert [o.name for o in losses.loss_options("kd")] == ["temperature"]
    assert [o.name for o in losses.loss_options("standardized")] == ["std_ddof"]
    assert [o.name for o in losses.loss_options("lskd")] == ["temperature", "std_ddof"]
    assert [o.name for o in losses.loss_options("dkd")] == [o.name for o in losses.DecoupledDistillation.OPTIONS]
    assert losses.check_loss_options("dkd", {"beta": 2}) == {
        "alpha": 1.0, "beta": 2.0, "temperature": 4.0, "warmup_epochs": 20, "standardize": False, "std_ddof": 1}
    with pytest.raises(ValueError, match=r"takes no option\(s\) \['bta'\].*Did you mean 'beta'"):
        losses.check_loss_options("dkd", {"bta": 2.0})
    with pytest.raises(ValueError, match=r"`temperature` must be > 0; got temperature=0"):
        losses.get_loss("lskd", temperature=0)
    with pytest.raises(ValueError, match=r"Unknown distillation loss 'kdd'"):
        losses.loss_options("kdd")


def test_a_recipe_builds_its_loss_through_the_registry(rng):
    spec = load_recipe("methods_cifar100")
    recipes = {recipe.name: recipe for recipe in spec.distillation}
    dkd = recipes["dkd"]
    assert isinstance(dkd, DistillationRecipe)
    loss = dkd.build_loss()
    assert isinstance(loss, losses.DecoupledDistillation)
    assert (loss.alpha, loss.beta, loss.temperature, loss.warmup_epochs) == (
        dkd.alpha, dkd.beta, dkd.temperature, dkd.warmup_epochs)
    lskd = recipes["lskd"].build_loss()
    assert isinstance(lskd, losses.KnowledgeDistillation) and lskd.standardize
    # The built loss computes what the same loss built by hand computes.
    teacher = rng.normal(size=(6, 10)).astype("float32") * 3.0 + 50.0
    student = rng.normal(size=(6, 10)).astype("float32") * 3.0 + 50.0
    by_hand = losses.KnowledgeDistillation(temperature=recipes["lskd"].temperature, standardize=True)
    np.testing.assert_allclose(np.asarray(lskd(teacher, student)), np.asarray(by_hand(teacher, student)),
                               rtol=1e-6)


def test_the_spec_is_typed_and_still_the_dict_of_earlier_versions():
    spec = load_recipe("digits", smoke=True)
    assert isinstance(spec, StudySpec) and isinstance(spec, dict)
    assert isinstance(spec.teacher, TeacherSpec)
    assert spec.student.epochs == spec["student"]["epochs"]
    assert spec.teacher.optimizer.milestones == spec["teacher"]["optimizer"]["milestones"]
    recipe = spec["distillation"][0]
    assert isinstance(recipe, DistillationRecipe) and recipe["loss"] == recipe.loss
    assert recipe.get("teacher_outputs", "logits") == "logits"
    assert list(spec) == list(StudySpec.FIELDS) + ["recipe"]
    plain = spec.to_dict()
    assert type(plain) is dict and type(plain["distillation"][0]) is dict
    assert json.loads(json.dumps(spec)) == plain
    copied = copy.deepcopy(spec)
    assert type(copied.distillation[0]) is DistillationRecipe and copied == spec
    assert pickle.loads(pickle.dumps(spec)) == spec
    spec["student"]["epochs"] = 3  # callers that edit a table in place keep working
    assert spec.student.epochs == 3
    assert spec.source["smoke"] is True


def test_a_relative_data_path_is_read_next_to_the_recipe_file(tmp_path, monkeypatch):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "arrays.npz").write_bytes(b"")
    path = _recipe(folder, BASE.replace('seeds = [0]\n', 'seeds = [0]\n\n[data]\ndataset = "npz"\n'
                                                          'path = "arrays.npz"\n'))
    monkeypatch.chdir(tmp_path)
    spec = load_recipe(path)
    assert spec.data.path == str(folder / "arrays.npz")
    overridden = load_recipe(path, overrides={"data.path": "elsewhere.npz"})  # a flag: the working folder
    assert overridden.data.path == "elsewhere.npz"


def test_a_changed_value_is_one_dotted_line():
    config = load_recipe("digits", smoke=True)
    changed = copy.deepcopy(config)
    changed["distillation"][0]["temperature"] = 8.0
    assert config_differences(config, changed) == ["distillation[0].temperature: 4.0 -> 8.0"]
    assert spec_differences({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}) == ["a.b: [1, 2] -> [1, 3]"]


def _open_with_cells(tmp_path, config):
    folder = RunFolder(tmp_path / "run")
    folder.open(config)
    folder.write_cell("teacher__digits_cnn__none__s0", {"role": "teacher"})
    return folder


def test_new_seeds_and_recipes_extend_a_finished_study(tmp_path):
    config = load_recipe("digits", smoke=True, overrides={"seeds": [0]})
    folder = _open_with_cells(tmp_path, config)
    extended = load_recipe("digits", smoke=True, overrides={"seeds": [0, 1]})
    extended["distillation"] = extended["distillation"] + [dict(extended["distillation"][0], name="kd_T8",
                                                                temperature=8.0)]
    folder.open(extended)
    assert folder.is_done("teacher__digits_cnn__none__s0")
    manifest = folder.read_manifest()
    assert manifest["config"]["seeds"] == [0, 1]
    assert [r["name"] for r in manifest["config"]["distillation"]][-1] == "kd_T8"
    folder.open(extended)  # the extended study continues
    changed = copy.deepcopy(extended)
    changed["distillation"][0]["temperature"] = 8.0
    with pytest.raises(ValueError, match=r"another config \(distillation\[0\]\.temperature: 4\.0 -> 8\.0\)"):
        folder.open(changed)
    with pytest.raises(ValueError, match=r"seeds: 1 dropped \(a study is extended by new entries, not shrunk"):
        folder.open(config)


def test_a_runs_folder_of_the_dict_config_still_resumes(tmp_path):
    config = load_recipe("digits", smoke=True)
    folder = RunFolder(tmp_path / "run")
    folder.open(config.to_dict())  # what earlier versions wrote: the plain dict
    before = (tmp_path / "run" / "study.json").read_text()
    folder.open(config)
    assert (tmp_path / "run" / "study.json").read_text() == before


def test_check_study_refuses_what_a_run_refuses_and_writes_nothing(tmp_path):
    config = load_recipe("digits", smoke=True, overrides={"seeds": [0, 1, 2]})
    assert check_study(config, str(tmp_path), "s") is None
    assert not (tmp_path / "s").exists()
    RunFolder(tmp_path / "s").open(config)
    fewer = load_recipe("digits", smoke=True, overrides={"seeds": [0, 1]})
    with pytest.raises(ValueError, match=r"seeds: 2 dropped"):
        check_study(fewer, str(tmp_path), "s")
    more = load_recipe("digits", smoke=True, overrides={"seeds": [0, 1, 2, 3]})
    assert check_study(more, str(tmp_path), "s")["config"]["seeds"] == [0, 1, 2, 3]
    assert RunFolder(tmp_path / "s").read_manifest()["config"]["seeds"] == [0, 1, 2]  # nothing written
    npz = load_recipe("digits", smoke=True, overrides={"data.dataset": "npz", "data.path": str(tmp_path / "x")})
    with pytest.raises(RecipeError, match=r"data\.path: .*x: no such file or folder"):
        check_study(npz, str(tmp_path), "n")


def test_dry_run_refuses_with_file_and_line_or_the_folder_difference(tmp_path, capsys):
    text = BASE.replace("fraction = 0.25", "fraction = 1.5")
    path = _recipe(tmp_path, text)
    status = cli.main(["study", "--recipe", path, "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 2 and f"{path}, line {_line(text, 'fraction = 1.5')}" in err and "fraction" in err
    good = _recipe(tmp_path, BASE, "good.toml")
    RunFolder(tmp_path / "runs" / "t").open(load_recipe(good, overrides={"seeds": [0, 1]}))
    status = cli.main(["study", "--recipe", good, "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 2 and "seeds: 1 dropped" in err
    status = cli.main(["study", "--recipe", good, "--seeds", "0", "1", "2", "--dry-run",
                       "--runs-dir", str(tmp_path / "runs")])
    assert status == 0 and "cell" in capsys.readouterr().out


def test_a_recipe_table_replaces_the_students_as_a_run_builds_it(tmp_path):
    # The student's mixup options are refused only where a recipe uses them without its own table.
    text = BASE.replace('[[pairs]]', '[student.augmentation_options.mixup]\nalpha = -2.0\n\n[[pairs]]')
    text = text.replace('augmentation = "partial_mixup"', 'augmentation = "mixup"')
    text = text.replace("[distillation.augmentation_options.partial_mixup]\nfraction = 0.25",
                        "[distillation.augmentation_options.mixup]\nalpha = 0.5")
    load_recipe(_recipe(tmp_path, text))  # the recipe's own table replaces the student's: alpha 0.5
    text = text.replace('name = "kd"\n', 'name = "kd"\naugmentation = "mixup"\n')
    with pytest.raises(RecipeError, match=rf"line {_line(text, 'alpha = -2.0')}: student\.augmentation_options"
                                          r"\.mixup\.alpha: augmentation 'mixup': alpha must be > 0"):
        load_recipe(_recipe(tmp_path, text, "second.toml"))
