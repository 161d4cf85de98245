"""The LiteRT format (the former TensorFlow Lite): `export_student(..., format="litert", quantize=...)`.

Written by Keras's own `model.export(path, format="litert")` (Keras >= 3.13:
`ExportArchive` -> `tf.lite.TFLiteConverter`), with `quantize`:

- `"none"`: float32 weights and compute;
- `"float16"`: weights stored in float16 (`target_spec.supported_types`),
  computed in float32;
- `"int8"`: post-training quantisation of weights and activations
  (`optimizations=[DEFAULT]` with a `representative_dataset` of training
  images as loaded); input and output stay float32.

Keras writes LiteRT only on TensorFlow (PyTorch needs `litert-torch`, which
does not install beside the library's PyTorch; JAX has no route), so on JAX
and PyTorch a TensorFlow-backend child process loads the model's `.keras`
file and calls the same `model.export`. The input is `images`, float32, with
a dynamic batch (`shape_signature` -1: resize the input before
`allocate_tensors`). Served by `ai_edge_litert.interpreter.Interpreter`.

This module imports Keras, TensorFlow and LiteRT only inside functions.
"""


class LiteRTFormat:
    """How a `.tflite` file is written (Keras's `model.export(format="litert")`) and served (LiteRT's interpreter).

    See `keras_mixkd.export.saved_model.SavedModelFormat` for the attributes.

    Example:

    >>> fmt = LiteRTFormat()
    >>> fmt.write(model, "export/student/model.tflite", (8, 8, 1), "float32", "int8", x_train[:200])
    "keras Model.export(format='litert')"
    >>> fmt.load("export/student/model.tflite")["predict"](images).shape
    (4, 10)
    """

    name = "litert"
    title = "LiteRT (.tflite)"
    described = "a LiteRT file (.tflite)"
    short = "LiteRT"
    file_name = "model.tflite"
    runtime = "ai_edge_litert.interpreter"
    writer_packages = (("tensorflow", "tensorflow"),)
    runtime_packages = (("ai_edge_litert", "ai-edge-litert"),)
    quantizations = ("none", "float16", "int8")
    in_process_backends = ("tensorflow",)
    tolerance = 1e-4

    def write(self, model, path, input_shape, dtype, quantize="none", representative=None):
        """Writes `model` to the `.tflite` file `path`; returns the route taken (a phrase).

        `representative`: float32 images as loaded (int8 only), fed one at a time.
        """
        import tensorflow as tf

        from keras_mixkd.serving_signature import INPUT_NAME

        options = {}
        if quantize == "float16":
            options = {"optimizations": [tf.lite.Optimize.DEFAULT],
                       "target_spec": {"supported_types": [tf.float16]}}
        elif quantize == "int8":
            options = {"optimizations": [tf.lite.Optimize.DEFAULT],
                       "representative_dataset": lambda: ([image[None]] for image in representative)}
        signature = [tf.TensorSpec((None, *input_shape), dtype, name=INPUT_NAME)]
        model.export(path, format="litert", verbose=False, input_signature=signature, **options)
        return "keras Model.export(format='litert')"

    def load(self, path):
        """`{"predict": images -> outputs, "signature": text, "batch_dim": None when dynamic}`."""
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path)
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(f"Expected one input and one output in {path}; got {len(inputs)} and {len(outputs)}.")
        (given,), (out,) = inputs, outputs
        state = {"shape": None}

        def predict(images):
            if state["shape"] != images.shape:
                interpreter.resize_tensor_input(given["index"], list(images.shape))
                interpreter.allocate_tensors()
                state["shape"] = images.shape
            interpreter.set_tensor(given["index"], images)
            interpreter.invoke()
            return np.array(interpreter.get_tensor(out["index"]))

        signature = [int(dim) for dim in given["shape_signature"]]
        out_signature = [int(dim) for dim in out["shape_signature"]]
        return {
            "predict": predict,
            "signature": f"{given['name']}: {np.dtype(given['dtype']).name} {_shape(signature)} -> "
                         f"{out['name']}: {np.dtype(out['dtype']).name} {_shape(out_signature)}",
            "batch_dim": None if signature[0] == -1 else signature[0],
        }


def _shape(dims):
    return tuple(None if dim == -1 else dim for dim in dims)
