"""The benchmark scripts run (`--smoke`), and their PyTorch reference matches the library.

No timing is asserted: speed is measured by `make bench`, not tested.
"""

import math
import os
import sys

import keras
import numpy as np
import pytest

from tests.conftest import BACKEND

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

import bench_cost  # noqa: E402
import bench_distill  # noqa: E402
import bench_memory  # noqa: E402
import bench_study  # noqa: E402
import run_all  # noqa: E402


def test_bench_distill_smoke_runs_ours_and_the_floor(capsys):
    # keras.distillation is left to `make bench`: its extra compiled step
    # would double this test's time under JAX. The eager PyTorch loop is cheap.
    contenders = "torch" if BACKEND == "torch" else ""
    results = bench_distill.main(["--smoke", "--contenders", contenders])
    (result,) = results
    expected = {"ours", "student_step", "teacher_inference", "floor"}
    if BACKEND == "torch":
        expected.add("torch")
    assert set(result["images_per_s"]) == expected
    assert all(math.isfinite(v) and v > 0 for v in result["images_per_s"].values())
    median = {name: t["median_s"] for name, t in result["timings"].items()}
    assert result["floor_s"] == pytest.approx(median["teacher_inference"] + median["student_step"])
    assert result["ours_over_floor_time"] == pytest.approx(median["ours"] / result["floor_s"])
    assert "resnet8:resnet8" in capsys.readouterr().out


def test_bench_memory_smoke_records_every_epoch():
    result = bench_memory.main(["--smoke"])
    assert len(result["epoch_rss_mib"]) == 5
    assert result["peak_rss_mib"] >= max(result["epoch_rss_mib"]) * 0.99
    assert result["growth_epoch5_over_epoch2"] == pytest.approx(
        result["epoch_rss_mib"][4] / result["epoch_rss_mib"][1] - 1
    )


def _fake_result(backend, ours, floor_parts, keras, torch):
    batch = 64
    timings = {
        "ours": ours,
        "keras": keras,
        "teacher_inference": floor_parts[0],
        "student_step": floor_parts[1],
        "torch": torch,
    }
    floor = sum(floor_parts)
    return {
        "backend": backend,
        "pair": "resnet56:resnet20",
        # Three rounds; the middle one slowed by other jobs, alike for all.
        "timings": {
            name: {"median_s": value, "times_s": [value, 3 * value, value]}
            for name, value in timings.items()
        },
        "images_per_s": {**{n: batch / v for n, v in timings.items()}, "floor": batch / floor},
        "ours_over_floor_time": ours / floor,
        "ours_over_keras_speed": keras / ours,
        "ours_over_torch_speed": torch / ours,
    }


def test_run_all_targets_say_met_or_missed():
    results = [
        # 1.04 x floor, faster than keras, 1.2 x torch: floor and keras met.
        _fake_result("tensorflow", 1.04, (0.4, 0.6), 1.10, 1.248),
        # 1.10 x floor, slower than keras: both missed; 1.6 x torch: best backend.
        _fake_result("jax", 1.10, (0.4, 0.6), 1.00, 1.76),
    ]
    _, targets = run_all.distill_table(results)
    assert targets[0].count("met") == 2 and "MISSED" not in targets[0]
    assert targets[1].count("MISSED") == 2
    assert "best backend (jax)" in targets[2] and "met (paired 1.60" in targets[2]


def test_torch_reference_matches_the_zoo_and_the_kd_formula():
    import torch
    import torch_reference

    from keras_mixkd.models import count_params_pytorch_style
    from keras_mixkd.models import get_model

    # resnet8x4 has every kind of shortcut: a projection in its first block
    # (32 -> 64 channels) and at each strided stage.
    for name in ("resnet8x4",):
        keras_count = count_params_pytorch_style(get_model(name, num_classes=100))
        assert torch_reference.count_params(torch_reference.get_torch_model(name)) == keras_count

    rng = np.random.default_rng(0)
    teacher, student = rng.normal(0, 3, (2, 6, 10))
    temperature = 4.0

    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    p_t = np.exp(log_softmax(teacher / temperature))
    expected = temperature**2 * np.mean(
        np.sum(p_t * (log_softmax(teacher / temperature) - log_softmax(student / temperature)), axis=1)
    )
    got = torch_reference.kd_loss(
        torch.tensor(student, dtype=torch.float64), torch.tensor(teacher, dtype=torch.float64), temperature
    )
    assert float(got) == pytest.approx(expected, rel=1e-10)

    step = torch_reference.TorchDistillStep("resnet8", "resnet8", num_classes=10)
    images, labels = torch_reference.random_batch(4, num_classes=10)
    assert math.isfinite(step(images, labels))


def test_study_b_torch_loss_is_the_library_standardized_loss():
    # torch_vs_plain compares our step with study B's plain loop: its loss must be ours.
    import torch

    from keras_mixkd import losses

    rng = np.random.default_rng(1)
    teacher, student = rng.normal(0, 3, (2, 6, 10)) + 40.0
    targets = rng.dirichlet(np.ones(10), 6)
    got = bench_study.mixstd_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(targets), 0.1)
    kd = np.mean(keras.ops.convert_to_numpy(losses.standardized_distillation(teacher, student)))
    scaled = student / student.std(axis=1, ddof=1, keepdims=True)
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    log_q = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
    supervised = -np.mean(np.sum(targets * log_q, axis=1))
    assert float(got) == pytest.approx(0.1 * supervised + 0.9 * kd, rel=1e-5)
    step = bench_study.StudyBTorchStep("resnet8", "resnet8", num_classes=10)
    images, labels = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    assert math.isfinite(step(images, labels))


@pytest.mark.slow
# Two smoke studies and three timing parts: tens of seconds a backend. What its numbers check (the
# speed-ups change round-off only) is tested on every backend by test_fixed_cost, test_study_groups
# and test_teacher_cache; here, that the script runs and reports every ratio.
@pytest.mark.one_backend
def test_bench_study_smoke_prints_every_ratio_as_json(capsys):
    import json

    summary = bench_study.main(["--smoke"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in bench_study.TARGETS:
        assert math.isfinite(last[key]) and last[key] > 0, key
        assert last[key] == pytest.approx(summary[key])
    demo = summary["parts"]["demo"]
    assert demo["cells"] >= 4
    # The speed-ups change round-off only (bit-identical on TensorFlow here); after a few steps
    # round-off can flip an example or two of the smoke study's 96 test images (JAX: 1 of 96).
    assert demo["max_test_accuracy_difference"] <= 3 / 96
    # Teachers are neither cached nor grouped, and the fixed-cost cuts change no number.
    assert demo["teachers_identical"] is True
    steps = summary["parts"]["shared"]["step_ms"]
    assert set(steps) == {"group", "separate_kd", "separate_kd_T1", "separate_standardized",
                          "student_step", "teacher_inference"}


def test_bench_cost_runs_under_jax_only():
    # Its smoke run (three XLA compilations, about a minute on 2 shared
    # cores) is left to `make bench`; here, the backend check.
    if BACKEND == "jax":
        assert bench_cost.parse_args(["--smoke"]).pairs == [("resnet8", "resnet8")]
    else:
        with pytest.raises(SystemExit):
            bench_cost.parse_args(["--smoke"])


@pytest.mark.slow
@pytest.mark.skipif(BACKEND == "tensorflow", reason="gpu_check is for a node without TensorFlow: JAX and PyTorch only")
def test_gpu_check_smoke_runs_without_tensorflow():
    # A fresh process: the check blocks `import tensorflow` for its whole life.
    import json
    import subprocess

    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHON=sys.executable, GPU_CHECK_BACKENDS=BACKEND)
    # The script's steps on the zoo's smallest CIFAR pair (the smoke's resnet8 pair compiled for 6 s more
    # under JAX; resnet8 itself is tested in test_models and test_direct_graph_call).
    done = subprocess.run(["bash", os.path.join(BENCHMARKS, "gpu_check.sh"), "--smoke", "--pair", "lenet5:lenet5"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == BACKEND
    assert result["tensorflow_imported"] is False
    assert result["cd_abs_error_vs_float64"] < 1e-4
    assert 0 < result["callback_share_of_epoch"] < 1
    assert "LatentMeasures per epoch" in done.stdout


# The script's timing and table are what this tests, and no backend changes them: it runs under one
# backend (PyTorch, where it also times its plain PyTorch reference). What it times, the model in each
# layout computing the same outputs, is tested under every backend by tests/test_data_format.py.
@pytest.mark.one_backend
def test_bench_layout_smoke_times_both_layouts(capsys):
    import bench_layout

    args = ["--smoke"] + ([] if BACKEND == "torch" else ["--no-torch"])
    timings, ratios = bench_layout.main(args)
    expected = {"ours_last", "ours_first"} | ({"torch"} if BACKEND == "torch" else set())
    assert set(timings) == expected
    assert all(math.isfinite(t["median_s"]) and t["median_s"] > 0 for t in timings.values())
    rounds = {name: t["times_s"] for name, t in timings.items()}
    assert ratios["ours_first/ours_last speed"] == pytest.approx(
        float(np.median([a / b for a, b in zip(rounds["ours_last"], rounds["ours_first"])])))
    assert "| ours_first |" in capsys.readouterr().out


def test_bench_direct_call_smoke_times_the_three_passes(capsys):
    import bench_direct_call

    summary = bench_direct_call.main(["--smoke"])
    assert set(summary["median_ms"]) == {"keras_call", "direct", "torch"}
    assert all(math.isfinite(ms) and ms > 0 for ms in summary["median_ms"].values())
    assert summary["data_format"] == ("channels_first" if BACKEND == "torch" else "channels_last")
    out = capsys.readouterr().out
    assert "| direct |" in out and out.strip().splitlines()[-1].startswith("{")
