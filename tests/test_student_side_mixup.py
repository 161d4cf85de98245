"""`student_side_mixup`: the student's target is the mix of the teacher's softened outputs on the clean images."""

import numpy as np
import pytest

from keras_mixkd.augment import StudentSideMixup
from keras_mixkd.augment import get_augmentation
from keras_mixkd.data import make_dataset
from keras_mixkd.losses import knowledge_distillation
from tests import numpy_reference as ref


def one_hot_images(batch_size, side=4):
    """Image i is 1 at pixel i, 0 elsewhere: a mixed image tells its lam and its partner."""
    images = np.zeros((batch_size, side, side, 1), np.float32)
    images.reshape(batch_size, -1)[np.arange(batch_size), np.arange(batch_size)] = 1.0
    return images


def recover_draws(mixed):
    """(lam, partner) of every row of images mixed from `one_hot_images`."""
    flat = np.asarray(mixed, np.float64).reshape(len(mixed), -1)
    rows = np.arange(len(mixed))
    lam = flat[rows, rows]
    others = flat.copy()
    others[rows, rows] = -1.0
    partner = np.where(others.max(axis=1) > 0, others.argmax(axis=1), rows)
    return lam, partner


def reference_target(logits, lam, partner, temperature):
    """lam softmax(z_i / T) + (1 - lam) softmax(z_j / T), float64."""
    p = ref.softmax(np.asarray(logits, np.float64) / temperature)
    return lam[:, None] * p + (1.0 - lam[:, None]) * p[partner]


@pytest.mark.parametrize("temperature, offset", [(4.0, 0.0), (1.0, 0.0), (4.0, 1.0e3)])
def test_targets_are_the_mix_of_the_teachers_softened_probabilities(rng, temperature, offset):
    batch_size, num_classes = 12, 7
    images = one_hot_images(batch_size)
    labels = rng.integers(0, num_classes, batch_size).astype(np.int32)
    # Far from the origin (offset) the logits of one row still differ by O(T).
    logits = (offset + 3.0 * rng.normal(size=(batch_size, num_classes))).astype(np.float32)
    aug = get_augmentation("student_side_mixup", temperature=temperature, num_classes=num_classes)
    out = aug({"images": images, "labels": labels, "teacher_logits": logits})
    lam, partner = recover_draws(out["images"])
    assert np.all((lam >= 0) & (lam <= 1)) and not np.all(partner == np.arange(batch_size))
    expected = reference_target(logits, lam, partner, temperature)
    got = ref.softmax(np.asarray(out["teacher_logits"], np.float64) / temperature)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-6)
    onehot = np.eye(num_classes)[labels]
    np.testing.assert_allclose(out["labels"], lam[:, None] * onehot + (1 - lam[:, None]) * onehot[partner],
                               atol=1e-6)
    # Hinton KD at T on these logits is T^2 KL(mixed target || student), the float64 formula.
    student = rng.normal(size=(batch_size, num_classes)).astype(np.float32)
    q = ref.softmax(student.astype(np.float64) / temperature)
    kl = np.sum(expected * (np.log(np.maximum(expected, 1e-300)) - np.log(q)), axis=1)
    loss = float(np.asarray(knowledge_distillation(out["teacher_logits"], student, temperature)))
    np.testing.assert_allclose(loss, temperature ** 2 * kl.mean(), rtol=1e-4)


def test_confident_teacher_gives_finite_logits_and_batch_mode_shares_lam(rng):
    batch_size = 8
    logits = np.zeros((batch_size, 5), np.float32)
    logits[:, 0] = 200.0  # probabilities of the other classes underflow float32 at T = 1
    aug = StudentSideMixup(alpha=0.5, temperature=1.0, mode="batch", num_classes=5)
    out = aug({"images": one_hot_images(batch_size), "labels": np.zeros(batch_size, np.int32),
               "teacher_logits": logits})
    assert np.all(np.isfinite(out["teacher_logits"]))
    lam, partner = recover_draws(out["images"])
    moved = partner != np.arange(batch_size)
    np.testing.assert_allclose(lam[moved], lam[moved][0], atol=1e-6)


def test_pipeline_mixes_the_cached_logits_of_each_batch(rng):
    batch_size, num_classes = 16, 4
    images = one_hot_images(batch_size)
    labels = rng.integers(0, num_classes, batch_size)
    logits = rng.normal(size=(batch_size, num_classes)).astype(np.float32)
    dataset = make_dataset(images, labels, batch_size=batch_size, shuffle=True, seed=1, num_classes=num_classes,
                           augmentation=get_augmentation("student_side_mixup", num_classes=num_classes),
                           teacher_logits=logits, teacher_sees="clean")
    x, y = next(iter(dataset))
    # Rows are shuffled: the pixels of a mixed row name its two clean images and their weights.
    mixed = np.asarray(x["images"], np.float64).reshape(batch_size, -1)
    got = ref.softmax(np.asarray(x["teacher_logits"], np.float64) / 4.0)
    p = ref.softmax(logits.astype(np.float64) / 4.0)
    onehot = np.eye(num_classes)[labels]
    for row in range(batch_size):
        pixels = np.flatnonzero(mixed[row] > 0)
        weights = mixed[row, pixels]
        np.testing.assert_allclose(got[row], weights @ p[pixels], rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(np.asarray(y)[row], weights @ onehot[pixels], atol=1e-6)


def test_student_side_mixup_refuses_a_batch_without_teacher_logits_and_bad_options(rng):
    aug = get_augmentation("student_side_mixup", num_classes=3)
    batch = {"images": one_hot_images(4), "labels": np.zeros(4, np.int32)}
    with pytest.raises(ValueError, match="needs them with each batch .*teacher_logits"):
        aug(batch)
    with pytest.raises(ValueError, match="teacher_logits"):  # when the pipeline is built
        make_dataset(one_hot_images(4), np.zeros(4, int), batch_size=4, augmentation=aug, num_classes=3)
    for option, value in (("alpha", 0.0), ("temperature", -1.0), ("alpha", True)):
        with pytest.raises(ValueError, match=f"student_side_mixup: {option} must be a number > 0"):
            StudentSideMixup(**{option: value})
    with pytest.raises(ValueError, match="mode must be one of"):
        StudentSideMixup(mode="pixel")


@pytest.mark.backend_independent
@pytest.mark.parametrize("change, match", [
    ({"distillation": [{"name": "ssm", "augmentation": "student_side_mixup"}]}, 'teacher_sees = "clean"'),
    ({"distillation": [{"name": "ssm", "augmentation": "student_side_mixup", "teacher_sees": "clean",
                        "loss": "standardized"}]}, 'needs loss = "kd"'),
    ({"distillation": [{"name": "ssm", "augmentation": "student_side_mixup", "teacher_sees": "clean",
                        "temperature": 4.0,
                        "augmentation_options": {"student_side_mixup": {"temperature": 2.0}}}]},
     "temperature 2.0 differs from the recipe's temperature 4.0"),
    ({"teacher": {"augmentations": ["student_side_mixup"]}}, "augmentation of a \\[\\[distillation\\]\\] recipe"),
])
def test_study_spec_refuses_student_side_mixup_where_it_cannot_work(change, match):
    from keras_mixkd.study.config import RecipeError
    from keras_mixkd.study.config import complete_config

    data = {"pairs": [{"teacher": "digits_cnn", "student": "digits_mlp"}],
            "distillation": [{"name": "kd"}], **change}
    with pytest.raises(RecipeError, match=match):
        complete_config(data)


@pytest.mark.backend_independent
def test_study_builds_it_at_the_recipes_temperature():
    from keras_mixkd.study.config import complete_config
    from keras_mixkd.study.model_building import build_distillation_augmentation

    spec = complete_config({"pairs": [{"teacher": "digits_cnn", "student": "digits_mlp"}],
                            "distillation": [{"name": "ssm", "augmentation": "student_side_mixup",
                                              "teacher_sees": "clean", "temperature": 2.5}]})
    names, aug = build_distillation_augmentation([], {}, spec["distillation"][0], 10)
    assert names == ["student_side_mixup"] and aug.temperature == 2.5 and aug.num_classes == 10
