"""`metrics.teacher_stddev` (Wang et al., NeurIPS 2022, "T. stddev") against a float64 NumPy reference."""

import numpy as np
import pytest

from keras_mixkd import metrics


def ref_teacher_stddev(logits, group_size):
    """Straight from the definition, in float64: std (ddof=1) over groups of the mean probability, mean over classes."""
    logits = np.asarray(logits, np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    groups = len(p) // group_size
    means = np.stack([p[g * group_size:(g + 1) * group_size].mean(axis=0) for g in range(groups)])
    return float(np.std(means, axis=0, ddof=1).mean())


@pytest.mark.parametrize("offset", [0.0, 1.0e4])
@pytest.mark.parametrize("group_size", [7, 32])
def test_teacher_stddev_matches_float64_definition(rng, offset, group_size):
    # 203 rows: the last, incomplete group is left out. Far from the origin the logits differ by O(1).
    logits = (offset + 2.0 * rng.normal(size=(203, 10))).astype(np.float32)
    value = metrics.teacher_stddev(logits, group_size=group_size, from_logits=True)
    assert isinstance(value, float)
    np.testing.assert_allclose(value, ref_teacher_stddev(logits, group_size), rtol=1e-4)


def test_teacher_stddev_of_probabilities_and_groups_of_one(rng):
    logits = rng.normal(size=(96, 5)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    reference = ref_teacher_stddev(logits, 16)
    np.testing.assert_allclose(metrics.teacher_stddev(probabilities, group_size=16), reference, rtol=1e-4)
    # Groups of one: the std of the rows themselves; given the groups' means, the same number.
    means = probabilities.reshape(6, 16, 5).mean(axis=1)
    np.testing.assert_allclose(metrics.teacher_stddev(means, group_size=1), reference, rtol=1e-4)


def test_teacher_stddev_small_spread_of_nearly_equal_groups(rng):
    # Groups whose means differ by ~1e-4 around 0.1: the std must not drown in float32 round-off of the means.
    base = rng.normal(size=(1, 10))
    logits = (base + 1e-3 * rng.normal(size=(4000, 10))).astype(np.float32)
    np.testing.assert_allclose(metrics.teacher_stddev(logits, group_size=400, from_logits=True),
                               ref_teacher_stddev(logits, 400), rtol=2e-2)


def test_teacher_stddev_identical_groups_give_zero():
    logits = np.tile(np.array([[1.0, 2.0, 3.0]], np.float32), (40, 1))
    assert metrics.teacher_stddev(logits, group_size=10, from_logits=True) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("group_size, match", [(0, "group_size"), (2.5, "group_size"), (True, "group_size"),
                                               (30, "at least 2 full groups")])
def test_teacher_stddev_rejects_bad_input(rng, group_size, match):
    logits = rng.normal(size=(40, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        metrics.teacher_stddev(logits, group_size=group_size, from_logits=True)


def test_teacher_stddev_rejects_logits_given_as_probabilities(rng):
    with pytest.raises(ValueError, match="from_logits=True"):
        metrics.teacher_stddev(rng.normal(size=(40, 4)), group_size=10)


# --------------------------------------------------------------------------
# In the study: the teacher on a distillation stream, the record, the links.


def _tiny_teacher(num_classes):
    import keras

    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(num_classes)(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("augmented", [False, True])
def test_measure_teacher_stddev_matches_float64_stream(splits, augmented):
    import keras

    from keras_mixkd.augment import get_augmentation
    from keras_mixkd.data import make_dataset
    from keras_mixkd.study.distillation_set import measure_teacher_stddev

    def augmentation():
        keras.utils.set_random_seed(5)  # the same draws for the measure and for the reference
        return get_augmentation("mixup", mode="batch", num_classes=splits.num_classes) if augmented else None

    teacher = _tiny_teacher(splits.num_classes)
    batch_size, passes, per_group = 16, 3, 2
    value = measure_teacher_stddev(teacher, splits, augmentation(), batch_size=batch_size, seed=3, passes=passes,
                                   batches_per_group=per_group)
    # The same stream, by hand: every batch seen clean, then augmented (without augmentation: as loaded, twice).
    weights = [np.asarray(w, np.float64) for w in teacher.get_weights()]

    def teacher_logits(images):
        return np.asarray(images, np.float64).reshape(len(images), -1) @ weights[0] + weights[1]

    dataset = make_dataset(splits.x_train, splits.y_train, batch_size=batch_size, shuffle=True, seed=3,
                           normalization=None, augmentation=augmentation(), num_classes=splits.num_classes,
                           teacher_sees="clean", drop_remainder=True)
    groups, pending = [], []
    for _ in range(passes):
        for x, _labels in dataset:
            pending.append((teacher_logits(x["teacher_images"]), teacher_logits(x["images"])))
            if len(pending) == per_group:
                groups += [clean for clean, _ in pending] + [mixed for _, mixed in pending]
                pending = []
    np.testing.assert_allclose(value, ref_teacher_stddev(np.concatenate(groups), 2 * per_group * batch_size),
                               rtol=1e-3)
    # Too few batches for two groups: no value rather than a failed cell.
    assert measure_teacher_stddev(teacher, splits, None, batch_size=len(splits.y_train), seed=0, passes=1) is None


def test_tiny_study_logs_teacher_stddev_and_links_it(tiny_study):
    run_dir, records, _ = tiny_study
    students = [r for r in records if r["role"] == "student"]
    assert students and all(isinstance(r["teacher_stddev"], float) and r["teacher_stddev"] >= 0
                            for r in students)
    report = (run_dir / "report.md").read_text()
    links = report.split("## The studies' links")[1].split("\n## ")[0]
    assert "| teacher T. stddev on the distillation set (Wang et al. 2022) |" in links
    header = (run_dir / "results.csv").read_text().splitlines()[0].split(",")
    assert "teacher_stddev" in header


@pytest.mark.backend_independent
def test_links_read_teacher_stddev_from_the_student_record():
    from keras_mixkd.analysis import link_table
    from keras_mixkd.analysis.correlations import link_points

    records = []
    for i, augmentation in enumerate(["none", "mixup", "cutmix", "cutout"]):
        records.append({"role": "teacher", "teacher_model": "t", "teacher_augmentation": augmentation, "seed": 0,
                        "test_accuracy_last": 0.9})
        records.append({"role": "student", "teacher_model": "t", "student_model": "s", "recipe": "kd",
                        "teacher_augmentation": augmentation, "seed": 0, "teacher_stddev": 0.01 * (i + 1),
                        "test_accuracy_last": 0.5 + 0.1 * i * i})
    points = link_points(records, "teacher_stddev")
    assert [p[0] for p in points[("t", "s", "kd")]] == pytest.approx([0.01, 0.02, 0.03, 0.04])
    config = {"teacher": {"augmentations": ["none", "mixup", "cutmix", "cutout"]}, "seeds": [0],
              "pairs": [{"teacher": "t", "student": "s"}], "distillation": [{"name": "kd"}]}
    _, rows = link_table(records, config, measures=["teacher_stddev"])
    assert [row[3:] for row in rows] == [["4", f"{np.corrcoef([1, 2, 3, 4], [0, 1, 4, 9])[0, 1]:+.3f}", "+1.000"]]
