"""Checks and transforms shared by every data source (NumPy only)."""

import numpy as np


def to_unit_float_images(images, what):
    """Images as float32 NHWC in [0, 1].

    Integer images (uint8 and friends) must lie in [0, 255] and are divided
    by 255; float images must already lie in [0, 1] (no guessing: a float
    array in [0, 255] is refused with a hint). Grey images of shape
    (N, H, W) get a channel axis.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"{what} must have shape (N, height, width, channels) or "
            f"(N, height, width); got shape {images.shape}."
        )
    is_integer = np.issubdtype(images.dtype, np.integer)
    if not (is_integer or np.issubdtype(images.dtype, np.floating)):
        raise TypeError(f"{what} must hold numbers, got dtype {images.dtype}.")
    if images.size == 0:
        return images.astype(np.float32)
    low, high = images.min(), images.max()
    if is_integer:
        if low < 0 or high > 255:
            raise ValueError(
                f"{what} are integer images ({images.dtype}) and must lie in "
                f"[0, 255]; got values in [{low}, {high}]."
            )
        return images.astype(np.float32) / np.float32(255.0)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{what} holds NaN or infinite values.")
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{what} are float images ({images.dtype}) and must lie in "
            f"[0, 1]; got values in [{float(low)}, {float(high)}]. Divide "
            "by 255 first, or store them as uint8."
        )
    return images.astype(np.float32)


def to_int_labels(labels, what, num_examples=None, num_classes=None):
    """Labels as an int32 vector, checked against a count and a class range."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]  # keras.datasets gives (N, 1)
    if labels.ndim != 1:
        raise ValueError(
            f"{what} must be a vector of integer class ids, shape (N,); got "
            f"shape {labels.shape}."
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating) or np.any(labels != np.round(labels)):
            raise TypeError(
                f"{what} must be integer class ids, got dtype {labels.dtype}."
            )
    labels = labels.astype(np.int64)
    if num_examples is not None and len(labels) != num_examples:
        raise ValueError(
            f"{what} has {len(labels)} labels for {num_examples} images: "
            "the lengths must match."
        )
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"{what} holds negative class ids (min {labels.min()}); class ids "
            "must lie in [0, num_classes)."
        )
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"{what} holds class id {labels.max()}, out of range for "
            f"{num_classes} classes: class ids must lie in [0, {num_classes})."
        )
    return labels.astype(np.int32)


def stratified_split(labels, fraction, seed):
    """Indices (kept, held_out) holding out `fraction` of every class.

    The held-out size is round(fraction * N); each class gives its share
    (largest-remainder rounding, ties broken by the seed) and always keeps
    at least one example. Both index arrays are sorted.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
        raise TypeError(f"validation_fraction must be a number, got {fraction!r}.")
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(
            f"validation_fraction must lie in [0, 1), got {fraction}."
        )
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    num_total = len(labels)
    classes, counts = np.unique(labels, return_counts=True)
    wanted = fraction * counts
    quota = np.floor(wanted).astype(int)
    remaining = int(round(fraction * num_total)) - quota.sum()
    if remaining > 0:
        order = np.lexsort((rng.random(len(classes)), -(wanted - quota)))
        quota[order[:remaining]] += 1
    quota = np.minimum(quota, counts - 1)
    held_out = []
    for cls, take in zip(classes, quota):
        members = np.flatnonzero(labels == cls)
        held_out.append(rng.permutation(members)[:take])
    held_out = np.sort(np.concatenate(held_out)) if held_out else np.zeros(0, int)
    kept = np.setdiff1d(np.arange(num_total), held_out)
    return kept, held_out


def channel_statistics(images):
    """Per-channel mean and std of NHWC images (std 1 for a constant channel)."""
    if images.shape[0] == 0:
        raise ValueError("Cannot compute normalisation statistics of 0 images.")
    mean = images.mean(axis=(0, 1, 2), dtype=np.float64)
    std = images.std(axis=(0, 1, 2), dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def build_splits(name, x_train, y_train, x_test, y_test, *, num_classes,
                 class_names, validation_fraction, seed, mean=None, std=None, validation=None):
    """Carve the validation split out of training data (or take `validation=(x_val, y_val)`); return DatasetSplits."""
    from keras_mixkd.data.splits import DatasetSplits

    if validation is None:
        kept, held_out = stratified_split(y_train, validation_fraction, seed)
        x_val, y_val = x_train[held_out], y_train[held_out]
        x_train, y_train = x_train[kept], y_train[kept]
    else:
        stratified_split(y_train, validation_fraction, seed)  # the same checks of the arguments
        x_val, y_val = validation
    if mean is None or std is None:
        mean, std = channel_statistics(x_train)
    return DatasetSplits(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=int(num_classes),
        class_names=tuple(str(c) for c in class_names),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )
