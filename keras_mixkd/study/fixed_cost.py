"""Cuts of a study cell's fixed cost (everything but the training steps), each number-preserving.

A cell of a small study spends most of its time outside its training steps
(see docs/performance.md, "Fixed cost of a study cell"). Three cuts, none of
which changes a computed number:

- `prebuild_for_fit`: on TensorFlow, the optimizer's slots and the compiled
  metrics are created before `fit`, so TensorFlow traces the train step once
  instead of twice (a `tf.function` that creates variables in its first
  trace is traced again without them). On JAX and PyTorch it does nothing:
  their `fit` builds that state itself from a batch it draws from a fresh
  iterator of the dataset — which advances a seeded `shuffle` by one
  permutation, so building it beforehand would change every batch's
  contents (and they trace nothing twice);
- `EpochRecorder` runs the validation and test splits through the model in
  one pass of equal-sized chunks, and `run_in_chunks` pads every chunk to the
  same size, so each compiled predict function is traced once per model,
  not once per split size;
- `frozen_gc`: the objects alive when the study starts (the imported
  modules, the data) are moved out of the garbage collector's reach for the
  study's duration (`gc.freeze`), so the full collection of each cell's
  `keras.backend.clear_session()` walks only the cell's own objects (it
  walked the ~400 k objects of TensorFlow's and Keras's modules: a quarter
  to half a second per cell).

They are on by default; `RunOptions(fixed_cost_cuts=False)` (the study's
`--no-fixed-cost-cuts`) switches all three off, inside `cuts(False)`: the
before/after benchmark (`benchmarks/bench_study.py`) runs both.
"""

import contextlib
import gc

# A stack: `cuts` blocks nest; the innermost decides.
_STATE = [True]


def enabled():
    """Whether the cuts are on (the default; off inside `cuts(False)`)."""
    return _STATE[-1]


@contextlib.contextmanager


def cuts(on=True):
    """Switch the cuts on or off inside the block (blocks nest; the innermost decides).

    Arguments:
        on: True (the default of every study) or False.

    Example:

    >>> with cuts(False):
    ...     enabled()
    False
    """
    if not isinstance(on, bool):
        raise TypeError(f"fixed-cost cuts are on (True) or off (False); got {on!r}.")
    _STATE.append(on)
    try:
        yield
    finally:
        _STATE.pop()


def prebuild_for_fit(model, dataset):
    """Create `model`'s optimizer slots and compiled metrics before `fit` traces its train step.

    Keras builds them lazily inside the first call of the train step; under
    TensorFlow a `tf.function` whose first trace creates variables is traced
    a second time, which on a small model costs as much as an epoch. The
    variables are the same (zeros), created in the same order. TensorFlow
    only: on JAX and PyTorch `fit` builds them from a batch of an extra
    iterator of `dataset`, and that draw decides the order of a seeded
    shuffle, so this leaves them to `fit`.

    Arguments:
        model: a compiled `keras.Model` (or `Distiller`), already built.
        dataset: the `tf.data.Dataset` `fit` will get (only its element spec is read).
    """
    import keras

    if not enabled() or keras.backend.backend() != "tensorflow":
        # JAX's and PyTorch's `fit` draw one batch from an extra iterator to build this state
        # (Keras's `Trainer._symbolic_build`): skipping that draw would reshuffle every epoch.
        return
    from keras_mixkd._keras_compat import symbolic_build

    # Symbolic tensors of one batch, as Keras's own `fit` does under a distribution strategy.
    spec = keras.tree.map_structure(lambda s: keras.KerasTensor(s.shape, str(s.dtype.name)),
                                    dataset.element_spec)
    symbolic_build(model, spec)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


@contextlib.contextmanager


def frozen_gc():
    """Keep the objects alive now out of every garbage collection until the block ends (`gc.freeze`).

    What is frozen stays in memory until the block ends even if it becomes
    garbage; enter it when what lives is what the whole study needs (modules,
    data). Does nothing when the cuts are off or a freeze is already on.
    """
    if not enabled() or gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
