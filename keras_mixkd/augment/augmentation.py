"""Base class of every augmentation recipe."""

import numbers
import random

import numpy as np
import tensorflow as tf

# Seeds drawn for library layers when none is given: [1, _MAX_SEED].
_MAX_SEED = 2**31 - 2


def check_seed(seed, owner):
    """`seed` if it is None or an int >= 0; a clear ValueError otherwise."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0 or seed > _MAX_SEED:
        raise ValueError(f"{owner}: seed must be None or an int in [0, {_MAX_SEED}]; received {seed!r}.")
    return int(seed)


def layer_seed(seed, index=0):
    """The seed handed to a library layer (Keras or KerasCV) inside a recipe.

    Every random layer gets an explicit int seed, so the same
    `keras.utils.set_random_seed(s)` gives the same numbers in every process:

    - `seed=None`: drawn from Python's `random` when the recipe is built, which
      `keras.utils.set_random_seed` seeds. Without it, KerasCV's vectorised
      layers (`RandomCutout`, the layers of `RandAugment`, ...) fall back to
      TensorFlow's global `tf.random.Generator`, which no seed function fixes:
      cutout differed between two runs of the same study.
    - an int `s`: the layer gets `(7919 s + index) mod _MAX_SEED + 1`, never 0
      (KerasCV reads a seed of 0 as "no seed" and takes the global
      generator); `index` tells apart two layers of one recipe (MixUp and
      CutMix of `mixup_cutmix`), which must not draw the same numbers.
    """
    if seed is None:
        return random.randint(1, _MAX_SEED)
    return (7919 * int(seed) + index) % _MAX_SEED + 1


def sequential_map(layer):
    """Make a KerasCV per-image layer map over the batch one image at a time.

    KerasCV's `BaseImageAugmentationLayer` runs `tf.map_fn` with its default
    10 parallel iterations; the images then take their draws from the layer's
    seeded `tf.random.Generator` in an order that varies from run to run, so a
    seeded `keras_cv.layers.RandAugment` gave other images in another process
    (seen under the JAX backend). One iteration at a time fixes the order.
    Returns the layer. The KerasCV internals this replaces are read in
    `keras_mixkd._keras_compat.sequential_map`.
    """
    from keras_mixkd._keras_compat import sequential_map

    return sequential_map(layer)


class Augmentation:
    """A batch augmentation: a callable on `{"images", "labels"}` batches.

    Subclasses implement `augment(batch)`, which receives a shallow copy of the
    batch dict holding TensorFlow tensors (images `float32` NHWC in `[0, 1]`;
    labels integer `(B,)` or dense `float32` `(B, K)`) and returns it updated.
    Keys other than `"images"` and `"labels"` (say, the clean images a data
    pipeline keeps for the teacher) pass through untouched.

    An augmentation is made of TensorFlow ops only, so it runs inside
    `tf.data.Dataset.map` under every Keras backend. Called eagerly, outside a
    graph, it converts the batch to TensorFlow tensors and runs the same ops in
    a `tf.function`, so Keras preprocessing layers inside it always take their
    TensorFlow route. At inference (`training=False`) every recipe returns the
    batch unchanged.

    Example:

    ```python
    aug = keras_mixkd.augment.get_augmentation("standard")
    dataset = dataset.map(aug)  # batches of {"images", "labels"}
    ```
    """

    def __init__(self):
        self._eager_function = None

    def augment(self, batch):
        raise NotImplementedError

    def _apply_image_layer(self, batch, layer):
        """Runs a per-image preprocessing layer on the images of the batch.

        The static shape of the images is restored on the output, which the
        layer may leave partly unknown, so later steps see the shape they got.
        """
        images = batch["images"]
        out = layer(images, training=True)
        out.set_shape(images.shape)
        batch["images"] = out
        return batch

    def __call__(self, batch, training=True):
        if not isinstance(batch, dict) or "images" not in batch:
            raise TypeError(
                f"{type(self).__name__} expects a dict batch "
                '{"images": ..., "labels": ...}; received '
                f"{type(batch).__name__}"
                + (f" with keys {sorted(batch)}" if isinstance(batch, dict) else "")
                + "."
            )
        if not training:
            return batch
        if tf.inside_function():
            return self.augment(_as_tf_batch(batch))
        # Eager call: trace once so every op (and every Keras layer inside)
        # takes its TensorFlow route, exactly as inside tf.data.
        if self._eager_function is None:
            self._eager_function = tf.function(
                lambda batch: self.augment(dict(batch)), reduce_retracing=True
            )
        return self._eager_function(_as_tf_batch(batch))

    @property
    def mixing(self):
        """The `Mixing` objects inside this augmentation (for callbacks)."""
        return []

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({options})"


def _as_tf_batch(batch):
    """Shallow copy of `batch` with TensorFlow tensors and checked images."""
    batch = dict(batch)
    images = batch["images"]
    if not tf.is_tensor(images):
        # NumPy, JAX or (CPU) PyTorch arrays all convert through NumPy.
        images = tf.convert_to_tensor(np.asarray(images))
    if not images.dtype.is_floating:
        raise TypeError(
            "Augmentations expect float images in [0, 1]; received dtype "
            f"{images.dtype.name}. Cast and divide by 255 first."
        )
    if images.shape.rank != 4:
        raise ValueError(
            "Augmentations expect a batch of images (B, H, W, C); received "
            f"shape {images.shape}."
        )
    batch["images"] = tf.cast(images, tf.float32)
    if "labels" in batch and not tf.is_tensor(batch["labels"]):
        batch["labels"] = tf.convert_to_tensor(np.asarray(batch["labels"]))
    return batch
