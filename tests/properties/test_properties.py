"""Property tests: every public entry point against its NumPy twin in rnnfast.reference.

One ``@given`` property per entry point; sizes, dtypes, layouts and value
regimes come from tests/helpers/strategies.py.  Each example draws a value regime:

* ``moderate``: every result equals the twin's on the same input values at
  the measured tolerances (``assert_close``, helpers.RTOL) and has the
  documented dtype;
* ``nonfinite`` (NaN and +-Inf among moderate values): NaN, +Inf and -Inf
  appear exactly where the twin's results have them, and the finite results
  agree as above;
* ``huge`` and ``tiny``: nothing crashes, shapes and dtypes are right (the
  README: sums ordered differently overflow where the twin's may not, and
  float32 arithmetic overflows and underflows where the float64 twin does
  not); float64 results of the ``tiny`` regime are compared as above;

and in every regime the arguments are left as they were.  One example in
eight instead carries one defect (a wrong shape, a non-real dtype, a missing
parameter, a zero size, a malformed cache, a bad hyperparameter...): it must
raise the documented exception, naming the argument, and change nothing.

Profiles (tests/conftest.py): ``default`` runs 200 examples per property,
``long`` 3,000, ``fuzz`` 50,000 (a long fuzzing run)::

    python -m pytest tests/properties --hypothesis-profile=fuzz

(or ``RNNFAST_HYPOTHESIS_PROFILE=fuzz``).
"""

import functools
import math
import re
import types

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import rnnfast  # noqa: E402
from rnnfast import optim  # noqa: E402
from rnnfast import reference as ref  # noqa: E402
from tests.helpers import RTOL, assert_close, dropout_masks, in_layout, numpy_run  # noqa: E402  # noqa: E402
from tests.helpers.strategies import (  # noqa: E402
    FLOAT_DTYPES,
    THRESHOLD_SIZES,
    arguments,
    draw_class_indices,
    draw_dtype_plan,
    draw_hostile,
    draw_layout_plan,
    draw_values,
    integers,
    layouts,
    regimes,
    result_dtype,
    sampled,
    seed_sizes,
    seeds,
    size,
    to64,
)

PARAMETERS = ("Whx", "Whh", "Wyh", "bh", "by")
PARAMETER_GRADIENTS = tuple("d" + k for k in PARAMETERS)


# -- checks ------------------------------------------------------------------------


def frozen(obj):
    """What ``obj`` holds (arrays by value; dicts, lists and tuples deeply), to compare later."""
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, dict):
        return ("dict", [(k, frozen(v)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [frozen(v) for v in obj])
    return ("value", repr(obj))


def assert_unchanged(before, objects):
    """Every value of the dict ``objects`` still holds what ``before = frozen(objects)`` saw."""
    after = frozen(objects)
    if after != before:
        changed = [k for (k, a), (_, b) in zip(before[1], after[1], strict=True) if a != b]
        raise AssertionError(f"the call changed its arguments {changed}")


def assert_matches(actual, expected, dtype, regime, name, same_non_finite=True):
    """rnnfast's ``actual`` against the twin's ``expected`` in the example's value regime.

    Non-finite values must be the twin's (NaN, +Inf, -Inf) where the twin has
    them or, with ``same_non_finite=False``, any non-finite value.
    """
    assert isinstance(actual, np.ndarray), f"{name} is a {type(actual).__name__}"
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{name}: dtype {actual.dtype}, documented {dtype}"
    if regime == "huge" or (regime == "tiny" and dtype == np.float32):
        return
    nonfinite = ~np.isfinite(expected)
    if not nonfinite.any():
        assert_close(actual, expected, dtype, name)
        return
    checks = ((("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf))
              if same_non_finite else (("NaN or Inf", lambda a: ~np.isfinite(a)),))
    for what, where in checks:
        np.testing.assert_array_equal(where(actual), where(expected),
                                      err_msg=f"{name}: {what} not where the twin has it")
    assert_close(actual[~nonfinite], expected[~nonfinite], dtype, name)


def assert_scalar(value, expected, dtype, regime, name):
    """A Python float result (a loss, a norm) against the twin's, at ``dtype``'s tolerance."""
    assert isinstance(value, float), f"{name} is a {type(value).__name__}, not a float"
    assert_matches(np.asarray(value, dtype=dtype), expected, dtype, regime, name)


def starts(label):
    """A message naming ``label`` first, as every check of the package does."""
    return "^" + re.escape(label) + r"(?!\w)"


def assert_raises(defect, call):
    """``call()`` raises ``defect.error`` with a message matching ``defect.pattern``."""
    with pytest.raises(defect.error) as info, np.errstate(all="ignore"):
        call()
    message = str(info.value.args[0]) if info.value.args else ""
    assert re.search(defect.pattern, message), \
        f"{defect.error.__name__}({message!r}) does not match {defect.pattern!r}"


def defect(error, pattern=""):
    return types.SimpleNamespace(error=error, pattern=pattern)


def maybe_defect(draw, kinds):
    """One of ``kinds`` in one example of eight, else None."""
    return draw(sampled(kinds)) if draw(integers(0, 7)) == 0 else None


# -- the seed API: rnn_cell_forward, rnn_forward, rnn_cell_backward, rnn_backward, rnn_loss -


# Sizes are read from x, Whh and Wyh: a wrong n_x in x is reported as Whx's
# mismatch, a wrong m in x as h0's, a wrong n_y in Wyh as by's.
REPORTED_BY = {("x", 0): "Whx", ("x", 1): "h0", ("Wyh", 0): "by"}
SEED_DEFECTS = ("shape", "ndim", "dtype", "missing", "zero")


def seed_labels(cell):
    """How the error messages name each argument."""
    labels = {"x": "xt" if cell else "x", "h0": "h_prev" if cell else "h0",
              "dh": "dh_next" if cell else "dh"}
    labels.update({k: f'parameters["{k}"]' for k in PARAMETERS})
    return labels


def seed_defect(draw, args, kind, cell):
    """``args`` with one defect of ``kind`` in the forward arguments, and what it must raise."""
    args, labels = dict(args), seed_labels(cell)
    if kind == "missing":
        name = draw(sampled(PARAMETERS))
        del args[name]
        return args, defect(KeyError, re.escape(repr(name)))
    if kind == "zero":
        axis = 1 if cell else draw(sampled((1, 2)))
        x = np.asarray(args["x"])
        args["x"] = np.zeros(x.shape[:axis] + (0,) + x.shape[axis + 1:], x.dtype)
        if axis == 1:
            args["h0"] = np.zeros((np.asarray(args["h0"]).shape[0], 0))
        return args, defect(ValueError, starts("m" if axis == 1 else "T_x") + " is 0")
    name = draw(sampled(("x", "h0") + PARAMETERS))
    a = np.asarray(args[name])
    if kind == "dtype":
        args[name] = a.astype(draw(sampled(("complex128", "U8", "object"))))
        return args, defect(TypeError, starts(labels[name]))
    if kind == "ndim":
        args[name] = a[..., None]
        return args, defect(ValueError, starts(labels[name]))
    axis = draw(integers(0, a.ndim - 1))
    axis = 0 if (name, axis) == ("x", 2) else axis         # T_x is free
    args[name] = np.concatenate([a, a.take([0], axis=axis)], axis=axis)
    return args, defect(ValueError, starts(labels[REPORTED_BY.get((name, axis), name)]))


@st.composite
def seed_problems(draw, cell=False, dh=False, labels=False, defects=SEED_DEFECTS):
    """Arguments of a seed entry point: ``x`` (``xt``), ``h0`` (``h_prev``), the five
    parameters and, when asked, ``dh`` (``dh_next``) and labels ``y``."""
    n_x, n_h, n_y, m, n_steps = draw(seed_sizes)
    n_steps = 1 if cell else n_steps
    regime = draw(regimes)
    shapes = {"x": (n_x, m) if cell else (n_x, m, n_steps), "h0": (n_h, m),
              "Whx": (n_h, n_x), "Whh": (n_h, n_h), "Wyh": (n_y, n_h), "bh": (n_h, 1),
              "by": (n_y, 1)}
    if dh:
        shapes["dh"] = (n_h, m) if cell else (n_h, m, n_steps)
    # weights scaled by 1/sqrt(fan-in): states in tanh's responsive range
    scales = {"Whx": 1 / math.sqrt(n_x), "Whh": 1 / math.sqrt(n_h), "Wyh": 1 / math.sqrt(n_h),
              "bh": 0.5, "by": 0.5}
    plan = draw_dtype_plan(draw, tuple(shapes), converted=regime == "moderate")
    vals = {k: draw_values(draw, s, scales.get(k, 1.0)) for k, s in shapes.items()}
    vals = draw_hostile(draw, vals, regime, tuple(shapes), plan)
    layout = draw_layout_plan(draw, tuple(shapes))
    args = {k: arguments(v, plan[k], layout[k]) for k, v in vals.items()}
    if labels:
        args["y"] = draw_class_indices(draw, (m, n_steps), n_y)
    problem = types.SimpleNamespace(args=args, regime=regime, sizes=(n_x, n_h, n_y, m, n_steps),
                                    defect=None)
    kind = maybe_defect(draw, defects) if defects else None
    if kind in SEED_DEFECTS:
        problem.args, problem.defect = seed_defect(draw, args, kind, cell)
    elif kind is not None:
        problem.defect = kind                 # the property applies it
    return problem


def forward_args(args):
    return args["x"], args["h0"], {k: args[k] for k in PARAMETERS if k in args}


def twin_inputs(args):
    """The forward inputs as the computation sees them, for the twin (float64)."""
    return to64(args["x"]), to64(args["h0"]), {k: to64(args[k]) for k in PARAMETERS}


@given(seed_problems(cell=True))
def test_rnn_cell_forward(problem):
    """rnn_cell_forward = reference.rnn_cell_forward; the cache holds the arguments themselves."""
    xt, h_prev, params = forward_args(problem.args)
    before = frozen(problem.args)
    if problem.defect is not None:
        assert_raises(problem.defect, lambda: rnnfast.rnn_cell_forward(xt, h_prev, params))
        assert_unchanged(before, problem.args)
        return
    with np.errstate(all="ignore"):
        h_next, y_pred, cache = rnnfast.rnn_cell_forward(xt, h_prev, params)
        h_ref, y_ref, _ = ref.rnn_cell_forward(*twin_inputs(problem.args))
    dtype = result_dtype(xt, h_prev, *params.values())
    assert_matches(h_next, h_ref, dtype, problem.regime, "h_next")
    assert_matches(y_pred, y_ref, dtype, problem.regime, "y_pred")
    assert cache[0] is h_next and cache[1] is h_prev and cache[2] is xt and cache[3] is params
    assert_unchanged(before, problem.args)


@given(seed_problems())
def test_rnn_forward(problem):
    """rnn_forward = reference.rnn_forward, and its ForwardCache indexes like the twin's steps."""
    x, h0, params = forward_args(problem.args)
    before = frozen(problem.args)
    if problem.defect is not None:
        assert_raises(problem.defect, lambda: rnnfast.rnn_forward(x, h0, params))
        assert_unchanged(before, problem.args)
        return
    with np.errstate(all="ignore"):
        h, y_pred, (steps, x_cached) = rnnfast.rnn_forward(x, h0, params)
        h_ref, y_ref, (steps_ref, _) = ref.rnn_forward(*twin_inputs(problem.args))
    dtype = result_dtype(x, h0, *params.values())
    regime = problem.regime
    assert_matches(h, h_ref, dtype, regime, "h")
    assert_matches(y_pred, y_ref, dtype, regime, "y_pred")
    assert x_cached is x and len(steps) == len(steps_ref)
    n_steps = len(steps_ref)
    for t in range(-n_steps, n_steps):
        h_next, h_prev, xt, p = steps[t]
        r_next, r_prev, r_xt, _ = steps_ref[t]
        assert p is params
        assert_matches(h_next, r_next, dtype, regime, f"caches[0][{t}][0]")
        assert_matches(h_prev, r_prev, dtype, regime, f"caches[0][{t}][1]")
        assert_matches(xt, r_xt, dtype, regime, f"caches[0][{t}][2]")
    for t in (n_steps, -n_steps - 1, 10**20):
        with pytest.raises(IndexError):
            steps[t]
    assert_unchanged(before, problem.args)


# Malformed caches, each made from the good cache ``c``, and what they raise.
MALFORMED_CACHES = (
    (lambda c: c[0], ValueError), (lambda c: (c[0],), ValueError),
    (lambda c: (c[0], c[1], None), ValueError), (lambda c: None, ValueError),
    (lambda c: (None, c[1]), ValueError), (lambda c: ([], c[1]), ValueError),
    (lambda c: (list(c[0])[:-1], c[1]), ValueError),
    (lambda c: (list(c[0]) + [c[0][0]], c[1]), ValueError),
    (lambda c: ([(1, 2, 3)] * len(c[0]), c[1]), ValueError),
    (lambda c: ([None] * len(c[0]), c[1]), ValueError),
    (lambda c: ("abcd"[:len(c[0])], c[1]), ValueError),
    (lambda c: ({0: c[0][0]}, c[1]), ValueError),
    (lambda c: ([(s[0][:, :0], s[1], s[2], s[3]) for s in c[0]], c[1]), ValueError),
    (lambda c: ([(s[0], s[1], s[2], {}) for s in c[0]], c[1]), KeyError),
    (lambda c: (list(c[0]), None), TypeError),
    (lambda c: ([(s[0].astype(complex), s[1], s[2], s[3]) for s in c[0]], c[1]), TypeError),
    (lambda c: ([(s[0], s[1], s[2], list(s[3].values())) for s in c[0]], c[1]), TypeError),
)
MALFORMED_CELL_CACHES = (
    (lambda c: c[:3], ValueError), (lambda c: c + (None,), ValueError),
    (lambda c: None, ValueError), (lambda c: dict(enumerate(c)), ValueError),
    (lambda c: "abcd", ValueError), (lambda c: (c[0], c[1], c[2], {}), KeyError),
    (lambda c: (np.zeros((np.shape(c[0])[0] + 1, np.shape(c[0])[1])),) + c[1:], ValueError),
    (lambda c: (c[0], None, c[2], c[3]), TypeError),
    (lambda c: (np.asarray(c[0]).astype(complex),) + c[1:], TypeError),
)
GRAD_DEFECTS = ("dh-shape", "dh-ndim", "dh-dtype", "cache")


def grad_defect(problem, cache, label, malformed):
    """Apply the drawn defect to the upstream gradient or the cache: (dh, cache, defect)."""
    dh = np.asarray(problem.args["dh"])
    kind = problem.defect
    if kind == "dh-shape":
        return np.concatenate([dh, dh[:1]]), cache, defect(ValueError, starts(label))
    if kind == "dh-ndim":
        return dh[..., None], cache, defect(ValueError, starts(label))
    if kind == "dh-dtype":
        return dh.astype(complex), cache, defect(TypeError, starts(label))
    make, error = malformed[problem.malformed]
    return problem.args["dh"], make(cache), defect(error)


@st.composite
def cell_backward_problems(draw):
    problem = draw(seed_problems(cell=True, dh=True, defects=GRAD_DEFECTS))
    problem.cache = draw(sampled(("rnnfast", "reference", "given")))
    problem.malformed = draw(integers(0, len(MALFORMED_CELL_CACHES) - 1))
    if problem.cache == "given":      # any h_next: the backward is a function of its cache
        n_h, m = problem.sizes[1], problem.sizes[3]
        form = draw(sampled(("float64", "float32") if problem.regime != "moderate"
                            else ("float64", "float32", "float16", "int64", "list")))
        problem.args["h_next"] = arguments(draw_values(draw, (n_h, m)), form, draw(layouts))
    return problem


@given(cell_backward_problems())
def test_rnn_cell_backward(problem):
    """rnn_cell_backward = reference.rnn_cell_backward on the same cache, of rnnfast, of the
    twin or made by hand."""
    args = problem.args
    xt, h_prev, params = forward_args(args)
    with np.errstate(all="ignore"):
        if problem.cache == "rnnfast":
            cache = rnnfast.rnn_cell_forward(xt, h_prev, params)[2]
        elif problem.cache == "reference":
            cache = ref.rnn_cell_forward(*twin_inputs(args))[2]
        else:
            cache = (args["h_next"], h_prev, xt, params)
    before = frozen({**args, "cache": cache})
    dh = args["dh"]
    if problem.defect is not None:
        dh, bad_cache, expected = grad_defect(problem, cache, "dh_next", MALFORMED_CELL_CACHES)
        assert_raises(expected, lambda: rnnfast.rnn_cell_backward(dh, bad_cache))
        assert_unchanged(before, {**args, "cache": cache})
        return
    with np.errstate(all="ignore"):
        grads = rnnfast.rnn_cell_backward(dh, cache)
        h_next, c_prev, c_xt, c_params = cache
        expected = ref.rnn_cell_backward(to64(dh), (to64(h_next), to64(c_prev), to64(c_xt),
                                                    {k: to64(c_params[k]) for k in PARAMETERS}))
    dtype = result_dtype(c_xt, c_prev, *c_params.values(), h_next, dh)
    assert list(grads) == list(expected)
    for key, value in expected.items():
        assert_matches(grads[key], value, dtype, problem.regime, key)
    assert_unchanged(before, {**args, "cache": cache})


@st.composite
def backward_problems(draw):
    problem = draw(seed_problems(dh=True, defects=GRAD_DEFECTS))
    # rnnfast's cache; a list of its steps (the seed format); the twin's float64
    # cache; the twin run on the arguments as given (float32 when they are)
    problem.cache = draw(sampled(("rnnfast", "rnnfast-steps", "reference64",
                                  "reference-as-given")))
    problem.write_h = draw(st.booleans())     # the caller writes into the h it got
    problem.malformed = draw(integers(0, len(MALFORMED_CACHES) - 1))
    return problem


def twin_cache(cache):
    """A float64 copy of what a forward cache holds, in the twin's format."""
    steps, x = cache

    def copy(a):
        return np.array(a, dtype=np.float64, copy=True)
    return ([(copy(h_next), copy(h_prev), copy(xt), {k: copy(p[k]) for k in PARAMETERS})
             for h_next, h_prev, xt, p in steps], copy(x))


@given(backward_problems())
def test_rnn_backward(problem):
    """rnn_backward = reference.rnn_backward on the same cache: rnnfast's (a ForwardCache or
    the list of its steps) or the twin's (float64, or run on the arguments as given)."""
    args = problem.args
    x, h0, params = forward_args(args)
    with np.errstate(all="ignore"):
        h, _, cache = rnnfast.rnn_forward(x, h0, params)
        if problem.cache == "rnnfast-steps":
            cache = (list(cache[0]), cache[1])
        elif problem.cache == "reference64":
            cache = ref.rnn_forward(*twin_inputs(args))[2]
        elif problem.cache == "reference-as-given":
            cache = ref.rnn_forward(np.asarray(x), np.asarray(h0),
                                    {k: np.asarray(v) for k, v in params.items()})[2]
    cache_ref = twin_cache(cache)
    if problem.write_h:
        h[...] = 0.5                       # the caller's to change: must not reach the cache
    before = frozen(args)
    dh = args["dh"]
    if problem.defect is not None:
        dh, bad_cache, expected = grad_defect(problem, cache, "dh", MALFORMED_CACHES)
        assert_raises(expected, lambda: rnnfast.rnn_backward(dh, bad_cache))
        assert_unchanged(before, args)
        return
    with np.errstate(all="ignore"):
        grads = rnnfast.rnn_backward(dh, cache)
        again = rnnfast.rnn_backward(dh, cache)
        expected = ref.rnn_backward(to64(dh), cache_ref)
    # float32 when dh and the cached arrays are float32
    steps, x_cached = cache
    dtype = result_dtype(x_cached, steps[0][1], *steps[0][3].values(), dh)
    assert list(grads) == list(expected)
    for key, value in expected.items():
        assert_matches(grads[key], value, dtype, problem.regime, key)
        np.testing.assert_array_equal(again[key], grads[key], err_msg=f"{key} of a second call")
    assert_unchanged(before, args)


def twin_loss(x, h0, y, parameters):
    """reference.rnn_loss, and the states of reference.rnn_forward."""
    loss, grads = ref.rnn_loss(x, h0, y, parameters)
    h, _, _ = ref.rnn_forward(x, h0, parameters)
    return loss, grads, h


LOSS_DEFECTS = SEED_DEFECTS + ("y-high", "y-negative", "y-float", "y-shape")


@given(seed_problems(labels=True, defects=LOSS_DEFECTS))
def test_rnn_loss(problem):
    """rnn_loss = reference.rnn_loss: the loss and every gradient."""
    args = problem.args
    x, h0, params = forward_args(args)
    y = args["y"]
    before = frozen(args)
    expected_error = problem.defect
    if isinstance(problem.defect, str):              # a label defect
        y = np.array(y, dtype=np.int64)
        if problem.defect == "y-high":
            y.flat[-1] = problem.sizes[2]
        elif problem.defect == "y-negative":
            y.flat[0] = -1
        elif problem.defect == "y-float":
            y = y.astype(np.float64)
        else:
            y = y[..., None]
        expected_error = defect(TypeError if problem.defect == "y-float" else ValueError,
                                starts("y"))
    if expected_error is not None:
        assert_raises(expected_error, lambda: rnnfast.rnn_loss(x, h0, y, params))
        assert_unchanged(before, args)
        return
    x64, h064, p64 = twin_inputs(args)
    with np.errstate(all="ignore"):
        loss, grads = rnnfast.rnn_loss(x, h0, y, params)
        loss_ref, expected, _ = twin_loss(x64, h064, np.asarray(y), p64)
    dtype = result_dtype(x, h0, *params.values())
    assert_scalar(loss, loss_ref, dtype, problem.regime, "loss")
    assert sorted(grads) == sorted(expected)
    for key, value in expected.items():
        assert_matches(grads[key], value, dtype, problem.regime, key)
    assert_unchanged(before, args)


# -- rnnfast.RNN -------------------------------------------------------------------

HIDDEN_SIZES = st.one_of(size(5), st.sampled_from(THRESHOLD_SIZES))
RNN_DEFECTS = ("width", "ndim", "input-dtype", "hx-shape", "lengths-range", "lengths-count",
               "lengths-float", "grad-output-shape", "grad-h-n-shape", "backward-first")


@st.composite
def rnn_module_problems(draw):
    """A module configuration, its seed and the arguments of forward and backward."""
    regime = draw(regimes)
    num_layers = draw(integers(1, 3))
    config = dict(
        input_size=draw(size(4)),
        hidden_size=draw(HIDDEN_SIZES),
        num_layers=num_layers, nonlinearity=draw(sampled(("tanh", "relu"))),
        bias=draw(st.booleans()), batch_first=draw(st.booleans()),
        dropout=draw(sampled((0.0, 0.0, 0.5, 1.0))) if num_layers > 1 else 0.0,
        bidirectional=draw(st.booleans()), dtype=draw(sampled(FLOAT_DTYPES)),
        seed=draw(seeds))
    batched = draw(sampled((True, True, True, False)))
    n_batch, n_steps = (draw(size(4)) if batched else 1), draw(size(6))
    n_in, H = config["input_size"], config["hidden_size"]
    D = 2 if config["bidirectional"] else 1
    if batched:
        x_shape = (n_batch, n_steps, n_in) if config["batch_first"] else (n_steps, n_batch, n_in)
        h_shape = (D * num_layers, n_batch, H)
    else:
        x_shape, h_shape = (n_steps, n_in), (D * num_layers, H)
    shapes = {"input": x_shape, "hx": h_shape, "grad_output": x_shape[:-1] + (D * H,),
              "grad_h_n": h_shape}
    plan = draw_dtype_plan(draw, tuple(shapes), converted=regime == "moderate")
    vals = {k: draw_values(draw, s) for k, s in shapes.items()}
    vals = draw_hostile(draw, vals, regime, tuple(shapes), plan)
    layout = draw_layout_plan(draw, tuple(shapes))
    args = {k: arguments(v, plan[k], layout[k]) for k, v in vals.items()}
    for optional in ("hx", "grad_h_n"):
        if draw(integers(0, 2)) == 0:
            args[optional] = None
    args["lengths"] = None
    if batched and draw(st.booleans()):
        lengths = draw(st.lists(integers(1, n_steps), min_size=n_batch, max_size=n_batch))
        form = draw(sampled(("list", "int64", "int32", "uint8", "intp")))
        args["lengths"] = lengths if form == "list" else np.array(lengths, dtype=form)
    return types.SimpleNamespace(config=config, training=draw(st.booleans()), batched=batched,
                                 n_batch=n_batch, n_steps=n_steps, h_shape=h_shape, args=args,
                                 regime=regime, defect=maybe_defect(draw, RNN_DEFECTS))


def rnn_defect(problem):
    """Apply ``problem.defect``: (arguments, the stage that must fail, defect)."""
    args, kind = dict(problem.args), problem.defect
    x = np.asarray(args["input"])
    if kind == "width":
        args["input"] = np.concatenate([x, x[..., :1]], axis=-1)
        return args, "forward", defect(ValueError, starts("input"))
    if kind == "ndim":
        args["input"] = x[..., None] if x.ndim == 3 else x.reshape(-1)
        return args, "forward", defect(ValueError, starts("input"))
    if kind == "input-dtype":
        args["input"] = x.astype(complex)
        return args, "forward", defect(TypeError, starts("input"))
    if kind == "hx-shape":
        shape = problem.h_shape
        args["hx"] = np.zeros((shape[0] + 1,) + shape[1:])
        return args, "forward", defect(ValueError, starts("hx"))
    if kind.startswith("lengths") and problem.batched:
        lengths = np.full(problem.n_batch, problem.n_steps)
        if kind == "lengths-range":
            lengths[0] = 0
        elif kind == "lengths-count":
            lengths = np.append(lengths, 1)
        else:
            lengths = lengths.astype(np.float64)
        args["lengths"] = lengths
        error = TypeError if kind == "lengths-float" else ValueError
        return args, "forward", defect(error, starts("lengths"))
    if kind == "grad-output-shape":
        g = np.zeros(np.shape(args["grad_output"]))
        args["grad_output"] = np.concatenate([g, g[..., :1]], axis=-1)
        return args, "backward", defect(ValueError, starts("grad_output"))
    if kind == "grad-h-n-shape":
        args["grad_h_n"] = np.zeros(problem.h_shape + (1,))
        return args, "backward", defect(ValueError, starts("grad_h_n"))
    return args, "backward-first", defect(RuntimeError)


@given(rnn_module_problems())
def test_rnn_module(problem):
    """rnnfast.RNN forward + backward = reference.rnn_module_forward/backward with the same
    weights and (in training, with dropout) the same masks."""
    r = rnnfast.RNN(**problem.config)
    r.train(problem.training)
    args = problem.args
    weights_before = frozen(r.state_dict())
    before = frozen(args)
    if problem.defect is not None:
        bad, stage, expected = rnn_defect(problem)
        if stage == "forward":
            assert_raises(expected, lambda: r(bad["input"], bad["hx"], lengths=bad["lengths"]))
        elif stage == "backward":
            with np.errstate(all="ignore"):
                r(bad["input"], bad["hx"], lengths=bad["lengths"])
            assert_raises(expected, lambda: r.backward(bad["grad_output"], bad["grad_h_n"]))
        else:
            assert_raises(expected, lambda: r.backward(bad["grad_output"]))
        assert frozen(r.state_dict()) == weights_before
        assert_unchanged(before, args)
        return
    with np.errstate(all="ignore"):
        out, h_n = r(args["input"], args["hx"], lengths=args["lengths"])
        masks = dropout_masks(r)                # backward releases the forward's cache
        grads = r.backward(args["grad_output"], args["grad_h_n"], retain_graph=True)
        again = r.backward(args["grad_output"], args["grad_h_n"])
    assert frozen(again) == frozen(grads), "a second backward gave other gradients"
    assert frozen(r.state_dict()) == weights_before
    assert_unchanged(before, args)

    # the twin, on the values the module computes with (in its dtype) and its weights
    def seen(a):
        return np.zeros(h_n.shape) if a is None else to64(np.asarray(a).astype(r.dtype))
    weights = {k: to64(v) for k, v in r.state_dict().items()}
    with np.errstate(all="ignore"):
        out_e, h_n_e, expected = numpy_run(
            r, weights, seen(args["input"]), seen(args["hx"]), seen(args["grad_output"]),
            seen(args["grad_h_n"]), args["lengths"], problem.batched, masks)
    regime, dtype = problem.regime, r.dtype
    assert_matches(out, out_e, dtype, regime, "output")
    assert_matches(h_n, h_n_e, dtype, regime, "h_n")
    assert list(grads) == ["input", "hx"] + list(weights)
    for key, value in expected.items():
        assert_matches(grads[key], value, dtype, regime, key)


# -- RNNModel ------------------------------------------------------------------------

MODEL_DEFECTS = ("X-width", "X-ndim", "X-dtype", "X-index", "h0-shape")
MODEL_LOSS_DEFECTS = MODEL_DEFECTS + ("Y-high", "Y-shape", "Y-float")


@st.composite
def model_problems(draw, loss=False):
    """An RNNModel's sizes, dtype and parameter values, and batch-first arguments: float
    inputs ``X (m, T, n_x)`` or class indices ``X (m, T)``, ``h0 (m, n_h)`` or None."""
    n_x, n_h, n_y, m, n_steps = draw(seed_sizes)
    regime = draw(regimes)
    index = draw(st.booleans())
    shapes = {"Whx": (n_h, n_x), "Whh": (n_h, n_h), "Wyh": (n_y, n_h), "bh": (n_h, 1),
              "by": (n_y, 1), "h0": (m, n_h)}
    if not index:
        shapes["X"] = (m, n_steps, n_x)
    scales = {"Whx": 1 / math.sqrt(n_x), "Whh": 1 / math.sqrt(n_h), "Wyh": 1 / math.sqrt(n_h),
              "bh": 0.5, "by": 0.5}
    vals = {k: draw_values(draw, s, scales.get(k, 1.0)) for k, s in shapes.items()}
    # (a one-hot product and a column lookup legitimately differ on non-finite Whx)
    hostile = tuple(k for k in shapes if not (index and k == "Whx"))
    dtype = draw(sampled(FLOAT_DTYPES))
    vals = draw_hostile(draw, vals, regime, hostile, dict.fromkeys(shapes, dtype))
    plan = draw_dtype_plan(draw, ("X", "h0"), converted=regime == "moderate")
    layout = draw_layout_plan(draw, ("X", "h0"))
    args = {"X": draw_class_indices(draw, (m, n_steps), n_x) if index
            else arguments(vals["X"], plan["X"], layout["X"]),
            "h0": None if draw(st.booleans()) else arguments(vals["h0"], plan["h0"], layout["h0"])}
    if loss:
        args["Y"] = draw_class_indices(draw, (m, n_steps), n_y)
    return types.SimpleNamespace(
        sizes=(n_x, n_h, n_y), dtype=dtype, regime=regime,
        parameters={k: vals[k] for k in PARAMETERS}, args=args, index=index,
        return_state=draw(st.booleans()),
        defect=maybe_defect(draw, MODEL_LOSS_DEFECTS if loss else MODEL_DEFECTS))


def make_model(problem):
    model = rnnfast.RNNModel(*problem.sizes, dtype=problem.dtype, seed=0)
    for k, v in problem.parameters.items():
        model.parameters[k][...] = v
    return model


def model_twin_inputs(model, problem):
    """The seed-layout ``x (n_x, m, T)``, ``h0 (n_h, m)`` and float64 parameters the model
    computes with."""
    X = np.asarray(problem.args["X"])
    if problem.index:
        x = np.eye(model.input_size)[X].transpose(2, 0, 1)
    else:
        x = to64(X.astype(model.dtype)).transpose(2, 0, 1)
    h0 = problem.args["h0"]
    h0 = np.zeros((model.hidden_size, X.shape[0])) if h0 is None \
        else to64(np.asarray(h0).astype(model.dtype)).T
    return x, h0, {k: to64(v) for k, v in model.parameters.items()}


def model_defect(problem):
    """Apply ``problem.defect`` to the arguments: (arguments, defect)."""
    args, kind = dict(problem.args), problem.defect
    n_x, n_h, n_y = problem.sizes
    X = np.array(args["X"])
    m, n_steps = X.shape[:2]
    if kind == "X-width":
        args["X"] = np.zeros((m, n_steps, n_x + 1))
    elif kind == "X-ndim":
        args["X"] = X.reshape(-1) if problem.index else X[..., None]
    elif kind == "X-dtype":
        args["X"] = X.astype(complex)
    elif kind == "X-index":
        X = np.zeros((m, n_steps), dtype=np.int64)
        X.flat[-1] = n_x
        args["X"] = X
    elif kind == "h0-shape":
        args["h0"] = np.zeros((m, n_h + 1))
    else:
        Y = np.array(args["Y"], dtype=np.int64)
        if kind == "Y-high":
            Y.flat[-1] = n_y
        args["Y"] = {"Y-high": Y, "Y-shape": Y[:, :-1] if n_steps > 1 else Y[..., None],
                     "Y-float": Y.astype(np.float64)}[kind]
        return args, defect(TypeError if kind == "Y-float" else ValueError, starts("Y"))
    label = "h0" if kind == "h0-shape" else "X"
    return args, defect(TypeError if kind == "X-dtype" else ValueError, starts(label))


@given(model_problems())
def test_rnn_model_forward(problem):
    """RNNModel.forward (and predict) = Wyh h + by with h from reference.rnn_forward in the seed
    layout."""
    model = make_model(problem)
    args = problem.args
    before = frozen({**args, "parameters": model.parameters})
    if problem.defect is not None:
        bad, expected = model_defect(problem)
        assert_raises(expected, lambda: model.forward(bad["X"], bad["h0"]))
        assert_unchanged(before, {**args, "parameters": model.parameters})
        return
    with np.errstate(all="ignore"):
        result = model.forward(args["X"], args["h0"], return_state=problem.return_state)
        predicted = model.predict(args["X"], args["h0"])
        x, h0, p = model_twin_inputs(model, problem)
        h, _, _ = ref.rnn_forward(x, h0, p)
        logits_ref = np.einsum("yh,hmt->mty", p["Wyh"], h) + p["by"][:, 0]
    logits = result[0] if problem.return_state else result
    assert_matches(logits, logits_ref, model.dtype, problem.regime, "logits")
    if problem.return_state:
        assert_matches(result[1], h[:, :, -1].T, model.dtype, problem.regime, "state")
    if problem.regime == "moderate":   # predict: the twin's argmax wherever it is clear
        top = np.sort(logits_ref, axis=-1)[..., -2:]
        gap = top[..., -1] - top[..., 0] if top.shape[-1] == 2 else np.inf
        clear = gap > 10 * RTOL[model.dtype] * max(1.0, float(np.max(np.abs(logits_ref))))
        np.testing.assert_array_equal(predicted[clear], np.argmax(logits_ref, axis=-1)[clear])
    assert_unchanged(before, {**args, "parameters": model.parameters})


@given(model_problems(loss=True))
def test_rnn_model_loss_and_grads(problem):
    """RNNModel.loss_and_grads = reference.rnn_loss in the seed layout: the loss and every
    gradient (dh0, dx transposed back to batch-first)."""
    model = make_model(problem)
    args = problem.args
    before = frozen({**args, "parameters": model.parameters})
    if problem.defect is not None:
        bad, expected = model_defect(problem)
        assert_raises(expected, lambda: model.loss_and_grads(bad["X"], bad["Y"], bad["h0"]))
        assert_unchanged(before, {**args, "parameters": model.parameters})
        return
    with np.errstate(all="ignore"):
        result = model.loss_and_grads(args["X"], args["Y"], args["h0"],
                                      return_state=problem.return_state)
        x, h0, p = model_twin_inputs(model, problem)
        loss_ref, expected, h = twin_loss(x, h0, np.asarray(args["Y"]), p)
    loss, grads = result[:2]
    dtype, regime = model.dtype, problem.regime
    assert_scalar(loss, loss_ref, dtype, regime, "loss")
    expected["dh0"] = expected["dh0"].T
    expected["dx"] = expected["dx"].transpose(1, 2, 0)
    if problem.index:
        del expected["dx"]                  # class indices have no gradient
        # X selects columns of Whx (a lookup); the twin's one-hot product adds
        # 0 * dZ to every other column, NaN where dZ is not finite.  So: columns
        # of classes absent from X are 0, and the others are compared where the
        # twin's are finite.
        unused = np.setdiff1d(np.arange(model.input_size), np.asarray(args["X"]))
        np.testing.assert_array_equal(grads["dWhx"][:, unused], 0)
        expected["dWhx"][:, unused] = 0
        polluted = ~np.isfinite(expected["dWhx"])
        expected["dWhx"][polluted] = grads["dWhx"][polluted]
    assert sorted(grads) == sorted(expected)
    for key, value in expected.items():
        assert_matches(grads[key], value, dtype, regime, key)
    if problem.return_state:
        assert_matches(result[2], h[:, :, -1].T, dtype, regime, "state")
    assert_unchanged(before, {**args, "parameters": model.parameters})


# -- optimizers -----------------------------------------------------------------------

# Bad hyperparameter values and what they raise (README: real numbers, finite,
# in range; TypeError for another type, ValueError out of range).
BAD_NUMBERS = ((-1.0, ValueError), (math.nan, ValueError), (math.inf, ValueError),
               (10**400, ValueError), ("0.1", TypeError), (True, TypeError), (None, TypeError),
               (1j, TypeError))
OPTIMIZER_DEFECTS = ("grads-missing", "grads-shape", "grads-dtype", "grads-not-dict",
                     "param-readonly", "param-strided", "param-dtype", "hyperparameter")


def number(draw, value):
    """``value`` as a Python float, a NumPy float or (when whole) an int; and its float."""
    form = draw(sampled(("float", "float", "float64", "float32", "int")))
    if form == "float32" and abs(value) > float(np.finfo(np.float32).max):
        form = "float"
    if form == "int" and float(value).is_integer():
        presented = int(value)
    elif form in ("float64", "float32"):
        presented = np.dtype(form).type(value)
    else:
        presented = float(value)
    return presented, float(presented)


@functools.cache
def fraction(low, high):
    """0, or a number in [low, high]."""
    return st.one_of(st.just(0.0), st.floats(low, high))


@st.composite
def hyperparameters(draw, kind):
    """(arguments as given, their float values) of one optimizer."""
    # (nonzero hyperparameters from 1e-4: smaller ones round to 0 in float32)
    lr = draw(fraction(1e-4, 1.0))
    drawn = {"lr": lr}
    if kind == "SGD":
        drawn["momentum"] = draw(fraction(1e-4, 0.99))
    elif kind == "Adam":
        # beta1 is 0 or at least 0.1: a smaller one leaves 1 - beta1 with few
        # significant bits in the computing dtype, and with v = 0 (beta2 = 0, a
        # zero gradient) the update m / (sqrt(v) + eps) magnifies that rounding
        # by 1 / eps -- an ill-conditioned input, as in torch.optim.Adam.
        drawn["betas"] = (draw(fraction(0.1, 0.999)), draw(fraction(1e-4, 0.9999)))
        drawn["eps"] = draw(sampled((1e-8, 0.0, 1e-4, 1.0)))
        drawn["weight_decay"] = draw(fraction(1e-4, 0.5))
    else:
        drawn["eps"] = draw(sampled((1e-10, 0.0, 1e-6, 0.5)))
    given_, floats = {}, {}
    for name, value in drawn.items():
        if name == "betas":                       # a tuple or a list of two numbers
            pair = [number(draw, v) for v in value]
            given_[name] = draw(sampled((tuple, list)))(g for g, _ in pair)
            floats[name] = tuple(f for _, f in pair)
        else:
            given_[name], floats[name] = number(draw, value)
    return given_, floats


@st.composite
def optimizer_problems(draw, kind):
    """Parameters (float32/float64, 0-2 dimensions), hyperparameters, and 1-4 steps of
    gradients in the forms the optimizers accept."""
    regime = draw(regimes)
    names = draw(st.lists(sampled(PARAMETERS), min_size=1, max_size=3, unique=True))
    shapes = {n: tuple(draw(st.lists(size(4), max_size=2))) for n in names}
    dtypes = {n: draw(sampled(FLOAT_DTYPES)) for n in names}
    params = {n: draw_values(draw, shapes[n], 2.0).astype(dtypes[n]) for n in names}
    given_, floats = draw(hyperparameters(kind))
    steps = []
    forms = (("same",) * 4 + ("float64", "float32", "float16", "int64", "list")
             if regime == "moderate" else ("same", "float64", "float32"))
    for _ in range(draw(integers(1, 4))):
        vals = {n: draw_values(draw, shapes[n]) for n in names}
        vals = draw_hostile(draw, vals, regime, names, {n: dtypes[n] for n in names})
        grads = {}
        layout = draw_layout_plan(draw, names)
        for n in names:
            form = draw(sampled(forms))
            grads["d" + n] = arguments(vals[n], dtypes[n].name if form == "same" else form,
                                       layout[n])
        if draw(st.booleans()):
            grads["dx"] = None                     # not a parameter's: ignored
        steps.append(grads)
    return types.SimpleNamespace(kind=kind, params=params, hyperparameters=given_,
                                 floats=floats, steps=steps, regime=regime,
                                 defect=maybe_defect(draw, OPTIMIZER_DEFECTS),
                                 failing_step=draw(integers(0, 3)), pick=draw(seeds))


TWINS = {
    "SGD": lambda p, g, state, t, h: ref.sgd_step(p, g, state, h["lr"], h["momentum"]),
    "Adam": lambda p, g, state, t, h: ref.adam_step(p, g, state, t, h["lr"], h["betas"], h["eps"],
                                                    h["weight_decay"]),
    "Adagrad": lambda p, g, state, t, h: ref.adagrad_step(p, g, state, h["lr"], h["eps"]),
}


def optimizer_defect(problem):
    """Apply ``problem.defect``: (parameters, hyperparameters, steps, failing stage, defect)."""
    kind = problem.defect
    params = {k: v.copy() for k, v in problem.params.items()}
    hyper, steps = dict(problem.hyperparameters), [dict(g) for g in problem.steps]
    rng = np.random.default_rng(problem.pick)
    name = str(rng.choice(sorted(params)))
    if kind == "param-strided" and params[name].size < 2:
        kind = "param-readonly"
    if kind == "param-readonly":
        params[name] = in_layout(params[name], "readonly")
        return params, hyper, steps, "init", defect(ValueError, starts(f"parameter '{name}'"))
    if kind == "param-strided":
        params[name] = in_layout(params[name], "strided")
        return params, hyper, steps, "init", defect(ValueError, starts(f"parameter '{name}'"))
    if kind == "param-dtype":
        params[name] = params[name].astype(str(rng.choice(["float16", "int64", ">f8"])))
        return params, hyper, steps, "init", defect(TypeError, starts(f"parameter '{name}'"))
    if kind == "hyperparameter":
        hyper_name = str(rng.choice(sorted(hyper)))
        value, error = BAD_NUMBERS[rng.integers(len(BAD_NUMBERS))]
        if hyper_name == "betas":
            i = int(rng.integers(2))
            hyper["betas"] = tuple(value if j == i else b for j, b in enumerate(hyper["betas"]))
            hyper_name = f"betas[{i}]"
        else:
            hyper[hyper_name] = value
        return params, hyper, steps, "init", defect(error, starts(hyper_name))
    at = min(problem.failing_step, len(steps) - 1)
    grads, key = steps[at], "d" + name
    if kind == "grads-missing":
        del grads[key]
        expected = defect(KeyError, re.escape(repr(key)))
    elif kind == "grads-shape":
        grads[key] = np.zeros(np.shape(grads[key]) + (2,))
        expected = defect(ValueError, re.escape(f"grads[{key!r}]"))
    elif kind == "grads-dtype":
        grads[key] = np.asarray(grads[key]).astype(complex)
        expected = defect(TypeError, re.escape(f"grads[{key!r}]"))
    else:       # neither a dict nor a list aligned with the parameters (both accepted)
        steps[at] = types.MappingProxyType(grads)
        expected = defect(TypeError, starts("grads"))
    return params, hyper, steps[:at + 1], at, expected


def check_optimizer(problem):
    """Run the optimizer's steps and the twin's side by side; compare after every step."""
    make = getattr(optim, problem.kind)
    if problem.defect is not None:
        params, hyper, steps, stage, expected = optimizer_defect(problem)
        before = frozen(params)
        if stage == "init":
            assert_raises(expected, lambda: make(params, **hyper))
            assert frozen(params) == before
            return
        opt = make(params, **hyper)
        with np.errstate(all="ignore"):
            for grads in steps[:stage]:
                opt.step(grads)
        before = (frozen(params), frozen(opt.state), opt.steps, frozen(steps[stage]))
        assert_raises(expected, lambda: opt.step(steps[stage]))
        assert (frozen(params), frozen(opt.state), opt.steps, frozen(steps[stage])) == before, \
            "a failed step changed the parameters, the optimizer's state or the gradients"
        return
    params = {k: v.copy() for k, v in problem.params.items()}
    arrays = dict(params)
    opt = make(params, **problem.hyperparameters)
    twin = {k: np.array(v, dtype=np.float64, copy=True) for k, v in params.items()}
    twin_state = {k: {} for k in params}
    for t, grads in enumerate(problem.steps, 1):
        before = frozen(grads)
        with np.errstate(all="ignore"):
            opt.step(grads)
            for k, p in params.items():      # the gradient as the optimizer casts it
                g = to64(np.asarray(grads["d" + k]).astype(p.dtype))
                twin[k] = TWINS[problem.kind](twin[k], g, twin_state[k], t, problem.floats)
        assert frozen(grads) == before, "step changed the gradients"
        assert opt.steps == t
        for k, p in params.items():
            assert p is arrays[k], f"{k} was replaced, not updated in place"
            assert_matches(p, twin[k], p.dtype, problem.regime, f"{k} after step {t}")
            assert sorted(opt.state[k]) == sorted(twin_state[k])
            # (Adam's exp_avg is torch's lerp, end - (end - start) * (1 - w) for
            # w >= 0.5: NaN where the equation's beta1 m + (1 - beta1) g is Inf)
            for buffer, value in twin_state[k].items():
                assert_matches(opt.state[k][buffer], value, p.dtype, problem.regime,
                               f"state[{k!r}][{buffer!r}] after step {t}",
                               same_non_finite=False)
            # The next step starts, for both, from the optimizer's values: each step's rule
            # is checked on the same inputs.  (Separate trajectories diverge where a float32
            # update cancels to ~1e-8 and eps decides the next one, as in Adam with
            # betas (0, 0) and weight decay: 0.5 against 0.33 after three steps.)
            twin[k] = np.array(p, dtype=np.float64, copy=True)
            twin_state[k] = {b: np.array(v, dtype=np.float64, copy=True)
                             for b, v in opt.state[k].items()}


@given(optimizer_problems("SGD"))
def test_sgd_step(problem):
    """optim.SGD (with and without momentum) = reference.sgd_step, step after step."""
    check_optimizer(problem)


@given(optimizer_problems("Adam"))
def test_adam_step(problem):
    """optim.Adam = reference.adam_step (bias corrections, L2 weight decay), step after step."""
    check_optimizer(problem)


@given(optimizer_problems("Adagrad"))
def test_adagrad_step(problem):
    """optim.Adagrad = reference.adagrad_step, step after step."""
    check_optimizer(problem)


# -- clipping ----------------------------------------------------------------------

LIMITS = st.one_of(st.sampled_from((0.0, 1e-3, 1.0, 1e300)), st.floats(0.0, 10.0))
CLIP_DEFECTS = ("limit", "readonly", "integer", "not-dict", "no-parameter-gradients")


@st.composite
def clip_problems(draw, limit_name):
    """A dict of gradients (some parameters', maybe dx/dh0 which are left alone) in writeable
    float32/float64 arrays of any strides, and the clipping limit."""
    regime = draw(regimes)
    keys = draw(st.lists(sampled(PARAMETER_GRADIENTS), min_size=1, max_size=5,
                         unique=True))
    extras = draw(st.lists(sampled(("dx", "dh0")), max_size=2, unique=True))
    shapes = {k: tuple(draw(st.lists(size(4), max_size=2))) for k in keys + extras}
    dtypes = {k: draw(sampled(FLOAT_DTYPES)) for k in keys + extras}
    vals = {k: draw_values(draw, s, 3.0) for k, s in shapes.items()}
    vals = draw_hostile(draw, vals, regime, keys, dtypes)
    grads = {}
    layout = draw_layout_plan(draw, keys + extras)
    for k in keys:            # scaled in place: writeable
        grads[k] = in_layout(vals[k].astype(dtypes[k]),
                             "c" if layout[k] == "readonly" else layout[k])
    for k in extras:          # not parameter gradients: any form, never changed
        form = draw(sampled(("float64", "float32", "int64")))
        grads[k] = arguments(vals[k], form, layout[k])
    limit = draw(LIMITS)
    given_, value = number(draw, limit)
    return types.SimpleNamespace(grads=grads, keys=keys, limit=given_, limit_value=value,
                                 limit_name=limit_name, regime=regime,
                                 defect=maybe_defect(draw, CLIP_DEFECTS),
                                 bad=draw(integers(0, len(BAD_NUMBERS) - 1)))


def clip_defect(problem):
    """Apply ``problem.defect``: (grads, limit, defect)."""
    grads, limit, kind = dict(problem.grads), problem.limit, problem.defect
    key = problem.keys[0]
    if kind == "limit":
        limit, error = BAD_NUMBERS[problem.bad]
        return grads, limit, defect(error, starts(problem.limit_name))
    if kind == "readonly":
        grads[key] = in_layout(grads[key], "readonly")
    elif kind == "integer":
        grads[key] = np.zeros(np.shape(grads[key]), np.int64)
    elif kind == "not-dict":
        return list(grads.values()), limit, defect(TypeError, starts("grads"))
    else:
        grads = {k: v for k, v in grads.items() if k not in PARAMETER_GRADIENTS}
        return grads, limit, defect(ValueError, starts("grads holds none"))
    return grads, limit, defect(TypeError, starts("gradients"))


def check_clip_defect(problem, clip):
    grads, limit, expected = clip_defect(problem)
    before = frozen(grads)
    assert_raises(expected, lambda: clip(grads, limit))
    assert frozen(grads) == before, "a refused call changed the gradients"


@given(clip_problems("max_norm"))
def test_clip_grad_norm(problem):
    """clip_grad_norm = reference.clip_grad_norm on the parameter gradients: the total norm
    and the scaled gradients; dx and dh0 untouched."""
    if problem.defect is not None:
        check_clip_defect(problem, rnnfast.clip_grad_norm)
        return
    grads = problem.grads
    original = {k: np.array(v, copy=True) for k, v in grads.items()}
    arrays = dict(grads)
    with np.errstate(all="ignore"):
        total = rnnfast.clip_grad_norm(grads, problem.limit)
        expected, norm = ref.clip_grad_norm({k: to64(original[k]) for k in problem.keys},
                                            problem.limit_value)
    # each array's square sum is accumulated in its own dtype
    coarsest = min((original[k].dtype for k in problem.keys), key=lambda d: d.itemsize)
    assert_scalar(total, norm, coarsest, problem.regime, "total norm")
    for k, v in grads.items():
        assert v is arrays[k], f"{k} was replaced, not scaled in place"
        if k in expected:
            assert v.dtype == original[k].dtype, f"{k}: dtype {v.dtype}"
            # the scale carries the rounding of the coarsest dtype's square sums
            with np.errstate(over="ignore"):
                assert_matches(v.astype(coarsest), expected[k], coarsest, problem.regime, k)
        else:
            np.testing.assert_array_equal(v, original[k], err_msg=f"{k} changed")


@given(clip_problems("clip_value"))
def test_clip_grad_value(problem):
    """clip_grad_value = np.clip of each parameter gradient, exactly; dx and dh0 untouched."""
    if problem.defect is not None:
        check_clip_defect(problem, rnnfast.clip_grad_value)
        return
    grads = problem.grads
    original = {k: np.array(v, copy=True) for k, v in grads.items()}
    arrays = dict(grads)
    limit = problem.limit_value
    with np.errstate(over="ignore"):          # a limit beyond float32's range
        rnnfast.clip_grad_value(grads, problem.limit)
    for k, v in grads.items():
        assert v is arrays[k], f"{k} was replaced, not clipped in place"
        with np.errstate(over="ignore"):      # a limit beyond float32's range
            want = np.clip(original[k], -limit, limit) if k in problem.keys else original[k]
        assert v.dtype == want.dtype
        np.testing.assert_array_equal(v, want, err_msg=k)
