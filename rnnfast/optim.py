"""Optimizers and gradient clipping with PyTorch's update rules.

An optimizer holds parameter arrays, given as a dict (``RNNModel.parameters``)
or as the ``(name, array)`` pairs of ``named_parameters()`` (``rnnfast.RNN``,
``LSTM``, ``GRU``), and updates them **in place** on each ``step(grads)``.
The gradient of parameter ``K`` is ``grads[K]`` (as modules' ``backward``
names them) or ``grads["d" + K]`` (as :func:`rnnfast.rnn_loss` does).  Every
gradient, parameter and state buffer is checked before any of them changes, so
a failed step leaves everything as it was.  The update rules, their order of
floating-point operations and the defaults follow ``torch.optim`` (torch 2.13,
single-tensor implementations); ``state_dict()``/``load_state_dict()`` save and
restore the state.

Hyperparameters are real numbers (Python or NumPy ints and floats; not
``bool``, not strings): a value of another type raises ``TypeError``, one out
of range (or not finite) raises ``ValueError``, and both name the argument.
"""

import math

import numpy as np

from rnnfast import _updates
from rnnfast import _validation as V
from rnnfast._gradients import NOT_PARAMETERS, parameter_keys  # noqa: F401 (public here)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "clip_grad_norm",
           "clip_grad_value"]


class Optimizer:
    """Base class of the optimizers: holds the parameters, checks the gradients, counts steps.

    Subclasses define the update rule of one parameter (``_update``); the
    base class checks every gradient, parameter and buffer before any of them
    changes, then updates each parameter in place.

    Parameters
    ----------
    params : dict[str, ndarray] or iterable of (str, ndarray)
        The parameters to update in place: ``RNNModel.parameters`` or a module's
        ``named_parameters()``.  Each must be a writeable, C-contiguous float32
        or float64 array in native byte order.
    lr : float
        Learning rate, non-negative and finite.

    Attributes
    ----------
    params : dict[str, ndarray]
        The parameters, by name (the caller's arrays, not copies).
    lr : float
        Learning rate; may be assigned between steps.
    steps : int
        The number of steps taken.
    state : dict[str, dict[str, ndarray]]
        The buffers of each parameter (such as ``exp_avg``), by parameter name.

    Raises
    ------
    TypeError
        If ``params`` is empty or not a dict or pairs, a parameter is not a
        float32/float64 ndarray, or a hyperparameter is not a real number
        (a flag not a bool).
    ValueError
        If a parameter is read-only or not C-contiguous, a name repeats, or a
        hyperparameter is negative, not finite or out of range.
    """

    def __init__(self, params, lr):
        params = _as_parameter_dict(params)
        for name, p in params.items():
            _check_parameter(name, p)
        self.params = params
        self.lr = V.check_number("lr", lr)
        self.steps = 0
        self.state = {name: {} for name in params}

    def _gradients(self, grads):
        """The gradient of every parameter, checked and cast, before anything changes."""
        if not isinstance(grads, dict):
            raise TypeError("grads must be a dict with a name (or 'd' + name) entry per "
                            "parameter")
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
            key = name if name in grads else "d" + name
            if key not in grads:
                raise KeyError(f"grads has no {name!r} or {'d' + name!r} (the gradient of "
                               f"parameter {name!r})")
            g = np.asarray(grads[key])
            if g.shape != p.shape:
                raise ValueError(f"grads[{key!r}] has shape {g.shape}; expected {p.shape}")
            if g.dtype.kind not in "fiu":
                raise TypeError(f"grads[{key!r}] has dtype {g.dtype}; expected real numbers")
            checked[name] = g.astype(p.dtype, copy=False)
        return checked

    def step(self, grads):
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : dict[str, array_like]
            The gradient of parameter ``K`` as ``grads[K]`` (a module's
            ``backward``) or ``grads["d" + K]`` (:func:`rnnfast.rnn_loss`,
            :meth:`RNNModel.loss_and_grads`), of the parameter's shape; real
            numbers, cast to the parameter's dtype.  Other entries are ignored.

        Raises
        ------
        TypeError
            If ``grads`` is not a dict, a gradient is not real, or a parameter
            was replaced by an array the optimizer cannot update.
        KeyError
            If a parameter has no gradient.
        ValueError
            If a gradient's shape differs from its parameter's, or a parameter
            was replaced by one of another shape or dtype than its buffers.
        """
        checked = self._gradients(grads)
        self.steps += 1
        for name, p in self.params.items():
            self._update(p, checked[name], self.state.setdefault(name, {}))

    def _update(self, p, g, state):
        raise NotImplementedError

    # -- saving and restoring ------------------------------------------------

    _HYPERPARAMETERS: tuple[str, ...] = ("lr",)

    @property
    def hyperparameters(self):
        """The settings of the update rule by name (``lr``, ``betas``...), as a new dict.

        What ``state_dict()["hyperparameters"]`` holds (torch keeps the same in
        ``param_groups``); each one can be changed by assigning the attribute
        of its name (``opt.lr = 1e-4``) or with :meth:`load_state_dict`.
        """
        return {k: getattr(self, k) for k in self._HYPERPARAMETERS}

    def state_dict(self):
        """Return a copy of the optimizer's state.

        Returns
        -------
        state_dict : dict
            ``{"steps": int, "hyperparameters": dict, "state": {name: {buffer:
            ndarray}}}``: the step count, :attr:`hyperparameters` and a copy of
            every buffer, by parameter name.

        See Also
        --------
        load_state_dict : Restores it.
        """
        return {"steps": self.steps,
                "hyperparameters": self.hyperparameters,
                "state": {name: {k: v.copy() for k, v in st.items()}
                          for name, st in self.state.items()}}

    def load_state_dict(self, state_dict):
        """Restore a state returned by :meth:`state_dict`.

        Everything is checked first (parameter names, buffer shapes and dtypes,
        hyperparameter names); nothing changes unless all of it fits.  The
        buffers are copied.

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` of an optimizer of the same kind, over
            parameters of the same names, shapes and dtypes, returned.

        Raises
        ------
        ValueError
            If ``state_dict`` is not such a dict, is of another kind of
            optimizer, or names parameters or buffer shapes and dtypes this
            optimizer does not have.
        """
        try:
            steps, hyper, state = (state_dict["steps"], state_dict["hyperparameters"],
                                   state_dict["state"])
        except (TypeError, KeyError):
            raise ValueError("state_dict must be what an optimizer's state_dict() returned "
                             "(keys steps, hyperparameters, state)") from None
        if set(hyper) != set(self._HYPERPARAMETERS):
            raise ValueError(f"state_dict is of another optimizer: hyperparameters "
                             f"{sorted(hyper)}, expected {sorted(self._HYPERPARAMETERS)}")
        unknown = set(state) - set(self.params)
        if unknown:
            raise ValueError(f"state_dict has state for parameters this optimizer does not "
                             f"hold: {sorted(unknown)}")
        restored = {}
        for name, buffers in state.items():
            p = self.params[name]
            restored[name] = {}
            for k, v in buffers.items():
                v = np.asarray(v)
                if v.shape != p.shape or v.dtype != p.dtype:
                    raise ValueError(f"state_dict's {k!r} of parameter {name!r} is {v.dtype} of "
                                     f"shape {v.shape}; the parameter is {p.dtype} of shape "
                                     f"{p.shape}")
                restored[name][k] = np.array(v, copy=True)
        self.steps = int(steps)
        for k, v in hyper.items():
            setattr(self, k, v)
        self.state = {name: restored.get(name, {}) for name in self.params}


def _as_parameter_dict(params):
    """``params`` (a dict, or (name, array) pairs) as a dict of the same arrays."""
    if isinstance(params, dict):
        out = params
    else:
        try:
            out = dict(params)
        except (TypeError, ValueError):
            out = None
        if out is not None and len(out) != len(list(params)):
            raise ValueError("params holds a parameter name twice")
    if not out:
        raise TypeError("params must be a non-empty dict of parameter arrays (e.g. "
                        "RNNModel.parameters), or the (name, array) pairs of a module's "
                        "named_parameters()")
    return out


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
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    Each step, for each parameter ``p`` and its gradient ``g``::

        g = g + weight_decay p
        buf = g at the first step, then momentum buf + (1 - dampening) g
        g = g + momentum buf (nesterov) or buf
        p -= lr g

    Parameters
    ----------
    params : dict[str, ndarray] or iterable of (str, ndarray)
        The parameters to update in place: ``RNNModel.parameters`` or a module's
        ``named_parameters()``.  Each must be a writeable, C-contiguous float32
        or float64 array in native byte order.
    lr : float, default 1e-3
        Learning rate.
    momentum : float, default 0.0
        Momentum factor (0: none, no buffer kept).
    dampening : float, default 0.0
        Dampening of the momentum.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient.
    nesterov : bool, default False
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.

    Raises
    ------
    TypeError
        If ``params`` is empty or not a dict or pairs, a parameter is not a
        float32/float64 ndarray, or a hyperparameter is not a real number
        (a flag not a bool).
    ValueError
        If a parameter is read-only or not C-contiguous, a name repeats, or a
        hyperparameter is negative, not finite or out of range.

    See Also
    --------
    Optimizer : The methods and attributes every optimizer has.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnfast import optim
    >>> params = {"w": np.array([1.0, -2.0])}
    >>> opt = optim.SGD(params, lr=0.1, momentum=0.9)
    >>> opt.step({"w": np.array([0.5, 0.5])})
    >>> params["w"]
    array([ 0.95, -2.05])
    >>> opt.step({"dw": np.array([0.5, 0.5])})    # "d" + name works too
    >>> params["w"], opt.steps
    (array([ 0.855, -2.145]), 2)
    """

    _HYPERPARAMETERS = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, lr)
        self.momentum = V.check_number("momentum", momentum)
        self.dampening = V.check_number("dampening", dampening)
        self.weight_decay = V.check_number("weight_decay", weight_decay)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool; got {type(nesterov).__name__}")
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient).

    Each step ``t``, for each parameter ``p`` and its gradient ``g``::

        g = g + weight_decay p
        m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g^2
        v_max = max(v_max, v) with amsgrad (used instead of v below)
        p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Without amsgrad the step is one compiled pass per parameter.  The buffers
    are ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with amsgrad,
    ``max_exp_avg_sq``.

    Parameters
    ----------
    params : dict[str, ndarray] or iterable of (str, ndarray)
        The parameters to update in place: ``RNNModel.parameters`` or a module's
        ``named_parameters()``.  Each must be a writeable, C-contiguous float32
        or float64 array in native byte order.
    lr : float, default 1e-3
        Learning rate.
    betas : tuple of (float, float), default (0.9, 0.999)
        Decay rates of the averages of the gradient and of its square, each in
        ``[0, 1)``.
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient.
    amsgrad : bool, default False
        Use the largest ``v`` seen so far (AMSGrad).

    Raises
    ------
    TypeError
        If ``params`` is empty or not a dict or pairs, a parameter is not a
        float32/float64 ndarray, or a hyperparameter is not a real number
        (a flag not a bool).
    ValueError
        If a parameter is read-only or not C-contiguous, a name repeats, or a
        hyperparameter is negative, not finite or out of range.

    See Also
    --------
    AdamW : Adam with decoupled weight decay.
    Optimizer : The methods and attributes every optimizer has.

    Examples
    --------
    The first Adam step moves every parameter by about ``lr`` against the sign
    of its gradient:

    >>> import numpy as np
    >>> from rnnfast import optim
    >>> params = {"w": np.array([1.0, -2.0])}
    >>> opt = optim.Adam(params, lr=0.01)
    >>> opt.step({"w": np.array([3.0, -0.5])})
    >>> params["w"].round(6)
    array([ 0.99, -1.99])
    >>> sorted(opt.state["w"])
    ['exp_avg', 'exp_avg_sq']
    """

    _HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of numbers (beta1, beta2); got "
                            f"{str(betas)[:40]}")
        self.betas = (V.check_number("betas[0]", betas[0], below=1),
                      V.check_number("betas[1]", betas[1], below=1))
        self.eps = V.check_number("eps", eps)
        self.weight_decay = V.check_number("weight_decay", weight_decay)
        if not isinstance(amsgrad, (bool, np.bool_)):
            raise TypeError(f"amsgrad must be a bool; got {type(amsgrad).__name__}")
        self.amsgrad = bool(amsgrad)

    def _update(self, p, g, state):
        if not state:
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        beta1, beta2 = self.betas
        weight_decay = self.weight_decay
        if self._decoupled:
            p *= 1 - self.lr * weight_decay             # AdamW: decay the weights
            weight_decay = 0.0
        if not self.amsgrad:
            _updates.adam(p.reshape(-1), np.ascontiguousarray(g).reshape(-1),
                          state["exp_avg"].reshape(-1), state["exp_avg_sq"].reshape(-1),
                          self.lr, beta1, beta2, self.eps, weight_decay, self.steps)
            return
        if weight_decay:
            g = g + weight_decay * p
        m, v, v_max = state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"]
        _lerp(m, g, 1 - beta1)
        v *= beta2
        v += (1 - beta2) * g * g
        np.maximum(v_max, v, out=v_max)
        step_size = self.lr / (1 - beta1 ** self.steps)
        denom = np.sqrt(v_max) / math.sqrt(1 - beta2 ** self.steps) + self.eps
        p += -step_size * (m / denom)


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: Adam with decoupled weight decay.

    The decay is applied to the parameter first, ``p *= 1 - lr * weight_decay``,
    and not added to the gradient; the rest of the step is :class:`Adam`'s.

    Parameters
    ----------
    params : dict[str, ndarray] or iterable of (str, ndarray)
        The parameters to update in place: ``RNNModel.parameters`` or a module's
        ``named_parameters()``.  Each must be a writeable, C-contiguous float32
        or float64 array in native byte order.
    lr : float, default 1e-3
        Learning rate.
    betas : tuple of (float, float), default (0.9, 0.999)
        Decay rates of the averages of the gradient and of its square, each in
        ``[0, 1)``.
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 1e-2
        Decoupled weight decay.
    amsgrad : bool, default False
        Use the largest ``v`` seen so far (AMSGrad).

    Raises
    ------
    TypeError
        If ``params`` is empty or not a dict or pairs, a parameter is not a
        float32/float64 ndarray, or a hyperparameter is not a real number
        (a flag not a bool).
    ValueError
        If a parameter is read-only or not C-contiguous, a name repeats, or a
        hyperparameter is negative, not finite or out of range.

    See Also
    --------
    Adam : The same update with L2 weight decay.
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


def _lerp(start, end, weight):
    """``start`` moved in place towards ``end`` by ``weight``, as ``torch.lerp`` computes it."""
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``.

    Each step, for each parameter ``p`` and its gradient ``g``::

        g = g + weight_decay p
        s = alpha s + (1 - alpha) g^2
        avg = sqrt(s - a^2) with centered (a = lerp(a, g, 1 - alpha)), else sqrt(s); avg += eps
        buf = momentum buf + g / avg; p -= lr buf     (with momentum)
        p -= lr g / avg                              (without)

    Parameters
    ----------
    params : dict[str, ndarray] or iterable of (str, ndarray)
        The parameters to update in place: ``RNNModel.parameters`` or a module's
        ``named_parameters()``.  Each must be a writeable, C-contiguous float32
        or float64 array in native byte order.
    lr : float, default 1e-2
        Learning rate.
    alpha : float, default 0.99
        Decay rate of the average of the squared gradient.
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient.
    momentum : float, default 0.0
        Momentum factor (0: none).
    centered : bool, default False
        Divide by an estimate of the gradient's variance rather than of its
        second moment.

    Raises
    ------
    TypeError
        If ``params`` is empty or not a dict or pairs, a parameter is not a
        float32/float64 ndarray, or a hyperparameter is not a real number
        (a flag not a bool).
    ValueError
        If a parameter is read-only or not C-contiguous, a name repeats, or a
        hyperparameter is negative, not finite or out of range.

    See Also
    --------
    Optimizer : The methods and attributes every optimizer has.
    """

    _HYPERPARAMETERS = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, lr)
        self.alpha = V.check_number("alpha", alpha)
        self.eps = V.check_number("eps", eps)
        self.weight_decay = V.check_number("weight_decay", weight_decay)
        self.momentum = V.check_number("momentum", momentum)
        if not isinstance(centered, (bool, np.bool_)):
            raise TypeError(f"centered must be a bool; got {type(centered).__name__}")
        self.centered = bool(centered)

    def _update(self, p, g, state):
        if not state:
            state["square_avg"] = np.zeros_like(p)
            if self.momentum > 0:
                state["momentum_buffer"] = np.zeros_like(p)
            if self.centered:
                state["grad_avg"] = np.zeros_like(p)
        if self.weight_decay:
            g = g + self.weight_decay * p
        s = state["square_avg"]
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        if self.centered:
            a = state["grad_avg"]
            _lerp(a, g, 1 - self.alpha)
            avg = np.sqrt(s + -1 * a * a)
        else:
            avg = np.sqrt(s)
        avg += self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / avg
            p -= self.lr * buf
        else:
            p += -self.lr * (g / avg)


class Adagrad(Optimizer):
    """Adagrad, as ``torch.optim.Adagrad``.

    Each step ``t``, for each parameter ``p`` and its gradient ``g``::

        g = g + weight_decay p;   clr = lr / (1 + (t - 1) lr_decay)
        s = s + g^2  (s starts at initial_accumulator_value)
        p -= clr g / (sqrt(s) + eps)

    Parameters
    ----------
    params : dict[str, ndarray] or iterable of (str, ndarray)
        The parameters to update in place: ``RNNModel.parameters`` or a module's
        ``named_parameters()``.  Each must be a writeable, C-contiguous float32
        or float64 array in native byte order.
    lr : float, default 1e-2
        Learning rate.
    lr_decay : float, default 0.0
        Decay of the learning rate with the step count.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient.
    initial_accumulator_value : float, default 0.0
        Starting value of the sum of squared gradients.
    eps : float, default 1e-10
        Added to the denominator.

    Raises
    ------
    TypeError
        If ``params`` is empty or not a dict or pairs, a parameter is not a
        float32/float64 ndarray, or a hyperparameter is not a real number
        (a flag not a bool).
    ValueError
        If a parameter is read-only or not C-contiguous, a name repeats, or a
        hyperparameter is negative, not finite or out of range.

    See Also
    --------
    Optimizer : The methods and attributes every optimizer has.
    """

    _HYPERPARAMETERS = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, lr)
        self.lr_decay = V.check_number("lr_decay", lr_decay)
        self.weight_decay = V.check_number("weight_decay", weight_decay)
        self.initial_accumulator_value = V.check_number("initial_accumulator_value",
                                                        initial_accumulator_value)
        self.eps = V.check_number("eps", eps)

    def _update(self, p, g, state):
        if not state:
            state["sum"] = np.full_like(p, self.initial_accumulator_value)
        if self.weight_decay:
            g = g + self.weight_decay * p
        clr = self.lr / (1 + (self.steps - 1) * self.lr_decay)
        s = state["sum"]
        s += g * g
        p += -clr * (g / (np.sqrt(s) + self.eps))


def _parameter_gradients(grads):
    if not isinstance(grads, dict):
        raise TypeError("grads must be a dict of gradient arrays")
    arrays = [grads[k] for k in parameter_keys(grads)]
    if not arrays:
        raise ValueError("grads holds none of the parameter gradients (only "
                         f"{', '.join(sorted(grads)) or 'nothing'}: inputs' and initial "
                         "states' gradients are not clipped)")
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or not a.flags.writeable:
            raise TypeError("gradients must be writeable floating-point ndarrays "
                            "(they are scaled in place)")
    return arrays


def clip_grad_norm(grads, max_norm, norm_type=2.0):
    """Scale the parameter gradients in place so that their joint norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: the norm of the per-array
    ``norm_type``-norms (``inf``: the largest magnitude), and the scale
    ``min(1, max_norm / (total_norm + 1e-6))``.  Every entry counts and
    changes except the inputs' and initial states' gradients (``input``,
    ``hx``, ``cx``, ``dx``, ``dh0``, ``dc0``, ``dxt``, ``dh_prev``).

    Parameters
    ----------
    grads : dict[str, ndarray]
        The gradients, as a module's ``backward``, :func:`rnnfast.rnn_loss` or
        :meth:`RNNModel.loss_and_grads` return them; the parameter gradients
        must be writeable floating-point ndarrays.
    max_norm : float
        The largest total norm allowed, non-negative and finite.
    norm_type : float, default 2.0
        The order of the norm, non-negative; ``math.inf`` for the max norm.

    Returns
    -------
    total_norm : float
        The total norm of the parameter gradients before clipping.

    Raises
    ------
    TypeError
        If ``grads`` is not a dict, a parameter gradient is not a writeable
        floating-point ndarray, or ``max_norm``/``norm_type`` is not a real number.
    ValueError
        If ``grads`` holds no parameter gradient, or ``max_norm`` or
        ``norm_type`` is negative or NaN (``max_norm`` also: infinite).

    See Also
    --------
    clip_grad_value : Clamps each entry instead.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnfast.optim import clip_grad_norm
    >>> grads = {"dW": np.array([3.0, 4.0]), "dx": np.ones(2)}
    >>> clip_grad_norm(grads, 1.0)
    5.0
    >>> grads["dW"].round(6), grads["dx"]
    (array([0.6, 0.8]), array([1., 1.]))
    """
    max_norm = V.check_number("max_norm", max_norm)
    norm_type = V.check_number("norm_type", norm_type, finite=False)
    arrays = _parameter_gradients(grads)
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
    elif norm_type == 2:
        total = math.sqrt(sum(float(np.vdot(a, a)) for a in arrays))
    else:
        norms = [float(np.sum(np.abs(a.astype(np.float64)) ** norm_type)) ** (1 / norm_type)
                 for a in arrays]
        total = float(np.sum(np.array(norms) ** norm_type)) ** (1 / norm_type)
    coef = max_norm / (total + 1e-6)
    scale = 1.0 if coef >= 1.0 else coef      # a NaN norm gives NaN gradients, as in torch
    for a in arrays:
        a *= scale
    return total


def clip_grad_value(grads, clip_value):
    """Clamp the parameter gradients in place to ``[-clip_value, clip_value]``.

    The inputs' and initial states' gradients are left alone, as in
    :func:`clip_grad_norm`.

    Parameters
    ----------
    grads : dict[str, ndarray]
        The gradients; the parameter gradients must be writeable floating-point
        ndarrays.
    clip_value : float
        The largest magnitude allowed, non-negative and finite.

    Raises
    ------
    TypeError
        If ``grads`` is not a dict, a parameter gradient is not a writeable
        floating-point ndarray, or ``clip_value`` is not a real number.
    ValueError
        If ``grads`` holds no parameter gradient, or ``clip_value`` is negative
        or not finite.

    See Also
    --------
    clip_grad_norm : Scales all the gradients together instead.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnfast.optim import clip_grad_value
    >>> grads = {"dW": np.array([3.0, -4.0, 0.2])}
    >>> clip_grad_value(grads, 1.0)
    >>> grads["dW"]
    array([ 1. , -1. ,  0.2])
    """
    clip_value = V.check_number("clip_value", clip_value)
    for a in _parameter_gradients(grads):
        np.clip(a, -clip_value, clip_value, out=a)
