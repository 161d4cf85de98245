"""The study's teacher cache: a teacher's logits of the training split, computed once per teacher.

A student cell whose teacher sees a fixed function of each example (no
augmentation before the teacher, or `teacher_sees = "clean"`) reads the
teacher's logits from `models/<teacher key>.logits.npz` with each batch
instead of running the teacher: every student, recipe and epoch distilled
from that teacher shares one inference pass over the training split (see
`docs/performance.md`, "Teacher outputs computed once").
"""

import hashlib
import os

import numpy as np

from keras_mixkd.study import atomic

# Examples per forward pass of the one inference over the training split.
CACHE_BATCH_SIZE = 256


def teacher_input_is_fixed(recipe, augmentation_names):
    """Whether the teacher's input is a fixed function of the example, so its logits can be cached.

    Arguments:
        recipe: a `[[distillation]]` table (`teacher_sees`, `feature_loss_weight`).
        augmentation_names: the augmentation parts applied to the batch (the
            student's, then the recipe's), "none" left out.

    With `teacher_sees = "clean"` the teacher sees the image before any
    augmentation; with no augmentation at all it sees the image as loaded.
    A recipe with a feature loss (FitNets) reads the teacher's features, which
    the cache does not hold: its teacher runs on every batch.

    Example:

    >>> teacher_input_is_fixed({"teacher_sees": "same"}, [])
    True
    >>> teacher_input_is_fixed({"teacher_sees": "same"}, ["standard"])
    False
    """
    if recipe.get("feature_loss_weight", 0.0) > 0:
        return False
    return recipe["teacher_sees"] == "clean" or not augmentation_names


def teacher_cache_path(teacher_file):
    """The cache file beside a teacher's `.keras` file: `<name>.logits.npz`."""
    return os.path.splitext(os.fspath(teacher_file))[0] + ".logits.npz"


def cached_teacher_logits(teacher, images, path=None, *, teacher_outputs="logits"):
    """The teacher's logits of `images`, read from `path` when it holds them, else computed (and written).

    The file records a fingerprint of the teacher's weights, of the images and
    of `teacher_outputs`; a file of another teacher (a teacher cell trained
    again) or of other images is computed again and replaced, atomically.

    Arguments:
        teacher: the teacher as the student cell runs it (normalising inside).
        images: the training images as the pipeline gives them to the teacher.
        path: the cache file (None: computed, not stored).
        teacher_outputs: the recipe's `teacher_outputs`.

    Returns:
        A float32 array (len(images), num_classes).
    """
    from keras_mixkd.distill import compute_teacher_logits

    fingerprint = _fingerprint(teacher, images, teacher_outputs)
    if path is not None and os.path.exists(path):
        try:
            with np.load(path) as stored:
                if str(stored["fingerprint"]) == fingerprint:
                    return stored["logits"]
        except (OSError, ValueError, KeyError):
            pass  # A damaged or foreign file: computed again below.
    logits = compute_teacher_logits(teacher, images, batch_size=CACHE_BATCH_SIZE, teacher_outputs=teacher_outputs)
    if path is not None:
        with atomic.atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, logits=logits, fingerprint=np.array(fingerprint))
    return logits


def _fingerprint(teacher, images, teacher_outputs):
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{teacher_outputs}|{np.shape(images)}|{np.asarray(images).dtype}|".encode())
    digest.update(np.ascontiguousarray(images).data)
    for weight in teacher.get_weights():
        digest.update(np.ascontiguousarray(weight).data)
    return digest.hexdigest()
