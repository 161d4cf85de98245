"""Label smoothing as an augmentation of the targets."""

from keras_mixkd.augment._labels import check_num_classes
from keras_mixkd.augment._labels import dense_labels
from keras_mixkd.augment._labels import smooth_labels
from keras_mixkd.augment.augmentation import Augmentation


class LabelSmoothing(Augmentation):
    """Turn labels into `y (1 - epsilon) + epsilon / K` dense float32 rows.

    The same smoothing as `keras.losses.CategoricalCrossentropy(label_smoothing=...)`
    and timm, done in the input pipeline so a distiller or a plain `fit` with any
    soft-label loss sees it. Placed after a `Mixing` recipe it smooths the mixed
    targets, which equals smoothing before mixing (the map is linear). Images are
    untouched.

    Arguments:
        epsilon: smoothing in [0, 1).
        num_classes: class count, needed when labels are integers.

    Example:

    ```python
    aug = LabelSmoothing(epsilon=0.1, num_classes=10)
    batch = aug({"images": images, "labels": int_labels})  # labels (B, 10)
    ```
    """

    def __init__(self, epsilon=0.1, num_classes=None):
        super().__init__()
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
            raise TypeError(f"epsilon must be a number in [0, 1); received {epsilon!r}.")
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"epsilon must be in [0, 1); received epsilon={epsilon!r}.")
        self.epsilon = float(epsilon)
        self.num_classes = check_num_classes(num_classes)

    def augment(self, batch):
        labels = dense_labels(batch.get("labels"), self.num_classes, "LabelSmoothing")
        batch["labels"] = smooth_labels(labels, self.epsilon)
        return batch

    def get_config(self):
        return {"epsilon": self.epsilon, "num_classes": self.num_classes}
