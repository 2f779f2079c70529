"""The NumPy reference checked against central finite differences (float64).

Everything else is tested against the reference, so it must itself be right.
"""

import numpy as np
import pytest

from rnnfast import reference as ref
from tests.helpers import make_dh, make_problem, numeric_grad


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


def module_problem(num_layers, bidirectional, bias, seed=4, T=3, N=2, n_in=2, H=3):
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    params = {}
    for k in range(num_layers):
        for sfx in ("", "_reverse")[:D]:
            width = n_in if k == 0 else D * H
            params[f"weight_ih_l{k}{sfx}"] = 0.7 * rng.standard_normal((H, width))
            params[f"weight_hh_l{k}{sfx}"] = 0.6 * rng.standard_normal((H, H))
            if bias:
                params[f"bias_ih_l{k}{sfx}"] = 0.1 * rng.standard_normal(H)
                params[f"bias_hh_l{k}{sfx}"] = 0.1 * rng.standard_normal(H)
    x = rng.standard_normal((T, N, n_in))
    hx = 0.5 * rng.standard_normal((num_layers * D, N, H))
    masks = [(rng.random((T, N, D * H)) > 0.3) / 0.7 for _ in range(num_layers - 1)]
    return x, hx, params, masks


@pytest.mark.parametrize("num_layers, bidirectional, bias, lengths, dropout", [
    (1, False, True, None, False),
    (2, True, True, None, True),
    (2, False, False, [3, 2], True),
    (3, True, True, [1, 3], False),
])
def test_rnn_module_backward_matches_finite_differences(num_layers, bidirectional, bias,
                                                        lengths, dropout):
    x, hx, params, masks = module_problem(num_layers, bidirectional, bias)
    masks = masks if dropout else None
    out, h_n, cache = ref.rnn_module_forward(x, hx, params, num_layers, bidirectional,
                                             "tanh", lengths, masks)
    rng = np.random.default_rng(5)
    d_out, d_hn = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    grads = ref.rnn_module_backward(d_out, d_hn, cache)

    def loss():
        o, hn, _ = ref.rnn_module_forward(x, hx, params, num_layers, bidirectional, "tanh",
                                          lengths, masks)
        return float(np.sum(d_out * o) + np.sum(d_hn * hn))

    targets = {"input": x, "hx": hx, **params}
    assert set(grads) == set(targets)
    for key, array in targets.items():
        np.testing.assert_allclose(grads[key], numeric_grad(loss, array),
                                   rtol=1e-6, atol=1e-8, err_msg=key)


@pytest.mark.parametrize("shape", [(3, 4, 5, 2, 3), (2, 3, 2, 1, 1)])
def test_rnn_loss_matches_finite_differences(shape):
    x, h0, p = make_problem(shape)
    n_y, m, T = shape[2], shape[3], shape[4]
    y = np.random.default_rng(6).integers(0, n_y, size=(m, T))
    loss, grads = ref.rnn_loss(x, h0, y, p)

    def f():
        return ref.rnn_loss(x, h0, y, p)[0]

    # the loss itself, from the softmax outputs of the seed forward pass
    _, y_pred, _ = ref.rnn_forward(x, h0, p)
    picked = np.take_along_axis(y_pred, y[None], axis=0)
    assert loss == pytest.approx(-np.mean(np.log(picked)), rel=1e-12)
    targets = {"dx": x, "dh0": h0, "dWhx": p["Whx"], "dWhh": p["Whh"], "dbh": p["bh"],
               "dWyh": p["Wyh"], "dby": p["by"]}
    assert set(grads) == set(targets)
    for key, array in targets.items():
        np.testing.assert_allclose(grads[key], numeric_grad(f, array),
                                   rtol=1e-6, atol=1e-9, err_msg=key)


def test_optimizer_steps_follow_the_published_equations():
    g1, g2 = np.array([0.5, -2.0, 1e-3]), np.array([-1.0, 0.25, 4.0])
    p0 = np.array([1.0, -1.0, 0.5])
    # Adam, first step: m_hat = g, v_hat = g^2, so p moves by lr g / (|g| + eps)
    state = {}
    p1 = ref.adam_step(p0, g1, state, 1, lr=0.1, eps=1e-8)
    np.testing.assert_allclose(p1, p0 - 0.1 * g1 / (np.abs(g1) + 1e-8), rtol=1e-14)
    # second step, by hand
    m = 0.9 * 0.1 * g1 + 0.1 * g2
    v = 0.999 * 0.001 * g1 ** 2 + 0.001 * g2 ** 2
    p2 = ref.adam_step(p1, g2, state, 2, lr=0.1, eps=1e-8)
    expected = p1 - 0.1 * (m / (1 - 0.81)) / (np.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)
    np.testing.assert_allclose(p2, expected, rtol=1e-14)
    # L2 weight decay enters the gradient
    np.testing.assert_allclose(ref.adam_step(p0, g1, {}, 1, 0.1, weight_decay=0.5),
                               ref.adam_step(p0, g1 + 0.5 * p0, {}, 1, 0.1), rtol=1e-15)
    # SGD with momentum: b1 = g1, b2 = 0.9 g1 + g2
    state = {}
    p1 = ref.sgd_step(p0, g1, state, 0.1, momentum=0.9)
    p2 = ref.sgd_step(p1, g2, state, 0.1, momentum=0.9)
    np.testing.assert_allclose(p2, p0 - 0.1 * g1 - 0.1 * (0.9 * g1 + g2), rtol=1e-15)
    np.testing.assert_allclose(ref.sgd_step(p0, g1, {}, 0.1), p0 - 0.1 * g1, rtol=1e-15)
    # Adagrad: s2 = g1^2 + g2^2
    state = {}
    p1 = ref.adagrad_step(p0, g1, state, 0.5)
    p2 = ref.adagrad_step(p1, g2, state, 0.5)
    np.testing.assert_allclose(p2, p0 - 0.5 * g1 / (np.abs(g1) + 1e-10)
                               - 0.5 * g2 / (np.sqrt(g1 ** 2 + g2 ** 2) + 1e-10), rtol=1e-14)
    # clipping: joint norm 13 scaled to 1.3
    clipped, norm = ref.clip_grad_norm({"a": np.array([3.0, 4.0]), "b": np.array([12.0])}, 1.3)
    assert norm == 13.0
    np.testing.assert_allclose(clipped["a"], [0.3, 0.4], rtol=1e-6)
    assert ref.clip_grad_norm({"a": np.array([0.3])}, 1.0)[0]["a"][0] == 0.3


def test_rnn_loss_twin_indexes_the_target_logit():
    # An infinite logit of another class takes all or none of the probability;
    # the target's own loss term stays finite when that logit is -inf.
    x, h0, p = make_problem((2, 3, 3, 1, 2))
    p["by"] = np.array([[0.0], [-np.inf], [0.0]])
    y = np.zeros((1, 2), dtype=int)
    loss, _ = ref.rnn_loss(x, h0, y, p)
    assert np.isfinite(loss)


def test_adam_twin_adds_no_decay_term_without_weight_decay():
    p = np.array([np.nan, 1.0])
    out = ref.adam_step(p, np.array([1.0, 1.0]), {}, 1, lr=0.1)
    assert np.isnan(out[0]) and np.isfinite(out[1])
    state = {}
    ref.adam_step(np.array([np.inf]), np.array([1.0]), state, 1, lr=0.1)
    assert np.isfinite(state["exp_avg"]).all()      # the moments see the gradient alone
