"""`keras_mixkd.optimizers` against torch.optim and float64 NumPy, and in the study's recipes."""

import os

import keras
import numpy as np
import pytest
import torch

from keras_mixkd import optimizers
from keras_mixkd.study import config as study_config
from keras_mixkd.study.backup import ResumableBackup
from keras_mixkd.study.training import build_optimizer

SHAPES = [(3, 4), (4,), (5,)]  # a kernel, a bias, a batch-norm gamma: all decayed, as in PyTorch
STEPS = 6
TOLERANCE = 1e-6


def problem(seed, offset=0.0):
    rng = np.random.default_rng(seed)
    weights = [(offset + rng.normal(size=s)).astype("float32") for s in SHAPES]
    grads = [[rng.normal(size=s).astype("float32") for s in SHAPES] for _ in range(STEPS)]
    return weights, grads


def schedule():
    return keras.optimizers.schedules.PiecewiseConstantDecay([2, 4], [0.1, 0.01, 0.001])


def rates(learning_rate):
    if callable(learning_rate):
        return [float(keras.ops.convert_to_numpy(learning_rate(t))) for t in range(STEPS)]
    return [float(learning_rate)] * STEPS


def run_keras(optimizer, weights, grads):
    variables = [keras.Variable(w) for w in weights]
    optimizer.build(variables)
    history = []
    for step_grads in grads:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in step_grads], variables)
        history.append([keras.ops.convert_to_numpy(v).copy() for v in variables])
    return history


def run_torch(make, weights, grads, lrs):
    params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    optimizer = make(params)
    history = []
    for lr, step_grads in zip(lrs, grads):
        for group in optimizer.param_groups:
            group["lr"] = lr
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        optimizer.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


def numpy_sgd(weights, grads, lrs, momentum, wd, mode, nesterov=False):
    """float64, from the definition: torch.optim.SGD (l2) or decay-then-step (decoupled)."""
    w = [np.asarray(x, np.float64) for x in weights]
    buffers = [np.zeros_like(x) for x in w]
    history = []
    for lr, step_grads in zip(lrs, grads):
        for i, g in enumerate(step_grads):
            g = np.asarray(g, np.float64)
            if mode == "l2":
                g = g + wd * w[i]
            else:
                w[i] = w[i] - lr * wd * w[i]
            buffers[i] = momentum * buffers[i] + g
            step = g + momentum * buffers[i] if nesterov else buffers[i]
            w[i] = w[i] - lr * step
        history.append([x.copy() for x in w])
    return history


def assert_histories_close(ours, reference, tolerance=TOLERANCE):
    for step, (a, b) in enumerate(zip(ours, reference)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=tolerance, atol=tolerance, err_msg=f"step {step}")


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("scheduled", [False, True])
def test_sgd_matches_torch_sgd_and_numpy(nesterov, scheduled):
    weights, grads = problem(0, offset=3.0)
    wd = 5e-2  # large, so that a wrong decay shows well above the tolerance
    learning_rate = schedule() if scheduled else 0.05
    lrs = rates(learning_rate)
    ours = run_keras(optimizers.SGD(learning_rate, momentum=0.9, nesterov=nesterov, weight_decay=wd), weights,
                     grads)
    reference = run_torch(
        lambda p: torch.optim.SGD(p, lr=lrs[0], momentum=0.9, nesterov=nesterov, weight_decay=wd),
        weights, grads, lrs)
    assert_histories_close(ours, reference)
    assert_histories_close(ours, numpy_sgd(weights, grads, lrs, 0.9, wd, "l2", nesterov))
    # Keras's own SGD decays decoupled: far from PyTorch's numbers.
    keras_sgd = run_keras(keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=nesterov, weight_decay=wd),
                          weights, grads)
    assert np.max(np.abs(keras_sgd[-1][0] - reference[-1][0])) > 100 * TOLERANCE


def test_sgd_decoupled_mode_and_no_momentum_match_numpy():
    weights, grads = problem(1, offset=-2.0)
    lrs = rates(schedule())
    ours = run_keras(optimizers.SGD(schedule(), momentum=0.9, weight_decay=5e-2, weight_decay_mode="decoupled"),
                     weights, grads)
    assert_histories_close(ours, numpy_sgd(weights, grads, lrs, 0.9, 5e-2, "decoupled"))
    plain = run_keras(optimizers.SGD(schedule(), weight_decay=5e-2), weights, grads)
    assert_histories_close(plain, numpy_sgd(weights, grads, lrs, 0.0, 5e-2, "l2"))
    reference = run_torch(lambda p: torch.optim.SGD(p, lr=lrs[0], weight_decay=5e-2), weights, grads, lrs)
    assert_histories_close(plain, reference)


def test_adam_l2_matches_torch_adam():
    weights, grads = problem(2, offset=1.0)
    lrs = rates(schedule())
    ours = run_keras(optimizers.Adam(schedule(), weight_decay=5e-2, epsilon=1e-8), weights, grads)
    reference = run_torch(lambda p: torch.optim.Adam(p, lr=lrs[0], weight_decay=5e-2), weights, grads, lrs)
    # Adam's m / sqrt(v) amplifies float32 round-off (and the two place epsilon
    # slightly differently): 1e-5 here, where SGD agrees to 1e-6.
    assert_histories_close(ours, reference, 1e-5)
    decoupled = run_keras(optimizers.Adam(schedule(), weight_decay=5e-2, weight_decay_mode="decoupled", epsilon=1e-8),
                          weights, grads)
    reference = run_torch(lambda p: torch.optim.AdamW(p, lr=lrs[0], weight_decay=5e-2), weights, grads, lrs)
    assert_histories_close(decoupled, reference, 1e-5)
    assert np.max(np.abs(ours[-1][0] - decoupled[-1][0])) > 1e-3  # the two modes differ


def test_optimizers_reject_bad_weight_decay():
    with pytest.raises(ValueError, match="weight_decay_mode must be one of.*received 'L2'"):
        optimizers.SGD(0.1, weight_decay=1e-4, weight_decay_mode="L2")
    with pytest.raises(ValueError, match="weight_decay must be a number >= 0 or None; received -0.1"):
        optimizers.Adam(0.1, weight_decay=-0.1)
    with pytest.raises(ValueError, match="received '5e-4'"):
        optimizers.SGD(0.1, weight_decay="5e-4")


def test_config_round_trip_and_keras_file(tmp_path):
    optimizer = optimizers.SGD(schedule(), momentum=0.9, nesterov=True, weight_decay=5e-4)
    config = optimizer.get_config()
    assert config["weight_decay"] == 5e-4 and config["weight_decay_mode"] == "l2"
    again = optimizers.SGD.from_config(keras.optimizers.serialize(optimizer)["config"])
    assert (again.l2_weight_decay, again.weight_decay, again.weight_decay_mode) == (5e-4, None, "l2")
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(
        optimizers.Adam(1e-3, weight_decay=1e-4, weight_decay_mode="decoupled")))
    assert isinstance(restored, optimizers.Adam) and restored.weight_decay == 1e-4

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=optimizer, loss="mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 3), "float32")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is optimizers.SGD
    assert loaded.optimizer.get_config()["weight_decay_mode"] == "l2"
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_resumed_run_restores_sgd_state(tmp_path):
    backup = os.path.join(tmp_path, "backup")
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.zeros((8, 3), "float32")

    def compiled():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(optimizer=optimizers.SGD(schedule(), momentum=0.9, weight_decay=5e-2), loss="mse")
        return model

    first = compiled()
    first.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[ResumableBackup(backup)])
    resumed = compiled()
    restore = ResumableBackup(backup)
    resumed.fit(x, y, epochs=1, initial_epoch=restore.resume_epoch, batch_size=4, verbose=0,
                callbacks=[restore])  # nothing left
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 2
    for a, b in zip(first.optimizer.variables + first.weights, resumed.optimizer.variables + resumed.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_recipes_choose_the_weight_decay_mode():
    config = study_config.load_recipe("digits", smoke=True)
    assert config["teacher"]["optimizer"]["weight_decay_mode"] in ("default", "l2")
    sgd = build_optimizer(config["teacher"]["optimizer"], "digits_cnn", steps_per_epoch=3)
    assert type(sgd) is optimizers.SGD and sgd.weight_decay_mode == "l2" and sgd.weight_decay is None
    assert sgd.l2_weight_decay == config["teacher"]["optimizer"]["weight_decay"]
    adamw = study_config.load_recipe("digits", smoke=True, overrides={
        "teacher.optimizer.name": "adamw", "teacher.optimizer.weight_decay_mode": "default"})
    assert study_config.weight_decay_mode(adamw["teacher"]["optimizer"]) == "decoupled"
    assert isinstance(build_optimizer(adamw["teacher"]["optimizer"], "digits_cnn", 3), keras.optimizers.AdamW)
    decoupled = study_config.load_recipe(
        "digits", smoke=True, overrides={"student.optimizer.weight_decay_mode": "decoupled"})
    sgd = build_optimizer(decoupled["student"]["optimizer"], "digits_cnn_small", 3)
    assert sgd.weight_decay_mode == "decoupled" and sgd.weight_decay == decoupled["student"]["optimizer"][
        "weight_decay"]
    for name in study_config.list_recipes():
        for role in ("teacher", "student"):
            optimizer = study_config.load_recipe(name)[role]["optimizer"]
            if optimizer["name"] == "sgd":
                assert study_config.weight_decay_mode(optimizer) == "l2", (name, role)


def test_recipe_refuses_bad_weight_decay_mode():
    with pytest.raises(study_config.RecipeError, match=r"weight_decay_mode.*expected one of default, l2, "
                                                       r"decoupled.*got 'coupled'"):
        study_config.load_recipe("digits", overrides={"teacher.optimizer.weight_decay_mode": "coupled"})
    with pytest.raises(study_config.RecipeError, match='adamw decays decoupled by definition; got '
                                                       'weight_decay_mode = "l2"'):
        study_config.load_recipe("digits", overrides={"teacher.optimizer.name": "adamw",
                                                      "teacher.optimizer.weight_decay_mode": "l2"})
