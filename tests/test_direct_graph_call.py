"""`DirectGraphCall`: a model's forward pass without `Layer.__call__`, bit-identical to it."""

import keras
import numpy as np
import pytest

from keras_mixkd.distill import Distiller
from keras_mixkd.models import DirectGraphCall
from keras_mixkd.models import get_model
from keras_mixkd.models import direct_call_problem
from tests.helpers import compiled_call


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _with_moving_statistics(model, seed=0):
    """Random BatchNorm moving statistics, so that inference mode differs from training mode."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0.0, 0.5, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape).astype("float32"))
    return model


ZOO = [
    ("resnet8", (32, 32, 3), "channels_last"),
    ("resnet8", (32, 32, 3), "channels_first"),
    ("wrn_16_1", (32, 32, 3), "channels_last"),
    ("vgg8", (32, 32, 3), "channels_last"),  # dropout in the classifier
    ("mobilenetv2", (32, 32, 3), "channels_last"),
    ("shufflev1", (32, 32, 3), "channels_last"),  # custom channel-shuffle layers
    ("shufflev2", (32, 32, 3), "channels_last"),  # custom channel-split layers
    ("lenet5", (32, 32, 3), "channels_last"),
    ("digits_cnn", (8, 8, 1), "channels_last"),
]


def _inference(call, model, images):
    """`(program, run)`: what `call(x, training=False)` traces to, and a function of images computing it.

    Under JAX, `program` is the jaxpr of the call on `images` (as text, the model's
    variables passed as arguments) and `run` that program compiled (an eager call
    compiles each operation of a zoo model on its own: hundreds of compiles). Two
    calls tracing to the same jaxpr run the same operations in the same order,
    eagerly or compiled, so they give the same bits. Other backends: `(None, the
    eager call)`.
    """
    if keras.backend.backend() != "jax":
        return None, lambda x: _np(call(x, training=False))
    import jax

    variables = model.trainable_variables + model.non_trainable_variables

    def run(values, x):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return call(x, training=False)

    values = [v.value for v in variables]
    compiled = jax.jit(run)
    return str(jax.make_jaxpr(run)(values, images)), lambda x: _np(compiled(values, x))


@pytest.mark.parametrize("name,shape,data_format", ZOO)
def test_direct_inference_equals_the_keras_call_bit_for_bit(name, shape, data_format):
    keras.utils.set_random_seed(1)
    model = _with_moving_statistics(get_model(name, 7, input_shape=shape, data_format=data_format))
    assert direct_call_problem(model) is None
    direct = DirectGraphCall(model)
    rng = np.random.default_rng(2)
    near = rng.random((5, *shape), dtype="float32")
    program, keras_call = _inference(model, model, near)
    direct_program, direct_call = _inference(direct, model, near)
    assert direct_program == program  # JAX: the same jaxpr (None == None elsewhere)
    # Far from the origin: large activations, the same operations.
    for images in (near, (1000.0 + 50.0 * rng.standard_normal((5, *shape))).astype("float32")):
        expected, got = keras_call(images), direct_call(images)
        assert got.shape == expected.shape == (5, 7)
        np.testing.assert_array_equal(got, expected)
        if name != "lenet5":  # LeNet-5 has neither BatchNorm nor dropout
            # Inference mode, really: training mode gives other numbers (batch statistics, dropout).
            assert not np.array_equal(got, _np(compiled_call(model, images, training=True)))


def test_a_nested_model_runs_through_its_own_call():
    keras.utils.set_random_seed(0)
    inner = _with_moving_statistics(get_model("resnet8", 4, input_shape=(16, 16, 3)))
    inputs = keras.Input((16, 16, 3))
    outer = keras.Model(inputs, keras.layers.Dense(3)(inner(keras.layers.Rescaling(2.0)(inputs))))
    assert direct_call_problem(outer) is None
    images = np.random.default_rng(0).random((3, 16, 16, 3), dtype="float32")
    np.testing.assert_array_equal(_np(DirectGraphCall(outer)(images, training=False)), _np(outer(images, training=False)))


def test_inputs_that_are_not_float32_take_the_plain_call():
    keras.utils.set_random_seed(0)
    model = get_model("digits_cnn_small", 3, input_shape=(8, 8, 1))
    pixels = np.random.default_rng(0).integers(0, 17, (4, 8, 8, 1)).astype("uint8")
    np.testing.assert_array_equal(_np(DirectGraphCall(model)(pixels, training=False)), _np(model(pixels, training=False)))


def _subclassed():
    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    model = Tiny()
    model(np.zeros((1, 4), "float32"))
    return model


def _mixed_precision():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3, dtype="mixed_float16")(inputs))


def _masked():
    inputs = keras.Input((5,), dtype="int32")
    hidden = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(hidden))


def _activity_regularised():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3, activity_regularizer="l2")(inputs))


def _with_a_block():
    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.norm = keras.layers.BatchNormalization()

        def call(self, x):  # its BatchNorm reads `training` from the call context
            return self.norm(x)

    inputs = keras.Input((4,))
    return keras.Model(inputs, Block(name="block")(inputs))


@pytest.mark.parametrize("make,problem", [
    (_subclassed, "Tiny is not a functional keras.Model"),
    (_mixed_precision, "dtype policy 'mixed_float16'"),
    (_masked, "outputs a Keras mask"),
    (_activity_regularised, "activity regulariser"),
    (_with_a_block, "layer 'block' holds sublayers"),
])
def test_models_it_cannot_run_are_named_and_refused(make, problem):
    model = make()
    assert problem in direct_call_problem(model)
    with pytest.raises(ValueError, match="DirectGraphCall runs a built functional keras.Model of float32 layers without masks") as error:
        DirectGraphCall(model)
    assert problem in str(error.value)


def _distiller(teacher, direct):
    keras.utils.set_random_seed(5)
    student = get_model("digits_cnn_small", 6, input_shape=(8, 8, 1))
    distiller = Distiller(teacher, student, loss="kd", temperature=4.0, student_loss_weight=0.1)
    distiller._direct_calls = direct
    distiller.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    return distiller


def test_the_distiller_calls_its_models_this_way_and_trains_as_with_the_plain_calls():
    keras.utils.set_random_seed(4)
    teacher = _with_moving_statistics(get_model("digits_cnn", 6, input_shape=(8, 8, 1)))
    rng = np.random.default_rng(3)
    images = rng.random((32, 8, 8, 1), dtype="float32")
    labels = rng.integers(0, 6, 32).astype("int32")
    direct, plain = _distiller(teacher, True), _distiller(teacher, False)
    for role in ("teacher", "student"):
        assert isinstance(direct._direct_call(role), DirectGraphCall)
        assert not isinstance(plain._direct_call(role), DirectGraphCall)
    np.testing.assert_array_equal(_np(direct.teacher_logits(images)), _np(teacher(images, training=False)))
    for _ in range(3):
        logs_direct = direct.train_on_batch(images, labels, return_dict=True)
        logs_plain = plain.train_on_batch(images, labels, return_dict=True)
    for key in ("loss", "distillation_loss", "teacher_agreement"):
        np.testing.assert_allclose(logs_direct[key], logs_plain[key], rtol=1e-6, atol=1e-7)
    for mine, theirs in zip(direct.student.weights, plain.student.weights):
        np.testing.assert_allclose(_np(mine), _np(theirs), rtol=1e-6, atol=1e-7)
    # Inference through the Distiller (predict, evaluate) likewise.
    np.testing.assert_allclose(_np(direct.predict(images, verbose=0)), _np(plain.predict(images, verbose=0)),
                               rtol=1e-6, atol=1e-7)


def test_a_teacher_it_cannot_run_keeps_the_plain_call():
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    teacher = keras.Model(inputs, keras.layers.Dense(6, dtype="mixed_float16")(flat))
    distiller = _distiller(teacher, True)
    assert not isinstance(distiller._direct_call("teacher"), DirectGraphCall)
    assert isinstance(distiller._direct_call("student"), DirectGraphCall)
    images = np.random.default_rng(0).random((4, 8, 8, 1), dtype="float32")
    np.testing.assert_allclose(_np(distiller.teacher_logits(images)),
                               _np(keras.ops.cast(teacher(images, training=False), "float32")))


@pytest.mark.parametrize("name,shape,data_format", [
    ("resnet8", (16, 16, 3), "channels_first"),
    ("vgg8", (16, 16, 3), "channels_last"),  # dropout: the same seeded draws
    ("shufflev2", (32, 32, 3), "channels_last"),
])
def test_a_direct_training_pass_gives_the_same_outputs_and_moving_statistics(name, shape, data_format):
    # Gradients: the Distiller test above trains with both and compares the weights.
    images = np.random.default_rng(6).random((6, *shape), dtype="float32")
    results = {}
    for direct in (True, False):
        keras.utils.set_random_seed(7)
        model = get_model(name, 5, input_shape=shape, data_format=data_format)
        forward = DirectGraphCall(model) if direct else model
        keras.utils.set_random_seed(8)  # dropout draws
        outputs = _np(forward(images, training=True))
        results[direct] = (outputs, [_np(v) for v in model.non_trainable_weights])
    np.testing.assert_array_equal(results[True][0], results[False][0])
    assert results[True][1]
    for mine, theirs in zip(results[True][1], results[False][1]):  # BatchNorm's moving statistics
        np.testing.assert_array_equal(mine, theirs)


def test_tensors_read_late_and_outputs_read_again_survive_the_early_release():
    # The input is read by the first and the last layer; the first output also feeds
    # the second: each must outlive the layers in between.
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, name="first")(inputs)
    middle = keras.layers.Dense(5, activation="relu", name="middle")(hidden)
    joined = keras.layers.Concatenate(name="join")([middle, inputs, hidden])
    last = keras.layers.Dense(3, name="last")(joined)
    model = keras.Model(inputs, [hidden, last])
    x = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
    direct = DirectGraphCall(model)
    released = [key for _, keys in direct._schedule for key in keys]
    assert released.count(id(inputs)) == 1 and id(hidden) not in released  # hidden is an output
    for got, expected in zip(direct(x, training=False), model(x, training=False)):
        np.testing.assert_array_equal(_np(got), _np(expected))
