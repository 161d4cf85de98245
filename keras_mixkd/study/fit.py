"""`fit_and_record`: the study's one `fit`, with a recorder, logs and a backup for each trained model."""

import dataclasses
import os

import keras

from keras_mixkd._checks import NonFiniteLossError
from keras_mixkd._checks import diverged_message
from keras_mixkd.study import fixed_cost
from keras_mixkd.study.backup import ResumableBackup
from keras_mixkd.study.epoch_recorder import EpochRecorder
from keras_mixkd.study.measuring import model_inputs
from keras_mixkd.study.student_callbacks import StudentCallbacks
from keras_mixkd.study.student_recorder import StudentRecorder


@dataclasses.dataclass(frozen=True)


class FitMember:
    """One model a `fit` trains, and where its history and logs go.

    Arguments:
        model: the model measured each epoch (a plain model, or a student).
        work_dir: folder of its `history.json`.
        log_dir: folder of its `history.csv` (and TensorBoard logs), or None.
        name: its name among the students of a `Distiller` of several
            students (its logs are prefixed with it); None for the model
            `fit` trains itself or a Distiller's only student.
    """

    model: keras.Model
    work_dir: str
    log_dir: str = None
    name: str = None


def fit_and_record(model, members, train_ds, splits, settings, backup_dir, options):
    """`model.fit` with the study's callbacks; returns one `EpochRecorder` per member.

    Each member gets an `EpochRecorder` (validation and test numbers of every
    epoch, `history.json` in its `work_dir`) and a `CSVLogger`; the run is
    backed up in `backup_dir/backup` (`ResumableBackup`): called again with
    the same folders, it continues after the last backed-up epoch. A run
    starting at epoch 1 drops the histories and CSV logs of an earlier,
    abandoned start. The first NaN batch stops it with a
    `NonFiniteLossError` (before an epoch's end could back up NaN weights).

    Arguments:
        model: a compiled, built `keras.Model` or `Distiller`.
        members: `FitMember`s: one for a plain model or a one-student
            Distiller, one per student (named) for several students.
        train_ds: the training `tf.data.Dataset` (it shuffles itself).
        splits: the `DatasetSplits` (its validation and test splits are measured).
        settings: the `TrainingSettings` (epochs, batch size, measures).
        backup_dir: folder of the run's backup.
        options: the `RunOptions` (verbosity, TensorBoard).

    Example:

    >>> recorders = fit_and_record(model, [FitMember(model, "work/t")], train_ds, splits, settings, "work/t",
    ...                            RunOptions(verbose=0))
    >>> recorders[0].history[-1]["test_accuracy"]
    """
    backup = ResumableBackup(os.path.join(backup_dir, "backup"), min_interval=settings.backup_interval)
    recorders, member_callbacks, trailing = [], [], []
    for member in members:
        os.makedirs(member.work_dir, exist_ok=True)
        history_path = os.path.join(member.work_dir, "history.json")
        if backup.resume_epoch == 0 and os.path.exists(history_path):
            # Left by an earlier start that cannot continue: this one starts at epoch 1, and so do the
            # history and the CSV log (which `log_callbacks` then starts anew).
            os.remove(history_path)
        validation = model_inputs(member.model, splits, "val") if len(splits.y_val) else None
        test = model_inputs(member.model, splits, "test")
        kwargs = {"cd_every": settings.measure["every"], "max_cd_examples": settings.measure["max_examples"],
                  "chunk_size": max(settings.batch_size, 256),
                  "measure_split": settings.measure.get("split", "val")}
        logs = log_callbacks(member.work_dir, member.log_dir, options.tensorboard)
        if member.name is None:
            recorder = EpochRecorder(history_path, validation, test, **kwargs)
            member_callbacks.append(recorder)
            trailing += logs
        else:
            # The student's own logs, unprefixed, through its recorder then its CSV log.
            recorder = StudentRecorder(member.name, history_path, validation, test, **kwargs)
            keys = ["loss"] + list(model.distillers[member.name].loss_trackers())
            member_callbacks.append(StudentCallbacks(member.name, keys, [recorder] + logs))
        recorders.append(recorder)
    # Each epoch is recorded before it is backed up (see `EpochRecorder`).
    stop_on_nan = keras.callbacks.TerminateOnNaN(raise_error=True)
    callbacks = [stop_on_nan, *member_callbacks, backup, *trailing]
    fixed_cost.prebuild_for_fit(model, train_ds)  # TensorFlow: one trace of the train step, not two
    try:
        # shuffle=False: the tf.data pipeline shuffles, seeded, itself.
        # The backup restores the weights; `initial_epoch` tells `fit` where it stopped.
        model.fit(train_ds, epochs=settings.epochs, initial_epoch=backup.resume_epoch, verbose=options.verbose,
                  shuffle=False, callbacks=callbacks)
    except RuntimeError as error:
        if "NaN or Inf loss" not in str(error):
            raise
        history = recorders[0].history
        epoch = (history[-1]["epoch"] if history else 0) + 1
        raise NonFiniteLossError(diverged_message(epoch)) from None
    return recorders


def log_callbacks(work_dir, log_dir, tensorboard):
    """`CSVLogger` (log_dir/history.csv) and, if asked, `TensorBoard` (log_dir/tensorboard).

    They come after the `EpochRecorder`, so the CSV and TensorBoard see the
    validation and test numbers it adds to each epoch's logs. A resumed run
    appends to the CSV; a run that starts again from epoch 1 starts a new one.
    """
    if log_dir is None:
        return []
    os.makedirs(log_dir, exist_ok=True)
    csv_path = os.path.join(log_dir, "history.csv")
    if not os.path.exists(os.path.join(work_dir, "history.json")) and os.path.exists(csv_path):
        os.remove(csv_path)  # rows of an earlier, abandoned start
    callbacks = [keras.callbacks.CSVLogger(csv_path, append=True)]
    if tensorboard:
        try:
            import tensorboard as _  # noqa: F401  keras.callbacks.TensorBoard writes through it
        except ImportError:
            raise ImportError("TensorBoard logs (tensorboard=True, --tensorboard) need the tensorboard "
                              "package: pip install tensorboard.") from None
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(log_dir, "tensorboard"), write_graph=False,
                                                     profile_batch=0))
    return callbacks
