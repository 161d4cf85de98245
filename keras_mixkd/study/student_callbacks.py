"""`StudentCallbacks`: callbacks of one student of a group, seeing that student's logs only."""

import keras


class StudentCallbacks(keras.callbacks.Callback):
    """Callbacks of one student of a `SharedTeacherDistiller`, each epoch's logs seen as that student's alone.

    A group logs `loss` (the sum) and, per student `name`, `name_loss`,
    `name_accuracy`, ...; the callbacks given here see `loss`, `accuracy`, ...
    (what the student's `Distiller` logs when it trains alone), in one dict
    per epoch passed through them in order: a `CSVLogger` after the student's
    `StudentRecorder` sees the validation and test numbers the recorder adds,
    as in a cell run alone, and they never reach the other students' logs.

    Arguments:
        name: the student's name in the group.
        keys: the student's log keys without its prefix (e.g. `["loss",
            "accuracy"]`); others are left out.
        callbacks: the student's callbacks, in order.

    Example:

    >>> recorder = StudentRecorder("s0", "s0/history.json", (x_val, y_val), (x_test, y_test))
    >>> member = StudentCallbacks("s0", ["loss", "accuracy"], [recorder, keras.callbacks.CSVLogger("s0.csv")])
    >>> group.fit(train, epochs=10, callbacks=[member])
    """

    def __init__(self, name, keys, callbacks):
        super().__init__()
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a student's name in the group (a non-empty str); got {name!r}.")
        self.student_name = name
        self.keys = list(keys)
        self.callbacks = list(callbacks)

    def set_model(self, model):
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)

    def _view(self, logs):
        logs = logs or {}
        prefixed = ((key, f"{self.student_name}_{key}") for key in self.keys)
        return {key: logs[full] for key, full in prefixed if full in logs}

    def on_train_begin(self, logs=None):
        for callback in self.callbacks:
            callback.on_train_begin(self._view(logs))

    def on_epoch_begin(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, self._view(logs))

    def on_epoch_end(self, epoch, logs=None):
        view = self._view(logs)
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, view)

    def on_train_end(self, logs=None):
        for callback in self.callbacks:
            callback.on_train_end(self._view(logs))
