"""`keras_mixkd._keras_compat`: each private Keras path removed, the public fallback gives the same result."""

import os
import sys
import warnings

import keras
import numpy as np
import pytest

from keras_mixkd import _keras_compat
from keras_mixkd import optimizers
from keras_mixkd.models import DirectGraphCall
from keras_mixkd.models import count_params_pytorch_style
from keras_mixkd.models import direct_call_or_model
from keras_mixkd.models import direct_call_problem
from keras_mixkd.study import fixed_cost
from keras_mixkd.study.backup import ResumableBackup


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees the compat module's one-per-process warnings anew."""
    monkeypatch.setattr(_keras_compat, "_warned", set())


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    block = keras.Sequential([keras.layers.Dense(5), keras.layers.BatchNormalization()], name="block")
    x = block(x)  # a nested model: its sublayers are found too
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3)(x)
    return keras.Model(inputs, outputs)


def _images(seed=1, n=6):
    # Far from the origin, so that a wrong normalisation would show.
    return (np.random.default_rng(seed).normal(3.0, 2.0, (n, 8, 8, 3))).astype("float32")


def _assert_same_outputs(candidate, reference, images):
    """Inference first, then training: a training pass moves the BatchNorm statistics for the next one."""
    for training in (False, True):
        np.testing.assert_array_equal(_np(candidate(images, training=training)),
                                      _np(reference(images, training=training)))


def _runtime_warnings(record, what):
    return [w for w in record if issubclass(w.category, RuntimeWarning) and what in str(w.message)]


def test_without_the_functional_class_the_model_keeps_its_plain_call(monkeypatch):
    model = _model()
    reference = DirectGraphCall(model)
    monkeypatch.setitem(sys.modules, "keras.src.models.functional", None)  # its import now fails
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert "keras.src.models.functional" in direct_call_problem(model)
        assert direct_call_or_model(model) is model
        direct = DirectGraphCall(model)  # no error: it takes the plain call
        _assert_same_outputs(direct, reference, _images())
    assert len(_runtime_warnings(record, "keras.src.models.functional")) == 1


def test_without_nodes_by_depth_the_model_keeps_its_plain_call(monkeypatch):
    model = _model()
    reference = DirectGraphCall(model)
    # This Keras's own call reads `_nodes_by_depth` too: remove it while the library looks,
    # then put it back for the plain call the library chose.
    monkeypatch.delattr(model, "_nodes_by_depth")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert "_nodes_by_depth" in direct_call_problem(model)
        assert direct_call_or_model(model) is model
        direct = DirectGraphCall(model)
    assert len(_runtime_warnings(record, "_nodes_by_depth")) == 1
    monkeypatch.undo()
    _assert_same_outputs(direct, reference, _images())


def test_without_standardize_inputs_the_call_is_the_plain_one(monkeypatch):
    model = _model()
    reference = DirectGraphCall(model)
    direct = DirectGraphCall(model)
    calls = []
    monkeypatch.setattr(direct, "model", _Recording(model, calls))
    monkeypatch.delattr(_keras_compat.functional_class(), "_standardize_inputs")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        images = _images()
        for training in (False, True):
            found = _np(direct(images, training=training))
            with pytest.MonkeyPatch.context() as patch:  # the reference needs the method back
                patch.setattr(_keras_compat.functional_class(), "_standardize_inputs", _STANDARDIZE_INPUTS,
                              raising=False)
                np.testing.assert_array_equal(found, _np(reference(images, training=training)))
    assert calls == [False, True]  # both went through the model's own call
    assert len(_runtime_warnings(record, "_standardize_inputs")) == 1


class _Recording:
    """A model stand-in that records the `training` of each plain call."""

    def __init__(self, model, calls):
        self.model, self.calls = model, calls
        self.inputs, self.outputs = model.inputs, model.outputs

    def __call__(self, inputs, training=False):
        self.calls.append(training)
        # The plain call needs Keras's own `_standardize_inputs`: this Keras has nothing else.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_keras_compat.functional_class(), "_standardize_inputs",
                          _STANDARDIZE_INPUTS, raising=False)
            return self.model(inputs, training=training)


_STANDARDIZE_INPUTS = _keras_compat.functional_class()._standardize_inputs


def test_without_call_has_training_arg_the_signature_decides(monkeypatch):
    model = _model()
    layers = [model, *_keras_compat.sublayers(model)]
    expected = {layer.name: _keras_compat.call_takes_training(layer) for layer in layers}
    reference = DirectGraphCall(model)
    for layer in layers:
        monkeypatch.delattr(layer, "_call_has_training_arg")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert {layer.name: _keras_compat.call_takes_training(layer) for layer in layers} == expected
        direct = DirectGraphCall(model)
    assert len(_runtime_warnings(record, "_call_has_training_arg")) == 1
    kinds = {type(layer).__name__: expected[layer.name] for layer in layers}
    assert kinds["BatchNormalization"] and kinds["Sequential"] and not kinds["ReLU"]
    monkeypatch.undo()
    _assert_same_outputs(direct, reference, _images())


def test_without_flatten_layers_the_attributes_give_the_same_layers(monkeypatch):
    model = _model()

    def computing(recursive):  # the fallback leaves out the InputLayers, which compute nothing
        return sorted(id(layer) for layer in _keras_compat.sublayers(model, recursive=recursive)
                      if not isinstance(layer, keras.layers.InputLayer))

    expected, expected_direct = computing(True), computing(False)
    expected_count = count_params_pytorch_style(model)
    monkeypatch.delattr(keras.layers.Layer, "_flatten_layers")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        found, found_direct = computing(True), computing(False)
    assert len(_runtime_warnings(record, "_flatten_layers")) == 1
    assert found == expected and len(found) == 8  # 5 layers, the block and its 2
    assert found_direct == expected_direct and len(found_direct) == 6
    assert count_params_pytorch_style(model) == expected_count  # BatchNorm's moving statistics left out


def _decay_steps(exclude, steps=3):
    """Variables after `steps` SGD steps with coupled weight decay, some variables excluded."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(4.0, 1.0, (3, 2)).astype("float32"), name="kernel"),
                 keras.Variable(rng.normal(-4.0, 1.0, (2,)).astype("float32"), name="bias"),
                 keras.Variable(rng.normal(2.0, 1.0, (2,)).astype("float32"), name="scale")]
    sgd = optimizers.SGD(0.1, momentum=0.9, weight_decay=0.05)
    exclude(sgd, variables)
    gradients = [rng.normal(0.0, 1.0, v.shape).astype("float32") for v in variables]
    for _ in range(steps):
        sgd.apply([keras.ops.convert_to_tensor(g) for g in gradients], variables)
    return [_np(v) for v in variables], gradients


def _exclude(sgd, variables):
    sgd.exclude_from_weight_decay(var_list=[variables[2]], var_names=["bias"])


def test_without_use_weight_decay_the_recorded_exclusions_decide(monkeypatch):
    expected, gradients = _decay_steps(_exclude)
    owner = next(c for c in type(optimizers.SGD()).__mro__ if "_use_weight_decay" in vars(c))
    monkeypatch.delattr(owner, "_use_weight_decay")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        found, _ = _decay_steps(_exclude)
    assert len(_runtime_warnings(record, "_use_weight_decay")) == 1
    for a, b in zip(found, expected):
        np.testing.assert_array_equal(a, b)
    # From its definition, in float64: only the kernel decays (wd * w added to the gradient).
    monkeypatch.undo()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    start = [rng.normal(4.0, 1.0, (3, 2)), rng.normal(-4.0, 1.0, (2,)), rng.normal(2.0, 1.0, (2,))]
    start = [s.astype("float32").astype("float64") for s in start]
    for index, (w, g) in enumerate(zip(start, gradients)):
        buffer = np.zeros_like(w)
        for _ in range(3):
            step = g + (0.05 * w if index == 0 else 0.0)
            buffer = 0.9 * buffer + step
            w = w - 0.1 * buffer
        np.testing.assert_allclose(found[index], w, rtol=1e-5)


def _fit_with_prebuild(remove, monkeypatch):
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 1.0, (16, 4)).astype("float32")
    y = rng.normal(-2.0, 1.0, (16, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    with pytest.MonkeyPatch.context() as patch:
        if remove:
            owner = next(c for c in type(model).__mro__ if "_symbolic_build" in vars(c))
            patch.delattr(owner, "_symbolic_build")
        fixed_cost.prebuild_for_fit(model, dataset)
    history = model.fit(dataset, epochs=2, verbose=0, shuffle=False)
    return [_np(w) for w in model.weights], history.history


def test_without_symbolic_build_fit_builds_and_trains_the_same(monkeypatch):
    assert fixed_cost.enabled()  # the cuts are on by default: prebuild_for_fit takes its private path
    expected, expected_history = _fit_with_prebuild(False, monkeypatch)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(optimizer="sgd", loss="mse")
        owner = next(c for c in type(model).__mro__ if "_symbolic_build" in vars(c))
        with pytest.MonkeyPatch.context() as patch:
            patch.delattr(owner, "_symbolic_build")
            assert _keras_compat.symbolic_build(model, (keras.KerasTensor((None, 4)),
                                                        keras.KerasTensor((None, 3)))) is False
        found, history = _fit_with_prebuild(True, monkeypatch)
    assert len(_runtime_warnings(record, "_symbolic_build")) == 1
    for a, b in zip(found, expected):
        np.testing.assert_array_equal(a, b)
    assert history == expected_history


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="Keras detaches variable values on JAX only")
def test_detached_jax_values_come_back_without_the_private_value(monkeypatch):
    rng = np.random.default_rng(0)
    private = keras.Variable(rng.normal(5.0, 1.0, (3,)).astype("float32"))
    public = keras.Variable(rng.normal(5.0, 1.0, (3,)).astype("float32"))
    saved = [(private, private.value), (public, public.value)]
    expected = [_np(private.value), _np(public.value)]
    private._value = None  # what Keras's JAX trainer leaves after a failed step
    monkeypatch.delitem(vars(public), "_value")  # a Keras without the attribute
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _keras_compat.restore_detached_values(saved)
    assert len(_runtime_warnings(record, "Variable._value")) == 1
    np.testing.assert_array_equal(_np(private.value), expected[0])
    np.testing.assert_array_equal(_np(public.value), expected[1])


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="asks JAX, which only the JAX backend has started")
def test_without_xla_bridge_backends_jax_devices_answers(monkeypatch):
    from jax._src import xla_bridge

    expected = _keras_compat.jax_backends_started()
    assert expected is True  # the JAX backend has run something by now
    monkeypatch.delattr(xla_bridge, "_backends")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert _keras_compat.jax_backends_started() is expected
    assert len(_runtime_warnings(record, "_backends")) == 1


def test_without_the_kerascv_map_fn_the_layer_is_returned_unchanged(monkeypatch):
    keras_cv = pytest.importorskip("keras_cv")
    layer = keras_cv.layers.RandAugment(value_range=(0, 1), seed=3)
    owner = next(c for c in type(layer).__mro__ if "_map_fn" in vars(c))
    monkeypatch.delattr(owner, "_map_fn")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert _keras_compat.sequential_map(layer) is layer
    assert "_map_fn" not in vars(layer)
    assert len(_runtime_warnings(record, "_map_fn")) == 1
    monkeypatch.undo()
    assert _keras_compat.sequential_map(layer) is layer and "_map_fn" in vars(layer)


def _resume_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    model.compile(optimizer=optimizers.SGD(0.05, momentum=0.9, weight_decay=1e-2), loss="mse")
    return model


def _resume_data():
    rng = np.random.default_rng(0)
    return rng.normal(3.0, 1.0, (24, 4)).astype("float32"), rng.normal(-1.0, 1.0, (24, 3)).astype("float32")


def test_a_resumed_fit_starts_at_the_backed_up_epoch_and_ends_as_an_uninterrupted_one(tmp_path):
    x, y = _resume_data()
    whole = _resume_model()
    whole.fit(x, y, epochs=4, batch_size=8, shuffle=False, verbose=0)

    backup_dir = os.path.join(tmp_path, "backup")
    first = _resume_model()
    first.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, callbacks=[ResumableBackup(backup_dir)])
    backup = ResumableBackup(backup_dir)
    assert backup.resume_epoch == 2
    resumed = _resume_model()
    epochs = []
    seen = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))
    resumed.fit(x, y, epochs=4, initial_epoch=backup.resume_epoch, batch_size=8, shuffle=False, verbose=0,
                callbacks=[seen, backup])
    assert epochs == [2, 3]
    assert backup.resume_epoch == 4
    assert int(_np(resumed.optimizer.iterations)) == int(_np(whole.optimizer.iterations)) == 12
    for a, b in zip(resumed.weights + resumed.optimizer.variables, whole.weights + whole.optimizer.variables):
        np.testing.assert_array_equal(_np(a), _np(b))


def test_a_fit_that_ignores_the_backup_is_refused_at_its_first_epoch(tmp_path):
    x, y = _resume_data()
    backup_dir = os.path.join(tmp_path, "backup")
    _resume_model().fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[ResumableBackup(backup_dir)])
    with pytest.raises(ValueError, match=r"restored epoch 1 .* started at epoch 0: pass fit\(\.\.\., initial_epoch"):
        _resume_model().fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[ResumableBackup(backup_dir)])


def test_a_backup_without_a_folder_is_refused():
    with pytest.raises(ValueError, match="backup_dir must be a folder path; received ''"):
        ResumableBackup("")
