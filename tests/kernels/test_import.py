"""What ``import rnnfast`` loads: SciPy only when the kernels fall back to its BLAS."""

import os
import subprocess
import sys

import pytest

PROBE = ("import sys, rnnfast; "
         "print(rnnfast._kernels.blas_in_use(), 'scipy.linalg' in sys.modules)")


def _probe(**env):
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=120, check=True)
    blas, scipy_loaded = result.stdout.split()
    return blas, scipy_loaded == "True"


def test_import_does_not_load_scipy_when_numpy_blas_is_bound():
    blas, scipy_loaded = _probe(RNNFAST_BLAS="")
    if blas != "numpy":
        pytest.skip("NumPy's BLAS is not bound here: the kernels need SciPy's")
    assert not scipy_loaded


def test_scipy_blas_is_bound_when_asked_for():
    assert _probe(RNNFAST_BLAS="scipy") == ("scipy", True)


def test_switching_to_scipy_blas_at_run_time_binds_it():
    """A process that started on NumPy's BLAS can still use SciPy's (the kernels bind it
    on the switch): results agree with NumPy's matmul."""
    code = ("import numpy as np, rnnfast; from rnnfast import reference as ref; "
            "rnnfast._kernels._use_numpy_blas(False); "
            "assert rnnfast._kernels.blas_in_use() == 'scipy'; "
            "rng = np.random.default_rng(0); "
            "p = {k: rng.standard_normal(s) for k, s in dict(Whx=(40, 30), Whh=(40, 40), "
            "Wyh=(20, 40), bh=(40, 1), by=(20, 1)).items()}; "
            "x, h0 = rng.standard_normal((30, 8, 5)), rng.standard_normal((40, 8)); "
            "h = rnnfast.rnn_forward(x, h0, p)[0]; "
            "assert np.allclose(h, ref.rnn_forward(x, h0, p)[0], rtol=1e-12, atol=1e-13)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_installed_version_is_the_package_version():
    """pyproject.toml reads the version from rnnfast.__version__: one place."""
    from importlib import metadata

    import rnnfast
    try:
        installed = metadata.version("rnnfast")
    except metadata.PackageNotFoundError:
        pytest.skip("rnnfast is not installed here (run from a source folder)")
    assert installed == rnnfast.__version__
