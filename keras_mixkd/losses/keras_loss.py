"""Adapter: a `keras.distillation` loss object as one of our `DistillationLoss`es."""

import keras
from keras import ops

from keras_mixkd.losses.base import DistillationLoss


@keras.saving.register_keras_serializable(package="keras_mixkd")
class KerasDistillationLoss(DistillationLoss):
    """Wraps a `keras.distillation.LogitsDistillation` or `FeatureDistillation`.

    The `Distiller` wraps such an object itself when given one as `loss=` or
    `feature_loss=`. The wrapped object's `compute_loss` gives a batch value,
    which is returned for every sample: it is Keras's own number, so sample
    weights cannot reweight it. A `FeatureDistillation` with layer names is
    given those layers' outputs (functional models only, as in Keras); with
    `None` names it compares the final outputs (the logits).

    Arguments:
        keras_loss: A `keras.distillation.DistillationLoss` instance.
        **kwargs: Passed to `keras.layers.Layer`.

    Example:

    ```python
    distiller = keras_mixkd.Distiller(
        teacher, student, loss=keras.distillation.LogitsDistillation(temperature=3.0))
    ```
    """

    def __init__(self, keras_loss, **kwargs):
        super().__init__(**kwargs)
        if isinstance(keras_loss, dict):
            keras_loss = keras.saving.deserialize_keras_object(keras_loss)
        if not isinstance(keras_loss, keras.distillation.DistillationLoss):
            raise TypeError(
                "`keras_loss` must be a keras.distillation.DistillationLoss (e.g. "
                f"LogitsDistillation, FeatureDistillation); got {type(keras_loss).__name__}."
            )
        self.keras_loss = keras_loss

    @property
    def feature_layers(self):
        if isinstance(self.keras_loss, keras.distillation.FeatureDistillation):
            names = (self.keras_loss.teacher_layer_name, self.keras_loss.student_layer_name)
            return None if names == (None, None) else names
        return None

    def validate_models(self, teacher, student):
        self.keras_loss.validate_model_compatibility(teacher, student)

    def build(self, teacher_feature_shape=None, student_feature_shape=None):
        pass

    def compute_loss(
        self, teacher_logits, student_logits, labels=None, teacher_features=None,
        student_features=None,
    ):
        if self.feature_layers is not None:
            teacher_outputs, student_outputs = teacher_features, student_features
        else:
            teacher_outputs, student_outputs = teacher_logits, student_logits
        value = self.keras_loss.compute_loss(teacher_outputs, student_outputs)
        value = ops.cast(value, "float32")
        return ops.ones_like(student_logits[:, 0]) * value

    def get_config(self):
        config = super().get_config()
        config["keras_loss"] = keras.saving.serialize_keras_object(self.keras_loss)
        return config
