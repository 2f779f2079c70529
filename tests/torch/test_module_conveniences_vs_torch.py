"""rnnfast.RNN/LSTM/GRU's to(dtype), float(), double(), parameters() and
load_state_dict(strict=...) against torch.nn's: the same results from the same weights."""

import numpy as np
import pytest

import rnnfast

torch = pytest.importorskip("torch")

N_IN, H = 4, 5
KINDS = ["RNN", "LSTM", "GRU"]

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")


def pair(kind, dtype=torch.float32, **kwargs):
    """torch's module and rnnfast's NumPy module with the same weights."""
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(N_IN, H, dtype=dtype, **kwargs)
    ours = getattr(rnnfast, kind)(N_IN, H, dtype=str(dtype).removeprefix("torch."), **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


CONFIGS = [{}, {"num_layers": 2, "bidirectional": True}, {"bias": False}]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kwargs", CONFIGS)
@pytest.mark.parametrize("method, start", [("double", torch.float32), ("float", torch.float64),
                                           ("to64", torch.float32), ("to32", torch.float64)])
def test_dtype_conversions_give_torchs_values(kind, kwargs, method, start):
    theirs, ours = pair(kind, start, **kwargs)
    if method.startswith("to"):
        target = torch.float64 if method == "to64" else torch.float32
        assert theirs.to(target) is theirs
        assert ours.to(np.dtype(str(target).removeprefix("torch."))) is ours
    else:
        assert getattr(theirs, method)() is theirs
        assert getattr(ours, method)() is ours
    expected = {k: v.numpy() for k, v in theirs.state_dict().items()}
    got = ours.state_dict()
    assert list(got) == list(expected)
    for name, a in got.items():
        assert a.dtype == expected[name].dtype
        np.testing.assert_array_equal(a, expected[name])
    x = torch.randn(6, 3, N_IN, dtype=theirs.weight_ih_l0.dtype, generator=torch.Generator()
                    .manual_seed(1))
    output, _ = ours(x.numpy())
    rtol = 1e-12 if output.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(output, theirs(x)[0].detach().numpy(), rtol=rtol, atol=rtol)


def test_torch_dtypes_are_accepted_by_to():
    m = rnnfast.GRU(N_IN, H, seed=0)
    assert m.to(torch.float64).dtype == np.float64
    assert m.to(torch.float32).dtype == np.float32
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        m.to(torch.float16)


@pytest.mark.parametrize("kind, kwargs", [(k, c) for k in KINDS for c in CONFIGS]
                         + [("LSTM", {"proj_size": 2, "num_layers": 2})])
def test_parameters_come_in_torchs_order(kind, kwargs):
    theirs, ours = pair(kind, **kwargs)
    expected = list(theirs.parameters())
    got = list(ours.parameters())
    assert len(got) == len(expected)
    for a, t in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, t.detach().numpy())


def partial_states(theirs):
    state = theirs.state_dict()
    names = list(state)
    return [
        {},
        {names[0]: state[names[0]]},
        {names[-1]: state[names[-1]], "extra": torch.zeros(2), "weight_ih_l7": torch.zeros(1)},
        {**state, "unknown": torch.ones(1)},
        dict(state),
    ]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kwargs", CONFIGS)
def test_load_state_dict_not_strict_reports_torchs_keys(kind, kwargs):
    theirs, ours = pair(kind, **kwargs)
    for state in partial_states(theirs):
        expected = theirs.load_state_dict(state, strict=False)
        got = ours.load_state_dict(state, strict=False)
        assert type(got).__name__.endswith("IncompatibleKeys")
        assert got._fields == expected._fields
        assert got.missing_keys == expected.missing_keys
        assert got.unexpected_keys == expected.unexpected_keys
        if not expected.missing_keys and not expected.unexpected_keys:
            assert repr(got) == repr(expected)


@pytest.mark.parametrize("kind", KINDS)
def test_load_state_dict_strict_returns_torchs_empty_pair(kind):
    theirs, ours = pair(kind)
    fresh = getattr(torch.nn, kind)(N_IN, H)
    expected = theirs.load_state_dict(fresh.state_dict())
    got = ours.load_state_dict(fresh.state_dict())
    assert tuple(got) == tuple(expected) == ([], [])
    assert repr(got) == repr(expected)
    for name, a in ours.named_parameters():
        np.testing.assert_array_equal(a, getattr(fresh, name).detach().numpy())


@pytest.mark.parametrize("kind", KINDS)
def test_a_shape_that_does_not_fit_raises_without_strict_as_in_torch(kind):
    theirs, ours = pair(kind)
    bad = {"weight_hh_l0": torch.zeros(2, 2)}
    with pytest.raises(RuntimeError, match="size mismatch for weight_hh_l0"):
        theirs.load_state_dict(bad, strict=False)
    with pytest.raises(ValueError, match="weight_hh_l0"):
        ours.load_state_dict(bad, strict=False)
