"""Helpers the test files share: the command line in this process, and the tiny study's settings.

Fixtures live in `tests/conftest.py`; plain functions and constants live here so
that test files can import them by name.
"""

import keras

from keras_mixkd import cli

BACKEND = keras.backend.backend()

# The smallest study that still exercises what the tests look at: two batches of
# digits, two epochs, a backup every epoch. Tests add their own grid on top. Two
# whole batches (the recipe's batch size is 64) give one shape of training step,
# so JAX compiles it once and TensorFlow traces it once (96 examples, a batch of 64
# and one of 32: the tiny study's cells took 14 % more CPU under JAX).
TINY_SETTINGS = {
    "data.train_examples": 128,
    "data.test_examples": 64,
    "teacher.epochs": 2,
    "student.epochs": 2,
    "backup_interval_seconds": 0.0,
}

# Partial mixup at T = 1 on half of every batch: the distillation recipe of most tiny studies.
PMU = {"name": "pmu", "temperature": 1.0, "augmentation": "partial_mixup",
       "augmentation_options": {"partial_mixup": {"fraction": 0.5}}}


def tiny_config(**overrides):
    """The digits recipe at its smoke scale with `TINY_SETTINGS`, then `overrides` (dotted keys).

    Example:

    >>> config = tiny_config(**{"teacher.augmentations": ["none"]})
    """
    from keras_mixkd.study import load_recipe

    return load_recipe("digits", smoke=True, overrides={**TINY_SETTINGS, **overrides})


def tiny_study_argv(*extra, train_examples=64, test_examples=32, teacher_epochs=2, student_epochs=2):
    """`keras-mixkd study` arguments of a tiny smoke study, quiet, without report; `extra` appended."""
    return ["study", "--smoke", "--teacher-epochs", str(teacher_epochs), "--student-epochs", str(student_epochs),
            "--set", f"data.train_examples={train_examples}", "--set", f"data.test_examples={test_examples}",
            "--set", "backup_interval_seconds=0", "--verbose", "0", "--no-report", *extra]


def run_cli(capsys, *argv):
    """`keras-mixkd argv` in this process: (exit status, stdout, stderr).

    The same code as the installed command, without a second start of Keras;
    tests that need a fresh process (a kill, a backend chosen at start-up)
    start one themselves.
    """
    try:
        status = cli.main(list(argv))
    except SystemExit as exit_:  # argparse's --help and usage errors
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def run_cli_ok(capsys, *argv):
    """`run_cli` for a command that must succeed: its stdout, after checking the exit status is 0."""
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    return out


def compiled_call(model, x, training=False):
    """`model(x, training=training)`'s outputs, computed as one compiled program under JAX.

    An eager call under JAX compiles and runs each operation on its own: a zoo model's
    call is hundreds of compiles, where one jitted call of the whole model is one. For
    tests that compare a model's outputs within a tolerance, or that need other numbers
    than another call's. Other backends: the call itself. Unlike the call, it leaves
    the model's state (BatchNormalization's moving statistics) as it was.

    Example:

    >>> outputs = compiled_call(model, images, training=True)
    """
    if keras.backend.backend() != "jax":
        return model(x, training=training)
    import jax

    def call(trainable, non_trainable, inputs):
        return model.stateless_call(trainable, non_trainable, inputs, training=training)[0]

    return jax.jit(call)([v.value for v in model.trainable_variables],
                         [v.value for v in model.non_trainable_variables], x)
