"""The TensorFlow SavedModel format: `export_student(..., format="saved_model")` (the default).

The SavedModel's `serving_default` signature takes `images` and gives
`output_0` on every backend (`keras_mixkd.serving_signature`). Written by
Keras's own `keras.export.ExportArchive` (what `model.export(path,
format="tf_saved_model")` uses) on TensorFlow and JAX (through `jax2tf`),
and by the same code in a TensorFlow-backend child process on PyTorch.
Served by `tf.saved_model.load`.

This module imports Keras and TensorFlow only inside functions.
"""

SERVING_ENDPOINT = "serving_default"


class SavedModelFormat:
    """How a SavedModel is written (TensorFlow side) and served (`tf.saved_model.load`).

    Every export format is a class like this one, registered in
    `keras_mixkd.export.registry.FORMATS`: its name, the file it writes in
    the export folder (`None`: the folder itself), the runtime a deployer
    serves it with, the packages each side needs, the quantisations it
    offers, the backends that write it in their own process, and its
    default tolerance.

    Example:

    >>> fmt = SavedModelFormat()
    >>> fmt.write(model, "export/student", (8, 8, 1), "float32")   # TensorFlow or JAX backend
    'keras.export.ExportArchive'
    >>> serve = fmt.load("export/student")
    >>> serve["predict"](images).shape
    (4, 10)
    """

    name = "saved_model"
    title = "TensorFlow SavedModel"
    described = "a TensorFlow SavedModel"
    short = "SavedModel"
    file_name = None
    runtime = "tf.saved_model"
    # (module to import, pip package): on the side that writes, and on the side that serves.
    writer_packages = (("tensorflow", "tensorflow"),)
    runtime_packages = (("tensorflow", "tensorflow"),)
    quantizations = ("none",)
    in_process_backends = ("tensorflow", "jax")
    tolerance = 1e-5

    def write(self, model, path, input_shape, dtype, quantize="none", representative=None):
        """Writes `model` as a SavedModel folder `path`; returns the route taken (a phrase)."""
        from keras_mixkd.serving_signature import write_saved_model

        write_saved_model(model, path, tuple(input_shape), dtype)
        return "keras.export.ExportArchive"

    def load(self, path):
        """`{"predict": images -> outputs, "signature": text, "batch_dim": None when dynamic}`."""
        import numpy as np
        import tensorflow as tf

        from keras_mixkd.serving_signature import INPUT_NAME
        from keras_mixkd.serving_signature import OUTPUT_NAME

        loaded = tf.saved_model.load(path)
        if SERVING_ENDPOINT not in loaded.signatures:
            raise RuntimeError(f"{path} has no {SERVING_ENDPOINT!r} signature; found {list(loaded.signatures)}.")
        serve = loaded.signatures[SERVING_ENDPOINT]
        _, input_specs = serve.structured_input_signature
        if len(input_specs) != 1:
            raise RuntimeError(f"Expected one input in the signature; got {sorted(input_specs)}.")
        (input_name, input_spec), = input_specs.items()
        output_specs = serve.structured_outputs
        if len(output_specs) != 1:
            raise RuntimeError(f"Expected one output in the signature; got {sorted(output_specs)}.")
        (output_name, output_spec), = output_specs.items()
        if (input_name, output_name) != (INPUT_NAME, OUTPUT_NAME):
            raise RuntimeError(f"Expected the signature {INPUT_NAME!r} -> {OUTPUT_NAME!r}; got {input_name!r} -> "
                               f"{output_name!r}.")

        def predict(images):
            return np.asarray(serve(**{input_name: tf.constant(images)})[output_name].numpy())

        return {
            "predict": predict,
            "signature": f"{_describe(input_name, input_spec)} -> {_describe(output_name, output_spec)}",
            "batch_dim": input_spec.shape.as_list()[0] if input_spec.shape.rank else None,
            "loaded": loaded,  # Keeps the SavedModel's variables alive while `predict` runs.
        }


def _describe(name, spec):
    shape = tuple(spec.shape.as_list()) if spec.shape.rank is not None else None
    return f"{name}: {spec.dtype.name} {shape}"
