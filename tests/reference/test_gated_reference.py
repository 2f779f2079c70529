"""The NumPy twins of one nn.LSTM / nn.GRU layer direction, checked in float64.

Against central finite differences (no torch needed), and against torch's
own nn.LSTM / nn.GRU (forward and autograd) where torch is installed.
"""

import numpy as np
import pytest

from rnnfast import reference as ref
from tests.helpers import numeric_grad

T, N, N_IN, H = 4, 3, 2, 3
LENGTHS = np.array([4, 1, 3])


def lstm_problem(proj, bias, seed=0):
    rng = np.random.default_rng(seed)
    P = proj or H
    arrays = {
        "input": rng.standard_normal((T, N, N_IN)),
        "hx": 0.5 * rng.standard_normal((N, P)),
        "cx": 0.5 * rng.standard_normal((N, H)),
        "weight_ih": 0.6 * rng.standard_normal((4 * H, N_IN)),
        "weight_hh": 0.6 * rng.standard_normal((4 * H, P)),
    }
    if bias:
        arrays["bias_ih"] = 0.3 * rng.standard_normal(4 * H)
        arrays["bias_hh"] = 0.3 * rng.standard_normal(4 * H)
    if proj:
        arrays["weight_hr"] = 0.6 * rng.standard_normal((P, H))
    return arrays


def gru_problem(bias, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "input": rng.standard_normal((T, N, N_IN)),
        "hx": 0.5 * rng.standard_normal((N, H)),
        "weight_ih": 0.6 * rng.standard_normal((3 * H, N_IN)),
        "weight_hh": 0.6 * rng.standard_normal((3 * H, H)),
    }
    if bias:
        arrays["bias_ih"] = 0.3 * rng.standard_normal(3 * H)
        arrays["bias_hh"] = 0.3 * rng.standard_normal(3 * H)
    return arrays


def run_lstm(a, reverse, lengths):
    return ref.lstm_layer_forward(a["input"], a["hx"], a["cx"], a["weight_ih"], a["weight_hh"],
                                  a.get("bias_ih"), a.get("bias_hh"), a.get("weight_hr"),
                                  reverse, lengths)


def run_gru(a, reverse, lengths):
    return ref.gru_layer_forward(a["input"], a["hx"], a["weight_ih"], a["weight_hh"],
                                 a.get("bias_ih"), a.get("bias_hh"), reverse, lengths)


CASES = [(False, None), (True, None), (False, LENGTHS), (True, LENGTHS)]


@pytest.mark.parametrize("reverse, lengths", CASES)
@pytest.mark.parametrize("proj, bias", [(0, True), (2, True), (0, False), (2, False)])
def test_lstm_layer_backward_matches_finite_differences(proj, bias, reverse, lengths):
    a = lstm_problem(proj, bias)
    rng = np.random.default_rng(9)
    out, h_n, c_n, cache = run_lstm(a, reverse, lengths)
    d_out, d_hn, d_cn = (rng.standard_normal(z.shape) for z in (out, h_n, c_n))
    grads = ref.lstm_layer_backward(d_out, d_hn, d_cn, cache)

    def loss():
        o, hn, cn, _ = run_lstm(a, reverse, lengths)
        return float(np.sum(d_out * o) + np.sum(d_hn * hn) + np.sum(d_cn * cn))

    assert set(grads) == set(a)
    for key, array in a.items():
        np.testing.assert_allclose(grads[key], numeric_grad(loss, array),
                                   rtol=1e-6, atol=1e-8, err_msg=key)


@pytest.mark.parametrize("reverse, lengths", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_gru_layer_backward_matches_finite_differences(bias, reverse, lengths):
    a = gru_problem(bias)
    rng = np.random.default_rng(9)
    out, h_n, cache = run_gru(a, reverse, lengths)
    d_out, d_hn = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    grads = ref.gru_layer_backward(d_out, d_hn, cache)

    def loss():
        o, hn, _ = run_gru(a, reverse, lengths)
        return float(np.sum(d_out * o) + np.sum(d_hn * hn))

    assert set(grads) == set(a)
    for key, array in a.items():
        np.testing.assert_allclose(grads[key], numeric_grad(loss, array),
                                   rtol=1e-6, atol=1e-8, err_msg=key)


def test_padded_steps_carry_both_lstm_states():
    a = lstm_problem(0, True)
    out, h_n, c_n, cache = run_lstm(a, False, LENGTHS)
    # sequence 1 has one valid step: its final states are those of step 0
    np.testing.assert_array_equal(h_n[1], out[0, 1])
    np.testing.assert_array_equal(c_n[1], cache["cells"][0, 1])
    assert not out[1:, 1].any()


# -- torch as a second oracle --------------------------------------------------

def torch_layer(kind, a, reverse, lengths):
    """torch's output, final states and autograd gradients for the same layer."""
    torch = pytest.importorskip("torch")
    bias = "bias_ih" in a
    proj = a["weight_hr"].shape[0] if "weight_hr" in a else 0
    kwargs = {"proj_size": proj} if kind == "lstm" else {}
    module = getattr(torch.nn, kind.upper())(N_IN, H, bias=bias, bidirectional=reverse,
                                             dtype=torch.float64, **kwargs)
    suffix = "_l0_reverse" if reverse else "_l0"
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in a.items()}
    with torch.no_grad():
        for name, param in module.named_parameters():
            base = name[:-len("_l0_reverse")] if name.endswith("_l0_reverse") else name[:-3]
            param.copy_(tensors[base] if name.endswith(suffix) else torch.zeros_like(param))
    # the forward direction's slot gets zero weights and is sliced away
    functional = torch.func.functional_call
    params = {}
    for name, param in module.named_parameters():
        base = name[:-len("_l0_reverse")] if name.endswith("_l0_reverse") else name[:-3]
        params[name] = tensors[base] if name.endswith(suffix) else param.detach()
    D = 2 if reverse else 1
    def both(z):       # the layer's state in direction slot D-1, zeros in the other
        return torch.stack([torch.zeros_like(z), z]) if reverse else z[None]
    x = tensors["input"]
    hx = both(tensors["hx"]) if kind == "gru" else (both(tensors["hx"]), both(tensors["cx"]))
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths),
                                                         enforce_sorted=False)
        out, state = functional(module, params, (packed, hx))
        out = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)[0]
    else:
        out, state = functional(module, params, (x, hx))
    P = out.shape[2] // D
    out = out[:, :, (D - 1) * P:]
    states = [state] if kind == "gru" else list(state)
    states = [s[D - 1] for s in states]
    return tensors, out, states


@pytest.mark.parametrize("reverse, lengths", CASES)
@pytest.mark.parametrize("proj", [0, 2])
def test_lstm_twin_matches_torch(proj, reverse, lengths):
    a = lstm_problem(proj, True, seed=3)
    tensors, out, (h_n, c_n) = torch_layer("lstm", a, reverse, lengths)
    o, hn, cn, cache = run_lstm(a, reverse, lengths)
    for mine, theirs in ((o, out), (hn, h_n), (cn, c_n)):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    rng = np.random.default_rng(5)
    d_out, d_hn, d_cn = (rng.standard_normal(z.shape) for z in (o, hn, cn))
    loss = ((out * _t(d_out)).sum() + (h_n * _t(d_hn)).sum() + (c_n * _t(d_cn)).sum())
    loss.backward()
    grads = ref.lstm_layer_backward(d_out, d_hn, d_cn, cache)
    for key, t in tensors.items():
        np.testing.assert_allclose(grads[key], t.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=key)


@pytest.mark.parametrize("reverse, lengths", CASES)
def test_gru_twin_matches_torch(reverse, lengths):
    a = gru_problem(True, seed=3)
    tensors, out, (h_n,) = torch_layer("gru", a, reverse, lengths)
    o, hn, cache = run_gru(a, reverse, lengths)
    for mine, theirs in ((o, out), (hn, h_n)):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    rng = np.random.default_rng(5)
    d_out, d_hn = rng.standard_normal(o.shape), rng.standard_normal(hn.shape)
    ((out * _t(d_out)).sum() + (h_n * _t(d_hn)).sum()).backward()
    grads = ref.gru_layer_backward(d_out, d_hn, cache)
    for key, t in tensors.items():
        np.testing.assert_allclose(grads[key], t.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=key)


def _t(a):
    import torch
    return torch.tensor(a)
