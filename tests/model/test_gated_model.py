"""RNNModel with LSTM and GRU cells: loss and gradients against the NumPy twins (no torch)."""

import numpy as np
import pytest

import rnnfast
from rnnfast import reference as ref
from rnnfast.model import RNNModel
from rnnfast.optim import Adam
from tests.helpers import assert_close


def twin_loss(model, X, Y, h0):
    """Loss and gradients of the model by the float64 module twins and NumPy."""
    p = {k: v.astype(np.float64) for k, v in model.parameters.items()}
    m, T = Y.shape
    x = X.astype(np.float64) if X.ndim == 3 else np.eye(model.input_size)[X]
    x = x.transpose(1, 0, 2)
    if model.cell == "lstm":
        h, c = h0
        out, _, _, cache = ref.lstm_module_forward(x, h[None], c[None], p, 1)
    else:
        out, _, cache = ref.gru_module_forward(x, h0[None], p, 1)
    H = out.transpose(1, 0, 2)
    logits = H @ p["Wyh"].T + p["by"][:, 0]
    z = logits - logits.max(axis=2, keepdims=True)
    log_softmax = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    loss = -np.mean(np.take_along_axis(log_softmax, Y[:, :, None], axis=2))
    d_logits = np.exp(log_softmax)
    np.put_along_axis(d_logits, Y[:, :, None],
                      np.take_along_axis(d_logits, Y[:, :, None], axis=2) - 1, axis=2)
    d_logits /= m * T
    grads = {"dWyh": d_logits.reshape(m * T, -1).T @ H.reshape(m * T, -1),
             "dby": d_logits.sum(axis=(0, 1))[:, None]}
    dH = (d_logits @ p["Wyh"]).transpose(1, 0, 2)
    if model.cell == "lstm":
        g = ref.lstm_module_backward(dH, np.zeros((1, m, model.hidden_size)),
                                     np.zeros((1, m, model.hidden_size)), cache)
        grads["dc0"] = g["cx"][0]
    else:
        g = ref.gru_module_backward(dH, np.zeros((1, m, model.hidden_size)), cache)
    grads["dh0"] = g["hx"][0]
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        grads["d" + name] = g[name]
    if X.ndim == 3:
        grads["dx"] = g["input"].transpose(1, 0, 2)
    return loss, grads


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("indices", [True, False])
def test_loss_and_grads_match_the_twins(cell, indices, dtype):
    model = RNNModel(6, 5, 4, cell=cell, dtype=dtype, seed=2)
    rng = np.random.default_rng(3)
    X = rng.integers(0, 6, (3, 7)) if indices else rng.standard_normal((3, 7, 6))
    Y = rng.integers(0, 4, (3, 7))
    h = rng.standard_normal((3, 5))
    h0 = (h, rng.standard_normal((3, 5))) if cell == "lstm" else h
    loss, grads, state = model.loss_and_grads(X, Y, h0, return_state=True)
    expected_loss, expected = twin_loss(model, X, Y, h0)
    assert loss == pytest.approx(expected_loss, rel=1e-5 if dtype == np.float32 else 1e-12)
    assert set(grads) == set(expected)
    for key, value in expected.items():
        assert_close(grads[key], value, dtype, key)
    logits, state2 = model.forward(X, h0, return_state=True)
    pairs = zip(state if cell == "lstm" else [state], state2 if cell == "lstm" else [state2],
                strict=True)
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_apple_example_trains_with_every_cell(cell):
    model = RNNModel(5, 16, 5, cell=cell, seed=0)
    optimizer = Adam(model.parameters, lr=0.05)
    X, Y = np.array([[1, 4, 4, 3, 2]]), np.array([[4, 4, 3, 2, 0]])
    for _ in range(150):
        loss, grads = model.loss_and_grads(X, Y)
        optimizer.step(grads)
    assert loss < 0.01
    np.testing.assert_array_equal(model.predict(X), Y)


def test_cell_errors():
    with pytest.raises(ValueError, match="cell must be one of"):
        RNNModel(3, 4, 3, cell="transformer")
    model = RNNModel(3, 4, 3, cell="lstm")
    with pytest.raises(TypeError, match=r"tuple \(h, c\)"):
        model.forward(np.zeros((2, 5), int), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="h0"):
        model.forward(np.zeros((2, 5), int), (np.zeros((2, 3)), np.zeros((2, 4))))
    with pytest.raises(ValueError, match="X"):
        model.forward(np.full((2, 5), 3))                  # a class index out of range
    assert "cell='lstm'" in repr(model)
    assert isinstance(rnnfast.RNNModel(3, 4, 3, cell="gru")._rnn, rnnfast.GRU)
