"""rnnfast.RNN/LSTM/GRU: to(dtype), float(), double(), parameters() and
load_state_dict(strict=False), without torch (tests/torch/test_module_conveniences_vs_torch.py
checks the same against torch's modules).

A converted module is checked against the float64 NumPy twin run on its converted weights.
"""

import pickle

import numpy as np
import pytest

import rnnfast
from tests.helpers import assert_close, gated_twin_run, numpy_run

N_IN, H = 4, 5
KINDS = ["rnn", "lstm", "gru"]
CLASSES = {"rnn": rnnfast.RNN, "lstm": rnnfast.LSTM, "gru": rnnfast.GRU}


def make(kind, dtype=np.float32, **kwargs):
    return CLASSES[kind](N_IN, H, num_layers=2, bidirectional=True, dtype=dtype, seed=3,
                         **kwargs)


def check_against_twin(m, dtype):
    """``m``'s forward and backward, in ``dtype``, match the float64 twin on its weights."""
    rng = np.random.default_rng(7)
    D, L, N = 2, 6, 3
    x = rng.standard_normal((L, N, N_IN))
    widths = [H, H] if m.mode == "LSTM" else [H]
    s0 = [rng.standard_normal((D * m.num_layers, N, w)) for w in widths]
    go = rng.standard_normal((L, N, D * H))
    gf = [rng.standard_normal(s.shape) for s in s0]
    weights = {k: v.astype(np.float64) for k, v in m.named_parameters()}
    if m.mode == "LSTM":
        output, (h_n, c_n) = m(x, tuple(s0))
        grads = m.backward(go, *gf)
        e_out, e_finals, e_grads = gated_twin_run(m, weights, x, s0, go, gf, None, True, None)
        finals = [h_n, c_n]
    elif m.mode == "GRU":
        output, h_n = m(x, s0[0])
        grads = m.backward(go, gf[0])
        e_out, e_finals, e_grads = gated_twin_run(m, weights, x, s0, go, gf, None, True, None)
        finals = [h_n]
    else:
        output, h_n = m(x, s0[0])
        grads = m.backward(go, gf[0])
        e_out, e_h_n, e_grads = numpy_run(m, weights, x, s0[0], go, gf[0])
        e_finals, finals = [e_h_n], [h_n]
    assert_close(output, e_out, dtype, "output")
    for i, (f, e) in enumerate(zip(finals, e_finals, strict=True)):
        assert_close(f, e, dtype, f"final state {i}")
    for name, a in grads.items():
        assert_close(a, e_grads[name], dtype, name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("source, target, how", [
    (np.float32, np.float64, "np.float64"), (np.float32, np.float64, "'float64'"),
    (np.float32, np.float64, "double()"), (np.float64, np.float32, "np.dtype('float32')"),
    (np.float64, np.float32, "'float32'"), (np.float64, np.float32, "float()"),
])
def test_to_converts_every_parameter_and_the_module_computes_in_the_new_dtype(
        kind, source, target, how):
    m = make(kind, source)
    before = {k: v.copy() for k, v in m.named_parameters()}
    rng_state = m.get_rng_state()
    converted = {"double()": m.double, "float()": m.float}.get(how)
    result = converted() if converted else m.to(eval(how))
    assert result is m
    assert m.dtype == np.dtype(target)
    assert [k for k, _ in m.named_parameters()] == list(before)
    for name, a in m.named_parameters():
        assert a.dtype == target and a.flags.c_contiguous and a.flags.writeable
        np.testing.assert_array_equal(a, before[name].astype(target))
        assert getattr(m, name) is a
    assert m.get_rng_state() == rng_state
    assert "dtype=" + np.dtype(target).name in repr(m)
    check_against_twin(m, target)


@pytest.mark.parametrize("kind", KINDS)
def test_to_the_same_dtype_keeps_the_arrays_and_the_cache(kind):
    m = make(kind, np.float64)
    arrays = list(m.parameters())
    x = np.ones((3, 2, N_IN))
    output, _ = m(x)
    assert m.to("float64") is m and m.double() is m
    assert all(a is b for a, b in zip(m.parameters(), arrays, strict=True))
    grads = m.backward(np.ones_like(output))         # the forward's cache survived
    assert grads["input"].shape == x.shape


@pytest.mark.parametrize("kind", KINDS)
def test_a_backward_after_a_change_of_dtype_needs_a_new_forward(kind):
    m = make(kind, np.float32)
    output, _ = m(np.ones((3, 2, N_IN), np.float32))
    m.to(np.float64)
    with pytest.raises(RuntimeError, match=r"to\(\) changed the module's dtype"):
        m.backward(np.ones_like(output))
    output, _ = m(np.ones((3, 2, N_IN)))
    assert output.dtype == np.float64
    assert all(g.dtype == np.float64 for g in m.backward(np.ones_like(output)).values())


@pytest.mark.parametrize("dtype", [np.float16, "int32", np.int64, complex, "float128", None,
                                   "cpu", "no such dtype", object])
def test_an_unsupported_dtype_is_a_type_error_and_changes_nothing(dtype):
    m = make("lstm", np.float32)
    arrays = list(m.parameters())
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        m.to(dtype)
    assert m.dtype == np.float32
    assert all(a is b for a, b in zip(m.parameters(), arrays, strict=True))


def test_the_dtype_stays_fixed_against_assignment_after_to():
    m = make("gru", np.float32).double()
    with pytest.raises(AttributeError, match="dtype is fixed"):
        m.dtype = np.float32


@pytest.mark.parametrize("kind", KINDS)
def test_a_converted_module_pickles(kind):
    m = make(kind, np.float32).double()
    back = pickle.loads(pickle.dumps(m))
    assert back.dtype == np.float64
    for (name, a), (name2, b) in zip(m.named_parameters(), back.named_parameters(),
                                     strict=True):
        assert name == name2 and b.dtype == np.float64
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_parameters_iterates_over_the_live_arrays_in_named_parameters_order(kind):
    m = make(kind, proj_size=2) if kind == "lstm" else make(kind)
    params = m.parameters()
    assert iter(params) is params                     # an iterator, as torch's
    listed = list(params)
    named = m.named_parameters()
    assert len(listed) == len(named) == 16 + (4 if kind == "lstm" else 0)   # 2 layers x 2 dirs
    assert all(a is b for a, (_, b) in zip(listed, named, strict=True))
    listed[0][...] = 0.25                             # live: the module reads it
    assert np.all(m.weight_ih_l0 == 0.25)


@pytest.mark.parametrize("kind", KINDS)
def test_load_state_dict_strict_returns_the_empty_pair(kind):
    m, other = make(kind), CLASSES[kind](N_IN, H, num_layers=2, bidirectional=True, seed=9)
    result = m.load_state_dict(other.state_dict())
    assert result == ([], []) and isinstance(result, tuple)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for name, a in m.named_parameters():
        np.testing.assert_array_equal(a, getattr(other, name))


def test_load_state_dict_strict_keeps_its_errors():
    m = make("rnn")
    state = m.state_dict()
    del state["bias_hh_l1"]
    with pytest.raises(KeyError, match=r"missing \['bias_hh_l1'\]"):
        m.load_state_dict(state)
    with pytest.raises(KeyError, match=r"unexpected \['extra'\]"):
        m.load_state_dict({**m.state_dict(), "extra": np.zeros(1)}, strict=True)
    with pytest.raises(TypeError, match="strict should be of type bool"):
        m.load_state_dict(m.state_dict(), strict="no")


@pytest.mark.parametrize("kind", KINDS)
def test_load_state_dict_not_strict_loads_what_it_finds_and_reports_the_rest(kind):
    m = make(kind)
    before = m.state_dict()
    partial = {"weight_hh_l1_reverse": np.full_like(before["weight_hh_l1_reverse"], 0.5),
               "extra": np.zeros(3), "bias_ih_l0": np.full_like(before["bias_ih_l0"], -1.0),
               "weight_ih_l9": np.zeros((2, 2))}
    result = m.load_state_dict(partial, strict=False)
    assert result.unexpected_keys == ["extra", "weight_ih_l9"]
    assert result.missing_keys == [k for k in before if k not in partial]
    assert "missing_keys=" in repr(result)
    after = m.state_dict()
    for name in before:
        expected = partial[name] if name in partial else before[name]
        np.testing.assert_array_equal(after[name], expected)
    assert m.load_state_dict({}, strict=False) == (list(before), [])


@pytest.mark.parametrize("strict", [True, False])
def test_a_shape_that_does_not_fit_raises_even_when_not_strict_and_changes_nothing(strict):
    m = make("gru")
    before = m.state_dict()
    state = {"weight_ih_l0": np.ones_like(before["weight_ih_l0"]),
             "weight_hh_l0": np.zeros((H, H))}
    if strict:
        state = {**before, **state}
    with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\] has shape"):
        m.load_state_dict(state, strict=strict)
    for name, a in m.state_dict().items():
        np.testing.assert_array_equal(a, before[name])
