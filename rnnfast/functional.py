"""The seed-compatible API: validate, convert, allocate, call a kernel, return.

Functions, arguments and results match :mod:`rnnfast.reference`; only the
speed differs.  Each call:

1. validates dimensions, shapes, parameter names and dtype kinds, raising a
   ``ValueError``/``TypeError``/``KeyError`` that names the argument;
2. converts to one floating dtype (float32 only when every array input is
   float32, float64 otherwise) and to the kernels' C-contiguous layout, copying
   only when the input is not already in that form;
3. allocates every output and scratch array;
4. runs the whole time loop in one compiled call with the GIL released;
5. returns the reference's structures.  ``h`` and ``y_pred`` are transposed
   views of batch-major buffers, so their strides differ from the reference's
   while shapes and values agree.

Caller arrays are never written to.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from rnnfast import _kernels
from rnnfast import _validation as V
from rnnfast._kernels import X_COLUMNS, X_INDEX, X_ROWS  # noqa: F401  (input forms)

__all__ = ["rnn_cell_forward", "rnn_forward", "rnn_cell_backward", "rnn_backward", "rnn_loss",
           "ForwardCache"]

PARAMETER_NAMES = ("Whx", "Whh", "Wyh", "bh", "by")

# The seed model and its cache are compiled objects, so that the common case
# (every array already C-contiguous, of one float dtype) runs at C speed from
# argument checks to result tuple: _kernels.fast_forward / fast_backward.
Model = _kernels.Model
ForwardCache = _kernels.ForwardCache
use_own_products = _kernels.use_own_products


def _parameters(parameters):
    """The five parameter arrays of the ``parameters`` dict, in PARAMETER_NAMES order."""
    if not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a dict with keys {', '.join(PARAMETER_NAMES)}; "
                        f"got {type(parameters).__name__}")
    arrays = []
    for key in PARAMETER_NAMES:
        if key not in parameters:
            raise KeyError(f"parameters has no {key!r}; expected keys "
                           f"{', '.join(PARAMETER_NAMES)}")
        arrays.append(V.as_array(f'parameters["{key}"]', parameters[key]))
    return arrays


def _check_parameters(arrays, n_x):
    """Validate the parameter shapes against each other and n_x; return (n_h, n_y)."""
    w_hx, w_hh, w_yh, b_h, b_y = arrays
    V.check_ndim('parameters["Whh"]', w_hh, 2, "(n_h, n_h)")
    n_h = w_hh.shape[0]
    V.check_shape('parameters["Whh"]', w_hh, (n_h, n_h), "(n_h, n_h)")
    V.check_ndim('parameters["Wyh"]', w_yh, 2, "(n_y, n_h)")
    n_y = w_yh.shape[0]
    V.check_shape('parameters["Wyh"]', w_yh, (n_y, n_h), "(n_y, n_h)")
    V.check_shape('parameters["Whx"]', w_hx, (n_h, n_x), "(n_h, n_x)")
    V.check_shape('parameters["bh"]', b_h, (n_h, 1), "(n_h, 1)")
    V.check_shape('parameters["by"]', b_y, (n_y, 1), "(n_y, 1)")
    return n_h, n_y


def _model(x, h0, parameters, x_name, h0_name, cell):
    """Validate and convert the inputs of a forward pass into a compiled ``_kernels.Model``."""
    model = _kernels.fast_model(x, h0, parameters, cell)
    if model is not None:
        return model
    x = V.as_array(x_name, x)
    h0 = V.as_array(h0_name, h0)
    arrays = _parameters(parameters)
    if cell:
        V.check_ndim(x_name, x, 2, "(n_x, m)")
        n_x, m = x.shape
        n_steps = 1
    else:
        V.check_ndim(x_name, x, 3, "(n_x, m, T_x)")
        n_x, m, n_steps = x.shape
    n_h, n_y = _check_parameters(arrays, n_x)
    V.check_shape(h0_name, h0, (n_h, m), "(n_h, m)")
    V.check_sizes(n_x=n_x, n_h=n_h, n_y=n_y, m=m, T_x=n_steps)

    dtype = V.common_dtype([x, h0, *arrays])
    w_hx, w_hh, w_yh, b_h, b_y = (np.ascontiguousarray(a, dtype=dtype) for a in arrays)
    return Model(np.ascontiguousarray(x, dtype=dtype), np.ascontiguousarray(h0.T, dtype=dtype),
                 w_hx, w_hh, w_yh, b_h, b_y, n_steps)


def rnn_cell_forward(xt, h_prev, parameters):
    """Run one RNN time step (compiled).

    The same contract as its NumPy twin :func:`rnnfast.reference.rnn_cell_forward`:
    arguments, shapes and the returned cache.  The result is float32 when every
    input is float32, else float64.

    Parameters
    ----------
    xt : array_like, shape (n_x, m)
        Input at this step.
    h_prev : array_like, shape (n_h, m)
        Hidden state of the previous step.
    parameters : dict
        ``Whx (n_h, n_x)``, ``Whh (n_h, n_h)``, ``Wyh (n_y, n_h)``,
        ``bh (n_h, 1)``, ``by (n_y, 1)``.

    Returns
    -------
    h_next : ndarray, shape (n_h, m)
        ``tanh(Whh h_prev + Whx xt + bh)``.
    y_pred : ndarray, shape (n_y, m)
        ``softmax(Wyh h_next + by)`` over axis 0.
    cache : tuple
        ``(h_next, h_prev, xt, parameters)`` for :func:`rnn_cell_backward`.

    Raises
    ------
    ValueError
        Wrong number of dimensions, mismatched shapes, or a zero size.
    TypeError
        Complex, string or object inputs, or ``parameters`` not a dict.
    KeyError
        A parameter missing from ``parameters``.
    """
    model = _model(xt, h_prev, parameters, "xt", "h_prev", cell=True)
    H, Y = model.run_forward()
    h_next = H[:, 0, :].T
    return h_next, Y[:, 0, :].T, (h_next, h_prev, xt, parameters)


def rnn_forward(x, h0, parameters):
    """Run the RNN forward over all time steps in one compiled call.

    ``h_t = tanh(Whx x_t + Whh h_{t-1} + bh)`` and ``y_t = softmax(Wyh h_t + by)``
    for ``t = 1 .. T_x``: the same arguments, results and cache format as the
    NumPy twin :func:`rnnfast.reference.rnn_forward`.

    Parameters
    ----------
    x : array_like, shape (n_x, m, T_x)
        Inputs of every step: ``n_x`` features, ``m`` sequences, ``T_x`` steps.
    h0 : array_like, shape (n_h, m)
        Initial hidden state.
    parameters : dict[str, array_like]
        ``Whx (n_h, n_x)``, ``Whh (n_h, n_h)``, ``Wyh (n_y, n_h)``,
        ``bh (n_h, 1)``, ``by (n_y, 1)``.  Not modified; the cache refers to
        the dict.

    Returns
    -------
    h : ndarray, shape (n_h, m, T_x)
        Hidden state after every step.
    y_pred : ndarray, shape (n_y, m, T_x)
        Softmax output of every step.
    caches : tuple
        ``(steps, x)`` for :func:`rnn_backward`; ``steps`` is a
        :class:`ForwardCache` that indexes like the reference's list of step
        caches.

    Raises
    ------
    ValueError
        Wrong number of dimensions, mismatched shapes, a zero size, or a size
        beyond the 32-bit BLAS limit.
    TypeError
        Complex, string or object inputs, or ``parameters`` not a dict.
    KeyError
        A parameter missing from ``parameters``.

    See Also
    --------
    rnn_backward : The gradients, from the returned ``caches``.
    rnn_loss : Forward, loss and gradients in one call.

    Notes
    -----
    The result dtype is float32 when ``x``, ``h0`` and every parameter are
    float32, and float64 otherwise.  The returned ``h`` and ``y_pred`` are the
    caller's: changing them does not change the cache.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnfast
    >>> from rnnfast import reference
    >>> rng = np.random.default_rng(0)
    >>> n_x, n_h, n_y, m, T_x = 3, 5, 2, 4, 6
    >>> parameters = {"Whx": rng.standard_normal((n_h, n_x)),
    ...               "Whh": 0.5 * rng.standard_normal((n_h, n_h)),
    ...               "Wyh": rng.standard_normal((n_y, n_h)),
    ...               "bh": np.zeros((n_h, 1)), "by": np.zeros((n_y, 1))}
    >>> x = rng.standard_normal((n_x, m, T_x))
    >>> h0 = np.zeros((n_h, m))
    >>> h, y_pred, caches = rnnfast.rnn_forward(x, h0, parameters)
    >>> h.shape, y_pred.shape, h.dtype
    ((5, 4, 6), (2, 4, 6), dtype('float64'))
    >>> bool(np.allclose(y_pred.sum(axis=0), 1.0))
    True
    >>> bool(np.allclose(h, reference.rnn_forward(x, h0, parameters)[0]))
    True
    """
    fast = _kernels.fast_forward(x, h0, parameters)
    if fast is not None:
        return fast
    model = _model(x, h0, parameters, "x", "h0", cell=False)
    H, Y = model.run_forward()
    # h is the caller's to modify; the cache keeps its own copy of the states
    return (H.transpose(2, 0, 1), Y.transpose(2, 0, 1),
            (ForwardCache(model, H.copy(), parameters), x))


def _check_grad(name, grad, expected, labels):
    """Validate an upstream gradient; return it as an array."""
    grad = V.as_array(name, grad)
    V.check_ndim(name, grad, len(expected), labels)
    V.check_shape(name, grad, expected, labels)
    return grad


def rnn_cell_backward(dh_next, cache):
    """Compute the gradients of one RNN time step (compiled).

    The same contract as its NumPy twin :func:`rnnfast.reference.rnn_cell_backward`.

    Parameters
    ----------
    dh_next : array_like, shape (n_h, m)
        Gradient of the loss with respect to ``h_next``.
    cache : tuple
        ``(h_next, h_prev, xt, parameters)`` from :func:`rnn_cell_forward`.

    Returns
    -------
    gradients : dict[str, ndarray]
        ``dxt (n_x, m)``, ``dh_prev (n_h, m)``, ``dWhx (n_h, n_x)``,
        ``dWhh (n_h, n_h)``, ``dbh (n_h, 1)``.

    Raises
    ------
    ValueError
        A malformed cache, or shapes that do not fit each other.
    TypeError, KeyError
        As for :func:`rnn_cell_forward`.
    """
    if not isinstance(cache, (tuple, list)) or len(cache) != 4:
        raise ValueError("cache must be the (h_next, h_prev, xt, parameters) tuple "
                         "returned by rnn_cell_forward")
    h_next, h_prev, xt, parameters = cache
    model = _model(xt, h_prev, parameters, "cache xt", "cache h_prev", cell=True)
    n_h, m = model.n_h, model.m
    h_next = _check_grad("cache h_next", h_next, (n_h, m), "(n_h, m)")
    dh_next = _check_grad("dh_next", dh_next, (n_h, m), "(n_h, m)")
    dtype = V.common_dtype([dh_next, h_next]) if model.dtype == np.float32 else model.dtype
    model = model.astype(dtype)
    H = np.ascontiguousarray(h_next.T, dtype=dtype).reshape(m, 1, n_h)
    dH = np.ascontiguousarray(dh_next.T, dtype=dtype).reshape(m, 1, n_h)
    dx2, dh0, dw_hx, dw_hh, db_h = model.run_backward(H, dH, False)
    return {"dxt": dx2, "dh_prev": dh0.T, "dWhx": dw_hx, "dWhh": dw_hh,
            "dbh": db_h.reshape(n_h, 1)}


def _model_from_seed_cache(steps, x):
    """Model inputs and batch-major H from a reference-format list of step caches."""
    if not isinstance(steps, Sequence) or len(steps) == 0:
        raise ValueError("caches[0] must be a non-empty list of (h_next, h_prev, xt, "
                         "parameters) step caches, or the ForwardCache of rnnfast.rnn_forward")
    first = steps[0]
    if not isinstance(first, (tuple, list)) or len(first) != 4:
        raise ValueError("each step cache must be a (h_next, h_prev, xt, parameters) tuple")
    model = _model(x, first[1], first[3], "caches x", "caches[0][0][1] (h0)", cell=False)
    if len(steps) != model.n_steps:
        raise ValueError(f"caches hold {len(steps)} steps but x has T_x = {model.n_steps}")
    n_h, m = model.n_h, model.m
    H = np.empty((m, model.n_steps, n_h), dtype=np.float64)
    for t, step in enumerate(steps):
        if not isinstance(step, (tuple, list)) or len(step) != 4:
            raise ValueError(f"step cache {t} is not a (h_next, h_prev, xt, parameters) tuple")
        h_t = V.as_array(f"caches[0][{t}][0] (h_next)", step[0])
        V.check_shape(f"caches[0][{t}][0] (h_next)", h_t, (n_h, m), "(n_h, m)")
        H[:, t, :] = h_t.T
    if model.dtype == np.float32:
        H = H.astype(np.float32)
    return model, H


def _with_current_weights(model, parameters):
    """``model`` with ``Whx`` and ``Whh`` as the ``parameters`` dict holds them now.

    As the reference's backward reads them: in-place edits and arrays put in
    the dict after the forward pass count, whatever their layout; a weight
    that is not float32 makes the computation float64.
    """
    if not isinstance(parameters, Mapping):
        raise TypeError("the cache's parameters must be a dict with keys "
                        f"{', '.join(PARAMETER_NAMES)}; got {type(parameters).__name__}")
    current = []
    for key, shape, labels in (("Whx", (model.n_h, model.n_x), "(n_h, n_x) of the forward"),
                               ("Whh", (model.n_h, model.n_h), "(n_h, n_h) of the forward")):
        if key not in parameters:
            raise KeyError(f"parameters has no {key!r} at backward time; expected keys "
                           f"{', '.join(PARAMETER_NAMES)}")
        a = V.as_array(f'parameters["{key}"]', parameters[key])
        V.check_shape(f'parameters["{key}"]', a, shape, labels)
        current.append(a)
    dtype = model.dtype if model.dtype == np.float64 else V.common_dtype(current)
    model = model.astype(dtype)
    w_hx, w_hh = (np.ascontiguousarray(a, dtype=dtype) for a in current)
    return Model(model.x, model.h0, w_hx, w_hh, model.w_yh, model.b_h, model.b_y,
                 model.n_steps, model.x_mode)


def rnn_backward(dh, caches):
    """Backpropagate through time over all steps in one compiled call.

    The same contract as the NumPy twin :func:`rnnfast.reference.rnn_backward`,
    whose cache it also accepts.

    Parameters
    ----------
    dh : array_like, shape (n_h, m, T_x)
        Upstream gradient of the loss with respect to every hidden state.
    caches : tuple
        ``(steps, x)`` from :func:`rnn_forward`, or a cache in the same format
        from :func:`rnnfast.reference.rnn_forward` (a list of per-step
        ``(h_next, h_prev, xt, parameters)`` tuples; the state before step
        ``t > 0`` is taken as ``h_next`` of step ``t - 1``, as that function
        records it).  The cache refers to the caller's ``parameters`` dict:
        ``Whx`` and ``Whh`` are read as the dict holds them now (in-place
        edits and replaced entries since the forward pass count, as in the
        reference), whatever their layout.

    Returns
    -------
    gradients : dict[str, ndarray]
        ``dx (n_x, m, T_x)``, ``dh0 (n_h, m)``, ``dWhx (n_h, n_x)``,
        ``dWhh (n_h, n_h)``, ``dbh (n_h, 1)``: the gradients of the loss with
        respect to the inputs, the initial state and the recurrent parameters.

    Raises
    ------
    ValueError
        A malformed cache, or ``dh`` whose shape does not fit the cache.
    TypeError, KeyError
        Invalid arrays or parameters inside a reference-format cache.

    See Also
    --------
    rnn_forward : Makes the cache.

    Notes
    -----
    The result dtype is float32 when ``dh`` and the cached arrays are float32,
    and float64 otherwise.  ``dh`` is not modified.  The output layer
    (``Wyh``, ``by``) gets no gradient here: ``dh`` is the gradient that reaches
    the hidden states; :func:`rnn_loss` covers the whole model.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnfast
    >>> rng = np.random.default_rng(0)
    >>> n_x, n_h, n_y, m, T_x = 3, 5, 2, 4, 6
    >>> parameters = {"Whx": rng.standard_normal((n_h, n_x)),
    ...               "Whh": 0.5 * rng.standard_normal((n_h, n_h)),
    ...               "Wyh": rng.standard_normal((n_y, n_h)),
    ...               "bh": np.zeros((n_h, 1)), "by": np.zeros((n_y, 1))}
    >>> x = rng.standard_normal((n_x, m, T_x))
    >>> h, y_pred, caches = rnnfast.rnn_forward(x, np.zeros((n_h, m)), parameters)
    >>> grads = rnnfast.rnn_backward(np.ones_like(h), caches)
    >>> sorted(grads)
    ['dWhh', 'dWhx', 'dbh', 'dh0', 'dx']
    >>> grads["dx"].shape, grads["dWhh"].shape
    ((3, 4, 6), (5, 5))
    """
    fast = _kernels.fast_backward(dh, caches)
    if fast is not None:
        return fast
    if not isinstance(caches, (tuple, list)) or len(caches) != 2:
        raise ValueError("caches must be the (steps, x) pair returned by rnn_forward")
    steps, x = caches
    if isinstance(steps, ForwardCache):
        model = _with_current_weights(steps.model, steps.parameters)
        H = steps.states if steps.states.dtype == model.dtype else steps.states.astype(model.dtype)
    else:
        model, H = _model_from_seed_cache(steps, x)
    n_h, m, n_steps = model.n_h, model.m, model.n_steps
    dh = _check_grad("dh", dh, (n_h, m, n_steps), "(n_h, m, T_x) of the cache")
    if model.dtype == np.float32 and V.common_dtype([dh]) != np.float32:
        model, H = model.astype(np.float64), H.astype(np.float64)
    dH = np.ascontiguousarray(dh.transpose(1, 2, 0), dtype=model.dtype)
    # A fresh copy (base None) is ours to overwrite; a view of the caller's dh is not.
    dx2, dh0, dw_hx, dw_hh, db_h = model.run_backward(H, dH, dH.base is None)
    return {"dx": dx2.reshape(model.n_x, m, n_steps), "dh0": dh0.T, "dWhx": dw_hx,
            "dWhh": dw_hh, "dbh": db_h.reshape(n_h, 1)}


def rnn_loss(x, h0, y, parameters):
    """Compute the softmax cross-entropy loss of the RNN and every gradient in one call.

    The loss is the mean over all ``m * T_x`` positions of
    ``-log softmax(Wyh h_t + by)[y_t]`` (as ``torch.nn.CrossEntropyLoss``
    computes it by default), evaluated as log-sum-exp minus the target logit
    so that it stays finite for any finite logits.

    Parameters
    ----------
    x : array_like, shape (n_x, m, T_x)
        Inputs of every step.
    h0 : array_like, shape (n_h, m)
        Initial hidden state.
    y : array_like of int, shape (m, T_x)
        Target class of every position, ``0 <= y < n_y``.
    parameters : dict
        ``Whx, Whh, Wyh, bh, by`` as for :func:`rnn_forward`.

    Returns
    -------
    loss : float
        The mean cross-entropy over the ``m * T_x`` positions.
    grads : dict[str, ndarray]
        ``dWhx, dWhh, dWyh, dbh (n_h, 1), dby (n_y, 1), dx (n_x, m, T_x),
        dh0 (n_h, m)``: the gradients of ``loss``, each of the shape of what
        it differentiates, float32 when every input is float32 else float64.

    Raises
    ------
    ValueError
        Shapes that do not fit (including ``y``), or a label out of range.
    TypeError
        Non-real inputs, or ``y`` not of an integer dtype.
    KeyError
        A parameter missing from ``parameters``.

    See Also
    --------
    rnnfast.reference.rnn_loss : The NumPy twin.
    rnnfast.RNNModel.loss_and_grads : The same for the char model.

    Examples
    --------
    With an output layer of zeros every class is equally likely, so the loss is
    ``log(n_y)``:

    >>> import numpy as np
    >>> import rnnfast
    >>> rng = np.random.default_rng(0)
    >>> n_x, n_h, n_y, m, T_x = 3, 5, 2, 4, 6
    >>> parameters = {"Whx": rng.standard_normal((n_h, n_x)),
    ...               "Whh": 0.5 * rng.standard_normal((n_h, n_h)),
    ...               "Wyh": np.zeros((n_y, n_h)),
    ...               "bh": np.zeros((n_h, 1)), "by": np.zeros((n_y, 1))}
    >>> x = rng.standard_normal((n_x, m, T_x))
    >>> y = rng.integers(n_y, size=(m, T_x))
    >>> loss, grads = rnnfast.rnn_loss(x, np.zeros((n_h, m)), y, parameters)
    >>> round(loss, 6), round(float(np.log(n_y)), 6)
    (0.693147, 0.693147)
    >>> grads["dWyh"].shape, grads["dx"].shape
    ((2, 5), (3, 4, 6))
    """
    model = _model(x, h0, parameters, "x", "h0", cell=False)
    labels = V.check_labels(y, (model.m, model.n_steps), model.n_y)
    loss, _, dx, dh0, dw_hx, dw_hh, db_h, dw_yh, db_y = model.run_loss(labels)
    return loss, {"dWhx": dw_hx, "dWhh": dw_hh, "dWyh": dw_yh,
                  "dbh": db_h.reshape(model.n_h, 1), "dby": db_y.reshape(model.n_y, 1),
                  "dx": dx.reshape(model.n_x, model.m, model.n_steps), "dh0": dh0.T}
