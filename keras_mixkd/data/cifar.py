"""CIFAR-10 and CIFAR-100 through `keras.datasets` (downloaded on first use)."""

import os

import keras

from keras_mixkd.data._arrays import build_splits
from keras_mixkd.data._arrays import to_int_labels
from keras_mixkd.data._arrays import to_unit_float_images

# Per-channel statistics of the training images, in [0, 1] units.
# CIFAR-100: the values of the KD benchmarks (RepDistiller / mdistiller).
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
# CIFAR-10: the exact per-channel std of the 50,000 training images. (Many
# repositories use (0.2023, 0.1994, 0.2010), an average of per-image stds.)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle",
    "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel",
    "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
    "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea",
    "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip",
    "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

# Where keras.datasets looks for the archive before downloading it.
_SOURCES = {
    "cifar10": (
        "CIFAR-10",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "cifar-10-batches-py-target_archive",
    ),
    "cifar100": (
        "CIFAR-100",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "cifar-100-python-target_archive",
    ),
}


def keras_datasets_dir():
    """The folder `keras.datasets` caches downloads in (~/.keras/datasets)."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "datasets")


def load_cifar(name="cifar10", *, validation_fraction=0.1, seed=0):
    """CIFAR-10 or CIFAR-100 as 32x32x3 float32 images in [0, 1].

    The 50,000 training images give the training and validation splits
    (stratified, seeded); the 10,000 test images are the test split.
    CIFAR-100 uses its 100 fine labels. Normalisation statistics are the
    published ones (`CIFAR10_MEAN`/`STD`, `CIFAR100_MEAN`/`STD`).

    Without network access, download the archive elsewhere and copy it,
    unchanged, into Keras's cache (~/.keras/datasets, or $KERAS_HOME/datasets):
    CIFAR-10: `cifar-10-python.tar.gz` saved as
    `cifar-10-batches-py-target_archive`; CIFAR-100: `cifar-100-python.tar.gz`
    saved as `cifar-100-python-target_archive`. Keras checks its hash and
    extracts it on the next call.

    Arguments:
        name: "cifar10" or "cifar100".
        validation_fraction: share of the training data held out, in [0, 1).
        seed: seed of the validation split.

    Example:

    >>> splits = load_cifar("cifar100")
    >>> splits.input_shape, splits.num_classes
    ((32, 32, 3), 100)
    """
    if name not in _SOURCES:
        raise ValueError(f"load_cifar takes 'cifar10' or 'cifar100', got {name!r}.")
    title, url, archive = _SOURCES[name]
    module = keras.datasets.cifar10 if name == "cifar10" else keras.datasets.cifar100
    arguments = {} if name == "cifar10" else {"label_mode": "fine"}
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data(**arguments)
    except Exception as error:  # keras raises a bare Exception on URL failure
        target = os.path.join(keras_datasets_dir(), archive)
        raise OSError(
            f"Could not load {title} through keras.datasets: {error}\n"
            f"Keras downloads it from {url} and caches it in "
            f"{keras_datasets_dir()} (~/.keras/datasets, or $KERAS_HOME/datasets). "
            f"Offline, download that file on a machine with network access and "
            f"copy it, unchanged, to {target}; Keras verifies and extracts it "
            "on the next call."
        ) from error
    num_classes = 10 if name == "cifar10" else 100
    x_train = to_unit_float_images(x_train, f"{title} training images")
    x_test = to_unit_float_images(x_test, f"{title} test images")
    y_train = to_int_labels(y_train, f"{title} training labels", len(x_train), num_classes)
    y_test = to_int_labels(y_test, f"{title} test labels", len(x_test), num_classes)
    if name == "cifar10":
        classes, mean, std = CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
    else:
        classes, mean, std = CIFAR100_CLASSES, CIFAR100_MEAN, CIFAR100_STD
    # The statistics of all 50,000 training images (above), not of those kept after the split.
    return build_splits(
        name, x_train, y_train, x_test, y_test, num_classes=num_classes, class_names=classes,
        validation_fraction=validation_fraction, seed=seed, mean=mean, std=std,
    )

