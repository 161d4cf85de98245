"""The README's Python examples run as written (with fewer epochs) and do what the README says."""

import contextlib
import io
import json
import math
import pathlib
import re

import keras
import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def run_block(index):
    """Run README block `index` with every `epochs=N` set to 1: its variables and what it printed."""
    code = re.sub(r"epochs=\d+", "epochs=1", python_blocks()[index])
    # The mixing switch's epoch, scaled with the epochs: off from the first epoch, so it acts.
    code = code.replace("MixingSwitchOff(8, mixing)", "MixingSwitchOff(0, mixing)")
    namespace = {"__name__": "readme"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"README.md python block {index}", "exec"), namespace)
    return namespace, printed.getvalue()


def check_distil_in_python(ns, printed, tmp_path):
    """`## Distil in Python`: the logged metrics, the accuracies printed, a plain student saved."""
    logs = ns["history"].history
    trained = {"loss", "supervised_loss", "distillation_loss", "accuracy", "teacher_agreement"}
    assert trained <= set(logs) and {f"val_{name}" for name in trained} <= set(logs), sorted(logs)
    assert all(len(values) == 1 for values in logs.values())
    (line,) = re.findall(r"^teacher (\S+) student (\S+)$", printed, flags=re.M)  # after Keras's progress bars
    teacher_accuracy, student_accuracy = float(line[0]), float(line[1])
    # One epoch each on the digits: the teacher (30x the student's size) is far above chance (10 %).
    assert 0.3 < teacher_accuracy <= 1.0 and 0.0 <= student_accuracy <= 1.0, line
    saved = keras.saving.load_model(tmp_path / "student.keras")
    from keras_mixkd import Distiller

    assert isinstance(saved, keras.Model) and not isinstance(saved, Distiller)  # a plain Keras model
    data = ns["data"]
    mean, std = data.normalization
    images = ((data.x_test[:16] - mean) / std).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(saved(images)),
                               keras.ops.convert_to_numpy(ns["distiller"].student(images)), atol=1e-6)


def check_mixing_switch_off(ns, printed, tmp_path):
    """The mixing teacher, with mixing switched off by `MixingSwitchOff`, then partial mixup distillation."""
    assert ns["mixing"].mixing and not any(m.enabled for m in ns["mixing"].mixing)  # switched off
    assert ns["teacher"].history.history["accuracy"] and len(ns["distiller"].history.history["loss"]) == 1
    assert ns["distiller"].student is ns["student"]


def check_latent_measures(ns, printed, tmp_path):
    """`LatentMeasures` logs the student's class-discrimination every epoch and the teacher's once."""
    logs = ns["history"].history
    assert len(logs["heldout_class_discrimination"]) == 1  # one epoch
    assert math.isfinite(logs["heldout_class_discrimination"][0])
    assert len(set(logs["heldout_teacher_class_discrimination"])) == 1
    from keras_mixkd.metrics import class_discrimination

    features = ns["features"]
    assert features.shape[0] == len(ns["data"].y_test)
    cd, intra, inter = ns["cd"], ns["intra"], ns["inter"]
    assert cd == pytest.approx((intra - inter) / math.sqrt(features.shape[1]), rel=1e-5, abs=1e-7)
    assert cd == pytest.approx(class_discrimination(features, ns["data"].y_test), rel=1e-5, abs=1e-7)


def check_study_in_python(ns, printed, tmp_path):
    """`run_study` writes runs/digits-smoke: the chosen recipes' students, their teachers and the baseline."""
    records = ns["records"]
    assert printed.strip().splitlines()[-1] == f"{len(records)} cells"
    students = [r for r in records if r["role"] == "student"]
    assert {r["recipe"] for r in students} == {"kd", "kd_T1"}
    assert {r["teacher_augmentation"] for r in records if r["role"] == "teacher"} == {"none", "mixup"}
    assert len(students) == 2 * 2  # two teacher augmentations x two recipes
    assert [r["role"] for r in records].count("alone") == 1
    results = json.loads((tmp_path / "runs" / "digits-smoke" / "results.json").read_text())
    assert sorted(cell["key"] for cell in results["cells"]) == sorted(r["key"] for r in records)
    assert (tmp_path / "runs" / "digits-smoke" / "report.md").exists()


def check_single_model_commands_in_python(ns, printed, tmp_path):
    """The commands' library functions: scaled milestones, chosen cells, a teacher and a student saved, one loader."""
    assert ns["config"]["teacher"]["epochs"] == 6 and any("scaled" in note for note in ns["notes"])
    cells = ns["cells"]
    assert {c.teacher_augmentation for c in cells if c.kind != "alone"} == {"mixup"}
    assert {c.kind for c in cells} >= {"teacher", "student"}
    for name in ("teacher.keras", "teacher.keras.json", "student.keras", "student.keras.json"):
        assert (tmp_path / name).exists(), name
    record = ns["record"]
    # run_block sets every epochs=N to 1.
    assert record["role"] == "student" and record["epochs"] == 1 and 0.0 <= record["test_accuracy_last"] <= 1.0
    assert record["model_card"]["distilled_from"]["teacher_file"] == str(tmp_path / "teacher.keras")
    assert "accuracy" in printed and ns["student"].output_shape[-1] == 10


CHECKS = [check_distil_in_python, check_mixing_switch_off, check_latent_measures, check_study_in_python,
          check_single_model_commands_in_python]


def test_readme_has_python_examples():
    assert len(python_blocks()) == len(CHECKS), "README.md's Python examples changed: update CHECKS here"


# The examples are plain Python over the public API, the same under every backend; what each computes
# per backend (Distiller, MixingSwitchOff, LatentMeasures, run_study, the single-model commands) has its
# own tests under every backend. So the README's code runs under one backend, where it costs least.
@pytest.mark.slow
@pytest.mark.one_backend
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace, printed = run_block(index)
    CHECKS[index](namespace, printed, tmp_path)
