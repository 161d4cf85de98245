"""Channels-first zoo models (`get_model(..., data_format=...)`) and the fused BatchNormalization."""

import keras
import numpy as np
import pytest

from keras_mixkd.models import BatchNormalization
from keras_mixkd.models import get_model
from tests.helpers import compiled_call

CHANNELS_FIRST = ["resnet8", "wrn_16_1", "vgg8", "mobilenetv2", "digits_cnn", "digits_cnn_small"]


def _pair(name, shape, num_classes=5):
    keras.utils.set_random_seed(3)
    last = get_model(name, num_classes, input_shape=shape)
    keras.utils.set_random_seed(3)
    first = get_model(name, num_classes, input_shape=shape, data_format="channels_first")
    return last, first


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", CHANNELS_FIRST)
def test_channels_first_model_computes_what_the_channels_last_one_does(name):
    shape = (8, 8, 1) if name.startswith("digits") else (32, 32, 3)
    last, first = _pair(name, shape)
    assert first.get_layer("to_channels_first") is not None
    assert first.input_shape == last.input_shape == (None, *shape)  # both take NHWC images
    assert first.get_layer("features").output.shape == last.get_layer("features").output.shape
    assert [w.shape for w in first.weights] == [w.shape for w in last.weights]
    x = np.random.default_rng(0).random((3, *shape)).astype("float32")
    for training in (False, True):
        np.testing.assert_allclose(_np(compiled_call(first, x, training)), _np(compiled_call(last, x, training)),
                                   rtol=1e-4, atol=1e-4)
    # The global setting is left as it was.
    assert keras.config.image_data_format() == "channels_last"


def test_channels_first_distillation_step_matches_channels_last():
    from keras_mixkd.distill import Distiller

    x = np.random.default_rng(1).random((8, 32, 32, 3)).astype("float32")
    y = np.random.default_rng(2).integers(0, 5, 8)
    losses = {}
    students = {}
    for data_format in ("channels_last", "channels_first"):
        keras.utils.set_random_seed(0)
        teacher = get_model("resnet8", 5, data_format=data_format)
        student = get_model("resnet8", 5, data_format=data_format)
        distiller = Distiller(teacher, student, loss="standardized", student_loss_weight=0.1)
        distiller.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        losses[data_format] = [float(distiller.train_on_batch(x, y, return_dict=True)["loss"]) for _ in range(2)]
        students[data_format] = student
    np.testing.assert_allclose(losses["channels_first"], losses["channels_last"], rtol=1e-4)
    for a, b in zip(students["channels_first"].weights, students["channels_last"].weights):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-3, atol=1e-5)


def test_channels_first_model_saves_and_loads(tmp_path):
    import keras_mixkd.models  # noqa: F401  (registers BatchNormalization for loading)

    _, first = _pair("resnet8", (32, 32, 3))
    path = str(tmp_path / "m.keras")
    first.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(_np(loaded(x, training=False)), _np(first(x, training=False)), rtol=1e-5, atol=1e-6)


def test_bad_data_format_is_refused():
    with pytest.raises(ValueError, match="data_format must be 'channels_last', 'channels_first', 'auto' or None, got 'NCHW'"):
        get_model("resnet8", 5, data_format="NCHW")
    with pytest.raises(ValueError, match="'shufflev2' is built channels-last only.*resnet8"):
        get_model("shufflev2", 5, data_format="channels_first")


@pytest.mark.parametrize("name", ["resnet8", "digits_cnn_small", "lenet5", "shufflev1"])
def test_auto_is_channels_first_on_pytorch_where_the_model_offers_it(name):
    from keras_mixkd.models import model_data_format
    from keras_mixkd.models import offers_channels_first
    from keras_mixkd.models import resolve_data_format

    expected = ("channels_first" if keras.backend.backend() == "torch" and offers_channels_first(name)
                else "channels_last")
    assert offers_channels_first(name) == (name in ("resnet8", "digits_cnn_small"))
    assert resolve_data_format("auto", name) == expected
    assert resolve_data_format(None, name) == "channels_last"
    shape = (8, 8, 1) if name.startswith("digits") else (32, 32, 3)
    assert model_data_format(get_model(name, 5, input_shape=shape, data_format="auto")) == expected


def test_resolve_data_format_refuses_unknown_models_and_formats():
    from keras_mixkd.models import resolve_data_format

    with pytest.raises(ValueError, match="Unknown model 'resnet9'"):
        resolve_data_format("auto", "resnet9")
    with pytest.raises(ValueError, match="got 'nhwc'"):
        resolve_data_format("nhwc", "resnet8")


def test_default_is_channels_last_whatever_the_global_setting():
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        model = get_model("resnet8", 5)
    finally:
        keras.config.set_image_data_format(previous)
    assert "to_channels_first" not in [layer.name for layer in model.layers]
    assert model.get_layer("stem_conv").data_format == "channels_last"


@pytest.mark.parametrize("axis", [1, -1])
def test_batch_normalization_matches_keras(axis):
    """Outputs, moving statistics and gradients of the fused layer equal Keras's own (every backend)."""
    rng = np.random.default_rng(4)
    shape = (6, 3, 5, 4) if axis == 1 else (6, 5, 4, 3)
    x = (rng.standard_normal(shape) * 3 + 1).astype("float32")
    ours = BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)
    reference = keras.layers.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)
    for layer in (ours, reference):
        layer.build(shape)
        layer.gamma.assign(rng.uniform(0.5, 2.0, 3).astype("float32"))
        layer.beta.assign(rng.uniform(-1.0, 1.0, 3).astype("float32"))
    reference.set_weights(ours.get_weights())
    for training in (True, False, True):
        np.testing.assert_allclose(_np(ours(x, training=training)), _np(reference(x, training=training)),
                                   rtol=1e-5, atol=1e-5)
    for a, b in zip(ours.weights, reference.weights):  # gamma, beta, moving mean and variance
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-6)
    # The moving variance uses the batch's biased variance, as Keras does (float64 NumPy).
    reduce = (0, 2, 3) if axis == 1 else (0, 1, 2)
    fresh = BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)
    fresh(x, training=True)
    np.testing.assert_allclose(_np(fresh.moving_variance), 0.9 + 0.1 * x.astype("float64").var(axis=reduce),
                               rtol=1e-5)
    if keras.backend.backend() == "torch":
        import torch

        grads = []
        for layer in (ours, reference):
            inputs = torch.tensor(x, requires_grad=True)
            layer(inputs, training=True).pow(2).sum().backward()
            grads.append((inputs.grad.numpy(), layer.gamma.value.grad.numpy()))
        np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-3, atol=1e-3)


def test_zoo_uses_the_fused_layer_only_under_torch():
    model = get_model("resnet8", 5)
    layer = model.get_layer("stem_bn")
    assert isinstance(layer, keras.layers.BatchNormalization)
    assert (type(layer) is BatchNormalization) == (keras.backend.backend() == "torch")


# ------------------------------------------------------------------ the study's data_format


def _study_config(**overrides):
    from tests.helpers import tiny_config

    return tiny_config(**{"teacher.augmentations": ["none"], "teacher.epochs": 1, "distillation": [{"name": "kd"}],
                          **overrides})


@pytest.mark.backend_independent
def test_study_data_format_defaults_to_auto_and_falls_back_for_feature_recipes():
    from keras_mixkd.study.config import study_data_format

    assert _study_config()["data_format"] == "auto"
    assert study_data_format(_study_config()) == "auto"
    fitnets = _study_config(distillation=[{"name": "kd"}, {"name": "fit", "feature_loss_weight": 1.0}])
    assert study_data_format(fitnets) == "channels_last"
    assert study_data_format(_study_config(data_format="channels_first")) == "channels_first"


@pytest.mark.backend_independent
def test_study_refuses_bad_data_formats_early():
    from keras_mixkd.study import RecipeError
    from keras_mixkd.study.config import check_names

    with pytest.raises(RecipeError, match="data_format.*expected 'auto', 'channels_last' or 'channels_first', "
                                          "got 'NCHW'"):
        _study_config(data_format="NCHW")
    lenet = _study_config(data_format="channels_first", pairs=[{"teacher": "digits_cnn", "student": "lenet5"}])
    with pytest.raises(RecipeError, match=r"pairs\[0\]\.student: model 'lenet5' is built channels-last only"):
        check_names(lenet)
    fitnets = _study_config(data_format="channels_first",
                            distillation=[{"name": "fit", "feature_loss_weight": 1.0}])
    with pytest.raises(RecipeError, match="channels_first.*feature-based recipe"):
        check_names(fitnets)


@pytest.mark.slow
def test_a_channels_first_study_gives_the_channels_last_results(tmp_path):
    """Every cell of a tiny study built channels-first ends where the channels-last one does, up to round-off."""
    from keras_mixkd.study import run_study

    import json

    results = {}
    for data_format in ("channels_last", "channels_first"):
        run_study(_study_config(data_format=data_format), runs_dir=str(tmp_path), name=data_format, verbose=0,
                  report=data_format == "channels_first", print_fn=lambda *a: None)
        cells = tmp_path / data_format / "cells"
        results[data_format] = {path.stem: json.loads(path.read_text()) for path in cells.glob("*.json")}
        assert {r["data_format"] for r in results[data_format].values()} == {data_format}
    assert len(results["channels_last"]) == 3  # teacher, student alone, kd student (one seed)
    assert sorted(results["channels_first"]) == sorted(results["channels_last"])
    for key, first in results["channels_first"].items():
        last = results["channels_last"][key]
        # One step agrees to 1e-4 (test above); here the teacher's round-off, after an epoch of
        # training, compounds into its student's two epochs (TensorFlow: 6e-4 measured).
        np.testing.assert_allclose([row["loss"] for row in first["history"]],
                                   [row["loss"] for row in last["history"]], rtol=2e-3, err_msg=key)
    with open(tmp_path / "channels_first" / "report.md", encoding="utf-8") as f:
        assert "built their model channels-first" in f.read()
