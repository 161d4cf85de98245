"""`StandardizedLogits`: the output a student trained with `loss="standardized"` was trained to give."""

import keras

from keras_mixkd import losses as kd_losses


@keras.saving.register_keras_serializable(package="keras_mixkd")
class StandardizedLogits(keras.layers.Layer):
    """Divides each sample's logits by their own standard deviation.

    A student distilled with the logit-standardised loss (`Distiller(...,
    loss="standardized")`) is trained on `softmax(s / σ_s)`, not on
    `softmax(s)`: its raw logits `s` are on another scale (their softmax is
    far too sharp or too flat), so calibration, entropy and every other
    probability-based measure of the raw logits describe a distribution the
    student was never trained to give. With this layer as its last layer the
    student outputs `s / σ_s`, and `softmax` of its output is its predictive
    distribution.

    The layer calls `keras_mixkd.losses.standardize_logits` (so it follows
    that function's definition of the std). Standardisation is idempotent
    and ignores positive scales (`standardize(c · s) = standardize(s)`), so
    training a student that ends in this layer with the standardised loss
    computes the same loss and gradients as training the bare student.

    Arguments:
        ddof: Delta degrees of freedom of the std, passed on to
            `standardize_logits`; `None` (the default) uses that function's
            default, i.e. the one the standardised loss uses.
        **kwargs: Keras layer arguments (`name`, `dtype`, ...). The layer
            computes in float32 unless given another `dtype`.

    Example:

    >>> import numpy as np
    >>> layer = StandardizedLogits()
    >>> out = np.asarray(layer(np.array([[1.0, 3.0, 5.0]], "float32")))
    >>> round(float(out.std(ddof=1)), 5)   # doctest: +SKIP
    1.0
    """

    def __init__(self, ddof=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("name", "standardized_logits")
        super().__init__(**kwargs)
        if ddof is not None and (isinstance(ddof, bool) or not isinstance(ddof, int) or ddof not in (0, 1)):
            raise ValueError(f"`ddof` must be None, 0 or 1; got {ddof!r}.")
        self.ddof = ddof

    def call(self, inputs):
        if self.ddof is None:
            return kd_losses.standardize_logits(inputs)
        return kd_losses.standardize_logits(inputs, ddof=self.ddof)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["ddof"] = self.ddof
        return config
