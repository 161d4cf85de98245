"""Tables and plots of a study, on synthetic result records (no training)."""

import json
import os

import numpy as np
import pytest

from keras_mixkd.analysis import format_mean_std
from keras_mixkd.analysis import load_results
from keras_mixkd.analysis import mean_std
from keras_mixkd.analysis import pair_table
from keras_mixkd.analysis import project_2d
from keras_mixkd.analysis import write_report
from keras_mixkd.study import atomic

pytestmark = pytest.mark.backend_independent  # tables, plots, progress lines: nothing Keras computes

AUGMENTATIONS = ["none", "mixup", "cutmix"]
RECIPES = ["kd", "kd_T1"]
SEEDS = [0, 1, 2]
PNG = b"\x89PNG\r\n\x1a\n"


def synthetic_records(rng):
    """Teachers and students with random numbers and per-epoch histories."""
    records = []
    for augmentation in AUGMENTATIONS:
        for seed in SEEDS:
            records.append(_record(rng, "teacher", augmentation, seed, epochs=6))
            for recipe in RECIPES:
                records.append(_record(rng, "student", augmentation, seed, epochs=4, recipe=recipe))
    return records


def _record(rng, role, augmentation, seed, epochs, recipe=""):
    history = [{"epoch": e + 1, "val_accuracy": float(rng.uniform(0.5, 1.0)),
                "test_accuracy": float(rng.uniform(0.5, 1.0)),
                "val_class_discrimination": float(rng.uniform(0.05, 0.2))} for e in range(epochs)]
    best = max(history, key=lambda r: (r["val_accuracy"], -r["epoch"]))
    key = (f"teacher__big__{augmentation}__s{seed}" if role == "teacher"
           else f"student__small__{recipe}__from__big__{augmentation}__s{seed}")
    record = {
        "key": key, "role": role, "teacher_model": "big", "teacher_augmentation": augmentation, "seed": seed,
        "epochs": epochs, "last_epoch": epochs, "test_accuracy_last": history[-1]["test_accuracy"],
        "val_accuracy_last": history[-1]["val_accuracy"], "best_epoch": best["epoch"],
        "test_accuracy_best": best["test_accuracy"], "val_accuracy_best": best["val_accuracy"],
        "class_discrimination_last": float(rng.uniform(0.05, 0.2)), "ece_last": float(rng.uniform(0, 0.1)),
        "mean_entropy_last": float(rng.uniform(0, 1)), "logit_std_last": float(rng.uniform(1, 3)),
        "history": history, "backend": "tensorflow", "seconds": 1.0,
    }
    if role == "student":
        record.update(student_model="small", recipe=recipe, loss="kd", temperature=1.0 if recipe == "kd_T1" else 4.0,
                      student_loss_weight=0.1, teacher_agreement_last=float(rng.uniform(0.5, 1)))
    return record


CONFIG = {
    "name": "synthetic", "description": "made up", "seeds": SEEDS, "data": {"dataset": "digits"},
    "teacher": {"augmentations": AUGMENTATIONS}, "pairs": [{"teacher": "big", "student": "small"}],
    "distillation": [{"name": "kd", "loss": "kd", "temperature": 4.0, "student_loss_weight": 0.1,
                      "augmentation": ["none"]},
                     {"name": "kd_T1", "loss": "kd", "temperature": 1.0, "student_loss_weight": 0.1,
                      "augmentation": ["none"]}],
    "measure": {"projection": "pca"},
}


def write_run(folder, records, rng, with_results=True):
    os.makedirs(folder, exist_ok=True)
    manifest = {"format": 1, "keras_mixkd_version": "0.1.0", "config": CONFIG}
    atomic.write_json(os.path.join(folder, "study.json"), manifest)
    if with_results:
        atomic.write_json(os.path.join(folder, "results.json"), dict(manifest, cells=records))
    else:
        for record in records:
            atomic.write_json(os.path.join(folder, "cells", record["key"] + ".json"), record)
    os.makedirs(os.path.join(folder, "features"), exist_ok=True)
    for record in records:
        if record["seed"] == 0:
            labels = np.repeat(np.arange(4), 10)
            features = rng.normal(size=(40, 6)) + labels[:, None]
            np.savez(os.path.join(folder, "features", record["key"] + ".npz"), features=features, labels=labels)


def test_mean_std_matches_float64_numpy(rng):
    values = rng.normal(size=7)
    mean, std, n = mean_std(list(values) + [None, float("nan")])
    assert n == 7
    assert mean == pytest.approx(np.mean(values.astype(np.float64)), rel=1e-12)
    assert std == pytest.approx(np.std(values.astype(np.float64), ddof=1), rel=1e-12)
    assert format_mean_std([0.9, 0.92], scale=100) == "91.00 ± 1.41"
    assert format_mean_std([0.5]) == "0.50"
    assert format_mean_std([None]) == "–"


def test_pair_table_groups_by_teacher_augmentation_and_recipe(rng):
    records = synthetic_records(rng)
    header, rows = pair_table(records, "big", "small", "test_accuracy_best", CONFIG)
    assert header == ["teacher augmentation", "teacher big", "small · kd", "small · kd_T1"]
    assert [row[0] for row in rows] == AUGMENTATIONS
    for row, augmentation in zip(rows, AUGMENTATIONS):
        teacher = [r["test_accuracy_best"] for r in records
                   if r["role"] == "teacher" and r["teacher_augmentation"] == augmentation]
        assert row[1] == f"{100 * np.mean(teacher):.2f} ± {100 * np.std(teacher, ddof=1):.2f}"
        for column, recipe in enumerate(RECIPES, 2):
            values = [r["test_accuracy_best"] for r in records if r["role"] == "student"
                      and r["teacher_augmentation"] == augmentation and r["recipe"] == recipe]
            assert len(values) == len(SEEDS)
            assert row[column] == f"{100 * np.mean(values):.2f} ± {100 * np.std(values, ddof=1):.2f}"


def test_pca_projection_equals_numpy_svd(rng):
    features = rng.normal(size=(50, 5)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1])
    points = project_2d(features, "pca")
    centered = features - features.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    expected = centered @ vt[:2].T
    for k in range(2):  # each component is defined up to its sign
        sign = np.sign(points[:, k] @ expected[:, k])
        np.testing.assert_allclose(sign * points[:, k], expected[:, k], rtol=1e-6, atol=1e-8)
    tsne = project_2d(features[:20], "tsne")
    assert tsne.shape == (20, 2) and np.all(np.isfinite(tsne))
    with pytest.raises(ValueError, match="Unknown projection 'umap'"):
        project_2d(features, "umap")


@pytest.mark.parametrize("with_results", [True, False])
def test_report_on_a_finished_or_partial_run(tmp_path, rng, with_results):
    records = synthetic_records(rng)
    run_dir = str(tmp_path / "run")
    write_run(run_dir, records, rng, with_results=with_results)
    printed = []
    result = write_report(run_dir, print_fn=printed.append)
    text = open(result["report"]).read()
    assert "## big → small" in text and "### Test accuracy (%) at the best-validation epoch" in text
    assert "last epoch = 6 (teachers); 4 (students)" in text
    header, rows = pair_table(records, "big", "small", "test_accuracy_last", CONFIG)
    for row in rows:
        assert "| " + " | ".join(row) + " |" in text
    names = sorted(os.path.basename(p) for p in result["plots"])
    assert names == ["accuracy.png", "class_discrimination.png", "class_discrimination_over_epochs.png",
                     "curves.png", "links.png", "projection_student_small_from_big.png",
                     "projection_student_small_from_big_kd_T1.png", "projection_teacher_big.png",
                     "temperature_heatmap.png"]
    for path in result["plots"]:
        with open(path, "rb") as f:
            assert f.read(8) == PNG
    assert any("teacher augmentation" in line for line in printed)
    assert not [n for n in os.listdir(os.path.join(run_dir, "plots")) if "partial" in n]


def test_report_refuses_what_is_not_a_run(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="No runs folder"):
        load_results(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a runs folder"):
        load_results(tmp_path / "empty")
    run_dir = tmp_path / "old"
    write_run(str(run_dir), synthetic_records(rng), rng)
    results = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").write_text(json.dumps(dict(results, format=0)))
    with pytest.raises(ValueError, match="format 0"):
        write_report(str(run_dir))
    write_run(str(tmp_path / "none"), [], rng)
    with pytest.raises(ValueError, match="no finished cell"):
        write_report(str(tmp_path / "none"))
