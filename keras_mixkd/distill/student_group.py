"""Checks of a `Distiller` that trains several students: names, members, shared state, optimizer.

Module-level functions, so `distiller.py` holds the training logic only.
"""

import keras

from keras_mixkd.distill.model_info import output_width

# Keras arguments of `Model.__init__` a Distiller passes on; never a student's loss option.
MODEL_KWARGS = ("name", "dtype", "trainable")


def check_student_name(name):
    """Refuse a student name that cannot prefix its logs."""
    if not isinstance(name, str) or not name or name != name.strip() or "/" in name:
        raise ValueError(
            "Each student's name must be a non-empty string without '/' or surrounding "
            f"spaces (it prefixes the student's logs); got {name!r}."
        )


def check_students_dict(students):
    """Refuse `students` that is not a non-empty dict name -> student."""
    if not isinstance(students, dict):
        raise TypeError(
            "`students` must be a dict name -> student (a keras.Model, a pair (model, "
            f"Distiller kwargs) or a Distiller); got {type(students).__name__}."
        )
    if not students:
        raise ValueError("`students` is empty: give at least one student.")


def member_model_and_options(teacher, name, entry, distiller_class):
    """`(model, options)` of one entry of `students`, or `(None, None)` for a ready `Distiller`.

    `entry` is a `keras.Model`, a pair `(model, dict of Distiller
    arguments)`, or a `distiller_class` instance distilling from `teacher`.
    """
    if isinstance(entry, distiller_class):
        if entry.teacher is not teacher:
            raise ValueError(
                f"Student {name!r}: its Distiller distils from {entry.teacher.name!r}, not "
                f"from the shared teacher {teacher.name!r}. Build it as Distiller(teacher, "
                "student, ...) with the group's teacher, or give (student, kwargs)."
            )
        return None, None
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
    for forbidden in ("teacher", "student", "students"):
        if forbidden in options:
            raise ValueError(
                f"Student {name!r}: its Distiller arguments may not hold {forbidden!r} "
                "(the group gives the shared teacher and the student itself)."
            )
    teacher_classes, student_classes = output_width(teacher), output_width(model)
    if None not in (teacher_classes, student_classes) and teacher_classes != student_classes:
        raise ValueError(
            f"Student {name!r} outputs {student_classes} logits, the shared teacher "
            f"{teacher.name!r} {teacher_classes}: every student must predict the teacher's "
            "classes."
        )
    return model, dict(options)


def check_disjoint(members):
    """Students may share neither a model nor a variable: each gradient must be its own."""
    owners = {}
    for name, member in members.items():
        for variable in member.student.variables:
            other = owners.setdefault(id(variable), name)
            if other != name:
                raise ValueError(
                    f"Students {other!r} and {name!r} share the variable "
                    f"{variable.path!r} (the same model or layer twice): each student "
                    "must be its own model."
                )


def check_log_keys(members):
    """Refuse students whose prefixed log keys would collide."""
    seen = {}
    for name, member in members.items():
        for key in ["loss"] + list(member.loss_trackers()):
            log_key = f"{name}_{key}"
            if log_key in seen:
                raise ValueError(
                    f"Students {seen[log_key]!r} and {name!r} would both log {log_key!r}; "
                    "rename one of them."
                )
            seen[log_key] = name


def check_one_teacher_reading(members):
    """All students must read the shared teacher the same way (logits or probabilities)."""
    outputs = {member.teacher_outputs for member in members.values()}
    if len(outputs) > 1:
        raise ValueError(
            "The students read the shared teacher differently: teacher_outputs "
            f"{ {name: m.teacher_outputs for name, m in members.items()} }; one teacher "
            "outputs either logits or probabilities."
        )


def check_group_compile(owner, optimizer, kwargs):
    """Refuse `compile` arguments of a several-student Distiller that break per-student equivalence."""
    for key in ("metrics", "weighted_metrics", "loss_weights"):
        if kwargs.get(key) is not None:
            raise ValueError(
                f"{owner}.compile() takes no `{key}` with several students: each student logs "
                f"its accuracy, losses and teacher agreement as '<name>_<metric>'; got "
                f"{key}={kwargs[key]!r}."
            )
    if isinstance(optimizer, (dict, list, tuple)):
        raise TypeError(
            f"{owner}.compile() takes one optimizer for all students (per-variable updates "
            f"make it equal to one per student); got {type(optimizer).__name__}. Students "
            "that need different optimizers train in their own Distillers."
        )


def optimizer_problem(optimizer):
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
