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
            `augmentation.layer_seed`). Both implementations repeat exactly
            across processes. (KerasCV's own layer draws its chain and blend
            weights from unseeded `tf.random.gamma` ops, whose seeds follow
            Python's hash seed, `PYTHONHASHSEED`: two runs of one seed
            differed. Here those weights come from the layer's seeded
            generator, with the same Dirichlet and Beta distributions.)

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
            self._layer = _seeded_keras_cv_aug_mix()(
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


def _seeded_keras_cv_aug_mix():
    """`keras_cv.layers.AugMix` whose Dirichlet and Beta weights are drawn from its seeded generator.

    KerasCV draws them with `tf.random.gamma` without a seed: TensorFlow then
    derives the op seeds while tracing, and they changed with Python's hash
    seed, so the same `seed` gave other images in another process (a study
    cell rerun, a Ray worker). Each draw here is a `stateless_gamma` keyed by
    `make_seeds()` of the layer's own `tf.random.Generator` (seeded by `seed`,
    advancing per batch like the layer's other draws): Gamma(alpha, 1) as
    before, the weights still `g / sum(g)` (Dirichlet) and `a / (a + b)` (Beta).
    """
    global _SEEDED_AUG_MIX
    if _SEEDED_AUG_MIX is not None:
        return _SEEDED_AUG_MIX
    import keras_cv  # imported when used: it adds seconds to start-up
    import tensorflow as tf

    class SeededAugMix(keras_cv.layers.AugMix):
        def _seeded_gamma(self, alpha):
            alpha = tf.convert_to_tensor(alpha, tf.float32)
            seed = self._random_generator.make_seeds(1)[:, 0]
            return tf.random.stateless_gamma(tf.shape(alpha), seed=seed, alpha=alpha)

        def _sample_from_dirichlet(self, alpha):
            gamma_sample = self._seeded_gamma(alpha)
            return gamma_sample / tf.reduce_sum(gamma_sample, axis=-1, keepdims=True)

        def _sample_from_beta(self, alpha, beta):
            sample_alpha = self._seeded_gamma(alpha)
            sample_beta = self._seeded_gamma(beta)
            return sample_alpha / (sample_alpha + sample_beta)

    _SEEDED_AUG_MIX = SeededAugMix
    return SeededAugMix


_SEEDED_AUG_MIX = None
