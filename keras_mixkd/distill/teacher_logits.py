"""`compute_teacher_logits`: a frozen teacher's logits of a whole split, computed once."""

import keras
import numpy as np
from keras import ops

from keras_mixkd.distill.distiller import PROBABILITY_FLOOR
from keras_mixkd.distill.distiller import TEACHER_OUTPUTS


def compute_teacher_logits(teacher, images, *, batch_size=256, normalization=None, teacher_outputs="logits"):
    """The teacher's logits of every image, in inference mode: a cache for `make_dataset`.

    When what the teacher sees is a fixed function of the example (no
    augmentation, or `teacher_sees="clean"`), its logits are the same at every
    epoch and for every student: computed once here and passed to
    `keras_mixkd.data.make_dataset(teacher_logits=...)`, a `Distiller` reads
    them with each batch instead of running the teacher. They equal the
    logits the `Distiller` would compute on the fly up to float round-off
    (batched inference may round differently; see `docs/performance.md`).

    The images go through the same pipeline as training (`make_dataset`,
    without shuffling or augmentation, with the same `normalization`), and
    the teacher runs as the `Distiller` runs it: `training=False` (batch-norm
    statistics, no dropout).

    Arguments:
        teacher: the trained `keras.Model`.
        images: float array (N, height, width, channels) in [0, 1]: the
            training images as given to `make_dataset`, in the same order.
        batch_size: examples per forward pass.
        normalization: the `normalization` given to `make_dataset` (None for
            the zoo's models, which normalise inside).
        teacher_outputs: "logits" or "probabilities", as given to the
            `Distiller`; probabilities are turned into logits as the
            `Distiller` does (their log), so the cache always holds logits.

    Returns:
        A float32 NumPy array (N, num_classes).

    Example:

    >>> logits = compute_teacher_logits(teacher, splits.x_train)
    >>> train = make_dataset(splits.x_train, splits.y_train, teacher_logits=logits)
    >>> distiller = Distiller(teacher, student)
    >>> distiller.compile(optimizer="sgd")
    >>> distiller.fit(train, epochs=2)    # the teacher does not run
    """
    from keras_mixkd.data import make_dataset
    from keras_mixkd.data.pipeline import check_teacher_logits

    if not isinstance(teacher, keras.Model):
        raise TypeError(f"`teacher` must be a keras.Model; got {type(teacher).__name__}.")
    if teacher_outputs not in TEACHER_OUTPUTS:
        raise ValueError(
            f"Unknown teacher_outputs={teacher_outputs!r}; expected one of {list(TEACHER_OUTPUTS)}."
        )
    images = np.asarray(images)
    labels = np.zeros(len(images), dtype=np.int32)  # Unused: predict reads the images only.
    dataset = make_dataset(images, labels, batch_size=batch_size, shuffle=False, normalization=normalization)
    outputs = teacher.predict(dataset, verbose=0)
    if not isinstance(outputs, np.ndarray) or outputs.ndim != 2:
        shape = getattr(outputs, "shape", type(outputs).__name__)
        raise ValueError(
            f"The teacher {teacher.name!r} must output one row of logits per image, (N, "
            f"num_classes); it gave {shape}."
        )
    if teacher_outputs == "probabilities":
        # The Distiller's own conversion (`_teacher_forward`), op for op.
        outputs = ops.convert_to_numpy(
            ops.log(ops.maximum(ops.cast(outputs, "float32"), PROBABILITY_FLOOR))
        )
    return check_teacher_logits(outputs.astype(np.float32, copy=False), len(images))
