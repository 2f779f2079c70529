"""Every public function against the NumPy reference, over dtypes and odd shapes."""

import numpy as np
import pytest

import rnnfast
from rnnfast import reference as ref
from tests.helpers import (
    GRAD_KEYS,
    SHAPES,
    as_float64,
    assert_close,
    check_forward_backward,
    make_dh,
    make_problem,
    shape_id,
)

CELL_GRAD_KEYS = ("dxt", "dh_prev", "dWhx", "dWhh", "dbh")


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(shape, dtype, products):
    x, h0, p = make_problem(shape, dtype)
    check_forward_backward(x, h0, p, make_dh(shape, dtype), dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_cell_forward_backward(shape, dtype, products):
    x, h0, p = make_problem(shape, dtype)
    xt = x[:, :, -1]
    dh_next = make_dh(shape, dtype)[:, :, 0]
    x64, h064, p64 = as_float64(x, h0, p)
    h_ref, y_ref, c_ref = ref.rnn_cell_forward(x64[:, :, -1], h064, p64)
    g_ref = ref.rnn_cell_backward(dh_next.astype(np.float64), c_ref)

    h_next, y_pred, cache = rnnfast.rnn_cell_forward(xt, h0, p)
    assert_close(h_next, h_ref, dtype, "h_next")
    assert_close(y_pred, y_ref, dtype, "y_pred")
    assert cache[1] is h0 and cache[2] is xt and cache[3] is p
    assert cache[0] is h_next
    grads = rnnfast.rnn_cell_backward(dh_next, cache)
    assert sorted(grads) == sorted(CELL_GRAD_KEYS)
    for key in CELL_GRAD_KEYS:
        assert_close(grads[key], g_ref[key], dtype, key)
    # The reference's cell backward accepts rnnfast's cell cache too.
    g_mixed = ref.rnn_cell_backward(dh_next.astype(np.float64), cache)
    for key in CELL_GRAD_KEYS:
        assert_close(grads[key], g_mixed[key].astype(np.float64), dtype, key)


@pytest.mark.parametrize("shape", [(7, 13, 5, 1, 3000), (5, 16, 3, 4, 2000)], ids=shape_id)
def test_long_sequences(shape, dtype, products):
    x, h0, p = make_problem(shape, dtype)
    check_forward_backward(x, h0, p, make_dh(shape, dtype), dtype)


@pytest.mark.parametrize("shape", [(5, 7, 3, 4, 6), (13, 1, 7, 1, 9)], ids=shape_id)
def test_seed_format_cache(shape, dtype):
    """rnn_backward accepts the reference's list-of-steps cache (drop-in both ways)."""
    x, h0, p = make_problem(shape, dtype)
    dh = make_dh(shape, dtype)
    _, _, c_ref64 = ref.rnn_forward(*as_float64(x, h0, p))
    g_ref = ref.rnn_backward(dh.astype(np.float64), c_ref64)
    _, _, c_ref = ref.rnn_forward(x, h0, p)  # steps hold arrays of dtype
    assert c_ref[0][0][0].dtype == dtype
    grads = rnnfast.rnn_backward(dh, c_ref)
    for key in GRAD_KEYS:
        assert_close(grads[key], g_ref[key], dtype, key)


def test_forward_cache_indexes_like_reference_steps(dtype):
    shape = (5, 7, 3, 4, 6)
    x, h0, p = make_problem(shape, dtype)
    _, _, (steps_ref, x_ref) = ref.rnn_forward(*as_float64(x, h0, p))
    _, _, (steps, x_cached) = rnnfast.rnn_forward(x, h0, p)
    assert x_cached is x
    assert len(steps) == len(steps_ref) == 6
    for t in (0, 1, 5, -1, -6):
        h_next, h_prev, xt, params = steps[t]
        r_next, r_prev, r_xt, _ = steps_ref[t]
        assert params is p
        assert_close(h_next, r_next, dtype, f"h_next[{t}]")
        assert_close(h_prev, r_prev, dtype, f"h_prev[{t}]")
        assert_close(xt, r_xt, dtype, f"xt[{t}]")
    assert len(steps[1:4]) == 3
    with pytest.raises(IndexError):
        steps[6]
    with pytest.raises(IndexError):
        steps[-7]
    # indices are integers, as for the reference's list
    assert steps[np.int64(2)][0] is not None
    for bad in (1.7, "1", None, 1.0):
        with pytest.raises(TypeError, match="integers or slices"):
            steps[bad]
        with pytest.raises(TypeError):
            steps_ref[bad]
    # The reference's per-step backward runs on rnnfast's step caches.
    dh_next = make_dh(shape, np.float64)[:, :, 2]
    g = ref.rnn_cell_backward(dh_next, steps[2])
    g_ref = ref.rnn_cell_backward(dh_next, steps_ref[2])
    for key in CELL_GRAD_KEYS:
        assert_close(g[key].astype(dtype), g_ref[key], dtype, key)
