"""Gradients stay accurate to the dtype's rounding whatever the states' magnitudes.

The weight gradient ``dWhh = sum_t dZ_t^T H_{t-1}`` is computed with one GEMM
over all steps of all sequences; nothing may cancel there.  These cases make
any cancellation visible: states that grow to 1e7 (float32) or 1e18 (float64)
under relu, and sequences with tiny states next to sequences with O(1) states.
Every result is compared with the float64 NumPy reference.
"""

import numpy as np
import pytest

import rnnfast
from rnnfast import reference as ref

# Largest error relative to max|expected| allowed for these cases: 10x what
# the kernels measure over the cases below (float32 5.5e-7, float64 2.0e-15);
# the shifted-GEMM-with-correction dWhh they replace gave up to 0.24 (float32).
ACCURACY = {np.dtype(np.float32): 5e-6, np.dtype(np.float64): 2e-14}


def relative_error(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected)))
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected))) / scale


def reference_layer_grads(r, x, d_out, lengths, reverse):
    """The float64 reference's gradients of a one-layer rnnfast.RNN direction."""
    sfx = "_reverse" if reverse else ""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in r.state_dict().items()}
    h0 = np.zeros((x.shape[1], r.hidden_size))
    _, _, cache = ref.rnn_layer_forward(
        x.astype(np.float64), h0, p["weight_ih_l0" + sfx], p["weight_hh_l0" + sfx],
        p["bias_ih_l0" + sfx], p["bias_hh_l0" + sfx], r.nonlinearity, reverse, lengths)
    return ref.rnn_layer_backward(d_out.astype(np.float64), np.zeros_like(h0), cache)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("lengths", [None, [24, 17, 24]], ids=["full", "lengths"])
def test_rnn_weight_hh_gradient_with_large_states(dtype, nonlinearity, lengths):
    # Whh = 0.5 * ones(4, 4) doubles a positive state every step: under relu
    # the states reach ~2^T.  Both directions, as one bidirectional layer.
    n_steps = 24 if dtype == np.float32 else 60
    lengths = None if lengths is None else [n_steps, n_steps - 7, n_steps]
    r = rnnfast.RNN(2, 4, nonlinearity=nonlinearity, bidirectional=True, dtype=dtype, seed=0)
    r.weight_hh_l0[...] = 0.5
    r.weight_hh_l0_reverse[...] = 0.5
    x = np.ones((n_steps, 3, 2), dtype)
    x[:, 1] *= 0.25                                  # sequences of different magnitudes
    out, _ = r(x, lengths=lengths)
    d_out = np.ones_like(out)
    grads = r.backward(d_out)
    for d, sfx in enumerate(("", "_reverse")):
        expected = reference_layer_grads(r, x, d_out[:, :, 4 * d:4 * (d + 1)], lengths, d == 1)
        for key in ("weight_hh", "weight_ih", "bias_ih"):
            err = relative_error(grads[f"{key}_l0{sfx}"], expected[key])
            assert err <= ACCURACY[np.dtype(dtype)], f"{key}_l0{sfx}: error {err:.2e}"


def mixed_magnitude_problem(dtype, m=4, n_steps=6, n_x=3, n_h=5, n_y=4):
    """Sequences 0 and 2 saturate tanh (|h| = 1, so dZ = 0); 1 and 3 have states ~1e-5.

    dWhh then comes from the tiny sequences alone, while their neighbours'
    last states are O(1): any scheme that adds and later subtracts a product
    with a neighbour's state loses everything to rounding.
    """
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n_x, m, n_steps))
    x[:, 0::2] *= 1e4
    x[:, 1::2] *= 1e-5
    h0 = np.zeros((n_h, m))
    h0[:, 1::2] = 1e-5 * rng.standard_normal((n_h, m // 2))
    p = {"Whx": rng.standard_normal((n_h, n_x)), "Whh": 0.5 * rng.standard_normal((n_h, n_h)),
         "Wyh": rng.standard_normal((n_y, n_h)), "bh": np.zeros((n_h, 1)),
         "by": np.zeros((n_y, 1))}
    cast = np.dtype(dtype).type
    return (x.astype(cast), h0.astype(cast), {k: v.astype(cast) for k, v in p.items()})


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_rnn_backward_weight_hh_with_mixed_magnitudes(dtype):
    x, h0, p = mixed_magnitude_problem(dtype)
    x64, h064 = x.astype(np.float64), h0.astype(np.float64)
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    _, _, caches = rnnfast.rnn_forward(x, h0, p)
    _, _, ref_caches = ref.rnn_forward(x64, h064, p64)
    dh = np.ones((5, 4, 6), dtype)
    grads = rnnfast.rnn_backward(dh, caches)
    expected = ref.rnn_backward(dh.astype(np.float64), ref_caches)
    assert np.all(expected["dWhh"] != 0)
    # (dWhx = dZ^T X is not checked here: the saturated sequences' dZ is
    # rounding noise of 1 - h^2 times inputs of 1e4, in any implementation.)
    for key in ("dWhh", "dbh"):
        err = relative_error(grads[key], expected[key])
        assert err <= ACCURACY[np.dtype(dtype)], f"{key}: error {err:.2e}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_rnn_loss_weight_hh_with_mixed_magnitudes(dtype):
    x, h0, p = mixed_magnitude_problem(dtype)
    y = np.random.default_rng(8).integers(0, 4, size=(4, 6))
    _, grads = rnnfast.rnn_loss(x, h0, y, p)
    # The reference: forward, softmax cross-entropy (mean over m*T), BPTT.
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    h, y_pred, caches = ref.rnn_forward(x.astype(np.float64), h0.astype(np.float64), p64)
    d_logits = y_pred.copy()
    d_logits[y[None] == np.arange(4)[:, None, None]] -= 1
    d_logits /= y.size
    dh = np.einsum("yh,ymt->hmt", p64["Wyh"], d_logits)
    expected = ref.rnn_backward(dh, caches)
    err = relative_error(grads["dWhh"], expected["dWhh"])
    assert err <= ACCURACY[np.dtype(dtype)], f"dWhh: error {err:.2e}"
