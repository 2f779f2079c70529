"""Recurrent layers with ``torch.nn``'s interface and semantics on NumPy arrays, compiled.

``RNNBase(mode, ...)`` is the layer driver shared by every cell: parameter
names and shapes (the gate count comes from the cell: weights are
``(gates * H, in)``), initialisation, ``state_dict``, input checks, layers,
both directions, ``batch_first``, unbatched input, variable sequence lengths
with ``pack_padded_sequence`` semantics, dropout between layers, and an
explicit ``backward`` that returns the gradients autograd would.  A cell is a
:class:`Cell` registered under its mode name: its gate count and the two
compiled passes of one layer direction (``_kernels.layer_forward`` /
``layer_backward`` for the Elman cell).  Adding a cell means its kernel step,
its NumPy twin in ``reference.py``, a ``Cell`` and a subclass naming the mode.
"""

import numbers
import warnings

import numpy as np

from rnnfast import _kernels
from rnnfast import _validation as V
from rnnfast import functional as F

__all__ = ["RNN", "RNNBase", "Cell", "CELLS"]


def _as_numpy(value):
    """NumPy view of an array-like or of a torch tensor (detached, on the CPU)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class Cell:
    """One recurrent cell: its gate count and the compiled passes of one layer direction.

    Subclasses define :meth:`forward` and :meth:`backward`; ``RNNBase`` does
    everything else (layers, directions, lengths, dropout, layouts, names).
    """

    gates = 1

    def forward(self, x_rows, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, own_products):
        """States ``(m, T, H)`` of one direction of one layer.

        ``x_rows (m*T, n_in)`` batch-major, ``h0 (m, H)``, the biases ``(G*H,)``
        or None, ``lengths`` intp ``(m,)`` or None.
        """
        raise NotImplementedError

    def backward(self, x_rows, h0, states, d_states, grad_h_n, w_ih, w_hh, lengths, reverse,
                 own_products):
        """``(d_input_rows, d_h0, dW_ih, dW_hh, db_ih, db_hh)`` of one direction of one layer.

        ``d_states (m, T, H)`` is a private copy the kernel may overwrite.
        """
        raise NotImplementedError


class ElmanCell(Cell):
    """``h_t = f(x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh)`` with ``f`` an activation."""

    gates = 1

    def __init__(self, activation):
        self.activation = activation

    def forward(self, x_rows, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, own_products):
        bias = np.zeros(w_hh.shape[0], h0.dtype) if b_ih is None else b_ih + b_hh
        return _kernels.layer_forward(x_rows, h0, w_ih, w_hh, bias, lengths, reverse,
                                      self.activation, own_products)

    def backward(self, x_rows, h0, states, d_states, grad_h_n, w_ih, w_hh, lengths, reverse,
                 own_products):
        dx, dh0, dw_ih, dw_hh, db = _kernels.layer_backward(
            x_rows, h0, states, d_states, grad_h_n, w_ih, w_hh, lengths, reverse,
            self.activation, own_products)
        return dx, dh0, dw_ih, dw_hh, db, db.copy()     # both biases enter the same sum


# The registered cells, by mode name (torch's names).
CELLS = {
    "RNN_TANH": ElmanCell(_kernels.Activation.TANH),
    "RNN_RELU": ElmanCell(_kernels.Activation.RELU),
}


class RNNBase:
    """The layer driver of every recurrent module, as ``torch.nn.RNNBase(mode, ...)``.

    Parameters
    ----------
    mode : str
        The cell, a key of :data:`CELLS` (``"RNN_TANH"``, ``"RNN_RELU"``).
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype, seed
        As for :class:`RNN` (all its arguments but ``nonlinearity``, which the
        mode names).
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, dtype=np.float32,
                 seed=None):
        if mode not in CELLS:
            raise ValueError(f"Unknown mode {mode!r}; one of {', '.join(CELLS)}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            V.check_positive_int(name, value)
        for name, value in (("bias", bias), ("batch_first", batch_first),
                            ("bidirectional", bidirectional)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Real)
                or not 0 <= dropout <= 1):
            raise ValueError("dropout must be a number in [0, 1], the probability of an "
                             f"element being zeroed; got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout applies between layers, so it has no effect with "
                          f"num_layers=1 (dropout={dropout})", UserWarning, stacklevel=2)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64; got {dtype}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers = int(num_layers)
        self.mode, self._cell = mode, CELLS[mode]
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        self.dtype = dtype
        self.training = True
        init_rng, dropout_rng = np.random.default_rng(seed).spawn(2)
        self._dropout_rng = dropout_rng
        bound = 1 / np.sqrt(self.hidden_size)
        self._params = {name: init_rng.uniform(-bound, bound, shape).astype(dtype)
                        for name, shape in self._parameter_shapes().items()}
        self._cache = None

    # -- parameters ----------------------------------------------------------

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def _parameter_shapes(self):
        H, shapes = self.hidden_size, {}
        G = self._cell.gates * H
        for k in range(self.num_layers):
            n_in = self.input_size if k == 0 else H * self.num_directions
            for sfx in self._suffixes():
                shapes[f"weight_ih_l{k}{sfx}"] = (G, n_in)
                shapes[f"weight_hh_l{k}{sfx}"] = (G, H)
                if self.bias:
                    shapes[f"bias_ih_l{k}{sfx}"] = (G,)
                    shapes[f"bias_hh_l{k}{sfx}"] = (G,)
        return shapes

    def _layer_parameters(self, k, sfx):
        """``(w_ih, w_hh, b_ih, b_hh)`` of layer ``k`` in direction ``sfx`` (biases may be None)."""
        p = self._params
        return (p[f"weight_ih_l{k}{sfx}"], p[f"weight_hh_l{k}{sfx}"],
                p.get(f"bias_ih_l{k}{sfx}"), p.get(f"bias_hh_l{k}{sfx}"))

    def __getattr__(self, name):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # What the parameters' shapes and dtype are made of: fixed once they exist.
    _FIXED = ("mode", "input_size", "hidden_size", "num_layers", "bias", "bidirectional",
              "dtype")

    def __setattr__(self, name, value):
        """Assigning a parameter attribute copies the new values into the live array.

        The shape must match and the values must be real numbers (cast to the
        module's dtype), as ``load_state_dict`` requires; the array object
        stays the same, so optimizers holding it keep updating the module.
        The sizes, ``bias``, ``bidirectional`` and ``dtype`` are fixed at
        construction (``AttributeError``).
        """
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            params[name][...] = self._checked_parameter(name, value, name)
        elif params is not None and name in self._FIXED:
            raise AttributeError(f"{name} is fixed when the RNN is made (it shapes the "
                                 "parameters); make a new RNN instead")
        else:
            super().__setattr__(name, value)

    def _checked_parameter(self, name, value, label):
        """``value`` as an array fit for parameter ``name``; errors call it ``label``."""
        current = self._params[name]
        try:
            a = _as_numpy(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{label} must be an array of real numbers: {exc}") from None
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{label} has dtype {a.dtype}; expected real numbers")
        if a.shape != current.shape:
            raise ValueError(f"{label} has shape {a.shape}; expected {current.shape}")
        return a

    def named_parameters(self):
        """``(name, array)`` pairs, in PyTorch's order; the arrays are the live parameters."""
        return list(self._params.items())

    def state_dict(self):
        """A dict of copies of every parameter, keyed like ``torch.nn.RNN.state_dict()``."""
        return {name: a.copy() for name, a in self._params.items()}

    def load_state_dict(self, state_dict):
        """Copy parameters from ``state_dict`` (NumPy arrays or torch tensors).

        Keys must match exactly and shapes must agree; nothing changes unless
        every entry is valid.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError("state_dict must be a mapping of parameter names to arrays")
        missing = [k for k in self._params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._params]
        if missing or unexpected:
            raise KeyError(f"state_dict does not match: missing {missing}, "
                           f"unexpected {unexpected}")
        arrays = {name: self._checked_parameter(name, state_dict[name], f"state_dict[{name!r}]")
                  for name in self._params}
        for name, a in arrays.items():
            self._params[name][...] = a

    def train(self, mode=True):
        """Training mode (dropout on) or, with ``mode=False``, evaluation mode."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode: no dropout."""
        return self.train(False)

    def _extra_repr(self):
        """``(name, value, default)`` of the constructor arguments a repr shows when not default."""
        return (("num_layers", self.num_layers, 1), ("bias", self.bias, True),
                ("batch_first", self.batch_first, False), ("dropout", self.dropout, 0.0),
                ("bidirectional", self.bidirectional, False))

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v, default in self._extra_repr() if v != default)
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}, "
                f"dtype={self.dtype.name})")

    # -- forward -------------------------------------------------------------

    def _check_inputs(self, input, hx, lengths):
        """Validated ``(X (N, L, H_in) batch-major, h0 (D*layers, N, H), lengths, batched)``."""
        x = V.as_array("input", input)
        if x.ndim not in (2, 3):
            raise ValueError(f"input must be 2-D (unbatched) or 3-D (batched); "
                             f"got shape {x.shape}")
        batched = x.ndim == 3
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input.shape[-1] must equal input_size = {self.input_size}; "
                             f"got input of shape {x.shape}")
        if not batched:
            x = x[None]                                  # (1, L, H_in)
        elif not self.batch_first:
            x = x.transpose(1, 0, 2)                     # (N, L, H_in)
        n_batch, n_steps = x.shape[0], x.shape[1]
        V.check_sizes(n_x=self.input_size, n_h=self.hidden_size, n_y=1, m=n_batch,
                       T_x=n_steps)
        # always a copy: backward reads it, and the caller may change theirs
        x = np.array(x, dtype=self.dtype, order="C", copy=True)
        n_states = self.num_layers * self.num_directions
        expected = (n_states, n_batch, self.hidden_size) if batched \
            else (n_states, self.hidden_size)
        if hx is None:
            h0 = np.zeros((n_states, n_batch, self.hidden_size), self.dtype)
        else:
            h = V.as_array("hx", hx)
            if h.shape != expected:
                raise ValueError(f"hx has shape {h.shape}; expected {expected} "
                                 "(num_layers * num_directions, N, hidden_size)"
                                 if batched else
                                 f"hx has shape {h.shape}; expected {expected} "
                                 "(num_layers * num_directions, hidden_size) for unbatched input")
            h0 = np.array(h if batched else h[:, None], dtype=self.dtype, order="C")
        if lengths is not None:
            lengths = V.as_array("lengths", lengths)
            if lengths.dtype.kind not in "iu":
                raise TypeError(f"lengths has dtype {lengths.dtype}; expected integers")
            lengths = lengths.reshape(-1) if not batched else lengths
            if lengths.shape != (n_batch,):
                raise ValueError(f"lengths has shape {lengths.shape}; expected ({n_batch},), "
                                 "one length per batch element")
            if lengths.min() < 1 or lengths.max() > n_steps:
                raise ValueError(f"lengths must lie in [1, {n_steps}] (the padded length); "
                                 f"got {lengths.min()}..{lengths.max()}")
            lengths = np.array(lengths, dtype=np.intp, copy=True)
            if lengths.min() == n_steps:
                lengths = None                           # nothing is padded
        return x, h0, lengths, batched

    def forward(self, input, hx=None, lengths=None):
        """Run every layer; return ``(output, h_n)`` like ``torch.nn.RNN``.

        Parameters
        ----------
        input : array_like
            ``(L, N, input_size)``, ``(N, L, input_size)`` with ``batch_first``,
            or ``(L, input_size)`` unbatched.
        hx : array_like, optional
            ``(D * num_layers, N, hidden_size)`` (``(D * num_layers,
            hidden_size)`` unbatched); zeros when omitted.
        lengths : array_like of int, optional
            Valid length of each sequence (``pack_padded_sequence``
            semantics): later steps leave the state unchanged and output zeros.

        Returns
        -------
        output : ndarray
            ``(L, N, D * hidden_size)`` (batch-first or unbatched as the input),
            both directions concatenated on the last axis.
        h_n : ndarray
            ``(D * num_layers, N, hidden_size)``, each sequence's final state.
        """
        x, h0, lengths, batched = self._check_inputs(input, hx, lengths)
        n_batch, n_steps = x.shape[0], x.shape[1]
        H, D = self.hidden_size, self.num_directions
        own = F.use_own_products(n_batch, H)
        padded = None if lengths is None else np.arange(n_steps)[None, :] >= lengths[:, None]
        layers, h_n = [], np.empty((self.num_layers * D, n_batch, H), self.dtype)
        layer_input = x.reshape(n_batch * n_steps, -1)
        for k in range(self.num_layers):
            states = []
            for d, sfx in enumerate(self._suffixes()):
                S = self._cell.forward(layer_input, h0[k * D + d],
                                       *self._layer_parameters(k, sfx), lengths, d == 1, own)
                h_n[k * D + d] = S[:, 0] if d == 1 else S[:, -1]
                states.append(S)
            out = states[0] if D == 1 else np.concatenate(states, axis=2)
            if padded is not None:
                out = out.copy() if D == 1 else out
                out[padded] = 0
            mask = None
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                keep = self._dropout_rng.random(out.shape) >= self.dropout
                scale = 0.0 if self.dropout == 1 else 1 / (1 - self.dropout)
                mask = (keep * scale).astype(self.dtype)
                out = out * mask
            layers.append({"input": layer_input, "states": states, "mask": mask})
            layer_input = out.reshape(n_batch * n_steps, D * H)
        self._cache = {"layers": layers, "h0": h0, "lengths": lengths, "batched": batched,
                       "shape": (n_batch, n_steps), "own": own}
        # the caller may write into output: never hand out the states backward reads
        output = out.copy() if out is layers[-1]["states"][0] else out
        if not batched:
            return output[0], h_n[:, 0]
        return (output if self.batch_first else output.transpose(1, 0, 2)), h_n

    __call__ = forward

    # -- backward ------------------------------------------------------------

    def backward(self, grad_output, grad_h_n=None):
        """Gradients of the last ``forward`` given the gradients of its outputs.

        Parameters
        ----------
        grad_output : array_like
            Gradient with respect to ``output`` (same shape).
        grad_h_n : array_like, optional
            Gradient with respect to ``h_n`` (same shape); zeros when omitted.

        Returns
        -------
        dict
            ``"input"`` and ``"hx"`` (shaped like those arguments) and one
            entry per parameter name, equal to what PyTorch's autograd gives.
        """
        if self._cache is None:
            raise RuntimeError("backward needs a forward pass first")
        cache = self._cache
        n_batch, n_steps = cache["shape"]
        batched, lengths, own = cache["batched"], cache["lengths"], cache["own"]
        H, D = self.hidden_size, self.num_directions
        out_shape = (n_batch, n_steps, D * H)
        expected = out_shape if self.batch_first else (n_steps, n_batch, D * H)
        expected = expected if batched else (n_steps, D * H)
        g = V.as_array("grad_output", grad_output)
        V.check_shape("grad_output", g, expected, "the shape of output")
        g = g[None] if not batched else (g if self.batch_first else g.transpose(1, 0, 2))
        n_states = self.num_layers * D
        hn_expected = (n_states, n_batch, H) if batched else (n_states, H)
        if grad_h_n is None:
            g_hn = np.zeros((n_states, n_batch, H), self.dtype)
        else:
            g_hn = V.as_array("grad_h_n", grad_h_n)
            V.check_shape("grad_h_n", g_hn, hn_expected, "the shape of h_n")
            g_hn = np.array(g_hn if batched else g_hn[:, None], dtype=self.dtype, order="C")

        grads, d_hx = {}, np.empty((n_states, n_batch, H), self.dtype)
        g_layer = g
        for k in range(self.num_layers - 1, -1, -1):
            layer = cache["layers"][k]
            if layer["mask"] is not None:
                g_layer = g_layer * layer["mask"]
            x_rows = layer["input"]
            d_input = None
            for d, sfx in enumerate(self._suffixes()):
                w_ih, w_hh, _, _ = self._layer_parameters(k, sfx)
                dS = np.array(g_layer[:, :, d * H:(d + 1) * H], dtype=self.dtype, order="C")
                dx, dh0, dw_ih, dw_hh, db_ih, db_hh = self._cell.backward(
                    x_rows, cache["h0"][k * D + d], layer["states"][d], dS, g_hn[k * D + d],
                    w_ih, w_hh, lengths, d == 1, own)
                grads[f"weight_ih_l{k}{sfx}"], grads[f"weight_hh_l{k}{sfx}"] = dw_ih, dw_hh
                if self.bias:
                    grads[f"bias_ih_l{k}{sfx}"], grads[f"bias_hh_l{k}{sfx}"] = db_ih, db_hh
                d_hx[k * D + d] = dh0
                d_input = dx if d_input is None else d_input + dx
            g_layer = d_input.reshape(n_batch, n_steps, -1)
        d_in = g_layer
        if not batched:
            d_in, d_hx = d_in[0], d_hx[:, 0]
        elif not self.batch_first:
            d_in = d_in.transpose(1, 0, 2)
        ordered = {name: grads[name] for name in self._params}
        return {"input": d_in, "hx": d_hx, **ordered}


class RNN(RNNBase):
    """Multi-layer Elman RNN with ``tanh`` or ``relu``, as ``torch.nn.RNN``.

    For each layer and direction, ``h_t = f(x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh)``.

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int, default 1
    nonlinearity : {"tanh", "relu"}
    bias : bool, default True
        Whether the layers have ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Input and output are ``(N, L, features)`` instead of ``(L, N, features)``;
        the hidden state keeps ``(D * num_layers, N, H)`` either way.
    dropout : float in [0, 1], default 0
        Dropout on the outputs of every layer but the last, in training mode.
    bidirectional : bool, default False
    dtype : float32 or float64, keyword-only
    seed : int or None, keyword-only
        Seeds the initialisation, uniform(-1/sqrt(H), 1/sqrt(H)) like PyTorch,
        and the dropout masks.

    Parameters are named as in PyTorch's ``state_dict`` (``weight_ih_l0``,
    ``bias_hh_l1_reverse``, ...) and readable as attributes.
    """

    _MODES = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, dtype=np.float32,
                 seed=None):
        if nonlinearity not in self._MODES:
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; select 'tanh' or 'relu'")
        super().__init__(self._MODES[nonlinearity], input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, dtype=dtype, seed=seed)

    @property
    def nonlinearity(self):
        return "relu" if self.mode == "RNN_RELU" else "tanh"

    def _extra_repr(self):
        base = super()._extra_repr()
        return base[:1] + (("nonlinearity", self.nonlinearity, "tanh"),) + base[1:]
