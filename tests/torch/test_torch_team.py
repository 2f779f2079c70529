"""rnnfast.torch's operators on the thread team.

Inside the operators the team's members are torch's own OpenMP threads (one thread
pool: the kernels start no threads of their own there), and each member runs its
products in NumPy's OpenBLAS on its own thread, as everywhere else in the team.  The
NumPy twins (rnnfast.reference's module functions) are the oracle; ``_team_runs()``
shows that the team really ran.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rnnfast import _kernels
from rnnfast import reference as ref
from tests.helpers import TeamRuns, assert_close, assert_module_results_match, run_on_threads

torch = pytest.importorskip("torch")
rt = pytest.importorskip("rnnfast.torch")

# the team inside the operators needs torch's BLAS and OpenMP runtime bound, NumPy's
# OpenBLAS for the members' products, and two CPUs
ON_TORCHS_THREADS = (rt.TORCH_BLAS is not None and rt.TORCH_OPENMP is not None
                     and _kernels.blas_in_use() == "numpy")
needs_torchs_team = pytest.mark.skipif(
    not ON_TORCHS_THREADS or len(os.sched_getaffinity(0)) < 2,
    reason="needs torch's BLAS and OpenMP runtime bound, NumPy's OpenBLAS and two CPUs")

N_IN = 4
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


@pytest.fixture
def team_forced():
    _kernels._set_force_team(True)
    yield
    _kernels._set_force_team(None)


def run_both(cls, hidden, N, L, dtype, num_layers=1, bidirectional=False, seed=0):
    """The rnnfast.torch module's output, final states and gradients, and the twin's."""
    torch.manual_seed(seed)
    mod = getattr(rt, cls)(N_IN, hidden, num_layers=num_layers, bidirectional=bidirectional,
                           dtype=TORCH_DTYPES[dtype])
    weights = {k: v.detach().numpy().astype(np.float64) for k, v in mod.state_dict().items()}
    directions = 2 if bidirectional else 1
    states = num_layers * directions
    rng = np.random.default_rng(seed + hidden)
    x, go = rng.standard_normal((L, N, N_IN)), rng.standard_normal((L, N, directions * hidden))
    h0, gh = rng.standard_normal((states, N, hidden)), rng.standard_normal((states, N, hidden))
    c0, gc = rng.standard_normal((states, N, hidden)), rng.standard_normal((states, N, hidden))

    def tensor(a):
        return torch.tensor(a.astype(dtype), requires_grad=True)
    xt, h0t, c0t = tensor(x), tensor(h0), tensor(c0)
    if cls == "LSTM":
        out, (hn, cn) = mod(xt, (h0t, c0t))
        loss = (out * torch.from_numpy(go.astype(dtype))).sum() + (
            cn * torch.from_numpy(gc.astype(dtype))).sum()
        out_e, hn_e, cn_e, cache = ref.lstm_module_forward(x, h0, c0, weights, num_layers,
                                                           bidirectional)
        grads_e = ref.lstm_module_backward(go, gh, gc, cache)
    else:
        out, hn = mod(xt, h0t)
        loss = (out * torch.from_numpy(go.astype(dtype))).sum()
        forward = ref.rnn_module_forward if cls == "RNN" else ref.gru_module_forward
        out_e, hn_e, cache = forward(x, h0, weights, num_layers, bidirectional)
        grads_e = (ref.rnn_module_backward if cls == "RNN" else
                   ref.gru_module_backward)(go, gh, cache)
    (loss + (hn * torch.from_numpy(gh.astype(dtype))).sum()).backward()
    grads = {"input": xt.grad.numpy(), "hx": h0t.grad.numpy()}
    if cls == "LSTM":
        grads["cx"] = c0t.grad.numpy()
        assert_close(cn.detach().numpy(), cn_e, dtype, "c_n")
    grads.update({k: p.grad.numpy() for k, p in mod.named_parameters()})
    return (out.detach().numpy(), hn.detach().numpy(), grads), (out_e, hn_e, grads_e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_modules_on_torchs_threads_match_the_twin(cls, dtype, team_forced):
    """Two bidirectional layers, the team forced on every loop: 8 loops on the team
    (2 layers x 2 directions, forward and backward), results as the twin's."""
    with TeamRuns(8):
        actual, expected = run_both(cls, 33, 3, 5, dtype, num_layers=2, bidirectional=True)
    assert_module_results_match(actual, expected, dtype)


@needs_torchs_team
@pytest.mark.parametrize("cls, N, hidden", [("RNN", 8, 256), ("LSTM", 4, 128),
                                            ("GRU", 4, 128)])
def test_the_plan_runs_the_team_inside_the_operators(cls, N, hidden):
    """By the plan, with torch's two threads: the team runs (forward and backward); with
    torch on one thread, it does not."""
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with TeamRuns(2):
            actual, expected = run_both(cls, hidden, N, 3, np.float32)
        assert_module_results_match(actual, expected, np.float32)
        torch.set_num_threads(1)
        with TeamRuns(0):
            actual, expected = run_both(cls, hidden, N, 3, np.float32)
        assert_module_results_match(actual, expected, np.float32)
    finally:
        torch.set_num_threads(previous)


def test_the_team_size_inside_the_operators_is_torchs_thread_count():
    try:
        _kernels._use_torch_blas(True, 1)
        assert _kernels._team_size() == 1
        _kernels._use_torch_blas(True, 64)
        expected = len(os.sched_getaffinity(0)) if ON_TORCHS_THREADS else 1
        assert _kernels._team_size() == min(expected, 64)
    finally:
        _kernels._use_torch_blas(False)


@needs_torchs_team
def test_the_operators_start_no_threads_of_their_own():
    """A fresh process: the team runs inside the operators on torch's threads, starts
    none of its own, and leaves NumPy's BLAS threads and the thread's BLAS as they were;
    the kernels' own team still starts its workers outside the operators."""
    code = textwrap.dedent("""
        import numpy as np, torch
        import rnnfast, rnnfast.torch as rt
        from rnnfast import _kernels
        torch.set_num_threads(2)
        before = _kernels._team_size()
        m = rt.LSTM(16, 128)
        x = torch.randn(5, 4, 16, requires_grad=True)
        for _ in range(3):
            y, _ = m(x)
            y.sum().backward()
        assert _kernels._team_runs() == 6, _kernels._team_runs()
        assert _kernels._team_workers() == 0, _kernels._team_workers()
        assert not _kernels._torch_blas_active()
        assert _kernels._team_size() == before, (_kernels._team_size(), before)
        rnnfast.LSTM(16, 128).forward(np.ones((5, 4, 16)))
        assert _kernels._team_runs() == 7 and _kernels._team_workers() >= 1
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@needs_torchs_team
def test_python_threads_calling_operators_at_once_get_their_own_results():
    """Four Python threads: each may run the team on an OpenMP pool of its own (or,
    while another holds the team, the ordinary loop); every result matches the twin."""
    results = {}

    def work(seed):
        results[seed] = run_both("GRU", 128, 4, 6, np.float32, seed=seed)
    errors = run_on_threads(work, 4)
    assert not errors, errors
    for actual, expected in results.values():
        assert_module_results_match(actual, expected, np.float32)
