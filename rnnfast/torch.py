"""rnnfast's kernels inside PyTorch models: drop-ins for ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``.

Importable when PyTorch is installed (``pip install "rnnfast[torch]"``)::

    import rnnfast.torch
    model = rnnfast.torch.convert(model)      # every nn.RNN/LSTM/GRU inside, in place

:class:`RNN`, :class:`LSTM` and :class:`GRU` are ``torch.nn.RNNBase``
modules with exactly torch's constructors, parameters, ``state_dict`` and
``forward`` (plain or ``PackedSequence`` input, unbatched input,
``batch_first``, dropout between layers), on CPU tensors of float32 or
float64.  Each layer direction runs as one torch custom operator
(``rnnfast::rnn_layer``, ``rnnfast::lstm_layer``, ``rnnfast::gru_layer``)
with an autograd formula (a second operator running the compiled BPTT) and a
fake implementation, so autograd, ``torch.compile(fullgraph=True)``, torch's
optimizers, ``clip_grad_norm_`` and ``DistributedDataParallel`` work
unchanged.  Contiguous tensors are handed to the kernels without copies.
"""

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from rnnfast import _kernels
from rnnfast import functional as _functional

__all__ = ["RNN", "LSTM", "GRU", "convert"]

_ACTIVATIONS = {"RNN_TANH": int(_kernels.Activation.TANH),
                "RNN_RELU": int(_kernels.Activation.RELU)}


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

# Per-step products of at most this many multiply-adds run on one thread: at
# char size (N 1, H 128) forking torch's OpenMP team for every step's product
# cost more than the product (libgomp took 29% of a training step's samples).
_SEQUENTIAL_WORK = 1 << 18


def _on_torch_blas(step_work, kernel, *args):
    """``kernel(*args)`` with this thread's products on torch's BLAS.

    ``step_work`` is the multiply-adds of one step's recurrent product; small
    ones keep MKL on this thread for the whole call.
    """
    sequential = _MKL_THREADS_LOCAL is not None and step_work <= _SEQUENTIAL_WORK
    previous = _MKL_THREADS_LOCAL(1) if sequential else None
    _kernels._use_torch_blas(True)
    try:
        return kernel(*args)
    finally:
        _kernels._use_torch_blas(False)
        if sequential:
            _MKL_THREADS_LOCAL(previous)


# -- tensors <-> arrays ----------------------------------------------------------

def _np(t):
    """The values of CPU tensor ``t`` as a C-contiguous ndarray (shared when already so)."""
    return t.detach().contiguous().numpy()


def _lengths(lengths):
    return None if lengths is None else np.ascontiguousarray(_np(lengths), dtype=np.intp)


def _padded_mask(lengths, n_steps):
    """``(N, T)`` booleans: step t of sequence i lies past its length."""
    return np.arange(n_steps)[None, :] >= lengths[:, None]


def _carried(out, lengths, carried):
    """``out (N, T, P)`` with its padded steps set to ``carried (N, P)``: the kernels' states."""
    if lengths is None:
        return _np(out)                   # read only by the kernels: no copy
    states = np.array(_np(out), copy=True)
    mask = _padded_mask(lengths, states.shape[1])
    states[mask] = np.broadcast_to(carried[:, None, :], states.shape)[mask]
    return states


def _finish(states, lengths, reverse):
    """``(output with zeros at padded steps, final states)`` from the kernels' states."""
    final = (states[:, 0] if reverse else states[:, -1]).copy()
    if lengths is not None:
        states[_padded_mask(lengths, states.shape[1])] = 0
    return states, final


def _double_backward(ctx, *grads):
    raise RuntimeError("rnnfast.torch does not support double backward (gradients of "
                       "gradients); use torch's own nn.RNN/LSTM/GRU for that")


def _no_backward_context(ctx, inputs, output):
    pass


# -- the Elman layer --------------------------------------------------------------

@torch.library.custom_op("rnnfast::rnn_layer", mutates_args=(), device_types="cpu")
def rnn_layer(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
              b_hh: Tensor | None, lengths: Tensor | None, reverse: bool,
              activation: int) -> tuple[Tensor, Tensor]:
    """One direction of one Elman layer: ``(output (N, T, H), h_n (N, H))``; x is (N, T, in)."""
    n_batch, n_steps, n_in = x.shape
    h0_ = _np(h0)
    bias = (np.zeros(w_hh.shape[0], h0_.dtype) if b_ih is None
            else _np(b_ih) + _np(b_hh))
    lens = _lengths(lengths)
    states = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.layer_forward,
        _np(x).reshape(n_batch * n_steps, n_in), h0_, _np(w_ih), _np(w_hh), bias, lens, reverse,
        activation, _functional.use_own_products(n_batch, h0_.shape[1]))
    out, final = _finish(states, lens, reverse)
    return torch.from_numpy(out), torch.from_numpy(final)


@rnn_layer.register_fake
def _(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, activation):
    n_batch, n_steps, _ = x.shape
    return x.new_empty((n_batch, n_steps, w_hh.shape[0])), x.new_empty((n_batch, w_hh.shape[0]))


@torch.library.custom_op("rnnfast::rnn_layer_backward", mutates_args=(), device_types="cpu")
def rnn_layer_backward(x: Tensor, h0: Tensor, out: Tensor, h_n: Tensor, d_out: Tensor,
                       d_h_n: Tensor, w_ih: Tensor, w_hh: Tensor, lengths: Tensor | None,
                       reverse: bool, activation: int
                       ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(dx, dh0, dW_ih, dW_hh, db)`` of :func:`rnn_layer`."""
    n_batch, n_steps, n_in = x.shape
    lens = _lengths(lengths)
    h0_ = _np(h0)
    states = _carried(out, lens, h0_ if reverse else _np(h_n))
    dx, dh0, dw_ih, dw_hh, db = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.layer_backward,
        _np(x).reshape(n_batch * n_steps, n_in), h0_, states, np.array(_np(d_out), copy=True),
        np.ascontiguousarray(_np(d_h_n)), _np(w_ih), _np(w_hh), lens, reverse, activation,
        _functional.use_own_products(n_batch, h0_.shape[1]))
    return tuple(torch.from_numpy(a) for a in (dx.reshape(n_batch, n_steps, n_in), dh0,
                                               dw_ih, dw_hh, db))


@rnn_layer_backward.register_fake
def _(x, h0, out, h_n, d_out, d_h_n, w_ih, w_hh, lengths, reverse, activation):
    return (torch.empty_like(x), torch.empty_like(h0), torch.empty_like(w_ih),
            torch.empty_like(w_hh), w_hh.new_empty((w_hh.shape[0],)))


def _rnn_setup(ctx, inputs, output):
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, activation = inputs
    ctx.save_for_backward(x, h0, w_ih, w_hh, lengths, *output)
    ctx.reverse, ctx.activation = reverse, activation


def _rnn_backward(ctx, d_out, d_h_n):
    x, h0, w_ih, w_hh, lengths, out, h_n = ctx.saved_tensors
    dx, dh0, dw_ih, dw_hh, db = rnn_layer_backward(
        x, h0, out, h_n, _zeros_if_none(d_out, out), _zeros_if_none(d_h_n, h_n), w_ih, w_hh,
        lengths, ctx.reverse, ctx.activation)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, dh0 if need[1] else None, dw_ih if need[2] else None,
            dw_hh if need[3] else None, db if need[4] else None, db if need[5] else None,
            None, None, None)


def _zeros_if_none(g, like):
    return torch.zeros_like(like) if g is None else g


rnn_layer.register_autograd(_rnn_backward, setup_context=_rnn_setup)
rnn_layer_backward.register_autograd(_double_backward, setup_context=_no_backward_context)


# -- the LSTM layer ---------------------------------------------------------------

@torch.library.custom_op("rnnfast::lstm_layer", mutates_args=(), device_types="cpu")
def lstm_layer(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor,
               b_ih: Tensor | None, b_hh: Tensor | None, w_hr: Tensor | None,
               lengths: Tensor | None, reverse: bool
               ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One LSTM layer direction: ``(output, h_n, c_n, cells, gates)``.

    ``cells (N, T, H)`` and the activated ``gates (N, T, 4H)`` are what the
    backward pass reads; they carry no gradient.
    """
    n_batch, n_steps, n_in = x.shape
    bias = None if b_ih is None else _np(b_ih) + _np(b_hh)
    lens = _lengths(lengths)
    states, cells, gates = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.lstm_layer_forward,
        _np(x).reshape(n_batch * n_steps, n_in), _np(h0), _np(c0), _np(w_ih), _np(w_hh), bias,
        None if w_hr is None else _np(w_hr), lens, reverse)
    c_n = (cells[:, 0] if reverse else cells[:, -1]).copy()
    out, h_n = _finish(states, lens, reverse)
    return tuple(torch.from_numpy(a) for a in (out, h_n, c_n, cells, gates))


@lstm_layer.register_fake
def _(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse):
    n_batch, n_steps, _ = x.shape
    H, P = c0.shape[1], h0.shape[1]
    return (x.new_empty((n_batch, n_steps, P)), x.new_empty((n_batch, P)),
            x.new_empty((n_batch, H)), x.new_empty((n_batch, n_steps, H)),
            x.new_empty((n_batch, n_steps, 4 * H)))


@torch.library.custom_op("rnnfast::lstm_layer_backward", mutates_args=(), device_types="cpu")
def lstm_layer_backward(x: Tensor, h0: Tensor, c0: Tensor, out: Tensor, h_n: Tensor,
                        cells: Tensor, gates: Tensor, d_out: Tensor, d_h_n: Tensor,
                        d_c_n: Tensor, w_ih: Tensor, w_hh: Tensor, w_hr: Tensor | None,
                        lengths: Tensor | None, reverse: bool) -> list[Tensor]:
    """``[dx, dh0, dc0, dW_ih, dW_hh, db, dW_hr (empty without a projection)]``."""
    n_batch, n_steps, n_in = x.shape
    lens = _lengths(lengths)
    h0_ = _np(h0)
    states = _carried(out, lens, h0_ if reverse else _np(h_n))
    dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.lstm_layer_backward,
        _np(x).reshape(n_batch * n_steps, n_in), h0_, _np(c0), states, _np(cells), _np(gates),
        np.array(_np(d_out), copy=True), np.ascontiguousarray(_np(d_h_n)),
        np.ascontiguousarray(_np(d_c_n)), _np(w_ih), _np(w_hh),
        None if w_hr is None else _np(w_hr), lens, reverse)
    if dw_hr is None:
        dw_hr = np.zeros(0, dtype=dw_ih.dtype)
    return [torch.from_numpy(a) for a in (dx.reshape(n_batch, n_steps, n_in), dh0, dc0,
                                          dw_ih, dw_hh, db, dw_hr)]


@lstm_layer_backward.register_fake
def _(x, h0, c0, out, h_n, cells, gates, d_out, d_h_n, d_c_n, w_ih, w_hh, w_hr, lengths,
      reverse):
    return [torch.empty_like(x), torch.empty_like(h0), torch.empty_like(c0),
            torch.empty_like(w_ih), torch.empty_like(w_hh), w_hh.new_empty((w_hh.shape[0],)),
            w_ih.new_empty((0,)) if w_hr is None else torch.empty_like(w_hr)]


def _lstm_setup(ctx, inputs, output):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse = inputs
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, w_hr, lengths, *output)
    ctx.reverse = reverse
    ctx.set_materialize_grads(False)


def _lstm_backward(ctx, d_out, d_h_n, d_c_n, d_cells, d_gates):
    x, h0, c0, w_ih, w_hh, w_hr, lengths, out, h_n, c_n, cells, gates = ctx.saved_tensors
    dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = lstm_layer_backward(
        x, h0, c0, out, h_n, cells, gates, _zeros_if_none(d_out, out),
        _zeros_if_none(d_h_n, h_n), _zeros_if_none(d_c_n, c_n), w_ih, w_hh, w_hr, lengths,
        ctx.reverse)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, dh0 if need[1] else None, dc0 if need[2] else None,
            dw_ih if need[3] else None, dw_hh if need[4] else None, db if need[5] else None,
            db if need[6] else None, dw_hr if need[7] else None, None, None)


lstm_layer.register_autograd(_lstm_backward, setup_context=_lstm_setup)
lstm_layer_backward.register_autograd(_double_backward, setup_context=_no_backward_context)


# -- the GRU layer ----------------------------------------------------------------

@torch.library.custom_op("rnnfast::gru_layer", mutates_args=(), device_types="cpu")
def gru_layer(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
              b_hh: Tensor | None, lengths: Tensor | None, reverse: bool
              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One GRU layer direction: ``(output, h_n, gates, hn)``; the last two carry no gradient."""
    n_batch, n_steps, n_in = x.shape
    lens = _lengths(lengths)
    states, gates, hn = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.gru_layer_forward,
        _np(x).reshape(n_batch * n_steps, n_in), _np(h0), _np(w_ih), _np(w_hh),
        None if b_ih is None else _np(b_ih), None if b_hh is None else _np(b_hh), lens, reverse)
    out, h_n = _finish(states, lens, reverse)
    return tuple(torch.from_numpy(a) for a in (out, h_n, gates, hn))


@gru_layer.register_fake
def _(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse):
    n_batch, n_steps, _ = x.shape
    H = h0.shape[1]
    return (x.new_empty((n_batch, n_steps, H)), x.new_empty((n_batch, H)),
            x.new_empty((n_batch, n_steps, 3 * H)), x.new_empty((n_batch, n_steps, H)))


@torch.library.custom_op("rnnfast::gru_layer_backward", mutates_args=(), device_types="cpu")
def gru_layer_backward(x: Tensor, h0: Tensor, out: Tensor, h_n: Tensor, gates: Tensor,
                       hn: Tensor, d_out: Tensor, d_h_n: Tensor, w_ih: Tensor, w_hh: Tensor,
                       lengths: Tensor | None, reverse: bool) -> list[Tensor]:
    """``[dx, dh0, dW_ih, dW_hh, db_ih, db_hh]`` of :func:`gru_layer`."""
    n_batch, n_steps, n_in = x.shape
    lens = _lengths(lengths)
    h0_ = _np(h0)
    states = _carried(out, lens, h0_ if reverse else _np(h_n))
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _on_torch_blas(
        n_batch * w_hh.shape[0] * w_hh.shape[1], _kernels.gru_layer_backward,
        _np(x).reshape(n_batch * n_steps, n_in), h0_, states, _np(gates), _np(hn),
        np.ascontiguousarray(_np(d_out)), np.ascontiguousarray(_np(d_h_n)), _np(w_ih),
        _np(w_hh), lens, reverse)
    return [torch.from_numpy(a) for a in (dx.reshape(n_batch, n_steps, n_in), dh0, dw_ih,
                                          dw_hh, db_ih, db_hh)]


@gru_layer_backward.register_fake
def _(x, h0, out, h_n, gates, hn, d_out, d_h_n, w_ih, w_hh, lengths, reverse):
    G = w_hh.shape[0]
    return [torch.empty_like(x), torch.empty_like(h0), torch.empty_like(w_ih),
            torch.empty_like(w_hh), w_hh.new_empty((G,)), w_hh.new_empty((G,))]


def _gru_setup(ctx, inputs, output):
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse = inputs
    ctx.save_for_backward(x, h0, w_ih, w_hh, lengths, *output)
    ctx.reverse = reverse
    ctx.set_materialize_grads(False)


def _gru_backward(ctx, d_out, d_h_n, d_gates, d_hn):
    x, h0, w_ih, w_hh, lengths, out, h_n, gates, hn = ctx.saved_tensors
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = gru_layer_backward(
        x, h0, out, h_n, gates, hn, _zeros_if_none(d_out, out), _zeros_if_none(d_h_n, h_n),
        w_ih, w_hh, lengths, ctx.reverse)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, dh0 if need[1] else None, dw_ih if need[2] else None,
            dw_hh if need[3] else None, db_ih if need[4] else None, db_hh if need[5] else None,
            None, None)


gru_layer.register_autograd(_gru_backward, setup_context=_gru_setup)
gru_layer_backward.register_autograd(_double_backward, setup_context=_no_backward_context)


# -- the modules ------------------------------------------------------------------

class _RNNfastBase(torch.nn.RNNBase):
    """``torch.nn.RNNBase`` whose forward runs rnnfast's kernels (CPU, float32/float64)."""

    def flatten_parameters(self):
        """A no-op: rnnfast reads the parameters where they are."""

    def _check_tensor(self, name, t):
        if t.device.type != "cpu":
            raise RuntimeError(f"rnnfast.torch runs on the CPU; {name} is on {t.device} "
                               f"(use torch's own nn.{self._torch_name} there)")
        if t.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"rnnfast.torch computes in float32 or float64; {name} is "
                            f"{t.dtype}")

    def _layer(self, x, states, k, sfx, lengths, reverse):
        """One direction of layer ``k``: ``(output (N, T, P), final states)``."""
        raise NotImplementedError

    def forward(self, input, hx=None):
        """As torch's ``forward``: ``(output, h_n)``, or ``(output, (h_n, c_n))`` for the LSTM."""
        packed = isinstance(input, PackedSequence)
        weight = self.weight_ih_l0
        for name, p in self.named_parameters():
            self._check_tensor(f"parameter {name}", p)
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
        n_steps, n_batch = x.shape[0], x.shape[1]
        states0 = self._initial_states(hx, n_batch, batched, x)
        if lengths is not None:
            lengths = lengths.to(torch.int64)
            if int(lengths.min()) == n_steps:
                lengths = None
        D = 2 if self.bidirectional else 1
        layer_input = x.transpose(0, 1).contiguous()                 # (N, T, in)
        finals = [[] for _ in states0]
        for k in range(self.num_layers):
            outs = []
            for d, sfx in enumerate(("", "_reverse")[:D]):
                out, last = self._layer(layer_input, [s[k * D + d] for s in states0], k, sfx,
                                        lengths, d == 1)
                outs.append(out)
                for f, value in zip(finals, last):
                    f.append(value)
            layer_input = outs[0] if D == 1 else torch.cat(outs, dim=2)
            if self.dropout and self.training and k < self.num_layers - 1:
                layer_input = torch.nn.functional.dropout(layer_input, self.dropout, True)
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
        if len(widths) > 1 and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("hx of an LSTM is a tuple (h_0, c_0)")
        states = []
        for name, h, w in zip(("hx", "cx"), given, widths):
            self._check_tensor(name, h)
            expected = (n, n_batch, w) if batched else (n, w)
            if tuple(h.shape) != expected:
                raise RuntimeError(f"Expected hidden size {expected}, got {list(h.shape)}")
            if h.dtype != x.dtype:
                raise ValueError(f"hx must have the type {x.dtype}, got type {h.dtype}")
            states.append(h if batched else h.unsqueeze(1))
        return states

    def _state_widths(self):
        return [self.proj_size or self.hidden_size]


def _pack_like(output, packed):
    """``output (N, T, F)`` (original batch order) as a PackedSequence shaped like ``packed``."""
    sorted_indices = packed.sorted_indices
    if sorted_indices is None:
        sorted_indices = torch.arange(output.shape[0])
    rows = [output[sorted_indices[:int(b)], t] for t, b in enumerate(packed.batch_sizes)]
    return PackedSequence(torch.cat(rows), packed.batch_sizes, packed.sorted_indices,
                          packed.unsorted_indices)


class RNN(_RNNfastBase):
    """``torch.nn.RNN`` (same constructor, parameters and forward) on rnnfast's kernels.

    CPU tensors of float32 or float64; gradients through torch autograd.
    """

    _torch_name = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None,
                 dtype=None):
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        super().__init__(modes[nonlinearity], input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def _layer(self, x, states, k, sfx, lengths, reverse):
        p = f"_l{k}{sfx}"
        out, h_n = rnn_layer(x, states[0], getattr(self, "weight_ih" + p),
                             getattr(self, "weight_hh" + p), getattr(self, "bias_ih" + p, None),
                             getattr(self, "bias_hh" + p, None), lengths, reverse,
                             _ACTIVATIONS[self.mode])
        return out, (h_n,)


class LSTM(_RNNfastBase):
    """``torch.nn.LSTM`` (same constructor, parameters and forward) on rnnfast's kernels."""

    _torch_name = "LSTM"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device=device, dtype=dtype)

    def _state_widths(self):
        return [self.proj_size or self.hidden_size, self.hidden_size]

    def _layer(self, x, states, k, sfx, lengths, reverse):
        p = f"_l{k}{sfx}"
        out, h_n, c_n, _, _ = lstm_layer(
            x, states[0], states[1], getattr(self, "weight_ih" + p),
            getattr(self, "weight_hh" + p), getattr(self, "bias_ih" + p, None),
            getattr(self, "bias_hh" + p, None), getattr(self, "weight_hr" + p, None), lengths,
            reverse)
        return out, (h_n, c_n)


class GRU(_RNNfastBase):
    """``torch.nn.GRU`` (same constructor, parameters and forward) on rnnfast's kernels."""

    _torch_name = "GRU"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)

    def _layer(self, x, states, k, sfx, lengths, reverse):
        p = f"_l{k}{sfx}"
        out, h_n, _, _ = gru_layer(x, states[0], getattr(self, "weight_ih" + p),
                                   getattr(self, "weight_hh" + p),
                                   getattr(self, "bias_ih" + p, None),
                                   getattr(self, "bias_hh" + p, None), lengths, reverse)
        return out, (h_n,)


_REPLACEMENTS = {torch.nn.RNN: RNN, torch.nn.LSTM: LSTM, torch.nn.GRU: GRU}


def convert(module):
    """Run every ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` inside ``module`` on rnnfast's kernels.

    Each such submodule (``module`` itself included) becomes the rnnfast
    class of the same kind in place: same parameters (the same
    ``nn.Parameter`` objects, so an optimizer made before keeps working),
    buffers, hooks and configuration.  Subclasses of torch's modules are
    left alone (their forward may differ).  Returns ``module``.
    """
    for sub in module.modules():
        replacement = _REPLACEMENTS.get(type(sub))
        if replacement is not None:
            sub.__class__ = replacement
    return module

