import numpy as np
import pytest
from keras import ops

from keras_mixkd import losses
from tests import numpy_reference as ref

TEMPERATURES = [0.5, 1.0, 4.0, 20.0]


def _random_logits(rng, batch=16, classes=10, scale=3.0):
    return (rng.normal(size=(batch, classes)) * scale).astype("float32")


def _as_float(value):
    return float(ops.convert_to_numpy(value))


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("scale", [0.1, 3.0, 15.0])
def test_knowledge_distillation_matches_numpy(rng, temperature, scale):
    teacher, student = _random_logits(rng, scale=scale), _random_logits(rng, scale=scale)
    expected = ref.kd_per_sample(teacher, student, temperature).mean()
    got = _as_float(losses.knowledge_distillation(teacher, student, temperature))
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("scale", [0.1, 3.0, 15.0])
def test_standardized_distillation_matches_numpy(rng, scale):
    teacher, student = _random_logits(rng, scale=scale), _random_logits(rng, scale=scale)
    expected = ref.standardized_per_sample(teacher, student).mean()
    got = _as_float(losses.standardized_distillation(teacher, student))
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_standardized_distillation_ignores_scale_and_shift(rng):
    teacher = _random_logits(rng)
    student = 7.0 * teacher + 3.0
    assert _as_float(losses.standardized_distillation(teacher, student)) == pytest.approx(
        0.0, abs=1e-6
    )


def test_standardized_distillation_handles_constant_logits(rng):
    teacher = np.ones((4, 5), "float32")
    student = _random_logits(rng, batch=4, classes=5)
    got = _as_float(losses.standardized_distillation(teacher, student))
    assert np.isfinite(got)
    assert got == pytest.approx(ref.standardized_per_sample(teacher, student).mean(), rel=1e-5)


def test_per_sample_losses_match_numpy(rng):
    teacher, student = _random_logits(rng), _random_logits(rng)
    got = ops.convert_to_numpy(losses.per_sample_knowledge_distillation(teacher, student, 2.0))
    np.testing.assert_allclose(got, ref.kd_per_sample(teacher, student, 2.0), rtol=1e-5, atol=1e-6)


def test_cross_entropy_hard_and_soft_labels_match_numpy(rng):
    logits = _random_logits(rng)
    hard = rng.integers(0, 10, size=16)
    soft = rng.dirichlet(np.ones(10), size=16).astype("float32")
    for labels in (hard, hard.reshape(-1, 1), soft):
        expected = ref.cross_entropy_per_sample(labels, logits).mean()
        got = _as_float(losses.soft_cross_entropy(labels, logits))
        assert got == pytest.approx(expected, rel=1e-5)


def test_one_hot_soft_labels_equal_hard_labels(rng):
    logits = _random_logits(rng)
    hard = rng.integers(0, 10, size=16)
    one_hot = np.eye(10, dtype="float32")[hard]
    assert _as_float(losses.soft_cross_entropy(hard, logits)) == pytest.approx(
        _as_float(losses.soft_cross_entropy(one_hot, logits)), rel=1e-6
    )


def test_distillation_is_zero_for_identical_logits_and_positive_otherwise(rng):
    teacher, student = _random_logits(rng), _random_logits(rng)
    assert _as_float(losses.knowledge_distillation(teacher, teacher, 4.0)) == pytest.approx(0, abs=1e-6)
    assert _as_float(losses.knowledge_distillation(teacher, student, 4.0)) > 0


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_non_positive_temperature_is_refused(rng, temperature):
    logits = _random_logits(rng)
    with pytest.raises(ValueError, match="temperature"):
        losses.knowledge_distillation(logits, logits, temperature)
