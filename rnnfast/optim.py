"""Optimizers and gradient clipping with PyTorch's update rules.

An optimizer holds a dict of parameter arrays (for example
``RNNModel.parameters``) and updates them **in place** on each
``step(grads)``, where the gradient of parameter ``K`` is ``grads["d" + K]``
(the naming of :func:`rnnfast.rnn_loss`).  Every gradient, parameter and
state buffer is checked before any of them changes, so a failed step leaves
everything as it was.  Defaults follow ``torch.optim`` (torch 2.13).

Hyperparameters are real numbers (Python or NumPy ints and floats; not
``bool``, not strings): a value of another type raises ``TypeError``, one out
of range (or not finite) raises ``ValueError``, and both name the argument.
"""

import math

import numpy as np

from rnnfast import _updates
from rnnfast import _validation as V

__all__ = ["Optimizer", "SGD", "Adam", "Adagrad", "clip_grad_norm", "clip_grad_value"]


class Optimizer:
    """Base class: holds ``params`` and validates gradients; subclasses define ``_update``."""

    def __init__(self, params, lr):
        if not isinstance(params, dict) or not params:
            raise TypeError("params must be a non-empty dict of parameter arrays, "
                            "e.g. RNNModel.parameters")
        for name, p in params.items():
            _check_parameter(name, p)
        self.params = params
        self.lr = V.check_number("lr", lr)
        self.steps = 0
        self.state = {name: {} for name in params}

    def _gradients(self, grads):
        """The gradient of every parameter, checked and cast, before anything changes."""
        if not isinstance(grads, dict):
            raise TypeError("grads must be a dict with a 'd' + name entry per parameter")
        checked = {}
        for name, p in self.params.items():
            _check_parameter(name, p)           # it may have been replaced since
            for buffer_name, buffer in self.state.get(name, {}).items():
                if buffer.shape != p.shape or buffer.dtype != p.dtype:
                    raise ValueError(
                        f"parameter {name!r} is now a {p.dtype} array of shape {p.shape}, "
                        f"but the optimizer's {buffer_name!r} for it is {buffer.dtype} of "
                        f"shape {buffer.shape}: a parameter replaced by an array of another "
                        "shape or dtype needs a new optimizer")
            key = "d" + name
            if key not in grads:
                raise KeyError(f"grads has no {key!r} (the gradient of parameter {name!r})")
            g = np.asarray(grads[key])
            if g.shape != p.shape:
                raise ValueError(f"grads[{key!r}] has shape {g.shape}; expected {p.shape}")
            if g.dtype.kind not in "fiu":
                raise TypeError(f"grads[{key!r}] has dtype {g.dtype}; expected real numbers")
            checked[name] = g.astype(p.dtype, copy=False)
        return checked

    def step(self, grads):
        """Update every parameter in place from ``grads``."""
        checked = self._gradients(grads)
        self.steps += 1
        for name, p in self.params.items():
            self._update(p, checked[name], self.state.setdefault(name, {}))

    def _update(self, p, g, state):
        raise NotImplementedError


def _check_parameter(name, p):
    """A parameter the optimizers can update in place, or a clear error."""
    if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64) \
            or not p.dtype.isnative:
        raise TypeError(f"parameter {name!r} must be a float32 or float64 ndarray "
                        "in native byte order")
    if not p.flags.writeable:
        raise ValueError(f"parameter {name!r} is read-only; optimizers update in place")
    if not p.flags.c_contiguous:
        raise ValueError(f"parameter {name!r} is not C-contiguous; optimizers update "
                         "parameters in place as flat arrays")


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (``torch.optim.SGD``).

    ``buf = momentum * buf + g`` (``buf = g`` on the first step), ``p -= lr * buf``;
    without momentum, ``p -= lr * g``.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0):
        super().__init__(params, lr)
        self.momentum = V.check_number("momentum", momentum)

    def _update(self, p, g, state):
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += g
            g = buf
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``, L2 ``weight_decay`` added to the gradient)::

        m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g^2
        p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of numbers (beta1, beta2); got "
                            f"{str(betas)[:40]}")
        self.betas = (V.check_number("betas[0]", betas[0], below=1),
                      V.check_number("betas[1]", betas[1], below=1))
        self.eps = V.check_number("eps", eps)
        self.weight_decay = V.check_number("weight_decay", weight_decay)

    def _update(self, p, g, state):
        if not state:
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        beta1, beta2 = self.betas
        _updates.adam(p.reshape(-1), np.ascontiguousarray(g).reshape(-1),
                      state["exp_avg"].reshape(-1), state["exp_avg_sq"].reshape(-1),
                      self.lr, beta1, beta2, self.eps, self.weight_decay, self.steps)


class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``): ``s += g^2``, ``p -= lr * g / (sqrt(s) + eps)``."""

    def __init__(self, params, lr=1e-2, eps=1e-10):
        super().__init__(params, lr)
        self.eps = V.check_number("eps", eps)

    def _update(self, p, g, state):
        if not state:
            state["sum"] = np.zeros_like(p)
        s = state["sum"]
        s += g * g
        p -= self.lr * (g / (np.sqrt(s) + self.eps))


PARAMETER_GRADIENTS = ("dWhx", "dWhh", "dWyh", "dbh", "dby")


def _parameter_gradients(grads):
    if not isinstance(grads, dict):
        raise TypeError("grads must be a dict of gradient arrays")
    arrays = [grads[k] for k in PARAMETER_GRADIENTS if k in grads]
    if not arrays:
        raise ValueError(f"grads holds none of {', '.join(PARAMETER_GRADIENTS)}")
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or not a.flags.writeable:
            raise TypeError("gradients must be writeable floating-point ndarrays "
                            "(they are scaled in place)")
    return arrays


def clip_grad_norm(grads, max_norm):
    """Scale the parameter gradients in place so their joint 2-norm is at most ``max_norm``.

    Like ``torch.nn.utils.clip_grad_norm_``: the scale is
    ``min(1, max_norm / (total_norm + 1e-6))``.  Only the parameter gradients
    (``dWhx, dWhh, dWyh, dbh, dby``) count and change; ``dx``/``dh0`` do not.
    Returns the total norm before clipping.
    """
    max_norm = V.check_number("max_norm", max_norm)
    arrays = _parameter_gradients(grads)
    total = math.sqrt(sum(float(np.vdot(a, a)) for a in arrays))
    coef = max_norm / (total + 1e-6)
    scale = 1.0 if coef >= 1.0 else coef      # a NaN norm gives NaN gradients, as in torch
    for a in arrays:
        a *= scale
    return total


def clip_grad_value(grads, clip_value):
    """Clamp the parameter gradients in place to ``[-clip_value, clip_value]``."""
    clip_value = V.check_number("clip_value", clip_value)
    for a in _parameter_gradients(grads):
        np.clip(a, -clip_value, clip_value, out=a)
