"""The export's child processes: `python -m keras_mixkd.export write|verify ...`.

- `write FORMAT KERAS_PATH OUT SPEC`: a TensorFlow-backend process loads the
  `.keras` file and writes the format (the route of the backends that cannot
  write it themselves);
- `verify FORMAT PATH BATCH`: a fresh process loads the export with the
  runtime a deployer uses (`tf.saved_model`, `onnxruntime`, LiteRT's
  interpreter) and reports its outputs' distance to the Keras outputs, its
  test accuracy and its latency. ONNX and LiteRT are checked without
  TensorFlow or Keras imported.

Users call `export_student` or `keras-mixkd export` instead. Each step prints
one JSON object on its last line of stdout.
"""

import argparse
import json
import os
import subprocess
import sys
import time

# Latency: the median of this many calls on one image, after the warm-up calls.
LATENCY_RUNS = 50
LATENCY_WARMUP = 5


class ExportChildError(RuntimeError):
    """A child step failed; the message carries its last lines of stderr."""


def run_child(arguments, what):
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
        raise ExportChildError(f"The {what} process failed (exit {completed.returncode}):\n{tail}")
    last_line = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else "{}"
    return json.loads(last_line)


def write_in_child(format_name, keras_path, path, spec):
    """Child side of the TensorFlow route: `.keras` -> the format at `path`.

    `spec` is the JSON of the input (`shape`, `dtype`), the classes to import
    (`model_classes`) before the file can be loaded, the quantisation and the
    `.npy` file of the representative images (int8).
    """
    import keras
    import numpy as np

    from keras_mixkd.export.checks import load_keras_file
    from keras_mixkd.export.registry import get_format
    from keras_mixkd.serving_signature import import_classes

    spec = json.loads(spec)
    with keras.saving.custom_object_scope(import_classes(spec["classes"])):
        model = load_keras_file(keras_path)
    representative = np.load(spec["representative"]) if spec.get("representative") else None
    route = get_format(format_name).write(model, path, tuple(spec["shape"]), spec["dtype"],
                                          spec.get("quantize", "none"), representative)
    return {"written": path, "route": route}


def verify_in_child(format_name, path, batch_path):
    """Child side of verification: the runtime only (no Keras).

    `batch_path` holds `images` and the Keras model's `expected` outputs, and
    optionally `test_images` and `test_labels`.
    """
    import numpy as np

    from keras_mixkd.export.registry import get_format

    fmt = get_format(format_name)
    batch = dict(np.load(batch_path))
    images, expected = batch["images"], batch["expected"]
    served = fmt.load(path)
    predict = served["predict"]
    max_abs_diff = 0.0
    batch_sizes = (len(images), 1)
    for size in batch_sizes:
        outputs = predict(images[:size])
        if outputs.shape != expected[:size].shape:
            raise RuntimeError(
                f"The {fmt.title} export returned shape {outputs.shape} for a batch of {size}; "
                f"the Keras model returns {expected[:size].shape}."
            )
        diff = np.abs(outputs.astype("float64") - expected[:size].astype("float64"))
        max_abs_diff = max(max_abs_diff, float(np.max(diff)) if diff.size else 0.0)
        if not np.all(np.isfinite(outputs)) and np.all(np.isfinite(expected[:size])):
            max_abs_diff = float("inf")
    report = {"signature": served["signature"], "max_abs_diff": max_abs_diff, "batch_sizes": list(batch_sizes),
              "batch_dim": served["batch_dim"], "runtime": fmt.runtime,
              # ONNX Runtime and LiteRT serve without TensorFlow: the tests check it stays out.
              "tensorflow_imported": "tensorflow" in sys.modules}
    if "test_images" in batch:
        x_test, y_test = batch["test_images"], batch["test_labels"]
        predictions = np.concatenate([np.argmax(predict(x_test[start:start + 256]), axis=-1)
                                      for start in range(0, len(x_test), 256)])
        report["test_accuracy"] = float(np.mean(predictions == y_test))
        report["test_examples"] = int(len(y_test))
    one = images[:1]
    for _ in range(LATENCY_WARMUP):
        predict(one)
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        predict(one)
        times.append(time.perf_counter() - start)
    report["latency_ms"] = float(np.median(times) * 1000.0)
    report["latency_runs"] = LATENCY_RUNS
    return report


def child_main(argv=None):
    """The command line of the child steps (`python -m keras_mixkd.export`)."""
    parser = argparse.ArgumentParser(
        prog="python -m keras_mixkd.export",
        description="Internal steps of keras_mixkd.export_student, run in a child process. "
                    "Users call `keras-mixkd export` or `export_student` instead.")
    steps = parser.add_subparsers(dest="step", required=True)
    write = steps.add_parser("write", help=".keras -> an export format with the TensorFlow backend")
    write.add_argument("format")
    write.add_argument("keras_path")
    write.add_argument("path")
    write.add_argument("spec", help="JSON: the input's shape and dtype, the classes to import, the quantisation")
    check = steps.add_parser("verify", help="reload an export in its runtime and compare with saved outputs")
    check.add_argument("format")
    check.add_argument("path")
    check.add_argument("batch_path")
    args = parser.parse_args(argv)
    if args.step == "write":
        report = write_in_child(args.format, args.keras_path, args.path, args.spec)
    else:
        report = verify_in_child(args.format, args.path, args.batch_path)
    print(json.dumps(report))
    return 0
