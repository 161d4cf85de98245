"""A measure of a distillation set computed on the teacher alone: "T. stddev" (Wang et al., NeurIPS 2022).

Wang, Lohit, Jones and Fu, "What Makes a Good Data Augmentation in Knowledge
Distillation — A Statistical Perspective" (NeurIPS 2022; code
github.com/MingSun-Tse/Good-DA-in-KD, the `--utils.check_ce_var` runs): a good
augmentation for distillation lowers the covariance of the teacher-student
cross-entropy, and the standard deviation of the teacher's *mean probability*
over groups of augmented examples tracks the student's test loss (lower is
better). See docs/measures.md.
"""

import numpy as np
from keras import ops

from keras_mixkd.metrics._inputs import as_probabilities

# Their code pools 10 chunks of 64 teacher outputs (5 batches, each seen clean and augmented) per group.
DEFAULT_GROUP_SIZE = 640


def teacher_stddev(predictions, group_size=DEFAULT_GROUP_SIZE, from_logits=False):
    """The std over groups of the teacher's mean probability, averaged over classes ("T. stddev").

    The rows of `predictions`, in the order the teacher produced them, are
    split into consecutive groups of `group_size` rows (a last, incomplete
    group is left out, as the reference code leaves it unused). With `p_i`
    the softmax (temperature 1) of row i, `G` full groups and
    `m_g = mean_{i in g} p_i` the mean probability vector of group g:

    `T. stddev = (1 / C) sum_c sqrt( sum_g (m_gc - mean_g m_gc)^2 / (G - 1) )`,

    the unbiased (ddof = 1, as `torch.std`) std over groups of each class's
    mean probability, averaged over the C classes.

    Arguments:
        predictions: the teacher's probabilities `(N, C)` or, with
            `from_logits=True`, its logits, in stream order.
        group_size: rows per group (640 in the reference code: 5 batches
            of 64, each seen clean and augmented). 1 makes each row a group:
            pass the groups' mean probabilities to get the std of those.
        from_logits: whether `predictions` are logits.

    Returns:
        A Python float, >= 0.

    Example:

    >>> import numpy as np
    >>> from keras_mixkd.metrics import teacher_stddev
    >>> logits = np.random.default_rng(0).normal(size=(1280, 10))
    >>> value = teacher_stddev(logits, group_size=128, from_logits=True)
    """
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ValueError(f"`group_size` must be a whole number of rows >= 1, got {group_size!r}.")
    probabilities = as_probabilities(predictions, from_logits)
    num_rows, num_classes = (int(s) for s in probabilities.shape)
    groups = num_rows // int(group_size)
    if groups < 2:
        raise ValueError(
            f"teacher_stddev needs at least 2 full groups of group_size={group_size} rows (a std over "
            f"groups), got {num_rows} rows ({groups} full group(s)). Pass more teacher outputs or a "
            "smaller group_size.")
    used = probabilities[: groups * int(group_size)]
    means = ops.mean(ops.reshape(used, (groups, int(group_size), num_classes)), axis=1)
    # Two passes: the first mean's float32 error is removed by the second.
    centered = means - ops.mean(means, axis=0, keepdims=True)
    centered = centered - ops.mean(centered, axis=0, keepdims=True)
    std = ops.sqrt(ops.sum(ops.square(centered), axis=0) / (groups - 1))
    return float(ops.convert_to_numpy(ops.mean(std)))
