"""Data parallelism: 2 devices give the numbers of 1 device for the same global batch.

Virtual CPU devices must exist before the backend starts, so the comparison
runs in one child process per backend (JAX: XLA_FLAGS; TensorFlow: logical
CPU devices). PyTorch refuses several devices; that refusal is tested here.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_mixkd import cli
from keras_mixkd.distribute import data_parallel
from tests.helpers import tiny_study_argv

BACKEND = keras.backend.backend()

# Trains the same teacher (plain fit) and the same distillation on 1 and on
# 2 devices from the same initial weights, then runs a study through the command
# line on the 2 devices, and prints what each logged and the study's exit status.
WORKER = textwrap.dedent(
    """
    import json
    from keras_mixkd.distribute import request_cpu_devices
    request_cpu_devices(2)  # Before the backend starts.

    import keras
    import numpy as np
    from keras_mixkd.distill.distiller import Distiller
    from keras_mixkd.distribute import data_parallel
    from keras_mixkd.models import get_model

    SHAPE, CLASSES = (8, 8, 1), 10
    rng = np.random.default_rng(0)
    x = rng.random((32,) + SHAPE, dtype=np.float32)
    y = rng.integers(0, CLASSES, 32)
    soft = rng.dirichlet(np.ones(CLASSES), 32).astype("float32")
    keras.utils.set_random_seed(0)
    # The teacher has batch norm (frozen: inference statistics); the students
    # have none, so per-replica batch statistics play no part (see ship.md).
    initial = {name: get_model(name, CLASSES, SHAPE).get_weights()
               for name in ("digits_cnn", "digits_cnn_small")}

    def model(name):
        built = get_model(name, CLASSES, SHAPE)
        built.set_weights(initial[name])
        return built

    def run(devices):
        out = {}
        with data_parallel(devices) as scope:
            out["devices"] = scope.num_devices
            out["engine"] = type(scope.engine).__name__
            teacher = model("digits_cnn_small")
            teacher.compile(optimizer=keras.optimizers.SGD(0.1),
                            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                            metrics=["accuracy"])
            history = teacher.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
            out["teacher_history"] = history.history
            out["teacher_weights"] = [w.tolist() for w in teacher.get_weights()]
            # Distillation on soft (MixUp-like) labels, the library's main case.
            distiller = Distiller(model("digits_cnn"), model("digits_cnn_small"),
                                  student_loss_weight=0.5, temperature=4.0)
            distiller.compile(optimizer=keras.optimizers.SGD(0.1))
            history = distiller.fit(x, soft, batch_size=8, epochs=2, shuffle=False, verbose=0)
            out["soft_history"] = history.history
            # Metrics are summed over replicas in test_step too.
            out["evaluate"] = distiller.evaluate(x, soft, batch_size=8, verbose=0,
                                                 return_dict=True)
            out["soft_weights"] = [w.tolist() for w in distiller.student.get_weights()]
        return out

    runs = {"one": run(1), "two": run(2)}
    # Then the study of the command line's arguments (given by the test) on these two devices.
    import sys
    from keras_mixkd import cli
    runs["study_status"] = cli.main(json.loads(sys.argv[1]))
    print(json.dumps(runs))
    """
)


def _max_abs_diff(a, b):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        return max(_max_abs_diff(a[key], b[key]) for key in a)
    if isinstance(a, list) and a and isinstance(a[0], list) and np.ndim(a[0]) != np.ndim(b[0]):
        raise AssertionError("structures differ")
    if isinstance(a, list) and a and not np.isscalar(a[0]):
        assert len(a) == len(b)
        return max(_max_abs_diff(u, v) for u, v in zip(a, b))
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# Both tests of two devices read one child process (`two_device_child`): its backend starts with two
# virtual CPU devices, and each start of Keras and its backend costs seconds. One pytest-xdist worker runs it.
uses_the_two_device_child = pytest.mark.xdist_group("two_device_child")


def two_device_study_argv(runs_dir):
    """The command line of the tiny study (TINY_STUDY) named "two" in `runs_dir`, on two virtual devices."""
    return [*TINY_STUDY, "--runs-dir", str(runs_dir), "--name", "two", "--devices", "2", "--virtual-devices"]


@pytest.fixture(scope="module")
def two_device_child(tmp_path_factory):
    """`(runs, run_dir, stderr)`: what WORKER printed, the folder of the tiny study (TINY_STUDY) it ran
    on two devices with `--devices 2 --virtual-devices`, and its error output. Not under PyTorch."""
    assert BACKEND != "torch"
    runs_dir = tmp_path_factory.mktemp("two_devices")
    argv = two_device_study_argv(runs_dir)
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run([sys.executable, "-c", WORKER, json.dumps(argv)], env=env, capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1]), runs_dir / "two", completed.stderr


@uses_the_two_device_child
def test_two_devices_match_one_device_for_the_same_global_batch(request):
    if BACKEND == "torch":  # Keras has no multi-device training for PyTorch: a clear refusal.
        with pytest.raises(ValueError, match="not available on the PyTorch backend.*jax or tensorflow"):
            data_parallel(2)
        with data_parallel(1) as scope:  # One device still works.
            assert scope.num_devices == 1 and scope.engine is None
        return
    runs, _, _ = request.getfixturevalue("two_device_child")
    one, two = runs["one"], runs["two"]
    assert one["devices"] == 1 and two["devices"] == 2
    assert two["engine"] == {"jax": "DataParallel", "tensorflow": "MirroredStrategy"}[BACKEND]
    for key in one:
        if key in ("devices", "engine"):
            continue
        assert _max_abs_diff(one[key], two[key]) <= 1e-5, (key, one[key], two[key])
    # The losses moved: the comparison is not between two untrained states.
    for name in ("teacher", "soft"):
        losses = one[f"{name}_history"]["loss"]
        assert losses[0] != losses[1] and np.all(np.isfinite(losses))
    assert set(one["soft_history"]) >= {
        "loss", "supervised_loss", "distillation_loss", "accuracy", "teacher_agreement"}


def test_cli_devices_option_refuses_what_it_cannot_do(tmp_path, capsys):
    output = str(tmp_path / "teacher.keras")
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tf.constant(0.0)  # TensorFlow is running: too late for virtual devices.
    # In this process the backend already runs on one CPU device (and PyTorch
    # has no multi-device training): a clear one-line error, nothing trained.
    status = cli.main(["train-teacher", "--model", "digits_cnn_small", "--output", output,
                       "--devices", "2", "--virtual-devices", "--epochs", "1"])
    assert status == 2
    error = capsys.readouterr().err
    expected = {"torch": "not available on the PyTorch backend",
                "jax": "must run before JAX is imported",
                "tensorflow": "must run before TensorFlow runs anything"}[BACKEND]
    assert expected in error
    assert not os.path.exists(output)
    assert cli.main(["train-teacher", "--model", "digits_cnn_small", "--output", output,
                     "--devices", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_one_device_changes_nothing():
    with data_parallel(None) as scope:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    assert scope.num_devices == 1 and scope.engine is None
    assert scope.backend == BACKEND


def test_bad_device_requests_are_refused():
    with pytest.raises(TypeError, match="number of devices"):
        data_parallel("2")
    with pytest.raises(TypeError, match="number of devices"):
        data_parallel(True)
    with pytest.raises(ValueError, match="at least 1"):
        data_parallel(0)
    with pytest.raises(ValueError, match="twice"):
        data_parallel(["cpu:0", "cpu:0"])
    if BACKEND != "torch":
        with pytest.raises(ValueError, match="64 devices asked for, but the .* backend sees"):
            data_parallel(64)
        with pytest.raises(ValueError, match="Unknown devices"):
            data_parallel(["cpu:0", "tpu:7"])


# A one-teacher, one-student study: the grid the crash tests use, smaller.
TINY_STUDY = tiny_study_argv("--set", 'teacher.augmentations=["mixup"]', "--set", 'distillation=[{name = "kd"}]',
                             "--set", "student.baseline=false", teacher_epochs=1, student_epochs=1)


def check_tiny_study_cells(cells):
    """Both cells of TINY_STUDY ran their epoch to a result."""
    assert sorted(cell["key"] for cell in cells) == [
        "student__digits_cnn_small__kd__from__digits_cnn__mixup__s0", "teacher__digits_cnn__mixup__s0"]
    for cell in cells:
        assert [row["epoch"] for row in cell["history"]] == [1] and cell["backend"] == BACKEND
        assert 0.0 <= cell["test_accuracy_last"] <= 1.0 and np.isfinite(cell["history"][0]["loss"])
        assert cell["history"][0]["test_accuracy"] == pytest.approx(cell["test_accuracy_last"])


@uses_the_two_device_child
def test_study_runs_every_cell_on_two_devices(tmp_path, capsys, request):
    """The study clears the session per cell, so it must enter the device scope per cell."""
    if BACKEND == "torch":
        assert cli.main(two_device_study_argv(tmp_path)) == 2
        assert "not available on the PyTorch backend" in capsys.readouterr().err
        assert not os.path.exists(tmp_path / "two")
        return
    # The command line's `--virtual-devices` in a fresh process, before the backend starts, is tested
    # by tests/test_run_guards.py; here the child's backend started with two devices already.
    runs, run_dir, stderr = request.getfixturevalue("two_device_child")
    assert runs["study_status"] == 0, stderr[-3000:]
    check_tiny_study_cells(json.load(open(run_dir / "results.json"))["cells"])


def test_study_trains_every_cell_under_mixed_precision(tmp_path, capsys):
    argv = [*TINY_STUDY, "--runs-dir", str(tmp_path), "--name", "bf16", "--precision", "mixed_bfloat16"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert keras.config.dtype_policy().name == "float32"  # The policy does not leak out of the study.
    student = keras.saving.load_model(
        tmp_path / "bf16" / "models" / "student__digits_cnn_small__kd__from__digits_cnn__mixup__s0.keras")
    assert student.get_layer("features").dtype_policy.name == "mixed_bfloat16"
    check_tiny_study_cells(json.load(open(tmp_path / "bf16" / "results.json"))["cells"])
