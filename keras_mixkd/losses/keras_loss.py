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

    def problem(self):
        """Why Keras's own value is known to be wrong for the wrapped loss, with the fix; or None.

        Keras's `LogitsDistillation.compute_loss` (3.12 to 3.15 at least)
        turns the logits / T into probabilities (and multiplies by T²) only
        when a loss is a `keras.losses.KLDivergence` instance. Its default,
        `loss="kl_divergence"`, resolves to the plain function
        `keras.losses.kl_divergence`, which then reads the raw logits / T as
        probabilities, clipped to [1e-7, 1]: a value unrelated to Hinton KD
        (12.3 where KD is 2.75 on digits, docs/methods.md). The plain
        `categorical_crossentropy` function, and a `CategoricalCrossentropy`
        without `from_logits=True`, read logits as probabilities alike. With
        `loss=keras.losses.KLDivergence()` it is Hinton KD.

        Example:

        >>> KerasDistillationLoss(keras.distillation.LogitsDistillation(temperature=4)).problem()
        "keras.distillation.LogitsDistillation(temperature=4) with loss='kl_divergence' (its default) gives ..."
        >>> fixed = keras.distillation.LogitsDistillation(temperature=4, loss=keras.losses.KLDivergence())
        >>> KerasDistillationLoss(fixed).problem() is None
        True
        """
        keras_loss = self.keras_loss
        if not isinstance(keras_loss, keras.distillation.LogitsDistillation):
            return None
        for loss_fn in keras.tree.flatten(keras_loss.loss):
            what = _reads_logits_as_probabilities(loss_fn)
            if what is None:
                continue
            temperature = keras_loss.temperature
            return (
                f"keras.distillation.LogitsDistillation(temperature={temperature:g}) with loss={what} "
                "gives a known-wrong distillation loss: Keras applies its softmax (and the T² factor) "
                "only for a keras.losses.KLDivergence instance, so this loss reads the raw logits / T "
                "as probabilities (clipped to [1e-7, 1]), a value unrelated to Hinton KD (on digits "
                "12.3 where KD gives 2.75; docs/methods.md). Pass LogitsDistillation("
                f"temperature={temperature:g}, loss=keras.losses.KLDivergence()), which is Hinton KD, "
                f"or loss='kd', temperature={temperature:g}."
            )
        return None

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


def _reads_logits_as_probabilities(loss_fn):
    """How `loss_fn` is named in a warning when `LogitsDistillation` would feed it raw logits; else None."""
    if loss_fn is None or isinstance(loss_fn, keras.losses.KLDivergence):
        return None
    if isinstance(loss_fn, keras.losses.CategoricalCrossentropy):
        return None if loss_fn.get_config().get("from_logits") else "CategoricalCrossentropy()"
    if loss_fn is keras.losses.kl_divergence:
        return "'kl_divergence' (its default)"
    if loss_fn is keras.losses.categorical_crossentropy:
        return "'categorical_crossentropy'"
    return None  # A loss of the user's own: it may well read logits.
