"""`ExportResult`: what `export_student` wrote, how, and what its verification found."""


class ExportResult:
    """What `export_student` wrote and what its verification found.

    Arguments:
        export_dir: The export folder (the SavedModel itself, or the folder
            holding `model.onnx` / `model.tflite` and `metadata.json`).
        backend: The Keras backend of the calling process.
        route: How the export was written, e.g. `"keras.export.ExportArchive"`,
            `"keras Model.export(format='litert') in a TensorFlow-backend process"`.
        model_name: Name of the exported model.
        num_params: Number of weights of the exported model (trainable or not).
        signature: Text of the input and output, e.g.
            `"images: float32 (None, 8, 8, 1) -> output_0: float32 (None, 10)"`.
        max_abs_diff: Largest |exported - Keras| over the verification
            batches, or `None` when not verified.
        batch_sizes: Batch sizes the verification ran.
        tolerance: The relative tolerance: `max_abs_diff` was held to
            `tolerance * max(1, max |Keras output|)` (float formats; an int8
            export is judged by its accuracy instead).
        bound: That bound, or `None` when not verified or not held.
        metadata_path: The model card written in the export folder
            (`metadata.json`).
        notes: Sentences about what the export added or could not add (an
            output transform, a missing normalisation, an accuracy lost).
        role: What was exported: `"student"`, `"teacher"` (from the model
            card) or `"model"` when nothing tells.
        format: `"saved_model"`, `"onnx"` or `"litert"`.
        quantize: `"none"`, `"float16"` or `"int8"`.
        model_path: The file a runtime loads (the SavedModel folder itself).
        size_bytes: Its size on disk (a SavedModel: every file but `metadata.json`).
        runtime: The runtime the verification and the latency ran in.
        latency_ms: Median time of one image in that runtime on this
            machine's CPU (after warm-up), or `None` when not verified.
        test_accuracy: Accuracy of the export on the test images given, or `None`.
        keras_test_accuracy: Accuracy of the Keras model on the same images.
        test_examples: How many test images.

    Example:

    ```python
    result = export_student(distiller, "export/student", format="litert", quantize="int8",
                            representative_images=splits.x_train, test_images=splits.x_test,
                            test_labels=splits.y_test)
    print(result)            # one paragraph for a person
    result.test_accuracy, result.keras_test_accuracy, result.latency_ms
    ```
    """

    def __init__(self, export_dir, backend, route, model_name, num_params, signature=None,
                 max_abs_diff=None, batch_sizes=(), tolerance=None, metadata_path=None, notes=(),
                 role="model", bound=None, format="saved_model", quantize="none", model_path=None,
                 size_bytes=None, runtime=None, latency_ms=None, test_accuracy=None, keras_test_accuracy=None,
                 test_examples=None):
        self.export_dir = export_dir
        self.backend = backend
        self.route = route
        self.model_name = model_name
        self.num_params = num_params
        self.signature = signature
        self.max_abs_diff = max_abs_diff
        self.batch_sizes = tuple(batch_sizes)
        self.tolerance = tolerance
        self.metadata_path = metadata_path
        self.notes = tuple(notes)
        self.role = role
        self.bound = bound
        self.format = format
        self.quantize = quantize
        self.model_path = model_path or export_dir
        self.size_bytes = size_bytes
        self.runtime = runtime
        self.latency_ms = latency_ms
        self.test_accuracy = test_accuracy
        self.keras_test_accuracy = keras_test_accuracy
        self.test_examples = test_examples

    @property
    def verified(self):
        return self.max_abs_diff is not None

    def as_dict(self):
        """The numbers of the export (what `compression_table` stores per format)."""
        return {
            "format": self.format, "quantize": self.quantize, "path": self.model_path, "route": self.route,
            "backend": self.backend, "parameters": self.num_params, "size_bytes": self.size_bytes,
            "runtime": self.runtime, "latency_ms": self.latency_ms, "test_accuracy": self.test_accuracy,
            "keras_test_accuracy": self.keras_test_accuracy, "test_examples": self.test_examples,
            "max_abs_diff": self.max_abs_diff, "max_abs_diff_allowed": self.bound, "verified": self.verified,
        }

    def __repr__(self):
        return (f"ExportResult(export_dir={self.export_dir!r}, format={self.format!r}, quantize={self.quantize!r}, "
                f"backend={self.backend!r}, verified={self.verified}, max_abs_diff={self.max_abs_diff!r})")

    def __str__(self):
        from keras_mixkd.export.registry import get_format

        fmt = get_format(self.format)
        quantized = f", {self.quantize} quantised" if self.quantize != "none" else ""
        lines = [
            f"Exported {self.role} {self.model_name!r} ({self.num_params:,} weights) from the "
            f"{self.backend} backend to {self.export_dir} as {fmt.described}{quantized} (via {self.route}).",
        ]
        if self.signature:
            endpoint = " 'serving_default'" if self.format == "saved_model" else ""
            lines.append(f"Signature{endpoint}: {self.signature}.")
        if self.verified:
            sizes = " and ".join(str(size) for size in self.batch_sizes)
            if self.bound is not None:
                held = (f"(allowed {self.bound:.3g}: tolerance {self.tolerance:g} x max(1, max |output|))")
            else:
                held = "(not held to a bound: a quantised export is judged by its accuracy)"
            lines.append(
                f"Verified: reloaded with {self.runtime} in a fresh process and fed images as loaded; "
                f"max |{fmt.short} - Keras pipeline| = {self.max_abs_diff:.3g} at batch sizes {sizes} {held}."
            )
        else:
            lines.append("Not verified (verify=False, or --no-verify on the command line).")
        lines.append(self.cost_line())
        lines.extend(self.notes)
        if self.metadata_path:
            lines.append(f"Model card (input, normalisation, output, provenance): {self.metadata_path}")
        return "\n".join(lines)

    def cost_line(self):
        """One sentence: parameters, size, latency, accuracy (what the compression bought)."""
        parts = [f"{self.num_params:,} parameters"]
        if self.size_bytes is not None:
            parts.append(f"{self.size_bytes / 1024:,.1f} KiB on disk")
        if self.latency_ms is not None:
            parts.append(f"{self.latency_ms:.3f} ms per image (median of CPU runs, {self.runtime})")
        if self.test_accuracy is not None:
            parts.append(f"test accuracy {100 * self.test_accuracy:.2f} % on {self.test_examples} images "
                         f"(Keras model: {100 * self.keras_test_accuracy:.2f} %)")
        return "Cost: " + "; ".join(parts) + "."
