"""Measures of a representation and of a model's outputs.

Latent space (features `(N, D)`, integer or one-hot labels):
`class_discrimination`, `gdv`, `class_separation`, `nc1`.
Outputs (`(N, L)` probabilities or logits): `accuracy`,
`expected_calibration_error`, `negative_log_likelihood`, `mean_entropy`, `logit_std`, `soft_label_kl`.
A distillation set, on the teacher alone: `teacher_stddev` (Wang et al., 2022).
Features of a functional model: `feature_extractor`.

Every measure runs with `keras.ops` on the backend's device and returns a
Python float. They check their inputs on the host and are not meant to be
traced inside a compiled function.
"""

from keras_mixkd.metrics.augmentation_quality import teacher_stddev
from keras_mixkd.metrics.features import feature_extractor
from keras_mixkd.metrics.outputs import accuracy
from keras_mixkd.metrics.outputs import expected_calibration_error
from keras_mixkd.metrics.outputs import logit_std
from keras_mixkd.metrics.outputs import mean_entropy
from keras_mixkd.metrics.outputs import negative_log_likelihood
from keras_mixkd.metrics.outputs import soft_label_kl
from keras_mixkd.metrics.separability import class_discrimination
from keras_mixkd.metrics.separability import class_separation
from keras_mixkd.metrics.separability import gdv
from keras_mixkd.metrics.separability import nc1

__all__ = [
    "accuracy",
    "class_discrimination",
    "class_separation",
    "expected_calibration_error",
    "feature_extractor",
    "gdv",
    "logit_std",
    "mean_entropy",
    "nc1",
    "negative_log_likelihood",
    "soft_label_kl",
    "teacher_stddev",
]
