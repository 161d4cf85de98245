import keras
import numpy as np
import pytest

from keras_mixkd import Distiller
from tests import numpy_reference as ref

NUM_CLASSES = 5
INPUT_SHAPE = (6, 6, 1)


def linear_model(seed, num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE, name=None):
    """Flatten + Dense: a model whose logits NumPy can compute exactly."""
    inputs = keras.Input(input_shape)
    features = keras.layers.Flatten(name="features")(inputs)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    model = keras.Model(inputs, logits, name=name)
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
    )
    return model


def conv_bn_model(seed, num_classes=NUM_CLASSES):
    """A model with batch norm and dropout, whose state fit could wrongly change."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))


def numpy_logits(model, images):
    kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    return images.reshape(len(images), -1).astype(np.float64) @ kernel + bias


@pytest.fixture
def batch(rng):
    images = rng.normal(size=(24, *INPUT_SHAPE)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=24)
    return images, labels


def expected_losses(teacher, student, images, labels, loss, temperature, weight, teacher_images=None):
    t = numpy_logits(teacher, images if teacher_images is None else teacher_images)
    s = numpy_logits(student, images)
    if loss == "kd":
        distillation = ref.kd_per_sample(t, s, temperature)
        supervised = ref.cross_entropy_per_sample(labels, s)
    else:
        distillation = ref.standardized_per_sample(t, s)
        supervised = ref.cross_entropy_per_sample(labels, ref.standardize(s))
    total = weight * supervised + (1 - weight) * distillation
    return {
        "loss": total.mean(),
        "supervised_loss": supervised.mean(),
        "distillation_loss": distillation.mean(),
        "teacher_agreement": np.mean(t.argmax(1) == s.argmax(1)),
        "accuracy": np.mean(
            s.argmax(1)
            == (labels.argmax(1) if labels.shape[-1] == NUM_CLASSES else labels.reshape(-1))
        ),
    }


def assert_logs_match(logs, expected):
    for key, value in expected.items():
        assert logs[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize(
    "loss,temperature,weight", [("kd", 4.0, 0.1), ("kd", 20.0, 0.5), ("kd", 1.0, 0.0), ("standardized", 4.0, 0.1)]
)
@pytest.mark.parametrize("label_form", ["hard", "hard_column", "soft"])
def test_evaluate_losses_match_numpy(batch, rng, loss, temperature, weight, label_form):
    images, labels = batch
    if label_form == "hard_column":
        labels = labels.reshape(-1, 1)
    elif label_form == "soft":
        labels = rng.dirichlet(np.ones(NUM_CLASSES), size=len(images)).astype("float32")
    teacher, student = linear_model(1), linear_model(2)
    distiller = Distiller(teacher, student, loss=loss, temperature=temperature, student_loss_weight=weight)
    distiller.compile(optimizer="sgd")
    logs = distiller.evaluate(images, labels, batch_size=len(images), verbose=0, return_dict=True)
    assert_logs_match(logs, expected_losses(teacher, student, images, labels, loss, temperature, weight))


def test_teacher_sees_clean_images_when_given(batch, rng):
    images, labels = batch
    clean = rng.normal(size=images.shape).astype("float32")
    teacher, student = linear_model(1), linear_model(2)
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer="sgd")
    logs = distiller.evaluate(
        {"images": images, "teacher_images": clean}, labels, batch_size=len(images), verbose=0, return_dict=True
    )
    expected = expected_losses(teacher, student, images, labels, "kd", 4.0, 0.1, teacher_images=clean)
    assert_logs_match(logs, expected)


def test_sample_weights_weight_the_total(batch, rng):
    images, labels = batch
    weights = rng.uniform(0.1, 2.0, size=len(images)).astype("float32")
    teacher, student = linear_model(1), linear_model(2)
    distiller = Distiller(teacher, student, temperature=2.0, student_loss_weight=0.3)
    distiller.compile(optimizer="sgd")
    logs = distiller.evaluate(
        images, labels, sample_weight=weights, batch_size=len(images), verbose=0, return_dict=True
    )
    t, s = numpy_logits(teacher, images), numpy_logits(student, images)
    per_sample = 0.3 * ref.cross_entropy_per_sample(labels, s) + 0.7 * ref.kd_per_sample(t, s, 2.0)
    assert logs["loss"] == pytest.approx(np.sum(per_sample * weights) / np.sum(weights), rel=1e-5)


def test_one_sgd_step_follows_the_numpy_gradient(batch):
    """The student moves by exactly -lr * dL/dW; the gradient reaches no teacher weight."""
    images, labels = batch
    teacher, student = linear_model(1), linear_model(2)
    weight, temperature, lr = 0.25, 3.0, 0.1
    distiller = Distiller(teacher, student, temperature=temperature, student_loss_weight=weight)
    distiller.compile(optimizer=keras.optimizers.SGD(lr))
    kernel, bias = (w.astype(np.float64) for w in student.get_weights())
    distiller.fit(images, labels, batch_size=len(images), epochs=1, shuffle=False, verbose=0)

    # d/ds of w*CE + (1-w)*T²*KL(p_t^T || p_s^T) is w*(softmax(s) - y) + (1-w)*T*(p_s^T - p_t^T).
    x = images.reshape(len(images), -1).astype(np.float64)
    s, t = x @ kernel + bias, numpy_logits(teacher, images)
    y = np.eye(NUM_CLASSES)[labels]
    grad_logits = weight * (ref.softmax(s) - y) + (1 - weight) * temperature * (
        ref.softmax(s / temperature) - ref.softmax(t / temperature)
    )
    grad_logits /= len(images)
    new_kernel, new_bias = student.get_weights()
    np.testing.assert_allclose(new_kernel, kernel - lr * x.T @ grad_logits, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new_bias, bias - lr * grad_logits.sum(0), rtol=1e-4, atol=1e-6)


def test_fit_leaves_the_teacher_bit_identical_and_trains_the_student(batch):
    images, labels = batch
    teacher, student = conv_bn_model(1), conv_bn_model(2)
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    soft = np.eye(NUM_CLASSES, dtype="float32")[labels] * 0.9 + 0.02
    distiller.fit(images, labels, batch_size=8, epochs=2, verbose=0)
    distiller.fit(images, soft, batch_size=8, epochs=1, verbose=0)
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert not teacher.trainable
    assert any(not np.array_equal(b, a) for b, a in zip(student_before, student.get_weights()))


def test_history_logs_every_component(batch):
    images, labels = batch
    distiller = Distiller(conv_bn_model(1), conv_bn_model(2))
    distiller.compile(optimizer="sgd")
    history = distiller.fit(images, labels, validation_data=(images, labels), batch_size=8, epochs=2, verbose=0)
    for key in ("loss", "supervised_loss", "distillation_loss", "accuracy", "teacher_agreement"):
        assert len(history.history[key]) == 2
        assert len(history.history["val_" + key]) == 2


def test_predict_runs_the_student(batch):
    images, _ = batch
    teacher, student = linear_model(1), linear_model(2)
    distiller = Distiller(teacher, student)
    np.testing.assert_allclose(
        distiller.predict(images, verbose=0), numpy_logits(student, images), rtol=1e-4, atol=1e-5
    )
    assert isinstance(distiller.student, keras.Model)


def test_save_and_load_round_trip(batch, tmp_path):
    images, labels = batch
    distiller = Distiller(conv_bn_model(1), conv_bn_model(2), loss="standardized", student_loss_weight=0.4)
    distiller.compile(optimizer="sgd")
    distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Distiller)
    assert (loaded.distillation_loss_name, loaded.student_loss_weight) == ("standardized", 0.4)
    assert not loaded.teacher.trainable
    np.testing.assert_allclose(loaded.predict(images, verbose=0), distiller.predict(images, verbose=0), atol=1e-6)
    np.testing.assert_allclose(
        loaded.teacher.predict(images, verbose=0), distiller.teacher.predict(images, verbose=0), atol=1e-6
    )
    # The reloaded distiller is compiled and trains on.
    loaded.fit(images, labels, batch_size=8, epochs=1, verbose=0)


# ------------------------------------------------------------------ bad input


def test_refuses_models_that_are_not_keras_models():
    with pytest.raises(TypeError, match="`teacher` must be a keras.Model; got str"):
        Distiller("resnet56", linear_model(2))
    with pytest.raises(TypeError, match="`student` must be a keras.Model"):
        Distiller(linear_model(1), object())


def test_refuses_different_class_counts():
    with pytest.raises(ValueError, match="teacher outputs 5 logits, the student 7"):
        Distiller(linear_model(1), linear_model(2, num_classes=7))


def test_refuses_different_input_shapes():
    with pytest.raises(ValueError, match=r"teacher takes \(6, 6, 1\), the student \(8, 8, 1\)"):
        Distiller(linear_model(1), linear_model(2, input_shape=(8, 8, 1)))


@pytest.mark.parametrize("temperature", [0, -2.0])
def test_refuses_non_positive_temperature(temperature):
    with pytest.raises(ValueError, match=f"temperature={temperature}"):
        Distiller(linear_model(1), linear_model(2), temperature=temperature)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_refuses_weight_outside_unit_interval(weight):
    with pytest.raises(ValueError, match=r"in \[0, 1\]; got student_loss_weight="):
        Distiller(linear_model(1), linear_model(2), student_loss_weight=weight)


def test_refuses_unknown_loss_and_lists_known_ones():
    with pytest.raises(ValueError, match=r"Unknown distillation loss 'hinton'.*\['kd', 'standardized', 'lskd', 'dkd'\]"):
        Distiller(linear_model(1), linear_model(2), loss="hinton")


def test_refuses_a_loss_in_compile():
    distiller = Distiller(linear_model(1), linear_model(2))
    with pytest.raises(ValueError, match="takes no `loss`"):
        distiller.compile(optimizer="sgd", loss="mse")


@pytest.mark.parametrize("shape", [(24, 3), (24, 5, 2)])
def test_refuses_labels_that_fit_neither_form_before_training(batch, shape):
    images, _ = batch
    teacher, student = linear_model(1), linear_model(2)
    student_before = [w.copy() for w in student.get_weights()]
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"fit neither integer class ids .* soft labels of shape \(batch, 5\)"):
        distiller.fit(images, np.zeros(shape, "float32"), batch_size=8, epochs=1, verbose=0)
    for before, after in zip(student_before, student.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_refuses_wrong_labels_in_a_dataset_and_keeps_the_weights(batch):
    import tensorflow as tf

    images, _ = batch
    teacher, student = linear_model(1), linear_model(2)
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer="sgd")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros((24, 3), "float32"))).batch(8)
    with pytest.raises(ValueError, match=r"Labels of shape \(None, 3\) fit neither"):
        distiller.fit(dataset, epochs=1, verbose=0)
    assert len(teacher.get_weights()) == 2


def test_a_failing_first_step_never_loses_the_weights(batch):
    """A generator hides its label shape: the error comes from the traced step."""
    images, _ = batch
    teacher, student = linear_model(1), linear_model(2)
    teacher_before = [w.copy() for w in teacher.get_weights()]
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer="sgd")

    def batches():
        while True:
            yield images[:8], np.zeros((8, 3), "float32")

    with pytest.raises(ValueError, match="fit neither"):
        distiller.fit(batches(), steps_per_epoch=2, epochs=1, verbose=0)
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)


def softmax_model(seed, as_layer=False):
    model = linear_model(seed)
    probabilities = (
        keras.layers.Softmax()(model.output)
        if as_layer
        else keras.layers.Activation("softmax")(model.output)
    )
    return keras.Model(model.input, probabilities)


class HiddenSoftmaxTeacher(keras.Model):
    """A subclassed teacher whose softmax no layer inspection can see."""

    def __init__(self):
        super().__init__()
        self.inner = linear_model(1)

    def call(self, inputs, training=False):
        return keras.ops.softmax(self.inner(inputs, training=training))


@pytest.mark.parametrize("as_layer", [False, True])
def test_refuses_a_teacher_ending_in_softmax(as_layer):
    with pytest.raises(ValueError, match="ends in a softmax.*teacher_outputs='probabilities'"):
        Distiller(softmax_model(1, as_layer), linear_model(2))


def test_refuses_a_student_ending_in_softmax():
    with pytest.raises(ValueError, match="student .* ends in a softmax"):
        Distiller(linear_model(1), softmax_model(2))


class HiddenSoftmaxStudent(keras.Model):
    """A subclassed student with a softmax in `call`: no layer shows it."""

    def __init__(self):
        super().__init__(name="hidden_softmax_student")
        self.inner = linear_model(2)

    def call(self, inputs, training=False):
        return keras.ops.softmax(self.inner(inputs, training=training))


def softmax_lambda_student(function=None):
    """A Sequential ending in a softmax `Lambda` (a Python lambda by default)."""
    inner = linear_model(2)
    return keras.Sequential([
        keras.Input(INPUT_SHAPE), inner,
        keras.layers.Lambda(function or (lambda logits: keras.ops.softmax(logits)))],
        name="softmax_lambda_student")


STUDENTS_OUTPUTTING_PROBABILITIES = {"subclassed": HiddenSoftmaxStudent, "sequential_lambda": softmax_lambda_student}


@pytest.mark.parametrize("kind", list(STUDENTS_OUTPUTTING_PROBABILITIES))
@pytest.mark.parametrize("as_dataset", [False, True])
def test_refuses_a_student_that_outputs_probabilities_before_training(batch, kind, as_dataset):
    import tensorflow as tf

    images, labels = batch
    student = STUDENTS_OUTPUTTING_PROBABILITIES[kind]()
    distiller = Distiller(linear_model(1), student)  # no layer inspection sees this softmax
    distiller.compile(optimizer="sgd")
    before = [np.array(w) for w in student.inner.get_weights()] if kind == "subclassed" else None
    data = (tf.data.Dataset.from_tensor_slices((images, labels)).batch(8),) if as_dataset else (images, labels)
    with pytest.raises(ValueError, match=r"The student '\w+' \(\w+\) outputs probabilities.*remove the "
                                         r"student's final softmax"):
        distiller.fit(*data, **({} if as_dataset else {"batch_size": 8}), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="outputs probabilities"):  # refused again, not trained the second time
        distiller.fit(*data, **({} if as_dataset else {"batch_size": 8}), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="outputs probabilities"):
        Distiller(linear_model(1), STUDENTS_OUTPUTTING_PROBABILITIES[kind]()).evaluate(
            images, labels, batch_size=8, verbose=0)
    if before is not None:
        for old, new in zip(before, student.inner.get_weights()):
            np.testing.assert_array_equal(old, new)


def test_refuses_a_student_ending_in_a_softmax_lambda_at_construction():
    with pytest.raises(ValueError, match="student 'softmax_lambda_student' ends in a softmax"):
        Distiller(linear_model(1), softmax_lambda_student(keras.activations.softmax))


def test_the_student_check_reads_no_batch_of_a_dataset(batch):
    import tensorflow as tf

    images, labels = batch
    pulled = []
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    # A probability teacher needs no first-batch check: neither does the student.
    distiller = Distiller(softmax_model(1), linear_model(2), teacher_outputs="probabilities")
    original = dataset.take

    class Watched:
        element_spec = dataset.element_spec

        def take(self, count):
            pulled.append(count)
            return original(count)

    distiller.check_inputs(Watched(), None)
    assert distiller.student_outputs_checked and pulled == []


def test_refuses_unknown_teacher_outputs():
    with pytest.raises(ValueError, match=r"teacher_outputs='probs'.*\['logits', 'probabilities'\]"):
        Distiller(linear_model(1), linear_model(2), teacher_outputs="probs")


def test_detects_probabilities_from_the_outputs_of_a_hidden_softmax(batch):
    images, labels = batch
    distiller = Distiller(HiddenSoftmaxTeacher(), linear_model(2))
    distiller.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="look like probabilities"):
        distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    # A caught error and a second fit: the teacher is refused again, not trained on.
    with pytest.raises(ValueError, match="look like probabilities"):
        distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)


def test_probability_teacher_distils_like_its_logits(batch):
    images, labels = batch
    teacher_logits, student = linear_model(1), linear_model(2)
    expected = expected_losses(teacher_logits, student, images, labels, "kd", 4.0, 0.1)
    distiller = Distiller(softmax_model(1), student, teacher_outputs="probabilities")
    distiller.compile(optimizer="sgd")
    logs = distiller.evaluate(images, labels, batch_size=len(images), verbose=0, return_dict=True)
    assert_logs_match(logs, expected)
