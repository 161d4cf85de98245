"""The checks and helpers of an export, shared by every format (`keras_mixkd.export.student`).

This module imports Keras only inside functions: the export's child processes
import it.
"""

import os

# Tolerances are relative to the outputs' scale: an exported output `a` and
# the Keras output `b` agree when max|a - b| <= tolerance * max(1, max|b|)
# (`agreement_bound`), so logits around 1000 may differ in their last float32
# places as logits around 1 may.
DEFAULT_TOLERANCE = 1e-5
# A student computing in half precision cannot match to 1e-5 across two
# engines; these bounds are a few units of its last place.
HALF_PRECISION_TOLERANCE = {"float16": 5e-2, "bfloat16": 2.5e-1}
METADATA_FILE = "metadata.json"
INPUT_DTYPES = ("float32", "uint8")
# What `overwrite=True` may replace: a folder holding one of these (or an empty folder).
EXPORT_MARKERS = ("saved_model.pb", "model.onnx", "model.tflite")


def agreement_bound(expected, tolerance):
    """The largest |exported - Keras| accepted: `tolerance * max(1, max |expected|)`.

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


def check_tolerance(tolerance):
    import math

    if tolerance is None:
        return
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) \
            or tolerance < 0:
        raise ValueError(
            f"`tolerance` (--tolerance) must be a finite number >= 0, relative to the outputs' scale "
            f"(the bound is tolerance x max(1, max |output|)); got {tolerance!r}."
        )


def as_array(images):
    import numpy as np

    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(f"`verify_images` must be at least 2 images (N, height, width, channels); got an array "
                         f"of shape {images.shape}.")
    return images


def save_for_child(model, keras_path, what="SavedModel", backend="PyTorch"):
    """Saves the model the TensorFlow child exports, or says why it cannot be (`what`: the format's name)."""
    try:
        model.save(keras_path)
    except (NotImplementedError, TypeError) as error:
        reason = " ".join(str(error).split()).split(". ")[0].rstrip(".")  # Keras's first sentence, one line.
        raise ValueError(
            f"Model {model.name!r} cannot be saved to a .keras file ({reason}). On the {backend} backend the "
            f"{what} is written by a TensorFlow-backend process from that file: give its classes a "
            "`get_config` (https://keras.io/guides/serialization_and_saving/), or export from the "
            f"TensorFlow backend{' or JAX' if what == 'SavedModel' else ''}."
        ) from error


def verification_images(verify_images, batch_size, input_shape, seed, input_dtype="float32"):
    """The batch the export is fed: float32 in [0, 1], or uint8 pixels for `input_dtype="uint8"`."""
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


def card_for(model_or_path, model, model_card, input_dtype):
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


def weight_count(shape):
    size = 1
    for dim in shape:
        size *= int(dim)
    return size


def check_export_dir(export_dir, overwrite):
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
            raise ValueError(f"Cannot write the export {export_dir}: {existing} is not a writable folder; "
                             "export elsewhere.")
        return export_dir
    if not overwrite:
        raise ValueError(
            f"{export_dir} already exists; pass overwrite=True (`--overwrite` on the "
            "command line) to replace it, or choose another path."
        )
    is_export = any(os.path.isfile(os.path.join(export_dir, name)) for name in EXPORT_MARKERS)
    is_empty_dir = os.path.isdir(export_dir) and not os.listdir(export_dir)
    if os.path.islink(export_dir) or not (is_export or is_empty_dir):
        raise ValueError(
            f"{export_dir} exists and is not a SavedModel folder (no saved_model.pb) nor an ONNX or LiteRT export "
            "(no model.onnx, model.tflite); overwrite=True only replaces an export or an empty folder. Remove it "
            "yourself or choose another path."
        )
    return export_dir


def load_keras_file(path):
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


def resolve_student(model_or_path):
    """The model to export (the student of a distiller, or the model itself), its loss, whether a distiller's."""
    if isinstance(model_or_path, (str, os.PathLike)):
        model = load_keras_file(model_or_path)
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


def check_built(model):
    if not model.built or not model.weights:
        raise ValueError(
            f"Model {model.name!r} was never built: it has no weights to export. Call it "
            "on a batch (or `model.build(input_shape)`), or train it, before exporting."
        )


def compute_dtype(model):
    policy = getattr(model, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", None)
    for layer in getattr(model, "layers", ()):
        layer_dtype = getattr(getattr(layer, "dtype_policy", None), "compute_dtype", None)
        if layer_dtype in HALF_PRECISION_TOLERANCE:
            return layer_dtype
    return compute
