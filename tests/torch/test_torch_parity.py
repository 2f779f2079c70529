"""PyTorch's nn.RNN + autograd as a second, independent oracle (skipped without torch)."""

import numpy as np
import pytest

import rnnfast
from tests.helpers import (
    SHAPES,
    assert_close,
    load_numpy_weights,
    make_dh,
    make_problem,
    shape_id,
    torch_dtype,
)

torch = pytest.importorskip("torch")


def torch_forward_backward(x, h0, p, dh):
    """h, y_pred and the gradients of sum(dh * h), in rnnfast's layout, from torch."""
    n_h, n_x = p["Whx"].shape
    rnn = load_numpy_weights(
        torch.nn.RNN(n_x, n_h, nonlinearity="tanh", dtype=torch_dtype(np.float64)),
        {"weight_ih_l0": p["Whx"], "weight_hh_l0": p["Whh"], "bias_ih_l0": p["bh"][:, 0],
         "bias_hh_l0": np.zeros(n_h)})
    xt = torch.tensor(x.astype(np.float64).transpose(2, 1, 0), requires_grad=True)   # (T, m, n_x)
    h0t = torch.tensor(h0.astype(np.float64).T[None], requires_grad=True)             # (1, m, n_h)
    out, _ = rnn(xt, h0t)                                                              # (T, m, n_h)
    logits = out @ torch.from_numpy(p["Wyh"].astype(np.float64)).T + torch.from_numpy(
        p["by"].astype(np.float64)[:, 0])
    y = torch.softmax(logits, dim=-1)
    (out * torch.from_numpy(dh.astype(np.float64).transpose(2, 1, 0))).sum().backward()
    return {
        "h": out.detach().numpy().transpose(2, 1, 0),
        "y_pred": y.detach().numpy().transpose(2, 1, 0),
        "dx": xt.grad.numpy().transpose(2, 1, 0),
        "dh0": h0t.grad.numpy()[0].T,
        "dWhx": rnn.weight_ih_l0.grad.numpy(),
        "dWhh": rnn.weight_hh_l0.grad.numpy(),
        "dbh": rnn.bias_ih_l0.grad.numpy()[:, None],
    }


@pytest.mark.parametrize("shape", SHAPES[:6], ids=shape_id)
def test_matches_torch_autograd(shape, dtype):
    x, h0, p = make_problem(shape, dtype)
    dh = make_dh(shape, dtype)
    expected = torch_forward_backward(x, h0, p, dh)
    h, y, caches = rnnfast.rnn_forward(x, h0, p)
    grads = rnnfast.rnn_backward(dh, caches)
    assert_close(h, expected["h"], dtype, "h")
    assert_close(y, expected["y_pred"], dtype, "y_pred")
    for key in ("dx", "dh0", "dWhx", "dWhh", "dbh"):
        assert_close(grads[key], expected[key], dtype, key)
