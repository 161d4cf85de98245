"""`TemperatureScaling`: the saved output layer of a calibrated model (its logits / T)."""

import math

import keras


@keras.saving.register_keras_serializable(package="keras_mixkd")
class TemperatureScaling(keras.layers.Layer):
    """Divides the logits by one fitted temperature `T > 0` (Guo et al., ICML 2017).

    The last layer of a model calibrated by
    `keras_mixkd.calibration.calibrate_model`: the model then outputs
    `logits / T`, and `softmax` of its output is its calibrated predictive
    distribution. Dividing by a positive number keeps the argmax, so the
    accuracy is unchanged. The temperature is part of the layer's config, so
    it is saved in the `.keras` file and exported with the model.

    Arguments:
        temperature: the temperature `T`, a finite float > 0.
        **kwargs: Keras layer arguments (`name`, `dtype`, ...). The layer
            computes in float32 unless given another `dtype`.

    Example:

    >>> import numpy as np
    >>> layer = TemperatureScaling(2.0)
    >>> np.asarray(layer(np.array([[2.0, -4.0]], "float32"))).tolist()
    [[1.0, -2.0]]
    """

    def __init__(self, temperature, **kwargs):
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("name", "temperature_scaling")
        super().__init__(**kwargs)
        self.temperature = check_temperature(temperature)

    def call(self, inputs):
        return keras.ops.divide(inputs, keras.ops.cast(self.temperature, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config


def check_temperature(temperature):
    """`temperature` as a float, refused unless it is a finite number > 0."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) and not hasattr(
            temperature, "__float__"):
        raise TypeError(f"temperature must be a number > 0; got {type(temperature).__name__} {temperature!r}.")
    value = float(temperature)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"temperature must be a finite number > 0; got {temperature!r}.")
    return value
