"""Shared test helpers: problem generators, the per-dtype tolerances, memory layouts,
finite differences, the NumPy twins' runs of the modules, torch glue and CLI inputs.

float64 results must match the float64 reference to 5e-14 relative; float32
results (to 1e-5) are compared with the float64 reference run on the same
inputs.  Both figures are a few times the error measured (see RTOL).
Fixtures live in tests/conftest.py; hypothesis strategies in helpers/strategies.py.
"""

import contextlib
import os

import numpy as np

# Relative tolerance per result dtype, scaled by the largest magnitude in the
# expected array, at least 1 (so entries near zero are judged on the array's
# scale).  Measured with RNNFAST_RECORD_ERRORS over the whole suite against the
# float64 NumPy twins: worst float32 1.9e-6 (dWhh at T = 3000), worst float64
# 6.6e-15 (the same); the tolerances are 5x and 8x those.  A tanh 1e-4 too
# large, or any result perturbed by 1e-5 relative, fails.
RTOL = {np.dtype(np.float64): 5e-14, np.dtype(np.float32): 1e-5}

# RNNFAST_RECORD_ERRORS=FILE makes assert_close append every measured error
# (max |actual - expected| / scale) to FILE: how the tolerances were measured.
_ERROR_LOG = os.environ.get("RNNFAST_RECORD_ERRORS")

DTYPES = [np.float32, np.float64]

# (n_x, n_h, n_y, m, T): odd sizes, T=1, m=1, and n_x != n_h != n_y.
SHAPES = [
    (1, 1, 1, 1, 1),
    (5, 5, 5, 1, 5),
    (7, 13, 1, 1, 1),
    (13, 7, 129, 3, 1),
    (7, 13, 5, 1, 29),
    (13, 1, 7, 7, 13),
    (1, 129, 7, 13, 7),
    (129, 7, 13, 2, 3),
    (7, 129, 13, 129, 2),
]


def shape_id(shape):
    return "nx{}-nh{}-ny{}-m{}-T{}".format(*shape)


def assert_close(actual, expected, dtype, name=""):
    """``actual`` (of ``dtype``) agrees with the float64 ``expected``."""
    dtype = np.dtype(dtype)
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{name}: dtype {actual.dtype} != {dtype}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    rtol = RTOL[dtype]
    if _ERROR_LOG and expected.size:
        error = float(np.max(np.abs(actual.astype(np.float64) - expected))) / scale
        with open(_ERROR_LOG, "a") as log:
            log.write(f"{dtype.name}\t{error:.3e}\t{os.environ.get('PYTEST_CURRENT_TEST', '')}"
                      f"\t{name}\n")
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=name)


def assert_module_results_match(actual, expected, dtype):
    """A module's ``(output, h_n, gradients)`` against the twin's (float64); the
    gradients are dicts with the same names."""
    (out, hn, grads), (out_e, hn_e, grads_e) = actual, expected
    assert_close(out, out_e, dtype, "output")
    assert_close(hn, hn_e, dtype, "h_n")
    assert set(grads) == set(grads_e)
    for key, value in grads_e.items():
        assert_close(grads[key], value, dtype, key)


def run_on_threads(target, count):
    """Run ``target(i)`` for i < ``count`` on as many threads at once; return the
    exceptions they raised (to be reported on the calling thread)."""
    import threading
    errors = []

    def guarded(i):
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)
    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class TeamRuns:
    """Asserts that the block ran ``expected`` time loops on the thread team (and, when
    ``products`` is given, that many products hoisted out of them)."""

    def __init__(self, expected, products=None):
        self.expected, self.products = expected, products

    def __enter__(self):
        from rnnfast import _kernels
        self.before = _kernels._team_runs(), _kernels._team_product_runs()

    def __exit__(self, *exc):
        from rnnfast import _kernels
        if exc[0] is None:
            assert _kernels._team_runs() - self.before[0] == self.expected
            if self.products is not None:
                ran = _kernels._team_product_runs() - self.before[1]
                assert ran == self.products, (ran, self.products)


def make_problem(shape, dtype=np.float64, seed=0):
    """Random ``(x, h0, parameters)`` of ``shape = (n_x, n_h, n_y, m, T)``.

    Weights are scaled by 1/sqrt(fan-in) so that activations stay in tanh's
    responsive range and gradients neither vanish nor explode over long T.
    """
    n_x, n_h, n_y, m, n_steps = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_x, m, n_steps))
    h0 = 0.5 * rng.standard_normal((n_h, m))
    parameters = {
        "Whx": rng.standard_normal((n_h, n_x)) / np.sqrt(n_x),
        "Whh": 0.9 * rng.standard_normal((n_h, n_h)) / np.sqrt(n_h),
        "Wyh": rng.standard_normal((n_y, n_h)) / np.sqrt(n_h),
        "bh": 0.1 * rng.standard_normal((n_h, 1)),
        "by": 0.1 * rng.standard_normal((n_y, 1)),
    }
    dtype = np.dtype(dtype)
    return (x.astype(dtype), h0.astype(dtype),
            {k: v.astype(dtype) for k, v in parameters.items()})


def make_dh(shape, dtype=np.float64, seed=1):
    n_x, n_h, n_y, m, n_steps = shape
    return np.random.default_rng(seed).standard_normal((n_h, m, n_steps)).astype(dtype)


def as_float64(x, h0, parameters):
    return (x.astype(np.float64), h0.astype(np.float64),
            {k: np.asarray(v, dtype=np.float64) for k, v in parameters.items()})


# -- memory layouts ------------------------------------------------------------
#
# The one copy of the layout helpers (helpers/strategies.py draws from LAYOUTS;
# the example-based tests use in_layout directly).  They live here, not in
# strategies.py, so that tests without hypothesis can use them.

LAYOUTS = ("c", "fortran", "strided", "negative", "readonly")


def in_layout(a, layout):
    """The values of ``a`` in a new array (or view) of the given memory layout.

    ``"c"``: C order; ``"fortran"``: Fortran order; ``"strided"``: every other
    element of an array twice as large on every axis (non-contiguous);
    ``"negative"``: negative strides on every axis; ``"readonly"``: a C-order
    copy that cannot be written.  The result never shares memory with ``a``.
    """
    a = np.asarray(a)
    if layout == "c" or a.ndim == 0:
        out = np.array(a, order="C", copy=True)
    elif layout == "fortran":
        out = np.array(a, order="F", copy=True)
    elif layout == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        out = big[tuple(slice(None, None, 2) for _ in a.shape)]
        out[...] = a
    elif layout == "negative":
        flip = tuple(slice(None, None, -1) for _ in a.shape)
        out = np.array(a[flip], order="C", copy=True)[flip]
    elif layout == "readonly":
        out = np.array(a, order="C", copy=True)
    else:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if layout == "readonly":
        out.flags.writeable = False
    return out


# -- PyTorch glue (torch is imported only when these are called) ---------------


def torch_dtype(dtype):
    """The torch dtype of a NumPy float32 or float64 dtype."""
    import torch
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        np.dtype(dtype)]


def load_numpy_weights(module, weights):
    """Copy NumPy ``weights`` (torch's parameter names) into the torch ``module``.

    Strict like ``load_state_dict``: every parameter, and only those; values
    are cast to the module's dtype.  Returns ``module``.
    """
    import torch
    module.load_state_dict({name: torch.tensor(np.asarray(value)) for name, value in
                            weights.items()})
    return module


# -- finite differences ----------------------------------------------------------

# Step of the central differences that check the twins (float64).
FD_STEP = 1e-6


def numeric_grad(f, array):
    """Central differences of the scalar f() with respect to every entry of array."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        saved = array[idx]
        array[idx] = saved + FD_STEP
        up = f()
        array[idx] = saved - FD_STEP
        down = f()
        array[idx] = saved
        grad[idx] = (up - down) / (2 * FD_STEP)
    return grad


# -- the seed API against the twin ---------------------------------------------------

GRAD_KEYS = ("dx", "dh0", "dWhx", "dWhh", "dbh")


def check_forward_backward(x, h0, p, dh, dtype):
    """rnnfast on (x, h0, p, dh) agrees with the float64 reference; returns rnnfast's results."""
    import rnnfast
    from rnnfast import reference as ref

    x64, h064, p64 = as_float64(np.asarray(x), np.asarray(h0), p)
    h_ref, y_ref, c_ref = ref.rnn_forward(x64, h064, p64)
    g_ref = ref.rnn_backward(np.asarray(dh, dtype=np.float64), c_ref)

    h, y, caches = rnnfast.rnn_forward(x, h0, p)
    assert_close(h, h_ref, dtype, "h")
    assert_close(y, y_ref, dtype, "y_pred")
    grads = rnnfast.rnn_backward(dh, caches)
    assert sorted(grads) == sorted(GRAD_KEYS)
    for key in GRAD_KEYS:
        assert_close(grads[key], g_ref[key], dtype, key)
    return h, y, caches, grads


# -- rnnfast.RNN's NumPy twin ------------------------------------------------------------


def dropout_masks(r):
    """The dropout multipliers of ``r``'s last forward, time-major, for the twin."""
    masks = [layer["mask"] for layer in r._cache["layers"]][:-1]
    if all(m is None for m in masks):
        return None
    return [m.transpose(1, 0, 2).astype(np.float64) for m in masks]


def numpy_run(r, weights, x, h0, go, gh, lengths=None, batched=True, masks=None):
    """output, h_n and the gradients of sum(go*output) + sum(gh*h_n), by the NumPy twin."""
    from rnnfast import reference as ref

    batch_first = r.batch_first and batched

    def time_major(a):
        if not batched:
            return a[:, None]
        return a.transpose(1, 0, 2) if batch_first else a

    def user_layout(a):
        if not batched:
            return a[:, 0]
        return a.transpose(1, 0, 2) if batch_first else a

    hx = h0 if batched else h0[:, None]
    out, hn, cache = ref.rnn_module_forward(time_major(x), hx, weights, r.num_layers,
                                            r.bidirectional, r.nonlinearity, lengths, masks)
    grads = ref.rnn_module_backward(time_major(go), gh if batched else gh[:, None], cache)
    grads["input"] = user_layout(grads["input"])
    if not batched:
        hn, grads["hx"] = hn[:, 0], grads["hx"][:, 0]
    return user_layout(out), hn, grads


# -- the command line's inputs -----------------------------------------------------------

#: The text the CLI tests train on (tests/conftest.py's ``text_file`` holds it).
TEXT = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. " * 30
#: A small, quick model for ``train``.
BASE = ["--hidden", "16", "--seq-len", "10", "--batch", "4", "--quiet"]


def error_line(excinfo):
    """The message of a CLI's ``SystemExit``, checked to be one line starting ``error: ``."""
    message = str(excinfo.value)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def assert_a_resumed_run_is_exact(args, tmp_path):
    """``main(args)`` (a ``train`` command line without ``--steps``) run 40 steps straight,
    and run 19 steps with a checkpoint every 8 (the last at step 16) then resumed from it to
    step 40, ends at the same parameters to the bit.  Returns the straight run's parameters.
    """
    from rnnfast.__main__ import main
    from rnnfast.checkpoint import load_checkpoint
    from rnnfast.model import RNNModel

    straight, resumed, ckpt = (str(tmp_path / n) for n in ("s.npz", "r.npz", "c.npz"))
    assert main([*args, "--steps", "40", "--save", straight]) == 0
    assert main([*args, "--steps", "19", "--checkpoint-every", "8", "--checkpoint", ckpt]) == 0
    assert load_checkpoint(ckpt)[0]["step"] == 16
    assert main([*args, "--steps", "40", "--resume", ckpt, "--save", resumed]) == 0
    a, b = RNNModel.load(straight).parameters, RNNModel.load(resumed).parameters
    for name in a:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)
    return a


def assert_training_ends_elsewhere(args, parameters, path):
    """``main(args)`` run 40 steps (the model saved at ``path``) ends at parameters other
    than ``parameters`` (a name to array dict): what ``args`` leave out changed the run."""
    from rnnfast.__main__ import main
    from rnnfast.model import RNNModel

    assert main([*args, "--steps", "40", "--save", str(path)]) == 0
    c = RNNModel.load(str(path)).parameters
    assert any(not np.array_equal(c[name], parameters[name]) for name in parameters)


def assert_generation_reads_read_only_parameters(model, vocab):
    """``generate`` from ``model`` with its parameters read-only changes none of them, and
    draws what it draws from them writeable."""
    from rnnfast.text import generate

    before = model.state_dict()
    for a in model.parameters.values():
        a.flags.writeable = False
    texts = generate(model, vocab, 40, prime="ab", seed=0, streams=2)
    for name, a in model.parameters.items():
        np.testing.assert_array_equal(a, before[name])
    for a in model.parameters.values():
        a.flags.writeable = True
    assert texts == generate(model, vocab, 40, prime="ab", seed=0, streams=2)


def assert_a_misfit_parameter_is_refused(model, name, bad, vocab):
    """With ``model.parameters[name]`` replaced by ``bad`` (not a C-contiguous float32
    array), ``forward`` and ``generate_iter`` both raise the model's ``ValueError``."""
    import pytest

    from rnnfast.text import generate_iter

    model.parameters[name] = bad
    message = rf"parameters\['{name}'\] must be a C-contiguous float32 array"
    with pytest.raises(ValueError, match=message):
        model.forward(np.array([[0, 1]]))
    with pytest.raises(ValueError, match=message):
        generate_iter(model, vocab, 5)


def mpiexec():
    """The ``mpiexec`` beside this Python (the mpich wheel's) or on PATH; skips the test
    when mpi4py or mpiexec is missing."""
    import shutil
    import sys

    import pytest
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (pip install \".[mpi]\")")
    path = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                        + os.environ.get("PATH", ""))
    if path is None:
        pytest.skip("no mpiexec")
    return path


def gated_twin_run(m, weights, x, s0, go, gf, lengths, batched, masks):
    """``(output, finals, grads)`` of LSTM/GRU module ``m`` by its float64 NumPy twin, with the
    inputs, states and their gradients in the module's layout (``masks``: its dropout masks)."""
    from rnnfast import reference as ref

    bf = m.batch_first and batched

    def time_major(a):
        return a[:, None] if not batched else (a.transpose(1, 0, 2) if bf else a)

    def user(a):
        return a[:, 0] if not batched else (a.transpose(1, 0, 2) if bf else a)

    def batch(a):
        return a if batched else a[:, None]

    s0, gf = [batch(s) for s in s0], [batch(g) for g in gf]
    if m.mode == "LSTM":
        out, hn, cn, cache = ref.lstm_module_forward(time_major(x), s0[0], s0[1], weights,
                                                     m.num_layers, m.bidirectional, m.proj_size,
                                                     lengths, masks)
        grads = ref.lstm_module_backward(time_major(go), gf[0], gf[1], cache)
        finals, names = [hn, cn], ["hx", "cx"]
    else:
        out, hn, cache = ref.gru_module_forward(time_major(x), s0[0], weights, m.num_layers,
                                                m.bidirectional, lengths, masks)
        grads = ref.gru_module_backward(time_major(go), gf[0], cache)
        finals, names = [hn], ["hx"]
    grads["input"] = user(grads["input"])
    if not batched:
        finals = [f[:, 0] for f in finals]
        for n in names:
            grads[n] = grads[n][:, 0]
    return user(out), finals, grads


def assert_elman_layer_kernels_match_the_twin(T, N, n_in, H, reverse, with_lengths, activation,
                                              dtype, each_call=contextlib.nullcontext):
    """``_kernels.layer_forward``/``layer_backward`` of one Elman layer against the twins
    ``rnn_layer_forward``/``rnn_layer_backward`` (seeded by the sizes), each kernel call run
    inside ``each_call()``; the caller's read-only ``w_hh`` stays untouched."""
    from rnnfast import _kernels
    from rnnfast import reference as ref
    rng = np.random.default_rng(T + 10 * N + H)
    x = rng.standard_normal((T, N, n_in))
    h0 = 0.5 * rng.standard_normal((N, H))
    w_ih = rng.standard_normal((H, n_in)) / np.sqrt(n_in)
    w_hh = rng.standard_normal((H, H)) / np.sqrt(H)
    b_ih, b_hh = 0.1 * rng.standard_normal(H), 0.1 * rng.standard_normal(H)
    d_out, d_hn = rng.standard_normal((T, N, H)), rng.standard_normal((N, H))
    lengths = None
    if with_lengths:
        lengths = [T - (i % T) for i in range(N)]
        lengths[-1] = max(1, T // 2)
    out_e, hn_e, cache = ref.rnn_layer_forward(x, h0, w_ih, w_hh, b_ih, b_hh,
                                               activation.name.lower(), reverse, lengths)
    grads_e = ref.rnn_layer_backward(d_out, d_hn, cache)

    def cast(a):
        return np.ascontiguousarray(a, dtype=dtype)
    lengths_c = None if lengths is None else np.array(lengths, dtype=np.intp)
    x_rows = cast(x.transpose(1, 0, 2).reshape(N * T, n_in))
    w_hh_c = cast(w_hh)
    w_hh_c.flags.writeable = False              # read-only weights are fine
    with each_call():
        states = _kernels.layer_forward(x_rows, cast(h0), cast(w_ih), w_hh_c,
                                        cast(b_ih + b_hh), lengths_c, reverse, activation, False)
    valid = np.ones((T, N), bool) if lengths is None else np.arange(T)[:, None] < lengths
    assert_close(np.where(valid[:, :, None], states.transpose(1, 0, 2), 0), out_e, dtype,
                 "output")
    assert_close(states[:, 0] if reverse else states[:, -1], hn_e, dtype, "h_n")
    d_states = cast(np.where(valid[:, :, None], d_out, 0).transpose(1, 0, 2))
    with each_call():
        dx, dh0, dw_ih, dw_hh, db = _kernels.layer_backward(
            x_rows, cast(h0), states, d_states, cast(d_hn), cast(w_ih), w_hh_c, lengths_c,
            reverse, activation, False)
    assert_close(dx.reshape(N, T, n_in).transpose(1, 0, 2), grads_e["input"], dtype, "input")
    for key, got in (("hx", dh0), ("weight_ih", dw_ih), ("weight_hh", dw_hh), ("bias_ih", db)):
        assert_close(got, grads_e[key], dtype, key)
    assert np.array_equal(w_hh_c, cast(w_hh))   # the caller's weights are untouched


def assert_gated_layer_kernels_match_the_twin(kind, T, N, n_in, H, P, reverse, with_lengths,
                                              dtype, each_call=contextlib.nullcontext):
    """The compiled LSTM (``kind`` "lstm", projection ``P``, 0 for none) or GRU ("gru")
    layer kernels, forward and backward, against the NumPy twins: T steps, N sequences,
    read-only ``w_hh``, lengths (the last one T // 2) when ``with_lengths``.  Each kernel
    call runs inside ``each_call()``; the caller's weights stay untouched."""
    from rnnfast import _kernels
    from rnnfast import reference as ref
    G, width = (4 if kind == "lstm" else 3), P or H
    rng = np.random.default_rng(T + 10 * N + H + P)
    x = rng.standard_normal((T, N, n_in))
    h0, c0 = 0.5 * rng.standard_normal((N, width)), 0.5 * rng.standard_normal((N, H))
    w_ih = rng.standard_normal((G * H, n_in)) / np.sqrt(n_in)
    w_hh = rng.standard_normal((G * H, width)) / np.sqrt(width)
    w_hr = rng.standard_normal((P, H)) / np.sqrt(H) if P else None
    b_ih, b_hh = 0.1 * rng.standard_normal(G * H), 0.1 * rng.standard_normal(G * H)
    d_out, d_hn = rng.standard_normal((T, N, width)), rng.standard_normal((N, width))
    d_cn = rng.standard_normal((N, H))
    lengths = None
    if with_lengths:
        lengths = np.array([T - (i % T) for i in range(N)], dtype=np.intp)
        lengths[-1] = max(1, T // 2)
    valid = np.ones((T, N), bool) if lengths is None else np.arange(T)[:, None] < lengths
    d_out = np.where(valid[:, :, None], d_out, 0)

    def cast(a):
        return None if a is None else np.ascontiguousarray(a, dtype=dtype)
    x_rows = cast(x.transpose(1, 0, 2).reshape(N * T, n_in))
    w_hh_c = cast(w_hh)
    w_hh_c.flags.writeable = False              # read-only weights are fine
    d_states = cast(d_out.transpose(1, 0, 2))
    if kind == "lstm":
        out_e, hn_e, cn_e, cache = ref.lstm_layer_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh,
                                                          w_hr, reverse, lengths)
        grads_e = ref.lstm_layer_backward(d_out, d_hn, d_cn, cache)
        with each_call():
            h, c, gates = _kernels.lstm_layer_forward(
                x_rows, cast(h0), cast(c0), cast(w_ih), w_hh_c, cast(b_ih + b_hh), cast(w_hr),
                lengths, reverse)
        with each_call():
            dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = _kernels.lstm_layer_backward(
                x_rows, cast(h0), cast(c0), h, c, gates, d_states, cast(d_hn), cast(d_cn),
                cast(w_ih), w_hh_c, cast(w_hr), lengths, reverse)
        got = {"hx": dh0, "cx": dc0, "weight_ih": dw_ih, "weight_hh": dw_hh, "bias_ih": db}
        if P:
            got["weight_hr"] = dw_hr
    else:
        out_e, hn_e, cache = ref.gru_layer_forward(x, h0, w_ih, w_hh, b_ih, b_hh, reverse,
                                                   lengths)
        grads_e = ref.gru_layer_backward(d_out, d_hn, cache)
        with each_call():
            h, gates, hn = _kernels.gru_layer_forward(x_rows, cast(h0), cast(w_ih), w_hh_c,
                                                      cast(b_ih), cast(b_hh), lengths, reverse)
        with each_call():
            dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _kernels.gru_layer_backward(
                x_rows, cast(h0), h, gates, hn, d_states, cast(d_hn), cast(w_ih), w_hh_c,
                lengths, reverse)
        got = {"hx": dh0, "weight_ih": dw_ih, "weight_hh": dw_hh, "bias_ih": db_ih,
               "bias_hh": db_hh}
    assert_close(np.where(valid[:, :, None], h.transpose(1, 0, 2), 0), out_e, dtype, "output")
    last = np.array([0 if reverse else (T - 1 if lengths is None else lengths[i] - 1)
                     for i in range(N)])
    assert_close(h[np.arange(N), last], hn_e, dtype, "h_n")
    if kind == "lstm":
        assert_close(c[np.arange(N), last], cn_e, dtype, "c_n")
    assert_close(dx.reshape(N, T, n_in).transpose(1, 0, 2), grads_e["input"], dtype, "input")
    for key, value in got.items():
        assert_close(value, grads_e[key], dtype, key)
    assert np.array_equal(w_hh_c, cast(w_hh))   # the caller's weights are untouched
