"""Learning-rate schedules for :mod:`rnnfast.optim`, as ``torch.optim.lr_scheduler``.

A scheduler writes ``group["lr"]`` (and, for :class:`OneCycleLR`, the momentum
or ``betas[0]``) of each of an optimizer's ``param_groups``; call its
``step()`` after the optimizer's.  Each class takes torch 2.13's constructor
arguments and computes the same learning rates in the same order of
floating-point operations (the chainable forms that start from each group's
current ``lr``), with the same ``last_epoch`` semantics: at construction the
scheduler takes its first step (``last_epoch`` -1 → 0) and records each
group's starting rate as ``group["initial_lr"]``; resuming with
``last_epoch >= 0`` needs those ``"initial_lr"`` (an optimizer's
``load_state_dict`` restores them).  ``state_dict()`` / ``load_state_dict()``
save and restore a scheduler.

``torch.optim.lr_scheduler``'s own classes refuse an rnnfast optimizer: they
check ``isinstance(optimizer, torch.optim.Optimizer)`` and wrap its ``step``;
these are their counterparts.

Examples
--------
>>> import numpy as np
>>> from rnnfast import optim
>>> from rnnfast.optim.lr_scheduler import StepLR
>>> opt = optim.SGD([np.zeros(3)], lr=0.1)
>>> sched = StepLR(opt, step_size=2, gamma=0.5)
>>> for _ in range(4):
...     opt.step([np.ones(3)])
...     sched.step()
>>> sched.get_last_lr(), opt.param_groups[0]["initial_lr"]
([0.025], 0.1)
"""

import math
import numbers
import types
import warnings
from bisect import bisect_right
from collections import Counter

from rnnfast import _validation as V
from rnnfast.optim import Optimizer

__all__ = ["LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR",
           "CosineAnnealingLR", "LinearLR", "OneCycleLR", "SequentialLR",
           "ReduceLROnPlateau"]

_EPOCH_DEPRECATION = ("The epoch parameter in `scheduler.step()` is deprecated (as in torch): "
                      "call step() without it")


def _check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an rnnfast.optim optimizer; got "
                        f"{type(optimizer).__name__}")


def _check_int(name, value, low):
    if isinstance(value, (bool,)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} "
                        f"{str(value)[:40]!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}; got {value}")
    return int(value)


def _per_group(name, optimizer, value):
    """``value`` for every group: one number for all, or a list/tuple of one per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} has {len(value)} values; the optimizer has "
                             f"{len(optimizer.param_groups)} parameter groups")
        return [V.check_number(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return [V.check_number(name, value)] * len(optimizer.param_groups)


def _load_state_dict_doc(method):
    """``method`` with the docstring of a subclass's ``load_state_dict``."""
    method.__doc__ = """Restore a state returned by :meth:`state_dict`.

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` returned.

        Raises
        ------
        TypeError
            If ``state_dict`` is not a dict.
        """
    return method


class LRScheduler:
    """Base class of the schedulers, as ``torch.optim.lr_scheduler.LRScheduler``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose groups' ``"lr"`` the scheduler sets.
    last_epoch : int, default -1
        The index of the last step taken; -1 starts the schedule (and sets
        each group's ``"initial_lr"`` if it has none), a larger value resumes
        it from the groups' ``"initial_lr"``.

    Attributes
    ----------
    optimizer : Optimizer
        The optimizer.
    base_lrs : list of float
        The groups' ``"initial_lr"``.
    last_epoch : int
        The number of ``step()`` calls since the start (0 after construction).

    Raises
    ------
    TypeError
        If ``optimizer`` is not an rnnfast optimizer or ``last_epoch`` not an int.
    KeyError
        If ``last_epoch >= 0`` and a group has no ``"initial_lr"``.
    """

    _is_initial = False

    def __init__(self, optimizer, last_epoch=-1):
        _check_optimizer(optimizer)
        last_epoch = _check_int("last_epoch", last_epoch, -1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param_groups[{i}] has no 'initial_lr': resuming a "
                                   "schedule (last_epoch >= 0) needs the optimizer's state "
                                   "restored first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        """Compute the learning rates of the current ``last_epoch`` (what ``step`` sets).

        Returns
        -------
        lrs : list of float
            One learning rate per parameter group.
        """
        return self._lrs()

    def _lrs(self):
        raise NotImplementedError

    def get_last_lr(self):
        """Return the learning rates the last ``step`` set.

        Returns
        -------
        lrs : list of float
            One learning rate per parameter group.
        """
        return list(self._last_lr)

    def step(self, epoch=None):
        """Advance the schedule one step and set every group's ``"lr"``.

        Parameters
        ----------
        epoch : int, optional
            Deprecated (as in torch): jump to this step, with the closed form of
            the schedule where there is one.
        """
        self._step_count += 1
        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            values = self._closed_form() if hasattr(self, "_closed_form") else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _lr_values(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def _attributes(self, *skip):
        """The attributes that :meth:`state_dict` saves as they are: all but the
        optimizer and ``skip``."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and k not in skip}

    def _restore_attributes(self, state_dict, *skip):
        """Take the values of ``state_dict`` (a dict, or ``TypeError``) but the
        optimizer's and ``skip``'s as attributes."""
        if not isinstance(state_dict, dict):
            raise TypeError("state_dict must be what a scheduler's state_dict() returned")
        self.__dict__.update({k: v for k, v in state_dict.items()
                              if k != "optimizer" and k not in skip})

    def state_dict(self):
        """Return the scheduler's state: every attribute but the optimizer.

        Returns
        -------
        state_dict : dict
            A new dict (its values are the scheduler's own).
        """
        return self._attributes()

    def load_state_dict(self, state_dict):
        """Restore a state returned by :meth:`state_dict`.

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` of a scheduler of the same kind returned.

        Raises
        ------
        TypeError
            If ``state_dict`` is not a dict.
        """
        self._restore_attributes(state_dict)


def _lambdas(optimizer, lr_lambda):
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != len(optimizer.param_groups):
            raise ValueError(f"lr_lambda has {len(lr_lambda)} functions; the optimizer has "
                             f"{len(optimizer.param_groups)} parameter groups")
        lambdas = list(lr_lambda)
    else:
        lambdas = [lr_lambda] * len(optimizer.param_groups)
    for f in lambdas:
        if not callable(f):
            raise TypeError(f"lr_lambda must be a function or a list of them; got "
                            f"{type(f).__name__}")
    return lambdas


class LambdaLR(LRScheduler):
    """Each group's rate is its initial rate times ``lr_lambda(last_epoch)``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer.
    lr_lambda : callable or list of callable
        A function of the step count, or one per parameter group.
    last_epoch : int, default -1
        See :class:`LRScheduler`.

    Raises
    ------
    TypeError
        If ``optimizer`` is not an rnnfast optimizer or ``lr_lambda`` not callable.
    ValueError
        If a list of functions does not have one per group.

    See Also
    --------
    LRScheduler : The methods every scheduler has.

    Notes
    -----
    ``state_dict`` saves the ``__dict__`` of callable objects, not functions
    (as torch does).
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def _lrs(self):
        return [base_lr * f(self.last_epoch)
                for f, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)]

    def state_dict(self):
        """Return the scheduler's state (callable objects' attributes, not functions).

        Returns
        -------
        state_dict : dict
            Every attribute but the optimizer; ``"lr_lambdas"`` holds, per
            group, the ``__dict__`` of a callable object or None for a function.
        """
        out = self._attributes("lr_lambdas")
        out["lr_lambdas"] = [None if isinstance(f, types.FunctionType) else f.__dict__.copy()
                             for f in self.lr_lambdas]
        return out

    @_load_state_dict_doc
    def load_state_dict(self, state_dict):
        self._restore_attributes(state_dict, "lr_lambdas")
        lambdas = state_dict.get("lr_lambdas", [])
        for f, saved in zip(self.lr_lambdas, lambdas, strict=False):
            if saved is not None:
                f.__dict__.update(saved)


class StepLR(LRScheduler):
    """Multiply the rates by ``gamma`` every ``step_size`` steps.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer.
    step_size : int
        Steps between decays, at least 1.
    gamma : float, default 0.1
        The factor.
    last_epoch : int, default -1
        See :class:`LRScheduler`.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``step_size`` is below 1 or ``gamma`` negative or not finite.

    See Also
    --------
    MultiStepLR : Decays at given steps.
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = _check_int("step_size", step_size, 1)
        self.gamma = V.check_number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def _lrs(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._lr_values()
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _closed_form(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the rates by ``gamma`` at each milestone step.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer.
    milestones : iterable of int
        The steps at which to decay (a repeated one decays as often).
    gamma : float, default 0.1
        The factor.
    last_epoch : int, default -1
        See :class:`LRScheduler`.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If a milestone is negative or ``gamma`` negative or not finite.

    See Also
    --------
    StepLR : Decays at regular intervals.
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(_check_int("milestones[i]", m, 0) for m in milestones)
        self.gamma = V.check_number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def _lrs(self):
        if self.last_epoch not in self.milestones:
            return self._lr_values()
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _closed_form(self):
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch)
                for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the rates by ``gamma`` every step.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer.
    gamma : float
        The factor.
    last_epoch : int, default -1
        See :class:`LRScheduler`.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``gamma`` is negative or not finite.

    See Also
    --------
    StepLR : Decays every ``step_size`` steps.
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = V.check_number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def _lrs(self):
        if self._is_initial:
            return self._lr_values()
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _closed_form(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Anneal the rates along a cosine from their initial values to ``eta_min`` in ``T_max`` steps.

    ``lr_t = eta_min + (lr_0 - eta_min) (1 + cos(pi t / T_max)) / 2``, computed
    as torch does, step to step from the current rate (and rising again after
    ``T_max`` steps).

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer.
    T_max : int
        Steps of a half period, at least 1.
    eta_min : float, default 0.0
        The smallest rate.
    last_epoch : int, default -1
        See :class:`LRScheduler`.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``T_max`` is below 1 or ``eta_min`` negative or not finite.

    See Also
    --------
    OneCycleLR : A warm-up, then a cosine decay.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803 (torch's)
        self.T_max = _check_int("T_max", T_max, 1)
        self.eta_min = V.check_number("eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def _lrs(self):
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if self._is_initial:
            return self._lr_values()
        if self._step_count == 1 and t > 0:
            return [eta_min + (base_lr - eta_min) * (1 + math.cos(t * math.pi / T)) / 2
                    for base_lr in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base_lr, group in zip(self.base_lrs, groups, strict=True)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (group["lr"] - eta_min) + eta_min for group in groups]

    def _closed_form(self):
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the rates linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` steps.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer.
    start_factor : float, default 1/3
        The factor of the first step, in ``(0, 1]``.
    end_factor : float, default 1.0
        The factor from step ``total_iters`` on, in ``[0, 1]``.
    total_iters : int, default 5
        Steps to go from one to the other, at least 1.
    last_epoch : int, default -1
        See :class:`LRScheduler`.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If a factor or ``total_iters`` is out of range.

    See Also
    --------
    SequentialLR : A warm-up such as this one followed by another schedule.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        start_factor = V.check_number("start_factor", start_factor)
        if not 0 < start_factor <= 1:
            raise ValueError(f"start_factor must be in (0, 1]; got {start_factor}")
        end_factor = V.check_number("end_factor", end_factor)
        if end_factor > 1:
            raise ValueError(f"end_factor must be in [0, 1]; got {end_factor}")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = _check_int("total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def _lrs(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._lr_values()
        span = self.end_factor - self.start_factor
        return [group["lr"] * (1.0 + span / (self.total_iters * self.start_factor
                                             + (self.last_epoch - 1) * span))
                for group in groups]

    def _closed_form(self):
        return [base_lr * (self.start_factor + (self.end_factor - self.start_factor)
                           * min(self.total_iters, self.last_epoch) / self.total_iters)
                for base_lr in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run schedulers one after the other, switching at the milestone steps.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer every scheduler belongs to.
    schedulers : list of LRScheduler
        The schedulers, in order (not :class:`ReduceLROnPlateau`).
    milestones : list of int
        The steps at which the next scheduler takes over; one fewer than
        ``schedulers``.
    last_epoch : int, default -1
        See :class:`LRScheduler`.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``schedulers`` is empty, holds a :class:`ReduceLROnPlateau` or one of
        another optimizer, or ``milestones`` is not one shorter.

    See Also
    --------
    LinearLR : A common first scheduler (a warm-up).
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        _check_optimizer(optimizer)
        schedulers = list(schedulers)
        if not schedulers:
            raise ValueError("schedulers must hold at least one scheduler")
        for i, s in enumerate(schedulers):
            if isinstance(s, ReduceLROnPlateau):
                raise ValueError(f"schedulers[{i}] is a ReduceLROnPlateau, which needs a "
                                 "metric at each step: SequentialLR cannot drive it")
            if not isinstance(s, LRScheduler):
                raise TypeError(f"schedulers[{i}] must be an rnnfast scheduler; got "
                                f"{type(s).__name__}")
            if s.optimizer is not optimizer:
                raise ValueError(f"schedulers[{i}] belongs to another optimizer")
        milestones = [_check_int(f"milestones[{i}]", m, 0) for i, m in enumerate(milestones)]
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"milestones must hold one fewer entries than schedulers; got "
                             f"{len(milestones)} for {len(schedulers)} schedulers")
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = _check_int("last_epoch", last_epoch, -1) + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for s in schedulers:                  # undo the steps their constructors took
            s.last_epoch -= 1
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self):
        """Advance the schedule one step (the scheduler of the current phase steps)."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self):
        """Return the state of this scheduler and of each it runs.

        Returns
        -------
        state_dict : dict
            Every attribute but the optimizer; ``"_schedulers"`` holds their
            state dicts.
        """
        out = self._attributes("_schedulers")
        out["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return out

    @_load_state_dict_doc
    def load_state_dict(self, state_dict):
        self._restore_attributes(state_dict, "_schedulers")
        for s, saved in zip(self._schedulers, state_dict.get("_schedulers", []), strict=False):
            s.load_state_dict(saved)


class OneCycleLR(LRScheduler):
    """The 1cycle policy: rates rise from ``max_lr / div_factor`` to ``max_lr``, then fall.

    With ``cycle_momentum`` the momentum (SGD's ``momentum``, or ``betas[0]``
    of the Adam family) moves the other way, between ``max_momentum`` and
    ``base_momentum``.  The groups get ``"initial_lr"``, ``"max_lr"``,
    ``"min_lr"`` (and ``"max_momentum"``, ``"base_momentum"``).

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer.
    max_lr : float or list of float
        The peak rate, or one per group.
    total_steps : int, optional
        Steps in the cycle; otherwise ``epochs * steps_per_epoch``.
    epochs : int, optional
        With ``steps_per_epoch``, when ``total_steps`` is not given.
    steps_per_epoch : int, optional
        With ``epochs``.
    pct_start : float, default 0.3
        Fraction of the cycle spent rising, in ``[0, 1]``.
    anneal_strategy : {"cos", "linear"}, default "cos"
        The shape of the rise and fall.
    cycle_momentum : bool, default True
        Cycle the momentum too; the optimizer must have ``momentum`` or ``betas``.
    base_momentum : float or list of float, default 0.85
        The momentum at the peak rate.
    max_momentum : float or list of float, default 0.95
        The momentum at the start and end.
    div_factor : float, default 25.0
        ``initial_lr = max_lr / div_factor``.
    final_div_factor : float, default 1e4
        ``min_lr = initial_lr / final_div_factor``.
    three_phase : bool, default False
        Fall back to ``initial_lr`` symmetrically, then to ``min_lr``.
    last_epoch : int, default -1
        See :class:`LRScheduler`.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If the number of steps is not given or not positive, an argument is
        out of range, ``cycle_momentum`` is asked of an optimizer without
        momentum, or the schedule is stepped past ``total_steps``.

    See Also
    --------
    CosineAnnealingLR : A cosine decay alone.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if total_steps is not None:
            self.total_steps = _check_int("total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_check_int("epochs", epochs, 1)
                                * _check_int("steps_per_epoch", steps_per_epoch, 1))
        else:
            raise ValueError("give total_steps, or epochs and steps_per_epoch")
        pct_start = V.check_number("pct_start", pct_start)
        if pct_start > 1:
            raise ValueError(f"pct_start must be in [0, 1]; got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear'; got "
                             f"{anneal_strategy!r}")
        self._anneal_func_type = anneal_strategy
        div_factor = V.check_number("div_factor", div_factor)
        final_div_factor = V.check_number("final_div_factor", final_div_factor)
        if not div_factor > 0 or not final_div_factor > 0:
            raise ValueError("div_factor and final_div_factor must be positive")
        if not isinstance(cycle_momentum, bool) or not isinstance(three_phase, bool):
            raise TypeError("cycle_momentum and three_phase must be bools")
        n = self.total_steps
        if three_phase:
            self._schedule_phases = [
                {"end_step": float(pct_start * n) - 1, "start_lr": "initial_lr",
                 "end_lr": "max_lr", "start_momentum": "max_momentum",
                 "end_momentum": "base_momentum"},
                {"end_step": float(2 * pct_start * n) - 2, "start_lr": "max_lr",
                 "end_lr": "initial_lr", "start_momentum": "base_momentum",
                 "end_momentum": "max_momentum"},
                {"end_step": n - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"},
            ]
        else:
            self._schedule_phases = [
                {"end_step": float(pct_start * n) - 1, "start_lr": "initial_lr",
                 "end_lr": "max_lr", "start_momentum": "max_momentum",
                 "end_momentum": "base_momentum"},
                {"end_step": n - 1, "start_lr": "max_lr", "end_lr": "min_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
            ]
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for m, group in zip(max_lrs, optimizer.param_groups, strict=True):
                group["initial_lr"] = m / div_factor
                group["max_lr"] = m
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"cycle_momentum needs an optimizer with momentum or betas; "
                                 f"{type(optimizer).__name__} has neither")
            self.use_beta1 = "betas" in optimizer.defaults
            max_momenta = _per_group("max_momentum", optimizer, max_momentum)
            base_momenta = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for m, b, group in zip(max_momenta, base_momenta, optimizer.param_groups,
                                       strict=True):
                    if self.use_beta1:
                        group["betas"] = (m, *group["betas"][1:])
                    else:
                        group["momentum"] = m
                    group["max_momentum"] = m
                    group["base_momentum"] = b
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start, end, pct):
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _lrs(self):
        lrs = []
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {step} times; total_steps is "
                             f"{self.total_steps}")
        phases = self._schedule_phases
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(phases):
                end_step = phase["end_step"]
                if step <= end_step or i == len(phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lr = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal(group[phase["start_momentum"]],
                                                group[phase["end_momentum"]], pct)
                    break
                start_step = phase["end_step"]
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """Multiply the rates by ``factor`` when a metric has stopped improving for ``patience`` steps.

    ``step(metric)`` takes the metric (a validation loss, say).

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer.
    mode : {"min", "max"}, default "min"
        Whether the metric should fall or rise.
    factor : float, default 0.1
        The factor, in ``[0, 1)``.
    patience : int, default 10
        Steps without improvement tolerated before a reduction.
    threshold : float, default 1e-4
        The smallest change that counts as an improvement.
    threshold_mode : {"rel", "abs"}, default "rel"
        Whether ``threshold`` is relative to the best value or absolute.
    cooldown : int, default 0
        Steps after a reduction during which bad steps are not counted.
    min_lr : float or list of float, default 0
        The smallest rate, or one per group.
    eps : float, default 1e-8
        A reduction smaller than this is not made.

    Attributes
    ----------
    best : float
        The best metric so far.
    num_bad_epochs : int
        Steps since the last improvement.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If an argument is out of range.

    See Also
    --------
    StepLR : Decays on a fixed plan instead.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        factor = V.check_number("factor", factor, below=1)
        _check_optimizer(optimizer)
        self.factor = factor
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
            self.min_lrs = _per_group("min_lr", optimizer, min_lr)
        else:
            self.default_min_lr = V.check_number("min_lr", min_lr)
            self.min_lrs = [self.default_min_lr] * len(optimizer.param_groups)
        self.patience = _check_int("patience", patience, 0)
        self.cooldown = _check_int("cooldown", cooldown, 0)
        self.eps = V.check_number("eps", eps)
        self.last_epoch = 0
        self._last_lr = self._lr_values()
        self._init_is_better(mode, V.check_number("threshold", threshold), threshold_mode)
        self._reset()

    def _reset(self):
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics, epoch=None):
        """Take the metric of this step; reduce the rates after ``patience`` bad steps.

        Parameters
        ----------
        metrics : float
            The metric (a number).
        epoch : int, optional
            Deprecated (as in torch): the step's index.
        """
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._lr_values()

    def _reduce_lr(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"the optimizer has {len(groups)} parameter groups; "
                                   f"min_lrs has {len(self.min_lrs)} (set min_lrs to match)")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for i, group in enumerate(groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def _is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode, threshold, threshold_mode):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'; got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs'; got {threshold_mode!r}")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    @_load_state_dict_doc
    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)
