"""The BLAS shim (row-major gemm/gemv over NumPy's own BLAS or SciPy's, with a plain
loop for tiny products) and the hand-written vector-matrix product, each against NumPy."""

import itertools

import numpy as np
import pytest

from rnnfast import _kernels
from tests.helpers import RTOL


@pytest.fixture(autouse=True, params=["numpy", "scipy", "torch"])
def blas(request):
    """Each test on NumPy's own BLAS (when the kernels could bind it), on SciPy's, and on
    torch's (the one rnnfast.torch's operators use, when torch is installed)."""
    if request.param == "numpy" and _kernels.NUMPY_BLAS is None:
        pytest.skip("NumPy's BLAS is not bound here (another BLAS, or RNNFAST_BLAS=scipy)")
    if request.param == "torch":
        plugin = pytest.importorskip("rnnfast.torch")
        if plugin.TORCH_BLAS is None:
            pytest.skip("torch's BLAS is not bound here")
        _kernels._use_torch_blas(True)
        assert _kernels._torch_blas_active()
        yield request.param
        _kernels._use_torch_blas(False)
        return
    _kernels._use_numpy_blas(request.param == "numpy")
    assert _kernels.blas_in_use() == request.param
    yield request.param
    _kernels._use_numpy_blas(True)


def operand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# (n_rows, n_cols, n_inner): tiny ones take the plain loop (<= 1024 multiply-adds),
# the others BLAS; 1s and odd sizes on both sides of the threshold.
GEMM_SIZES = [(1, 1, 1), (3, 5, 7), (8, 8, 16), (1, 129, 7), (13, 1, 80), (9, 11, 13),
              (33, 65, 17)]


@pytest.mark.parametrize("size", GEMM_SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("trans_a, trans_b", list(itertools.product("NT", "NT")))
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (-0.5, 1.0), (2.0, 0.25)])
def test_gemm(size, trans_a, trans_b, alpha, beta, dtype):
    n_rows, n_cols, n_inner = size
    rng = np.random.default_rng(sum(size))
    a = operand(rng, (n_inner, n_rows) if trans_a == "T" else (n_rows, n_inner), dtype)
    b = operand(rng, (n_cols, n_inner) if trans_b == "T" else (n_inner, n_cols), dtype)
    c = operand(rng, (n_rows, n_cols), dtype)
    if beta == 0:
        c[...] = np.nan                        # C is not read when beta is 0
    op = {"N": lambda m: m, "T": lambda m: m.T}
    expected = alpha * (op[trans_a](a).astype(np.float64) @ op[trans_b](b).astype(np.float64))
    if beta:
        expected += beta * c.astype(np.float64)
    _kernels._test_gemm(trans_a, trans_b, alpha, a, b, beta, c)
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(c, expected, rtol=0, atol=RTOL[dtype] * scale * np.sqrt(n_inner))


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (64, 64), (7, 129)])
@pytest.mark.parametrize("trans", ["N", "T"])
def test_gemv(shape, trans, dtype):
    rng = np.random.default_rng(shape[0])
    a = operand(rng, shape, dtype)
    n_in, n_out = (shape[0], shape[1]) if trans == "T" else (shape[1], shape[0])
    x, y = operand(rng, n_in, dtype), operand(rng, n_out, dtype)
    opa = a.T if trans == "T" else a
    expected = 1.5 * opa.astype(np.float64) @ x + 0.5 * y.astype(np.float64)
    _kernels._test_gemv(trans, 1.5, a, x, 0.5, y)
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(y, expected, rtol=0, atol=RTOL[dtype] * scale * np.sqrt(n_in))


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 64), (13, 32), (9, 65), (3, 129)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_vecmat(shape, accumulate, dtype):
    rng = np.random.default_rng(shape[1])
    v, a = operand(rng, shape[0], dtype), operand(rng, shape, dtype)
    out = operand(rng, shape[1], dtype)
    expected = v.astype(np.float64) @ a + (out.astype(np.float64) if accumulate else 0)
    _kernels._test_vecmat(v, a, out, accumulate)
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(out, expected, rtol=0,
                               atol=RTOL[dtype] * scale * np.sqrt(shape[0]))


def test_hooks_refuse_shapes_that_do_not_fit():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="shapes"):
        _kernels._test_gemm("N", "N", 1.0, z, z, 0.0, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="trans"):
        _kernels._test_gemm("X", "N", 1.0, z, z.T.copy(), 0.0, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shapes"):
        _kernels._test_gemv("N", 1.0, z, np.zeros(2), 0.0, np.zeros(2))
    with pytest.raises(ValueError, match="shapes"):
        _kernels._test_vecmat(np.zeros(3), z, np.zeros(3), False)
