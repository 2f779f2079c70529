"""The compiled LSTM and GRU layer kernels against their NumPy twins (no torch).

One direction of one layer, both dtypes, forward and reverse, with and
without lengths, biases and (LSTM) a projection, including T = 1 and m = 1, with
the recurrent products chosen by the plan, forced to BLAS and forced into
LIBXSMM's kernels (the ``products`` fixture).
"""

import numpy as np
import pytest

from rnnfast import _kernels
from rnnfast import reference as ref
from tests.helpers import assert_close

# (n_in, H, P, m, T): P is the LSTM projection (0: none)
SHAPES = [(3, 4, 0, 2, 5), (3, 4, 2, 2, 5), (5, 7, 0, 1, 1), (2, 3, 2, 1, 6), (1, 9, 0, 4, 3),
          (6, 17, 5, 3, 4), (4, 33, 0, 5, 1), (3, 33, 7, 5, 3), (2, 65, 0, 17, 2)]


def shape_id(shape):
    return "in{}-H{}-P{}-m{}-T{}".format(*shape)


def lengths_for(m, T, with_lengths):
    if not with_lengths or m == 1:
        return None
    return np.array([T - (i % T) for i in range(m)], dtype=np.intp)


def problem(kind, shape, bias, seed=0):
    n_in, H, P, m, T = shape
    G = 4 if kind == "lstm" else 3
    width = P or H
    rng = np.random.default_rng(seed)
    a = {"x": rng.standard_normal((T, m, n_in)), "h0": 0.5 * rng.standard_normal((m, width)),
         "w_ih": rng.standard_normal((G * H, n_in)) / np.sqrt(n_in),
         "w_hh": rng.standard_normal((G * H, width)) / np.sqrt(width)}
    if kind == "lstm":
        a["c0"] = 0.5 * rng.standard_normal((m, H))
        if P:
            a["w_hr"] = rng.standard_normal((P, H)) / np.sqrt(H)
    if bias:
        a["b_ih"] = 0.2 * rng.standard_normal(G * H)
        a["b_hh"] = 0.2 * rng.standard_normal(G * H)
    return a


def rows(x, dtype):
    """(T, m, n) time-major -> (m*T, n) batch-major rows, C-contiguous."""
    return np.ascontiguousarray(x.transpose(1, 0, 2), dtype=dtype).reshape(-1, x.shape[2])


def batch_major(a):
    return a.transpose(1, 0, 2)


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_lstm_kernels_match_the_twin(shape, bias, reverse, with_lengths, dtype, products):
    n_in, H, P, m, T = shape
    a = problem("lstm", shape, bias)
    lengths = lengths_for(m, T, with_lengths)
    out, h_n, c_n, cache = ref.lstm_layer_forward(
        a["x"], a["h0"], a["c0"], a["w_ih"], a["w_hh"], a.get("b_ih"), a.get("b_hh"),
        a.get("w_hr"), reverse, lengths)
    cast = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in a.items()}
    bias_sum = cast["b_ih"] + cast["b_hh"] if bias else None
    h, c, gates = _kernels.lstm_layer_forward(
        rows(a["x"], dtype), cast["h0"], cast["c0"], cast["w_ih"], cast["w_hh"], bias_sum,
        cast.get("w_hr"), lengths, reverse)
    # the kernel's states equal the twin's output at valid steps, and at padded
    # steps carry the state: h_n going forward, h0 in reverse (they come first)
    assert_close(carried(h, lengths, a["h0"] if reverse else h_n), batch_major(out), dtype, "h")
    last = np.array([0 if reverse else (T - 1 if lengths is None else lengths[i] - 1)
                     for i in range(m)])
    assert_close(h[np.arange(m), last], h_n, dtype, "h_n")
    assert_close(c[np.arange(m), last], c_n, dtype, "c_n")

    rng = np.random.default_rng(3)
    d_out = rng.standard_normal(out.shape)
    d_hn, d_cn = rng.standard_normal(h_n.shape), rng.standard_normal(c_n.shape)
    if lengths is not None:
        d_out = d_out * (np.arange(T)[:, None] < lengths[None, :])[:, :, None]
    expected = ref.lstm_layer_backward(d_out, d_hn, d_cn, cache)
    dh = np.ascontiguousarray(batch_major(d_out), dtype=dtype)
    dh_before = dh.copy()
    dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = _kernels.lstm_layer_backward(
        rows(a["x"], dtype), cast["h0"], cast["c0"], h, c, gates, dh,
        d_hn.astype(dtype), d_cn.astype(dtype), cast["w_ih"], cast["w_hh"], cast.get("w_hr"),
        lengths, reverse)
    assert_close(dx.reshape(m, T, n_in), batch_major(expected["input"]), dtype, "input")
    assert_close(dh0, expected["hx"], dtype, "hx")
    assert_close(dc0, expected["cx"], dtype, "cx")
    assert_close(dw_ih, expected["weight_ih"], dtype, "weight_ih")
    assert_close(dw_hh, expected["weight_hh"], dtype, "weight_hh")
    if bias:
        assert_close(db, expected["bias_ih"], dtype, "bias")
    if P:
        assert_close(dw_hr, expected["weight_hr"], dtype, "weight_hr")
    else:
        assert dw_hr is None
    assert dh.shape == dh_before.shape      # dh is the kernel's scratch (a private copy)


def carried(h, lengths, state):
    """``h`` (m, T, n) with its padded steps zeroed, after checking they hold ``state``."""
    if lengths is None:
        return h
    padded = np.arange(h.shape[1])[None, :] >= lengths[:, None]
    for i, t in zip(*np.nonzero(padded), strict=True):
        assert_close(h[i, t], state[i], h.dtype, f"carried state {i}, {t}")
    return np.where(padded[:, :, None], 0, h)


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[2] == 0], ids=shape_id)
def test_gru_kernels_match_the_twin(shape, bias, reverse, with_lengths, dtype, products):
    n_in, H, _, m, T = shape
    a = problem("gru", shape, bias)
    lengths = lengths_for(m, T, with_lengths)
    out, h_n, cache = ref.gru_layer_forward(a["x"], a["h0"], a["w_ih"], a["w_hh"],
                                            a.get("b_ih"), a.get("b_hh"), reverse, lengths)
    cast = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in a.items()}
    h, gates, hn = _kernels.gru_layer_forward(rows(a["x"], dtype), cast["h0"], cast["w_ih"],
                                              cast["w_hh"], cast.get("b_ih"), cast.get("b_hh"),
                                              lengths, reverse)
    assert_close(carried(h, lengths, a["h0"] if reverse else h_n), batch_major(out), dtype, "h")
    rng = np.random.default_rng(3)
    d_out = rng.standard_normal(out.shape)
    d_hn = rng.standard_normal(h_n.shape)
    if lengths is not None:
        d_out = d_out * (np.arange(T)[:, None] < lengths[None, :])[:, :, None]
    expected = ref.gru_layer_backward(d_out, d_hn, cache)
    dh = np.ascontiguousarray(batch_major(d_out), dtype=dtype)
    dh_before = dh.copy()
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _kernels.gru_layer_backward(
        rows(a["x"], dtype), cast["h0"], h, gates, hn, dh, d_hn.astype(dtype), cast["w_ih"],
        cast["w_hh"], lengths, reverse)
    np.testing.assert_array_equal(dh, dh_before)            # read only
    assert_close(dx.reshape(m, T, n_in), batch_major(expected["input"]), dtype, "input")
    assert_close(dh0, expected["hx"], dtype, "hx")
    assert_close(dw_ih, expected["weight_ih"], dtype, "weight_ih")
    assert_close(dw_hh, expected["weight_hh"], dtype, "weight_hh")
    if bias:
        assert_close(db_ih, expected["bias_ih"], dtype, "bias_ih")
        assert_close(db_hh, expected["bias_hh"], dtype, "bias_hh")
