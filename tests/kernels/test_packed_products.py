"""The recurrent products in LIBXSMM's kernels (PRODUCT_PACKED) against NumPy and the twins.

The plan is chosen by ``plan_product`` (``_blas.pxd``); ``_set_force_packed(True)``
runs it on every shape, ``False`` never.  The seed API, ``rnnfast.RNN`` and
``RNNModel`` run their comparisons with the twins on it through the ``products``
fixture ("packed"); this file checks the kernel itself, the plan, and the layer
entry points at the shapes around the plan's thresholds.
"""

import numpy as np
import pytest

from rnnfast import _kernels
from tests.helpers import (
    assert_close,
    assert_elman_layer_kernels_match_the_twin,
    assert_gated_layer_kernels_match_the_twin,
)

needs_libxsmm = pytest.mark.skipif(not _kernels.LIBXSMM,
                                   reason="rnnfast is built without LIBXSMM")
PLANS = ("packed", "gemv", "gemm")


@pytest.fixture
def packed():
    """LIBXSMM's kernels on every shape that allows them."""
    _kernels._set_force_packed(True)
    yield
    _kernels._set_force_packed(None)


def test_products_backend_says_whether_libxsmm_is_in():
    assert _kernels.products_backend() == ("libxsmm" if _kernels.LIBXSMM else "blas")


@needs_libxsmm
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 129), (3, 129, 7), (13, 65, 33),
                                   (32, 256, 256)], ids=str)
@pytest.mark.parametrize("accumulate", [False, True], ids=["set", "add"])
def test_packed_times_matches_numpy(shape, accumulate, dtype):
    n_rows, n_inner, n_cols = shape
    rng = np.random.default_rng(n_rows + n_inner)
    a = rng.standard_normal((n_rows, n_inner))
    b = rng.standard_normal((n_inner, n_cols)) / np.sqrt(n_inner)
    c0 = rng.standard_normal((n_rows, n_cols))
    c = c0.astype(dtype)
    assert _kernels._test_packed_times(a.astype(dtype), b.astype(dtype), c, accumulate)
    expected = a.astype(dtype).astype(np.float64) @ b.astype(dtype).astype(np.float64)
    if accumulate:
        expected += c0.astype(dtype)
    assert_close(c, expected, dtype, "c")


@needs_libxsmm
@pytest.mark.parametrize("sizes, float32, plan", [
    # 2 to 32 rows; up to 100 x 100, or from 16 rows on; at most 32 x 256 x 256 multiply-adds
    # in float64, 32 x 448 x 448 in float32
    ((2, 16, 16), False, "packed"), ((2, 100, 100), False, "packed"), ((7, 1, 1), False, "packed"),
    ((2, 101, 101), False, "gemm"), ((15, 128, 128), False, "gemm"),
    ((16, 128, 128), False, "packed"), ((32, 128, 128), False, "packed"),
    ((33, 16, 16), False, "gemm"), ((33, 16, 16), True, "gemm"),
    ((32, 256, 256), False, "packed"), ((24, 300, 300), False, "gemm"),
    ((24, 300, 300), True, "packed"), ((64, 256, 256), True, "gemm"),
    ((32, 448, 448), True, "packed"), ((33, 448, 448), True, "gemm"),
    ((32, 512, 512), True, "gemm"), ((32, 512, 512), False, "gemm"),
    # one row stays with gemv (or the hand-written loop, where allowed)
    ((1, 100, 100), False, "gemv"), ((1, 8, 8), True, "gemv"),
    # the LSTM's and GRU's (m, P) (P, G H): in float64 an output of at most 32 x 256 values
    ((16, 512, 128), False, "packed"), ((32, 256, 64), False, "packed"),
    ((24, 512, 128), False, "gemm"), ((32, 384, 128), False, "gemm"),
    ((32, 384, 128), True, "packed"), ((32, 768, 256), True, "packed"),
    ((32, 1024, 256), True, "gemm"), ((1, 512, 128), True, "gemv"), ((8, 96, 24), False, "packed"),
])
def test_plan_product_packed(sizes, float32, plan):
    assert _kernels._test_plan_product(*sizes, PLANS, float32) == plan
    # only where the caller allows it
    assert _kernels._test_plan_product(*sizes, ("gemv", "gemm"), float32) != "packed"


@needs_libxsmm
def test_the_test_hook_forces_or_forbids_the_packed_plan():
    try:
        _kernels._set_force_packed(True)
        assert _kernels._test_plan_product(1, 3, 3, PLANS) == "packed"
        assert _kernels._test_plan_product(64, 1024, 1024, PLANS) == "packed"
        _kernels._set_force_packed(False)
        assert _kernels._test_plan_product(32, 256, 256, PLANS) == "gemm"
    finally:
        _kernels._set_force_packed(None)
    assert _kernels._test_plan_product(32, 256, 256, PLANS) == "packed"


@pytest.mark.skipif(_kernels.LIBXSMM, reason="rnnfast is built with LIBXSMM")
def test_without_libxsmm_nothing_is_packed():
    try:
        _kernels._set_force_packed(True)
        assert _kernels._test_plan_product(32, 256, 256, PLANS) == "gemm"
    finally:
        _kernels._set_force_packed(None)


@needs_libxsmm
@pytest.mark.parametrize("sizes", [(1, 1, 1, 1), (1, 1, 3, 7), (5, 1, 4, 65), (4, 3, 5, 129),
                                   (6, 2, 3, 16), (3, 17, 2, 100)],
                         ids=lambda s: "T{}-m{}-nin{}-H{}".format(*s))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("activation", [_kernels.Activation.TANH, _kernels.Activation.RELU],
                         ids=["tanh", "relu"])
def test_packed_layer_kernels_match_the_twin(sizes, reverse, with_lengths, activation, dtype,
                                             packed):
    T, N, n_in, H = sizes
    assert _kernels._test_plan_product(N, H, H, PLANS) == "packed"
    assert_elman_layer_kernels_match_the_twin(T, N, n_in, H, reverse, with_lengths, activation,
                                              dtype)


@needs_libxsmm
@pytest.mark.parametrize("kind, sizes", [
    (kind, sizes) for sizes in [(1, 1, 3, 7, 0), (4, 1, 2, 65, 0), (3, 5, 4, 33, 0),
                                (6, 2, 3, 16, 0), (2, 17, 2, 24, 0), (3, 5, 4, 33, 9),
                                (2, 17, 2, 24, 5), (5, 1, 2, 9, 4)]
    for kind in ("lstm", "gru") if kind == "lstm" or not sizes[4]],
    ids=lambda v: v if isinstance(v, str) else "T{}-m{}-nin{}-H{}-P{}".format(*v))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_packed_gated_layer_kernels_match_the_twin(sizes, kind, reverse, with_lengths, dtype,
                                                   packed):
    """The LSTM (with or without a projection) and GRU layer kernels on the packed path,
    read-only weights, against the twins; the caller's weights are left as they were."""
    T, N, n_in, H, P = sizes
    G, width = (4 if kind == "lstm" else 3), P or H
    assert _kernels._test_plan_product(N, G * H, width, PLANS) == "packed"
    assert_gated_layer_kernels_match_the_twin(kind, T, N, n_in, H, P, reverse, with_lengths,
                                              dtype)
