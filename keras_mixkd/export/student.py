"""`export_student`: a distilled student as a SavedModel, an ONNX file or a LiteRT file, verified.

`export_student` writes the student (never the teacher of a `Distiller`) in
the format asked for (`keras_mixkd.export.registry.FORMATS`), then reloads it
in a fresh process with the runtime a deployer would use and checks that it
predicts what the Keras student predicts.

How each backend gets there:

- The backends that write a format in their own process (SavedModel:
  TensorFlow and JAX, through Keras's `keras.export.ExportArchive`; ONNX and
  LiteRT: TensorFlow) write it here.
- The others (SavedModel: PyTorch; ONNX and LiteRT: JAX and PyTorch) save
  the student as `.keras` to a temporary file and export it the same way in
  a child process running the TensorFlow backend. The weights are the same;
  the result is the file a TensorFlow user would get.

This module imports Keras and TensorFlow only inside functions: its command
line (`python -m keras_mixkd.export`) is what the child processes run.
"""

import json
import os
import shutil
import tempfile
import warnings

from keras_mixkd.export import child
from keras_mixkd.export.checks import DEFAULT_TOLERANCE
from keras_mixkd.export.checks import HALF_PRECISION_TOLERANCE
from keras_mixkd.export.checks import INPUT_DTYPES
from keras_mixkd.export.checks import METADATA_FILE
from keras_mixkd.export.checks import agreement_bound
from keras_mixkd.export.checks import as_array
from keras_mixkd.export.checks import card_for
from keras_mixkd.export.checks import check_built
from keras_mixkd.export.checks import check_export_dir
from keras_mixkd.export.checks import check_tolerance
from keras_mixkd.export.checks import compute_dtype
from keras_mixkd.export.checks import resolve_student
from keras_mixkd.export.checks import save_for_child
from keras_mixkd.export.checks import verification_images
from keras_mixkd.export.checks import weight_count
from keras_mixkd.export.registry import check_export_options
from keras_mixkd.export.registry import require_packages
from keras_mixkd.export.result import ExportResult

# int8 calibration: at most this many training images, drawn with `seed`.
REPRESENTATIVE_IMAGES = 200
# Relative bound of a float16-weight export (its weights round to 11 bits).
FLOAT16_TOLERANCE = 1e-2
# An int8 export losing more test accuracy than this (points) against the Keras model gets a warning.
INT8_ACCURACY_LOSS_WARNING = 1.5
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def export_student(model_or_path, export_dir, *, overwrite=False, verify=True,
                   verify_batch_size=4, tolerance=None, seed=0, normalization=None, input_dtype="float32",
                   model_card=None, verify_images=None, format="saved_model", quantize="none",
                   representative_images=None, test_images=None, test_labels=None):
    """Exports a distilled student as a SavedModel, an ONNX file or a LiteRT file, from any backend.

    `format` picks what is written at `export_dir` (see `keras_mixkd.export.registry.FORMATS`):

    - `"saved_model"` (the default): the folder is a TensorFlow SavedModel;
    - `"onnx"`: the folder holds `model.onnx` (served by ONNX Runtime);
    - `"litert"`: the folder holds `model.tflite` (LiteRT's interpreter),
      with `quantize` `"none"`, `"float16"` (weights in float16) or `"int8"`
      (post-training quantisation calibrated on `representative_images`,
      up to 200 of them drawn with `seed`; input and output stay float32).

    Every folder also holds `metadata.json`, the model card, stating the
    format, the quantisation, the route, the verification and the cost
    (parameters, size, latency, accuracy). The route of each format and
    backend (Keras's own `model.export`, or the same in a TensorFlow-backend
    child process that loads the model's `.keras` file) is documented in
    the format's module and recorded in the card and the result.

    What follows was written of the SavedModel and holds for every format:

    The SavedModel has one endpoint, `serve`, and the `serving_default`
    signature TensorFlow Serving reads, with a dynamic batch dimension: its
    input is named `images` and its output `output_0` on every backend and
    for every kind of model (functional, `Sequential`, subclassed). Only the
    student is written: given a `Distiller`, its teacher is left out. (Any
    single-input, single-output model can be exported; a teacher's `.keras`
    file too.)

    The SavedModel takes images as loaded (float32 NHWC in [0, 1], or raw
    uint8 pixels with `input_dtype="uint8"`) and gives what the student was
    trained to give: a model built by keras-mixkd normalises inside; a
    student trained with `loss="standardized"` outputs its standardised
    logits (a `Distiller` with that loss whose student lacks the
    `StandardizedLogits` layer gets it added here). A model without
    normalisation inside (an old `.keras` file, a user's model) is exported
    as it is, with a warning, unless `normalization=(mean, std)` is given to
    put it inside. A model card is written to `<export_dir>/metadata.json`.

    With `verify=True` (the default) the SavedModel is reloaded with
    `tf.saved_model.load` in a fresh Python process and its `serving_default`
    outputs on a batch of images in [0, 1] (random, or `verify_images`), and
    on that batch's first example alone (the dynamic batch dimension), are
    compared with the Keras pipeline's predictions on the same images (the
    student, fed as the library's measures feed it). They agree when
    `max |SavedModel - Keras| <= tolerance * max(1, max |Keras output|)`:
    the tolerance is relative to the outputs' scale (float32 logits around
    1000 differ between two engines in their last places, 1e-4 apart, as
    logits around 1 differ by 1e-7). A larger difference is an error and
    nothing is left at `export_dir`. ONNX and LiteRT exports are reloaded
    the same way in `onnxruntime` and `ai_edge_litert`'s interpreter; a
    float16 LiteRT export is held to a bound of 1e-2 of the outputs' scale,
    an int8 one is judged by its accuracy on `test_images` (an int8 student
    losing more than 1.5 points against the Keras model gets a warning).
    With `test_images` and `test_labels`, every format's test accuracy in
    its runtime is reported beside the Keras model's; the verification also
    times one image in the runtime (median of 50 calls after 5 warm-up
    calls, this machine's CPU).

    A subclassed model is exported with the input shape it was built or
    first called with (or that of `verify_images`). On the PyTorch backend
    the SavedModel is written by a TensorFlow-backend process that loads the
    model from a `.keras` file, so its classes must be importable there (not
    defined in `__main__` or inside a function); such a model is refused
    before anything is written, with what to do.

    Arguments:
        model_or_path: A `keras_mixkd.Distiller` (its `student` is exported),
            a built `keras.Model`, or the path of a `.keras` file holding
            either.
        export_dir: The folder to write (the SavedModel, or the folder of
            `model.onnx` / `model.tflite` and `metadata.json`).
        overwrite: Replace an existing SavedModel at `export_dir`. Without
            it an existing path is refused. Only a SavedModel (or an empty
            folder) is ever replaced.
        verify: Reload and compare as described above.
        verify_batch_size: Size of the random verification batch (>= 2).
        tolerance: Largest accepted |SavedModel - Keras| relative to the
            outputs' scale, `max(1, max |Keras output|)` (a number >= 0);
            default `1e-5` for a student computing in float32 (looser for a
            mixed-precision student: 5e-2 in float16, 0.25 in bfloat16).
        seed: Seed of the random verification batch.
        normalization: `(mean, std)` per channel to put inside a model that
            has no normalisation inside (refused for one that has).
        input_dtype: `"float32"` (images in [0, 1]) or `"uint8"` (pixels in
            0-255, divided by 255 inside the SavedModel).
        model_card: the card to write (a dict, e.g. a record's
            `"model_card"`); by default the one in the record JSON beside a
            `.keras` path (`student.keras.json`, or a study's
            `cells/<key>.json`), else what the model itself tells. Its input
            and output sections are always read from the exported model.
        verify_images: optional float32 images in [0, 1] `(N, H, W, C)`,
            `N >= 2`, to verify on instead of a random batch.
        format: `"saved_model"`, `"onnx"` or `"litert"`.
        quantize: `"none"`, or for `litert` `"float16"` or `"int8"`.
        representative_images: images as loaded from the training split
            (int8 only; needed there).
        test_images, test_labels: the test split as loaded, to report the
            accuracy of the export in its runtime (optional; given together).

    Returns:
        An `ExportResult`; `print` it for a one-paragraph account.

    Example:

    ```python
    from keras_mixkd.export import export_student

    distiller.fit(train_ds, epochs=240)
    print(export_student(distiller, "export/student"))

    import tensorflow as tf
    serve = tf.saved_model.load("export/student").signatures["serving_default"]

    result = export_student("student.keras", "export/student-int8", format="litert", quantize="int8",
                            representative_images=splits.x_train, test_images=splits.x_test,
                            test_labels=splits.y_test)
    result.test_accuracy, result.latency_ms, result.size_bytes
    ```
    """
    fmt = check_export_options(format, quantize)
    what = "SavedModel" if fmt.name == "saved_model" else f"{fmt.short} export"
    export_dir = check_export_dir(export_dir, overwrite)
    if isinstance(verify_batch_size, bool) or not isinstance(verify_batch_size, int) \
            or verify_batch_size < 2:
        raise ValueError(
            f"`verify_batch_size` must be an int >= 2 (the verification also runs "
            f"batch size 1); got {verify_batch_size!r}."
        )
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"`input_dtype` must be one of {INPUT_DTYPES}; got {input_dtype!r}.")
    if input_dtype != "float32" and fmt.name != "saved_model":
        raise ValueError(f"`input_dtype` {input_dtype!r} (--input-dtype) is for the saved_model format only; the "
                         f"{fmt.name} export takes float32 images in [0, 1].")
    check_tolerance(tolerance)
    test_images, test_labels = _check_test_data(test_images, test_labels)
    if quantize == "int8" and representative_images is None:
        raise ValueError(
            "quantize='int8' calibrates on images of the training split: pass representative_images= (on the "
            "command line: --dataset, --run or a model card naming its data set).")
    require_packages(fmt.writer_packages, f"to write the {fmt.title} export")
    if verify:
        require_packages(fmt.runtime_packages, f"to verify the {fmt.title} export in {fmt.runtime}")
    pipeline_model, loss_name, from_distiller = resolve_student(model_or_path)
    check_built(pipeline_model)
    import keras
    import numpy as np

    from keras_mixkd.models import input_normalization
    from keras_mixkd.models import with_preprocessing
    from keras_mixkd.models.model_card import output_kind
    from keras_mixkd.serving_signature import INPUT_NAME
    from keras_mixkd.serving_signature import OUTPUT_NAME
    from keras_mixkd.serving_signature import model_classes
    from keras_mixkd.serving_signature import serving_input

    notes = []
    stats = input_normalization(pipeline_model)
    if normalization is not None and stats is not None:
        raise ValueError(
            f"Model {pipeline_model.name!r} already normalises its input (mean {list(stats['mean'])}, std "
            f"{list(stats['std'])}); `normalization` is only for a model without normalisation inside."
        )
    if normalization is None and stats is None:
        warnings.warn(
            f"Model {pipeline_model.name!r} has no normalisation inside (saved by an earlier keras-mixkd, or "
            f"built without `with_preprocessing`): the {what} will expect normalised images, not "
            "images in [0, 1]. Pass normalization=(mean, std) (the training statistics, e.g. "
            "`load_dataset(...).normalization`; on the command line --input-normalized yes with the data's "
            "--dataset) to put it inside, or (0.0, 1.0) (--input-normalized no) if it takes images in [0, 1].",
            UserWarning, stacklevel=2)
        notes.append(f"Warning: no normalisation inside; the {what} expects normalised images.")
    output_layer = None
    if loss_name == "standardized" and output_kind(pipeline_model) == "logits":
        from keras_mixkd.distill import StandardizedLogits

        output_layer = StandardizedLogits()
        notes.append(f"Added StandardizedLogits: the student was trained with the standardised loss, "
                     f"so the {what} outputs its standardised logits.")
    model = pipeline_model
    if normalization is not None or output_layer is not None or input_dtype == "uint8":
        model = with_preprocessing(pipeline_model, normalization, output_layer=output_layer,
                                   input_dtype="uint8" if input_dtype == "uint8" else None)
    model_dtype = compute_dtype(model)
    if fmt.name != "saved_model" and model_dtype in HALF_PRECISION_TOLERANCE:
        raise ValueError(f"Model {model.name!r} computes in {model_dtype} (mixed precision): the {fmt.name} "
                         "export is written from a float32 model. Export its weights in a float32 model "
                         "(keras.config.set_dtype_policy('float32'), rebuild, set_weights), or use "
                         "format='saved_model'.")

    backend = keras.backend.backend()
    given_images = None if verify_images is None or not verify else as_array(verify_images)
    input_shape, signature_dtype = serving_input(model, given_images)
    if verify and any(dim is None for dim in input_shape):
        raise ValueError(
            f"Verification needs a fixed input shape besides the batch; {model.name!r} takes "
            f"{(None,) + input_shape}. Pass verify_images (a batch of the size to check), or verify=False "
            "to export it unverified."
        )
    images = verification_images(given_images, verify_batch_size, input_shape, seed,
                                 input_dtype) if verify else None
    representative = None
    if quantize == "int8":
        representative = _representative(representative_images, input_shape, seed)
    in_process = backend in fmt.in_process_backends
    classes = [] if in_process else model_classes(model, what, BACKEND_NAMES.get(backend, backend))
    if tolerance is None:
        tolerance = HALF_PRECISION_TOLERANCE.get(model_dtype, DEFAULT_TOLERANCE if fmt.name == "saved_model"
                                                 else fmt.tolerance)
        if quantize == "float16":
            tolerance = FLOAT16_TOLERANCE
    hold_bound = quantize != "int8"
    card = card_for(model_or_path, model, model_card, input_dtype)
    card["input"].update(name=INPUT_NAME, shape=[None, *input_shape])
    card["output"]["name"] = OUTPUT_NAME
    role = "student" if from_distiller else card.get("role")
    role = role if role in ("student", "teacher") else "model"

    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    work_dir = tempfile.mkdtemp(prefix=".keras-mixkd-export-", dir=parent)
    try:
        staged = os.path.join(work_dir, "export")
        if fmt.file_name is None:
            model_file = staged
        else:
            os.makedirs(staged)
            model_file = os.path.join(staged, fmt.file_name)
        if in_process:
            route = fmt.write(model, model_file, input_shape, signature_dtype, quantize, representative)
        else:
            keras_path = os.path.join(work_dir, "student.keras")
            save_for_child(model, keras_path, what, BACKEND_NAMES.get(backend, backend))
            spec = {"shape": list(input_shape), "dtype": signature_dtype, "classes": classes, "quantize": quantize}
            if representative is not None:
                spec["representative"] = os.path.join(work_dir, "representative.npy")
                np.save(spec["representative"], representative)
            written = child.run_child(["write", fmt.name, keras_path, model_file, json.dumps(spec)], "export")
            route = f"{written.get('route', fmt.name)} in a TensorFlow-backend process"

        signature, max_abs_diff, batch_sizes, bound, report = None, None, (), None, {}
        keras_accuracy = None
        if verify:
            # What the library's measures compute for these images: the student
            # (its normalisation inside, else the given statistics applied first).
            def keras_outputs(batch):
                batch = batch.astype("float32") / 255.0 if input_dtype == "uint8" else batch
                if normalization is not None:
                    mean, std = (np.asarray(v, dtype="float32") for v in normalization)
                    batch = ((batch - mean) / std).astype("float32")
                outputs = keras.ops.convert_to_numpy(pipeline_model(batch, training=False))
                if output_layer is not None:
                    outputs = keras.ops.convert_to_numpy(output_layer(outputs))
                return outputs

            expected = keras_outputs(images)
            bound = agreement_bound(expected, tolerance) if hold_bound else None
            batch_path = os.path.join(work_dir, "batch.npz")
            arrays = {"images": images, "expected": expected.astype("float32")}
            if test_images is not None:
                arrays.update(test_images=test_images, test_labels=test_labels)
                keras_accuracy = float(np.mean(np.concatenate([
                    np.argmax(keras_outputs(test_images[start:start + 256]), axis=-1)
                    for start in range(0, len(test_images), 256)]) == test_labels))
            np.savez(batch_path, **arrays)
            report = child.run_child(["verify", fmt.name, model_file, batch_path], "verification")
            signature, max_abs_diff = report["signature"], report["max_abs_diff"]
            batch_sizes = report["batch_sizes"]
            if report["batch_dim"] is not None:
                raise RuntimeError(
                    f"The exported signature has a fixed batch dimension "
                    f"({report['batch_dim']}); expected a dynamic one. Signature: {signature}."
                )
            if hold_bound and not max_abs_diff <= bound:
                raise RuntimeError(
                    f"The {what} does not predict what the Keras {role} predicts: "
                    f"max |{what} - Keras| = {max_abs_diff:.3g} > {bound:.3g} = tolerance {tolerance:g} "
                    f"x max(1, max |output|) (batch sizes {batch_sizes}). Nothing was written to {export_dir}. "
                    "If the difference is float rounding of a model far from the origin, a larger "
                    "tolerance= (--tolerance) accepts it."
                )
            accuracy = report.get("test_accuracy")
            if accuracy is not None and quantize == "int8":
                lost = 100.0 * (keras_accuracy - accuracy)
                if lost > INT8_ACCURACY_LOSS_WARNING:
                    message = (f"The int8 {fmt.title} export of {model.name!r} loses {lost:.2f} points of test "
                               f"accuracy ({100 * accuracy:.2f} % against {100 * keras_accuracy:.2f} % for the "
                               f"Keras model; more than {INT8_ACCURACY_LOSS_WARNING} points): try "
                               "quantize='float16', or more representative images.")
                    warnings.warn(message, UserWarning, stacklevel=2)
                    notes.append("Warning: " + message)
            elif quantize == "int8":
                notes.append("The int8 export was not judged by its accuracy: no test images were given "
                             "(test_images=, or the command line's data flags).")
        size = _size_on_disk(model_file)
        num_params = weight_count_of(model)
        card["export"] = {
            "format": fmt.name, "format_name": fmt.title, "quantization": quantize,
            "file": fmt.file_name or ".", "signature": signature, "route": route, "backend": backend,
            "verified": max_abs_diff is not None, "runtime": fmt.runtime if verify else None,
            "max_abs_diff": max_abs_diff, "tolerance": tolerance if hold_bound else None,
            "max_abs_diff_allowed": bound, "parameters": num_params, "size_bytes": size,
            "latency_ms": report.get("latency_ms"), "latency_runs": report.get("latency_runs"),
            "test_accuracy": report.get("test_accuracy"), "keras_test_accuracy": keras_accuracy,
            "test_examples": report.get("test_examples"),
        }
        if fmt.name == "saved_model":
            from keras_mixkd.export.saved_model import SERVING_ENDPOINT

            card["export"]["endpoint"] = SERVING_ENDPOINT
        if representative is not None:
            card["export"]["representative_images"] = int(len(representative))
        with open(os.path.join(staged, METADATA_FILE), "w", encoding="utf-8") as handle:
            json.dump(card, handle, indent=2)
            handle.write("\n")
        if os.path.lexists(export_dir):  # Allowed by check_export_dir (overwrite=True).
            shutil.rmtree(export_dir)
        os.replace(staged, export_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    final_file = export_dir if fmt.file_name is None else os.path.join(export_dir, fmt.file_name)
    return ExportResult(
        export_dir=export_dir, backend=backend, route=route, model_name=model.name,
        num_params=num_params, signature=signature, max_abs_diff=max_abs_diff,
        batch_sizes=batch_sizes, tolerance=tolerance if hold_bound else None,
        metadata_path=os.path.join(export_dir, METADATA_FILE), notes=notes, role=role, bound=bound,
        format=fmt.name, quantize=quantize, model_path=final_file, size_bytes=size,
        runtime=fmt.runtime if verify else None, latency_ms=report.get("latency_ms"),
        test_accuracy=report.get("test_accuracy"), keras_test_accuracy=keras_accuracy,
        test_examples=report.get("test_examples"),
    )


def weight_count_of(model):
    """Number of weights of `model`, trainable or not."""
    return sum(weight_count(weight.shape) for weight in model.weights)


def _size_on_disk(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, name)) for name in files if name != METADATA_FILE)
    return total


def _check_test_data(test_images, test_labels):
    import numpy as np

    if (test_images is None) != (test_labels is None):
        raise ValueError("`test_images` and `test_labels` go together: give both (the test split as loaded) "
                         "or neither.")
    if test_images is None:
        return None, None
    images = np.asarray(test_images)
    labels = np.asarray(test_labels)
    if labels.ndim == 2:
        labels = np.argmax(labels, axis=-1)
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"`test_images` and `test_labels` must hold the same number (> 0) of examples; got "
                         f"{len(images)} images and {len(labels)} labels.")
    if images.dtype == np.uint8:
        images = images / 255.0
    return images.astype("float32"), labels.astype("int64")


def _representative(images, input_shape, seed):
    """Up to `REPRESENTATIVE_IMAGES` float32 images in [0, 1], drawn with `seed`."""
    import numpy as np

    images = np.asarray(images)
    if images.ndim != len(input_shape) + 1 or tuple(images.shape[1:]) != tuple(input_shape) or not len(images):
        raise ValueError(f"`representative_images` must be images of shape {tuple(input_shape)} (the training "
                         f"split as loaded); got an array of shape {images.shape}.")
    if images.dtype == np.uint8:
        images = images / 255.0
    images = images.astype("float32")
    if len(images) > REPRESENTATIVE_IMAGES:
        rng = np.random.default_rng(seed)
        images = images[np.sort(rng.choice(len(images), REPRESENTATIVE_IMAGES, replace=False))]
    return images
