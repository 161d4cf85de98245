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


# --- CIFAR (keras.datasets monkeypatched: tests never download) -------------


def _fake_cifar(num_classes, num_train=60, num_test=20, seed=0):
    generator = np.random.default_rng(seed)

    def load_data(**kwargs):
        x_train = generator.integers(0, 256, (num_train, 32, 32, 3), dtype=np.uint8)
        x_test = generator.integers(0, 256, (num_test, 32, 32, 3), dtype=np.uint8)
        # keras.datasets gives (N, 1) uint8 (CIFAR-10) / int64 (CIFAR-100) labels.
        y_train = (np.arange(num_train) % num_classes).reshape(-1, 1).astype(np.uint8)
        y_test = (np.arange(num_test) % num_classes).reshape(-1, 1).astype(np.uint8)
        load_data.kwargs = kwargs
        load_data.arrays = (x_train, y_train, x_test, y_test)
        return (x_train, y_train), (x_test, y_test)

    return load_data


@pytest.mark.parametrize(
    "name, num_classes, mean, std",
    [
        ("cifar10", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ("cifar100", 100, (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    ],
)
def test_cifar_sources(monkeypatch, name, num_classes, mean, std):
    fake = _fake_cifar(num_classes, num_train=200, num_test=30)
    monkeypatch.setattr(getattr(keras.datasets, name), "load_data", fake)
    splits = load_dataset(name, validation_fraction=0.1, seed=0)
    _check_splits(splits, num_classes, (32, 32, 3))
    x_train, y_train, x_test, y_test = fake.arrays
    assert len(splits.y_train) == 180 and len(splits.y_val) == 20
    np.testing.assert_allclose(splits.x_test, x_test / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(splits.y_test, y_test[:, 0])
    # Train and validation together are the training set, each image with its label.
    rejoined = np.concatenate([splits.x_train, splits.x_val]) * 255.0
    rejoined_labels = np.concatenate([splits.y_train, splits.y_val])
    order = np.lexsort(rejoined.reshape(len(rejoined), -1).T[::-1])
    reference = np.lexsort(x_train.reshape(len(x_train), -1).T[::-1].astype(np.float64))
    np.testing.assert_allclose(rejoined[order], x_train[reference], atol=1e-3)
    np.testing.assert_array_equal(rejoined_labels[order], y_train[reference, 0])
    assert splits.mean == mean and splits.std == std
    assert len(set(splits.class_names)) == num_classes
    if name == "cifar100":
        assert fake.kwargs == {"label_mode": "fine"}


@pytest.mark.parametrize("name, archive", [
    ("cifar10", "cifar-10-batches-py-target_archive"),
    ("cifar100", "cifar-100-python-target_archive"),
])
def test_cifar_offline_error_says_where_to_put_the_file(monkeypatch, name, archive):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://www.cs.toronto.edu: Name or service not known")

    monkeypatch.setattr(getattr(keras.datasets, name), "load_data", offline)
    with pytest.raises(OSError, match="keras/datasets") as info:
        load_dataset(name)
    assert archive in str(info.value)
    assert "URL fetch failure" in str(info.value)


# --- image folder -----------------------------------------------------------

COLORS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "fox": (0, 0, 255)}


def _write_folder(root, per_class=5, size=(10, 12), skip=()):
    for name, color in COLORS.items():
        if name in skip:
            continue
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = np.zeros((*size, 3), np.uint8) + np.array(color, np.uint8)
            pixels[0, 0] = index  # distinct files
            keras.utils.save_img(str(root / name / f"{index}.png"), pixels)
    return root


def test_folder_source_reads_resizes_and_labels(tmp_path):
    root = _write_folder(tmp_path / "images")
    splits = load_dataset("folder", path=root, validation_fraction=0.25, seed=0)
    _check_splits(splits, 3, (32, 32, 3))
    assert splits.class_names == ("cat", "dog", "fox")
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 15
    assert len(splits.y_test) == 3  # a fixed 20 %, one per class
    assert sorted(splits.y_test) == [0, 1, 2]
    for x, y in ((splits.x_train, splits.y_train), (splits.x_test, splits.y_test)):
        for image, label in zip(x, y):
            color = np.array(COLORS[splits.class_names[label]]) / 255.0
            # The image centre is the class colour, whatever the resizing did.
            np.testing.assert_allclose(image[16, 16], color, atol=1e-5)
    x = splits.x_train.astype(np.float64)
    np.testing.assert_allclose(splits.mean, x.mean(axis=(0, 1, 2)), rtol=1e-6)


def test_folder_image_size_and_train_test_layout(tmp_path):
    _write_folder(tmp_path / "train", per_class=4)
    _write_folder(tmp_path / "test", per_class=2)
    splits = load_dataset("folder", path=tmp_path, image_size=(16, 8), validation_fraction=0.0)
    _check_splits(splits, 3, (16, 8, 3))
    assert len(splits.y_train) == 12 and len(splits.y_test) == 6


def test_folder_train_val_layout(tmp_path):
    # train/ + val/: val/ is the held-out data (the test split), not two classes "train" and "val".
    _write_folder(tmp_path / "train", per_class=4)
    _write_folder(tmp_path / "val", per_class=2)
    splits = load_dataset("folder", path=tmp_path, image_size=(8, 8), validation_fraction=0.25)
    _check_splits(splits, 3, (8, 8, 3))
    assert splits.class_names == ("cat", "dog", "fox")
    assert len(splits.y_test) == 6 and len(splits.y_train) + len(splits.y_val) == 12
    assert len(splits.y_val) == 3
    for image, label in zip(splits.x_test, splits.y_test):
        np.testing.assert_allclose(image[4, 4], np.array(COLORS[splits.class_names[label]]) / 255.0, atol=1e-5)


def test_folder_train_val_test_layout(tmp_path):
    _write_folder(tmp_path / "train", per_class=4)
    _write_folder(tmp_path / "val", per_class=2)
    _write_folder(tmp_path / "test", per_class=3)
    splits = load_dataset("folder", path=tmp_path, image_size=(8, 8), validation_fraction=0.25)
    _check_splits(splits, 3, (8, 8, 3))
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (12, 6, 9)
    assert sorted(splits.y_val) == [0, 0, 1, 1, 2, 2]


@pytest.mark.backend_independent
def test_folder_refuses_splits_with_other_classes(tmp_path):
    _write_folder(tmp_path / "train", per_class=1)
    _write_folder(tmp_path / "val", per_class=1, skip=("fox",))
    (tmp_path / "val" / "wolf").mkdir()
    keras.utils.save_img(str(tmp_path / "val" / "wolf" / "0.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"same class subfolders.*missing from .*val.*: fox; not in .*train.*: wolf"):
        load_dataset("folder", path=tmp_path)


@pytest.mark.backend_independent
@pytest.mark.parametrize("subfolders", [("train",), ("train", "validation"), ("train", "val", "cat"),
                                        ("Train", "Test"), ("val", "test")])
def test_folder_refuses_layouts_it_does_not_understand(tmp_path, subfolders):
    for name in subfolders:
        _write_folder(tmp_path / name, per_class=1)
    with pytest.raises(ValueError, match="not a layout the folder data set understands") as info:
        load_dataset("folder", path=tmp_path)
    for layout in ("DIR/<class>/<images>", "DIR/train/<class>/... + DIR/test/<class>/...",
                   "DIR/train/<class>/... + DIR/val/<class>/...", "DIR/val/<class>/... + DIR/test/<class>/..."):
        assert layout in str(info.value)


def test_folder_skips_corrupt_files_with_a_count(tmp_path):
    root = _write_folder(tmp_path / "images")
    (root / "dog" / "broken.png").write_bytes(b"this is not a png")
    (root / "fox" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (root / "fox" / "notes.txt").write_text("ignored: not an image extension")
    with pytest.warns(UserWarning, match="Skipped 2 of 17 image files"):
        splits = load_dataset("folder", path=root, validation_fraction=0.0)
    assert len(splits.y_train) + len(splits.y_test) == 15


def test_folder_with_only_corrupt_files_is_an_error(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="None of the 2 image files"):
        load_dataset("folder", path=tmp_path)


def test_folder_bad_input(tmp_path):
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("folder")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("folder", path=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty.*Layouts understood: \\(1\\) DIR/<class>/<images>"):
        load_dataset("folder", path=tmp_path / "empty")
    (tmp_path / "empty" / "cat").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        load_dataset("folder", path=tmp_path / "empty")
    _write_folder(tmp_path / "single", skip=("dog", "fox"))
    with pytest.raises(ValueError, match="single class subfolder \\('cat'\\)"):
        load_dataset("folder", path=tmp_path / "single")
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("folder", path=tmp_path / "single", image_size=(32, 0))


# --- npz --------------------------------------------------------------------


def _write_npz(path, **overrides):
    generator = np.random.default_rng(0)
    arrays = {
        "x_train": generator.integers(0, 256, (30, 6, 6, 3), dtype=np.uint8),
        "y_train": np.arange(30) % 3,
        "x_test": generator.integers(0, 256, (9, 6, 6, 3), dtype=np.uint8),
        "y_test": np.arange(9) % 3,
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


def test_npz_uint8_images(tmp_path):
    arrays = _write_npz(tmp_path / "data.npz")
    splits = load_dataset("npz", path=tmp_path / "data.npz", validation_fraction=0.2)
    _check_splits(splits, 3, (6, 6, 3))
    assert len(splits.y_train) == 24 and len(splits.y_val) == 6
    np.testing.assert_allclose(splits.x_test, arrays["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(splits.y_test, arrays["y_test"])
    x = splits.x_train.astype(np.float64)
    np.testing.assert_allclose(splits.std, x.std(axis=(0, 1, 2)), rtol=1e-6)


def test_npz_float_grey_images_and_class_names(tmp_path):
    generator = np.random.default_rng(1)
    _write_npz(
        tmp_path / "grey.npz",
        x_train=generator.random((30, 5, 5)),
        x_test=generator.random((9, 5, 5)).astype(np.float32),
        class_names=np.array(["a", "b", "c", "d"]),
    )
    splits = load_dataset("npz", path=tmp_path / "grey.npz")
    _check_splits(splits, 4, (5, 5, 1))
    assert splits.class_names == ("a", "b", "c", "d")


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"y_test": None, "x_test": None}, ValueError, "lacks the key\\(s\\) x_test, y_test"),
        ({"y_train": np.array([0, 1, -1] * 10)}, ValueError, "negative"),
        ({"y_test": np.array([0, 1, 3] * 3)}, ValueError, "out of range"),
        ({"y_train": np.arange(29) % 3}, ValueError, "29 labels for 30 images"),
        ({"x_train": np.full((30, 6, 6, 3), 2.0)}, ValueError, "\\[0, 1\\]"),
        ({"x_test": np.zeros((9, 5, 5, 3), np.uint8)}, ValueError, "same image shape"),
        ({"y_train": np.zeros(30, np.int64)}, ValueError, "single class"),
    ],
)
def test_npz_bad_input(tmp_path, overrides, error, match):
    _write_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(error, match=match):
        load_dataset("npz", path=tmp_path / "bad.npz")


def test_npz_missing_file_and_path(tmp_path):
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("npz")
    with pytest.raises(FileNotFoundError):
        load_dataset("npz", path=tmp_path / "nothing.npz")


def test_image_size_resizes_other_sources_and_recomputes_statistics():
    splits = load_dataset("digits", image_size=(16, 16))
    _check_splits(splits, 10, (16, 16, 1))
    x = splits.x_train.astype(np.float64)
    np.testing.assert_allclose(splits.std, [x.std()], rtol=1e-6)


def test_path_is_refused_where_it_means_nothing(tmp_path):
    with pytest.raises(ValueError, match="takes none"):
        load_dataset("digits", path=tmp_path)
