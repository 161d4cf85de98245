"""Several augmentations applied one after another."""

from keras_mixkd.augment.augmentation import Augmentation


class Compose(Augmentation):
    """Apply augmentations in order (an empty list is the identity, `none`).

    Arguments:
        augmentations: list of `Augmentation` objects.

    Example:

    ```python
    aug = Compose([PadCropFlip(), Mixing(alpha=1.0, num_classes=10)])
    batch = aug({"images": images, "labels": labels})
    ```
    """

    def __init__(self, augmentations=()):
        super().__init__()
        augmentations = list(augmentations)
        for aug in augmentations:
            if not isinstance(aug, Augmentation):
                raise TypeError(
                    "Compose expects Augmentation objects; received "
                    f"{type(aug).__name__}: {aug!r}."
                )
        self.augmentations = augmentations

    def augment(self, batch):
        for aug in self.augmentations:
            batch = aug.augment(batch)
        return batch

    @property
    def mixing(self):
        return [m for aug in self.augmentations for m in aug.mixing]

    def get_config(self):
        return {
            "augmentations": [
                {"class_name": type(a).__name__, "config": a.get_config()}
                for a in self.augmentations
            ]
        }

    @classmethod
    def from_config(cls, config):
        from keras_mixkd import augment

        augmentations = [
            getattr(augment, item["class_name"]).from_config(item["config"])
            for item in config["augmentations"]
        ]
        return cls(augmentations)

    def __repr__(self):
        return f"Compose({self.augmentations!r})"
