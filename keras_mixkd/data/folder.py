"""An image folder, one subfolder per class, via `image_dataset_from_directory`."""

import os
import warnings

import numpy as np

from keras_mixkd.data._arrays import build_splits
from keras_mixkd.data._arrays import stratified_split

# The extensions keras.utils.image_dataset_from_directory reads.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# Without train/ and test/ subfolders, this fixed share of every class is the
# test split (the same whatever `seed` is).
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0


def load_folder(path, *, validation_fraction=0.1, seed=0, image_size=(32, 32)):
    """Load `path/<class name>/<image files>` as train / validation / test.

    Two layouts are accepted:

    - `path/train/<class>/...` and `path/test/<class>/...` (the same class
      subfolders in both): those are the training and test data;
    - `path/<class>/...`: a fixed, stratified 20 % of every class is the
      test split.

    The validation split is carved out of the training data (stratified,
    seeded). Images are read as RGB, resized to `image_size` (bilinear) and
    scaled to [0, 1]; normalisation statistics are computed from the
    training split. Files with other extensions than .bmp, .gif, .jpeg,
    .jpg, .png are ignored, as `keras.utils.image_dataset_from_directory`
    does.

    **Corrupt image files are skipped**, with one `UserWarning` that says
    how many of how many files could not be decoded; only when no image at
    all can be read is it an error.

    Arguments:
        path: the folder.
        validation_fraction: share of the training data held out, in [0, 1).
        seed: seed of the validation split.
        image_size: (height, width) every image is resized to.

    Example:

    >>> splits = load_folder("flowers/", image_size=(32, 32))
    >>> splits.input_shape
    (32, 32, 3)
    """
    if path is None:
        raise ValueError(
            "The 'folder' data set needs a path (--data-path on the command line, data.path in a "
            "recipe, path= in Python) pointing to a folder with one subfolder of images per class."
        )
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Image folder {path!r} does not exist.")
    if not os.path.isdir(path):
        raise ValueError(f"{path!r} is a file, not a folder of class subfolders.")
    image_size = check_image_size(image_size)

    train_dir, test_dir = os.path.join(path, "train"), os.path.join(path, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        class_names = _class_names(train_dir)
        test_classes = _class_names(test_dir)
        if test_classes != class_names:
            raise ValueError(
                f"{train_dir!r} and {test_dir!r} must hold the same class "
                f"subfolders; got {class_names} and {test_classes}."
            )
        x_train, y_train = _read_images(train_dir, class_names, image_size)
        x_test, y_test = _read_images(test_dir, class_names, image_size)
    else:
        class_names = _class_names(path)
        images, labels = _read_images(path, class_names, image_size)
        train_index, test_index = stratified_split(labels, TEST_FRACTION, TEST_SPLIT_SEED)
        x_train, y_train = images[train_index], labels[train_index]
        x_test, y_test = images[test_index], labels[test_index]
    return build_splits(
        "folder",
        x_train,
        y_train,
        x_test,
        y_test,
        num_classes=len(class_names),
        class_names=class_names,
        validation_fraction=validation_fraction,
        seed=seed,
    )


def check_image_size(image_size):
    """`image_size` as a (height, width) tuple of positive ints."""
    try:
        size = tuple(int(d) for d in image_size)
        valid = len(size) == 2 and all(d > 0 for d in size) and all(
            float(d) == float(given) for d, given in zip(size, image_size)
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            f"image_size must be (height, width), two positive ints; got {image_size!r}."
        )
    return size


def _class_names(folder):
    names = sorted(
        entry.name
        for entry in os.scandir(folder)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    counts = {name: _count_images(os.path.join(folder, name)) for name in names}
    if not names or sum(counts.values()) == 0:
        raise ValueError(
            f"Image folder {folder!r} is empty: it needs one subfolder per class "
            f"holding image files ({', '.join(IMAGE_EXTENSIONS)})."
        )
    empty = [name for name in names if counts[name] == 0]
    if empty:
        listed = ", ".join(f"{name}: {counts[name]}" for name in names)
        raise ValueError(
            f"Image folder {folder!r}: class subfolder(s) {', '.join(map(repr, empty))} hold no image, "
            f"which would make a {len(names)}-class model with classes it never sees (images per "
            f"class: {listed}). Remove those subfolders or put images in them."
        )
    if len(names) < 2:
        raise ValueError(
            f"Image folder {folder!r} has a single class subfolder ({names[0]!r}); "
            "classification needs at least 2 classes."
        )
    return names


def _count_images(folder):
    total = 0
    for _, _, files in os.walk(folder):
        total += sum(1 for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
    return total


def _read_images(folder, class_names, image_size):
    import keras

    dataset = keras.utils.image_dataset_from_directory(
        folder,
        labels="inferred",
        label_mode="int",
        class_names=class_names,
        color_mode="rgb",
        batch_size=None,
        image_size=image_size,
        shuffle=False,
        verbose=False,
    )
    num_files = len(dataset.file_paths)
    # One element per file: a file that fails to decode drops only itself.
    dataset = dataset.ignore_errors().batch(256)
    images, labels = [], []
    for batch_images, batch_labels in dataset:
        images.append(np.asarray(batch_images, np.float32))
        labels.append(np.asarray(batch_labels, np.int32))
    if not images:
        raise ValueError(
            f"None of the {num_files} image files under {folder!r} could be decoded."
        )
    images = np.clip(np.concatenate(images) / np.float32(255.0), 0.0, 1.0)
    labels = np.concatenate(labels)
    skipped = num_files - len(labels)
    if skipped:
        warnings.warn(
            f"Skipped {skipped} of {num_files} image files under {folder!r} that "
            "could not be decoded (corrupt or not really images).",
            UserWarning,
            stacklevel=3,
        )
    return images.astype(np.float32), labels
