"""Hypothesis strategies for the property tests (tests/properties/), in one place.

sizes
    :func:`size` draws 1 often and small sizes otherwise; :data:`seed_sizes`
    draws ``(n_x, n_h, n_y, m, T)`` with ``T = 1`` and ``m = 1`` among them,
    and now and then a size at a kernel threshold: the hand-written recurrent
    products serve ``m = 1`` up to ``n_h = 64``, BLAS blocks at 32 and 64
    (:data:`THRESHOLD_SIZES`).
dtypes
    :func:`draw_dtype_plan` gives every argument a form: float32 or float64
    throughout, a mix of the two, or any of the inputs the API converts to
    float64 (:data:`CONVERTED`: integers, booleans, float16, byte-swapped
    floats, long double, nested lists).  :func:`present` turns float64 values
    into a form; :func:`result_dtype` is the documented dtype of the results
    (float32 only when every input is a float32 array).
layouts
    :data:`layouts` draws from :data:`LAYOUTS` (C order, Fortran order,
    non-contiguous slices, negative strides, read-only) and :func:`in_layout`
    presents an array in one (both defined in helpers/__init__.py, so that tests
    without hypothesis share them); :func:`draw_layout_plan` gives every
    argument a layout and :func:`arguments` applies a form and a layout.
values
    :func:`draw_values` draws a float64 array of moderate values (drawn value
    by value for small arrays, so that a failure shrinks to a readable example;
    from a seeded generator for larger ones).  :data:`regimes` draws
    ``"moderate"`` (the accuracy regime) or a hostile one: ``"nonfinite"``
    (NaN and +-Inf among moderate values), ``"huge"`` (magnitudes whose
    products overflow the dtype) or ``"tiny"`` (subnormal);
    :func:`draw_hostile` puts a regime's values into some arrays of an example.

The ``draw_*`` helpers take the ``draw`` of an ``st.composite`` strategy: the
shapes they serve change with every example, and a new strategy object per
call would cost more than the test itself.  Every strategy object is built
once, at import or (for the few with size arguments) once per size.
"""

import functools
import math

import numpy as np
from hypothesis import strategies as st

from tests.helpers import LAYOUTS, in_layout  # noqa: F401  (re-exported: the one copy is there)

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Inputs the API accepts and computes in float64 (README: "integers, booleans,
# float16, lists and any mix give float64"); a byte-swapped float32 is not
# float32 either.
CONVERTED = ("int64", "int32", "uint8", "bool", "float16", ">f8", ">f4", "longdouble", "list")

THRESHOLD_SIZES = (31, 32, 33, 63, 64, 65)

REGIMES = ("moderate", "nonfinite", "huge", "tiny")
NON_FINITE = (math.nan, math.inf, -math.inf)
# Magnitudes of the hostile regimes, per dtype of the array: "huge" past the
# square root of the largest float (products overflow) yet finite; "tiny" subnormal.
HUGE = {np.dtype(np.float64): 1e300, np.dtype(np.float32): 1e37}
TINY = {np.dtype(np.float64): 1e-310, np.dtype(np.float32): 1e-40}

# Arrays up to this size get explicitly drawn values (they shrink); larger ones
# are drawn from a seeded generator.
EXPLICIT_MAX = 4
# Moderate values are 0 or at least this large in magnitude: smaller ones
# belong to the "tiny" regime (float32 squares of 1e-30 underflow where the
# float64 twin's do not).
SMALLEST_MODERATE = 1e-3

seeds = st.integers(0, 2**32 - 1)


@functools.cache
def integers(low, high):
    """``st.integers(low, high)``, one object per range."""
    return st.integers(low, high)


@functools.cache
def sampled(choices):
    """``st.sampled_from(choices)`` (a tuple), one object per tuple."""
    return st.sampled_from(choices)


# -- sizes -----------------------------------------------------------------------


def _at_least_one(n):
    return max(n, 1)


@functools.cache
def size(max_value):
    """A size in ``[1, max_value]``, 1 twice as often as another (shrinks to 1)."""
    return st.integers(0, max_value).map(_at_least_one)


@st.composite
def _seed_sizes(draw, max_n=9, max_m=5, max_steps=12):
    n_x, n_h, n_y = draw(size(max_n)), draw(size(max_n)), draw(size(max_n))
    m, n_steps = draw(size(max_m)), draw(size(max_steps))
    which = draw(sampled(("small",) * 8 + ("threshold", "own-products")))
    if which == "threshold":             # one large size: blocked BLAS paths
        big = draw(sampled(THRESHOLD_SIZES))
        axis = draw(integers(0, 3))
        n_x, n_h, n_y, m = [big if i == axis else s for i, s in enumerate((n_x, n_h, n_y, m))]
    elif which == "own-products":        # m = 1 around the hand-written products' limit
        m, n_h = 1, draw(sampled((63, 64, 65)))
    return n_x, n_h, n_y, m, n_steps


#: ``(n_x, n_h, n_y, m, T)``; in one example of five, one size at a kernel threshold.
seed_sizes = _seed_sizes()


# -- values ------------------------------------------------------------------------


def _moderate(v):
    return v if abs(v) >= SMALLEST_MODERATE else 0.0


_ELEMENT = st.floats(-1.0, 1.0).map(_moderate)


@functools.cache
def _elements(n):
    return st.lists(_ELEMENT, min_size=n, max_size=n)


def draw_values(draw, shape, scale=1.0):
    """A float64 array of ``shape`` with values in ``[-scale, scale]`` (0 or at least
    SMALLEST_MODERATE in magnitude)."""
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    if n <= EXPLICIT_MAX:
        a = np.array(draw(_elements(n)), dtype=np.float64).reshape(shape)
    else:
        a = np.random.default_rng(draw(seeds)).uniform(-1.0, 1.0, shape)
    return np.asarray(scale * a)                # an array even when 0-d


#: ``"moderate"`` in five examples of eight, else a hostile regime.
regimes = st.sampled_from(("moderate",) * 5 + REGIMES[1:])


def draw_hostile(draw, arrays, regime, names, dtypes=None):
    """``arrays`` (a dict of float64 arrays) with ``regime``'s values in one or two of ``names``.

    ``nonfinite``: one to three entries become NaN, +Inf or -Inf; ``huge`` and
    ``tiny``: the array is scaled to HUGE or TINY of the dtype it will be
    presented in (``dtypes[name]``: float32, else float64).
    """
    if regime == "moderate":
        return arrays
    arrays, names = dict(arrays), tuple(names)
    chosen = {draw(sampled(names)) for _ in range(draw(integers(1, 2)))}
    for name in sorted(chosen):
        a = np.array(arrays[name], dtype=np.float64)
        dtype = np.dtype(np.float32) if (dtypes or {}).get(name) in ("float32", np.float32) \
            else np.dtype(np.float64)
        if regime == "nonfinite":
            for _ in range(draw(integers(1, 3))):
                a.flat[draw(integers(0, a.size - 1))] = draw(sampled(NON_FINITE))
        else:
            magnitude = HUGE[dtype] if regime == "huge" else TINY[dtype]
            a = magnitude * np.where(a == 0, 1.0, a)
        arrays[name] = a
    return arrays


# -- dtypes and layouts --------------------------------------------------------------

layouts = st.sampled_from(LAYOUTS)


def draw_layout_plan(draw, names):
    """A layout for each argument in ``names``: one for all, or (one example in six)
    each its own."""
    layout = draw(sampled(LAYOUTS + ("each",)))
    return {name: draw(layouts) if layout == "each" else layout for name in names}


def draw_dtype_plan(draw, names, converted=True):
    """A form (a dtype name, or ``"list"``) for each argument in ``names``.

    float64 throughout, float32 throughout, a mix of the two, or (with
    ``converted``) any form the API accepts, each argument its own.
    """
    modes = ("float64", "float32", "mixed") + (("converted",) if converted else ())
    mode = draw(sampled(modes))
    if mode in ("float64", "float32"):
        return {name: mode for name in names}
    choices = ("float64", "float32") + (CONVERTED if mode == "converted" else ())
    return {name: draw(sampled(choices)) for name in names}


def present(a, form):
    """The float64 values ``a`` as an argument of ``form``.

    Integer forms get small integers (``rint(4 a)``, made non-negative for
    unsigned types), booleans ``a > 0``; ``"list"`` is nested Python lists.
    The computation sees ``np.asarray(result, dtype=np.float64)`` (or the
    float32 array itself), which is what the twins are given.
    """
    if form == "list":
        return np.asarray(a, dtype=np.float64).tolist()
    dtype = np.dtype(form)
    if dtype.kind == "b":
        return np.asarray(a) > 0
    if dtype.kind in "iu":
        v = np.rint(4 * np.asarray(a))
        return (np.abs(v) if dtype.kind == "u" else v).astype(dtype)
    with np.errstate(over="ignore"):            # hostile values may overflow float32
        return np.asarray(a).astype(dtype)


def arguments(a, form, layout):
    """``present(a, form)``, in ``layout`` when it is an array."""
    value = present(a, form)
    return in_layout(value, layout) if isinstance(value, np.ndarray) else value


def result_dtype(*inputs):
    """The documented result dtype: float32 when every input is a float32 array."""
    if all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in inputs):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def to64(a):
    """The values the computation sees, as the twins take them."""
    return np.asarray(a, dtype=np.float64)


@functools.cache
def _labels(n, n_classes):
    return st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)


def draw_class_indices(draw, shape, n_classes):
    """Integer class indices in ``[0, n_classes)`` of ``shape``, in a drawn integer dtype
    (or a nested list) and layout."""
    shape = tuple(shape)
    n = math.prod(shape)
    if n <= 4 * EXPLICIT_MAX:
        y = np.array(draw(_labels(n, n_classes)), dtype=np.int64).reshape(shape)
    else:
        y = np.random.default_rng(draw(seeds)).integers(0, n_classes, shape)
    form = draw(sampled(("int64", "intp", "int32", "uint8", "list")))
    if form == "list":
        return y.tolist()
    return in_layout(y.astype(form), draw(layouts))
