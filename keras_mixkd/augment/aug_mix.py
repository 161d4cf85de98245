"""AugMix, from Keras core or KerasCV."""

import keras

from keras_mixkd.augment._keras_cv import library_implementation
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
        implementation: `None` (default: `"keras_cv"` when KerasCV can be
            imported, else `"keras"` with a warning, as Keras core's layer
            draws differently), `"keras_cv"` (an ImportError when KerasCV
            cannot be imported) or `"keras"`. `implementation_used` says which.
        seed: optional int seed (`None`: drawn from Python's `random`, see
            `augmentation.layer_seed`). Both implementations repeat exactly
            across processes. (KerasCV's own layer does not: it draws from
            stateful random ops inside parallel loops, so its draws follow
            thread timing, and its Dirichlet/Beta weights come from unseeded
            `tf.random.gamma`. Here every draw is a stateless op keyed per
            image from the seed, with KerasCV's distributions and operations.)

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
        implementation=None,
        seed=None,
    ):
        super().__init__()
        if not 0.0 <= severity <= 1.0:
            raise ValueError(f"severity must be in [0, 1]; received {severity!r}.")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0; received alpha={alpha!r}.")
        if implementation is not None and implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS} or None "
                f"(automatic); received {implementation!r}."
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
        self.implementation_used = library_implementation(implementation, "AugMix")
        self.seed = check_seed(seed, "AugMix")
        seed = layer_seed(self.seed)  # None: drawn from Python's random (set_random_seed)
        if self.implementation_used == "keras":
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
    """`keras_cv.layers.AugMix` whose every random draw is a stateless op keyed by its seed.

    KerasCV's layer draws from state: unseeded `tf.random.gamma` (chain and
    blend weights; op seeds derived while tracing), its `tf.random.Generator`
    (chain depth, operation, sign) and a seeded stateful `tf.random.uniform`
    (operation strength), inside a `tf.map_fn` over the images and two
    `tf.while_loop`s over chains and depth, each with 10 parallel iterations.
    Those iterations take the stateful draws in the order the threads reach
    them, so one seed gave other images from run to run, even in one process
    (`tests/test_augment.py::test_keras_cv_augmix_repeats_under_any_thread_timing`).

    Here the layer's seeded generator makes one key per image per batch (one
    draw, in batch order); every draw of that image is a stateless op on a key
    folded from it (chain, step), so the result does not depend on which
    thread runs first. Distributions and operations are KerasCV's: weights
    Dirichlet(alpha) over chains and Beta(alpha, alpha) for the blend (from
    Gamma(alpha, 1) draws), depth uniform in `chain_depth`, an operation
    uniform over KerasCV's first 8 (its draw `uniform(0, 8)` never reaches the
    9th, translate_y), strength uniform in `(0.01, severity)`, sign +-1 with
    probability 1/2.
    """
    global _SEEDED_AUG_MIX
    if _SEEDED_AUG_MIX is not None:
        return _SEEDED_AUG_MIX
    import keras_cv  # imported when used: it adds seconds to start-up
    import tensorflow as tf
    from keras_cv.src.utils import preprocessing

    fold_in = tf.random.experimental.stateless_fold_in

    class SeededAugMix(keras_cv.layers.AugMix):
        # Keys folded from an image's key: weights, blend, chain c (then 0: depth, d + 1: step d).
        _WEIGHTS, _BLEND, _CHAINS = 0, 1, 2

        def _batch_augment(self, inputs):
            images = inputs["images"]
            keys = tf.transpose(self._random_generator.make_seeds(tf.shape(images)[0]))
            out = tf.map_fn(lambda args: self.augment_with_key(*args), (images, keys),
                            fn_output_signature=tf.TensorSpec(images.shape[1:], images.dtype))
            return dict(inputs, images=out)

        def _augment(self, inputs):
            key = self._random_generator.make_seeds(1)[:, 0]
            return dict(inputs, images=self.augment_with_key(inputs["images"], key))

        def sample_weights(self, key):
            """(chain weights ~ Dirichlet(alpha), blend weight ~ Beta(alpha, alpha)) of one image."""
            weights_key = fold_in(key, self._WEIGHTS)
            gamma = tf.random.stateless_gamma([self.num_chains], weights_key, alpha=self.alpha)
            pair = tf.random.stateless_gamma([2], fold_in(key, self._BLEND), alpha=self.alpha)
            return gamma / tf.reduce_sum(gamma), pair[0] / (pair[0] + pair[1])

        def sample_depth(self, chain_key):
            """Number of operations of one chain, uniform in `chain_depth` (both ends included)."""
            low, high = self.chain_depth
            return tf.random.stateless_uniform([], fold_in(chain_key, 0), low, high + 1, dtype=tf.int32)

        def sample_step(self, step_key):
            """(operation index, strength, sign) of one step of a chain."""
            op_index = tf.random.stateless_uniform([], fold_in(step_key, 0), 0, 8, dtype=tf.int32)
            factor = self.severity_factor
            if hasattr(factor, "value"):  # ConstantFactorSampler: severity == 0.01
                level = tf.constant(factor.value, tf.float32)
            else:
                level = tf.random.stateless_uniform([], fold_in(step_key, 1), factor.lower, factor.upper)
            sign = tf.where(tf.random.stateless_uniform([], fold_in(step_key, 2)) > 0.5, -1.0, 1.0)
            return op_index, level, sign

        def augment_with_key(self, image, key):
            """One image's AugMix, every draw from `key` (shape (2,))."""
            chain_weights, blend = self.sample_weights(key)

            def chain(c, result):
                chain_key = fold_in(fold_in(key, self._CHAINS), c)
                depth = self.sample_depth(chain_key)

                def step(d, image_aug):
                    op_index, level, sign = self.sample_step(fold_in(chain_key, d + 1))
                    return d + 1, self.apply_op(image_aug, op_index, level, sign)

                _, image_aug = tf.while_loop(lambda d, _: d < depth, step, [tf.constant(0), image])
                return c + 1, result + chain_weights[c] * image_aug

            start = [tf.constant(0), tf.zeros_like(image)]
            _, mixed = tf.while_loop(lambda c, _: c < self.num_chains, chain, start)
            return blend * image + (1 - blend) * mixed

        def apply_op(self, image, op_index, level, sign):
            """KerasCV's operation `op_index` (its order) at strength `level`; `sign` flips shear and shift."""
            branches = [
                lambda: self._auto_contrast(image),
                lambda: self._equalize(image),
                lambda: self.posterize(image, level),
                lambda: self.rotate(image, level),
                lambda: self.solarize(image, level),
                lambda: self.shear(image, level, sign, axis=0),
                lambda: self.shear(image, level, sign, axis=1),
                lambda: self.translate_x(image, level, sign),
            ]
            return tf.switch_case(op_index, branches)

        # The operations below are KerasCV's `_posterize`, `_rotate`, ... with
        # their `severity_factor()` and `random_inversion` draws passed in.
        def posterize(self, image, level):
            image = preprocessing.transform_value_range(image, self.value_range, [0, 255])
            shift = tf.cast(4 - tf.cast(level * 3, tf.int32) + 1, tf.uint8)
            image = tf.bitwise.left_shift(tf.bitwise.right_shift(tf.cast(image, tf.uint8), shift), shift)
            return preprocessing.transform_value_range(tf.cast(image, self.compute_dtype), [0, 255],
                                                       self.value_range)

        def rotate(self, image, level):
            angle = tf.expand_dims(level * 30, axis=0)  # as KerasCV: 30 * level radians
            shape = tf.cast(tf.shape(image), tf.float32)
            matrix = preprocessing.get_rotation_matrix(angle, shape[0], shape[1])
            return preprocessing.transform(tf.expand_dims(image, 0), matrix)[0]

        def solarize(self, image, level):
            threshold = tf.cast(tf.cast(level * 255, tf.int32), tf.float32)
            image = preprocessing.transform_value_range(image, self.value_range, (0, 255))
            image = tf.clip_by_value(image, 0, 255)
            image = tf.where(image < threshold, image, 255 - image)
            return preprocessing.transform_value_range(image, (0, 255), self.value_range)

        def shear(self, image, level, sign, axis):
            amount = level * 0.3 * sign
            row = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]  # the identity; entry 1 shears x, entry 3 y
            row[1 if axis == 0 else 3] = amount
            transform = tf.stack([tf.convert_to_tensor(v, tf.float32) for v in row])[tf.newaxis]
            return preprocessing.transform(tf.expand_dims(image, 0), transform)[0]

        def translate_x(self, image, level, sign):
            width = tf.cast(tf.shape(image)[1], tf.float32)
            shift = tf.cast(tf.reshape(level * width / 3, (1, 1)) * sign, tf.int32)
            translations = tf.cast(tf.concat([shift, tf.zeros_like(shift)], axis=1), tf.float32)
            matrix = preprocessing.get_translation_matrix(translations)
            return preprocessing.transform(tf.expand_dims(image, 0), matrix)[0]

    _SEEDED_AUG_MIX = SeededAugMix
    return SeededAugMix


_SEEDED_AUG_MIX = None
