"""FitNets-style feature distillation with a trainable projector."""

import keras
from keras import ops

from keras_mixkd.losses.base import DistillationLoss

FEATURES_LAYER = "features"


@keras.saving.register_keras_serializable(package="keras_mixkd")
class FeatureDistillation(DistillationLoss):
    """Mean squared error from projected student features to the teacher's (FitNets).

    Per sample: `mean_k (P(f_s) − f_t)_k²`, where `f_s`, `f_t` are the
    outputs of the student's and teacher's feature layers (the penultimate
    `"features"` layer of every zoo model by default), flattened, and `P` is a
    trainable `Dense` projector from the student's width to the teacher's
    (Romero et al. 2015's regressor). The projector trains with the student
    and is a weight of this loss, so of the `Distiller`: it is never part of
    the saved or exported student. Give it to the `Distiller` as
    `feature_loss=` beside any logit loss; its weight is
    `feature_loss_weight`.

    Unlike `keras.distillation.FeatureDistillation` (equal shapes, no
    projector), the two widths may differ.

    Arguments:
        teacher_layer: Name of the teacher's feature layer.
        student_layer: Name of the student's feature layer (defaults to
            `teacher_layer`).
        projector: `True` (default) for the trainable `Dense` projector;
            `False` compares the features directly (equal widths only).
        **kwargs: Passed to `keras.layers.Layer`.

    Example:

    ```python
    distiller = keras_mixkd.Distiller(
        teacher, student, loss="kd",
        feature_loss=keras_mixkd.losses.FeatureDistillation(), feature_loss_weight=100.0)
    ```
    """

    def __init__(self, teacher_layer=FEATURES_LAYER, student_layer=None, projector=True, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("teacher_layer", teacher_layer), ("student_layer", student_layer)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"`{name}` must be a layer name; got {name}={value!r}.")
        if not isinstance(projector, bool):
            raise TypeError(f"`projector` must be True or False; got {projector!r}.")
        self.teacher_layer = teacher_layer
        self.student_layer = student_layer or teacher_layer
        self.use_projector = projector
        self.projector = None
        self.built = False

    @property
    def feature_layers(self):
        return (self.teacher_layer, self.student_layer)

    def build(self, teacher_feature_shape, student_feature_shape=None):
        teacher_width = _flat_width(teacher_feature_shape, "teacher", self.teacher_layer)
        student_width = _flat_width(
            student_feature_shape or teacher_feature_shape, "student", self.student_layer
        )
        if self.use_projector:
            self.projector = keras.layers.Dense(teacher_width, name="projector")
            self.projector.build((None, student_width))
        elif teacher_width != student_width:
            raise ValueError(
                f"Without a projector the feature widths must be equal; the teacher's "
                f"{self.teacher_layer!r} has {teacher_width}, the student's "
                f"{self.student_layer!r} {student_width}. Use projector=True."
            )
        self.teacher_width, self.student_width = teacher_width, student_width

    def compute_loss(
        self, teacher_logits, student_logits, labels=None, teacher_features=None,
        student_features=None,
    ):
        if teacher_features is None or student_features is None:
            raise ValueError(
                "FeatureDistillation needs teacher_features and student_features; "
                "the Distiller passes them (give this loss as feature_loss=)."
            )
        teacher_features = ops.cast(teacher_features, "float32")
        student_features = ops.cast(student_features, "float32")
        teacher_features = ops.reshape(teacher_features, (ops.shape(teacher_features)[0], -1))
        student_features = ops.reshape(student_features, (ops.shape(student_features)[0], -1))
        if self.projector is not None:
            student_features = ops.cast(self.projector(student_features), "float32")
        return ops.mean(ops.square(student_features - teacher_features), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "teacher_layer": self.teacher_layer,
                "student_layer": self.student_layer,
                "projector": self.use_projector,
            }
        )
        return config


def _flat_width(shape, role, layer):
    dims = tuple(shape)[1:]
    if not dims or any(d is None for d in dims):
        raise ValueError(
            f"The {role}'s feature layer {layer!r} must have a known shape; got {tuple(shape)}."
        )
    width = 1
    for d in dims:
        width *= int(d)
    return width
