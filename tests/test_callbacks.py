"""LatentMeasures: the measures of the held-out set land in History and CSVLogger."""

import csv
import math

import keras
import numpy as np
import pytest

import keras_mixkd
from keras_mixkd import metrics
from keras_mixkd.callbacks import ClassDiscrimination
from keras_mixkd.callbacks import LatentMeasures


def tiny_model(name, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 1))
    hidden = keras.layers.Flatten()(inputs)
    features = keras.layers.Dense(6, activation="relu", name="features")(hidden)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(features), name=name)


@pytest.fixture
def data(rng):
    labels = rng.integers(0, 3, 48)
    images = (rng.normal(size=(48, 4, 4, 1)) + labels[:, None, None, None]).astype(np.float32)
    return images, labels


def measured_directly(model, images, labels):
    both = keras.Model(model.inputs, [model.get_layer("features").output, model.outputs[0]])
    features, logits = both.predict(images, verbose=0)
    return {
        "class_discrimination": metrics.class_discrimination(features, labels),
        "accuracy": metrics.accuracy(logits, labels),
        "expected_calibration_error": metrics.expected_calibration_error(logits, labels, from_logits=True),
        "logit_std": metrics.logit_std(logits),
    }


def test_student_and_teacher_measures_appear_in_history_and_csv(data, tmp_path):
    images, labels = data
    teacher, student = tiny_model("teacher", 1), tiny_model("student", 2)
    distiller = keras_mixkd.Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    names = ("class_discrimination", "accuracy", "expected_calibration_error", "logit_std")
    callback = LatentMeasures(images[:24], labels[:24], measures=names)
    csv_path = tmp_path / "log.csv"
    history = distiller.fit(
        images,
        labels,
        epochs=2,
        batch_size=16,
        verbose=0,
        callbacks=[callback, keras.callbacks.CSVLogger(str(csv_path))],
    )
    student_now = measured_directly(student, images[:24], labels[:24])
    teacher_now = measured_directly(teacher, images[:24], labels[:24])
    for name in names:
        values = history.history["heldout_" + name]
        assert len(values) == 2 and all(math.isfinite(v) for v in values)
        # The last epoch's entry is the student as trained; the teacher is constant.
        assert values[-1] == pytest.approx(student_now[name], rel=1e-5, abs=1e-6)
        teacher_values = history.history["heldout_teacher_" + name]
        assert teacher_values == [callback.teacher_values[name]] * 2
        assert teacher_values[0] == pytest.approx(teacher_now[name], rel=1e-5, abs=1e-6)
    assert history.history["heldout_class_discrimination"][0] != history.history["heldout_class_discrimination"][1]
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 2
    assert float(rows[1]["heldout_class_discrimination"]) == pytest.approx(
        history.history["heldout_class_discrimination"][1], rel=1e-6
    )
    assert callback.measured["epoch"] == [0, 1]


def test_plain_model_every_second_epoch(data):
    images, labels = data
    model = tiny_model("plain", 3)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callback = ClassDiscrimination(images[:24], np.eye(3)[labels[:24]], every=2, prefix="")
    with pytest.raises(ValueError, match=r"overwrite the log entries \['accuracy'\]"):
        model.fit(images, labels, epochs=2, verbose=0, callbacks=[callback])
    callback = LatentMeasures(images[:24], labels[:24], every=2, measures=("class_discrimination", "nc1"))
    history = model.fit(images, labels, epochs=2, batch_size=16, verbose=0, callbacks=[callback])
    values = history.history["heldout_class_discrimination"]
    assert math.isnan(values[0])  # not measured: NaN keeps the columns constant
    assert values[1] == pytest.approx(measured_directly(model, images[:24], labels[:24])["class_discrimination"], rel=1e-5)
    assert math.isfinite(history.history["heldout_nc1"][1])
    assert not any(key.startswith("heldout_teacher_") for key in history.history)
    assert callback.measured == {
        "epoch": [1],
        "class_discrimination": [values[1]],
        "nc1": [history.history["heldout_nc1"][1]],
    }


def test_bad_arguments(data):
    images, labels = data
    with pytest.raises(ValueError, match="Unknown measure"):
        LatentMeasures(images, labels, measures=("cd",))
    with pytest.raises(ValueError, match="every"):
        LatentMeasures(images, labels, every=0)
    with pytest.raises(ValueError, match="soft_labels"):
        LatentMeasures(images, labels, measures=("soft_label_kl",))
    with pytest.raises(ValueError, match="same length"):
        LatentMeasures(images, labels[:-1])
    with pytest.raises(ValueError, match="two classes"):
        LatentMeasures(images, np.zeros(48, dtype=int))
    with pytest.raises(ValueError, match="one-hot"):
        LatentMeasures(images, np.full((48, 3), 1 / 3))
    with pytest.raises(TypeError, match="teacher"):
        LatentMeasures(images, labels, teacher="resnet56")
    with pytest.raises(TypeError, match="array or tensor of held-out inputs"):
        LatentMeasures(list(images), labels)


def two_hidden_model(name, seed):
    """No "features" layer; two hidden Dense layers auto-named differently in each model."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 1))
    first = keras.layers.Dense(6, activation="relu")(keras.layers.Flatten()(inputs))
    second = keras.layers.Dense(5, activation="relu")(first)
    return keras.Model(inputs, keras.layers.Dense(3)(second), name=name)


def layer_measure(model, layer, images, labels):
    features = keras.Model(model.inputs, model.get_layer(layer).output).predict(images, verbose=0)
    return metrics.class_discrimination(features, labels)


def test_teacher_and_student_feature_layers_are_named_apart(data):
    images, labels = data
    teacher, student = two_hidden_model("teacher", 1), two_hidden_model("student", 2)
    t_layer, s_layer = teacher.layers[2].name, student.layers[2].name  # the first hidden Dense of each
    assert t_layer != s_layer  # dense_3 vs dense_6: Keras names layers by creation order
    distiller = keras_mixkd.Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))  # frozen: the measures are the models'
    callback = LatentMeasures(images[:24], labels[:24], measures=("class_discrimination",),
                              teacher_layer_name=t_layer, student_layer_name=s_layer)
    history = distiller.fit(images, labels, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    assert history.history["heldout_teacher_class_discrimination"][0] == pytest.approx(
        layer_measure(teacher, t_layer, images[:24], labels[:24]), rel=1e-5)
    assert history.history["heldout_class_discrimination"][0] == pytest.approx(
        layer_measure(student, s_layer, images[:24], labels[:24]), rel=1e-5)
    # One shared name is the default of both: the teacher has no such layer, refused before any epoch.
    shared = LatentMeasures(images[:24], labels[:24], measures=("class_discrimination",), layer_name=s_layer)
    with pytest.raises(ValueError, match=rf"Model 'teacher' has no layer named '{s_layer}' \(given as "
                                         r"LatentMeasures\(layer_name=...\)\)"):
        distiller.fit(images, labels, epochs=1, batch_size=16, verbose=0, callbacks=[shared])
    with pytest.raises(TypeError, match="student_layer_name"):
        LatentMeasures(images, labels, student_layer_name=3)
    with pytest.raises(ValueError, match=r"given as LatentMeasures\(teacher_layer_name=...\)"):
        LatentMeasures(images, labels, teacher=teacher, teacher_layer_name="nope")


class SubclassedStudent(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed_student")
        self.hidden = keras.layers.Dense(6, activation="relu")
        self.logits = keras.layers.Dense(3)

    def call(self, inputs, training=False):
        return self.logits(self.hidden(keras.ops.reshape(inputs, (-1, 16))))


def test_a_subclassed_student_is_refused_before_the_first_epoch(data):
    images, labels = data
    student = SubclassedStudent()
    student(images[:2])
    before = [w.copy() for w in student.get_weights()]
    distiller = keras_mixkd.Distiller(tiny_model("teacher", 1), student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    callback = LatentMeasures(images[:24], labels[:24], measures=("class_discrimination", "accuracy"))
    with pytest.raises(TypeError, match=r"LatentMeasures measures \['class_discrimination'\] on the student's "
                                        r"penultimate features, which the subclassed student 'subclassed_student' "
                                        r".*measures=\['accuracy'\]"):
        distiller.fit(images, labels, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    for old, new in zip(before, student.get_weights()):
        np.testing.assert_array_equal(old, new)  # not one step trained
    # Output measures need no layer graph.
    outputs_only = LatentMeasures(images[:24], labels[:24], measures=("accuracy",))
    history = distiller.fit(images, labels, epochs=1, batch_size=16, verbose=0, callbacks=[outputs_only])
    assert math.isfinite(history.history["heldout_accuracy"][0])
