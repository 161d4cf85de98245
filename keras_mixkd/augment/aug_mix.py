"""AugMix, from Keras core or KerasCV."""

import keras

from keras_mixkd.augment.augmentation import Augmentation
from keras_mixkd.augment.augmentation import check_seed
from keras_mixkd.augment.augmentation import layer_seed

IMPLEMENTATIONS = ("keras_cv", "keras")


class AugMix(Augmentation):
    """AugMix (Hendrycks et al., 2020) on images in [0, 1]; labels untouched.

    Wraps `keras_cv.layers.AugMix` (default) or `keras.layers.AugMix`: each
    image is blended with `num_chains` chains of random operations. (The
    paper's Jensen-Shannon consistency loss is not part of an input pipeline.)

    KerasCV is the default because it draws the operations of every chain per
    image inside the graph. Keras core's layer picks them with Python's
    `random` when traced, so inside a `tf.data` map (traced once) every batch
    gets the same operation sequence (only magnitudes and weights vary), and
    its depth is drawn from `[0, max(chain_depth)]`.

    Arguments:
        severity: strength of the operations in [0, 1] (Keras's `factor`,
            KerasCV's `severity`).
        num_chains: number of augmentation chains mixed per image.
        chain_depth: `(min, max)` operations per chain (Keras core takes the max).
        alpha: Dirichlet / Beta concentration of the chain weights.
        implementation: `"keras_cv"` (default) or `"keras"`.
        seed: optional int seed (`None`: drawn from Python's `random`, see
            `augmentation.layer_seed`). Not reproducible across processes with
            `"keras_cv"`: KerasCV's AugMix also draws from unseeded TensorFlow
            ops whose derived seeds change with Python's hash seed
            (`PYTHONHASHSEED`), so two runs of the same seed differ unless
            both fix `PYTHONHASHSEED`. `"keras"` repeats exactly.

    Example:

    ```python
    aug = AugMix(severity=0.3)
    batch = aug({"images": images, "labels": labels})
    ```
    """

    def __init__(
        self,
        severity=0.3,
        num_chains=3,
        chain_depth=(1, 3),
        alpha=1.0,
        implementation="keras_cv",
        seed=None,
    ):
        super().__init__()
        if not 0.0 <= severity <= 1.0:
            raise ValueError(f"severity must be in [0, 1]; received {severity!r}.")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0; received alpha={alpha!r}.")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}; received "
                f"{implementation!r}."
            )
        self.severity = float(severity)
        self.num_chains = int(num_chains)
        if isinstance(chain_depth, int):
            chain_depth = (chain_depth, chain_depth)
        if len(chain_depth) != 2 or not 1 <= chain_depth[0] <= chain_depth[1]:
            raise ValueError(
                "chain_depth must be an int >= 1 or a (min, max) pair with "
                f"1 <= min <= max; received {chain_depth!r}."
            )
        self.chain_depth = tuple(int(d) for d in chain_depth)
        self.alpha = float(alpha)
        self.implementation = implementation
        self.seed = check_seed(seed, "AugMix")
        seed = layer_seed(self.seed)  # None: drawn from Python's random (set_random_seed)
        if implementation == "keras":
            self._layer = keras.layers.AugMix(
                value_range=(0, 1),
                num_chains=self.num_chains,
                chain_depth=int(max(self.chain_depth)),
                factor=self.severity,
                alpha=self.alpha,
                seed=seed,
            )
        else:
            import keras_cv  # imported when used: it adds seconds to start-up

            self._layer = keras_cv.layers.AugMix(
                value_range=(0, 1),
                severity=self.severity,
                num_chains=self.num_chains,
                chain_depth=list(self.chain_depth),
                alpha=self.alpha,
                seed=seed,
            )

    def augment(self, batch):
        return self._apply_image_layer(batch, self._layer)

    def get_config(self):
        return {
            "severity": self.severity,
            "num_chains": self.num_chains,
            "chain_depth": self.chain_depth,
            "alpha": self.alpha,
            "implementation": self.implementation,
            "seed": self.seed,
        }
