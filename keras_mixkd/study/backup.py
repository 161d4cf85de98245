"""`ResumableBackup`: Keras's BackupAndRestore, made safe against a kill at any moment."""

import glob
import json
import os
import time

import keras

from keras_mixkd.study import atomic


class ResumableBackup(keras.callbacks.Callback):
    """A backup of training, made at each epoch's end, that a kill at any moment leaves whole.

    Keras's `keras.callbacks.BackupAndRestore` overwrites one weights file
    and then its metadata in place, so a process killed while writing can
    leave a truncated weights file, or weights of epoch `e + 1` beside
    metadata saying `e`. This callback writes each epoch's weights (model and
    optimizer state) to a new file named by the epoch, atomically, then
    atomically points the metadata at it, then deletes the older file.
    Whatever moment the process dies, the metadata names a complete weights
    file of the epoch it records.

    Resuming takes Keras's public route: `fit(..., initial_epoch=backup.resume_epoch)`
    starts at the epoch after the last backed-up one, and this callback
    restores that epoch's weights and optimizer state when training begins.
    A `fit` that starts at another epoch while a backup exists is refused
    with a `ValueError` at its first epoch (it would train the restored
    weights again from an earlier epoch). The data order of the resumed
    epochs is not the one an uninterrupted run would have drawn.

    With `min_interval` seconds, an epoch is backed up only when that long has
    passed since the last backup (and the last epoch always is): on small data
    an epoch takes less time than writing the backup, and a kill then costs
    at most `min_interval` seconds of training.

    The backup is kept after training, so a process killed between the end
    of `fit` and the saving of its results does not retrain; the study runner
    deletes the folder once the cell's result is on disk.

    Arguments:
        backup_dir: folder of the backup (one per training run).
        min_interval: least number of seconds between two backups (0: every epoch).

    Example:

    >>> backup = ResumableBackup("runs/x/backup")
    >>> model.fit(data, epochs=10, initial_epoch=backup.resume_epoch, callbacks=[backup])
    """

    def __init__(self, backup_dir, min_interval=0.0):
        super().__init__()
        if not backup_dir:
            raise ValueError(f"ResumableBackup: backup_dir must be a folder path; received {backup_dir!r}.")
        self.backup_dir = backup_dir
        self.min_interval = float(min_interval)
        self._metadata_path = os.path.join(backup_dir, "training_metadata.json")
        self._last_save = None
        self._restored_epoch = 0
        self._first_epoch_checked = False

    @property
    def resume_epoch(self):
        """The epoch training will continue from (0 when there is no backup): `fit`'s `initial_epoch`."""
        metadata = self._read_metadata()
        return int(metadata["epoch"]) if metadata else 0

    def on_train_begin(self, logs=None):
        self._restored_epoch = self._restore()
        self._first_epoch_checked = False
        self._last_save = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch_checked:
            return
        self._first_epoch_checked = True
        if epoch != self._restored_epoch:
            raise ValueError(
                f"ResumableBackup restored epoch {self._restored_epoch} from {self.backup_dir}, but fit "
                f"started at epoch {epoch}: pass fit(..., initial_epoch=backup.resume_epoch).")

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 >= (self.params or {}).get("epochs", epoch + 1)
        if last or time.monotonic() - self._last_save >= self.min_interval:
            self._save(epoch + 1)
            self._last_save = time.monotonic()

    def _read_metadata(self):
        if not os.path.exists(self._metadata_path):
            return None
        with open(self._metadata_path, encoding="utf-8") as f:
            return json.load(f)

    def _restore(self):
        """Load the backed-up weights and optimizer state; returns their epoch (0: none)."""
        metadata = self._read_metadata()
        if metadata is None:
            return 0
        if not self.model.built:
            raise ValueError(f"Cannot restore {self.backup_dir}: the model is not built.")
        weights = os.path.join(self.backup_dir, metadata["weights"])
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)
        return int(metadata["epoch"])

    def _save(self, epoch):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{epoch}.weights.h5"
        with atomic.atomic_path(os.path.join(self.backup_dir, name), suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp, overwrite=True)
        atomic.write_json(self._metadata_path, {"epoch": epoch, "batch": 0, "weights": name})
        for old in glob.glob(os.path.join(self.backup_dir, "epoch-*.weights.h5")):
            if os.path.basename(old) != name:
                os.remove(old)
