"""Which BLAS the kernels bind at import, and the product policy that decides how
each product runs (the thresholds behind the speed of every entry point)."""

import glob
import os
import platform
import sys

import numpy as np
import pytest

from rnnfast import _kernels


def reference_platform():
    """The path of NumPy's OpenBLAS the kernels must bind here, or None where the platform differs.

    The reference platform is x86-64 Linux with NumPy's wheel, whose OpenBLAS
    (``libscipy_openblas64_*.so``) ships in ``numpy.libs`` beside the package,
    and ``RNNFAST_BLAS`` unset.  Elsewhere (another OS or CPU, NumPy built
    against another BLAS, or SciPy's BLAS chosen) the kernels use SciPy's.
    """
    if os.environ.get("RNNFAST_BLAS", ""):
        return None
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return None
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    found = sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*.so")))
    return found[0] if found else None


def test_numpy_blas_is_bound_on_the_reference_platform():
    """A silent fall back to SciPy's BLAS (a second OpenBLAS thread pool) fails here."""
    path = reference_platform()
    if path is None:
        pytest.skip("not the reference platform: the kernels use SciPy's BLAS by design")
    assert _kernels.NUMPY_BLAS is not None, f"NumPy's BLAS {path} is not bound"
    assert os.path.samefile(_kernels.NUMPY_BLAS, path)
    assert _kernels.blas_in_use() == "numpy"


ALL = ("loop", "vecmat", "gemv", "gemm")


@pytest.mark.parametrize("sizes, allowed, plan", [
    # one row times a matrix of at most 64 x 64: the hand-written loop, when allowed
    ((1, 64, 64), ALL, "vecmat"), ((1, 1, 1), ALL, "vecmat"),
    ((1, 65, 65), ALL, "gemv"), ((1, 64, 64), ("loop", "gemv", "gemm"), "gemv"),
    # at most 1024 multiply-adds: a plain loop
    ((2, 16, 32), ALL, "loop"), ((1, 1024, 1), ("loop", "gemm"), "loop"),
    ((2, 16, 33), ALL, "gemm"), ((1, 1025, 1), ("loop", "gemm"), "gemm"),
    ((1, 64, 64), ("gemv", "gemm"), "gemv"), ((2, 2, 2), ("gemv", "gemm"), "gemm"),
    # 2**33 multiply-adds, counted in 64 bits (a 32-bit long wraps to 0: "loop")
    ((2048, 2048, 2048), ("loop", "gemm"), "gemm"),
])
def test_plan_product(sizes, allowed, plan):
    assert _kernels._test_plan_product(*sizes, allowed) == plan


def test_own_products_follow_the_plan():
    limit = _kernels.OWN_PRODUCTS_MAX_HIDDEN
    assert limit == 64
    assert _kernels.use_own_products(1, limit)
    assert not _kernels.use_own_products(1, limit + 1)
    assert not _kernels.use_own_products(2, 8)


def test_product_is_sequential_counts_in_64_bits():
    work = _kernels.SEQUENTIAL_PRODUCT_WORK
    assert work == 1 << 18
    assert _kernels.product_is_sequential(1, 512, 512)
    assert not _kernels.product_is_sequential(1, 512, 513)
    # 2**33 multiply-adds: wraps to 0 (sequential) in a 32-bit long
    assert not _kernels.product_is_sequential(2048, 2048, 2048)
    assert not _kernels.product_is_sequential(65536, 65536, 1)
