"""`ResumableBackup`: Keras's BackupAndRestore, made safe against a kill at any moment."""

import glob
import json
import os
import time

import keras

from keras_mixkd.study import atomic


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backup is never half-written.

    Keras's callback overwrites one weights file and then its metadata in
    place, so a process killed while writing can leave a truncated weights
    file, or weights of epoch `e + 1` beside metadata saying `e`. This
    subclass writes each epoch's weights (model and optimizer state) to a new
    file named by the epoch, atomically, then atomically points the metadata
    at it, then deletes the older file. Whatever moment the process dies, the
    metadata names a complete weights file of the epoch it records.

    Resuming restores the weights and optimizer state of the last finished
    epoch and continues from the next epoch; the data order of the resumed
    epochs is not the one an uninterrupted run would have drawn.

    With `min_interval` seconds, an epoch is backed up only when that long has
    passed since the last backup (and the last epoch always is): on small data
    an epoch takes less time than writing the backup, and a kill then costs
    at most `min_interval` seconds of training.

    The backup is kept after training (`delete_checkpoint=False`), so a
    process killed between the end of `fit` and the saving of its results
    does not retrain; the study runner deletes the folder once the cell's
    result is on disk.

    Arguments:
        backup_dir: folder of the backup (one per training run).
        min_interval: least number of seconds between two backups (0: every epoch).

    Example:

    >>> model.fit(data, epochs=10, callbacks=[ResumableBackup("runs/x/backup")])
    """

    def __init__(self, backup_dir, min_interval=0.0):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=False,
                         double_checkpoint=False)
        self.min_interval = float(min_interval)
        self._last_save = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._last_save = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        last = epoch + 1 >= (self.params or {}).get("epochs", epoch + 1)
        if last or time.monotonic() - self._last_save >= self.min_interval:
            self._save_model()
            self._last_save = time.monotonic()

    @property
    def resume_epoch(self):
        """The epoch training will continue from (0 when there is no backup)."""
        metadata = self._read_metadata()
        return int(metadata["epoch"]) if metadata else 0

    def _read_metadata(self):
        if not os.path.exists(self._training_metadata_path):
            return None
        with open(self._training_metadata_path, encoding="utf-8") as f:
            return json.load(f)

    def _load_model(self):
        metadata = self._read_metadata()
        if metadata is None:
            return
        if not self.model.built:
            raise ValueError(f"Cannot restore {self.backup_dir}: the model is not built.")
        weights = os.path.join(self.backup_dir, metadata["weights"])
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)
        self.model._initial_epoch = int(metadata["epoch"])

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{self._current_epoch}.weights.h5"
        with atomic.atomic_path(os.path.join(self.backup_dir, name), suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp, overwrite=True)
        atomic.write_json(self._training_metadata_path,
                          {"epoch": self._current_epoch, "batch": 0, "weights": name})
        for old in glob.glob(os.path.join(self.backup_dir, "epoch-*.weights.h5")):
            if os.path.basename(old) != name:
                os.remove(old)
