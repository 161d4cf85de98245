"""`SharedTeacherDistiller`: one teacher pass per batch, several students trained by one `fit`."""

import keras
from keras import ops

from keras_mixkd.distill.distiller import Distiller
from keras_mixkd.distill.distiller import _Extractor
from keras_mixkd.distill.distiller import _LossEpochs
from keras_mixkd.distill.distiller import _num_classes
from keras_mixkd.distill.distiller import check_fit_epochs
from keras_mixkd.distill.distiller import keep_variables_on_error


def _optimizer_problem(optimizer):
    """Why one optimizer over all students would not equal one optimizer per student, or None."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return (
            "a LossScaleOptimizer (mixed_float16) skips the step of every student when one "
            "student's gradients overflow"
        )
    if getattr(optimizer, "global_clipnorm", None) is not None:
        return (
            f"global_clipnorm={optimizer.global_clipnorm} clips the norm of all students' "
            "gradients together; use clipnorm (per variable) or a Distiller per student"
        )
    return None


@keras.saving.register_keras_serializable(package="keras_mixkd")
class SharedTeacherDistiller(keras.Model):
    """Several students distilled from one frozen teacher, which runs once per batch.

    Recipes that share a teacher and an input stream (the same images, mixing
    and labels, in the same order) differ only in the student and the loss,
    e.g. KD at `T = 4`, KD at `T = 1` and standardised KD. Trained apart,
    each runs the same teacher inference on every batch. Grouped, each step of
    `fit` runs the teacher once and updates every student with its own
    `Distiller` loss (temperature, weights, feature loss), in one compiled
    step on every backend.

    Each student is a `Distiller` (or the arguments of one): its loss is
    `Distiller`'s own code, applied to the teacher outputs the group computed.
    The group minimises the sum of the students' losses; the students share
    no variable, so each student's gradient is exactly the gradient of its own
    loss, and one optimizer over all the students' variables does what one
    optimizer per student would do for every optimizer that updates each
    variable from its own gradient (SGD, Adam, `keras_mixkd.optimizers`,
    per-variable `clipnorm`), as long as the students would share its
    configuration and schedule (its step counter advances once per batch for
    all). Optimizers that couple variables (`global_clipnorm`, the
    `LossScaleOptimizer` of `mixed_float16`) are refused. Each student's
    result equals that of its own `Distiller` trained on the same batches, up
    to float round-off.

    Logged every epoch: `loss` (the sum over students) and, for each student
    `name`, `name_loss` (its total loss) and its `Distiller` metrics as
    `name_supervised_loss`, `name_distillation_loss` (`name_feature_loss`),
    `name_accuracy`, `name_teacher_agreement`. `call` / `predict` return a dict
    name -> student logits. Save the students (`group.students[name]`), not the
    group.

    Arguments:
        teacher: A trained `keras.Model` that outputs logits, shared by all
            students (frozen: made non-trainable, run with `training=False`).
        students: A dict name -> student, where a student is a
            `keras.Model` (distilled with `Distiller`'s defaults), a pair
            `(model, kwargs)` with `kwargs` a dict of `Distiller` arguments
            (`loss`, `temperature`, `student_loss_weight`, ...), or a
            `Distiller` whose teacher is `teacher`. Names are non-empty strings
            and prefix the students' logs.
        **kwargs: Passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    import keras
    from keras_mixkd.distill import SharedTeacherDistiller
    from keras_mixkd.models import get_model

    teacher = get_model("resnet110", num_classes=100)   # trained beforehand
    group = SharedTeacherDistiller(teacher, {
        "kd_t4": (get_model("resnet20", num_classes=100), {"temperature": 4.0}),
        "kd_t1": (get_model("resnet20", num_classes=100), {"temperature": 1.0}),
        "std": (get_model("resnet20", num_classes=100), {"loss": "standardized"}),
    })
    group.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    group.fit(train_ds, epochs=240)      # logs kd_t4_accuracy, std_loss, ...
    group.students["kd_t4"].save("kd_t4.keras")
    ```
    """

    def __init__(self, teacher, students, **kwargs):
        kwargs.setdefault("name", "shared_teacher_distiller")
        super().__init__(**kwargs)
        if not isinstance(teacher, keras.Model):
            raise TypeError(f"`teacher` must be a keras.Model; got {type(teacher).__name__}.")
        if not isinstance(students, dict):
            raise TypeError(
                "`students` must be a dict name -> student (a keras.Model, a pair (model, "
                f"Distiller kwargs) or a Distiller); got {type(students).__name__}."
            )
        if not students:
            raise ValueError("`students` is empty: give at least one student.")
        distillers = {}
        for name, entry in students.items():
            self._check_name(name)
            distillers[name] = self._as_distiller(teacher, name, entry)
        self._check_disjoint(distillers)
        self._check_log_keys(distillers)
        outputs = {d.teacher_outputs for d in distillers.values()}
        if len(outputs) > 1:
            raise ValueError(
                "The students read the shared teacher differently: teacher_outputs "
                f"{ {name: d.teacher_outputs for name, d in distillers.items()} }; one teacher "
                "outputs either logits or probabilities."
            )
        self.teacher = teacher
        self.teacher.trainable = False
        self.distillers = distillers
        self._build_teacher_extractor()

        self.student_trackers = {}
        for name, distiller in distillers.items():
            keys = ["loss"] + list(distiller._trackers())
            self.student_trackers[name] = {
                key: keras.metrics.Mean(name=f"{name}_{key}") for key in keys
            }

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _check_name(name):
        if not isinstance(name, str) or not name or name != name.strip() or "/" in name:
            raise ValueError(
                "Each student's name must be a non-empty string without '/' or surrounding "
                f"spaces (it prefixes the student's logs); got {name!r}."
            )

    @staticmethod
    def _as_distiller(teacher, name, entry):
        """The student `entry` as a `Distiller` of `teacher`, with errors naming the student."""
        if isinstance(entry, Distiller):
            if entry.teacher is not teacher:
                raise ValueError(
                    f"Student {name!r}: its Distiller distils from {entry.teacher.name!r}, not "
                    f"from the shared teacher {teacher.name!r}. Build it as Distiller(teacher, "
                    "student, ...) with the group's teacher, or give (student, kwargs)."
                )
            return entry
        if isinstance(entry, keras.Model):
            model, options = entry, {}
        elif isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], dict):
            model, options = entry
        else:
            raise TypeError(
                f"Student {name!r} must be a keras.Model, a pair (model, dict of Distiller "
                f"arguments) or a Distiller; got {type(entry).__name__}: {entry!r:.80}."
            )
        if not isinstance(model, keras.Model):
            raise TypeError(f"Student {name!r} must be a keras.Model; got {type(model).__name__}.")
        for forbidden in ("teacher", "student"):
            if forbidden in options:
                raise ValueError(
                    f"Student {name!r}: its Distiller arguments may not hold {forbidden!r} "
                    "(the group gives the shared teacher and the student itself)."
                )
        teacher_classes, student_classes = _num_classes(teacher), _num_classes(model)
        if None not in (teacher_classes, student_classes) and teacher_classes != student_classes:
            raise ValueError(
                f"Student {name!r} outputs {student_classes} logits, the shared teacher "
                f"{teacher.name!r} {teacher_classes}: every student must predict the teacher's "
                "classes."
            )
        try:
            return Distiller(teacher, model, name=f"{name}_distiller", **options)
        except (TypeError, ValueError) as error:
            raise type(error)(f"Student {name!r}: {error}") from error

    @staticmethod
    def _check_disjoint(distillers):
        """Students may share neither a model nor a variable: each gradient must be its own."""
        owners = {}
        for name, distiller in distillers.items():
            for variable in distiller.student.variables:
                other = owners.setdefault(id(variable), name)
                if other != name:
                    raise ValueError(
                        f"Students {other!r} and {name!r} share the variable "
                        f"{variable.path!r} (the same model or layer twice): each student "
                        "must be its own model."
                    )

    @staticmethod
    def _check_log_keys(distillers):
        seen = {}
        for name, distiller in distillers.items():
            for key in ["loss"] + list(distiller._trackers()):
                log_key = f"{name}_{key}"
                if log_key in seen:
                    raise ValueError(
                        f"Students {seen[log_key]!r} and {name!r} would both log {log_key!r}; "
                        "rename one of them."
                    )
                seen[log_key] = name

    def _build_teacher_extractor(self):
        """One teacher extractor reading every layer any student's feature loss reads."""
        extractors = [d._extractors["teacher"] for d in self.distillers.values()]
        names = []
        for extractor in extractors:
            if extractor is not None:
                names.extend(n for n in extractor.layer_names if n not in names)
        extractor = None
        if names:
            extractor = _Extractor(self.teacher, names)
        object.__setattr__(self, "_teacher_extractor", extractor)

    # --------------------------------------------------------------- accessors

    @property
    def students(self):
        """dict name -> student `keras.Model`."""
        return {name: distiller.student for name, distiller in self.distillers.items()}

    def _distillation_losses(self):
        losses = []
        for distiller in self.distillers.values():
            losses.extend(distiller._distillation_losses())
        return losses

    def _lead(self):
        return next(iter(self.distillers.values()))

    # --------------------------------------------------------------- training

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Configures training: one optimizer for all the students.

        Arguments:
            optimizer: The optimizer (its configuration and schedule apply to
                every student; see the class docstring for what is refused).
            loss: Must stay `None` (each student's loss is set in the constructor).
            **kwargs: Passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, ...); not `metrics`: every student's
                metrics are logged already.
        """
        if loss is not None:
            raise ValueError(
                "SharedTeacherDistiller.compile() takes no `loss`: each student's loss is set "
                f"by its Distiller arguments; got loss={loss!r}."
            )
        for key in ("metrics", "weighted_metrics", "loss_weights"):
            if kwargs.get(key) is not None:
                raise ValueError(
                    f"SharedTeacherDistiller.compile() takes no `{key}`: each student logs its "
                    f"accuracy, losses and teacher agreement as '<name>_<metric>'; got "
                    f"{key}={kwargs[key]!r}."
                )
        if isinstance(optimizer, (dict, list, tuple)):
            raise TypeError(
                "SharedTeacherDistiller.compile() takes one optimizer for all students (per-"
                f"variable updates make it equal to one per student); got {type(optimizer).__name__}."
                " Students that need different optimizers train in their own Distillers."
            )
        super().compile(optimizer=optimizer, **kwargs)
        problem = _optimizer_problem(self.optimizer)
        if problem is not None:
            raise ValueError(
                f"SharedTeacherDistiller cannot use {type(self.optimizer).__name__}: {problem}."
            )

    def fit(self, x=None, y=None, **kwargs):
        check_fit_epochs(kwargs.get("epochs", 1), "SharedTeacherDistiller")
        self._check_inputs_early(x, y)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        callbacks.append(_LossEpochs(self._distillation_losses()))
        with keep_variables_on_error(self):
            return super().fit(x, y, callbacks=callbacks, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        self._check_inputs_early(x, y)
        with keep_variables_on_error(self):
            return super().evaluate(x, y, **kwargs)

    def _check_inputs_early(self, x, y):
        """Each student's `Distiller` checks; the shared teacher's outputs are checked once."""
        lead = self._lead()
        lead._check_labels_early(x, y)
        for distiller in self.distillers.values():
            if distiller is not lead:
                distiller._teacher_outputs_checked = (
                    distiller._teacher_outputs_checked or lead._teacher_outputs_checked
                )
                distiller._check_labels_early(x, y)

    def zero_grad(self, set_to_none=True):
        """PyTorch backend: clears the gradient of every student variable before a step.

        Keras's PyTorch trainer clears leftover gradients with
        `torch.nn.Module.zero_grad`, which reaches the parameters a layer
        registers under their Keras paths. Students built alike share those
        paths (`conv1/kernel` in each), so only one of them is registered
        there and the others' gradients would add up from step to step.
        Unused on the other backends.
        """
        super_zero_grad = getattr(super(), "zero_grad", None)
        if super_zero_grad is not None:
            super_zero_grad(set_to_none=set_to_none)
        for variable in self.trainable_variables:
            value = variable.value
            if getattr(value, "grad", None) is not None:
                value.grad = None

    def call(self, inputs, training=None):
        return {name: distiller(inputs, training=training) for name, distiller in self.distillers.items()}

    def teacher_logits(self, inputs):
        """The frozen teacher's logits (inference mode, no gradient)."""
        return self._lead()._teacher_forward(inputs)[0]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        # The one teacher pass of the step; every student's loss reads it.
        teacher_logits, teacher_features = self._lead()._teacher_forward(
            x, extractor=self._teacher_extractor
        )
        batch_size = ops.shape(teacher_logits)[0]
        total = None
        for name, distiller in self.distillers.items():
            logits, student_features = distiller._student_outputs(x, y_pred[name], training)
            trackers = self.student_trackers[name]
            loss = distiller._student_loss(
                y, logits, teacher_logits, teacher_features, student_features, sample_weight,
                trackers,
            )
            # Weighted by the batch size, as Keras's own `loss` tracker: the
            # epoch's `name_loss` equals the `loss` the student logs alone.
            trackers["loss"].update_state(loss, sample_weight=batch_size)
            total = loss if total is None else total + loss
        return Distiller._scale_for_replicas(total)

    def get_config(self):
        raise NotImplementedError(
            "A SharedTeacherDistiller is not saved: save each student "
            "(group.students[name].save(...)) and the teacher."
        )
