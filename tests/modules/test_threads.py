"""Several threads on one module or one RNNModel get the results of serial calls.

Each thread has its own inputs; the threads start every round together (a
barrier), and for the modules also wait for each other between ``forward`` and
``backward``, so that a cache shared between threads would always be
overwritten by another thread's forward before a backward reads it.
"""

import sys
import threading

import numpy as np
import pytest

import rnnfast
from rnnfast import RNNModel

N_THREADS = 8
ROUNDS = 6
RTOL = 1e-12        # float64; another thread's data would differ by O(1)

MODULES = [
    ("RNN", dict(num_layers=1)),
    ("RNN", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=1)),
    ("LSTM", dict(num_layers=2)),
    ("GRU", dict(num_layers=1)),
    ("GRU", dict(num_layers=2, bidirectional=True)),
]

MODELS = [("rnn", 1), ("rnn", 2), ("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 2)]


@pytest.fixture(autouse=True)
def frequent_thread_switches():
    """Switch threads every few microseconds, so that any shared state gets mixed."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def run_threads(work):
    """Run ``work(i, barrier)`` in N_THREADS threads; return their results in order."""
    barrier = threading.Barrier(N_THREADS)
    results, errors = [None] * N_THREADS, []

    def target(i):
        try:
            results[i] = work(i, barrier)
        except BaseException as exc:      # reported in the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def assert_same(got, expected, what):
    if isinstance(expected, dict):
        assert list(got) == list(expected), what
        for key in expected:
            assert_same(got[key], expected[key], f"{what}[{key!r}]")
    elif isinstance(expected, tuple):
        for k, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same(a, b, f"{what}[{k}]")
    else:
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0, err_msg=what)


@pytest.mark.parametrize("kind, kwargs", MODULES, ids=lambda v: str(v))
def test_module_forward_backward_in_threads_equals_serial(kind, kwargs):
    module = getattr(rnnfast, kind)(5, 7, dtype=np.float64, seed=0, **kwargs)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((20, 3, 5)) for _ in range(N_THREADS)]
    grads_out = [rng.standard_normal((20, 3, 7 * module.num_directions))
                 for _ in range(N_THREADS)]

    def serial(i):
        out, h_n = module(inputs[i])
        return out, h_n, module.backward(grads_out[i])

    expected = [serial(i) for i in range(N_THREADS)]

    def work(i, barrier):
        got = []
        for _ in range(ROUNDS):
            barrier.wait()
            out, h_n = module(inputs[i])
            barrier.wait()            # every thread has run its forward
            got.append((out, h_n, module.backward(grads_out[i])))
        return got

    for i, rounds in enumerate(run_threads(work)):
        for r, result in enumerate(rounds):
            assert_same(result, expected[i], f"thread {i}, round {r}")


@pytest.mark.parametrize("cell, num_layers", MODELS, ids=lambda v: str(v))
def test_model_loss_and_grads_in_threads_equals_serial(cell, num_layers):
    model = RNNModel(6, 16, 5, num_layers, cell=cell, dtype=np.float64, seed=0)
    rng = np.random.default_rng(2)
    data = [(rng.integers(0, 6, (4, 40)), rng.integers(0, 5, (4, 40)))
            for _ in range(N_THREADS)]
    expected = [model.loss_and_grads(X, Y) for X, Y in data]

    def work(i, barrier):
        got = []
        for _ in range(4 * ROUNDS):
            barrier.wait()
            got.append(model.loss_and_grads(*data[i]))
        return got

    for i, rounds in enumerate(run_threads(work)):
        for r, (loss, grads) in enumerate(rounds):
            assert loss == pytest.approx(expected[i][0], rel=RTOL), f"thread {i}, round {r}"
            assert_same(grads, expected[i][1], f"thread {i}, round {r}")


def test_model_loss_and_grads_keeps_nothing_on_the_module():
    model = RNNModel(6, 8, 5, 2, cell="lstm", dtype=np.float64, seed=0)
    X = np.random.default_rng(3).integers(0, 6, (2, 9))
    model.loss_and_grads(X, X % 5)
    model.forward(X)
    assert model._rnn._cache is None
    with pytest.raises(RuntimeError, match="forward pass first"):
        model._rnn.backward(np.zeros((2, 9, 8)))


def test_a_thread_cannot_backward_another_threads_forward():
    module = rnnfast.GRU(3, 4, dtype=np.float64)
    out, _ = module(np.ones((5, 2, 3)))
    errors = []

    def other():
        try:
            module.backward(np.ones_like(out))
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and "same thread" in str(errors[0])
    module.backward(np.ones_like(out))      # this thread's cache is still there
