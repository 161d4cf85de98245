"""MixUp on the student's side only: the teacher's outputs on the two clean images, mixed."""

import numbers

import tensorflow as tf

from keras_mixkd.augment._labels import check_num_classes
from keras_mixkd.augment._labels import dense_labels
from keras_mixkd.augment.augmentation import Augmentation
from keras_mixkd.augment.beta_sampling import sample_beta

# The batch key of the teacher's logits of the clean images (`make_dataset(teacher_logits=...)`).
TEACHER_LOGITS = "teacher_logits"
MODES = ("sample", "batch")


class StudentSideMixup(Augmentation):
    """MixUp for distillation where the teacher sees only clean images.

    The student sees `x~ = lam x_i + (1 - lam) x_j`; its distillation target
    is the same mix of the teacher's *softened probabilities* on the two clean
    images,

    `q = lam softmax(z_i / T) + (1 - lam) softmax(z_j / T)`,

    not the teacher's output on `x~` (docs/methods.md, "Student-side mixup").
    The labels get the same mix. The teacher's logits `z` of the clean images
    come with the batch (`batch["teacher_logits"]`, what
    `make_dataset(teacher_logits=..., teacher_sees="clean")` gathers from the
    teacher cache), and leave it as `T log q`: the logits whose softmax at
    temperature T is exactly `q`, so Hinton KD at that temperature
    (`loss="kd"`) distils toward `q` with no change to the distiller.

    Arguments:
        alpha: Beta(alpha, alpha) concentration of lam, > 0 (1: lam ~ U(0, 1)).
        temperature: T of the distillation loss, > 0 (a study sets it from
            the recipe's `temperature`).
        mode: `"sample"` (one lam per image, partners by a random permutation
            of the batch, as KerasCV's MixUp) or `"batch"` (one lam per batch).
        num_classes: class count, needed when labels are integers.

    Draws come from TensorFlow's global seed (`keras.utils.set_random_seed`).

    Example:

    ```python
    aug = StudentSideMixup(alpha=1.0, temperature=4.0, num_classes=10)
    batch = aug({"images": images, "labels": labels, "teacher_logits": cached_logits})
    ```
    """

    def __init__(self, alpha=1.0, temperature=4.0, mode="sample", num_classes=None):
        super().__init__()
        self.alpha = _positive("alpha", alpha)
        self.temperature = _positive("temperature", temperature)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} (one lambda per sample or per batch); received {mode!r}.")
        self.mode = mode
        self.num_classes = check_num_classes(num_classes)

    def augment(self, batch):
        if TEACHER_LOGITS not in batch:
            raise ValueError(
                "student_side_mixup mixes the teacher's outputs on the clean images, so it needs them with "
                f"each batch (key {TEACHER_LOGITS!r}); got a batch with keys {sorted(batch)}. Give the data "
                "pipeline the teacher's logits: make_dataset(..., teacher_logits=compute_teacher_logits(teacher, "
                "images), teacher_sees='clean') (a study does this itself for a recipe with teacher_sees = "
                "\"clean\").")
        images = batch["images"]
        labels = dense_labels(batch.get("labels"), self.num_classes, "student_side_mixup")
        logits = tf.cast(batch[TEACHER_LOGITS], tf.float32)
        batch_size = tf.shape(images)[0]
        partner = tf.argsort(tf.random.uniform([batch_size]))
        lam = sample_beta(self.alpha, [batch_size if self.mode == "sample" else 1])
        lam = tf.broadcast_to(lam, [batch_size])
        mixed = lam[:, None, None, None] * images + (1.0 - lam[:, None, None, None]) * tf.gather(images, partner)
        mixed.set_shape(images.shape)
        batch["images"] = mixed
        batch["labels"] = lam[:, None] * labels + (1.0 - lam[:, None]) * tf.gather(labels, partner)
        batch[TEACHER_LOGITS] = mixed_teacher_logits(logits, partner, lam, self.temperature)
        return batch

    def get_config(self):
        return {"alpha": self.alpha, "temperature": self.temperature, "mode": self.mode,
                "num_classes": self.num_classes}


def mixed_teacher_logits(logits, partner, lam, temperature):
    """`T log(lam softmax(z / T) + (1 - lam) softmax(z[partner] / T))`, computed in log space.

    The log of the mixture is a log-sum-exp of the two log-softmaxes (plus
    `log lam`, `log(1 - lam)`), so it stays finite where a probability
    underflows; a weight of 0 drops its term.

    Arguments:
        logits: the teacher's logits of the clean images, float32 `(B, K)`.
        partner: int `(B,)`, the row each row is mixed with.
        lam: float32 `(B,)`, each row's own weight in [0, 1].
        temperature: T > 0.

    Returns:
        float32 `(B, K)` logits whose softmax at temperature T is the mix.
    """
    log_p = tf.nn.log_softmax(logits / temperature, axis=-1)
    own = tf.math.log(lam)[:, None] + log_p
    other = tf.math.log(1.0 - lam)[:, None] + tf.gather(log_p, partner)
    return temperature * tf.reduce_logsumexp(tf.stack([own, other]), axis=0)


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"student_side_mixup: {name} must be a number > 0; received {name}={value!r}.")
    return float(value)
