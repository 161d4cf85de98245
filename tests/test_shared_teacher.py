"""A `Distiller` of several students: one teacher pass per batch, each student as if trained alone.

The reference is the un-optimised path: each recipe trained by its own
`Distiller`, from the same initial weights, on the same batches in the same
order, with its own optimizer of the same configuration.
"""

import keras
import numpy as np
import pytest

from keras_mixkd import Distiller
from keras_mixkd import SharedTeacherDistiller  # the deprecated alias, tested at the end
from keras_mixkd.augment import get_augmentation
from keras_mixkd.data import make_dataset
from keras_mixkd.losses import FeatureDistillation
from keras_mixkd.models import get_model
from keras_mixkd.optimizers import SGD

BATCH = 32
EXAMPLES = 96
EPOCHS = 2
# Grouped and separate runs do the same float32 operations on the same values.
# Measured after 2 epochs (3 recipes below): bit-identical on JAX and PyTorch,
# at most 3e-8 apart on TensorFlow (its graph optimiser fuses the summed step
# differently); the bound leaves room for other CPU kernels.
WEIGHT_TOLERANCE = 1e-6
RECIPES = {
    "kd_t4": ({"loss": "kd", "temperature": 4.0, "student_loss_weight": 0.1}, 11),
    "kd_t1": ({"loss": "kd", "temperature": 1.0, "student_loss_weight": 0.5}, 12),
    "standardized": ({"loss": "standardized", "student_loss_weight": 0.1}, 13),
}


def train_ds(splits):
    """Mixup with the teacher on the clean batch: soft labels and dict inputs, reshuffled each epoch."""
    keras.utils.set_random_seed(7)  # The augmentation's RNG inside tf.data.
    augmentation = get_augmentation("mixup", alpha=1.0, num_classes=splits.num_classes, seed=7)
    return make_dataset(splits.x_train[:EXAMPLES], splits.y_train[:EXAMPLES], batch_size=BATCH, seed=3,
                        normalization=splits.normalization, augmentation=augmentation,
                        num_classes=splits.num_classes, teacher_sees="clean")


def stream(dataset, epochs=EPOCHS):
    """Every batch of `epochs` passes, as NumPy arrays."""
    out = []
    for _ in range(epochs):
        for x, y in dataset:
            out.append([keras.ops.convert_to_numpy(v) for v in (x["images"], x["teacher_images"], y)])
    return out


def teacher_model(splits):
    keras.utils.set_random_seed(0)
    return get_model("digits_cnn", splits.num_classes, input_shape=splits.input_shape)


def student_model(splits, seed):
    keras.utils.set_random_seed(seed)
    return get_model("digits_cnn_small", splits.num_classes, input_shape=splits.input_shape)


def optimizer():
    return SGD(0.05, momentum=0.9, weight_decay=5e-4)


def weights(model):
    return np.concatenate([np.ravel(w) for w in model.get_weights()]).astype("float64")


def test_the_batches_repeat(splits):
    """The comparisons below need both runs fed the same batches in the same order."""
    first, second = stream(train_ds(splits)), stream(train_ds(splits))
    assert len(first) == EPOCHS * EXAMPLES // BATCH
    for a, b in zip(first, second):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    # Mixed, and reshuffled between the epochs: a stream worth comparing.
    assert not np.allclose(first[0][0], first[0][1])
    assert not np.allclose(first[0][1], first[EXAMPLES // BATCH][1])


def test_a_group_trains_each_student_as_its_own_distiller(splits):
    teacher = teacher_model(splits)
    teacher_before = weights(teacher)

    alone = {}
    for name, (options, seed) in RECIPES.items():
        student = student_model(splits, seed)
        distiller = Distiller(teacher, student, **options)
        distiller.compile(optimizer=optimizer())
        history = distiller.fit(train_ds(splits), epochs=EPOCHS, verbose=0)
        alone[name] = (weights(student), history.history)

    students = {name: (student_model(splits, seed), options) for name, (options, seed) in RECIPES.items()}
    initial = {name: weights(model) for name, (model, _) in students.items()}
    group = Distiller(teacher, students=students)
    group.compile(optimizer=optimizer())
    history = group.fit(train_ds(splits), epochs=EPOCHS, verbose=0).history

    np.testing.assert_array_equal(weights(teacher), teacher_before)
    for name, (alone_weights, alone_history) in alone.items():
        got = weights(group.students[name])
        # The students did train, away from their initial weights.
        assert np.max(np.abs(got - initial[name])) > 1e-3
        np.testing.assert_allclose(got, alone_weights, rtol=0, atol=WEIGHT_TOLERANCE, err_msg=name)
        for key, values in alone_history.items():
            np.testing.assert_allclose(history[f"{name}_{key}"], values, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name}_{key}")
    total = sum(np.asarray(history[f"{name}_loss"]) for name in RECIPES)
    np.testing.assert_allclose(history["loss"], total, rtol=1e-5)


def test_feature_losses_read_one_teacher_pass(splits):
    """A FitNets student and a KD student: the teacher's features come from the same single pass."""
    teacher = teacher_model(splits)
    x = splits.x_train[:EXAMPLES]
    mean, std = (np.asarray(v, "float32") for v in splits.normalization)
    x = ((x - mean) / std).astype("float32")
    y = splits.y_train[:EXAMPLES]

    def distillers():
        out = {}
        keras.utils.set_random_seed(21)  # The projector's initial weights.
        out["fitnets"] = Distiller(teacher, student_model(splits, 21), feature_loss=FeatureDistillation(),
                                   feature_loss_weight=2.0)
        out["kd"] = Distiller(teacher, student_model(splits, 22), temperature=2.0)
        return out

    def projector(distiller):
        return [keras.ops.convert_to_numpy(v) for v in distiller.feature_loss.trainable_variables]

    alone = {}
    for name, distiller in distillers().items():
        distiller.compile(optimizer=optimizer())
        history = distiller.fit(x, y, batch_size=BATCH, shuffle=False, epochs=1, verbose=0)
        alone[name] = (weights(distiller.student), history.history)
        if name == "fitnets":
            alone_projector = projector(distiller)
    group = Distiller(teacher, students=distillers())
    group.compile(optimizer=optimizer())
    history = group.fit(x, y, batch_size=BATCH, shuffle=False, epochs=1, verbose=0).history
    for name, (student_weights, alone_history) in alone.items():
        np.testing.assert_allclose(weights(group.students[name]), student_weights, rtol=0,
                                   atol=WEIGHT_TOLERANCE, err_msg=name)
        for key, values in alone_history.items():
            np.testing.assert_allclose(history[f"{name}_{key}"], values, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name}_{key}")
    assert "fitnets_feature_loss" in history and "kd_feature_loss" not in history
    got_projector = projector(group.distillers["fitnets"])
    assert alone_projector and len(got_projector) == len(alone_projector)
    for got, want in zip(got_projector, alone_projector):
        np.testing.assert_allclose(got, want, rtol=0, atol=WEIGHT_TOLERANCE)


class CountingTeacher(keras.Model):
    """A teacher that records the batch size of every call."""

    def __init__(self, inner):
        super().__init__(name="counting_teacher")
        self.inner = inner
        self.calls = []

    def call(self, inputs, training=None):
        self.calls.append(int(inputs.shape[0]))
        return self.inner(inputs, training=training)


@pytest.mark.parametrize("group_size", [1, 3])
def test_the_teacher_runs_once_per_batch(splits, group_size):
    teacher = CountingTeacher(teacher_model(splits))
    students = {f"s{i}": student_model(splits, i) for i in range(group_size)}
    group = Distiller(teacher, students=students)
    group.compile(optimizer=optimizer(), run_eagerly=True)  # Eager: each call of the step is counted.
    x, y = splits.x_train[:EXAMPLES], splits.y_train[:EXAMPLES]
    group.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    # The output check looks at 8 images once; every batch of 32 is one teacher pass.
    assert [n for n in teacher.calls if n == BATCH] == [BATCH] * (EXAMPLES // BATCH)
    assert len([n for n in teacher.calls if n != BATCH]) <= 1

    # Separate Distillers run it once per batch each: the count the group saves.
    teacher.calls.clear()
    distiller = Distiller(teacher, student_model(splits, 99))
    distiller.compile(optimizer=optimizer(), run_eagerly=True)
    distiller.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert [n for n in teacher.calls if n == BATCH] == [BATCH] * (EXAMPLES // BATCH)


def test_evaluate_and_predict_give_every_student(splits):
    teacher = teacher_model(splits)
    students = {"a": student_model(splits, 1), "b": (student_model(splits, 2), {"temperature": 1.0})}
    group = Distiller(teacher, students=students)
    group.compile(optimizer=optimizer())
    x, y = splits.x_train[:EXAMPLES], splits.y_train[:EXAMPLES]
    predictions = group.predict(x, batch_size=BATCH, verbose=0)
    assert sorted(predictions) == ["a", "b"]
    for name, model in group.students.items():
        np.testing.assert_allclose(predictions[name], keras.ops.convert_to_numpy(model(x)), atol=1e-5)
    logs = group.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    alone = Distiller(teacher, group.students["b"], temperature=1.0)
    alone.compile(optimizer=optimizer())
    want = alone.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    for key, value in want.items():
        np.testing.assert_allclose(logs[f"b_{key}"], value, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ bad input


@pytest.fixture
def teacher(splits):
    return teacher_model(splits)


def test_refuses_a_student_with_other_classes(splits, teacher):
    other = get_model("digits_cnn_small", 7, input_shape=splits.input_shape)
    with pytest.raises(ValueError, match=r"Student 'odd' outputs 7 logits, the shared teacher .* 10"):
        Distiller(teacher, students={"ok": student_model(splits, 1), "odd": other})


def test_refuses_the_same_student_twice(splits, teacher):
    student = student_model(splits, 1)
    with pytest.raises(ValueError, match=r"Students 'a' and 'b' share the variable"):
        Distiller(teacher, students={"a": student, "b": (student, {"temperature": 1.0})})


def test_refuses_names_whose_logs_collide(splits, teacher):
    with pytest.raises(ValueError, match=r"would both log 'a_supervised_loss'"):
        Distiller(teacher, students={"a": student_model(splits, 1), "a_supervised": student_model(splits, 2)})


@pytest.mark.parametrize("name", ["", " a", "a/b", 3])
def test_refuses_bad_names(splits, teacher, name):
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        Distiller(teacher, students={name: student_model(splits, 1)})


def test_refuses_students_that_are_not_a_dict_of_students(splits, teacher):
    with pytest.raises(TypeError, match="must be a dict name -> student"):
        Distiller(teacher, students=[student_model(splits, 1)])
    with pytest.raises(ValueError, match="`students` is empty"):
        Distiller(teacher, students={})
    with pytest.raises(TypeError, match="Student 'a' must be a keras.Model, a pair"):
        Distiller(teacher, students={"a": "resnet20"})
    with pytest.raises(TypeError, match="`teacher` must be a keras.Model"):
        Distiller("resnet56", students={"a": student_model(splits, 1)})


def test_refuses_bad_distiller_arguments_naming_the_student(splits, teacher):
    with pytest.raises(ValueError, match=r"Student 'hot': `temperature` must be > 0"):
        Distiller(teacher, students={"hot": (student_model(splits, 1), {"temperature": 0.0})})
    with pytest.raises(ValueError, match=r"Student 'a': its Distiller arguments may not hold 'teacher'"):
        Distiller(teacher, students={"a": (student_model(splits, 1), {"teacher": teacher})})


def test_refuses_a_distiller_of_another_teacher(splits, teacher):
    other = Distiller(teacher_model(splits), student_model(splits, 2))
    with pytest.raises(ValueError, match=r"Student 'b': its Distiller distils from"):
        Distiller(teacher, students={"a": student_model(splits, 1), "b": other})


def test_refuses_students_reading_the_teacher_differently(splits, teacher):
    probabilities = Distiller(teacher, student_model(splits, 2), teacher_outputs="probabilities")
    with pytest.raises(ValueError, match="read the shared teacher differently"):
        Distiller(teacher, students={"a": student_model(splits, 1), "b": probabilities})


class SoftmaxStudent(keras.Model):
    """A subclassed student with a softmax in `call`."""

    def __init__(self, inner):
        super().__init__(name="softmax_student")
        self.inner = inner

    def call(self, inputs, training=False):
        return keras.ops.softmax(self.inner(inputs, training=training))


def test_refuses_any_student_that_outputs_probabilities_naming_it(splits, teacher):
    group = Distiller(teacher, students={"a": student_model(splits, 1),
                                         "b": SoftmaxStudent(student_model(splits, 2))})
    group.compile(optimizer=optimizer())
    before = weights(group.students["a"])
    with pytest.raises(ValueError, match=r"Student 'b': The student 'softmax_student' .* outputs probabilities"):
        group.fit(splits.x_train[:EXAMPLES], splits.y_train[:EXAMPLES], batch_size=BATCH, verbose=0)
    np.testing.assert_array_equal(weights(group.students["a"]), before)


def test_compile_refuses_what_breaks_per_student_equivalence(splits, teacher):
    group = Distiller(teacher, students={"a": student_model(splits, 1), "b": student_model(splits, 2)})
    with pytest.raises(ValueError, match="global_clipnorm=1.0 clips the norm of all students"):
        group.compile(optimizer=keras.optimizers.SGD(0.1, global_clipnorm=1.0))
    with pytest.raises(ValueError, match="LossScaleOptimizer"):
        group.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)))
    with pytest.raises(TypeError, match="takes one optimizer for all students"):
        group.compile(optimizer={"a": keras.optimizers.SGD(0.1)})
    with pytest.raises(ValueError, match="takes no `loss`"):
        group.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="takes no `metrics`"):
        group.compile(optimizer="sgd", metrics=["accuracy"])


def test_refuses_wrong_labels_before_training(splits, teacher):
    group = Distiller(teacher, students={"a": student_model(splits, 1)})
    group.compile(optimizer=optimizer())
    before = weights(group.students["a"])
    x = splits.x_train[:EXAMPLES]
    with pytest.raises(ValueError, match="Labels of shape"):
        group.fit(x, np.zeros((EXAMPLES, 3), "float32"), batch_size=BATCH, verbose=0)
    with pytest.raises(ValueError, match="epochs must be a whole number >= 1"):
        group.fit(x, splits.y_train[:EXAMPLES], epochs=0, verbose=0)
    np.testing.assert_array_equal(weights(group.students["a"]), before)


def test_is_not_saved_as_a_group(splits, teacher):
    group = Distiller(teacher, students={"a": student_model(splits, 1)})
    with pytest.raises(NotImplementedError, match="save each student"):
        group.get_config()


def test_the_old_name_is_a_deprecated_alias(splits, teacher):
    with pytest.warns(DeprecationWarning, match="use keras_mixkd.Distiller\\(teacher, students=students\\)"):
        group = SharedTeacherDistiller(teacher, {"a": student_model(splits, 1), "b": student_model(splits, 2)})
    assert isinstance(group, Distiller) and group.has_several_students
    assert set(group.students) == {"a", "b"}


def test_students_take_the_distillers_loss_arguments_as_defaults(splits, teacher):
    group = Distiller(teacher, temperature=2.0, student_loss_weight=0.5, students={
        "plain": student_model(splits, 1), "hot": (student_model(splits, 2), {"temperature": 8.0})})
    assert group.distillers["plain"].temperature == 2.0 and group.distillers["plain"].student_loss_weight == 0.5
    assert group.distillers["hot"].temperature == 8.0 and group.distillers["hot"].student_loss_weight == 0.5


def test_one_student_or_several_not_both(splits, teacher):
    with pytest.raises(ValueError, match="either `student` .* or `students`"):
        Distiller(teacher, student_model(splits, 1), students={"a": student_model(splits, 2)})
    with pytest.raises(TypeError, match="needs a `student`"):
        Distiller(teacher)
