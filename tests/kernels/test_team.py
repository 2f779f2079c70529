"""The Elman time loops on the thread team (PRODUCT_TEAM) against the NumPy twins.

``_kernels._set_force_team(True)`` runs every Elman forward and BPTT loop on the
team (at least two members, whatever the machine), ``False`` never, ``None`` by
the plan (``plan_product`` in ``_blas.pxd``).  Each member runs a column panel of
every step's product in a LIBXSMM kernel or one-thread BLAS: the ``panels``
fixture forces each.  ``_team_runs()`` counts the loops the team ran, so that a
comparison which silently ran today's path instead fails.
"""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import rnnfast
from rnnfast import _kernels
from rnnfast import reference as ref
from tests.helpers import (
    TeamRuns,
    assert_close,
    assert_elman_layer_kernels_match_the_twin,
    assert_gated_layer_kernels_match_the_twin,
    assert_module_results_match,
    check_forward_backward,
    in_layout,
    make_dh,
    make_problem,
    numpy_run,
    run_on_threads,
)

PLANS = ("team", "packed", "gemv", "gemm")


@pytest.fixture(params=["libxsmm", "blas"])
def panels(request):
    """The team forced on, its members' panels in LIBXSMM kernels or in one-thread BLAS
    (the hand-written loops of one sequence forced off, so that m = 1 reaches the team)."""
    if request.param == "libxsmm" and not _kernels.LIBXSMM:
        pytest.skip("rnnfast is built without LIBXSMM")
    _kernels._set_force_team(True)
    _kernels._set_force_packed(request.param == "libxsmm")
    _kernels._set_force_products(False)
    yield request.param
    _kernels._set_force_team(None)
    _kernels._set_force_packed(None)
    _kernels._set_force_products(None)


@pytest.mark.parametrize("sizes", [(1, 1, 1, 1), (1, 1, 3, 7), (5, 1, 4, 33), (4, 3, 5, 257),
                                   (6, 2, 3, 16), (3, 17, 2, 100), (7, 5, 3, 33)],
                         ids=lambda s: "T{}-m{}-nin{}-H{}".format(*s))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("activation", [_kernels.Activation.TANH, _kernels.Activation.RELU],
                         ids=["tanh", "relu"])
def test_layer_kernels_on_the_team_match_the_twin(sizes, reverse, with_lengths, activation,
                                                  dtype, panels):
    assert_elman_layer_kernels_match_the_twin(*sizes, reverse, with_lengths, activation, dtype,
                                              each_call=lambda: TeamRuns(1))


# (n_x, n_h, n_y, m, T): odd hidden widths, one sequence, one step
SEED_SHAPES = [(1, 1, 1, 1, 1), (5, 7, 5, 1, 5), (7, 33, 5, 3, 6), (13, 257, 7, 2, 4),
               (4, 33, 3, 1, 1), (3, 7, 2, 5, 1), (9, 64, 11, 32, 9)]


@pytest.mark.parametrize("shape", SEED_SHAPES, ids=lambda s: "nx{}-nh{}-ny{}-m{}-T{}".format(*s))
def test_seed_api_on_the_team_matches_the_twin(shape, dtype, panels):
    x, h0, p = make_problem(shape, dtype)
    dh = make_dh(shape, dtype)
    with TeamRuns(2):
        check_forward_backward(x, h0, p, dh, dtype)


@pytest.mark.parametrize("layout", ["fortran", "strided", "negative", "readonly"])
def test_seed_api_on_the_team_reads_any_layout(layout, dtype, panels):
    shape = (7, 33, 5, 3, 6)
    x, h0, p = make_problem(shape, dtype, seed=3)
    dh = make_dh(shape, dtype)
    x_l, h0_l = in_layout(x, layout), in_layout(h0, layout)
    p_l = {k: in_layout(v, layout) for k, v in p.items()}
    copies = [a.copy() for a in (x_l, h0_l, *p_l.values())]
    with TeamRuns(2):
        check_forward_backward(x_l, h0_l, p_l, in_layout(dh, layout), dtype)
    for before, after in zip(copies, (x_l, h0_l, *p_l.values()), strict=True):
        assert np.array_equal(before, after)        # the caller's arrays are untouched


def test_model_loss_on_the_team_matches_the_twin(dtype, panels):
    """The char model's fused loss (forward, cross-entropy and BPTT in one kernel call)."""
    model = rnnfast.RNNModel(5, 33, 6, dtype=dtype, seed=4)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 8, 5)).astype(dtype)
    Y = rng.integers(0, 6, size=(3, 8))
    h0 = (0.5 * rng.standard_normal((3, 33))).astype(dtype)
    # and its 7 products on the team: X Whx^T, H Wyh^T, dWyh, dH, dWhx, dX, dWhh
    with TeamRuns(2, products=7):
        loss, grads = model.loss_and_grads(X, Y, h0)
    p64 = {k: np.asarray(v, np.float64) for k, v in model.parameters.items()}
    loss_e, grads_e = ref.rnn_loss(X.transpose(2, 0, 1).astype(np.float64),
                                   h0.T.astype(np.float64), Y, p64)
    assert abs(loss - loss_e) < (1e-12 if dtype == np.float64 else 1e-5)
    for key in ("dWhx", "dWhh", "dWyh", "dbh", "dby"):
        assert_close(grads[key], grads_e[key], dtype, key)
    assert_close(grads["dx"], grads_e["dx"].transpose(1, 2, 0), dtype, "dx")
    assert_close(grads["dh0"], grads_e["dh0"].T, dtype, "dh0")


def module_pair(dtype, nonlinearity, hidden, seed=0, **kwargs):
    r64 = rnnfast.RNN(4, hidden, dtype=np.float64, seed=seed, nonlinearity=nonlinearity,
                      **kwargs)
    r = rnnfast.RNN(4, hidden, dtype=dtype, nonlinearity=nonlinearity, **kwargs)
    weights = r64.state_dict()
    r.load_state_dict(weights)
    return weights, r


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("hidden, N, L", [(7, 3, 6), (33, 1, 5), (257, 2, 3), (33, 5, 1)],
                         ids=lambda v: str(v))
def test_rnn_module_on_the_team_matches_the_twin(nonlinearity, hidden, N, L, dtype, panels):
    weights, r = module_pair(dtype, nonlinearity, hidden, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(hidden + N)
    x, h0 = rng.standard_normal((L, N, 4)), rng.standard_normal((4, N, hidden))
    go, gh = rng.standard_normal((L, N, 2 * hidden)), rng.standard_normal((4, N, hidden))
    lengths = np.array([L - (i % L) for i in range(N)]) if N > 1 else None
    # 2 layers x 2 directions, forward and backward; at H 257 each direction's 4 hoisted
    # products on the team too: X W_ih^T; dW_ih, dX, dW_hh (smaller ones may be tiny)
    with TeamRuns(8, products=16 if hidden == 257 else None):
        out, hn = r.forward(x.astype(dtype), h0.astype(dtype), lengths=lengths)
        grads = r.backward(go.astype(dtype), gh.astype(dtype))
    out_e, hn_e, g_e = numpy_run(r, weights, x, h0, go, gh, lengths)
    assert_module_results_match((out, hn, grads), (out_e, hn_e, g_e), dtype)


def test_plan_keeps_todays_path_off_the_team_shapes():
    """The plan picks the team only within its measured range, and only with a team of two
    or more; forced off it never does, forced on always (where the caller allows it)."""
    team = _kernels._team_size() >= 2 and _kernels.blas_in_use() == "numpy"
    # 8 rows and more, 2^19 to 2^20 multiply-adds (see TEAM_* in _blas.pxd), in either
    # dtype, where no one-thread LIBXSMM kernel is planned
    for sizes in [(8, 256, 256), (12, 256, 256), (9, 300, 300)]:
        for float32 in (False, True):
            assert (_kernels._test_plan_product(*sizes, PLANS, float32) == "team") == team
    for sizes in [(16, 256, 256), (32, 128, 128)]:
        assert ((_kernels._test_plan_product(*sizes, PLANS, True) == "team")
                == (team and not _kernels.LIBXSMM))
        try:
            _kernels._set_force_packed(False)       # no LIBXSMM: threaded BLAS otherwise
            assert (_kernels._test_plan_product(*sizes, PLANS, True) == "team") == team
        finally:
            _kernels._set_force_packed(None)
    # today's path where the team measured no faster: one sequence, char sizes, small
    # batches, "medium" (32, 256), "large" (64, 1024), few rows, wide states
    for sizes in [(1, 128, 128), (1, 100, 100), (1, 5, 5), (16, 64, 64), (16, 128, 128),
                  (8, 128, 128), (4, 256, 256), (7, 256, 256), (32, 256, 256),
                  (64, 1024, 1024), (8, 512, 512), (64, 256, 256), (17, 256, 256)]:
        assert _kernels._test_plan_product(*sizes, PLANS, True) != "team"
    # only where the caller allows it
    assert _kernels._test_plan_product(8, 256, 256, PLANS[1:], True) != "team"
    try:
        _kernels._set_force_team(False)
        assert _kernels._test_plan_product(8, 256, 256, PLANS, True) != "team"
        _kernels._set_force_team(True)
        assert _kernels._test_plan_product(1, 3, 3, PLANS) == "team"
        assert _kernels._test_plan_product(1, 3, 3, PLANS[1:]) != "team"
    finally:
        _kernels._set_force_team(None)


@pytest.mark.skipif(_kernels._team_size() < 2 or _kernels.blas_in_use() != "numpy",
                    reason="needs a team of two or more")
@pytest.mark.parametrize("value, runs", [("0", 0), ("", 2), ("1", 2)])
def test_rnnfast_team_0_in_the_environment_keeps_the_loops_off_the_team(value, runs):
    """A fresh process with RNNFAST_TEAM set: at a planned shape (8, 256) the forward and
    backward loops run on the team unless it is 0; the results match the twin either way."""
    code = (
        "import numpy as np, rnnfast\n"
        "from rnnfast import _kernels, reference as ref\n"
        "rng = np.random.default_rng(0)\n"
        "p = {k: 0.05 * rng.standard_normal(s) for k, s in dict(Whx=(256, 8), Whh=(256, 256),"
        " Wyh=(4, 256), bh=(256, 1), by=(4, 1)).items()}\n"
        "x, h0 = rng.standard_normal((8, 8, 3)), rng.standard_normal((256, 8))\n"
        "h, y, caches = rnnfast.rnn_forward(x, h0, p)\n"
        "g = rnnfast.rnn_backward(np.ones_like(h), caches)\n"
        "h_e, y_e, caches_e = ref.rnn_forward(x, h0, p)\n"
        "g_e = ref.rnn_backward(np.ones_like(h_e), caches_e)\n"
        "assert np.allclose(h, h_e, rtol=1e-12, atol=1e-12)\n"
        "assert all(np.allclose(g[k], g_e[k], rtol=1e-10, atol=1e-10) for k in g_e)\n"
        "print(_kernels._team_runs())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "RNNFAST_TEAM": value}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == runs


def test_team_size_is_within_the_cpus_and_blas_threads():
    size = _kernels._team_size()
    assert 1 <= size <= len(os.sched_getaffinity(0))


def test_concurrent_callers_get_their_own_results(dtype, panels):
    """Four Python threads at once: one holds the team, the others run today's path
    meanwhile; every thread gets the result of its own serial call."""
    shape = (9, 65, 7, 4, 40)
    problems = [(make_problem(shape, dtype, seed=s), make_dh(shape, dtype, seed=s + 10))
                for s in range(4)]
    expected = []
    for (x, h0, p), dh in problems:
        h, y, caches = rnnfast.rnn_forward(x, h0, p)
        expected.append((h, y, rnnfast.rnn_backward(dh, caches)))
    barrier = threading.Barrier(4)
    results = [None] * 4

    def work(i):
        try:
            (x, h0, p), dh = problems[i]
            got = []
            for _ in range(5):
                barrier.wait()
                h, y, caches = rnnfast.rnn_forward(x, h0, p)
                got.append((h, y, rnnfast.rnn_backward(dh, caches)))
            results[i] = got
        except BaseException:
            barrier.abort()             # the others stop waiting; reported below
            raise

    before = _kernels._team_runs()
    errors = run_on_threads(work, 4)
    assert not errors, errors
    assert _kernels._team_runs() > before
    for i in range(4):
        h_e, y_e, g_e = expected[i]
        for h, y, g in results[i]:
            assert_close(h, np.float64(h_e), dtype, "h")
            assert_close(y, np.float64(y_e), dtype, "y")
            for key in g_e:
                assert_close(g[key], np.float64(g_e[key]), dtype, key)


@pytest.mark.skipif(_kernels._team_size() < 2, reason="needs a team of two or more")
def test_a_team_run_leaves_numpys_blas_threads_as_they_were():
    """NumPy's OpenBLAS counts the members' one-thread setting process-wide: every run
    must leave its thread count (and so the plan's team size) as it found it, including
    the first, which starts the workers (the pause lets a worker that is still starting
    get that far).  Fresh processes, as the workers start once per process."""
    script = (
        "import time\n"
        "import numpy as np, rnnfast\n"
        "from rnnfast import _kernels\n"
        "before = _kernels._team_size()\n"
        "m = rnnfast.LSTM(8, 128, dtype=np.float32)\n"
        "x = np.ones((3, 8, 8), np.float32)\n"
        "for _ in range(5):\n"
        "    runs = _kernels._team_runs()\n"
        "    m.forward(x)\n"
        "    time.sleep(0.02)\n"
        "    assert _kernels._team_runs() == runs + 1\n"
        "    assert _kernels._team_size() == before, (_kernels._team_size(), before)\n"
        "print('ok')\n")
    for _ in range(4):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


FORK_SCRIPT = """
import os
import numpy as np, rnnfast
from rnnfast import _kernels
_kernels._set_force_team(True)
rng = np.random.default_rng(0)
m = rnnfast.GRU(8, 128, dtype=np.float64, seed=1)
x = rng.standard_normal((40, 8, 8))
expected = m.forward(x)[0]
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:                # the child: the team starts afresh and gives the same result
        before = _kernels._team_runs()
        ok = np.array_equal(m.forward(x)[0], expected) and _kernels._team_runs() == before + 1
        os._exit(0 if ok else 3)
    children.append(pid)
    assert np.array_equal(m.forward(x)[0], expected)    # the parent's team still works
codes = [os.waitpid(pid, 0)[1] for pid in children]
assert codes == [0] * len(children), codes
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork") or _kernels._team_size() < 2,
                    reason="needs fork() and a team of two or more")
def test_a_forked_child_runs_the_team_afresh():
    """After fork() the child, where no worker exists, starts a team of its own, and the
    parent's team goes on working."""
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux")
def test_team_is_correct_while_other_processes_load_every_cpu(panels):
    """Busy processes on every CPU: the team's members are preempted between steps (their
    barrier yields, then sleeps); the results stay those of the twin and the loops end."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(len(os.sched_getaffinity(0)))]
    try:
        shape = (5, 40, 6, 3, 60)
        x, h0, p = make_problem(shape, np.float64, seed=7)
        dh = make_dh(shape, np.float64)
        for _ in range(3):
            with TeamRuns(2):
                check_forward_backward(x, h0, p, dh, np.float64)
    finally:
        for process in busy:
            process.kill()
            process.wait()


# -- the LSTM's and GRU's loops on the team (gated_team.pxi) ------------------------

@pytest.mark.parametrize("kind, sizes", [
    (kind, sizes) for sizes in [(1, 1, 3, 7), (4, 1, 2, 65), (3, 5, 4, 33), (6, 2, 3, 16),
                                (2, 17, 2, 24), (5, 3, 4, 1), (3, 4, 5, 257), (1, 2, 1, 40)]
    for kind in ("lstm", "gru")],
    ids=lambda v: v if isinstance(v, str) else "T{}-m{}-nin{}-H{}".format(*v))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_gated_layer_kernels_on_the_team_match_the_twin(kind, sizes, reverse, with_lengths,
                                                        dtype, panels):
    """Forward (the input projection, then the steps) and backward (the steps, then the
    weight gradients) each run once on the team, read-only weights, against the twins."""
    assert_gated_layer_kernels_match_the_twin(kind, *sizes, 0, reverse, with_lengths, dtype,
                                              each_call=lambda: TeamRuns(1))


@pytest.mark.parametrize("sizes", [(1, 1, 1, 2, 1), (3, 5, 4, 33, 9), (4, 3, 5, 40, 17),
                                   (6, 2, 3, 65, 64), (2, 17, 2, 24, 7), (5, 4, 3, 257, 100)],
                         ids=lambda s: "T{}-N{}-in{}-H{}-P{}".format(*s))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_lstm_with_a_projection_on_the_team_matches_the_twin(sizes, reverse, with_lengths,
                                                             dtype, panels):
    """The LSTM with a projection (two stages a step: the gates and cell by hidden units,
    the projection by outputs), forward and backward each once on the team."""
    assert_gated_layer_kernels_match_the_twin("lstm", *sizes, reverse, with_lengths, dtype,
                                              each_call=lambda: TeamRuns(1))


@pytest.mark.skipif(_kernels._team_size() < 2 or _kernels.blas_in_use() != "numpy",
                    reason="needs a team of two or more")
def test_the_plan_takes_the_team_for_the_lstm_with_a_projection_by_its_cell_size():
    """By the plan (not forced): m H = 512 with H 128 runs on the team whatever P is; the
    results match the twin."""
    assert_gated_layer_kernels_match_the_twin("lstm", 3, 4, 5, 128, 64, False, True,
                                              np.float32, each_call=lambda: TeamRuns(1))
    assert_gated_layer_kernels_match_the_twin("lstm", 3, 2, 5, 128, 64, False, False,
                                              np.float32, each_call=lambda: TeamRuns(0))


@pytest.mark.parametrize("mode, proj", [("LSTM", 0), ("LSTM", 9), ("GRU", 0)],
                         ids=["LSTM", "LSTM-proj", "GRU"])
def test_gated_modules_on_the_team_match_the_twin(mode, proj, dtype, panels):
    """Two bidirectional layers with lengths: 8 loops on the team, results as the twin's."""
    kwargs = {"proj_size": proj} if proj else {}
    m64 = getattr(rnnfast, mode)(4, 33, num_layers=2, bidirectional=True,
                                 dtype=np.float64, seed=2, **kwargs)
    m = getattr(rnnfast, mode)(4, 33, num_layers=2, bidirectional=True, dtype=dtype, **kwargs)
    weights = m64.state_dict()
    m.load_state_dict(weights)
    rng = np.random.default_rng(6)
    L, N, out_size = 5, 3, proj or 33
    x, go = rng.standard_normal((L, N, 4)), rng.standard_normal((L, N, 2 * out_size))
    h0, gh = rng.standard_normal((4, N, out_size)), rng.standard_normal((4, N, out_size))
    lengths = np.array([5, 2, 4])
    if mode == "LSTM":
        c0, gc = rng.standard_normal((4, N, 33)), rng.standard_normal((4, N, 33))
        with TeamRuns(8):               # 2 layers x 2 directions, forward and backward
            out, (hn, cn) = m.forward(x.astype(dtype), (h0.astype(dtype), c0.astype(dtype)),
                                      lengths=lengths)
            grads = m.backward(go.astype(dtype), gh.astype(dtype), gc.astype(dtype))
        out_e, hn_e, cn_e, cache = ref.lstm_module_forward(x, h0, c0, weights, 2, True,
                                                           proj_size=proj, lengths=lengths)
        grads_e = ref.lstm_module_backward(go, gh, gc, cache)
        assert_close(cn, cn_e, dtype, "c_n")
    else:
        with TeamRuns(8):
            out, hn = m.forward(x.astype(dtype), h0.astype(dtype), lengths=lengths)
            grads = m.backward(go.astype(dtype), gh.astype(dtype))
        out_e, hn_e, cache = ref.gru_module_forward(x, h0, weights, 2, True, lengths=lengths)
        grads_e = ref.gru_module_backward(go, gh, cache)
    assert_module_results_match((out, hn, grads), (out_e, hn_e, grads_e), dtype)


def test_plan_puts_the_gated_loops_on_the_team_where_it_measured_faster():
    """LSTM (4 gates) and GRU (3): m >= 2, H >= 128, m H >= 512, float64 up to m H 4096
    (see TEAM_GATED_* in _blas.pxd); the Elman limits do not apply to them."""
    team = _kernels._team_size() >= 2 and _kernels.blas_in_use() == "numpy"
    for n_gates in (3, 4):
        def plan(m, H, float32, n_gates=n_gates):
            return _kernels._test_plan_product(m, n_gates * H, H, PLANS, float32, n_gates)
        for m, H in [(2, 256), (4, 128), (8, 256), (16, 256), (32, 256), (64, 256), (32, 512)]:
            assert (plan(m, H, True) == "team") == team
        for m, H in [(2, 256), (4, 256), (16, 256)]:
            assert (plan(m, H, False) == "team") == team
        for m, H in [(1, 256), (1, 1024), (2, 128), (8, 64), (64, 64), (3, 100)]:
            assert plan(m, H, True) != "team"
        for m, H in [(32, 256), (64, 256), (16, 512)]:
            assert plan(m, H, False) != "team"
