"""Temperature scaling (Guo et al., ICML 2017): `keras_mixkd.calibration` against float64 NumPy, the saved
layer's `.keras` round trip, `keras-mixkd calibrate`, a study's `[student] calibrate = true`, and the errors."""

import json
import os
import warnings

import keras
import numpy as np
import pytest

from keras_mixkd import calibration
from keras_mixkd.calibration import TemperatureScaling
from keras_mixkd.calibration import calibrate_model
from keras_mixkd.calibration import fit_temperature
from tests.helpers import run_cli


# ---------------------------------------------------------------------------
# float64 NumPy reference, written from the definition
# ---------------------------------------------------------------------------


def ref_nll(logits, labels, temperature):
    """Mean of -log softmax(z / T)[y], float64, through log-sum-exp with the row max taken out."""
    scaled = np.asarray(logits, np.float64) / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))


def ref_temperature(logits, labels, low=-8.0, high=8.0):
    """argmin_T NLL by brute force: a grid of 2001 values of log T, refined around the best 12 times."""
    for _ in range(12):
        grid = np.linspace(low, high, 2001)
        values = [ref_nll(logits, labels, np.exp(s)) for s in grid]
        best = int(np.argmin(values))
        step = grid[1] - grid[0]
        low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
        if step < 1e-13:
            break
    return float(np.exp(grid[best]))


def ref_ece(logits, labels, num_bins=15):
    """ECE of softmax(logits), equal-width bins ((b-1)/B, b/B], float64."""
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == labels).astype(np.float64)
    total = 0.0
    for b in range(1, num_bins + 1):
        inside = (confidence > (b - 1) / num_bins) & (confidence <= b / num_bins)
        if b == 1:
            inside |= confidence <= 0
        if inside.any():
            total += abs(correct[inside].sum() - confidence[inside].sum())
    return total / len(labels)


def overconfident(rng, n=400, classes=10, scale=6.0, offset=0.0):
    labels = rng.integers(0, classes, n)
    logits = scale * (np.eye(classes)[labels] + 0.9 * rng.normal(size=(n, classes))) + offset
    return logits, labels


# ---------------------------------------------------------------------------
# fit_temperature and the ECE after, against the reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scale,offset", [(6.0, 0.0), (0.3, 0.0), (60.0, 0.0), (6.0, 1e6), (40.0, -3e4)],
                         ids=["overconfident", "underconfident", "large", "far_from_origin", "large_far"])
def test_fit_temperature_matches_float64_brute_force(rng, scale, offset):
    centered, labels = overconfident(rng, scale=scale)
    expected = ref_temperature(centered, labels)  # softmax ignores the offset: the reference fits without it
    logits = centered + offset
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(expected, rel=1e-7)
    # The true minimiser: no grid point beats it, and it is a minimum.
    assert ref_nll(centered, labels, fitted) <= ref_nll(centered, labels, expected) + 1e-12
    for factor in (0.999, 1.001):
        assert ref_nll(centered, labels, fitted) < ref_nll(centered, labels, fitted * factor)


@pytest.mark.parametrize("scale,offset", [(6.0, 0.0), (30.0, 200.0)], ids=["plain", "large_far"])
def test_ece_and_nll_after_match_float64_reference(rng, scale, offset):
    logits, labels = overconfident(rng, scale=scale, offset=offset)
    logits = logits.astype(np.float32)
    wide = logits.astype(np.float64)
    temperature = ref_temperature(wide, labels)
    values = calibration.calibration_measures(logits, labels, fit_temperature(logits, labels))
    assert values["ece_before"] == pytest.approx(ref_ece(wide, labels), abs=2e-5)
    assert values["ece_after"] == pytest.approx(ref_ece(wide / temperature, labels), abs=2e-5)
    assert values["nll_before"] == pytest.approx(ref_nll(wide, labels, 1.0), rel=1e-4)
    assert values["nll_after"] == pytest.approx(ref_nll(wide, labels, temperature), rel=1e-4)
    assert values["ece_after"] < values["ece_before"] and values["nll_after"] < values["nll_before"]


def test_fit_temperature_says_when_a_bound_binds(rng):
    labels = rng.integers(0, 5, 50)
    perfect = 3.0 * np.eye(5)[labels]  # every example right with a margin: the NLL falls as T -> 0
    with pytest.warns(RuntimeWarning, match=r"T -> 0.*search bound 0.001"):
        assert fit_temperature(perfect, labels) == 1e-3


@pytest.mark.parametrize("logits,labels,message", [
    (np.zeros((0, 10)), np.zeros(0, int), r"hold no examples.*validation split"),
    (np.array([[1.0, np.nan], [0.0, 2.0]]), [0, 1], r"not finite \(NaN or inf\) in 1 of 2 examples \(first: example 0\)"),
    (np.array([[0.2, 0.8], [0.6, 0.4]]), [1, 0], r"look like probabilities.*without its final softmax"),
    (np.array([[1.0, 2.0], [3.0, 0.0]]), [0, 2], r"class ids in \[0, 2\); got values in \[0, 2\]"),
    (np.array([1.0, 2.0]), [0], r"2-D array \(examples, classes >= 2\); got shape \(2,\)"),
])
def test_fit_temperature_refuses_bad_input(logits, labels, message):
    with pytest.raises(ValueError, match=message):
        fit_temperature(logits, labels)


def test_temperature_scaling_refuses_a_bad_temperature():
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"temperature must be a finite number > 0"):
            TemperatureScaling(bad)
    with pytest.raises(TypeError, match=r"temperature must be a number > 0; got str"):
        TemperatureScaling("2")


# ---------------------------------------------------------------------------
# calibrate_model: the model, its .keras round trip, the errors
# ---------------------------------------------------------------------------


def logits_model(classes=4, softmax=False):
    inputs = keras.Input((6,), name="images")
    hidden = keras.layers.Dense(8, activation="relu", name="features")(inputs)
    outputs = keras.layers.Dense(classes, name="logits", activation="softmax" if softmax else None)(hidden)
    return keras.Model(inputs, outputs, name="tiny")


def test_calibrated_model_outputs_logits_over_t_and_round_trips(tmp_path, rng):
    from keras_mixkd.models.model_card import model_card
    from keras_mixkd.saving import load_model

    model = logits_model()
    x = rng.normal(size=(120, 6)).astype("float32")
    logits = np.asarray(model.predict(x, verbose=0))
    y = np.where(rng.random(120) < 0.7, logits.argmax(1), rng.integers(0, 4, 120))
    calibrated, info = calibrate_model(model, x[:80], y[:80], x_test=x[80:], y_test=y[80:])
    temperature = info["temperature"]
    assert temperature == pytest.approx(ref_temperature(logits[:80].astype(np.float64), y[:80]), rel=1e-6)
    assert isinstance(calibrated.layers[-1], TemperatureScaling) and calibrated.layers[-1].temperature == temperature
    with warnings.catch_warnings():
        # Called with one batch, as the model it wraps: no "structure of `inputs`" warning (a list of one).
        warnings.filterwarnings("error", message=".*structure of `inputs`")
        outputs = np.asarray(calibrated.predict(x, verbose=0))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(calibrated(x[:4])), outputs[:4], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outputs, logits / temperature, rtol=1e-6, atol=1e-6)
    assert set(info) >= {"temperature", "val", "test"} and info["test"]["examples"] == 40
    path = str(tmp_path / "calibrated.keras")
    calibrated.save(path)
    loaded = load_model(path)
    assert isinstance(loaded.layers[-1], TemperatureScaling) and loaded.layers[-1].temperature == temperature
    np.testing.assert_allclose(np.asarray(loaded.predict(x, verbose=0)), outputs, rtol=1e-6, atol=1e-6)
    card = model_card(loaded, calibration=info)
    assert card["output"]["temperature"] == temperature and card["calibration"]["temperature"] == temperature
    assert "divided by the temperature" in card["output"]["meaning"] and "calibration" not in model_card(model)
    # Calibrated again: the old temperature is dropped, not stacked.
    again, again_info = calibrate_model(loaded, x[:80], y[:80])
    assert sum(isinstance(layer, TemperatureScaling) for layer in again.layers) == 1
    assert again_info["temperature"] == pytest.approx(temperature, rel=1e-6)


def test_calibrate_model_refuses_bad_models_and_splits(rng):
    x = rng.normal(size=(20, 6)).astype("float32")
    y = rng.integers(0, 4, 20)
    with pytest.raises(ValueError, match=r"validation split is empty \(0 examples\)"):
        calibrate_model(logits_model(), x[:0], y[:0])
    with pytest.raises(ValueError, match=r"outputs of 'tiny' on the validation split look like probabilities"):
        calibrate_model(logits_model(softmax=True), x, y)
    broken = logits_model()
    broken.get_layer("logits").kernel.assign(np.full((8, 4), np.nan, "float32"))
    with pytest.raises(ValueError, match=r"outputs of 'tiny' on the validation split are not finite"):
        calibrate_model(broken, x, y)


# ---------------------------------------------------------------------------
# The command line: calibrate, and measure of a calibrated model
# ---------------------------------------------------------------------------


def _student_file(run_dir):
    names = sorted(name for name in os.listdir(run_dir / "models") if name.startswith("student") and "__from__" in name)
    assert names, os.listdir(run_dir / "models")
    return str(run_dir / "models" / names[0])


def test_calibrate_command_writes_a_calibrated_model_and_measure_shows_its_temperature(capsys, tmp_path,
                                                                                        tiny_study):
    from keras_mixkd.saving import load_model

    run_dir, _, _ = tiny_study
    student, output = _student_file(run_dir), str(tmp_path / "calibrated.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a bound may bind on the tiny study's few examples
        status, out, err = run_cli(capsys, "calibrate", student, "--run", str(run_dir), "--output", output,
                                   "--json", str(tmp_path / "c.json"))
    assert status == 0, err
    info = json.load(open(tmp_path / "c.json"))
    assert f"T = {info['temperature']:.6g} fitted on the validation split" in out
    for split in ("val", "test"):
        values = info[split]
        assert (f"{split}: ECE {values['ece_before']:.4f} -> {values['ece_after']:.4f} · NLL "
                f"{values['nll_before']:.4f} -> {values['nll_after']:.4f}") in out
    card = json.load(open(output + ".json"))["model_card"]
    assert card["calibration"]["temperature"] == info["temperature"] == card["output"]["temperature"]
    assert card["role"] == "student" and card["distilled_from"] is not None
    model = load_model(output)
    assert model.layers[-1].temperature == info["temperature"]
    status, out, err = run_cli(capsys, "measure", output, "--run", str(run_dir), "--measures", "accuracy",
                               "negative_log_likelihood", "expected_calibration_error", "--json",
                               str(tmp_path / "m.json"))
    assert status == 0, err
    measured = json.load(open(tmp_path / "m.json"))
    assert measured["temperature"] == info["temperature"] and "temperature" in out
    assert measured["negative_log_likelihood"] == pytest.approx(info["test"]["nll_after"], rel=1e-4)
    assert measured["expected_calibration_error"] == pytest.approx(info["test"]["ece_after"], abs=1e-5)
    # The uncalibrated student: no temperature, its NLL the one before.
    status, out, err = run_cli(capsys, "measure", student, "--run", str(run_dir), "--measures",
                               "negative_log_likelihood", "--json", str(tmp_path / "m0.json"))
    measured = json.load(open(tmp_path / "m0.json"))
    assert "temperature" not in measured
    assert measured["negative_log_likelihood"] == pytest.approx(info["test"]["nll_before"], rel=1e-4)


def test_calibrate_command_refuses_in_one_line(capsys, tmp_path, tiny_study):
    run_dir, _, _ = tiny_study
    student, output = _student_file(run_dir), str(tmp_path / "c.keras")
    status, _, err = run_cli(capsys, "calibrate", student, "--output", output, "--set", "data.validation_fraction=0")
    assert status == 2 and err.startswith("keras-mixkd calibrate: error: ") and len(err.strip().splitlines()) == 1
    assert "validation split of digits is empty" in err and "--set data.validation_fraction=0.1" in err
    open(output, "w").close()
    status, _, err = run_cli(capsys, "calibrate", student, "--run", str(run_dir), "--output", output)
    assert status == 2 and "already exists; pass --overwrite" in err
    status, _, err = run_cli(capsys, "calibrate", str(tmp_path / "missing.keras"), "--output", str(tmp_path / "o.keras"))
    assert status == 2 and "missing.keras" in err


# ---------------------------------------------------------------------------
# A study with [student] calibrate = true, and the acceptance criterion
# ---------------------------------------------------------------------------


@pytest.mark.backend_independent
def test_calibrate_is_a_student_key_off_by_default_and_refused_without_a_validation_split(tmp_path):
    from keras_mixkd.study import load_recipe
    from keras_mixkd.study.check import check_study
    from keras_mixkd.study.config import RecipeError

    assert load_recipe("digits").student.calibrate is False
    spec = load_recipe("digits", overrides={"student.calibrate": True, "data.validation_fraction": 0.0})
    with pytest.raises(RecipeError, match=r"calibrate = true fits each student's temperature on the validation "
                                          r"split, and the data has none"):
        check_study(spec, str(tmp_path), "c")


@pytest.mark.slow
def test_calibrated_standardized_student_reaches_ece_005_on_digits(tmp_path):
    """The issue's criterion: a digits student distilled with loss="standardized", calibrated, has test ECE <= 0.05.

    The smallest honest setting found: the whole digits data, a digits_cnn teacher of 4 epochs (97 % test
    accuracy) and the standardised student of 10 epochs (~90 %). With 8 student epochs (86 %) the ECE after
    was 0.037 on TensorFlow but 0.054 on JAX; with 6 (58 %) it stays near 0.10: the criterion needs a
    trained student. Its ECE before is ~0.44 (the issue's 0.494 at the default study's scale).
    """
    from keras_mixkd.analysis import write_report
    from keras_mixkd.saving import load_model
    from keras_mixkd.study import RunOptions
    from keras_mixkd.study import load_recipe
    from keras_mixkd.study import run_study

    recipe = {"name": "standardized", "loss": "standardized", "student_loss_weight": 0.1}
    config = load_recipe("digits", overrides={
        "seeds": [0], "teacher.augmentations": ["none"], "teacher.epochs": 4, "student.epochs": 10,
        "student.baseline": False, "distillation": [recipe], "student.calibrate": True,
        "measure.every": 0, "backup_interval_seconds": 0.0})
    records = run_study(config, runs_dir=str(tmp_path), name="c", report=False, print_fn=lambda *a: None,
                        options=RunOptions(verbose=0))
    [student] = [r for r in records if r["role"] == "student"]
    info = student["calibration"]
    assert student["ece_last"] == pytest.approx(info["test"]["ece_before"], abs=1e-5)
    assert info["test"]["ece_before"] > 0.2  # the standardised student is badly calibrated ...
    assert student["ece_calibrated_last"] == info["test"]["ece_after"] <= 0.05  # ... and is not any more
    assert info["val"]["nll_after"] < info["val"]["nll_before"] and info["temperature"] < 1
    assert student["model_card"]["calibration"]["temperature"] == info["temperature"]
    assert student["model_card"]["output"]["standardized"]  # looked through the TemperatureScaling layer
    model = load_model(str(tmp_path / "c" / "models" / f"{student['key']}.keras"))
    assert [type(layer).__name__ for layer in model.layers[-2:]] == ["StandardizedLogits", "TemperatureScaling"]
    [teacher] = [r for r in records if r["role"] == "teacher"]
    assert "calibration" not in teacher
    write_report(str(tmp_path / "c"), print_fn=lambda *a: None)
    report = open(tmp_path / "c" / "report.md", encoding="utf-8").read()
    assert "## Calibrated students (temperature scaling)" in report
    assert (f"| digits_cnn | none | digits_cnn_small | standardized | 1 | {info['temperature']:.3f} | "
            f"{info['test']['ece_before']:.4f} | {info['test']['ece_after']:.4f} |") in report


def test_negative_log_likelihood_metric_matches_float64_reference(rng):
    from keras_mixkd import metrics

    logits, labels = overconfident(rng, n=64, classes=7, scale=4.0, offset=50.0)
    logits = logits.astype(np.float32)
    wide = logits.astype(np.float64)
    expected = ref_nll(wide, labels, 1.0)
    assert metrics.negative_log_likelihood(logits, labels, from_logits=True) == pytest.approx(expected, rel=1e-5)
    probabilities = np.exp(wide - wide.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    assert metrics.negative_log_likelihood(probabilities.astype(np.float32), np.eye(7)[labels]) == pytest.approx(
        expected, rel=1e-3)
    assert calibration.negative_log_likelihood(wide, labels, 2.0) == pytest.approx(ref_nll(wide, labels, 2.0),
                                                                                   rel=1e-12)


@pytest.mark.backend_independent
def test_calibrate_off_leaves_study_json_as_before_and_on_is_a_change():
    from keras_mixkd.study import load_recipe
    from keras_mixkd.study.run_folder import config_differences

    spec = load_recipe("digits")
    before = json.loads(json.dumps(spec))
    before["student"].pop("calibrate")  # a study.json written before the key existed
    assert config_differences(before, spec) == []
    on = load_recipe("digits", overrides={"student.calibrate": True})
    assert config_differences(before, on) == ["student.calibrate: None -> True"]
