"""`DistillationLoss`: the one interface every loss of the `Distiller` has."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mixkd")
class DistillationLoss(keras.layers.Layer):
    """Base class of the distillation losses the `Distiller` takes.

    A loss maps teacher logits, student logits, labels and, when it asks for
    them, both models' penultimate features to **one value per sample**; the
    `Distiller` weights and averages them (sample weights included). It is a
    `keras.layers.Layer`, so it may own weights: trainable ones (a projector)
    train with the student, and none of them is part of the student, so they
    never ship with it. `get_config` holds what is saved.

    Subclasses override `compute_loss`, and optionally:

    - `feature_layers`: `(teacher_layer_name, student_layer_name)` when the
      loss needs features (passed as `teacher_features`, `student_features`);
      `None` (default) when it does not.
    - `build(teacher_feature_shape, student_feature_shape)`: create weights
      once the feature shapes are known (the `Distiller` calls it).
    - `supervised_logits(student_logits)`: what the supervised cross-entropy
      sees (raw logits by default).
    - `needs_labels`: `True` when `compute_loss` reads `labels`.
    - `on_epoch_begin(epoch)`: called by the `Distiller` at the start of
      every epoch of `fit` (0-based), for losses that change over epochs.

    Arguments:
        **kwargs: Passed to `keras.layers.Layer` (e.g. `name`).

    Example:

    ```python
    from keras import ops
    import keras_mixkd

    class L2Logits(keras_mixkd.losses.DistillationLoss):
        def compute_loss(self, teacher_logits, student_logits, labels=None, **kwargs):
            return ops.mean(ops.square(teacher_logits - student_logits), axis=-1)

    distiller = keras_mixkd.Distiller(teacher, student, loss=L2Logits())
    ```
    """

    feature_layers = None
    needs_labels = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # A logit loss has nothing to build; a feature loss is built by the
        # Distiller once it knows the feature shapes.
        self.built = True

    def compute_loss(
        self,
        teacher_logits,
        student_logits,
        labels=None,
        teacher_features=None,
        student_features=None,
    ):
        """Per-sample loss, a tensor of shape `(batch,)`.

        Arguments:
            teacher_logits: `(batch, classes)` float32, the frozen teacher's.
            student_logits: `(batch, classes)` float32.
            labels: integer class ids `(batch,)` or soft rows
                `(batch, classes)`; `None` when the data has none.
            teacher_features, student_features: the penultimate features
                (only when `feature_layers` is set).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement compute_loss(teacher_logits, "
            "student_logits, labels=None, teacher_features=None, student_features=None)."
        )

    def supervised_logits(self, student_logits):
        """The logits the supervised cross-entropy is taken on."""
        return student_logits

    def on_epoch_begin(self, epoch):
        """Hook called at the start of each epoch of `fit` (0-based)."""

    def call(self, teacher_logits, student_logits, labels=None):
        # Lets `loss(t, s, labels)` return the batch mean, like the functions.
        return ops.mean(self.compute_loss(teacher_logits, student_logits, labels))

    def __call__(self, teacher_logits, student_logits, labels=None, **kwargs):
        # Keras's auto-build would guess feature shapes from the logits.
        return self.call(teacher_logits, student_logits, labels)

    def get_config(self):
        return super().get_config()
