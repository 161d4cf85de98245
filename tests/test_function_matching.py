"""Function matching (Beyer et al., CVPR 2022): MixUp with lambda ~ U(0, 1), no label term, the recipe."""

import keras
import numpy as np
import pytest

from keras_mixkd import Distiller
from keras_mixkd.augment import get_augmentation
from tests import numpy_reference as ref


def function_matching_recipe():
    from keras_mixkd.study import load_recipe

    return {r["name"]: r for r in load_recipe("function_matching_cifar100")["distillation"]}["function_matching"]


@pytest.mark.backend_independent
@pytest.mark.parametrize("mode", ["recipe", "sample"])
def test_function_matching_mixup_draws_lambda_uniformly(mode):
    """The recipe's MixUp (alpha 1, one lambda per batch) draws lambda ~ U(0, 1); so does alpha 1 per sample."""
    # Image i is 1 at pixel i: a mixed row's own pixel holds its lambda (rows paired with themselves hold 1).
    batch_size = 16
    images = np.zeros((batch_size, 4, 4, 1), np.float32)
    images.reshape(batch_size, -1)[np.arange(batch_size), np.arange(batch_size)] = 1.0
    keras.utils.set_random_seed(0)
    options = dict(function_matching_recipe()["augmentation_options"]["mixup"])
    if mode == "sample":
        options.update(mode="sample", implementation="keras_mixkd")
    aug = get_augmentation("mixup", num_classes=3, **options)
    mode = options["mode"]
    draws = []
    for _ in range(150 if mode == "batch" else 40):
        flat = np.asarray(aug({"images": images, "labels": np.zeros(batch_size, np.int32)})["images"]).reshape(
            batch_size, -1)
        own = flat[np.arange(batch_size), np.arange(batch_size)]
        moved = own < 1.0
        draws.extend(own[moved][:1] if mode == "batch" else own[moved])
    draws = np.sort(np.asarray(draws, np.float64))
    n = len(draws)
    # Kolmogorov-Smirnov distance to U(0, 1) below its 0.1 % critical value 1.95 / sqrt(n).
    ks = max(np.max(np.arange(1, n + 1) / n - draws), np.max(draws - np.arange(n) / n))
    assert ks < 1.95 / np.sqrt(n), (ks, n)
    assert abs(draws.mean() - 0.5) < 4 * np.sqrt(1 / 12 / n)


def _tiny(num_classes, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 1))
    return keras.Model(inputs, keras.layers.Dense(num_classes)(keras.layers.Flatten()(inputs)))


def test_function_matching_loss_has_no_label_term(rng):
    """The recipe's Distiller (student_loss_weight 0) gives one loss whatever the labels: T^2 KL alone."""
    from keras_mixkd.study.model_building import distiller_arguments

    arguments = distiller_arguments(function_matching_recipe())
    assert arguments["student_loss_weight"] == 0.0
    num_classes, temperature = 5, arguments["temperature"]
    teacher, student = _tiny(num_classes, 0), _tiny(num_classes, 1)
    x = rng.uniform(size=(16, 4, 4, 1)).astype(np.float32)
    distiller = Distiller(teacher, student, **arguments)
    distiller.compile(optimizer="sgd")
    losses = []
    for labels in (rng.integers(0, num_classes, 16), rng.integers(0, num_classes, 16),
                   np.full((16, num_classes), 1.0 / num_classes, np.float32)):
        result = distiller.evaluate(x, labels, batch_size=16, verbose=0, return_dict=True)
        losses.append(result["loss"])
    np.testing.assert_allclose(losses, losses[0], rtol=1e-6)
    # The loss is T^2 KL(teacher || student) at T, the float64 formula.
    t = np.asarray(teacher.predict_on_batch(x), np.float64)
    s = np.asarray(student.predict_on_batch(x), np.float64)
    p, q = ref.softmax(t / temperature), ref.softmax(s / temperature)
    expected = temperature ** 2 * np.mean(ref.kl_divergence(p, q))
    np.testing.assert_allclose(losses[0], expected, rtol=1e-4)


@pytest.mark.backend_independent
def test_function_matching_recipe_is_their_protocol_at_cifar_scale():
    from keras_mixkd.study import list_recipes
    from keras_mixkd.study import load_recipe

    assert "function_matching_cifar100" in list_recipes()
    config = load_recipe("function_matching_cifar100")
    recipes = {r["name"]: r for r in config["distillation"]}
    fm = recipes["function_matching"]
    assert (fm["loss"], fm["temperature"], fm["student_loss_weight"], fm["teacher_sees"]) == ("kd", 10.0, 0.0, "same")
    assert fm["augmentation"] == ["mixup"] and fm["augmentation_options"]["mixup"] == {"alpha": 1.0, "mode": "batch"}
    ssm = recipes["student_side_mixup"]
    assert (ssm["augmentation"], ssm["teacher_sees"], ssm["student_loss_weight"]) == (
        ["student_side_mixup"], "clean", 0.0)
    assert config["student"]["optimizer"]["name"] == "adamw" and config["student"]["epochs"] >= 1000
    assert config["data"]["dataset"] == "cifar100"
    # The smoke test distils the last recipe: function matching itself.
    assert config["distillation"][-1]["name"] == "function_matching"
    smoke = load_recipe("function_matching_cifar100", smoke=True)
    assert smoke["student"]["epochs"] == 1 and smoke["data"]["train_examples"] <= 96


def test_student_side_mixup_recipe_trains_from_the_teacher_cache(tmp_path):
    """A study always serves student_side_mixup from the teacher cache, even with teacher_cache off."""
    from keras_mixkd.study import RunOptions
    from keras_mixkd.study import load_recipe
    from keras_mixkd.study import run_study

    config = load_recipe("function_matching_cifar100", smoke=True,
                         overrides={"backup_interval_seconds": 0.0, "teacher_cache": False})
    only = {"kind": ["teacher", "student"], "teacher_augmentation": ["standard"], "recipe": ["student_side_mixup"]}
    records = run_study(config, runs_dir=str(tmp_path), only=only, report=False, print_fn=lambda *a: None,
                        options=RunOptions(verbose=0))
    (student,) = [r for r in records if r["role"] == "student"]
    assert student["recipe"] == "student_side_mixup" and student["teacher_cache"] is True
    assert np.isfinite(student["history"][-1]["loss"]) and isinstance(student["teacher_stddev"], float)
