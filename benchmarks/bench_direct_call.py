"""A teacher's inference three ways: Keras's call, `DirectGraphCall`, the plain PyTorch model.

Under the current Keras backend (one backend per process), for one zoo
model (default resnet110, channels-first where the backend is PyTorch and
the model offers it, as a study builds it), batch 64, 32x32x3, 100 classes,
inference mode, in interleaved rounds in one process:

- `keras_call`: `model(x, training=False)` (Keras's `Layer.__call__` for
  every layer; its graph walk holds every activation to the end);
- `direct`: `keras_mixkd.models.DirectGraphCall(model)(x, training=False)`;
- `torch`: the same network in plain PyTorch (`torch_reference.py`), NCHW.

PyTorch work runs under `torch.no_grad()`. Prints the median ms of each and
the per-round ratios against `torch` (time). `--profile` (PyTorch backend)
also prints `torch.profiler`'s top operators of 3 passes of each: the time
per ReLU / BatchNorm / add is where the held activations show.

Usage:

    KERAS_BACKEND=torch .venv/bin/python benchmarks/bench_direct_call.py
    KERAS_BACKEND=torch .venv/bin/python benchmarks/bench_direct_call.py --profile
    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_direct_call.py --smoke
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets TF_CPP_MIN_LOG_LEVEL and OMP_WAIT_POLICY before the libraries load)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from keras_mixkd.models import DirectGraphCall  # noqa: E402
from keras_mixkd.models import get_model  # noqa: E402
from keras_mixkd.models import resolve_data_format  # noqa: E402
from bench_study import paired_median  # noqa: E402
from torch_reference import get_torch_model  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet110", help="a CIFAR ResNet of the zoo")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="torch.profiler tables (PyTorch backend)")
    parser.add_argument("--smoke", action="store_true", help="resnet8, batch 4, 1 + 2 rounds (for the tests)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.model, args.batch_size, args.warmup, args.rounds = "resnet8", 4, 1, 2

    keras.utils.set_random_seed(args.seed)
    data_format = resolve_data_format("auto", args.model)
    model = get_model(args.model, 100, input_shape=(32, 32, 3), data_format=data_format)
    direct = DirectGraphCall(model)
    torch.manual_seed(args.seed)
    plain = get_torch_model(args.model, 100).eval()
    images = np.random.default_rng(args.seed).standard_normal((args.batch_size, 32, 32, 3)).astype("float32")
    x = common.to_device(images)
    x_nchw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))

    def no_grad(forward):
        def run():
            with torch.no_grad():
                return np.asarray(forward()[0, 0])
        return run

    passes = {
        "keras_call": no_grad(lambda: model(x, training=False)),
        "direct": no_grad(lambda: direct(x, training=False)),
        "torch": no_grad(lambda: plain(x_nchw)),
    }
    timings = common.interleaved_medians(passes, args.warmup, args.rounds)
    rounds = {name: value["times_s"] for name, value in timings.items()}
    summary = {
        "backend": keras.backend.backend(),
        "model": args.model,
        "data_format": data_format,
        "batch_size": args.batch_size,
        "median_ms": {name: 1000 * value["median_s"] for name, value in timings.items()},
        "keras_call_vs_torch": paired_median(rounds["keras_call"], rounds["torch"]),
        "direct_vs_torch": paired_median(rounds["direct"], rounds["torch"]),
        "direct_vs_keras_call": paired_median(rounds["direct"], rounds["keras_call"]),
    }
    print(f"{args.model} ({data_format}), batch {args.batch_size}, inference; median of {args.rounds} "
          f"interleaved rounds, backend {summary['backend']}")
    print("| pass | ms | ÷ torch (time) |")
    print("|---|---:|---:|")
    for name in passes:
        ratio = 1.0 if name == "torch" else summary[f"{name}_vs_torch"]
        print(f"| {name} | {summary['median_ms'][name]:.1f} | {ratio:.2f} |")
    if args.profile and keras.backend.backend() == "torch":
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile

        for name, forward in passes.items():
            with profile(activities=[ProfilerActivity.CPU]) as profiler:
                for _ in range(3):
                    forward()
            print(f"\n{name}: torch.profiler, 3 passes")
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
