"""`EpochRecorder`: validation/test numbers of every epoch, on disk, once each across restarts."""

import math
import os

import keras
import numpy as np

from keras_mixkd._checks import NonFiniteLossError
from keras_mixkd._checks import diverged_message
from keras_mixkd.study import atomic
from keras_mixkd.study import fixed_cost


class EpochRecorder(keras.callbacks.Callback):
    """Measure the held-out splits at each epoch's end and keep the history on disk.

    At the end of every epoch it runs the evaluated model (the student of a
    distiller, else the model itself) on the validation and test splits and
    adds to the epoch's logs `val_accuracy`, `test_accuracy` and, every
    `cd_every` epochs, `val_class_discrimination` (class-discrimination of
    the penultimate features, `keras_mixkd.metrics.class_discrimination`);
    for a distiller it adds the teacher's `val_teacher_class_discrimination`
    (measured once). Then it writes the whole history so far to `path`
    atomically. The best epoch of a study is chosen on `val_accuracy`; the
    test split is only recorded.

    Without a validation split (`validation=None`: training on the whole
    training split) there is no `val_accuracy`, and the per-epoch
    class-discrimination is measured only when asked on the test split
    (`measure_split="test"`, keys `test_class_discrimination` and
    `test_teacher_class_discrimination`); it never chooses an epoch.

    The models run through `predict_on_batch` on chunks: a compiled step
    without `predict`'s per-call data-adapter set-up, which on a few hundred
    examples costs ten times the forward pass on TensorFlow.

    `keras.callbacks.CSVLogger(append=True)` would repeat or lose rows when a
    run is killed between it and the backup and then resumed. This callback
    drops, when an epoch begins, the records of that epoch and later ones
    (they are about to be run again), so each epoch appears once. Put it
    before `ResumableBackup` in the callback list.

    Arguments:
        path: JSON file of the history: a list of dicts, one per epoch, each
            with "epoch" (1-based) and the epoch's logs (NaN written as null).
        validation, test: `(images, labels)` NumPy pairs, images normalised
            as the model expects; `validation` may be None (no validation split).
        cd_every: measure class-discrimination every this many epochs (0: never).
        max_cd_examples: at most this many examples of its split for it.
        chunk_size: examples per `predict_on_batch` call.
        measure_split: split of the per-epoch class-discrimination, "val"
            (none when `validation` is None) or "test".

    Example:

    >>> recorder = EpochRecorder("history.json", (x_val, y_val), (x_test, y_test))
    >>> distiller.fit(train, epochs=10, callbacks=[recorder, ResumableBackup("backup")])
    """

    def __init__(self, path, validation, test, cd_every=1, max_cd_examples=2000, chunk_size=512,
                 measure_split="val"):
        super().__init__()
        if measure_split not in ("val", "test"):
            raise ValueError(f"measure_split must be 'val' or 'test', got {measure_split!r}.")
        if validation is not None and len(validation[1]) == 0:
            validation = None
        self.measure_split = measure_split
        self.path = path
        self.validation = validation
        self.test = test
        self.cd_every = cd_every
        self.max_cd_examples = max_cd_examples
        self.chunk_size = chunk_size
        self.history = []
        self._runner = None
        self.teacher_runner = None
        self._teacher_cd = None
        self._joined = None  # validation then test images, for the one-pass evaluation

    def _evaluated(self):
        model = self.model
        return model.student if hasattr(model, "student") and hasattr(model, "teacher") else model

    def on_train_begin(self, logs=None):
        self.history = atomic.read_json(self.path) if os.path.exists(self.path) else []
        teacher = getattr(self.model, "teacher", None)
        if teacher is not None and self._measures_cd() and self._teacher_cd is None:
            x, y = self._cd_examples()
            self.teacher_runner = features_and_logits(teacher)
            features, _ = run_in_chunks(self.teacher_runner, x, self.chunk_size)
            self._teacher_cd = _class_discrimination(features, y)

    def on_epoch_begin(self, epoch, logs=None):
        # After a restart, epochs from `epoch` (0-based) on run again: drop their old records.
        self.history = [row for row in self.history if row["epoch"] <= epoch]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        outputs = {}
        if self.validation is not None and fixed_cost.enabled():
            # One pass over both splits: the same chunks, one compiled shape, fewer calls.
            if self._joined is None:
                self._joined = np.concatenate([np.asarray(self.validation[0]), np.asarray(self.test[0])])
            both = run_in_chunks(self.runner, self._joined, self.chunk_size)
            n = len(self.validation[0])
            outputs["val"] = [part[:n] for part in both]
            outputs["test"] = [part[n:] for part in both]
        else:
            if self.validation is not None:
                outputs["val"] = run_in_chunks(self.runner, self.validation[0], self.chunk_size)
            outputs["test"] = run_in_chunks(self.runner, self.test[0], self.chunk_size)
        for _, logits in outputs.values():
            if not np.isfinite(logits).all():  # the epoch's last update diverged
                raise NonFiniteLossError(diverged_message(epoch + 1))
        if self.validation is not None:
            logs["val_accuracy"] = _accuracy(outputs["val"][1], self.validation[1])
        measure_cd = self._measures_cd() and (
            (epoch + 1) % self.cd_every == 0 or epoch + 1 == self.params.get("epochs"))
        if measure_cd:
            split = self.measure_split
            n = self.max_cd_examples
            labels = (self.validation if split == "val" else self.test)[1]
            logs[f"{split}_class_discrimination"] = _class_discrimination(outputs[split][0][:n], labels[:n])
            if self._teacher_cd is not None:
                logs[f"{split}_teacher_class_discrimination"] = self._teacher_cd
        logs["test_accuracy"] = _accuracy(outputs["test"][1], self.test[1])
        row = {"epoch": epoch + 1}
        for key, value in logs.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            row[key] = value if math.isfinite(value) else None
        self.history.append(row)
        atomic.write_json(self.path, self.history)

    @property
    def runner(self):
        """The `features_and_logits` model of the evaluated model (built once)."""
        if self._runner is None:
            self._runner = features_and_logits(self._evaluated())
        return self._runner

    def _measures_cd(self):
        """Whether class-discrimination is measured at all (a split to measure it on, and `cd_every`)."""
        return bool(self.cd_every) and (self.measure_split == "test" or self.validation is not None)

    def _cd_examples(self):
        x, y = self.validation if self.measure_split == "val" else self.test
        return x[: self.max_cd_examples], y[: self.max_cd_examples]


def features_and_logits(model):
    """A model returning `[features, logits]` of `model`, sharing its weights.

    The features are those of `keras_mixkd.metrics.feature_extractor` (the
    layer "features" of every zoo model).
    """
    from keras_mixkd.metrics import feature_extractor

    extractor = feature_extractor(model)
    return keras.Model(model.input, [extractor.outputs[0], model.outputs[0]])


def run_in_chunks(model, x, chunk_size=512, pad_short=None):
    """`predict_on_batch` over chunks of one fixed size; outputs concatenated as NumPy.

    The last chunk is padded (with its own first rows) to the common size, so
    a compiled backend (JAX, TensorFlow) compiles one shape only; the padded
    rows are dropped. Inference-mode models treat rows independently.

    `pad_short`: also pad an `x` shorter than `chunk_size` up to it, so
    splits of different sizes share one compiled shape (default: on, unless
    the fixed-cost cuts are off, `keras_mixkd.study.fixed_cost.cuts(False)`);
    off, such an `x` is one chunk of its own length.
    """
    x = np.asarray(x)
    if pad_short is None:
        pad_short = fixed_cost.enabled()
    size = chunk_size if pad_short and len(x) else min(chunk_size, len(x))
    outputs = None
    replicated = _replicas_in_sync() > 1
    for start in range(0, len(x), size):
        chunk = x[start:start + size]
        real = len(chunk)
        if real < size:
            chunk = np.concatenate([chunk, np.resize(chunk, (size - real,) + chunk.shape[1:])])
        # Under a multi-replica tf.distribute strategy, Keras 3.15's predict_on_batch
        # runs the whole chunk on every replica and repeats its rows; predict splits it.
        result = (model.predict(chunk, batch_size=len(chunk), verbose=0) if replicated
                  else model.predict_on_batch(chunk))
        result = result if isinstance(result, (list, tuple)) else [result]
        result = [np.asarray(keras.ops.convert_to_numpy(r))[:real] for r in result]
        outputs = [[r] for r in result] if outputs is None else [o + [r] for o, r in zip(outputs, result)]
    return [np.concatenate(parts) for parts in outputs]


def _replicas_in_sync():
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))


def _class_discrimination(features, labels):
    from keras_mixkd.metrics import class_discrimination

    return float(class_discrimination(features, labels))
