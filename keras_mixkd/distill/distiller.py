"""The `Distiller`: a frozen teacher, one or several students trained by `fit`."""

import contextlib
import warnings

import keras
import numpy as np
from keras import ops

from keras_mixkd import losses as kd_losses
from keras_mixkd._checks import check_fit_arrays
from keras_mixkd._keras_compat import restore_detached_values
from keras_mixkd.distill import student_group
from keras_mixkd.distill.feature_extractor import FeatureExtractor
from keras_mixkd.distill.loss_epochs import LossEpochs
from keras_mixkd.distill.model_info import ends_in_softmax
from keras_mixkd.distill.model_info import output_width
from keras_mixkd.distill.model_info import single_input_shape
from keras_mixkd.distill.output_checks import PROBE_EXAMPLES
from keras_mixkd.distill.output_checks import looks_like_probabilities
from keras_mixkd.distill.output_checks import probe_images
from keras_mixkd.models.direct_graph_call import direct_call_or_model

LOSS_NAMES = kd_losses.LOSS_NAMES
TEACHER_OUTPUTS = ("logits", "probabilities")
# Below this, a probability is treated as 0 when turned back into a logit.
PROBABILITY_FLOOR = 1e-12
TEACHER_IMAGES_KEY = "teacher_images"
TEACHER_LOGITS_KEY = "teacher_logits"
IMAGES_KEY = "images"


@contextlib.contextmanager
def keep_variables_on_error(model):
    """On JAX, restores every variable of `model` if a step fails before its first update.

    Keras's JAX trainer detaches variable values while it runs and attaches
    them back only after a successful step, so an error raised while the
    first step is traced would leave teacher and student without weights.
    JAX arrays are immutable: keeping references to them costs no copy.
    """
    if keras.backend.backend() != "jax":
        yield
        return
    saved = [(variable, variable.value) for variable in model.variables]
    try:
        yield
    except BaseException:
        restore_detached_values(saved)
        raise


def check_fit_epochs(epochs, owner):
    """Raise a clear `ValueError` unless `fit`'s `epochs` is a whole number >= 1.

    Keras's fit runs no epoch for epochs <= 0 and says nothing.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"{owner}.fit: epochs must be a whole number >= 1, got {epochs!r}.")


def scale_for_replicas(total):
    """`total / replicas` under a multi-replica `tf.distribute` strategy; `total` elsewhere.

    There each replica's loss is the mean over its slice of the batch and
    Keras sums gradients over replicas (and multiplies the logged loss
    back); its compiled losses are scaled alike.
    """
    if keras.backend.backend() != "tensorflow":
        return total
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return total / replicas if replicas > 1 else total


@keras.saving.register_keras_serializable(package="keras_mixkd")
class Distiller(keras.Model):
    """Knowledge distillation from a frozen teacher to one or several students, trained with `fit`.

    The teacher is frozen from construction on: it is made non-trainable and
    always called with `training=False`, so its weights and batch-norm
    statistics stay bit-identical through `fit` on every backend. `call`,
    `predict` and `evaluate` run the student; `distiller.student` is a plain
    `keras.Model` to save or export on its own.

    The loss is `w · CE + d · L + f · F` with `w = student_loss_weight`,
    `d = distillation_loss_weight` (default `1 − w`), `L` the distillation
    loss and `F` the optional feature loss with weight `f =
    feature_loss_weight`. `L` is a `keras_mixkd.losses.DistillationLoss`
    (see `docs/methods.md`), given by name, as an instance, or as a
    `keras.distillation` loss object:

    - `loss="kd"`: Hinton KD, `T² · KL(softmax(t/T) ‖ softmax(s/T))`; the
      supervised part is cross-entropy on the raw student logits.
    - `loss="standardized"`: study B's logit-standardised variant. Each
      sample's logits are divided by their own standard deviation (unbiased,
      `std_ddof=1`, as `torch.std`) in place of `T` (no `T²` factor), in both
      the KD term and the supervised term: `CE = mean(-Σ y ·
      log_softmax(s/σ_s))`. `temperature` is ignored.
    - `loss="lskd"`: logit-standardised KD (Sun et al. 2024): KD at base
      temperature `T` on z-scored logits (reference: `T=2`,
      `student_loss_weight=0.1`, `distillation_loss_weight=9`).
    - `loss="dkd"`: DKD (Zhao et al. 2022) with `α=1, β=8` and the 20-epoch
      warm-up; other options through
      `loss=keras_mixkd.losses.DecoupledDistillation(...)` (reference:
      `T=4`, `student_loss_weight=1`, `distillation_loss_weight=1`).
    - a `DistillationLoss` instance: its own options (`temperature` and
      `std_ddof` of the Distiller are not used).
    - a `keras.distillation.LogitsDistillation` / `FeatureDistillation`: its
      own value (a batch value; sample weights do not reweight it).

    The field's two conventions map onto `student_loss_weight` so:

    - CIFAR-100 KD benchmark code (RepDistiller, mdistiller; study B):
      `0.1 · CE + 0.9 · KD` at `T = 4` is `student_loss_weight=0.1,
      temperature=4.0` (the defaults).
    - Study A: `γ · T² · KL + (1 − γ) · CE` with `γ = 0.5`, `T = 20` is
      `student_loss_weight=0.5, temperature=20.0`.

    Labels may be integer class ids `(batch,)` / `(batch, 1)`, or dense soft
    labels `(batch, classes)` whose rows sum to 1, as made by MixUp, CutMix or
    label smoothing; the same distiller takes both. Inputs may be an image
    batch, seen by both models, or a dict `{"images": ..., "teacher_images":
    ...}` when the teacher must see the clean batch while the student sees the
    augmented one (see `keras_mixkd.data.make_dataset(teacher_sees="clean")`),
    or a dict `{"images": ..., "teacher_logits": ...}` carrying the teacher's
    logits of the batch computed beforehand (`compute_teacher_logits`, passed
    to `make_dataset(teacher_logits=...)`): the teacher is then not run in
    `fit`, and its cached logits are read as they are (float32, no gradient).
    A cache holds logits also for `teacher_outputs="probabilities"` (what
    `compute_teacher_logits` returns: the log of the probabilities). Feature
    losses read the teacher's features, which a cache does not hold: with a
    `feature_loss`, or a feature `loss`, cached inputs are refused.

    Logged every epoch: `loss` (total), `supervised_loss`,
    `distillation_loss`, `accuracy` (student top-1 against the argmax of the
    labels) and `teacher_agreement` (top-1 agreement of student and teacher).

    Several students, one teacher pass: `Distiller(teacher, students={name:
    student, ...})` trains several students from one frozen teacher, which
    runs once per batch; each step updates every student with its own loss
    (temperature, weights, feature loss), in one compiled step on every
    backend. A student is a `keras.Model` (distilled with this Distiller's
    loss arguments), a pair `(model, kwargs)` whose `kwargs` override them
    (`loss`, `temperature`, `student_loss_weight`, ...), or a `Distiller`
    of the same teacher. The students share no variable, so each student's
    gradient is exactly that of its own loss, and one optimizer over all of
    them does what one optimizer per student would for every optimizer that
    updates each variable from its own gradient (SGD, Adam,
    `keras_mixkd.optimizers`, per-variable `clipnorm`), as long as they
    share its configuration and schedule; `global_clipnorm` and the
    `LossScaleOptimizer` of `mixed_float16` couple the students and are
    refused. Each student's result equals that of its own Distiller trained on
    the same batches, up to float round-off. Logged: `loss` (the sum over
    students) and, per student `name`, `name_loss` and its metrics as
    `name_supervised_loss`, `name_accuracy`, ...; `call` / `predict` return
    a dict name -> logits; `distiller.students` is the dict name -> model
    (save each, not the group).

    Why not `keras.distillation.Distiller`: it calls the teacher on the same
    inputs as the student only (no clean-batch teacher for mixed-sample
    studies), applies its compiled student loss on raw logits (study B's
    standardised variant standardises the supervised term too), and logs
    neither accuracy on soft labels nor teacher agreement. This class keeps its
    conventions (a frozen teacher, `student_loss_weight` in `[0, 1]`, the
    `compute_loss` hook, one code path for every backend).

    Arguments:
        teacher: A trained `keras.Model` that outputs logits.
        student: A `keras.Model` that outputs logits, with the teacher's
            number of classes and input shape. A student that outputs
            probabilities is refused, by its last layer or, failing that
            (a softmax in a subclassed model's `call`), by its outputs on
            the first inputs of `fit` / `evaluate`.
        loss: A built-in name (`"kd"`, `"standardized"`, `"lskd"`, `"dkd"`),
            a `keras_mixkd.losses.DistillationLoss`, or a `keras.distillation`
            loss object.
        temperature: Positive float, the temperature `T` of a named loss
            (`"kd"`, `"lskd"`, `"dkd"`).
        student_loss_weight: Float in `[0, 1]`, the weight `w` of the
            supervised cross-entropy.
        teacher_outputs: `"logits"` (default) or `"probabilities"` for a
            teacher that ends in a softmax; its outputs are then turned back
            into logits by `log` (softmax ignores the lost constant). A teacher
            that looks like it outputs probabilities while `"logits"` is
            expected is refused, by its last layer or, failing that, by its
            outputs on the first batch of `fit` / `evaluate`.
        distillation_loss_weight: Float `>= 0`, the weight `d` of the
            distillation loss; `None` (default) means `1 − student_loss_weight`.
        std_ddof: 1 (default, unbiased std as `torch.std`) or 0 (population
            std), for the named losses that standardise logits.
        feature_loss: `None`, a feature `DistillationLoss` (e.g.
            `keras_mixkd.losses.FeatureDistillation()`, FitNets with a
            trainable projector that is never part of the student) or a
            `keras.distillation.FeatureDistillation`.
        feature_loss_weight: Float `>= 0`, the weight `f` of `feature_loss`.
        students: `None` (one `student`), or a dict name -> student for
            several students sharing the teacher pass (then `student` stays
            `None`, and the loss arguments above are each student's defaults).
        **kwargs: Passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    import keras_mixkd
    from keras_mixkd.models import get_model

    teacher = get_model("resnet56", num_classes=100)   # trained beforehand
    student = get_model("resnet20", num_classes=100)
    distiller = keras_mixkd.Distiller(teacher, student, temperature=4.0)
    distiller.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    distiller.fit(train_ds, validation_data=val_ds, epochs=240)
    distiller.student.save("student.keras")

    # Three students, one teacher pass per batch:
    group = keras_mixkd.Distiller(teacher, students={
        "kd_t4": get_model("resnet20", num_classes=100),
        "kd_t1": (get_model("resnet20", num_classes=100), {"temperature": 1.0}),
        "std": (get_model("resnet20", num_classes=100), {"loss": "standardized"}),
    })
    group.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    group.fit(train_ds, epochs=240)      # logs kd_t4_accuracy, std_loss, ...
    group.students["kd_t4"].save("kd_t4.keras")
    ```
    """

    def __init__(
        self,
        teacher,
        student=None,
        loss="kd",
        temperature=4.0,
        student_loss_weight=0.1,
        teacher_outputs="logits",
        distillation_loss_weight=None,
        std_ddof=1,
        feature_loss=None,
        feature_loss_weight=1.0,
        students=None,
        **kwargs,
    ):
        if students is not None:
            if student is not None:
                raise ValueError(
                    "Give either `student` (one student) or `students` (a dict name -> student), "
                    "not both."
                )
            kwargs.setdefault("name", "shared_teacher_distiller")
            super().__init__(**kwargs)
            self._init_students(teacher, students, {
                "loss": loss, "temperature": temperature, "student_loss_weight": student_loss_weight,
                "teacher_outputs": teacher_outputs, "distillation_loss_weight": distillation_loss_weight,
                "std_ddof": std_ddof, "feature_loss": feature_loss,
                "feature_loss_weight": feature_loss_weight})
            return
        if student is None:
            raise TypeError("Distiller needs a `student` (a keras.Model) or `students` (a dict).")
        kwargs.setdefault("name", "distiller")
        super().__init__(**kwargs)
        self.distillers = None
        self._validate_arguments(teacher, student, loss, temperature, student_loss_weight)
        self._validate_outputs(teacher, student, teacher_outputs)
        for name, value in (("distillation_loss_weight", distillation_loss_weight),
                            ("feature_loss_weight", feature_loss_weight)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0
            ):
                raise ValueError(f"`{name}` must be a number >= 0; got {name}={value!r}.")
        self.teacher_outputs = teacher_outputs
        self.teacher_outputs_checked = False
        self.student_outputs_checked = False
        self.teacher = teacher
        self.student = student
        self.temperature = float(temperature)
        self.student_loss_weight = float(student_loss_weight)
        self.distillation_loss_weight = (
            None if distillation_loss_weight is None else float(distillation_loss_weight)
        )
        self.std_ddof = kd_losses.check_ddof(std_ddof)
        self.feature_loss_weight = float(feature_loss_weight)
        self.teacher.trainable = False

        if isinstance(loss, str):
            self._named_loss = True
            self.distillation_loss_name = loss
            # A named loss takes those of the Distiller's own arguments that it declares.
            options = {"temperature": self.temperature, "std_ddof": self.std_ddof}
            declared = {option.name for option in kd_losses.loss_options(loss)}
            self.loss_object = kd_losses.get_loss(
                loss, **{key: value for key, value in options.items() if key in declared}
            )
        else:
            self._named_loss = False
            self.loss_object = kd_losses.get_loss(loss)
            self.distillation_loss_name = self.loss_object.name
            problem = (self.loss_object.problem()
                       if isinstance(self.loss_object, kd_losses.KerasDistillationLoss) else None)
            if problem is not None:
                # Once, here: Keras's value is kept (as keras.distillation.Distiller gives it).
                warnings.warn(problem, UserWarning, stacklevel=2)
        if feature_loss is not None:
            feature_loss = kd_losses.get_loss(feature_loss)
            if not kd_losses.is_feature_loss(feature_loss):
                raise ValueError(
                    "`feature_loss` must read features (e.g. keras_mixkd.losses."
                    "FeatureDistillation()); got "
                    f"{type(feature_loss).__name__}, which reads logits only. Give it as loss=."
                )
        self.feature_loss = feature_loss
        self._build_feature_extractors()

        self.supervised_loss_tracker = keras.metrics.Mean(name="supervised_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        if self.feature_loss is not None:
            self.feature_loss_tracker = keras.metrics.Mean(name="feature_loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self.agreement_tracker = keras.metrics.Mean(name="teacher_agreement")

    def _init_students(self, teacher, students, defaults):
        """Several students: one single-student Distiller per student, sharing `teacher`."""
        if not isinstance(teacher, keras.Model):
            raise TypeError(f"`teacher` must be a keras.Model; got {type(teacher).__name__}.")
        student_group.check_students_dict(students)
        members = {}
        for name, entry in students.items():
            student_group.check_student_name(name)
            model, options = student_group.member_model_and_options(teacher, name, entry, Distiller)
            if model is None:
                members[name] = entry
                continue
            try:
                members[name] = Distiller(teacher, model, name=f"{name}_distiller", **{**defaults, **options})
            except (TypeError, ValueError) as error:
                raise type(error)(f"Student {name!r}: {error}") from error
        student_group.check_disjoint(members)
        student_group.check_log_keys(members)
        student_group.check_one_teacher_reading(members)
        self.teacher = teacher
        self.teacher.trainable = False
        self.teacher_outputs = next(iter(members.values())).teacher_outputs
        self.distillers = members
        # One teacher extractor reading every layer any student's feature loss reads.
        names = []
        for member in members.values():
            extractor = member.feature_extractor("teacher")
            if extractor is not None:
                names.extend(n for n in extractor.layer_names if n not in names)
        object.__setattr__(self, "_extractors", {
            "teacher": FeatureExtractor(teacher, names) if names else None, "student": None})
        self.student_trackers = {}
        for name, member in members.items():
            keys = ["loss"] + list(member.loss_trackers())
            self.student_trackers[name] = {
                key: keras.metrics.Mean(name=f"{name}_{key}") for key in keys
            }

    # --------------------------------------------------------------- accessors

    @property
    def has_several_students(self):
        """True when built with `students=` (even a dict of one)."""
        return self.distillers is not None

    @property
    def students(self):
        """dict name -> student `keras.Model` (`{"student": student}` for one student)."""
        if self.has_several_students:
            return {name: member.student for name, member in self.distillers.items()}
        return {"student": self.student}

    def distillation_losses(self):
        """Every `DistillationLoss` this Distiller applies (each student's loss and feature loss)."""
        if self.has_several_students:
            return [loss for member in self.distillers.values() for loss in member.distillation_losses()]
        return [loss for loss in (self.loss_object, self.feature_loss) if loss is not None]

    def feature_extractor(self, role):
        """The `FeatureExtractor` of `"teacher"` or `"student"` its feature losses read, or `None`."""
        return self._extractors[role]

    def _lead(self):
        return next(iter(self.distillers.values()))

    def _build_feature_extractors(self):
        """Feature extractors of both models for the losses that read features, and their builds."""
        object.__setattr__(self, "_extractors", {"teacher": None, "student": None})
        pairs = [loss.feature_layers for loss in self.distillation_losses() if kd_losses.is_feature_loss(loss)]
        for loss in self.distillation_losses():
            if hasattr(loss, "validate_models"):
                loss.validate_models(self.teacher, self.student)
        if not pairs:
            return
        for role, model, index in (("teacher", self.teacher, 0), ("student", self.student, 1)):
            names = list(dict.fromkeys(pair[index] for pair in pairs))
            if getattr(model, "inputs", None) is None:
                raise ValueError(
                    f"Feature distillation reads the {role}'s layers {names}: the {role} must be "
                    "a functional or sequential model (it has no symbolic inputs)."
                )
            for name in names:
                if name is None:
                    continue
                try:
                    model.get_layer(name)
                except ValueError:
                    raise ValueError(
                        f"Feature distillation reads the {role}'s layer {name!r}, which "
                        f"{model.name!r} does not have. Name its penultimate layer {name!r} or "
                        "give the loss the layer's name (e.g. FeatureDistillation("
                        "teacher_layer=..., student_layer=...))."
                    ) from None
            self._extractors[role] = FeatureExtractor(model, names)
        for loss in self.distillation_losses():
            layers = getattr(loss, "feature_layers", None)
            if layers is None or loss.built:
                continue
            teacher_shape = self._layer_shape(self.teacher, layers[0])
            student_shape = self._layer_shape(self.student, layers[1])
            loss.build(teacher_shape, student_shape)

    @staticmethod
    def _layer_shape(model, name):
        tensor = model.output if name is None else model.get_layer(name).output
        return tuple(tensor.shape)

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _validate_arguments(teacher, student, loss, temperature, student_loss_weight):
        for role, model in (("teacher", teacher), ("student", student)):
            if not isinstance(model, keras.Model):
                raise TypeError(
                    f"`{role}` must be a keras.Model; got {type(model).__name__}."
                )
        if teacher is student:
            raise ValueError("`teacher` and `student` must be two different models.")
        if isinstance(loss, str) and loss not in LOSS_NAMES:
            raise ValueError(
                f"Unknown distillation loss {loss!r}; expected one of {list(LOSS_NAMES)}, a "
                "keras_mixkd.losses.DistillationLoss or a keras.distillation loss object."
            )
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise TypeError(f"`temperature` must be a number; got {temperature!r}.")
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0; got temperature={temperature}.")
        if isinstance(student_loss_weight, bool) or not isinstance(
            student_loss_weight, (int, float)
        ):
            raise TypeError(
                f"`student_loss_weight` must be a number; got {student_loss_weight!r}."
            )
        if not 0.0 <= student_loss_weight <= 1.0:
            raise ValueError(
                "`student_loss_weight` must be in [0, 1]; got "
                f"student_loss_weight={student_loss_weight}."
            )
        teacher_classes, student_classes = output_width(teacher), output_width(student)
        if None not in (teacher_classes, student_classes) and teacher_classes != student_classes:
            raise ValueError(
                f"Teacher and student must predict the same classes: the teacher "
                f"outputs {teacher_classes} logits, the student {student_classes}."
            )
        teacher_input, student_input = single_input_shape(teacher), single_input_shape(student)
        if None not in (teacher_input, student_input) and (
            teacher_input[1:] != student_input[1:]
        ):
            raise ValueError(
                f"Teacher and student must take the same input shape: the teacher "
                f"takes {teacher_input[1:]}, the student {student_input[1:]}."
            )

    @staticmethod
    def _validate_outputs(teacher, student, teacher_outputs):
        if teacher_outputs not in TEACHER_OUTPUTS:
            raise ValueError(
                f"Unknown teacher_outputs={teacher_outputs!r}; expected one of "
                f"{list(TEACHER_OUTPUTS)}."
            )
        if ends_in_softmax(student):
            raise ValueError(
                f"The student {student.name!r} ends in a softmax: the Distiller trains "
                "a student that outputs logits. Remove the final softmax activation."
            )
        if teacher_outputs == "logits" and ends_in_softmax(teacher):
            raise ValueError(
                f"The teacher {teacher.name!r} ends in a softmax, so it outputs "
                "probabilities, not logits. Pass teacher_outputs='probabilities' (its "
                "outputs are turned back into logits by log; --teacher-outputs probabilities "
                "on the command line) or remove the softmax."
            )

    def _cache_with_features_message(self):
        return (
            f"The inputs carry cached {TEACHER_LOGITS_KEY!r}, but this Distiller's feature loss "
            "reads the teacher's features, which the cache does not hold. Give the images only "
            "(make_dataset without teacher_logits): the teacher then runs on every batch."
        )

    def _check_cached_logits(self, x):
        """Refuses cached teacher logits that this Distiller cannot use, before `fit` starts.

        Looks at NumPy dicts and at a `tf.data` dataset's element spec; other
        inputs are checked when the step is traced.
        """
        if isinstance(x, dict):
            cached = x.get(TEACHER_LOGITS_KEY)
        else:
            spec = getattr(x, "element_spec", None)
            spec = spec[0] if isinstance(spec, tuple) and spec else spec
            cached = spec.get(TEACHER_LOGITS_KEY) if isinstance(spec, dict) else None
        if cached is None:
            return
        if self._extractors["teacher"] is not None:
            raise ValueError(self._cache_with_features_message())
        shape = tuple(cached.shape)
        num_classes = output_width(self.student)
        if len(shape) != 2 or None not in (num_classes, shape[-1]) and shape[-1] != num_classes:
            raise ValueError(
                f"The cached {TEACHER_LOGITS_KEY!r} have shape {shape}; expected (batch, "
                f"{num_classes}): one row of the teacher's logits per example."
            )

    def _needs_teacher_output_check(self):
        return not self.teacher_outputs_checked and self.teacher_outputs == "logits"

    def _check_teacher_outputs_on(self, images):
        """Refuses a teacher whose rows are probabilities when logits are expected.

        Static inspection misses a softmax inside a subclassed model; one
        inference on a few samples of the first batch does not.
        """
        if not self._needs_teacher_output_check():
            return
        if isinstance(images, dict) and TEACHER_LOGITS_KEY in images:
            # The cache is what the loss reads: check its rows, not a new teacher pass.
            outputs = keras.ops.convert_to_numpy(images[TEACHER_LOGITS_KEY][:8])
            self._refuse_probabilities(outputs, "cached teacher_logits")
            self.teacher_outputs_checked = True  # only once passed: a refused teacher is refused again
            return
        if isinstance(images, dict):
            images = images.get(TEACHER_IMAGES_KEY, images.get(IMAGES_KEY))
        if images is None or not hasattr(images, "shape") or len(images.shape) < 1:
            return
        outputs = keras.ops.convert_to_numpy(self.teacher(images[:PROBE_EXAMPLES], training=False))
        self._refuse_probabilities(outputs, "teacher's outputs")
        self.teacher_outputs_checked = True  # only once passed: a refused teacher is refused again

    @staticmethod
    def _refuse_probabilities(outputs, what):
        if looks_like_probabilities(outputs):
            raise ValueError(
                f"The {what} are non-negative rows that sum to 1: they look "
                "like probabilities, but the Distiller expects logits. Pass "
                "teacher_outputs='probabilities' if they are, or remove the teacher's "
                "final softmax."
            )

    def check_student_outputs(self, x):
        """Refuses a student whose outputs are probabilities, once (one inference on a few inputs).

        `model_info.ends_in_softmax` sees a final softmax layer at
        construction; a softmax in a subclassed student's `call` or in a
        `Lambda` of a Python `lambda` shows only in its outputs: rows >= 0
        that sum to 1. The student runs in inference mode on the first
        examples of `x` (on draws of a dataset's image shape: see
        `output_checks.probe_images`), which changes no state.

        Arguments:
            x: what `fit` / `evaluate` received.

        Raises:
            ValueError: naming the student; `ValueError.student_outputs` is True.
        """
        if self.student_outputs_checked:
            return
        images = probe_images(x)
        if images is None:
            return
        outputs = keras.ops.convert_to_numpy(self.student(images, training=False))
        if looks_like_probabilities(outputs):
            error = ValueError(
                f"The student {self.student.name!r} ({type(self.student).__name__}) outputs "
                "probabilities: on the first inputs its rows are non-negative and sum to 1. The "
                "Distiller trains a student that outputs logits (its losses apply their own "
                "softmax); remove the student's final softmax (from its `call`, or its last "
                "layer)."
            )
            error.student_outputs = True
            raise error  # and again at the next fit: the flag below stays False
        self.student_outputs_checked = True

    def _label_kind(self, y, num_classes):
        """'hard' or 'soft', from the static shape of the labels."""
        shape = tuple(y.shape)
        if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
            return "hard"
        if len(shape) == 2 and shape[1] == num_classes:
            return "soft"
        raise ValueError(
            f"Labels of shape {shape} fit neither integer class ids of shape "
            f"(batch,) or (batch, 1) nor soft labels of shape (batch, {num_classes})."
        )

    def check_inputs(self, x, y):
        """Refuses inputs and labels that `fit` / `evaluate` would fail on, before any state changes.

        Arrays and `tf.data` datasets reveal their label shape up front; other
        inputs (generators, PyDataset) are checked when the step is traced.
        The teacher's outputs are checked once (one inference on a few
        examples) to be logits when logits are expected, and so are the
        student's (`check_student_outputs`). With several students, each
        student's checks run, and the shared teacher's outputs are checked
        once.
        """
        if self.has_several_students:
            lead = self._lead()
            for name, member in self.distillers.items():
                if member is not lead:
                    member.teacher_outputs_checked = (
                        member.teacher_outputs_checked or lead.teacher_outputs_checked
                    )
                try:
                    member.check_inputs(x, y)
                except ValueError as error:
                    if not getattr(error, "student_outputs", False):
                        raise
                    raise ValueError(f"Student {name!r}: {error}") from error
            return
        check_fit_arrays(x, y, output_width(self.student))
        self._check_cached_logits(x)
        if self._needs_teacher_output_check() and hasattr(x, "element_spec"):
            # Pulls one batch through the pipeline: only until the check is done,
            # not on every `fit` / `evaluate` (Keras validates through `evaluate`).
            for batch in x.take(1):
                self._check_teacher_outputs_on(batch[0] if isinstance(batch, tuple) else batch)
        else:
            self._check_teacher_outputs_on(x)
        self.check_student_outputs(x)
        num_classes = output_width(self.student)
        if num_classes is None:
            return
        if y is not None and hasattr(y, "shape"):
            self._label_kind(y, num_classes)
        elif y is None and hasattr(x, "element_spec"):
            spec = x.element_spec
            if isinstance(spec, tuple) and len(spec) >= 2 and hasattr(spec[1], "shape"):
                self._label_kind(spec[1], num_classes)

    def fit(self, x=None, y=None, **kwargs):
        check_fit_epochs(kwargs.get("epochs", 1), type(self).__name__)
        self.check_inputs(x, y)
        # Losses that change over epochs (DKD's warm-up) read the epoch from a
        # variable this callback sets before each epoch's first step.
        callbacks = list(kwargs.pop("callbacks", None) or [])
        callbacks.append(LossEpochs(self.distillation_losses()))
        with keep_variables_on_error(self):
            return super().fit(x, y, callbacks=callbacks, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        self.check_inputs(x, y)
        with keep_variables_on_error(self):
            return super().evaluate(x, y, **kwargs)

    # ----------------------------------------------------------------- forward

    @staticmethod
    def _split_inputs(inputs):
        if isinstance(inputs, dict):
            if IMAGES_KEY not in inputs:
                raise ValueError(
                    f"A dict input must hold {IMAGES_KEY!r} (and optionally "
                    f"{TEACHER_IMAGES_KEY!r} or {TEACHER_LOGITS_KEY!r}); got keys {sorted(inputs)}."
                )
            images = inputs[IMAGES_KEY]
            return images, inputs.get(TEACHER_IMAGES_KEY, images)
        return inputs, inputs

    def call(self, inputs, training=None):
        if self.has_several_students:
            return {name: member(inputs, training=training) for name, member in self.distillers.items()}
        student_inputs, _ = self._split_inputs(inputs)
        extractor = self._extractors["student"]
        if extractor is None:
            return self._direct_call("student")(student_inputs, training=training)
        # One forward pass gives the logits and the features the feature
        # losses read in `compute_loss` (the same step, on every backend).
        features, logits = extractor(student_inputs, training=training)
        object.__setattr__(self, "_student_features", features)
        return logits

    def teacher_logits(self, inputs):
        """The frozen teacher's logits (inference mode, no gradient)."""
        return self.run_teacher(inputs)[0]

    def run_teacher(self, inputs, extractor=None):
        """`(logits, features)` of the frozen teacher (features `None` when no loss reads them).

        Arguments:
            inputs: An image batch, or a dict with `"images"` and optionally
                `"teacher_images"` or cached `"teacher_logits"`.
            extractor: A teacher `FeatureExtractor` to use in place of this
                Distiller's own (several students share one that reads every
                layer their feature losses read).
        """
        if self.has_several_students:
            return self._lead().run_teacher(inputs, extractor=extractor)
        _, teacher_inputs = self._split_inputs(inputs)
        if extractor is None:
            extractor = self._extractors["teacher"]
        if isinstance(inputs, dict) and TEACHER_LOGITS_KEY in inputs:
            if extractor is not None:
                raise ValueError(self._cache_with_features_message())
            # Computed beforehand (`compute_teacher_logits`): already logits, whatever
            # `teacher_outputs`, so read as they are.
            return ops.stop_gradient(ops.cast(inputs[TEACHER_LOGITS_KEY], "float32")), None
        if extractor is None:
            outputs, features = self._direct_call("teacher")(teacher_inputs, training=False), None
        else:
            features, outputs = extractor(teacher_inputs, training=False)
            features = {k: ops.stop_gradient(v) for k, v in features.items()}
        if self.teacher_outputs == "probabilities":
            outputs = ops.log(ops.maximum(ops.cast(outputs, "float32"), PROBABILITY_FLOOR))
        return ops.stop_gradient(outputs), features

    def _direct_call(self, role):
        """How the `"teacher"` or the `"student"` is called: `DirectGraphCall` where it allows it.

        Same outputs and gradients as `model(x, training=...)`, bit for bit,
        without Keras's per-layer call machinery and with each activation
        freed after its last reader, which under PyTorch made resnet110's
        inference 2.5x faster on a CPU. Setting `_direct_calls = False` on
        an instance before its first step keeps the plain calls
        (benchmarks/bench_study.py times both).
        """
        calls = self.__dict__.get("_direct_call_fns")
        if calls is None:
            calls = {}
            # Not tracked by Keras: a cache of functions of the (fixed) models.
            object.__setattr__(self, "_direct_call_fns", calls)
        if role not in calls:
            model = getattr(self, role)
            calls[role] = direct_call_or_model(model) if getattr(self, "_direct_calls", True) else model
        return calls[role]

    # -------------------------------------------------------------------- loss

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Configures training. The loss is set in the constructor, not here.

        Arguments:
            optimizer: Optimizer for the student (with several students: one
                optimizer for all; see the class docstring for what is refused).
            loss: Must stay `None`.
            **kwargs: Passed to `keras.Model.compile` (`metrics`,
                `jit_compile`, `steps_per_execution`, ...; with several
                students not `metrics`: each student logs its own).
        """
        owner = type(self).__name__
        if loss is not None:
            raise ValueError(
                f"{owner}.compile() takes no `loss`: each student's loss is chosen by "
                f"Distiller(loss=...): one of {list(LOSS_NAMES)} or a loss object; got loss={loss!r}."
            )
        if self.has_several_students:
            student_group.check_group_compile(owner, optimizer, kwargs)
        super().compile(optimizer=optimizer, **kwargs)
        if self.has_several_students:
            problem = student_group.optimizer_problem(self.optimizer)
            if problem is not None:
                raise ValueError(f"{owner} cannot use {type(self.optimizer).__name__}: {problem}.")

    def compile_from_config(self, config):
        # Keras skips compiling on load when `compile` is overridden; ours only
        # forbids a `loss`, so the saved compile arguments are safe to replay.
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.has_several_students:
            return self._students_loss(x, y, y_pred, sample_weight, training)
        y_pred, student_features = self.student_outputs(x, y_pred, training)
        teacher_logits, teacher_features = self.run_teacher(x)
        total = self.student_loss(
            y, y_pred, teacher_logits, teacher_features, student_features, sample_weight,
            self.loss_trackers(),
        )
        return scale_for_replicas(total)

    def _students_loss(self, x, y, y_pred, sample_weight, training):
        """The sum of every student's loss, from one teacher pass."""
        if y_pred is None:
            y_pred = self(x, training=training)
        # The one teacher pass of the step; every student's loss reads it.
        teacher_logits, teacher_features = self._lead().run_teacher(x, extractor=self._extractors["teacher"])
        batch_size = ops.shape(teacher_logits)[0]
        total = None
        for name, member in self.distillers.items():
            logits, student_features = member.student_outputs(x, y_pred[name], training)
            trackers = self.student_trackers[name]
            loss = member.student_loss(
                y, logits, teacher_logits, teacher_features, student_features, sample_weight, trackers,
            )
            # Weighted by the batch size, as Keras's own `loss` tracker: the
            # epoch's `name_loss` equals the `loss` the student logs alone.
            trackers["loss"].update_state(loss, sample_weight=batch_size)
            total = loss if total is None else total + loss
        return scale_for_replicas(total)

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
        if not self.has_several_students:
            return
        for variable in self.trainable_variables:
            value = variable.value
            if getattr(value, "grad", None) is not None:
                value.grad = None

    def loss_trackers(self):
        """The metrics `student_loss` updates: log name -> `keras.metrics.Mean`."""
        trackers = {
            "supervised_loss": self.supervised_loss_tracker,
            "distillation_loss": self.distillation_loss_tracker,
            "accuracy": self.accuracy_tracker,
            "teacher_agreement": self.agreement_tracker,
        }
        if self.feature_loss is not None:
            trackers["feature_loss"] = self.feature_loss_tracker
        return trackers

    def student_outputs(self, x, y_pred, training):
        """`(logits, features)` of the student (features `None` when no loss reads them).

        Arguments:
            x: The step's inputs.
            y_pred: The student's logits when already computed, else `None`.
            training: Whether the student runs in training mode.
        """
        student_features = None
        if self._extractors["student"] is not None:
            student_features = getattr(self, "_student_features", None)
            if y_pred is None or student_features is None:
                y_pred = self(x, training=training)
                student_features = self._student_features
            object.__setattr__(self, "_student_features", None)
        elif y_pred is None:
            y_pred = self(x, training=training)
        return y_pred, student_features

    def student_loss(self, y, y_pred, teacher_logits, teacher_features, student_features,
                     sample_weight, trackers):
        """The student's total loss (before replica scaling), given the teacher's outputs.

        Updates `trackers` (see `loss_trackers`). Split from `compute_loss` so
        that a Distiller of several students runs the teacher once and applies
        each student's own loss to the same teacher outputs.

        Arguments:
            y: Labels (class ids or soft rows), or `None`.
            y_pred: The student's logits.
            teacher_logits, teacher_features: `run_teacher`'s outputs.
            student_features: `student_outputs`'s features (or `None`).
            sample_weight: Per-sample weights, or `None`.
            trackers: A dict like `loss_trackers()`.
        """
        num_classes = y_pred.shape[-1]
        if teacher_logits.shape[-1] != num_classes:
            raise ValueError(
                f"Teacher and student must predict the same classes: the teacher "
                f"outputs {teacher_logits.shape[-1]} logits, the student {num_classes}."
            )
        teacher_logits = ops.cast(teacher_logits, "float32")
        student_logits = ops.cast(y_pred, "float32")

        labels, label_ids = None, None
        if y is not None:
            kind = self._label_kind(y, num_classes)
            labels = ops.cast(y, "float32") if kind == "soft" else ops.reshape(y, (-1,))
            label_ids = ops.argmax(y, axis=-1) if kind == "soft" else labels
        elif self.loss_object.needs_labels:
            raise ValueError(
                f"The distillation loss {self.distillation_loss_name!r} needs labels; "
                "got data without labels (y=None)."
            )

        def run(loss):
            kwargs = {}
            layers = getattr(loss, "feature_layers", None)
            if layers is not None:
                kwargs = {"teacher_features": teacher_features[layers[0]],
                          "student_features": student_features[layers[1]]}
            values = loss.compute_loss(teacher_logits, student_logits, labels, **kwargs)
            return ops.cast(values, "float32")

        distillation = run(self.loss_object)
        supervised_logits = self.loss_object.supervised_logits(student_logits)
        if labels is None:
            supervised = ops.zeros_like(distillation)
        else:
            supervised = kd_losses.per_sample_cross_entropy(labels, supervised_logits)

        weight = self.student_loss_weight
        distillation_weight = (
            1.0 - weight if self.distillation_loss_weight is None else self.distillation_loss_weight
        )
        per_sample_total = weight * supervised + distillation_weight * distillation
        if self.feature_loss is not None:
            feature = run(self.feature_loss)
            per_sample_total = per_sample_total + self.feature_loss_weight * feature
            trackers["feature_loss"].update_state(feature, sample_weight=sample_weight)
        total = self._weighted_mean(per_sample_total, sample_weight)
        # The student's weight regularisers; never the frozen teacher's, which
        # would only shift the logged loss.
        for extra_loss in self.student.losses:
            total = total + ops.cast(extra_loss, total.dtype)

        student_ids = ops.argmax(student_logits, axis=-1)
        trackers["supervised_loss"].update_state(supervised, sample_weight=sample_weight)
        trackers["distillation_loss"].update_state(distillation, sample_weight=sample_weight)
        trackers["teacher_agreement"].update_state(
            ops.cast(ops.equal(student_ids, ops.argmax(teacher_logits, axis=-1)), "float32"),
            sample_weight=sample_weight,
        )
        if label_ids is not None:
            trackers["accuracy"].update_state(
                ops.cast(ops.equal(student_ids, ops.cast(label_ids, student_ids.dtype)), "float32"),
                sample_weight=sample_weight,
            )
        return total

    @staticmethod
    def _weighted_mean(values, sample_weight):
        if sample_weight is None:
            return ops.mean(values)
        sample_weight = ops.reshape(ops.cast(sample_weight, values.dtype), (-1,))
        return ops.sum(values * sample_weight) / ops.maximum(
            ops.sum(sample_weight), keras.backend.epsilon()
        )

    # ----------------------------------------------------------- serialization

    def get_config(self):
        if self.has_several_students:
            raise NotImplementedError(
                f"A {type(self).__name__} of several students is not saved: save each student "
                "(distiller.students[name].save(...)) and the teacher."
            )
        config = super().get_config()
        config.update(
            {
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "student": keras.saving.serialize_keras_object(self.student),
                "loss": (
                    self.distillation_loss_name
                    if self.distillation_loss_name in LOSS_NAMES
                    and not isinstance(self.loss_object, kd_losses.KerasDistillationLoss)
                    and self._named_loss
                    else keras.saving.serialize_keras_object(self.loss_object)
                ),
                "temperature": self.temperature,
                "student_loss_weight": self.student_loss_weight,
                "teacher_outputs": self.teacher_outputs,
                "distillation_loss_weight": self.distillation_loss_weight,
                "std_ddof": self.std_ddof,
                "feature_loss": (
                    None if self.feature_loss is None
                    else keras.saving.serialize_keras_object(self.feature_loss)
                ),
                "feature_loss_weight": self.feature_loss_weight,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for role in ("teacher", "student"):
            config[role] = keras.saving.deserialize_keras_object(
                config[role], custom_objects=custom_objects
            )
        for key in ("loss", "feature_loss"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects
                )
        return cls(**config)
