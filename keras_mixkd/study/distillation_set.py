"""What a study measures of a distillation set on the teacher alone: Wang et al.'s "T. stddev".

`measure_teacher_stddev` runs a teacher over the stream of batches a
distillation recipe gives its student, each batch seen clean and augmented,
as the reference code does (github.com/MingSun-Tse/Good-DA-in-KD, the
`--utils.check_ce_var` runs), and returns `keras_mixkd.metrics.teacher_stddev`
of its outputs. See docs/measures.md, "T. stddev".
"""

import numpy as np
from keras import ops

from keras_mixkd import metrics
from keras_mixkd.data import make_dataset
from keras_mixkd.study.epoch_recorder import run_in_chunks

# The reference runs: 10 epochs of the training split; a group is 5 batches, each seen clean and augmented.
PASSES = 10
BATCHES_PER_GROUP = 5


def measure_teacher_stddev(teacher, splits, augmentation, *, batch_size, seed, clean_logits=None, passes=PASSES,
                           batches_per_group=BATCHES_PER_GROUP):
    """T. stddev of `teacher` on a distillation stream; None when it has fewer than 2 groups.

    The training split is shuffled (`seed`) and cut into full batches of
    `batch_size` (a last, smaller batch is dropped), `passes` times. Each
    batch is seen by the teacher twice, as loaded and after `augmentation`
    (the student's augmentation then the recipe's; None: both views are the
    images as loaded). A group is `batches_per_group` consecutive batches,
    both views: `2 * batches_per_group * batch_size` rows; its mean
    probability (softmax at temperature 1) is taken on the device, and the
    std over groups is `metrics.teacher_stddev` of those means.

    The clean view's logits are the teacher's logits of the training split,
    computed once (or given: the teacher cache); the teacher runs on the
    augmented batches only, one call per group (one compiled shape).

    Arguments:
        teacher: the teacher, taking images as loaded (normalising inside).
        splits: the `DatasetSplits`.
        augmentation: the distillation augmentation (`Augmentation` or None).
        batch_size: the distillation batch size.
        seed: seeds the order of the batches.
        clean_logits: the teacher's logits of `splits.x_train` `(N, K)` when
            already computed (the teacher cache), else None.
        passes: passes over the training split (10, as the reference runs).
        batches_per_group: batches per group (5, as the reference code).

    Returns:
        A Python float, or None when the passes give fewer than 2 full
        groups (a training split of fewer than one full batch, or too few
        batches for `passes`).

    Example:

    >>> value = measure_teacher_stddev(teacher, splits, get_augmentation("mixup", num_classes=10),
    ...                                batch_size=64, seed=0)
    """
    # One compiled shape for the clean split and the groups' augmented images: a group's batches.
    chunk = batches_per_group * batch_size
    if clean_logits is None:
        [clean_logits] = run_in_chunks(teacher, splits.x_train, chunk_size=chunk)
    # The cached logits ride with each batch, aligned with its examples (passed through the augmentation).
    dataset = make_dataset(splits.x_train, splits.y_train, batch_size=batch_size, shuffle=True, seed=seed,
                           normalization=None, augmentation=augmentation, num_classes=splits.num_classes,
                           teacher_sees="clean", drop_remainder=True, teacher_logits=clean_logits)
    group_means, clean, augmented = [], [], []
    for _ in range(passes):
        for x, _labels in dataset:
            clean.append(np.asarray(x["teacher_logits"]))
            augmented.append(np.asarray(x["images"]))
            if len(clean) == batches_per_group:
                clean_rows = np.concatenate(clean)
                if augmentation is None:
                    augmented_rows = clean_rows  # the same images
                else:
                    images = np.concatenate(augmented)
                    [augmented_rows] = run_in_chunks(teacher, images, chunk_size=chunk)
                logits = ops.cast(ops.convert_to_tensor(np.concatenate([clean_rows, augmented_rows])), "float32")
                probabilities = ops.softmax(logits - ops.max(logits, axis=-1, keepdims=True), axis=-1)
                group_means.append(ops.mean(probabilities, axis=0))
                clean, augmented = [], []
    if len(group_means) < 2:
        return None
    return metrics.teacher_stddev(ops.stack(group_means), group_size=1)
