"""Checks shared by the optimizers: the weight-decay coefficient and its mode."""

import numbers

WEIGHT_DECAY_MODES = ("l2", "decoupled")


def check_weight_decay(weight_decay, weight_decay_mode, optimizer):
    """`(weight_decay or None, mode)`, checked; raises ValueError naming what was given."""
    if weight_decay_mode not in WEIGHT_DECAY_MODES:
        raise ValueError(
            f"{optimizer}: weight_decay_mode must be one of {WEIGHT_DECAY_MODES} "
            '("l2": wd * w added to the gradient, as torch.optim.SGD/Adam do; '
            '"decoupled": w -= lr * wd * w, as torch.optim.AdamW and Keras do); '
            f"received {weight_decay_mode!r}."
        )
    if weight_decay is None:
        return None, weight_decay_mode
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real) or not weight_decay >= 0:
        raise ValueError(
            f"{optimizer}: weight_decay must be a number >= 0 or None; received {weight_decay!r}."
        )
    return (float(weight_decay) or None), weight_decay_mode


def add_l2(optimizer, gradient, variable, l2):
    """`gradient + l2 * variable` (coupled weight decay), unless `variable` is excluded."""
    from keras import ops

    from keras_mixkd._keras_compat import uses_weight_decay

    if not l2 or not uses_weight_decay(optimizer, variable):
        return gradient
    return ops.add(gradient, ops.multiply(variable, ops.cast(l2, variable.dtype)))


def record_weight_decay_exclusions(optimizer, var_list, var_names):
    """Keep the arguments of `exclude_from_weight_decay` in `optimizer.weight_decay_exclusions`.

    `keras_mixkd._keras_compat.uses_weight_decay` reads them on a Keras without
    `Optimizer._use_weight_decay`. Like Keras's, a call replaces the exclusions
    of an earlier one. The variables are kept by `id` (the optimizer would
    track variables themselves as its own state): the Keras variable's, and
    on TensorFlow its `tf.Variable`'s, which is what `update_step` may receive.
    """
    import keras

    ids = {id(v) for v in var_list or ()}
    if keras.backend.backend() == "tensorflow":
        ids |= {id(v.value) for v in var_list or () if isinstance(v, keras.Variable)}
    optimizer.weight_decay_exclusions = (frozenset(ids), tuple(var_names or ()))


def with_weight_decay_config(optimizer, config):
    """`config` with the decay as the user gave it and its mode (Keras's base config holds only the decoupled one)."""
    config["weight_decay"] = (
        optimizer.weight_decay if optimizer.weight_decay_mode == "decoupled" else optimizer.l2_weight_decay
    )
    config["weight_decay_mode"] = optimizer.weight_decay_mode
    return config
