"""Hostile input: NaN/Inf, odd dtypes, zero and huge sizes, tampered caches, threads."""


import numpy as np
import pytest

import rnnfast
from rnnfast import reference as ref
from tests.helpers import make_dh, make_problem, run_on_threads

SHAPE = (3, 4, 5, 2, 6)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["x", "h0", "Whh", "by", "dh"])
def test_non_finite_values_propagate_like_numpy(value, where):
    """Where the reference's result is non-finite, rnnfast's is too; elsewhere they agree."""
    x, h0, p = make_problem(SHAPE)
    dh = make_dh(SHAPE)
    target = {"x": x, "h0": h0, "dh": dh}.get(where, p.get(where))
    target.flat[3] = value
    with np.errstate(all="ignore"):
        h_r, y_r, c_r = ref.rnn_forward(x, h0, p)
        g_r = ref.rnn_backward(dh, c_r)
        h, y, c = rnnfast.rnn_forward(x, h0, p)
        g = rnnfast.rnn_backward(dh, c)
    for name, ours, theirs in [("h", h, h_r), ("y", y, y_r)] + [(k, g[k], g_r[k]) for k in g_r]:
        bad = ~np.isfinite(theirs)
        assert np.array_equal(np.isnan(ours), np.isnan(theirs)) or \
            np.all(~np.isfinite(ours[bad])), name
        np.testing.assert_allclose(ours[~bad], theirs[~bad], rtol=1e-9, atol=1e-9, err_msg=name)


def test_nan_logits_give_nan_loss_without_crashing():
    x, h0, p = make_problem(SHAPE)
    p["Wyh"][0, 0] = np.nan
    loss, grads = rnnfast.rnn_loss(x, h0, np.zeros((2, 6), int), p)
    assert np.isnan(loss)


def test_tampered_forward_cache_is_refused():
    x, h0, p = make_problem(SHAPE)
    _, _, (steps, x_cached) = rnnfast.rnn_forward(x, h0, p)
    dh = make_dh(SHAPE)
    with pytest.raises(ValueError):
        rnnfast.rnn_backward(dh, (steps,))
    with pytest.raises(ValueError):
        rnnfast.rnn_backward(dh, (steps, x_cached, None))
    with pytest.raises(ValueError):
        rnnfast.rnn_backward(dh, ([steps[0], steps[1]], x_cached))     # 2 steps for T = 6
    seed_steps = list(steps)
    seed_steps[2] = (steps[2][0], steps[2][1], steps[2][2], {"Whx": p["Whx"]})
    grads = rnnfast.rnn_backward(dh, (seed_steps, x_cached))   # only step 0's parameters count
    with pytest.raises((ValueError, TypeError)):
        rnnfast.rnn_backward(dh, ([(None, None, None, None)] * 6, x_cached))
    assert set(grads) == {"dx", "dh0", "dWhx", "dWhh", "dbh"}


def test_wrong_kind_of_parameters():
    x, h0, p = make_problem(SHAPE)
    with pytest.raises(TypeError, match=r'parameters\["Whh"\]'):
        rnnfast.rnn_forward(x, h0, dict(p, Whh="not an array"))
    with pytest.raises(ValueError, match=r'parameters\["bh"\]'):
        rnnfast.rnn_forward(x, h0, dict(p, bh=0.5))               # a scalar
    with pytest.raises(TypeError, match="parameters must be a dict"):
        rnnfast.rnn_forward(x, h0, None)


def test_huge_broadcast_sizes_are_refused():
    _, h0, p = make_problem(SHAPE)
    x = np.broadcast_to(np.zeros((3, 1, 1)), (3, 2**20, 2**12))    # m*T = 2**32
    with pytest.raises(ValueError):
        rnnfast.rnn_forward(x, np.zeros((4, 2**20)), p)
    model = rnnfast.RNNModel(3, 4, 5)
    with pytest.raises(ValueError, match="32-bit BLAS limit"):
        model.forward(np.broadcast_to(np.zeros((1, 1, 3)), (2**16, 2**16, 3)))


def test_zero_size_model_inputs():
    model = rnnfast.RNNModel(3, 4, 5)
    with pytest.raises(ValueError, match="sequence length 0"):
        model.forward(np.zeros((2, 0, 3)))
    with pytest.raises(ValueError, match="batch size 0"):
        model.loss_and_grads(np.zeros((0, 4), int), np.zeros((0, 4), int))
    r = rnnfast.RNN(3, 4)
    with pytest.raises(RuntimeError, match="sequence length to be larger than 0"):
        r(np.zeros((0, 2, 3)))


def test_concurrent_calls_match_serial_calls():
    """Kernels release the GIL and share no scratch: threads give the serial results."""
    x, h0, p = make_problem((7, 33, 5, 4, 40))
    dh = make_dh((7, 33, 5, 4, 40))
    model = rnnfast.RNNModel(5, 16, 5, dtype=np.float64, seed=0)
    X = np.random.default_rng(0).standard_normal((3, 20, 5))
    Y = np.random.default_rng(1).integers(0, 5, (3, 20))

    def work():
        h, y, c = rnnfast.rnn_forward(x, h0, p)
        g = rnnfast.rnn_backward(dh, c)
        loss, mg = model.loss_and_grads(X, Y)
        return [h, y, *g.values(), np.array(loss), *mg.values()]

    expected = work()
    results = [None] * 8

    def run(i):
        for _ in range(5):
            results[i] = work()

    errors = run_on_threads(run, 8)
    assert not errors, errors
    for result in results:
        for got, want in zip(result, expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_infinite_dh_gives_the_references_dwhh():
    """The shifted-GEMM shortcut for dWhh must not turn inf into NaN (inf - inf)."""
    p = {k: np.zeros((1, 1)) for k in ("Whx", "Whh", "Wyh", "bh", "by")}
    dh = np.zeros((1, 2, 2))
    dh[0, 1, 0] = np.inf
    h0 = np.array([[0.0, 1.0]])
    _, _, c = rnnfast.rnn_forward(np.zeros((1, 2, 2)), h0, p)
    _, _, c_ref = ref.rnn_forward(np.zeros((1, 2, 2)), h0, p)
    with np.errstate(all="ignore"):
        expected = ref.rnn_backward(dh, c_ref)["dWhh"]
    np.testing.assert_array_equal(rnnfast.rnn_backward(dh, c)["dWhh"], expected)


def test_writing_into_h_does_not_change_the_backward_pass():
    x, h0, p = make_problem(SHAPE)
    dh = make_dh(SHAPE)
    h, _, caches = rnnfast.rnn_forward(x, h0, p)
    expected = rnnfast.rnn_backward(dh, caches)
    h *= 0.5
    got = rnnfast.rnn_backward(dh, caches)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
