"""Data-parallel teacher training and distillation on several devices.

One option, `data_parallel(devices)`, on the engine each backend has:

- JAX: `keras.distribution.DataParallel`. Variables are replicated, each batch
  is split along its first axis, and the step is one XLA program over the
  global batch: losses, metrics and batch-norm statistics are those of the
  global batch.
- TensorFlow: `tf.distribute.MirroredStrategy`. Each replica runs the step on
  its slice of the batch; gradients are summed across replicas, so every
  replica's loss is divided by the number of replicas (Keras does it for its
  compiled losses, the `Distiller` for its own), and metrics are summed
  across replicas before they are read. Batch normalisation in training mode
  uses each replica's own slice (as PyTorch's DDP without SyncBatchNorm);
  the frozen teacher runs in inference mode and is not affected.
- PyTorch: refused. Keras 3.15 has no multi-device training for PyTorch
  (`keras.distribution` is JAX-only, `tf.distribute` TensorFlow-only).

Models, the `Distiller`, `compile`, `fit`, `evaluate` and `predict` all go
inside the `with` block. The global batch size should be a multiple of the
number of devices (on JAX a batch must split evenly; use
`drop_remainder=True` or a dataset size that divides).
"""

import contextlib
import os

XLA_HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


_MIRRORED_STRATEGIES = {}

# The device counts of the `data_parallel` scopes entered and not yet left (innermost last).
_ACTIVE_COUNTS = []


class DataParallelScope:
    """What `data_parallel` set up: the backend, the devices and the engine.

    Arguments:
        backend: The Keras backend.
        devices: Names of the devices used (one entry when not distributed).
        engine: The `keras.distribution.DataParallel` (JAX), the
            `tf.distribute.MirroredStrategy` (TensorFlow), or `None` on one
            device.

    Example:

    ```python
    with data_parallel(2) as scope:
        print(scope.num_devices, scope.devices)   # 2 ['cpu:0', 'cpu:1']
    ```
    """

    def __init__(self, backend, devices, engine=None):
        self.backend = backend
        self.devices = list(devices)
        self.engine = engine

    @property
    def num_devices(self):
        return len(self.devices)

    def __repr__(self):
        engine = type(self.engine).__name__ if self.engine is not None else None
        return (f"DataParallelScope(backend={self.backend!r}, devices={self.devices!r}, "
                f"engine={engine})")


def _check_devices(devices):
    if devices is None:
        return 1
    if isinstance(devices, bool) or not isinstance(devices, (int, list, tuple)):
        raise TypeError(
            f"`devices` must be a number of devices (int) or a list of device names; "
            f"got {type(devices).__name__}: {devices!r}."
        )
    if isinstance(devices, int):
        if devices < 1:
            raise ValueError(f"`devices` must be at least 1; got devices={devices}.")
        return devices
    if not devices or not all(isinstance(name, str) for name in devices):
        raise ValueError(
            f"`devices` as a list must hold one or more device names such as 'gpu:0'; "
            f"got {devices!r}."
        )
    if len(set(devices)) != len(devices):
        raise ValueError(f"`devices` names a device twice: {devices!r}.")
    return list(devices)


def _pick(wanted, available, backend, hint):
    """The first `wanted` devices of `available`, or the named ones."""
    if isinstance(wanted, int):
        if wanted > len(available):
            raise ValueError(
                f"{wanted} devices asked for, but the {backend} backend sees "
                f"{len(available)}: {available}. {hint}"
            )
        return available[:wanted]
    missing = [name for name in wanted if name not in available]
    if missing:
        raise ValueError(
            f"Unknown devices {missing} for the {backend} backend; available: {available}."
        )
    return wanted


def available_devices():
    """Device names the current backend can train on (accelerators first).

    Example:

    ```python
    available_devices()   # ['cpu:0'] on a laptop, ['gpu:0', 'gpu:1'] on two GPUs
    ```
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return list(keras.distribution.list_devices())
    if backend == "tensorflow":
        import tensorflow as tf

        for kind in ("TPU", "GPU", "CPU"):
            found = tf.config.list_logical_devices(kind)
            if found:
                return [_tf_short_name(device.name) for device in found]
        return []
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    return ["cpu:0"]


def _tf_short_name(name):
    # "/job:localhost/replica:0/task:0/device:CPU:1" -> "cpu:1"
    kind, index = name.split("device:")[-1].split(":")
    return f"{kind.lower()}:{index}"


def data_parallel(devices=None):
    """Context manager for data-parallel training on several devices.

    Build the teacher and the student, create and compile the `Distiller`
    (or the teacher alone), and call `fit`/`evaluate`/`predict` inside the
    block. With `devices` of `None` or `1` nothing changes: the same code
    runs on one device.

    Arguments:
        devices: `None` or `1` (one device), an int `N` (the first `N`
            devices, accelerators before CPUs), or a list of device names
            such as `["gpu:0", "gpu:1"]` (see `available_devices()`).

    Returns:
        A context manager; `with data_parallel(2) as scope:` gives a
        `DataParallelScope` naming the devices and the engine.

    Raises:
        ValueError: On PyTorch with more than one device; when more devices
            are asked for than the backend sees.

    For tests and trials on one CPU, virtual devices must be requested
    before the backend starts: on JAX, the environment variable
    `XLA_FLAGS=--xla_force_host_platform_device_count=2` before JAX is
    imported; on TensorFlow, `tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)` before TensorFlow
    runs anything (see `request_cpu_devices`).

    Example:

    ```python
    from keras_mixkd.distribute import data_parallel

    with data_parallel(2):
        teacher = keras.saving.load_model("teacher.keras")
        student = get_model("resnet20", num_classes=100)
        distiller = Distiller(teacher, student)
        distiller.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        distiller.fit(train_ds, epochs=240)   # global batch split over 2 devices
    ```
    """
    wanted = _check_devices(devices)
    import keras

    backend = keras.backend.backend()
    if wanted == 1:
        return _single_device(DataParallelScope(backend, available_devices()[:1]))
    if backend == "torch":
        raise ValueError(
            f"Training on several devices (devices={devices!r}) is not available on the "
            "PyTorch backend: Keras 3.15 supports data parallelism through "
            "keras.distribution on JAX and tf.distribute on TensorFlow only. Use "
            "KERAS_BACKEND=jax or tensorflow (`--backend` on the command line), or one device."
        )
    if backend == "jax":
        chosen = _pick(wanted, available_devices(), backend,
                       f"On CPU, set XLA_FLAGS={XLA_HOST_DEVICES_FLAG}=N before JAX starts "
                       "(keras_mixkd.distribute.request_cpu_devices(N)).")
        distribution = keras.distribution.DataParallel(devices=chosen)
        return _engine_scope(distribution.scope(), DataParallelScope(backend, chosen, distribution))
    import tensorflow as tf

    chosen = _pick(wanted, available_devices(), backend,
                   "On CPU, call keras_mixkd.distribute.request_cpu_devices(N) before "
                   "TensorFlow runs anything.")
    # One strategy per device set for the whole process: a second MirroredStrategy
    # reuses the first one's collective instance keys, and its all-reduce then
    # fails on the first model's shapes (a study trains many models in turn).
    key = tuple(chosen)
    if key not in _MIRRORED_STRATEGIES:
        _MIRRORED_STRATEGIES[key] = tf.distribute.MirroredStrategy(
            devices=[f"/{name.upper()}" for name in chosen])
    strategy = _MIRRORED_STRATEGIES[key]
    return _engine_scope(strategy.scope(), DataParallelScope(backend, chosen, strategy))


@contextlib.contextmanager
def _single_device(scope):
    yield scope


@contextlib.contextmanager
def _engine_scope(engine_context, scope):
    with engine_context:
        _ACTIVE_COUNTS.append(scope.num_devices)
        try:
            yield scope
        finally:
            _ACTIVE_COUNTS.pop()


def active_device_count():
    """The number of devices of the innermost `data_parallel` scope entered (1 outside any).

    Example:

    ```python
    with data_parallel(2):
        active_device_count()   # 2
    ```
    """
    return _ACTIVE_COUNTS[-1] if _ACTIVE_COUNTS else 1


def check_batch_size(batch_size, devices=None, where="the batch size"):
    """Refuse a global batch size that does not split evenly over the devices.

    Data-parallel training gives each device an equal slice of every batch
    (JAX cannot shard an uneven one; on TensorFlow the replicas would see
    slices of different sizes). Checked on every backend.

    Arguments:
        batch_size: examples per step, over all devices.
        devices: the device count; None: `active_device_count()`.
        where: what the batch size is called in the message (a flag, a key).

    Example:

    ```python
    check_batch_size(64, 2)   # fine
    check_batch_size(64, 3)   # ValueError: ... 64 does not divide by 3 devices ...
    ```
    """
    count = active_device_count() if devices is None else devices
    if count and count > 1 and batch_size % count:
        lower = batch_size - batch_size % count
        near = " or ".join(str(size) for size in (lower, lower + count) if size > 0)
        raise ValueError(
            f"{where} {batch_size} does not divide by {count} devices: data-parallel training gives every "
            f"device an equal slice of each batch. Use a batch size that divides by {count} (e.g. "
            f"{near}: the recipe's data.batch_size), or another --devices."
        )


def check_real_devices(devices):
    """Refuse `devices` > 1 unless the backend sees that many accelerators (GPUs, TPUs).

    Several devices on a CPU are virtual (`request_cpu_devices`): they split
    its cores and train no faster, which a user asks for explicitly
    (`--virtual-devices` on the command line), never by default. Starts the
    backend; call it where the backend may start.

    Example:

    ```python
    check_real_devices(2)   # ValueError on a machine without 2 accelerators
    ```
    """
    wanted = _check_devices(devices)
    count = wanted if isinstance(wanted, int) else len(wanted)
    if count <= 1:
        return
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        return  # data_parallel refuses several devices on PyTorch, with its own message
    accelerators = [name for name in available_devices() if not name.startswith("cpu")]
    if len(accelerators) < count:
        seen = f"{len(accelerators)}: {accelerators}" if accelerators else "none (this machine trains on its CPU)"
        raise ValueError(
            f"--devices {count} needs {count} accelerators, but the {backend} backend sees {seen}. Use "
            f"--devices {max(1, len(accelerators))}, or add --virtual-devices to split the CPU into {count} "
            "virtual devices (a trial of data-parallel training: no faster than one)."
        )


def request_cpu_devices(count):
    """Asks the backend to show `count` virtual CPU devices (for trials and tests).

    Must run before the backend starts: on JAX it sets `XLA_FLAGS` (JAX must
    not be imported yet), on TensorFlow it splits the CPU into logical
    devices (TensorFlow must not have run anything yet). PyTorch needs
    nothing (it cannot train on several devices anyway).

    Arguments:
        count: Number of CPU devices, >= 1.

    Example:

    ```python
    import os
    os.environ["KERAS_BACKEND"] = "jax"
    from keras_mixkd.distribute import request_cpu_devices
    request_cpu_devices(2)          # before anything imports jax
    import keras
    ```
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"`count` must be an int >= 1; got {count!r}.")
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    import sys

    if backend == "jax":
        if "jax" in sys.modules:
            import jax

            if jax.device_count("cpu") >= count:
                return
            raise ValueError(
                f"JAX is already running with {jax.device_count('cpu')} CPU device(s); "
                f"request_cpu_devices({count}) must run before JAX is imported."
            )
        flags = [flag for flag in os.environ.get("XLA_FLAGS", "").split()
                 if not flag.startswith(XLA_HOST_DEVICES_FLAG)]
        # First: XLA stops reading XLA_FLAGS at a token without "--" (such as the widely used
        # "intra_op_parallelism_threads=1" of `--threads 1`), so a flag after one would be lost.
        os.environ["XLA_FLAGS"] = " ".join([f"{XLA_HOST_DEVICES_FLAG}={count}"] + flags)
    elif backend == "tensorflow":
        import tensorflow as tf

        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )
        except RuntimeError as error:  # TensorFlow is already initialised.
            if len(tf.config.list_logical_devices("CPU")) >= count:
                return
            raise ValueError(
                f"TensorFlow already runs with {len(tf.config.list_logical_devices('CPU'))} "
                f"CPU device(s); request_cpu_devices({count}) must run before TensorFlow "
                f"runs anything ({error})."
            ) from None


def training_scope(devices=None, precision="float32"):
    """Devices and precision for everything built and trained inside.

    `data_parallel(devices)` and `keras_mixkd.precision.precision(policy)`
    together; both are checked before anything is entered. Note that
    `keras.backend.clear_session()` forgets both (the dtype policy, the JAX
    distribution and the `tf.distribute` strategy): a loop that clears the
    session between runs enters a new `training_scope` after each clear.

    Arguments:
        devices: As for `data_parallel`.
        precision: `"float32"`, `"mixed_float16"` or `"mixed_bfloat16"`.

    Returns:
        A context manager giving a `DataParallelScope`.

    Example:

    ```python
    with training_scope(devices=2, precision="mixed_bfloat16"):
        teacher = get_model("resnet56", 100)
        teacher.compile(optimizer="sgd", loss=..., jit_compile=True)
        teacher.fit(train_ds, epochs=240)
    ```
    """
    from keras_mixkd import precision as precision_module

    precision_module.check_policy(precision)
    return _combined(precision_module.precision(precision), data_parallel(devices))


@contextlib.contextmanager
def _combined(precision_context, devices_context):
    with precision_context, devices_context as scope:
        yield scope
