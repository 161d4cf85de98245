"""Calibrated outputs: temperature scaling (Guo et al., ICML 2017).

`fit_temperature(logits, labels)` fits one temperature `T` by minimising the
validation NLL of `softmax(logits / T)`; `calibrate_model(model, x_val,
y_val)` appends it to a model as a saved `TemperatureScaling` layer, so the
calibrated model outputs `logits / T`.
"""

from keras_mixkd.calibration.calibrate_model import calibrate_model
from keras_mixkd.calibration.calibrate_model import calibration_measures
from keras_mixkd.calibration.fit_temperature import fit_temperature
from keras_mixkd.calibration.fit_temperature import negative_log_likelihood
from keras_mixkd.calibration.temperature_scaling import TemperatureScaling

__all__ = ["TemperatureScaling", "calibrate_model", "calibration_measures", "fit_temperature",
           "negative_log_likelihood"]
