"""`StudentRecorder`: the `EpochRecorder` of one student of a `SharedTeacherDistiller`."""

from keras_mixkd.study.epoch_recorder import EpochRecorder


class StudentRecorder(EpochRecorder):
    """An `EpochRecorder` measuring one student of a group (`model.students[name]`).

    Everything else is `EpochRecorder`'s: its history file, the validation and
    test numbers and class-discrimination of each epoch, the teacher's
    class-discrimination (the group's teacher). Give it the student's own
    logs through `keras_mixkd.study.student_callbacks.StudentCallbacks`, which
    also keeps the numbers it adds out of the other students' logs.

    Arguments:
        name: the student's name in the group.
        *args, **kwargs: those of `EpochRecorder`.

    Example:

    >>> recorder = StudentRecorder("s0", "s0/history.json", (x_val, y_val), (x_test, y_test))
    >>> group.fit(train, epochs=10, callbacks=[StudentCallbacks("s0", ["loss", "accuracy"], [recorder])])
    """

    def __init__(self, name, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.student_name = name

    def _evaluated(self):
        return self.model.students[self.student_name]
