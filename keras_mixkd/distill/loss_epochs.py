"""`LossEpochs`: tells distillation losses which epoch is running."""

import keras


class LossEpochs(keras.callbacks.Callback):
    """Calls `loss.on_epoch_begin(epoch)` (0-based) on each loss before each epoch.

    Losses that change over epochs (DKD's warm-up) read the epoch from a
    variable this sets before the epoch's first step; `Distiller.fit` adds
    it to the callbacks.

    Arguments:
        losses: The `keras_mixkd.losses.DistillationLoss` objects to tell.

    Example:

    >>> model.fit(data, epochs=5, callbacks=[LossEpochs([loss])])
    """

    def __init__(self, losses):
        super().__init__()
        self.losses = list(losses)

    def on_epoch_begin(self, epoch, logs=None):
        for loss in self.losses:
            loss.on_epoch_begin(epoch)
