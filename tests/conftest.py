"""Shared helpers: problem generators, the per-dtype tolerances, memory layouts, torch glue.

float64 results must match the float64 reference to 5e-14 relative; float32
results (to 1e-5) are compared with the float64 reference run on the same
inputs.  Both figures are a few times the error measured (see RTOL).
"""

import os

import numpy as np
import pytest

try:
    from hypothesis import HealthCheck, settings
except ImportError:          # hypothesis is in the [test] extra; its tests skip without it
    settings = None
else:
    # default: every run of the suite, derandomized (the same examples each run,
    # so the README's command and CI pass or fail reproducibly); long: a
    # thorough random pass (a few minutes); fuzz: a long random fuzzing run of
    # tests/test_properties.py (an hour or more).
    # Select with --hypothesis-profile=NAME or RNNFAST_HYPOTHESIS_PROFILE=NAME.
    for _name, _examples in (("default", 200), ("long", 3000), ("fuzz", 50_000)):
        settings.register_profile(_name, max_examples=_examples, deadline=None,
                                  derandomize=_name == "default",
                                  suppress_health_check=[HealthCheck.too_slow,
                                                         HealthCheck.data_too_large])
    settings.load_profile(os.environ.get("RNNFAST_HYPOTHESIS_PROFILE", "default"))

# Relative tolerance per result dtype, scaled by the largest magnitude in the
# expected array, at least 1 (so entries near zero are judged on the array's
# scale).  Measured with RNNFAST_RECORD_ERRORS over the whole suite against the
# float64 NumPy twins: worst float32 1.9e-6 (dWhh at T = 3000), worst float64
# 6.6e-15 (the same); the tolerances are 5x and 8x those.  A tanh 1e-4 too
# large, or any result perturbed by 1e-5 relative, fails.
RTOL = {np.dtype(np.float64): 5e-14, np.dtype(np.float32): 1e-5}

# RNNFAST_RECORD_ERRORS=FILE makes assert_close append every measured error
# (max |actual - expected| / scale) to FILE: how the tolerances were measured.
_ERROR_LOG = os.environ.get("RNNFAST_RECORD_ERRORS")

DTYPES = [np.float32, np.float64]

# (n_x, n_h, n_y, m, T): odd sizes, T=1, m=1, and n_x != n_h != n_y.
SHAPES = [
    (1, 1, 1, 1, 1),
    (5, 5, 5, 1, 5),
    (7, 13, 1, 1, 1),
    (13, 7, 129, 3, 1),
    (7, 13, 5, 1, 29),
    (13, 1, 7, 7, 13),
    (1, 129, 7, 13, 7),
    (129, 7, 13, 2, 3),
    (7, 129, 13, 129, 2),
]


def shape_id(shape):
    return "nx{}-nh{}-ny{}-m{}-T{}".format(*shape)


def assert_close(actual, expected, dtype, name=""):
    """``actual`` (of ``dtype``) agrees with the float64 ``expected``."""
    dtype = np.dtype(dtype)
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{name}: dtype {actual.dtype} != {dtype}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    rtol = RTOL[dtype]
    if _ERROR_LOG and expected.size:
        error = float(np.max(np.abs(actual.astype(np.float64) - expected))) / scale
        with open(_ERROR_LOG, "a") as log:
            log.write(f"{dtype.name}\t{error:.3e}\t{os.environ.get('PYTEST_CURRENT_TEST', '')}"
                      f"\t{name}\n")
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=name)


def make_problem(shape, dtype=np.float64, seed=0):
    """Random ``(x, h0, parameters)`` of ``shape = (n_x, n_h, n_y, m, T)``.

    Weights are scaled by 1/sqrt(fan-in) so that activations stay in tanh's
    responsive range and gradients neither vanish nor explode over long T.
    """
    n_x, n_h, n_y, m, n_steps = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_x, m, n_steps))
    h0 = 0.5 * rng.standard_normal((n_h, m))
    parameters = {
        "Whx": rng.standard_normal((n_h, n_x)) / np.sqrt(n_x),
        "Whh": 0.9 * rng.standard_normal((n_h, n_h)) / np.sqrt(n_h),
        "Wyh": rng.standard_normal((n_y, n_h)) / np.sqrt(n_h),
        "bh": 0.1 * rng.standard_normal((n_h, 1)),
        "by": 0.1 * rng.standard_normal((n_y, 1)),
    }
    dtype = np.dtype(dtype)
    return (x.astype(dtype), h0.astype(dtype),
            {k: v.astype(dtype) for k, v in parameters.items()})


def make_dh(shape, dtype=np.float64, seed=1):
    n_x, n_h, n_y, m, n_steps = shape
    return np.random.default_rng(seed).standard_normal((n_h, m, n_steps)).astype(dtype)


def as_float64(x, h0, parameters):
    return (x.astype(np.float64), h0.astype(np.float64),
            {k: np.asarray(v, dtype=np.float64) for k, v in parameters.items()})


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(params=["auto", "own", "blas"])
def products(request):
    """Run a test with the recurrent products chosen by size, or forced to one path."""
    from rnnfast import _kernels
    _kernels._set_force_products({"auto": None, "own": True, "blas": False}[request.param])
    yield request.param
    _kernels._set_force_products(None)


# -- memory layouts ------------------------------------------------------------
#
# The one copy of the layout helpers (tests/strategies.py draws from LAYOUTS;
# the example-based tests use in_layout directly).  They live here, not in
# strategies.py, so that tests without hypothesis can use them.

LAYOUTS = ("c", "fortran", "strided", "negative", "readonly")


def in_layout(a, layout):
    """The values of ``a`` in a new array (or view) of the given memory layout.

    ``"c"``: C order; ``"fortran"``: Fortran order; ``"strided"``: every other
    element of an array twice as large on every axis (non-contiguous);
    ``"negative"``: negative strides on every axis; ``"readonly"``: a C-order
    copy that cannot be written.  The result never shares memory with ``a``.
    """
    a = np.asarray(a)
    if layout == "c" or a.ndim == 0:
        out = np.array(a, order="C", copy=True)
    elif layout == "fortran":
        out = np.array(a, order="F", copy=True)
    elif layout == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        out = big[tuple(slice(None, None, 2) for _ in a.shape)]
        out[...] = a
    elif layout == "negative":
        flip = tuple(slice(None, None, -1) for _ in a.shape)
        out = np.array(a[flip], order="C", copy=True)[flip]
    elif layout == "readonly":
        out = np.array(a, order="C", copy=True)
    else:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if layout == "readonly":
        out.flags.writeable = False
    return out


# -- PyTorch glue (torch is imported only when these are called) ---------------


def torch_dtype(dtype):
    """The torch dtype of a NumPy float32 or float64 dtype."""
    import torch
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        np.dtype(dtype)]


def load_numpy_weights(module, weights):
    """Copy NumPy ``weights`` (torch's parameter names) into the torch ``module``.

    Strict like ``load_state_dict``: every parameter, and only those; values
    are cast to the module's dtype.  Returns ``module``.
    """
    import torch
    module.load_state_dict({name: torch.tensor(np.asarray(value)) for name, value in
                            weights.items()})
    return module
