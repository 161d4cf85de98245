"""Ship and scale on the current backend: precision policies and export time.

Prints one table: the median time of a distillation step (after warm-up)
under float32, mixed_float16 and mixed_bfloat16, each as a ratio to float32
measured in the same run, and the wall time of `export_student` with and
without its fresh-process verification.

Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_ship.py
    KERAS_BACKEND=torch .venv/bin/python benchmarks/bench_ship.py --rounds 5 --model resnet8

On CPU, half precision is expected to be slower than float32 (no half-precision
units); the table says how much, it does not judge.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_mixkd.distill.distiller import Distiller  # noqa: E402
from keras_mixkd.export import export_student  # noqa: E402
from keras_mixkd.models import get_model  # noqa: E402
from keras_mixkd.precision import PRECISION_POLICIES  # noqa: E402
from keras_mixkd.precision import precision  # noqa: E402


def build(policy, model_name, teacher_name, input_shape):
    """A compiled distiller whose models were built under `policy`."""
    with precision(policy):
        keras.utils.set_random_seed(0)
        teacher = get_model(teacher_name, 10, input_shape)
        student = get_model(model_name, 10, input_shape)
        distiller = Distiller(teacher, student)
        distiller.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    return distiller


def step_times(distillers, x, y, batch_size, rounds):
    """Median seconds per step of each distiller; rounds interleaved so that a
    change in machine load falls on every policy alike."""
    steps = len(x) // batch_size
    for distiller in distillers.values():  # Warm-up: compile.
        distiller.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    times = {policy: [] for policy in distillers}
    for _ in range(rounds):
        for policy, distiller in distillers.items():
            start = time.perf_counter()
            distiller.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
            times[policy].append((time.perf_counter() - start) / steps)
    return {policy: statistics.median(values) for policy, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits_cnn_small")
    parser.add_argument("--teacher", default="digits_cnn")
    parser.add_argument("--size", type=int, default=8, help="image side")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    backend = keras.backend.backend()
    channels = 1 if args.model.startswith("digits") else 3
    input_shape = (args.size, args.size, channels)

    distillers = {policy: build(policy, args.model, args.teacher, input_shape)
                  for policy in PRECISION_POLICIES}
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size * args.steps,) + input_shape, dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    medians = step_times(distillers, x, y, args.batch_size, args.rounds)
    rows = [(f"distillation step, {policy}", seconds) for policy, seconds in medians.items()]
    reference = medians["float32"]
    student = distillers["float32"].student

    work = tempfile.mkdtemp(prefix="bench-ship-")
    try:
        for verify in (False, True):
            start = time.perf_counter()
            export_student(student, os.path.join(work, f"student_{verify}"), verify=verify)
            rows.append((f"export_student, verify={verify}", time.perf_counter() - start))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"backend {backend} · student {args.model} · teacher {args.teacher} · "
          f"input {input_shape} · batch {args.batch_size} · median of {args.rounds} rounds")
    print(f"| {'what':38} | {'seconds':>10} | {'vs float32 step':>15} |")
    print(f"|{'-' * 40}|{'-' * 12}|{'-' * 17}|")
    for name, seconds in rows:
        ratio = f"{seconds / reference:.2f}" if name.startswith("distillation") else ""
        print(f"| {name:38} | {seconds:10.4f} | {ratio:>15} |")


if __name__ == "__main__":
    main()
