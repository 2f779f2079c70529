"""rnnfast.RNN against its NumPy twin and, when installed, torch.nn.RNN autograd.

Every configuration (layers, directions, relu, bias, layouts, lengths,
dropout) runs against ``reference.rnn_module_forward/backward`` without torch;
the same cases run against torch as a second, independent oracle.
"""

import itertools

import numpy as np
import pytest

import rnnfast
from tests.helpers import (
    LAYOUTS,
    assert_close,
    dropout_masks,
    in_layout,
    load_numpy_weights,
    numpy_run,
)

try:
    import torch
except ImportError:
    torch = None


@pytest.fixture(params=["numpy", "torch"])
def oracle(request):
    """The name of the oracle a test compares with; torch's skips without torch."""
    if request.param == "torch" and torch is None:
        pytest.skip("torch is not installed (the NumPy twin is the first oracle)")
    return request.param


def needs_torch():
    if torch is None:
        pytest.skip("torch is not installed")
    return torch


def pair(dtype=np.float64, seed=0, **kwargs):
    """An rnnfast.RNN of ``dtype`` and its weights in float64 (the oracles' copy)."""
    r64 = rnnfast.RNN(4, 5, dtype=np.float64, seed=seed, **kwargs)
    r = rnnfast.RNN(4, 5, dtype=dtype, **kwargs)
    weights = r64.state_dict()
    r.load_state_dict(weights)
    return weights, r


def torch_run(r, weights, x, h0, go, gh, lengths=None, batched=True, masks=None):
    """The same by torch.nn.RNN autograd (float64)."""
    assert masks is None, "torch draws its own dropout masks"
    t = load_numpy_weights(torch.nn.RNN(r.input_size, r.hidden_size, num_layers=r.num_layers,
                                        nonlinearity=r.nonlinearity, bias=r.bias,
                                        batch_first=r.batch_first, bidirectional=r.bidirectional,
                                        dtype=torch.float64), weights)
    x = torch.tensor(x, requires_grad=True)
    h0 = torch.tensor(h0, requires_grad=True)
    if lengths is None:
        out, hn = t(x, h0)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.as_tensor(lengths), batch_first=r.batch_first, enforce_sorted=False)
        out, hn = t(packed, h0)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=r.batch_first, total_length=x.shape[1 if r.batch_first else 0])
    ((out * torch.tensor(go)).sum() + (hn * torch.tensor(gh)).sum()).backward()
    grads = {"input": x.grad.numpy(), "hx": h0.grad.numpy()}
    grads.update({k: v.grad.numpy() for k, v in t.named_parameters()})
    return out.detach().numpy(), hn.detach().numpy(), grads


RUNS = {"numpy": numpy_run, "torch": torch_run}


def problem(r, batched, seed=1, N=3, L=6):
    """Inputs ``(x, h0, go, gh)`` in ``r``'s layout."""
    rng = np.random.default_rng(seed)
    D = 2 if r.bidirectional else 1
    if batched:
        x_shape = (N, L, 4) if r.batch_first else (L, N, 4)
        h_shape = (D * r.num_layers, N, 5)
        o_shape = x_shape[:2] + (D * 5,)
    else:
        x_shape, h_shape, o_shape = (L, 4), (D * r.num_layers, 5), (L, D * 5)
    return (rng.standard_normal(x_shape), rng.standard_normal(h_shape),
            rng.standard_normal(o_shape), rng.standard_normal(h_shape))


def compare(oracle, weights, r, batched, dtype, lengths=None, seed=1):
    x, h0, go, gh = problem(r, batched, seed)
    def cast(a):
        return (a.astype(dtype))
    out, hn = r.forward(cast(x), cast(h0), lengths=lengths)
    masks = dropout_masks(r)                    # backward releases the forward's cache
    grads = r.backward(cast(go), cast(gh))
    out_e, hn_e, g_e = RUNS[oracle](r, weights, x, h0, go, gh, lengths, batched,
                                    masks if oracle == "numpy" else None)
    assert_close(out, out_e, dtype, "output")
    assert_close(hn, hn_e, dtype, "h_n")
    assert list(grads) == ["input", "hx"] + list(weights)
    assert set(g_e) == set(grads)
    for key, expected in g_e.items():
        assert_close(grads[key], expected, dtype, key)


GRID = list(itertools.product([1, 2, 3], [False, True], ["tanh", "relu"], [True, False],
                              [False, True], [True, False]))


@pytest.mark.parametrize("layers, bidirectional, nonlinearity, bias, batch_first, batched", GRID,
                         ids=lambda v: str(v))
def test_matches_oracle_float64(oracle, layers, bidirectional, nonlinearity, bias, batch_first,
                                batched):
    weights, r = pair(num_layers=layers, bidirectional=bidirectional, nonlinearity=nonlinearity,
                      bias=bias, batch_first=batch_first)
    compare(oracle, weights, r, batched, np.float64)


@pytest.mark.parametrize("layers, bidirectional, nonlinearity, bias, batch_first, batched",
                         [(2, True, "tanh", True, False, True),
                          (1, False, "relu", True, True, True),
                          (3, True, "relu", False, False, False)], ids=lambda v: str(v))
def test_float32_matches_oracle(oracle, layers, bidirectional, nonlinearity, bias, batch_first,
                                batched):
    weights, r = pair(dtype=np.float32, num_layers=layers, bidirectional=bidirectional,
                      nonlinearity=nonlinearity, bias=bias, batch_first=batch_first)
    compare(oracle, weights, r, batched, np.float32)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_variable_lengths_match_pack_padded_sequence(oracle, bidirectional, batch_first,
                                                     nonlinearity, dtype, products):
    weights, r = pair(dtype=dtype, num_layers=2, bidirectional=bidirectional,
                      batch_first=batch_first, nonlinearity=nonlinearity)
    compare(oracle, weights, r, True, dtype, lengths=np.array([6, 2, 4]))
    compare(oracle, weights, r, True, dtype, lengths=np.array([1, 6, 6]))
    out, _ = r(problem(r, True)[0].astype(dtype), lengths=np.array([6, 2, 4]))
    padded = out[1, 2:] if batch_first else out[2:, 1]
    assert np.all(padded == 0)                          # outputs past a length are zeros


@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (1, 5), (129, 2)],
                         ids=lambda s: f"L{s[0]}-N{s[1]}")
def test_odd_sizes(oracle, shape, products):
    L, N = shape
    weights, r = pair(num_layers=2, bidirectional=True)
    rng = np.random.default_rng(L)
    x, h0 = rng.standard_normal((L, N, 4)), rng.standard_normal((4, N, 5))
    go, gh = rng.standard_normal((L, N, 10)), rng.standard_normal((4, N, 5))
    out, hn = r(x, h0)
    grads = r.backward(go, gh)
    out_e, hn_e, g_e = RUNS[oracle](r, weights, x, h0, go, gh)
    assert_close(out, out_e, np.float64, "output")
    assert_close(hn, hn_e, np.float64, "h_n")
    for key, expected in g_e.items():
        assert_close(grads[key], expected, np.float64, key)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_dropout_matches_the_twin_with_the_same_masks(dtype):
    weights, r = pair(dtype=dtype, num_layers=3, bidirectional=True, dropout=0.4, seed=2)
    compare("numpy", weights, r, True, dtype)
    compare("numpy", weights, r, True, dtype, lengths=np.array([6, 3, 5]))


def test_single_sequence_hand_written_products(oracle, products):
    weights, r = pair(num_layers=2, bidirectional=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 1, 4))
    h0 = rng.standard_normal((4, 1, 5))
    out_e, hn_e, g_e = RUNS[oracle](r, weights, x, h0, np.ones((7, 1, 10)), np.ones((4, 1, 5)))
    out, hn = r(x, h0)
    assert_close(out, out_e, np.float64)
    grads = r.backward(np.ones((7, 1, 10)), np.ones((4, 1, 5)))
    for key in g_e:
        assert_close(grads[key], g_e[key], np.float64, key)


def test_state_dict_round_trip_both_ways():
    torch = needs_torch()
    _, r = pair(num_layers=2, bidirectional=True)
    state = r.state_dict()
    t2 = torch.nn.RNN(4, 5, num_layers=2, bidirectional=True, dtype=torch.float64)
    assert list(state) == list(t2.state_dict())
    load_numpy_weights(t2, state)
    for k, v in t2.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k])
    np.testing.assert_array_equal(r.weight_hh_l1_reverse, state["weight_hh_l1_reverse"])
    state["weight_hh_l0"][...] = 0                         # a copy: the module is unchanged
    assert np.any(r.weight_hh_l0 != 0)


def test_default_initialisation():
    r = rnnfast.RNN(3, 16, num_layers=2, bidirectional=True, seed=0)
    names = [n for n, _ in r.named_parameters()]
    assert names == [f"{w}_l{k}{sfx}" for k in range(2) for sfx in ("", "_reverse")
                     for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    if torch is not None:
        assert names == list(torch.nn.RNN(3, 16, num_layers=2, bidirectional=True).state_dict())
    for _name, a in r.named_parameters():
        assert a.dtype == np.float32 and np.all(np.abs(a) <= 0.25) and a.std() > 0.05
    again = rnnfast.RNN(3, 16, num_layers=2, bidirectional=True, seed=0)
    np.testing.assert_array_equal(r.weight_ih_l1, again.weight_ih_l1)


def test_dropout_is_seeded_used_in_backward_and_off_in_eval():
    r = rnnfast.RNN(4, 5, num_layers=3, dropout=0.5, dtype=np.float64, seed=3)
    x = np.random.default_rng(0).standard_normal((6, 2, 4))
    out_train, _ = r(x)
    out_train_2, _ = r(x)
    assert not np.allclose(out_train, out_train_2)         # a new mask per call
    masks = [layer["mask"] for layer in r._cache["layers"]]   # before backward releases them
    g = r.backward(np.ones_like(out_train_2))
    # the gradient of the last forward, checked by finite differences with its mask

    def loss(xv):
        r_eval = rnnfast.RNN(4, 5, num_layers=3, dtype=np.float64)
        r_eval.load_state_dict(r.state_dict())
        h = xv.transpose(1, 0, 2).reshape(-1, 4)
        for k in range(3):
            out, _ = _single_layer(r_eval, k, h.reshape(2, 6, -1))
            h = out.reshape(-1, 5) * (masks[k].reshape(-1, 5) if masks[k] is not None else 1)
        return h.sum()

    eps = 1e-6
    for idx in [(0, 0, 0), (3, 1, 2), (5, 0, 3)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        numeric = (loss(xp) - loss(xm)) / (2 * eps)
        assert abs(g["input"][idx] - numeric) < 1e-6
    r.eval()
    a, _ = r(x)
    b, _ = r(x)
    np.testing.assert_array_equal(a, b)


def _single_layer(r, k, x_batch_major):
    """Layer k alone (unidirectional), batch-major in and out."""
    single = rnnfast.RNN(x_batch_major.shape[2], 5, batch_first=True, dtype=np.float64)
    single.load_state_dict({n.replace(f"_l{k}", "_l0"): a for n, a in r.named_parameters()
                            if f"_l{k}" in n})
    return single(x_batch_major)


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(nonlinearity="sigmoid"), ValueError, "nonlinearity"),
    (dict(hidden_size=0), ValueError, "hidden_size"),
    (dict(num_layers=0), ValueError, "num_layers"),
    (dict(input_size=-2), ValueError, "input_size"),
    (dict(dropout=1.5), ValueError, "dropout"),
    (dict(dropout=-0.1), ValueError, "dropout"),
    (dict(dtype=np.int64), TypeError, "dtype"),
])
def test_bad_constructor_arguments(kwargs, error, pattern):
    args = dict(input_size=4, hidden_size=5)
    args.update(kwargs)
    with pytest.raises(error, match=pattern):
        rnnfast.RNN(**args)


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="no effect"):
        rnnfast.RNN(4, 5, dropout=0.2)


def test_bad_forward_and_backward_arguments():
    r = rnnfast.RNN(4, 5, num_layers=2)
    with pytest.raises(ValueError, match="input_size = 4"):
        r(np.zeros((6, 3, 3)))
    with pytest.raises(ValueError, match="2-D .* or 3-D"):
        r(np.zeros((6, 3, 4, 1)))
    with pytest.raises(ValueError, match=r"hx has shape \(1, 3, 5\); expected \(2, 3, 5\)"):
        r(np.zeros((6, 3, 4)), np.zeros((1, 3, 5)))
    with pytest.raises(ValueError, match="lengths must lie in"):
        r(np.zeros((6, 3, 4)), lengths=[6, 0, 2])
    with pytest.raises(ValueError, match="one length per batch element"):
        r(np.zeros((6, 3, 4)), lengths=[6, 2])
    with pytest.raises(RuntimeError, match="forward pass first"):
        r.backward(np.zeros((6, 3, 5)))
    out, hn = r(np.zeros((6, 3, 4)))
    with pytest.raises(ValueError, match="grad_output"):
        r.backward(np.zeros((6, 3, 4)))
    with pytest.raises(ValueError, match="grad_h_n"):
        r.backward(np.zeros_like(out), np.zeros((2, 5)))
    with pytest.raises(KeyError, match="missing"):
        r.load_state_dict({"weight_ih_l0": np.zeros((5, 4))})
    state = r.state_dict()
    state["weight_hh_l1"] = np.zeros((5, 4))
    before = r.state_dict()
    with pytest.raises(ValueError, match="weight_hh_l1"):
        r.load_state_dict(state)
    for k, v in r.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("layout", [layout for layout in LAYOUTS if layout != "c"])
def test_hx_and_grad_h_n_in_any_memory_order(layout):
    _, r = pair(num_layers=2, bidirectional=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 4))
    hx = rng.standard_normal((4, 3, 5))
    go, gh = rng.standard_normal((6, 3, 10)), rng.standard_normal((4, 3, 5))
    out, hn = r(x, hx)
    g = r.backward(go, gh)
    out2, hn2 = r(x, in_layout(hx, layout))
    g2 = r.backward(go, in_layout(gh, layout))
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(hn, hn2)
    for key in g:
        np.testing.assert_array_equal(g[key], g2[key])


def test_writing_into_output_does_not_change_backward():
    _, r = pair()
    x = np.random.default_rng(0).standard_normal((6, 3, 4))
    out, _ = r(x)
    expected = r.backward(np.ones_like(out), retain_graph=True)
    out[...] = 7
    got = r.backward(np.ones_like(out))
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
