"""MixUp and CutMix with every option of timm's `Mixup`, for tf.data."""

import numbers

import keras
import tensorflow as tf

from keras_mixkd.augment._keras_cv import keras_cv_import_error
from keras_mixkd.augment._keras_cv import require_keras_cv
from keras_mixkd.augment._labels import check_num_classes
from keras_mixkd.augment._labels import dense_labels
from keras_mixkd.augment._labels import smooth_labels
from keras_mixkd.augment.augmentation import Augmentation
from keras_mixkd.augment.augmentation import check_seed
from keras_mixkd.augment.augmentation import layer_seed
from keras_mixkd.augment.beta_sampling import sample_beta

MODES = ("sample", "batch")
# Who mixes: KerasCV's layers, Keras core's layers, or the TensorFlow ops of this file.
IMPLEMENTATIONS = ("keras_cv", "keras", "keras_mixkd")


class Mixing(Augmentation):
    """Mixed-sample augmentation: MixUp, CutMix, or one of them per draw.

    One object owns every mixed-sample option, like timm's `Mixup`: the
    concentrations of MixUp and CutMix, the probability of mixing at all, the
    switch probability between the two, one lambda per sample or one per batch,
    label smoothing, and an exact fraction of mixed rows (partial mixup).
    Integer labels become dense `float32` rows `(B, num_classes)`; a row mixed
    with weight `lam` gets `lam * y_i + (1 - lam) * y_j`, where `lam` is the
    weight of its own pixels (for CutMix: one minus the pasted area fraction).

    Who does the mixing:

    - `mode="sample"` (one lambda per image) with every row mixed: the library
      layers, `keras_cv.layers.MixUp` / `CutMix` (`implementation="keras_cv"`,
      the default when KerasCV imports) or `keras.layers.MixUp` / `CutMix`
      (`implementation="keras"`).
      Both CutMix layers report a label weight that is not the pasted area
      (KerasCV computes it before clipping the box at the image border; Keras
      from float box bounds), so the pasted area is measured exactly: a channel
      holding each image's batch index rides through the layer with the images,
      and tells which pixels came from which image. The layers pick partners
      with a random permutation of the batch.
    - `mode="batch"` (one lambda and one CutMix box per batch, as in study A
      and timm's default) and `fraction` (partial mixup): TensorFlow ops
      written here, because both library layers always draw one lambda per
      image and mix every row with a permutation that may pair a row with
      itself, so neither a shared lambda nor an exact count of mixed rows can
      be asked of them. Here each row is paired with another row, never
      itself: the partners follow one random cycle through the batch.
    - `implementation="keras_mixkd"`, which the default `None` picks when
      KerasCV cannot be imported (its last release, 0.9.0, breaks on newer
      Keras): the same TensorFlow ops also serve `mode="sample"`, with
      KerasCV's distributions: one lambda per image, the paper's CutMix box
      clipped at the border, partners by a random permutation of the batch
      (tested against KerasCV in distribution). `implementation_used` and
      `mixing_implementation(aug)` say which ran.

    Arguments:
        alpha: MixUp's Beta(alpha, alpha) concentration, > 0; `None` turns MixUp off.
        cutmix_alpha: CutMix's Beta concentration, > 0; `None` (default) turns
            CutMix off. With `implementation="keras"` it must be <= 1
            (`keras.layers.CutMix` bounds its factor to [0, 1]).
        prob: probability that a batch (`mode="batch"`) or an image
            (`mode="sample"`) is mixed at all.
        switch_prob: when both are on, probability of CutMix instead of MixUp,
            drawn per batch or per image like lambda.
        mode: `"sample"` (one lambda per image, default) or `"batch"`.
        label_smoothing: epsilon; targets become `y (1 - eps) + eps / K`, on
            every row, mixed or not (timm's semantics).
        fraction: if set, exactly `round(fraction * B)` rows of every batch are
            mixed (half rounds up) and the rest are left untouched; excludes `prob`.
        num_classes: class count, needed when labels are integers.
        implementation: who mixes in `mode="sample"` with every row mixed:
            `None` (default: `"keras_cv"` when KerasCV can be imported, else
            `"keras_mixkd"`), `"keras_cv"` (an ImportError when KerasCV cannot
            be imported), `"keras"` or `"keras_mixkd"`. `mode="batch"` and
            `fraction` always run on `"keras_mixkd"`'s ops.
        seed: optional int seed of the library layers (`mode="sample"`);
            with `None` their seeds are drawn from Python's `random` when the
            recipe is built (see `augmentation.layer_seed`). The TF-op paths
            draw from TensorFlow's global seed. `keras.utils.set_random_seed`
            fixes both.

    Example:

    ```python
    mix = Mixing(alpha=1.0, cutmix_alpha=1.0, switch_prob=0.5, num_classes=10)
    batch = mix({"images": images, "labels": int_labels})
    batch["labels"].shape  # (B, 10), float32
    ```

    `MixingSwitchOff(epoch, mix)` stops mixing from an epoch on: the switch is a
    `tf.Variable` read inside the tf.data graph (`mix.enabled`).
    """

    def __init__(
        self,
        alpha=1.0,
        cutmix_alpha=None,
        prob=1.0,
        switch_prob=0.5,
        mode="sample",
        label_smoothing=0.0,
        fraction=None,
        num_classes=None,
        implementation=None,
        seed=None,
    ):
        super().__init__()
        self.alpha = _check_alpha("alpha", alpha)
        self.cutmix_alpha = _check_alpha("cutmix_alpha", cutmix_alpha)
        if self.alpha is None and self.cutmix_alpha is None:
            raise ValueError(
                "Mixing needs alpha (MixUp) or cutmix_alpha (CutMix), or both; "
                "received alpha=None and cutmix_alpha=None."
            )
        self.prob = _check_unit("prob", prob)
        self.switch_prob = _check_unit("switch_prob", switch_prob)
        if mode not in MODES:
            raise ValueError(
                f"mode must be one of {MODES} (one lambda per sample or per "
                f"batch); received {mode!r}."
            )
        self.mode = mode
        self.label_smoothing = _check_unit("label_smoothing", label_smoothing)
        if self.label_smoothing >= 1.0:
            raise ValueError(
                "label_smoothing must be in [0, 1); received "
                f"{label_smoothing!r}."
            )
        self.fraction = (
            None if fraction is None else _check_unit("fraction", fraction)
        )
        if self.fraction is not None and self.prob != 1.0:
            raise ValueError(
                "Mixing takes either fraction (an exact share of each batch) "
                f"or prob (a coin per draw), not both; received "
                f"fraction={fraction!r} and prob={prob!r}."
            )
        self.num_classes = check_num_classes(num_classes)
        if implementation is not None and implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS} or None "
                f"(automatic); received {implementation!r}."
            )
        self.implementation = implementation
        if (
            implementation == "keras"
            and self.cutmix_alpha is not None
            and self.cutmix_alpha > 1.0
        ):
            raise ValueError(
                "keras.layers.CutMix takes a Beta concentration in (0, 1]; "
                f"received cutmix_alpha={cutmix_alpha!r} with "
                'implementation="keras". Use implementation=None (KerasCV '
                'or ours) or "keras_mixkd".'
            )
        self.seed = check_seed(seed, "Mixing")
        self.implementation_used = self._resolve_implementation()
        self._enabled = tf.Variable(True, trainable=False, name="mixing_enabled")
        self._mixup_layer = None
        self._cutmix_layer = None
        if self.uses_library_layers:
            self._build_library_layers()

    # -- the switch read inside the tf.data graph ------------------------------
    @property
    def enabled(self):
        return bool(self._enabled.numpy())

    def set_enabled(self, enabled):
        """Turn mixing on or off; takes effect in running tf.data pipelines."""
        self._enabled.assign(bool(enabled))

    @property
    def mixing(self):
        return [self]

    @property
    def uses_library_layers(self):
        """Whether a library's layers mix (`implementation_used` is not ours)."""
        return self.implementation_used != "keras_mixkd"

    def _resolve_implementation(self):
        """The implementation that mixes: `implementation`, or what `None` picks here."""
        if self.mode != "sample" or self.fraction is not None:
            # Neither library layer can share a lambda or mix an exact count of rows.
            return "keras_mixkd"
        if self.implementation is None:
            return "keras_cv" if keras_cv_import_error() is None else "keras_mixkd"
        if self.implementation == "keras_cv":
            require_keras_cv(
                'Mixing(implementation="keras_cv")',
                'pass implementation=None (KerasCV when it imports, else the same '
                'distributions on our TensorFlow ops) or install a Keras that '
                'KerasCV supports (keras<3.16)',
            )
        return self.implementation

    def _build_library_layers(self):
        seed, cutmix_seed = layer_seed(self.seed), layer_seed(self.seed, index=1)
        if self.implementation_used == "keras_cv":
            import keras_cv  # imported when used: it adds seconds to start-up

            if self.alpha is not None:
                self._mixup_layer = keras_cv.layers.MixUp(
                    alpha=self.alpha, seed=seed
                )
            if self.cutmix_alpha is not None:
                self._cutmix_layer = keras_cv.layers.CutMix(
                    alpha=self.cutmix_alpha, seed=cutmix_seed
                )
        else:
            if self.alpha is not None:
                self._mixup_layer = keras.layers.MixUp(
                    alpha=self.alpha, seed=seed
                )
            if self.cutmix_alpha is not None:
                # factor=(a, a) fixes the concentration at a (plus 1e-6).
                self._cutmix_layer = keras.layers.CutMix(
                    factor=(self.cutmix_alpha, self.cutmix_alpha), seed=cutmix_seed
                )

    # -- the augmentation ------------------------------------------------------
    def augment(self, batch):
        images = batch["images"]
        labels = dense_labels(batch.get("labels"), self.num_classes, "Mixing")
        labels = smooth_labels(labels, self.label_smoothing)
        mixed_images, mixed_labels = tf.cond(
            self._enabled,
            lambda: self._mix(images, labels),
            lambda: (images, labels),
        )
        mixed_images.set_shape(images.shape)
        mixed_labels.set_shape(labels.shape)
        batch["images"] = mixed_images
        batch["labels"] = mixed_labels
        return batch

    def _mix(self, images, labels):
        if self.uses_library_layers:
            return self._mix_with_library(images, labels)
        return self._mix_with_ops(images, labels)

    def _mix_with_library(self, images, labels):
        batch_size = tf.shape(images)[0]
        candidates = []
        if self._mixup_layer is not None:
            out = self._mixup_layer(
                {"images": images, "labels": labels}, training=True
            )
            candidates.append((out["images"], out["labels"]))
        if self._cutmix_layer is not None:
            candidates.append(self._library_cutmix(images, labels))
        if len(candidates) == 2:
            use_cutmix = tf.random.uniform([batch_size]) < self.switch_prob
            mixed = _select_rows(use_cutmix, candidates[1], candidates[0])
        else:
            mixed = candidates[0]
        mixed = (tf.cast(mixed[0], tf.float32), tf.cast(mixed[1], tf.float32))
        if self.prob < 1.0:
            mix_row = tf.random.uniform([batch_size]) < self.prob
            mixed = _select_rows(mix_row, mixed, (images, labels))
        return mixed

    def _library_cutmix(self, images, labels):
        """Library CutMix with the label weight measured from the pixels."""
        shape = tf.shape(images)
        batch_size = shape[0]
        index = tf.range(batch_size)
        index_channel = tf.broadcast_to(
            tf.cast(index, tf.float32)[:, None, None, None],
            [batch_size, shape[1], shape[2], 1],
        )
        out = self._cutmix_layer(
            {"images": tf.concat([images, index_channel], axis=-1), "labels": labels},
            training=True,
        )
        out_images = tf.cast(out["images"], tf.float32)
        source = tf.cast(tf.round(out_images[..., -1]), tf.int32)
        pasted = tf.not_equal(source, index[:, None, None])
        pasted_area = tf.reduce_mean(tf.cast(pasted, tf.float32), axis=[1, 2])
        # Every pasted pixel of a row comes from the same partner image.
        partner = tf.reduce_max(tf.where(pasted, source, -1), axis=[1, 2])
        partner = tf.where(partner < 0, index, partner)
        own_weight = (1.0 - pasted_area)[:, None]
        mixed_labels = own_weight * labels + (1.0 - own_weight) * tf.gather(
            labels, partner
        )
        return out_images[..., :-1], mixed_labels

    def _mix_with_ops(self, images, labels):
        batch_size = tf.shape(images)[0]
        # One draw per batch in "batch" mode, broadcast to every row.
        draws = batch_size if self.mode == "sample" else 1
        if self.mode == "sample" and self.fraction is None:
            # In KerasCV's place: its partners, a random permutation (rows paired with themselves stay as they are).
            partner = tf.argsort(tf.random.uniform([batch_size]))
        else:
            partner = _cyclic_partners(batch_size)
        partner_images = tf.gather(images, partner)
        partner_labels = tf.gather(labels, partner)
        candidates = []
        if self.alpha is not None:
            lam = sample_beta(self.alpha, [draws])
            lam = tf.broadcast_to(lam, [batch_size])
            candidates.append(
                (
                    _blend(images, partner_images, lam[:, None, None, None]),
                    _blend(labels, partner_labels, lam[:, None]),
                )
            )
        if self.cutmix_alpha is not None:
            candidates.append(
                _cutmix_ops(
                    images, labels, partner_images, partner_labels,
                    self.cutmix_alpha, draws,
                )
            )
        if len(candidates) == 2:
            use_cutmix = tf.random.uniform([draws]) < self.switch_prob
            use_cutmix = tf.broadcast_to(use_cutmix, [batch_size])
            mixed = _select_rows(use_cutmix, candidates[1], candidates[0])
        else:
            mixed = candidates[0]
        if self.fraction is not None:
            mix_row = _exact_fraction_rows(batch_size, self.fraction)
            mixed = _select_rows(mix_row, mixed, (images, labels))
        elif self.prob < 1.0:
            mix_row = tf.random.uniform([draws]) < self.prob
            mix_row = tf.broadcast_to(mix_row, [batch_size])
            mixed = _select_rows(mix_row, mixed, (images, labels))
        return mixed

    def get_config(self):
        return {
            "alpha": self.alpha,
            "cutmix_alpha": self.cutmix_alpha,
            "prob": self.prob,
            "switch_prob": self.switch_prob,
            "mode": self.mode,
            "label_smoothing": self.label_smoothing,
            "fraction": self.fraction,
            "num_classes": self.num_classes,
            "implementation": self.implementation,
            "seed": self.seed,
        }


def mixing_implementation(augmentation):
    """Who mixes the images of `augmentation`, as a study's records name it.

    Args:
        augmentation: an `Augmentation` (a `Compose` included), or `None`.

    Returns:
        `"keras_cv"`, `"keras"` or `"keras_mixkd"` (our TensorFlow ops); several
        joined by `"+"` (sorted) when the mixings inside differ; `None` when
        `augmentation` is `None` or mixes nothing.

    Example:

    >>> mixing_implementation(get_augmentation(["standard", "mixup"], num_classes=10))
    'keras_cv'
    >>> mixing_implementation(get_augmentation("partial_mixup", num_classes=10))
    'keras_mixkd'
    """
    if augmentation is None:
        return None
    if not hasattr(augmentation, "mixing"):
        raise TypeError(
            "mixing_implementation expects an Augmentation or None; received "
            f"{type(augmentation).__name__}: {augmentation!r}."
        )
    used = sorted({mix.implementation_used for mix in augmentation.mixing})
    return "+".join(used) or None


def default_mixing_implementation():
    """What a default `Mixing` (`mode="sample"`, every row) mixes with here.

    `"keras_cv"` when KerasCV can be imported, else `"keras_mixkd"`: a study
    writes it to `study.json`.

    Example:

    >>> default_mixing_implementation()
    'keras_cv'
    """
    return "keras_cv" if keras_cv_import_error() is None else "keras_mixkd"


# -- validation ------------------------------------------------------------------
def _check_alpha(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number > 0 or None; received {value!r}.")
    if not value > 0:
        raise ValueError(
            f"{name} must be > 0 (the Beta(alpha, alpha) concentration); "
            f"received {name}={value!r}. Use None to turn it off (on the command line, "
            "leave that augmentation out)."
        )
    return float(value)


def _check_unit(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1]; received {value!r}.")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; received {name}={value!r}.")
    return float(value)


# -- TensorFlow ops ----------------------------------------------------------------


def _blend(own, partner, lam):
    return lam * own + (1.0 - lam) * partner


def _cyclic_partners(batch_size):
    """Partner of every row: the next row along one random cycle (never itself)."""
    order = tf.argsort(tf.random.uniform([batch_size]))
    return tf.scatter_nd(order[:, None], tf.roll(order, -1, axis=0), [batch_size])


def _exact_fraction_rows(batch_size, fraction):
    """Boolean mask with exactly round(fraction * B) random rows set."""
    count = tf.cast(
        tf.floor(fraction * tf.cast(batch_size, tf.float64) + 0.5), tf.int32
    )
    rank = tf.argsort(tf.argsort(tf.random.uniform([batch_size])))
    return rank < count


def _select_rows(row_mask, on_true, on_false):
    images = tf.where(row_mask[:, None, None, None], on_true[0], on_false[0])
    labels = tf.where(row_mask[:, None], on_true[1], on_false[1])
    return images, labels


def _cutmix_ops(images, labels, partner_images, partner_labels, alpha, draws):
    """CutMix as in the paper's code: box of area (1 - lam), clipped, lam corrected."""
    shape = tf.shape(images)
    batch_size, height, width = shape[0], shape[1], shape[2]
    lam = sample_beta(alpha, [draws])
    ratio = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(ratio * tf.cast(height, tf.float32), tf.int32)
    cut_w = tf.cast(ratio * tf.cast(width, tf.float32), tf.int32)
    center_y = tf.random.uniform([draws], 0, height, dtype=tf.int32)
    center_x = tf.random.uniform([draws], 0, width, dtype=tf.int32)
    y0 = tf.clip_by_value(center_y - cut_h // 2, 0, height)
    y1 = tf.clip_by_value(center_y - cut_h // 2 + cut_h, 0, height)
    x0 = tf.clip_by_value(center_x - cut_w // 2, 0, width)
    x1 = tf.clip_by_value(center_x - cut_w // 2 + cut_w, 0, width)
    rows = tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < y1[:, None])
    in_cols = (cols >= x0[:, None]) & (cols < x1[:, None])
    mask = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    mask = tf.broadcast_to(mask, [batch_size, height, width, 1])
    pasted_area = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(
        height * width, tf.float32
    )
    own_weight = tf.broadcast_to(1.0 - pasted_area, [batch_size])[:, None]
    mixed_images = tf.where(mask, partner_images, images)
    mixed_labels = _blend(labels, partner_labels, own_weight)
    return mixed_images, mixed_labels
