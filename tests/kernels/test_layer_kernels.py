"""The layer kernels with every activation against the NumPy twin of one layer direction.

``rnnfast.RNN`` reaches tanh and relu; sigmoid is there for the gated cells.
Each activation's (f, f') pair is defined once in _vecmath_impl.h; this runs
each through the compiled forward and backward of one direction of one layer.
"""

import numpy as np
import pytest

from rnnfast import _kernels
from rnnfast import reference as ref
from tests.helpers import assert_close


@pytest.mark.parametrize("activation", list(_kernels.Activation), ids=lambda a: a.name.lower())
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("lengths", [None, [5, 2, 4]], ids=["full", "lengths"])
@pytest.mark.parametrize("own_products", [False, True], ids=["blas", "own"])
def test_layer_kernels_match_the_twin(activation, reverse, lengths, own_products, dtype):
    rng = np.random.default_rng(int(activation) + 10 * reverse)
    T, N, n_in, H = 5, 3, 4, 6
    x = rng.standard_normal((T, N, n_in))
    h0 = 0.5 * rng.standard_normal((N, H))
    w_ih, w_hh = rng.standard_normal((H, n_in)) / 2, rng.standard_normal((H, H)) / 3
    b_ih, b_hh = 0.1 * rng.standard_normal(H), 0.1 * rng.standard_normal(H)
    d_out, d_hn = rng.standard_normal((T, N, H)), rng.standard_normal((N, H))
    name = activation.name.lower()
    out_e, hn_e, cache = ref.rnn_layer_forward(x, h0, w_ih, w_hh, b_ih, b_hh, name, reverse,
                                               lengths)
    grads_e = ref.rnn_layer_backward(d_out, d_hn, cache)

    def cast(a):
        return (np.ascontiguousarray(a, dtype=dtype))
    lengths_c = None if lengths is None else np.array(lengths, dtype=np.intp)
    x_rows = cast(x.transpose(1, 0, 2).reshape(N * T, n_in))
    states = _kernels.layer_forward(x_rows, cast(h0), cast(w_ih), cast(w_hh),
                                    cast(b_ih + b_hh), lengths_c, reverse, activation,
                                    own_products)
    valid = np.ones((T, N), bool) if lengths is None else np.arange(T)[:, None] < lengths
    assert_close(np.where(valid[:, :, None], states.transpose(1, 0, 2), 0), out_e, dtype,
                 "output")
    assert_close(states[:, 0] if reverse else states[:, -1], hn_e, dtype, "h_n")
    d_states = cast(np.where(valid[:, :, None], d_out, 0).transpose(1, 0, 2))
    dx, dh0, dw_ih, dw_hh, db = _kernels.layer_backward(
        x_rows, cast(h0), states, d_states, cast(d_hn), cast(w_ih), cast(w_hh), lengths_c,
        reverse, activation, own_products)
    assert_close(dx.reshape(N, T, n_in).transpose(1, 0, 2), grads_e["input"], dtype, "input")
    for key, got in (("hx", dh0), ("weight_ih", dw_ih), ("weight_hh", dw_hh), ("bias_ih", db)):
        assert_close(got, grads_e[key], dtype, key)
