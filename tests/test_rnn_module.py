"""rnnfast.RNN against torch.nn.RNN autograd: layers, directions, relu, bias, layouts, lengths."""

import itertools

import numpy as np
import pytest

import rnnfast
from conftest import assert_close

torch = pytest.importorskip("torch")


def pair(dtype=np.float64, seed=0, **kwargs):
    """A float64 torch.nn.RNN (the oracle) and an rnnfast.RNN of dtype with the same weights."""
    torch.manual_seed(seed)
    t = torch.nn.RNN(4, 5, dtype=torch.float64, **kwargs)
    r = rnnfast.RNN(4, 5, dtype=dtype, **kwargs)
    r.load_state_dict(t.state_dict())
    return t, r


def torch_run(t, x, h0, go, gh, lengths=None, batch_first=False):
    """output, h_n and the autograd gradients of sum(go*output) + sum(gh*h_n)."""
    t.zero_grad()
    x = torch.tensor(x, requires_grad=True)
    h0 = torch.tensor(h0, requires_grad=True)
    if lengths is None:
        out, hn = t(x, h0)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.as_tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out, hn = t(packed, h0)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
    ((out * torch.tensor(go)).sum() + (hn * torch.tensor(gh)).sum()).backward()
    grads = {"input": x.grad.numpy(), "hx": h0.grad.numpy()}
    grads.update({k: v.grad.numpy() for k, v in t.named_parameters()})
    return out.detach().numpy(), hn.detach().numpy(), grads


def compare(t, r, batched, batch_first, dtype, lengths=None, seed=1):
    rng = np.random.default_rng(seed)
    N, L = 3, 6
    D = 2 if r.bidirectional else 1
    if batched:
        x_shape = (N, L, 4) if batch_first else (L, N, 4)
        h_shape = (D * r.num_layers, N, 5)
        o_shape = x_shape[:2] + (D * 5,)
    else:
        x_shape, h_shape, o_shape = (L, 4), (D * r.num_layers, 5), (L, D * 5)
    x = rng.standard_normal(x_shape)
    h0 = rng.standard_normal(h_shape)
    go = rng.standard_normal(o_shape)
    gh = rng.standard_normal(h_shape)
    if batched:
        out_t, hn_t, g_t = torch_run(t, x, h0, go, gh, lengths, batch_first)
    else:
        out_t, hn_t, g_t = torch_run(t, x, h0, go, gh)
    cast = (lambda a: a.astype(dtype))
    out, hn = r.forward(cast(x), cast(h0), lengths=lengths)
    assert_close(out, out_t, dtype, "output")
    assert_close(hn, hn_t, dtype, "h_n")
    grads = r.backward(cast(go), cast(gh))
    assert list(grads) == ["input", "hx"] + [k for k, _ in t.named_parameters()]
    for key, expected in g_t.items():
        assert_close(grads[key], expected, dtype, key)


GRID = list(itertools.product([1, 2, 3], [False, True], ["tanh", "relu"], [True, False],
                              [False, True], [True, False]))


@pytest.mark.parametrize("layers, bidirectional, nonlinearity, bias, batch_first, batched", GRID,
                         ids=lambda v: str(v))
def test_matches_torch_float64(layers, bidirectional, nonlinearity, bias, batch_first, batched):
    t, r = pair(num_layers=layers, bidirectional=bidirectional, nonlinearity=nonlinearity,
                bias=bias, batch_first=batch_first)
    compare(t, r, batched, batch_first, np.float64)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_variable_lengths_match_pack_padded_sequence(bidirectional, batch_first, nonlinearity,
                                                     products):
    t, r = pair(num_layers=2, bidirectional=bidirectional, batch_first=batch_first,
                nonlinearity=nonlinearity)
    compare(t, r, True, batch_first, np.float64, lengths=np.array([6, 2, 4]))
    compare(t, r, True, batch_first, np.float64, lengths=np.array([1, 6, 6]))


def test_float32_close_to_torch():
    t, r = pair(dtype=np.float32, num_layers=2, bidirectional=True)
    compare(t, r, True, False, np.float32)


def test_single_sequence_hand_written_products(products):
    t, r = pair(num_layers=2, bidirectional=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 1, 4))
    h0 = rng.standard_normal((4, 1, 5))
    out_t, hn_t, g_t = torch_run(t, x, h0, np.ones((7, 1, 10)), np.ones((4, 1, 5)))
    out, hn = r(x, h0)
    assert_close(out, out_t, np.float64)
    grads = r.backward(np.ones((7, 1, 10)), np.ones((4, 1, 5)))
    for key in g_t:
        assert_close(grads[key], g_t[key], np.float64, key)


def test_state_dict_round_trip_both_ways():
    t, r = pair(num_layers=2, bidirectional=True)
    state = r.state_dict()
    assert list(state) == list(t.state_dict())
    t2 = torch.nn.RNN(4, 5, num_layers=2, bidirectional=True, dtype=torch.float64)
    t2.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    for k, v in t2.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k])
    np.testing.assert_array_equal(r.weight_hh_l1_reverse, state["weight_hh_l1_reverse"])
    state["weight_hh_l0"][...] = 0                         # a copy: the module is unchanged
    assert np.any(r.weight_hh_l0 != 0)


def test_default_initialisation():
    r = rnnfast.RNN(3, 16, num_layers=2, bidirectional=True, seed=0)
    names = [n for n, _ in r.named_parameters()]
    assert names == list(torch.nn.RNN(3, 16, num_layers=2, bidirectional=True).state_dict())
    for name, a in r.named_parameters():
        assert a.dtype == np.float32 and np.all(np.abs(a) <= 0.25) and a.std() > 0.05
    again = rnnfast.RNN(3, 16, num_layers=2, bidirectional=True, seed=0)
    np.testing.assert_array_equal(r.weight_ih_l1, again.weight_ih_l1)


def test_dropout_is_seeded_used_in_backward_and_off_in_eval():
    r = rnnfast.RNN(4, 5, num_layers=3, dropout=0.5, dtype=np.float64, seed=3)
    x = np.random.default_rng(0).standard_normal((6, 2, 4))
    out_train, _ = r(x)
    out_train_2, _ = r(x)
    assert not np.allclose(out_train, out_train_2)         # a new mask per call
    g = r.backward(np.ones_like(out_train_2))
    # the gradient of the last forward, checked by finite differences with its mask
    masks = [layer["mask"] for layer in r._cache["layers"]]

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


@pytest.mark.parametrize("layout", ["fortran", "transposed-view"])
def test_hx_and_grad_h_n_in_any_memory_order(layout):
    t, r = pair(num_layers=2, bidirectional=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 4))
    hx = rng.standard_normal((4, 3, 5))
    go, gh = rng.standard_normal((6, 3, 10)), rng.standard_normal((4, 3, 5))
    other = (np.asfortranarray if layout == "fortran"
             else lambda a: np.ascontiguousarray(a.transpose(2, 1, 0)).transpose(2, 1, 0))
    out, hn = r(x, hx)
    g = r.backward(go, gh)
    out2, hn2 = r(x, other(hx))
    g2 = r.backward(go, other(gh))
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(hn, hn2)
    for key in g:
        np.testing.assert_array_equal(g[key], g2[key])


def test_writing_into_output_does_not_change_backward():
    t, r = pair()
    x = np.random.default_rng(0).standard_normal((6, 3, 4))
    out, _ = r(x)
    expected = r.backward(np.ones_like(out))
    out[...] = 7
    got = r.backward(np.ones_like(out))
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
