"""The `LatentMeasures` callback: class-discrimination and friends per epoch."""

import math

import keras
import numpy as np

from keras_mixkd import metrics as measures_module
from keras_mixkd.metrics._inputs import integer_labels
from keras_mixkd.metrics.features import feature_tensor

# Measures of the penultimate features, f(features, labels).
FEATURE_MEASURES = ("class_discrimination", "gdv", "class_separation", "nc1")
# Measures of the outputs.
OUTPUT_MEASURES = (
    "accuracy",
    "expected_calibration_error",
    "negative_log_likelihood",
    "mean_entropy",
    "logit_std",
    "soft_label_kl",
    "softmax_class_discrimination",
)
ALL_MEASURES = FEATURE_MEASURES + OUTPUT_MEASURES
DEFAULT_MEASURES = ("class_discrimination", "accuracy", "expected_calibration_error")


def _is_distiller(model):
    return hasattr(model, "student") and hasattr(model, "teacher")


class LatentMeasures(keras.callbacks.Callback):
    """Logs class-discrimination and related measures of a held-out set.

    At the end of every `every`-th epoch the callback runs the model being
    trained — the student when the model is a distiller (an object with
    `.student` and `.teacher`, such as `keras_mixkd.Distiller`), else the model
    itself — on a fixed held-out set, in one `predict` pass that returns both
    the penultimate features and the outputs, computes the measures with
    `keras.ops` on the backend's device, and writes them into the epoch's
    `logs`. So `History` (`fit(...).history`), `CSVLogger` and `TensorBoard`
    record them; put this callback *before* `CSVLogger`, `TensorBoard`,
    `EarlyStopping` or `ModelCheckpoint` in the `callbacks` list, since Keras
    calls callbacks in list order (`History` is appended by `fit` after all
    of them).

    Log keys are `prefix + name` for the model trained and
    `prefix + "teacher_" + name` for the teacher. The teacher is frozen, so
    its values are measured once, at the start of training, and repeated in
    the logs of every epoch (constant columns for `CSVLogger`, a flat line in
    TensorBoard); they are also kept in `teacher_values`. On epochs that are
    not measured (`every > 1`) the student keys hold NaN, so every epoch has
    the same keys; `measured` keeps only the measured epochs.

    Measures (names for `measures`):
    - of the penultimate features: `"class_discrimination"`, `"gdv"`,
      `"class_separation"`, `"nc1"` (see `keras_mixkd.metrics`);
    - of the outputs: `"accuracy"`, `"expected_calibration_error"`,
      `"negative_log_likelihood"`, `"mean_entropy"`, `"logit_std"`, `"soft_label_kl"` (needs
      `soft_labels`), and `"softmax_class_discrimination"` (CD computed on
      the softmax outputs, as study A's own code did).

    Arguments:
        x: held-out images, an array (or a dict whose `"images"` entry is
            one). Keep it small enough for one `predict` per epoch.
        y: their integer class ids `(N,)` or one-hot rows.
        measures: names of the measures to log.
        every: measure at the end of epochs `every - 1, 2 * every - 1, ...`
            (like `validation_freq`).
        batch_size: batch size of the `predict` pass.
        prefix: prepended to every log key; the default keeps the keys apart
            from the training metrics (`accuracy`) and validation (`val_`).
        teacher: `"auto"` (the distiller's teacher, if the model is one), a
            `keras.Model` to measure as the teacher, or None.
        layer_name: name of the feature layer of both models; default as in
            `keras_mixkd.metrics.feature_extractor` (the layer `"features"`,
            else the input of the last Dense layer).
        teacher_layer_name: the teacher's feature layer, where its name
            differs from the student's (Keras names layers by creation
            order: `global_average_pooling2d_2` in one model, `_3` in the
            other); default `layer_name`.
        student_layer_name: the feature layer of the model trained (the
            student of a distiller); default `layer_name`.
        from_logits: whether the models output logits (the zoo's do).
        soft_labels: human label distributions `(N, L)` for
            `"soft_label_kl"`.
        num_bins: ECE bins.

    Feature measures need a functional (or built Sequential) model, whose
    layer graph can be cut: a subclassed student is refused when training
    begins (`on_train_begin`), a subclassed `teacher` model at construction.

    Example:

    ```python
    measures = LatentMeasures(x_val, y_val, every=1)
    history = distiller.fit(dataset, epochs=10, callbacks=[measures])
    history.history["heldout_class_discrimination"]          # the student's
    history.history["heldout_teacher_class_discrimination"]  # constant
    ```
    """

    def __init__(
        self,
        x,
        y,
        measures=DEFAULT_MEASURES,
        every=1,
        batch_size=256,
        prefix="heldout_",
        teacher="auto",
        layer_name=None,
        from_logits=True,
        soft_labels=None,
        num_bins=15,
        teacher_layer_name=None,
        student_layer_name=None,
    ):
        super().__init__()
        if isinstance(measures, str):
            measures = (measures,)
        measures = tuple(measures)
        unknown = [name for name in measures if name not in ALL_MEASURES]
        if unknown or not measures:
            raise ValueError(
                f"Unknown measure(s) {unknown or measures}; choose from {ALL_MEASURES}."
            )
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"`every` must be a positive integer, got {every!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if "soft_label_kl" in measures and soft_labels is None:
            raise ValueError('The measure "soft_label_kl" needs `soft_labels`.')
        if "logit_std" in measures and not from_logits:
            raise ValueError('The measure "logit_std" needs logits (from_logits=True).')
        if isinstance(x, dict):
            if "images" not in x:
                raise ValueError(f"A dict `x` must have an 'images' entry, got keys {sorted(x)}.")
            x = x["images"]
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) < 2:
            raise TypeError(
                "`x` must be an array or tensor of held-out inputs (N, ...), "
                f"got {type(x).__name__}. (A tf.data.Dataset would not give the "
                "same examples in the same order every epoch: materialise it.)"
            )
        if not (teacher is None or teacher == "auto" or isinstance(teacher, keras.Model)):
            raise TypeError(
                f'`teacher` must be "auto", None or a keras.Model, got {teacher!r}.'
            )
        num_examples = int(shape[0])
        self.labels = integer_labels(y, num_examples, "y")
        if np.unique(self.labels).size < 2:
            raise ValueError("The held-out set `y` must hold at least two classes.")
        self.x = x
        self.measures = measures
        self.every = every
        self.batch_size = batch_size
        self.prefix = prefix
        self.teacher = teacher
        for argument, value in (("layer_name", layer_name), ("teacher_layer_name", teacher_layer_name),
                                ("student_layer_name", student_layer_name)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"`{argument}` must be a layer name (str) or None, got {value!r}.")
        self.layer_name = layer_name
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name
        self.from_logits = from_logits
        self.soft_labels = soft_labels
        self.num_bins = num_bins
        self.teacher_values = {}
        self.measured = {"epoch": []}
        self._runners = []
        if isinstance(teacher, keras.Model):
            self._runner(teacher, "teacher")  # a subclassed teacher or a wrong layer name fails here

    def _target(self):
        model = self.model
        return model.student if _is_distiller(model) else model

    def _teacher_model(self):
        if isinstance(self.teacher, str):  # "auto", checked in __init__
            return self.model.teacher if _is_distiller(self.model) else None
        return self.teacher

    def _layer(self, role):
        """`(layer name or None, the argument that names it)` of the `"teacher"` or `"student"`."""
        own = f"{role}_layer_name"
        if getattr(self, own) is not None:
            return getattr(self, own), f"LatentMeasures({own}=...)"
        if self.layer_name is not None:
            return self.layer_name, "LatentMeasures(layer_name=...)"
        return None, f"LatentMeasures({own}=...), or layer_name=... for both models"

    def _runner(self, model, role):
        """A model giving `[features, outputs]`; None when no measure needs features."""
        for known, runner in self._runners:
            if known is model:
                return runner
        feature_measures = [name for name in self.measures if name in FEATURE_MEASURES]
        if feature_measures:
            layer_name, argument = self._layer(role)
            try:
                features = feature_tensor(model, layer_name, argument=argument)
            except TypeError:
                outputs_only = [name for name in self.measures if name in OUTPUT_MEASURES]
                raise TypeError(
                    f"LatentMeasures measures {feature_measures} on the {role}'s penultimate features, "
                    f"which the subclassed {role} {model.name!r} ({type(model).__name__}) does not "
                    "expose (it has no layer graph to cut). Build the "
                    f"{role} with the functional API, or measure its outputs only (measures="
                    f"{outputs_only or list(DEFAULT_MEASURES[1:])})."
                ) from None
            runner = keras.Model(model.inputs, [features, model.outputs[0]])
        else:
            runner = None
        self._runners.append((model, runner))
        return runner

    def compute(self, model):
        """Measures `model` on the held-out set; returns `{name: float}`.

        `model` is read as the teacher when it is the teacher measured (its
        feature layer `teacher_layer_name`), else as the student.
        """
        role = "teacher" if model is self._teacher_model() else "student"
        runner = self._runner(model, role)
        if runner is None:
            features = None
            outputs = model.predict(self.x, batch_size=self.batch_size, verbose=0)
        else:
            features, outputs = runner.predict(self.x, batch_size=self.batch_size, verbose=0)
        return self._measure(features, outputs)

    def _measure(self, features, outputs):
        labels = self.labels
        values = {}
        for name in self.measures:
            if name in FEATURE_MEASURES:
                values[name] = getattr(measures_module, name)(features, labels)
            elif name == "accuracy":
                values[name] = measures_module.accuracy(outputs, labels)
            elif name == "expected_calibration_error":
                values[name] = measures_module.expected_calibration_error(
                    outputs, labels, num_bins=self.num_bins, from_logits=self.from_logits
                )
            elif name == "negative_log_likelihood":
                values[name] = measures_module.negative_log_likelihood(
                    outputs, labels, from_logits=self.from_logits
                )
            elif name == "mean_entropy":
                values[name] = measures_module.mean_entropy(outputs, from_logits=self.from_logits)
            elif name == "logit_std":
                values[name] = measures_module.logit_std(outputs)
            elif name == "soft_label_kl":
                values[name] = measures_module.soft_label_kl(
                    outputs, self.soft_labels, labels, from_logits=self.from_logits
                )
            elif name == "softmax_class_discrimination":
                probabilities = keras.ops.softmax(outputs) if self.from_logits else outputs
                values[name] = measures_module.class_discrimination(probabilities, labels)
        return values

    def on_train_begin(self, logs=None):
        self._runners = []
        self.teacher_values = {}
        self.measured = {"epoch": []}
        # Both models' feature layers are found now, before the first epoch, not after it.
        self._runner(self._target(), "student")
        teacher = self._teacher_model()
        if teacher is not None:
            self.teacher_values = self.compute(teacher)

    def _should_measure(self, epoch):
        return (epoch + 1) % self.every == 0

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self._should_measure(epoch):
            values = self.compute(self._target())
            self.measured["epoch"].append(epoch)
            for name, value in values.items():
                self.measured.setdefault(name, []).append(value)
        else:
            values = {name: math.nan for name in self.measures}
        entries = {self.prefix + name: value for name, value in values.items()}
        entries.update(
            {self.prefix + "teacher_" + name: value for name, value in self.teacher_values.items()}
        )
        clashes = sorted(set(entries) & set(logs))
        if clashes:
            raise ValueError(
                f"LatentMeasures would overwrite the log entries {clashes}; "
                "give it another `prefix`."
            )
        logs.update(entries)


# The name the issue first used.
ClassDiscrimination = LatentMeasures
