"""`DirectGraphCall`: a functional model's forward pass without Keras's per-layer call machinery."""

import functools

import keras

from keras_mixkd._keras_compat import call_takes_training
from keras_mixkd._keras_compat import functional_class
from keras_mixkd._keras_compat import graph_nodes
from keras_mixkd._keras_compat import keras_mask
from keras_mixkd._keras_compat import standardize_inputs
from keras_mixkd._keras_compat import sublayers


def direct_call_problem(model):
    """Why `DirectGraphCall` cannot run `model`, or `None` when it can.

    It runs a built functional `keras.Model` whose `call` is the functional
    one, whose layers all compute in float32 (no mixed or quantised dtype
    policy), add no activity-regularisation loss and hold no sublayers
    (nested models are fine), and whose graph carries no Keras mask. Those
    are the cases where a layer's own `call` computes exactly what its
    `__call__` computes.

    Arguments:
        model: A `keras.Model`.

    Returns:
        `None`, or a sentence naming what stands in the way.

    Example:

    >>> from keras_mixkd.models import get_model
    >>> direct_call_problem(get_model("resnet8", 10)) is None
    True

    On a Keras without the internals this needs (see `keras_mixkd._keras_compat`),
    the problem names them, and `direct_call_or_model` keeps the model's plain
    call.
    """
    functional = functional_class()
    if functional is None:
        return "this Keras has no keras.src.models.functional.Functional"
    if not isinstance(model, functional):
        return f"{type(model).__name__} is not a functional keras.Model"
    if type(model).call is not functional.call:
        return f"{type(model).__name__} overrides the functional `call`"
    if not model.built:
        return f"model {model.name!r} is not built"
    nodes = graph_nodes(model)
    if nodes is None:
        return "this Keras has no Functional._nodes_by_depth"
    for node in nodes:
        operation = node.operation
        for tensor in node.output_tensors:
            if keras_mask(tensor) is not None:
                return f"layer {operation.name!r} outputs a Keras mask"
        if not isinstance(operation, keras.layers.Layer):
            continue
        policy = operation.dtype_policy.name
        if policy != "float32":
            return f"layer {operation.name!r} has the dtype policy {policy!r}, not 'float32'"
        if getattr(operation, "activity_regularizer", None) is not None:
            return f"layer {operation.name!r} has an activity regulariser"
        if not isinstance(operation, keras.Model) and sublayers(operation, recursive=False):
            # Its sublayers would read `training` from a Keras call context that only
            # `__call__` sets up.
            return f"layer {operation.name!r} holds sublayers"
    return None


def direct_call_or_model(model):
    """`DirectGraphCall(model)` where `direct_call_problem(model)` is `None`, else `model` itself.

    Either is called as `forward(x, training=...)` and computes the same.

    Arguments:
        model: A `keras.Model`.

    Returns:
        A `DirectGraphCall` or `model`.

    Example:

    >>> from keras_mixkd.models import get_model
    >>> type(direct_call_or_model(get_model("resnet8", 10))).__name__
    'DirectGraphCall'
    """
    return model if direct_call_problem(model) is not None else DirectGraphCall(model)


class DirectGraphCall:
    """A functional model's forward pass, calling each layer's `call` directly.

    `model(x, training=...)` goes through `Layer.__call__` for every layer
    (input conversion and dtype casting, name scopes, mask propagation, the
    call context, the `torch.nn.Module` hooks), and Keras's graph walk keeps
    every intermediate tensor alive to the end of the pass. Under a compiled
    backend (TensorFlow, JAX) the first runs once, when the step is traced,
    and the compiler frees what is dead; under PyTorch both cost at every
    step: the Python, and every layer's output written to fresh memory.
    This pass drops each intermediate tensor after the last layer that reads
    it (autograd keeps what the backward pass needs), as plain PyTorch code
    does. resnet110's inference at batch 64 on a 2-core CPU took 250 ms
    through `model(x)`, 97 ms this way, 106 ms in plain PyTorch
    (docs/performance.md). For the models `direct_call_problem`
    accepts (float32, no masks, no activity regularisers, the functional
    `call`) each layer's `call(..., training=training)` receives what
    `__call__` would pass it and runs the same operations in the same order
    (BatchNorm's moving-statistics update and dropout's seeded draws
    included): the outputs and their gradients are identical, bit for bit.
    A nested model is called as usual (its own `__call__`). Inputs that are
    not float32, symbolic inputs, and a `training` that is not a Python
    bool take the plain `model(x, training=training)`, and so do all inputs
    on a Keras that lacks the internals this walk reads (one warning; see
    `keras_mixkd._keras_compat`).

    The `Distiller` runs its teacher (inference) and its student (training
    and inference) this way when they allow it (`direct_call_or_model`).

    Arguments:
        model: A built functional `keras.Model` (see `direct_call_problem`).

    Raises:
        ValueError: When `direct_call_problem(model)` names a problem.

    Example:

    >>> import numpy as np
    >>> from keras_mixkd.models import get_model
    >>> teacher = get_model("resnet8", 10)
    >>> images = np.random.default_rng(0).random((4, 32, 32, 3), dtype="float32")
    >>> direct = DirectGraphCall(teacher)(images, training=False)
    >>> bool(np.array_equal(keras.ops.convert_to_numpy(direct),
    ...                     keras.ops.convert_to_numpy(teacher(images, training=False))))
    True
    """

    def __init__(self, model):
        self.model = model
        functional = functional_class()
        if functional is None or (isinstance(model, functional) and graph_nodes(model) is None):
            # A Keras without the internals this walk reads: the plain call (the compat module warned).
            self._schedule = None
            return
        problem = direct_call_problem(model)
        if problem is not None:
            raise ValueError(
                "DirectGraphCall runs a built functional keras.Model of float32 layers without "
                f"masks, activity regularisers or sublayers; got {problem}."
            )
        nodes = graph_nodes(model)  # the order of Keras's own `_run_through_graph`
        self._calls = {training: {id(node.operation): self._direct_call(node.operation, training)
                                  for node in nodes}
                       for training in (False, True)}
        # Each intermediate tensor is dropped after the last node that reads it, as
        # eager PyTorch code drops its activations: Keras's own graph walk keeps all of
        # them to the end of the pass (resnet110 at batch 64: ~1.5 GB held, every
        # layer's output written to fresh memory). Autograd keeps what backward needs.
        last_reader = {}
        for index, node in enumerate(nodes):
            for tensor in node.input_tensors:
                last_reader[id(tensor)] = index
        kept = {id(tensor) for tensor in model.outputs}
        released = [[] for _ in nodes]
        for key, index in last_reader.items():
            if key not in kept:
                released[index].append(key)
        self._schedule = list(zip(nodes, released))

    @staticmethod
    def _direct_call(operation, training):
        if isinstance(operation, keras.Model):
            return functools.partial(operation, training=training)
        if isinstance(operation, keras.layers.Layer):
            if call_takes_training(operation):
                return functools.partial(operation.call, training=training)
            return operation.call
        return operation  # a bare keras op: its `__call__` is its computation

    def __call__(self, inputs, training=False):
        """The model's outputs on `inputs` (`training`: `True` or `False`)."""
        symbolic = any(keras.backend.is_keras_tensor(x) for x in keras.tree.flatten(inputs))
        if self._schedule is None or not isinstance(training, bool) or symbolic:
            return self.model(inputs, training=training)
        flat_inputs = standardize_inputs(self.model, inputs)
        if flat_inputs is None or any(keras.backend.standardize_dtype(x.dtype) != "float32" for x in flat_inputs):
            return self.model(inputs, training=training)
        calls = self._calls[training]
        tensors = {id(reference): value for reference, value in zip(self.model.inputs, flat_inputs)}
        for node, released in self._schedule:
            if all(id(tensor) in tensors for tensor in node.input_tensors):
                args, kwargs = node.arguments.fill_in(tensors)
                outputs = calls[id(node.operation)](*args, **kwargs)
                for reference, value in zip(node.outputs, keras.tree.flatten(outputs)):
                    tensors[id(reference)] = value
            for key in released:
                tensors.pop(key, None)
        missing = [reference.name for reference in self.model.outputs if id(reference) not in tensors]
        if missing:
            raise ValueError(f"Outputs {missing} of model {self.model.name!r} are not connected to its inputs.")
        outputs = keras.tree.pack_sequence_as(
            self.model.output, [tensors[id(reference)] for reference in self.model.outputs]
        )
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            return outputs[0]
        return outputs
