"""rnnfast's kernels inside PyTorch models: drop-ins for ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``.

Importable when PyTorch is installed (``pip install "rnnfast[torch]"``)::

    import rnnfast.torch
    model = rnnfast.torch.convert(model)      # every nn.RNN/LSTM/GRU inside, in place

:class:`RNN`, :class:`LSTM` and :class:`GRU` are ``torch.nn.RNNBase``
modules with exactly torch's constructors, parameters, ``state_dict`` and
``forward`` (plain or ``PackedSequence`` input, unbatched input,
``batch_first``, dropout between layers), on CPU tensors of float32 or
float64.  On any other device (CUDA, ``meta``...) or in float16/bfloat16 a
module runs torch's own implementation instead (one ``UserWarning`` per
module says so); :func:`revert` turns the modules back into torch's.  Each
layer direction runs as one torch custom operator
(``rnnfast::rnn_layer``, ``rnnfast::lstm_layer``, ``rnnfast::gru_layer``)
with an autograd formula (a second operator running the compiled BPTT) and a
fake implementation, so autograd, ``torch.compile(fullgraph=True)``, torch's
optimizers, ``clip_grad_norm_`` and ``DistributedDataParallel`` work
unchanged.  ``torch.func.grad``, ``vjp`` and ``vmap`` (per-sample gradients
as ``vmap(grad(...))``) work too.  Every operator checks all its arguments
(shapes, dtype, device, lengths, codes) and raises a ``RuntimeError`` naming
the one that does not fit.  Contiguous tensors are handed to the kernels
without copies.

``torch.jit.script`` (deprecated in torch 2.13) cannot compile these modules:
it raises ``torch.jit.frontend.UnsupportedNodeError`` ("Lambda aren't
supported", from ``nn.Module.named_parameters``, which ``forward`` calls);
TorchScript does not compile their Python ``forward``.  Use ``torch.compile``.
"""

import functools
import inspect
import os
import sys
import warnings
import weakref

import numpy as np

try:
    import torch
except ImportError as error:
    raise ModuleNotFoundError('rnnfast.torch needs PyTorch: pip install "rnnfast[torch]"',
                              name="torch") from error
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from rnnfast import _kernels, _layers
from rnnfast import functional as _functional
from rnnfast.modules import CELLS, cell_mode, nonlinearities

__all__ = ["RNN", "LSTM", "GRU", "convert", "revert"]

# the activation code of each Elman mode, as rnn_layer takes it
_ACTIVATIONS = {mode: int(cell.activation) for mode, cell in CELLS.items()
                if hasattr(cell, "activation")}


def _bind_torch_blas():
    """Let the kernels call torch's own BLAS inside these operators; its path, or None.

    A training step interleaves torch's ops (on torch's OpenMP pool) with the
    kernels' products; with OpenBLAS's pool as well, the two pools fight over
    the cores (steps measured 5-40x slower at small sizes).
    """
    import glob
    import os
    folder = os.path.join(os.path.dirname(torch.__file__), "lib")
    for path in sorted(glob.glob(os.path.join(folder, "libtorch_cpu.*"))):
        if _kernels._bind_torch_blas(path):
            return path
    return None


#: The library whose BLAS the operators below call (torch's), or None when
#: they use the kernels' usual BLAS (NumPy's OpenBLAS).
TORCH_BLAS = _bind_torch_blas()


def _bind_torch_openmp():
    """Let the kernels' thread team run on torch's OpenMP threads; the runtime's path, or None.

    Inside the operators the team is torch's intra-op pool itself (one pool): a
    team of the kernels' own threads lost to torch's OpenMP threads, which spin
    for a while after each of torch's ops.
    """
    import glob
    import os
    if TORCH_BLAS is None:
        return None
    folder = os.path.dirname(torch.__file__)
    for pattern in ("lib/libgomp*.so*", "lib/libiomp5*.so*", "../torch.libs/libgomp*.so*"):
        for path in sorted(glob.glob(os.path.join(folder, pattern))):
            if _kernels._bind_torch_openmp(path):
                return path
    return None


#: torch's OpenMP runtime, whose threads run the kernels' thread team inside the
#: operators below, or None (no team there).
TORCH_OPENMP = _bind_torch_openmp()


def _mkl_threads_local():
    """``set(n) -> previous``: MKL's thread-local thread count in torch's library, or None.

    torch's library exports the Fortran entry point (``mkl_set_num_threads_local_``,
    the argument by reference); the C name is an alias of it there.
    """
    if TORCH_BLAS is None:
        return None
    import ctypes
    try:
        fn = ctypes.CDLL(TORCH_BLAS).mkl_set_num_threads_local_
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.POINTER(ctypes.c_int)], ctypes.c_int

    def set_threads(n):
        return fn(ctypes.byref(ctypes.c_int(n)))
    return set_threads


_MKL_THREADS_LOCAL = _mkl_threads_local()

def _on_torch_blas(step_work, kernel, *args):
    """``kernel(*args)`` with this thread's products on torch's BLAS.

    ``step_work`` is the multiply-adds of one step's recurrent product; small
    ones keep MKL on this thread for the whole call (the kernels' product
    policy decides which: forking torch's OpenMP team for every step's product
    at char size cost more than the product).  Where the policy plans the
    kernels' thread team, its size is torch's intra-op thread count, and each
    member calls MKL on its own thread alone, so that torch's pool stays idle.
    """
    sequential = (_MKL_THREADS_LOCAL is not None
                  and _kernels.product_is_sequential(step_work, 1, 1))
    previous = _MKL_THREADS_LOCAL(1) if sequential else None
    _kernels._use_torch_blas(True, torch.get_num_threads())
    try:
        return kernel(*args)
    finally:
        _kernels._use_torch_blas(False)
        if sequential:
            _MKL_THREADS_LOCAL(previous)


# -- tensors <-> arrays ----------------------------------------------------------

def _tensors(*arrays):
    """The arrays as CPU tensors sharing their memory (the operators' results)."""
    return tuple(torch.from_numpy(a) for a in arrays)


def _np(t):
    """The values of CPU tensor ``t`` as a C-contiguous ndarray (shared when already so)."""
    return t.detach().contiguous().numpy()


def _lengths(lengths):
    return None if lengths is None else np.ascontiguousarray(_np(lengths), dtype=np.intp)


def _padded_mask(lengths, n_steps):
    """``(N, T)`` booleans: step t of sequence i lies past its length."""
    return np.arange(n_steps)[None, :] >= lengths[:, None]


def _finish(states, lengths, reverse):
    """``(output, final states)`` from the kernels' ``states (N, T, P)``, left as they are.

    The output is a new array with zeros at padded steps: backward reads
    ``states``, so the caller may change the output in place.
    """
    final = (states[:, 0] if reverse else states[:, -1]).copy()
    out = states.copy()
    if lengths is not None:
        out[_padded_mask(lengths, states.shape[1])] = 0
    return out, final


def _double_backward(ctx, *grads):
    raise RuntimeError("rnnfast.torch does not support double backward (gradients of "
                       "gradients); use torch's own nn.RNN/LSTM/GRU for that")


def _no_backward_context(ctx, inputs, output):
    pass


# -- argument checks ----------------------------------------------------------------

_ACTIVATION_CODES = frozenset(_ACTIVATIONS.values())


def _parse(dim):
    """``"4H"`` -> ``(4, "H")``; ``"N"`` -> ``(1, "N")``."""
    return (int(dim[:-1]), dim[-1]) if dim[:-1].isdigit() else (1, dim)


_PARSED: dict[str, tuple] = {}        # spec -> its parsed dims, filled on first use


def _dims(spec, sizes):
    """``"(N, L, 4H) = (2, 3, 20)"``: a shape spec with the sizes known so far."""
    known = [str(f * sizes[s]) if s in sizes else d
             for d, (f, s) in zip(spec, map(_parse, spec), strict=True)]
    return f"({', '.join(spec)}) = ({', '.join(known)})"


def _bind(op, name, t, spec, sizes):
    """Check ``t``'s shape against ``spec``, binding the symbols seen first."""
    parsed = _PARSED.get(spec)
    if parsed is None:
        parsed = _PARSED[spec] = tuple(map(_parse, spec))
    shape = t.shape
    ok = len(shape) == len(parsed)
    if ok:
        for (factor, symbol), n in zip(parsed, shape, strict=True):
            known = sizes.get(symbol)
            if known is None and factor == 1:
                sizes[symbol] = n
            elif known is None or n != factor * known:
                ok = False
                break
    if not ok:
        raise RuntimeError(f"{op}: {name} must have shape {_dims(spec, sizes)}, got "
                           f"{tuple(shape)}")


def _check_arguments(op, tensors, lengths=None, activation=None):
    """Check every argument of operator ``op`` before a kernel runs; returns the sizes.

    Parameters
    ----------
    op : str
        The operator's name, for the messages.
    tensors : sequence of (str, Tensor or None, tuple of str)
        Each argument's name, value (None: an optional one left out) and
        shape, in symbols (``"N"``, ``"L"``, ``"H"``, ``"4H"``, ...) bound by
        the first argument that has them: the same symbol is the same size.
        All must be CPU tensors of one dtype, float32 or float64.
    lengths : Tensor or None
        Integer ``(N,)`` sequence lengths, each in ``1..L``.
    activation : int or None
        An Elman activation code.

    Raises
    ------
    RuntimeError
        Naming the first argument that does not fit, expected vs got.
    """
    sizes = {}
    dtype = None
    for name, t, spec in tensors:
        if t is None:
            continue
        if not t.is_cpu:
            raise RuntimeError(f"{op}: rnnfast runs on the CPU; {name} is on {t.device}")
        if dtype is None:
            dtype = t.dtype
            if dtype not in (torch.float32, torch.float64):
                raise RuntimeError(f"{op}: {name} must be float32 or float64, got {dtype}")
        elif t.dtype != dtype:
            raise RuntimeError(f"{op}: {name} must be {dtype} like {tensors[0][0]}, got "
                               f"{t.dtype}")
        _bind(op, name, t, spec, sizes)
    if activation is not None and activation not in _ACTIVATION_CODES:
        raise RuntimeError(f"{op}: activation must be one of {sorted(_ACTIVATION_CODES)}, got "
                           f"{activation}")
    if lengths is not None:
        _check_lengths(op, lengths, sizes["N"], sizes["L"])
    return sizes


def _check_lengths(op, lengths, n_batch, n_steps):
    if lengths.device.type != "cpu":
        raise RuntimeError(f"{op}: lengths is on {lengths.device}; it must be on the CPU")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise RuntimeError(f"{op}: lengths must be integers, got {lengths.dtype}")
    if tuple(lengths.shape) != (n_batch,):
        raise RuntimeError(f"{op}: lengths must have shape (N,) = ({n_batch},), got "
                           f"{tuple(lengths.shape)}")
    if n_batch and (int(lengths.min()) < 1 or int(lengths.max()) > n_steps):
        raise RuntimeError(f"{op}: lengths must lie in 1..L = 1..{n_steps}, got "
                           f"{lengths.tolist()}")


def _check_biases(op, b_ih, b_hh):
    if (b_ih is None) != (b_hh is None):
        raise RuntimeError(f"{op}: b_ih and b_hh are both given or both None")


def _empty_run(x):
    """True when there is nothing to compute (no sequence or no step)."""
    return x.shape[0] == 0 or x.shape[1] == 0


def _zeros(shape, like):
    return torch.zeros(shape, dtype=like.dtype)


# -- batching rules (torch.vmap) ------------------------------------------------------

def _vmap_by_loop(op):
    """A vmap rule running ``op`` once per vmapped index, the results stacked along 0."""
    def rule(info, in_dims, *args):
        pairs = list(zip(args, in_dims, strict=True))
        results = [op(*[a if d is None else a.select(d, b) for a, d in pairs])
                   for b in range(info.batch_size)]
        stacked = [torch.stack(column) for column in zip(*results, strict=True)]
        return type(results[0])(stacked), type(results[0])([0] * len(stacked))
    return rule


def _vmap_into_batch(op, batch_args):
    """A vmap rule folding the vmapped dimension into the batch ``N``.

    ``batch_args`` are the positions of the arguments whose dimension 0 is N
    (inputs, initial states, lengths); when any other argument (a weight) is
    vmapped, the op runs once per index instead.
    """
    loop = _vmap_by_loop(op)

    def rule(info, in_dims, *args):
        if any(d is not None for i, d in enumerate(in_dims) if i not in batch_args):
            return loop(info, in_dims, *args)
        B = info.batch_size
        folded = list(args)
        for i in batch_args:
            a, d = args[i], in_dims[i]
            if a is None:
                continue
            a = a.expand(B, *a.shape) if d is None else a.movedim(d, 0)
            folded[i] = a.reshape(B * a.shape[1], *a.shape[2:])
        results = op(*folded)
        unfolded = tuple(r.reshape(B, r.shape[0] // B if B else 0, *r.shape[1:])
                         for r in results)
        return unfolded, (0,) * len(unfolded)
    return rule


# -- autograd for torch.func ----------------------------------------------------------
# The operators' own autograd formulas (below) serve direct calls and
# torch.compile; torch.func (grad, vjp, vmap) needs an autograd.Function
# with setup_context.  These run the same formulas, and their vmap rule is
# generated from the operators' batching rules.

def _layer_function(name, op, setup, backward):
    op = getattr(torch.ops.rnnfast, op._name).default

    def forward(*args):
        with torch.no_grad():       # the operator's own autograd formula stays out
            return tuple(op(*args))
    return type(name, (torch.autograd.Function,),
                {"forward": staticmethod(forward), "setup_context": staticmethod(setup),
                 "backward": staticmethod(backward), "generate_vmap_rule": True})


# -- the Elman layer --------------------------------------------------------------

def _rnn_shapes(x, h0, w_ih, w_hh, b_ih, b_hh):
    return [("x", x, ("N", "L", "I")), ("h0", h0, ("N", "H")), ("w_ih", w_ih, ("H", "I")),
            ("w_hh", w_hh, ("H", "H")), ("b_ih", b_ih, ("H",)), ("b_hh", b_hh, ("H",))]


@torch.library.custom_op("rnnfast::rnn_layer", mutates_args=(), device_types="cpu")
def rnn_layer(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
              b_hh: Tensor | None, lengths: Tensor | None, reverse: bool,
              activation: int) -> tuple[Tensor, Tensor, Tensor]:
    """Run one direction of one Elman layer: the operator ``torch.ops.rnnfast.rnn_layer``.

    ``h_t = f(x_t w_ih^T + b_ih + h_{t-1} w_hh^T + b_hh)``, batch-first.  Its
    autograd formula runs :func:`rnn_layer_backward`; the NumPy twin is
    :func:`rnnfast.reference.rnn_layer_forward` (time-major).

    Every tensor is a CPU tensor; the floating-point ones share one dtype,
    float32 or float64 (that of the first one given), which is the dtype
    of the results.  Tensors need not be contiguous (contiguous ones are
    read without a copy).  A batch of ``N = 0`` gives empty results.

    Parameters
    ----------
    x : Tensor of shape (N, L, I)
        The inputs.
    h0 : Tensor of shape (N, H)
        The initial state.
    w_ih : Tensor of shape (H, I)
        Input weights.
    w_hh : Tensor of shape (H, H)
        Recurrent weights.
    b_ih, b_hh : Tensor of shape (H,) or None
        The biases, both or neither.
    lengths : Tensor of int of shape (N,) or None
        Each sequence's valid length, in ``1..L`` (``pack_padded_sequence``
        semantics: a later step leaves the state unchanged and outputs
        zeros); None: all ``L``.
    reverse : bool
        Run from the last step to the first.
    activation : int
        ``f``: 0 for tanh, 1 for relu.

    Returns
    -------
    output : Tensor of shape (N, L, H)
        The state after every step; zeros at padded steps.
    h_n : Tensor of shape (N, H)
        Each sequence's final state.
    states : Tensor of shape (N, L, H)
        The state after every step, carried through padded steps: what the
        backward pass reads.  It carries no gradient.

    Raises
    ------
    RuntimeError
        Naming the first argument that does not fit, expected against got: a tensor not
        on the CPU, of another dtype or of a shape that does not agree with the others',
        an activation code other than 0 or 1, one bias without the other, or lengths
        that are not integers of shape ``(N,)`` in ``1..L``.

    See Also
    --------
    rnn_layer_backward : The gradients.

    Examples
    --------
    >>> import torch
    >>> import rnnfast.torch
    >>> x, h0 = torch.randn(2, 5, 3), torch.zeros(2, 4)
    >>> w_ih, w_hh = torch.randn(4, 3), torch.randn(4, 4)
    >>> output, h_n, states = torch.ops.rnnfast.rnn_layer(
    ...     x, h0, w_ih, w_hh, None, None, None, False, 0)
    >>> output.shape, h_n.shape
    (torch.Size([2, 5, 4]), torch.Size([2, 4]))
    """
    op = "rnnfast::rnn_layer"
    _check_biases(op, b_ih, b_hh)
    _check_arguments(op, _rnn_shapes(x, h0, w_ih, w_hh, b_ih, b_hh), lengths, activation)
    n_batch, n_steps, n_in = x.shape
    if _empty_run(x):
        empty = _zeros((n_batch, n_steps, w_hh.shape[0]), x)
        return empty, h0.clone(), empty.clone()
    h0_ = _np(h0)
    bias = (np.zeros(w_hh.shape[0], h0_.dtype) if b_ih is None
            else _np(b_ih) + _np(b_hh))
    lens = _lengths(lengths)
    states = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.layer_forward,
        _np(x).reshape(n_batch * n_steps, n_in), h0_, _np(w_ih), _np(w_hh), bias, lens, reverse,
        activation, _functional.use_own_products(n_batch, h0_.shape[1]))
    out, final = _finish(states, lens, reverse)
    return torch.from_numpy(out), torch.from_numpy(final), torch.from_numpy(states)


@rnn_layer.register_fake
def _(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, activation):
    n_batch, n_steps, _ = x.shape
    H = w_hh.shape[0]
    return (x.new_empty((n_batch, n_steps, H)), x.new_empty((n_batch, H)),
            x.new_empty((n_batch, n_steps, H)))


@torch.library.custom_op("rnnfast::rnn_layer_backward", mutates_args=(), device_types="cpu")
def rnn_layer_backward(x: Tensor, h0: Tensor, states: Tensor, d_out: Tensor, d_h_n: Tensor,
                       w_ih: Tensor, w_hh: Tensor, lengths: Tensor | None, reverse: bool,
                       activation: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Compute the gradients of :func:`rnn_layer` (the backward operator).

    The operator ``torch.ops.rnnfast.rnn_layer_backward``: the compiled BPTT of
    one Elman layer direction; the NumPy twin is
    :func:`rnnfast.reference.rnn_layer_backward`.  It has no gradient itself
    (no double backward).

    Every tensor is a CPU tensor; the floating-point ones share one dtype,
    float32 or float64 (that of the first one given), which is the dtype
    of the results.  Tensors need not be contiguous (contiguous ones are
    read without a copy).  A batch of ``N = 0`` gives empty results.

    Parameters
    ----------
    x : Tensor of shape (N, L, I)
        The inputs of the forward pass.
    h0 : Tensor of shape (N, H)
        Its initial state.
    states : Tensor of shape (N, L, H)
        The ``states`` :func:`rnn_layer` returned.
    d_out : Tensor of shape (N, L, H)
        Gradient with respect to ``output`` (ignored at padded steps).
    d_h_n : Tensor of shape (N, H)
        Gradient with respect to ``h_n``.
    w_ih : Tensor of shape (H, I)
        Input weights.
    w_hh : Tensor of shape (H, H)
        Recurrent weights.
    lengths : Tensor of int of shape (N,) or None
        Each sequence's valid length, in ``1..L`` (``pack_padded_sequence``
        semantics: a later step leaves the state unchanged and outputs
        zeros); None: all ``L``.
    reverse : bool
        Run from the last step to the first.
    activation : int
        0 for tanh, 1 for relu, as in the forward pass.

    Returns
    -------
    dx : Tensor of shape (N, L, I)
        Gradient with respect to ``x``.
    dh0 : Tensor of shape (N, H)
        Gradient with respect to ``h0``.
    dW_ih : Tensor of shape (H, I)
        Gradient with respect to ``w_ih``.
    dW_hh : Tensor of shape (H, H)
        Gradient with respect to ``w_hh``.
    db : Tensor of shape (H,)
        Gradient with respect to ``b_ih`` and to ``b_hh`` (the same: both enter
        one sum).

    Raises
    ------
    RuntimeError
        Naming the first argument that does not fit, expected against got: a tensor not
        on the CPU, of another dtype or of a shape that does not agree with the others',
        or an activation code other than 0 or 1, or lengths that are not integers of
        shape ``(N,)`` in ``1..L``.
    """
    op = "rnnfast::rnn_layer_backward"
    _check_arguments(op, [*_rnn_shapes(x, h0, w_ih, w_hh, None, None),
                          ("states", states, ("N", "L", "H")), ("d_out", d_out, ("N", "L", "H")),
                          ("d_h_n", d_h_n, ("N", "H"))], lengths, activation)
    n_batch, n_steps, n_in = x.shape
    if _empty_run(x):
        return (torch.zeros_like(x), d_h_n.clone(), torch.zeros_like(w_ih),
                torch.zeros_like(w_hh), _zeros((w_hh.shape[0],), x))
    h0_ = _np(h0)
    dx, dh0, dw_ih, dw_hh, db = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.layer_backward,
        _np(x).reshape(n_batch * n_steps, n_in), h0_, _np(states), np.array(_np(d_out), copy=True),
        np.ascontiguousarray(_np(d_h_n)), _np(w_ih), _np(w_hh), _lengths(lengths), reverse,
        activation, _functional.use_own_products(n_batch, h0_.shape[1]))
    return _tensors(dx.reshape(n_batch, n_steps, n_in), dh0, dw_ih, dw_hh, db)


@rnn_layer_backward.register_fake
def _(x, h0, states, d_out, d_h_n, w_ih, w_hh, lengths, reverse, activation):
    return (torch.empty_like(x), torch.empty_like(h0), torch.empty_like(w_ih),
            torch.empty_like(w_hh), w_hh.new_empty((w_hh.shape[0],)))


def _rnn_setup(ctx, inputs, output):
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, activation = inputs
    ctx.save_for_backward(x, h0, w_ih, w_hh, lengths, output[2])
    ctx.reverse, ctx.activation = reverse, activation
    ctx.mark_non_differentiable(output[2])
    ctx.set_materialize_grads(False)


def _rnn_backward(backward_op, ctx, d_out, d_h_n, d_states):
    x, h0, w_ih, w_hh, lengths, states = ctx.saved_tensors
    dx, dh0, dw_ih, dw_hh, db = backward_op(
        x, h0, states, _zeros_if_none(d_out, states), _zeros_if_none(d_h_n, h0), w_ih, w_hh,
        lengths, ctx.reverse, ctx.activation)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, dh0 if need[1] else None, dw_ih if need[2] else None,
            dw_hh if need[3] else None, db if need[4] else None, db if need[5] else None,
            None, None, None)


def _zeros_if_none(g, like):
    return torch.zeros_like(like) if g is None else g


rnn_layer.register_autograd(functools.partial(_rnn_backward, rnn_layer_backward),
                             setup_context=_rnn_setup)
rnn_layer_backward.register_autograd(_double_backward, setup_context=_no_backward_context)
rnn_layer.register_vmap(_vmap_into_batch(rnn_layer, (0, 1, 6)))
rnn_layer_backward.register_vmap(_vmap_by_loop(rnn_layer_backward))


# -- the LSTM layer ---------------------------------------------------------------

def _lstm_shapes(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr):
    P = "H" if w_hr is None else "P"
    return [("x", x, ("N", "L", "I")), ("c0", c0, ("N", "H")), ("h0", h0, ("N", P)),
            ("w_ih", w_ih, ("4H", "I")), ("w_hh", w_hh, ("4H", P)), ("b_ih", b_ih, ("4H",)),
            ("b_hh", b_hh, ("4H",)), ("w_hr", w_hr, ("P", "H"))]


@torch.library.custom_op("rnnfast::lstm_layer", mutates_args=(), device_types="cpu")
def lstm_layer(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor,
               b_ih: Tensor | None, b_hh: Tensor | None, w_hr: Tensor | None,
               lengths: Tensor | None, reverse: bool
               ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Run one direction of one LSTM layer: the operator ``torch.ops.rnnfast.lstm_layer``.

    torch's equations and gate order ``i, f, g, o``, batch-first.  ``P`` is
    ``H`` without a projection, else ``w_hr``'s first size.  Its autograd
    formula runs :func:`lstm_layer_backward`; the NumPy twin is
    :func:`rnnfast.reference.lstm_layer_forward` (time-major).

    Every tensor is a CPU tensor; the floating-point ones share one dtype,
    float32 or float64 (that of the first one given), which is the dtype
    of the results.  Tensors need not be contiguous (contiguous ones are
    read without a copy).  A batch of ``N = 0`` gives empty results.

    Parameters
    ----------
    x : Tensor of shape (N, L, I)
        The inputs.
    h0 : Tensor of shape (N, P)
        The initial hidden state.
    c0 : Tensor of shape (N, H)
        The initial cell state.
    w_ih : Tensor of shape (4H, I)
        Input weights.
    w_hh : Tensor of shape (4H, P)
        Recurrent weights.
    b_ih, b_hh : Tensor of shape (4H,) or None
        The biases, both or neither.
    w_hr : Tensor of shape (P, H) or None
        The projection of ``h`` (None: none, ``P = H``).
    lengths : Tensor of int of shape (N,) or None
        Each sequence's valid length, in ``1..L`` (``pack_padded_sequence``
        semantics: a later step leaves the state unchanged and outputs
        zeros); None: all ``L``.
    reverse : bool
        Run from the last step to the first.

    Returns
    -------
    output : Tensor of shape (N, L, P)
        ``h`` after every step; zeros at padded steps.
    h_n : Tensor of shape (N, P)
        Each sequence's final hidden state.
    c_n : Tensor of shape (N, H)
        Each sequence's final cell state.
    states : Tensor of shape (N, L, P)
        ``h`` after every step, carried through padded steps.
    cells : Tensor of shape (N, L, H)
        ``c`` after every step.
    gates : Tensor of shape (N, L, 4H)
        The activated gates ``i, f, g, o`` of every step.  The last three are
        what the backward pass reads; they carry no gradient.

    Raises
    ------
    RuntimeError
        Naming the first argument that does not fit, expected against got: a tensor not
        on the CPU, of another dtype or of a shape that does not agree with the others',
        or one bias without the other, or lengths that are not integers of shape
        ``(N,)`` in ``1..L``.

    See Also
    --------
    lstm_layer_backward : The gradients.

    Examples
    --------
    >>> import torch
    >>> import rnnfast.torch
    >>> N, L, I, H = 2, 5, 3, 4
    >>> out = torch.ops.rnnfast.lstm_layer(
    ...     torch.randn(N, L, I), torch.zeros(N, H), torch.zeros(N, H),
    ...     torch.randn(4 * H, I), torch.randn(4 * H, H), None, None, None, None, False)
    >>> [tuple(t.shape) for t in out]
    [(2, 5, 4), (2, 4), (2, 4), (2, 5, 4), (2, 5, 4), (2, 5, 16)]
    """
    op = "rnnfast::lstm_layer"
    _check_biases(op, b_ih, b_hh)
    _check_arguments(op, _lstm_shapes(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr), lengths)
    n_batch, n_steps, n_in = x.shape
    if _empty_run(x):
        H, P = c0.shape[1], h0.shape[1]
        return (_zeros((n_batch, n_steps, P), x), h0.clone(), c0.clone(),
                _zeros((n_batch, n_steps, P), x), _zeros((n_batch, n_steps, H), x),
                _zeros((n_batch, n_steps, 4 * H), x))
    bias = None if b_ih is None else _np(b_ih) + _np(b_hh)
    lens = _lengths(lengths)
    states, cells, gates = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.lstm_layer_forward,
        _np(x).reshape(n_batch * n_steps, n_in), _np(h0), _np(c0), _np(w_ih), _np(w_hh), bias,
        None if w_hr is None else _np(w_hr), lens, reverse)
    c_n = (cells[:, 0] if reverse else cells[:, -1]).copy()
    out, h_n = _finish(states, lens, reverse)
    return _tensors(out, h_n, c_n, states, cells, gates)


@lstm_layer.register_fake
def _(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse):
    n_batch, n_steps, _ = x.shape
    H, P = c0.shape[1], h0.shape[1]
    return (x.new_empty((n_batch, n_steps, P)), x.new_empty((n_batch, P)),
            x.new_empty((n_batch, H)), x.new_empty((n_batch, n_steps, P)),
            x.new_empty((n_batch, n_steps, H)), x.new_empty((n_batch, n_steps, 4 * H)))


@torch.library.custom_op("rnnfast::lstm_layer_backward", mutates_args=(), device_types="cpu")
def lstm_layer_backward(x: Tensor, h0: Tensor, c0: Tensor, states: Tensor, cells: Tensor,
                        gates: Tensor, d_out: Tensor, d_h_n: Tensor, d_c_n: Tensor,
                        w_ih: Tensor, w_hh: Tensor, w_hr: Tensor | None,
                        lengths: Tensor | None, reverse: bool) -> list[Tensor]:
    """Compute the gradients of :func:`lstm_layer` (the backward operator).

    The operator ``torch.ops.rnnfast.lstm_layer_backward``: the compiled BPTT of
    one LSTM layer direction; the NumPy twin is
    :func:`rnnfast.reference.lstm_layer_backward`.  It has no gradient itself.

    Every tensor is a CPU tensor; the floating-point ones share one dtype,
    float32 or float64 (that of the first one given), which is the dtype
    of the results.  Tensors need not be contiguous (contiguous ones are
    read without a copy).  A batch of ``N = 0`` gives empty results.

    Parameters
    ----------
    x : Tensor of shape (N, L, I)
        The inputs of the forward pass.
    h0 : Tensor of shape (N, P)
        Its initial hidden state.
    c0 : Tensor of shape (N, H)
        Its initial cell state.
    states : Tensor of shape (N, L, P)
        The ``states`` :func:`lstm_layer` returned.
    cells : Tensor of shape (N, L, H)
        The ``cells`` it returned.
    gates : Tensor of shape (N, L, 4H)
        The ``gates`` it returned.
    d_out : Tensor of shape (N, L, P)
        Gradient with respect to ``output`` (ignored at padded steps).
    d_h_n : Tensor of shape (N, P)
        Gradient with respect to ``h_n``.
    d_c_n : Tensor of shape (N, H)
        Gradient with respect to ``c_n``.
    w_ih : Tensor of shape (4H, I)
        Input weights.
    w_hh : Tensor of shape (4H, P)
        Recurrent weights.
    w_hr : Tensor of shape (P, H) or None
        The projection, as in the forward pass.
    lengths : Tensor of int of shape (N,) or None
        Each sequence's valid length, in ``1..L`` (``pack_padded_sequence``
        semantics: a later step leaves the state unchanged and outputs
        zeros); None: all ``L``.
    reverse : bool
        Run from the last step to the first.

    Returns
    -------
    grads : list of Tensor
        ``[dx (N, L, I), dh0 (N, P), dc0 (N, H), dW_ih (4H, I), dW_hh (4H, P),
        db (4H,), dW_hr (P, H)]``: the gradients with respect to those
        arguments, ``db`` that of each bias, ``dW_hr`` empty (shape ``(0,)``)
        without a projection.

    Raises
    ------
    RuntimeError
        Naming the first argument that does not fit, expected against got: a tensor not
        on the CPU, of another dtype or of a shape that does not agree with the others',
        or lengths that are not integers of shape ``(N,)`` in ``1..L``.
    """
    op = "rnnfast::lstm_layer_backward"
    P = "H" if w_hr is None else "P"
    _check_arguments(op, [*_lstm_shapes(x, h0, c0, w_ih, w_hh, None, None, w_hr),
                          ("states", states, ("N", "L", P)), ("cells", cells, ("N", "L", "H")),
                          ("gates", gates, ("N", "L", "4H")), ("d_out", d_out, ("N", "L", P)),
                          ("d_h_n", d_h_n, ("N", P)), ("d_c_n", d_c_n, ("N", "H"))], lengths)
    n_batch, n_steps, n_in = x.shape
    if _empty_run(x):
        return [torch.zeros_like(x), d_h_n.clone(), d_c_n.clone(), torch.zeros_like(w_ih),
                torch.zeros_like(w_hh), _zeros((w_hh.shape[0],), x),
                _zeros((0,), x) if w_hr is None else torch.zeros_like(w_hr)]
    dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.lstm_layer_backward,
        _np(x).reshape(n_batch * n_steps, n_in), _np(h0), _np(c0), _np(states), _np(cells),
        _np(gates), np.array(_np(d_out), copy=True), np.ascontiguousarray(_np(d_h_n)),
        np.ascontiguousarray(_np(d_c_n)), _np(w_ih), _np(w_hh),
        None if w_hr is None else _np(w_hr), _lengths(lengths), reverse)
    if dw_hr is None:
        dw_hr = np.zeros(0, dtype=dw_ih.dtype)
    return [torch.from_numpy(a) for a in (dx.reshape(n_batch, n_steps, n_in), dh0, dc0,
                                          dw_ih, dw_hh, db, dw_hr)]


@lstm_layer_backward.register_fake
def _(x, h0, c0, states, cells, gates, d_out, d_h_n, d_c_n, w_ih, w_hh, w_hr, lengths,
      reverse):
    return [torch.empty_like(x), torch.empty_like(h0), torch.empty_like(c0),
            torch.empty_like(w_ih), torch.empty_like(w_hh), w_hh.new_empty((w_hh.shape[0],)),
            w_ih.new_empty((0,)) if w_hr is None else torch.empty_like(w_hr)]


def _lstm_setup(ctx, inputs, output):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse = inputs
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, w_hr, lengths, *output[3:])
    ctx.reverse = reverse
    ctx.mark_non_differentiable(*output[3:])
    ctx.set_materialize_grads(False)


def _lstm_backward(backward_op, ctx, d_out, d_h_n, d_c_n, d_states, d_cells, d_gates):
    x, h0, c0, w_ih, w_hh, w_hr, lengths, states, cells, gates = ctx.saved_tensors
    dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = backward_op(
        x, h0, c0, states, cells, gates, _zeros_if_none(d_out, states),
        _zeros_if_none(d_h_n, h0), _zeros_if_none(d_c_n, c0), w_ih, w_hh, w_hr, lengths,
        ctx.reverse)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, dh0 if need[1] else None, dc0 if need[2] else None,
            dw_ih if need[3] else None, dw_hh if need[4] else None, db if need[5] else None,
            db if need[6] else None, dw_hr if need[7] else None, None, None)


lstm_layer.register_autograd(functools.partial(_lstm_backward, lstm_layer_backward),
                             setup_context=_lstm_setup)
lstm_layer_backward.register_autograd(_double_backward, setup_context=_no_backward_context)
lstm_layer.register_vmap(_vmap_into_batch(lstm_layer, (0, 1, 2, 8)))
lstm_layer_backward.register_vmap(_vmap_by_loop(lstm_layer_backward))


# -- the GRU layer ----------------------------------------------------------------

def _gru_shapes(x, h0, w_ih, w_hh, b_ih, b_hh):
    return [("x", x, ("N", "L", "I")), ("h0", h0, ("N", "H")), ("w_ih", w_ih, ("3H", "I")),
            ("w_hh", w_hh, ("3H", "H")), ("b_ih", b_ih, ("3H",)), ("b_hh", b_hh, ("3H",))]


@torch.library.custom_op("rnnfast::gru_layer", mutates_args=(), device_types="cpu")
def gru_layer(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
              b_hh: Tensor | None, lengths: Tensor | None, reverse: bool
              ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Run one direction of one GRU layer: the operator ``torch.ops.rnnfast.gru_layer``.

    torch's equations and gate order ``r, z, n``, batch-first.  Its autograd
    formula runs :func:`gru_layer_backward`; the NumPy twin is
    :func:`rnnfast.reference.gru_layer_forward` (time-major).

    Every tensor is a CPU tensor; the floating-point ones share one dtype,
    float32 or float64 (that of the first one given), which is the dtype
    of the results.  Tensors need not be contiguous (contiguous ones are
    read without a copy).  A batch of ``N = 0`` gives empty results.

    Parameters
    ----------
    x : Tensor of shape (N, L, I)
        The inputs.
    h0 : Tensor of shape (N, H)
        The initial state.
    w_ih : Tensor of shape (3H, I)
        Input weights.
    w_hh : Tensor of shape (3H, H)
        Recurrent weights.
    b_ih, b_hh : Tensor of shape (3H,) or None
        The biases, both or neither.
    lengths : Tensor of int of shape (N,) or None
        Each sequence's valid length, in ``1..L`` (``pack_padded_sequence``
        semantics: a later step leaves the state unchanged and outputs
        zeros); None: all ``L``.
    reverse : bool
        Run from the last step to the first.

    Returns
    -------
    output : Tensor of shape (N, L, H)
        The state after every step; zeros at padded steps.
    h_n : Tensor of shape (N, H)
        Each sequence's final state.
    states : Tensor of shape (N, L, H)
        The state after every step, carried through padded steps.
    gates : Tensor of shape (N, L, 3H)
        The activated gates ``r, z, n`` of every step.
    hn : Tensor of shape (N, L, H)
        ``h_{t-1} W_hn^T + b_hn`` of every step.  The last three are what the
        backward pass reads; they carry no gradient.

    Raises
    ------
    RuntimeError
        Naming the first argument that does not fit, expected against got: a tensor not
        on the CPU, of another dtype or of a shape that does not agree with the others',
        or one bias without the other, or lengths that are not integers of shape
        ``(N,)`` in ``1..L``.

    See Also
    --------
    gru_layer_backward : The gradients.
    """
    op = "rnnfast::gru_layer"
    _check_biases(op, b_ih, b_hh)
    _check_arguments(op, _gru_shapes(x, h0, w_ih, w_hh, b_ih, b_hh), lengths)
    n_batch, n_steps, n_in = x.shape
    if _empty_run(x):
        H = h0.shape[1]
        return (_zeros((n_batch, n_steps, H), x), h0.clone(), _zeros((n_batch, n_steps, H), x),
                _zeros((n_batch, n_steps, 3 * H), x), _zeros((n_batch, n_steps, H), x))
    lens = _lengths(lengths)
    states, gates, hn = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.gru_layer_forward,
        _np(x).reshape(n_batch * n_steps, n_in), _np(h0), _np(w_ih), _np(w_hh),
        None if b_ih is None else _np(b_ih), None if b_hh is None else _np(b_hh), lens, reverse)
    out, h_n = _finish(states, lens, reverse)
    return _tensors(out, h_n, states, gates, hn)


@gru_layer.register_fake
def _(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse):
    n_batch, n_steps, _ = x.shape
    H = h0.shape[1]
    return (x.new_empty((n_batch, n_steps, H)), x.new_empty((n_batch, H)),
            x.new_empty((n_batch, n_steps, H)), x.new_empty((n_batch, n_steps, 3 * H)),
            x.new_empty((n_batch, n_steps, H)))


@torch.library.custom_op("rnnfast::gru_layer_backward", mutates_args=(), device_types="cpu")
def gru_layer_backward(x: Tensor, h0: Tensor, states: Tensor, gates: Tensor, hn: Tensor,
                       d_out: Tensor, d_h_n: Tensor, w_ih: Tensor, w_hh: Tensor,
                       lengths: Tensor | None, reverse: bool) -> list[Tensor]:
    """Compute the gradients of :func:`gru_layer` (the backward operator).

    The operator ``torch.ops.rnnfast.gru_layer_backward``: the compiled BPTT of
    one GRU layer direction; the NumPy twin is
    :func:`rnnfast.reference.gru_layer_backward`.  It has no gradient itself.

    Every tensor is a CPU tensor; the floating-point ones share one dtype,
    float32 or float64 (that of the first one given), which is the dtype
    of the results.  Tensors need not be contiguous (contiguous ones are
    read without a copy).  A batch of ``N = 0`` gives empty results.

    Parameters
    ----------
    x : Tensor of shape (N, L, I)
        The inputs of the forward pass.
    h0 : Tensor of shape (N, H)
        Its initial state.
    states : Tensor of shape (N, L, H)
        The ``states`` :func:`gru_layer` returned.
    gates : Tensor of shape (N, L, 3H)
        The ``gates`` it returned.
    hn : Tensor of shape (N, L, H)
        The ``hn`` it returned.
    d_out : Tensor of shape (N, L, H)
        Gradient with respect to ``output`` (ignored at padded steps).
    d_h_n : Tensor of shape (N, H)
        Gradient with respect to ``h_n``.
    w_ih : Tensor of shape (3H, I)
        Input weights.
    w_hh : Tensor of shape (3H, H)
        Recurrent weights.
    lengths : Tensor of int of shape (N,) or None
        Each sequence's valid length, in ``1..L`` (``pack_padded_sequence``
        semantics: a later step leaves the state unchanged and outputs
        zeros); None: all ``L``.
    reverse : bool
        Run from the last step to the first.

    Returns
    -------
    grads : list of Tensor
        ``[dx (N, L, I), dh0 (N, H), dW_ih (3H, I), dW_hh (3H, H), db_ih (3H,),
        db_hh (3H,)]``: the gradients with respect to those arguments and the
        two biases (they differ in the ``n`` gate, where ``b_hn`` is multiplied
        by ``r``).

    Raises
    ------
    RuntimeError
        Naming the first argument that does not fit, expected against got: a tensor not
        on the CPU, of another dtype or of a shape that does not agree with the others',
        or lengths that are not integers of shape ``(N,)`` in ``1..L``.
    """
    op = "rnnfast::gru_layer_backward"
    _check_arguments(op, [*_gru_shapes(x, h0, w_ih, w_hh, None, None),
                          ("states", states, ("N", "L", "H")), ("gates", gates, ("N", "L", "3H")),
                          ("hn", hn, ("N", "L", "H")), ("d_out", d_out, ("N", "L", "H")),
                          ("d_h_n", d_h_n, ("N", "H"))], lengths)
    n_batch, n_steps, n_in = x.shape
    if _empty_run(x):
        G = w_hh.shape[0]
        return [torch.zeros_like(x), d_h_n.clone(), torch.zeros_like(w_ih),
                torch.zeros_like(w_hh), _zeros((G,), x), _zeros((G,), x)]
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.gru_layer_backward,
        _np(x).reshape(n_batch * n_steps, n_in), _np(h0), _np(states), _np(gates), _np(hn),
        np.ascontiguousarray(_np(d_out)), np.ascontiguousarray(_np(d_h_n)), _np(w_ih),
        _np(w_hh), _lengths(lengths), reverse)
    return [torch.from_numpy(a) for a in (dx.reshape(n_batch, n_steps, n_in), dh0, dw_ih,
                                          dw_hh, db_ih, db_hh)]


@gru_layer_backward.register_fake
def _(x, h0, states, gates, hn, d_out, d_h_n, w_ih, w_hh, lengths, reverse):
    G = w_hh.shape[0]
    return [torch.empty_like(x), torch.empty_like(h0), torch.empty_like(w_ih),
            torch.empty_like(w_hh), w_hh.new_empty((G,)), w_hh.new_empty((G,))]


def _gru_setup(ctx, inputs, output):
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse = inputs
    ctx.save_for_backward(x, h0, w_ih, w_hh, lengths, *output[2:])
    ctx.reverse = reverse
    ctx.mark_non_differentiable(*output[2:])
    ctx.set_materialize_grads(False)


def _gru_backward(backward_op, ctx, d_out, d_h_n, d_states, d_gates, d_hn):
    x, h0, w_ih, w_hh, lengths, states, gates, hn = ctx.saved_tensors
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = backward_op(
        x, h0, states, gates, hn, _zeros_if_none(d_out, states), _zeros_if_none(d_h_n, h0),
        w_ih, w_hh, lengths, ctx.reverse)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, dh0 if need[1] else None, dw_ih if need[2] else None,
            dw_hh if need[3] else None, db_ih if need[4] else None, db_hh if need[5] else None,
            None, None)


gru_layer.register_autograd(functools.partial(_gru_backward, gru_layer_backward),
                             setup_context=_gru_setup)
gru_layer_backward.register_autograd(_double_backward, setup_context=_no_backward_context)
gru_layer.register_vmap(_vmap_into_batch(gru_layer, (0, 1, 6)))
gru_layer_backward.register_vmap(_vmap_by_loop(gru_layer_backward))


_RNNLayerBackward, _LSTMLayerBackward, _GRULayerBackward = (
    _layer_function(f"_{kind}LayerBackward", op, _no_backward_context, _double_backward)
    for kind, op in (("RNN", rnn_layer_backward), ("LSTM", lstm_layer_backward),
                     ("GRU", gru_layer_backward)))
_RNNLayer = _layer_function("_RNNLayer", rnn_layer, _rnn_setup,
                            functools.partial(_rnn_backward, _RNNLayerBackward.apply))
_LSTMLayer = _layer_function("_LSTMLayer", lstm_layer, _lstm_setup,
                             functools.partial(_lstm_backward, _LSTMLayerBackward.apply))
_GRULayer = _layer_function("_GRULayer", gru_layer, _gru_setup,
                            functools.partial(_gru_backward, _GRULayerBackward.apply))


def _show_the_function(op):
    """Make ``help(op)``, :func:`inspect.signature` and the documentation show the
    operator's own docstring and signature, not those of torch's ``CustomOpDef`` class."""
    op.__doc__ = op._init_fn.__doc__
    op.__signature__ = inspect.signature(op._init_fn)


for _op in (rnn_layer, rnn_layer_backward, lstm_layer, lstm_layer_backward, gru_layer,
            gru_layer_backward):
    _show_the_function(_op)


# The torch operator of each cell, by its torch name: (operator, the autograd.Function
# running it under torch.func).  Each is called as
# ``op(x, *states, weight_ih, weight_hh, bias_ih, bias_hh[, weight_hr], lengths, reverse
# [, activation])`` and returns ``(output, *final states, ...)``.
_OPERATORS = {"RNN": (rnn_layer, _RNNLayer), "LSTM": (lstm_layer, _LSTMLayer),
              "GRU": (gru_layer, _GRULayer)}


def _layer_call(op, function):
    """How the modules call a layer operator.

    Under torch.func's transforms, through ``function``; otherwise the
    operator with its own autograd formula (the same formula, without the
    autograd.Function's per-call signature binding; torch.compile also does
    not trace an autograd.Function inside another's backward).
    """
    if torch.compiler.is_compiling() or not torch._C._are_functorch_transforms_active():
        return op
    return function.apply


# -- the modules ------------------------------------------------------------------

# The dtypes torch's own implementation runs for these modules (rnnfast's kernels do not).
_TORCHS_DTYPES = (torch.float16, torch.bfloat16)
_OUR_DTYPES = (torch.float32, torch.float64)

# The modules that said once that they run torch's own implementation.
_WARNED: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()

_TORCH_FOLDER = os.path.dirname(torch.__file__)


def _stacklevel():
    """The ``stacklevel`` of the first caller's frame outside this file and torch's package."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename == __file__
                                 or frame.f_code.co_filename.startswith(_TORCH_FOLDER)):
        frame, level = frame.f_back, level + 1
    return level


class _RNNfastBase(torch.nn.RNNBase):
    """``torch.nn.RNNBase`` whose forward runs rnnfast's kernels (CPU, float32/float64).

    Elsewhere (another device, float16 or bfloat16) ``forward`` is the one of
    torch's class of the same name, on the same parameters.
    """

    def flatten_parameters(self):
        """rnnfast reads CPU parameters where they are; on CUDA, torch's own (for cuDNN)."""
        weights = getattr(self, "_flat_weights", None)
        if weights and isinstance(weights[0], Tensor) and weights[0].is_cuda:
            torch.nn.RNNBase.flatten_parameters(self)

    def _torchs_reason(self, input, hx):
        """Why torch's own forward must run (a tensor off the CPU or in half precision), or
        None when rnnfast's kernels can; then ``TypeError`` for a parameter of another
        dtype than float32 or float64."""
        # the parameters first: TorchScript then refuses the module as documented
        parameters = [(f"parameter {name}", p) for name, p in self.named_parameters()]
        data = input.data if isinstance(input, PackedSequence) else input
        states = () if hx is None else (hx if isinstance(hx, (tuple, list)) else (hx,))
        named = [("input", data)] + list(zip(("hx", "cx"), states, strict=False))
        refused = None
        for name, t in named + parameters:
            if not isinstance(t, Tensor):
                continue
            if not t.is_cpu:
                return f"{name} is on {t.device}"
            dtype = t.dtype
            if dtype in _TORCHS_DTYPES:
                return f"{name} is {dtype}"
            if refused is None and dtype not in _OUR_DTYPES and name.startswith("parameter"):
                refused = name, t
        if refused is not None:
            self._check_tensor(*refused)
        return None

    def _torchs_forward(self, input, hx, reason):
        """torch's own forward of this kind of module, on the same parameters."""
        kind = CELLS[self.mode].torch_name
        if self not in _WARNED:
            _WARNED.add(self)
            warnings.warn(f"rnnfast.torch.{kind} runs torch's own nn.{kind} forward: "
                          f"{reason}, and rnnfast's kernels compute on CPU float32/float64 "
                          "tensors (said once per module)", UserWarning,
                          stacklevel=_stacklevel())
        return getattr(torch.nn, kind).forward(self, input, hx)

    def _check_tensor(self, name, t):
        if t.device.type != "cpu":
            raise RuntimeError(f"rnnfast.torch runs on the CPU; {name} is on {t.device} "
                               f"(use torch's own nn.{CELLS[self.mode].torch_name} there)")
        if t.dtype not in _OUR_DTYPES:
            raise TypeError(f"rnnfast.torch computes in float32 or float64; {name} is "
                            f"{t.dtype}")

    def _check_parameters(self, dtype):
        """Every parameter has ``dtype`` and the shape the configuration gives it."""
        for name in self._flat_weights_names:
            p = getattr(self, name)
            if p is None:
                continue
            if p.dtype != dtype:
                raise RuntimeError(f"{type(self).__name__}: parameter {name} must be {dtype} "
                                   f"like weight_ih_l0, got {p.dtype}")
            expected = self._parameter_shape(name)
            if tuple(p.shape) != expected:
                raise RuntimeError(f"{type(self).__name__}: parameter {name} must have shape "
                                   f"{expected}, got {tuple(p.shape)}")

    def _parameter_shape(self, name):
        """The shape of parameter ``name`` (``weight_ih_l1_reverse``, ...) in this configuration."""
        # torch.compile warns about (and traces past) an lru_cache
        shape = _parameter_shape.__wrapped__ if torch.compiler.is_compiling() else _parameter_shape
        return shape(name, self.mode, self.input_size, self.hidden_size, self.proj_size,
                     self.bidirectional)

    def _layer(self, x, states, k, sfx, lengths, reverse):
        """One direction of layer ``k``: ``(output (N, T, P), final states)``."""
        cell = CELLS[self.mode]
        op, function = _OPERATORS[cell.torch_name]
        p = f"_l{k}{sfx}"
        weights = [getattr(self, "weight_ih" + p), getattr(self, "weight_hh" + p),
                   getattr(self, "bias_ih" + p, None), getattr(self, "bias_hh" + p, None)]
        if cell.projection:
            weights.append(getattr(self, "weight_hr" + p, None))
        activation = _ACTIVATIONS.get(self.mode)
        extra = () if activation is None else (activation,)
        results = _layer_call(op, function)(x, *states, *weights, lengths, reverse, *extra)
        return results[0], tuple(results[1:1 + len(states)])

    def _run_direction(self, lengths, layer_input, k, d, sfx, states):
        """:meth:`_layer` as :func:`rnnfast._layers.stack_forward` calls a direction."""
        return self._layer(layer_input, states, k, sfx, lengths, d == 1)

    def _join_layer(self, k, outputs):
        """Layer ``k``'s output: its directions concatenated, dropout below the last layer."""
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
        if self.dropout and self.training and k < self.num_layers - 1:
            out = torch.nn.functional.dropout(out, self.dropout, True)
        return out

    def forward(self, input, hx=None):
        """As torch's ``forward``: ``(output, h_n)``, or ``(output, (h_n, c_n))`` for the LSTM.

        With a tensor (input, state or parameter) off the CPU or in float16 or
        bfloat16, torch's own ``forward`` of the same class runs instead, on
        the same parameters; the first time, a ``UserWarning`` names the tensor.
        """
        reason = self._torchs_reason(input, hx)
        if reason is not None:
            return self._torchs_forward(input, hx, reason)
        packed = isinstance(input, PackedSequence)
        weight = self.weight_ih_l0
        if packed:
            data, lengths = pad_packed_sequence(input)              # (T, N, in), lengths (N,)
            x, batched = data, True
            self._check_tensor("input", x)
        else:
            self._check_tensor("input", input)
            if input.dim() not in (2, 3):
                raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got "
                                 f"{input.dim()}D tensor instead")
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(1)
            if batched and self.batch_first:
                x = x.transpose(0, 1)
            lengths = None
        if x.dtype != weight.dtype:
            raise ValueError(f"input must have the type {weight.dtype}, got type {x.dtype}")
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {x.shape[-1]}")
        self._check_parameters(weight.dtype)
        n_steps, n_batch = x.shape[0], x.shape[1]
        if n_steps == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        states0 = self._initial_states(hx, n_batch, batched, x)
        if lengths is not None:
            lengths = lengths.to(torch.int64)
            if int(lengths.min()) == n_steps:
                lengths = None
        layer_input, finals = _layers.stack_forward(
            x.transpose(0, 1).contiguous(), states0, self.num_layers,
            2 if self.bidirectional else 1, functools.partial(self._run_direction, lengths),
            self._join_layer)                                          # (N, T, D*P)
        finals = [torch.stack(f) for f in finals]
        if packed:
            output = _pack_like(layer_input, input)
        else:
            output = layer_input if (batched and self.batch_first) else layer_input.transpose(0, 1)
            if not batched:
                output = output.squeeze(1)
                finals = [f.squeeze(1) for f in finals]
        return output, (finals[0] if len(finals) == 1 else tuple(finals))

    def _initial_states(self, hx, n_batch, batched, x):
        D = 2 if self.bidirectional else 1
        n = self.num_layers * D
        widths = self._state_widths()
        if hx is None:
            return [x.new_zeros((n, n_batch, w)) for w in widths]
        given = list(hx) if len(widths) > 1 else [hx]
        if len(widths) > 1 and (not isinstance(hx, (tuple, list)) or len(hx) != len(widths)):
            names = ", ".join(f"{name}_0" for name in CELLS[self.mode].states)
            raise TypeError(f"hx of an {CELLS[self.mode].torch_name} is a tuple ({names})")
        states = []
        for name, h, w in zip(("hx", "cx")[:len(widths)], given, widths, strict=True):
            self._check_tensor(name, h)
            expected = (n, n_batch, w) if batched else (n, w)
            if tuple(h.shape) != expected:
                raise RuntimeError(f"Expected hidden size {expected}, got {list(h.shape)}")
            if h.dtype != x.dtype:
                raise RuntimeError(f"{name} must have the type {x.dtype}, got type {h.dtype}")
            states.append(h if batched else h.unsqueeze(1))
        return states

    def _state_widths(self):
        """The width of each of the cell's states (h: ``proj_size`` when set; c: H)."""
        widths = {"h": self.proj_size or self.hidden_size, "c": self.hidden_size}
        return [widths[name] for name in CELLS[self.mode].states]


@functools.lru_cache(maxsize=1024)
def _parameter_shape(name, mode, input_size, hidden_size, proj_size, bidirectional):
    return _layers.parameter_shape(name, CELLS[mode].gates, input_size, hidden_size, proj_size,
                                   bidirectional)


def _pack_like(output, packed):
    """``output (N, T, F)`` (original batch order) as a PackedSequence shaped like ``packed``."""
    sorted_indices = packed.sorted_indices
    if sorted_indices is None:
        sorted_indices = torch.arange(output.shape[0])
    rows = [output[sorted_indices[:int(b)], t] for t, b in enumerate(packed.batch_sizes)]
    return PackedSequence(torch.cat(rows), packed.batch_sizes, packed.sorted_indices,
                          packed.unsorted_indices)


def _refuse_extra_arguments(kwargs):
    """torch's errors for keyword arguments RNN and GRU do not take (``proj_size``: ValueError)."""
    if "proj_size" in kwargs:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    if kwargs:
        raise TypeError(f"__init__() got an unexpected keyword argument '{next(iter(kwargs))}'")


class RNN(_RNNfastBase):
    """``torch.nn.RNN`` (same constructor, parameters and forward) on rnnfast's kernels.

    The module computes on CPU tensors of float32 or float64.  With a tensor
    on another device (CUDA, ``meta``...) or in float16 or bfloat16,
    ``forward`` runs torch's own implementation on the same parameters (one
    ``UserWarning`` per module); other dtypes raise ``TypeError``.  Gradients
    come through torch's autograd (the custom operators' formulas).

    Parameters
    ----------
    input_size : int
        Number of features of each input step.
    hidden_size : int
        Number of features of the hidden state.
    num_layers : int, default 1
        Number of stacked layers.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation.
    bias : bool, default True
        Whether the layers have ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Input and output are ``(N, L, features)`` instead of ``(L, N, features)``.
    dropout : float, default 0.0
        Dropout on the outputs of every layer but the last, in training mode.
    bidirectional : bool, default False
        Two directions per layer.
    device : torch.device or str or None, default None
        Where the parameters are created; rnnfast's kernels run on the CPU
        (elsewhere torch's own implementation runs).
    dtype : torch.dtype or None, default None
        ``torch.float32`` or ``torch.float64`` (None: torch's default dtype).
    **kwargs
        Refused as torch refuses them (``proj_size``: ``ValueError``; any other:
        ``TypeError``).

    See Also
    --------
    convert : Turns the ``nn.RNN`` modules of a model into these.
    rnnfast.RNN : The same on NumPy arrays, without torch.

    Examples
    --------
    >>> import torch
    >>> import rnnfast.torch
    >>> rnn = rnnfast.torch.RNN(3, 4, num_layers=2, batch_first=True)
    >>> output, h_n = rnn(torch.randn(2, 5, 3))
    >>> output.shape, h_n.shape
    (torch.Size([2, 5, 4]), torch.Size([2, 2, 4]))
    >>> output.sum().backward()
    >>> rnn.weight_hh_l0.grad.shape
    torch.Size([4, 4])
    """

    _MODES = {f: cell_mode("rnn", f) for f in nonlinearities("rnn")}

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None,
                 dtype=None, **kwargs):
        _refuse_extra_arguments(kwargs)
        modes = self._MODES
        if nonlinearity not in modes:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        super().__init__(modes[nonlinearity], input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(_RNNfastBase):
    """``torch.nn.LSTM`` (same constructor, parameters and forward) on rnnfast's kernels.

    The module computes on CPU tensors of float32 or float64.  With a tensor
    on another device (CUDA, ``meta``...) or in float16 or bfloat16,
    ``forward`` runs torch's own implementation on the same parameters (one
    ``UserWarning`` per module); other dtypes raise ``TypeError``.  Gradients
    come through torch's autograd (the custom operators' formulas).

    Parameters
    ----------
    input_size : int
        Number of features of each input step.
    hidden_size : int
        Number of features of the hidden state.
    num_layers : int, default 1
        Number of stacked layers.
    bias : bool, default True
        Whether the layers have ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Input and output are ``(N, L, features)`` instead of ``(L, N, features)``.
    dropout : float, default 0.0
        Dropout on the outputs of every layer but the last, in training mode.
    bidirectional : bool, default False
        Two directions per layer.
    proj_size : int, default 0
        With ``0 < proj_size < hidden_size``, ``h`` is projected to this width.
    device : torch.device or str or None, default None
        Where the parameters are created; rnnfast's kernels run on the CPU
        (elsewhere torch's own implementation runs).
    dtype : torch.dtype or None, default None
        ``torch.float32`` or ``torch.float64`` (None: torch's default dtype).

    See Also
    --------
    convert : Turns the ``nn.LSTM`` modules of a model into these.
    rnnfast.LSTM : The same on NumPy arrays, without torch.
    """

    # torch's own LSTM.forward (run off the CPU or in half precision) calls these
    get_expected_cell_size = torch.nn.LSTM.get_expected_cell_size
    check_forward_args = torch.nn.LSTM.check_forward_args
    permute_hidden = torch.nn.LSTM.permute_hidden

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device=device, dtype=dtype)


class GRU(_RNNfastBase):
    """``torch.nn.GRU`` (same constructor, parameters and forward) on rnnfast's kernels.

    The module computes on CPU tensors of float32 or float64.  With a tensor
    on another device (CUDA, ``meta``...) or in float16 or bfloat16,
    ``forward`` runs torch's own implementation on the same parameters (one
    ``UserWarning`` per module); other dtypes raise ``TypeError``.  Gradients
    come through torch's autograd (the custom operators' formulas).

    Parameters
    ----------
    input_size : int
        Number of features of each input step.
    hidden_size : int
        Number of features of the hidden state.
    num_layers : int, default 1
        Number of stacked layers.
    bias : bool, default True
        Whether the layers have ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Input and output are ``(N, L, features)`` instead of ``(L, N, features)``.
    dropout : float, default 0.0
        Dropout on the outputs of every layer but the last, in training mode.
    bidirectional : bool, default False
        Two directions per layer.
    device : torch.device or str or None, default None
        Where the parameters are created; rnnfast's kernels run on the CPU
        (elsewhere torch's own implementation runs).
    dtype : torch.dtype or None, default None
        ``torch.float32`` or ``torch.float64`` (None: torch's default dtype).
    **kwargs
        Refused as torch refuses them (``proj_size``: ``ValueError``; any other:
        ``TypeError``).

    See Also
    --------
    convert : Turns the ``nn.GRU`` modules of a model into these.
    rnnfast.GRU : The same on NumPy arrays, without torch.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, **kwargs):
        _refuse_extra_arguments(kwargs)
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)


# torch's class of each registered cell -> its rnnfast.torch class of the same name
_REPLACEMENTS = {getattr(torch.nn, name): globals()[name]
                 for name in dict.fromkeys(str(cell.torch_name) for cell in CELLS.values())}


def convert(module):
    """Run every ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` inside ``module`` on rnnfast's kernels.

    Each such submodule (``module`` itself included) becomes the rnnfast
    class of the same kind in place: same parameters (the same
    ``nn.Parameter`` objects, so an optimizer made before keeps working),
    buffers, hooks and configuration.  Subclasses of torch's modules are
    left alone (their forward may differ).

    Parameters
    ----------
    module : torch.nn.Module
        Any module; its submodules are searched recursively.

    Returns
    -------
    module : torch.nn.Module
        The same object, converted in place.

    See Also
    --------
    revert : The inverse.

    Examples
    --------
    >>> import torch
    >>> import rnnfast.torch
    >>> model = torch.nn.Sequential(torch.nn.LSTM(3, 4, batch_first=True),
    ...                             torch.nn.Linear(4, 2))
    >>> rnnfast.torch.convert(model) is model
    True
    >>> type(model[0])
    <class 'rnnfast.torch.LSTM'>
    >>> output, (h_n, c_n) = model[0](torch.randn(2, 5, 3))
    >>> output.shape
    torch.Size([2, 5, 4])
    """
    for sub in module.modules():
        replacement = _REPLACEMENTS.get(type(sub))
        if replacement is not None:
            sub.__class__ = replacement
    return module


# rnnfast.torch's class of each registered cell -> torch's class of the same name
_ORIGINALS = {ours: theirs for theirs, ours in _REPLACEMENTS.items()}


def revert(module):
    """Turn every rnnfast ``RNN``, ``LSTM`` and ``GRU`` inside ``module`` back into torch's.

    The inverse of :func:`convert`, in place: each such submodule
    (``module`` itself included, whether :func:`convert` made it or it was
    built as an rnnfast module) becomes ``torch.nn.RNN``, ``nn.LSTM`` or
    ``nn.GRU`` with the same parameters (the same ``nn.Parameter``
    objects, their ``.grad`` included, so an optimizer keeps working),
    buffers, hooks and configuration.  The reverted model runs, pickles and
    loads (``torch.save``/``torch.load`` of the whole model) without rnnfast.
    Subclasses of rnnfast's modules are left alone.

    Parameters
    ----------
    module : torch.nn.Module
        Any module; its submodules are searched recursively.

    Returns
    -------
    module : torch.nn.Module
        The same object, reverted in place.

    Examples
    --------
    >>> import torch
    >>> import rnnfast.torch
    >>> model = rnnfast.torch.convert(torch.nn.Sequential(torch.nn.GRU(3, 4)))
    >>> type(rnnfast.torch.revert(model)[0])
    <class 'torch.nn.modules.rnn.GRU'>
    """
    for sub in module.modules():
        original = _ORIGINALS.get(type(sub))
        if original is not None:
            sub.__class__ = original
    return module
