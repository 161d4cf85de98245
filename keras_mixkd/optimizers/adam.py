"""`Adam`: Keras's Adam with the weight decay of `torch.optim.Adam` on offer."""

import keras
from keras import ops

from keras_mixkd.optimizers._weight_decay import add_l2
from keras_mixkd.optimizers._weight_decay import check_weight_decay
from keras_mixkd.optimizers._weight_decay import record_weight_decay_exclusions
from keras_mixkd.optimizers._weight_decay import with_weight_decay_config


@keras.saving.register_keras_serializable(package="keras_mixkd")
class Adam(keras.optimizers.Adam):
    """Adam whose `weight_decay` is coupled (L2) or decoupled, as asked.

    `keras.optimizers.Adam(weight_decay=wd)` decays decoupled
    (`w -= lr * wd * w`, what `torch.optim.AdamW` does), while
    `torch.optim.Adam(weight_decay=wd)` adds `wd * w` to the gradient before
    the moment estimates. `weight_decay_mode="l2"` (default) does the latter,
    on every trainable variable (except those given to
    `exclude_from_weight_decay`); `"decoupled"` is Keras's Adam unchanged.
    The Adam update itself is Keras's (its epsilon is added to
    `sqrt(v_hat) * sqrt(1 - beta_2^t)`, PyTorch's to `sqrt(v_hat)`: the two
    differ only while `sqrt(v)` is near epsilon).

    Arguments:
        learning_rate: a float or a `keras.optimizers.schedules` schedule.
        weight_decay: float >= 0 or None.
        weight_decay_mode: `"l2"` (default, PyTorch's Adam) or `"decoupled"`.
        **kwargs: the other arguments of `keras.optimizers.Adam`
            (`beta_1`, `beta_2`, `epsilon`, `amsgrad`, `name`, ...).

    Example:

    >>> from keras_mixkd.optimizers import Adam
    >>> optimizer = Adam(1e-3, weight_decay=5e-4)  # torch.optim.Adam(weight_decay=5e-4)
    """

    def __init__(self, learning_rate=0.001, weight_decay=None, weight_decay_mode="l2", name="adam",
                 **kwargs):
        weight_decay, weight_decay_mode = check_weight_decay(weight_decay, weight_decay_mode, "Adam")
        decoupled = weight_decay_mode == "decoupled"
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay if decoupled else None,
                         name=name, **kwargs)
        self.weight_decay_mode = weight_decay_mode
        self.l2_weight_decay = None if decoupled else weight_decay

    def update_step(self, gradient, variable, learning_rate):
        gradient = add_l2(self, ops.cast(gradient, variable.dtype), variable, self.l2_weight_decay)
        super().update_step(gradient, variable, learning_rate)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keras's `exclude_from_weight_decay`; the "l2" mode honours it too."""
        super().exclude_from_weight_decay(var_list=var_list, var_names=var_names)
        record_weight_decay_exclusions(self, var_list, var_names)

    def get_config(self):
        return with_weight_decay_config(self, super().get_config())
