"""Run names that leave the runs folder, devices that are not there, batches that do not split, a quiet `list`."""

import os
import subprocess
import sys

import keras
import pytest

from keras_mixkd.distribute import check_batch_size
from keras_mixkd.startup import imports_tensorflow
from keras_mixkd.study.run_folder import run_folder_path
from tests.helpers import run_cli
from tests.helpers import tiny_config
from tests.helpers import tiny_study_argv

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.backend_independent
@pytest.mark.parametrize("name", ["../../escaped", "..", ".", "a/b", "/tmp/elsewhere", "", "  "])
def test_a_run_name_must_be_a_plain_folder_name(name):
    with pytest.raises(ValueError, match="is not a plain folder name: a run lives in a folder of its own"):
        run_folder_path("runs", name)
    assert run_folder_path("runs", "digits-smoke") == os.path.join("runs", "digits-smoke")


@pytest.mark.backend_independent
@pytest.mark.parametrize("dry_run", [False, True])
def test_the_study_command_refuses_a_name_that_escapes_the_runs_folder(tmp_path, capsys, dry_run):
    runs = tmp_path / "a" / "runs"
    status, _, err = run_cli(capsys, *tiny_study_argv(), "--runs-dir", str(runs), "--name", "../../escaped",
                             *(["--dry-run"] if dry_run else []))
    assert status == 2
    assert err.startswith("keras-mixkd study: error: Run name '../../escaped' is not a plain folder name")
    assert len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "escaped") and not os.path.exists(runs)


@pytest.mark.backend_independent
def test_a_batch_that_does_not_split_over_the_devices_is_refused():
    check_batch_size(64, 2)
    check_batch_size(63, 1)
    with pytest.raises(ValueError, match=r"^the batch size 64 does not divide by 3 devices: .* \(e\.g\. 63 or 66"):
        check_batch_size(64, 3)
    with pytest.raises(ValueError, match=r"\(e\.g\. 2: "):
        check_batch_size(1, 2)


@pytest.mark.backend_independent
def test_a_study_refuses_a_batch_that_does_not_split_before_anything_is_written(tmp_path):
    from keras_mixkd.study import RunOptions
    from keras_mixkd.study import run_study

    config = tiny_config(**{"data.batch_size": 64})
    with pytest.raises(ValueError, match=r"The batch size \(data\.batch_size\) 64 does not divide by 3 devices"):
        run_study(config, runs_dir=str(tmp_path), name="three", options=RunOptions(verbose=0, devices=3),
                  print_fn=lambda *_: None)
    assert not os.listdir(tmp_path)


def test_devices_beyond_the_real_accelerators_are_refused(tmp_path, capsys):
    output = str(tmp_path / "teacher.keras")
    status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", "--output", output,
                             "--devices", "2", "--epochs", "1")
    assert status == 2 and len(err.strip().splitlines()) == 1
    if BACKEND == "torch":
        assert "not available on the PyTorch backend" in err
    else:
        assert (f"keras-mixkd train-teacher: error: --devices 2 needs 2 accelerators, but the {BACKEND} backend "
                "sees none (this machine trains on its CPU). Use --devices 1, or add --virtual-devices") in err
    assert not os.path.exists(output)


@pytest.mark.skipif(BACKEND == "torch", reason="PyTorch refuses several devices (test_distribute)")
def test_virtual_devices_with_a_batch_that_does_not_split_give_one_line(tmp_path):
    """`--devices 3 --virtual-devices` with batch 64 (a fresh process: the devices are fixed at the backend's
    start). JAX's raw sharding error was the user's line; TensorFlow's start-up chatter came with it, as
    asking TensorFlow for the devices imported it unfiltered."""
    output = str(tmp_path / "teacher.keras")
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-m", "keras_mixkd.cli", "train-teacher", "--model", "digits_cnn_small",
                           "--output", output, "--epochs", "1", "--devices", "3", "--virtual-devices"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("note: ")]  # the epochs' note
    assert len(lines) == 1 and lines[0].startswith(
        "keras-mixkd train-teacher: error: The batch size (data.batch_size) 64 does not divide by 3 devices"), lines
    assert not os.path.exists(output)


@pytest.mark.backend_independent
def test_list_prints_no_tensorflow_start_up_chatter():
    assert imports_tensorflow("list", "models") and imports_tensorflow("study")
    assert not imports_tensorflow("list", "recipes") and not imports_tensorflow("report")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(KERAS_BACKEND="tensorflow", PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-m", "keras_mixkd.cli", "list", "models"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0 and "digits_cnn_small" in done.stdout
    assert done.stderr == "", done.stderr


@pytest.mark.skipif(BACKEND != "jax", reason="XLA_FLAGS are read by JAX")
def test_virtual_devices_survive_the_one_thread_flags_of_threads_1(tmp_path):
    """`--threads 1` adds XLA's one-thread flags, one of them without "--"; XLA stops reading at it, so
    the device count requested after it was lost (a fresh process: JAX reads XLA_FLAGS at its start)."""
    from keras_mixkd.study.executors.threads import thread_environment

    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT,
               XLA_FLAGS=thread_environment(1, "jax")["XLA_FLAGS"])
    script = ("from keras_mixkd.distribute import request_cpu_devices\n"
              "request_cpu_devices(3)\n"
              "import jax\n"
              "print(jax.device_count('cpu'))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "3"
