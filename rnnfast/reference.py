"""Plain NumPy twins of every compiled path: the test oracle and the benchmark baseline.

Every function here loops over time steps in Python, one NumPy call per product,
exactly like a textbook implementation.  The compiled functions in
:mod:`rnnfast` must return the same values, shapes and structures: the seed
RNN below, one ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layer direction
(``*_layer_forward`` / ``*_layer_backward``), the whole modules
(``*_module_forward`` / ``*_module_backward``, stacked as
:mod:`rnnfast._layers` describes), the fused loss and the optimizer steps.

Conventions of the seed RNN (column layout, one column per batch element)::

    x       (n_x, m, T_x)     inputs
    h0      (n_h, m)          initial hidden state
    Whx     (n_h, n_x)        input-to-hidden weights
    Whh     (n_h, n_h)        hidden-to-hidden weights
    Wyh     (n_y, n_h)        hidden-to-output weights
    bh      (n_h, 1)          hidden bias
    by      (n_y, 1)          output bias

    h_t = tanh(Whh h_{t-1} + Whx x_t + bh)
    y_t = softmax(Wyh h_t + by)               (softmax over axis 0)

A forward cache is ``(steps, x)`` where ``steps[t] = (h_next, h_prev, xt,
parameters)``; the backward functions read everything they need from it.
"""

import math

import numpy as np

from rnnfast import _layers

__all__ = [
    "softmax",
    "rnn_cell_forward",
    "rnn_forward",
    "rnn_cell_backward",
    "rnn_backward",
    "rnn_layer_forward",
    "rnn_layer_backward",
    "rnn_module_forward",
    "rnn_module_backward",
    "lstm_layer_forward",
    "lstm_layer_backward",
    "gru_layer_forward",
    "gru_layer_backward",
    "lstm_module_forward",
    "lstm_module_backward",
    "gru_module_forward",
    "gru_module_backward",
    "rnn_loss",
    "sgd_step",
    "adam_step",
    "adagrad_step",
    "clip_grad_norm",
    "pick_index",
    "generate_steps",
    "generate_stack_steps",
]


def softmax(z):
    """Compute the softmax of each column: ``exp(z - max) / sum(exp(z - max))`` over axis 0.

    Subtracting each column's maximum keeps ``exp`` from overflowing.  The seed
    RNN's output layer (:func:`rnn_cell_forward`); the compiled kernels compute
    the same inside :func:`rnnfast.rnn_forward`.

    Parameters
    ----------
    z : ndarray of shape (n_y, ...)
        Logits, one column per sample.

    Returns
    -------
    p : ndarray
        Probabilities of the shape of ``z``; each column sums to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnfast.reference import softmax
    >>> softmax(np.array([[0.0, 1000.0], [0.0, 1000.0]]))
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    e = np.exp(z - np.max(z, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


def rnn_cell_forward(xt, h_prev, parameters):
    """Run one time step of the seed RNN.

    The NumPy twin of :func:`rnnfast.rnn_cell_forward`:
    ``h_next = tanh(Whx xt + Whh h_prev + bh)``, ``y_pred = softmax(Wyh h_next + by)``.

    Parameters
    ----------
    xt : ndarray, shape (n_x, m)
        Input at this step.
    h_prev : ndarray, shape (n_h, m)
        Hidden state of the previous step.
    parameters : dict[str, ndarray]
        ``Whx (n_h, n_x)``, ``Whh (n_h, n_h)``, ``Wyh (n_y, n_h)``,
        ``bh (n_h, 1)``, ``by (n_y, 1)``.

    Returns
    -------
    h_next : ndarray, shape (n_h, m)
        The new hidden state.
    y_pred : ndarray, shape (n_y, m)
        The softmax output.
    cache : tuple
        ``(h_next, h_prev, xt, parameters)`` for :func:`rnn_cell_backward`.
    """
    Whx, Whh = parameters["Whx"], parameters["Whh"]
    Wyh, bh, by = parameters["Wyh"], parameters["bh"], parameters["by"]
    h_next = np.tanh(Whx @ xt + Whh @ h_prev + bh)
    y_pred = softmax(Wyh @ h_next + by)
    return h_next, y_pred, (h_next, h_prev, xt, parameters)


def rnn_forward(x, h0, parameters):
    """Run the seed RNN over every time step of ``x``.

    The NumPy twin of :func:`rnnfast.rnn_forward`: one :func:`rnn_cell_forward`
    per step, in float64.

    Parameters
    ----------
    x : ndarray, shape (n_x, m, T_x)
        Inputs of every step.
    h0 : ndarray, shape (n_h, m)
        Initial hidden state.
    parameters : dict[str, ndarray]
        ``Whx (n_h, n_x)``, ``Whh (n_h, n_h)``, ``Wyh (n_y, n_h)``,
        ``bh (n_h, 1)``, ``by (n_y, 1)``.

    Returns
    -------
    h : ndarray, shape (n_h, m, T_x)
        Hidden state after every step.
    y_pred : ndarray, shape (n_y, m, T_x)
        Softmax output of every step.
    caches : tuple
        ``(steps, x)``: ``steps`` is the list of the per-step caches of
        :func:`rnn_cell_forward`.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnfast
    >>> from rnnfast import reference
    >>> rng = np.random.default_rng(0)
    >>> parameters = {"Whx": rng.standard_normal((5, 3)), "Whh": rng.standard_normal((5, 5)),
    ...               "Wyh": rng.standard_normal((2, 5)), "bh": np.zeros((5, 1)),
    ...               "by": np.zeros((2, 1))}
    >>> x, h0 = rng.standard_normal((3, 4, 6)), np.zeros((5, 4))
    >>> h, y_pred, (steps, _) = reference.rnn_forward(x, h0, parameters)
    >>> h.shape, len(steps)
    ((5, 4, 6), 6)
    >>> bool(np.allclose(h, rnnfast.rnn_forward(x, h0, parameters)[0]))
    True
    """
    n_x, m, n_steps = x.shape
    n_y, n_h = parameters["Wyh"].shape
    h = np.zeros((n_h, m, n_steps))
    y_pred = np.zeros((n_y, m, n_steps))
    steps = []
    h_t = h0
    for t in range(n_steps):
        h_t, y_t, cache = rnn_cell_forward(x[:, :, t], h_t, parameters)
        h[:, :, t] = h_t
        y_pred[:, :, t] = y_t
        steps.append(cache)
    return h, y_pred, (steps, x)


def rnn_cell_backward(dh_next, cache):
    """Compute the gradients of one step given the gradient flowing into ``h_next``.

    The NumPy twin of :func:`rnnfast.rnn_cell_backward`.  With
    ``dz = dh_next * (1 - h_next**2)`` (the derivative of tanh)::

        dxt     = Whx^T dz          dWhx = dz xt^T
        dh_prev = Whh^T dz          dWhh = dz h_prev^T
        dbh     = sum of dz over the batch (shape (n_h, 1))

    Parameters
    ----------
    dh_next : ndarray, shape (n_h, m)
        Gradient of the loss with respect to ``h_next``.
    cache : tuple
        ``(h_next, h_prev, xt, parameters)`` from :func:`rnn_cell_forward`.

    Returns
    -------
    gradients : dict[str, ndarray]
        ``dxt (n_x, m)``, ``dh_prev (n_h, m)``, ``dWhx (n_h, n_x)``,
        ``dWhh (n_h, n_h)``, ``dbh (n_h, 1)``.
    """
    h_next, h_prev, xt, parameters = cache
    Whx, Whh = parameters["Whx"], parameters["Whh"]
    dz = dh_next * (1.0 - h_next * h_next)
    return {
        "dxt": Whx.T @ dz,
        "dh_prev": Whh.T @ dz,
        "dWhx": dz @ xt.T,
        "dWhh": dz @ h_prev.T,
        "dbh": np.sum(dz, axis=-1, keepdims=True),
    }


def rnn_backward(dh, caches):
    """Backpropagate through time over the steps of :func:`rnn_forward`.

    The NumPy twin of :func:`rnnfast.rnn_backward`: one
    :func:`rnn_cell_backward` per step, last step first.

    Parameters
    ----------
    dh : ndarray, shape (n_h, m, T_x)
        Upstream gradient of the loss with respect to every hidden state
        (not counting the path through later time steps, which this adds).
    caches : tuple
        ``(steps, x)`` from :func:`rnn_forward`.

    Returns
    -------
    gradients : dict[str, ndarray]
        ``dx (n_x, m, T_x)``, ``dh0 (n_h, m)``, ``dWhx (n_h, n_x)``,
        ``dWhh (n_h, n_h)``, ``dbh (n_h, 1)``.
    """
    steps, x = caches
    n_h, m, n_steps = dh.shape
    n_x = steps[0][2].shape[0]
    dx = np.zeros((n_x, m, n_steps))
    dWhx = np.zeros((n_h, n_x))
    dWhh = np.zeros((n_h, n_h))
    dbh = np.zeros((n_h, 1))
    dh_prev = np.zeros((n_h, m))
    for t in reversed(range(n_steps)):
        g = rnn_cell_backward(dh[:, :, t] + dh_prev, steps[t])
        dx[:, :, t] = g["dxt"]
        dh_prev = g["dh_prev"]
        dWhx += g["dWhx"]
        dWhh += g["dWhh"]
        dbh += g["dbh"]
    return {"dx": dx, "dh0": dh_prev, "dWhx": dWhx, "dWhh": dWhh, "dbh": dbh}


# -- one layer of nn.RNN ------------------------------------------------------
#
# torch.nn.RNN's conventions, one direction of one layer, time-major:
#
#     x       (T, N, n_in)      inputs
#     h0      (N, H)            initial state
#     w_ih    (H, n_in)         w_hh (H, H)      b_ih, b_hh (H,)
#
#     h_t = f(x_t w_ih^T + b_ih + h_prev w_hh^T + b_hh),  f = tanh or relu
#
# ``reverse`` runs the steps from T-1 down to 0 (``h_prev`` is the state of
# step t+1).  ``lengths`` (N,) gives each sequence's valid length, with
# pack_padded_sequence semantics: a step t >= lengths[i] leaves sequence i's
# state unchanged and outputs zeros, so h_n is the state at its own last valid
# step, and the reverse direction starts there from h0.


def _activation(nonlinearity):
    """``(f, f')`` with ``f'`` written in terms of ``h = f(z)``."""
    if nonlinearity == "tanh":
        return np.tanh, lambda h: 1.0 - h * h
    if nonlinearity == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda h: (h > 0).astype(h.dtype))
    if nonlinearity == "sigmoid":
        return (lambda z: 1.0 / (1.0 + np.exp(-z))), (lambda h: h * (1.0 - h))
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


def _valid_steps(n_steps, n_batch, lengths):
    """``(T, N)`` booleans: step t of sequence i is inside its length."""
    if lengths is None:
        return np.ones((n_steps, n_batch), dtype=bool)
    return np.arange(n_steps)[:, None] < np.asarray(lengths)[None, :]


def rnn_layer_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                      reverse=False, lengths=None):
    """Run one direction of one ``nn.RNN`` layer.

    The NumPy twin of the compiled Elman layer kernel
    (``rnnfast._kernels.layer_forward``), which runs :class:`rnnfast.RNN` and
    the operator :func:`rnnfast.torch.rnn_layer`:
    ``h_t = f(x_t w_ih^T + b_ih + h_prev w_hh^T + b_hh)``, time-major.

    Parameters
    ----------
    x : ndarray, shape (T, N, n_in)
        Inputs.
    h0 : ndarray, shape (N, H)
        Initial state.
    w_ih : ndarray, shape (H, n_in)
        Input weights.
    w_hh : ndarray, shape (H, H)
        Recurrent weights.
    b_ih, b_hh : ndarray, shape (H,), optional
        Biases, both or neither.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation ``f``.
    reverse : bool, default False
        Run the steps from ``T - 1`` down to 0.
    lengths : sequence of int of length N, optional
        Each sequence's valid length (``pack_padded_sequence`` semantics): a
        step ``t >= lengths[i]`` leaves sequence ``i``'s state unchanged and
        outputs zeros.  None: every sequence has ``T`` steps.

    Returns
    -------
    output : ndarray, shape (T, N, H)
        The state after every step; zeros at padded steps.
    h_n : ndarray, shape (N, H)
        Each sequence's final state.
    cache : dict
        What :func:`rnn_layer_backward` needs.
    """
    f, _ = _activation(nonlinearity)
    n_steps, n_batch, _ = x.shape
    H = w_hh.shape[0]
    bias = np.zeros(H) if b_ih is None else b_ih + b_hh
    valid = _valid_steps(n_steps, n_batch, lengths)
    states = np.zeros((n_steps, n_batch, H))
    prev = np.zeros((n_steps, n_batch, H))
    h = h0
    order = range(n_steps - 1, -1, -1) if reverse else range(n_steps)
    for t in order:
        prev[t] = h
        h_new = f(x[t] @ w_ih.T + h @ w_hh.T + bias)
        h = np.where(valid[t][:, None], h_new, h)
        states[t] = h
    output = np.where(valid[:, :, None], states, 0.0)
    cache = {"x": x, "prev": prev, "states": states, "valid": valid, "w_ih": w_ih,
             "w_hh": w_hh, "nonlinearity": nonlinearity, "reverse": reverse,
             "bias": b_ih is not None}
    return output, h, cache


def rnn_layer_backward(d_output, d_h_n, cache):
    """Compute the gradients of one Elman layer direction.

    The NumPy twin of the compiled ``rnnfast._kernels.layer_backward``
    (behind :meth:`rnnfast.RNN.backward` and :func:`rnnfast.torch.rnn_layer_backward`).

    Parameters
    ----------
    d_output : ndarray, shape (T, N, H)
        Gradient with respect to ``output`` (ignored at padded steps).
    d_h_n : ndarray, shape (N, H)
        Gradient with respect to ``h_n``.
    cache : dict
        What :func:`rnn_layer_forward` returned.

    Returns
    -------
    gradients : dict[str, ndarray]
        ``input (T, N, n_in)``, ``hx (N, H)``, ``weight_ih``, ``weight_hh``
        and, when the layer has biases, ``bias_ih`` and ``bias_hh`` (equal:
        both enter the same sum).
    """
    _, f_prime = _activation(cache["nonlinearity"])
    x, prev, states, valid = cache["x"], cache["prev"], cache["states"], cache["valid"]
    w_ih, w_hh = cache["w_ih"], cache["w_hh"]
    n_steps = x.shape[0]
    d_x = np.zeros(x.shape)
    d_w_ih, d_w_hh = np.zeros(w_ih.shape), np.zeros(w_hh.shape)
    d_b = np.zeros(w_hh.shape[0])
    g = np.array(d_h_n, dtype=np.float64)        # gradient reaching the current state
    order = range(n_steps) if cache["reverse"] else range(n_steps - 1, -1, -1)
    for t in order:
        v = valid[t][:, None]
        g = g + np.where(v, d_output[t], 0.0)
        dz = np.where(v, g * f_prime(states[t]), 0.0)
        d_x[t] = dz @ w_ih
        d_w_ih += dz.T @ x[t]
        d_w_hh += dz.T @ prev[t]
        d_b += dz.sum(axis=0)
        g = np.where(v, dz @ w_hh, g)              # a padded step passes g through
    grads = {"input": d_x, "hx": g, "weight_ih": d_w_ih, "weight_hh": d_w_hh}
    if cache["bias"]:
        grads["bias_ih"], grads["bias_hh"] = d_b, d_b.copy()
    return grads


# -- one direction of one nn.LSTM / nn.GRU layer --------------------------------
# torch's equations and gate order (see torch.nn.LSTM / torch.nn.GRU docs):
#   LSTM  [i, f, g, o] = x W_ih^T + b_ih + h W_hh^T + b_hh, i f o sigmoid, g tanh;
#         c' = f c + i g;  h' = o tanh(c'), then h' W_hr^T with proj_size.
#   GRU   [r, z] = sigmoid of the first 2H columns of both products;
#         n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn));  h' = (1 - z) n + z h.
# A step outside sequence i's length carries its state (h and c) unchanged.


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_layer_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None,
                       reverse=False, lengths=None):
    """Run one direction of one ``nn.LSTM`` layer.

    The NumPy twin of the compiled ``rnnfast._kernels.lstm_layer_forward``
    (behind :class:`rnnfast.LSTM` and :func:`rnnfast.torch.lstm_layer`).
    ``P`` is ``H`` or, with ``w_hr``, the projection size.

    Parameters
    ----------
    x : ndarray, shape (T, N, n_in)
        Inputs.
    h0 : ndarray, shape (N, P)
        Initial hidden state.
    c0 : ndarray, shape (N, H)
        Initial cell state.
    w_ih : ndarray, shape (4H, n_in)
        Input weights, gates in torch's order ``i, f, g, o``.
    w_hh : ndarray, shape (4H, P)
        Recurrent weights.
    b_ih, b_hh : ndarray, shape (4H,), optional
        Biases, both or neither.
    w_hr : ndarray, shape (P, H), optional
        Projection of ``h``.
    reverse : bool, default False
        Run the steps from ``T - 1`` down to 0.
    lengths : sequence of int of length N, optional
        Each sequence's valid length (``pack_padded_sequence`` semantics): a
        step ``t >= lengths[i]`` leaves sequence ``i``'s states unchanged and
        outputs zeros.  None: every sequence has ``T`` steps.

    Returns
    -------
    output : ndarray, shape (T, N, P)
        ``h`` after every step; zeros at padded steps.
    h_n : ndarray, shape (N, P)
        Each sequence's final hidden state.
    c_n : ndarray, shape (N, H)
        Each sequence's final cell state.
    cache : dict
        What :func:`lstm_layer_backward` needs.
    """
    n_steps, n_batch, _ = x.shape
    H = w_hh.shape[0] // 4
    bias = np.zeros(4 * H) if b_ih is None else b_ih + b_hh
    valid = _valid_steps(n_steps, n_batch, lengths)
    gates = np.zeros((n_steps, n_batch, 4 * H))      # activated i, f, g, o
    cells = np.zeros((n_steps, n_batch, H))
    prev_h = np.zeros((n_steps,) + h0.shape)
    prev_c = np.zeros((n_steps, n_batch, H))
    states = np.zeros((n_steps,) + h0.shape)
    h, c = h0, c0
    order = range(n_steps - 1, -1, -1) if reverse else range(n_steps)
    for t in order:
        prev_h[t], prev_c[t] = h, c
        a = x[t] @ w_ih.T + h @ w_hh.T + bias
        i, f, g, o = (_sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]),
                      _sigmoid(a[:, 3 * H:]))
        gates[t] = np.concatenate([i, f, g, o], axis=1)
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        if w_hr is not None:
            h_new = h_new @ w_hr.T
        v = valid[t][:, None]
        h, c = np.where(v, h_new, h), np.where(v, c_new, c)
        states[t], cells[t] = h, c
    output = np.where(valid[:, :, None], states, 0.0)
    cache = {"x": x, "prev_h": prev_h, "prev_c": prev_c, "gates": gates, "cells": cells,
             "valid": valid, "w_ih": w_ih, "w_hh": w_hh, "w_hr": w_hr, "reverse": reverse,
             "bias": b_ih is not None}
    return output, h, c, cache


def lstm_layer_backward(d_output, d_h_n, d_c_n, cache):
    """Compute the gradients of one LSTM layer direction.

    The NumPy twin of the compiled ``rnnfast._kernels.lstm_layer_backward``
    (behind :meth:`rnnfast.LSTM.backward` and :func:`rnnfast.torch.lstm_layer_backward`).

    Parameters
    ----------
    d_output : ndarray, shape (T, N, P)
        Gradient with respect to ``output`` (ignored at padded steps).
    d_h_n : ndarray, shape (N, P)
        Gradient with respect to ``h_n``.
    d_c_n : ndarray, shape (N, H)
        Gradient with respect to ``c_n``.
    cache : dict
        What :func:`lstm_layer_forward` returned.

    Returns
    -------
    gradients : dict[str, ndarray]
        ``input (T, N, n_in)``, ``hx (N, P)``, ``cx (N, H)``, ``weight_ih``,
        ``weight_hh``, ``weight_hr`` (with a projection) and, with biases,
        ``bias_ih`` and ``bias_hh`` (equal: both enter the same sum).
    """
    x, valid = cache["x"], cache["valid"]
    w_ih, w_hh, w_hr = cache["w_ih"], cache["w_hh"], cache["w_hr"]
    H = w_hh.shape[0] // 4
    d_x = np.zeros(x.shape)
    d_w_ih, d_w_hh = np.zeros(w_ih.shape), np.zeros(w_hh.shape)
    d_w_hr = None if w_hr is None else np.zeros(w_hr.shape)
    d_b = np.zeros(4 * H)
    gh = np.array(d_h_n, dtype=np.float64)          # gradient reaching the current h
    gc = np.array(d_c_n, dtype=np.float64)          # ... and the current c
    order = range(x.shape[0]) if cache["reverse"] else range(x.shape[0] - 1, -1, -1)
    for t in order:
        v = valid[t][:, None]
        gh = gh + np.where(v, d_output[t], 0.0)
        i, f, g, o = np.split(cache["gates"][t], 4, axis=1)
        tc = np.tanh(cache["cells"][t])
        if w_hr is not None:
            d_w_hr += np.where(v, gh, 0.0).T @ (o * tc)
            d_m = gh @ w_hr                            # gradient of o * tanh(c)
        else:
            d_m = gh
        dc = gc + d_m * o * (1 - tc ** 2)
        da = np.concatenate([dc * g * i * (1 - i), dc * cache["prev_c"][t] * f * (1 - f),
                             dc * i * (1 - g ** 2), d_m * tc * o * (1 - o)], axis=1)
        da = np.where(v, da, 0.0)
        d_x[t] = da @ w_ih
        d_w_ih += da.T @ x[t]
        d_w_hh += da.T @ cache["prev_h"][t]
        d_b += da.sum(axis=0)
        gh = np.where(v, da @ w_hh, gh)                # a padded step passes both through
        gc = np.where(v, dc * f, gc)
    grads = {"input": d_x, "hx": gh, "cx": gc, "weight_ih": d_w_ih, "weight_hh": d_w_hh}
    if w_hr is not None:
        grads["weight_hr"] = d_w_hr
    if cache["bias"]:
        grads["bias_ih"], grads["bias_hh"] = d_b, d_b.copy()
    return grads


def gru_layer_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False, lengths=None):
    """Run one direction of one ``nn.GRU`` layer.

    The NumPy twin of the compiled ``rnnfast._kernels.gru_layer_forward``
    (behind :class:`rnnfast.GRU` and :func:`rnnfast.torch.gru_layer`), with
    torch's equations and gate order ``r, z, n``.

    Parameters
    ----------
    x : ndarray, shape (T, N, n_in)
        Inputs.
    h0 : ndarray, shape (N, H)
        Initial state.
    w_ih : ndarray, shape (3H, n_in)
        Input weights.
    w_hh : ndarray, shape (3H, H)
        Recurrent weights.
    b_ih, b_hh : ndarray, shape (3H,), optional
        Biases, both or neither.
    reverse : bool, default False
        Run the steps from ``T - 1`` down to 0.
    lengths : sequence of int of length N, optional
        Each sequence's valid length (``pack_padded_sequence`` semantics): a
        step ``t >= lengths[i]`` leaves sequence ``i``'s state unchanged and
        outputs zeros.  None: every sequence has ``T`` steps.

    Returns
    -------
    output : ndarray, shape (T, N, H)
        The state after every step; zeros at padded steps.
    h_n : ndarray, shape (N, H)
        Each sequence's final state.
    cache : dict
        What :func:`gru_layer_backward` needs.
    """
    n_steps, n_batch, _ = x.shape
    H = w_hh.shape[1]
    b_ih = np.zeros(3 * H) if b_ih is None else b_ih
    b_hh_ = np.zeros(3 * H) if b_hh is None else b_hh
    valid = _valid_steps(n_steps, n_batch, lengths)
    gates = np.zeros((n_steps, n_batch, 3 * H))      # activated r, z, n
    hidden_n = np.zeros((n_steps, n_batch, H))       # h W_hn^T + b_hn
    prev = np.zeros((n_steps, n_batch, H))
    states = np.zeros((n_steps, n_batch, H))
    h = h0
    order = range(n_steps - 1, -1, -1) if reverse else range(n_steps)
    for t in order:
        prev[t] = h
        gi = x[t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh_
        r = _sigmoid(gi[:, :H] + gh[:, :H])
        z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        gates[t] = np.concatenate([r, z, n], axis=1)
        hidden_n[t] = gh[:, 2 * H:]
        h = np.where(valid[t][:, None], (1 - z) * n + z * h, h)
        states[t] = h
    output = np.where(valid[:, :, None], states, 0.0)
    cache = {"x": x, "prev": prev, "gates": gates, "hidden_n": hidden_n, "valid": valid,
             "w_ih": w_ih, "w_hh": w_hh, "reverse": reverse, "bias": b_hh is not None}
    return output, h, cache


def gru_layer_backward(d_output, d_h_n, cache):
    """Compute the gradients of one GRU layer direction.

    The NumPy twin of the compiled ``rnnfast._kernels.gru_layer_backward``
    (behind :meth:`rnnfast.GRU.backward` and :func:`rnnfast.torch.gru_layer_backward`).

    Parameters
    ----------
    d_output : ndarray, shape (T, N, H)
        Gradient with respect to ``output`` (ignored at padded steps).
    d_h_n : ndarray, shape (N, H)
        Gradient with respect to ``h_n``.
    cache : dict
        What :func:`gru_layer_forward` returned.

    Returns
    -------
    gradients : dict[str, ndarray]
        ``input (T, N, n_in)``, ``hx (N, H)``, ``weight_ih``, ``weight_hh``
        and, with biases, ``bias_ih`` and ``bias_hh`` (they differ in the n
        gate, where ``b_hn`` is multiplied by r).
    """
    x, valid, w_ih, w_hh = cache["x"], cache["valid"], cache["w_ih"], cache["w_hh"]
    H = w_hh.shape[1]
    d_x = np.zeros(x.shape)
    d_w_ih, d_w_hh = np.zeros(w_ih.shape), np.zeros(w_hh.shape)
    d_b_ih, d_b_hh = np.zeros(3 * H), np.zeros(3 * H)
    g = np.array(d_h_n, dtype=np.float64)
    order = range(x.shape[0]) if cache["reverse"] else range(x.shape[0] - 1, -1, -1)
    for t in order:
        v = valid[t][:, None]
        g = g + np.where(v, d_output[t], 0.0)
        r, z, n = np.split(cache["gates"][t], 3, axis=1)
        h_prev = cache["prev"][t]
        d_an = g * (1 - z) * (1 - n ** 2)             # pre-activation of n
        d_ar = d_an * cache["hidden_n"][t] * r * (1 - r)
        d_az = g * (h_prev - n) * z * (1 - z)
        d_gi = np.where(v, np.concatenate([d_ar, d_az, d_an], axis=1), 0.0)
        d_gh = np.where(v, np.concatenate([d_ar, d_az, d_an * r], axis=1), 0.0)
        d_x[t] = d_gi @ w_ih
        d_w_ih += d_gi.T @ x[t]
        d_w_hh += d_gh.T @ h_prev
        d_b_ih += d_gi.sum(axis=0)
        d_b_hh += d_gh.sum(axis=0)
        g = np.where(v, d_gh @ w_hh + g * z, g)
    grads = {"input": d_x, "hx": g, "weight_ih": d_w_ih, "weight_hh": d_w_hh}
    if cache["bias"]:
        grads["bias_ih"], grads["bias_hh"] = d_b_ih, d_b_hh
    return grads


# -- the whole nn.RNN: layers and directions ------------------------------------
# The module twins below share two drivers over the stacking scheme of
# rnnfast._layers: _stack_forward runs the layers bottom-up, each direction
# from its own slot k * D + d of the initial states, concatenates the
# directions' outputs and multiplies in the dropout mask; _stack_backward
# runs them top-down.  A direction is a closure over the
# layer twin of its kind, so the drivers know nothing of gates.


def _suffixes(bidirectional):
    return _layers.suffixes(bidirectional)


def _stack_forward(x, initial, num_layers, suffixes, dropout_masks, direction_forward):
    """Run ``num_layers`` layers of ``len(suffixes)`` directions (:mod:`rnnfast._layers`).

    ``initial`` is a tuple of ``(num_layers * D, N, ·)`` initial states (``hx``,
    or ``hx`` and ``cx``); ``direction_forward(layer_input, k, sfx, reverse,
    states)`` runs one direction from its slot of each and returns ``(output,
    final states, cache)``.

    Returns ``(output, final states stacked like initial, cache)``.
    """
    layers = []

    def run_direction(layer_input, k, d, sfx, states):
        out, last, cache = direction_forward(layer_input, k, sfx, d == 1, states)
        if d == 0:
            layers.append({"caches": [], "mask": None})
        layers[k]["caches"].append(cache)
        return out, last

    def join_layer(k, outputs):
        out = np.concatenate(outputs, axis=2)
        if dropout_masks is not None and k < num_layers - 1:
            layers[k]["mask"] = dropout_masks[k]
            out = out * dropout_masks[k]
        return out

    output, finals = _layers.stack_forward(x, initial, num_layers, len(suffixes),
                                           run_direction, join_layer)
    # n_hidden: each direction's output width (hx's last axis: H, or P with a projection)
    cache = {"layers": layers, "suffixes": suffixes, "n_hidden": initial[0].shape[-1]}
    return output, tuple(np.stack(f) for f in finals), cache


def _stack_backward(d_output, d_finals, cache, state_names, direction_backward):
    """Gradients of a :func:`_stack_forward` run given those of its outputs.

    ``d_finals`` matches the final states and ``state_names`` names them
    (``("hx",)`` or ``("hx", "cx")``); ``direction_backward(d_out, d_states,
    cache)`` is the layer twin's backward.

    Returns a dict with ``input``, one entry per state name and one per
    parameter, named as torch names them.
    """
    layers = cache["layers"]
    d_initial = {name: np.zeros(d.shape) for name, d in zip(state_names, d_finals, strict=True)}

    def unjoin_layer(k, g):
        mask = layers[k]["mask"]
        return g if mask is None else g * mask

    def back_direction(g_d, k, d, sfx, i):
        lg = direction_backward(g_d, tuple(s[i] for s in d_finals), layers[k]["caches"][d])
        dx = lg.pop("input")
        d_states = [lg.pop(name) for name in state_names]
        return dx, d_states, lg

    d_input, grads = _layers.stack_backward(d_output, list(d_initial.values()), len(layers),
                                            len(cache["suffixes"]), cache["n_hidden"],
                                            unjoin_layer, back_direction)
    return {"input": d_input, **d_initial, **grads}


def _weights(params, k, sfx, names):
    """Layer ``k``'s parameters ``{name}_l{k}{sfx}`` in ``names`` order; None if absent."""
    return [params.get(f"{name}_l{k}{sfx}") for name in names]


def rnn_module_forward(x, hx, params, num_layers, bidirectional=False, nonlinearity="tanh",
                       lengths=None, dropout_masks=None):
    """Compute ``torch.nn.RNN.forward`` (time-major, batched) in plain NumPy.

    The NumPy twin of :meth:`rnnfast.RNN.forward` (and of
    :class:`rnnfast.torch.RNN`): :func:`rnn_layer_forward` for every layer and
    direction, stacked as torch stacks them.

    Parameters
    ----------
    x : ndarray, shape (T, N, input_size)
        Inputs.
    hx : ndarray, shape (num_layers * D, N, H)
        Initial states, layer by layer, each layer's directions together.
    params : dict[str, ndarray]
        Torch's names: ``weight_ih_l{k}{sfx}``, ``weight_hh_l{k}{sfx}`` and,
        when present, ``bias_ih_l{k}{sfx}``, ``bias_hh_l{k}{sfx}`` (``sfx`` is
        ``""`` or ``"_reverse"``).
    num_layers : int
        Number of stacked layers.
    bidirectional : bool, default False
        Two directions per layer (``D = 2``), the second with the ``_reverse``
        parameters.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation.
    lengths : sequence of int, optional
        ``pack_padded_sequence`` semantics (see :func:`rnn_layer_forward`).
    dropout_masks : list of ndarray, optional
        One ``(T, N, D * H)`` multiplier per layer but the last (``1 / (1 - p)``
        where kept, 0 where dropped), applied to that layer's output: dropout as
        an input, so that the result is deterministic.

    Returns
    -------
    output : ndarray, shape (T, N, D * H)
        The last layer's outputs, directions concatenated.
    h_n : ndarray, shape (num_layers * D, N, H)
        The final states.
    cache : dict
        What :func:`rnn_module_backward` needs.
    """
    def direction(layer_input, k, sfx, reverse, states):
        out, h_last, cache = rnn_layer_forward(
            layer_input, states[0],
            *_weights(params, k, sfx, ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
            nonlinearity, reverse, lengths)
        return out, (h_last,), cache

    output, (h_n,), cache = _stack_forward(x, (hx,), num_layers, _suffixes(bidirectional),
                                           dropout_masks, direction)
    return output, h_n, cache


def rnn_module_backward(d_output, d_h_n, cache):
    """Compute the gradients of :func:`rnn_module_forward`'s outputs.

    The NumPy twin of :meth:`rnnfast.RNN.backward`.  The gradients are those of
    ``sum(d_output * output) + sum(d_h_n * h_n)``.

    Parameters
    ----------
    d_output : ndarray, shape (T, N, D * H)
        Gradient with respect to ``output``.
    d_h_n : ndarray, shape (num_layers * D, N, H)
        Gradient with respect to ``h_n``.
    cache : dict
        What :func:`rnn_module_forward` returned.

    Returns
    -------
    gradients : dict[str, ndarray]
        ``input``, ``hx`` and one entry per parameter name, as
        :meth:`rnnfast.RNN.backward` gives them.
    """
    return _stack_backward(d_output, (d_h_n,), cache, ("hx",),
                           lambda g, d_states, c: rnn_layer_backward(g, d_states[0], c))


# -- the whole nn.LSTM / nn.GRU ---------------------------------------------------


def lstm_module_forward(x, hx, cx, params, num_layers, bidirectional=False, proj_size=0,
                        lengths=None, dropout_masks=None):
    """Compute ``torch.nn.LSTM.forward`` (time-major, batched) in plain NumPy.

    The NumPy twin of :meth:`rnnfast.LSTM.forward` (and of
    :class:`rnnfast.torch.LSTM`).  ``P`` below is ``proj_size`` when it is
    positive, else ``H``.

    Parameters
    ----------
    x : ndarray, shape (T, N, input_size)
        Inputs.
    hx : ndarray, shape (num_layers * D, N, P)
        Initial hidden states.
    cx : ndarray, shape (num_layers * D, N, H)
        Initial cell states.
    params : dict[str, ndarray]
        Torch's names: ``weight_ih_l{k}{sfx}`` (4H, n_in), ``weight_hh_l{k}{sfx}``
        (4H, P), ``weight_hr_l{k}{sfx}`` (P, H) when ``proj_size > 0`` and,
        when present, ``bias_ih_l{k}{sfx}``, ``bias_hh_l{k}{sfx}`` (4H,); layer
        ``k > 0`` reads ``n_in = D * P``.
    num_layers : int
        Number of stacked layers.
    bidirectional : bool, default False
        Two directions per layer (``D = 2``), the second with the ``_reverse``
        parameters.
    proj_size : int, default 0
        0, or the width of ``h`` after the projection ``weight_hr``.
    lengths : sequence of int, optional
        ``pack_padded_sequence`` semantics (see :func:`rnn_layer_forward`); a
        padded step carries both ``h`` and ``c``.
    dropout_masks : list of ndarray, optional
        One ``(T, N, D * P)`` multiplier per layer but the last (``1 / (1 - p)``
        where kept, 0 where dropped), applied to that layer's output: dropout as
        an input, so that the result is deterministic.

    Returns
    -------
    output : ndarray, shape (T, N, D * P)
        The last layer's outputs, directions concatenated.
    h_n : ndarray, shape (num_layers * D, N, P)
        The final hidden states.
    c_n : ndarray, shape (num_layers * D, N, H)
        The final cell states.
    cache : dict
        What :func:`lstm_module_backward` needs.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnfast
    >>> from rnnfast import reference
    >>> lstm = rnnfast.LSTM(3, 4, num_layers=2, dtype=np.float64, seed=0)
    >>> x = np.random.default_rng(1).standard_normal((5, 2, 3))
    >>> h0 = c0 = np.zeros((2, 2, 4))
    >>> output, h_n, c_n, cache = reference.lstm_module_forward(
    ...     x, h0, c0, dict(lstm.named_parameters()), num_layers=2)
    >>> output.shape, c_n.shape
    ((5, 2, 4), (2, 2, 4))
    >>> bool(np.allclose(output, lstm(x, (h0, c0))[0]))
    True
    """
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")

    def direction(layer_input, k, sfx, reverse, states):
        w_ih, w_hh, b_ih, b_hh, w_hr = _weights(params, k, sfx, names)
        w_hr = w_hr if proj_size > 0 else None
        out, h_last, c_last, cache = lstm_layer_forward(layer_input, *states, w_ih, w_hh,
                                                        b_ih, b_hh, w_hr, reverse, lengths)
        return out, (h_last, c_last), cache

    output, (h_n, c_n), cache = _stack_forward(x, (hx, cx), num_layers,
                                               _suffixes(bidirectional), dropout_masks,
                                               direction)
    return output, h_n, c_n, cache


def lstm_module_backward(d_output, d_h_n, d_c_n, cache):
    """Compute the gradients of :func:`lstm_module_forward`'s outputs.

    The NumPy twin of :meth:`rnnfast.LSTM.backward`.  The gradients are those of
    ``sum(d_output * output) + sum(d_h_n * h_n) + sum(d_c_n * c_n)``.

    Parameters
    ----------
    d_output : ndarray, shape (T, N, D * P)
        Gradient with respect to ``output``.
    d_h_n : ndarray, shape (num_layers * D, N, P)
        Gradient with respect to ``h_n``.
    d_c_n : ndarray, shape (num_layers * D, N, H)
        Gradient with respect to ``c_n``.
    cache : dict
        What :func:`lstm_module_forward` returned.

    Returns
    -------
    gradients : dict[str, ndarray]
        ``input``, ``hx``, ``cx`` and one entry per parameter name
        (``weight_hr_l{k}{sfx}`` with a projection, biases only when present).
    """
    return _stack_backward(d_output, (d_h_n, d_c_n), cache, ("hx", "cx"),
                           lambda g, d_states, c: lstm_layer_backward(g, *d_states, c))


def gru_module_forward(x, hx, params, num_layers, bidirectional=False, lengths=None,
                       dropout_masks=None):
    """Compute ``torch.nn.GRU.forward`` (time-major, batched) in plain NumPy.

    The NumPy twin of :meth:`rnnfast.GRU.forward` (and of
    :class:`rnnfast.torch.GRU`).

    Parameters
    ----------
    x : ndarray, shape (T, N, input_size)
        Inputs.
    hx : ndarray, shape (num_layers * D, N, H)
        Initial states.
    params : dict[str, ndarray]
        Torch's names: ``weight_ih_l{k}{sfx}`` (3H, n_in), ``weight_hh_l{k}{sfx}``
        (3H, H) and, when present, biases (3H,), in torch's ``r, z, n`` gate
        order.
    num_layers : int
        Number of stacked layers.
    bidirectional : bool, default False
        Two directions per layer (``D = 2``), the second with the ``_reverse``
        parameters.
    lengths : sequence of int, optional
        ``pack_padded_sequence`` semantics (see :func:`rnn_layer_forward`).
    dropout_masks : list of ndarray, optional
        One ``(T, N, D * H)`` multiplier per layer but the last (``1 / (1 - p)``
        where kept, 0 where dropped), applied to that layer's output: dropout as
        an input, so that the result is deterministic.

    Returns
    -------
    output : ndarray, shape (T, N, D * H)
        The last layer's outputs, directions concatenated.
    h_n : ndarray, shape (num_layers * D, N, H)
        The final states.
    cache : dict
        What :func:`gru_module_backward` needs.
    """
    def direction(layer_input, k, sfx, reverse, states):
        out, h_last, cache = gru_layer_forward(
            layer_input, states[0],
            *_weights(params, k, sfx, ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
            reverse, lengths)
        return out, (h_last,), cache

    output, (h_n,), cache = _stack_forward(x, (hx,), num_layers, _suffixes(bidirectional),
                                           dropout_masks, direction)
    return output, h_n, cache


def gru_module_backward(d_output, d_h_n, cache):
    """Compute the gradients of :func:`gru_module_forward`'s outputs.

    The NumPy twin of :meth:`rnnfast.GRU.backward`.  The gradients are those of
    ``sum(d_output * output) + sum(d_h_n * h_n)``.

    Parameters
    ----------
    d_output : ndarray, shape (T, N, D * H)
        Gradient with respect to ``output``.
    d_h_n : ndarray, shape (num_layers * D, N, H)
        Gradient with respect to ``h_n``.
    cache : dict
        What :func:`gru_module_forward` returned.

    Returns
    -------
    gradients : dict[str, ndarray]
        ``input``, ``hx`` and one entry per parameter name.
    """
    return _stack_backward(d_output, (d_h_n,), cache, ("hx",),
                           lambda g, d_states, c: gru_layer_backward(g, d_states[0], c))


# -- the fused loss ---------------------------------------------------------------


def rnn_loss(x, h0, y, parameters):
    """Compute the mean softmax cross-entropy of the seed model, and every gradient.

    The NumPy twin of :func:`rnnfast.rnn_loss` (and of
    :meth:`rnnfast.RNNModel.loss_and_grads` for the one-layer tanh model):
    ``loss = mean over (i, t) of logsumexp(z[:, i, t]) - z[y[i, t], i, t]``
    with the logits ``z = Wyh h + by``.

    Parameters
    ----------
    x : ndarray, shape (n_x, m, T_x)
        Inputs of every step.
    h0 : ndarray, shape (n_h, m)
        Initial hidden state.
    y : ndarray of int, shape (m, T_x)
        Target class of every position.
    parameters : dict[str, ndarray]
        ``Whx (n_h, n_x)``, ``Whh (n_h, n_h)``, ``Wyh (n_y, n_h)``,
        ``bh (n_h, 1)``, ``by (n_y, 1)``.

    Returns
    -------
    loss : float
        The mean cross-entropy over the ``m * T_x`` positions.
    grads : dict[str, ndarray]
        ``dWhx, dWhh, dWyh, dbh, dby, dx, dh0``, each of the shape of what it
        differentiates.
    """
    h, _, caches = rnn_forward(x, h0, parameters)
    Wyh, by = parameters["Wyh"], parameters["by"]
    n_y = Wyh.shape[0]
    m, n_steps = y.shape
    z = np.einsum("yh,hmt->ymt", Wyh, h) + by[:, :, None]
    top = z.max(axis=0, keepdims=True)
    log_sum = np.log(np.exp(z - top).sum(axis=0, keepdims=True)) + top
    onehot = (np.arange(n_y)[:, None, None] == y[None]).astype(z.dtype)
    target = np.take_along_axis(z, y[None], axis=0)[0]   # indexed: an infinite other logit
    loss = float(np.mean(log_sum[0] - target))           # must not enter as 0 * inf
    dz = (np.exp(z - log_sum) - onehot) / (m * n_steps)
    dh = np.einsum("yh,ymt->hmt", Wyh, dz)
    grads = rnn_backward(dh, caches)
    grads["dWyh"] = np.einsum("ymt,hmt->yh", dz, h)
    grads["dby"] = dz.sum(axis=(1, 2))[:, None]
    return loss, grads


# -- optimizer steps: the published update rules, one parameter at a time -------
#
# ``state`` is a dict the step reads and updates (empty before the first step);
# ``t`` counts steps from 1.  These are written from the papers' equations (and
# torch.optim's documentation of its defaults: L2 weight decay added to the
# gradient, eps outside the square root), not from any implementation.


def sgd_step(param, grad, state, lr, momentum=0.0):
    """Take one SGD step: ``b = momentum b + g`` (``b = g`` at first), ``p = p - lr b``.

    The NumPy twin of :class:`rnnfast.optim.SGD` without dampening, weight
    decay or Nesterov momentum; plain ``p - lr g`` without momentum.

    Parameters
    ----------
    param : ndarray
        The parameter (not modified).
    grad : ndarray
        Its gradient, of the same shape.
    state : dict
        The step's buffers, read and updated in place; empty before the first
        step.
    lr : float
        Learning rate.
    momentum : float, default 0.0
        Momentum factor (0: none, ``state`` untouched).

    Returns
    -------
    new_param : ndarray
        The updated parameter, a new array.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnfast.reference import sgd_step
    >>> state = {}
    >>> p = sgd_step(np.array([1.0]), np.array([0.5]), state, lr=0.1, momentum=0.9)
    >>> p = sgd_step(p, np.array([0.5]), state, lr=0.1, momentum=0.9)
    >>> p.round(6), state["momentum_buffer"].round(6)
    (array([0.855]), array([0.95]))
    """
    if momentum:
        b = grad if "momentum_buffer" not in state else momentum * state["momentum_buffer"] + grad
        state["momentum_buffer"] = b
        return param - lr * b
    return param - lr * grad


def adam_step(param, grad, state, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Take one Adam step: Kingma & Ba (2015), Algorithm 1, with L2 weight decay.

    The NumPy twin of :class:`rnnfast.optim.Adam` (without amsgrad); the weight
    decay is added to the gradient.

    Parameters
    ----------
    param : ndarray
        The parameter (not modified).
    grad : ndarray
        Its gradient, of the same shape.
    state : dict
        The step's buffers, read and updated in place; empty before the first
        step.
    t : int
        The step number, from 1.
    lr : float
        Learning rate.
    betas : tuple of (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float, default 1e-8
        Added to the denominator, outside the square root.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient.

    Returns
    -------
    new_param : ndarray
        The updated parameter, a new array.
    """
    beta1, beta2 = betas
    g = grad + weight_decay * param if weight_decay else grad   # no term at all without decay
    m = beta1 * state.get("exp_avg", 0.0) + (1 - beta1) * g
    v = beta2 * state.get("exp_avg_sq", 0.0) + (1 - beta2) * g * g
    state["exp_avg"], state["exp_avg_sq"] = m, v
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps)


def adagrad_step(param, grad, state, lr, eps=1e-10):
    """Take one Adagrad step: Duchi, Hazan & Singer (2011).

    ``s = s + g^2``, ``p = p - lr g / (sqrt(s) + eps)``: the NumPy twin of
    :class:`rnnfast.optim.Adagrad` without learning-rate decay, weight decay
    or initial accumulator value.

    Parameters
    ----------
    param : ndarray
        The parameter (not modified).
    grad : ndarray
        Its gradient, of the same shape.
    state : dict
        The step's buffers, read and updated in place; empty before the first
        step.
    lr : float
        Learning rate.
    eps : float, default 1e-10
        Added to the denominator.

    Returns
    -------
    new_param : ndarray
        The updated parameter, a new array.
    """
    s = state.get("sum", 0.0) + grad * grad
    state["sum"] = s
    return param - lr * grad / (np.sqrt(s) + eps)


def clip_grad_norm(grads, max_norm):
    """Scale gradients by ``min(1, max_norm / (norm + 1e-6))``, with ``norm`` their joint 2-norm.

    The NumPy twin of :func:`rnnfast.optim.clip_grad_norm` with ``norm_type=2``,
    except that every entry counts and the arrays are not modified.

    Parameters
    ----------
    grads : dict[str, ndarray]
        The gradients.
    max_norm : float
        The largest joint norm allowed.

    Returns
    -------
    clipped : dict[str, ndarray]
        New arrays, the gradients scaled.
    norm : float
        The joint 2-norm before scaling.
    """
    norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))
    scale = float(np.minimum(1.0, max_norm / (norm + 1e-6)))     # NaN stays NaN
    return {k: g * scale for k, g in grads.items()}, norm


def _draw(w, u):
    """The first index whose running sum of ``w`` exceeds ``u * sum(w)``, summing in index
    order in float64; if rounding leaves none, the last index with a positive weight."""
    total = 0.0
    for v in w:
        total += v
    threshold = u * total
    running, last_positive = 0.0, len(w) - 1
    for i, v in enumerate(w):
        if v > 0:
            running += v
            last_positive = i
            if running > threshold:
                return i
    return last_positive


def pick_index(logits, u, temperature=1.0, top_k=None, top_p=None):
    """Draw one class from ``logits`` with the uniform ``u``: the rule of text generation.

    Parameters
    ----------
    logits : array_like of shape (V,)
        The read-out, used in float64.  ``pick_index(np.zeros(V), u)`` is a
        uniform draw.
    u : float
        A uniform number in ``[0, 1)``.
    temperature : float, default 1.0
        0 takes the first index of the maximum.  Otherwise the weights are
        ``w_i = exp((z_i - max z) / temperature)`` (``math.exp``, float64).
    top_k : int or None, default None
        Keep the ``top_k`` largest weights (ties: lower index first).
    top_p : float or None, default None
        Then keep, in the order of decreasing weight (ties: lower index first), the
        shortest prefix whose running sum reaches ``top_p`` times the sum of the
        weights (index order); if rounding leaves it short, every weight (1 or
        None: all).

    Returns
    -------
    index : int
        The first index whose running sum of the kept weights (index order,
        float64) exceeds ``u`` times their sum.
    """
    z = np.asarray(logits, dtype=np.float64)
    top = np.argmax(z)                      # the first index of the maximum
    if temperature == 0:
        return int(top)
    with np.errstate(over="ignore"):
        scaled = (z - z[top]) / temperature
    w = np.array([math.exp(v) for v in scaled])    # libm's exp, as the kernel
    n = len(w)
    if (top_k is None or top_k >= n) and (top_p is None or top_p >= 1):
        return _draw(w, u)
    order = np.argsort(-w, kind="stable")   # decreasing weight, ties lower index first
    if top_k is not None and top_k < n:
        w[order[top_k:]] = 0
    if top_p is not None and top_p < 1:
        total = 0.0
        for v in w:                         # index order
            total += v
        running = 0.0
        for j, i in enumerate(order):
            if w[i] <= 0:
                break                       # rounding: every positive weight stays
            running += w[i]
            if running >= top_p * total:
                w[order[j + 1:]] = 0
                break
    return _draw(w, u)


def generate_steps(h, last, uniforms, Whx, Whh, Wyh, bh, by, temperature=1.0, top_k=None,
                   top_p=None):
    """Generate text with the one-layer tanh RNN of ``RNNModel``: one step at a time.

    Each step, for each stream ``i``: when it has a last character ``c``,
    ``h_i = tanh(Whx[:, c] + Whh h_i + bh)`` and its character is
    ``pick_index(Wyh h_i + by, u[t, i], ...)``; with none yet (``last`` all -1)
    the character is drawn uniformly, ``pick_index(zeros, u[t, i])``, and ``h``
    is unchanged.  The character drawn is the next step's input.

    Parameters
    ----------
    h : ndarray of shape (B, H)
        The state of each stream (rows; computed in its dtype).
    last : array_like of int, shape (B,)
        Each stream's last character, or all -1 (none yet).
    uniforms : ndarray of shape (n, B)
        One uniform in ``[0, 1)`` per draw.
    Whx, Whh, Wyh, bh, by : ndarray
        ``(H, V)``, ``(H, H)``, ``(V, H)``, ``(H, 1)``, ``(V, 1)``, as in ``RNNModel``.
    temperature : float, default 1.0
        As in :func:`pick_index`.
    top_k : int or None, default None
        As in :func:`pick_index`.
    top_p : float or None, default None
        As in :func:`pick_index`.

    Returns
    -------
    chosen : ndarray of intp, shape (n, B)
        The characters drawn.
    h : ndarray of shape (B, H)
        The final state.
    last : ndarray of intp, shape (B,)
        The last characters drawn (``last`` again when ``n`` is 0).
    """
    h = np.array(h, copy=True)
    last = np.array(last, dtype=np.intp, copy=True)
    n_steps, n_batch = uniforms.shape
    n_vocab = Wyh.shape[0]
    chosen = np.empty((n_steps, n_batch), dtype=np.intp)
    for t in range(n_steps):
        for i in range(n_batch):
            if last[i] < 0:
                c = pick_index(np.zeros(n_vocab), uniforms[t, i])
            else:
                h[i] = np.tanh(Whx[:, last[i]] + Whh @ h[i] + bh[:, 0])
                logits = Wyh @ h[i] + by[:, 0]
                c = pick_index(logits, uniforms[t, i], temperature, top_k, top_p)
            chosen[t, i] = c
        last = chosen[t].copy()
    return chosen, h, last


def generate_stack_steps(cell, state, last, uniforms, layers, Wyh, by, nonlinearity="tanh",
                         temperature=1.0, top_k=None, top_p=None):
    """Generate text with a stack of recurrent layers and a read-out: one step at a time.

    The twin of the compiled loop for every :class:`~rnnfast.RNNModel` that
    is not the fused one-layer tanh RNN (:func:`generate_steps`): any cell,
    any number of layers, no dropout.  Each step, when the streams have a last
    character: layer 0 reads the one-hot rows of the last characters, layer
    ``l > 0`` the new state of layer ``l - 1``, each one step of its cell's
    layer twin (:func:`rnn_layer_forward`, :func:`lstm_layer_forward`,
    :func:`gru_layer_forward`); stream ``i``'s character is
    ``pick_index(h_top[i] Wyh^T + by, u[t, i], ...)``.  With none yet
    (``last`` all -1) the character is drawn uniformly, ``pick_index(zeros,
    u[t, i])``, and the state is unchanged.  The character drawn is the next
    step's input.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
        The cell of every layer.
    state : ndarray of shape (L, B, H), or a pair of them for "lstm"
        The states ``h`` (and cells ``c``) of each layer and stream, computed
        in their dtype.
    last : array_like of int, shape (B,)
        Each stream's last character, or all -1 (none yet).
    uniforms : ndarray of shape (n, B)
        One uniform in ``[0, 1)`` per draw.
    layers : sequence of dict
        The L layers' ``weight_ih`` ``(G H, n_in)`` (``n_in`` is V for layer 0,
        else H), ``weight_hh`` ``(G H, H)``, ``bias_ih``, ``bias_hh``
        ``(G H,)``, as in ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (G = 1, 4, 3).
    Wyh, by : ndarray
        ``(V, H)`` and ``(V, 1)``, as in ``RNNModel``.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation of the "rnn" cell.
    temperature : float, default 1.0
        As in :func:`pick_index`.
    top_k : int or None, default None
        As in :func:`pick_index`.
    top_p : float or None, default None
        As in :func:`pick_index`.

    Returns
    -------
    chosen : ndarray of intp, shape (n, B)
        The characters drawn.
    state : ndarray or pair of ndarray
        The final state, shaped as ``state``.
    last : ndarray of intp, shape (B,)
        The last characters drawn (``last`` again when ``n`` is 0).
    """
    if cell == "lstm":
        h, c = (np.array(a, copy=True) for a in state)
    else:
        h, c = np.array(state, copy=True), None
    last = np.array(last, dtype=np.intp, copy=True)
    n_steps, n_batch = uniforms.shape
    n_vocab = Wyh.shape[0]
    chosen = np.empty((n_steps, n_batch), dtype=np.intp)
    for t in range(n_steps):
        if last[0] < 0:
            chosen[t] = [pick_index(np.zeros(n_vocab), uniforms[t, i]) for i in range(n_batch)]
            last = chosen[t].copy()
            continue
        x = np.zeros((n_batch, n_vocab), dtype=h.dtype)
        x[np.arange(n_batch), last] = 1                  # one-hot rows
        for k, p in enumerate(layers):
            weights = (p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
            if cell == "lstm":
                _, h[k], c[k], _ = lstm_layer_forward(x[None], h[k], c[k], *weights)
            elif cell == "gru":
                _, h[k], _ = gru_layer_forward(x[None], h[k], *weights)
            else:
                _, h[k], _ = rnn_layer_forward(x[None], h[k], *weights, nonlinearity)
            x = h[k]
        logits = h[-1] @ Wyh.T + by[:, 0]
        for i in range(n_batch):
            chosen[t, i] = pick_index(logits[i], uniforms[t, i], temperature, top_k, top_p)
        last = chosen[t].copy()
    return chosen, ((h, c) if cell == "lstm" else h), last
