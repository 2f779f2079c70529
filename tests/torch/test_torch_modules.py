"""rnnfast.torch's modules at their edges, each against what torch's own module does.

Mixed parameter dtypes and shapes, empty batches and sequences, in-place edits
of the outputs, constructor errors, and the import without torch.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from rnnfast.modules import CELLS

torch = pytest.importorskip("torch")
rt = pytest.importorskip("rnnfast.torch")

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")

N_IN, H = 3, 5
# every registered cell's module class name (RNN, LSTM, GRU)
KINDS = list(dict.fromkeys(cell.torch_name for cell in CELLS.values()))
CONFIGS = [("RNN", {}), ("RNN", dict(nonlinearity="relu", num_layers=2)), ("LSTM", {}),
           ("LSTM", dict(proj_size=2)), ("LSTM", dict(num_layers=2, bidirectional=True)),
           ("GRU", {}), ("GRU", dict(num_layers=2, batch_first=True))]


def pair(cls, dtype=torch.float64, **kwargs):
    """torch's module and rnnfast's, with the same weights."""
    torch.manual_seed(0)
    theirs = getattr(torch.nn, cls)(N_IN, H, dtype=dtype, **kwargs)
    ours = getattr(rt, cls)(N_IN, H, dtype=dtype, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def finals_of(result):
    finals = result[1]
    return list(finals) if isinstance(finals, tuple) else [finals]


# -- every parameter is checked -----------------------------------------------------

@pytest.mark.parametrize("cls", KINDS)
def test_a_layer_loaded_in_another_dtype_is_refused(cls):
    _, ours = pair(cls, dtype=torch.float32, num_layers=2)
    state = ours.state_dict()
    state["weight_hh_l1"] = state["weight_hh_l1"].double()
    ours.load_state_dict(state, assign=True)
    with pytest.raises(RuntimeError, match="weight_hh_l1 must be torch.float32"):
        ours(torch.zeros(4, 2, N_IN))


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize("name", ["bias_hh_l0", "weight_ih_l0_reverse"])
def test_a_float64_parameter_in_a_float32_module_is_refused(cls, name):
    _, ours = pair(cls, dtype=torch.float32, bidirectional=True)
    setattr(ours, name, torch.nn.Parameter(getattr(ours, name).detach().double()))
    with pytest.raises(RuntimeError, match=f"{name} must be torch.float32"):
        ours(torch.zeros(4, 2, N_IN))


@pytest.mark.parametrize("cls", KINDS)
def test_a_parameter_of_the_wrong_shape_is_refused(cls):
    _, ours = pair(cls)
    ours.weight_hh_l0 = torch.nn.Parameter(torch.zeros(1, 1, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"weight_hh_l0 must have shape \(\d+, 5\), got "
                                           r"\(1, 1\)"):
        ours(torch.zeros(4, 2, N_IN, dtype=torch.float64))


def test_a_wrong_projection_weight_is_refused():
    _, ours = pair("LSTM", proj_size=2)
    ours.weight_hr_l0 = torch.nn.Parameter(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"weight_hr_l0 must have shape \(2, 5\)"):
        ours(torch.zeros(4, 2, N_IN, dtype=torch.float64))


# -- empty batches and sequences ----------------------------------------------------

@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=str)
@pytest.mark.parametrize("with_hx", [False, True])
def test_an_empty_batch_gives_torchs_empty_outputs_and_backward(cls, kwargs, with_hx):
    theirs, ours = pair(cls, **kwargs)
    x = torch.zeros((0, 4, N_IN) if ours.batch_first else (4, 0, N_IN), dtype=torch.float64)
    results = []
    for module in (theirs, ours):
        module.zero_grad()
        xx = x.clone().requires_grad_(True)
        hx = None
        if with_hx:
            hx = tuple(torch.zeros_like(f) for f in finals_of(theirs(x)))
            hx = hx if len(hx) == 2 else hx[0]
        result = module(xx, hx)
        loss = result[0].sum() + sum(f.sum() for f in finals_of(result))
        loss.backward()
        results.append((result[0], finals_of(result), xx.grad,
                        [p.grad for p in module.parameters()]))
    (out_t, fin_t, dx_t, dp_t), (out_o, fin_o, dx_o, dp_o) = results
    assert out_o.shape == out_t.shape and dx_o.shape == dx_t.shape
    assert [f.shape for f in fin_o] == [f.shape for f in fin_t]
    for a, b in zip(dp_o, dp_t, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize("shape", [(0, 2, N_IN), (0, N_IN)], ids=["batched", "unbatched"])
def test_an_empty_sequence_raises_torchs_error(cls, shape):
    theirs, ours = pair(cls)
    x = torch.zeros(shape, dtype=torch.float64)
    with pytest.raises(Exception) as expected:
        theirs(x)
    with pytest.raises(type(expected.value)) as got:
        ours(x)
    assert str(got.value) == str(expected.value)


# -- in-place edits of the outputs ---------------------------------------------------

def run_with_edits(module, x, packed, in_place):
    """Gradients of a loss over outputs scaled by 2 and h_n shifted by 1, in place or not."""
    module.zero_grad()
    xx = x.clone().requires_grad_(True)
    inp = (torch.nn.utils.rnn.pack_padded_sequence(xx, torch.tensor([4, 2, 3]),
                                                   batch_first=module.batch_first,
                                                   enforce_sorted=False) if packed else xx)
    out, finals = module(inp)
    out = out.data if packed else out
    h_n = finals[0] if isinstance(finals, tuple) else finals
    if in_place:
        out.mul_(2)
        out += xx.sum()
        h_n.add_(1)
    else:
        out = out * 2 + xx.sum()
        h_n = h_n + 1
    g = torch.Generator().manual_seed(5)
    loss = ((out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
            + (h_n * torch.randn(h_n.shape, generator=g, dtype=h_n.dtype)).sum())
    loss.backward()
    return [out.detach(), h_n.detach(), xx.grad, *[p.grad for p in module.parameters()]]


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=str)
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_outputs_and_final_states_can_be_edited_in_place(cls, kwargs, packed):
    _, ours = pair(cls, **kwargs)
    x = torch.randn((3, 4, N_IN) if ours.batch_first else (4, 3, N_IN), dtype=torch.float64)
    expected = run_with_edits(ours, x, packed, in_place=False)
    got = run_with_edits(ours, x, packed, in_place=True)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# -- constructors ---------------------------------------------------------------------

@pytest.mark.parametrize("cls", ["RNN", "GRU"])
@pytest.mark.parametrize("proj_size", [0, 3])
def test_proj_size_outside_the_lstm_raises_torchs_value_error(cls, proj_size):
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM, not "
                                         "RNN or GRU"):
        getattr(rt, cls)(3, 5, proj_size=proj_size)


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize("args, kwargs", [
    (("3", 5), {}), ((3, "5"), {}), ((3, 5.0), {}), ((3.0, 5), {}), ((3, 0), {}),
    ((3, -1), {}), ((3, 5), dict(num_layers=1.5)), ((3, 5), dict(num_layers="2")),
    ((3, 5), dict(num_layers=0)), ((3, 5), dict(dropout="0.1")), ((3, 5), dict(dropout=2)),
    ((3, 5), dict(dropout=True)), ((3, 5), dict(nonlinearity="gelu")),
    ((3, 5), dict(nonlinearity=1)), ((3, 5), dict(proj_size=-1)), ((3, 5), dict(proj_size=5)),
    ((3, 5), dict(bogus=1))], ids=str)
def test_constructor_errors_are_torchs(cls, args, kwargs):
    with pytest.raises(Exception) as expected:
        getattr(torch.nn, cls)(*args, **kwargs)
    with pytest.raises(type(expected.value)):
        getattr(rt, cls)(*args, **kwargs)


# -- without torch ----------------------------------------------------------------------

def test_importing_without_torch_says_how_to_install_it():
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n"
            "    import rnnfast.torch\n"
            "except ImportError as e:\n"
            "    print(type(e).__name__, isinstance(e, ModuleNotFoundError), e)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120, check=True)
    assert result.stdout.startswith("ModuleNotFoundError True")
    assert 'pip install "rnnfast[torch]"' in result.stdout
    np.testing.assert_equal(result.stderr, "")


@pytest.mark.parametrize("cls", KINDS)
def test_initial_states_of_another_dtype_raise_torchs_runtime_error(cls):
    theirs, ours = pair(cls)
    x = torch.zeros(4, 2, N_IN, dtype=torch.float64)
    states = [torch.zeros_like(f, dtype=torch.float32) for f in finals_of(theirs(x))]
    hx = tuple(states) if len(states) == 2 else states[0]
    with pytest.raises(Exception) as expected:
        theirs(x, hx)
    with pytest.raises(type(expected.value), match="must have the type torch.float64"):
        ours(x, hx)
