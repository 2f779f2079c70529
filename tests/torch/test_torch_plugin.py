"""rnnfast.torch: rnnfast's kernels as drop-ins for nn.RNN / nn.LSTM / nn.GRU (torch autograd
is the oracle).

The compiled kernels behind these modules are checked against the NumPy twins
without torch elsewhere (test_layer_kernels.py, test_gated_kernels.py); here
the torch glue is checked against torch's own modules.
"""

import itertools
import os
import socket
import sys

import numpy as np
import pytest

from rnnfast.modules import CELLS

torch = pytest.importorskip("torch")
rt = pytest.importorskip("rnnfast.torch")

from tests.helpers import assert_close  # noqa: E402

# torch's own LSTM says so when a projection keeps it off oneDNN
pytestmark = [pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning"),
              # raised inside torch.distributed, which the DDP test imports
              pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")]

N_IN, H = 4, 5
# every registered cell's module class name (RNN, LSTM, GRU)
KINDS = list(dict.fromkeys(cell.torch_name for cell in CELLS.values()))


def pair(cls, dtype=torch.float64, seed=0, **kwargs):
    """torch's module and rnnfast's, with the same weights."""
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, cls)(N_IN, H, dtype=dtype, **kwargs)
    ours = getattr(rt, cls)(N_IN, H, dtype=dtype, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def inputs(module, batched, dtype, seed=1, N=3, L=6):
    g = torch.Generator().manual_seed(seed)
    D = 2 if module.bidirectional else 1
    P = getattr(module, "proj_size", 0) or H
    if batched:
        x_shape = (N, L, N_IN) if module.batch_first else (L, N, N_IN)
    else:
        x_shape = (L, N_IN)
    widths = [P, H] if isinstance(module, (torch.nn.LSTM, rt.LSTM)) else [P]
    states = [torch.randn((D * module.num_layers, N, w) if batched else
                          (D * module.num_layers, w), generator=g, dtype=dtype) for w in widths]
    return torch.randn(x_shape, generator=g, dtype=dtype), states


def run(module, x, states, seed=2):
    """Outputs and the .grad of input, states and parameters for a random linear loss."""
    module.zero_grad()
    x = x.clone().requires_grad_(True)
    states = [s.clone().requires_grad_(True) for s in states]
    hx = tuple(states) if len(states) == 2 else states[0]
    out, finals = module(x, hx)
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    g = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    for f in finals:
        loss = loss + (f * torch.randn(f.shape, generator=g, dtype=f.dtype)).sum()
    loss.backward()
    grads = {"input": x.grad, **{f"state{i}": s.grad for i, s in enumerate(states)},
             **{n: p.grad for n, p in module.named_parameters()}}
    return [out.detach(), *[f.detach() for f in finals]], grads


def compare(theirs, ours, batched, dtype):
    x, states = inputs(ours, batched, dtype)
    outs_t, grads_t = run(theirs, x, states)
    outs_o, grads_o = run(ours, x, states)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    for a, b in zip(outs_o, outs_t, strict=True):
        assert_close(a.numpy(), b.numpy().astype(np.float64), np_dtype, "outputs")
    assert grads_o.keys() == grads_t.keys()
    for key in grads_t:
        assert_close(grads_o[key].numpy(), grads_t[key].numpy().astype(np.float64), np_dtype,
                     key)


RNN_GRID = list(itertools.product([1, 2, 3], [False, True], ["tanh", "relu"], [True, False],
                                  [False, True], [True, False]))


@pytest.mark.parametrize("layers, bidirectional, nonlinearity, bias, batch_first, batched",
                         RNN_GRID, ids=lambda v: str(v))
def test_rnn_matches_torch_float64(layers, bidirectional, nonlinearity, bias, batch_first,
                                   batched):
    theirs, ours = pair("RNN", num_layers=layers, bidirectional=bidirectional,
                        nonlinearity=nonlinearity, bias=bias, batch_first=batch_first)
    compare(theirs, ours, batched, torch.float64)


GATED_GRID = list(itertools.product(["LSTM", "GRU"], [1, 2, 3], [False, True], [True, False],
                                    [False, True], [True, False]))


@pytest.mark.parametrize("cls, layers, bidirectional, bias, batch_first, batched", GATED_GRID,
                         ids=lambda v: str(v))
def test_gated_modules_match_torch_float64(cls, layers, bidirectional, bias, batch_first,
                                           batched):
    theirs, ours = pair(cls, num_layers=layers, bidirectional=bidirectional, bias=bias,
                        batch_first=batch_first)
    compare(theirs, ours, batched, torch.float64)


@pytest.mark.parametrize("cls, kwargs", [
    ("RNN", dict(num_layers=2, bidirectional=True)), ("RNN", dict(nonlinearity="relu")),
    ("LSTM", dict(num_layers=2, bidirectional=True)), ("LSTM", dict(proj_size=3)),
    ("LSTM", dict(proj_size=2, num_layers=2, bidirectional=True, batch_first=True)),
    ("GRU", dict(num_layers=3, bidirectional=True)), ("GRU", dict(batch_first=True))],
    ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_both_dtypes_and_projection(cls, kwargs, dtype):
    theirs, ours = pair(cls, dtype=dtype, **kwargs)
    compare(theirs, ours, True, dtype)


@pytest.mark.parametrize("cls, kwargs", [("RNN", {}), ("LSTM", dict(proj_size=2)), ("GRU", {})])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_sequences_with_unsorted_lengths(cls, kwargs, bidirectional, batch_first):
    theirs, ours = pair(cls, num_layers=2, bidirectional=bidirectional, batch_first=batch_first,
                        **kwargs)
    x, states = inputs(ours, True, torch.float64)
    lengths = torch.tensor([4, 6, 1])                   # unsorted
    results = []
    for module in (theirs, ours):
        xx = x.clone().requires_grad_(True)
        ss = [s.clone().requires_grad_(True) for s in states]
        packed = torch.nn.utils.rnn.pack_padded_sequence(xx, lengths, batch_first=batch_first,
                                                         enforce_sorted=False)
        out, finals = module(packed, tuple(ss) if len(ss) == 2 else ss[0])
        assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
        finals = list(finals) if isinstance(finals, tuple) else [finals]
        g = torch.Generator().manual_seed(7)
        loss = (out.data * torch.randn(out.data.shape, generator=g, dtype=x.dtype)).sum()
        for f in finals:
            loss = loss + (f * torch.randn(f.shape, generator=g, dtype=x.dtype)).sum()
        loss.backward()
        results.append((out, finals, xx.grad, [s.grad for s in ss],
                        [p.grad for p in module.parameters()]))
    (o_t, f_t, dx_t, ds_t, dp_t), (o_o, f_o, dx_o, ds_o, dp_o) = results
    assert torch.equal(o_t.batch_sizes, o_o.batch_sizes)
    assert torch.equal(o_t.sorted_indices, o_o.sorted_indices)
    pairs = [(o_o.data, o_t.data), (dx_o, dx_t), *zip(f_o, f_t, strict=True),
             *zip(ds_o, ds_t, strict=True), *zip(dp_o, dp_t, strict=True)]
    for a, b in pairs:
        assert_close(a.detach().numpy(), b.detach().numpy(), np.float64)


@pytest.mark.parametrize("cls, kwargs", [
    ("RNN", dict(num_layers=2, bidirectional=True)), ("RNN", dict(nonlinearity="relu")),
    ("LSTM", dict(bidirectional=True, proj_size=2)), ("GRU", dict(num_layers=2))])
def test_gradcheck(cls, kwargs):
    module = getattr(rt, cls)(3, 4, dtype=torch.float64, **kwargs)
    names = [n for n, _ in module.named_parameters()]

    def f(x, *params):
        weights = dict(zip(names, params, strict=True))
        out, finals = torch.func.functional_call(module, weights, (x,))
        return (out, *(finals if isinstance(finals, tuple) else (finals,)))

    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    assert torch.autograd.gradcheck(f, (x, *params))


def test_adam_training_follows_torchs_trajectory():
    theirs, ours = pair("RNN", num_layers=2)
    torch.manual_seed(3)
    head = torch.nn.Linear(H, 3, dtype=torch.float64)
    head2 = torch.nn.Linear(H, 3, dtype=torch.float64)
    head2.load_state_dict(head.state_dict())
    x = torch.randn(10, 4, N_IN, dtype=torch.float64)
    y = torch.randint(0, 3, (10, 4))
    losses = []
    for rnn, lin in ((theirs, head), (ours, head2)):
        opt = torch.optim.Adam([*rnn.parameters(), *lin.parameters()], lr=0.01)
        trace = []
        for _ in range(20):
            opt.zero_grad()
            out, _ = rnn(x)
            loss = torch.nn.functional.cross_entropy(lin(out).reshape(-1, 3), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rnn.parameters(), 1.0)
            opt.step()
            trace.append(loss.item())
        losses.append(trace)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-10)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert_close(a.detach().numpy(), b.detach().numpy(), np.float64)


@pytest.mark.parametrize("cls, kwargs", [("RNN", dict(num_layers=2)),
                                          ("LSTM", dict(bidirectional=True)),
                                          ("GRU", dict(batch_first=True))])
def test_torch_compile_fullgraph_equals_eager(cls, kwargs, tmp_path, monkeypatch):
    # a private cache: inductor's shared one may hold code compiled for another
    # version of these operators (their outputs changed), which it would reuse
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    torch._dynamo.reset()
    torch.manual_seed(0)
    module = getattr(rt, cls)(N_IN, H, **kwargs)
    compiled = torch.compile(module, fullgraph=True)
    x = torch.randn(6, 3, N_IN)
    out_e, _ = module(x)
    out_e.sum().backward()
    grads_e = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    out_c, _ = compiled(x)
    out_c.sum().backward()
    np.testing.assert_array_equal(out_c.detach().numpy(), out_e.detach().numpy())
    for p, g in zip(module.parameters(), grads_e, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), g.numpy(), rtol=1e-6, atol=1e-7)


def test_convert_replaces_nested_modules_in_place():
    torch.manual_seed(0)

    class Inner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(N_IN, H, batch_first=True)

        def forward(self, x):
            return self.gru(x)[0]

    model = torch.nn.Sequential()
    model.add_module("inner", Inner())
    model.add_module("lstm_block", torch.nn.ModuleDict({"lstm": torch.nn.LSTM(H, 3)}))
    x = torch.randn(2, 7, N_IN)

    def run(m):
        return m.lstm_block["lstm"](m.inner(x))[0]

    before = run(model).detach()
    params_before = list(model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert rt.convert(model) is model
    assert type(model.inner.gru) is rt.GRU and type(model.lstm_block["lstm"]) is rt.LSTM
    assert all(a is b for a, b in zip(model.parameters(), params_before, strict=True))
    np.testing.assert_allclose(run(model).detach().numpy(), before.numpy(), rtol=1e-5,
                               atol=1e-6)
    run(model).sum().backward()
    optimizer.step()                                     # made before convert: still works
    assert not torch.equal(run(model).detach(), before)
    single = torch.nn.RNN(3, 4)
    assert type(rt.convert(single)) is rt.RNN


def test_no_grad_saves_nothing_and_unneeded_gradients_are_skipped():
    _, ours = pair("LSTM", num_layers=2)
    x = torch.randn(5, 2, N_IN, dtype=torch.float64)
    with torch.no_grad():
        out, (h_n, c_n) = ours(x)
    assert out.grad_fn is None and h_n.grad_fn is None
    out, _ = ours(x)                                       # x does not require grad
    out.sum().backward()
    assert x.grad is None
    assert all(p.grad is not None for p in ours.parameters())
    ours.weight_hh_l1.requires_grad_(False)
    ours.zero_grad()
    ours(x)[0].sum().backward()
    assert ours.weight_hh_l1.grad is None and ours.weight_ih_l1.grad is not None


def test_clear_errors():
    theirs, ours = pair("RNN")
    # off the CPU torch's own forward runs (tests/torch/test_torch_fallback_and_revert.py),
    # so a meta input with CPU parameters gets torch's own error
    meta = torch.empty(5, 2, N_IN, dtype=torch.float64, device="meta")
    with pytest.warns(UserWarning, match="input is on meta"), \
            pytest.raises(RuntimeError) as ours_error:
        ours(meta)
    with pytest.raises(RuntimeError) as torch_error:
        theirs(meta)
    assert str(ours_error.value) == str(torch_error.value)
    with pytest.raises(TypeError, match="float32 or float64"):
        ours(torch.zeros(5, 2, N_IN, dtype=torch.int64))
    with pytest.raises(ValueError, match="input must have the type torch.float64"):
        ours(torch.zeros(5, 2, N_IN, dtype=torch.float32))
    with pytest.raises(RuntimeError, match="input_size"):
        ours(torch.zeros(5, 2, N_IN + 1, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        ours(torch.zeros(5, 2, N_IN, dtype=torch.float64), torch.zeros(2, 2, H,
                                                                         dtype=torch.float64))
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        rt.RNN(3, 4, nonlinearity="gelu")
    x = torch.randn(5, 2, N_IN, dtype=torch.float64, requires_grad=True)
    out, _ = ours(x)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        g.sum().backward()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, state, x, y, out_file):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import rnnfast.torch as rt_
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = rt_.LSTM(N_IN, H, dtype=torch.float64)
    model.load_state_dict(state)
    ddp = DistributedDataParallel(model)
    half = x.shape[1] // world
    out, _ = ddp(x[:, rank * half:(rank + 1) * half])
    ((out * y[:, rank * half:(rank + 1) * half]).sum() / x.shape[1] * world).backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.named_parameters()}, out_file)
    # Gloo's teardown races with a peer still connected: without the barrier 1 run
    # in ~5 aborted ("terminate called without an active exception"), with torch's
    # own LSTM as well, and with barrier + destroy_process_group a loaded CI machine
    # still aborted once (60 runs here did not).  Every collective is done after the
    # barrier and rank 0's file is closed, so the worker leaves without running
    # torch's C++ destructors: what this test checks is the gradients, not gloo's exit.
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def test_distributed_data_parallel_with_gloo(tmp_path):
    import torch.multiprocessing as mp
    torch.manual_seed(0)
    model = rt.LSTM(N_IN, H, dtype=torch.float64)
    x = torch.randn(6, 4, N_IN, dtype=torch.float64)
    y = torch.randn(6, 4, H, dtype=torch.float64)
    out_file = str(tmp_path / "grads.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), model.state_dict(), x, y, out_file), nprocs=2)
    grads = torch.load(out_file)
    out, _ = model(x)
    (out * y).sum().div(x.shape[1]).backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name].numpy(), p.grad.numpy(), rtol=1e-12,
                                   atol=1e-14, err_msg=name)


def test_torch_blas_is_used_inside_the_operators_only():
    import threading
    if rt.TORCH_BLAS is None:
        pytest.skip("torch's BLAS is not bound here")
    from rnnfast import _kernels
    _, ours = pair("GRU")
    ours(torch.randn(5, 2, N_IN, dtype=torch.float64))[0].sum().backward()
    assert not _kernels._torch_blas_active()             # reset after every operator
    seen = []
    _kernels._use_torch_blas(True)
    try:
        thread = threading.Thread(target=lambda: seen.append(_kernels._torch_blas_active()))
        thread.start()
        thread.join()
    finally:
        _kernels._use_torch_blas(False)
    assert seen == [False]                                 # the switch is per thread


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (1, 5), (129, 2)],
                         ids=lambda s: f"L{s[0]}-N{s[1]}")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_odd_sizes(cls, shape, dtype):
    L, N = shape
    theirs, ours = pair(cls, dtype=dtype, num_layers=2, bidirectional=True)
    x, states = inputs(ours, True, dtype, N=N, L=L)
    outs_t, grads_t = run(theirs, x, states)
    outs_o, grads_o = run(ours, x, states)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    for a, b in zip(outs_o, outs_t, strict=True):
        assert_close(a.numpy(), b.numpy().astype(np.float64), np_dtype, "outputs")
    for key in grads_t:
        assert_close(grads_o[key].numpy(), grads_t[key].numpy().astype(np.float64), np_dtype,
                     key)
