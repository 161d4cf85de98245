"""SavedModel export of a distilled student, from every Keras backend.

`export_student` writes the student (never the teacher of a `Distiller`) as a
TensorFlow SavedModel whose `serving_default` signature takes a batch of any
size named `images` and gives `output_0`, then reloads it with
`tf.saved_model.load` in a fresh process and checks that it predicts what the
Keras student predicts.

How each backend gets there:

- TensorFlow and JAX: Keras's own `keras.export.ExportArchive` (what
  `model.export(path, format="tf_saved_model")` uses), given the signature
  (`keras_mixkd.serving_signature`); JAX goes through `jax2tf` with a
  polymorphic batch dimension.
- PyTorch: Keras 3 cannot write a SavedModel from PyTorch (`model.export`
  needs `torch_xla` and fails on a dynamic batch), so the student is saved as
  `.keras` to a temporary file and exported the same way in a child process
  running the TensorFlow backend. The weights are the same; the result is the
  same SavedModel a TensorFlow user would get.

This module imports Keras and TensorFlow only inside functions: its command
line (`python -m keras_mixkd.export`) is what the child processes run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

# Tolerances are relative to the outputs' scale: a SavedModel output `a` and
# the Keras output `b` agree when max|a - b| <= tolerance * max(1, max|b|)
# (`agreement_bound`), so logits around 1000 may differ in their last float32
# places as logits around 1 may.
DEFAULT_TOLERANCE = 1e-5
# A student computing in half precision cannot match to 1e-5 across two
# engines; these bounds are a few units of its last place.
HALF_PRECISION_TOLERANCE = {"float16": 5e-2, "bfloat16": 2.5e-1}
SERVING_ENDPOINT = "serving_default"
METADATA_FILE = "metadata.json"
INPUT_DTYPES = ("float32", "uint8")


class ExportResult:
    """What `export_student` wrote and what its verification found.

    Arguments:
        export_dir: The SavedModel folder.
        backend: The Keras backend of the calling process.
        route: How the SavedModel was written (`"keras.export.ExportArchive"` or
            `"keras.export.ExportArchive in a TensorFlow-backend process"`).
        model_name: Name of the exported model.
        num_params: Number of weights of the exported model (trainable or not).
        signature: Text of the serving signature, e.g.
            `"images: float32 (None, 8, 8, 1) -> output_0: float32 (None, 10)"`.
        max_abs_diff: Largest |SavedModel - Keras| over the verification
            batches, or `None` when not verified.
        batch_sizes: Batch sizes the verification ran.
        tolerance: The relative tolerance: `max_abs_diff` was held to
            `tolerance * max(1, max |Keras output|)`.
        bound: That bound, or `None` when not verified.
        metadata_path: The model card written inside the SavedModel folder
            (`metadata.json`).
        notes: Sentences about what the export added or could not add (an
            output transform, a missing normalisation).
        role: What was exported: `"student"`, `"teacher"` (from the model
            card) or `"model"` when nothing tells.

    Example:

    ```python
    result = export_student(distiller, "export/student")
    print(result)            # one paragraph for a person
    result.max_abs_diff      # 0.0 on TensorFlow
    ```
    """

    def __init__(self, export_dir, backend, route, model_name, num_params, signature=None,
                 max_abs_diff=None, batch_sizes=(), tolerance=None, metadata_path=None, notes=(),
                 role="model", bound=None):
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

    @property
    def verified(self):
        return self.max_abs_diff is not None

    def __repr__(self):
        return (f"ExportResult(export_dir={self.export_dir!r}, backend={self.backend!r}, "
                f"verified={self.verified}, max_abs_diff={self.max_abs_diff!r})")

    def __str__(self):
        lines = [
            f"Exported {self.role} {self.model_name!r} ({self.num_params:,} weights) from the "
            f"{self.backend} backend to {self.export_dir} as a TensorFlow SavedModel "
            f"(via {self.route}).",
        ]
        if self.signature:
            lines.append(f"Signature {SERVING_ENDPOINT!r}: {self.signature}.")
        if self.verified:
            sizes = " and ".join(str(size) for size in self.batch_sizes)
            allowed = f"allowed {self.bound:.3g}: " if self.bound is not None else ""
            lines.append(
                "Verified: reloaded with tf.saved_model.load in a fresh process and fed images as loaded; "
                f"max |SavedModel - Keras pipeline| = {self.max_abs_diff:.3g} at batch sizes {sizes} "
                f"({allowed}tolerance {self.tolerance:g} x max(1, max |output|))."
            )
        else:
            lines.append("Not verified (verify=False).")
        lines.extend(self.notes)
        if self.metadata_path:
            lines.append(f"Model card (input, normalisation, output, provenance): {self.metadata_path}")
        return "\n".join(lines)


class _ExportError(RuntimeError):
    pass


def export_student(model_or_path, export_dir, *, overwrite=False, verify=True,
                   verify_batch_size=4, tolerance=None, seed=0, normalization=None, input_dtype="float32",
                   model_card=None, verify_images=None):
    """Exports a distilled student as a TensorFlow SavedModel, from any backend.

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
    nothing is left at `export_dir`.

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
        export_dir: The SavedModel folder to write.
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

    Returns:
        An `ExportResult`; `print` it for a one-paragraph account.

    Example:

    ```python
    from keras_mixkd.export import export_student

    distiller.fit(train_ds, epochs=240)
    print(export_student(distiller, "export/student"))

    import tensorflow as tf
    serve = tf.saved_model.load("export/student").signatures["serving_default"]
    ```
    """
    export_dir = _check_export_dir(export_dir, overwrite)
    if isinstance(verify_batch_size, bool) or not isinstance(verify_batch_size, int) \
            or verify_batch_size < 2:
        raise ValueError(
            f"`verify_batch_size` must be an int >= 2 (the verification also runs "
            f"batch size 1); got {verify_batch_size!r}."
        )
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"`input_dtype` must be one of {INPUT_DTYPES}; got {input_dtype!r}.")
    _check_tolerance(tolerance)
    pipeline_model, loss_name, from_distiller = _resolve_student(model_or_path)
    _check_built(pipeline_model)
    import keras

    from keras_mixkd.models import input_normalization
    from keras_mixkd.models import with_preprocessing
    from keras_mixkd.models.model_card import output_kind
    from keras_mixkd.serving_signature import INPUT_NAME
    from keras_mixkd.serving_signature import OUTPUT_NAME
    from keras_mixkd.serving_signature import model_classes
    from keras_mixkd.serving_signature import serving_input
    from keras_mixkd.serving_signature import write_saved_model

    notes = []
    stats = input_normalization(pipeline_model)
    if normalization is not None and stats is not None:
        raise ValueError(
            f"Model {pipeline_model.name!r} already normalises its input (mean {list(stats['mean'])}, std "
            f"{list(stats['std'])}); `normalization` is only for a model without normalisation inside."
        )
    if normalization is None and stats is None:
        import warnings

        warnings.warn(
            f"Model {pipeline_model.name!r} has no normalisation inside (saved by an earlier keras-mixkd, or "
            "built without `with_preprocessing`): the SavedModel will expect normalised images, not "
            "images in [0, 1]. Pass normalization=(mean, std) (the training statistics, e.g. "
            "`load_dataset(...).normalization`; on the command line --input-normalized yes with the data's "
            "--dataset) to put it inside, or (0.0, 1.0) (--input-normalized no) if it takes images in [0, 1].",
            UserWarning, stacklevel=2)
        notes.append("Warning: no normalisation inside; the SavedModel expects normalised images.")
    output_layer = None
    if loss_name == "standardized" and output_kind(pipeline_model) == "logits":
        from keras_mixkd.distill import StandardizedLogits

        output_layer = StandardizedLogits()
        notes.append("Added StandardizedLogits: the student was trained with the standardised loss, "
                     "so the SavedModel outputs its standardised logits.")
    model = pipeline_model
    if normalization is not None or output_layer is not None or input_dtype == "uint8":
        model = with_preprocessing(pipeline_model, normalization, output_layer=output_layer,
                                   input_dtype="uint8" if input_dtype == "uint8" else None)

    backend = keras.backend.backend()
    given_images = None if verify_images is None or not verify else _as_array(verify_images)
    input_shape, signature_dtype = serving_input(model, given_images)
    if verify and any(dim is None for dim in input_shape):
        raise ValueError(
            f"Verification needs a fixed input shape besides the batch; {model.name!r} takes "
            f"{(None,) + input_shape}. Pass verify_images (a batch of the size to check), or verify=False "
            "to export it unverified."
        )
    images = _verification_images(given_images, verify_batch_size, input_shape, seed,
                                  input_dtype) if verify else None
    classes = model_classes(model) if backend == "torch" else []
    if tolerance is None:
        tolerance = HALF_PRECISION_TOLERANCE.get(_compute_dtype(model), DEFAULT_TOLERANCE)
    card = _card_for(model_or_path, model, model_card, input_dtype)
    card["input"].update(name=INPUT_NAME, shape=[None, *input_shape])
    card["output"]["name"] = OUTPUT_NAME
    role = "student" if from_distiller else card.get("role")
    role = role if role in ("student", "teacher") else "model"

    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    work_dir = tempfile.mkdtemp(prefix=".keras-mixkd-export-", dir=parent)
    try:
        staged = os.path.join(work_dir, "saved_model")
        spec = {"shape": list(input_shape), "dtype": signature_dtype, "classes": classes}
        if backend == "torch":
            route = "keras.export.ExportArchive in a TensorFlow-backend process"
            keras_path = os.path.join(work_dir, "student.keras")
            _save_for_child(model, keras_path)
            _run_child(["write", keras_path, staged, json.dumps(spec)], "export")
        else:
            route = "keras.export.ExportArchive"
            write_saved_model(model, staged, input_shape, signature_dtype)

        signature, max_abs_diff, batch_sizes, bound = None, None, (), None
        if verify:
            import numpy as np

            # What the library's measures compute for these images: the student
            # (its normalisation inside, else the given statistics applied first).
            pipeline_images = images.astype("float32") / 255.0 if input_dtype == "uint8" else images
            if normalization is not None:
                mean, std = (np.asarray(v, dtype="float32") for v in normalization)
                pipeline_images = ((pipeline_images - mean) / std).astype("float32")
            expected = keras.ops.convert_to_numpy(pipeline_model(pipeline_images, training=False))
            if output_layer is not None:
                expected = keras.ops.convert_to_numpy(output_layer(expected))
            bound = agreement_bound(expected, tolerance)
            batch_path = os.path.join(work_dir, "batch.npz")
            np.savez(batch_path, images=images, expected=expected.astype("float32"))
            report = _run_child(["verify", staged, batch_path], "verification")
            signature, max_abs_diff = report["signature"], report["max_abs_diff"]
            batch_sizes = report["batch_sizes"]
            if report["batch_dim"] is not None:
                raise _ExportError(
                    f"The exported signature has a fixed batch dimension "
                    f"({report['batch_dim']}); expected a dynamic one. Signature: {signature}."
                )
            if not max_abs_diff <= bound:
                raise _ExportError(
                    f"The SavedModel does not predict what the Keras {role} predicts: "
                    f"max |SavedModel - Keras| = {max_abs_diff:.3g} > {bound:.3g} = tolerance {tolerance:g} "
                    f"x max(1, max |output|) (batch sizes {batch_sizes}). Nothing was written to {export_dir}. "
                    "If the difference is float rounding of a model far from the origin, a larger "
                    "tolerance= (--tolerance) accepts it."
                )
        card["export"] = {
            "format": "TensorFlow SavedModel", "endpoint": SERVING_ENDPOINT, "signature": signature,
            "route": route, "backend": backend, "verified": max_abs_diff is not None,
            "max_abs_diff": max_abs_diff, "tolerance": tolerance, "max_abs_diff_allowed": bound,
        }
        with open(os.path.join(staged, METADATA_FILE), "w", encoding="utf-8") as handle:
            json.dump(card, handle, indent=2)
            handle.write("\n")
        if os.path.lexists(export_dir):  # Allowed by _check_export_dir (overwrite=True).
            shutil.rmtree(export_dir)
        os.replace(staged, export_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    return ExportResult(
        export_dir=export_dir, backend=backend, route=route, model_name=model.name,
        num_params=sum(_size(weight.shape) for weight in model.weights),
        signature=signature, max_abs_diff=max_abs_diff, batch_sizes=batch_sizes,
        tolerance=tolerance, metadata_path=os.path.join(export_dir, METADATA_FILE), notes=notes,
        role=role, bound=bound,
    )


def agreement_bound(expected, tolerance):
    """The largest |SavedModel - Keras| accepted: `tolerance * max(1, max |expected|)`.

    Relative to the outputs' scale, so that float32 rounding of outputs far
    from the origin (logits around 1000 carry ~1e-4 of it) is accepted and a
    wrong export is not; below 1 the bound is `tolerance` itself.

    Example:

    >>> agreement_bound(np.array([[16.0, -3.0]]), 1e-5)
    0.00016
    """
    import numpy as np

    values = np.abs(np.asarray(expected, dtype="float64"))
    values = values[np.isfinite(values)]
    scale = max(1.0, float(values.max())) if values.size else 1.0
    return float(tolerance) * scale


def _check_tolerance(tolerance):
    import math

    if tolerance is None:
        return
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) \
            or tolerance < 0:
        raise ValueError(
            f"`tolerance` (--tolerance) must be a finite number >= 0, relative to the outputs' scale "
            f"(the bound is tolerance x max(1, max |output|)); got {tolerance!r}."
        )


def _as_array(images):
    import numpy as np

    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(f"`verify_images` must be at least 2 images (N, height, width, channels); got an array "
                         f"of shape {images.shape}.")
    return images


def _save_for_child(model, keras_path):
    """Saves the model the TensorFlow child exports, or says why it cannot be."""
    try:
        model.save(keras_path)
    except (NotImplementedError, TypeError) as error:
        reason = " ".join(str(error).split()).split(". ")[0].rstrip(".")  # Keras's first sentence, one line.
        raise ValueError(
            f"Model {model.name!r} cannot be saved to a .keras file ({reason}). On the PyTorch backend the "
            "SavedModel is written by a TensorFlow-backend process from that file: give its classes a "
            "`get_config` (https://keras.io/guides/serialization_and_saving/), or export from the "
            "TensorFlow or JAX backend."
        ) from error


def _verification_images(verify_images, batch_size, input_shape, seed, input_dtype="float32"):
    """The batch the SavedModel is fed: float32 in [0, 1], or uint8 pixels for `input_dtype="uint8"`."""
    import numpy as np

    if verify_images is None:
        rng = np.random.default_rng(seed)
        if input_dtype == "uint8":
            return rng.integers(0, 256, (batch_size,) + input_shape, dtype=np.uint8)
        return rng.random((batch_size,) + input_shape, dtype=np.float32)
    images = np.asarray(verify_images)
    if images.ndim != len(input_shape) + 1 or tuple(images.shape[1:]) != input_shape or len(images) < 2:
        raise ValueError(
            f"`verify_images` must be at least 2 images of shape {input_shape}; got an array of shape "
            f"{images.shape}."
        )
    if images.dtype == np.uint8:
        return images if input_dtype == "uint8" else (images / 255.0).astype("float32")
    images = images.astype("float32")
    if images.size and (images.min() < 0.0 or images.max() > 1.0):
        raise ValueError(
            f"`verify_images` must be images as loaded, in [0, 1]; got values in "
            f"[{images.min():.3g}, {images.max():.3g}]."
        )
    return np.round(images * 255.0).astype("uint8") if input_dtype == "uint8" else images


def read_model_card(keras_path):
    """The `"model_card"` of the record JSON keras-mixkd wrote beside a `.keras` file, or `None`.

    See `keras_mixkd.models.model_card.read_model_card`.
    """
    from keras_mixkd.models.model_card import read_model_card as read

    return read(keras_path)


def _card_for(model_or_path, model, model_card, input_dtype):
    """The card to write: the given or stored provenance, input/output read from `model`."""
    import copy

    from keras_mixkd.models.model_card import describe_io
    from keras_mixkd.models.model_card import model_card as build_card
    from keras_mixkd.models.model_card import versions

    if model_card is not None and not isinstance(model_card, dict):
        raise TypeError(f"`model_card` must be a dict (a record's 'model_card'); got {type(model_card).__name__}.")
    stored = model_card
    if stored is None and isinstance(model_or_path, (str, os.PathLike)):
        stored = read_model_card(model_or_path)
    card = build_card(model)
    if stored:
        card.update({key: copy.deepcopy(value) for key, value in stored.items()
                     if key not in ("input", "output", "versions")})
        card["trained_with_versions"] = stored.get("versions")
    card["input"], card["output"] = describe_io(model, input_dtype=input_dtype)
    card["versions"] = versions()
    if isinstance(model_or_path, (str, os.PathLike)):
        card["source_file"] = os.fspath(model_or_path)
    return card


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def _size(shape):
    size = 1
    for dim in shape:
        size *= int(dim)
    return size


def _check_export_dir(export_dir, overwrite):
    if not isinstance(export_dir, (str, os.PathLike)):
        raise TypeError(
            f"`export_dir` must be a path (str or os.PathLike); got "
            f"{type(export_dir).__name__}: {export_dir!r}."
        )
    export_dir = os.fspath(export_dir)
    if not export_dir:
        raise ValueError("`export_dir` must be a non-empty path.")
    if not os.path.lexists(export_dir):
        existing = os.path.dirname(os.path.abspath(export_dir))
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"Cannot write the SavedModel {export_dir}: {existing} is not a writable folder; "
                             "export elsewhere.")
        return export_dir
    if not overwrite:
        raise ValueError(
            f"{export_dir} already exists; pass overwrite=True (`--overwrite` on the "
            "command line) to replace it, or choose another path."
        )
    is_saved_model = os.path.isfile(os.path.join(export_dir, "saved_model.pb"))
    is_empty_dir = os.path.isdir(export_dir) and not os.listdir(export_dir)
    if os.path.islink(export_dir) or not (is_saved_model or is_empty_dir):
        raise ValueError(
            f"{export_dir} exists and is not a SavedModel folder (no saved_model.pb); "
            "overwrite=True only replaces a SavedModel or an empty folder. Remove it "
            "yourself or choose another path."
        )
    return export_dir


def _load_keras_file(path):
    from keras_mixkd._checks import keras_file_problem
    from keras_mixkd.saving import load_model

    path = os.fspath(path)
    problem = keras_file_problem(path)
    if problem:
        raise ValueError(f"{path} exists but cannot be loaded: {problem}.")
    if os.path.exists(path) and (not path.endswith(".keras") or not os.path.isfile(path)):
        raise ValueError(
            f"Expected a `.keras` file (saved by model.save) of a Distiller or a "
            f"student; got {path}."
        )
    return load_model(path, part="distiller", compile=False)


def _resolve_student(model_or_path):
    """The model to export (the student of a distiller, or the model itself), its loss, whether a distiller's."""
    if isinstance(model_or_path, (str, os.PathLike)):
        model = _load_keras_file(model_or_path)
    else:
        model = model_or_path
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model_or_path` must be a Distiller, a keras.Model or the path of a .keras "
            f"file; got {type(model).__name__}."
        )
    # keras_mixkd.Distiller and keras.distillation.Distiller both hold the
    # plain student in `.student`; the teacher must never be shipped.
    student = getattr(model, "student", None)
    if isinstance(student, keras.Model) and isinstance(getattr(model, "teacher", None), keras.Model):
        return student, getattr(model, "distillation_loss_name", None), True
    return model, None, False


def _check_built(model):
    if not model.built or not model.weights:
        raise ValueError(
            f"Model {model.name!r} was never built: it has no weights to export. Call it "
            "on a batch (or `model.build(input_shape)`), or train it, before exporting."
        )


def _compute_dtype(model):
    policy = getattr(model, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", None)
    for layer in getattr(model, "layers", ()):
        layer_dtype = getattr(getattr(layer, "dtype_policy", None), "compute_dtype", None)
        if layer_dtype in HALF_PRECISION_TOLERANCE:
            return layer_dtype
    return compute


# ---------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------


def _run_child(arguments, what):
    """Runs `python -m keras_mixkd.export ARGUMENTS` with the TensorFlow backend.

    Returns the JSON object the child prints on its last line of stdout.
    """
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "tensorflow"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # A child never needs several devices; keep the parent's device flags out.
    env.pop("XLA_FLAGS", None)
    completed = subprocess.run(
        [sys.executable, "-m", "keras_mixkd.export", *arguments],
        env=env, capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
        raise _ExportError(f"The {what} process failed (exit {completed.returncode}):\n{tail}")
    last_line = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else "{}"
    return json.loads(last_line)


def _write_in_child(keras_path, export_dir, spec):
    """Child side of the PyTorch route: `.keras` -> SavedModel, TensorFlow backend.

    `spec` is the JSON of the signature's input (`shape`, `dtype`) and the
    classes to import (`model_classes`) before the file can be loaded.
    """
    import keras

    from keras_mixkd.serving_signature import import_classes
    from keras_mixkd.serving_signature import write_saved_model

    spec = json.loads(spec)
    with keras.saving.custom_object_scope(import_classes(spec["classes"])):
        model = _load_keras_file(keras_path)
    write_saved_model(model, export_dir, tuple(spec["shape"]), spec["dtype"])
    return {"written": export_dir}


def _describe_spec(name, spec):
    shape = tuple(spec.shape.as_list()) if spec.shape.rank is not None else None
    return f"{name}: {spec.dtype.name} {shape}"


def _verify_in_child(export_dir, batch_path):
    """Child side of verification: tf.saved_model.load only, no Keras."""
    import numpy as np
    import tensorflow as tf

    from keras_mixkd.serving_signature import INPUT_NAME
    from keras_mixkd.serving_signature import OUTPUT_NAME

    batch = np.load(batch_path)
    images, expected = batch["images"], batch["expected"]
    loaded = tf.saved_model.load(export_dir)
    if SERVING_ENDPOINT not in loaded.signatures:
        raise _ExportError(
            f"{export_dir} has no {SERVING_ENDPOINT!r} signature; found {list(loaded.signatures)}."
        )
    serve = loaded.signatures[SERVING_ENDPOINT]
    _, input_specs = serve.structured_input_signature
    if len(input_specs) != 1:
        raise _ExportError(f"Expected one input in the signature; got {sorted(input_specs)}.")
    (input_name, input_spec), = input_specs.items()
    output_specs = serve.structured_outputs
    if len(output_specs) != 1:
        raise _ExportError(f"Expected one output in the signature; got {sorted(output_specs)}.")
    (output_name, output_spec), = output_specs.items()
    if (input_name, output_name) != (INPUT_NAME, OUTPUT_NAME):
        raise _ExportError(f"Expected the signature {INPUT_NAME!r} -> {OUTPUT_NAME!r}; got {input_name!r} -> "
                           f"{output_name!r}.")

    max_abs_diff = 0.0
    batch_sizes = (len(images), 1)
    for size in batch_sizes:
        outputs = serve(**{input_name: tf.constant(images[:size])})[output_name].numpy()
        if outputs.shape != expected[:size].shape:
            raise _ExportError(
                f"The SavedModel returned shape {outputs.shape} for a batch of {size}; "
                f"the Keras student returns {expected[:size].shape}."
            )
        diff = np.abs(outputs.astype("float64") - expected[:size].astype("float64"))
        max_abs_diff = max(max_abs_diff, float(np.max(diff)) if diff.size else 0.0)
        if not np.all(np.isfinite(outputs)) and np.all(np.isfinite(expected[:size])):
            max_abs_diff = float("inf")
    batch_dim = input_spec.shape.as_list()[0] if input_spec.shape.rank else None
    return {
        "signature": f"{_describe_spec(input_name, input_spec)} -> "
                     f"{_describe_spec(output_name, output_spec)}",
        "max_abs_diff": max_abs_diff,
        "batch_sizes": list(batch_sizes),
        "batch_dim": batch_dim,
    }


def _child_main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_mixkd.export",
        description="Internal steps of keras_mixkd.export_student, run in a child process. "
                    "Users call `keras-mixkd export` or `export_student` instead.")
    steps = parser.add_subparsers(dest="step", required=True)
    write = steps.add_parser("write", help=".keras -> SavedModel with the TensorFlow backend")
    write.add_argument("keras_path")
    write.add_argument("export_dir")
    write.add_argument("spec", help="JSON: the input's shape and dtype, the classes to import")
    check = steps.add_parser("verify", help="reload a SavedModel and compare with saved outputs")
    check.add_argument("export_dir")
    check.add_argument("batch_path")
    args = parser.parse_args(argv)
    if args.step == "write":
        report = _write_in_child(args.keras_path, args.export_dir, args.spec)
    else:
        report = _verify_in_child(args.export_dir, args.batch_path)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
