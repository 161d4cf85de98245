"""An image folder, one subfolder per class (or train/, val/, test/ split folders of them), via
`image_dataset_from_directory`."""

import os
import warnings

import numpy as np

from keras_mixkd.data._arrays import build_splits
from keras_mixkd.data._arrays import stratified_split

# The extensions keras.utils.image_dataset_from_directory reads.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# Without split subfolders (train/ + test/ or val/), this fixed share of every class is the
# test split (the same whatever `seed` is).
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0


# The split subfolders understood, and the layouts they make (what a refusal lists).
SPLITS = ("train", "val", "test")
LAYOUTS = (
    "DIR/<class>/<images>: one subfolder per class (a fixed, stratified 20 % of every class is the test split)",
    "DIR/train/<class>/... + DIR/test/<class>/...: the training and test data",
    "DIR/train/<class>/... + DIR/val/<class>/...: val/ is the held-out data accuracy is reported on (the test "
    "split), as ImageNet's val/",
    "DIR/train/<class>/... + DIR/val/<class>/... + DIR/test/<class>/...: the training, validation and test data",
)
# Subfolder names that look like a split but are not one of SPLITS (compared in lower case).
_SPLIT_LIKE = ("train", "training", "val", "valid", "validation", "dev", "eval", "evaluation", "test", "testing")


def load_folder(path, *, validation_fraction=0.1, seed=0, image_size=(32, 32)):
    """Load a folder of images, one subfolder per class, as train / validation / test.

    Four layouts are understood (`LAYOUTS`); any other is refused with the
    list of these:

    - `path/<class>/...`: a fixed, stratified 20 % of every class is the
      test split;
    - `path/train/<class>/...` + `path/test/<class>/...`: the training and
      test data;
    - `path/train/<class>/...` + `path/val/<class>/...`: `val/` is the
      held-out data the accuracy is reported on (the test split), as
      ImageNet's `val/`;
    - `path/train/...` + `path/val/...` + `path/test/...`: the training,
      validation and test data (`validation_fraction` is then unused).

    Every split folder must hold the same class subfolders (refused
    otherwise, naming the classes that differ). A folder with a subfolder
    named like a split (`train`, `val`, `test`, `validation`, `Train`, ...)
    beside other subfolders is refused, not read as a class.

    Unless `val/` and `test/` are both given, the validation split is carved
    out of the training data (stratified, seeded). Images are read as RGB,
    resized to `image_size` (bilinear) and scaled to [0, 1]; normalisation
    statistics are computed from the training split. Files with other
    extensions than .bmp, .gif, .jpeg, .jpg, .png are ignored, as
    `keras.utils.image_dataset_from_directory` does. Class names are the
    subfolder names, sorted: class id `i` is the `i`-th name.

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

    layout = folder_layout(path)
    validation = None
    if layout is None:
        class_names = _class_names(path)
        images, labels = _read_images(path, class_names, image_size)
        train_index, test_index = stratified_split(labels, TEST_FRACTION, TEST_SPLIT_SEED)
        x_train, y_train = images[train_index], labels[train_index]
        x_test, y_test = images[test_index], labels[test_index]
    else:
        class_names = _class_names(layout["train"])
        for split in ("val", "test"):
            if split in layout:
                _check_same_classes(layout["train"], layout[split], class_names)
        x_train, y_train = _read_images(layout["train"], class_names, image_size)
        if "test" in layout:
            x_test, y_test = _read_images(layout["test"], class_names, image_size)
            if "val" in layout:
                validation = _read_images(layout["val"], class_names, image_size)
        else:
            x_test, y_test = _read_images(layout["val"], class_names, image_size)
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
        validation=validation,
    )


def folder_layout(path):
    """`None` for a folder of class subfolders, else `{split: folder}` of its split subfolders.

    Refuses, listing `LAYOUTS`, a folder with a subfolder named like a split
    that does not make one of the layouts understood (`train/` alone,
    `train/` + `validation/`, `train/` beside class folders, ...).

    Example:

    >>> folder_layout("tv/")          # tv/train/<class>/..., tv/val/<class>/...
    {'train': 'tv/train', 'val': 'tv/val'}
    """
    subfolders = sorted(entry.name for entry in os.scandir(path)
                        if entry.is_dir() and not entry.name.startswith("."))
    split_like = [name for name in subfolders if name.lower() in _SPLIT_LIKE]
    if not split_like:
        return None
    if "train" in subfolders and set(subfolders) in ({"train", "test"}, {"train", "val"}, {"train", "val", "test"}):
        return {name: os.path.join(path, name) for name in SPLITS if name in subfolders}
    raise ValueError(
        f"Image folder {path!r} holds the subfolders {', '.join(subfolders)}: "
        f"{', '.join(split_like)} {'looks' if len(split_like) == 1 else 'look'} like a split, but this is not a "
        f"layout the folder data set understands. It understands: {describe_layouts()}. Rename or move the "
        "subfolders to one of these (split folders are named exactly train, val, test)."
    )


def describe_layouts():
    """The layouts `load_folder` understands, as one sentence (what its refusals list)."""
    return "; ".join(f"({i}) {layout}" for i, layout in enumerate(LAYOUTS, 1))


def _check_same_classes(train_dir, other_dir, class_names):
    other = sorted(entry.name for entry in os.scandir(other_dir)
                   if entry.is_dir() and not entry.name.startswith("."))
    if other != list(class_names):
        missing = [name for name in class_names if name not in other]
        extra = [name for name in other if name not in class_names]
        differences = "; ".join(part for part in (
            f"missing from {other_dir!r}: {', '.join(missing)}" if missing else "",
            f"not in {train_dir!r}: {', '.join(extra)}" if extra else "") if part)
        raise ValueError(
            f"{train_dir!r} and {other_dir!r} must hold the same class subfolders (class ids follow their "
            f"sorted names); got {list(class_names)} and {other} ({differences}). Rename or add the folders "
            "so that every split names the same classes."
        )
    _class_names(other_dir)  # the same checks: no empty class folder


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
            f"holding image files ({', '.join(IMAGE_EXTENSIONS)}). Layouts understood: {describe_layouts()}."
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
