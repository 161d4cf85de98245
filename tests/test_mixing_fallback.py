"""Mixing and Cutout without KerasCV: same distributions as the KerasCV path, on every backend.

KerasCV 0.9.0, its last release, stops importing with a newer Keras (the 3.16
nightlies). "KerasCV unimportable" is simulated by `sys.modules["keras_cv"] =
None`, so these tests exercise the fallback under any Keras. Distributions
are compared on many draws with fixed seeds (two-sample KS and moments against
the KerasCV path, and against float64 NumPy references built from the
definitions); invariants (labels mixed with the images' own weight, the clipped
box, the exact count of partial mixup) are checked exactly on every row.
"""

import sys

import keras
import numpy as np
import pytest
from scipy import stats

from keras_mixkd.augment import Cutout
from keras_mixkd.augment import Mixing
from keras_mixkd.augment import default_mixing_implementation
from keras_mixkd.augment import get_augmentation
from keras_mixkd.augment import mixing_implementation
from keras_mixkd.augment._keras_cv import keras_cv_import_error
from keras_mixkd.study.run_folder import RunFolder

needs_keras_cv = pytest.mark.skipif(
    keras_cv_import_error() is not None,
    reason=f"KerasCV cannot be imported with this Keras ({keras_cv_import_error()})",
)
MIXING_RECIPES = ("mixup", "cutmix", "mixup_cutmix", "partial_mixup")


@pytest.fixture
def without_keras_cv(monkeypatch):
    """`import keras_cv` fails, as it does with Keras 3.16."""
    monkeypatch.setitem(sys.modules, "keras_cv", None)


# -- helpers -----------------------------------------------------------------------
def constant_batch(rng, batch_size, size=8, channels=1):
    """Image i is constant with value values[i] (all distinct); label i is class i."""
    values = (rng.permutation(batch_size) + 0.5) / batch_size
    images = np.broadcast_to(values[:, None, None, None], (batch_size, size, size, channels)).astype(np.float32)
    return values, {"images": images, "labels": np.arange(batch_size, dtype=np.int32)}


def read_rows(values, out):
    """Per row: own label weight, partner (self when unmixed), pixels (channel 0)."""
    labels = np.asarray(out["labels"], np.float64)
    n = len(values)
    own = labels[np.arange(n), np.arange(n)]
    others = labels.copy()
    others[np.arange(n), np.arange(n)] = 0.0
    partner = np.where(others.max(axis=1) > 0, others.argmax(axis=1), np.arange(n))
    return own, partner, np.asarray(out["images"], np.float64)[..., 0]


def mixup_draws(aug, rng, batch_size, batches):
    """Own weights of the mixed rows and the count of rows left alone; checks every row exactly."""
    lams, alone = [], 0
    for _ in range(batches):
        values, batch = constant_batch(rng, batch_size, size=4)
        own, partner, pixels = read_rows(values, aug(batch))
        for i in range(batch_size):
            expected = own[i] * values[i] + (1.0 - own[i]) * values[partner[i]]
            # The labels carry the weight the pixels were mixed with.
            np.testing.assert_allclose(pixels[i], expected, atol=1e-5)
        alone += int(np.sum(partner == np.arange(batch_size)))
        lams.extend(own[partner != np.arange(batch_size)])
    return np.array(lams), alone


def pasted_boxes(values, own, partner, pixels):
    """(area, top, left, height, width) of each mixed row's pasted box; checks it is one rectangle."""
    boxes = []
    size = pixels.shape[1]
    for i in np.flatnonzero(partner != np.arange(len(values))):
        own_px = np.isclose(pixels[i], values[i], atol=1e-6)
        pasted = np.isclose(pixels[i], values[partner[i]], atol=1e-6)
        assert np.all(own_px | pasted), i
        rows, cols = np.where(pasted)
        top, left = rows.min(), cols.min()
        height, width = rows.max() - top + 1, cols.max() - left + 1
        assert pasted.sum() == height * width, i  # a rectangle
        # The label weight is the pasted area, exactly.
        np.testing.assert_allclose(1.0 - own[i], pasted.mean(), atol=1e-6)
        boxes.append((pasted.mean(), top, left, height, width, size))
    return boxes


def cutmix_boxes(aug, rng, batch_size, batches, size):
    boxes = []
    for _ in range(batches):
        values, batch = constant_batch(rng, batch_size, size=size)
        boxes.extend(pasted_boxes(values, *read_rows(values, aug(batch))))
    return np.array(boxes)


def np_keras_cv_cutmix_areas(size, alpha, draws, seed=0):
    """float64 areas of KerasCV's CutMix box, from its definition.

    Side `int(size sqrt(1 - lam))`, integer centre uniform in [0, size), float
    corners centre -/+ side / 2, a pixel p pasted when lo <= p < hi, clipped at
    the border (the CutMix paper's box up to one pixel for odd sides).
    """
    rng = np.random.default_rng(seed)
    lam = rng.beta(alpha, alpha, draws)
    cut = np.floor(size * np.sqrt(1.0 - lam))
    centre = rng.integers(0, size, (2, draws)).astype(np.float64)
    low = np.clip(np.ceil(centre - cut / 2.0), 0, size)
    high = np.clip(np.ceil(centre + cut / 2.0), 0, size)
    area = np.prod(high - low, axis=0) / size**2
    return area[area > 0]  # rows with nothing pasted look unmixed


def seeded(seed=0):
    keras.utils.set_random_seed(seed)


# -- which implementation runs --------------------------------------------------------
@needs_keras_cv
def test_keras_cv_serves_the_default_when_it_imports():
    assert default_mixing_implementation() == "keras_cv"
    for name in ("mixup", "cutmix", "mixup_cutmix"):
        assert get_augmentation(name, num_classes=10).implementation_used == "keras_cv"
    assert Cutout().implementation_used == "keras_cv"
    assert mixing_implementation(get_augmentation(["standard", "mixup"], num_classes=10)) == "keras_cv"


def test_without_keras_cv_every_recipe_falls_back_to_ours(without_keras_cv):
    assert default_mixing_implementation() == "keras_mixkd"
    for name in MIXING_RECIPES:
        assert mixing_implementation(get_augmentation(name, num_classes=10)) == "keras_mixkd", name
    assert Cutout().implementation_used == "keras_mixkd"
    # Keras core's layers stay available by name.
    assert get_augmentation("mixup", implementation="keras", num_classes=10).implementation_used == "keras"


def test_mixing_implementation_names_every_mixing_inside():
    mixed = get_augmentation(["mixup", "partial_mixup"], implementation="keras", num_classes=10)
    assert mixing_implementation(mixed) == "keras+keras_mixkd"
    assert mixing_implementation(get_augmentation("mixup", mode="batch", num_classes=10)) == "keras_mixkd"
    assert mixing_implementation(get_augmentation("standard")) is None
    assert mixing_implementation(None) is None
    with pytest.raises(TypeError, match="expects an Augmentation or None; received str"):
        mixing_implementation("mixup")


def test_explicit_keras_cv_without_keras_cv_is_a_one_line_error(without_keras_cv):
    with pytest.raises(ImportError) as info:
        get_augmentation("cutmix", implementation="keras_cv", num_classes=10)
    message = str(info.value)
    assert "\n" not in message
    assert 'Mixing(implementation="keras_cv") needs KerasCV' in message
    assert "implementation=None" in message and "keras<3.16" in message
    # Nothing of KerasCV is needed where its layers would not run: no error.
    assert Mixing(alpha=1.0, mode="batch", implementation="keras_cv").implementation_used == "keras_mixkd"


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match=r"must be one of .*'keras_mixkd'\) or None \(automatic\); received 'timm'"):
        Mixing(alpha=1.0, implementation="timm")


def test_study_json_names_the_default_mixing(tmp_path, without_keras_cv):
    manifest = RunFolder(tmp_path / "study").open({"name": "x", "seeds": [0]})
    assert manifest["mixing_implementation"] == "keras_mixkd"


# -- same distributions as KerasCV ----------------------------------------------------
@pytest.mark.parametrize("alpha", [0.4, 2.0])
def test_fallback_mixup_lambda_is_beta_per_sample(alpha, rng, without_keras_cv):
    seeded(1)
    batch_size = 64
    aug = get_augmentation("mixup", alpha=alpha, num_classes=batch_size)
    lams, alone = mixup_draws(aug, rng, batch_size, batches=30)
    # One lambda per row: the rows of one batch differ.
    assert len(np.unique(np.round(lams[:batch_size - 5], 6))) > batch_size // 2
    # 1920 rows; a permutation leaves each row alone with probability 1/B (expected 30).
    assert 10 <= alone <= 55, alone
    # lambda ~ Beta(alpha, alpha): KS against the exact CDF (critical value at 1e-3: ~0.045).
    assert stats.kstest(lams, stats.beta(alpha, alpha).cdf).statistic < 0.05
    np.testing.assert_allclose(np.mean(lams * (1 - lams)), alpha / (2 * (2 * alpha + 1)), atol=0.01)


@needs_keras_cv
def test_fallback_mixup_agrees_with_keras_cv(rng, monkeypatch):
    batch_size, alpha = 64, 0.4
    seeded(2)
    reference, alone_cv = mixup_draws(get_augmentation("mixup", alpha=alpha, num_classes=batch_size),
                                      rng, batch_size, batches=30)
    monkeypatch.setitem(sys.modules, "keras_cv", None)
    seeded(3)
    ours, alone = mixup_draws(get_augmentation("mixup", alpha=alpha, num_classes=batch_size),
                              rng, batch_size, batches=30)
    # Two samples of ~1900: the KS critical value at 1e-3 is ~0.063.
    assert stats.ks_2samp(reference, ours).statistic < 0.07
    assert abs(alone - alone_cv) <= 30


def test_fallback_cutmix_is_keras_cvs_clipped_box(rng, without_keras_cv):
    seeded(4)
    batch_size, size = 64, 16
    boxes = cutmix_boxes(get_augmentation("cutmix", alpha=1.0, num_classes=batch_size), rng, batch_size, 30, size)
    area, top, left, height, width = boxes[:, :5].T
    # A box that touches no border is a square of side int(size sqrt(1 - lam)).
    inside = (top > 0) & (left > 0) & (top + height < size) & (left + width < size)
    assert inside.sum() > 100 and np.all(height[inside] == width[inside])
    # Boxes are clipped, not moved inside: many touch a border with unequal sides.
    assert np.sum(height != width) > 100
    reference = np_keras_cv_cutmix_areas(size, 1.0, 200_000)
    # The paper's mean pasted area at alpha = 1 is ~0.30, not E[1 - lam] = 0.5.
    assert 0.27 < reference.mean() < 0.33
    assert stats.ks_2samp(area, reference).statistic < 0.05
    assert abs(area.mean() - reference.mean()) < 0.02


@needs_keras_cv
def test_fallback_cutmix_agrees_with_keras_cv(rng, monkeypatch):
    batch_size, size = 64, 16
    seeded(5)
    reference = cutmix_boxes(get_augmentation("cutmix", alpha=1.0, num_classes=batch_size), rng, batch_size, 30,
                             size)
    monkeypatch.setitem(sys.modules, "keras_cv", None)
    seeded(6)
    ours = cutmix_boxes(get_augmentation("cutmix", alpha=1.0, num_classes=batch_size), rng, batch_size, 30, size)
    for column in range(5):  # area, top, left, height, width
        assert stats.ks_2samp(reference[:, column], ours[:, column]).statistic < 0.07, column


def test_fallback_switch_and_prob_are_per_sample(rng, without_keras_cv):
    seeded(7)
    batch_size, batches = 64, 20
    aug = get_augmentation("mixup_cutmix", switch_prob=0.3, prob=0.6, num_classes=batch_size)
    kinds = {"alone": 0, "cutmix": 0, "mixup": 0}
    for _ in range(batches):
        values, batch = constant_batch(rng, batch_size, size=16)
        own, partner, pixels = read_rows(values, aug(batch))
        for i in range(batch_size):
            flat = np.allclose(pixels[i], pixels[i].flat[0], atol=1e-6)
            if partner[i] == i:
                np.testing.assert_allclose(pixels[i], values[i], atol=1e-6)
                kinds["alone"] += 1
            elif flat:
                np.testing.assert_allclose(pixels[i], own[i] * values[i] + (1 - own[i]) * values[partner[i]],
                                           atol=1e-5)
                kinds["mixup"] += 1
            else:
                pasted_boxes(values[[i, partner[i]]], own[[i]], np.array([1]), pixels[[i]])
                kinds["cutmix"] += 1
    rows = batch_size * batches
    # A row is left alone when its coin says so (0.4) or the permutation pairs it with itself (1/B).
    p_alone = 0.4 + 0.6 / batch_size
    assert abs(kinds["alone"] - rows * p_alone) < 4 * np.sqrt(rows * p_alone * (1 - p_alone)), kinds
    mixed = kinds["cutmix"] + kinds["mixup"]
    assert abs(kinds["cutmix"] - 0.3 * mixed) < 4 * np.sqrt(mixed * 0.3 * 0.7), kinds


def test_fallback_keeps_batch_mode_and_exact_partial_mixup(rng, without_keras_cv):
    seeded(8)
    batch_size = 30
    values, batch = constant_batch(rng, batch_size, size=4)
    own, partner, _ = read_rows(values, get_augmentation("mixup", mode="batch", num_classes=batch_size)(batch))
    assert np.all(partner != np.arange(batch_size))  # never paired with itself
    np.testing.assert_allclose(own, own[0], atol=1e-6)  # one lambda per batch
    aug = get_augmentation("partial_mixup", fraction=0.3, num_classes=batch_size)
    for _ in range(5):
        values, batch = constant_batch(rng, batch_size, size=4)
        own, partner, _ = read_rows(values, aug(batch))
        assert np.sum(partner != np.arange(batch_size)) == 9  # exactly round(0.3 * 30)


# -- Cutout ---------------------------------------------------------------------------
def cutout_holes(aug, batches, batch_size=64, size=12):
    holes = []
    for _ in range(batches):
        images = np.full((batch_size, size, size, 3), 0.5, np.float32)
        out = np.asarray(aug({"images": images})["images"])
        for image in out:
            hole = np.all(np.isclose(image, 0.25), axis=-1)
            assert np.all(hole | np.all(np.isclose(image, 0.5), axis=-1))
            rows, cols = np.where(hole)
            assert hole.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # one rectangle
            holes.append((hole.mean(), rows.min(), cols.min(), np.ptp(rows) + 1, np.ptp(cols) + 1))
    return np.array(holes, np.float64)


def test_fallback_cutout_is_a_clipped_square(without_keras_cv):
    seeded(9)
    side, size = 5, 12
    holes = cutout_holes(Cutout(size=side, fill_value=0.25), batches=10, size=size)
    _, top, left, height, width = holes.T
    inside = (top > 0) & (left > 0) & (top + height < size) & (left + width < size)
    assert inside.sum() > 50 and np.all(height[inside] == side) and np.all(width[inside] == side)
    # Centre uniform over the pixels: the hole's top row is centre - 2, clipped at 0.
    expected_top = np.clip(np.arange(size) - side // 2, 0, None)
    counts = np.array([np.sum(top == t) for t in range(size)])
    reference = np.array([np.sum(expected_top == t) for t in range(size)]) / size * len(top)
    possible = reference > 0
    assert np.all(counts[~possible] == 0)
    assert stats.chisquare(counts[possible], reference[possible]).pvalue > 1e-3


@needs_keras_cv
def test_fallback_cutout_agrees_with_keras_cv(monkeypatch):
    reference = cutout_holes(Cutout(size=5, fill_value=0.25, seed=3), batches=10)
    monkeypatch.setitem(sys.modules, "keras_cv", None)
    seeded(10)
    ours = cutout_holes(Cutout(size=5, fill_value=0.25), batches=10)
    for column in range(5):  # area, top, left, height, width
        assert stats.ks_2samp(reference[:, column], ours[:, column]).statistic < 0.1, column


# -- tf.data, every backend ------------------------------------------------------------
@pytest.mark.parametrize("name", MIXING_RECIPES + ("cutout",))
def test_fallback_runs_inside_tf_data(name, rng, without_keras_cv):
    import tensorflow as tf

    options = {"num_classes": 8} if name != "cutout" else {}
    aug = get_augmentation(name, **options)
    _, batch = constant_batch(rng, 8, size=8, channels=3)
    dataset = tf.data.Dataset.from_tensors(batch).repeat(2).map(aug)
    for out in dataset:
        assert out["images"].shape == (8, 8, 8, 3)
        if name != "cutout":
            np.testing.assert_allclose(out["labels"].numpy().sum(axis=1), 1.0, atol=1e-5)


# -- RandAugment and AugMix: Keras core's layers without KerasCV ------------------------
@pytest.mark.parametrize("name", ["randaugment", "augmix"])
def test_randaugment_and_augmix_fall_back_to_keras_core(name, without_keras_cv):
    owner = {"randaugment": "RandAugment", "augmix": "AugMix"}[name]
    with pytest.warns(UserWarning, match=f"{owner}: KerasCV cannot be imported .*Keras core's layer"):
        aug = get_augmentation(name)
    assert aug.implementation_used == "keras" and aug.get_config()["implementation"] is None
    with pytest.raises(ImportError) as info:
        get_augmentation(name, implementation="keras_cv")
    assert "\n" not in str(info.value)
    assert f'{owner}(implementation="keras_cv") needs KerasCV' in str(info.value)
    assert get_augmentation(name, implementation="keras").implementation_used == "keras"


# -- study records --------------------------------------------------------------------
@pytest.mark.parametrize("keras_cv_imports", [pytest.param(True, marks=needs_keras_cv), False])
def test_teacher_record_names_the_mixing_that_ran(keras_cv_imports, tmp_path, monkeypatch):
    from keras_mixkd.study import load_recipe
    from keras_mixkd.study import training

    if not keras_cv_imports:
        monkeypatch.setitem(sys.modules, "keras_cv", None)
    config = load_recipe("digits", smoke=True)
    splits = training.prepare_data(config["data"])
    expected = {"standard+mixup": "keras_cv" if keras_cv_imports else "keras_mixkd", "cutout": None}
    for augmentation, implementation in expected.items():
        _, record, _ = training.train_teacher(splits, "digits_cnn_small", augmentation, seed=0, epochs=1,
                                              optimizer=config["teacher"]["optimizer"], batch_size=32,
                                              work_dir=str(tmp_path / augmentation), verbose=0)
        assert record["mixing_implementation"] == implementation, augmentation


def test_a_study_asking_for_keras_cv_without_it_is_a_one_line_error(without_keras_cv):
    from keras_mixkd.study import training

    with pytest.raises(ValueError) as info:
        training.build_augmentation(["mixup"], {"mixup": {"implementation": "keras_cv"}}, 10)
    message = str(info.value)
    assert "\n" not in message and message.startswith("Augmentation 'mixup' with options")
    assert "needs KerasCV" in message and "implementation=None" in message
