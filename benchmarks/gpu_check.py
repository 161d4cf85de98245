"""Does the library run on a GPU node without TensorFlow? One backend per process.

What a GPU node of an air-gapped cluster has: Python with JAX and PyTorch
built for CUDA, scikit-learn, h5py and rich, but no Keras, no TensorFlow and no
network. `gpu_check.sh` installs Keras from wheels brought along and runs this
script once per backend (`KERAS_BACKEND=jax|torch`). It checks, with NumPy
inputs to `fit` (no tf.data), the parts of the library that need no
TensorFlow:

1. the `Distiller` step on zoo models (teacher inference + student step);
2. the `LatentMeasures` callback every epoch, and its cost as a share of
   the epoch (the callback's own time, measured inside `fit`);
3. class-discrimination at N = 50,000, D = 512 (the size of CIFAR's training
   split and ResNet-18's penultimate width), against a float64 NumPy closed
   form;

and confirms that the tensors live on the accelerator: the student's weights
after `fit`, and the result of the measure. TensorFlow is made unimportable
(`--allow-tensorflow` lifts that), so a part that still pulls it in fails here
as it would on the node.

Usage:

    KERAS_BACKEND=jax python benchmarks/gpu_check.py            # on the GPU node
    KERAS_BACKEND=torch python benchmarks/gpu_check.py --smoke  # seconds, on a CPU

The last line printed is one JSON object with every number.
"""

import argparse
import json
import os
import statistics
import sys
import time

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_DIR not in sys.path:
    sys.path.insert(0, REPO_DIR)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _is_tensorflow(name):
    return name == "tensorflow" or name.startswith("tensorflow.")


def block_tensorflow():
    """Makes `import tensorflow` fail, as on a node that does not have it.

    Both import statements and `importlib.import_module` (Keras's lazy
    modules) are refused. `importlib.util.find_spec` is left alone: PyTorch
    probes it for many packages at import and does not import them.
    """
    import builtins
    import importlib

    real_import, real_import_module = builtins.__import__, importlib.import_module

    def refuse(name):
        raise ModuleNotFoundError(f"No module named {name!r} (gpu_check: TensorFlow is not on the node)")

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and _is_tensorflow(name):
            refuse(name)
        return real_import(name, globals, locals, fromlist, level)

    def guarded_import_module(name, package=None):
        if _is_tensorflow(name):
            refuse(name)
        return real_import_module(name, package)

    builtins.__import__ = guarded_import
    importlib.import_module = guarded_import_module


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds on a CPU (default: off)")
    parser.add_argument("--pair", default=None,
                        help="teacher:student zoo models (default resnet110:resnet20; resnet8:resnet8 with --smoke)")
    parser.add_argument("--examples", type=int, default=None,
                        help="training examples per epoch (default 10000; 256 with --smoke)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs after the warm-up one (default 3; 2 with --smoke)")
    parser.add_argument("--cd-examples", type=int, default=None, help="N of the CD check (default 50000; 2000 with --smoke)")
    parser.add_argument("--cd-dims", type=int, default=None, help="D of the CD check (default 512; 64 with --smoke)")
    parser.add_argument("--allow-tensorflow", action="store_true",
                        help="do not block `import tensorflow` (default: blocked, as on the node)")
    parser.add_argument("--require-gpu", action="store_true",
                        help="fail unless the backend's default device is a GPU (default: report only)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.pair = args.pair or ("resnet8:resnet8" if smoke else "resnet110:resnet20")
    args.examples = args.examples or (256 if smoke else 10000)
    args.epochs = args.epochs or (2 if smoke else 3)
    args.cd_examples = args.cd_examples or (2000 if smoke else 50000)
    args.cd_dims = args.cd_dims or (64 if smoke else 512)
    return args


def device_of(tensor):
    """Where a backend tensor (or a Keras variable's value) lives, as text."""
    value = getattr(tensor, "value", tensor)
    backend = os.environ.get("KERAS_BACKEND", "")
    if backend == "jax":
        devices = value.devices() if hasattr(value, "devices") else {value.device}
        return ",".join(sorted(str(d) for d in devices))
    if backend == "torch":
        return str(value.device)
    return str(getattr(value, "device", "cpu"))


def accelerator_name():
    """The backend's default device, e.g. "cuda:0 (NVIDIA H200)" or "cpu"."""
    backend = os.environ.get("KERAS_BACKEND", "")
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}:{device.id} ({getattr(device, 'device_kind', '')})"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
        return "cpu"
    return "unknown"


def on_accelerator(device_text):
    text = device_text.lower()
    return "cuda" in text or "gpu" in text


def numpy_class_discrimination(features, labels):
    """Float64 closed form of the CD metric, written from its definition."""
    import numpy as np

    features = features.astype(np.float64)
    std = features.std(axis=0)
    std[std == 0] = 1.0
    z = 0.5 * (features - features.mean(axis=0)) / std
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    classes = np.unique(labels)
    sums = np.stack([u[labels == c].sum(axis=0) for c in classes])
    counts = np.array([(labels == c).sum() for c in classes], dtype=np.float64)
    intra = (np.sum(sums**2, axis=1) - counts) / (counts * (counts - 1))
    inter = (sums @ sums.T) / np.outer(counts, counts)
    upper = np.triu_indices(len(classes), 1)
    return (intra.mean() - inter[upper].mean()) / np.sqrt(u.shape[1])


def main(argv=None):
    args = parse_args(argv)
    if not args.allow_tensorflow:
        block_tensorflow()
    import keras
    import numpy as np

    import keras_mixkd
    from keras_mixkd import metrics
    from keras_mixkd.callbacks import LatentMeasures
    from keras_mixkd.models import get_model

    backend = keras.backend.backend()
    accelerator = accelerator_name()
    print(f"gpu_check · backend {backend} · keras {keras.__version__} · keras-mixkd {keras_mixkd.__version__} "
          f"· default device {accelerator} · tensorflow {'allowed' if args.allow_tensorflow else 'blocked'}")
    if args.require_gpu and not on_accelerator(accelerator):
        raise SystemExit(f"gpu_check: --require-gpu, but the {backend} backend's default device is {accelerator}.")

    teacher_name, student_name = args.pair.split(":")
    num_classes, batch_size = 100, 64
    rng = np.random.default_rng(0)
    x = rng.random((args.examples, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, num_classes, args.examples)
    held_x = x[: min(1000, args.examples)]
    held_y = y[: len(held_x)]

    keras.utils.set_random_seed(0)
    teacher = get_model(teacher_name, num_classes)
    student = get_model(student_name, num_classes)
    distiller = keras_mixkd.Distiller(teacher, student, loss="standardized")
    distiller.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))

    class TimedLatentMeasures(LatentMeasures):
        """`LatentMeasures` that also keeps the seconds each epoch's measuring took."""

        seconds = []

        def on_epoch_end(self, epoch, logs=None):
            start = time.perf_counter()
            super().on_epoch_end(epoch, logs)
            self.seconds.append(time.perf_counter() - start)

    class EpochTimer(keras.callbacks.Callback):
        seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    measures = TimedLatentMeasures(held_x, held_y, measures=("class_discrimination", "accuracy",
                                                             "expected_calibration_error"))
    timer = EpochTimer()
    # The timer comes last: its epoch time includes the callback's measuring.
    history = distiller.fit(x, y, batch_size=batch_size, epochs=1 + args.epochs, verbose=0,
                            callbacks=[measures, timer])
    # The first epoch compiles; the medians are over the others.
    epoch_s = statistics.median(timer.seconds[1:])
    callback_s = statistics.median(measures.seconds[1:])
    steps = int(np.ceil(args.examples / batch_size))
    weight_device = device_of(student.trainable_weights[0])
    teacher_device = device_of(teacher.weights[0])
    cd_logged = history.history["heldout_class_discrimination"][-1]

    features = rng.standard_normal((args.cd_examples, args.cd_dims)).astype(np.float32)
    cd_labels = rng.integers(0, 10, args.cd_examples)
    features[np.arange(args.cd_examples), cd_labels % args.cd_dims] += 2.0  # some class structure
    device_features = keras.ops.convert_to_tensor(features)
    device_labels = keras.ops.convert_to_tensor(cd_labels.astype("int32"))
    cd_value = metrics.class_discrimination(device_features, device_labels)  # warm-up, compiles
    times = []
    for _ in range(5):
        start = time.perf_counter()
        cd_value = metrics.class_discrimination(device_features, device_labels)
        float(keras.ops.convert_to_numpy(cd_value))  # waits for the device
        times.append(time.perf_counter() - start)
    # The measure returns a Python float; its keras.ops work runs where its inputs live.
    cd_device = device_of(device_features)
    cd_reference = numpy_class_discrimination(features, cd_labels)
    cd_error = abs(float(keras.ops.convert_to_numpy(cd_value)) - cd_reference)

    result = {
        "backend": backend,
        "device": accelerator,
        "pair": args.pair,
        "batch_size": batch_size,
        "steps_per_epoch": steps,
        "epoch_s": epoch_s,
        "images_per_s": args.examples / epoch_s,
        "callback_s": callback_s,
        "callback_share_of_epoch": callback_s / epoch_s,
        "heldout_examples": len(held_x),
        "heldout_class_discrimination_last": float(cd_logged),
        "student_weights_on": weight_device,
        "teacher_weights_on": teacher_device,
        "cd_examples": args.cd_examples,
        "cd_dims": args.cd_dims,
        "cd_median_s": statistics.median(times),
        "cd_on": cd_device,
        "cd_abs_error_vs_float64": cd_error,
        "tensorflow_imported": "tensorflow" in sys.modules,
        "all_on_accelerator": all(on_accelerator(d) for d in (weight_device, teacher_device, cd_device)),
    }
    rows = [
        ("Distiller epoch (median, s)", f"{epoch_s:.3f}", f"{steps} steps of {batch_size}, {args.pair}"),
        ("  images / s", f"{result['images_per_s']:.0f}", "teacher inference + student step + callback"),
        ("LatentMeasures per epoch (s)", f"{callback_s:.3f}", f"{len(held_x)} held-out images"),
        ("  share of the epoch", f"{100 * result['callback_share_of_epoch']:.1f} %", ""),
        (f"CD at N={args.cd_examples}, D={args.cd_dims} (s)", f"{result['cd_median_s']:.4f}",
         f"|error| vs float64 {cd_error:.1e}"),
        ("student weights on", weight_device, ""),
        ("teacher weights on", teacher_device, ""),
        ("CD inputs on", cd_device, "keras.ops run where their inputs live"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")
    if cd_error > 1e-4:
        raise SystemExit(f"gpu_check: CD differs from the float64 reference by {cd_error:.2e}.")
    if not args.allow_tensorflow and result["tensorflow_imported"]:
        raise SystemExit("gpu_check: TensorFlow was imported although it is blocked.")
    if args.require_gpu and not result["all_on_accelerator"]:
        raise SystemExit(f"gpu_check: not every tensor is on the GPU: {rows[5:]}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
