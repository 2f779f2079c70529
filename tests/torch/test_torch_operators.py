"""rnnfast.torch's operators called directly: every argument is checked before a kernel runs.

Each call either raises a RuntimeError naming the argument or equals the
NumPy twin in rnnfast.reference (the oracle); hypothesis draws the shapes,
dtypes, lengths and the one argument it spoils.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
rt = pytest.importorskip("rnnfast.torch")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rnnfast import reference  # noqa: E402
from tests.helpers import assert_close  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
TANH, RELU = rt._ACTIVATIONS["RNN_TANH"], rt._ACTIVATIONS["RNN_RELU"]
OPS = {"rnn": (torch.ops.rnnfast.rnn_layer, torch.ops.rnnfast.rnn_layer_backward),
       "lstm": (torch.ops.rnnfast.lstm_layer, torch.ops.rnnfast.lstm_layer_backward),
       "gru": (torch.ops.rnnfast.gru_layer, torch.ops.rnnfast.gru_layer_backward)}


def np_dtype(dtype):
    return np.float64 if dtype == torch.float64 else np.float32


def forward_args(kind, N, L, n_in, H, P, dtype, bias, lengths, reverse, activation, seed):
    """The forward operator's arguments, by name, in order."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(shape, generator=g, dtype=dtype) * 0.5

    G, W = GATES[kind] * H, P or H
    args = {"x": rand(N, L, n_in), "h0": rand(N, W)}
    if kind == "lstm":
        args["c0"] = rand(N, H)
    args.update(w_ih=rand(G, n_in), w_hh=rand(G, W), b_ih=rand(G) if bias else None,
                b_hh=rand(G) if bias else None)
    if kind == "lstm":
        args["w_hr"] = rand(P, H) if P else None
    args.update(lengths=None if lengths is None else torch.tensor(lengths, dtype=torch.int64),
                reverse=reverse)
    if kind == "rnn":
        args["activation"] = activation
    return args


def backward_args(kind, fwd, outputs, seed):
    """The backward operator's arguments for the forward call ``fwd`` and its ``outputs``."""
    g = torch.Generator().manual_seed(seed + 1)
    x = fwd["x"]

    def rand_like(t):
        return torch.randn(t.shape, generator=g, dtype=x.dtype)

    if kind == "rnn":
        out, h_n, states = outputs
        saved = {"states": states}
    elif kind == "lstm":
        out, h_n, c_n, states, cells, gates = outputs
        saved = {"c0": fwd["c0"], "states": states, "cells": cells, "gates": gates}
    else:
        out, h_n, states, gates, hn = outputs
        saved = {"states": states, "gates": gates, "hn": hn}
    args = {"x": x, "h0": fwd["h0"]}
    if kind == "lstm":
        args.update(c0=saved["c0"])
    args.update({k: v for k, v in saved.items() if k != "c0"})
    args.update(d_out=rand_like(out), d_h_n=rand_like(h_n))
    if kind == "lstm":
        args["d_c_n"] = rand_like(c_n)
    args.update(w_ih=fwd["w_ih"], w_hh=fwd["w_hh"])
    if kind == "lstm":
        args["w_hr"] = fwd["w_hr"]
    args.update(lengths=fwd["lengths"], reverse=fwd["reverse"])
    if kind == "rnn":
        args["activation"] = fwd["activation"]
    return args


def reference_run(kind, fwd):
    """The NumPy twin's ``(outputs, cache)`` in the operators' batch-major layout."""
    a = {k: (v.numpy().astype(np.float64) if isinstance(v, torch.Tensor) else v)
         for k, v in fwd.items()}
    G = a["w_hh"].shape[0]
    b_ih = np.zeros(G) if a["b_ih"] is None else a["b_ih"]
    b_hh = np.zeros(G) if a["b_hh"] is None else a["b_hh"]
    x = a["x"].transpose(1, 0, 2)
    common = dict(reverse=a["reverse"], lengths=a["lengths"])
    if kind == "rnn":
        out, h_n, cache = reference.rnn_layer_forward(
            x, a["h0"], a["w_ih"], a["w_hh"], b_ih, b_hh,
            nonlinearity="tanh" if a["activation"] == TANH else "relu", **common)
        return [out.transpose(1, 0, 2), h_n], cache
    if kind == "lstm":
        out, h_n, c_n, cache = reference.lstm_layer_forward(
            x, a["h0"], a["c0"], a["w_ih"], a["w_hh"], b_ih, b_hh, a["w_hr"], **common)
        return [out.transpose(1, 0, 2), h_n, c_n], cache
    out, h_n, cache = reference.gru_layer_forward(x, a["h0"], a["w_ih"], a["w_hh"], b_ih, b_hh,
                                                  **common)
    return [out.transpose(1, 0, 2), h_n], cache


def reference_grads(kind, bwd, cache):
    """The NumPy twin's gradients, in the order the backward operator returns them."""
    a = {k: (v.numpy().astype(np.float64) if isinstance(v, torch.Tensor) else v)
         for k, v in bwd.items()}
    d_out = a["d_out"].transpose(1, 0, 2)
    if kind == "rnn":
        g = reference.rnn_layer_backward(d_out, a["d_h_n"], cache)
        names = ["input", "hx", "weight_ih", "weight_hh", "bias_ih"]
    elif kind == "lstm":
        g = reference.lstm_layer_backward(d_out, a["d_h_n"], a["d_c_n"], cache)
        names = ["input", "hx", "cx", "weight_ih", "weight_hh", "bias_ih", "weight_hr"]
        if g.get("weight_hr") is None:
            g["weight_hr"] = np.zeros(0)
    else:
        g = reference.gru_layer_backward(d_out, a["d_h_n"], cache)
        names = ["input", "hx", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    g["input"] = g["input"].transpose(1, 0, 2)
    return [g[n] for n in names]


def spoil(args, op_name, fault, pick, dtype):
    """``args`` with one argument made wrong by ``fault``; None when it cannot apply."""
    args = dict(args)
    tensors = [k for k, v in args.items() if isinstance(v, torch.Tensor) and k != "lengths"]
    if fault == "shape":
        name = tensors[pick % len(tensors)]
        t = args[name]
        dims = [d for d in range(t.dim())
                # the forward operator reads L from x alone: another L is another problem
                if not (name == "x" and d == 1 and not op_name.endswith("backward"))]
        d = dims[pick % len(dims)]
        shape = list(t.shape)
        shape[d] += 1 + pick % 2
        args[name] = torch.zeros(shape, dtype=t.dtype)
    elif fault == "rank":
        name = tensors[pick % len(tensors)]
        args[name] = args[name].unsqueeze(0)
    elif fault == "dtype":
        name = tensors[pick % len(tensors)]
        other = torch.float32 if dtype == torch.float64 else torch.float64
        args[name] = args[name].to([other, torch.int64, torch.float16][pick % 3])
    elif fault == "noncontiguous":                      # allowed: made contiguous
        name = tensors[pick % len(tensors)]
        t = args[name]
        args[name] = torch.stack([t, t], dim=-1)[..., 0]
    elif fault == "lengths":
        N, L = args["x"].shape[:2]
        if N == 0 or L == 0:
            return None
        bad = [torch.full((N,), 0), torch.full((N,), L + 1), torch.full((N,), -3),
               torch.full((N + 1,), 1), torch.full((N,), 1.0), torch.full((N, 1), 1)]
        args["lengths"] = bad[pick % len(bad)]
    elif fault == "activation":
        if "activation" not in args:
            return None
        args["activation"] = [7, -1, 2, 100][pick % 4]
    elif fault == "one_bias":
        if "b_ih" not in args or args["b_ih"] is None:
            return None
        args["b_ih" if pick % 2 else "b_hh"] = None
    return args


FAULTS = [None, None, "shape", "rank", "dtype", "noncontiguous", "lengths", "activation",
          "one_bias"]


@st.composite
def problems(draw):
    kind = draw(st.sampled_from(sorted(GATES)))
    N, L = draw(st.integers(0, 3)), draw(st.integers(0, 4))
    n_in, H = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    P = draw(st.integers(1, H - 1)) if kind == "lstm" and H > 1 and draw(st.booleans()) else 0
    lengths = (draw(st.lists(st.integers(1, L), min_size=N, max_size=N))
               if L > 0 and draw(st.booleans()) else None)
    return dict(kind=kind, N=N, L=L, n_in=n_in, H=H, P=P,
                dtype=draw(st.sampled_from([torch.float32, torch.float64])),
                bias=draw(st.booleans()), lengths=lengths, reverse=draw(st.booleans()),
                activation=draw(st.sampled_from([TANH, RELU])), seed=draw(st.integers(0, 99)))


def call(op, args):
    return op(*args.values())


def check_outputs(actual, expected, dtype, what):
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert_close(a.numpy(), e, np_dtype(dtype), f"{what} output {i}")


@settings(max_examples=300, deadline=None)
@given(problems(), st.sampled_from(FAULTS), st.integers(0, 1000), st.booleans())
def test_operators_raise_or_match_the_numpy_twin(problem, fault, pick, on_backward):
    kind, dtype = problem["kind"], problem["dtype"]
    forward, backward = OPS[kind]
    fwd = forward_args(**problem)
    expected, cache = reference_run(kind, fwd)
    outputs = call(forward, fwd)
    check_outputs(outputs[:len(expected)], expected, dtype, "forward")
    bwd = backward_args(kind, fwd, outputs, problem["seed"])
    op, args = (backward, bwd) if on_backward else (forward, fwd)
    spoilt = spoil(args, str(op), fault, pick, dtype) if fault else args
    if spoilt is None:
        return
    if fault in (None, "noncontiguous"):
        result = call(op, spoilt)
        if on_backward:
            check_outputs(result, reference_grads(kind, bwd, cache), dtype, "backward")
        else:
            check_outputs(result[:len(expected)], expected, dtype, "forward")
        return
    with pytest.raises(RuntimeError, match="rnnfast::"):
        call(op, spoilt)


def test_a_tiny_recurrent_weight_for_a_large_hidden_size_is_refused():
    x, h0 = torch.zeros(2, 3, 4), torch.zeros(2, 3000)
    with pytest.raises(RuntimeError, match=r"w_hh must have shape \(H, H\) = \(3000, 3000\), "
                                           r"got \(1, 1\)"):
        torch.ops.rnnfast.rnn_layer(x, h0, torch.zeros(3000, 4), torch.zeros(1, 1), None, None,
                                    None, False, TANH)


@pytest.mark.parametrize("kind", sorted(GATES))
@pytest.mark.parametrize("bad, match", [
    (dict(b_ih=torch.zeros(1)), r"b_ih must have shape"),
    (dict(w_ih=torch.zeros(5, 2)), r"w_ih must have shape"),
    (dict(h0=torch.zeros(2, 4, dtype=torch.float32)), r"h0 must be torch.float64"),
    (dict(lengths=torch.tensor([-1, 2])), r"lengths must lie in 1..L"),
    (dict(b_hh=None), r"b_ih and b_hh are both given or both None")])
def test_named_errors(kind, bad, match):
    fwd = forward_args(kind, 2, 3, 3, 4, 0, torch.float64, True, None, False, TANH, 0)
    if "w_ih" in bad:
        bad = dict(w_ih=torch.zeros(GATES[kind] * 4, 2, dtype=torch.float64))
    if "b_ih" in bad:
        bad = dict(b_ih=torch.zeros(1, dtype=torch.float64))
    fwd.update(bad)
    with pytest.raises(RuntimeError, match=match):
        call(OPS[kind][0], fwd)


def test_activation_codes_are_checked():
    fwd = forward_args("rnn", 2, 3, 3, 4, 0, torch.float64, True, None, False, 7, 0)
    with pytest.raises(RuntimeError, match="activation must be one of"):
        call(OPS["rnn"][0], fwd)


def test_a_wrong_projection_is_refused():
    fwd = forward_args("lstm", 2, 3, 3, 4, 2, torch.float64, True, None, False, TANH, 0)
    fwd["w_hr"] = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"w_hr must have shape \(P, H\) = \(2, 4\)"):
        call(OPS["lstm"][0], fwd)


@pytest.mark.parametrize("kind", sorted(GATES))
@pytest.mark.parametrize("N, L", [(0, 3), (2, 0), (0, 0)])
def test_empty_batches_and_sequences_run(kind, N, L):
    fwd = forward_args(kind, N, L, 3, 4, 0, torch.float64, True, None, False, TANH, 0)
    outputs = call(OPS[kind][0], fwd)
    assert outputs[0].shape == (N, L, 4)
    torch.testing.assert_close(outputs[1], fwd["h0"], rtol=0, atol=0)
    grads = call(OPS[kind][1], backward_args(kind, fwd, outputs, 0))
    assert grads[0].shape == (N, L, 3) and not grads[0].any()
    assert not grads[2 if kind != "lstm" else 3].any()


def test_contiguous_arguments_reach_the_kernels_uncopied(monkeypatch):
    seen = []
    original = rt._np

    def spy(t):
        a = original(t)
        seen.append(a.ctypes.data == t.data_ptr())
        return a
    monkeypatch.setattr(rt, "_np", spy)
    fwd = forward_args("gru", 2, 3, 3, 4, 0, torch.float64, True, None, False, TANH, 0)
    call(OPS["gru"][0], fwd)
    assert seen and all(seen)
