"""Cutout: one square hole per image (DeVries & Taylor, 2017)."""

import tensorflow as tf

from keras_mixkd.augment._keras_cv import keras_cv_import_error
from keras_mixkd.augment.augmentation import Augmentation
from keras_mixkd.augment.augmentation import check_seed
from keras_mixkd.augment.augmentation import layer_seed


class Cutout(Augmentation):
    """Fill one square hole per image, centred uniformly, clipped at the border.

    `keras_cv.layers.RandomCutout` with a fixed size, as in the Cutout paper:
    16 px at 32x32 (CIFAR-10), scaled with the image by default.
    Labels are untouched. When KerasCV cannot be imported (its last release
    breaks on newer Keras), TensorFlow ops written here cut the same hole:
    centre uniform over the pixels, side `size`, clipped at the border; they
    draw from TensorFlow's global seed, which `keras.utils.set_random_seed`
    fixes. `implementation_used` says which (`"keras_cv"` or `"keras_mixkd"`).

    Arguments:
        size: side of the hole in pixels. `None` (default) scales 16 px at
            32 px with the image: `round(16 * min(H, W) / 32)`.
        fill_value: value of the hole's pixels (images are in [0, 1] here, before
            normalisation; 0.0 is black, the KerasCV default).
        seed: optional int seed. With `None`, the seed is drawn from Python's
            `random` when the recipe is built, so `keras.utils.set_random_seed`
            fixes the holes (see `augmentation.layer_seed`).

    Example:

    ```python
    aug = Cutout()                 # 16x16 hole at 32x32
    batch = aug({"images": images, "labels": labels})
    ```
    """

    def __init__(self, size=None, fill_value=0.0, seed=None):
        super().__init__()
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or size < 1
        ):
            raise ValueError(f"size must be a positive int or None; received {size!r}.")
        self.size = size
        self.fill_value = float(fill_value)
        self.seed = check_seed(seed, "Cutout")
        self._layer_seed = layer_seed(self.seed)
        self._layers = {}
        self.implementation_used = "keras_cv" if keras_cv_import_error() is None else "keras_mixkd"

    def size_for(self, height, width):
        if self.size is not None:
            return min(self.size, height, width)
        return max(1, int(round(16 * min(height, width) / 32)))

    def _layer_for(self, height, width):
        key = (height, width)
        if key not in self._layers:
            side = self.size_for(height, width)
            # RandomCutout takes the side as a fraction of the image and rounds
            # it up: a hair under side / H keeps float error from adding a pixel.
            h_factor = (side - 1e-3) / height
            w_factor = (side - 1e-3) / width
            import keras_cv  # imported when used: it adds seconds to start-up

            self._layers[key] = keras_cv.layers.RandomCutout(
                height_factor=(h_factor, h_factor),
                width_factor=(w_factor, w_factor),
                fill_mode="constant",
                fill_value=self.fill_value,
                seed=self._layer_seed,
            )
        return self._layers[key]

    def augment(self, batch):
        images = batch["images"]
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError(
                f"Cutout needs static image height and width; received shape {images.shape}."
            )
        if self.implementation_used == "keras_mixkd":
            out = _cutout_ops(images, self.size_for(height, width), self.fill_value)
        else:
            out = self._layer_for(height, width)(images, training=True)
        out.set_shape(images.shape)
        batch["images"] = out
        return batch

    def get_config(self):
        return {"size": self.size, "fill_value": self.fill_value, "seed": self.seed}


def _cutout_ops(images, side, fill_value):
    """KerasCV's RandomCutout hole in TF ops: integer centre uniform, `[c - side // 2, + side)` clipped."""
    shape = tf.shape(images)
    batch_size, height, width = shape[0], shape[1], shape[2]
    center_y = tf.random.uniform([batch_size], 0, height, dtype=tf.int32)
    center_x = tf.random.uniform([batch_size], 0, width, dtype=tf.int32)
    rows = tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    y0 = (center_y - side // 2)[:, None]
    x0 = (center_x - side // 2)[:, None]
    in_rows = (rows >= y0) & (rows < y0 + side)
    in_cols = (cols >= x0) & (cols < x0 + side)
    hole = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    return tf.where(hole, tf.cast(fill_value, images.dtype), images)
