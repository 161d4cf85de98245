"""DKD, logit-standardised KD, the std's ddof and the loss objects, against float64 NumPy."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_mixkd import losses
from tests import numpy_reference as ref

# (scale, offset): random logits, confident ones, and logits far from the origin.
LOGITS = [(0.1, 0.0), (3.0, 0.0), (15.0, 0.0), (3.0, 1e3), (3.0, -3e4)]


def _logits(rng, scale, offset, batch=12, classes=10):
    return (rng.normal(size=(batch, classes)) * scale + offset).astype("float32")


def _np(value):
    return np.asarray(ops.convert_to_numpy(value), np.float64)


def _soft_rows(rng, batch, classes):
    """MixUp-like rows (two classes), smoothed ones, and a one-hot row."""
    lam = rng.uniform(size=(batch, 1))
    a, b = rng.integers(0, classes, size=batch), rng.integers(0, classes, size=batch)
    rows = lam * np.eye(classes)[a] + (1 - lam) * np.eye(classes)[b]
    rows[1] = 0.9 * np.eye(classes)[a[1]] + 0.1 / classes
    rows[2] = np.eye(classes)[a[2]]
    return rows.astype("float32")


@pytest.mark.parametrize("scale,offset", LOGITS)
@pytest.mark.parametrize("alpha,beta,temperature", [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0)])
def test_dkd_matches_definition_and_reference_code(rng, scale, offset, alpha, beta, temperature):
    t, s = _logits(rng, scale, offset), _logits(rng, scale, offset)
    labels = rng.integers(0, 10, size=12)
    got = float(_np(losses.decoupled_distillation(t, s, labels, alpha, beta, temperature)))
    definition = ref.dkd_per_sample(t, s, labels, alpha, beta, temperature).mean()
    reference = ref.mdistiller_dkd_loss(s, t, labels, alpha, beta, temperature)
    assert definition == pytest.approx(reference, rel=1e-9, abs=1e-9)
    assert got == pytest.approx(definition, rel=2e-5, abs=1e-7)


def test_dkd_is_exact_for_a_teacher_beyond_float32_confidence(rng):
    # 1 - p_target underflows float32 (logit gap 200 / T): NCKD must still be exact.
    t = _logits(rng, 1.0, 0.0, batch=4, classes=6)
    t[:, 0] += 200.0
    s = _logits(rng, 2.0, 0.0, batch=4, classes=6)
    labels = np.zeros(4, int)
    got = _np(losses.per_sample_decoupled_distillation(t, s, labels, 1.0, 8.0, 1.0))
    # Logits of about 200 carry float32 rounding of ~1e-5 each.
    np.testing.assert_allclose(got, ref.dkd_per_sample(t, s, labels, 1.0, 8.0, 1.0), rtol=1e-4)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("scale,offset", LOGITS)
def test_soft_dkd_is_hard_dkd_on_one_hot_and_the_weighted_sum_on_mixed(rng, scale, offset):
    t, s = _logits(rng, scale, offset), _logits(rng, scale, offset)
    labels = rng.integers(0, 10, size=12)
    hard = _np(losses.per_sample_decoupled_distillation(t, s, labels))
    one_hot = _np(losses.per_sample_decoupled_distillation(t, s, np.eye(10, dtype="float32")[labels]))
    np.testing.assert_allclose(one_hot, hard, rtol=1e-6, atol=1e-7)
    rows = _soft_rows(rng, 12, 10)
    got = _np(losses.per_sample_decoupled_distillation(t, s, rows))
    np.testing.assert_allclose(got, ref.dkd_per_sample(t, s, rows, 1.0, 8.0, 4.0), rtol=2e-5, atol=1e-7)


def test_dkd_is_zero_for_identical_logits_and_needs_labels(rng):
    t = _logits(rng, 3.0, 0.0)
    assert float(_np(losses.decoupled_distillation(t, t, _soft_rows(rng, 12, 10)))) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="DKD needs the labels"):
        losses.decoupled_distillation(t, t, None)
    with pytest.raises(ValueError, match=r"Labels of shape \(12, 3\)"):
        losses.decoupled_distillation(t, t, np.zeros((12, 3), "float32"))


@pytest.mark.parametrize("scale,offset", LOGITS)
@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_logit_standardized_kd_matches_definition_and_reference_code(rng, scale, offset, temperature):
    t, s = _logits(rng, scale, offset), _logits(rng, scale, offset)
    got = float(_np(losses.logit_standardized_distillation(t, s, temperature)))
    definition = ref.logit_standardized_kd_per_sample(t, s, temperature).mean()
    assert definition == pytest.approx(ref.ls_kd_reference_loss(s, t, temperature), rel=1e-9)
    assert got == pytest.approx(definition, rel=2e-5, abs=2e-6)


@pytest.mark.parametrize("scale,offset", LOGITS)
def test_dkd_with_standardisation_is_dkd_on_z_scores(rng, scale, offset):
    t, s = _logits(rng, scale, offset), _logits(rng, scale, offset)
    labels = rng.integers(0, 10, size=12)
    got = float(_np(losses.decoupled_distillation(t, s, labels, 1.0, 8.0, 2.0, standardize=True)))
    expected = ref.mdistiller_dkd_loss(ref.zscore(s), ref.zscore(t), labels, 1.0, 8.0, 2.0)
    assert got == pytest.approx(expected, rel=2e-5, abs=2e-6)


@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("scale,offset", LOGITS)
def test_standardisation_uses_the_std_with_ddof(rng, ddof, scale, offset):
    t, s = _logits(rng, scale, offset), _logits(rng, scale, offset)
    np.testing.assert_allclose(_np(losses.standardize_logits(t, ddof=ddof)), ref.standardize(t, ddof),
                               rtol=2e-5, atol=2e-5 * max(1.0, abs(offset) / scale))
    got = float(_np(losses.standardized_distillation(t, s, ddof=ddof)))
    assert got == pytest.approx(ref.standardized_per_sample(t, s, ddof).mean(), rel=2e-5, abs=2e-6)
    np.testing.assert_allclose(_np(losses.zscore_logits(t, ddof=ddof)), ref.zscore(t, ddof), rtol=2e-5,
                               atol=2e-5)


def test_unbiased_std_is_the_default_and_differs_from_the_population_std(rng):
    t = _logits(rng, 3.0, 0.0)
    np.testing.assert_allclose(_np(losses.standardize_logits(t)), ref.standardize(t, ddof=1), rtol=1e-5)
    ratio = _np(losses.standardize_logits(t, ddof=0)) / _np(losses.standardize_logits(t))
    np.testing.assert_allclose(ratio, np.sqrt(10 / 9), rtol=1e-5)


@pytest.mark.parametrize("bad", [2, -1, 0.5, True, "1"])
def test_a_ddof_other_than_0_or_1_is_refused(bad):
    with pytest.raises(ValueError, match=r"std_ddof.*got"):
        losses.standardize_logits(np.ones((2, 3), "float32"), ddof=bad)
    with pytest.raises(ValueError, match=r"std_ddof.*got"):
        losses.StandardizedDistillation(std_ddof=bad)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: losses.DecoupledDistillation(alpha=-1.0), "alpha"),
        (lambda: losses.DecoupledDistillation(beta="8"), "beta"),
        (lambda: losses.DecoupledDistillation(temperature=0.0), "temperature"),
        (lambda: losses.DecoupledDistillation(warmup_epochs=2.5), "warmup_epochs"),
        (lambda: losses.KnowledgeDistillation(standardize="yes"), "standardize"),
        (lambda: losses.FeatureDistillation(teacher_layer=""), "teacher_layer"),
        (lambda: losses.get_loss("hinton"), r"Unknown distillation loss 'hinton'.*'dkd'"),
        (lambda: losses.get_loss("kd", beta=1.0), r"takes no option\(s\) \['beta'\]"),
        (lambda: losses.KerasDistillationLoss("kd"), "keras.distillation.DistillationLoss"),
    ],
)
def test_bad_loss_arguments_are_refused_clearly(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_named_losses_are_instances_with_the_functions_numbers(rng):
    t, s = _logits(rng, 3.0, 0.0), _logits(rng, 3.0, 0.0)
    labels = rng.integers(0, 10, size=12)
    assert losses.list_losses() == ["kd", "standardized", "lskd", "dkd"]
    cases = {
        "kd": losses.knowledge_distillation(t, s, 4.0),
        "standardized": losses.standardized_distillation(t, s),
        "lskd": losses.logit_standardized_distillation(t, s, 4.0),
        "dkd": losses.decoupled_distillation(t, s, labels),
    }
    for name, expected in cases.items():
        loss = losses.get_loss(name)
        assert isinstance(loss, losses.DistillationLoss)
        got = loss.compute_loss(t, s, labels)
        assert tuple(got.shape) == (12,)
        assert float(_np(ops.mean(got))) == pytest.approx(float(_np(expected)), rel=1e-6), name
        clone = type(loss).from_config(loss.get_config())
        assert clone.get_config() == loss.get_config()


def test_dkd_warmup_factor_follows_the_epoch():
    loss = losses.DecoupledDistillation(warmup_epochs=20)
    assert float(_np(loss.warmup_factor())) == 1.0  # outside fit
    for epoch, factor in [(0, 1 / 20), (9, 0.5), (19, 1.0), (30, 1.0)]:
        loss.on_epoch_begin(epoch)
        assert float(_np(loss.warmup_factor())) == pytest.approx(factor)
    assert float(_np(losses.DecoupledDistillation(warmup_epochs=0).warmup_factor())) == 1.0


def test_keras_logits_distillation_is_wrapped_with_its_own_value(rng):
    t, s = _logits(rng, 3.0, 0.0), _logits(rng, 3.0, 0.0)
    keras_loss = keras.distillation.LogitsDistillation(temperature=3.0)
    wrapped = losses.get_loss(keras_loss)
    assert isinstance(wrapped, losses.KerasDistillationLoss)
    got = _np(wrapped.compute_loss(t, s))
    np.testing.assert_allclose(got, float(_np(keras_loss.compute_loss(t, s))), rtol=1e-6)
    clone = losses.KerasDistillationLoss.from_config(wrapped.get_config())
    assert clone.keras_loss.temperature == 3.0
