"""Shared helpers: problem generators and the per-dtype tolerances.

float64 results must match the float64 reference to ~1e-9 relative; float32
results are compared with the float64 reference run on the same inputs.
"""

import os

import numpy as np
import pytest

try:
    from hypothesis import HealthCheck, settings
except ImportError:          # hypothesis is in the [test] extra; its tests skip without it
    settings = None
else:
    for _name, _examples in (("default", 200), ("long", 3000)):
        settings.register_profile(_name, max_examples=_examples, deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("RNNFAST_HYPOTHESIS_PROFILE", "default"))

# Relative tolerance per result dtype, scaled by the largest magnitude in the
# expected array (so entries near zero are judged on the array's scale).
RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-3}

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
def products(request, monkeypatch):
    """Run a test with the recurrent products chosen by size, or forced to one path."""
    from rnnfast import functional
    force = {"auto": None, "own": True, "blas": False}[request.param]
    monkeypatch.setattr(functional, "_force_products", force)
    return request.param
