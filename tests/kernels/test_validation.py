"""Bad input gets a clear error naming the argument, before any kernel runs."""

import numpy as np
import pytest

import rnnfast
from tests.helpers import make_dh, make_problem

SHAPE = (3, 4, 2, 5, 6)   # n_x, n_h, n_y, m, T


@pytest.fixture
def problem():
    return make_problem(SHAPE)


@pytest.mark.parametrize("name, bad_shape, pattern", [
    ("x", (3, 5), r"x must be 3-D"),
    ("x", (3, 5, 6, 1), r"x must be 3-D"),
    ("x", (4, 5, 6), r'parameters\["Whx"\] has shape \(4, 3\); expected \(n_h, n_x\) = \(4, 4\)'),
    ("h0", (4,), r"h0 has shape \(4,\); expected \(n_h, m\) = \(4, 5\)"),
    ("h0", (5, 4), r"h0 has shape \(5, 4\); expected \(n_h, m\) = \(4, 5\)"),
    ("h0", (4, 6), r"h0 has shape \(4, 6\)"),
    ("Whx", (4, 2), r'parameters\["Whx"\] has shape \(4, 2\); expected \(n_h, n_x\) = \(4, 3\)'),
    ("Whx", (3, 4), r'parameters\["Whx"\]'),
    ("Whh", (4, 3), r'parameters\["Whh"\] has shape \(4, 3\); expected \(n_h, n_h\) = \(4, 4\)'),
    ("Whh", (4,), r'parameters\["Whh"\] must be 2-D'),
    ("Wyh", (2, 5), r'parameters\["Wyh"\] has shape \(2, 5\); expected \(n_y, n_h\) = \(2, 4\)'),
    ("Wyh", (2, 4, 1), r'parameters\["Wyh"\] must be 2-D'),
    ("bh", (4,), r'parameters\["bh"\] has shape \(4,\); expected \(n_h, 1\) = \(4, 1\)'),
    ("bh", (1, 4), r'parameters\["bh"\]'),
    ("bh", (5, 1), r'parameters\["bh"\]'),
    ("by", (3, 1), r'parameters\["by"\] has shape \(3, 1\); expected \(n_y, 1\) = \(2, 1\)'),
    ("by", (2, 2), r'parameters\["by"\]'),
])
def test_shape_mismatch_names_the_argument(problem, name, bad_shape, pattern):
    x, h0, p = problem
    if name == "x":
        x = np.zeros(bad_shape)
    elif name == "h0":
        h0 = np.zeros(bad_shape)
    else:
        p = dict(p, **{name: np.zeros(bad_shape)})
    with pytest.raises(ValueError, match=pattern):
        rnnfast.rnn_forward(x, h0, p)


@pytest.mark.parametrize("missing", ["Whx", "Whh", "Wyh", "bh", "by"])
def test_missing_parameter_is_named(problem, missing):
    x, h0, p = problem
    del p[missing]
    with pytest.raises(KeyError, match=missing):
        rnnfast.rnn_forward(x, h0, p)
    with pytest.raises(KeyError, match=missing):
        rnnfast.rnn_cell_forward(x[:, :, 0], h0, p)


def test_parameters_must_be_a_mapping(problem):
    x, h0, p = problem
    with pytest.raises(TypeError, match="parameters must be a dict"):
        rnnfast.rnn_forward(x, h0, list(p.values()))


@pytest.mark.parametrize("bad", [
    lambda a: a.astype(np.complex128),
    lambda a: a.astype(str),
    lambda a: a.astype(object),
    lambda a: np.full(a.shape, np.datetime64("2020-01-01")),
], ids=["complex", "str", "object", "datetime"])
@pytest.mark.parametrize("where", ["x", "h0", "Whh", "by"])
def test_non_real_dtypes_raise_type_error(problem, bad, where):
    x, h0, p = problem
    if where == "x":
        x = bad(x)
    elif where == "h0":
        h0 = bad(h0)
    else:
        p = dict(p, **{where: bad(p[where])})
    with pytest.raises(TypeError, match=where):
        rnnfast.rnn_forward(x, h0, p)


def test_ragged_list_raises_type_error(problem):
    _, h0, p = problem
    with pytest.raises(TypeError, match="x cannot be converted"):
        rnnfast.rnn_forward([[[1.0, 2.0]], [[1.0]]], h0, p)


@pytest.mark.parametrize("axis, label", [(2, "T_x"), (1, "m"), (0, "n_x")])
def test_zero_sizes_raise_value_error(problem, axis, label):
    x, h0, p = problem
    shape = list(x.shape)
    shape[axis] = 0
    x = np.zeros(shape)
    if label == "m":
        h0 = np.zeros((4, 0))
    if label == "n_x":
        p = dict(p, Whx=np.zeros((4, 0)))
    with pytest.raises(ValueError, match=f"{label} is 0"):
        rnnfast.rnn_forward(x, h0, p)


def test_zero_hidden_or_output_size_raises(problem):
    x, _, _ = problem
    p = {"Whx": np.zeros((0, 3)), "Whh": np.zeros((0, 0)), "Wyh": np.zeros((2, 0)),
         "bh": np.zeros((0, 1)), "by": np.zeros((2, 1))}
    with pytest.raises(ValueError, match="n_h is 0"):
        rnnfast.rnn_forward(x, np.zeros((0, 5)), p)


def test_sizes_beyond_32_bit_blas_are_refused_before_any_allocation(problem):
    _, h0, p = problem
    # A broadcast view: 3 * 5 * 2**31 elements would be 240 GiB if materialised.
    x = np.broadcast_to(np.zeros((1, 1, 1)), (3, 5, 2**31))
    with pytest.raises(ValueError, match="32-bit BLAS limit"):
        rnnfast.rnn_forward(x, h0, p)


@pytest.mark.parametrize("bad_shape", [(4, 5), (4, 5, 7), (5, 4, 6), (4, 5, 6, 1)])
def test_dh_that_does_not_fit_the_cache(problem, bad_shape):
    x, h0, p = problem
    _, _, caches = rnnfast.rnn_forward(x, h0, p)
    with pytest.raises(ValueError, match="dh"):
        rnnfast.rnn_backward(np.zeros(bad_shape), caches)


def test_dh_of_wrong_kind(problem):
    x, h0, p = problem
    _, _, caches = rnnfast.rnn_forward(x, h0, p)
    with pytest.raises(TypeError, match="dh"):
        rnnfast.rnn_backward(make_dh(SHAPE).astype(complex), caches)


@pytest.mark.parametrize("caches", [None, (), ([],), ([], None), "cache",
                                    ([], np.zeros((3, 5, 6)))])
def test_malformed_caches(caches):
    with pytest.raises((ValueError, TypeError)):
        rnnfast.rnn_backward(make_dh(SHAPE), caches)


def test_seed_cache_with_wrong_step_count_or_shapes(problem):
    x, h0, p = problem
    from rnnfast import reference as ref
    _, _, (steps, x_cached) = ref.rnn_forward(x, h0, p)
    dh = make_dh(SHAPE)
    with pytest.raises(ValueError, match="6 steps"):
        rnnfast.rnn_backward(dh, (steps, x_cached[:, :, :5]))
    bad = list(steps)
    bad[3] = (np.zeros((4, 4)),) + tuple(bad[3][1:])
    with pytest.raises(ValueError, match=r"caches\[0\]\[3\]\[0\]"):
        rnnfast.rnn_backward(dh, (bad, x_cached))
    bad[3] = (1, 2)
    with pytest.raises(ValueError, match="step cache 3"):
        rnnfast.rnn_backward(dh, (bad, x_cached))


def test_cell_functions_validate(problem):
    x, h0, p = problem
    xt = x[:, :, 0]
    with pytest.raises(ValueError, match="xt must be 2-D"):
        rnnfast.rnn_cell_forward(x, h0, p)
    with pytest.raises(ValueError, match=r"h_prev has shape \(4, 4\)"):
        rnnfast.rnn_cell_forward(xt, h0[:, :4], p)
    _, _, cache = rnnfast.rnn_cell_forward(xt, h0, p)
    with pytest.raises(ValueError, match=r"dh_next has shape \(4, 4\)"):
        rnnfast.rnn_cell_backward(np.zeros((4, 4)), cache)
    with pytest.raises(ValueError, match="cache must be"):
        rnnfast.rnn_cell_backward(np.zeros((4, 5)), cache[:3])
    with pytest.raises(ValueError, match="h_next"):
        rnnfast.rnn_cell_backward(np.zeros((4, 5)), (np.zeros((4, 4)),) + cache[1:])
