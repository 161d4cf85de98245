"""The measures against float64 NumPy implementations written from their definitions."""

import itertools

import keras
import numpy as np
import pytest

from keras_mixkd import metrics

RTOL = 1e-5


# --------------------------------------------------------------------------
# References: float64, pairwise, straight from the definitions.


def ref_standardize(features):
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std[std == 0] = 1.0
    return 0.5 * (features - mean) / std


def ref_within_between(pair_matrix, labels):
    """Mean over classes of the mean over pairs i<j; mean over class pairs of the mean over i in a, j in b."""
    classes = np.unique(labels)
    intra = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if idx.size < 2:
            continue
        values = [pair_matrix[i, j] for a, i in enumerate(idx) for j in idx[a + 1 :]]
        intra.append(np.mean(values))
    inter = [
        pair_matrix[np.ix_(labels == a, labels == b)].mean()
        for a, b in itertools.combinations(classes, 2)
    ]
    return np.mean(intra), np.mean(inter)


def ref_class_discrimination(features, labels):
    z = ref_standardize(features)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    similarity = u @ u.T
    intra, inter = ref_within_between(similarity, labels)
    return (intra - inter) / np.sqrt(features.shape[1]), intra, inter


def ref_gdv(features, labels):
    z = ref_standardize(features)
    distance = np.linalg.norm(z[:, None, :] - z[None, :, :], axis=-1)
    intra, inter = ref_within_between(distance, labels)
    return (intra - inter) / np.sqrt(features.shape[1]), intra, inter


def ref_class_separation(features, labels):
    u = features / np.linalg.norm(features, axis=1, keepdims=True)
    distance = 1.0 - u @ u.T
    classes = np.unique(labels)
    within = np.mean([distance[np.ix_(labels == c, labels == c)].sum() / np.sum(labels == c) ** 2 for c in classes])
    total = np.mean(
        [distance[np.ix_(labels == a, labels == b)].mean() for a in classes for b in classes]
    )
    return 1.0 - within / total


def ref_nc1(features, labels):
    classes = np.unique(labels)
    num_examples, dim = features.shape
    global_mean = features.mean(axis=0)
    sigma_w = np.zeros((dim, dim))
    sigma_b = np.zeros((dim, dim))
    for c in classes:
        members = features[labels == c]
        mu = members.mean(axis=0)
        for h in members:
            sigma_w += np.outer(h - mu, h - mu)
        sigma_b += np.outer(mu - global_mean, mu - global_mean)
    sigma_w /= num_examples
    sigma_b /= classes.size
    return np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)) / classes.size


def ref_softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ref_ece(probabilities, labels, num_bins=15):
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    ece = 0.0
    for b in range(num_bins):
        in_bin = (confidence > b / num_bins) & (confidence <= (b + 1) / num_bins)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return ece


def ref_entropy(probabilities):
    terms = np.where(probabilities > 0, probabilities * np.log(np.where(probabilities > 0, probabilities, 1)), 0)
    return -terms.sum(axis=1).mean()


def ref_soft_label_kl(probabilities, soft_labels, labels):
    values = []
    for c in np.unique(labels):
        human = soft_labels[labels == c].mean(axis=0)
        model = probabilities[labels == c].mean(axis=0)
        values.append(sum(h * np.log(h / m) for h, m in zip(human, model) if h > 0))
    return np.mean(values)


# JAX compiles every op once per new shape: most tests share the default shapes.
def clustered(rng, num_examples=120, dim=12, num_classes=4, spread=1.0, offset=0.0):
    labels = rng.integers(0, num_classes, size=num_examples)
    labels[:num_classes] = np.arange(num_classes)
    centers = rng.normal(size=(num_classes, dim))
    features = offset + centers[labels] + spread * rng.normal(size=(num_examples, dim))
    return features.astype(np.float32), labels


def assert_close(value, reference, rtol=RTOL):
    assert isinstance(value, float)
    np.testing.assert_allclose(value, reference, rtol=rtol)


# --------------------------------------------------------------------------
# Against the references.


@pytest.mark.parametrize("seed", [0, 1])
def test_class_discrimination_matches_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    features, labels = clustered(rng, offset=3.0)
    cd, intra, inter = metrics.class_discrimination(features, labels, return_terms=True)
    ref = ref_class_discrimination(features.astype(np.float64), labels)
    assert_close(cd, ref[0])
    assert_close(intra, ref[1])
    assert_close(inter, ref[2])
    assert metrics.class_discrimination(features, labels) == cd


def test_class_discrimination_single_example_class_and_constant_dimension(rng):
    features, labels = clustered(rng, num_classes=5)
    labels[labels == 3] = 2
    labels[7] = 3  # class 3 has a single example: no within-class pair
    features[:, 4] = 2.5  # a constant dimension: z = 0 there, no NaN
    cd, intra, inter = metrics.class_discrimination(features, labels, return_terms=True)
    ref = ref_class_discrimination(features.astype(np.float64), labels)
    assert np.isfinite(cd)
    assert_close(cd, ref[0])
    assert_close(intra, ref[1])
    assert_close(inter, ref[2])


def test_class_discrimination_on_softmax_outputs(rng):
    logits, labels = clustered(rng, num_classes=12, spread=2.0)
    probabilities = ref_softmax(logits.astype(np.float64)).astype(np.float32)
    assert_close(
        metrics.class_discrimination(probabilities, labels),
        ref_class_discrimination(probabilities.astype(np.float64), labels)[0],
    )


def test_gdv_matches_pairwise_definition_with_small_blocks(rng):
    features, labels = clustered(rng)
    features[:, 2] = -1.0
    ref = ref_gdv(features.astype(np.float64), labels)
    for block_size in (None, 50):  # one block; blocks of 50, 50 and 20 rows
        value, intra, inter = metrics.gdv(features, labels, return_terms=True, block_size=block_size)
        assert_close(value, ref[0])
        assert_close(intra, ref[1])
        assert_close(inter, ref[2])


@pytest.mark.parametrize("standardize", [False, True])
def test_class_separation_matches_pairwise_definition(rng, standardize):
    features, labels = clustered(rng, offset=0.5)
    features64 = features.astype(np.float64)
    reference_input = ref_standardize(features64) if standardize else features64
    assert_close(
        metrics.class_separation(features, labels, standardize=standardize),
        ref_class_separation(reference_input, labels),
    )


@pytest.mark.parametrize("num_classes", [4, 16])  # Sigma_B of rank L-1 < D, and of full rank D
def test_nc1_matches_covariance_definition(rng, num_classes):
    features, labels = clustered(rng, num_classes=num_classes, offset=1.0)
    assert_close(metrics.nc1(features, labels), ref_nc1(features.astype(np.float64), labels))


@pytest.mark.parametrize("num_bins", [15, 4])
def test_expected_calibration_error_matches_binned_definition(rng, num_bins):
    logits = (3.0 * rng.normal(size=(120, 12))).astype(np.float32)
    labels = np.where(rng.random(120) < 0.6, logits.argmax(axis=1), rng.integers(0, 12, 120))
    probabilities = ref_softmax(logits.astype(np.float64))
    reference = ref_ece(probabilities, labels, num_bins)
    assert_close(metrics.expected_calibration_error(logits, labels, num_bins, from_logits=True), reference)
    assert_close(
        metrics.expected_calibration_error(probabilities.astype(np.float32), np.eye(12)[labels], num_bins),
        reference,
    )


def test_accuracy_entropy_and_logit_std_match_definitions(rng):
    logits = (2.0 * rng.normal(size=(120, 12))).astype(np.float32)
    labels = rng.integers(0, 12, 120)
    logits64 = logits.astype(np.float64)
    probabilities = ref_softmax(logits64)
    assert_close(metrics.accuracy(logits, labels), np.mean(logits64.argmax(axis=1) == labels))
    assert_close(metrics.mean_entropy(logits, from_logits=True), ref_entropy(probabilities))
    with_zeros = probabilities.copy()
    with_zeros[:20] = np.eye(12)[labels[:20]]  # 0 log 0 = 0
    assert_close(metrics.mean_entropy(with_zeros.astype(np.float32)), ref_entropy(with_zeros))
    assert_close(metrics.logit_std(logits), logits64.std(axis=1).mean())
    assert_close(metrics.logit_std(logits, ddof=1), logits64.std(axis=1, ddof=1).mean())


def test_soft_label_kl_matches_class_conditional_definition(rng):
    labels = rng.integers(0, 12, 120)
    logits = rng.normal(size=(120, 12)).astype(np.float32)
    human = ref_softmax(3.0 * np.eye(12)[labels] + rng.normal(size=(120, 12)))
    human[:10] = np.eye(12)[labels[:10]]  # zero entries: 0 log 0 = 0
    human = human.astype(np.float32)
    reference = ref_soft_label_kl(ref_softmax(logits.astype(np.float64)), human.astype(np.float64), labels)
    assert_close(metrics.soft_label_kl(logits, human, labels, from_logits=True), reference)
    assert metrics.soft_label_kl(human, human, labels) == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------
# Hand-built cases and invariances.


def test_separated_clusters_score_high_and_shuffled_labels_near_zero(rng):
    labels = np.repeat(np.arange(4), 30)
    centers = 10.0 * rng.normal(size=(4, 12))
    features = (centers[labels] + 0.1 * rng.normal(size=(120, 12))).astype(np.float32)
    shuffled = rng.permutation(labels)
    # Tight, balanced clusters: intra -> 1, inter -> -1/(L-1), CD -> (4/3)/sqrt(12) = 0.385.
    assert metrics.class_discrimination(features, labels) > 0.37
    assert abs(metrics.class_discrimination(features, shuffled)) < 0.01
    assert metrics.gdv(features, labels) < -0.05
    assert abs(metrics.gdv(features, shuffled)) < 0.01
    assert metrics.class_separation(features, labels) > 0.95
    assert abs(metrics.class_separation(features, shuffled)) < 0.02
    assert metrics.nc1(features, labels) < 1e-3
    assert metrics.nc1(features, shuffled) > 10.0


def test_latent_measures_ignore_sample_order_and_label_encoding(rng):
    features, labels = clustered(rng)
    order = rng.permutation(120)
    renamed = np.array([3, 10, 11, 42])[labels]  # gaps in the class ids
    for measure in (metrics.class_discrimination, metrics.gdv, metrics.class_separation, metrics.nc1):
        base = measure(features, labels)
        assert measure(features[order], labels[order]) == pytest.approx(base, rel=RTOL, abs=1e-7)
        assert measure(features, np.eye(4)[labels]) == pytest.approx(base, rel=RTOL, abs=1e-7)
        assert measure(features, renamed) == pytest.approx(base, rel=RTOL, abs=1e-7)
        assert measure(features, labels.reshape(-1, 1).astype(np.float32)) == pytest.approx(base, rel=RTOL)


def test_backend_tensors_are_accepted(rng):
    features, labels = clustered(rng)
    expected = metrics.class_discrimination(features, labels)
    tensor_value = metrics.class_discrimination(
        keras.ops.convert_to_tensor(features), keras.ops.convert_to_tensor(labels)
    )
    assert tensor_value == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------
# Bad input.

LATENT = [metrics.class_discrimination, metrics.gdv, metrics.class_separation, metrics.nc1]


@pytest.mark.parametrize("measure", LATENT)
def test_latent_measures_reject_bad_input(rng, measure):
    features, labels = clustered(rng, num_examples=30, dim=4, num_classes=3)
    with pytest.raises(ValueError, match="two classes"):
        measure(features, np.zeros(30, dtype=int))
    with pytest.raises(ValueError, match="same length"):
        measure(features, labels[:-1])
    for bad in (np.nan, np.inf):
        broken = features.copy()
        broken[3, 1] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            measure(broken, labels)
    with pytest.raises(ValueError, match="one-hot"):
        measure(features, np.full((30, 3), 1.0 / 3.0))  # mixed labels
    with pytest.raises(ValueError, match="non-integer"):
        measure(features, labels + 0.5)
    with pytest.raises(ValueError, match="class ids"):
        measure(features, labels.reshape(3, 10, 1))
    with pytest.raises(TypeError, match="integer class ids"):
        measure(features, np.array(["cat"] * 15 + ["dog"] * 15))
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        measure(features[:, 0], labels)


@pytest.mark.parametrize("measure", [metrics.class_discrimination, metrics.gdv])
def test_within_class_mean_needs_a_class_with_two_examples(measure):
    with pytest.raises(ValueError, match="two or more examples"):
        measure(np.eye(3, dtype=np.float32), [0, 1, 2])


def test_output_measures_reject_bad_input(rng):
    logits = rng.normal(size=(20, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 20)
    with pytest.raises(ValueError, match="from_logits=True"):
        metrics.expected_calibration_error(logits, labels)
    with pytest.raises(ValueError, match="same length"):
        metrics.expected_calibration_error(logits, labels[:5], from_logits=True)
    with pytest.raises(ValueError, match=r"in \[0, 4\)"):
        metrics.expected_calibration_error(logits, labels + 4, from_logits=True)
    with pytest.raises(ValueError, match="num_bins"):
        metrics.expected_calibration_error(logits, labels, num_bins=0, from_logits=True)
    with pytest.raises(ValueError, match="NaN or Inf"):
        metrics.mean_entropy(np.full((2, 3), np.nan), from_logits=True)
    with pytest.raises(ValueError, match="ddof"):
        metrics.logit_std(logits, ddof=2)
    with pytest.raises(ValueError, match="same shape"):
        metrics.soft_label_kl(logits, np.full((20, 3), 1 / 3), labels, from_logits=True)
    with pytest.raises(ValueError, match="one-hot"):
        metrics.accuracy(logits, np.full((20, 4), 0.25))


# --------------------------------------------------------------------------
# Feature extraction.


def _functional(named_features=True):
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    features = keras.layers.Dense(4, activation="relu", name="features" if named_features else "penultimate")(hidden)
    outputs = keras.layers.Dense(3, name="logits")(features)
    return keras.Model(inputs, outputs)


def test_feature_extractor_finds_the_penultimate_layer(rng):
    x = rng.normal(size=(5, 6)).astype(np.float32)
    for named in (True, False):  # by the name "features", else the classifier's input
        model = _functional(named_features=named)
        penultimate = model.layers[-2]
        expected = keras.Model(model.inputs, penultimate.output).predict(x, verbose=0)
        extracted = metrics.feature_extractor(model).predict(x, verbose=0)
        np.testing.assert_allclose(extracted, expected, rtol=1e-6)
        assert extracted.shape == (5, 4)
    by_name = metrics.feature_extractor(model, layer_name="hidden")
    assert by_name.output_shape == (None, 5)


def test_feature_extractor_follows_sequential_models_and_shares_weights(rng):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="a"), keras.layers.Dense(2)])
    extractor = metrics.feature_extractor(model)
    x = rng.normal(size=(3, 6)).astype(np.float32)
    kernel = model.get_layer("a").kernel
    kernel.assign(np.ones(kernel.shape, dtype=np.float32))
    np.testing.assert_allclose(extractor.predict(x, verbose=0), np.repeat(x.sum(1, keepdims=True), 4, 1), rtol=1e-5)


def test_feature_extractor_errors():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    subclassed = Subclassed()
    subclassed(np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="subclassed"):
        metrics.feature_extractor(subclassed)
    with pytest.raises(TypeError, match="keras.Model"):
        metrics.feature_extractor("resnet20")
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        metrics.feature_extractor(_functional(), layer_name="nope")
    inputs = keras.Input((4,))
    no_dense = keras.Model(inputs, keras.layers.Activation("softmax")(inputs))
    with pytest.raises(ValueError, match="layer_name"):
        metrics.feature_extractor(no_dense)
