"""Peak resident memory: a distillation run's epochs, and the `keras-mixkd study` command.

Two measurements, each under the current Keras backend:

- `epochs` (default): resnet110 -> resnet20 distillation with `fit` on a
  reduced-size epoch (`--examples` synthetic 32x32x3 images, 100 classes,
  mixup in the `make_dataset` pipeline, batch 64) for `--epochs` epochs. The
  process's resident set size (RSS) is read at the end of every epoch; the
  growth check compares the end of epoch 5 with the end of epoch 2 (target:
  within 5 %). The peak is the process's `ru_maxrss`.
- `study`: the peak RSS of `make demo`'s main job, `keras-mixkd study`, run
  in a temporary runs folder (`--study-args`, e.g. `--smoke` for the quick
  scale). The peak is that of the whole process tree, polled every 0.2 s with
  psutil, and the kernel's `ru_maxrss` of the largest child.

Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_memory.py
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/bench_memory.py --what study
    KERAS_BACKEND=torch .venv/bin/python benchmarks/bench_memory.py --smoke
"""

import argparse
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

import psutil  # noqa: E402

MIB = 2**20


def rss_mib():
    return psutil.Process().memory_info().rss / MIB


def peak_rss_mib():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_epochs(args):
    """RSS at the end of every distillation epoch, and the process's peak."""
    import keras
    import numpy as np

    from keras_mixkd.augment import get_augmentation
    from keras_mixkd.data import make_dataset
    from keras_mixkd.distill import Distiller
    from keras_mixkd.models import get_model

    after_import = rss_mib()
    rng = np.random.default_rng(args.seed)
    size = args.image_size
    images = rng.random((args.examples, size, size, 3), dtype=np.float32)
    labels = rng.integers(0, args.num_classes, args.examples).astype("int32")
    train = make_dataset(
        images,
        labels,
        batch_size=args.batch_size,
        seed=args.seed,
        normalization=((0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),
        augmentation=get_augmentation("mixup", alpha=1.0, num_classes=args.num_classes),
        num_classes=args.num_classes,
        drop_remainder=True,
    )
    distiller = Distiller(
        get_model(args.teacher, num_classes=args.num_classes, input_shape=(size, size, 3)),
        get_model(args.student, num_classes=args.num_classes, input_shape=(size, size, 3)),
        temperature=4.0,
        student_loss_weight=0.1,
    )
    distiller.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    after_build = rss_mib()

    epoch_rss, epoch_seconds = [], []

    class RecordMemory(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.start)
            epoch_rss.append(rss_mib())

    distiller.fit(train, epochs=args.epochs, verbose=0, callbacks=[RecordMemory()])
    result = {
        "what": "epochs",
        "backend": keras.backend.backend(),
        "pair": f"{args.teacher}:{args.student}",
        "examples_per_epoch": args.examples,
        "image_size": size,
        "batch_size": args.batch_size,
        "rss_after_import_mib": after_import,
        "rss_after_build_mib": after_build,
        "epoch_rss_mib": epoch_rss,
        "epoch_seconds": epoch_seconds,
        "peak_rss_mib": peak_rss_mib(),
    }
    if len(epoch_rss) >= 5:
        # Epochs counted from 1: the end of epoch 5 against the end of epoch 2.
        result["growth_epoch5_over_epoch2"] = epoch_rss[4] / epoch_rss[1] - 1.0
    return result


def measure_command(command, poll_seconds=0.2):
    """Runs `command` (a list) and returns its wall time and peak RSS (whole tree)."""
    start = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_tree = 0
    while process.poll() is None:
        try:
            total = process.memory_info().rss
            for child in process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            peak_tree = max(peak_tree, total)
        except psutil.Error:
            pass
        time.sleep(poll_seconds)
    stderr = process.stderr.read().decode(errors="replace")
    seconds = time.perf_counter() - start
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "command": " ".join(shlex.quote(part) for part in command),
        "returncode": process.returncode,
        "seconds": seconds,
        "peak_tree_rss_mib": peak_tree / MIB,
        "peak_child_maxrss_mib": children_peak,
        "stderr_tail": stderr[-2000:] if process.returncode else "",
    }


def study_executable():
    """The venv's `keras-mixkd`, else `python -m keras_mixkd.cli`."""
    candidate = os.path.join(os.path.dirname(sys.executable), "keras-mixkd")
    if os.path.exists(candidate):
        return [candidate]
    return [sys.executable, "-m", "keras_mixkd.cli"]


def measure_study(args):
    import keras_mixkd  # noqa: F401  (fails early if the package is missing)

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as runs_dir:
        command = study_executable() + ["study", "--runs-dir", runs_dir]
        command += shlex.split(args.study_args)
        result = measure_command(command)
    result.update({"what": "study", "backend": backend})
    return result


def print_report(result):
    if result["what"] == "epochs":
        rss = ", ".join(f"{value:.0f}" for value in result["epoch_rss_mib"])
        line = (
            f"[{result['backend']}] {result['pair']} distillation, {result['examples_per_epoch']} "
            f"images/epoch: peak RSS {result['peak_rss_mib']:.0f} MiB (after import "
            f"{result['rss_after_import_mib']:.0f}, after build {result['rss_after_build_mib']:.0f}); "
            f"RSS at each epoch end (MiB): {rss}"
        )
        if "growth_epoch5_over_epoch2" in result:
            growth = result["growth_epoch5_over_epoch2"]
            verdict = "met" if abs(growth) <= 0.05 else "MISSED"
            line += f"; epoch 5 vs 2: {growth:+.1%} (target within 5 %: {verdict})"
        print(line)
    else:
        status = "ok" if result["returncode"] == 0 else f"FAILED (exit {result['returncode']})"
        print(
            f"[{result['backend']}] `{result['command']}`: {status}, {result['seconds']:.0f} s, "
            f"peak RSS {result['peak_tree_rss_mib']:.0f} MiB (process tree, polled), "
            f"ru_maxrss {result['peak_child_maxrss_mib']:.0f} MiB"
        )
        if result["stderr_tail"]:
            print(result["stderr_tail"])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", choices=("epochs", "study"), default="epochs")
    parser.add_argument("--teacher", default="resnet110")
    parser.add_argument("--student", default="resnet20")
    parser.add_argument("--examples", type=int, default=1024, help="images per (reduced) epoch")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--study-args", default="", help="extra arguments of `keras-mixkd study`, e.g. '--smoke'")
    parser.add_argument("--quick", action="store_true", help="512 images per epoch")
    parser.add_argument("--smoke", action="store_true", help="resnet8 -> resnet8, 16 16x16 images, 5 epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.examples = 512
    if args.smoke:
        args.teacher, args.student = "resnet8", "resnet8"
        args.examples, args.batch_size, args.epochs, args.num_classes = 16, 8, 5, 10
        args.image_size = 16
    return args


def main(argv=None):
    args = parse_args(argv)
    result = measure_epochs(args) if args.what == "epochs" else measure_study(args)
    result["machine"] = common.machine_info()
    print_report(result)
    common.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
