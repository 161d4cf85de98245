"""The methods recipe: its [[distillation]] keys, checked, and a smoke run of every method."""

import numpy as np
import pytest

from keras_mixkd.study.config import RecipeError
from keras_mixkd.study.config import load_recipe

GOOD = """
name = "mine"
seeds = [0]
[[pairs]]
teacher = "digits_cnn"
student = "digits_cnn_small"
[[distillation]]
name = "m"
"""


def _write(tmp_path, extra):
    path = tmp_path / "recipe.toml"
    path.write_text(GOOD + extra)
    return str(path)


@pytest.mark.backend_independent
def test_methods_recipe_names_every_method_at_its_reference_setting():
    config = load_recipe("methods_cifar100")
    recipes = {r["name"]: r for r in config["distillation"]}
    assert list(recipes) == ["kd", "dkd", "lskd", "dkd_ls", "fitnet_kd"]
    assert config["teacher"]["augmentations"] == ["standard", "standard+mixup"]
    assert config["seeds"] == [0, 1, 2]
    assert (config["pairs"][0]["teacher"], config["pairs"][0]["student"]) == ("resnet32x4", "resnet8x4")
    dkd = recipes["dkd"]
    assert (dkd["alpha"], dkd["beta"], dkd["temperature"], dkd["warmup_epochs"]) == (1.0, 8.0, 4.0, 20)
    assert (dkd["student_loss_weight"], dkd["distillation_loss_weight"]) == (1.0, 1.0)
    lskd = recipes["lskd"]
    assert (lskd["temperature"], lskd["student_loss_weight"], lskd["distillation_loss_weight"]) == (2.0, 0.1, 9.0)
    assert recipes["dkd_ls"]["standardize"] and recipes["fitnet_kd"]["feature_loss_weight"] == 100.0


def test_recipe_loss_keys_reach_the_distiller():
    from keras_mixkd import losses
    from keras_mixkd.study.training import distiller_loss_arguments

    recipes = {r["name"]: r for r in load_recipe("methods_cifar100")["distillation"]}
    dkd = distiller_loss_arguments(recipes["dkd_ls"])
    assert isinstance(dkd["loss"], losses.DecoupledDistillation)
    assert (dkd["loss"].beta, dkd["loss"].standardize, dkd["loss"].temperature) == (8.0, True, 2.0)
    assert dkd["distillation_loss_weight"] == 1.0
    fitnet = distiller_loss_arguments(recipes["fitnet_kd"])
    assert isinstance(fitnet["feature_loss"], losses.FeatureDistillation)
    assert fitnet["feature_loss_weight"] == 100.0 and "distillation_loss_weight" not in fitnet


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "extra,match",
    [
        ('loss = "dkdd"', r"line 9: distillation\[0\].loss: expected one of kd, standardized, lskd, dkd, got 'dkdd'"),
        ('loss = "dkd"\nalpha = -1', r"line 10: distillation\[0\].alpha: expected a number >= 0, got -1"),
        ('loss = "dkd"\nbeta = "8"', r"line 10: distillation\[0\].beta: expected a number >= 0, got '8'"),
        ('loss = "dkd"\nwarmup_epochs = 2.5', r"line 10: distillation\[0\].warmup_epochs: expected an integer >= 0"),
        ('loss = "dkd"\nstandardize = 1', r"line 10: distillation\[0\].standardize: expected true or false"),
        ('std_ddof = 2', r"line 9: distillation\[0\].std_ddof: expected 0 \(population std\) or 1"),
        ('distillation_loss_weight = -0.5', r"distillation_loss_weight: expected a number >= 0, or -1"),
        ('feature_loss_weight = -1', r"line 9: distillation\[0\].feature_loss_weight: expected a number >= 0"),
        ('feature_layer = ""', r"line 9: distillation\[0\].feature_layer: expected a name"),
        ('loss = "kd"\nbeta = 2.0', r"line 10: distillation\[0\].beta: 'beta' is an option of loss 'dkd', but this recipe's loss is 'kd'"),
        ('loss = "kd"\nstd_ddof = 0', r"'std_ddof' is an option of loss 'standardized' / 'lskd' / 'dkd'"),
        ('betta = 2.0', r"unknown key 'betta'.*Did you mean 'beta'"),
    ],
)
def test_every_new_recipe_key_is_refused_clearly_when_wrong(tmp_path, extra, match):
    with pytest.raises(RecipeError, match=match):
        load_recipe(_write(tmp_path, extra + "\n"))


# The recipe file is what this tests (its five methods' cells run in one study), and no backend changes
# it: it runs under one backend, as the other recipes' smoke runs (tests/test_study.py). Each method's
# training is tested under every backend: DKD with its warm-up inside the compiled step, LSKD and the
# FitNet projector in tests/test_distiller_methods.py, feature losses in a study's group in
# tests/test_study_groups.py. Under JAX it cost 10.6 s, under TensorFlow 7.2 s.
@pytest.mark.slow
@pytest.mark.one_backend
def test_methods_recipe_runs_every_method_at_smoke_scale(tmp_path):
    from keras_mixkd.study import run_study

    # The recipe's smoke scale, on the zoo's smallest pair to fit the suite's time.
    config = load_recipe("methods_cifar100", smoke=True,
                         overrides={"data.train_examples": 64, "data.test_examples": 32,
                                    "data.image_size": [8, 8], "measure.every": 0,
                                    "pairs": [{"teacher": "digits_cnn", "student": "digits_cnn_small"}],
                                    "backup_interval_seconds": 0.0})
    only = {"teacher_augmentation": ["standard+mixup"]}
    records = run_study(config, runs_dir=str(tmp_path), only=only, verbose=0, report=False,
                        print_fn=lambda *a: None)
    students = {r["recipe"]: r for r in records if r["role"] == "student"}
    assert sorted(students) == ["dkd", "dkd_ls", "fitnet_kd", "kd", "lskd"]
    for record in records:
        epochs = config["teacher" if record["role"] == "teacher" else "student"]["epochs"]
        assert [row["epoch"] for row in record["history"]] == list(range(1, epochs + 1)), record["key"]
        assert 0.0 <= record["test_accuracy_last"] <= 1.0
        assert np.isfinite([row["loss"] for row in record["history"]]).all(), record["key"]
    assert students["dkd"]["loss"] == "dkd" and students["fitnet_kd"]["feature_loss_weight"] == 100.0
