"""Data sources and the tf.data pipeline: shapes, dtypes, splits, bad input."""

from collections import Counter

import keras
import numpy as np
import pytest

from keras_mixkd.data import DatasetSplits
from keras_mixkd.data import list_datasets
from keras_mixkd.data import load_dataset
from keras_mixkd.data import make_dataset


def _check_splits(splits, num_classes, input_shape):
    assert isinstance(splits, DatasetSplits)
    assert splits.num_classes == num_classes
    assert splits.input_shape == input_shape
    assert len(splits.class_names) == num_classes
    for x, y in (
        (splits.x_train, splits.y_train),
        (splits.x_val, splits.y_val),
        (splits.x_test, splits.y_test),
    ):
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.shape[1:] == input_shape and x.shape[0] == y.shape[0]
        if len(x):
            assert x.min() >= 0.0 and x.max() <= 1.0
            assert y.min() >= 0 and y.max() < num_classes
    channels = input_shape[-1]
    assert len(splits.mean) == channels and len(splits.std) == channels
    assert splits.normalization == (splits.mean, splits.std)


# --- digits -----------------------------------------------------------------


def test_digits_shapes_dtypes_and_sizes():
    splits = load_dataset("digits")
    _check_splits(splits, 10, (8, 8, 1))
    total = len(splits.y_train) + len(splits.y_val) + len(splits.y_test)
    assert total == 1797
    assert len(splits.y_test) == round(0.2 * 1797)
    assert len(splits.y_val) == round(0.1 * (1797 - len(splits.y_test)))
    # Pixel values are the sklearn values 0..16 divided by 16.
    assert np.allclose(splits.x_train * 16, np.round(splits.x_train * 16))


def test_digits_splits_are_disjoint_and_cover_the_data():
    from sklearn.datasets import load_digits

    raw = load_digits()
    splits = load_dataset("digits")
    ours = []
    for x, y in ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)):
        ours.append([(bytes(np.round(x[i, ..., 0] * 16).astype(np.uint8)), int(y[i])) for i in range(len(y))])
    flat = [row for part in ours for row in part]
    # Every example of load_digits appears, with its own label, exactly once
    # overall (as a multiset: digits holds a few duplicate images).
    raw_counter = Counter(
        (bytes(raw.images[i].astype(np.uint8)), int(raw.target[i])) for i in range(1797)
    )
    assert Counter(flat) == raw_counter


def test_validation_split_is_stratified_and_seeded():
    a = load_dataset("digits", validation_fraction=0.25, seed=0)
    b = load_dataset("digits", validation_fraction=0.25, seed=0)
    c = load_dataset("digits", validation_fraction=0.25, seed=1)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)
    # The test split does not depend on the seed.
    np.testing.assert_array_equal(a.x_test, c.x_test)
    # Stratified: each class gives its share (within one example).
    train_counts = np.bincount(np.concatenate([a.y_train, a.y_val]), minlength=10)
    val_counts = np.bincount(a.y_val, minlength=10)
    assert np.all(np.abs(val_counts - 0.25 * train_counts) <= 1.0)
    assert val_counts.sum() == round(0.25 * train_counts.sum())


def test_digits_normalization_statistics_come_from_the_training_split():
    splits = load_dataset("digits", seed=3)
    x = splits.x_train.astype(np.float64)
    np.testing.assert_allclose(splits.mean, [x.mean()], rtol=1e-10)
    np.testing.assert_allclose(splits.std, [x.std()], rtol=1e-10)


def test_zero_validation_fraction_gives_an_empty_validation_split():
    splits = load_dataset("digits", validation_fraction=0.0)
    assert splits.x_val.shape == (0, 8, 8, 1)
    assert splits.y_val.shape == (0,)
    assert len(splits.y_train) == 1797 - len(splits.y_test)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_bad_validation_fraction(fraction):
    with pytest.raises(ValueError, match="validation_fraction"):
        load_dataset("digits", validation_fraction=fraction)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown data set 'imagenet'.*digits"):
        load_dataset("imagenet")
    assert "digits" in list_datasets()


# --- make_dataset -----------------------------------------------------------


def _toy(rng, n=10, shape=(4, 4, 3), num_classes=3):
    images = rng.random((n, *shape)).astype(np.float32)
    labels = (np.arange(n) % num_classes).astype(np.int32)
    return images, labels


def _collect(dataset):
    xs, ys = [], []
    for x, y in dataset:
        xs.append(keras.tree.map_structure(np.asarray, x))
        ys.append(np.asarray(y))
    return xs, ys


def test_make_dataset_shapes_dtypes_and_normalization(rng):
    images, labels = _toy(rng)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    dataset = make_dataset(images, labels, batch_size=4, shuffle=False, normalization=(mean, std))
    xs, ys = _collect(dataset)
    assert [len(y) for y in ys] == [4, 4, 2]
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    assert x.dtype == np.float32 and y.dtype == np.int32
    expected = (images.astype(np.float64) - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(y, labels)


def test_make_dataset_shuffle_is_seeded_and_reshuffles_every_epoch(rng):
    n = 32
    images = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) / n
    labels = np.arange(n, dtype=np.int32) % 4

    def order(dataset):
        return np.concatenate([np.asarray(x)[:, 0, 0, 0] for x, _ in dataset]) * n

    first = make_dataset(images, labels, batch_size=8, seed=7)
    epoch_1, epoch_2 = order(first), order(first)
    again = order(make_dataset(images, labels, batch_size=8, seed=7))
    other_seed = order(make_dataset(images, labels, batch_size=8, seed=8))
    # Every example once per epoch, a fresh order each epoch, reproducible.
    np.testing.assert_array_equal(np.sort(epoch_1), np.arange(n))
    np.testing.assert_array_equal(np.sort(epoch_2), np.arange(n))
    assert not np.array_equal(epoch_1, epoch_2)
    np.testing.assert_array_equal(epoch_1, again)
    assert not np.array_equal(epoch_1, other_seed)
    # Labels travel with their images.
    for x, y in first:
        index = np.round(np.asarray(x)[:, 0, 0, 0] * n).astype(int)
        np.testing.assert_array_equal(np.asarray(y), labels[index])


def test_make_dataset_drop_remainder(rng):
    images, labels = _toy(rng, n=10)
    _, ys = _collect(make_dataset(images, labels, batch_size=4, drop_remainder=True))
    assert [len(y) for y in ys] == [4, 4]


def test_augmentation_runs_before_normalization(rng):
    images, labels = _toy(rng, n=6)
    seen = {}

    def flip_and_invert(batch, training=False):
        seen["training"] = training
        return {"images": 1.0 - batch["images"][:, :, ::-1, :], "labels": batch["labels"]}

    mean, std = 0.25, 0.5
    dataset = make_dataset(
        images, labels, batch_size=6, shuffle=False, augmentation=flip_and_invert,
        normalization=(mean, std),
    )
    (x,), (y,) = _collect(dataset)
    expected = ((1.0 - images.astype(np.float64)[:, :, ::-1, :]) - mean) / std
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)
    assert seen["training"] is True
    assert y.dtype == np.int32


def test_dense_labels_from_the_augmentation_are_kept_as_float32(rng):
    import tensorflow as tf

    images, labels = _toy(rng, n=8, num_classes=3)

    def smooth(batch, training=True):
        one_hot = tf.one_hot(batch["labels"], 3, dtype=tf.float64)
        return {"images": batch["images"], "labels": 0.9 * one_hot + 0.1 / 3}

    dataset = make_dataset(
        images, labels, batch_size=8, shuffle=False, augmentation=smooth, num_classes=3
    )
    (_,), (y,) = _collect(dataset)
    assert y.dtype == np.float32 and y.shape == (8, 3)
    np.testing.assert_allclose(y, 0.9 * np.eye(3)[labels] + 0.1 / 3, rtol=1e-6)


def test_dense_labels_given_in_are_float32(rng):
    images, labels = _toy(rng, n=5)
    dense = np.eye(3)[labels]
    (_,), (y,) = _collect(make_dataset(images, dense, batch_size=5, shuffle=False, num_classes=3))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, dense)
    with pytest.raises(ValueError, match="columns"):
        make_dataset(images, dense, num_classes=4)


def test_augmentation_with_wrong_label_width_is_refused(rng):
    import tensorflow as tf

    images, labels = _toy(rng, n=4)

    def widen(batch, training=True):
        return {"images": batch["images"], "labels": tf.one_hot(batch["labels"], 5)}

    with pytest.raises(ValueError, match="num_classes=3"):
        make_dataset(images, labels, augmentation=widen, num_classes=3)


def test_teacher_sees_clean_batch(rng):
    images, labels = _toy(rng, n=4)

    def invert(batch, training=True):
        return {"images": 1.0 - batch["images"], "labels": batch["labels"]}

    dataset = make_dataset(
        images, labels, batch_size=4, shuffle=False, augmentation=invert,
        normalization=(0.5, 0.25), teacher_sees="clean",
    )
    (x,), _ = _collect(dataset)
    assert set(x) == {"images", "teacher_images"}
    np.testing.assert_allclose(x["images"], ((1.0 - images.astype(np.float64)) - 0.5) / 0.25, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x["teacher_images"], (images.astype(np.float64) - 0.5) / 0.25, rtol=1e-5, atol=1e-6)


def test_fit_consumes_the_pipeline():
    from keras_mixkd.models import get_model

    splits = load_dataset("digits")
    train = make_dataset(splits.x_train[:256], splits.y_train[:256], batch_size=64,
                         normalization=splits.normalization)
    model = get_model("digits_cnn_small", splits.num_classes, splits.input_shape)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(train, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"labels": np.zeros(3, np.int32)}, ValueError, "4 images but 3 labels"),
        ({"labels": np.array([0, 1, -1, 2])}, ValueError, "negative"),
        ({"labels": np.array([0, 1, 2, 3]), "num_classes": 3}, ValueError, "out of range"),
        ({"labels": np.array([0.5, 1, 2, 0])}, ValueError, "integer class ids"),
        ({"images": np.zeros((4, 2, 2, 3), np.uint8)}, TypeError, "float"),
        ({"images": np.zeros((4, 2, 2), np.float32)}, ValueError, "shape"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"teacher_sees": "student"}, ValueError, "teacher_sees"),
        ({"normalization": (0.5,)}, ValueError, "normalization"),
        ({"normalization": ((0.5, 0.5), (1, 1))}, ValueError, "one per channel"),
        ({"normalization": (0.5, 0.0)}, ValueError, "std"),
        ({"augmentation": "mixup"}, TypeError, "callable"),
        ({"augmentation": lambda batch, training=True: batch["images"]}, TypeError, "dict"),
    ],
)
def test_make_dataset_bad_input(kwargs, error, match):
    arguments = {"images": np.zeros((4, 2, 2, 3), np.float32), "labels": np.array([0, 1, 2, 0])}
    arguments.update(kwargs)
    images = arguments.pop("images")
    labels = arguments.pop("labels")
    with pytest.raises(error, match=match):
        make_dataset(images, labels, **arguments)
