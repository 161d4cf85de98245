"""Study cost at real scale: the teacher-logit cache, one teacher pass for several students, a study's
fixed cost, and each backend against plain PyTorch.

Under the current Keras backend (one backend per process; `run_all.py` runs all
three), interleaved in one process, medians of rounds and ratios paired per
round (each round runs every contender back to back):

- `cache_vs_alone`: one `fit` epoch of a `Distiller` that reads the teacher's
  logits from a cache (`make_dataset(teacher_logits=...)`), ÷ one epoch of
  the student trained alone (cross-entropy, with the accuracy metric a
  study's student-alone cell reports), on the same data — resnet18 →
  lenet5, 32x32x3, 10 classes. With the cache the teacher costs nothing per
  epoch: the ratio is the distillation loss's own cost (and its metrics:
  the Distiller also tracks its two loss terms and the agreement with the
  teacher). Timed beside them: the uncached epoch (`uncached_vs_alone`) and
  the student alone with its loss only (`cache_vs_bare_alone`). Target <= 1.10.
- `shared_vs_floor`: one step of a `Distiller` of 3 students
  (KD T = 4, KD T = 1, standardised KD) sharing resnet110 → resnet20 (batch
  64, 100 classes), ÷ (the teacher's inference + 3 plain student steps).
  Target <= 1.05.
- `shared_vs_separate`: the 3 students' separate `Distiller` steps (3
  teacher passes) ÷ the group's step. Target >= 1.5.
- `demo_vs_before`: wall time of the digits study (`keras-mixkd study`, in a
  fresh process, fresh run folder) ÷ the same study with the teacher cache,
  student groups and the fixed-cost cuts switched off (`--no-teacher-cache
  --no-group` and `--no-fixed-cost-cuts`). `--quick` runs one seed
  and two teacher augmentations; `--smoke` a tiny in-process study (one
  teacher, its `kd` and `kd_T1` students and the student alone). The
  largest difference of any cell's test accuracy between the two runs is
  printed beside it (the cache and groups change round-off, nothing else).
  Target <= 0.4.
- `torch_vs_plain`: our `Distiller` step (`train_function` as `fit` calls
  it; standardised loss, a partial-mixup batch mixed by the library's
  augmentation, resnet110 → resnet20, batch 64, 100 classes) ÷ study B's
  reference loop in plain PyTorch eager (its models, partial mixup with
  per-sample λ, MIXSTD loss, SGD), in speed, with the models built in the
  layout a study builds them (`data_format="auto"`: channels-first on
  PyTorch); on PyTorch the channels-last models (`get_model`'s default) are
  timed beside them (`torch_vs_plain_channels_last`), and so is our step
  with teacher and student run through Keras's `Layer.__call__` instead of
  `DirectGraphCall` (`torch_vs_plain_layer_call`; elsewhere it equals
  `torch_vs_plain`: a compiled step traces the calls once). Target >= 0.9
  on the PyTorch backend; reported on every backend.

The last line printed is one JSON object with those keys (and `backend`,
`quick`, `smoke`, the timings).

Usage:

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/bench_study.py           # full: minutes
    KERAS_BACKEND=torch .venv/bin/python benchmarks/bench_study.py --quick        # a few minutes
    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_study.py --smoke          # seconds (the tests)
    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_study.py --parts cache,shared
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets TF_CPP_MIN_LOG_LEVEL before Keras loads)
from bench_executors import read_results  # noqa: E402
from bench_executors import run_study as run_study_command  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

PARTS = ("cache", "shared", "demo", "torch")
TARGETS = {
    "cache_vs_alone": ("<=", 1.10),
    "shared_vs_floor": ("<=", 1.05),
    "shared_vs_separate": (">=", 1.5),
    "demo_vs_before": ("<=", 0.4),
    "torch_vs_plain": (">=", 0.9),
}
# What switches the study's speed-ups off (the "before" run of `demo_vs_before`).
BEFORE_FLAGS = ("--no-teacher-cache", "--no-group", "--no-fixed-cost-cuts")
STUDENT_LOSS_WEIGHT = 0.1


def sgd():
    return keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)


def paired_median(numerators, denominators):
    """Median over rounds of each round's ratio."""
    return statistics.median(n / d for n, d in zip(numerators, denominators))


# ------------------------------------------------------------------ the cache


def measure_cache(args):
    """Epoch times: cached distillation, uncached distillation, the student alone."""
    from keras_mixkd.data import make_dataset
    from keras_mixkd.distill import Distiller
    from keras_mixkd.models import get_model

    teacher_name, student_name, classes = ("resnet8", "lenet5", 10) if args.smoke else ("resnet18", "lenet5", 10)
    examples = args.cache_examples or (128 if args.smoke else 512 if args.quick else 2048)
    rng = np.random.default_rng(args.seed)
    images = rng.random((examples, 32, 32, 3), dtype=np.float32)
    labels = rng.integers(0, classes, examples).astype("int32")
    keras.utils.set_random_seed(args.seed)
    teacher = get_model(teacher_name, classes, input_shape=(32, 32, 3))
    # The cache: the teacher's logits on the training images, once, in inference mode.
    start = time.perf_counter()
    cached_logits = np.asarray(teacher.predict(images, batch_size=256, verbose=0), dtype="float32")
    cache_seconds = time.perf_counter() - start

    def student():
        keras.utils.set_random_seed(args.seed)
        return get_model(student_name, classes, input_shape=(32, 32, 3))

    # The student alone as a study trains it (its accuracy metric), and bare (the loss only).
    alone = student()
    alone.compile(optimizer=sgd(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    bare = student()
    bare.compile(optimizer=sgd(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cached = Distiller(teacher, student(), loss="kd", temperature=4.0, student_loss_weight=STUDENT_LOSS_WEIGHT)
    cached.compile(optimizer=sgd())
    uncached = Distiller(keras.models.clone_model(teacher), student(), loss="kd", temperature=4.0,
                         student_loss_weight=STUDENT_LOSS_WEIGHT)
    uncached.compile(optimizer=sgd())
    batch = args.batch_size
    plain_ds = make_dataset(images, labels, batch_size=batch, seed=args.seed, num_classes=classes)
    cached_ds = make_dataset(images, labels, batch_size=batch, seed=args.seed, num_classes=classes,
                             teacher_logits=cached_logits)
    epochs = {
        "alone": lambda: alone.fit(plain_ds, epochs=1, verbose=0),
        "alone_bare": lambda: bare.fit(plain_ds, epochs=1, verbose=0),
        "cached": lambda: cached.fit(cached_ds, epochs=1, verbose=0),
        "uncached": lambda: uncached.fit(plain_ds, epochs=1, verbose=0),
    }
    timings = common.interleaved_medians(epochs, args.warmup, args.epoch_repeats)
    rounds = {name: value["times_s"] for name, value in timings.items()}
    return {
        "pair": f"{teacher_name}:{student_name}",
        "examples": examples,
        "cache_seconds": cache_seconds,
        "epoch_s": {name: value["median_s"] for name, value in timings.items()},
        "cache_vs_alone": paired_median(rounds["cached"], rounds["alone"]),
        "cache_vs_bare_alone": paired_median(rounds["cached"], rounds["alone_bare"]),
        "uncached_vs_alone": paired_median(rounds["uncached"], rounds["alone"]),
        "cached_vs_uncached": paired_median(rounds["cached"], rounds["uncached"]),
    }


# -------------------------------------------------------- one teacher, 3 students

GROUP = {
    "kd": {"loss": "kd", "temperature": 4.0},
    "kd_T1": {"loss": "kd", "temperature": 1.0},
    "standardized": {"loss": "standardized"},
}


def measure_shared(args):
    """Step times of a 3-student group, the 3 separate Distillers, and the floor's parts."""
    from keras_mixkd.distill import Distiller
    from keras_mixkd.models import get_model

    teacher_name, student_name = ("resnet8", "resnet8") if args.smoke else ("resnet110", "resnet20")
    classes = 10 if args.smoke else 100
    batch = 8 if args.smoke else args.batch_size
    rng = np.random.default_rng(args.seed)
    x = common.to_device(rng.standard_normal((batch, 32, 32, 3)).astype("float32"))
    y = common.to_device(rng.integers(0, classes, batch).astype("int32"))

    # A teacher per contender: on JAX a compiled step donates the buffers of the
    # variables it is given, so two steps must not share a model.
    def teacher():
        return get_model(teacher_name, classes, input_shape=(32, 32, 3))

    def student():
        return get_model(student_name, classes, input_shape=(32, 32, 3))

    steps = {}
    group = Distiller(teacher(), students={
        name: (student(), dict(options, student_loss_weight=STUDENT_LOSS_WEIGHT)) for name, options in GROUP.items()
    })
    group.compile(optimizer=sgd())
    steps["group"] = common.KerasTrainStep(group, x, y)
    for name, options in GROUP.items():
        separate = Distiller(teacher(), student(), student_loss_weight=STUDENT_LOSS_WEIGHT, **options)
        separate.compile(optimizer=sgd())
        steps[f"separate_{name}"] = common.KerasTrainStep(separate, x, y)
    plain = student()
    plain.compile(optimizer=sgd(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    steps["student_step"] = common.KerasTrainStep(plain, x, y)
    inference = common.inference_function(teacher(), group.jit_compile)
    steps["teacher_inference"] = lambda: inference(x)
    timings = common.interleaved_medians(steps, args.warmup, args.repeats)
    rounds = {name: value["times_s"] for name, value in timings.items()}
    floor = [t + len(GROUP) * s for t, s in zip(rounds["teacher_inference"], rounds["student_step"])]
    separate = [sum(values) for values in zip(*(rounds[f"separate_{name}"] for name in GROUP))]
    return {
        "pair": f"{teacher_name}:{student_name}",
        "batch_size": batch,
        "step_ms": {name: value["median_s"] * 1e3 for name, value in timings.items()},
        "shared_vs_floor": paired_median(rounds["group"], floor),
        "shared_vs_separate": paired_median(separate, rounds["group"]),
    }


# ------------------------------------------------------------------ the study


QUICK_STUDY_ARGS = "--seeds 0 --only teacher_augmentation=none,mixup"


def _run_study_in_process(runs_dir, name, before):
    """The smoke scale: a tiny study in this process (no start-up cost to hide the difference)."""
    from keras_mixkd.study import RunOptions
    from keras_mixkd.study import load_recipe
    from keras_mixkd.study import run_study

    config = load_recipe("digits", smoke=True, overrides={"teacher_cache": False} if before else None)
    options = RunOptions(verbose=0, group_students=not before, fixed_cost_cuts=not before)
    # One teacher, its two cacheable students of one stream (so grouped) and the student alone.
    only = {"teacher_augmentation": ["none"], "recipe": ["kd", "kd_T1"]}
    start = time.perf_counter()
    run_study(config, runs_dir=runs_dir, name=name, report=False, options=options, only=only,
              print_fn=lambda *a, **k: None)
    return time.perf_counter() - start


def measure_demo(args):
    """Wall time of the digits study, with and without the speed-ups, in alternating order."""
    times = {"after": [], "before": []}
    with tempfile.TemporaryDirectory() as runs_dir:
        for round_index in range(args.demo_rounds):
            order = ("before", "after") if round_index % 2 == 0 else ("after", "before")
            for which in order:
                name = f"{which}{round_index}"
                before = which == "before"
                if args.smoke:
                    seconds = _run_study_in_process(runs_dir, name, before)
                else:
                    seconds, _ = run_study_command(QUICK_STUDY_ARGS if args.quick else "", runs_dir, name,
                                                   BEFORE_FLAGS if before else ())
                times[which].append(seconds)
        after = read_results(runs_dir, "after0")
        before = read_results(runs_dir, "before0")
    differences = [abs(float(after[k]["test_accuracy_last"]) - float(before[k]["test_accuracy_last"]))
                   for k in after if k in before and after[k]["test_accuracy_last"] and before[k]["test_accuracy_last"]]
    after_table, before_table = table_means(after), table_means(before)
    table_differences = [abs(after_table[k] - before_table[k]) for k in after_table if k in before_table]
    return {
        "scale": "smoke" if args.smoke else "quick" if args.quick else "full",
        "cells": len(after),
        "seconds": {which: statistics.median(values) for which, values in times.items()},
        "demo_vs_before": paired_median(times["after"], times["before"]),
        "max_test_accuracy_difference": max(differences) if differences else None,
        # The main table (mean over seeds per teacher augmentation and column) moves by at most this.
        "max_table_mean_difference": max(table_differences) if table_differences else None,
        # Teachers run neither cached nor grouped: only the fixed-cost cuts touch them, which change no number.
        "teachers_identical": all(after[k] == {**before[k], "seconds": after[k]["seconds"]}
                                  for k in after if k in before and after[k]["role"] == "teacher"),
    }


def table_means(rows):
    """`{(teacher augmentation, role or recipe): mean last-epoch test accuracy over seeds}` of results rows."""
    columns = {}
    for row in rows.values():
        if not row["test_accuracy_last"]:
            continue
        column = (row["teacher_augmentation"], row["recipe"] or row["role"])
        columns.setdefault(column, []).append(float(row["test_accuracy_last"]))
    return {column: float(np.mean(values)) for column, values in columns.items()}


# ------------------------------------------------------------- plain PyTorch


def mixstd_loss(student_logits, teacher_logits, targets, weight):
    """Study B's MIXSTD loss in PyTorch: `w · CE(y, s/σ_s) + (1 − w) · KL(softmax(t/σ_t) ‖ softmax(s/σ_s))`.

    σ: each sample's unbiased std (`torch.std`), batch means, no `T²` factor.
    """
    import torch.nn.functional as functional

    log_q = functional.log_softmax(student_logits / student_logits.std(dim=1, keepdim=True), dim=1)
    p = functional.softmax(teacher_logits / teacher_logits.std(dim=1, keepdim=True), dim=1)
    supervised = -(targets * log_q).sum(1).mean()
    distillation = functional.kl_div(log_q, p, reduction="batchmean")
    return weight * supervised + (1.0 - weight) * distillation


class StudyBTorchStep:
    """Study B's reference step in plain PyTorch eager: partial mixup, MIXSTD loss, SGD.

    A `fraction` of the batch is mixed with per-sample λ ~ Beta(α, α) and a
    random partner; the frozen teacher sees the same mixed images under
    `no_grad`; loss `w · CE(y_mix, s/σ_s) + (1 − w) · KL(softmax(t/σ_t) ‖
    softmax(s/σ_s))` (σ: unbiased per-sample std); SGD with momentum and
    weight decay. Models: `torch_reference.py`'s CIFAR ResNets (NCHW).
    """

    def __init__(self, teacher_name, student_name, num_classes=100, fraction=0.1, alpha=1.0, weight=0.1, seed=0):
        import torch

        from torch_reference import get_torch_model

        torch.manual_seed(seed)
        self.torch = torch
        self.teacher = get_torch_model(teacher_name, num_classes).eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.student = get_torch_model(student_name, num_classes).train()
        self.optimizer = torch.optim.SGD(self.student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        self.num_classes, self.fraction, self.alpha, self.weight = num_classes, fraction, alpha, weight

    def __call__(self, images, labels):
        torch = self.torch
        functional = torch.nn.functional
        batch = images.shape[0]
        mixed_rows = int(round(self.fraction * batch))
        lam = torch.ones(batch)
        lam[:mixed_rows] = torch.distributions.Beta(self.alpha, self.alpha).sample((mixed_rows,))
        partner = torch.randperm(batch)
        weights = lam.view(-1, 1, 1, 1)
        mixed = weights * images + (1.0 - weights) * images[partner]
        one_hot = functional.one_hot(labels, self.num_classes).float()
        targets = lam.view(-1, 1) * one_hot + (1.0 - lam.view(-1, 1)) * one_hot[partner]
        with torch.no_grad():
            teacher_logits = self.teacher(mixed)
        loss = mixstd_loss(self.student(mixed), teacher_logits, targets, self.weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach().item()


def measure_torch(args):
    """Our Distiller's step against study B's plain PyTorch loop, same pair, same batch."""
    import tensorflow as tf
    import torch

    from keras_mixkd.augment import get_augmentation
    from keras_mixkd.distill import Distiller
    from keras_mixkd.models import get_model
    from keras_mixkd.models import resolve_data_format

    teacher_name, student_name = ("resnet8", "resnet8") if args.smoke else ("resnet110", "resnet20")
    classes = 10 if args.smoke else 100
    batch = 8 if args.smoke else args.batch_size
    rng = np.random.default_rng(args.seed)
    clean = rng.standard_normal((batch, 32, 32, 3)).astype("float32")
    label_ids = rng.integers(0, classes, batch).astype("int32")
    keras.utils.set_random_seed(args.seed)
    mixing = get_augmentation("partial_mixup", fraction=0.1, alpha=1.0, num_classes=classes)
    mixed = mixing({"images": tf.constant(clean), "labels": tf.constant(label_ids)}, training=True)
    x = common.to_device(np.asarray(mixed["images"], dtype="float32"))
    y = common.to_device(np.asarray(mixed["labels"], dtype="float32"))
    def distiller(data_format, direct_calls=True):
        ours = Distiller(get_model(teacher_name, classes, input_shape=(32, 32, 3), data_format=data_format),
                         get_model(student_name, classes, input_shape=(32, 32, 3), data_format=data_format),
                         loss="standardized", student_loss_weight=STUDENT_LOSS_WEIGHT)
        ours._direct_calls = direct_calls
        ours.compile(optimizer=sgd())
        return ours

    # "ours": the layout a study builds by default (data_format "auto": channels-first on PyTorch);
    # "ours_channels_last": get_model's default, where it differs.
    layout = resolve_data_format("auto", student_name)
    steps = {"ours": common.KerasTrainStep(distiller("auto"), x, y)}
    if keras.backend.backend() == "torch":
        # Teacher and student through Keras's `Layer.__call__` (before `DirectGraphCall`): only
        # an eager backend pays for it at every step; compiled steps trace it once.
        steps["ours_layer_call"] = common.KerasTrainStep(distiller("auto", direct_calls=False), x, y)
    if layout != "channels_last":
        steps["ours_channels_last"] = common.KerasTrainStep(distiller("channels_last"), x, y)
    plain = StudyBTorchStep(teacher_name, student_name, num_classes=classes, seed=args.seed)
    torch_images = torch.from_numpy(np.ascontiguousarray(clean.transpose(0, 3, 1, 2)))
    torch_labels = torch.from_numpy(label_ids.astype("int64"))
    steps["torch"] = lambda: plain(torch_images, torch_labels)
    timings = common.interleaved_medians(steps, args.warmup, args.repeats)
    rounds = {name: value["times_s"] for name, value in timings.items()}
    return {
        "pair": f"{teacher_name}:{student_name}",
        "batch_size": batch,
        "images_per_s": {name: batch / value["median_s"] for name, value in timings.items()},
        "torch_threads": torch.get_num_threads(),
        "image_data_format": layout,
        "torch_vs_plain": paired_median(rounds["torch"], rounds["ours"]),
        "torch_vs_plain_layer_call": paired_median(rounds["torch"], rounds.get("ours_layer_call", rounds["ours"])),
        "torch_vs_plain_channels_last": paired_median(rounds["torch"], rounds.get("ours_channels_last",
                                                                                  rounds["ours"])),
    }


# ------------------------------------------------------------------ the table


def verdict(key, value):
    if value is None:
        return "–"
    op, target = TARGETS[key]
    met = value <= target if op == "<=" else value >= target
    return f"{'met' if met else 'MISSED'} ({op} {target})"


def print_table(summary, parts):
    backend = summary["backend"]
    print(f"bench_study · backend {backend} · {'smoke' if summary['smoke'] else 'quick' if summary['quick'] else 'full'}")
    print("| ratio | value | target | measured on |")
    print("|---|---:|---|---|")
    where = {
        "cache_vs_alone": lambda p: f"{p['pair']}, {p['examples']} images: epoch cached {p['epoch_s']['cached']:.2f} s, "
                                    f"alone {p['epoch_s']['alone']:.2f} s (bare, loss only: {p['epoch_s']['alone_bare']:.2f} s, "
                                    f"ratio {p['cache_vs_bare_alone']:.3f}), uncached {p['epoch_s']['uncached']:.2f} s",
        "shared_vs_floor": lambda p: f"{p['pair']}, batch {p['batch_size']}: group {p['step_ms']['group']:.0f} ms, "
                                     f"teacher {p['step_ms']['teacher_inference']:.0f} ms + 3 × student "
                                     f"{p['step_ms']['student_step']:.0f} ms",
        "shared_vs_separate": lambda p: "separate: " + " + ".join(
            f"{p['step_ms'][f'separate_{n}']:.0f}" for n in GROUP) + f" ms vs group {p['step_ms']['group']:.0f} ms",
        "demo_vs_before": lambda p: f"digits study ({p['scale']}, {p['cells']} cells): {p['seconds']['after']:.0f} s "
                                    f"vs {p['seconds']['before']:.0f} s before; max |Δ test acc| of a cell "
                                    f"{p['max_test_accuracy_difference']}, of a table mean "
                                    f"{p['max_table_mean_difference']}; teachers identical: "
                                    f"{p['teachers_identical']}",
        "torch_vs_plain": lambda p: f"{p['pair']}, batch {p['batch_size']}: ours {p['images_per_s']['ours']:.1f} "
                                    f"img/s ({p['image_data_format']}), plain PyTorch {p['images_per_s']['torch']:.1f} img/s"
                                    + (f"; models through Layer.__call__ {p['images_per_s']['ours_layer_call']:.1f} img/s, "
                                       f"ratio {p['torch_vs_plain_layer_call']:.3f}"
                                       if "ours_layer_call" in p["images_per_s"] else "")
                                    + (f"; channels-last {p['images_per_s']['ours_channels_last']:.1f} img/s, "
                                       f"ratio {p['torch_vs_plain_channels_last']:.3f}"
                                       if "ours_channels_last" in p["images_per_s"] else ""),
    }
    source = {"cache_vs_alone": "cache", "shared_vs_floor": "shared", "shared_vs_separate": "shared",
              "demo_vs_before": "demo", "torch_vs_plain": "torch"}
    for key in TARGETS:
        part = summary["parts"].get(source[key])
        value = summary.get(key)
        shown = "–" if value is None else f"{value:.3f}"
        print(f"| {key} | {shown} | {verdict(key, value)} | {where[key](part) if part else 'not run'} |")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"which to run, of {','.join(PARTS)}")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (default 2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds of a step (default 10)")
    parser.add_argument("--epoch-repeats", type=int, default=5, help="timed rounds of an epoch (default 5)")
    parser.add_argument("--demo-rounds", type=int, default=1, help="runs of the study each way (default 1)")
    parser.add_argument("--cache-examples", type=int, default=None, help="images of the cache part's epoch")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a smaller study: a few minutes")
    parser.add_argument("--smoke", action="store_true", help="tiny models and study: seconds (the tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown --parts {unknown}; expected some of {list(PARTS)}")
    args.parts = parts
    if args.quick or args.smoke:
        args.warmup, args.repeats, args.epoch_repeats = 1, (3 if args.smoke else 5), (2 if args.smoke else 3)
    return args


def main(argv=None):
    args = parse_args(argv)
    measures = {"cache": measure_cache, "shared": measure_shared, "demo": measure_demo, "torch": measure_torch}
    summary = {"backend": keras.backend.backend(), "quick": args.quick, "smoke": args.smoke, "parts": {}}
    for part in args.parts:
        common.log(f"bench_study: {part} ...")
        summary["parts"][part] = measures[part](args)
    for part in summary["parts"].values():
        for key in TARGETS:
            if key in part:
                summary[key] = part[key]
    for key in TARGETS:
        summary.setdefault(key, None)
    summary["machine"] = common.machine_info()
    summary["versions"] = common.library_versions()
    print_table(summary, args.parts)
    common.write_json(args.json, summary)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
