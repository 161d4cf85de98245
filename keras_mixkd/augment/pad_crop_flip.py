"""The standard CIFAR augmentation: zero-pad, random crop, horizontal flip."""

import keras
import tensorflow as tf

from keras_mixkd.augment.augmentation import Augmentation
from keras_mixkd.augment.augmentation import check_seed
from keras_mixkd.augment.augmentation import layer_seed


class PadCropFlip(Augmentation):
    """Zero-pad by `padding` pixels, crop back at a random offset, flip.

    The `standard` recipe: `RandomCrop(32, padding=4)` + `RandomHorizontalFlip`
    in torchvision terms, one crop offset and one flip coin per image.
    Keras's `RandomCrop` draws one offset for the whole batch, so the crop is
    written here in TF ops (two gathers); the flip is `keras.layers.RandomFlip`.

    Arguments:
        padding: pixels of zero padding on each side. `None` (default) scales
            4 px at 32 px with the image: `round(4 * min(H, W) / 32)`, at least 1.
        flip: whether to flip horizontally with probability 0.5.
        seed: optional int seed for the flip layer.

    Example:

    ```python
    aug = PadCropFlip()            # 4 px at 32x32
    batch = aug({"images": images, "labels": labels})
    ```
    """

    def __init__(self, padding=None, flip=True, seed=None):
        super().__init__()
        if padding is not None and (
            isinstance(padding, bool) or not isinstance(padding, int) or padding < 0
        ):
            raise ValueError(
                f"padding must be a non-negative int or None; received {padding!r}."
            )
        self.padding = padding
        self.flip = bool(flip)
        self.seed = check_seed(seed, "PadCropFlip")
        self._flip_layer = (
            keras.layers.RandomFlip("horizontal", seed=layer_seed(self.seed)) if self.flip else None
        )

    def padding_for(self, height, width):
        if self.padding is not None:
            return self.padding
        return max(1, int(round(4 * min(height, width) / 32)))

    def augment(self, batch):
        images = batch["images"]
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError(
                "PadCropFlip needs static image height and width; received "
                f"shape {images.shape}."
            )
        pad = self.padding_for(height, width)
        if pad:
            batch_size = tf.shape(images)[0]
            padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            offsets = tf.random.uniform(
                [batch_size, 2], 0, 2 * pad + 1, dtype=tf.int32
            )
            rows = offsets[:, :1] + tf.range(height)[None, :]
            cols = offsets[:, 1:] + tf.range(width)[None, :]
            images = tf.gather(padded, rows, axis=1, batch_dims=1)
            images = tf.gather(images, cols, axis=2, batch_dims=1)
        if self._flip_layer is not None:
            images = self._flip_layer(images, training=True)
        batch["images"] = images
        return batch

    def get_config(self):
        return {"padding": self.padding, "flip": self.flip, "seed": self.seed}
