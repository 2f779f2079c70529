"""Property tests of rnnfast.torch's RNN, LSTM and GRU against torch's own nn modules.

Each example draws a configuration (sizes, layers, directions, bias,
batch_first, nonlinearity for the RNN, ``proj_size`` for the LSTM), a dtype,
batched or unbatched input (contiguous or not), optional initial states and
optional sequence lengths (a PackedSequence).  The output, the final states
and the gradients of a random linear loss (input, states, every parameter)
must equal those of torch.nn.RNN / LSTM / GRU in float64 with the same
weights (float32 results are compared with the float64 module, at the
measured float32 tolerance).
"""

import types

import numpy as np
import pytest

pytest.importorskip("hypothesis")
torch = pytest.importorskip("torch")
rt = pytest.importorskip("rnnfast.torch")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.helpers import assert_close, load_numpy_weights  # noqa: E402
from tests.helpers.strategies import FLOAT_DTYPES, draw_values, integers, sampled, seeds, size  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")


@st.composite
def torch_module_problems(draw, mode):
    """A ``mode`` module configuration, a dtype and the inputs of one forward + backward."""
    hidden_size = draw(size(5))
    config = dict(input_size=draw(size(4)), hidden_size=hidden_size,
                  num_layers=draw(integers(1, 3)), bias=draw(st.booleans()),
                  batch_first=draw(st.booleans()), bidirectional=draw(st.booleans()))
    if mode == "RNN":
        config["nonlinearity"] = draw(sampled(("tanh", "relu")))
    if mode == "LSTM" and hidden_size > 1 and draw(st.booleans()):
        config["proj_size"] = draw(integers(1, hidden_size - 1))
    batched = draw(sampled((True, True, True, False)))
    n_batch, n_steps = (draw(size(4)) if batched else 1), draw(size(6))
    H, P = hidden_size, config.get("proj_size") or hidden_size
    D = 2 if config["bidirectional"] else 1
    lead = ((n_batch, n_steps) if config["batch_first"] else (n_steps, n_batch)) if batched \
        else (n_steps,)
    state = (D * config["num_layers"], n_batch) if batched else (D * config["num_layers"],)
    widths = {"LSTM": (P, H)}.get(mode, (P,))
    shapes = {"input": lead + (config["input_size"],), "grad_output": lead + (D * P,)}
    for i, w in enumerate(widths):
        shapes[f"state{i}"] = shapes[f"grad_final{i}"] = state + (w,)
    values = {k: draw_values(draw, s) for k, s in shapes.items()}
    lengths = None
    if batched and draw(st.booleans()):
        lengths = draw(st.lists(integers(1, n_steps), min_size=n_batch, max_size=n_batch))
    return types.SimpleNamespace(
        mode=mode, config=config, dtype=draw(sampled(FLOAT_DTYPES)), seed=draw(seeds),
        values=values, n_states=len(widths), with_states=draw(integers(0, 2)) > 0,
        strided=draw(st.booleans()), lengths=lengths)


def as_tensor(a, dtype, strided=False):
    """``a`` as a tensor of ``dtype``; with ``strided``, a non-contiguous view of its values."""
    t = torch.tensor(np.asarray(a), dtype=dtype)
    if strided and t.dim():
        big = torch.zeros(t.shape[:-1] + (2 * t.shape[-1],), dtype=dtype)
        big[..., ::2] = t
        t = big[..., ::2]
    return t


def run(module, problem, dtype):
    """Output, final states and the .grad of input, states and parameters of
    sum(output * g_out) + sum(finals * g_finals)."""
    v, batch_first = problem.values, problem.config["batch_first"]
    x = as_tensor(v["input"], dtype, problem.strided).requires_grad_(True)
    states = [as_tensor(v[f"state{i}"], dtype).requires_grad_(True)
              for i in range(problem.n_states)]
    hx = (tuple(states) if problem.mode == "LSTM" else states[0]) if problem.with_states \
        else None
    module.zero_grad()
    if problem.lengths is None:
        out, finals = module(x, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.as_tensor(problem.lengths), batch_first=batch_first, enforce_sorted=False)
        out, finals = module(packed, hx)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
    finals = list(finals) if problem.mode == "LSTM" else [finals]
    loss = (out * as_tensor(v["grad_output"], dtype)).sum()
    for i, f in enumerate(finals):
        loss = loss + (f * as_tensor(v[f"grad_final{i}"], dtype)).sum()
    loss.backward()
    grads = {"input": x.grad}
    if problem.with_states:
        grads.update({f"state{i}": s.grad for i, s in enumerate(states)})
    grads.update({n: p.grad for n, p in module.named_parameters()})
    return [out.detach(), *[f.detach() for f in finals]], grads


def check_torch_module(problem):
    dtype = torch.float64 if problem.dtype == np.float64 else torch.float32
    torch.manual_seed(problem.seed % 2**31)
    ours = getattr(rt, problem.mode)(**problem.config, dtype=dtype)
    theirs = getattr(torch.nn, problem.mode)(**problem.config, dtype=torch.float64)
    load_numpy_weights(theirs, {k: v.double().numpy() for k, v in ours.state_dict().items()})
    outs_o, grads_o = run(ours, problem, dtype)
    outs_t, grads_t = run(theirs, problem, torch.float64)
    for name, a, b in zip(["output", "h_n", "c_n"][:len(outs_o)], outs_o, outs_t,
                             strict=True):
        assert_close(a.numpy(), b.numpy(), problem.dtype, name)
    assert grads_o.keys() == grads_t.keys()
    for key in grads_t:
        assert_close(grads_o[key].numpy(), grads_t[key].numpy(), problem.dtype, key)


@given(torch_module_problems("RNN"))
def test_torch_rnn_module(problem):
    """rnnfast.torch.RNN = torch.nn.RNN: outputs, final state and every gradient."""
    check_torch_module(problem)


@given(torch_module_problems("LSTM"))
def test_torch_lstm_module(problem):
    """rnnfast.torch.LSTM (with proj_size) = torch.nn.LSTM: outputs, final states and every
    gradient."""
    check_torch_module(problem)


@given(torch_module_problems("GRU"))
def test_torch_gru_module(problem):
    """rnnfast.torch.GRU = torch.nn.GRU: outputs, final state and every gradient."""
    check_torch_module(problem)
