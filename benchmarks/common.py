"""Helpers shared by the benchmark scripts (benchmark-only, never imported by the library).

Import this module before Keras: it quiets TensorFlow's C++ logs. The
backend is whatever `KERAS_BACKEND` says; `run_all.py` starts one process
per backend.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# PyTorch's OpenMP threads spin while they wait; on a machine shared with other
# jobs (2 cores here) a spinning thread steals the core its partner needs, and
# an eager step gets several times slower. Passive waiting costs little on an
# idle machine. Read once, when libgomp loads: set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCHMARKS_DIR)
DEFAULT_PAIRS = ("resnet56:resnet20", "resnet110:resnet20", "resnet32x4:resnet8x4")
SMOKE_PAIRS = ("resnet8:resnet8",)


def parse_pairs(text):
    """`"resnet56:resnet20,resnet32x4:resnet8x4"` -> `[("resnet56", "resnet20"), ...]`."""
    pairs = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.count(":") != 1:
            raise ValueError(f"A pair is 'teacher:student', e.g. 'resnet56:resnet20'; got {item!r}.")
        teacher, student = (part.strip() for part in item.split(":"))
        pairs.append((teacher, student))
    if not pairs:
        raise ValueError(f"No pair in --pairs {text!r}.")
    return pairs


def machine_info():
    """What the numbers came from: CPU model, cores, RAM, library versions."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "nproc": os.cpu_count(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "Thread(s) per core", "Core(s) per socket", "Socket(s)"):
                info[key.strip()] = value.strip()
    except OSError:
        pass
    try:
        import psutil

        info["ram_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    info["load_average"] = [round(value, 2) for value in os.getloadavg()]
    return info


def library_versions():
    versions = {}
    for name in ("keras", "tensorflow", "jax", "torch", "numpy"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = None
    return versions


def make_mixed_batch(batch_size=64, num_classes=100, image_size=32, alpha=1.0, seed=0):
    """One mixup batch, mixed by the library's own augmentation, as NumPy arrays.

    Returns `(images, clean_images, soft_labels, label_ids)`: `images` mixed with
    `keras_mixkd.augment.get_augmentation("mixup")` in TensorFlow ops (as the
    input pipeline does it), `soft_labels` the dense mixed targets.
    """
    import numpy as np
    import tensorflow as tf

    from keras_mixkd.augment import get_augmentation

    rng = np.random.default_rng(seed)
    # Normalised-image statistics (the pipeline normalises after mixing).
    clean = rng.standard_normal((batch_size, image_size, image_size, 3)).astype("float32")
    label_ids = rng.integers(0, num_classes, batch_size).astype("int32")
    mixup = get_augmentation("mixup", alpha=alpha, num_classes=num_classes, seed=seed)
    mixed = mixup({"images": tf.constant(clean), "labels": tf.constant(label_ids)}, training=True)
    images = np.asarray(mixed["images"], dtype="float32")
    soft_labels = np.asarray(mixed["labels"], dtype="float32")
    return images, clean, soft_labels, label_ids


def to_device(array):
    """A backend tensor, so the timed step does no host->device copy of its own."""
    import keras

    return keras.ops.convert_to_tensor(array)


def _block(value):
    """Waits for an (asynchronous, on JAX) result and returns it as a float."""
    import keras

    if keras.backend.backend() == "jax":
        value.block_until_ready()
    return float(keras.ops.convert_to_numpy(value).reshape(-1)[0])


class KerasTrainStep:
    """`fit`'s inner loop for one batch already in memory, without callbacks.

    Calls `model.train_function` as `fit` does (on JAX, threading the state
    through as `fit` does, without writing it back to the variables each
    step as `train_on_batch` would), then waits for the loss.

    Arguments:
        model: a compiled `keras.Model`.
        x, y: one batch, backend tensors (or a dict of them for `x`).
    """

    def __init__(self, model, x, y):
        import keras

        self.model = model
        self.backend = keras.backend.backend()
        self.data = (x, y, None)
        # Builds the model and its optimizer, traces (and compiles) the step.
        model.train_on_batch(x, y)
        model.make_train_function()
        self.state = None
        if self.backend == "jax":
            self.state = model._get_jax_state(
                trainable_variables=True,
                non_trainable_variables=True,
                optimizer_variables=True,
                metrics_variables=True,
                purge_model_variables=False,
            )

    def __call__(self):
        if self.backend == "jax":
            logs, self.state = self.model.train_function(self.state, iter([self.data]))
        elif self.backend == "torch":
            logs = self.model.train_function([self.data])
        else:
            logs = self.model.train_function(iter([self.data]))
        return _block(logs["loss"])


def inference_function(model, jit_compile):
    """The model's forward pass in inference mode, compiled as its backend compiles a step.

    TensorFlow: `tf.function` (with XLA when `jit_compile`); JAX: `jax.jit` of
    `stateless_call`; PyTorch: eager under `torch.no_grad()`, through
    `keras_mixkd.models.DirectGraphCall` as the `Distiller` runs its teacher.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        forward = tf.function(lambda x: model(x, training=False), jit_compile=bool(jit_compile))
        return lambda x: _block(forward(x)[0, 0])
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def forward(trainable, non_trainable, x):
            logits, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return logits

        return lambda x: _block(forward(trainable, non_trainable, x)[0, 0])
    import torch

    from keras_mixkd.models import direct_call_or_model

    forward = direct_call_or_model(model)  # eager: as the Distiller runs its teacher

    def run(x):
        with torch.no_grad():
            return _block(forward(x, training=False)[0, 0])

    return run


def interleaved_medians(functions, warmup, repeats):
    """Median seconds per call of each function, timed in interleaved rounds.

    Every round calls each function once, in an order rotated from round to
    round, so drifting load on a shared machine hits every contender alike.

    Arguments:
        functions: dict name -> callable taking no argument.
        warmup: untimed rounds first.
        repeats: timed rounds.

    Returns:
        dict name -> {"median_s", "min_s", "times_s"}.
    """
    names = list(functions)
    for _ in range(warmup):
        for name in names:
            functions[name]()
    times = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            functions[name]()
            times[name].append(time.perf_counter() - start)
    return {
        name: {
            "median_s": statistics.median(values),
            "min_s": min(values),
            "times_s": values,
        }
        for name, values in times.items()
    }


def write_json(path, payload):
    if path:
        with open(path, "w") as handle:
            json.dump(payload, handle, indent=1)


def log(message):
    print(message, file=sys.stderr, flush=True)


def paired_ratios(timings):
    """Per-round ratios of ours against each reference, their median over rounds.

    Each round runs every contender back to back, so the median of the
    per-round ratios cancels load that drifts between rounds.
    """
    rounds = {name: value["times_s"] for name, value in timings.items()}
    floor_rounds = [a + b for a, b in zip(rounds["teacher_inference"], rounds["student_step"])]
    ratios = {
        "ours_over_floor_time": statistics.median(o / f for o, f in zip(rounds["ours"], floor_rounds))
    }
    for name, key in (("keras", "ours_over_keras_speed"), ("torch", "ours_over_torch_speed")):
        if name in rounds:
            ratios[key] = statistics.median(t / o for o, t in zip(rounds["ours"], rounds[name]))
    return ratios
