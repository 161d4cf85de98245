"""A callback that stops mixed-sample augmentation from a given epoch on."""

import keras

from keras_mixkd.augment.augmentation import Augmentation


class MixingSwitchOff(keras.callbacks.Callback):
    """Stop MixUp / CutMix from epoch `epoch` on (timm's `mixup_off_epoch`).

    tf.data map functions are graphs, so the switch is a `tf.Variable` owned by
    each `Mixing` object and read inside the graph; this callback sets it at the
    start of every epoch (`on` before `epoch`, `off` from `epoch` on, so a second
    `fit` from epoch 0 turns mixing back on). Label smoothing set on the `Mixing`
    object still applies when mixing is off.

    A pipeline that prefetches across epochs (a repeated dataset with
    `steps_per_epoch`) may still deliver the few mixed batches it prepared before
    the switch. A finite dataset, iterated afresh every epoch, has none.

    Arguments:
        epoch: first epoch (0-based, as Keras counts) without mixing.
        augmentation: the augmentation given to the input pipeline (a `Mixing`
            or a combination holding one or more).

    Example:

    ```python
    aug = get_augmentation(["standard", "mixup"], alpha=1.0, num_classes=10)
    train = dataset.map(aug)
    model.fit(train, epochs=200, callbacks=[MixingSwitchOff(180, aug)])
    ```
    """

    def __init__(self, epoch, augmentation):
        super().__init__()
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0; received {epoch!r}.")
        if not isinstance(augmentation, Augmentation):
            raise TypeError(
                "MixingSwitchOff needs the augmentation given to the pipeline; "
                f"received {type(augmentation).__name__}."
            )
        if not augmentation.mixing:
            raise ValueError(
                f"MixingSwitchOff: {augmentation!r} contains no mixing recipe."
            )
        self.epoch = epoch
        self.augmentation = augmentation

    def on_epoch_begin(self, epoch, logs=None):
        for mixing in self.augmentation.mixing:
            mixing.set_enabled(epoch < self.epoch)
