"""rnn_loss: value and every gradient, against finite differences, the reference and torch."""

import numpy as np
import pytest

import rnnfast
from rnnfast import reference as ref
from tests.helpers import (
    RTOL,
    SHAPES,
    as_float64,
    assert_close,
    make_problem,
    numeric_grad,
    shape_id,
)

GRAD_KEYS = ("dWhx", "dWhh", "dWyh", "dbh", "dby", "dx", "dh0")


def make_labels(shape, seed=2):
    n_x, n_h, n_y, m, n_steps = shape
    return np.random.default_rng(seed).integers(0, n_y, size=(m, n_steps))


def reference_loss(x, h0, y, p):
    """Mean cross-entropy computed from the reference's softmax outputs."""
    _, y_pred, _ = ref.rnn_forward(x, h0, p)                     # (n_y, m, T)
    picked = np.take_along_axis(y_pred, y[None], axis=0)[0]      # (m, T)
    return float(-np.mean(np.log(picked)))


@pytest.mark.parametrize("shape", [(3, 4, 5, 2, 3), (2, 3, 2, 1, 1), (1, 2, 3, 3, 2)])
def test_gradients_match_finite_differences(shape, products):
    x, h0, p = make_problem(shape)
    y = make_labels(shape)
    loss, grads = rnnfast.rnn_loss(x, h0, y, p)
    assert sorted(grads) == sorted(GRAD_KEYS)
    assert abs(loss - reference_loss(x, h0, y, p)) < 1e-12

    def f():
        return reference_loss(x, h0, y, p)

    targets = {"dWhx": p["Whx"], "dWhh": p["Whh"], "dWyh": p["Wyh"], "dbh": p["bh"],
               "dby": p["by"], "dx": x, "dh0": h0}
    for key, array in targets.items():
        np.testing.assert_allclose(grads[key], numeric_grad(f, array), rtol=1e-6, atol=1e-9,
                                   err_msg=key)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_matches_reference_forward_and_backward(shape, dtype, products):
    """The loss and every gradient agree with the NumPy twin ``reference.rnn_loss``."""
    x, h0, p = make_problem(shape, dtype)
    y = make_labels(shape)
    x64, h064, p64 = as_float64(x, h0, p)
    loss_ref, expected = ref.rnn_loss(x64, h064, y, p64)
    assert abs(loss_ref - reference_loss(x64, h064, y, p64)) < 1e-12
    loss, grads = rnnfast.rnn_loss(x, h0, y, p)
    assert isinstance(loss, float)
    assert abs(loss - loss_ref) <= RTOL[np.dtype(dtype)] * max(1.0, loss_ref)
    for key in GRAD_KEYS:
        assert_close(grads[key], expected[key], dtype, key)


def test_huge_logits_stay_finite(dtype):
    shape = (3, 4, 5, 2, 3)
    x, h0, p = make_problem(shape, dtype)
    p["Wyh"] = (p["Wyh"] * 1e30).astype(dtype)   # logits around 1e30
    loss, grads = rnnfast.rnn_loss(x, h0, make_labels(shape), p)
    assert np.isfinite(loss) and loss > 1e20
    h, y_pred, _ = rnnfast.rnn_forward(x, h0, p)
    assert np.all(np.isfinite(y_pred))
    np.testing.assert_allclose(y_pred.sum(axis=0), 1, rtol=1e-6)


@pytest.mark.parametrize("bad, error, pattern", [
    (lambda y: y + 5, ValueError, "class index"),
    (lambda y: y - 3, ValueError, "class index -"),
    (lambda y: y.astype(float), TypeError, "integer class indices"),
    (lambda y: y[:, :2], ValueError, r"y has shape \(2, 2\)"),
    (lambda y: y[0], ValueError, "y must be 2-D"),
])
def test_bad_labels(bad, error, pattern):
    shape = (3, 4, 5, 2, 3)
    x, h0, p = make_problem(shape)
    with pytest.raises(error, match=pattern):
        rnnfast.rnn_loss(x, h0, bad(make_labels(shape)), p)


def test_matches_torch_autograd(dtype):
    torch = pytest.importorskip("torch")
    shape = (4, 6, 5, 3, 7)
    x, h0, p = make_problem(shape, dtype)
    y = make_labels(shape)
    t = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in p.items()}
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    h0t = torch.tensor(h0.astype(np.float64), requires_grad=True)
    h = h0t
    logits = []
    for step in range(shape[4]):
        h = torch.tanh(t["Whx"] @ xt[:, :, step] + t["Whh"] @ h + t["bh"])
        logits.append((t["Wyh"] @ h + t["by"]).T)               # (m, n_y)
    z = torch.stack(logits, dim=1).reshape(-1, shape[2])         # rows (i, t)
    loss_t = torch.nn.functional.cross_entropy(z, torch.from_numpy(y).reshape(-1))
    loss_t.backward()
    loss, grads = rnnfast.rnn_loss(x, h0, y, p)
    assert abs(loss - loss_t.item()) <= (1e-12 if dtype == np.float64 else 1e-4)
    expected = {"d" + k: v.grad.numpy() for k, v in t.items()}
    expected.update(dx=xt.grad.numpy(), dh0=h0t.grad.numpy())
    for key in GRAD_KEYS:
        assert_close(grads[key], expected[key], dtype, key)
