"""Plain NumPy vanilla RNN: the test oracle and the benchmark baseline.

Every function here loops over time steps in Python, one NumPy call per product,
exactly like a textbook implementation.  The compiled functions in
:mod:`rnnfast` must return the same values, shapes and structures.

Conventions (column layout, one column per batch element)::

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

import numpy as np

__all__ = [
    "softmax",
    "rnn_cell_forward",
    "rnn_forward",
    "rnn_cell_backward",
    "rnn_backward",
]


def softmax(z):
    """Column-wise softmax: ``exp(z - max) / sum(exp(z - max))`` over axis 0.

    Subtracting each column's maximum keeps ``exp`` from overflowing.
    """
    e = np.exp(z - np.max(z, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


def rnn_cell_forward(xt, h_prev, parameters):
    """One time step.

    Parameters
    ----------
    xt : ndarray, shape (n_x, m)
    h_prev : ndarray, shape (n_h, m)
    parameters : dict with ``Whx, Whh, Wyh, bh, by``

    Returns
    -------
    h_next : ndarray, shape (n_h, m)
    y_pred : ndarray, shape (n_y, m)
    cache : tuple ``(h_next, h_prev, xt, parameters)``
    """
    Whx, Whh = parameters["Whx"], parameters["Whh"]
    Wyh, bh, by = parameters["Wyh"], parameters["bh"], parameters["by"]
    h_next = np.tanh(Whx @ xt + Whh @ h_prev + bh)
    y_pred = softmax(Wyh @ h_next + by)
    return h_next, y_pred, (h_next, h_prev, xt, parameters)


def rnn_forward(x, h0, parameters):
    """Run the cell over every time step of ``x``.

    Parameters
    ----------
    x : ndarray, shape (n_x, m, T_x)
    h0 : ndarray, shape (n_h, m)
    parameters : dict with ``Whx, Whh, Wyh, bh, by``

    Returns
    -------
    h : ndarray, shape (n_h, m, T_x)
        Hidden state after every step.
    y_pred : ndarray, shape (n_y, m, T_x)
        Softmax output of every step.
    caches : tuple ``(steps, x)``
        ``steps`` is a list of the per-step cell caches.
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
    """Gradients of one step given the gradient flowing into ``h_next``.

    With ``dz = dh_next * (1 - h_next**2)`` (the derivative of tanh)::

        dxt     = Whx^T dz          dWhx = dz xt^T
        dh_prev = Whh^T dz          dWhh = dz h_prev^T
        dbh     = sum of dz over the batch (shape (n_h, 1))

    Returns
    -------
    dict with ``dxt, dh_prev, dWhx, dWhh, dbh``
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
    """Backpropagation through time.

    Parameters
    ----------
    dh : ndarray, shape (n_h, m, T_x)
        Upstream gradient of the loss with respect to every hidden state
        (not counting the path through later time steps, which this adds).
    caches : tuple ``(steps, x)`` from :func:`rnn_forward`

    Returns
    -------
    dict with ``dx (n_x, m, T_x)``, ``dh0 (n_h, m)``, ``dWhx``, ``dWhh``,
    ``dbh (n_h, 1)``
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
