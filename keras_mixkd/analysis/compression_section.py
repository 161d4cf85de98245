"""The report's "What the compression bought" table, from `<run>/compression.json`.

`keras_mixkd.export.compression_table` (`keras-mixkd compression RUN`) writes
that file; a run without it has no such section. This module reads JSON only.
"""

import json
import os

from keras_mixkd.analysis import tables

COMPRESSION_FILE = "compression.json"


def compression_lines(run_dir):
    """The report's section on the run's exports: one row per model and format, or [] without compression.json.

    Example:

    >>> compression_lines("runs/digits")[0]
    '## What the compression bought'
    """
    path = os.path.join(os.fspath(run_dir), COMPRESSION_FILE)
    if not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            table = json.load(handle)
        models = table["models"]
    except (OSError, ValueError, KeyError, TypeError):
        return ["## What the compression bought", "", f"*{COMPRESSION_FILE} cannot be read: rerun "
                "`keras-mixkd compression` on this run.*", ""]
    header = ["model", "role", "cell", "parameters", "format", "size (KiB)", "latency (ms)", "runtime",
              "test accuracy (%)", "vs Keras (points)"]
    rows = []
    for row in models:
        keras_accuracy = row.get("keras_test_accuracy")
        rows.append([row.get("model") or "?", row.get("role") or "?", row.get("key"), _count(row.get("parameters")),
                     "Keras (.keras)", _kib(row.get("keras_size_bytes")), "–", "–", _percent(keras_accuracy), "–"])
        for label, numbers in row.get("exports", {}).items():
            accuracy = numbers.get("test_accuracy")
            delta = "–" if accuracy is None or keras_accuracy is None \
                else f"{100 * (accuracy - keras_accuracy):+.2f}"
            latency = numbers.get("latency_ms")
            rows.append(["", "", "", "", label, _kib(numbers.get("size_bytes")),
                         "–" if latency is None else f"{latency:.3f}", numbers.get("runtime") or "–",
                         _percent(accuracy), delta])
    return ["## What the compression bought", "",
            f"Each model of the run exported in each format (`keras-mixkd compression`; files in `export/`), "
            f"verified in its runtime in a fresh process. Size on disk; latency of one image on this machine "
            f"({table.get('machine', 'CPU')}): {table.get('latency', 'median of many calls')}; test accuracy on the "
            f"{table.get('test_examples', '?')} test images of {table.get('dataset', 'the data')} as loaded, in "
            f"the runtime. From `{COMPRESSION_FILE}`.", "", tables.markdown_table(header, rows), ""]


def _kib(size):
    return "–" if size is None else f"{size / 1024:,.1f}"


def _percent(value):
    return "–" if value is None else f"{100 * value:.2f}"


def _count(value):
    return "–" if value is None else f"{int(value):,}"
