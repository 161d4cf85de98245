"""Shipping a distilled student: SavedModel, ONNX and LiteRT exports, verified in their runtimes.

- `export_student(model_or_path, export_dir, *, format="saved_model", quantize="none", ...)`
  (`student.py`): one export, checked in a fresh process by the runtime a
  deployer uses; `ExportResult` (`result.py`) says what it wrote and cost.
- `compression_table(run_dir, formats=...)` (`compression.py`): a study
  run's teacher and students in each format: parameters, size, latency,
  accuracy (`compression.json`, shown by the study report).
- One file per format (`saved_model.py`, `onnx.py`, `litert.py`), registered
  in `registry.py` (`FORMATS`, `check_export_options`).
- `python -m keras_mixkd.export` runs the child steps (`child.py`).

Importing this package imports neither Keras nor TensorFlow.
"""

from keras_mixkd.export.checks import DEFAULT_TOLERANCE
from keras_mixkd.export.checks import HALF_PRECISION_TOLERANCE
from keras_mixkd.export.checks import INPUT_DTYPES
from keras_mixkd.export.checks import METADATA_FILE
from keras_mixkd.export.checks import agreement_bound
from keras_mixkd.export.checks import read_model_card
from keras_mixkd.export.compression import COMPRESSION_FILE
from keras_mixkd.export.compression import compression_table
from keras_mixkd.export.registry import FORMATS
from keras_mixkd.export.registry import QUANTIZATIONS
from keras_mixkd.export.registry import MissingPackageError
from keras_mixkd.export.registry import check_export_options
from keras_mixkd.export.registry import get_format
from keras_mixkd.export.registry import list_formats
from keras_mixkd.export.result import ExportResult
from keras_mixkd.export.saved_model import SERVING_ENDPOINT
from keras_mixkd.export.student import export_student

__all__ = [
    "COMPRESSION_FILE", "DEFAULT_TOLERANCE", "FORMATS", "HALF_PRECISION_TOLERANCE", "INPUT_DTYPES",
    "METADATA_FILE", "QUANTIZATIONS", "SERVING_ENDPOINT", "ExportResult", "MissingPackageError",
    "agreement_bound", "check_export_options", "compression_table", "export_student", "get_format",
    "list_formats", "read_model_card",
]
