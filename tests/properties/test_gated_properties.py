"""Property tests of rnnfast.LSTM and rnnfast.GRU against their NumPy twins.

Each example draws a module (sizes, layers, directions, bias, batch_first,
dropout, dtype, ``proj_size`` for the LSTM), batched or unbatched inputs in
any dtype form and memory layout the API accepts, optional initial states and
final-state gradients, optional sequence lengths, and a value regime (see
tests/properties/test_properties.py for what each regime checks).  forward +
backward must equal ``reference.lstm_module_*`` / ``gru_module_*`` run on the
values the module computes with, its weights and (in training, with dropout)
its masks, at the measured tolerances; the arguments and the weights are left
as they were.
"""

import types

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import rnnfast  # noqa: E402
from tests.helpers import assert_close, dropout_masks, gated_twin_run  # noqa: E402
from tests.helpers.strategies import (  # noqa: E402
    FLOAT_DTYPES,
    THRESHOLD_SIZES,
    arguments,
    draw_dtype_plan,
    draw_hostile,
    draw_layout_plan,
    draw_values,
    integers,
    regimes,
    sampled,
    seeds,
    size,
    to64,
)

HIDDEN_SIZES = st.one_of(size(5), st.sampled_from(THRESHOLD_SIZES))


def frozen(obj):
    """What ``obj`` holds (arrays by value, containers deeply), to compare later."""
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, dict):
        return ("dict", [(k, frozen(v)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [frozen(v) for v in obj])
    return ("value", repr(obj))


def assert_matches(actual, expected, dtype, regime, name):
    """``actual`` against the twin's ``expected`` in the example's value regime.

    ``moderate``: equal at the dtype's tolerance; ``nonfinite``: NaN, +Inf and
    -Inf where the twin has them, the finite entries equal; ``huge`` (and
    ``tiny`` in float32): only the shape and dtype are checked.
    """
    expected = np.asarray(expected, dtype=np.float64)
    assert isinstance(actual, np.ndarray), f"{name} is a {type(actual).__name__}"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{name}: dtype {actual.dtype}, documented {dtype}"
    if regime == "huge" or (regime == "tiny" and dtype == np.float32):
        return
    nonfinite = ~np.isfinite(expected)
    for what, where in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        np.testing.assert_array_equal(where(actual), where(expected),
                                      err_msg=f"{name}: {what} not where the twin has it")
    assert_close(actual[~nonfinite], expected[~nonfinite], dtype, name)


@st.composite
def gated_module_problems(draw, mode):
    """A ``mode`` ("LSTM" or "GRU") module configuration and the arguments of forward
    and backward."""
    regime = draw(regimes)
    num_layers = draw(integers(1, 3))
    hidden_size = draw(HIDDEN_SIZES)
    config = dict(
        input_size=draw(size(4)), hidden_size=hidden_size, num_layers=num_layers,
        bias=draw(st.booleans()), batch_first=draw(st.booleans()),
        dropout=draw(sampled((0.0, 0.0, 0.5, 1.0))) if num_layers > 1 else 0.0,
        bidirectional=draw(st.booleans()), dtype=draw(sampled(FLOAT_DTYPES)), seed=draw(seeds))
    if mode == "LSTM":
        config["proj_size"] = (draw(integers(1, hidden_size - 1))
                               if hidden_size > 1 and draw(st.booleans()) else 0)
    batched = draw(sampled((True, True, True, False)))
    n_batch, n_steps = (draw(size(4)) if batched else 1), draw(size(6))
    n_in, H = config["input_size"], hidden_size
    P = config.get("proj_size") or H
    D = 2 if config["bidirectional"] else 1
    lead = ((n_batch, n_steps) if config["batch_first"] else (n_steps, n_batch)) if batched \
        else (n_steps,)
    state = (D * num_layers, n_batch) if batched else (D * num_layers,)
    shapes = {"input": lead + (n_in,), "grad_output": lead + (D * P,),
              "hx": state + (P,), "grad_h_n": state + (P,)}
    if mode == "LSTM":
        shapes.update(cx=state + (H,), grad_c_n=state + (H,))
    plan = draw_dtype_plan(draw, tuple(shapes), converted=regime == "moderate")
    vals = {k: draw_values(draw, s) for k, s in shapes.items()}
    vals = draw_hostile(draw, vals, regime, tuple(shapes), plan)
    layout = draw_layout_plan(draw, tuple(shapes))
    args = {k: arguments(v, plan[k], layout[k]) for k, v in vals.items()}
    if draw(integers(0, 2)) == 0:                   # no initial state: zeros
        args["hx"] = args["cx"] = None
    for optional in ("grad_h_n", "grad_c_n"):
        if optional in args and draw(integers(0, 2)) == 0:
            args[optional] = None
    args.setdefault("cx", None)
    args.setdefault("grad_c_n", None)
    args["lengths"] = None
    if batched and draw(st.booleans()):
        lengths = draw(st.lists(integers(1, n_steps), min_size=n_batch, max_size=n_batch))
        form = draw(sampled(("list", "int64", "int32", "uint8", "intp")))
        args["lengths"] = lengths if form == "list" else np.array(lengths, dtype=form)
    return types.SimpleNamespace(mode=mode, config=config, training=draw(st.booleans()),
                                 batched=batched, shapes=shapes, args=args, regime=regime)


def twin_run(m, weights, seen, batched, lengths, masks):
    """output, the final states and the gradients, by the NumPy twin (float64)."""
    names = ["hx", "cx"] if m.mode == "LSTM" else ["hx"]
    return gated_twin_run(m, weights, seen["input"], [seen[n] for n in names],
                          seen["grad_output"], [seen[f"grad_{n[0]}_n"] for n in names],
                          lengths, batched, masks)


def check_gated_module(problem):
    cls = rnnfast.LSTM if problem.mode == "LSTM" else rnnfast.GRU
    m = cls(**problem.config)
    m.train(problem.training)
    args, lstm = problem.args, problem.mode == "LSTM"
    weights_before, before = frozen(m.state_dict()), frozen(args)
    hx = None if args["hx"] is None else ((args["hx"], args["cx"]) if lstm else args["hx"])
    grad_finals = [args["grad_h_n"]] + ([args["grad_c_n"]] if lstm else [])
    with np.errstate(all="ignore"):
        out, finals = m(args["input"], hx, lengths=args["lengths"])
        masks = dropout_masks(m)                    # backward releases the forward's cache
        grads = m.backward(args["grad_output"], *grad_finals, retain_graph=True)
        again = m.backward(args["grad_output"], *grad_finals)
    assert frozen(again) == frozen(grads), "a second backward gave other gradients"
    assert frozen(m.state_dict()) == weights_before
    assert frozen(args) == before, "the call changed its arguments"

    # the twin, on the values the module computes with (in its dtype) and its weights
    weights = {k: to64(v) for k, v in m.state_dict().items()}
    with np.errstate(all="ignore"):
        seen = {k: (np.zeros(problem.shapes[k]) if args[k] is None
                    else to64(np.asarray(args[k]).astype(m.dtype)))
                for k in problem.shapes}
        out_e, finals_e, expected = twin_run(m, weights, seen, problem.batched,
                                             args["lengths"], masks)
    regime, dtype = problem.regime, m.dtype
    finals = list(finals) if lstm else [finals]
    assert_matches(out, out_e, dtype, regime, "output")
    for got, want, name in zip(finals, finals_e, ["h_n", "c_n"][:len(finals)], strict=True):
        assert_matches(got, want, dtype, regime, name)
    states = ["hx", "cx"] if lstm else ["hx"]
    assert list(grads) == ["input"] + states + list(weights)
    assert set(expected) == set(grads)
    for key, value in expected.items():
        assert_matches(grads[key], value, dtype, regime, key)


@given(gated_module_problems("LSTM"))
def test_lstm_module(problem):
    """rnnfast.LSTM forward + backward = reference.lstm_module_forward/backward (with
    ``proj_size``), same weights and dropout masks."""
    check_gated_module(problem)


@given(gated_module_problems("GRU"))
def test_gru_module(problem):
    """rnnfast.GRU forward + backward = reference.gru_module_forward/backward, same weights
    and dropout masks."""
    check_gated_module(problem)
