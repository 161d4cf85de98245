"""RandAugment, from Keras core or KerasCV."""

import keras

from keras_mixkd.augment._keras_cv import library_implementation
from keras_mixkd.augment.augmentation import Augmentation
from keras_mixkd.augment.augmentation import check_seed
from keras_mixkd.augment.augmentation import layer_seed
from keras_mixkd.augment.augmentation import sequential_map

IMPLEMENTATIONS = ("keras_cv", "keras")


class RandAugment(Augmentation):
    """RandAugment (Cubuk et al., 2020) on images in [0, 1]; labels untouched.

    Wraps `keras_cv.layers.RandAugment` (default) or `keras.layers.RandAugment`.
    KerasCV draws the operations per image; Keras core draws them once per
    batch (every image of a batch gets the same operations) and computes every
    candidate operation on the whole batch, which is slower.

    Arguments:
        num_ops: operations applied per image (Keras's `num_ops`, KerasCV's
            `augmentations_per_image`).
        magnitude: strength in [0, 1] (Keras's `factor`, KerasCV's `magnitude`).
        implementation: `None` (default: `"keras_cv"` when KerasCV can be
            imported, else `"keras"` with a warning, as Keras core's layer
            draws differently), `"keras_cv"` (an ImportError when KerasCV
            cannot be imported) or `"keras"`. `implementation_used` says which.
        seed: optional int seed.

    Example:

    ```python
    aug = RandAugment(num_ops=2, magnitude=0.5)
    batch = aug({"images": images, "labels": labels})
    ```
    """

    def __init__(self, num_ops=2, magnitude=0.5, implementation=None, seed=None):
        super().__init__()
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 1:
            raise ValueError(f"num_ops must be a positive int; received {num_ops!r}.")
        if not 0.0 <= magnitude <= 1.0:
            raise ValueError(f"magnitude must be in [0, 1]; received {magnitude!r}.")
        if implementation is not None and implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS} or None "
                f"(automatic); received {implementation!r}."
            )
        self.num_ops = num_ops
        self.magnitude = float(magnitude)
        self.implementation = implementation
        self.implementation_used = library_implementation(implementation, "RandAugment")
        self.seed = check_seed(seed, "RandAugment")
        seed = layer_seed(self.seed)  # None: drawn from Python's random (set_random_seed)
        if self.implementation_used == "keras":
            self._layer = keras.layers.RandAugment(
                value_range=(0, 1), num_ops=num_ops, factor=magnitude, seed=seed
            )
        else:
            import keras_cv  # imported when used: it adds seconds to start-up

            self._layer = sequential_map(keras_cv.layers.RandAugment(
                value_range=(0, 1),
                augmentations_per_image=num_ops,
                magnitude=magnitude,
                seed=seed,
            ))

    def augment(self, batch):
        return self._apply_image_layer(batch, self._layer)

    def get_config(self):
        return {
            "num_ops": self.num_ops,
            "magnitude": self.magnitude,
            "implementation": self.implementation,
            "seed": self.seed,
        }
