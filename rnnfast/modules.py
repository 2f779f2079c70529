"""Recurrent layers with ``torch.nn``'s interface and semantics on NumPy arrays, compiled.

``RNNBase(mode, ...)`` is the layer driver shared by every cell: parameter
names and shapes (the gate count comes from the cell: weights are
``(gates * H, in)``), initialisation, ``state_dict``, input checks, layers,
both directions, ``batch_first``, unbatched input, variable sequence lengths
with ``pack_padded_sequence`` semantics, dropout between layers, and an
explicit ``backward`` that returns the gradients autograd would.  Layers and
directions are stacked as :mod:`rnnfast._layers` describes, the scheme the
NumPy twins and the torch plug-in share.

:data:`CELLS` is the registry of cells, by torch's mode name
(``"RNN_TANH"``, ``"RNN_RELU"``, ``"LSTM"``, ``"GRU"``): each :class:`Cell`
knows its names (the mode, the char model's lowercase ``name``, the module
class name ``torch_name``), its gate count, its states and the compiled
passes of one layer direction.  Every other list of cells (the char model's
``cell`` argument, the CLI's ``--cell``, the torch interchange and plug-in)
derives from it.  Adding a cell means its kernel step, its NumPy twin in
``reference.py``, a ``Cell`` registered here and a subclass naming the mode.
"""

import collections
import contextlib
import numbers
import threading
import warnings

import numpy as np

from rnnfast import _kernels, _layers
from rnnfast import _validation as V
from rnnfast import functional as F

__all__ = ["RNN", "LSTM", "GRU", "RNNBase", "Cell", "CELLS", "cell_names", "cell_mode",
           "no_grad", "is_grad_enabled"]

# Whether a forward keeps what backward needs: per thread, as torch's grad mode.
_grad_mode = threading.local()


def is_grad_enabled():
    """Tell whether a forward in this thread keeps what ``backward`` needs.

    Returns
    -------
    enabled : bool
        False inside a :class:`no_grad` block of this thread, True otherwise.

    Examples
    --------
    >>> import rnnfast
    >>> rnnfast.is_grad_enabled()
    True
    >>> with rnnfast.no_grad():
    ...     rnnfast.is_grad_enabled()
    False
    """
    return getattr(_grad_mode, "enabled", True)


class no_grad(contextlib.ContextDecorator):
    """Inference mode, like ``torch.no_grad()``: a forward keeps nothing for ``backward``.

    Inside ``with rnnfast.no_grad():`` (or in a function decorated with
    ``@rnnfast.no_grad()``) the modules' ``forward`` returns the same outputs
    but holds no cache, so memory is only the outputs; a ``backward`` after
    such a forward raises ``RuntimeError``.  The mode is per thread, and
    blocks nest.
    """

    def __enter__(self):
        previous = _grad_mode.__dict__.setdefault("previous", [])
        previous.append(is_grad_enabled())
        _grad_mode.enabled = False
        return self

    def __exit__(self, *exc_info):
        _grad_mode.enabled = _grad_mode.previous.pop()
        return False


def check_size(name, value):
    """``value`` as an int of at least 1, with torch's errors.

    Raises
    ------
    TypeError
        Not an integer (a float, a string, a bool...).
    ValueError
        An integer below 1.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be greater than zero; got {value}")
    return int(value)


def check_dropout(dropout):
    """``dropout`` as a float in [0, 1]; ``ValueError`` otherwise (torch's error)."""
    if (isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real)
            or not 0 <= dropout <= 1):
        raise ValueError("dropout should be a number in range [0, 1] representing the "
                         f"probability of an element being zeroed; got {dropout!r}")
    return float(dropout)


def check_module_sizes(n_batch, n_steps, input_size, gate_rows, what="input"):
    """The sizes of one call fit the 32-bit BLAS sizes; errors in the module's terms.

    Raises
    ------
    RuntimeError
        A sequence length of 0 (as torch raises it).
    ValueError
        A product of sizes beyond the 32-bit BLAS limit.
    """
    if n_steps == 0:
        raise RuntimeError(f"Expected sequence length to be larger than 0: {what} has "
                           "sequence length 0")
    for label, size in (("batch size * sequence length", n_batch * n_steps),
                        ("sequence length * gate rows", n_steps * gate_rows),
                        ("input_size", input_size), ("gate rows", gate_rows)):
        if size > V.INT_MAX:
            raise ValueError(f"{what}: {label} = {size} exceeds the 32-bit BLAS limit "
                             f"{V.INT_MAX}")


def _as_numpy(value):
    """NumPy view of an array-like or of a torch tensor (detached, on the CPU)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class Cell:
    """One recurrent cell: its names, gates, states and the compiled passes of one layer
    direction.

    ``name`` is the char model's lowercase name (``"rnn"``, shared by the
    modes that differ only in ``nonlinearity``); ``torch_name`` the class
    name of its module in ``torch.nn``, :mod:`rnnfast` and
    :mod:`rnnfast.torch` (``"RNN"``); ``gates`` the number of H-row blocks in
    ``weight_ih``/``weight_hh``; ``states`` names the recurrent states
    (``("h",)``, or ``("h", "c")`` for the LSTM); ``projection`` whether the
    cell takes ``proj_size``.  Subclasses define :meth:`forward` and
    :meth:`backward`; ``RNNBase`` does everything else (layers, directions,
    lengths, dropout, layouts, names).  A layer direction's parameters reach
    a cell as a dict keyed by the names without the layer suffix
    (``weight_ih``, ``bias_hh``, ...; a bias is None when the module has none).
    """

    name: str | None = None
    torch_name: str | None = None
    nonlinearity = "tanh"
    gates = 1
    states: tuple[str, ...] = ("h",)
    projection = False

    def forward(self, x_rows, states0, params, lengths, reverse, own_products):
        """Run one direction of one layer.

        Parameters
        ----------
        x_rows : ndarray of shape (m * T, n_in)
            The layer's input, batch-major (row ``i * T + t`` is step ``t`` of
            sequence ``i``), C-contiguous, in the module's dtype.
        states0 : tuple of ndarray
            The initial value of each state named in ``states``, each
            ``(m, width)``.
        params : dict[str, ndarray or None]
            This direction's parameters, keyed without the layer suffix
            (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``, ...); a bias
            is None when the module has none.
        lengths : ndarray of intp, shape (m,), or None
            The valid length of each sequence (None: all ``T``).
        reverse : bool
            Run from the last step to the first.
        own_products : bool
            Use the package's own small matrix products instead of BLAS.

        Returns
        -------
        S : ndarray of shape (m, T, width of h)
            The h state after every step (carried through padded steps).
        finals : tuple of ndarray
            The final value of every state, each ``(m, width)``.
        saved : object
            What :meth:`backward` needs besides (gate values, for instance).
        """
        raise NotImplementedError

    def backward(self, x_rows, states0, S, saved, dS, grad_finals, params, lengths, reverse,
                 own_products):
        """Backpropagate through one direction of one layer.

        Parameters
        ----------
        x_rows : ndarray of shape (m * T, n_in)
            The input of the forward pass.
        states0 : tuple of ndarray
            The initial states of the forward pass.
        S : ndarray of shape (m, T, width of h)
            The h states :meth:`forward` returned.
        saved : object
            What :meth:`forward` returned for this pass.
        dS : ndarray of shape (m, T, width of h)
            The gradient of the loss with respect to ``S``: a private copy the
            kernel may overwrite.
        grad_finals : tuple of ndarray or None
            The gradients of the final states (None: zero), one per state.
        params : dict[str, ndarray or None]
            The parameters, as for :meth:`forward`.
        lengths : ndarray of intp, shape (m,), or None
            As for :meth:`forward`.
        reverse : bool
            As for :meth:`forward`.
        own_products : bool
            As for :meth:`forward`.

        Returns
        -------
        d_input_rows : ndarray of shape (m * T, n_in)
            The gradient with respect to ``x_rows``.
        d_states0 : tuple of ndarray
            The gradients with respect to ``states0``.
        grads : dict[str, ndarray]
            The parameters' gradients, keyed like ``params`` (biases only when
            the module has them).
        """
        raise NotImplementedError

    @staticmethod
    def _final(S, reverse):
        """Each sequence's final state: the kernels carry it to the last step taken."""
        return S[:, 0] if reverse else S[:, -1]


class ElmanCell(Cell):
    """``h_t = f(x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh)`` with ``f`` the ``nonlinearity``."""

    name, torch_name = "rnn", "RNN"

    def __init__(self, nonlinearity):
        self.nonlinearity = nonlinearity
        self.activation = _kernels.Activation[nonlinearity.upper()]

    def forward(self, x_rows, states0, params, lengths, reverse, own_products):
        (h0,) = states0
        b_ih, b_hh = params["bias_ih"], params["bias_hh"]
        w_hh = params["weight_hh"]
        bias = np.zeros(w_hh.shape[0], h0.dtype) if b_ih is None else b_ih + b_hh
        S = _kernels.layer_forward(x_rows, h0, params["weight_ih"], w_hh, bias, lengths,
                                   reverse, self.activation, own_products)
        return S, (self._final(S, reverse),), None

    def backward(self, x_rows, states0, S, saved, dS, grad_finals, params, lengths, reverse,
                 own_products):
        dx, dh0, dw_ih, dw_hh, db = _kernels.layer_backward(
            x_rows, states0[0], S, dS, grad_finals[0], params["weight_ih"],
            params["weight_hh"], lengths, reverse, self.activation, own_products)
        grads = {"weight_ih": dw_ih, "weight_hh": dw_hh}
        if params["bias_ih"] is not None:
            grads["bias_ih"], grads["bias_hh"] = db, db.copy()   # both enter the same sum
        return dx, (dh0,), grads


class LSTMCell(Cell):
    """torch's LSTM: gates i, f, g, o; ``c' = f c + i g``, ``h' = o tanh(c')`` (then
    ``h' W_hr^T`` with a projection)."""

    name, torch_name = "lstm", "LSTM"
    gates = 4
    states = ("h", "c")
    projection = True

    def forward(self, x_rows, states0, params, lengths, reverse, own_products):
        h0, c0 = states0
        b_ih, b_hh = params["bias_ih"], params["bias_hh"]
        bias = None if b_ih is None else b_ih + b_hh
        S, c, gates = _kernels.lstm_layer_forward(
            x_rows, h0, c0, params["weight_ih"], params["weight_hh"], bias,
            params.get("weight_hr"), lengths, reverse)
        return S, (self._final(S, reverse), self._final(c, reverse)), (c, gates)

    def backward(self, x_rows, states0, S, saved, dS, grad_finals, params, lengths, reverse,
                 own_products):
        c, gates = saved
        dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = _kernels.lstm_layer_backward(
            x_rows, states0[0], states0[1], S, c, gates, dS, grad_finals[0], grad_finals[1],
            params["weight_ih"], params["weight_hh"], params.get("weight_hr"), lengths,
            reverse)
        grads = {"weight_ih": dw_ih, "weight_hh": dw_hh}
        if params["bias_ih"] is not None:
            grads["bias_ih"], grads["bias_hh"] = db, db.copy()   # both enter the same sum
        if dw_hr is not None:
            grads["weight_hr"] = dw_hr
        return dx, (dh0, dc0), grads


class GRUCell(Cell):
    """torch's GRU: gates r, z, n; ``n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn))``,
    ``h' = (1 - z) n + z h``."""

    name, torch_name = "gru", "GRU"
    gates = 3

    def forward(self, x_rows, states0, params, lengths, reverse, own_products):
        S, gates, hn = _kernels.gru_layer_forward(
            x_rows, states0[0], params["weight_ih"], params["weight_hh"], params["bias_ih"],
            params["bias_hh"], lengths, reverse)
        return S, (self._final(S, reverse),), (gates, hn)

    def backward(self, x_rows, states0, S, saved, dS, grad_finals, params, lengths, reverse,
                 own_products):
        gates, hn = saved
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _kernels.gru_layer_backward(
            x_rows, states0[0], S, gates, hn, dS, grad_finals[0], params["weight_ih"],
            params["weight_hh"], lengths, reverse)
        grads = {"weight_ih": dw_ih, "weight_hh": dw_hh}
        if params["bias_ih"] is not None:
            grads["bias_ih"], grads["bias_hh"] = db_ih, db_hh
        return dx, (dh0,), grads


# The registered cells, by mode name (torch's names): the one list of cells.
#: The registered cells, by torch's mode name (``"RNN_TANH"``, ``"RNN_RELU"``, ``"LSTM"``,
#: ``"GRU"``), each a :class:`Cell`: the one list of cells every other list derives from.
CELLS = {
    "RNN_TANH": ElmanCell("tanh"),
    "RNN_RELU": ElmanCell("relu"),
    "LSTM": LSTMCell(),
    "GRU": GRUCell(),
}


def cell_names():
    """List the char model's cell names, in registration order.

    Returns
    -------
    names : tuple of str
        The distinct lowercase names of :data:`CELLS`: ``("rnn", "lstm", "gru")``.

    Examples
    --------
    >>> from rnnfast.modules import cell_names
    >>> cell_names()
    ('rnn', 'lstm', 'gru')
    """
    return tuple(dict.fromkeys(cell.name for cell in CELLS.values()))


def cell_mode(name, nonlinearity="tanh"):
    """Find the mode (the key of :data:`CELLS`) of a cell by its lowercase name.

    Parameters
    ----------
    name : str
        The char model's name of the cell (``"rnn"``, ``"lstm"``, ``"gru"``).
    nonlinearity : str, default "tanh"
        The cell's activation (``"relu"`` only for ``"rnn"``).

    Returns
    -------
    mode : str
        Torch's mode name, such as ``"RNN_RELU"``.

    Raises
    ------
    ValueError
        No registered cell has that name and nonlinearity.

    Examples
    --------
    >>> from rnnfast.modules import cell_mode
    >>> cell_mode("rnn", "relu"), cell_mode("gru")
    ('RNN_RELU', 'GRU')
    """
    for mode, cell in CELLS.items():
        if cell.name == name and cell.nonlinearity == nonlinearity:
            return mode
    raise ValueError(f"no cell {name!r} with nonlinearity {nonlinearity!r}; cells: "
                     + ", ".join(f"{c.name!r} ({c.nonlinearity})" for c in CELLS.values()))


def nonlinearities(name):
    """The nonlinearities the cell called ``name`` comes with (``("tanh", "relu")`` for the RNN)."""
    return tuple(cell.nonlinearity for cell in CELLS.values() if cell.name == name)


class _IncompatibleKeys(collections.namedtuple("IncompatibleKeys",
                                               ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns, as torch's: the keys it did not match."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _module_dtype(dtype):
    """``dtype`` as float32 or float64 for :meth:`RNNBase.to`; ``TypeError`` for any other.

    Takes what :class:`numpy.dtype` takes (``np.float32``, ``"float64"``, a dtype)
    and torch's ``torch.float32``/``torch.float64`` (without importing torch).
    """
    value = dtype
    if type(dtype).__module__ == "torch" and type(dtype).__name__ == "dtype":
        value = str(dtype).removeprefix("torch.")
    try:
        resolved = None if value is None else np.dtype(value)
    except (TypeError, ValueError):
        resolved = None
    if resolved is None or resolved not in (np.float32, np.float64):
        raise TypeError("dtype must be float32 or float64 (rnnfast computes in those); "
                        f"got {dtype!r}")
    return resolved


class RNNBase:
    """The layer driver of every recurrent module, as ``torch.nn.RNNBase(mode, ...)``.

    :class:`RNN`, :class:`LSTM` and :class:`GRU` are this class with the mode
    fixed; their methods are documented here.

    Parameters
    ----------
    mode : str
        The cell, a key of :data:`CELLS` (``"RNN_TANH"``, ``"RNN_RELU"``,
        ``"LSTM"``, ``"GRU"``).
    input_size : int
        Number of features of each step of the input, at least 1.
    hidden_size : int
        Number of features of the hidden state ``H``, at least 1.
    num_layers : int, default 1
        Number of stacked layers; layer ``k > 0`` reads layer ``k - 1``'s output.
    bias : bool, default True
        Whether the layers have ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Input and output are ``(N, L, features)`` instead of ``(L, N, features)``;
        the hidden state keeps ``(D * num_layers, N, H)`` either way.
    dropout : float, default 0.0
        Probability, in ``[0, 1]``, of zeroing each output of every layer but
        the last, in training mode (a ``UserWarning`` with one layer, where it
        does nothing).
    bidirectional : bool, default False
        Run a second direction backwards over each layer's input; ``D = 2``
        and the outputs of the two directions are concatenated.
    proj_size : int, default 0
        Only for a cell with a projection (the LSTM).  With
        ``0 < proj_size < hidden_size``, h is projected to ``proj_size``
        by ``weight_hr_l{k}`` (``(proj_size, hidden_size)``); the output and
        ``h_n`` then have width ``proj_size`` (``c_n`` keeps ``hidden_size``).
    dtype : {numpy.float32, numpy.float64}, default numpy.float32, keyword-only
        Dtype of the parameters and of every computation.
    seed : int or None, default None, keyword-only
        Seeds the initialisation, every parameter uniform in
        ``(-1/sqrt(H), 1/sqrt(H))`` like PyTorch, and the dropout masks.

    Attributes
    ----------
    weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ... : ndarray
        Every parameter, named as in PyTorch's ``state_dict`` (``_l{k}`` for
        layer ``k``, ``_reverse`` for the backward direction), readable as an
        attribute and assignable (an array of the same shape).  Weights are
        ``(gates * H, in)``; see :meth:`RNNBase.named_parameters`.
    training : bool
        Training mode (dropout on); see :meth:`RNNBase.train`.

    Raises
    ------
    ValueError
        If a size is below 1, ``dropout`` is out of
        ``[0, 1]``, ``mode`` is unknown, or ``proj_size`` is negative, not
        below ``hidden_size`` or given to a cell without projection.
    TypeError
        If a size is not an integer, ``bias``, ``batch_first`` or
        ``bidirectional`` is not a bool, or ``dtype`` is not float32 or float64.
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0, *,
                 dtype=np.float32, seed=None):
        if mode not in CELLS:
            raise ValueError(f"Unknown mode {mode!r}; one of {', '.join(CELLS)}")
        input_size, hidden_size, num_layers = (
            check_size(name, value) for name, value in (
                ("input_size", input_size), ("hidden_size", hidden_size),
                ("num_layers", num_layers)))
        if isinstance(proj_size, (bool, np.bool_)) or not isinstance(proj_size, numbers.Integral):
            raise TypeError(f"proj_size should be of type int, got: {type(proj_size).__name__}")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             f"projections; got {proj_size!r}")
        if proj_size and not CELLS[mode].projection:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size has to be smaller than hidden_size; got proj_size="
                             f"{proj_size}, hidden_size={hidden_size}")
        for name, value in (("bias", bias), ("batch_first", batch_first),
                            ("bidirectional", bidirectional)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        dropout = check_dropout(dropout)
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout applies between layers, so it has no effect with "
                          f"num_layers=1 (dropout={dropout})", UserWarning, stacklevel=2)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64; got {dtype}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.proj_size = int(num_layers), int(proj_size)
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
        # each thread's cache of its last forward, for its backward
        self._local = threading.local()

    # -- parameters ----------------------------------------------------------

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def _suffixes(self):
        return _layers.suffixes(self.bidirectional)

    @property
    def _output_size(self):
        """The width of h in each direction: ``proj_size`` when set, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    def _state_sizes(self):
        """The width of each recurrent state, in the cell's order (h, then c for the LSTM)."""
        return {"h": self._output_size, "c": self.hidden_size}

    def _parameter_shapes(self):
        """Every parameter's shape, in torch's order (per layer, per direction)."""
        return _layers.parameter_shapes(self._cell.gates, self.input_size, self.hidden_size,
                                        self.num_layers, self.bidirectional, self.bias,
                                        self.proj_size)

    def _layer_parameters(self, k, sfx):
        """Layer ``k``'s parameters in direction ``sfx``, keyed without the suffix.

        ``bias_ih``/``bias_hh`` are None without biases; ``weight_hr`` is
        present only with a projection.
        """
        p, tail = self._params, f"_l{k}{sfx}"
        params = {"weight_ih": p["weight_ih" + tail], "weight_hh": p["weight_hh" + tail],
                  "bias_ih": p.get("bias_ih" + tail), "bias_hh": p.get("bias_hh" + tail)}
        if self.proj_size:
            params["weight_hr"] = p["weight_hr" + tail]
        return params

    def __getattr__(self, name):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # What the parameters' shapes and dtype are made of: fixed once they exist.
    _FIXED = ("mode", "input_size", "hidden_size", "num_layers", "bias", "bidirectional",
              "proj_size", "dtype")

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
            kind = type(self).__name__
            raise AttributeError(f"{name} is fixed when the {kind} is made (it shapes the "
                                 f"parameters); make a new {kind} instead")
        else:
            super().__setattr__(name, value)

    def __getstate__(self):
        """For ``copy`` and ``pickle``: everything but the threads' forward caches."""
        state = dict(self.__dict__)
        del state["_local"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__["_local"] = threading.local()

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
        """List the parameters as ``(name, array)`` pairs, in PyTorch's order.

        Returns
        -------
        pairs : list of (str, ndarray)
            For each layer ``k`` and direction: ``weight_ih_l{k}``
            ``(gates * H, in)``, ``weight_hh_l{k}`` ``(gates * H, H_out)``,
            ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(gates * H,)`` (with
            ``bias``), ``weight_hr_l{k}`` ``(proj_size, H)`` (with a
            projection), then the same with ``_reverse``.  The arrays are the
            live parameters, not copies: an optimizer built on them updates
            the module.
        """
        return list(self._params.items())

    def parameters(self):
        """Iterate over the parameters, in :meth:`named_parameters` order, like torch.

        Returns
        -------
        parameters : iterator of ndarray
            The live parameter arrays (not copies).
        """
        return iter(list(self._params.values()))

    def state_dict(self):
        """Return copies of every parameter.

        Returns
        -------
        state_dict : dict[str, ndarray]
            A copy of each parameter, keyed like ``torch.nn.RNN.state_dict()``.
        """
        return {name: a.copy() for name, a in self._params.items()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy parameters from ``state_dict`` into the module's arrays, in place.

        Shapes must agree; nothing changes unless every entry is valid.  With
        ``strict`` the keys must match exactly; without, the parameters found
        are loaded and the others keep their values, as torch does.

        Parameters
        ----------
        state_dict : mapping[str, array_like]
            Parameters by name, as :meth:`state_dict` or torch's
            ``state_dict()`` give them (NumPy arrays or CPU torch tensors).
        strict : bool, default True
            Whether the keys must be exactly the module's parameter names.

        Returns
        -------
        incompatible : IncompatibleKeys
            A named tuple ``(missing_keys, unexpected_keys)`` of lists, like
            torch's: the parameter names absent from ``state_dict`` and the
            keys of ``state_dict`` that are no parameter (both empty when
            ``strict``).

        Raises
        ------
        TypeError
            If ``state_dict`` is not a mapping, ``strict`` not a bool, or an
            entry is not real numbers.
        KeyError
            With ``strict``, if the keys are not exactly the module's
            parameter names.
        ValueError
            If an entry's shape differs from its parameter's (``strict`` or not,
            as in torch).

        Examples
        --------
        >>> import rnnfast
        >>> gru = rnnfast.GRU(3, 4, seed=0)
        >>> result = gru.load_state_dict({"weight_ih_l0": gru.weight_ih_l0 * 2}, strict=False)
        >>> result.missing_keys, result.unexpected_keys
        (['weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0'], [])
        >>> gru.load_state_dict(gru.state_dict())
        <All keys matched successfully>
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError("state_dict must be a mapping of parameter names to arrays")
        if not isinstance(strict, (bool, np.bool_)):
            raise TypeError(f"strict should be of type bool, got: {type(strict).__name__}")
        missing = [k for k in self._params if k not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in self._params]
        if strict and (missing or unexpected):
            raise KeyError(f"state_dict does not match: missing {missing}, "
                           f"unexpected {unexpected}")
        arrays = {name: self._checked_parameter(name, state_dict[name], f"state_dict[{name!r}]")
                  for name in self._params if name in state_dict}
        for name, a in arrays.items():
            self._params[name][...] = a
        return _IncompatibleKeys(missing, unexpected)

    def to(self, dtype):
        """Convert the parameters to ``dtype``, in place, like ``torch.nn.Module.to``.

        The module then computes in ``dtype``.  To another dtype the parameters
        become new arrays (a NumPy array cannot change its dtype): an optimizer
        or a dict holding the former arrays must be made again from
        :meth:`named_parameters`.  Every thread's forward cache is dropped (a
        ``backward`` needs a new ``forward``).  The same dtype changes nothing.

        Parameters
        ----------
        dtype : numpy dtype, type or str
            Float32 or float64, as :class:`numpy.dtype` takes it
            (``np.float64``, ``"float32"``...); torch's ``torch.float32`` and
            ``torch.float64`` also do.

        Returns
        -------
        module : RNNBase
            This module.

        Raises
        ------
        TypeError
            If ``dtype`` is not float32 or float64.

        Examples
        --------
        >>> import numpy as np
        >>> import rnnfast
        >>> lstm = rnnfast.LSTM(3, 4, seed=0)
        >>> lstm.to(np.float64) is lstm, lstm.weight_ih_l0.dtype
        (True, dtype('float64'))
        """
        dtype = _module_dtype(dtype)
        if dtype != self.dtype:
            self.__dict__["_params"] = {name: a.astype(dtype)
                                        for name, a in self._params.items()}
            self.__dict__["dtype"] = dtype
            self.__dict__["_local"] = threading.local()
        return self

    def float(self):
        """Convert the parameters to float32: ``to(numpy.float32)``.

        Returns
        -------
        module : RNNBase
            This module.
        """
        return self.to(np.float32)

    def double(self):
        """Convert the parameters to float64: ``to(numpy.float64)``.

        Returns
        -------
        module : RNNBase
            This module.
        """
        return self.to(np.float64)

    def train(self, mode=True):
        """Set training mode (dropout on) or, with ``mode=False``, evaluation mode.

        Parameters
        ----------
        mode : bool, default True
            True for training mode, False for evaluation mode.

        Returns
        -------
        module : RNNBase
            This module.
        """
        self.training = bool(mode)
        return self

    def eval(self):
        """Set evaluation mode: no dropout.

        Returns
        -------
        module : RNNBase
            This module.
        """
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
        """Validated ``(X (N, L, H_in) batch-major, states0, lengths, batched)``.

        ``states0`` holds one ``(D*layers, N, width)`` array per cell state.
        """
        x = V.as_array("input", input)
        input_shape = x.shape
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
        check_module_sizes(n_batch, n_steps, self.input_size,
                           self.hidden_size * self._cell.gates, f"input of shape {input_shape}")
        # always a copy: backward reads it, and the caller may change theirs
        x = np.array(x, dtype=self.dtype, order="C", copy=True)
        states0 = self._check_states(hx, n_batch, batched)
        if lengths is not None:
            lengths = V.as_array("lengths", lengths)
            if lengths.dtype.kind not in "iu":
                raise TypeError(f"lengths has dtype {lengths.dtype}; expected integers")
            lengths = lengths.reshape(-1) if not batched else lengths
            if lengths.shape != (n_batch,):
                raise ValueError(f"lengths has shape {lengths.shape}; expected ({n_batch},), "
                                 "one length per batch element")
            if lengths.size and (lengths.min() < 1 or lengths.max() > n_steps):
                raise ValueError(f"lengths must lie in [1, {n_steps}] (the padded length); "
                                 f"got {lengths.min()}..{lengths.max()}")
            lengths = np.array(lengths, dtype=np.intp, copy=True)
            if not lengths.size or lengths.min() == n_steps:
                lengths = None                           # nothing is padded
        return x, states0, lengths, batched

    def _check_states(self, hx, n_batch, batched):
        """The initial states as ``(D*layers, N, width)`` arrays, one per cell state."""
        names = self._cell.states
        n_states = self.num_layers * self.num_directions
        widths = self._state_sizes()
        if hx is None:
            return [np.zeros((n_states, n_batch, widths[n]), self.dtype) for n in names]
        if len(names) > 1:
            if not isinstance(hx, (tuple, list)) or len(hx) != len(names):
                raise TypeError(f"hx must be a tuple ({', '.join(n + '0' for n in names)}) "
                                f"for {type(self).__name__}; got {type(hx).__name__}")
            given = list(hx)
        else:
            given = [hx]
        label = {"h": "hx", "c": "cx"}
        states = []
        for name, value in zip(names, given, strict=True):
            what = label[name]
            a = V.as_array(what, value)
            expected = ((n_states, n_batch, widths[name]) if batched
                        else (n_states, widths[name]))
            if a.shape != expected:
                width = "proj_size" if name == "h" and self.proj_size else "hidden_size"
                layout = (f"(num_layers * num_directions, N, {width})" if batched else
                          f"(num_layers * num_directions, {width}) for unbatched input")
                raise ValueError(f"{what} has shape {a.shape}; expected {expected} {layout}")
            states.append(np.array(a if batched else a[:, None], dtype=self.dtype, order="C"))
        return states

    def forward(self, input, hx=None, lengths=None):
        """Run every layer; return ``(output, h_n)`` like ``torch.nn.RNN`` / ``nn.GRU``
        (``(output, (h_n, c_n))`` for :class:`LSTM`).

        What :meth:`backward` needs is kept for the calling thread only (each
        thread's ``backward`` uses its own last ``forward``), and not at all
        under :class:`rnnfast.no_grad`.

        Parameters
        ----------
        input : array_like
            ``(L, N, input_size)``, ``(N, L, input_size)`` with ``batch_first``,
            or ``(L, input_size)`` unbatched.  ``N = 0`` gives empty results;
            ``L`` must be at least 1.
        hx : array_like, optional
            ``(D * num_layers, N, hidden_size)`` (``(D * num_layers,
            hidden_size)`` unbatched); zeros when omitted.  For the LSTM a
            tuple ``(h0, c0)``, ``h0`` of width ``proj_size`` when set.
        lengths : array_like of int, optional
            Valid length of each sequence (``pack_padded_sequence``
            semantics): later steps leave the state unchanged and output zeros.

        Returns
        -------
        output : ndarray
            ``(L, N, D * H_out)`` (batch-first or unbatched as the input),
            both directions concatenated on the last axis; ``H_out`` is
            ``proj_size`` when set, else ``hidden_size``.
        h_n : ndarray
            ``(D * num_layers, N, H_out)``, each sequence's final state (for the
            LSTM, ``(h_n, c_n)`` with ``c_n`` of width ``hidden_size``).

        Raises
        ------
        RuntimeError
            A sequence length of 0, as torch raises it.
        ValueError, TypeError
            Inputs of the wrong shape or kind.
        """
        output, finals, cache = self._forward(input, hx, lengths, keep=is_grad_enabled())
        self._local.cache = cache
        return output, finals

    __call__ = forward

    @property
    def _cache(self):
        """The calling thread's cache of its last ``forward`` (None when there is none)."""
        return getattr(self._local, "cache", None)

    def _forward(self, input, hx, lengths, keep):
        """``(output, h_n, cache)`` of :meth:`forward`; ``cache`` is None unless ``keep``.

        Touches nothing on ``self``: the cache goes to :meth:`_gradients`.
        """
        x, states0, lengths, batched = self._check_inputs(input, hx, lengths)
        n_batch, n_steps = x.shape[0], x.shape[1]
        if n_batch == 0:
            out, finals, layers = self._empty_forward(states0, n_steps)
        else:
            out, finals, layers = self._run_layers(x, states0, lengths, keep)
        cache = None
        if keep:
            cache = {"layers": layers, "states0": states0, "lengths": lengths,
                     "batched": batched, "shape": (n_batch, n_steps),
                     "own": F.use_own_products(n_batch, self.hidden_size)}
        # the caller may write into output: never hand out the states backward reads
        output = out.copy() if keep and layers and out is layers[-1]["states"][0] else out
        if not batched:
            output, finals = output[0], [f[:, 0] for f in finals]
        elif not self.batch_first:
            output = output.transpose(1, 0, 2)
        return output, (finals[0] if len(finals) == 1 else tuple(finals)), cache

    def _empty_forward(self, states0, n_steps):
        """``(output, finals, layers)`` of a batch of 0 sequences: empty arrays."""
        out = np.zeros((0, n_steps, self.num_directions * self._output_size), self.dtype)
        return out, [np.zeros_like(s0) for s0 in states0], []

    def _run_layers(self, x, states0, lengths, keep):
        """``(output (N, L, D*H_out), finals, layers)``; ``layers`` holds what backward
        reads of each layer (empty unless ``keep``)."""
        n_batch, n_steps = x.shape[0], x.shape[1]
        D = self.num_directions
        cell = self._cell
        own = F.use_own_products(n_batch, self.hidden_size)
        padded = None if lengths is None else np.arange(n_steps)[None, :] >= lengths[:, None]
        layers = []

        def run_direction(layer_input, k, d, sfx, states):
            x_rows = layer_input.reshape(n_batch * n_steps, -1)
            S, last, kept = cell.forward(x_rows, states, self._layer_parameters(k, sfx),
                                         lengths, d == 1, own)
            if keep:
                if d == 0:
                    layers.append({"input": x_rows, "states": [], "saved": [], "mask": None})
                layers[k]["states"].append(S)
                layers[k]["saved"].append(kept)
            return S, last

        def join_layer(k, states):
            out = states[0] if D == 1 else np.concatenate(states, axis=2)
            if padded is not None:
                out = out.copy() if D == 1 else out
                out[padded] = 0
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                drop = self._dropout_rng.random(out.shape) >= self.dropout
                scale = 0.0 if self.dropout == 1 else 1 / (1 - self.dropout)
                mask = (drop * scale).astype(self.dtype)
                out = out * mask
                if keep:
                    layers[k]["mask"] = mask
            return out

        out, finals = _layers.stack_forward(x, states0, self.num_layers, D, run_direction,
                                            join_layer)
        return out, [np.stack(f) for f in finals], layers

    # -- backward ------------------------------------------------------------

    def backward(self, grad_output, grad_h_n=None, *, retain_graph=False):
        """Gradients of this thread's last ``forward`` given the gradients of its outputs.

        Parameters
        ----------
        grad_output : array_like
            Gradient with respect to ``output`` (same shape).
        grad_h_n : array_like, optional
            Gradient with respect to ``h_n`` (same shape); zeros when omitted.
        retain_graph : bool, keyword-only, default False
            Keep the forward's cache for another ``backward``.  By default it
            is released here, as torch frees its graph.

        Returns
        -------
        dict
            ``"input"`` and ``"hx"`` (shaped like those arguments) and one
            entry per parameter name, equal to what PyTorch's autograd gives.

        Raises
        ------
        RuntimeError
            No forward cache in this thread: no forward yet, the forward ran
            under :class:`rnnfast.no_grad`, a ``backward`` released it, or
            :meth:`to` changed the dtype since.
        """
        return self._backward(grad_output, [grad_h_n], retain_graph)

    def _backward(self, grad_output, grad_finals, retain_graph):
        """:meth:`backward` with one gradient (or None) per cell state, in its order."""
        cache = getattr(self._local, "cache", None)
        if cache is None:
            raise RuntimeError(
                "backward needs a forward pass first, in the same thread, that kept its "
                "cache: there was no forward, it ran under rnnfast.no_grad(), a backward "
                "already released it (pass retain_graph=True to backward twice), or to() "
                "changed the module's dtype since")
        grads = self._gradients(cache, grad_output, grad_finals)
        if not retain_graph:
            self._local.cache = None
        return grads

    def _check_grad_finals(self, cache, grad_finals):
        """The gradients of the final states as ``(D*layers, N, width)`` arrays."""
        n_batch, _ = cache["shape"]
        batched = cache["batched"]
        n_states = self.num_layers * self.num_directions
        widths = self._state_sizes()
        g_finals = []
        for name, given in zip(self._cell.states, grad_finals, strict=True):
            label = "grad_h_n" if name == "h" else "grad_c_n"
            shape = ((n_states, n_batch, widths[name]) if batched
                     else (n_states, widths[name]))
            if given is None:
                g_finals.append(np.zeros((n_states, n_batch, widths[name]), self.dtype))
                continue
            a = V.as_array(label, given)
            V.check_shape(label, a, shape, f"the shape of {label[5:]}")
            g_finals.append(np.array(a if batched else a[:, None], dtype=self.dtype,
                                     order="C"))
        return g_finals

    def _gradients(self, cache, grad_output, grad_finals):
        """The gradients of the forward that made ``cache`` (see :meth:`backward`)."""
        n_batch, n_steps = cache["shape"]
        batched = cache["batched"]
        P, D = self._output_size, self.num_directions
        out_shape = (n_batch, n_steps, D * P)
        expected = out_shape if self.batch_first else (n_steps, n_batch, D * P)
        expected = expected if batched else (n_steps, D * P)
        g = V.as_array("grad_output", grad_output)
        V.check_shape("grad_output", g, expected, "the shape of output")
        g = g[None] if not batched else (g if self.batch_first else g.transpose(1, 0, 2))
        g_finals = self._check_grad_finals(cache, grad_finals)
        if n_batch == 0:
            d_in = np.zeros((0, n_steps, self.input_size), self.dtype)
            d_states0 = [np.zeros_like(s0) for s0 in cache["states0"]]
            grads = {name: np.zeros_like(a) for name, a in self._params.items()}
        else:
            d_in, d_states0, grads = self._backward_layers(cache, g, g_finals)
        if not batched:
            d_in, d_states0 = d_in[0], [ds[:, 0] for ds in d_states0]
        elif not self.batch_first:
            d_in = d_in.transpose(1, 0, 2)
        ordered = {name: grads[name] for name in self._params}
        labels = {"h": "hx", "c": "cx"}
        d_states = zip(self._cell.states, d_states0, strict=True)
        return {"input": d_in, **{labels[n]: ds for n, ds in d_states},
                **ordered}

    def _backward_layers(self, cache, g, g_finals):
        """``(d_input (N, L, H_in), d_states0, grads)`` through every layer, last first."""
        n_batch, n_steps = cache["shape"]
        lengths, own, cell = cache["lengths"], cache["own"], self._cell
        layers, states0 = cache["layers"], cache["states0"]
        d_states0 = [np.empty_like(s0) for s0 in states0]

        def unjoin_layer(k, g_layer):
            mask = layers[k]["mask"]
            return g_layer if mask is None else g_layer * mask

        def back_direction(g_d, k, d, sfx, i):
            layer = layers[k]
            dS = np.array(g_d, dtype=self.dtype, order="C")
            dx, d0, grads = cell.backward(
                layer["input"], tuple(s0[i] for s0 in states0), layer["states"][d],
                layer["saved"][d], dS, tuple(gf[i] for gf in g_finals),
                self._layer_parameters(k, sfx), lengths, d == 1, own)
            return dx.reshape(n_batch, n_steps, -1), d0, grads

        d_input, grads = _layers.stack_backward(g, d_states0, self.num_layers,
                                                self.num_directions, self._output_size,
                                                unjoin_layer, back_direction)
        return d_input, d_states0, grads

    # -- for callers that run a module inside a larger computation ----------------

    def get_rng_state(self):
        """Return the state of the generator that draws the dropout masks.

        With :meth:`set_rng_state`, a run stopped and continued draws the
        same masks as one run without a stop.

        Returns
        -------
        state : dict
            The NumPy ``bit_generator`` state, JSON-serialisable.
        """
        return self._dropout_rng.bit_generator.state

    def set_rng_state(self, state):
        """Restore the generator of the dropout masks.

        Parameters
        ----------
        state : dict
            What :meth:`get_rng_state` returned.
        """
        self._dropout_rng.bit_generator.state = state

    def bind_parameter(self, name, array):
        """Make ``array`` itself (no copy) the live parameter ``name``.

        For a caller that holds the parameters in its own dict: an array
        replaced there is the one the module reads.  ``array`` must be a
        C-contiguous array of the parameter's shape and the module's dtype.

        Parameters
        ----------
        name : str
            A parameter name, as :meth:`named_parameters` gives it.
        array : ndarray
            The new parameter, C-contiguous, of its shape and the module's dtype.

        Raises
        ------
        KeyError
            If the module has no parameter ``name``.
        ValueError
            If ``array`` is not such an array.
        """
        current = self._params[name]
        if (not isinstance(array, np.ndarray) or array.shape != current.shape
                or array.dtype != self.dtype or not array.flags.c_contiguous):
            raise ValueError(f"{name} must be a C-contiguous {self.dtype.name} array of "
                             f"shape {current.shape}")
        self._params[name] = array

    def forward_with_cache(self, input, hx=None):
        """Run :meth:`forward` and return what the backward pass needs.

        Nothing is stored on the module: the caller hands ``cache`` to
        :meth:`gradients_from_cache` (any thread, any number of times).  Runs
        even under :class:`no_grad`.

        Parameters
        ----------
        input : array_like
            As for :meth:`forward`.
        hx : array_like or tuple of array_like, optional
            As for :meth:`forward`.

        Returns
        -------
        output : ndarray
            As :meth:`forward` returns it.
        h_n : ndarray or tuple of ndarray
            As :meth:`forward` returns it.
        cache : dict
            Opaque: what :meth:`gradients_from_cache` reads.
        """
        return self._forward(input, hx, None, keep=True)

    def gradients_from_cache(self, cache, grad_output):
        """Compute the gradients of the forward pass that made ``cache``.

        Parameters
        ----------
        cache : dict
            What :meth:`forward_with_cache` returned.
        grad_output : array_like
            The gradient with respect to ``output``, of its shape.

        Returns
        -------
        grads : dict[str, ndarray]
            As :meth:`backward` returns them, with zero gradients of the final
            states.
        """
        return self._gradients(cache, grad_output, [None] * len(self._cell.states))


class RNN(RNNBase):
    """Multi-layer Elman RNN with ``tanh`` or ``relu``, as ``torch.nn.RNN``.

    For each layer and direction, ``h_t = f(x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh)``.

    The methods (``forward``, ``backward``, ``state_dict``...) are those of
    :class:`RNNBase`.

    Parameters
    ----------
    input_size : int
        Number of features of each step of the input, at least 1.
    hidden_size : int
        Number of features of the hidden state ``H``, at least 1.
    num_layers : int, default 1
        Number of stacked layers; layer ``k > 0`` reads layer ``k - 1``'s output.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation ``f``.
    bias : bool, default True
        Whether the layers have ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Input and output are ``(N, L, features)`` instead of ``(L, N, features)``;
        the hidden state keeps ``(D * num_layers, N, H)`` either way.
    dropout : float, default 0.0
        Probability, in ``[0, 1]``, of zeroing each output of every layer but
        the last, in training mode (a ``UserWarning`` with one layer, where it
        does nothing).
    bidirectional : bool, default False
        Run a second direction backwards over each layer's input; ``D = 2``
        and the outputs of the two directions are concatenated.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32, keyword-only
        Dtype of the parameters and of every computation.
    seed : int or None, default None, keyword-only
        Seeds the initialisation, every parameter uniform in
        ``(-1/sqrt(H), 1/sqrt(H))`` like PyTorch, and the dropout masks.

    Attributes
    ----------
    weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ... : ndarray
        Every parameter, named as in PyTorch's ``state_dict`` (``_l{k}`` for
        layer ``k``, ``_reverse`` for the backward direction), readable as an
        attribute and assignable (an array of the same shape).  Weights are
        ``(gates * H, in)``; see :meth:`RNNBase.named_parameters`.
    training : bool
        Training mode (dropout on); see :meth:`RNNBase.train`.

    Raises
    ------
    ValueError
        If a size is below 1, ``dropout`` is out of ``[0, 1]``,
        or ``nonlinearity`` is unknown.
    TypeError
        If a size is not an integer, ``bias``, ``batch_first`` or
        ``bidirectional`` is not a bool, or ``dtype`` is not float32 or float64.

    See Also
    --------
    LSTM, GRU : The gated cells.
    rnnfast.torch.RNN : The same as a ``torch.nn.Module``.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnfast
    >>> rnn = rnnfast.RNN(3, 5, num_layers=2, seed=0)
    >>> rnn
    RNN(3, 5, num_layers=2, dtype=float32)
    >>> x = np.ones((7, 4, 3), dtype=np.float32)        # (L, N, input_size)
    >>> output, h_n = rnn(x)
    >>> output.shape, h_n.shape
    ((7, 4, 5), (2, 4, 5))
    >>> grads = rnn.backward(np.ones_like(output))
    >>> grads["input"].shape, grads["weight_hh_l1"].shape
    ((7, 4, 3), (5, 5))
    """

    _MODES = {f: cell_mode("rnn", f) for f in nonlinearities("rnn")}

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, dtype=np.float32,
                 seed=None):
        if not isinstance(nonlinearity, str) or nonlinearity not in self._MODES:
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; select 'tanh' or 'relu'")
        super().__init__(self._MODES[nonlinearity], input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, dtype=dtype, seed=seed)

    @property
    def nonlinearity(self):
        return self._cell.nonlinearity

    def _extra_repr(self):
        base = super()._extra_repr()
        return base[:1] + (("nonlinearity", self.nonlinearity, "tanh"),) + base[1:]


class LSTM(RNNBase):
    """Multi-layer long short-term memory, as ``torch.nn.LSTM``.

    For each layer and direction, with ``[i, f, g, o]`` the four H-row blocks
    of ``x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh``::

        i, f, o = sigmoid(i), sigmoid(f), sigmoid(o);  g = tanh(g)
        c_t = f * c_prev + i * g
        h_t = o * tanh(c_t)              (then h_t W_hr^T with proj_size > 0)

    ``forward(input, hx=None, lengths=None)`` takes ``hx = (h0, c0)`` and
    returns ``(output, (h_n, c_n))``; :meth:`backward` takes the gradients of
    all three outputs.  The other methods are those of :class:`RNNBase`.

    Parameters
    ----------
    input_size : int
        Number of features of each step of the input, at least 1.
    hidden_size : int
        Number of features of the hidden state ``H``, at least 1.
    num_layers : int, default 1
        Number of stacked layers; layer ``k > 0`` reads layer ``k - 1``'s output.
    bias : bool, default True
        Whether the layers have ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Input and output are ``(N, L, features)`` instead of ``(L, N, features)``;
        the hidden state keeps ``(D * num_layers, N, H)`` either way.
    dropout : float, default 0.0
        Probability, in ``[0, 1]``, of zeroing each output of every layer but
        the last, in training mode (a ``UserWarning`` with one layer, where it
        does nothing).
    bidirectional : bool, default False
        Run a second direction backwards over each layer's input; ``D = 2``
        and the outputs of the two directions are concatenated.
    proj_size : int, default 0
        With ``0 < proj_size < hidden_size``, h is projected to ``proj_size``
        by ``weight_hr_l{k}`` (``(proj_size, hidden_size)``); the output and
        ``h_n`` then have width ``proj_size`` (``c_n`` keeps ``hidden_size``).
    dtype : {numpy.float32, numpy.float64}, default numpy.float32, keyword-only
        Dtype of the parameters and of every computation.
    seed : int or None, default None, keyword-only
        Seeds the initialisation, every parameter uniform in
        ``(-1/sqrt(H), 1/sqrt(H))`` like PyTorch, and the dropout masks.

    Attributes
    ----------
    weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ... : ndarray
        Every parameter, named as in PyTorch's ``state_dict`` (``_l{k}`` for
        layer ``k``, ``_reverse`` for the backward direction), readable as an
        attribute and assignable (an array of the same shape).  Weights are
        ``(gates * H, in)``; see :meth:`RNNBase.named_parameters`.
    training : bool
        Training mode (dropout on); see :meth:`RNNBase.train`.

    Raises
    ------
    ValueError
        If a size is below 1, ``dropout`` is out of ``[0, 1]``,
        or ``proj_size`` is negative or not below ``hidden_size``.
    TypeError
        If a size is not an integer, ``bias``, ``batch_first`` or
        ``bidirectional`` is not a bool, or ``dtype`` is not float32 or float64.

    See Also
    --------
    rnnfast.torch.LSTM : The same as a ``torch.nn.Module``.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnfast
    >>> lstm = rnnfast.LSTM(3, 5, batch_first=True, bidirectional=True, proj_size=2, seed=0)
    >>> x = np.ones((4, 7, 3), dtype=np.float32)        # (N, L, input_size)
    >>> output, (h_n, c_n) = lstm(x)
    >>> output.shape, h_n.shape, c_n.shape
    ((4, 7, 4), (2, 4, 2), (2, 4, 5))
    >>> grads = lstm.backward(np.ones_like(output))
    >>> grads["cx"].shape, grads["weight_hr_l0_reverse"].shape
    ((2, 4, 5), (2, 5))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, dtype=np.float32, seed=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype=dtype, seed=seed)

    def backward(self, grad_output, grad_h_n=None, grad_c_n=None, *, retain_graph=False):
        """Compute the gradients of this thread's last ``forward``.

        Parameters
        ----------
        grad_output : array_like
            Gradient with respect to ``output`` (same shape).
        grad_h_n : array_like, optional
            Gradient with respect to ``h_n`` (same shape); zeros when omitted.
        grad_c_n : array_like, optional
            Gradient with respect to ``c_n`` (same shape); zeros when omitted.
        retain_graph : bool, default False, keyword-only
            Keep the forward's cache for another ``backward``.

        Returns
        -------
        grads : dict[str, ndarray]
            ``"input"``, ``"hx"``, ``"cx"`` (shaped like those arguments) and
            one entry per parameter name, as PyTorch's autograd gives them.

        Raises
        ------
        RuntimeError
            No forward cache in this thread (as for :meth:`RNNBase.backward`).
        ValueError
            A gradient whose shape is not its output's.
        """
        return self._backward(grad_output, [grad_h_n, grad_c_n], retain_graph)

    def _extra_repr(self):
        return super()._extra_repr() + (("proj_size", self.proj_size, 0),)


class GRU(RNNBase):
    """Multi-layer gated recurrent unit, as ``torch.nn.GRU``.

    For each layer and direction, with ``[r, z, n]`` the three H-row blocks of
    the input and recurrent products::

        r = sigmoid(x_t W_ir^T + b_ir + h_prev W_hr^T + b_hr)
        z = sigmoid(x_t W_iz^T + b_iz + h_prev W_hz^T + b_hz)
        n = tanh(x_t W_in^T + b_in + r * (h_prev W_hn^T + b_hn))
        h_t = (1 - z) * n + z * h_prev

    The methods (``forward``, ``backward``, ``state_dict``...) are those of
    :class:`RNNBase`; ``backward`` returns ``"input"``, ``"hx"`` and every
    parameter's gradient.

    Parameters
    ----------
    input_size : int
        Number of features of each step of the input, at least 1.
    hidden_size : int
        Number of features of the hidden state ``H``, at least 1.
    num_layers : int, default 1
        Number of stacked layers; layer ``k > 0`` reads layer ``k - 1``'s output.
    bias : bool, default True
        Whether the layers have ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Input and output are ``(N, L, features)`` instead of ``(L, N, features)``;
        the hidden state keeps ``(D * num_layers, N, H)`` either way.
    dropout : float, default 0.0
        Probability, in ``[0, 1]``, of zeroing each output of every layer but
        the last, in training mode (a ``UserWarning`` with one layer, where it
        does nothing).
    bidirectional : bool, default False
        Run a second direction backwards over each layer's input; ``D = 2``
        and the outputs of the two directions are concatenated.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32, keyword-only
        Dtype of the parameters and of every computation.
    seed : int or None, default None, keyword-only
        Seeds the initialisation, every parameter uniform in
        ``(-1/sqrt(H), 1/sqrt(H))`` like PyTorch, and the dropout masks.

    Attributes
    ----------
    weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ... : ndarray
        Every parameter, named as in PyTorch's ``state_dict`` (``_l{k}`` for
        layer ``k``, ``_reverse`` for the backward direction), readable as an
        attribute and assignable (an array of the same shape).  Weights are
        ``(gates * H, in)``; see :meth:`RNNBase.named_parameters`.
    training : bool
        Training mode (dropout on); see :meth:`RNNBase.train`.

    Raises
    ------
    ValueError
        If a size is below 1 or ``dropout`` is out of ``[0, 1]``.
    TypeError
        If a size is not an integer, ``bias``, ``batch_first`` or
        ``bidirectional`` is not a bool, or ``dtype`` is not float32 or float64.

    See Also
    --------
    rnnfast.torch.GRU : The same as a ``torch.nn.Module``.

    Examples
    --------
    Unbatched input, ``(L, input_size)``:

    >>> import numpy as np
    >>> import rnnfast
    >>> gru = rnnfast.GRU(3, 5, seed=0)
    >>> output, h_n = gru(np.ones((7, 3)))
    >>> output.shape, h_n.shape
    ((7, 5), (1, 5))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, dtype=np.float32, seed=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype=dtype, seed=seed)
