"""Images/s of the input pipeline with each augmentation recipe, against a resnet20 training step.

Under the current Keras backend (one per process), in one run, interleaved:

- `pipeline`: `keras_mixkd.data.make_dataset` (shuffle, batch 64, the recipe
  in `Dataset.map` with AUTOTUNE parallelism, normalisation, prefetch) on
  synthetic CIFAR-size data (32x32x3 float32 in [0, 1], 100 classes). Each
  timed call pulls `--batches` batches (default 96) from one long-lived
  iterator, as `fit` does; the prefetch buffer it may have filled while
  something else ran is a few batches, small against 96. (A fresh iterator
  per call would instead charge its ~40 ms start-up to every call.)
- `train step`: `keras_mixkd.models.get_model("resnet20", num_classes=100)`,
  SGD, cross-entropy on dense labels, one batch of 64 already on the device,
  called the way `fit` calls it (`common.KerasTrainStep`).

Each row gives the pipeline's images/s, the training step's images/s (median
over the same rounds) and their ratio. The target is ratio >= 10: the pipeline
must never starve training. Both run on the same CPU cores, timed apart (not
concurrently), so the ratio says how much of the cores the pipeline needs.

Usage:

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/bench_augment.py
    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_augment.py --repeats 3 --recipes none,standard,mixup
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets TF_CPP_MIN_LOG_LEVEL before Keras loads)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_mixkd.augment import get_augmentation  # noqa: E402
from keras_mixkd.data import make_dataset  # noqa: E402
from keras_mixkd.models import get_model  # noqa: E402

NUM_CLASSES = 100
CIFAR100_NORMALIZATION = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))

# row name -> (recipe name or list, options)
RECIPES = {
    "none": ("none", {}),
    "standard": ("standard", {}),
    "cutout": ("cutout", {}),
    "label_smoothing": ("label_smoothing", {"epsilon": 0.1}),
    "mixup": ("mixup", {"alpha": 1.0}),
    "mixup[keras]": ("mixup", {"alpha": 1.0, "implementation": "keras"}),
    "mixup[batch]": ("mixup", {"alpha": 1.0, "mode": "batch"}),
    "cutmix": ("cutmix", {"alpha": 1.0}),
    "cutmix[keras]": ("cutmix", {"alpha": 1.0, "implementation": "keras"}),
    "mixup_cutmix": ("mixup_cutmix", {}),
    "partial_mixup": ("partial_mixup", {"fraction": 0.5}),
    "standard+mixup": (["standard", "mixup"], {"alpha": 1.0}),
    "standard+cutmix": (["standard", "cutmix"], {"alpha": 1.0}),
    "randaugment": ("randaugment", {}),
    "randaugment[keras]": ("randaugment", {"implementation": "keras"}),
    "augmix": ("augmix", {}),
    "augmix[keras]": ("augmix", {"implementation": "keras"}),
}
NEEDS_CLASSES = ("label_smoothing", "mixup", "cutmix", "mixup_cutmix", "partial_mixup")


def build_augmentation(name):
    recipe, options = RECIPES[name]
    names = recipe if isinstance(recipe, list) else [recipe]
    if any(n in NEEDS_CLASSES for n in names):
        options = dict(options, num_classes=NUM_CLASSES)
    return get_augmentation(recipe, **options)


def pipeline_runner(name, images, labels, batch_size, num_batches):
    dataset = make_dataset(
        images,
        labels,
        batch_size=batch_size,
        shuffle=True,
        augmentation=build_augmentation(name),
        normalization=CIFAR100_NORMALIZATION,
        drop_remainder=True,
    ).repeat()
    iterator = iter(dataset)

    def run():
        for _ in range(num_batches):
            next(iterator)

    return run


def train_step_runner(batch_size, rng):
    model = get_model("resnet20", num_classes=NUM_CLASSES, input_shape=(32, 32, 3))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    x = rng.standard_normal((batch_size, 32, 32, 3)).astype("float32")
    y = np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, batch_size)]
    return common.KerasTrainStep(model, common.to_device(x), common.to_device(y))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help=f"comma-separated rows, from: {', '.join(RECIPES)}")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=96,
                        help="batches pulled per timed pipeline call")
    parser.add_argument("--steps", type=int, default=8,
                        help="training steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe row(s) {unknown}; known: {list(RECIPES)}")

    rng = np.random.default_rng(0)
    images = rng.uniform(size=(args.examples, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, args.examples).astype("int32")

    common.log(f"backend {keras.backend.backend()}: building pipelines and the training step ...")
    functions = {}
    for name in names:
        functions[name] = pipeline_runner(name, images, labels, args.batch_size, args.batches)
    step = train_step_runner(args.batch_size, rng)

    def train():
        for _ in range(args.steps):
            step()

    functions["train step"] = train
    start = time.perf_counter()
    results = common.interleaved_medians(functions, args.warmup, args.repeats)
    elapsed = time.perf_counter() - start

    train_ips = args.batch_size * args.steps / results["train step"]["median_s"]
    rows = []
    for name in names:
        ips = args.batch_size * args.batches / results[name]["median_s"]
        rows.append((name, ips, train_ips, ips / train_ips))

    print(f"\nInput pipeline vs resnet20 training step, backend={keras.backend.backend()}, "
          f"batch {args.batch_size}, 32x32x3, {NUM_CLASSES} classes, medians of "
          f"{args.repeats} interleaved rounds ({elapsed:.0f} s)")
    print(f"{'recipe':<20} {'pipeline img/s':>15} {'train img/s':>12} {'ratio':>7}  target >= 10x")
    for name, ips, t_ips, ratio in rows:
        flag = "ok" if ratio >= 10 else "BELOW"
        print(f"{name:<20} {ips:>15.0f} {t_ips:>12.0f} {ratio:>7.1f}  {flag}")
    info = common.machine_info()
    print(f"\nmachine: {info.get('Model name', info['cpu'])}, {info['nproc']} CPUs, "
          f"load average {info['load_average']}")
    print("command: KERAS_BACKEND=" + keras.backend.backend() + " .venv/bin/python "
          + " ".join(["benchmarks/bench_augment.py"] + sys.argv[1:]))
    common.write_json(args.json, {
        "backend": keras.backend.backend(),
        "batch_size": args.batch_size,
        "train_images_per_s": train_ips,
        "rows": [
            {"recipe": n, "pipeline_images_per_s": i, "ratio": r} for n, i, _, r in rows
        ],
        "machine": info,
        "versions": common.library_versions(),
    })


if __name__ == "__main__":
    main()
