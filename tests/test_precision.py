"""Mixed precision for teacher training and distillation, on the current backend."""

import keras
import numpy as np
import pytest

from keras_mixkd.distill.distiller import Distiller
from keras_mixkd.models import get_model
from keras_mixkd.precision import PRECISION_POLICIES
from keras_mixkd.precision import precision
from keras_mixkd.precision import set_precision

BACKEND = keras.backend.backend()
INPUT_SHAPE = (8, 8, 1)
NUM_CLASSES = 10
TEMPERATURE = 4.0


@pytest.fixture(autouse=True)
def _restore_policy():
    yield
    keras.config.set_dtype_policy("float32")


def _numpy_kd(teacher_logits, student_logits, temperature):
    """T² · KL(softmax(t/T) ‖ softmax(s/T)) per sample, in float64."""
    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    log_p = log_softmax(teacher_logits.astype(np.float64) / temperature)
    log_q = log_softmax(student_logits.astype(np.float64) / temperature)
    return temperature**2 * np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)


def _numpy_cross_entropy(labels, logits):
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_q = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -log_q[np.arange(len(labels)), labels]


# TensorFlow runs jit_compile=True through XLA; JAX always compiles with XLA;
# PyTorch's jit_compile=True is torch.compile, tested here on TensorFlow only
# to keep the suite's budget (see docs/ship.md).
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_distillation_under_mixed_precision(policy):
    half = policy.split("_")[1]
    set_precision(policy)
    teacher = get_model("digits_cnn", NUM_CLASSES, INPUT_SHAPE)
    student = get_model("digits_cnn_small", NUM_CLASSES, INPUT_SHAPE)
    distiller = Distiller(teacher, student, temperature=TEMPERATURE, student_loss_weight=0.5)
    distiller.compile(optimizer=keras.optimizers.SGD(0.05),
                      jit_compile=BACKEND == "tensorflow")
    if policy == "mixed_float16":  # Keras's dynamic loss scaling.
        assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)

    rng = np.random.default_rng(0)
    x = rng.random((16,) + INPUT_SHAPE, dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, 16)
    history = distiller.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    for name in ("loss", "supervised_loss", "distillation_loss"):
        assert np.all(np.isfinite(history[name])), (name, history[name])

    for model in (teacher, student):
        assert {v.dtype for v in model.weights} == {"float32"}  # float32 master weights
        assert model.get_layer("features").compute_dtype == half
        assert model.get_layer("logits").compute_dtype == "float32"
    features = keras.Model(student.inputs, student.get_layer("features").output)
    assert keras.backend.standardize_dtype(features(x[:2]).dtype) == half
    teacher_logits = keras.ops.convert_to_numpy(teacher(x, training=False))
    student_logits = keras.ops.convert_to_numpy(student(x, training=False))
    assert teacher_logits.dtype == np.float32 and student_logits.dtype == np.float32
    assert np.all(np.isfinite(student_logits))

    # The logged losses are the float64 formulas on the models' float32 logits.
    results = distiller.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    kd = _numpy_kd(teacher_logits, student_logits, TEMPERATURE).mean()
    ce = _numpy_cross_entropy(y, student_logits).mean()
    np.testing.assert_allclose(results["distillation_loss"], kd, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results["supervised_loss"], ce, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results["loss"], 0.5 * ce + 0.5 * kd, rtol=1e-4, atol=1e-6)


def test_teacher_training_under_mixed_float16():
    with precision("mixed_float16"):
        teacher = get_model("digits_cnn_small", NUM_CLASSES, INPUT_SHAPE)
        teacher.compile(optimizer=keras.optimizers.SGD(0.05),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert keras.config.dtype_policy().name == "float32"  # Restored on exit.
    assert isinstance(teacher.optimizer, keras.optimizers.LossScaleOptimizer)
    rng = np.random.default_rng(1)
    x = rng.random((16,) + INPUT_SHAPE, dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, 16)
    history = teacher.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][-1])
    logits = keras.ops.convert_to_numpy(teacher(x, training=False))
    assert logits.dtype == np.float32
    np.testing.assert_allclose(
        teacher.evaluate(x, y, batch_size=16, verbose=0),
        _numpy_cross_entropy(y, logits).mean(), rtol=1e-4)


def test_float32_is_the_default_and_restorable():
    assert set_precision("mixed_bfloat16") == "float32"
    assert set_precision("float32") == "mixed_bfloat16"
    model = get_model("digits_cnn_small", NUM_CLASSES, INPUT_SHAPE)
    assert model.get_layer("logits").dtype_policy.name == "float32"
    assert model.get_layer("features").compute_dtype == "float32"
    assert set(PRECISION_POLICIES) == {"float32", "mixed_float16", "mixed_bfloat16"}


def test_unknown_precision_policy_is_refused():
    with pytest.raises(ValueError, match="Unknown precision policy 'mixed_float8'.*mixed_bfloat16"):
        set_precision("mixed_float8")
    with pytest.raises(TypeError, match="must be a string"):
        set_precision(16)
    with pytest.raises(ValueError, match="Unknown precision policy"):
        with precision("half"):
            pass
    assert keras.config.dtype_policy().name == "float32"
