"""Run by tests/test_determinism.py in a fresh process: a digest of every augmentation's stream.

`python tests/_augmentation_stream.py [--extra-random-ops] SEED [SEED ...]` prints one
JSON object, `"<recipe>/<seed>" -> sha256 of two epochs of a small pipeline's batches`.
`--extra-random-ops` first runs unseeded TensorFlow random ops and draws from the
global generator, as code before the recipes would: nothing may depend on them.
"""

import hashlib
import json
import sys

import keras
import numpy as np

from keras_mixkd.augment import get_augmentation
from keras_mixkd.augment import list_augmentations
from keras_mixkd.data import make_dataset

NUM_CLASSES = 10
NEEDS_CLASSES = {"label_smoothing", "mixup", "cutmix", "mixup_cutmix", "partial_mixup", "student_side_mixup"}
# Recipes that mix the teacher's cached logits: their pipeline carries them, the teacher seeing clean images.
NEEDS_TEACHER_LOGITS = {"student_side_mixup"}

# (recipe names, options): every recipe alone, the recipes' combinations, the other implementations.
SPECS = [([name], {}) for name in list_augmentations()] + [
    (["standard", "mixup"], {}),
    (["standard", "cutout"], {}),
    (["standard", "cutmix"], {}),
    (["standard", "mixup_cutmix"], {}),
    (["standard", "partial_mixup"], {"fraction": 0.1}),
    (["standard", "label_smoothing"], {}),
    (["mixup"], {"mode": "batch"}),
    (["mixup_cutmix"], {"implementation": "keras"}),
    (["augmix"], {"implementation": "keras"}),
]


def key(names, options):
    return "+".join(names) + "".join(f",{k}={v}" for k, v in sorted(options.items()))


# The slowest to trace; their seed dependence goes through the same `layer_seed` as cutout's.
# (Keras core's RandAugment is left out: it takes ~40 s to trace under JAX, see tests/test_augment.py.)
FIRST_SEED_ONLY = {"randaugment", "augmix", "augmix,implementation=keras"}


def digests(seeds):
    rng = np.random.default_rng(0)
    images = rng.random((16, 12, 12, 3)).astype("float32")  # RGB: RandAugment's colour ops need 3 channels
    labels = rng.integers(0, NUM_CLASSES, 16)
    teacher = {"teacher_logits": rng.normal(size=(16, NUM_CLASSES)).astype("float32"), "teacher_sees": "clean"}
    out = {}
    for seed in seeds:
        for names, options in SPECS:
            if seed != seeds[0] and key(names, options) in FIRST_SEED_ONLY:
                continue
            keras.utils.set_random_seed(seed)
            if NEEDS_CLASSES & set(names):
                options = dict(options, num_classes=NUM_CLASSES)
            aug = get_augmentation(names, **options)
            dataset = make_dataset(images, labels, batch_size=8, seed=seed, augmentation=aug,
                                   num_classes=NUM_CLASSES, **(teacher if NEEDS_TEACHER_LOGITS & set(names) else {}))
            digest = hashlib.sha256()
            for _ in range(2):
                for x, y in dataset:
                    for part in (x.values() if isinstance(x, dict) else [x]):
                        digest.update(np.asarray(part).tobytes())
                    digest.update(np.asarray(y).tobytes())
            out[f"{key(names, {k: v for k, v in options.items() if k != 'num_classes'})}/{seed}"] = digest.hexdigest()
    return out


def extra_random_ops():
    import tensorflow as tf

    @tf.function
    def draws():
        return tf.random.uniform([3]) + tf.random.gamma([3], 2.0) + tf.random.normal([3])

    draws()
    tf.random.uniform([5])
    tf.random.get_global_generator().normal([5])


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--extra-random-ops":
        extra_random_ops()
        args = args[1:]
    print(json.dumps(digests([int(s) for s in args])))
