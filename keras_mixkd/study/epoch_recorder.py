"""`EpochRecorder`: every epoch's logs on disk, kept exactly once across restarts."""

import math
import os

import keras

from keras_mixkd.study import atomic


class EpochRecorder(keras.callbacks.Callback):
    """Write the history of a run to a JSON file at every epoch's end, atomically.

    `keras.callbacks.CSVLogger(append=True)` would repeat or lose rows when a
    run is killed between it and the backup and then resumed; this callback
    instead drops, when an epoch begins, the records of that epoch and later
    ones (they are about to be run again), so each epoch appears once. Place
    it after the callbacks that add to the logs (`LatentMeasures`) and before
    `ResumableBackup`.

    Arguments:
        path: JSON file of the history: a list of dicts, one per epoch, each
            with "epoch" (1-based) and the epoch's logs. NaN becomes null.

    Example:

    >>> callbacks = [LatentMeasures(x_val, y_val, prefix="val_"),
    ...              EpochRecorder("history.json"), ResumableBackup("backup")]
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.history = []

    def on_train_begin(self, logs=None):
        self.history = atomic.read_json(self.path) if os.path.exists(self.path) else []

    def on_epoch_begin(self, epoch, logs=None):
        # After a restart, epochs from `epoch` (0-based) on run again: drop their old records.
        self.history = [row for row in self.history if row["epoch"] <= epoch]

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        for key, value in (logs or {}).items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            row[key] = value if math.isfinite(value) else None
        self.history.append(row)
        atomic.write_json(self.path, self.history)
