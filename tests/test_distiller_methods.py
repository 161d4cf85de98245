"""The Distiller with DKD, LS-KD, FitNets features, std_ddof and keras.distillation losses."""

import keras
import numpy as np
import pytest

from keras_mixkd import Distiller
from keras_mixkd import losses
from tests import numpy_reference as ref
from tests.test_distiller import NUM_CLASSES
from tests.test_distiller import linear_model
from tests.test_distiller import numpy_logits


@pytest.fixture
def data(rng):
    images = rng.normal(size=(16, 6, 6, 1)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=16)
    return images, labels


def _evaluate(distiller, images, labels):
    distiller.compile(optimizer="sgd")
    return distiller.evaluate(images, labels, batch_size=16, verbose=0, return_dict=True)


def test_dkd_in_the_distiller_matches_numpy_with_the_reference_weights(data):
    images, labels = data
    teacher, student = linear_model(1), linear_model(2)
    loss = losses.DecoupledDistillation(alpha=1.0, beta=8.0, temperature=4.0, warmup_epochs=20)
    distiller = Distiller(teacher, student, loss=loss, student_loss_weight=1.0, distillation_loss_weight=1.0)
    logs = _evaluate(distiller, images, labels)
    t, s = numpy_logits(teacher, images), numpy_logits(student, images)
    dkd = ref.mdistiller_dkd_loss(s, t, labels, 1.0, 8.0, 4.0)
    ce = ref.cross_entropy_per_sample(labels, s).mean()
    assert logs["distillation_loss"] == pytest.approx(dkd, rel=1e-5)  # no warm-up outside fit
    assert logs["loss"] == pytest.approx(ce + dkd, rel=1e-5)


def test_dkd_warmup_follows_the_epoch_inside_the_compiled_step(data):
    images, labels = data
    teacher, student = linear_model(1), linear_model(2)
    distiller = Distiller(teacher, student, loss=losses.DecoupledDistillation(warmup_epochs=4),
                          student_loss_weight=0.0, distillation_loss_weight=1.0)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))  # frozen weights: the factor alone changes
    history = distiller.fit(images, labels, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    t, s = numpy_logits(teacher, images), numpy_logits(student, images)
    dkd = ref.dkd_per_sample(t, s, labels, 1.0, 8.0, 4.0).mean()
    np.testing.assert_allclose(history["distillation_loss"], [dkd / 4, 2 * dkd / 4, 3 * dkd / 4], rtol=1e-5)


@pytest.mark.parametrize("ddof", [0, 1])
def test_std_ddof_of_the_distiller_reaches_the_standardised_losses(data, ddof):
    images, labels = data
    teacher, student = linear_model(1), linear_model(2)
    t, s = numpy_logits(teacher, images), numpy_logits(student, images)
    logs = _evaluate(Distiller(teacher, student, loss="standardized", std_ddof=ddof), images, labels)
    assert logs["distillation_loss"] == pytest.approx(ref.standardized_per_sample(t, s, ddof).mean(), rel=1e-5)
    assert logs["supervised_loss"] == pytest.approx(
        ref.cross_entropy_per_sample(labels, ref.standardize(s, ddof)).mean(), rel=1e-5)
    logs = _evaluate(Distiller(teacher, student, loss="lskd", temperature=2.0, std_ddof=ddof,
                               student_loss_weight=0.1, distillation_loss_weight=9.0), images, labels)
    lskd = ref.logit_standardized_kd_per_sample(t, s, 2.0, ddof).mean()
    ce = ref.cross_entropy_per_sample(labels, s).mean()  # LS-KD's CE is on the raw logits
    assert logs["loss"] == pytest.approx(0.1 * ce + 9.0 * lskd, rel=1e-5)


def test_keras_logits_distillation_gives_keras_own_value(data):
    images, labels = data
    teacher, student = linear_model(1), linear_model(2)
    keras_loss = keras.distillation.LogitsDistillation(temperature=3.0)
    with pytest.warns(UserWarning, match="known-wrong"):
        distiller = Distiller(teacher, student, loss=keras_loss, student_loss_weight=0.0)
    logs = _evaluate(distiller, images, labels)
    t, s = numpy_logits(teacher, images), numpy_logits(student, images)
    expected = float(keras.ops.convert_to_numpy(
        keras_loss.compute_loss(t.astype("float32"), s.astype("float32"))))
    assert logs["distillation_loss"] == pytest.approx(expected, rel=1e-5)
    # Keras's default KL reads the raw logits / T as probabilities (see
    # KerasDistillationLoss.problem): far from Hinton KD, and it is Keras's
    # number we keep, with a warning.


def test_keras_default_logits_distillation_warns_and_the_fix_is_hinton_kd(data, recwarn):
    images, labels = data
    teacher, student = linear_model(1), linear_model(2)
    with pytest.warns(UserWarning, match=r"loss='kl_divergence' \(its default\) gives a known-wrong .*"
                                         r"loss=keras.losses.KLDivergence\(\)"):
        Distiller(teacher, student, loss=keras.distillation.LogitsDistillation(temperature=4))
    with pytest.warns(UserWarning, match="loss='categorical_crossentropy'"):
        Distiller(teacher, student, loss=keras.distillation.LogitsDistillation(
            temperature=4, loss="categorical_crossentropy"))
    recwarn.clear()
    fixed = keras.distillation.LogitsDistillation(temperature=4, loss=keras.losses.KLDivergence())
    distiller = Distiller(teacher, student, loss=fixed, student_loss_weight=0.0)
    logs = _evaluate(distiller, images, labels)
    assert not [w for w in recwarn if "known-wrong" in str(w.message)]
    t, s = numpy_logits(teacher, images), numpy_logits(student, images)
    # Keras clips probabilities to [1e-7, 1]: nothing on these rows (checked), so KD to float32 round-off.
    assert ref.softmax(t / 4).min() > 1e-7 and ref.softmax(s / 4).min() > 1e-7
    assert logs["distillation_loss"] == pytest.approx(ref.kd_per_sample(t, s, 4.0).mean(), rel=1e-5)


def _feature_model(seed, width):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(width, activation="relu", name="features")(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, name="logits")(x))


def test_feature_projector_trains_and_never_ships_with_the_student(data, tmp_path):
    images, labels = data
    teacher, student = _feature_model(1, 12), _feature_model(2, 7)
    student_weights = len(student.weights)
    distiller = Distiller(teacher, student, loss="kd", feature_loss=losses.FeatureDistillation(),
                          feature_loss_weight=10.0)
    projector = distiller.feature_loss.projector
    assert tuple(projector.kernel.shape) == (7, 12)
    assert any(v is projector.kernel for v in distiller.trainable_variables)
    before = keras.ops.convert_to_numpy(projector.kernel).copy()
    # The logged feature loss is the MSE of the projected student features to the teacher's.
    features = keras.Model(teacher.inputs, teacher.get_layer("features").output)
    s_features = keras.Model(student.inputs, student.get_layer("features").output)
    t_f = keras.ops.convert_to_numpy(features(images)).astype(np.float64)
    kernel, bias = (keras.ops.convert_to_numpy(w).astype(np.float64) for w in projector.weights)
    s_f = keras.ops.convert_to_numpy(s_features(images)).astype(np.float64) @ kernel + bias
    logs = _evaluate(distiller, images, labels)
    assert logs["feature_loss"] == pytest.approx(np.mean((s_f - t_f) ** 2), rel=1e-5)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert not np.allclose(keras.ops.convert_to_numpy(projector.kernel), before)
    assert len(student.weights) == student_weights
    student.save(tmp_path / "student.keras")
    loaded = keras.saving.load_model(tmp_path / "student.keras")
    assert len(loaded.weights) == student_weights
    assert "projector" not in " ".join(w.path for w in loaded.weights)


@pytest.mark.filterwarnings("ignore:keras.distillation.LogitsDistillation")
@pytest.mark.parametrize("make", [
    lambda: "dkd",
    lambda: "lskd",
    lambda: losses.DecoupledDistillation(beta=2.0, warmup_epochs=5, standardize=True),
    lambda: keras.distillation.LogitsDistillation(temperature=2.0),
    lambda: "feature",
])
def test_every_loss_round_trips_through_a_keras_file(data, tmp_path, make):
    images, labels = data
    loss = make()
    kwargs = {}
    if loss == "feature":
        loss, kwargs = "kd", {"feature_loss": losses.FeatureDistillation(), "feature_loss_weight": 3.0}
    distiller = Distiller(_feature_model(1, 12), _feature_model(2, 7), loss=loss, std_ddof=0,
                          distillation_loss_weight=2.0, **kwargs)
    logs = _evaluate(distiller, images, labels)
    distiller.save(tmp_path / "distiller.keras")
    loaded = keras.saving.load_model(tmp_path / "distiller.keras")
    assert type(loaded.loss_object) is type(distiller.loss_object)
    def config(loss):
        return {k: v for k, v in loss.get_config().items() if k != "name"}

    assert config(loaded.loss_object) == config(distiller.loss_object)
    assert (loaded.std_ddof, loaded.distillation_loss_weight) == (0, 2.0)
    again = loaded.evaluate(images, labels, batch_size=16, verbose=0, return_dict=True)
    for key in ("loss", "distillation_loss", "supervised_loss"):
        assert again[key] == pytest.approx(logs[key], rel=1e-5), key


def test_bad_distiller_loss_arguments_are_refused_clearly():
    teacher, student = linear_model(1), linear_model(2)
    with pytest.raises(ValueError, match=r"distillation_loss_weight.*>= 0; got distillation_loss_weight=-1"):
        Distiller(teacher, student, distillation_loss_weight=-1.0)
    with pytest.raises(ValueError, match=r"std_ddof.*got 2"):
        Distiller(teacher, student, std_ddof=2)
    with pytest.raises(ValueError, match=r"`feature_loss` must read features.*KnowledgeDistillation"):
        Distiller(teacher, student, feature_loss=losses.KnowledgeDistillation())
    with pytest.raises(ValueError, match=r"layer 'penultimate', which 'student_model' does not have"):
        Distiller(_feature_model(1, 4), linear_model(2, name="student_model"),
                  feature_loss=losses.FeatureDistillation("features", "penultimate"))


def test_keras_feature_distillation_reads_the_named_layers(data):
    images, labels = data
    teacher, student = _feature_model(1, 6), _feature_model(2, 6)
    keras_loss = keras.distillation.FeatureDistillation(
        loss="mse", teacher_layer_name="features", student_layer_name="features")
    distiller = Distiller(teacher, student, loss="kd", feature_loss=keras_loss, feature_loss_weight=2.0)
    logs = _evaluate(distiller, images, labels)

    def features(model):
        extractor = keras.Model(model.inputs, model.get_layer("features").output)
        return keras.ops.convert_to_numpy(extractor(images)).astype(np.float64)

    assert logs["feature_loss"] == pytest.approx(np.mean((features(teacher) - features(student)) ** 2), rel=1e-5)
    assert logs["loss"] == pytest.approx(
        0.1 * logs["supervised_loss"] + 0.9 * logs["distillation_loss"] + 2.0 * logs["feature_loss"], rel=1e-5)
