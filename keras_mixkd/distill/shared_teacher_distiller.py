"""`SharedTeacherDistiller`: the former name of a `Distiller` of several students."""

import warnings

from keras_mixkd.distill.distiller import Distiller


class SharedTeacherDistiller(Distiller):
    """Deprecated alias: `SharedTeacherDistiller(teacher, students)` is `Distiller(teacher, students=students)`.

    Kept so that code written before the `Distiller` took several students
    still runs; it warns once per construction. See `Distiller` for the
    arguments, logs and checks.

    Arguments:
        teacher: The shared, frozen teacher.
        students: A dict name -> student (see `Distiller`'s `students`).
        **kwargs: Passed to `Distiller` (e.g. `name`).

    Example:

    ```python
    group = keras_mixkd.Distiller(teacher, students={"kd_t4": student_a, "kd_t1": (student_b, {"temperature": 1.0})})
    ```
    """

    def __init__(self, teacher, students, **kwargs):
        warnings.warn(
            "SharedTeacherDistiller(teacher, students) is deprecated: use "
            "keras_mixkd.Distiller(teacher, students=students), which is the same model.",
            DeprecationWarning, stacklevel=2)
        super().__init__(teacher, students=students, **kwargs)
