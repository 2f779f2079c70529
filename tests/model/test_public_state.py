"""The public state of models, modules and optimizers that training saves and restores."""

import numpy as np
import pytest

import rnnfast
from rnnfast import optim


def test_model_rng_state_round_trip_repeats_the_dropout_masks():
    model = rnnfast.RNNModel(4, 6, 4, 2, dropout=0.5, cell="gru", seed=1)
    X, Y = np.array([[0, 1, 2, 3]]), np.array([[1, 2, 3, 0]])
    state = model.get_rng_state()
    first = model.loss_and_grads(X, Y)[0]
    second = model.loss_and_grads(X, Y)[0]
    assert first != second                       # a new mask each call
    model.set_rng_state(state)
    assert model.loss_and_grads(X, Y)[0] == first


def test_fused_model_has_no_rng_state():
    model = rnnfast.RNNModel(3, 4, 3)
    assert model.get_rng_state() is None
    model.set_rng_state(None)


def test_module_rng_state_round_trip():
    rnn = rnnfast.LSTM(3, 4, 2, dropout=0.5, seed=0)
    x = np.ones((5, 2, 3))
    state = rnn.get_rng_state()
    a = rnn(x)[0]
    rnn.set_rng_state(state)
    np.testing.assert_array_equal(rnn(x)[0], a)


def test_model_state_dict_round_trip_and_refusals():
    a, b = rnnfast.RNNModel(3, 4, 3, cell="lstm", seed=0), rnnfast.RNNModel(3, 4, 3, cell="lstm")
    saved = a.state_dict()
    saved["Wyh"] += 1                            # a copy: the model is unchanged
    assert not np.array_equal(saved["Wyh"], a.parameters["Wyh"])
    b.load_state_dict(a.state_dict())
    for name, p in a.parameters.items():
        np.testing.assert_array_equal(b.parameters[name], p)
    bad = dict(a.state_dict(), by=np.zeros((3, 1), np.float64))
    before = b.state_dict()
    with pytest.raises(ValueError, match="parameter by is float64"):
        b.load_state_dict(dict(bad, Wyh=np.zeros((3, 4), np.float32)))
    for name, p in b.parameters.items():          # nothing changed
        np.testing.assert_array_equal(p, before[name])
    with pytest.raises(KeyError, match="missing"):
        b.load_state_dict({"Wyh": before["Wyh"]})


def test_optimizer_hyperparameters_are_public_and_a_copy():
    p = {"w": np.zeros(3)}
    opt = optim.Adam(p, lr=0.5, betas=(0.8, 0.9))
    hyper = opt.hyperparameters
    assert hyper == {"lr": 0.5, "betas": (0.8, 0.9), "eps": 1e-8, "weight_decay": 0.0,
                     "amsgrad": False}
    hyper["lr"] = 1.0
    assert opt.lr == 0.5
    saved_group = opt.state_dict()["param_groups"][0]     # torch's layout
    assert {k: saved_group[k] for k in opt.hyperparameters} == opt.hyperparameters


def test_bound_parameter_is_the_one_the_module_reads():
    rnn = rnnfast.GRU(2, 3)
    w = np.zeros_like(rnn.weight_hh_l0)
    rnn.bind_parameter("weight_hh_l0", w)
    assert rnn.weight_hh_l0 is w
    with pytest.raises(ValueError, match="weight_ih_l0 must be a C-contiguous float32"):
        rnn.bind_parameter("weight_ih_l0", np.zeros((9, 2)))
