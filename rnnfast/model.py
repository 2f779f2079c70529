"""``RNNModel``: an RNN with a linear read-out, batch-first, for training with rnnfast alone.

It does the job of ``nn.RNN(batch_first=True)`` + ``nn.Linear`` +
``nn.CrossEntropyLoss`` with the compiled kernels: ``forward`` gives logits,
``loss_and_grads`` the mean cross-entropy and every gradient in one call.
"""

import os

import numpy as np

from rnnfast import _validation as V
from rnnfast import functional as F
from rnnfast import modules
from rnnfast._io import NotAnArchive, read_npz_with_header, write_npz_with_header
from rnnfast.modules import (
    CELLS,
    cell_mode,
    cell_names,
    check_dropout,
    check_module_sizes,
    check_size,
    no_grad,
    nonlinearities,
)

__all__ = ["RNNModel"]

_FORMAT = "rnnfast.RNNModel/1"


def uses_fused_kernel(cell, num_layers, nonlinearity, dropout):
    """Whether a model of this configuration runs on the fused kernels (forward, softmax
    cross-entropy and BPTT in one call): a one-layer tanh RNN without dropout."""
    return cell == "rnn" and num_layers == 1 and nonlinearity == "tanh" and not dropout


def softmax_cross_entropy(logits, labels):
    """Per-row softmax cross-entropy and the softmax, in float64.

    Parameters
    ----------
    logits : ndarray, shape (..., n_y)
        Flattened to rows ``(n, n_y)``.
    labels : ndarray of int, shape (n,)
        The class of each row.

    Returns
    -------
    losses : ndarray, shape (n,)
        ``log(sum(exp(z))) - z[label]`` of each row ``z``, computed after
        subtracting the row's maximum (no overflow).
    probabilities : ndarray, shape (n, n_y)
        The softmax of each row (the gradient of the loss is this minus the
        one-hot label).
    """
    rows = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    top = rows.max(axis=1, keepdims=True)
    e = np.exp(rows - top)
    total = e.sum(axis=1, keepdims=True)
    picked = rows[np.arange(len(rows)), labels]
    return np.log(total[:, 0]) + top[:, 0] - picked, e / total


def _parameter_names(cell, num_layers, fused):
    """The parameters a model saves: the fused one-layer tanh RNN's, or the module's and the
    read-out's."""
    if fused:
        return ("Whx", "Whh", "Wyh", "bh", "by")
    return tuple(f"{w}_l{k}" for k in range(num_layers)
                 for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) + ("Wyh", "by")


def _saved_config(meta):
    """The model configuration recorded in a saved file's header (older files: defaults)."""
    config = {"cell": meta.get("cell", "rnn"), "num_layers": meta.get("num_layers", 1),
              "nonlinearity": meta.get("nonlinearity", "tanh"),
              "dropout": meta.get("dropout", 0.0)}
    if config["cell"] not in CELL_NAMES:
        raise ValueError(f"unknown cell {config['cell']!r}")
    if not isinstance(config["num_layers"], int) or isinstance(config["num_layers"], bool) \
            or config["num_layers"] < 1:
        raise ValueError(f"num_layers {config['num_layers']!r} is not a positive integer")
    if config["nonlinearity"] not in NONLINEARITIES:
        raise ValueError(f"unknown nonlinearity {config['nonlinearity']!r}")
    if isinstance(config["dropout"], bool) or not isinstance(config["dropout"], (int, float)):
        raise ValueError(f"dropout {config['dropout']!r} is not a number")
    config["fused"] = bool(meta.get("fused", uses_fused_kernel(**config)))
    return config


# the model's cells by their lowercase names, and every nonlinearity a cell comes with
CELL_NAMES = cell_names()
NONLINEARITIES = tuple(dict.fromkeys(cell.nonlinearity for cell in CELLS.values()))

class RNNModel:
    """A recurrent network (one or more layers) with a linear output layer.

    A one-layer tanh RNN without dropout (``cell="rnn"``, the default):
    ``h_t = tanh(Whx x_t + Whh h_{t-1} + bh)``, ``logits_t = Wyh h_t + by``,
    all in one compiled call.  Otherwise (``"lstm"``, ``"gru"``, ``relu``,
    ``num_layers > 1`` or ``dropout``) the recurrence is an
    :class:`rnnfast.RNN` / :class:`rnnfast.LSTM` / :class:`rnnfast.GRU`
    (``batch_first``), its parameters named as in torch's ``state_dict``
    (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, then
    ``_l1``...) next to ``Wyh`` and ``by``; the state carried between chunks
    is ``(h, c)`` for the LSTM, and ``(num_layers, m, n_h)`` with more than
    one layer.

    Inputs are batch-first: ``X (m, T, n_x)`` floats, or ``X (m, T)`` integer
    class indices (then ``Whx x_t`` is a lookup of column ``x_t`` of ``Whx``,
    the usual char-RNN case).  ``h0`` is ``(m, n_h)``, zeros when omitted.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        ``n_x``, ``n_h`` and ``n_y``, each at least 1.
    num_layers : int, default 1
        Number of stacked recurrent layers.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation of the ``"rnn"`` cell (the LSTM and GRU have their own
        gates and take only ``"tanh"``).
    dropout : float, default 0.0
        Probability of zeroing each output of a layer but the last, in training
        mode (as ``torch.nn.RNN``); in ``[0, 1]``.
    cell : {"rnn", "lstm", "gru"}, default "rnn", keyword-only
        The recurrent cell.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32, keyword-only
        Dtype of the parameters and of every computation.
    seed : int or None, default None, keyword-only
        Fixes the random initial values (the same number gives the same
        model; None: different each time): every parameter is drawn uniformly from
        ``(-1/sqrt(n_h), 1/sqrt(n_h))``, the ranges ``nn.RNN`` and
        ``nn.Linear(n_h, n_y)`` use.  (``nn.RNN`` draws two biases and adds
        them; here ``bh`` is one draw.)

    Attributes
    ----------
    parameters : dict
        ``Whx (n_h, n_x)``, ``Whh (n_h, n_h)``, ``Wyh (n_y, n_h)``,
        ``bh (n_h, 1)``, ``by (n_y, 1)`` (for ``"rnn"``; the cell's
        parameters, ``Wyh`` and ``by`` otherwise): the arrays optimizers
        update in place.
    metadata : dict
        Free-form JSON-serialisable data saved and loaded with the model.
    dtype : numpy.dtype
        ``float32`` or ``float64``.
    cell, num_layers, nonlinearity, dropout
        The configuration, as given.
    input_size, hidden_size, output_size : int
        The sizes, read-only.

    Raises
    ------
    ValueError
        If a size is below 1, ``dropout`` is out of ``[0, 1]``,
        or ``cell`` or ``nonlinearity`` is unknown or do not go together.
    TypeError
        If a size is not an integer, or ``dtype`` is not float32 or float64.

    See Also
    --------
    rnnfast.training.train : Trains one on a text file.
    rnnfast.text.sample_text : Generates text with one.

    Examples
    --------
    A char model over 10 classes, trained a few steps to predict the next
    character of two sequences:

    >>> import numpy as np
    >>> import rnnfast
    >>> model = rnnfast.RNNModel(10, 16, 10, seed=0)
    >>> model
    RNNModel(input_size=10, hidden_size=16, output_size=10, dtype=float32)
    >>> sorted(model.parameters)
    ['Whh', 'Whx', 'Wyh', 'bh', 'by']
    >>> X = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])     # (m, T) class indices
    >>> Y = np.array([[2, 3, 4, 5], [6, 7, 8, 9]])     # the next ones
    >>> model(X).shape                                  # logits (m, T, n_y)
    (2, 4, 10)
    >>> opt = rnnfast.optim.Adam(model.named_parameters(), lr=0.01)
    >>> for step in range(50):
    ...     loss, grads = model.loss_and_grads(X, Y)
    ...     opt.step(grads)
    >>> bool(loss < 0.5)
    True
    >>> model.predict(X).tolist()
    [[2, 3, 4, 5], [6, 7, 8, 9]]

    Two LSTM layers with dropout; the state is ``(h, c)``, each
    ``(num_layers, m, n_h)``:

    >>> lstm = rnnfast.RNNModel(10, 16, 10, 2, dropout=0.1, cell="lstm", seed=0)
    >>> logits, (h, c) = lstm.forward(X, return_state=True)
    >>> h.shape, c.shape
    ((2, 2, 16), (2, 2, 16))
    """

    def __init__(self, input_size, hidden_size, output_size, num_layers=1, nonlinearity="tanh",
                 dropout=0.0, *, cell="rnn", dtype=np.float32, seed=None):
        sizes = {"input_size": input_size, "hidden_size": hidden_size,
                 "output_size": output_size, "num_layers": num_layers}
        for name, value in sizes.items():
            check_size(name, value)
        dropout = check_dropout(dropout)
        if not isinstance(cell, str) or cell not in CELL_NAMES:
            raise ValueError(f"cell must be one of {', '.join(map(repr, CELL_NAMES))}; "
                             f"got {cell!r}")
        if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        if nonlinearity not in nonlinearities(cell):
            raise ValueError(f"nonlinearity is for cell='rnn'; the {cell} has its own gates")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64; got {dtype}")
        n_x, n_h, n_y = int(input_size), int(hidden_size), int(output_size)
        rng = np.random.default_rng(seed)
        bound = 1 / np.sqrt(n_h)
        self.cell, self.num_layers, self.nonlinearity = cell, int(num_layers), nonlinearity
        if uses_fused_kernel(cell, self.num_layers, nonlinearity, dropout):
            # the fused kernels: forward, softmax cross-entropy and BPTT in one call
            shapes = {"Whx": (n_h, n_x), "Whh": (n_h, n_h), "Wyh": (n_y, n_h),
                      "bh": (n_h, 1), "by": (n_y, 1)}
            self._rnn = None
            self.dropout = 0.0
        else:
            kwargs = dict(batch_first=True, dtype=dtype, seed=int(rng.integers(2**63)))
            if len(nonlinearities(cell)) > 1:
                kwargs["nonlinearity"] = nonlinearity
            module = getattr(modules, self._cell.torch_name)
            self._rnn = module(n_x, n_h, self.num_layers, dropout=dropout, **kwargs)
            self.dropout = self._rnn.dropout
            shapes = {"Wyh": (n_y, n_h), "by": (n_y, 1)}
        self.parameters = {} if self._rnn is None else dict(self._rnn.named_parameters())
        self.parameters.update({k: rng.uniform(-bound, bound, s).astype(dtype)
                                for k, s in shapes.items()})
        self.dtype = dtype
        self.metadata = {}
        self._sizes = (n_x, n_h, n_y)

    @property
    def input_size(self):
        return self._sizes[0]

    @property
    def hidden_size(self):
        return self._sizes[1]

    @property
    def output_size(self):
        return self._sizes[2]

    @property
    def training(self):
        """Training mode (dropout on, when there is any) or evaluation mode."""
        return True if self._rnn is None else self._rnn.training

    def train(self, mode=True):
        """Set training mode (dropout between layers on) or, with ``mode=False``, evaluation mode.

        Parameters
        ----------
        mode : bool, default True
            True for training mode, False for evaluation mode.

        Returns
        -------
        model : RNNModel
            This model.
        """
        if self._rnn is not None:
            self._rnn.train(mode)
        return self

    def eval(self):
        """Set evaluation mode: no dropout.

        Returns
        -------
        model : RNNModel
            This model.
        """
        return self.train(False)

    def named_parameters(self):
        """List the parameters as ``(name, array)`` pairs.

        The arrays are the live parameters (the very objects in
        ``parameters``): an optimizer built on them, as in
        ``rnnfast.optim.Adam(model.named_parameters())``, updates the model.

        Returns
        -------
        pairs : list of (str, ndarray)
            The entries of :attr:`parameters`, in its order.
        """
        return list(self.parameters.items())

    def state_dict(self):
        """Return copies of every parameter.

        Returns
        -------
        state_dict : dict[str, ndarray]
            A copy of each parameter, keyed as :attr:`parameters`.
        """
        return {name: a.copy() for name, a in self.parameters.items()}

    def load_state_dict(self, state_dict):
        """Copy the parameters of ``state_dict`` into the model's arrays, in place.

        Parameters
        ----------
        state_dict : dict[str, array_like]
            As :meth:`state_dict` returns it: every parameter by name, of its
            shape and dtype.

        Raises
        ------
        KeyError
            If the keys are not exactly those of :attr:`parameters`.
        ValueError
            If an array's shape or dtype is not the parameter's.  Nothing
            changes unless every entry fits.
        """
        missing = [k for k in self.parameters if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self.parameters]
        if missing or unexpected:
            raise KeyError(f"state_dict does not match: missing {missing}, "
                           f"unexpected {unexpected}")
        arrays = {name: np.asarray(state_dict[name]) for name in self.parameters}
        for name, p in self.parameters.items():
            a = arrays[name]
            if a.shape != p.shape or a.dtype != p.dtype:
                raise ValueError(f"parameter {name} is {a.dtype} {a.shape}, expected "
                                 f"{p.dtype} {p.shape}")
        for name, p in self.parameters.items():
            p[...] = arrays[name]

    def get_rng_state(self):
        """Return the state of the generator of the dropout masks.

        With :meth:`set_rng_state` a stopped run continues with the masks it
        would have drawn.

        Returns
        -------
        state : dict or None
            A JSON-serialisable dict (a NumPy ``bit_generator`` state), or None
            when the model has no such generator (the fused one-layer RNN).
        """
        return None if self._rnn is None else self._rnn.get_rng_state()

    @property
    def _cell(self):
        """The registered cell of this model (:data:`rnnfast.modules.CELLS`)."""
        return CELLS[cell_mode(self.cell, self.nonlinearity)]

    def set_rng_state(self, state):
        """Restore the generator of the dropout masks.

        Parameters
        ----------
        state : dict or None
            What :meth:`get_rng_state` returned; None restores nothing.
        """
        if self._rnn is not None and state is not None:
            self._rnn.set_rng_state(state)

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v, default in (
            ("num_layers", self.num_layers, 1), ("nonlinearity", self.nonlinearity, "tanh"),
            ("dropout", self.dropout, 0.0), ("cell", self.cell, "rnn")) if v != default)
        return (f"RNNModel(input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"output_size={self.output_size}{extra}, dtype={self.dtype.name})")

    # -- the computation ---------------------------------------------------

    def _batch_input(self, X):
        """``(labels, floats, m, T)`` of a batch-first ``X``, validated: class indices
        ``(m, T)`` give intp ``labels (m*T,)`` and no floats; ``(m, T, input_size)`` floats
        give the array and no labels."""
        X = V.as_array("X", X)
        n_x = self.input_size
        if X.dtype.kind in "iu" and X.ndim == 2:
            m, n_steps = X.shape
            self._check_batch_sizes(X.shape)
            return V.check_labels(X, X.shape, n_x, name="X"), None, m, n_steps
        V.check_ndim("X", X, 3, "(batch, sequence length, input_size), or (batch, sequence "
                     "length) class indices")
        m, n_steps, n_in = X.shape
        if n_in != n_x:
            raise ValueError(f"X has shape {X.shape}; expected (batch, sequence length, "
                             f"input_size) with input_size = {n_x}")
        self._check_batch_sizes(X.shape)
        return None, X, m, n_steps

    def _check_batch_sizes(self, shape):
        """At least one sequence and one step in ``X``, within the 32-bit BLAS sizes."""
        for label, size in (("batch size", shape[0]), ("sequence length", shape[1])):
            if size == 0:
                raise ValueError(f"X has shape {shape}: {label} 0; RNNModel needs at least "
                                 "one sequence of at least one step")
        check_module_sizes(shape[0], shape[1], self.input_size,
                           self._cell.gates * self.hidden_size,
                           f"X of shape {shape}")

    def _targets(self, Y, m, n_steps):
        """``Y`` as flat intp class indices, checked against the batch of ``X``."""
        Y = V.as_array("Y", Y)
        if Y.shape != (m, n_steps):
            raise ValueError(f"Y has shape {Y.shape}; expected (batch, sequence length) = "
                             f"{(m, n_steps)}, the first axes of X")
        return V.check_labels(Y, (m, n_steps), self.output_size, name="Y")

    def _check_fused_parameters(self):
        """Refuse a fused model's parameter that is not a C-contiguous array of the model's
        dtype and shape (the kernels read them as they are); ValueError naming it."""
        p = self.parameters
        for name, shape in (("Whx", (self.hidden_size, self.input_size)),
                            ("Whh", (self.hidden_size, self.hidden_size)),
                            ("Wyh", (self.output_size, self.hidden_size)),
                            ("bh", (self.hidden_size, 1)), ("by", (self.output_size, 1))):
            a = p.get(name)
            if (not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != self.dtype
                    or not a.flags.c_contiguous):
                raise ValueError(f"parameters[{name!r}] must be a C-contiguous "
                                 f"{self.dtype.name} array of shape {shape}")

    def _kernel_model(self, X, h0):
        """Validate ``X``/``h0``; return the kernels' model of this call."""
        self._check_fused_parameters()
        p = self.parameters
        labels, X, m, n_steps = self._batch_input(X)
        n_x, n_h = self.input_size, self.hidden_size
        if labels is not None:
            x, x_mode = labels, F.X_INDEX
        else:
            x = np.ascontiguousarray(X, dtype=self.dtype).reshape(m * n_steps, n_x)
            x_mode = F.X_ROWS
        if h0 is None:
            h0 = np.zeros((m, n_h), dtype=self.dtype)
        else:
            h0 = V.as_array("h0", h0)
            V.check_shape("h0", h0, (m, n_h), "(batch, hidden_size)")
            h0 = np.ascontiguousarray(h0, dtype=self.dtype)
        return F.Model(x, h0, p["Whx"], p["Whh"], p["Wyh"], p["bh"].reshape(n_h),
                       p["by"].reshape(-1), n_steps, x_mode)

    # -- gated cells: the module, then the read-out in NumPy ------------------

    def _check_live_parameters(self):
        module_parameters = dict(self._rnn.named_parameters())
        for name, a in self.parameters.items():
            expected = (module_parameters[name].shape if name in module_parameters
                        else (self.output_size, self.hidden_size) if name == "Wyh"
                        else (self.output_size, 1))
            if (not isinstance(a, np.ndarray) or a.shape != expected or a.dtype != self.dtype
                    or not a.flags.c_contiguous):
                raise ValueError(f"parameters[{name!r}] must be a C-contiguous "
                                 f"{self.dtype.name} array of shape {expected}")
            if name in module_parameters and a is not module_parameters[name]:
                self._rnn.bind_parameter(name, a)    # a replaced array: the module reads it

    def _gated_inputs(self, X, h0):
        """``(x (m, T, n_x) floats, hx for the module, m, T)``, validated."""
        self._check_live_parameters()
        labels, x, m, n_steps = self._batch_input(X)
        n_x, n_h = self.input_size, self.hidden_size
        if labels is not None:
            x = np.zeros((m * n_steps, n_x), self.dtype)
            x[np.arange(m * n_steps), labels] = 1            # one-hot rows
            x = x.reshape(m, n_steps, n_x)
        if h0 is None:
            return x, None, m, n_steps
        names = self._cell.states
        states = h0 if len(names) > 1 else (h0,)
        if len(names) > 1 and (not isinstance(h0, (tuple, list)) or len(h0) != len(names)):
            raise TypeError(f"h0 of an {self._cell.torch_name} model is a tuple "
                            f"({', '.join(names)}), as return_state gives it")
        L = self.num_layers
        shape, labels = ((m, n_h), "(batch, hidden_size)") if L == 1 else \
            ((L, m, n_h), "(num_layers, batch, hidden_size)")
        hx = []
        for name, value in zip((n + "0" for n in names), states, strict=True):
            a = V.as_array(name, value)
            V.check_shape(name, a, shape, labels)
            hx.append(a[None] if L == 1 else a)
        return x, (tuple(hx) if len(names) > 1 else hx[0]), m, n_steps

    def _gated_forward(self, X, h0, keep=False):
        """``(logits (m, T, n_y), states (m, T, n_h), final state, m, T, cache)``.

        ``cache`` is the module's cache for :meth:`RNNBase.gradients_from_cache` when
        ``keep``, else None; nothing is stored on the model or the module.
        """
        x, hx, m, n_steps = self._gated_inputs(X, h0)
        if keep:
            H, finals, cache = self._rnn.forward_with_cache(x, hx)
        else:
            with no_grad():
                (H, finals), cache = self._rnn.forward(x, hx), None
        last = (lambda a: a[0].copy()) if self.num_layers == 1 else (lambda a: a.copy())
        state = tuple(map(last, finals)) if len(self._cell.states) > 1 else last(finals)
        p = self.parameters
        logits = H @ p["Wyh"].T + p["by"][:, 0]
        return logits, H, state, m, n_steps, cache

    def _gated_loss(self, X, Y, h0):
        logits, H, state, m, n_steps, cache = self._gated_forward(X, h0, keep=True)
        labels = self._targets(Y, m, n_steps)
        losses, d_logits = softmax_cross_entropy(logits, labels)
        loss = float(np.mean(losses))
        d_logits[np.arange(m * n_steps), labels] -= 1
        d_logits = (d_logits / (m * n_steps)).astype(self.dtype)
        H_rows = H.reshape(m * n_steps, -1)
        p = self.parameters
        grads = {"dWyh": d_logits.T @ H_rows, "dby": d_logits.sum(axis=0)[:, None]}
        g = self._rnn.gradients_from_cache(cache,
                                           (d_logits @ p["Wyh"]).reshape(m, n_steps, -1))
        grads.update({"d" + name: g[name] for name, _ in self._rnn.named_parameters()})
        first = (lambda a: a[0]) if self.num_layers == 1 else (lambda a: a)
        for name in self._cell.states:
            grads[f"d{name}0"] = first(g[f"{name}x"])
        if not (np.asarray(X).dtype.kind in "iu" and np.ndim(X) == 2):
            grads["dx"] = g["input"]
        return loss, grads, state

    # -- the public passes -------------------------------------------------------

    def forward(self, X, h0=None, *, return_state=False):
        """Compute the logits of every position of a batch-first input.

        Also callable as ``model(X, h0)``.  No gradient is kept.

        Parameters
        ----------
        X : array_like of shape (m, T, input_size), or of int of shape (m, T)
            Float inputs, or class indices in ``[0, input_size)``.
        h0 : ndarray or tuple of ndarray, optional
            Initial state, as ``return_state`` gives it: ``(m, hidden_size)``
            with one layer, ``(num_layers, m, hidden_size)`` with more, a pair
            ``(h0, c0)`` for the LSTM.  Zeros when omitted.
        return_state : bool, default False, keyword-only
            Also return the last state, to carry into the next chunk of a
            sequence.

        Returns
        -------
        logits : ndarray of shape (m, T, output_size)
            The output layer before the softmax, in the model's dtype.
        state : ndarray or tuple of ndarray
            Only with ``return_state=True``: the last state, shaped as ``h0``.

        Raises
        ------
        ValueError
            If ``X`` or ``h0`` have the wrong shape, a class index is out of
            range, or a parameter was replaced by an array of another shape or
            dtype.
        TypeError
            If ``X`` is not real numbers, or ``h0`` is not a pair for the LSTM.
        """
        if self._rnn is not None:
            logits, _, state, _, _, _ = self._gated_forward(X, h0)
            return (logits, state) if return_state else logits
        model = self._kernel_model(X, h0)
        H, logits = model.run_forward(softmax=False)
        return (logits, H[:, -1, :].copy()) if return_state else logits

    __call__ = forward

    def predict(self, X, h0=None):
        """Return the most likely class at every position.

        Parameters
        ----------
        X : array_like of shape (m, T, input_size), or of int of shape (m, T)
            The inputs, as for :meth:`forward`.
        h0 : ndarray or tuple of ndarray, optional
            Initial state, as for :meth:`forward`.

        Returns
        -------
        classes : ndarray of intp, shape (m, T)
            The argmax of the logits.
        """
        return np.argmax(self.forward(X, h0), axis=-1)

    def loss_and_grads(self, X, Y, h0=None, *, return_state=False):
        """Compute the mean softmax cross-entropy against targets, and its gradients.

        One forward and one backward pass (in training mode, with dropout when
        the model has any).

        Parameters
        ----------
        X : array_like of shape (m, T, input_size), or of int of shape (m, T)
            The inputs, as for :meth:`forward`.
        Y : array_like of int, shape (m, T)
            The target class of every position, in ``[0, output_size)``.
        h0 : ndarray or tuple of ndarray, optional
            Initial state, as for :meth:`forward`.
        return_state : bool, default False, keyword-only
            Also return the last state.

        Returns
        -------
        loss : float
            The mean over the ``m * T`` positions.
        grads : dict[str, ndarray]
            Keyed ``"d" + name`` for every parameter (``dWhx, dWhh, dWyh, dbh,
            dby`` for the fused ``"rnn"`` model), ``dh0`` (and ``dc0`` for the
            LSTM) shaped as the state, and, for float inputs only,
            ``dx (m, T, input_size)``.  An optimizer's ``step`` takes it as it is.
        state : ndarray or tuple of ndarray
            Only with ``return_state=True``: the last state, as :meth:`forward`
            gives it.

        Raises
        ------
        ValueError
            If ``X``, ``Y`` or ``h0`` have the wrong shape, or a class index is
            out of range.
        TypeError
            If ``X`` is not real numbers or ``Y`` not integers.
        """
        if self._rnn is not None:
            loss, grads, state = self._gated_loss(X, Y, h0)
            return (loss, grads, state) if return_state else (loss, grads)
        model = self._kernel_model(X, h0)
        labels = self._targets(Y, model.m, model.n_steps)
        loss, H, dx, dh0, dw_hx, dw_hh, db_h, dw_yh, db_y = model.run_loss(labels)
        grads = {"dWhx": dw_hx, "dWhh": dw_hh, "dWyh": dw_yh,
                 "dbh": db_h.reshape(-1, 1), "dby": db_y.reshape(-1, 1), "dh0": dh0}
        if dx is not None:
            grads["dx"] = dx.reshape(model.m, model.n_steps, self.input_size)
        return (loss, grads, H[:, -1, :].copy()) if return_state else (loss, grads)

    # -- persistence -------------------------------------------------------

    def save(self, path):
        """Write the parameters and ``metadata`` to ``path`` (``.npz``), atomically.

        The file appears complete or not at all: it is written to a temporary
        file in the same folder, then renamed over ``path``; the temporary
        file is removed on any failure.

        Permissions are those a plain ``np.savez(path, ...)`` would give: a
        new file gets ``0o666`` masked by the process umask (``0o644`` under
        the usual umask ``022``), and a file that is overwritten keeps its
        permission bits.  When ``path`` is a symbolic link, the file it points
        to is written and the link stays a link.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write; ``.npz`` is the usual suffix (none is added).

        Raises
        ------
        TypeError
            If ``metadata`` is not a dict.
        IsADirectoryError
            If ``path`` (or the target of the link ``path``) is a directory.
        OSError
            If the folder does not exist or cannot be written.
        """
        path = os.fspath(path)
        if not isinstance(self.metadata, dict):
            raise TypeError(f"metadata must be a dict; got {type(self.metadata).__name__}")
        meta = {"format": _FORMAT, "dtype": self.dtype.name, "cell": self.cell,
                "num_layers": self.num_layers, "nonlinearity": self.nonlinearity,
                "dropout": self.dropout, "fused": self._rnn is None, "metadata": self.metadata}
        write_npz_with_header(path, meta, self.parameters, "a model file")

    @classmethod
    def load(cls, path):
        """Load a model saved by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by :meth:`save`.

        Returns
        -------
        model : RNNModel
            With the saved configuration, parameters, dtype and ``metadata``.

        Raises
        ------
        FileNotFoundError, IsADirectoryError, PermissionError
            As ``open`` raises them.
        ValueError
            For any other file: not an ``.npz`` archive (text, pickle,
            ``.npy``), an archive of something else, or a damaged model file.
            Nothing in the file is ever unpickled.
        """
        try:
            with read_npz_with_header(path) as (meta, data):
                if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
                    raise ValueError("no rnnfast.RNNModel header")
                config = _saved_config(meta)
                arrays = {k: data[k] for k in _parameter_names(
                    config["cell"], config["num_layers"], config["fused"])}
            dtype = meta.get("dtype")
            if dtype not in ("float32", "float64"):
                raise ValueError(f"unknown dtype {dtype!r}")
            metadata = meta.get("metadata", {})
            if not isinstance(metadata, dict):
                raise ValueError("metadata is not a dict")
            config.pop("fused")                  # chose the parameter names; the sizes decide
            model = cls.from_arrays(arrays, dtype, str(path), **config)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except NotAnArchive:
            raise ValueError(f"{path} is not an rnnfast model file: it is not a model saved "
                             "by RNNModel.save (not an .npz archive)") from None
        except Exception as exc:      # any damage (zip, zlib, JSON, shapes) reads as "not ours"
            reason = f"{type(exc).__name__}: {exc}"
            if "pickle" in reason:    # NumPy's advice to unpickle is wrong for a model file
                reason = "it holds Python objects, which RNNModel.save never writes"
            raise ValueError(f"{path} is not an rnnfast model file: it is not a model saved "
                             f"by RNNModel.save ({reason})") from None
        model.metadata = metadata
        return model

    @classmethod
    def from_arrays(cls, arrays, dtype, source, cell="rnn", num_layers=1, nonlinearity="tanh",
                    dropout=0.0):
        """Build a model of a configuration from its parameter arrays.

        The sizes follow the arrays' shapes; the values are copied.

        Parameters
        ----------
        arrays : dict[str, array_like]
            Every parameter by name, as :attr:`parameters` names them
            (``Whx, Whh, Wyh, bh, by`` for the fused one-layer tanh RNN; torch's
            names, ``Wyh`` and ``by`` otherwise).
        dtype : {"float32", "float64"} or numpy.dtype
            The model's dtype; the arrays are cast to it.
        source : str
            Where the arrays came from, named in the error message.
        cell : {"rnn", "lstm", "gru"}, default "rnn"
            The recurrent cell.
        num_layers : int, default 1
            Number of layers.
        nonlinearity : {"tanh", "relu"}, default "tanh"
            The ``"rnn"`` cell's activation.
        dropout : float, default 0.0
            Dropout between layers.

        Returns
        -------
        model : RNNModel
            A new model holding copies of the arrays.

        Raises
        ------
        ValueError
            If the arrays do not make a model of this configuration: names
            missing or extra, shapes that do not fit, non-float arrays.

        Examples
        --------
        >>> import rnnfast
        >>> model = rnnfast.RNNModel(5, 8, 5, seed=0)
        >>> copy = rnnfast.RNNModel.from_arrays(model.state_dict(), "float32", "a copy")
        >>> copy
        RNNModel(input_size=5, hidden_size=8, output_size=5, dtype=float32)
        """
        w_in = "Whx" if "Whx" in arrays else "weight_ih_l0"
        try:
            n_x = arrays[w_in].shape[1]
            n_y, n_h = arrays["Wyh"].shape
        except (ValueError, AttributeError, IndexError):
            raise ValueError(f"{source}: {w_in} and Wyh must be 2-D") from None
        model = cls(n_x, n_h, n_y, num_layers, nonlinearity, dropout, cell=cell, dtype=dtype)
        if set(model.parameters) != set(arrays):
            raise ValueError(f"{source}: parameters {sorted(arrays)} do not make a model of "
                             f"this configuration ({sorted(model.parameters)})")
        for name, current in model.parameters.items():
            a = np.asarray(arrays[name])
            if a.shape != current.shape:
                raise ValueError(f"{source}: {name} has shape {a.shape}; "
                                 f"expected {current.shape}")
            if a.dtype.kind != "f":
                raise ValueError(f"{source}: {name} has dtype {a.dtype}; expected floats")
            current[...] = a
        return model

    # -- PyTorch interchange -----------------------------------------------

    @classmethod
    def from_torch(cls, rnn, linear):
        """Build a model with the weights of a torch recurrent module and output layer.

        ``rnn`` is a unidirectional ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` with
        biases (any number of layers, any dropout; no projection: ``proj_size
        = 0``), or the same from :mod:`rnnfast.torch` (what
        ``rnnfast.torch.convert`` gives): any ``torch.nn.RNNBase`` of one of
        those modes.  A one-layer tanh RNN without dropout becomes the fused
        model, with ``bh = bias_ih_l0 + bias_hh_l0``; anything else keeps
        torch's parameters by name.  The dtype follows ``rnn``'s weights.

        Parameters
        ----------
        rnn : torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU
            The recurrence (batch-first or not: only the weights are read).
        linear : torch.nn.Linear
            The output layer, ``in_features == rnn.hidden_size``.

        Returns
        -------
        model : RNNModel
            A new model holding copies of the weights.

        Raises
        ------
        TypeError
            ``rnn`` or ``linear`` of another type, or weights of another dtype.
        ValueError
            A bidirectional module, no biases, ``proj_size > 0``, or sizes of
            ``rnn`` and ``linear`` that do not fit.

        See Also
        --------
        to_torch : The way back.
        """
        from rnnfast._torch_interchange import model_from_torch

        return model_from_torch(cls, rnn, linear)

    def to_torch(self):
        """Build the torch modules that compute the same as this model.

        For the fused model, ``bias_ih_l0`` gets ``bh`` and ``bias_hh_l0``
        zeros.  For an LSTM or GRU model, the module is an ``nn.LSTM`` /
        ``nn.GRU`` with the model's ``state_dict``.  Needs torch.

        Returns
        -------
        rnn : torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU
            The recurrence, ``batch_first=True``, with copies of the weights, in
            the model's dtype.
        linear : torch.nn.Linear
            The output layer (``Wyh``, ``by``).

        See Also
        --------
        from_torch : The way back.
        """
        from rnnfast._torch_interchange import model_to_torch

        return model_to_torch(self)
