"""Same seed, same backend: the same numbers twice; another seed: other numbers.

What a seed fixes: `keras.utils.set_random_seed(seed)` seeds Python, NumPy,
TensorFlow (the augmentations' RNG inside tf.data) and Keras's own seed
generator (weight initialisers, dropout), and `make_dataset(seed=seed)` fixes
the shuffle. `make_dataset` runs a random augmentation one batch at a time, so
its RNG draws come in the same order every run. On CPU that is enough for
bit-identical runs on every backend; the tolerance below (1e-6) only allows
for a summation order the CPU kernels might change between library versions.
See docs/robustness.md for GPUs.
"""

import keras
import numpy as np
import pytest

from keras_mixkd import Distiller
from keras_mixkd.augment import get_augmentation
from keras_mixkd.augment._keras_cv import keras_cv_import_error
from keras_mixkd.data import make_dataset
from keras_mixkd.models import get_model
from tests.backends import runs_one_backend_tests

EPOCHS = 2
BATCH = 64
EXAMPLES = 128
STEPS = EXAMPLES // BATCH
TOLERANCE = 1e-6


def train_ds(splits, seed, augmentation, teacher_sees="same"):
    x, y = splits.x_train[:EXAMPLES], splits.y_train[:EXAMPLES]
    return make_dataset(x, y, batch_size=BATCH, seed=seed, normalization=splits.normalization,
                        augmentation=augmentation, num_classes=splits.num_classes, teacher_sees=teacher_sees)


def held_out(splits):
    mean, std = (np.asarray(v, "float32") for v in splits.normalization)
    return ((splits.x_val - mean) / std).astype("float32"), splits.y_val


def numbers(model, history, splits):
    """The metrics a study reports, plus a weight checksum: what must repeat."""
    x_val, y_val = held_out(splits)
    logits = keras.ops.convert_to_numpy(model(x_val, training=False))  # eager: no compile per model
    weights = np.concatenate([np.ravel(w) for w in model.get_weights()]).astype("float64")
    out = {f"{name}_{i}": v for name, values in history.items() for i, v in enumerate(values)}
    out["val_accuracy"] = float(np.mean(np.argmax(logits, 1) == y_val))
    out["val_logits_sum"] = float(np.sum(logits, dtype=np.float64))
    out["weights_sum"] = float(weights.sum())
    out["weights_abs_sum"] = float(np.abs(weights).sum())
    return out


def train_teacher(splits, seed):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    teacher = get_model("digits_cnn", splits.num_classes, input_shape=splits.input_shape)
    mixup = get_augmentation("mixup", num_classes=splits.num_classes, alpha=1.0)
    teacher.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                    loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = teacher.fit(train_ds(splits, seed, mixup), epochs=EPOCHS, verbose=0).history
    return teacher, numbers(teacher, history, splits)


def distil(splits, teacher, seed):
    keras.utils.set_random_seed(seed)
    student = get_model("digits_cnn_small", splits.num_classes, input_shape=splits.input_shape)
    distiller = Distiller(teacher, student, temperature=4.0, student_loss_weight=0.1)
    distiller.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    partial = get_augmentation("partial_mixup", num_classes=splits.num_classes, fraction=0.5, alpha=1.0)
    history = distiller.fit(train_ds(splits, seed, partial, teacher_sees="clean"), epochs=EPOCHS,
                            verbose=0).history
    return numbers(student, history, splits)


def assert_same(first, second):
    assert first.keys() == second.keys()
    for key in first:
        assert abs(first[key] - second[key]) <= TOLERANCE * max(1.0, abs(first[key])), (key, first[key], second[key])


def assert_different(first, second):
    changed = [key for key in first if abs(first[key] - second[key]) > 1e-4 * max(1.0, abs(first[key]))]
    assert "weights_sum" in changed and "loss_0" in changed, changed


def test_teacher_with_mixup_and_student_with_partial_mixup_repeat_per_seed(splits):
    teacher, first = train_teacher(splits, seed=0)
    _, again = train_teacher(splits, seed=0)
    _, other = train_teacher(splits, seed=1)
    assert_same(first, again)
    assert_different(first, other)

    # Distil three times from the same (first) teacher; it stays frozen and unchanged.
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student_first = distil(splits, teacher, seed=0)
    student_again = distil(splits, teacher, seed=0)
    student_other = distil(splits, teacher, seed=1)
    assert_same(student_first, student_again)
    assert_different(student_first, student_other)
    for before, after in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_the_augmented_stream_repeats_per_seed(splits):
    """The batches themselves: same seed, same mixed images and soft labels, epoch after epoch."""

    def stream(seed):
        keras.utils.set_random_seed(seed)
        cutmix = get_augmentation("mixup_cutmix", num_classes=splits.num_classes)
        dataset = train_ds(splits, seed, cutmix)
        return [(np.asarray(x), np.asarray(y)) for _ in range(2) for x, y in dataset]

    first, again, other = stream(3), stream(3), stream(4)
    assert len(first) == len(again) == 2 * STEPS
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert any(not np.array_equal(x1, x2) for (x1, _), (x2, _) in zip(first, other))
    # Two epochs of one run differ (a new shuffle and new mixing each epoch).
    assert any(not np.array_equal(first[i][0], first[i + STEPS][0]) for i in range(STEPS))


@pytest.mark.slow
def test_every_augmentation_repeats_across_processes():
    """Each recipe (alone, in the recipes' combinations, each implementation): same seed, same batches in
    a fresh process and in this one (after the other tests it ran); the second seed, other batches."""
    import json
    import os
    import subprocess
    import sys

    from tests import _augmentation_stream

    script = os.path.join(os.path.dirname(__file__), "_augmentation_stream.py")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="3")
    # Another hash seed than this process's, as two runs of the command line get, and another number of
    # TensorFlow inter-op threads (the order in which parallel map iterations draw): nothing may depend
    # on them. This process also ran other random ops before the recipes (the tests before this one,
    # and `extra_random_ops`), as code before them would.
    hash_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    interop_threads = "4" if os.environ.get("TF_NUM_INTEROP_THREADS") == "1" else "1"
    # The second seed's streams (that the seed matters) under one backend: the seeds reach every recipe by
    # the same `layer_seed` under each (about 4 s a backend).
    seeds = ["0", "1"] if runs_one_backend_tests() else ["0"]
    fresh = subprocess.Popen([sys.executable, script, *seeds], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(env, PYTHONHASHSEED=hash_seed, TF_NUM_INTEROP_THREADS=interop_threads),
                             text=True)
    try:
        _augmentation_stream.extra_random_ops()
        second = _augmentation_stream.digests([0])
    finally:
        stdout, stderr = fresh.communicate(timeout=600)
    assert fresh.returncode == 0, stderr[-3000:]
    first = json.loads(stdout.strip().splitlines()[-1])
    from keras_mixkd.augment import list_augmentations

    names = {key.split("/")[0] for key in first}
    assert set(list_augmentations()) <= names
    differ = sorted(key for key in second if first[key] != second[key])
    assert {"augmix/0", "augmix,implementation=keras/0"} <= set(second)
    assert not differ, f"same seed, other numbers in another process: {differ}"
    # The seed matters: every recipe's stream (shuffle and draws) changes with it.
    from tests._augmentation_stream import FIRST_SEED_ONLY

    if runs_one_backend_tests():
        assert all(first[f"{name}/0"] != first[f"{name}/1"] for name in names - FIRST_SEED_ONLY)


@pytest.mark.skipif(keras_cv_import_error() is not None, reason="KerasCV cannot be imported with this Keras")
def test_keras_cv_augmix_repeats_under_any_thread_timing():
    """KerasCV's AugMix maps over the images and loops over chains with parallel iterations; its draws
    came from stateful ops in the order the threads reached them, so one seed gave other batches from
    run to run, within one process too (before the fix: 4 runs here, 4 different streams). Each run
    builds the recipe anew after `set_random_seed(5)` and must give the same batches."""
    import hashlib

    rng = np.random.default_rng(0)
    images = rng.random((32, 12, 12, 3)).astype("float32")
    labels = rng.integers(0, 10, 32)

    def digest():
        keras.utils.set_random_seed(5)
        dataset = make_dataset(images, labels, batch_size=16, seed=5, augmentation=get_augmentation("augmix"),
                               num_classes=10)
        out = hashlib.sha256()
        for _ in range(2):
            for x, _ in dataset:
                out.update(np.asarray(x).tobytes())
        return out.hexdigest()

    digests = [digest() for _ in range(4)]
    assert len(set(digests)) == 1, digests
