"""Every private Keras (and JAX, KerasCV) path the library uses, behind one small function each.

The rest of the package reads no private attribute of a Keras object and
imports nothing from `keras.src`: it calls these functions. Each one names
the versions it was verified on, takes the private path when it is there,
and otherwise takes a public path that computes the same numbers (slower,
or with less checking; the two exceptions say so), with one warning per
process naming what is missing. A Keras without one of these paths never
makes a user's run fail with an `AttributeError`.

Verified on: Keras 3.15.1 (the test suite's; JAX 0.10.2, KerasCV 0.9.0).
The Keras paths are also in keras-nightly 3.16.0.dev2026102704 (read in its
source, not run). A test per function (tests/test_keras_compat.py) removes
the private path with `monkeypatch` and checks what the fallback gives.
"""

import inspect
import re
import warnings

import keras

_warned = set()


def warn_fallback(what, fallback):
    """One `RuntimeWarning` per `what` and process: `what` is missing, `fallback` is taken.

    Arguments:
        what: the private path that is missing (say `"Functional._nodes_by_depth"`).
        fallback: what the library does instead.

    Example:

    >>> warn_fallback("Functional._nodes_by_depth", "the model's own call")  # doctest: +SKIP
    """
    if what in _warned:
        return
    _warned.add(what)
    warnings.warn(
        f"keras-mixkd: no {what} here (Keras {keras.__version__}; keras-mixkd was verified on "
        f"Keras 3.15.1 and 3.16.0.dev); taking {fallback} instead (see keras_mixkd._keras_compat).",
        RuntimeWarning,
        stacklevel=3,
    )


def functional_class():
    """The class of functional `keras.Model`s (`keras.src.models.functional.Functional`), or None.

    Verified on Keras 3.15.1 and 3.16.0.dev. Fallback when the import fails:
    `None` (one warning); `DirectGraphCall` then runs every model through its
    plain call.

    Example:

    >>> functional_class().__name__
    'Functional'
    """
    try:
        from keras.src.models.functional import Functional
    except ImportError:
        warn_fallback("keras.src.models.functional.Functional", "every model's plain call")
        return None
    return Functional


def graph_nodes(model):
    """The nodes of functional `model` that run an operation, deepest first (Keras's own order), or None.

    Reads `model._nodes_by_depth` (Keras 3.15.1, 3.16.0.dev). Fallback when
    it is missing: `None` (one warning): the caller takes the model's plain
    call.

    Arguments:
        model: a functional `keras.Model`.

    Returns:
        A list of `Node`s (each with `operation`, `input_tensors`,
        `output_tensors`, `outputs`, `arguments`), or None.

    Example:

    >>> from keras_mixkd.models import get_model
    >>> len(graph_nodes(get_model("resnet8", 10))) > 0
    True
    """
    by_depth = getattr(model, "_nodes_by_depth", None)
    if not isinstance(by_depth, dict):
        warn_fallback("Functional._nodes_by_depth", "the model's plain call")
        return None
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]
            if node.operation is not None and not node.is_input]


def standardize_inputs(model, inputs):
    """`inputs` of functional `model` as the flat list matching `model.inputs`, or None.

    Calls `model._standardize_inputs` (Keras 3.15.1, 3.16.0.dev), which also
    reorders a dict of named inputs. Fallback when it is missing: `None` (one
    warning): the caller takes the model's plain call.

    Example:

    >>> import numpy as np
    >>> from keras_mixkd.models import get_model
    >>> len(standardize_inputs(get_model("resnet8", 10), np.zeros((1, 32, 32, 3), "float32")))
    1
    """
    method = getattr(model, "_standardize_inputs", None)
    if method is None:
        warn_fallback("Functional._standardize_inputs", "the model's plain call")
        return None
    return method(inputs)


def keras_mask(tensor):
    """The Keras mask carried by `tensor` (`tensor._keras_mask`), or None.

    Verified on Keras 3.15.1 and 3.16.0.dev, where a tensor without a mask
    has no such attribute: its absence is not a fallback and gives no warning.

    Example:

    >>> keras_mask(keras.ops.ones((2,))) is None
    True
    """
    return getattr(tensor, "_keras_mask", None)


def sublayers(layer, recursive=True):
    """The layers `layer` holds (not itself), nested ones too when `recursive`.

    Calls `layer._flatten_layers(include_self=False, recursive=...)` (Keras
    3.15.1, 3.16.0.dev). Fallback when it is missing (one warning): a
    model's public `layers`, and for other layers those found in their
    attributes, lists, tuples and dicts (what Keras's attribute tracking
    collects), recursively; the same layers but for `InputLayer`s, which
    hold no weights and compute nothing.

    Example:

    >>> block = keras.Sequential([keras.layers.Dense(2), keras.layers.Dense(3)])
    >>> [type(x).__name__ for x in sublayers(block)]
    ['Dense', 'Dense']
    """
    method = getattr(layer, "_flatten_layers", None)
    if method is not None:
        return list(method(include_self=False, recursive=recursive))
    warn_fallback("Layer._flatten_layers", "a walk over the layers' attributes")
    found, seen = [], {id(layer)}
    pending = _children(layer)
    while pending:
        child = pending.pop(0)
        if id(child) in seen:
            continue
        seen.add(id(child))
        found.append(child)
        if recursive:
            pending[:0] = _children(child)
    return found


def _children(layer):
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    return _layers_in(vars(layer).values())


def _layers_in(values):
    layers = []
    for value in values:
        if isinstance(value, keras.layers.Layer):
            layers.append(value)
        elif isinstance(value, (list, tuple)):
            layers.extend(_layers_in(value))
        elif isinstance(value, dict):
            layers.extend(_layers_in(value.values()))
    return layers


def call_takes_training(layer):
    """Whether `layer.call` takes a `training` argument (what `__call__` passes it).

    Reads `layer._call_has_training_arg` (Keras 3.15.1, 3.16.0.dev). Fallback
    when it is missing (one warning): `inspect.signature(layer.call)`, which
    is how Keras computes it.

    Example:

    >>> call_takes_training(keras.layers.Dropout(0.5)), call_takes_training(keras.layers.Dense(2))
    (True, False)
    """
    value = getattr(layer, "_call_has_training_arg", None)
    if isinstance(value, bool):
        return value
    warn_fallback("Layer._call_has_training_arg", "inspect.signature(layer.call)")
    return "training" in inspect.signature(layer.call).parameters


def uses_weight_decay(optimizer, variable):
    """Whether `optimizer` decays `variable` (False for those `exclude_from_weight_decay` named).

    Calls `optimizer._use_weight_decay(variable)` (Keras 3.15.1,
    3.16.0.dev). Fallback when it is missing (one warning): the rule Keras
    documents for `exclude_from_weight_decay(var_list, var_names)`, applied
    to the arguments the library's optimizers record in their public
    `weight_decay_exclusions` (`(variable ids, names)`): a variable is
    excluded when its `id` is one of them or `re.search` finds one of `names`
    in its name.

    Example:

    >>> sgd = keras.optimizers.SGD()
    >>> uses_weight_decay(sgd, keras.Variable(1.0, name="kernel"))
    True
    """
    method = getattr(optimizer, "_use_weight_decay", None)
    if method is not None:
        return method(variable)
    warn_fallback("Optimizer._use_weight_decay", "the optimizer's recorded exclude_from_weight_decay arguments")
    variable_ids, names = getattr(optimizer, "weight_decay_exclusions", ((), ()))
    if id(variable) in variable_ids:
        return False
    return not names or re.search("|".join(set(names)), variable.name) is None


def symbolic_build(model, data_batch):
    """Build `model`'s compiled loss and metrics from a symbolic batch, as `fit` does; True if it did.

    Calls `model._symbolic_build(data_batch=...)` when `model._compile_loss`
    or `model._compile_metrics` is not built (Keras 3.15.1, 3.16.0.dev).
    Fallback when these are missing (one warning): nothing is built here and
    `fit` builds them itself (one more trace of the train step, same numbers).

    Arguments:
        model: a compiled `keras.Model`.
        data_batch: a structure of `keras.KerasTensor`s shaped like one batch.

    Returns:
        Whether the private path was there (built now or already built).

    Example:

    ```python
    symbolic_build(model, (keras.KerasTensor((None, 4)), keras.KerasTensor((None, 3))))
    ```
    """
    method = getattr(model, "_symbolic_build", None)
    if method is None or not hasattr(model, "_compile_loss") or not hasattr(model, "_compile_metrics"):
        warn_fallback("Trainer._symbolic_build", "fit's own build of the compiled loss and metrics")
        return False
    metrics, loss = model._compile_metrics, model._compile_loss
    if (metrics is not None and not metrics.built) or (loss is not None and not loss.built):
        method(data_batch=data_batch)
    return True


def restore_detached_values(saved):
    """Put back the values of JAX variables that Keras's JAX trainer left detached.

    Keras's JAX trainer sets `variable._value` to None while a step runs and
    attaches the new values after it (Keras 3.15.1, 3.16.0.dev); a step that
    raises leaves them detached. For each `(variable, value)` whose
    `_value` is None this sets it back. Fallback when `_value` is missing
    (one warning): `variable.assign(value)`, Keras's public write, for every
    pair: the variables all go back to the saved values (on the private path,
    those the failed step did not detach keep their current values).

    Arguments:
        saved: `(variable, value)` pairs taken before the step.

    Example:

    ```python
    saved = [(v, v.value) for v in model.variables]
    try:
        model.fit(...)
    except Exception:
        restore_detached_values(saved)
        raise
    ```
    """
    for variable, value in saved:
        if "_value" not in vars(variable):
            warn_fallback("Variable._value", "variable.assign")
            variable.assign(value)
        elif variable._value is None:
            variable._value = value


def jax_backends_started():
    """Whether JAX has started its backends in this process (and so read `XLA_FLAGS`).

    Reads `jax._src.xla_bridge._backends` (JAX 0.10.2). Fallback when it is
    missing (one warning): `bool(jax.devices())`, which starts them and says
    True: the caller then refuses, with a clear error, what it could not
    guarantee.

    Example:

    >>> jax_backends_started() in (True, False)  # doctest: +SKIP
    True
    """
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except (ImportError, AttributeError):
        import jax

        warn_fallback("jax._src.xla_bridge._backends", "jax.devices()")
        return bool(jax.devices())


def sequential_map(layer):
    """Make a KerasCV per-image layer map over the batch one image at a time; returns `layer`.

    KerasCV's `BaseImageAugmentationLayer` runs `tf.map_fn` with its default
    10 parallel iterations; the images then take their draws from the
    layer's seeded `tf.random.Generator` in an order that varies from run to
    run, so a seeded `keras_cv.layers.RandAugment` gave other images in
    another process (seen under the JAX backend). One iteration at a time
    fixes the order. Replaces `layer._map_fn` and calls
    `layer._compute_output_signature` (KerasCV 0.9.0). Fallback when they
    are missing (one warning): the layer unchanged, whose images may be drawn
    in another order from run to run.

    Example:

    ```python
    layer = sequential_map(keras_cv.layers.RandAugment(value_range=(0, 1), seed=1))
    ```
    """
    import tensorflow as tf

    if not hasattr(layer, "_map_fn") or not hasattr(layer, "_compute_output_signature"):
        warn_fallback("KerasCV's BaseImageAugmentationLayer._map_fn",
                      "KerasCV's parallel map (its draws are not ordered the same from run to run)")
        return layer

    def map_fn(func, inputs):
        return tf.map_fn(func, inputs, fn_output_signature=layer._compute_output_signature(inputs),
                         parallel_iterations=1)

    layer._map_fn = map_fn
    return layer


def patch_tf2onnx():
    """Makes `tf2onnx` run under NumPy 2, as Keras's own ONNX export does, before a conversion.

    Calls `keras.src.export.tf2onnx_lib.patch_tf2onnx` (Keras 3.15.1,
    3.16.0.dev): tf2onnx 1.17 still reads `np.object` and NumPy 1 casts in
    its constant folding. Fallback when it is missing: `np.object = object`
    (one warning), enough for the convolutional models of the zoo.

    Example:

    >>> patch_tf2onnx()
    >>> import tf2onnx  # doctest: +SKIP
    """
    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx as patch
    except ImportError:
        warn_fallback("keras.src.export.tf2onnx_lib.patch_tf2onnx", "np.object = object")
        import numpy as np

        if not hasattr(np, "object"):
            np.object = object
        return
    patch()
