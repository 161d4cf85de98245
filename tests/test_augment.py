"""keras_mixkd.augment: every recipe checked against float64 NumPy, in tf.data, per backend.

Mixed-sample checks use batches of constant images with distinct values and one
class per image (num_classes = batch size): a mixed row's label says which
partner it was mixed with and with what weight, and its pixels say what was
really done, so the two can be compared exactly.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mixkd.augment import AugMix
from keras_mixkd.augment import Compose
from keras_mixkd.augment import Cutout
from keras_mixkd.augment import LabelSmoothing
from keras_mixkd.augment import Mixing
from keras_mixkd.augment import MixingSwitchOff
from keras_mixkd.augment import PadCropFlip
from keras_mixkd.augment import RandAugment
from keras_mixkd.augment import get_augmentation
from keras_mixkd.augment import list_augmentations
from keras_mixkd.augment._keras_cv import keras_cv_import_error

# KerasCV 0.9.0 does not import with every Keras (`make test-keras-next`): its own tests skip there.
needs_keras_cv = pytest.mark.skipif(
    keras_cv_import_error() is not None,
    reason=f"KerasCV cannot be imported with this Keras ({keras_cv_import_error()})",
)
IMPLEMENTATIONS = (pytest.param("keras_cv", marks=needs_keras_cv), "keras")
MIXING_RECIPES = ("mixup", "cutmix", "mixup_cutmix", "partial_mixup")


# -- NumPy references (float64, from the definitions) ------------------------------
def np_smooth(onehot, epsilon):
    k = onehot.shape[-1]
    return onehot * (1.0 - epsilon) + epsilon / k


def np_pad_crop(image, pad, dy, dx, flip):
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    h, w = image.shape[:2]
    crop = padded[dy : dy + h, dx : dx + w]
    return crop[:, ::-1] if flip else crop


def np_beta_moment(alpha):
    """E[lam (1 - lam)] for lam ~ Beta(alpha, alpha)."""
    return alpha / (2.0 * (2.0 * alpha + 1.0))


# -- helpers -----------------------------------------------------------------------
def constant_batch(rng, batch_size, size=8, channels=3):
    """Image i is constant with value values[i] (all distinct); label i is class i."""
    values = (rng.permutation(batch_size) + 0.5) / batch_size
    images = np.broadcast_to(
        values[:, None, None, None], (batch_size, size, size, channels)
    ).astype(np.float32)
    labels = np.arange(batch_size, dtype=np.int32)
    return values, {"images": images, "labels": labels}


def read_mix(values, images, labels):
    """Per row: own weight, partner index (self when unmixed), pixel values."""
    labels = np.asarray(labels, np.float64)
    batch_size = len(values)
    own = labels[np.arange(batch_size), np.arange(batch_size)]
    others = labels.copy()
    others[np.arange(batch_size), np.arange(batch_size)] = 0.0
    partner = np.where(others.max(axis=1) > 0, others.argmax(axis=1), np.arange(batch_size))
    return own, partner, np.asarray(images, np.float64)[..., 0]


def row_is_mixup(values, own, partner, pixels, i):
    expected = own[i] * values[i] + (1.0 - own[i]) * values[partner[i]]
    return np.allclose(pixels[i], expected, atol=1e-5)


def row_is_cutmix(values, own, partner, pixels, i):
    """Pixels are v_i or v_j only, pasted area = 1 - own weight, and a rectangle."""
    own_px = np.isclose(pixels[i], values[i], atol=1e-6)
    pasted = np.isclose(pixels[i], values[partner[i]], atol=1e-6) & ~own_px
    if not np.all(own_px | pasted):
        return False
    if not np.isclose(1.0 - pasted.mean(), own[i], atol=1e-6):
        return False
    if pasted.any():
        rows, cols = np.where(pasted)
        box = pasted[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        return bool(box.all())
    return True


def run_in_tf_data(aug, batch, num_batches=1, training=True):
    dataset = tf.data.Dataset.from_tensors(batch).repeat(num_batches)
    dataset = dataset.map(lambda b: aug(b, training=training))
    return [{k: v.numpy() for k, v in out.items()} for out in dataset]


def recipe_options(name, num_classes):
    if name in MIXING_RECIPES or name in ("label_smoothing", "student_side_mixup"):
        return {"num_classes": num_classes}
    return {}


# -- registry and bad input ------------------------------------------------------------
def test_list_augmentations_names_every_recipe():
    assert list_augmentations() == [
        "none", "standard", "cutout", "label_smoothing", "mixup", "cutmix",
        "mixup_cutmix", "partial_mixup", "student_side_mixup", "randaugment", "augmix",
    ]


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ValueError, match="Known recipes: .*partial_mixup"):
        get_augmentation("mixupp")
    with pytest.raises(ValueError, match="'bogus'"):
        get_augmentation(["standard", "bogus"])
    with pytest.raises(TypeError, match="recipe name"):
        get_augmentation(3)


def test_unknown_option_says_what_the_recipe_takes():
    with pytest.raises(ValueError, match=r"\['alfa'\].*'mixup' takes \['alpha'"):
        get_augmentation("mixup", alfa=1.0, num_classes=10)
    with pytest.raises(ValueError, match="'standard' takes .*'mixup' takes"):
        get_augmentation(["standard", "mixup"], fraction=0.5, num_classes=10)
    with pytest.raises(ValueError, match="'none' takes no options"):
        get_augmentation("none", alpha=1.0)


@pytest.mark.backend_independent
def test_an_option_for_an_augmentation_not_in_use_is_refused_naming_both():
    from keras_mixkd.augment import check_augmentation_options
    from keras_mixkd.augment import check_options_in_use

    check_options_in_use(["mixup.alpha", "alpha"], ["standard+mixup"])
    check_options_in_use(["fraction", "alpha"], "partial_mixup")
    with pytest.raises(ValueError, match=r"^--option mixup.alpha=0.2 is an option of augmentation 'mixup', which "
                                         r"this run does not use \(augmentations in use: none\)\. Add mixup") as error:
        check_options_in_use(["mixup.alpha"], "none", given_as={"mixup.alpha": "--option mixup.alpha=0.2"})
    assert error.value.option == "mixup.alpha"
    with pytest.raises(ValueError, match=r"^--fraction 0.5 is an option of augmentation 'partial_mixup', .*"
                                         r"in use: standard, mixup\)"):
        check_options_in_use(["fraction"], ["standard+mixup"], given_as={"fraction": "--fraction 0.5"})
    with pytest.raises(ValueError, match=r"^option 'alpha' is an option of the augmentations 'mixup', 'cutmix', "
                                         r"'mixup_cutmix', 'partial_mixup', 'student_side_mixup', none of which this run uses \(augmentations "
                                         r"in use: cutout\)"):
        check_options_in_use(["alpha"], "cutout")
    with pytest.raises(ValueError, match="Unknown augmentation recipe 'mixpu'"):
        check_options_in_use(["mixpu.alpha"], "mixup")
    check_augmentation_options("mixup", {"alpha": 0.2}, in_use=["none", "mixup"])
    with pytest.raises(ValueError, match=r"option 'cutout.size' is an option of augmentation 'cutout'.*"
                                         r"in use: standard\)") as error:
        check_augmentation_options("cutout", {"size": 2}, in_use="standard")
    assert error.value.option == "size"


@pytest.mark.parametrize("name", ["mixup", "cutmix", "mixup_cutmix", "partial_mixup"])
@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_alpha_must_be_positive(name, alpha):
    with pytest.raises(ValueError, match=f"alpha must be > 0.*{alpha}"):
        get_augmentation(name, alpha=alpha, num_classes=10)


def test_mixing_option_errors():
    with pytest.raises(ValueError, match="cutmix_alpha must be > 0"):
        get_augmentation("mixup_cutmix", cutmix_alpha=0.0, num_classes=10)
    with pytest.raises(ValueError, match="needs alpha .* or cutmix_alpha"):
        Mixing(alpha=None, cutmix_alpha=None)
    with pytest.raises(ValueError, match=r"prob must be in \[0, 1\]; received prob=1.5"):
        get_augmentation("mixup", prob=1.5, num_classes=10)
    with pytest.raises(ValueError, match="mode must be one of"):
        get_augmentation("mixup", mode="element", num_classes=10)
    with pytest.raises(ValueError, match="implementation must be one of"):
        get_augmentation("cutmix", implementation="timm", num_classes=10)
    with pytest.raises(ValueError, match="keras.layers.CutMix takes .* cutmix_alpha=2.0"):
        get_augmentation("cutmix", alpha=2.0, implementation="keras", num_classes=10)
    with pytest.raises(ValueError, match="either fraction .* or prob"):
        Mixing(alpha=1.0, fraction=0.5, prob=0.5)
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        Mixing(alpha=1.0, label_smoothing=1.0)
    with pytest.raises(TypeError, match="num_classes must be a positive int"):
        Mixing(alpha=1.0, num_classes=10.0)


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_fraction_must_be_in_unit_interval(fraction):
    with pytest.raises(ValueError, match=rf"fraction must be in \[0, 1\]; received fraction={fraction}"):
        get_augmentation("partial_mixup", fraction=fraction, num_classes=10)


@pytest.mark.parametrize("name", MIXING_RECIPES + ("label_smoothing",))
def test_integer_labels_without_num_classes_is_a_clear_error(name, rng):
    _, batch = constant_batch(rng, 4)
    aug = get_augmentation(name)
    with pytest.raises(ValueError, match="integer labels .* num_classes=None"):
        aug(batch)
    with pytest.raises(ValueError, match="num_classes"):
        run_in_tf_data(aug, batch)


def test_bad_batches_are_clear_errors(rng):
    aug = get_augmentation("standard")
    with pytest.raises(TypeError, match="expects a dict batch"):
        aug(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(TypeError, match="float images in \\[0, 1\\]; received dtype uint8"):
        aug({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.zeros(2, np.int32)})
    mix = get_augmentation("mixup", num_classes=5)
    dense = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="num_classes=5 but dense labels with 4 columns"):
        mix({"images": np.zeros((4, 8, 8, 3), np.float32), "labels": dense})


def test_switch_off_callback_errors():
    with pytest.raises(ValueError, match="contains no mixing recipe"):
        MixingSwitchOff(3, get_augmentation("standard"))
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        MixingSwitchOff(-1, get_augmentation("mixup", num_classes=3))


# -- MixUp -----------------------------------------------------------------------------
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("mode", ["sample", "batch"])
def test_mixup_labels_carry_the_lambda_applied_to_the_pixels(implementation, mode, rng):
    batch_size, alpha = 64, 0.4
    aug = get_augmentation(
        "mixup", alpha=alpha, mode=mode, implementation=implementation,
        num_classes=batch_size,
    )
    lams = []
    for _ in range(6):
        values, batch = constant_batch(rng, batch_size)
        out = aug(batch)
        labels = out["labels"].numpy()
        assert labels.dtype == np.float32 and labels.shape == (batch_size, batch_size)
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
        own, partner, pixels = read_mix(values, out["images"].numpy(), labels)
        for i in range(batch_size):
            assert row_is_mixup(values, own, partner, pixels, i), i
        mixed = partner != np.arange(batch_size)
        # A row with weight w on its own image: w and 1 - w are the same draw.
        lam = own[mixed]
        if mode == "batch":
            assert mixed.all()  # partners are never the row itself
            assert np.ptp(lam) < 1e-6
            lams.append(lam[0])
        else:
            assert np.ptp(lam) > 0.05
            lams.extend(lam)
    if mode == "sample":
        # The Beta(alpha, alpha) concentration is the one asked for.
        lams = np.asarray(lams)
        assert abs(np.mean(lams * (1 - lams)) - np_beta_moment(alpha)) < 0.02


def test_mixup_with_label_smoothing_follows_timm(rng):
    batch_size, epsilon = 16, 0.2
    aug = get_augmentation(
        "mixup", alpha=1.0, label_smoothing=epsilon, num_classes=batch_size
    )
    values, batch = constant_batch(rng, batch_size)
    out = aug(batch)
    labels = out["labels"].numpy().astype(np.float64)
    # Undo the (linear) smoothing to read the mix, then check the formula.
    raw = (labels - epsilon / batch_size) / (1.0 - epsilon)
    own, partner, pixels = read_mix(values, out["images"].numpy(), raw)
    expected = np.zeros((batch_size, batch_size))
    expected[np.arange(batch_size), np.arange(batch_size)] += own
    expected[np.arange(batch_size), partner] += 1.0 - own
    np.testing.assert_allclose(labels, np_smooth(expected, epsilon), atol=1e-5)
    for i in range(batch_size):
        assert row_is_mixup(values, own, partner, pixels, i)


# -- CutMix ----------------------------------------------------------------------------
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("mode", ["sample", "batch"])
def test_cutmix_lambda_is_the_pasted_area(implementation, mode, rng):
    batch_size = 32
    aug = get_augmentation(
        "cutmix", alpha=1.0, mode=mode, implementation=implementation,
        num_classes=batch_size,
    )
    areas = []
    for _ in range(4):
        values, batch = constant_batch(rng, batch_size, size=16)
        out = aug(batch)
        own, partner, pixels = read_mix(values, out["images"].numpy(), out["labels"].numpy())
        for i in range(batch_size):
            assert row_is_cutmix(values, own, partner, pixels, i), i
        pasted = ~np.isclose(pixels, values[:, None, None], atol=1e-6)
        if mode == "batch":
            # One box for the whole batch.
            assert all(np.array_equal(pasted[0], p) for p in pasted)
        areas.extend(pasted.mean(axis=(1, 2)))
    assert 0.1 < np.mean(areas) < 0.6  # boxes of every size are drawn


# -- MixUp or CutMix, probability ----------------------------------------------------------
def classify_rows(values, out):
    own, partner, pixels = read_mix(values, out["images"].numpy(), out["labels"].numpy())
    kinds = []
    for i in range(len(values)):
        if partner[i] == i:
            assert np.allclose(pixels[i], values[i], atol=1e-6)
            kinds.append("clean")
        elif row_is_cutmix(values, own, partner, pixels, i) and not np.allclose(
            pixels[i], pixels[i].flat[0]
        ):
            kinds.append("cutmix")
        else:
            assert row_is_mixup(values, own, partner, pixels, i)
            kinds.append("mixup")
    return np.array(kinds)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_mixup_cutmix_switches_per_sample(implementation, rng):
    batch_size = 48
    for switch_prob, expect in [(0.0, "mixup"), (1.0, "cutmix")]:
        aug = get_augmentation(
            "mixup_cutmix", switch_prob=switch_prob, implementation=implementation,
            num_classes=batch_size,
        )
        values, batch = constant_batch(rng, batch_size, size=16)
        kinds = classify_rows(values, aug(batch))
        assert set(kinds) <= {expect, "clean"} and (kinds == expect).sum() > batch_size // 2
    aug = get_augmentation(
        "mixup_cutmix", switch_prob=0.5, implementation=implementation,
        num_classes=batch_size,
    )
    kinds = np.concatenate(
        [classify_rows(v, aug(b)) for v, b in (constant_batch(rng, batch_size, 12) for _ in range(3))]
    )
    share = (kinds == "cutmix").mean() / max((kinds != "clean").mean(), 1e-9)
    assert 0.35 < share < 0.65


def test_mixup_cutmix_switches_per_batch(rng):
    batch_size = 32
    aug = get_augmentation(
        "mixup_cutmix", switch_prob=0.5, mode="batch", num_classes=batch_size
    )
    seen = set()
    for _ in range(12):
        values, batch = constant_batch(rng, batch_size, size=16)
        kinds = set(classify_rows(values, aug(batch))) - {"clean"}
        assert len(kinds) == 1  # the whole batch takes the same kind
        seen |= kinds
    assert seen == {"mixup", "cutmix"}


@pytest.mark.parametrize("mode", ["sample", "batch"])
def test_prob_is_the_chance_of_mixing(mode, rng):
    batch_size = 32
    never = get_augmentation("mixup", prob=0.0, mode=mode, num_classes=batch_size)
    values, batch = constant_batch(rng, batch_size)
    out = never(batch)
    np.testing.assert_array_equal(out["images"].numpy(), batch["images"])
    np.testing.assert_array_equal(out["labels"].numpy(), np.eye(batch_size, dtype=np.float32))
    half = get_augmentation("mixup", prob=0.5, mode=mode, num_classes=batch_size)
    mixed = []
    for _ in range(40 if mode == "batch" else 16):
        values, batch = constant_batch(rng, batch_size)
        own, partner, _ = read_mix(values, *half(batch).values())
        mixed.append(np.mean(partner != np.arange(batch_size)))
    if mode == "batch":
        assert set(np.round(mixed, 6)) == {0.0, 1.0}  # all rows or none
        assert 0.25 < np.mean(mixed) < 0.75  # 40 coins: +-3 standard deviations
    else:
        # 512 coins; library permutations leave ~1 row per batch paired with itself.
        assert 0.38 < np.mean(mixed) < 0.6


# -- partial mixup ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "batch_size,fraction,expected",
    [(64, 0.1, 6), (10, 0.25, 3), (10, 0.24, 2), (7, 0.5, 4), (16, 0.0, 0), (16, 1.0, 16)],
)
def test_partial_mixup_mixes_exactly_the_fraction(batch_size, fraction, expected, rng):
    assert expected == int(np.floor(fraction * batch_size + 0.5))
    aug = get_augmentation("partial_mixup", fraction=fraction, num_classes=batch_size)
    values, batch = constant_batch(rng, batch_size)
    dataset = tf.data.Dataset.from_tensors(batch).repeat(25).map(aug)
    chosen = np.zeros(batch_size)
    for out in dataset:
        own, partner, pixels = read_mix(values, out["images"].numpy(), out["labels"].numpy())
        changed = ~np.all(np.isclose(pixels, values[:, None, None]), axis=(1, 2))
        assert changed.sum() == expected
        np.testing.assert_array_equal(changed, partner != np.arange(batch_size))
        for i in range(batch_size):
            assert row_is_mixup(values, own, partner, pixels, i)
        chosen += changed
    if 0 < expected < batch_size:
        # The mixed rows are drawn afresh every batch.
        assert (chosen > 0).sum() > min(batch_size - 1, 2 * expected)


def test_partial_mixup_lambda_per_sample_or_per_batch(rng):
    batch_size = 32
    for mode in ("sample", "batch"):
        aug = get_augmentation("partial_mixup", fraction=0.5, mode=mode, num_classes=batch_size)
        values, batch = constant_batch(rng, batch_size)
        own, partner, _ = read_mix(values, *aug(batch).values())
        lam = own[partner != np.arange(batch_size)]
        assert len(lam) == 16
        assert (np.ptp(lam) < 1e-6) == (mode == "batch")


# -- standard, cutout, label smoothing, randaugment, augmix --------------------------------
def test_standard_is_a_padded_crop_and_flip_of_each_image(rng):
    images = rng.uniform(0.05, 1.0, (48, 32, 32, 3)).astype(np.float32)
    aug = get_augmentation("standard")
    out = aug({"images": images, "labels": np.zeros(48, np.int32)})["images"].numpy()
    flips, offsets = 0, set()
    for image, result in zip(images.astype(np.float64), out):
        matches = [
            (dy, dx, flip)
            for dy in range(9) for dx in range(9) for flip in (False, True)
            if np.allclose(np_pad_crop(image, 4, dy, dx, flip), result, atol=1e-6)
        ]
        assert len(matches) == 1
        flips += matches[0][2]
        offsets.add(matches[0][:2])
    assert 10 < flips < 38 and len(offsets) > 20
    assert PadCropFlip().padding_for(64, 64) == 8
    assert PadCropFlip(padding=2).padding_for(64, 64) == 2


@pytest.mark.parametrize("size,side", [(32, 16), (16, 8)])
def test_cutout_cuts_one_square_hole(size, side, rng):
    images = np.ones((64, size, size, 3), np.float32)
    out = get_augmentation("cutout")({"images": images, "labels": np.zeros(64, np.int32)})
    holes = out["images"].numpy()[..., 0] == 0.0
    assert np.all(out["images"].numpy()[~np.repeat(holes[..., None], 3, -1)] == 1.0)
    full = 0
    for hole in holes:
        rows, cols = np.where(hole)
        assert hole[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
        assert np.ptp(rows) + 1 <= side and np.ptp(cols) + 1 <= side
        full += hole.sum() == side * side
    assert full > 5  # holes away from the border are exactly side x side


def test_label_smoothing_matches_numpy(rng):
    labels = rng.integers(0, 7, 20).astype(np.int32)
    images = rng.uniform(size=(20, 8, 8, 3)).astype(np.float32)
    out = get_augmentation("label_smoothing", epsilon=0.15, num_classes=7)(
        {"images": images, "labels": labels}
    )
    np.testing.assert_allclose(out["labels"].numpy(), np_smooth(np.eye(7)[labels], 0.15), atol=1e-6)
    np.testing.assert_array_equal(out["images"].numpy(), images)
    dense = rng.dirichlet(np.ones(5), 20).astype(np.float32)
    out = LabelSmoothing(0.3)({"images": images, "labels": dense})  # K from the labels
    np.testing.assert_allclose(out["labels"].numpy(), np_smooth(dense.astype(np.float64), 0.3), atol=1e-6)
    with pytest.raises(ValueError, match="epsilon must be in"):
        LabelSmoothing(1.0)


@pytest.mark.parametrize("cls", [RandAugment, AugMix])
def test_keras_core_randaugment_and_augmix_change_images_within_range(cls, rng):
    # The KerasCV defaults are checked by test_every_recipe_runs_inside_tf_data.
    implementation = "keras"
    if cls is RandAugment and implementation == "keras" and keras.backend.backend() == "jax":
        # Not a failure: keras.layers.Equalization checks the global backend, so
        # under JAX it builds a 256-step loop in the tf.data graph, which takes
        # ~40 s to trace (it runs, slowly; see docs/augment.md). The same layer
        # is checked under the tensorflow and torch backends.
        pytest.skip("Keras core RandAugment traces in ~40 s under JAX (Keras Equalization)")
    images = rng.uniform(size=(4, 16, 16, 3)).astype(np.float32)
    labels = np.arange(4, dtype=np.int32)
    out = cls(implementation=implementation)({"images": images, "labels": labels})
    result = out["images"].numpy()
    assert result.shape == images.shape and np.isfinite(result).all()
    assert result.min() >= -1e-5 and result.max() <= 1 + 1e-5
    assert not np.allclose(result, images)
    np.testing.assert_array_equal(out["labels"].numpy(), labels)


def in_graph(function, *args):
    """`function(*args)` traced, as inside tf.data, as NumPy. (Called eagerly under JAX or PyTorch,
    KerasCV's layers return that backend's arrays.)"""
    return tf.nest.map_structure(np.asarray, tf.function(function)(*args))


def map_in_graph(function, keys, signature):
    """`tf.map_fn(function, keys)` inside one `tf.function`: one graph loop, not a Python step per key."""
    return tf.function(lambda keys: tf.map_fn(function, keys, fn_output_signature=signature))(keys)


def keys_of(seed, count):
    """`count` stateless keys, shape (count, 2), from a seeded generator (as the layer makes them)."""
    return tf.transpose(tf.random.Generator.from_seed(seed).make_seeds(count))


# KerasCV's AugMix draws and operations are TensorFlow graphs (tf.map_fn, tf.function) under every
# backend, as in the tf.data pipeline: they run under one backend. The layer called on a batch, which
# returns the backend's arrays, is tested under each (test_keras_cv_augmix_image_depends_only_on_its_key).
@pytest.mark.one_backend
@needs_keras_cv
def test_keras_cv_augmix_draws_keep_keras_cvs_distributions():
    """The stateless draws that replace KerasCV's stateful ones keep its distributions: chain weights
    ~ Dirichlet(alpha 1), blend ~ Beta(alpha, alpha), depth uniform in chain_depth, operation uniform
    over KerasCV's 8, strength uniform in (0.01, severity), sign +-1 evenly; a key repeats them."""
    alpha, chains, severity, draws = 0.5, 3, 0.4, 3000
    layer = AugMix(num_chains=chains, chain_depth=(2, 4), alpha=alpha, severity=severity, seed=1)._layer
    keys = keys_of(7, draws)
    weights, blend = map_in_graph(layer.sample_weights, keys, (tf.float32, tf.float32))
    weights, blend = weights.numpy().astype(np.float64), blend.numpy().astype(np.float64)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    # Dirichlet(a, a, a): mean 1/3, variance (1/3)(2/3) / (3a + 1); Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)).
    np.testing.assert_allclose(weights.mean(axis=0), 1 / 3, atol=0.02)
    np.testing.assert_allclose(weights.var(axis=0), (1 / 3) * (2 / 3) / (3 * alpha + 1), rtol=0.1)
    assert abs(blend.mean() - 0.5) < 0.02 and abs(blend.var() - 1 / (4 * (2 * alpha + 1))) < 0.01
    depth = map_in_graph(layer.sample_depth, keys, tf.int32).numpy()
    np.testing.assert_allclose(np.bincount(depth, minlength=5)[2:] / draws, 1 / 3, atol=0.03)
    assert set(np.unique(depth)) == {2, 3, 4}
    op, level, sign = (v.numpy() for v in map_in_graph(layer.sample_step, keys, (tf.int32, tf.float32, tf.float32)))
    np.testing.assert_allclose(np.bincount(op, minlength=8) / draws, 1 / 8, atol=0.02)
    assert set(np.unique(op)) == set(range(8))
    assert 0.01 <= level.min() and level.max() <= severity
    assert abs(level.mean() - (0.01 + severity) / 2) < 0.01
    assert set(np.unique(sign)) == {-1.0, 1.0} and abs(sign.mean()) < 0.06
    constant = AugMix(severity=0.01, seed=1)._layer  # KerasCV's lowest severity: a constant strength
    assert float(constant.sample_step(keys[0])[1]) == pytest.approx(0.01)
    # The same key, the same draws; another key, others.
    again = layer.sample_weights(keys[5])[0].numpy()
    np.testing.assert_array_equal(again, weights[5].astype(np.float32))
    assert not np.array_equal(layer.sample_weights(keys[6])[0].numpy(), again)


@pytest.mark.one_backend
@needs_keras_cv
@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_keras_cv_augmix_operations_are_keras_cvs(sign, rng):
    """Each operation, given the strength and sign KerasCV would have drawn, gives KerasCV's own result
    (its `_posterize`, `_rotate`, ... with `severity_factor` and the generator replaced by those values),
    in KerasCV's order of operation indices."""
    import keras_cv

    image = tf.constant(rng.uniform(size=(12, 10, 3)).astype(np.float32))
    layer = AugMix(severity=0.9, seed=1)._layer
    level = tf.constant(0.73)

    class FixedGenerator:  # KerasCV's random_inversion returns -1 when its uniform draw is > 0.5
        def uniform(self, *args, **kwargs):
            return tf.constant(0.9 if sign < 0 else 0.1)

    reference = keras_cv.layers.AugMix(value_range=(0, 1), severity=0.9, seed=1)
    reference.severity_factor = lambda: level
    reference._random_generator = FixedGenerator()
    kerascv_ops = [reference._auto_contrast, reference._equalize, reference._posterize, reference._rotate,
                   reference._solarize, reference._shear_x, reference._shear_y, reference._translate_x]
    outputs = []
    for index, kerascv_op in enumerate(kerascv_ops):
        ours = in_graph(layer.apply_op, image, tf.constant(index), level, tf.constant(sign))
        np.testing.assert_allclose(ours, in_graph(kerascv_op, image), atol=1e-6, err_msg=str(index))
        outputs.append(ours)
    # Every operation changes this image, each differently (the comparison above cannot pass vacuously).
    assert all(not np.allclose(out, image.numpy()) for out in outputs)
    assert all(not np.allclose(a, b) for i, a in enumerate(outputs) for b in outputs[i + 1:])


@needs_keras_cv
def test_keras_cv_augmix_image_depends_only_on_its_key(rng):
    """A batch's image i is AugMix of image i under the i-th key of the layer's seeded generator, and
    of nothing else: no draw depends on which image (or thread) ran first. The blend of chains too:
    AugMix(x) = b x + (1 - b) sum_c w_c chain_c(x), with depth 1 and one operation known per chain."""
    images = rng.uniform(size=(6, 10, 10, 3)).astype(np.float32)
    batch = {"images": images, "labels": np.zeros(6, np.int32)}
    aug = AugMix(seed=11)
    out = aug(batch)["images"].numpy()
    keys = keys_of(aug._layer.seed, 6)
    alone = AugMix(seed=11)._layer  # its generator untouched: augment_with_key draws nothing from it
    for i in range(6):
        np.testing.assert_allclose(out[i], in_graph(alone.augment_with_key, images[i], keys[i]), atol=1e-6)
    reversed_out = AugMix(seed=11)({"images": images[::-1], "labels": batch["labels"]})["images"].numpy()
    assert not np.allclose(reversed_out[::-1], out)  # the key goes with the position in the batch
    # The mixing formula, with chain_depth 1: each chain is one operation drawn from its own step key.
    layer = AugMix(seed=11, chain_depth=1, num_chains=2, severity=0.5)._layer
    fold_in = tf.random.experimental.stateless_fold_in
    image, key = tf.constant(images[0]), keys[0]
    weights, blend = layer.sample_weights(key)
    chains = []
    for c in range(2):
        chain_key = fold_in(fold_in(key, layer._CHAINS), c)
        assert int(layer.sample_depth(chain_key)) == 1
        step = layer.sample_step(fold_in(chain_key, 1))
        chains.append(in_graph(layer.apply_op, image, *step).astype(np.float64))
    expected = float(blend) * images[0] + (1 - float(blend)) * sum(float(w) * x for w, x in zip(weights, chains))
    np.testing.assert_allclose(in_graph(layer.augment_with_key, image, key), expected, atol=1e-5)


# -- every recipe: identity at inference, runs in tf.data, combinations --------------------
@pytest.mark.parametrize("name", list_augmentations())
def test_every_recipe_is_the_identity_at_inference(name, rng):
    images = rng.uniform(size=(8, 32, 32, 3)).astype(np.float32)
    batch = {"images": images, "labels": rng.integers(0, 4, 8).astype(np.int32)}
    aug = get_augmentation(name, **recipe_options(name, 4))
    assert aug(batch, training=False) is batch
    (out,) = run_in_tf_data(aug, batch, training=False)
    np.testing.assert_array_equal(out["images"], batch["images"])
    np.testing.assert_array_equal(out["labels"], batch["labels"])


@pytest.mark.parametrize("name", list_augmentations())
def test_every_recipe_runs_inside_tf_data(name, rng):
    num_classes = 5
    batch = {
        "images": rng.uniform(size=(8, 16, 16, 3)).astype(np.float32),
        "labels": rng.integers(0, num_classes, 8).astype(np.int32),
        "teacher_images": np.zeros((8, 16, 16, 3), np.float32),  # passes through
        # The cached teacher logits the pipeline routes through the augmentation: passed on (mixed by
        # student_side_mixup).
        "teacher_logits": rng.normal(size=(8, num_classes)).astype(np.float32),
    }
    aug = get_augmentation(name, **recipe_options(name, num_classes))
    outs = run_in_tf_data(aug, batch, num_batches=2)
    for out in outs:
        assert out["images"].shape == batch["images"].shape
        assert out["images"].dtype == np.float32
        assert -1e-5 <= out["images"].min() and out["images"].max() <= 1 + 1e-5
        np.testing.assert_array_equal(out["teacher_images"], batch["teacher_images"])
        if name != "student_side_mixup":
            np.testing.assert_array_equal(out["teacher_logits"], batch["teacher_logits"])
        if name in MIXING_RECIPES or name in ("label_smoothing", "student_side_mixup"):
            assert out["labels"].shape == (8, num_classes) and out["labels"].dtype == np.float32
            np.testing.assert_allclose(out["labels"].sum(axis=1), 1.0, atol=1e-5)
        else:
            np.testing.assert_array_equal(out["labels"], batch["labels"])
    if name != "none":
        assert not np.array_equal(outs[0]["images"], batch["images"]) or not np.array_equal(
            outs[0]["labels"], batch["labels"]
        )


def test_combination_applies_recipes_in_order(rng):
    batch_size = 16
    aug = get_augmentation(
        ["standard", "mixup", "label_smoothing"], alpha=1.0, epsilon=0.1,
        num_classes=batch_size, padding=0,
    )
    assert isinstance(aug, Compose) and len(aug.augmentations) == 3
    assert isinstance(aug.augmentations[1], Mixing) and aug.mixing == [aug.augmentations[1]]
    values, batch = constant_batch(rng, batch_size)
    out = aug(batch)
    labels = out["labels"].numpy().astype(np.float64)
    raw = (labels - 0.1 / batch_size) / 0.9
    own, partner, pixels = read_mix(values, out["images"].numpy(), raw)
    for i in range(batch_size):  # flips leave constant images as they are
        assert row_is_mixup(values, own, partner, pixels, i)
    config = aug.get_config()
    assert Compose.from_config(config).get_config() == config


def test_mixing_config_round_trip():
    mix = Mixing(
        alpha=0.4, cutmix_alpha=1.0, prob=0.8, switch_prob=0.3, mode="batch",
        label_smoothing=0.1, num_classes=10, implementation="keras", seed=3,
    )
    assert Mixing.from_config(mix.get_config()).get_config() == mix.get_config()
    assert get_augmentation(mix) is mix


def test_int_labels_of_shape_b_by_1_are_accepted(rng):
    _, batch = constant_batch(rng, 8)
    batch["labels"] = batch["labels"][:, None]
    out = get_augmentation("mixup", num_classes=8)(batch)
    assert out["labels"].shape == (8, 8)


def test_pipeline_gives_the_teacher_the_clean_batch(rng):
    from keras_mixkd import data

    images = rng.uniform(size=(32, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, 4, 32).astype(np.int32)
    aug = get_augmentation(["standard", "mixup"], num_classes=4)
    dataset = data.make_dataset(
        images, labels, batch_size=16, shuffle=False, augmentation=aug,
        num_classes=4, teacher_sees="clean",
    )
    for i, (x, y) in enumerate(dataset):
        np.testing.assert_array_equal(x["teacher_images"].numpy(), images[16 * i : 16 * (i + 1)])
        assert not np.allclose(x["images"].numpy(), x["teacher_images"].numpy())
        assert y.shape == (16, 4)


# -- switching mixing off by epoch -------------------------------------------------------------
def soft_rows(y_true, y_pred):
    return keras.ops.cast(keras.ops.max(y_true, axis=-1) < 0.999, "float32")


def test_mixing_switch_off_stops_mixing_at_its_epoch(rng):
    num_classes = 4
    images = rng.uniform(size=(64, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, num_classes, 64).astype(np.int32)
    aug = get_augmentation(["standard", "mixup"], alpha=1.0, num_classes=num_classes)
    dataset = (
        tf.data.Dataset.from_tensor_slices({"images": images, "labels": labels})
        .batch(16)
        .map(aug, num_parallel_calls=tf.data.AUTOTUNE)
        .map(lambda b: (b["images"], b["labels"]))
        .prefetch(tf.data.AUTOTUNE)
    )
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(num_classes)]
    )
    model.compile(
        optimizer="sgd",
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.MeanMetricWrapper(soft_rows, name="soft_rows")],
    )
    history = model.fit(
        dataset, epochs=4, verbose=0, callbacks=[MixingSwitchOff(2, aug)]
    )
    soft = history.history["soft_rows"]
    assert soft[0] > 0.5 and soft[1] > 0.5
    assert soft[2] == 0.0 and soft[3] == 0.0
    assert not aug.mixing[0].enabled
    # A new fit starts at epoch 0 again: mixing comes back on.
    MixingSwitchOff(2, aug).on_epoch_begin(0)
    assert aug.mixing[0].enabled


def paper_cutmix_mean_area(size, alpha, draws=200_000, seed=0):
    """float64 Monte Carlo of the CutMix paper's `rand_bbox`: box of side sqrt(1 - lam), centre uniform, clipped."""
    rng = np.random.default_rng(seed)
    lam = rng.beta(alpha, alpha, draws)
    cut = (size * np.sqrt(1.0 - lam)).astype(int)
    centre = rng.integers(0, size, (2, draws))
    low = np.clip(centre - cut // 2, 0, size)
    high = np.clip(centre + cut // 2, 0, size)
    return float(np.mean(np.prod(high - low, axis=0)) / size**2)


def test_default_cutmix_is_the_papers_clipped_box(rng):
    """The default cutmix (KerasCV) pastes the paper's clipped box (mean area ~0.30 at alpha = 1), with label
    weights equal to the pasted areas; Keras core's box always lies inside the image (mean area ~0.49)."""
    size, batch_size, batches = 32, 64, 6
    reference = paper_cutmix_mean_area(size, 1.0) * (1.0 - 1.0 / batch_size)  # ~1 row per batch pairs with itself
    assert 0.27 < reference < 0.33
    means = {}
    for implementation in (None, "keras"):
        options = {} if implementation is None else {"implementation": implementation}
        aug = get_augmentation("cutmix", alpha=1.0, num_classes=batch_size, **options)
        areas = []
        for _ in range(batches):
            values, batch = constant_batch(rng, batch_size, size=size, channels=1)
            out = aug(batch)
            own, partner, pixels = read_mix(values, out["images"].numpy(), out["labels"].numpy())
            for i in range(batch_size):
                assert row_is_cutmix(values, own, partner, pixels, i), i  # label weight = pasted area
            areas.extend(1.0 - own)
        means[implementation] = np.mean(areas)
    # 384 draws: the standard error of the mean area is about 0.012.
    assert abs(means[None] - reference) < 0.05, means
    assert means["keras"] > 0.42, means


@pytest.mark.parametrize("make", [lambda s: Cutout(seed=s), lambda s: PadCropFlip(seed=s),
                                  lambda s: Mixing(alpha=1.0, num_classes=4, seed=s),
                                  lambda s: RandAugment(implementation="keras", seed=s)])
@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seeds_are_refused(make, seed):
    with pytest.raises(ValueError, match=r"seed must be None or an int in \[0, .*received"):
        make(seed)
