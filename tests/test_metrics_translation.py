"""Every measure of `keras_mixkd.metrics` on data far from the origin, against float64 brute force.

Penultimate features after a ReLU often sit far from 0. The float64 references
(tests/test_metrics.py) run on the very same translated float32 data, so for
translation-invariant measures (CD, GDV, NC1; ECE, entropy, accuracy, logit std
and soft-label KL of logits) they also equal the value at offset 0; for the
cosine-based class separation the target is the float64 value on the
translated data.
"""

import numpy as np
import pytest

from keras_mixkd import metrics
from tests.test_metrics import clustered
from tests.test_metrics import ref_class_discrimination
from tests.test_metrics import ref_class_separation
from tests.test_metrics import ref_ece
from tests.test_metrics import ref_entropy
from tests.test_metrics import ref_gdv
from tests.test_metrics import ref_nc1
from tests.test_metrics import ref_soft_label_kl
from tests.test_metrics import ref_softmax
from tests.test_metrics import ref_standardize

OFFSETS = [0.0, 30.0, 1e3, 1e4]


def translated(offset, seed=0, num_classes=4, dim=12):
    rng = np.random.default_rng(seed)
    features, labels = clustered(rng, num_classes=num_classes, dim=dim)
    shift = offset * (1.0 + rng.random(dim))  # a different large value per dimension
    return (features + shift).astype(np.float32), labels


@pytest.mark.parametrize("offset", OFFSETS)
def test_latent_measures_far_from_the_origin(offset):
    features, labels = translated(offset)
    exact = features.astype(np.float64)
    cd, intra, inter = metrics.class_discrimination(features, labels, return_terms=True)
    np.testing.assert_allclose([cd, intra, inter], ref_class_discrimination(exact, labels), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics.gdv(features, labels, return_terms=True), ref_gdv(exact, labels), rtol=1e-5)
    np.testing.assert_allclose(metrics.nc1(features, labels), ref_nc1(exact, labels), rtol=1e-4)
    np.testing.assert_allclose(metrics.class_separation(features, labels), ref_class_separation(exact, labels),
                               rtol=1e-4)
    standardized = metrics.class_separation(features, labels, standardize=True)
    np.testing.assert_allclose(standardized, ref_class_separation(ref_standardize(exact), labels), rtol=1e-4)


@pytest.mark.parametrize("num_classes", [4, 16])  # Sigma_B of rank L-1 < D, and of full rank D
def test_nc1_drops_the_null_direction_of_the_class_means(num_classes):
    """NC1 on F + 30 was 6e8 instead of 0.11: the ~0 singular value of the class-mean matrix was inverted."""
    base, labels = translated(0.0, seed=3, num_classes=num_classes)
    at_zero = ref_nc1(base.astype(np.float64), labels)
    for offset in (30.0, 1e4):
        shifted = (base.astype(np.float64) + offset).astype(np.float32)
        np.testing.assert_allclose(metrics.nc1(shifted, labels), ref_nc1(shifted.astype(np.float64), labels),
                                   rtol=1e-4)
        np.testing.assert_allclose(metrics.nc1(shifted, labels), at_zero, rtol=2e-2)  # float32 quantisation of F


def test_class_separation_of_nearly_parallel_rows_is_well_defined():
    """On F + 1e4 every row points almost the same way; R² is still defined (and it used to raise)."""
    features, labels = translated(1e4, seed=5)
    value = metrics.class_separation(features, labels)
    np.testing.assert_allclose(value, ref_class_separation(features.astype(np.float64), labels), rtol=1e-4)
    assert 0.0 < value < 1.0
    with pytest.raises(ValueError, match="all feature rows point exactly the same way"):
        metrics.class_separation(np.ones((8, 3), np.float32) * 5.0, np.arange(8) % 2)


@pytest.mark.parametrize("offset", OFFSETS)
def test_output_measures_of_translated_logits(offset):
    rng = np.random.default_rng(1)
    logits = 3.0 * rng.normal(size=(120, 12))
    labels = np.where(rng.random(120) < 0.6, logits.argmax(axis=1), rng.integers(0, 12, 120))
    logits = (logits + offset).astype(np.float32)
    exact = logits.astype(np.float64)
    probabilities = ref_softmax(exact)
    np.testing.assert_allclose(metrics.accuracy(logits, labels), np.mean(exact.argmax(axis=1) == labels))
    np.testing.assert_allclose(metrics.expected_calibration_error(logits, labels, from_logits=True),
                               ref_ece(probabilities, labels), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics.mean_entropy(logits, from_logits=True), ref_entropy(probabilities), rtol=1e-5)
    np.testing.assert_allclose(metrics.logit_std(logits), exact.std(axis=1).mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics.logit_std(logits, ddof=1), exact.std(axis=1, ddof=1).mean(), rtol=1e-5)
    human = ref_softmax(3.0 * np.eye(12)[labels] + rng.normal(size=(120, 12)))
    np.testing.assert_allclose(metrics.soft_label_kl(logits, human.astype(np.float32), labels, from_logits=True),
                               ref_soft_label_kl(probabilities, human.astype(np.float32).astype(np.float64), labels),
                               rtol=1e-5)
