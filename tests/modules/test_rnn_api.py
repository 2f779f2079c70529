"""rnnfast.RNN's constructor arguments, parameter attributes and forward cache (no torch)."""

import numpy as np
import pytest

import rnnfast
from rnnfast import reference as ref


@pytest.mark.parametrize("name", ["bias", "batch_first", "bidirectional"])
@pytest.mark.parametrize("value", ["False", "True", 0, 1, None, 1.0])
def test_flags_must_be_bool(name, value):
    with pytest.raises(TypeError, match=f"{name} should be of type bool, got: "
                                        f"{type(value).__name__}"):
        rnnfast.RNN(3, 4, **{name: value})


def test_numpy_bools_are_accepted():
    r = rnnfast.RNN(3, 4, bias=np.bool_(False), batch_first=np.True_)
    assert r.bias is False and r.batch_first is True and "bias_ih_l0" not in r.state_dict()


def test_assigning_a_parameter_takes_effect():
    r = rnnfast.RNN(3, 4, dtype=np.float64, seed=0)
    live = r.weight_ih_l0
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    r.weight_ih_l0 = np.zeros((4, 3), np.float32)
    assert r.weight_ih_l0 is live and np.all(live == 0)
    out, _ = r(x)
    expected, _, _ = ref.rnn_layer_forward(np.zeros_like(x), np.zeros((2, 4)), live,
                                           r.weight_hh_l0, r.bias_ih_l0, r.bias_hh_l0)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    r.bias_hh_l0 = [1, 2, 3, 4]                       # lists and integers are cast
    assert r.bias_hh_l0.dtype == np.float64 and list(r.bias_hh_l0) == [1, 2, 3, 4]


@pytest.mark.parametrize("value, error, match", [
    (np.zeros((3, 4)), ValueError, r"weight_ih_l0 has shape \(3, 4\); expected \(4, 3\)"),
    (np.zeros(12), ValueError, "expected"),
    (np.array(["a"] * 12).reshape(4, 3), TypeError, "expected real numbers"),
    (np.zeros((4, 3), complex), TypeError, "expected real numbers"),
])
def test_assigning_a_bad_parameter_raises_and_changes_nothing(value, error, match):
    r = rnnfast.RNN(3, 4, seed=0)
    before = r.weight_ih_l0.copy()
    with pytest.raises(error, match=match):
        r.weight_ih_l0 = value
    np.testing.assert_array_equal(r.weight_ih_l0, before)


@pytest.mark.parametrize("name, value", [
    ("input_size", 7), ("hidden_size", 10), ("num_layers", 3), ("bias", False),
    ("bidirectional", True), ("dtype", np.float64),
])
def test_what_shapes_the_parameters_is_fixed(name, value):
    # a changed size would send arrays of the old shapes into the kernels
    r = rnnfast.RNN(3, 4, num_layers=2)
    with pytest.raises(AttributeError, match=f"{name} is fixed"):
        setattr(r, name, value)
    out, h_n = r(np.ones((5, 2, 3), np.float32))
    assert out.shape == (5, 2, 4) and h_n.shape == (2, 2, 4)


def test_other_attributes_are_ordinary():
    r = rnnfast.RNN(3, 4)
    r.note = "mine"
    r.dropout, r.batch_first = 0.5, True
    assert r.note == "mine" and "note" not in r.state_dict()
    assert r.dropout == 0.5 and r(np.ones((2, 5, 3)))[0].shape == (2, 5, 4)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("batched", [True, False])
def test_backward_uses_the_values_of_the_forward(batch_first, batched):
    # The caller may reuse its input and lengths buffers between forward and backward.
    rng = np.random.default_rng(1)
    shape = ((2, 5, 3) if batch_first else (5, 2, 3)) if batched else (5, 3)
    x = rng.standard_normal(shape).astype(np.float32)
    lengths = np.array([5, 3], dtype=np.intp) if batched else None
    pristine = rnnfast.RNN(3, 4, batch_first=batch_first, seed=0)
    out, _ = pristine(x.copy(), lengths=None if lengths is None else lengths.copy())
    expected = pristine.backward(np.ones_like(out))

    r = rnnfast.RNN(3, 4, batch_first=batch_first, seed=0)
    out, _ = r(x, lengths=lengths)
    x[...] = 9.0
    if lengths is not None:
        lengths[...] = 1
    got = r.backward(np.ones_like(out))
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
