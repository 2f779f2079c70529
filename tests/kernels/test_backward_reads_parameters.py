"""``rnn_backward`` uses the parameters as they are at backward time, like the reference.

The cache refers to the caller's ``parameters`` dict: an in-place edit of a
weight, or a new array put in the dict, between ``rnn_forward`` and
``rnn_backward`` changes the gradients exactly as it changes those of
``rnnfast.reference.rnn_backward``, whatever the arrays' layout and dtype.
"""

import numpy as np
import pytest

import rnnfast
from rnnfast import reference as ref

N_X, N_H, N_Y, M, T = 3, 4, 2, 2, 5


def problem(layout, dtype=np.float64):
    rng = np.random.default_rng(0)
    p = {"Whx": rng.standard_normal((N_H, N_X)), "Whh": rng.standard_normal((N_H, N_H)) / 2,
         "Wyh": rng.standard_normal((N_Y, N_H)), "bh": rng.standard_normal((N_H, 1)),
         "by": rng.standard_normal((N_Y, 1))}
    p = {k: LAYOUTS[layout](v.astype(dtype)) for k, v in p.items()}
    x = rng.standard_normal((N_X, M, T)).astype(dtype)
    h0 = rng.standard_normal((N_H, M)).astype(dtype)
    dh = rng.standard_normal((N_H, M, T)).astype(dtype)
    return x, h0, dh, p


LAYOUTS = {
    "C": np.ascontiguousarray,
    "Fortran": np.asfortranarray,
    "int": lambda a: np.round(a * 3).astype(np.int64),
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
}

EDITS = {
    "in place": lambda p: p["Whh"].__imul__(-2),
    "Whx in place": lambda p: p["Whx"].__iadd__(1),
    "new array": lambda p: p.__setitem__("Whh", p["Whh"] * -2 + 1),
    "new float32 array": lambda p: p.__setitem__("Whx", (p["Whx"] * 3).astype(np.float32)),
    "new Fortran array": lambda p: p.__setitem__("Whh", np.asfortranarray(p["Whh"] + 1.5)),
}


@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_backward_uses_the_parameters_at_backward_time(layout, edit):
    x, h0, dh, p = problem(layout)
    _, _, caches = rnnfast.rnn_forward(x, h0, p)
    _, _, ref_caches = ref.rnn_forward(x.astype(np.float64), h0.astype(np.float64), p)
    EDITS[edit](p)                               # both caches refer to this dict
    got = rnnfast.rnn_backward(dh, caches)
    expected = ref.rnn_backward(dh.astype(np.float64), ref_caches)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("layout", ["C", "Fortran"])
def test_float32_forward_with_an_untouched_dict_stays_float32(layout):
    x, h0, dh, p = problem(layout, np.float32)
    _, _, caches = rnnfast.rnn_forward(x, h0, p)
    assert rnnfast.rnn_backward(dh, caches)["dWhh"].dtype == np.float32
    p["Whh"] = p["Whh"].astype(np.float64)       # as the reference: float64 from here
    assert rnnfast.rnn_backward(dh, caches)["dWhh"].dtype == np.float64


def test_a_parameter_of_another_shape_at_backward_time_is_refused():
    x, h0, dh, p = problem("Fortran")
    _, _, caches = rnnfast.rnn_forward(x, h0, p)
    p["Whh"] = np.zeros((N_H + 1, N_H + 1))
    with pytest.raises(ValueError, match=r'parameters\["Whh"\] has shape \(5, 5\)'):
        rnnfast.rnn_backward(dh, caches)
    del p["Whh"]
    with pytest.raises(KeyError, match="Whh"):
        rnnfast.rnn_backward(dh, caches)
