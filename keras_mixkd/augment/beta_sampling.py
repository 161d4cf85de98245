"""λ ~ Beta(α, α) for the mixing recipes, drawn in TensorFlow ops inside `tf.data`."""

import tensorflow as tf


def sample_beta(alpha, shape):
    """Draws of Beta(alpha, alpha) as the ratio of two Gamma(alpha) draws, float32.

    The gammas are drawn in float64: with a small `alpha` float32 gammas
    underflow to 0 too often. Where both underflow anyway (0 / 0), λ is 0 or 1
    with probability 1/2 each, the limit of Beta(α, α) as α → 0.

    Arguments:
        alpha: the concentration α > 0.
        shape: the shape of the draws, e.g. `[batch_size]`.

    Returns:
        A float32 tensor of `shape` in [0, 1].

    Example:

    >>> lam = sample_beta(0.2, [64])
    """
    a = tf.random.gamma(shape, alpha, dtype=tf.float64)
    b = tf.random.gamma(shape, alpha, dtype=tf.float64)
    total = a + b
    coin = tf.cast(tf.random.uniform(shape) < 0.5, tf.float64)
    lam = tf.where(total > 0, a / tf.where(total > 0, total, 1.0), coin)
    return tf.cast(lam, tf.float32)
