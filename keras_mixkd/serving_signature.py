"""The serving signature of every SavedModel keras-mixkd writes: `images` -> `output_0`.

Keras names a SavedModel's input after the model's input tensor, which
differs by backend and model kind (`images` for the zoo's functional models,
`keras_tensor_7` for a `Sequential`, `args_0` for a subclassed model). The
export writes the signature itself, so that every SavedModel, from every
backend and every kind of model, is called the same way:

```python
serve = tf.saved_model.load("export/student").signatures["serving_default"]
logits = serve(images=batch)["output_0"]
```

This module imports Keras only inside functions: the export's TensorFlow
child processes use it too.
"""

import importlib

INPUT_NAME = "images"
OUTPUT_NAME = "output_0"


def serving_input(model, images=None):
    """The `(shape without the batch, dtype)` of the one input of `model`.

    A functional or `Sequential` model tells its input; a subclassed model
    tells the shape it was built or first called with
    (`model.get_build_config()`), its dtype taken as `float32`, images as
    loaded. `images`, when given, fill in a shape the model leaves open.

    Arguments:
        model: a built `keras.Model` with one input.
        images: optional array `(N, ...)` the model will be fed.

    Returns:
        `(shape, dtype)`: a tuple of ints (`None` where the model takes any
        size and `images` are not given) and a dtype name.

    Example:

    >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    >>> serving_input(model)
    ((8, 8, 1), 'float32')
    """
    inputs = _functional_inputs(model)
    if inputs is not None:
        if len(inputs) != 1:
            raise ValueError(
                f"The SavedModel takes one batch of images, but model {model.name!r} has {len(inputs)} inputs "
                f"({', '.join(str(tensor.name) for tensor in inputs)}); export a model with one input."
            )
        shape, dtype = tuple(inputs[0].shape), str(inputs[0].dtype)
    else:
        shape, dtype = _built_shape(model), "float32"
        if shape is None and images is None:
            raise ValueError(
                f"Cannot tell the input shape of the subclassed model {model.name!r}: it was built with "
                f"{model.get_build_config()}, not one batch of images. The SavedModel takes one batch "
                "(N, height, width, channels): export a model called on such a batch (or built with "
                "`model.build((None, height, width, channels))`), or pass `verify_images`."
            )
    shape = tuple(shape[1:]) if shape is not None else None
    if images is not None:
        given = tuple(int(dim) for dim in images.shape[1:])
        if shape is not None and (len(shape) != len(given) or any(
                dim is not None and dim != size for dim, size in zip(shape, given))):
            raise ValueError(
                f"`verify_images` must be at least 2 images of shape {shape}, what model {model.name!r} takes; "
                f"got an array of shape {tuple(images.shape)}."
            )
        shape = given
    return tuple(None if dim is None else int(dim) for dim in shape), dtype


def _functional_inputs(model):
    """The input tensors of a functional or `Sequential` model, `None` for a subclassed one."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    return list(inputs) if inputs else None


def _built_shape(model):
    config = model.get_build_config() or {}
    shape = config.get("input_shape")
    if isinstance(shape, (tuple, list)) and shape and all(
            dim is None or isinstance(dim, int) for dim in shape):
        return tuple(shape)
    return None


def write_saved_model(model, export_dir, input_shape, input_dtype):
    """Writes `model` as a SavedModel whose `serving_default` is `images` -> `output_0`.

    Keras's `keras.export.ExportArchive` (TensorFlow, and JAX through
    `jax2tf`), with a dynamic batch dimension; the model runs in inference
    mode (`training=False`). The model must give one tensor.

    Arguments:
        model: a built `keras.Model` with one input and one output.
        export_dir: the folder to write.
        input_shape: the input's shape without the batch dimension.
        input_dtype: the input's dtype name.

    Example:

    >>> write_saved_model(model, "export/student", (8, 8, 1), "float32")
    """
    import keras

    outputs = getattr(model, "outputs", None) if _functional_inputs(model) is not None else None
    if outputs is not None and len(outputs) != 1:
        raise ValueError(
            f"The SavedModel gives one batch of outputs ({OUTPUT_NAME!r}), but model {model.name!r} has "
            f"{len(outputs)} outputs; export a model with one output (its logits)."
        )

    def serve(images):
        try:
            results = keras.tree.flatten(model(images, training=False))
        except TypeError as error:  # A call that needs more than one batch of images.
            raise ValueError(
                f"The SavedModel calls model {model.name!r} on one batch of images {INPUT_NAME!r} "
                f"(None, {', '.join(str(dim) for dim in input_shape)}), which it does not take: {error}"
            ) from error
        if len(results) != 1:
            raise ValueError(
                f"The SavedModel gives one batch of outputs ({OUTPUT_NAME!r}), but model {model.name!r} "
                f"returned {len(results)} tensors; export a model with one output (its logits)."
            )
        return results[0]

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = keras.InputSpec(shape=(None,) + tuple(input_shape), dtype=input_dtype, name=INPUT_NAME)
    archive.add_endpoint("serve", serve, input_signature=[spec])
    archive.write_out(export_dir, verbose=False)


def model_classes(model, what="SavedModel", backend="PyTorch"):
    """`"module:qualname"` of each class of `model` and its layers that Keras and keras-mixkd do not define.

    These are what a fresh process must import to load the model from a
    `.keras` file. A class defined in `__main__` or inside a function cannot
    be imported there: a `ValueError` says so (`what`: the export format,
    `backend`: the calling backend's name, for that message).

    Example:

    >>> model_classes(get_model("lenet5", 10))
    []
    """
    from keras_mixkd._keras_compat import sublayers

    names = []
    for layer in [model, *sublayers(model, recursive=True)]:
        cls = type(layer)
        module = cls.__module__ or ""
        if module.split(".")[0] in ("keras", "keras_mixkd", "keras_cv", "keras_hub"):
            continue
        name = f"{module}:{cls.__qualname__}"
        if module == "__main__" or "<locals>" in cls.__qualname__:
            raise ValueError(
                f"Model {model.name!r} uses the class {cls.__qualname__} defined "
                f"{'in __main__' if module == '__main__' else 'inside a function'}. On the {backend} backend the "
                f"{what} is written by a TensorFlow-backend process that loads the model from a .keras file "
                f"and must import {cls.__qualname__}: define it at the top level of an importable module "
                "(registered with @keras.saving.register_keras_serializable()), or export from the "
                f"TensorFlow{' or JAX' if what == 'SavedModel' else ''} backend (KERAS_BACKEND=tensorflow)."
            )
        if name not in names:
            names.append(name)
    return names


def import_classes(names):
    """The classes named `"module:qualname"` (see `model_classes`), by their class name.

    Example:

    >>> import_classes(["my_models:Student"])
    {'Student': <class 'my_models.Student'>}
    """
    classes = {}
    for name in names:
        module, qualname = name.split(":", 1)
        value = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
        classes[qualname.split(".")[-1]] = value
    return classes
