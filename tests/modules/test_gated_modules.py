"""rnnfast.LSTM and rnnfast.GRU against their NumPy twins and, when installed, torch.

Every configuration (layers 1-3, directions, bias, batch_first, unbatched,
proj_size, lengths, dropout with the mask as the twin's input) runs against
``reference.lstm_module_*`` / ``gru_module_*`` without torch; the same cases
run against torch.nn.LSTM / nn.GRU autograd as a second oracle.  The
``products`` fixture runs them with the recurrent products chosen by the
plan, forced to BLAS, and forced into LIBXSMM's kernels.
"""

import itertools

import numpy as np
import pytest

import rnnfast
from tests.helpers import assert_close, gated_twin_run, load_numpy_weights

try:
    import torch
except ImportError:
    torch = None

N_IN, H = 4, 5


@pytest.fixture(params=["numpy", "torch"])
def oracle(request):
    if request.param == "torch" and torch is None:
        pytest.skip("torch is not installed (the NumPy twin is the first oracle)")
    return request.param


def make(kind, dtype=np.float64, seed=0, **kwargs):
    """A module of ``dtype`` and its weights in float64 (the oracles' copy)."""
    cls = rnnfast.LSTM if kind == "lstm" else rnnfast.GRU
    weights = cls(N_IN, H, dtype=np.float64, seed=seed, **kwargs).state_dict()
    m = cls(N_IN, H, dtype=dtype, **kwargs)
    m.load_state_dict(weights)
    return weights, m


def widths(m):
    P = getattr(m, "proj_size", 0) or H
    return P, H


def problem(m, batched, seed=1, N=3, L=6):
    """``(x, states0, g_out, g_finals)`` in ``m``'s layout (one state or two)."""
    rng = np.random.default_rng(seed)
    D = 2 if m.bidirectional else 1
    P, _ = widths(m)
    lead = (N, L) if m.batch_first else (L, N)
    x_shape = lead + (N_IN,) if batched else (L, N_IN)
    o_shape = lead + (D * P,) if batched else (L, D * P)
    state_widths = [P, H] if m.mode == "LSTM" else [P]
    s_shapes = [(D * m.num_layers, N, w) if batched else (D * m.num_layers, w)
                for w in state_widths]
    return (rng.standard_normal(x_shape), [rng.standard_normal(s) for s in s_shapes],
            rng.standard_normal(o_shape), [rng.standard_normal(s) for s in s_shapes])


def dropout_masks(m):
    masks = [layer["mask"] for layer in m._cache["layers"]][:-1]
    if all(k is None for k in masks):
        return None
    return [k.transpose(1, 0, 2).astype(np.float64) for k in masks]


def torch_run(m, weights, x, s0, go, gf, lengths, batched, masks):
    assert masks is None, "torch draws its own dropout masks"
    kwargs = {"proj_size": m.proj_size} if m.mode == "LSTM" else {}
    t = getattr(torch.nn, m.mode)(N_IN, H, num_layers=m.num_layers, bias=m.bias,
                                  batch_first=m.batch_first, bidirectional=m.bidirectional,
                                  dtype=torch.float64, **kwargs)
    load_numpy_weights(t, weights)
    x = torch.tensor(x, requires_grad=True)
    s0 = [torch.tensor(s, requires_grad=True) for s in s0]
    hx = tuple(s0) if m.mode == "LSTM" else s0[0]
    if lengths is None:
        out, finals = t(x, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.as_tensor(lengths), batch_first=m.batch_first, enforce_sorted=False)
        out, finals = t(packed, hx)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=m.batch_first, total_length=x.shape[1 if m.batch_first else 0])
    finals = list(finals) if m.mode == "LSTM" else [finals]
    loss = (out * torch.tensor(go)).sum()
    for f, g in zip(finals, gf, strict=True):
        loss = loss + (f * torch.tensor(g)).sum()
    loss.backward()
    grads = {"input": x.grad.numpy()}
    for name, s in zip(["hx", "cx"][:len(s0)], s0, strict=True):
        grads[name] = s.grad.numpy()
    grads.update({k: v.grad.numpy() for k, v in t.named_parameters()})
    return out.detach().numpy(), [f.detach().numpy() for f in finals], grads


RUNS = {"numpy": gated_twin_run, "torch": torch_run}


def compare(oracle, weights, m, batched, dtype, lengths=None, seed=1):
    x, s0, go, gf = problem(m, batched, seed)
    def cast(a):
        return (a.astype(dtype))
    hx = tuple(cast(s) for s in s0) if m.mode == "LSTM" else cast(s0[0])
    out, finals = m.forward(cast(x), hx, lengths=lengths)
    finals = list(finals) if m.mode == "LSTM" else [finals]
    masks = dropout_masks(m)                    # backward releases the forward's cache
    grads = m.backward(cast(go), *[cast(g) for g in gf])
    out_e, finals_e, g_e = RUNS[oracle](m, weights, x, s0, go, gf, lengths, batched,
                                        masks if oracle == "numpy" else None)
    assert_close(out, out_e, dtype, "output")
    for got, want, name in zip(finals, finals_e, ["h_n", "c_n"][:len(finals)], strict=True):
        assert_close(got, want, dtype, name)
    states = ["hx", "cx"] if m.mode == "LSTM" else ["hx"]
    assert list(grads) == ["input"] + states + list(weights)
    assert set(g_e) == set(grads)
    for key, expected in g_e.items():
        assert_close(grads[key], expected, dtype, key)
    return masks


GRID = list(itertools.product(["lstm", "gru"], [1, 2, 3], [False, True], [True, False],
                              [False, True], [True, False]))


@pytest.mark.parametrize("kind, layers, bidirectional, bias, batch_first, batched", GRID,
                         ids=lambda v: str(v))
def test_matches_oracle_float64(oracle, products, kind, layers, bidirectional, bias,
                                batch_first, batched):
    weights, m = make(kind, num_layers=layers, bidirectional=bidirectional, bias=bias,
                      batch_first=batch_first)
    compare(oracle, weights, m, batched, np.float64)


@pytest.mark.parametrize("layers, bidirectional, batch_first, batched",
                         [(1, False, False, True), (2, True, False, True), (3, True, True, True),
                          (2, False, True, False), (1, True, False, False)],
                         ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_lstm_projection_matches_oracle(oracle, products, layers, bidirectional, batch_first,
                                        batched, dtype):
    weights, m = make("lstm", dtype, num_layers=layers, bidirectional=bidirectional,
                      batch_first=batch_first, proj_size=3)
    compare(oracle, weights, m, batched, dtype)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("layers, bidirectional, bias, batch_first, batched",
                         [(2, True, True, False, True), (1, False, True, True, True),
                          (3, True, False, False, False)], ids=lambda v: str(v))
def test_float32_matches_oracle(oracle, products, kind, layers, bidirectional, bias, batch_first,
                                batched):
    weights, m = make(kind, np.float32, num_layers=layers, bidirectional=bidirectional,
                      bias=bias, batch_first=batch_first)
    compare(oracle, weights, m, batched, np.float32)


@pytest.mark.parametrize("kind, proj", [("lstm", 0), ("lstm", 3), ("gru", 0)])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_variable_lengths_match_pack_padded_sequence(oracle, products, kind, proj,
                                                     bidirectional, batch_first, dtype):
    kwargs = {"proj_size": proj} if proj else {}
    weights, m = make(kind, dtype, num_layers=2, bidirectional=bidirectional,
                      batch_first=batch_first, **kwargs)
    compare(oracle, weights, m, True, dtype, lengths=np.array([6, 2, 4]))
    compare(oracle, weights, m, True, dtype, lengths=np.array([1, 6, 6]))
    out, _ = m(problem(m, True)[0].astype(dtype), lengths=np.array([6, 2, 4]))
    padded = out[1, 2:] if batch_first else out[2:, 1]
    assert np.all(padded == 0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (1, 5), (129, 2)],
                         ids=lambda s: f"L{s[0]}-N{s[1]}")
def test_odd_sizes(oracle, products, kind, shape):
    L, N = shape
    weights, m = make(kind, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(L)
    x = rng.standard_normal((L, N, N_IN))
    n_states = 2 if kind == "lstm" else 1
    s0 = [rng.standard_normal((4, N, H)) for _ in range(n_states)]
    gf = [rng.standard_normal((4, N, H)) for _ in range(n_states)]
    go = rng.standard_normal((L, N, 2 * H))
    out, finals = m(x, tuple(s0) if kind == "lstm" else s0[0])
    grads = m.backward(go, *gf)
    out_e, finals_e, g_e = RUNS[oracle](m, weights, x, s0, go, gf, None, True, None)
    assert_close(out, out_e, np.float64, "output")
    for got, want in zip(finals if kind == "lstm" else [finals], finals_e, strict=True):
        assert_close(got, want, np.float64, "final")
    for key, expected in g_e.items():
        assert_close(grads[key], expected, np.float64, key)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_dropout_matches_the_twin_with_the_same_masks(products, kind, dtype):
    weights, m = make(kind, dtype, num_layers=3, bidirectional=True, dropout=0.4, seed=2)
    compare("numpy", weights, m, True, dtype)
    masks = compare("numpy", weights, m, True, dtype, lengths=np.array([6, 3, 5]))
    assert masks is not None                    # the masks of a training forward
    m.eval()
    assert compare("numpy", weights, m, True, dtype) is None   # eval: no dropout


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_inputs_are_not_written_and_outputs_are_the_callers(kind):
    weights, m = make(kind, num_layers=2, bidirectional=True)
    x, s0, go, gf = problem(m, True)
    before = [a.copy() for a in [x, *s0, go, *gf]]
    hx = tuple(s0) if kind == "lstm" else s0[0]
    out, _ = m(x, hx)
    out[...] = 7                                 # the caller's to change
    grads = m.backward(go, *gf, retain_graph=True)
    for a, b in zip(before, [x, *s0, go, *gf], strict=True):
        np.testing.assert_array_equal(a, b)
    expected = m.backward(go, *gf)
    for key in grads:
        np.testing.assert_array_equal(grads[key], expected[key])


def test_parameter_names_shapes_and_initialisation():
    m = rnnfast.LSTM(3, 16, num_layers=2, bidirectional=True, proj_size=4, seed=0)
    names = [n for n, _ in m.named_parameters()]
    assert names == [f"{w}_l{k}{sfx}" for k in range(2) for sfx in ("", "_reverse")
                     for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")]
    assert m.weight_ih_l0.shape == (64, 3) and m.weight_hh_l0.shape == (64, 4)
    assert m.weight_hr_l0.shape == (4, 16) and m.weight_ih_l1.shape == (64, 8)
    g = rnnfast.GRU(3, 16, num_layers=2, bias=False, seed=0)
    assert [n for n, _ in g.named_parameters()] == [
        "weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"]
    assert g.weight_ih_l0.shape == (48, 3)
    for module in (m, g):
        for _, a in module.named_parameters():
            assert a.dtype == np.float32 and np.all(np.abs(a) <= 0.25) and a.std() > 0.05
    if torch is not None:
        t = torch.nn.LSTM(3, 16, num_layers=2, bidirectional=True, proj_size=4)
        assert names == list(t.state_dict())
        assert [n for n, _ in g.named_parameters()] == list(
            torch.nn.GRU(3, 16, num_layers=2, bias=False).state_dict())


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_state_dict_round_trip_both_ways(kind):
    if torch is None:
        pytest.skip("torch is not installed")
    kwargs = {"proj_size": 2} if kind == "lstm" else {}
    weights, m = make(kind, num_layers=2, bidirectional=True, **kwargs)
    t = getattr(torch.nn, m.mode)(N_IN, H, num_layers=2, bidirectional=True,
                                  dtype=torch.float64, **kwargs)
    load_numpy_weights(t, m.state_dict())
    m2 = make(kind, seed=5, num_layers=2, bidirectional=True, **kwargs)[1]
    m2.load_state_dict(t.state_dict())                 # torch tensors load directly
    for name, a in m2.named_parameters():
        np.testing.assert_array_equal(a, weights[name])


def test_lstm_validation_errors():
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        rnnfast.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="proj_size should be a positive integer or zero"):
        rnnfast.LSTM(3, 4, proj_size=-1)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        rnnfast.modules.RNNBase("GRU", 3, 4, proj_size=2)
    m = rnnfast.LSTM(3, 4, proj_size=2, dtype=np.float64)
    x = np.zeros((5, 2, 3))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h0, c0\)"):
        m(x, np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="hx has shape"):
        m(x, (np.zeros((1, 2, 4)), np.zeros((1, 2, 4))))    # h0 is proj_size wide
    with pytest.raises(ValueError, match="cx has shape"):
        m(x, (np.zeros((1, 2, 2)), np.zeros((1, 2, 2))))    # c0 is hidden_size wide
    out, (h_n, c_n) = m(x, (np.zeros((1, 2, 2)), np.zeros((1, 2, 4))))
    assert out.shape == (5, 2, 2) and h_n.shape == (1, 2, 2) and c_n.shape == (1, 2, 4)
    with pytest.raises(ValueError, match="grad_c_n"):
        m.backward(np.zeros_like(out), None, np.zeros((1, 2, 2)))
    with pytest.raises(AttributeError, match="fixed when the LSTM is made"):
        m.proj_size = 1
    assert "proj_size=2" in repr(m)
    with pytest.raises(ValueError, match="input_size"):
        rnnfast.GRU(3, 4)(np.zeros((5, 2, 4)))
    with pytest.raises(RuntimeError, match="forward pass first"):
        rnnfast.GRU(3, 4).backward(np.zeros((5, 2, 4)))
