"""Our distillation step against the plain PyTorch loop, channels-last vs channels-first models.

Under the current Keras backend (one backend per process), for one
teacher:student pair (default resnet110:resnet20), batch 64, 32x32x3, 100
classes, the standardised-logit loss (study B), SGD with momentum, in
interleaved rounds in one process:

- `ours_last`: `keras_mixkd.Distiller` on the zoo models as shipped
  (channels-last, NHWC), stepped through `train_on_batch`;
- `ours_first`: the same with the models built channels-first (NCHW inside,
  `get_model(..., data_format="channels_first")`; they still take NHWC
  images and transpose them once, in their first layer);
- `torch`: the plain PyTorch eager loop of `torch_reference.py` (NCHW, the
  reference code's step: mixup, teacher under `no_grad`, KD loss, SGD).

Prints the median images/s of each and the paired per-round ratios
ours / torch (speed). `--profile` also prints the top operators of one
step of each of ours (`torch.profiler` on the PyTorch backend).

Usage:

    KERAS_BACKEND=torch .venv/bin/python benchmarks/bench_layout.py
    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_layout.py --rounds 5
    KERAS_BACKEND=torch .venv/bin/python benchmarks/bench_layout.py --smoke
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets TF_CPP_MIN_LOG_LEVEL and OMP_WAIT_POLICY before the libraries load)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_mixkd.distill import Distiller  # noqa: E402
from keras_mixkd.models import get_model  # noqa: E402


def build_distiller(teacher_name, student_name, num_classes, image_size, data_format, seed=0):
    keras.utils.set_random_seed(seed)
    shape = (image_size, image_size, 3)
    teacher = get_model(teacher_name, num_classes, input_shape=shape, data_format=data_format)
    student = get_model(student_name, num_classes, input_shape=shape, data_format=data_format)
    distiller = Distiller(teacher, student, loss="standardized", student_loss_weight=0.1)
    distiller.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9))
    return distiller


class TrainOnBatch:
    """One `train_on_batch` of a compiled model on one batch already on the device."""

    def __init__(self, model, x, y):
        self.model, self.x, self.y = model, x, y

    def __call__(self):
        return self.model.train_on_batch(self.x, self.y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="resnet110:resnet20", help="teacher:student")
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds (each runs every contender once)")
    parser.add_argument("--no-torch", action="store_true", help="leave out the plain PyTorch loop")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table of one step of each of ours")
    parser.add_argument("--smoke", action="store_true", help="resnet8:resnet8, batch 8, 1 + 2 rounds")
    parser.add_argument("--json", default=None, help="write the raw per-round times here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pair, args.batch_size, args.warmup, args.rounds = "resnet8:resnet8", 8, 1, 2
    teacher_name, student_name = args.pair.split(":")
    backend = keras.backend.backend()

    images, _, soft_labels, label_ids = common.make_mixed_batch(
        args.batch_size, args.num_classes, args.image_size)
    x, y = common.to_device(images), common.to_device(soft_labels)
    steps = {}
    for data_format in ("channels_last", "channels_first"):
        distiller = build_distiller(teacher_name, student_name, args.num_classes, args.image_size, data_format)
        steps[f"ours_{data_format.split('_')[1]}"] = TrainOnBatch(distiller, x, y)
    if not args.no_torch:
        import torch

        import torch_reference

        reference = torch_reference.TorchDistillStep(teacher_name, student_name, num_classes=args.num_classes)
        torch_x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        torch_y = torch.from_numpy(label_ids.astype("int64"))
        steps["torch"] = lambda: reference(torch_x, torch_y)

    common.log(f"{backend}: {args.pair}, batch {args.batch_size}, {args.warmup} warm-up + {args.rounds} rounds")
    timings = common.interleaved_medians(steps, args.warmup, args.rounds)
    rows = {name: value["times_s"] for name, value in timings.items()}
    print(f"\n{backend} · {args.pair} · batch {args.batch_size} · {args.num_classes} classes · standardized loss "
          f"· median of {args.rounds} interleaved rounds")
    print("| contender | ms/step | images/s |")
    print("|---|---:|---:|")
    for name, value in timings.items():
        print(f"| {name} | {value['median_s'] * 1e3:.0f} | {args.batch_size / value['median_s']:.1f} |")
    ratios = {}
    if "torch" in rows:
        for name in ("ours_last", "ours_first"):
            ratios[f"{name}/torch speed"] = statistics.median(t / o for o, t in zip(rows[name], rows["torch"]))
    ratios["ours_first/ours_last speed"] = statistics.median(
        a / b for a, b in zip(rows["ours_last"], rows["ours_first"]))
    for name, value in ratios.items():
        print(f"{name} (paired per round): {value:.2f}")
    if args.profile and backend == "torch":
        import torch

        for name in ("ours_last", "ours_first"):
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
                steps[name]()
            print(f"\n{name}: one step, top operators by self CPU time")
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    common.write_json(args.json, {"backend": backend, "pair": args.pair, "batch_size": args.batch_size,
                                  "timings": timings, "ratios": ratios, "time": time.time()})
    return timings, ratios


if __name__ == "__main__":
    main()
