"""Label helpers shared by the recipes that mix or smooth labels."""

import tensorflow as tf


def dense_labels(labels, num_classes, recipe):
    """Integer `(B,)` / `(B, 1)` or dense `(B, K)` labels -> float32 `(B, K)`."""
    if labels is None:
        raise ValueError(f"{recipe} needs labels: the batch has no 'labels'.")
    if labels.dtype.is_integer:
        if num_classes is None:
            raise ValueError(
                f"{recipe} turns integer labels into dense float32 rows "
                "(B, num_classes) and needs the class count: pass "
                "num_classes=... (received integer labels of shape "
                f"{labels.shape} and num_classes=None)."
            )
        if labels.shape.rank == 2 and labels.shape[-1] == 1:
            labels = tf.reshape(labels, [-1])
        if labels.shape.rank != 1:
            raise ValueError(
                f"{recipe} expects integer labels of shape (B,); received "
                f"shape {labels.shape}."
            )
        return tf.one_hot(labels, num_classes, dtype=tf.float32)
    if labels.shape.rank != 2:
        raise ValueError(
            f"{recipe} expects float labels of shape (B, K); received shape "
            f"{labels.shape}."
        )
    if (
        num_classes is not None
        and labels.shape[-1] is not None
        and labels.shape[-1] != num_classes
    ):
        raise ValueError(
            f"{recipe} was given num_classes={num_classes} but dense labels "
            f"with {labels.shape[-1]} columns."
        )
    return tf.cast(labels, tf.float32)


def smooth_labels(labels, epsilon):
    """`y (1 - eps) + eps / K`, the Keras / timm label smoothing."""
    if not epsilon:
        return labels
    num_classes = tf.cast(tf.shape(labels)[-1], tf.float32)
    return labels * (1.0 - epsilon) + epsilon / num_classes


def check_num_classes(num_classes):
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(
            f"num_classes must be a positive int; received {num_classes!r}."
        )
    if num_classes < 1:
        raise ValueError(
            f"num_classes must be a positive int; received {num_classes}."
        )
    return num_classes
