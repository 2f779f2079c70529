"""Memory layouts, dtype rules and the promise never to write into caller arrays."""

import numpy as np
import pytest

import rnnfast
from tests.helpers import (
    LAYOUTS,
    assert_close,
    check_forward_backward,
    in_layout,
    make_dh,
    make_problem,
)

SHAPE = (7, 13, 5, 3, 9)


@pytest.mark.parametrize("layout", [layout for layout in LAYOUTS if layout != "c"])
def test_any_layout(layout, dtype, products):
    x, h0, p = make_problem(SHAPE, dtype)
    dh = make_dh(SHAPE, dtype)
    x_l, h0_l, dh_l = in_layout(x, layout), in_layout(h0, layout), in_layout(dh, layout)
    p_l = {k: in_layout(v, layout) for k, v in p.items()}
    assert np.array_equal(x_l, x)
    check_forward_backward(x_l, h0_l, p_l, dh_l, dtype)


def test_transposed_views_of_the_users_layout(dtype):
    """x given as a transposed view of a (T, m, n_x) buffer, the time-major case."""
    x, h0, p = make_problem(SHAPE, dtype)
    x_tm = np.ascontiguousarray(x.transpose(2, 1, 0)).transpose(2, 1, 0)
    check_forward_backward(x_tm, h0, p, make_dh(SHAPE, dtype), dtype)


def test_results_feed_back_in(dtype):
    """h and dx are views or arrays of the right dtype that work as new inputs."""
    x, h0, p = make_problem(SHAPE, dtype)
    h, y, caches = rnnfast.rnn_forward(x, h0, p)
    grads = rnnfast.rnn_backward(h, caches)     # h itself as an upstream gradient
    assert grads["dx"].dtype == dtype and grads["dx"].flags.c_contiguous
    h2, _, _ = rnnfast.rnn_forward(x, h[:, :, -1], p)
    assert h2.dtype == dtype


def test_integer_and_list_inputs_become_float64():
    x, h0, p = make_problem((3, 4, 2, 2, 3))
    xi = np.rint(3 * x).astype(np.int32)
    as_lists = {k: v.tolist() for k, v in p.items()}
    h, y, caches = rnnfast.rnn_forward(xi.tolist(), h0.tolist(), as_lists)
    assert h.dtype == y.dtype == np.float64
    check_forward_backward(xi, h0, p, make_dh((3, 4, 2, 2, 3)), np.float64)
    check_forward_backward(xi.tolist(), h0.tolist(), {k: v.tolist() for k, v in p.items()},
                           make_dh((3, 4, 2, 2, 3)).tolist(), np.float64)


def test_boolean_inputs_become_float64():
    x, h0, p = make_problem((3, 4, 2, 2, 3))
    check_forward_backward(x > 0, h0, p, make_dh((3, 4, 2, 2, 3)), np.float64)


@pytest.mark.parametrize("odd_one", ["x", "h0", "Whx", "Whh", "Wyh", "bh", "by"])
def test_mixed_float32_float64_becomes_float64(odd_one):
    x, h0, p = make_problem(SHAPE, np.float32)
    if odd_one == "x":
        x = x.astype(np.float64)
    elif odd_one == "h0":
        h0 = h0.astype(np.float64)
    else:
        p[odd_one] = p[odd_one].astype(np.float64)
    check_forward_backward(x, h0, p, make_dh(SHAPE, np.float32), np.float64)


def test_float64_dh_on_float32_cache_gives_float64():
    x, h0, p = make_problem(SHAPE, np.float32)
    _, _, caches = rnnfast.rnn_forward(x, h0, p)
    grads = rnnfast.rnn_backward(make_dh(SHAPE, np.float64), caches)
    assert all(g.dtype == np.float64 for g in grads.values())
    grads32 = rnnfast.rnn_backward(make_dh(SHAPE, np.float32), caches)
    assert all(g.dtype == np.float32 for g in grads32.values())
    for key in grads:
        assert_close(grads32[key], grads[key].astype(np.float64), np.float32, key)


def test_float16_inputs_become_float64():
    x, h0, p = make_problem(SHAPE, np.float16)
    check_forward_backward(x, h0, p, make_dh(SHAPE, np.float16), np.float64)


def snapshot(*arrays):
    return [np.array(a, copy=True) for a in arrays]


def test_inputs_are_never_written(dtype):
    x, h0, p = make_problem(SHAPE, dtype)
    dh = make_dh(SHAPE, dtype)
    names = list(p)
    before = snapshot(x, h0, dh, *p.values())
    h, y, caches = rnnfast.rnn_forward(x, h0, p)
    grads = rnnfast.rnn_backward(dh, caches)
    h_before = h.copy()
    rnnfast.rnn_backward(dh, caches)         # a cache can be used twice
    np.testing.assert_array_equal(h, h_before)
    # Writing into a result does not reach the caller's arrays.
    grads["dh0"][...] = 7
    h[...] = 7
    xt = x[:, :, 0]
    _, _, cell_cache = rnnfast.rnn_cell_forward(xt, h0, p)
    rnnfast.rnn_cell_backward(dh[:, :, 0], cell_cache)
    after = snapshot(x, h0, dh, *(p[k] for k in names))
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert list(p) == names


def test_m1_and_n_h1_inputs_are_not_aliased_in_outputs(dtype):
    """With m = 1 the internal h0 may share memory with the caller's; outputs never do."""
    shape = (3, 4, 2, 1, 5)
    x, h0, p = make_problem(shape, dtype)
    h, y, caches = rnnfast.rnn_forward(x, h0, p)
    grads = rnnfast.rnn_backward(make_dh(shape, dtype), caches)
    for out in (h, y, *grads.values()):
        for inp in (x, h0, *p.values()):
            assert not np.shares_memory(out, inp)


def test_batch_major_dh_is_read_in_place_and_left_intact(dtype, products):
    """dh given as a view of a batch-major (m, T, n_h) buffer needs no copy; it must stay intact."""
    x, h0, p = make_problem(SHAPE, dtype)
    dh = make_dh(SHAPE, dtype)
    buffer = np.ascontiguousarray(dh.transpose(1, 2, 0))
    buffer.flags.writeable = True
    before = buffer.copy()
    dh_view = buffer.transpose(2, 0, 1)
    check_forward_backward(x, h0, p, dh_view, dtype)
    np.testing.assert_array_equal(buffer, before)
    # and the forward's h, itself such a view, passes through untouched too
    h, _, caches = rnnfast.rnn_forward(x, h0, p)
    h_before = h.copy()
    rnnfast.rnn_backward(h, caches)
    np.testing.assert_array_equal(h, h_before)
