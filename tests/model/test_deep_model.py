"""Deep char models: RNNModel with layers, relu and dropout on the module kernels,
against the NumPy module twins (no torch) and torch (nn.RNN/LSTM/GRU + Linear + CrossEntropy)."""

import copy

import numpy as np
import pytest

from rnnfast import reference as ref
from rnnfast.model import RNNModel
from rnnfast.modules import cell_names
from tests.helpers import assert_close

CONFIGS = [("rnn", 2, "tanh"), ("rnn", 3, "relu"), ("rnn", 1, "relu"), ("lstm", 2, "tanh"),
           ("gru", 3, "tanh")]


def twin(model, X, Y, masks=None):
    """Loss and parameter gradients by the float64 module twins and NumPy."""
    p = {k: v.astype(np.float64) for k, v in model.parameters.items()}
    m, T = Y.shape
    L, H = model.num_layers, model.hidden_size
    x = np.eye(model.input_size)[X].transpose(1, 0, 2)
    zeros = np.zeros((L, m, H))
    if model.cell == "lstm":
        out, _, _, cache = ref.lstm_module_forward(x, zeros, zeros, p, L, dropout_masks=masks)
    elif model.cell == "gru":
        out, _, cache = ref.gru_module_forward(x, zeros, p, L, dropout_masks=masks)
    else:
        out, _, cache = ref.rnn_module_forward(x, zeros, p, L, nonlinearity=model.nonlinearity,
                                               dropout_masks=masks)
    Hs = out.transpose(1, 0, 2).reshape(m * T, H)
    logits = Hs @ p["Wyh"].T + p["by"][:, 0]
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    labels = Y.reshape(-1)
    loss = -np.mean(logp[np.arange(m * T), labels])
    d = np.exp(logp)
    d[np.arange(m * T), labels] -= 1
    d /= m * T
    grads = {"dWyh": d.T @ Hs, "dby": d.sum(axis=0)[:, None]}
    dH = (d @ p["Wyh"]).reshape(m, T, H).transpose(1, 0, 2)
    if model.cell == "lstm":
        g = ref.lstm_module_backward(dH, zeros, zeros, cache)
    elif model.cell == "gru":
        g = ref.gru_module_backward(dH, zeros, cache)
    else:
        g = ref.rnn_module_backward(dH, zeros, cache)
    grads.update({"d" + k: v for k, v in g.items() if k not in ("input", "hx", "cx")})
    return loss, grads


@pytest.mark.parametrize("cell, layers, nonlinearity", CONFIGS, ids=lambda v: str(v))
def test_deep_models_match_the_twins(cell, layers, nonlinearity, dtype):
    model = RNNModel(7, 6, 5, layers, nonlinearity, cell=cell, dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    X, Y = rng.integers(0, 7, (3, 8)), rng.integers(0, 5, (3, 8))
    loss, grads = model.loss_and_grads(X, Y)
    expected_loss, expected = twin(model, X, Y)
    assert loss == pytest.approx(expected_loss, rel=1e-5 if dtype == np.float32 else 1e-12)
    for key, value in expected.items():
        assert_close(grads[key], value, dtype, key)


@pytest.mark.parametrize("cell", cell_names())
def test_dropout_uses_the_same_masks_as_the_twin(cell):
    model = RNNModel(7, 6, 5, 3, dropout=0.3, cell=cell, dtype=np.float64, seed=4)
    rng = np.random.default_rng(2)
    X, Y = rng.integers(0, 7, (3, 8)), rng.integers(0, 5, (3, 8))
    dropout_rng = copy.deepcopy(model._rnn._dropout_rng)
    loss, grads = model.loss_and_grads(X, Y)      # keeps nothing: replay its masks
    model._rnn._dropout_rng = dropout_rng
    model._rnn(np.eye(7)[X])
    masks = [layer["mask"].transpose(1, 0, 2) for layer in model._rnn._cache["layers"][:-1]]
    expected_loss, expected = twin(model, X, Y, masks)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for key, value in expected.items():
        assert_close(grads[key], value, np.float64, key)
    model.eval()
    eval_loss, _ = model.loss_and_grads(X, Y)
    assert eval_loss == pytest.approx(twin(model, X, Y)[0], rel=1e-12)


@pytest.mark.parametrize("cell, layers, nonlinearity", CONFIGS, ids=lambda v: str(v))
def test_deep_models_match_torch_and_round_trip(cell, layers, nonlinearity, tmp_path):
    torch = pytest.importorskip("torch")
    model = RNNModel(7, 6, 5, layers, nonlinearity, cell=cell, dtype=np.float64, seed=1)
    rnn, linear = model.to_torch()
    assert rnn.num_layers == layers
    rng = np.random.default_rng(2)
    X, Y = rng.integers(0, 7, (3, 8)), rng.integers(0, 5, (3, 8))
    x = torch.nn.functional.one_hot(torch.tensor(X), 7).double()
    logits = linear(rnn(x)[0])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), torch.tensor(Y).reshape(-1))
    loss.backward()
    ours, grads = model.loss_and_grads(X, Y)
    assert ours == pytest.approx(loss.item(), rel=1e-12)
    theirs = {"d" + n: p.grad.numpy() for n, p in rnn.named_parameters()}
    theirs["dWyh"], theirs["dby"] = linear.weight.grad.numpy(), linear.bias.grad.numpy()[:, None]
    for key, value in theirs.items():
        assert_close(grads[key], value, np.float64, key)
    back = RNNModel.from_torch(rnn, linear)
    assert (back.cell, back.num_layers, back.nonlinearity) == (cell, layers, nonlinearity)
    model.save(tmp_path / "m.npz")
    loaded = RNNModel.load(tmp_path / "m.npz")
    assert (loaded.cell, loaded.num_layers, loaded.nonlinearity) == (cell, layers, nonlinearity)
    for name, a in model.parameters.items():
        np.testing.assert_array_equal(loaded.parameters[name], a)
        np.testing.assert_array_equal(back.parameters[name], a)


def test_state_of_a_deep_model_carries_every_layer():
    model = RNNModel(7, 6, 5, 2, cell="lstm", dtype=np.float64, seed=1)
    X = np.random.default_rng(0).integers(0, 7, (3, 8))
    whole = model.forward(X)
    first, state = model.forward(X[:, :5], return_state=True)
    assert state[0].shape == (2, 3, 6) and state[1].shape == (2, 3, 6)
    rest = model.forward(X[:, 5:], state)
    np.testing.assert_allclose(np.concatenate([first, rest], axis=1), whole, rtol=1e-12)
    with pytest.raises(ValueError, match="num_layers, batch, hidden_size"):
        model.forward(X, (np.zeros((3, 6)), np.zeros((3, 6))))


def test_configuration_errors():
    with pytest.raises(ValueError, match="nonlinearity must be"):
        RNNModel(3, 4, 3, nonlinearity="gelu")
    with pytest.raises(ValueError, match="nonlinearity is for cell='rnn'"):
        RNNModel(3, 4, 3, nonlinearity="relu", cell="gru")
    with pytest.raises(ValueError, match="num_layers"):
        RNNModel(3, 4, 3, 0)
    assert "num_layers=2" in repr(RNNModel(3, 4, 3, 2))
