"""Optimizers with PyTorch's weight-decay semantics, for `model.compile`.

`SGD` computes momentum and weight decay as `torch.optim.SGD` does (decay
coupled to the gradient, `weight_decay_mode="l2"`, by default); `Adam` offers
`torch.optim.Adam`'s coupled decay. `keras.optimizers.AdamW` is already
decoupled as `torch.optim.AdamW`. The study's `build_optimizer` uses these, so a
`fit` user gets the same updates as a study run.
"""

from keras_mixkd.optimizers._weight_decay import WEIGHT_DECAY_MODES
from keras_mixkd.optimizers.adam import Adam
from keras_mixkd.optimizers.sgd import SGD

__all__ = ["Adam", "SGD", "WEIGHT_DECAY_MODES"]
