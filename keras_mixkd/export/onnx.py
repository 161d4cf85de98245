"""The ONNX format: `export_student(..., format="onnx")`, served by ONNX Runtime.

Route, measured on Keras 3.15.1: Keras's own `model.export(format="onnx")`
cannot write the library's students on any backend (TensorFlow: tf2onnx
leaves the captured constants of the `Normalization` layer as extra graph
inputs that ONNX Runtime then asks for; PyTorch: the TorchScript exporter has
no `aten::native_batch_norm`, the zoo's fused batch norm; JAX: it needs
`jax2onnx`, which pulls Flax, Optax and Orbax). So the ONNX file is
converted by `tf2onnx` (the converter Keras uses on TensorFlow) from the
SavedModel Keras's `ExportArchive` writes (`keras_mixkd.serving_signature`):
its input is `images` (float32, dynamic batch), its output `output_0`. On
JAX and PyTorch a TensorFlow-backend child process loads the model's
`.keras` file and does the same. The numbers are the Keras model's
(verified in ONNX Runtime to 1e-4 of the outputs' scale).

This module imports Keras, TensorFlow and ONNX Runtime only inside functions.
"""

import os
import tempfile


class OnnxFormat:
    """How an ONNX file is written (SavedModel -> tf2onnx) and served (`onnxruntime.InferenceSession`).

    See `keras_mixkd.export.saved_model.SavedModelFormat` for the attributes.

    Example:

    >>> fmt = OnnxFormat()
    >>> fmt.write(model, "export/student/model.onnx", (8, 8, 1), "float32")   # TensorFlow backend
    'keras.export.ExportArchive SavedModel -> tf2onnx'
    >>> fmt.load("export/student/model.onnx")["predict"](images).shape
    (4, 10)
    """

    name = "onnx"
    title = "ONNX"
    described = "an ONNX file"
    short = "ONNX"
    file_name = "model.onnx"
    runtime = "onnxruntime"
    writer_packages = (("tensorflow", "tensorflow"), ("tf2onnx", "tf2onnx"), ("onnx", "onnx"))
    runtime_packages = (("onnxruntime", "onnxruntime"),)
    quantizations = ("none",)
    in_process_backends = ("tensorflow",)
    tolerance = 1e-4

    def write(self, model, path, input_shape, dtype, quantize="none", representative=None):
        """Writes `model` to the ONNX file `path`; returns the route taken (a phrase)."""
        from keras_mixkd._keras_compat import patch_tf2onnx
        from keras_mixkd.serving_signature import write_saved_model

        with tempfile.TemporaryDirectory(prefix=".keras-mixkd-onnx-", dir=os.path.dirname(path) or ".") as tmp:
            saved = os.path.join(tmp, "saved_model")
            write_saved_model(model, saved, tuple(input_shape), dtype)
            patch_tf2onnx()
            import tensorflow as tf
            import tf2onnx
            from tf2onnx import tf_loader

            logger = tf.get_logger()
            level = logger.level
            logger.setLevel("ERROR")  # tf2onnx's TF1 calls log a deprecation notice each.
            try:
                graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
                    saved, None, None, tag="serve", signatures=["serving_default"], return_tensors_to_rename=True)
                tf2onnx.convert.from_graph_def(graph_def, name=model.name, input_names=inputs,
                                               output_names=outputs, tensors_to_rename=renames, output_path=path)
            finally:
                logger.setLevel(level)
        return "keras.export.ExportArchive SavedModel -> tf2onnx"

    def load(self, path):
        """`{"predict": images -> outputs, "signature": text, "batch_dim": None when dynamic}`."""
        import numpy as np
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(f"Expected one input and one output in {path}; got inputs "
                               f"{[item.name for item in inputs]}, outputs {[item.name for item in outputs]}.")
        (given,), (out,) = inputs, outputs

        def predict(images):
            return np.asarray(session.run([out.name], {given.name: images})[0])

        batch = given.shape[0] if given.shape else None
        return {
            "predict": predict,
            "signature": f"{given.name}: {given.type} {_shape(given.shape)} -> {out.name}: {out.type} "
                         f"{_shape(out.shape)}",
            "batch_dim": batch if isinstance(batch, int) else None,
        }


def _shape(shape):
    return tuple(dim if isinstance(dim, int) else None for dim in shape)
