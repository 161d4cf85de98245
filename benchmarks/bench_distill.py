"""Images/s of one distillation training step, ours against the floor, Keras's distiller and PyTorch.

Under the current Keras backend (one backend per process; `run_all.py` runs
all three), for each teacher:student pair, at batch 64, 32x32x3, 100 classes,
mixup on, interleaved in one process:

- `ours`: `keras_mixkd.Distiller` (Hinton KD, T=4, 0.1·CE + 0.9·KD), compiled
  with Keras's defaults;
- `floor`: the teacher's inference on the batch plus the student's plain
  training step (soft-label cross-entropy), each timed alone and summed: what
  any distiller must at least spend;
- `keras`: `keras.distillation.Distiller` with the same models,
  `LogitsDistillation(temperature=4)`, `student_loss_weight=0.1` and
  `CategoricalCrossentropy(from_logits=True)` on the soft labels;
- `torch`: the plain PyTorch eager loop of `torch_reference.py` (same
  architectures, SGD, mixup, KD loss), as the studies' reference code trains.

The step is timed on one mixup batch already on the device (mixed once by
the library's own `mixup` augmentation), calling the compiled train function
the way `fit` does; the input pipeline is timed apart (`--pipeline`). Ratios
are paired per round: the median over rounds of each round's ratio.

Diagnostics: `--contenders ours_xla` (TensorFlow: ours with
`jit_compile=True` against Keras's CPU default) and `--contenders ours_again`
(an identical second copy of ours: the machine's noise, an A/A test).

Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_distill.py
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/bench_distill.py --quick --pairs resnet56:resnet20
    KERAS_BACKEND=torch .venv/bin/python benchmarks/bench_distill.py --smoke
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets TF_CPP_MIN_LOG_LEVEL before Keras loads)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_mixkd.distill import Distiller  # noqa: E402
from keras_mixkd.models import get_model  # noqa: E402

TEMPERATURE = 4.0
STUDENT_LOSS_WEIGHT = 0.1


def sgd():
    return keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)


def build_pair(teacher_name, student_name, num_classes, image_size=32):
    """A teacher and a student of the zoo (untrained weights cost the same as trained)."""
    shape = (image_size, image_size, 3)
    teacher = get_model(teacher_name, num_classes=num_classes, input_shape=shape)
    student = get_model(student_name, num_classes=num_classes, input_shape=shape)
    return teacher, student


def clone_weights(model, name, num_classes):
    """A fresh instance of the zoo model `name` holding `model`'s weights.

    Each contender gets its own models: on JAX a compiled step donates its
    state buffers, so two steps must never share variables.
    """
    copy = get_model(name, num_classes=num_classes, input_shape=tuple(model.input_shape[1:]))
    copy.set_weights(model.get_weights())
    return copy


def contenders(teacher_name, student_name, args, x, y, label_ids_np, images_np):
    """name -> callable running one step, for one pair."""
    num_classes = args.num_classes
    teacher, student = build_pair(teacher_name, student_name, num_classes, args.image_size)
    jit = args.jit_compile
    steps = {}

    ours = Distiller(
        clone_weights(teacher, teacher_name, num_classes),
        clone_weights(student, student_name, num_classes),
        loss="kd",
        temperature=TEMPERATURE,
        student_loss_weight=STUDENT_LOSS_WEIGHT,
    )
    ours.compile(optimizer=sgd(), jit_compile=jit)
    steps["ours"] = common.KerasTrainStep(ours, x, y)

    if "ours_again" in args.contenders:
        # A second, identical `ours`: the spread between two equal steps (an
        # A/A test) shows how much of a ratio the machine's noise explains.
        again = Distiller(
            clone_weights(teacher, teacher_name, num_classes),
            clone_weights(student, student_name, num_classes),
            loss="kd",
            temperature=TEMPERATURE,
            student_loss_weight=STUDENT_LOSS_WEIGHT,
        )
        again.compile(optimizer=sgd(), jit_compile=jit)
        steps["ours_again"] = common.KerasTrainStep(again, x, y)

    if "ours_xla" in args.contenders:
        # TensorFlow only: the same distiller with XLA on, against Keras's
        # CPU default (off), to check which the default should be.
        xla = Distiller(
            clone_weights(teacher, teacher_name, num_classes),
            clone_weights(student, student_name, num_classes),
            loss="kd",
            temperature=TEMPERATURE,
            student_loss_weight=STUDENT_LOSS_WEIGHT,
        )
        xla.compile(optimizer=sgd(), jit_compile=True)
        steps["ours_xla"] = common.KerasTrainStep(xla, x, y)

    if "keras" in args.contenders:
        keras_teacher = clone_weights(teacher, teacher_name, num_classes)
        theirs = keras.distillation.Distiller(
            teacher=keras_teacher,
            student=clone_weights(student, student_name, num_classes),
            distillation_losses=keras.distillation.LogitsDistillation(temperature=TEMPERATURE),
            student_loss_weight=STUDENT_LOSS_WEIGHT,
        )
        theirs.compile(
            optimizer=sgd(),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        steps["keras"] = common.KerasTrainStep(theirs, x, y)

    # The floor: each part alone, with the same compilation as `ours`.
    plain_student = clone_weights(student, student_name, num_classes)
    plain_student.compile(
        optimizer=sgd(),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    steps["student_step"] = common.KerasTrainStep(plain_student, x, y)
    inference = common.inference_function(teacher, ours.jit_compile)
    steps["teacher_inference"] = lambda: inference(x)

    if "torch" in args.contenders:
        import torch

        from torch_reference import TorchDistillStep

        torch_step = TorchDistillStep(
            teacher_name,
            student_name,
            num_classes=num_classes,
            temperature=TEMPERATURE,
            student_loss_weight=STUDENT_LOSS_WEIGHT,
        )
        # The clean batch and integer labels: the loop mixes them itself, as the reference does.
        torch_images = torch.from_numpy(np.ascontiguousarray(images_np.transpose(0, 3, 1, 2)))
        torch_labels = torch.from_numpy(label_ids_np.astype("int64"))
        steps["torch"] = lambda: torch_step(torch_images, torch_labels)

    return steps, {"ours_jit_compile": bool(ours.jit_compile)}


def bench_pair(teacher_name, student_name, args):
    images, clean, soft_labels, label_ids = common.make_mixed_batch(
        args.batch_size, args.num_classes, image_size=args.image_size, seed=args.seed
    )
    x, y = common.to_device(images), common.to_device(soft_labels)
    start = time.perf_counter()
    steps, info = contenders(teacher_name, student_name, args, x, y, label_ids, clean)
    setup_s = time.perf_counter() - start
    timings = common.interleaved_medians(steps, args.warmup, args.repeats)
    batch = args.batch_size
    med = {name: value["median_s"] for name, value in timings.items()}
    floor_s = med["teacher_inference"] + med["student_step"]
    result = {
        "pair": f"{teacher_name}:{student_name}",
        "backend": keras.backend.backend(),
        "batch_size": batch,
        "setup_s": setup_s,
        "timings": timings,
        "floor_s": floor_s,
        "images_per_s": {name: batch / seconds for name, seconds in med.items()},
        **info,
    }
    result["images_per_s"]["floor"] = batch / floor_s
    result["ours_over_floor_time"] = med["ours"] / floor_s
    if "keras" in med:
        result["ours_over_keras_speed"] = med["keras"] / med["ours"]
    if "torch" in med:
        result["ours_over_torch_speed"] = med["torch"] / med["ours"]
    if "ours_xla" in med:
        result["xla_over_default_speed"] = med["ours"] / med["ours_xla"]
    if "ours_again" in med:
        result["ours_over_ours_again_speed"] = med["ours_again"] / med["ours"]
    result["paired_ratios"] = common.paired_ratios(timings)
    return result


def measure_pipeline(args, teacher_name, student_name, step_seconds):
    """The input pipeline alone, and `fit` fed by it against the bare step.

    `make_dataset` with the library's mixup, normalisation and prefetch, over
    `--pipeline-batches` batches of in-memory images.
    """
    from keras_mixkd.augment import get_augmentation
    from keras_mixkd.data import make_dataset

    batches, batch = args.pipeline_batches, args.batch_size
    rng = np.random.default_rng(args.seed)
    images = rng.random((batches * batch, args.image_size, args.image_size, 3), dtype=np.float32)
    labels = rng.integers(0, args.num_classes, batches * batch).astype("int32")
    dataset = make_dataset(
        images,
        labels,
        batch_size=batch,
        normalization=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        augmentation=get_augmentation("mixup", alpha=1.0, num_classes=args.num_classes),
        num_classes=args.num_classes,
        drop_remainder=True,
    )
    epoch_times = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in dataset:
            pass
        epoch_times.append(time.perf_counter() - start)
    pipeline_s = sorted(epoch_times)[1] / batches

    teacher, student = build_pair(teacher_name, student_name, args.num_classes, args.image_size)
    distiller = Distiller(teacher, student, temperature=TEMPERATURE, student_loss_weight=STUDENT_LOSS_WEIGHT)
    distiller.compile(optimizer=sgd(), jit_compile=args.jit_compile)
    epoch_seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.start)

    # The first epoch traces the step; the second is timed.
    distiller.fit(dataset, epochs=2, verbose=0, callbacks=[EpochTimer()])
    fit_s = epoch_seconds[-1] / batches
    return {
        "pair": f"{teacher_name}:{student_name}",
        "batches": batches,
        "pipeline_images_per_s": batch / pipeline_s,
        "fit_images_per_s": batch / fit_s,
        "step_images_per_s": batch / step_seconds,
        "fit_over_step_time": fit_s / step_seconds,
    }


def print_table(results, pipeline=None):
    header = (
        f"{'backend':<11}{'pair':<22}{'ours':>8}{'floor':>8}{'keras':>8}{'torch':>8}"
        f"{'ours/floor t':>14}{'ours/keras':>12}{'ours/torch':>12}"
    )
    print(
        "images/s (median), batch",
        results[0]["batch_size"] if results else "?",
        "; ratios paired per round (ours/floor in time, the others in speed)",
    )
    print(header)
    for r in results:
        ips = r["images_per_s"]

        def cell(name):
            return f"{ips[name]:8.1f}" if name in ips else f"{'-':>8}"

        paired = r["paired_ratios"]

        def ratio(key):
            return f"{paired[key]:12.2f}" if key in paired else f"{'-':>12}"

        print(
            f"{r['backend']:<11}{r['pair']:<22}{cell('ours')}{cell('floor')}{cell('keras')}"
            f"{cell('torch')}{paired['ours_over_floor_time']:14.3f}{ratio('ours_over_keras_speed')}"
            f"{ratio('ours_over_torch_speed')}"
        )
    for r in results:
        if "ours_over_ours_again_speed" in r:
            print(f"{r['pair']}: A/A, ours against an identical second copy: {r['ours_over_ours_again_speed']:.2f}")
        if "xla_over_default_speed" in r:
            print(
                f"{r['pair']}: ours with jit_compile=True {r['images_per_s']['ours_xla']:.1f} images/s, "
                f"{r['xla_over_default_speed']:.2f} x the default ({r['images_per_s']['ours']:.1f})"
            )
    if pipeline:
        print(
            f"input pipeline ({pipeline['pair']}): make_dataset+mixup alone "
            f"{pipeline['pipeline_images_per_s']:.0f} images/s; fit fed by it "
            f"{pipeline['fit_images_per_s']:.1f} images/s against {pipeline['step_images_per_s']:.1f} "
            f"for the bare step (fit/step time {pipeline['fit_over_step_time']:.2f})"
        )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default=",".join(common.DEFAULT_PAIRS), help="teacher:student,...")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds (default 3)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--quick", action="store_true", help="1 warm-up round, 5 timed rounds")
    parser.add_argument(
        "--smoke", action="store_true", help="resnet8 pair, 16x16 images, batch 8, one round: checks the script runs"
    )
    parser.add_argument(
        "--contenders",
        default="keras,torch",
        help="besides ours and the floor: any of keras,torch,ours_xla,ours_again (default keras,torch; '' for none)",
    )
    parser.add_argument(
        "--jit-compile",
        default="auto",
        type=lambda v: {"true": True, "false": False}.get(v.lower(), v),
        help="jit_compile for every Keras contender: auto (Keras's default), true or false",
    )
    parser.add_argument("--pipeline", action="store_true", help="also time the input pipeline and fit on it (first pair)")
    parser.add_argument("--pipeline-batches", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats = 1, 5
    if args.smoke:
        args.pairs, args.batch_size, args.warmup, args.repeats = ",".join(common.SMOKE_PAIRS), 8, 1, 1
        args.num_classes, args.pipeline_batches, args.image_size = 10, 2, 16
    args.pairs = common.parse_pairs(args.pairs)
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(args.contenders) - {"keras", "torch", "ours_xla", "ours_again"}
    if unknown:
        parser.error(f"--contenders takes keras, torch, ours_xla and ours_again; got {sorted(unknown)}")
    if "ours_xla" in args.contenders and keras.backend.backend() != "tensorflow":
        parser.error("--contenders ours_xla is for the tensorflow backend (JAX always compiles with XLA)")
    return args


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    results = []
    for teacher_name, student_name in args.pairs:
        common.log(f"[{keras.backend.backend()}] {teacher_name} -> {student_name} ...")
        results.append(bench_pair(teacher_name, student_name, args))
    pipeline = None
    if args.pipeline:
        teacher_name, student_name = args.pairs[0]
        step_s = results[0]["timings"]["ours"]["median_s"]
        pipeline = measure_pipeline(args, teacher_name, student_name, step_s)
    print_table(results, pipeline)
    common.write_json(
        args.json,
        {
            "results": results,
            "pipeline": pipeline,
            "machine": common.machine_info(),
            "versions": common.library_versions(),
            "settings": {
                "warmup": args.warmup,
                "repeats": args.repeats,
                "jit_compile": args.jit_compile,
                "batch_size": args.batch_size,
                "image_size": args.image_size,
                "num_classes": args.num_classes,
            },
        },
    )
    return results


if __name__ == "__main__":
    main()
