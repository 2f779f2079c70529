"""The seed API's common case runs at C speed, and computes what the full path computes.

``rnn_forward`` and ``rnn_backward`` first try ``_kernels.fast_forward`` /
``fast_backward``, which accept only plain C-contiguous arrays of one float
dtype (any strides for ``dh``) and a ``(ForwardCache, x)`` tuple; anything else
takes the full path (validation, conversion).  Both paths call the same
kernels, so their results must be identical, bit for bit.
"""

from collections.abc import Sequence

import numpy as np
import pytest

import rnnfast
from rnnfast import _kernels
from rnnfast import reference as ref
from tests.helpers import (
    LAYOUTS,
    as_float64,
    assert_close,
    in_layout,
    make_dh,
    make_problem,
    shape_id,
)

SHAPES = [(5, 5, 5, 1, 5), (3, 4, 2, 1, 1), (2, 7, 3, 5, 1), (4, 9, 6, 3, 7), (1, 1, 1, 1, 1)]


class ParameterDict(dict):
    """A dict subclass: valid parameters that the fast path does not take."""


def both_forwards(shape, dtype):
    x, h0, parameters = make_problem(shape, dtype)
    assert _kernels.fast_forward(x, h0, parameters) is not None
    assert _kernels.fast_forward(x, h0, ParameterDict(parameters)) is None
    return (x, h0, parameters, rnnfast.rnn_forward(x, h0, parameters),
            rnnfast.rnn_forward(x, h0, ParameterDict(parameters)))


def assert_same_grads(fast, full):
    assert fast.keys() == full.keys()
    for key in fast:
        assert fast[key].shape == full[key].shape, key
        assert fast[key].dtype == full[key].dtype, key
        np.testing.assert_array_equal(fast[key], full[key], err_msg=key)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_the_fast_and_full_paths_agree_bit_for_bit(shape, dtype, products):
    x, h0, parameters, fast, full = both_forwards(shape, dtype)
    for a, b in zip(fast[:2], full[:2], strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)
    dh = make_dh(shape, dtype)
    assert _kernels.fast_backward(dh, fast[2]) is not None
    assert _kernels.fast_backward(dh, list(fast[2])) is None
    assert_same_grads(rnnfast.rnn_backward(dh, fast[2]), rnnfast.rnn_backward(dh, list(fast[2])))
    # and both are the float64 reference's, to the measured tolerance
    expected = ref.rnn_backward(dh.astype(np.float64),
                                ref.rnn_forward(*as_float64(x, h0, parameters))[2])
    grads = rnnfast.rnn_backward(dh, fast[2])
    for key in expected:
        assert_close(grads[key], expected[key], dtype, key)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(4, 9, 6, 3, 7), (2, 5, 3, 1, 4)], ids=shape_id)
def test_dh_in_any_layout_gives_the_same_gradients(shape, layout, dtype):
    x, h0, parameters = make_problem(shape, dtype)
    caches = rnnfast.rnn_forward(x, h0, parameters)[2]
    dh = make_dh(shape, dtype)
    expected = rnnfast.rnn_backward(dh, caches)
    assert_same_grads(rnnfast.rnn_backward(in_layout(dh, layout), caches), expected)


def test_dh_in_another_byte_order_or_dtype_takes_the_full_path(dtype):
    shape = (4, 9, 6, 3, 7)
    x, h0, parameters = make_problem(shape, dtype)
    caches = rnnfast.rnn_forward(x, h0, parameters)[2]
    dh = make_dh(shape, dtype)
    swapped = dh.astype(dh.dtype.newbyteorder())
    assert _kernels.fast_backward(swapped, caches) is None
    assert_same_grads(rnnfast.rnn_backward(swapped, caches), rnnfast.rnn_backward(dh, caches))
    other = np.float64 if dtype == np.float32 else np.float32
    assert _kernels.fast_backward(dh.astype(other), caches) is None
    grads = rnnfast.rnn_backward(dh.astype(other), caches)
    assert grads["dWhh"].dtype == np.float64      # float64 wins, as on the full path


def test_a_wrong_dh_shape_is_still_a_clear_error():
    x, h0, parameters = make_problem((4, 9, 6, 3, 7))
    caches = rnnfast.rnn_forward(x, h0, parameters)[2]
    with pytest.raises(ValueError, match="dh"):
        rnnfast.rnn_backward(np.zeros((9, 3, 6)), caches)
    with pytest.raises(ValueError, match="dh"):
        rnnfast.rnn_backward(np.zeros((9, 3)), caches)


def test_no_input_is_written_and_h_is_the_callers(dtype):
    shape = (4, 9, 6, 3, 7)
    x, h0, parameters = make_problem(shape, dtype)
    dh = make_dh(shape, dtype)
    before = [a.copy() for a in (x, h0, dh, *parameters.values())]
    h, y, caches = rnnfast.rnn_forward(x, h0, parameters)
    grads = rnnfast.rnn_backward(dh, caches)
    for a, b in zip(before, (x, h0, dh, *parameters.values()), strict=True):
        np.testing.assert_array_equal(a, b)
    h[...] = 123          # the caller's h is not the cache's states
    y[...] = 123
    assert_same_grads(rnnfast.rnn_backward(dh, caches), grads)


def test_the_forward_cache_is_a_sequence_of_step_caches():
    shape = (4, 9, 6, 3, 7)
    x, h0, parameters = make_problem(shape)
    h, _, (steps, _) = rnnfast.rnn_forward(x, h0, parameters)
    _, _, (expected, _) = ref.rnn_forward(x, h0, parameters)
    assert isinstance(steps, Sequence) and isinstance(steps, rnnfast.ForwardCache)
    assert len(steps) == len(list(steps)) == 7
    for got, want in zip(steps, expected, strict=True):
        for a, b in zip(got[:3], want[:3], strict=True):
            assert_close(a, b, np.float64)
        assert got[3] is parameters
    np.testing.assert_array_equal(steps[-1][0], h[:, :, -1])
    np.testing.assert_array_equal(list(reversed(steps))[0][0], h[:, :, -1])
    assert [s[0].tolist() for s in steps[1:3]] == [steps[1][0].tolist(), steps[2][0].tolist()]
    np.testing.assert_array_equal(steps[0][1], h0)
    with pytest.raises(IndexError):
        steps[7]
    with pytest.raises(IndexError):
        steps[-8]
    with pytest.raises(TypeError, match="integers or slices"):
        steps[1.0]
    assert "7 steps" in repr(steps)


def test_a_forward_cache_needs_a_model_and_states():
    with pytest.raises(TypeError):
        rnnfast.ForwardCache(None, np.zeros((1, 1, 1)), {})
    with pytest.raises(TypeError):
        rnnfast.ForwardCache("model", np.zeros((1, 1, 1)), {})


def test_float32_in_the_other_byte_order_stays_float32():
    x, h0, parameters = make_problem((4, 9, 6, 3, 7), np.float32)
    swap = lambda a: a.astype(a.dtype.newbyteorder())      # noqa: E731
    h, y, caches = rnnfast.rnn_forward(swap(x), swap(h0), {k: swap(v) for k, v in
                                                           parameters.items()})
    expected = rnnfast.rnn_forward(x, h0, parameters)
    assert h.dtype == y.dtype == np.float32
    np.testing.assert_array_equal(h, expected[0])
    np.testing.assert_array_equal(y, expected[1])
