"""`make_dataset`: the one tf.data input pipeline every data source uses."""

import numbers

import numpy as np

from keras_mixkd._checks import check_finite

TEACHER_SEES = ("same", "clean")


def make_dataset(
    images,
    labels,
    *,
    batch_size=64,
    shuffle=True,
    seed=0,
    normalization=None,
    augmentation=None,
    num_classes=None,
    drop_remainder=False,
    teacher_sees="same",
    teacher_logits=None,
):
    """Build the tf.data pipeline that feeds `fit`, `evaluate` and `predict`.

    Steps, in order: slice the examples, shuffle them (seeded, a new order
    every epoch), batch, apply `augmentation` to the batch, normalise each
    channel, prefetch. It yields `(x, y)` tuples, usable by `fit` under every
    Keras backend:

    - `x` is the normalised (augmented) image batch, or, with
      `teacher_sees="clean"`, a dict `{"images": augmented,
      "teacher_images": clean}` (both normalised) for a `Distiller` whose
      teacher must see the un-augmented batch.
    - with `teacher_logits`, `x` is a dict `{"images": augmented,
      "teacher_logits": rows}`: the teacher's precomputed logits of the
      batch's examples, for a `Distiller` that reads them instead of running
      the teacher (see `keras_mixkd.distill.compute_teacher_logits`).
    - `y` is `int32` class ids, or `float32` dense rows `(batch, num_classes)`
      when the labels given are dense or the augmentation returns dense
      (mixed or smoothed) labels.

    Shuffling draws a permutation of example indices and gathers each batch,
    so memory holds the data once (a `shuffle` buffer of images would hold it
    twice).

    Arguments:
        images: float array (N, height, width, channels), values in [0, 1].
        labels: int class ids (N,), or dense float rows (N, num_classes).
        batch_size: examples per batch.
        shuffle: reshuffle every epoch (training); False keeps the order.
        seed: seed of the shuffle, so a run can be repeated.
        normalization: `(mean, std)`, each a number or one value per channel
            (e.g. `DatasetSplits.normalization`); applied after augmentation
            as `(x - mean) / std`. None leaves images in [0, 1].
        augmentation: None, or a callable `aug(batch, training=True)` taking
            and returning a dict `{"images", "labels"}` of TF tensors (see
            `keras_mixkd.augment.get_augmentation`). It runs on whole batches
            inside `Dataset.map`.
        num_classes: number of classes. When given, integer labels are
            checked to lie in [0, num_classes) and dense labels to have
            num_classes columns.
        drop_remainder: drop the last, smaller batch (keeps every batch the
            same size, which per-batch mixing recipes may want).
        teacher_sees: "same" (the teacher sees the images the student sees,
            study B's setup) or "clean" (x becomes a dict holding the
            un-augmented batch as "teacher_images").
        teacher_logits: None, or a float array (N, num_classes) aligned with
            `images`: the teacher's logits of each example. Each batch carries
            the rows of its examples (gathered with the same shuffled indices),
            whatever the augmentation does to the student's images. Only valid
            when what the teacher sees does not depend on the augmentation's
            random draws: no augmentation, or `teacher_sees="clean"` (the
            un-augmented images are then not carried); refused with an
            augmentation and `teacher_sees="same"`.

    Returns:
        A `tf.data.Dataset` of `(x, y)`.

    Example:

    >>> splits = load_dataset("digits")
    >>> train = make_dataset(splits.x_train, splits.y_train, batch_size=32,
    ...                      normalization=splits.normalization)
    >>> model.fit(train, epochs=3)
    """
    import tensorflow as tf

    images = _check_images(images)
    labels = _check_labels(labels, len(images), num_classes)
    batch_size = _check_positive_int(batch_size, "batch_size")
    if teacher_sees not in TEACHER_SEES:
        raise ValueError(
            f"teacher_sees must be one of {TEACHER_SEES}, got {teacher_sees!r}."
        )
    if augmentation is not None and not callable(augmentation):
        raise TypeError(
            "augmentation must be None or a callable aug(batch, training=True) "
            f"on {{'images', 'labels'}} batches; got {augmentation!r}."
        )
    normalize = _normalizer(normalization, images.shape[-1])
    if teacher_logits is not None:
        teacher_logits = check_teacher_logits(teacher_logits, len(images), num_classes)
        if augmentation is not None and teacher_sees != "clean":
            # The cache holds the teacher's logits of the images as given; a teacher that sees
            # the augmented batch would see other images at every draw.
            raise ValueError(
                "teacher_logits are the teacher's outputs on the images as given, but with "
                "teacher_sees='same' the teacher sees the augmented batch. Pass "
                "teacher_sees='clean' (the teacher sees the un-augmented images: what the cache "
                "holds), or leave teacher_logits=None to run the teacher on the augmented batch."
            )
        logits_tensor = tf.constant(teacher_logits)

    images_tensor = tf.constant(images)
    labels_tensor = tf.constant(labels)

    def prepare(indices):
        batch = {
            "images": tf.gather(images_tensor, indices),
            "labels": tf.gather(labels_tensor, indices),
        }
        if teacher_logits is not None:
            # Through the augmentation, which passes them on (or mixes them: student_side_mixup).
            batch["teacher_logits"] = tf.gather(logits_tensor, indices)
        clean_images = batch["images"]
        if augmentation is not None:
            batch = augmentation(batch, training=True)
            _check_augmented(batch)
        student_images = normalize(tf.cast(batch["images"], tf.float32))
        batch_labels = _finish_labels(batch["labels"], num_classes)
        if teacher_logits is not None:
            # Gathered with the batch's own indices: aligned with its examples
            # however the augmentation mixes the student's images.
            x = {"images": student_images, "teacher_logits": batch["teacher_logits"]}
        elif teacher_sees == "clean":
            x = {"images": student_images, "teacher_images": normalize(clean_images)}
        else:
            x = student_images
        return x, batch_labels

    dataset = tf.data.Dataset.range(len(images))
    if shuffle:
        dataset = dataset.shuffle(
            len(images), seed=seed, reshuffle_each_iteration=True
        )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    # Augmentations draw from stateful RNGs; parallel calls would take the
    # draws in a varying order. One call at a time keeps a seeded run
    # repeatable, and prefetch still overlaps it with training.
    parallel = None if augmentation is not None else tf.data.AUTOTUNE
    dataset = dataset.map(prepare, num_parallel_calls=parallel)
    return dataset.prefetch(tf.data.AUTOTUNE)


def check_teacher_logits(teacher_logits, num_examples, num_classes=None):
    """Check a cache of teacher logits: float rows `(num_examples, classes)`, all finite.

    Arguments:
        teacher_logits: the array to check.
        num_examples: the number of examples it must hold one row for.
        num_classes: the number of columns it must have (None: any >= 2).

    Returns:
        The logits as a float32 NumPy array.

    Example:

    >>> check_teacher_logits(np.zeros((4, 10)), 4, num_classes=10).shape
    (4, 10)
    """
    if hasattr(teacher_logits, "shape") and not isinstance(teacher_logits, np.ndarray):
        import keras

        teacher_logits = keras.ops.convert_to_numpy(teacher_logits)
    teacher_logits = _float_array(
        teacher_logits, "teacher_logits", 2, "(N, num_classes), one row per image", "float logits"
    )
    if len(teacher_logits) != num_examples:
        raise ValueError(
            f"teacher_logits holds {len(teacher_logits)} rows for {num_examples} images: compute "
            "it on the same images, in the same order (one row per image)."
        )
    if num_classes is not None and teacher_logits.shape[1] != num_classes:
        raise ValueError(
            f"teacher_logits has {teacher_logits.shape[1]} columns but num_classes={num_classes}: "
            "it must hold the teacher's logits of every class."
        )
    check_finite(teacher_logits, "teacher_logits", "recompute the teacher's logits")
    return teacher_logits.astype(np.float32, copy=False)


def _check_positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}.")
    return int(value)


def _float_array(values, what, ndim, layout, kind, advice=""):
    # `values` as a NumPy array of `ndim` axes (`layout` says which) and a float dtype.
    values = np.asarray(values)
    if values.ndim != ndim:
        raise ValueError(f"{what} must have shape {layout}; got shape {values.shape}.")
    if not np.issubdtype(values.dtype, np.floating):
        raise TypeError(f"{what} must be {kind}, got dtype {values.dtype}{advice}.")
    return values


def _check_images(images):
    images = _float_array(
        images, "images", 4, "(N, height, width, channels)", "float in [0, 1]",
        "; divide integer images by 255 (load_dataset does this)",
    )
    if len(images) == 0:
        raise ValueError("images is empty: make_dataset needs at least one example.")
    check_finite(images, "images", "repair or drop those images before training")
    return images.astype(np.float32, copy=False)


def _check_labels(labels, num_examples, num_classes):
    labels = np.asarray(labels)
    if num_classes is not None:
        num_classes = _check_positive_int(num_classes, "num_classes")
    if len(labels) != num_examples:
        raise ValueError(
            f"Got {num_examples} images but {len(labels)} labels: the lengths "
            "must match."
        )
    if labels.ndim == 2 and np.issubdtype(labels.dtype, np.floating):
        if num_classes is not None and labels.shape[1] != num_classes:
            raise ValueError(
                f"Dense labels have {labels.shape[1]} columns but "
                f"num_classes={num_classes}."
            )
        check_finite(labels, "labels")
        return labels.astype(np.float32, copy=False)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "labels must be integer class ids of shape (N,) or dense float "
            f"rows (N, num_classes); got shape {labels.shape}, dtype "
            f"{labels.dtype}."
        )
    if labels.min() < 0:
        raise ValueError(
            f"labels hold a negative class id ({labels.min()}); class ids "
            "must lie in [0, num_classes)."
        )
    if num_classes is not None and labels.max() >= num_classes:
        raise ValueError(
            f"labels hold class id {labels.max()}, out of range for "
            f"num_classes={num_classes}."
        )
    return labels.astype(np.int32, copy=False)


def _normalizer(normalization, channels):
    import tensorflow as tf

    if normalization is None:
        return lambda x: x
    try:
        mean, std = normalization
    except (TypeError, ValueError):
        raise ValueError(
            "normalization must be None or a pair (mean, std), got "
            f"{normalization!r}."
        ) from None
    mean = np.broadcast_to(np.asarray(mean, np.float64).reshape(-1), (channels,)) \
        if np.size(mean) in (1, channels) else None
    std = np.broadcast_to(np.asarray(std, np.float64).reshape(-1), (channels,)) \
        if np.size(std) in (1, channels) else None
    if mean is None or std is None:
        raise ValueError(
            f"normalization mean and std must each be one number or {channels} "
            f"(one per channel); got {normalization!r}."
        )
    if np.any(std <= 0) or not np.all(np.isfinite(std)) or not np.all(np.isfinite(mean)):
        raise ValueError(f"normalization std must be finite and > 0, got {tuple(std)}.")
    mean_tensor = tf.constant(mean, tf.float32)
    scale_tensor = tf.constant(1.0 / std, tf.float32)
    return lambda x: (x - mean_tensor) * scale_tensor


def _check_augmented(batch):
    if not isinstance(batch, dict) or "images" not in batch or "labels" not in batch:
        raise TypeError(
            "augmentation must return a dict with 'images' and 'labels', got "
            f"{type(batch).__name__}"
            + (f" with keys {sorted(batch)}" if isinstance(batch, dict) else "")
            + "."
        )


def _finish_labels(labels, num_classes):
    import tensorflow as tf

    if labels.shape.rank == 2:
        if num_classes is not None and labels.shape[-1] not in (None, num_classes):
            raise ValueError(
                f"augmentation returned labels with {labels.shape[-1]} "
                f"columns, expected num_classes={num_classes}."
            )
        return tf.cast(labels, tf.float32)
    if labels.dtype.is_floating:
        raise TypeError(
            "Labels came back as float class ids of shape "
            f"{labels.shape}; expected int class ids or dense rows."
        )
    return tf.cast(labels, tf.int32)
