"""Property-based tests (hypothesis): random sizes, dtypes and memory layouts against the oracle.

The profiles are set in conftest.py: the default runs 200 examples per test; for
thousands, run ``python -m pytest tests/test_properties.py --hypothesis-profile=long``
(or set ``RNNFAST_HYPOTHESIS_PROFILE=long``).
"""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import rnnfast  # noqa: E402
from rnnfast import reference as ref  # noqa: E402
from conftest import RTOL, as_float64, assert_close  # noqa: E402

LAYOUTS = ["c", "fortran", "strided", "negative", "readonly"]


def in_layout(a, layout):
    """The values of ``a`` in the given memory layout."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "negative":
        flipped = np.ascontiguousarray(a[tuple(slice(None, None, -1) for _ in a.shape)])
        return flipped[tuple(slice(None, None, -1) for _ in a.shape)]
    if layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
    return a


@st.composite
def problems(draw):
    """(x, h0, parameters, dh, y, dtype) with random sizes, dtype and layouts."""
    n_x, n_h, n_y = (draw(st.integers(1, 9)) for _ in range(3))
    m, n_steps = draw(st.integers(1, 5)), draw(st.integers(1, 12))
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    arrays = {
        "x": rng.standard_normal((n_x, m, n_steps)),
        "h0": rng.standard_normal((n_h, m)),
        "Whx": rng.standard_normal((n_h, n_x)) / np.sqrt(n_x),
        "Whh": rng.standard_normal((n_h, n_h)) / np.sqrt(n_h),
        "Wyh": rng.standard_normal((n_y, n_h)),
        "bh": rng.standard_normal((n_h, 1)),
        "by": rng.standard_normal((n_y, 1)),
        "dh": rng.standard_normal((n_h, m, n_steps)),
    }
    laid = {k: in_layout(v.astype(dtype), draw(st.sampled_from(LAYOUTS)))
            for k, v in arrays.items()}
    params = {k: laid[k] for k in ("Whx", "Whh", "Wyh", "bh", "by")}
    y = rng.integers(0, n_y, size=(m, n_steps))
    return laid["x"], laid["h0"], params, laid["dh"], y, dtype


@given(problems())
def test_forward_backward_against_reference(problem):
    x, h0, p, dh, _, dtype = problem
    snapshot = [a.copy() for a in (x, h0, dh, *p.values())]
    x64, h064, p64 = as_float64(x, h0, p)
    h_ref, y_ref, c_ref = ref.rnn_forward(x64, h064, p64)
    g_ref = ref.rnn_backward(dh.astype(np.float64), c_ref)
    h, y, caches = rnnfast.rnn_forward(x, h0, p)
    grads = rnnfast.rnn_backward(dh, caches)
    assert_close(h, h_ref, dtype, "h")
    assert_close(y, y_ref, dtype, "y")
    for key, expected in g_ref.items():
        assert_close(grads[key], expected, dtype, key)
    for before, after in zip(snapshot, (x, h0, dh, *p.values())):
        np.testing.assert_array_equal(before, after)


@given(problems())
def test_loss_against_reference(problem):
    x, h0, p, _, y, dtype = problem
    x64, h064, p64 = as_float64(x, h0, p)
    _, y_pred, _ = ref.rnn_forward(x64, h064, p64)
    expected = -np.mean(np.log(np.take_along_axis(y_pred, y[None], axis=0)))
    loss, grads = rnnfast.rnn_loss(x, h0, y, p)
    assert abs(loss - expected) <= RTOL[np.dtype(dtype)] * max(1, expected)
    assert all(np.all(np.isfinite(g)) for g in grads.values())


@given(st.integers(1, 3), st.booleans(), st.sampled_from(["tanh", "relu"]), st.booleans(),
       st.integers(1, 4), st.integers(1, 7), st.integers(0, 2**32 - 1), st.booleans())
def test_rnn_module_one_layer_against_reference(n_layers, bidirectional, nonlinearity, bias,
                                                 n_batch, n_steps, seed, use_lengths):
    """Each direction of each layer is the reference's recurrence on the layer's input."""
    rng = np.random.default_rng(seed)
    r = rnnfast.RNN(3, 4, n_layers, nonlinearity, bias, bidirectional=bidirectional,
                    dtype=np.float64, seed=seed)
    x = rng.standard_normal((n_steps, n_batch, 3))
    lengths = rng.integers(1, n_steps + 1, size=n_batch) if use_lengths else None
    out, h_n = r(x, lengths=lengths)
    D = 2 if bidirectional else 1
    layer_in = x
    valid = (np.ones((n_steps, n_batch), bool) if lengths is None
             else np.arange(n_steps)[:, None] < lengths[None, :])
    for k in range(n_layers):
        outs = []
        for d, sfx in enumerate(["", "_reverse"][:D]):
            w_ih, w_hh = r._params[f"weight_ih_l{k}{sfx}"], r._params[f"weight_hh_l{k}{sfx}"]
            b = (r._params[f"bias_ih_l{k}{sfx}"] + r._params[f"bias_hh_l{k}{sfx}"]) if bias \
                else np.zeros(4)
            h = np.zeros((n_batch, 4))
            o = np.zeros((n_steps, n_batch, 4))
            order = range(n_steps - 1, -1, -1) if d == 1 else range(n_steps)
            for t in order:
                z = layer_in[t] @ w_ih.T + h @ w_hh.T + b
                new = np.tanh(z) if nonlinearity == "tanh" else np.maximum(z, 0)
                h = np.where(valid[t][:, None], new, h)
                o[t] = np.where(valid[t][:, None], h, 0)
            np.testing.assert_allclose(h_n[k * D + d], h, rtol=1e-10, atol=1e-12)
            outs.append(o)
        layer_in = np.concatenate(outs, axis=2)
    np.testing.assert_allclose(out, layer_in, rtol=1e-10, atol=1e-12)
