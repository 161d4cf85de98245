"""ONNX and LiteRT exports of a digits student, verified in their runtimes, and what they cost.

One small digits student (3 epochs: accuracy well above chance, so int8's
loss means something) is exported once per format for the module: each export
from JAX or PyTorch runs two child processes (the TensorFlow-backend writer,
the runtime's verifier), so each test here reads a shared export.
"""

import json
import os

import keras
import numpy as np
import pytest

from keras_mixkd.export import export_student
from keras_mixkd.models import get_model
from keras_mixkd.models import with_preprocessing
from keras_mixkd.models.model_card import model_card
from tests.helpers import BACKEND
from tests.helpers import run_cli
from tests.helpers import run_cli_ok

onnxruntime = pytest.importorskip("onnxruntime")
litert = pytest.importorskip("ai_edge_litert.interpreter")

CHILD_ROUTE = "in a TensorFlow-backend process"
# The tests sharing this module's exports run on one pytest-xdist worker (`--dist loadgroup`), so the
# student is trained and exported once, not once per worker.
SHARED_EXPORTS = pytest.mark.xdist_group("export_formats")


@pytest.fixture(scope="module")
def student(tmp_path_factory, splits):
    """A digits_cnn_small trained 3 epochs on digits, saved with a model card naming its data set."""
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    model = with_preprocessing(get_model("digits_cnn_small", 10, splits.input_shape), splits.normalization)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(splits.x_train, splits.y_train, epochs=3, batch_size=64, verbose=0)
    path = str(tmp_path_factory.mktemp("student") / "student.keras")
    model.save(path)
    with open(path + ".json", "w", encoding="utf-8") as handle:
        json.dump({"model_card": model_card(model, splits=splits, role="student")}, handle)
    predictions = np.argmax(keras.ops.convert_to_numpy(model(splits.x_test, training=False)), axis=-1)
    return model, path, float(np.mean(predictions == splits.y_test))


@pytest.fixture(scope="module")
def onnx_export(student, splits, tmp_path_factory):
    _, path, _ = student
    target = str(tmp_path_factory.mktemp("onnx") / "student")
    return target, export_student(path, target, format="onnx", test_images=splits.x_test,
                                  test_labels=splits.y_test)


@pytest.fixture(scope="module")
def litert_export(student, splits, tmp_path_factory):
    _, path, _ = student
    target = str(tmp_path_factory.mktemp("litert") / "student")
    return target, export_student(path, target, format="litert", test_images=splits.x_test,
                                  test_labels=splits.y_test)


def _card(export_dir):
    with open(os.path.join(export_dir, "metadata.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _route_is_honest(route, keras_route):
    assert route.startswith(keras_route)
    assert route.endswith(CHILD_ROUTE) == (BACKEND != "tensorflow")


@SHARED_EXPORTS
def test_onnx_export_is_served_by_onnxruntime_as_keras_predicts(onnx_export, student, splits):
    target, result = onnx_export
    model, _, keras_accuracy = student
    assert sorted(os.listdir(target)) == ["metadata.json", "model.onnx"]
    assert result.verified and result.max_abs_diff <= result.bound
    assert result.tolerance == 1e-4 and result.runtime == "onnxruntime"
    _route_is_honest(result.route, "keras.export.ExportArchive SavedModel -> tf2onnx")
    assert result.signature == "images: tensor(float) (None, 8, 8, 1) -> output_0: tensor(float) (None, 10)"
    # What a server does: onnxruntime on images as loaded gives the library's accuracy (here exactly).
    session = onnxruntime.InferenceSession(os.path.join(target, "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"images": splits.x_test})[0]
    np.testing.assert_allclose(logits, keras.ops.convert_to_numpy(model(splits.x_test, training=False)),
                               rtol=0, atol=1e-4 * max(1.0, float(np.abs(logits).max())))
    assert float(np.mean(np.argmax(logits, -1) == splits.y_test)) == result.test_accuracy == keras_accuracy
    assert result.keras_test_accuracy == keras_accuracy and result.test_examples == len(splits.y_test)
    card = _card(target)["export"]
    assert (card["format"], card["quantization"], card["file"], card["runtime"]) == \
        ("onnx", "none", "model.onnx", "onnxruntime")
    assert card["size_bytes"] == os.path.getsize(os.path.join(target, "model.onnx")) == result.size_bytes
    assert card["latency_ms"] == result.latency_ms > 0 and card["latency_runs"] == 50
    assert card["parameters"] == result.num_params == model.count_params()
    text = str(result)
    assert "as an ONNX file" in text and "ms per image (median of CPU runs, onnxruntime)" in text
    assert f"test accuracy {100 * keras_accuracy:.2f} %" in text


@SHARED_EXPORTS
def test_litert_export_is_run_by_the_interpreter_as_keras_predicts(litert_export, student, splits):
    target, result = litert_export
    model, _, keras_accuracy = student
    assert sorted(os.listdir(target)) == ["metadata.json", "model.tflite"]
    assert result.verified and result.max_abs_diff <= result.bound and result.tolerance == 1e-4
    _route_is_honest(result.route, "keras Model.export(format='litert')")
    # What a phone does: LiteRT's interpreter, its batch resized (dynamic), on images as loaded.
    interpreter = litert.Interpreter(model_path=os.path.join(target, "model.tflite"))
    (given,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(given["shape_signature"]) == [-1, 8, 8, 1] and given["dtype"] == np.float32
    interpreter.resize_tensor_input(given["index"], list(splits.x_test.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], splits.x_test)
    interpreter.invoke()
    logits = interpreter.get_tensor(out["index"])
    assert float(np.mean(np.argmax(logits, -1) == splits.y_test)) == result.test_accuracy == keras_accuracy
    card = _card(target)
    assert (card["export"]["format"], card["export"]["quantization"]) == ("litert", "none")
    assert card["dataset"] == "digits" and card["input"]["normalization_inside"]


@SHARED_EXPORTS
def test_int8_litert_from_the_command_line_stays_within_the_bound(student, litert_export, splits, tmp_path,
                                                                   capsys):
    _, path, keras_accuracy = student
    target = str(tmp_path / "int8")
    # No data flag: the training images come from the data set the model card names (digits).
    out = run_cli_ok(capsys, "export", path, target, "--format", "litert", "--quantize", "int8")
    card = _card(target)["export"]
    assert (card["format"], card["quantization"], card["representative_images"]) == ("litert", "int8", 200)
    assert card["max_abs_diff_allowed"] is None and card["keras_test_accuracy"] == keras_accuracy
    assert abs(card["test_accuracy"] - keras_accuracy) <= 0.015
    # int8 weights: smaller than the float32 LiteRT file.
    assert card["size_bytes"] < litert_export[1].size_bytes
    assert "int8 quantised" in out and "a quantised export is judged by its accuracy" in out
    assert f"(Keras model: {100 * keras_accuracy:.2f} %)" in out and "Warning" not in out


@SHARED_EXPORTS
@pytest.mark.skipif(BACKEND != "tensorflow", reason="float16 weights: the TensorFlow converter, as int8's")
def test_float16_litert_holds_weights_in_half_precision(student, litert_export, splits, tmp_path):
    _, path, keras_accuracy = student
    result = export_student(path, str(tmp_path / "f16"), format="litert", quantize="float16",
                            test_images=splits.x_test, test_labels=splits.y_test)
    assert result.tolerance == 1e-2 and result.max_abs_diff <= result.bound
    assert abs(result.test_accuracy - keras_accuracy) <= 0.005
    assert result.size_bytes < litert_export[1].size_bytes


@SHARED_EXPORTS
def test_an_int8_student_losing_accuracy_gets_a_warning(student, splits, tmp_path, monkeypatch):
    from keras_mixkd.export import child

    model, _, keras_accuracy = student

    def two_points_lost(arguments, what):  # The runtime's report of a student quantised badly.
        if arguments[0] == "write":
            open(arguments[3], "wb").close()
            return {"route": "keras Model.export(format='litert')"}
        return {"signature": "images", "max_abs_diff": 0.5, "batch_sizes": [4, 1], "batch_dim": None,
                "runtime": "ai_edge_litert.interpreter", "test_accuracy": keras_accuracy - 0.02,
                "test_examples": len(splits.y_test), "latency_ms": 0.1, "latency_runs": 50}

    monkeypatch.setattr(child, "run_child", two_points_lost)
    if BACKEND == "tensorflow":  # Written in this process: the conversion is not what this test is about.
        from keras_mixkd.export.litert import LiteRTFormat

        monkeypatch.setattr(LiteRTFormat, "write", lambda self, model, path, *args: open(path, "wb").close())
    with pytest.warns(UserWarning, match=r"int8 LiteRT \(\.tflite\) export of 'digits_cnn_small' loses 2\.00 points"):
        result = export_student(model, str(tmp_path / "int8"), format="litert", quantize="int8",
                                representative_images=splits.x_train, test_images=splits.x_test,
                                test_labels=splits.y_test)
    assert any("more than 1.5 points" in note for note in result.notes)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow writes ONNX in its own process: any model")
def test_a_model_the_tensorflow_process_cannot_load_is_refused_for_onnx(tmp_path):
    from tests.test_export import NeedsConfig

    model = NeedsConfig(activation=lambda x: x)
    model(np.zeros((2, 8, 8, 1), "float32"))
    name = {"jax": "JAX", "torch": "PyTorch"}[BACKEND]
    with pytest.raises(ValueError, match=f"On the {name} backend the ONNX export is written by a TensorFlow-backend "
                                         "process from that file.*or export from the TensorFlow backend\\."):
        export_student(model, str(tmp_path / "onnx"), format="onnx")
    assert not os.path.exists(tmp_path / "onnx")


@SHARED_EXPORTS
@pytest.mark.backend_independent
def test_onnxruntime_and_litert_verify_without_tensorflow(onnx_export, litert_export, splits, tmp_path):
    from keras_mixkd.export import child

    batch = str(tmp_path / "batch.npz")
    images = splits.x_test[:3]
    for target, result in (onnx_export, litert_export):
        np.savez(batch, images=images, expected=np.zeros((3, 10), "float32"))
        report = child.run_child(["verify", result.format, result.model_path, batch], "verification")
        assert report["tensorflow_imported"] is False and report["runtime"] == result.runtime


@pytest.mark.backend_independent
@pytest.mark.parametrize("argv, message", [
    (["--format", "tflite"], "Unknown export format 'tflite' (`format`, --format); the formats are saved_model, "
                             "onnx, litert."),
    (["--format", "onnx", "--quantize", "int8"], "`quantize` (--quantize) int8 is for the litert format only; onnx "
                                                 "is written in float32 (none)."),
    (["--quantize", "float16"], "`quantize` (--quantize) float16 is for the litert format only; saved_model is "
                                "written in float32 (none)."),
    (["--format", "litert", "--quantize", "int4"], "`quantize` (--quantize) must be one of none, float16, int8; "
                                                   "got 'int4'."),
    (["--format", "litert", "--quantize", "int8"], "--quantize int8 calibrates on images of the training split, "
                                                   "and {model} has no model card naming its data set: name the "
                                                   "data (--dataset, with --data-path for a folder or .npz, or "
                                                   "--run)."),
    (["--format", "onnx", "--input-dtype", "uint8"], "`input_dtype` 'uint8' (--input-dtype) is for the saved_model "
                                                     "format only; the onnx export takes float32 images in [0, 1]."),
])
def test_bad_export_options_are_one_line_errors(argv, message, tmp_path, capsys):
    model = str(tmp_path / "own.keras")  # Refused before the file is read.
    status, out, err = run_cli(capsys, "export", model, str(tmp_path / "out"), *argv)
    assert status == 2 and out == ""
    assert err.strip() == f"keras-mixkd export: error: {message.format(model=model)}"


@pytest.mark.backend_independent
@pytest.mark.parametrize("argv, missing", [
    (["--format", "onnx"], "onnxruntime"),
    (["--format", "onnx"], "tf2onnx"),
    (["--format", "litert"], "ai_edge_litert"),
])
def test_a_missing_runtime_or_converter_is_named_with_the_extra(argv, missing, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, missing, None)  # What an environment without the package gives.
    status, _, err = run_cli(capsys, "export", str(tmp_path / "own.keras"), str(tmp_path / "out"), *argv)
    pip_name = {"ai_edge_litert": "ai-edge-litert"}.get(missing, missing)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert f"error: The package '{pip_name}' is needed " in err
    assert f"pip install 'keras-mixkd[deploy]' (or pip install {pip_name})." in err


@pytest.mark.one_backend  # export_student's routes are tested above on every backend
def test_the_compression_table_of_a_study_run_and_its_report(tiny_study, tmp_path, capsys):
    import shutil

    run_dir, records, _ = tiny_study
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    key = next(name[:-len(".json")] for name in sorted(os.listdir(run / "cells"))
               if json.load(open(run / "cells" / name))["role"] == "student")
    out = run_cli_ok(capsys, "compression", str(run), "--format", "onnx", "--key", key)
    table = json.load(open(run / "compression.json"))
    (row,) = table["models"]
    assert (row["key"], row["role"], table["formats"]) == (key, "student", ["onnx"])
    onnx = row["exports"]["onnx"]
    assert onnx["test_accuracy"] == row["keras_test_accuracy"] and onnx["latency_ms"] > 0
    assert onnx["size_bytes"] == os.path.getsize(run / "export" / key / "onnx" / "model.onnx")
    assert f"{key} onnx:" in out and "compression.json" in out
    report = (run / "report.md").read_text()
    assert "## What the compression bought" in report
    assert f"| onnx | {onnx['size_bytes'] / 1024:,.1f} | {onnx['latency_ms']:.3f} | onnxruntime |" in report


@pytest.mark.backend_independent
def test_compression_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    status, _, err = run_cli(capsys, "compression", str(tmp_path), "--format", "litert:int2")
    assert status == 2
    assert err.strip() == ("keras-mixkd compression: error: `quantize` (--quantize) must be one of none, float16, "
                           "int8; got 'int2'.")
    status, _, err = run_cli(capsys, "compression", str(tmp_path))
    assert err.strip() == (f"keras-mixkd compression: error: {tmp_path} is not a runs folder of keras-mixkd study "
                           "(no study.json).")


def test_a_mixed_precision_model_is_refused_for_onnx_and_litert(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Normalization(mean=0.5, variance=0.09, name="input_normalization")(inputs)
    outputs = keras.layers.Dense(10, dtype="mixed_float16")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs, name="half")
    for fmt in ("onnx", "litert"):
        with pytest.raises(ValueError, match=f"Model 'half' computes in float16 \\(mixed precision\\): the {fmt} "
                                             "export is written from a float32 model"):
            export_student(model, str(tmp_path / fmt), format=fmt)
    assert os.listdir(tmp_path) == []


@pytest.mark.backend_independent
def test_a_card_naming_data_not_here_exports_without_accuracy(tmp_path, monkeypatch):
    """A float export needs no data: the card's data set failing to load (CIFAR offline) is a warning."""
    from keras_mixkd.study import data_prep
    from keras_mixkd.study.single_run import export_data

    path = str(tmp_path / "student.keras")
    card = {"dataset": "cifar10", "input": {"shape": [None, 32, 32, 3]}}
    with open(path + ".json", "w", encoding="utf-8") as handle:
        json.dump({"model_card": card}, handle)

    def offline(data):
        raise OSError("Could not load CIFAR-10 through keras.datasets: URL fetch failure\nKeras downloads it ...")

    monkeypatch.setattr(data_prep, "prepare_data", offline)
    with pytest.warns(UserWarning, match=r"test accuracy is not reported: the data set 'cifar10' its model "
                                         r"card names could not be loaded \(Could not load CIFAR-10"):
        assert export_data(path, "none") == {}
    # int8 needs the training images: the same failure is an error, and so is data the user named.
    with pytest.raises(OSError, match="Could not load CIFAR-10"):
        export_data(path, "int8")
    with pytest.raises(OSError, match="Could not load CIFAR-10"):
        export_data(path, "none", dataset="cifar10")
