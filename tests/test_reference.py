"""The NumPy reference checked against central finite differences (float64).

Everything else is tested against the reference, so it must itself be right.
"""

import numpy as np
import pytest

from rnnfast import reference as ref
from conftest import make_problem, make_dh

EPS = 1e-6


def numeric_grad(f, array):
    """Central differences of the scalar f() with respect to every entry of array."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        saved = array[idx]
        array[idx] = saved + EPS
        up = f()
        array[idx] = saved - EPS
        down = f()
        array[idx] = saved
        grad[idx] = (up - down) / (2 * EPS)
    return grad


@pytest.mark.parametrize("shape", [(3, 4, 2, 2, 5), (2, 3, 4, 1, 1), (1, 2, 3, 3, 2)])
def test_rnn_backward_matches_finite_differences(shape):
    x, h0, p = make_problem(shape)
    weights = make_dh(shape)  # loss = sum(weights * h)
    _, _, caches = ref.rnn_forward(x, h0, p)
    grads = ref.rnn_backward(weights, caches)

    def loss():
        h, _, _ = ref.rnn_forward(x, h0, p)
        return float(np.sum(weights * h))

    targets = {"dx": x, "dh0": h0, "dWhx": p["Whx"], "dWhh": p["Whh"], "dbh": p["bh"]}
    for key, array in targets.items():
        np.testing.assert_allclose(grads[key], numeric_grad(loss, array),
                                   rtol=1e-6, atol=1e-8, err_msg=key)


def test_rnn_cell_backward_matches_finite_differences():
    x, h0, p = make_problem((3, 4, 2, 2, 1))
    xt = x[:, :, 0].copy()
    weights = make_dh((3, 4, 2, 2, 1))[:, :, 0]
    _, _, cache = ref.rnn_cell_forward(xt, h0, p)
    grads = ref.rnn_cell_backward(weights, cache)

    def loss():
        h_next, _, _ = ref.rnn_cell_forward(xt, h0, p)
        return float(np.sum(weights * h_next))

    targets = {"dxt": xt, "dh_prev": h0, "dWhx": p["Whx"], "dWhh": p["Whh"], "dbh": p["bh"]}
    for key, array in targets.items():
        np.testing.assert_allclose(grads[key], numeric_grad(loss, array),
                                   rtol=1e-6, atol=1e-8, err_msg=key)


def test_softmax_columns_are_distributions_and_stable():
    z = np.array([[1.0, -1000.0, 800.0], [2.0, -1001.0, 1000.0], [3.0, -999.0, 900.0]])
    s = ref.softmax(z)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s.sum(axis=0), 1.0)
    # invariant to adding a constant per column
    np.testing.assert_allclose(ref.softmax(z + np.array([5.0, -7.0, 3.0])), s)
    e = np.exp(z[:, 0])
    np.testing.assert_allclose(s[:, 0], e / e.sum())


def test_rnn_forward_matches_explicit_recurrence():
    x, h0, p = make_problem((3, 4, 2, 2, 3))
    h, y, (steps, x_cached) = ref.rnn_forward(x, h0, p)
    state = h0
    for t in range(3):
        state = np.tanh(p["Whx"] @ x[:, :, t] + p["Whh"] @ state + p["bh"])
        logits = p["Wyh"] @ state + p["by"]
        probs = np.exp(logits) / np.exp(logits).sum(axis=0)
        np.testing.assert_allclose(h[:, :, t], state, rtol=1e-12)
        np.testing.assert_allclose(y[:, :, t], probs, rtol=1e-12)
    assert len(steps) == 3 and x_cached is x
    np.testing.assert_array_equal(steps[1][1], h[:, :, 0])


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [3, 1, 2]])
def test_rnn_layer_backward_matches_finite_differences(nonlinearity, reverse, lengths):
    rng = np.random.default_rng(3)
    T, N, n_in, H = 3, 3, 2, 4
    x = rng.standard_normal((T, N, n_in))
    h0 = 0.5 * rng.standard_normal((N, H))
    w_ih, w_hh = rng.standard_normal((H, n_in)), 0.6 * rng.standard_normal((H, H))
    b_ih, b_hh = 0.1 * rng.standard_normal(H), 0.1 * rng.standard_normal(H)
    d_out, d_hn = rng.standard_normal((T, N, H)), rng.standard_normal((N, H))

    def loss():
        out, h_n, _ = ref.rnn_layer_forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity,
                                            reverse, lengths)
        return float(np.sum(d_out * out) + np.sum(d_hn * h_n))

    _, _, cache = ref.rnn_layer_forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity,
                                        reverse, lengths)
    grads = ref.rnn_layer_backward(d_out, d_hn, cache)
    targets = {"input": x, "hx": h0, "weight_ih": w_ih, "weight_hh": w_hh,
               "bias_ih": b_ih, "bias_hh": b_hh}
    for key, array in targets.items():
        np.testing.assert_allclose(grads[key], numeric_grad(loss, array),
                                   rtol=1e-6, atol=1e-8, err_msg=key)
    if lengths is not None:       # padded steps output zeros and get no input gradient
        out, _, _ = ref.rnn_layer_forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity,
                                          reverse, lengths)
        assert np.all(out[1:, 1] == 0) and np.all(grads["input"][1:, 1] == 0)
