"""`load_model`: the one loader of every `.keras` file a user brings.

Every command of `keras-mixkd`, the study and `export_student` load through
it, so each takes the same files: a zoo model, a plain `keras.Sequential` or
functional model, a saved `Distiller` (its student, or its teacher), a
student distilled with `loss="standardized"`.
"""

import importlib
import os
import pkgutil
import re
import warnings

from keras_mixkd._checks import keras_file_problem

PARTS = ("student", "teacher", "distiller")

# Keras warns when a nested model's optimizer comes back unbuilt. A teacher
# compiled and trained before it was wrapped brings its optimizer's slots into
# the Distiller's file; the Distiller never trains it, so they are not needed.
_SKIPPED_OPTIMIZER = re.compile(
    r"Skipping variable loading for optimizer '([^']*)', because it has (\d+) variables whereas "
    r"the saved optimizer has (\d+) variables")


def register_saved_classes():
    """Import every module whose classes a `.keras` file of keras-mixkd may name.

    Keras finds a saved class by its registered name, which exists once its
    module is imported; a fresh process (a Ray worker, a child process) may
    not have imported them yet.
    """
    import keras_mixkd.distill.distiller  # noqa: F401
    import keras_mixkd.distill.shared_teacher_distiller  # noqa: F401
    import keras_mixkd.calibration.temperature_scaling  # noqa: F401
    import keras_mixkd.distill.standardized_logits  # noqa: F401
    import keras_mixkd.losses  # noqa: F401
    import keras_mixkd.models as models
    import keras_mixkd.optimizers  # noqa: F401

    for info in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"keras_mixkd.models.{info.name}")


def load_model(path, *, num_classes=None, part="student", what="model", compile=True, class_names=None):
    """Load a `.keras` file as a model every command and measure can use.

    - A saved `Distiller` (ours or `keras.distillation`'s) gives its student
      (`part="student"`, the default: the model the file was made to ship),
      its teacher (`part="teacher"`), or itself (`part="distiller"`). A
      `SharedTeacherDistiller` with one student gives that student.
    - A `keras.Sequential` model built without an `Input` (built by `fit` or
      `build`) comes back as a functional model of the same layers and
      weights, with a free batch dimension, so that its features, inputs and
      outputs can be read as any other model's.
    - A file that is missing, not a `.keras` archive, damaged, or of a model
      predicting another number of classes than `num_classes` raises an error
      that names the file and what to do.
    - With `class_names`, a model whose model card (the record JSON
      keras-mixkd wrote beside the file) names other classes, or the same in
      another order, is refused with both lists and how to map them
      (`keras_mixkd.models.model_card.check_class_names`); a file without a
      card is not checked.

    Arguments:
        path: the `.keras` file.
        num_classes: when given, the number of classes the model must predict.
        part: what a saved distiller gives: "student", "teacher" or
            "distiller" (ignored for other models).
        what: how messages name the file ("model", "teacher", ...).
        compile: restore the saved compile state (optimizer, metrics).
        class_names: when given, the data's class names in label order
            (`DatasetSplits.class_names`), checked against the model card's.

    Returns:
        A `keras.Model`.

    Example:

    >>> from keras_mixkd.saving import load_model
    >>> student = load_model("student.keras", num_classes=10)
    >>> teacher = load_model("distiller.keras", part="teacher")
    >>> teacher = load_model("teacher.keras", class_names=splits.class_names, what="teacher")
    """
    import keras

    from keras_mixkd.models.model_card import check_class_names
    from keras_mixkd.models.model_card import read_model_card

    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}; got {part!r}.")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be the path of a .keras file (str or os.PathLike); got {type(path).__name__}.")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {what} file at {path}.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; give the path of a .keras file (saved by model.save).")
    if class_names is not None:
        # Before the file loads: the card alone says whether the classes match.
        check_class_names(read_model_card(path), class_names, what=what, path=path)
    register_saved_classes()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = keras.saving.load_model(path, compile=compile)
    except Exception as error:  # a corrupt or foreign file: say which file
        raise ValueError(f"Cannot load the {what} {path}: {keras_file_problem(path) or error}") from error
    _replay_warnings(caught, model)
    model = _part_of(model, part, path)
    model = as_graph_model(model)
    if num_classes is not None:
        width = output_width(model)
        if width != num_classes:
            raise ValueError(
                f"The {what} {path} predicts {width} classes but the data has {num_classes}: it was "
                "trained on other data. Pick the data set it was trained on (--dataset, --data-path), "
                "or a model trained on this one."
            )
    return model


def output_width(model):
    """The number of classes `model` predicts (the last axis of its output)."""
    shape = model.output_shape
    if isinstance(shape, list):
        shape = shape[0]
    return shape[-1]


def as_graph_model(model):
    """`model`, or for a `keras.Sequential` without a layer graph, a functional model of its layers.

    A Sequential built by `fit` or `build` (no `keras.Input` first) has no
    symbolic input, so nothing can be cut out of it (its features) nor
    called on a new input. The functional model returned holds copies of
    its layers with the same weights, and takes any batch size.

    Example:

    >>> import keras
    >>> from keras_mixkd.saving import as_graph_model
    >>> model = keras.Sequential([keras.layers.Dense(3)])
    >>> model.build((8, 4))
    >>> as_graph_model(model).input_shape
    (None, 4)
    """
    import keras

    if not isinstance(model, keras.Sequential):
        return model
    try:
        model.input  # noqa: B018  (raises when the model was never called on a symbolic input)
        return model
    except (AttributeError, ValueError):
        pass
    if not model.built:
        raise ValueError(f"The Sequential model {model.name!r} was never built: it has no weights to load into.")
    inputs = keras.Input(shape=tuple(model.input_shape[1:]), name="images")
    outputs = inputs
    for layer in model.layers:
        # A copy of each layer: the Sequential's own already belong to its inner graph,
        # where a layer's `input` (what a feature extractor cuts at) would point.
        copy = layer.__class__.from_config(layer.get_config())
        outputs = copy(outputs)
        copy.set_weights(layer.get_weights())
    return keras.Model(inputs, outputs, name=model.name)


def _part_of(model, part, path):
    import keras

    students = getattr(model, "students", None)
    if isinstance(students, dict) and isinstance(getattr(model, "teacher", None), keras.Model):
        if part == "student" and len(students) != 1:
            raise ValueError(f"{path} holds a SharedTeacherDistiller of {len(students)} students "
                             f"({', '.join(students)}); load it with part='distiller' and pick one of "
                             "`.students`.")
        return {"student": next(iter(students.values()), None), "teacher": model.teacher}.get(part, model)
    student, teacher = getattr(model, "student", None), getattr(model, "teacher", None)
    if not (isinstance(student, keras.Model) and isinstance(teacher, keras.Model)):
        return model
    return {"student": student, "teacher": teacher}.get(part, model)


def _replay_warnings(caught, model):
    """Warn again of what Keras said while loading, leaving out the frozen teacher's optimizer slots."""
    teacher = getattr(model, "teacher", None)
    teacher_optimizer = getattr(teacher, "optimizer", None) if teacher is not None else None
    for message in caught:
        match = _SKIPPED_OPTIMIZER.search(str(message.message))
        if match and teacher_optimizer is not None and not teacher.trainable \
                and match.group(1) == teacher_optimizer.name \
                and int(match.group(2)) == len(teacher_optimizer.variables):
            continue  # the teacher's own training state: a Distiller never trains its teacher
        warnings.warn_explicit(message.message, message.category, message.filename, message.lineno)
