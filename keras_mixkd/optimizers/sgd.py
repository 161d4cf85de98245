"""`SGD`: stochastic gradient descent as `torch.optim.SGD` computes it."""

import keras
from keras import ops

from keras_mixkd.optimizers._weight_decay import add_l2
from keras_mixkd.optimizers._weight_decay import check_weight_decay
from keras_mixkd.optimizers._weight_decay import record_weight_decay_exclusions
from keras_mixkd.optimizers._weight_decay import with_weight_decay_config


@keras.saving.register_keras_serializable(package="keras_mixkd")
class SGD(keras.optimizers.SGD):
    """SGD with momentum and weight decay exactly as `torch.optim.SGD`.

    With `g = grad + wd * w` (`weight_decay_mode="l2"`, the default) or
    `g = grad` (`"decoupled"`), each step is (dampening 0, as PyTorch's default)

        buf = momentum * buf + g
        step = g + momentum * buf   if nesterov else buf
        w = w - lr * step

    and in `"decoupled"` mode `w = w - lr * wd * w` first (Keras's own
    `weight_decay`, as `torch.optim.AdamW` decays).

    Two things differ from `keras.optimizers.SGD`:

    - Keras's `weight_decay` is decoupled: `w -= lr * wd * w` per step. The
      studies' PyTorch code adds `wd * w` to the gradient before momentum, so
      the decay is accumulated by the momentum buffer: at momentum 0.9 it
      shrinks the weights about `1 / (1 - 0.9) = 10` times more per step.
      `"l2"` reproduces PyTorch: the decay applies to every trainable
      variable the optimizer updates (batch-norm gamma/beta and biases too, as
      `model.parameters()` in PyTorch), except those given to
      `exclude_from_weight_decay`.
    - Keras keeps `m = momentum * m - lr * g`: the learning rate enters the
      buffer, so after a step of the schedule (`PiecewiseConstantDecay`) the
      old rate still drives the momentum. PyTorch's buffer holds gradients
      only and the current rate scales the whole step; this class does the
      same. With a constant rate both give the same weights.

    The momentum buffers are Keras SGD's own optimizer variables (`momentums`),
    so checkpoints and `.keras` files save and restore them as usual.

    Arguments:
        learning_rate: a float or a `keras.optimizers.schedules` schedule.
        momentum: float >= 0.
        nesterov: whether to use Nesterov momentum (PyTorch's formulation).
        weight_decay: float >= 0 or None: the coefficient `wd`.
        weight_decay_mode: `"l2"` (default, PyTorch's SGD) or `"decoupled"`.
        **kwargs: the other arguments of `keras.optimizers.Optimizer`
            (`name`, `clipnorm`, `global_clipnorm`, ...). Gradients are
            clipped before `wd * w` is added, as `clip_grad_norm_` runs before
            `optimizer.step()` in PyTorch.

    Example:

    >>> from keras_mixkd.optimizers import SGD
    >>> optimizer = SGD(0.05, momentum=0.9, weight_decay=5e-4)  # torch.optim.SGD's semantics
    >>> # model.compile(optimizer=optimizer, loss=...); model.fit(...)
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 weight_decay_mode="l2", name="SGD", **kwargs):
        weight_decay, weight_decay_mode = check_weight_decay(weight_decay, weight_decay_mode, "SGD")
        decoupled = weight_decay_mode == "decoupled"
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay if decoupled else None, name=name, **kwargs)
        self.weight_decay_mode = weight_decay_mode
        # The coefficient added to the gradient ("l2"); None in "decoupled" mode,
        # where Keras's `weight_decay` attribute holds it.
        self.l2_weight_decay = None if decoupled else weight_decay

    def update_step(self, gradient, variable, learning_rate):
        """One PyTorch SGD step of `variable`."""
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = add_l2(self, ops.cast(gradient, variable.dtype), variable, self.l2_weight_decay)
        if self.momentum != 0:
            momentum = ops.cast(self.momentum, variable.dtype)
            buffer = self.momentums[self._get_variable_index(variable)]
            self.assign(buffer, ops.add(ops.multiply(buffer, momentum), gradient))
            step = ops.add(gradient, ops.multiply(buffer, momentum)) if self.nesterov else buffer
        else:
            step = gradient
        self.assign_sub(variable, ops.multiply(step, learning_rate))

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keras's `exclude_from_weight_decay`; the "l2" mode honours it too."""
        super().exclude_from_weight_decay(var_list=var_list, var_names=var_names)
        record_weight_decay_exclusions(self, var_list, var_names)

    def get_config(self):
        return with_weight_decay_config(self, super().get_config())
