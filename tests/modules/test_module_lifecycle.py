"""The NumPy modules' contract with torch: empty batches, constructor errors, the forward
cache's life (released by backward, never kept under ``rnnfast.no_grad``)."""

import tracemalloc

import numpy as np
import pytest

import rnnfast
from rnnfast.modules import CELLS

# every registered cell's module class name (RNN, LSTM, GRU)
KINDS = list(dict.fromkeys(cell.torch_name for cell in CELLS.values()))


def make(kind, **kwargs):
    return getattr(rnnfast, kind)(3, 4, dtype=np.float64, seed=0, **kwargs)


def zeros_like_outputs(module, out, finals):
    states = finals if isinstance(finals, tuple) else (finals,)
    return np.ones_like(out), [np.ones_like(s) for s in states]


# -- batch size 0 and sequence length 0, as torch ------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_an_empty_batch_gives_empty_results_and_zero_gradients(kind, batch_first):
    m = make(kind, num_layers=2, bidirectional=True, batch_first=batch_first)
    x = np.zeros((0, 5, 3) if batch_first else (5, 0, 3))
    out, finals = m(x)
    assert out.shape == ((0, 5, 8) if batch_first else (5, 0, 8))
    states = finals if isinstance(finals, tuple) else (finals,)
    assert all(s.shape == (4, 0, 4) for s in states)
    grads = m.backward(*zeros_like_outputs(m, out, finals)[:1])
    assert grads["input"].shape == x.shape and grads["hx"].shape == (4, 0, 4)
    for name, a in m.named_parameters():
        assert grads[name].shape == a.shape and not grads[name].any()


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_batch_with_lengths_and_states(kind):
    m = make(kind)
    hx = np.zeros((1, 0, 4))
    out, _ = m(np.zeros((5, 0, 3)), (hx, hx) if kind == "LSTM" else hx,
               lengths=np.zeros(0, int))
    assert out.shape == (5, 0, 4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(0, 2, 3), (0, 3)], ids=["batched", "unbatched"])
def test_a_sequence_length_of_0_is_refused_as_torch_does(kind, shape):
    with pytest.raises(RuntimeError, match=r"sequence length to be larger than 0: input of "
                                           rf"shape \({shape[0]}, {shape[1]}"):
        make(kind)(np.zeros(shape))


def test_size_errors_use_the_modules_names():
    with pytest.raises(RuntimeError) as info:
        rnnfast.GRU(3, 4, batch_first=True)(np.zeros((2, 0, 3)))
    assert "T_x" not in str(info.value) and "m is" not in str(info.value)
    with pytest.raises(ValueError, match="batch size \\* sequence length = 4294967296 "
                                         "exceeds the 32-bit BLAS limit"):
        rnnfast.RNN(3, 4)(np.broadcast_to(np.zeros((1, 1, 3)), (2**16, 2**16, 3)))
    model = rnnfast.RNNModel(3, 4, 5, cell="lstm")
    with pytest.raises(ValueError, match="batch size 0"):
        model.forward(np.zeros((0, 4), int))
    with pytest.raises(ValueError, match=r"Y has shape \(2, 3\); expected \(batch, sequence "
                                         r"length\) = \(2, 4\)"):
        model.loss_and_grads(np.zeros((2, 4), int), np.zeros((2, 3), int))


# -- constructor arguments: TypeError for a wrong type, ValueError for a wrong value --

CONSTRUCTOR_ERRORS = [
    (dict(input_size=3.0), TypeError, "input_size should be of type int, got: float"),
    (dict(input_size="10"), TypeError, "input_size should be of type int, got: str"),
    (dict(input_size=0), ValueError, "input_size must be greater than zero"),
    (dict(hidden_size=4.0), TypeError, "hidden_size should be of type int, got: float"),
    (dict(hidden_size=True), TypeError, "hidden_size should be of type int, got: bool"),
    (dict(hidden_size=-1), ValueError, "hidden_size must be greater than zero"),
    (dict(num_layers=1.0), TypeError, "num_layers should be of type int, got: float"),
    (dict(num_layers="2"), TypeError, "num_layers should be of type int, got: str"),
    (dict(num_layers=0), ValueError, "num_layers must be greater than zero"),
    (dict(dropout="0.1"), ValueError, "dropout should be a number in range"),
    (dict(dropout=True), ValueError, "dropout should be a number in range"),
    (dict(dropout=1.5), ValueError, "dropout should be a number in range"),
    (dict(bias=1), TypeError, "bias should be of type bool, got: int"),
    (dict(batch_first=None), TypeError, "batch_first should be of type bool, got: NoneType"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kwargs, error, message", CONSTRUCTOR_ERRORS,
                         ids=lambda v: str(v)[:30])
def test_constructor_errors_follow_torch(kind, kwargs, error, message):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        getattr(rnnfast, kind)(**args)


@pytest.mark.parametrize("proj_size, error, message", [
    (1.0, TypeError, "proj_size should be of type int, got: float"),
    ("1", TypeError, "proj_size should be of type int, got: str"),
    (True, TypeError, "proj_size should be of type int, got: bool"),
    (-1, ValueError, "proj_size should be a positive integer or zero"),
    (4, ValueError, "proj_size has to be smaller than hidden_size"),
])
def test_lstm_proj_size_errors_follow_torch(proj_size, error, message):
    with pytest.raises(error, match=message):
        rnnfast.LSTM(3, 4, proj_size=proj_size)


@pytest.mark.parametrize("nonlinearity", ["sigmoid", 1, None])
def test_an_unknown_nonlinearity_is_a_value_error(nonlinearity):
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        rnnfast.RNN(3, 4, nonlinearity=nonlinearity)


# -- the forward cache: released by backward, never kept under no_grad ------------------

@pytest.mark.parametrize("kind", KINDS)
def test_backward_releases_the_cache_and_a_second_backward_raises(kind):
    m = make(kind, num_layers=2)
    out, _ = m(np.ones((6, 2, 3)))
    first = m.backward(np.ones_like(out))
    assert m._cache is None
    with pytest.raises(RuntimeError, match="already released it"):
        m.backward(np.ones_like(out))
    m(np.ones((6, 2, 3)))
    kept = m.backward(np.ones_like(out), retain_graph=True)
    again = m.backward(np.ones_like(out))
    for name in first:
        np.testing.assert_array_equal(kept[name], first[name])
        np.testing.assert_array_equal(again[name], first[name])


@pytest.mark.parametrize("kind", KINDS)
def test_no_grad_keeps_nothing_and_backward_then_raises(kind):
    m = make(kind, num_layers=2, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((7, 2, 3))
    expected, _ = m(x)
    with rnnfast.no_grad():
        assert not rnnfast.is_grad_enabled()
        out, _ = m(x)
    assert rnnfast.is_grad_enabled()
    np.testing.assert_array_equal(out, expected)
    assert m._cache is None
    with pytest.raises(RuntimeError, match="no_grad"):
        m.backward(np.ones_like(out))


def test_no_grad_nests_decorates_and_is_per_thread():
    import threading

    seen = []

    @rnnfast.no_grad()
    def infer():
        with rnnfast.no_grad():
            pass
        seen.append(rnnfast.is_grad_enabled())
        t = threading.Thread(target=lambda: seen.append(rnnfast.is_grad_enabled()))
        t.start()
        t.join()

    infer()
    assert seen == [False, True] and rnnfast.is_grad_enabled()


def retained_after(fn):
    """Bytes still allocated (by NumPy, traced) after ``fn()``, and its result."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return tracemalloc.get_traced_memory()[0] - base, result
    finally:
        tracemalloc.stop()


def test_inference_holds_only_the_outputs():
    m = rnnfast.LSTM(8, 32, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((2000, 1, 8))

    def run():
        out, (h, c) = m(x)
        return out, h, c

    with rnnfast.no_grad():
        held, outputs = retained_after(run)
    size = sum(a.nbytes for a in outputs)
    assert held < size + 64 * 1024, (held, size)
    held_training, outputs = retained_after(run)          # keeps the gates of every step
    assert held_training > 5 * size, (held_training, size)
    del outputs


def test_memory_is_freed_by_backward():
    m = rnnfast.GRU(8, 32, num_layers=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((2000, 1, 8))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out, _ = m(x)
        after_forward = tracemalloc.get_traced_memory()[0] - base
        grads = m.backward(np.ones_like(out))
        del grads
        after_backward = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert after_forward > 5 * out.nbytes              # the cache: inputs, states, gates
    # only the output is left once backward has released the cache
    assert after_backward < out.nbytes + 64 * 1024, (after_backward, out.nbytes)


@pytest.mark.parametrize("cell, num_layers", [("rnn", 2), ("lstm", 1), ("gru", 2)])
def test_model_forward_keeps_nothing(cell, num_layers):
    model = rnnfast.RNNModel(6, 32, 6, num_layers, cell=cell, dtype=np.float64, seed=0)
    X = np.random.default_rng(0).integers(0, 6, (1, 2000))
    held, logits = retained_after(lambda: model.forward(X))
    assert held < logits.nbytes + 64 * 1024, (held, logits.nbytes)
    assert model._rnn._cache is None
