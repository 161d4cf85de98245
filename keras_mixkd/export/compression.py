"""`compression_table`: what distillation bought, a study run's teacher and students in each export format.

For each finished cell of the run's first seed (its teachers, distilled and
alone students), each format is exported (`export_student`) to
`<run>/export/<key>/<format>[-<quantize>]/`, verified in its runtime, timed
and scored on the run's test split; the numbers go to `<run>/compression.json`
and the study report shows them as "What the compression bought". The
default study never calls it: its numbers and its time do not change.
"""

import os
import platform

COMPRESSION_FILE = "compression.json"
# What `compression_table` exports by default: FORMAT or FORMAT:QUANTIZE.
DEFAULT_FORMATS = ("saved_model", "onnx", "litert", "litert:int8")


def parse_format(text):
    """`"litert:int8"` -> `("litert", "int8")`, `"onnx"` -> `("onnx", "none")`, checked.

    Example:

    >>> parse_format("litert:float16")
    ('litert', 'float16')
    """
    from keras_mixkd.export.registry import check_export_options

    if not isinstance(text, str):
        raise TypeError(f"A format is a string FORMAT or FORMAT:QUANTIZE (e.g. 'litert:int8'); got {text!r}.")
    name, _, quantize = text.partition(":")
    quantize = quantize or "none"
    check_export_options(name, quantize)
    return name, quantize


def format_label(name, quantize):
    """The column name of a format: `onnx`, `litert`, `litert:int8`."""
    return name if quantize == "none" else f"{name}:{quantize}"


def compression_table(run_dir, formats=DEFAULT_FORMATS, *, keys=None, print_fn=print):
    """Exports a study run's teacher and students in each format and writes `compression.json`.

    Each model (the `.keras` file of each finished cell of the run's first
    seed, or of `keys`) is exported in each of `formats` with
    `export_student` and verified in its runtime in a fresh process; the
    int8 LiteRT exports calibrate on up to 200 images of the run's training
    split. Per model: its role, zoo name, parameters, `.keras` size and
    Keras test accuracy; per format: file size, latency of one image in the
    runtime on this machine's CPU (median of 50 calls), test accuracy in the
    runtime, the route. The study report then adds the table "What the
    compression bought" (rewritten here).

    Arguments:
        run_dir: a folder written by `run_study` (`runs/<name>`).
        formats: names `FORMAT` or `FORMAT:QUANTIZE` (e.g. `"litert:int8"`);
            default `saved_model`, `onnx`, `litert`, `litert:int8`.
        keys: cell keys to export (default: every finished cell of the
            first seed).
        print_fn: where one line per export goes (None: nowhere).

    Returns:
        The table (the dict written to `<run_dir>/compression.json`).

    Example:

    >>> table = compression_table("runs/digits", formats=("onnx", "litert:int8"))
    >>> [(row["role"], row["exports"]["onnx"]["latency_ms"]) for row in table["models"]]  # doctest: +SKIP
    """
    print_fn = print_fn or (lambda *args: None)
    parsed = [parse_format(text) for text in (formats or ())]
    if not parsed:
        raise ValueError("`formats` (--format) must name at least one format: saved_model, onnx, litert, "
                         "litert:float16, litert:int8.")
    from keras_mixkd.study import atomic
    from keras_mixkd.study.run_folder import RunFolder

    run_dir = os.fspath(run_dir)
    folder = RunFolder(run_dir)
    if not os.path.isfile(folder.manifest_path):
        raise ValueError(f"{run_dir} is not a runs folder of keras-mixkd study (no study.json).")
    config = folder.read_manifest()["config"]
    records = {record["key"]: record for record in folder.read_cells()}
    if keys is not None:
        unknown = sorted(set(keys) - set(records))
        if unknown:
            raise ValueError(f"{run_dir} has no finished cell {', '.join(unknown)}; its cells are "
                             f"{', '.join(sorted(records)) or 'none'}.")
        chosen = {key: records[key] for key in keys}
    else:
        seeds = sorted({record.get("seed") for record in records.values() if record.get("seed") is not None})
        chosen = {key: record for key, record in records.items() if not seeds or record.get("seed") == seeds[0]}
    if not chosen:
        raise ValueError(f"{run_dir} has no finished cell to export yet: run the study first.")

    from keras_mixkd.export.student import export_student
    from keras_mixkd.study.data_prep import prepare_data

    splits = prepare_data(config["data"])
    rows = []
    for key, record in sorted(chosen.items(), key=lambda item: (_role_order(item[1]), item[0])):
        keras_path = folder.model_path(key)
        if not os.path.isfile(keras_path):
            raise ValueError(f"{keras_path} is missing: the cell {key} has a record but no model file.")
        row = {"key": key, "role": record.get("role"),
               "model": record.get("student_model") or record.get("teacher_model"),
               "recipe": record.get("recipe"), "seed": record.get("seed"),
               "parameters": record.get("parameters"), "keras_size_bytes": os.path.getsize(keras_path),
               "keras_test_accuracy": None, "exports": {}}
        for name, quantize in parsed:
            label = format_label(name, quantize)
            target = os.path.join(run_dir, "export", key, label.replace(":", "-"))
            result = export_student(keras_path, target, overwrite=True, format=name, quantize=quantize,
                                    representative_images=splits.x_train if quantize == "int8" else None,
                                    test_images=splits.x_test, test_labels=splits.y_test)
            row["exports"][label] = result.as_dict()
            row["keras_test_accuracy"] = result.keras_test_accuracy
            row["parameters"] = result.num_params
            print_fn(f"{key} {label}: {result.cost_line()[len('Cost: '):]}")
        rows.append(row)
    table = {
        "formats": [format_label(name, quantize) for name, quantize in parsed],
        "dataset": config["data"]["dataset"], "test_examples": int(len(splits.y_test)),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores ({platform.processor() or platform.system()})",
        "latency": "median of 50 calls on one image after 5 warm-up calls, in each format's runtime",
        "models": rows,
    }
    atomic.write_json(os.path.join(run_dir, COMPRESSION_FILE), table)
    from keras_mixkd.analysis.report import write_report

    write_report(run_dir, print_fn=None)
    return table


def _role_order(record):
    return {"teacher": 0, "student": 1}.get(record.get("role"), 2)
