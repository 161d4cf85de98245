"""The export formats, by name, and the one check of an export's options.

`FORMATS` maps each name of `export_student(format=...)` (and of
`keras-mixkd export --format`) to its class, one file each:
`saved_model.SavedModelFormat`, `onnx.OnnxFormat`, `litert.LiteRTFormat`.
A new format is one file with such a class, registered here.

This module imports neither Keras nor TensorFlow.
"""

import importlib.util
import sys

from keras_mixkd.export.litert import LiteRTFormat
from keras_mixkd.export.onnx import OnnxFormat
from keras_mixkd.export.saved_model import SavedModelFormat

FORMATS = {"saved_model": SavedModelFormat(), "onnx": OnnxFormat(), "litert": LiteRTFormat()}
QUANTIZATIONS = ("none", "float16", "int8")
DEPLOY_EXTRA = "pip install 'keras-mixkd[deploy]'"


class MissingPackageError(RuntimeError):
    """A package an export needs (a converter or a runtime) is not installed; the message names it."""


def list_formats():
    """The names `export_student(format=...)` accepts: `("saved_model", "onnx", "litert")`."""
    return tuple(FORMATS)


def get_format(name):
    """The format class registered as `name`, or a `ValueError` listing the formats.

    Example:

    >>> get_format("onnx").file_name
    'model.onnx'
    """
    if not isinstance(name, str) or name not in FORMATS:
        raise ValueError(f"Unknown export format {name!r} (`format`, --format); the formats are "
                         f"{', '.join(FORMATS)}.")
    return FORMATS[name]


def check_export_options(format, quantize="none"):
    """Checks a format and its quantisation together, before anything is loaded; returns the format.

    Arguments:
        format: a name of `list_formats()`.
        quantize: `"none"`, `"float16"` or `"int8"`; only `litert` offers
            the last two.

    Returns:
        The format's class (`get_format(format)`).

    Example:

    >>> check_export_options("litert", "int8").name
    'litert'
    >>> check_export_options("onnx", "int8")
    Traceback (most recent call last):
    ...
    ValueError: `quantize` (--quantize) int8 is for the litert format only; onnx is written in float32 (none).
    """
    fmt = get_format(format)
    if not isinstance(quantize, str) or quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` (--quantize) must be one of {', '.join(QUANTIZATIONS)}; got {quantize!r}.")
    if quantize not in fmt.quantizations:
        offering = [name for name, other in FORMATS.items() if quantize in other.quantizations]
        raise ValueError(f"`quantize` (--quantize) {quantize} is for the {' and '.join(offering)} format only; "
                         f"{fmt.name} is written in float32 (none).")
    return fmt


def require_packages(packages, why):
    """Raises `MissingPackageError` naming the first of `packages` ((module, pip name) pairs) not installed.

    Looks the modules up without importing them (`importlib.util.find_spec`).

    Example:

    >>> require_packages((("onnxruntime", "onnxruntime"),), "to verify an ONNX export")
    """
    for module, pip_name in packages:
        if sys.modules.get(module, False) is None:  # Blocked on purpose (tests, sandboxes).
            spec = None
        else:
            try:
                spec = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                spec = None
        if spec is None:
            raise MissingPackageError(f"The package {pip_name!r} is needed {why} and is not installed: "
                                      f"{DEPLOY_EXTRA} (or pip install {pip_name}).")
