"""Optimizers, parameter groups and gradient clipping with PyTorch's update rules.

An optimizer holds parameter arrays and updates them **in place** on each
``step(grads)``.  The parameters come as a dict (``RNNModel.parameters``), as
the ``(name, array)`` pairs of ``named_parameters()`` (``rnnfast.RNN``,
``LSTM``, ``GRU``), as a list of arrays, or as a list of *parameter groups* as
in ``torch.optim``: dicts with a ``"params"`` entry (any of the former) and
hyperparameters of their own (``{"params": ..., "lr": 0.1}``); the others take
the constructor's values.  ``opt.param_groups`` holds the groups, each a dict
of ``"params"`` (a list of the arrays) and every hyperparameter; assigning
``group["lr"]`` changes the next step, and :mod:`rnnfast.optim.lr_scheduler`
does so on a schedule.

Every parameter has a name: its key in a dict or pair, and ``"<group>.<i>"``
(``"0.0"``, ``"0.1"``, ``"1.0"``...: the group's index and the array's position
in it) for an array given bare.  The gradients come as a dict by those names,
``grads[K]`` (as modules' ``backward`` names them) or ``grads["d" + K]`` (as
:func:`rnnfast.rnn_loss` does), or as a list aligned with the parameters in
group order (``None``: that parameter is skipped this step, as torch skips a
parameter whose ``.grad`` is ``None``).  A group given a dict follows it: an
array added to or replaced in the dict is seen at the next step.

Every gradient, parameter, state buffer and hyperparameter is checked before
any of them changes, so a failed step leaves everything as it was.  The update
rules, their order of floating-point operations and the defaults follow
``torch.optim`` (torch 2.13, single-tensor implementations).
``state_dict()``/``load_state_dict()`` use torch's layout, so that a state
moves between rnnfast and a torch optimizer over the same parameters (arrays
for tensors); ``load_state_dict`` also reads the layout of earlier versions
(``{"steps", "hyperparameters", "state"}``, as checkpoints hold it).

Hyperparameters are real numbers (Python or NumPy ints and floats; not
``bool``, not strings): a value of another type raises ``TypeError``, one out
of range (or not finite) raises ``ValueError``, and both name the argument.
``foreach`` is accepted and ignored (the single-tensor rules always run);
``fused``, ``capturable`` and ``differentiable`` are accepted as ``None`` or
``False`` only.
"""

import functools
import itertools
import math
import operator
import re

import numpy as np

from rnnfast import _updates
from rnnfast import _validation as V
from rnnfast._gradients import NOT_PARAMETERS, parameter_keys  # noqa: F401 (public here)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam",
           "Adamax", "clip_grad_norm", "clip_grad_value", "lr_scheduler"]

_MISSING = object()
_PARAMS_EXPECTED = ("params must be a non-empty dict of parameter arrays (e.g. RNNModel."
                    "parameters), the (name, array) pairs of a module's named_parameters(), "
                    "a list of arrays, or a list of parameter groups (dicts with a 'params' "
                    "entry)")


# -- the checks of hyperparameter values ----------------------------------------

# Each step checks every group's values (a schedule, or the caller, may have set
# them): the usual types take a fast path; anything else the full check.

def _number(label, value):
    if type(value) is float and 0.0 <= value < math.inf:
        return value
    return V.check_number(label, value)


def _fraction(label, value):
    if type(value) is float and 0.0 <= value < 1.0:
        return value
    return V.check_number(label, value, below=1)


def _flag(label, value):
    if value is True or value is False:
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{label} must be a bool; got {type(value).__name__}")
    return bool(value)


def _betas(label, value):
    if type(value) is tuple and len(value) == 2 and type(value[0]) is float \
            and type(value[1]) is float and 0.0 <= value[0] < 1.0 and 0.0 <= value[1] < 1.0:
        return value
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{label} must be a pair of numbers (beta1, beta2); got "
                        f"{str(value)[:40]}")
    return (_fraction(f"{label}[0]", value[0]), _fraction(f"{label}[1]", value[1]))


def _foreach(label, value):
    """``None`` or a bool; accepted and ignored (the single-tensor rules always run)."""
    return None if value is None else _flag(label, value)


def _not_supported(reason):
    def check(label, value):
        if value is None or value is False:
            return value
        if _flag(label, value):
            raise ValueError(f"{label}=True is not supported: {reason}")
        return False
    return check


_fused = _not_supported("rnnfast has no fused kernels; leave it None or False")
_capturable = _not_supported("there are no CUDA graphs to capture; leave it False")
_differentiable = _not_supported("NumPy arrays have no autograd; leave it False")


class Optimizer:
    """Base class of the optimizers: parameter groups, checks, steps and saved state.

    Subclasses define the update rule of one parameter (``_update``) and their
    hyperparameters; the base class checks every gradient, parameter, buffer
    and hyperparameter before any of them changes, then updates each parameter
    in place.

    Parameters
    ----------
    params : dict, iterable of (str, ndarray), iterable of ndarray or iterable of dict
        The parameters to update in place: ``RNNModel.parameters``, a module's
        ``named_parameters()``, a list of arrays, or a list of parameter groups
        (dicts with ``"params"``, one of the former, and hyperparameters of their
        own).  Each parameter must be a writeable, C-contiguous float32 or
        float64 array in native byte order.  A parameter's name is its key
        in a dict or pair; an array given bare is ``"<group>.<position>"``
        (``"0.0"``, ``"0.1"``, ``"1.0"``...).
    **defaults
        The hyperparameters of every group that does not set its own.

    Attributes
    ----------
    param_groups : list of dict
        The groups: ``"params"`` (a list of the arrays) and every
        hyperparameter, which may be assigned between steps (checked at the
        next step).  Schedulers add ``"initial_lr"`` and the like.
    defaults : dict
        The constructor's hyperparameters.
    state : dict[str, dict[str, ndarray]]
        The buffers of each parameter (such as ``exp_avg``), by parameter name.
    steps : int
        The number of steps taken.
    lr : float
        The learning rate of every group.  Reading it raises ``ValueError``
        when the groups' differ (read ``param_groups[i]["lr"]`` then);
        assigning it checks the value and sets every group's.  Every
        hyperparameter reads and assigns the same way (``opt.betas``...).

    Raises
    ------
    TypeError
        If ``params`` is empty or of another kind, a parameter is not a
        float32/float64 ndarray, or a hyperparameter is not a real number
        (a flag not a bool).
    ValueError
        If a parameter is read-only or not C-contiguous, a name repeats, or a
        hyperparameter is negative, not finite, out of range or an option
        rnnfast cannot honour (``fused``, ``capturable``, ``differentiable``).
    """

    # name -> check, in torch's order of the group's keys
    _SPEC = {"lr": _number}
    # what `hyperparameters` always holds (the settings of earlier versions)
    _HYPERPARAMETERS: tuple[str, ...] = ("lr",)
    # the defaults of the options `hyperparameters` leaves out while they hold them
    _OPTION_DEFAULTS: dict = {}
    _BUFFERS: tuple[str, ...] = ()
    _STEP_IN_STATE = True             # torch keeps state["step"] (not SGD)

    def __init__(self, params, **defaults):
        checked = {k: self._SPEC[k](k, v) for k, v in defaults.items()}
        self._check_relations(checked, "")
        object.__setattr__(self, "defaults", checked)
        self.steps = 0
        self.state = {}
        self._counts = {}             # name -> {"step": int, and scalars such as mu_product}
        self._members = []            # per group: [names, the live dict or None]
        object.__setattr__(self, "param_groups", [])
        for group in _as_groups(params):
            self.add_param_group(group)

    # -- hyperparameters as attributes ---------------------------------------------

    def __getattr__(self, name):
        spec = type(self)._SPEC
        groups = self.__dict__.get("param_groups")
        if name in spec and groups:
            values = [g.get(name) for g in groups]
            if any(v != values[0] for v in values[1:]):
                raise ValueError(f"the parameter groups have different {name} values "
                                 f"{values}: read param_groups[i][{name!r}]")
            return values[0]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name in type(self)._SPEC and "param_groups" in self.__dict__:
            value = self._SPEC[name](name, value)
            for group in self.param_groups:
                self._check_relations(dict(group, **{name: value}), "")
            for group in self.param_groups:
                group[name] = value
        else:
            object.__setattr__(self, name, value)

    def _check_relations(self, values, where):
        """Raise ``ValueError`` if hyperparameters that are fine alone do not go together."""

    def _checked_group(self, group, label):
        """The hyperparameters of ``group``, checked and as floats, bools and tuples."""
        out = {}
        labels = _labels(label, self._SPEC)
        for k, check in self._SPEC.items():
            if k not in group:
                raise KeyError(f"{label} has no {k!r}")
            out[k] = check(labels[k], group[k])
        self._check_relations(out, label)
        return out

    @property
    def hyperparameters(self):
        """The settings of the update rule by name (``lr``, ``betas``...), as a new dict.

        The hyperparameters every group shares (``ValueError`` if the groups
        differ in one): those of earlier versions always, and the options
        (``maximize``, ``foreach``...) when not at their defaults.  Checkpoints
        save it; :meth:`load_state_dict` reads it back in the earlier layout.
        """
        out = {k: getattr(self, k) for k in self._HYPERPARAMETERS}
        for k, default in self._OPTION_DEFAULTS.items():
            value = getattr(self, k)
            if value != default or type(value) is not type(default):
                out[k] = value
        return out

    # -- parameters and groups -------------------------------------------------------

    def add_param_group(self, param_group):
        """Add a group of parameters, as ``torch.optim.Optimizer.add_param_group``.

        Parameters
        ----------
        param_group : dict
            ``"params"``: a dict of arrays, ``(name, array)`` pairs, arrays
            (named ``"<group index>.<position>"``) or one array; any
            hyperparameter of this optimizer (the others take
            :attr:`defaults`); other keys are kept as they are.

        Raises
        ------
        TypeError
            If ``param_group`` is not such a dict, or a value has the wrong type.
        ValueError
            If a parameter is already in a group, cannot be updated in place,
            or a hyperparameter is out of range.
        """
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError("param_group must be a dict with a 'params' entry")
        self._sync()
        index = len(self.param_groups)
        names, arrays, source = _group_members(param_group["params"], index)
        for name, p in zip(names, arrays, strict=True):
            _check_parameter(name, p)
        taken = {n for members, _ in self._members for n in members}
        again = [n for n in names if n in taken]
        if again:
            raise ValueError(f"parameter {again[0]!r} is already in a parameter group")
        label = f"param_groups[{index}]"
        values = {k: (self._SPEC[k](f"{label}[{k!r}]", param_group[k]) if k in param_group
                      else v) for k, v in self.defaults.items()}
        self._check_relations(values, label)
        group = {"params": arrays, **values}
        group.update((k, v) for k, v in param_group.items() if k not in group)
        self.param_groups.append(group)
        self._members.append([names, source])

    def _sync(self):
        """Follow the dicts the groups were given; check the other groups kept their size."""
        self._entries()

    def _entries(self):
        """``(name, array, group index)`` of every parameter, in group order (following
        the dicts the groups were given; the other groups must keep their size)."""
        entries = []
        for i, (group, members) in enumerate(zip(self.param_groups, self._members, strict=True)):
            names, source = members
            arrays = group["params"]
            if source is not None:
                if len(source) != len(names) or len(arrays) != len(names) \
                        or not all(map(operator.is_, source.values(), arrays)) \
                        or not all(map(operator.eq, source, names)):
                    names = members[0] = list(source)
                    arrays = group["params"] = list(source.values())
            elif len(arrays) != len(names):
                raise ValueError(f"param_groups[{i}]['params'] holds {len(arrays)} arrays; it "
                                 f"held {len(names)} (add parameters with add_param_group)")
            entries.extend(zip(names, arrays, itertools.repeat(i, len(names)), strict=False))
        if len(self.param_groups) > 1 and len({e[0] for e in entries}) != len(entries):
            seen = set()
            for name, _, _ in entries:
                if name in seen:
                    raise ValueError(f"parameter {name!r} is in two parameter groups")
                seen.add(name)
        return entries

    @property
    def params(self):
        """The parameters by name, over every group (a new dict of the caller's arrays)."""
        return {name: p for name, p, _ in self._entries()}

    # -- stepping ----------------------------------------------------------------------

    def _gradients(self, grads):
        """``(name, parameter, gradient, group index)`` of every parameter with a
        gradient, checked and cast, before anything changes."""
        entries = self._entries()
        by_name = isinstance(grads, dict)
        if not by_name:
            if not isinstance(grads, (list, tuple)):
                raise TypeError("grads must be a dict with a name (or 'd' + name) entry per "
                                "parameter, or a list aligned with the parameters")
            if len(grads) != len(entries):
                raise ValueError(f"grads has {len(grads)} gradients; the optimizer holds "
                                 f"{len(entries)} parameters (a list is aligned with them "
                                 "in group order)")
        checked = []
        state = self.state
        for j, (name, p, i) in enumerate(entries):
            _check_parameter(name, p)           # it may have been replaced since
            buffers = state.get(name)
            if buffers:
                for buffer_name, buffer in buffers.items():
                    if buffer.shape != p.shape or buffer.dtype != p.dtype:
                        raise ValueError(
                            f"parameter {name!r} is now a {p.dtype} array of shape {p.shape}, "
                            f"but the optimizer's {buffer_name!r} for it is {buffer.dtype} of "
                            f"shape {buffer.shape}: a parameter replaced by an array of "
                            "another shape or dtype needs a new optimizer")
            if by_name:
                g = grads.get(name, _MISSING)
                if g is _MISSING:
                    g = grads.get("d" + name, _MISSING)
                    if g is _MISSING:
                        raise KeyError(f"grads has no {name!r} or {'d' + name!r} (the "
                                       f"gradient of parameter {name!r})")
            else:
                g = grads[j]
            if g is None:
                continue
            if type(g) is not np.ndarray:
                g = np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(f"{_grad_label(grads, name, j)} has shape {g.shape}; "
                                 f"expected {p.shape}")
            if g.dtype.kind not in "fiu":
                raise TypeError(f"{_grad_label(grads, name, j)} has dtype {g.dtype}; "
                                "expected real numbers")
            checked.append((name, p, g if g.dtype == p.dtype else g.astype(p.dtype), i))
        return checked

    def _settings(self):
        """The checked hyperparameters of every group.  A group whose values are the
        very objects checked last time (floats, bools, None and tuples of floats,
        which cannot change in place) is not checked again."""
        keys = tuple(self._SPEC)
        cache = self.__dict__.setdefault("_settings_cache", {})
        settings = []
        for i, group in enumerate(self.param_groups):
            raw = [group.get(k, _MISSING) for k in keys]
            hit = cache.get(i)
            if hit is not None and all(map(operator.is_, raw, hit[0])):
                settings.append(hit[1])
                continue
            hp = self._checked_group(group, f"param_groups[{i}]")
            if all(hp[k] is v for k, v in zip(keys, raw, strict=True)):
                cache[i] = (raw, hp)
            else:
                cache.pop(i, None)
            settings.append(hp)
        return settings

    def step(self, grads):
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : dict[str, array_like] or sequence of array_like
            The gradient of parameter ``K`` as ``grads[K]`` (a module's
            ``backward``) or ``grads["d" + K]`` (:func:`rnnfast.rnn_loss`,
            :meth:`RNNModel.loss_and_grads`), other entries ignored; or a list
            aligned with the parameters in group order, ``None`` for a
            parameter to leave alone this step.  Each of the parameter's shape;
            real numbers, cast to the parameter's dtype.

        Raises
        ------
        TypeError
            If ``grads`` is neither, a gradient is not real, a parameter was
            replaced by an array the optimizer cannot update, or a group's
            hyperparameter has the wrong type.
        KeyError
            If a parameter has no gradient in a dict, or a group lost a
            hyperparameter.
        ValueError
            If a gradient's shape differs from its parameter's, a parameter was
            replaced by one of another shape or dtype than its buffers, or a
            group's hyperparameter is out of range (as a schedule may set it).
        """
        checked = self._gradients(grads)
        settings = self._settings()
        self.steps += 1
        all_counts, state, update = self._counts, self.state, self._update
        for name, p, g, i in checked:
            counts = all_counts.get(name)
            if counts is None:
                counts = all_counts[name] = self._new_counts()
            counts["step"] += 1
            buffers = state.get(name)
            if buffers is None:
                buffers = state[name] = {}
            update(p, g, buffers, settings[i], counts)

    def _new_counts(self):
        return {"step": 0}

    def _update(self, p, g, state, hp, counts):
        raise NotImplementedError

    # -- saving and restoring ------------------------------------------------------------

    def state_dict(self):
        """Return a copy of the optimizer's state, in ``torch.optim``'s layout.

        Returns
        -------
        state_dict : dict
            ``{"state": {index: {"step": float, buffer: ndarray...}},
            "param_groups": [{hyperparameter: value..., "params": [index...]}]}``,
            the parameters numbered from 0 in group order, as torch numbers
            them: ``torch.optim.<Same>(tensors).load_state_dict(...)`` takes it
            once the arrays are tensors (``torch.from_numpy``).  The buffers are
            copies.

        See Also
        --------
        load_state_dict : Restores it (or a torch optimizer's).
        """
        entries = self._entries()
        state, groups, index = {}, [], 0
        for group, (names, _) in zip(self.param_groups, self._members, strict=True):
            ids = []
            for name in names:
                buffers, counts = self.state.get(name, {}), self._counts.get(name)
                if buffers or (counts is not None and self._STEP_IN_STATE):
                    entry = {}
                    if counts is not None:
                        if self._STEP_IN_STATE:
                            entry["step"] = float(counts["step"])
                        entry.update((k, v) for k, v in counts.items() if k != "step")
                    entry.update((k, v.copy()) for k, v in buffers.items())
                    state[index] = entry
                ids.append(index)
                index += 1
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = ids
            groups.append(saved)
        assert index == len(entries)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a state returned by :meth:`state_dict` (or a torch optimizer's).

        Everything is checked first (group and parameter counts, buffer shapes,
        hyperparameters); nothing changes unless all of it fits.  The buffers
        are copied, tensors converted to arrays of the parameter's dtype.  The
        groups take the saved hyperparameters (and keys such as
        ``"initial_lr"``); :attr:`steps` becomes the largest saved ``"step"``.

        The layout of earlier versions, ``{"steps": int, "hyperparameters":
        dict, "state": {name: {buffer: ndarray}}}`` (checkpoints hold it), is
        read too: its hyperparameters go to every group, its buffers by
        parameter name, and each parameter with buffers counts ``steps`` steps.

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` of an optimizer of the same kind over
            parameters of the same shapes (and groups of the same sizes)
            returned, or ``torch.optim``'s same optimizer, or the earlier layout.

        Raises
        ------
        ValueError
            If ``state_dict`` is not such a dict, is of another kind of
            optimizer, or does not fit the parameters and groups.
        """
        if isinstance(state_dict, dict) and {"steps", "hyperparameters", "state"} <= set(
                state_dict):
            self._load_earlier_layout(state_dict)
        else:
            self._load_torch_layout(state_dict)

    def _load_torch_layout(self, state_dict):
        try:
            saved_state, saved_groups = state_dict["state"], state_dict["param_groups"]
        except (TypeError, KeyError):
            raise ValueError("state_dict must be what an optimizer's state_dict() returned "
                             "(keys state, param_groups; or steps, hyperparameters, state)"
                             ) from None
        entries = self._entries()
        if not isinstance(saved_groups, (list, tuple)) or len(saved_groups) != len(
                self.param_groups):
            raise ValueError(f"state_dict has {len(saved_groups)} parameter groups; this "
                             f"optimizer has {len(self.param_groups)}")
        names = {}
        new_groups = []
        for i, (saved, (members, _)) in enumerate(zip(saved_groups, self._members, strict=True)):
            label = f"state_dict['param_groups'][{i}]"
            if not isinstance(saved, dict) or "params" not in saved:
                raise ValueError(f"{label} must be a dict with 'params'")
            self._check_kind(saved, label)
            if len(saved["params"]) != len(members):
                raise ValueError(f"{label} has {len(saved['params'])} parameters; this "
                                 f"optimizer's group {i} has {len(members)}")
            values = dict(self._OPTION_DEFAULTS)
            values.update((k, v) for k, v in saved.items() if k != "params")
            checked = self._checked_group(values, label)
            values.update(checked)
            new_groups.append(values)
            names.update((int(idx), n) for idx, n in zip(saved["params"], members, strict=True))
        arrays = {name: p for name, p, _ in entries}
        state, counts = {}, {}
        for idx, entry in saved_state.items():
            name = names.get(int(idx))
            if name is None:
                raise ValueError(f"state_dict has state for parameter {idx}, which no group "
                                 "lists")
            p, buffers, count = arrays[name], {}, self._new_counts()
            for k, v in entry.items():
                if k in count:
                    count[k] = self._count_value(k, v, f"state_dict['state'][{idx}][{k!r}]")
                elif k in self._BUFFERS:
                    if v is None:
                        continue
                    a = np.asarray(_as_array(v))
                    if a.shape != p.shape or a.dtype.kind != "f":
                        raise ValueError(f"state_dict's {k!r} of parameter {idx} ({name!r}) "
                                         f"is {a.dtype} of shape {a.shape}; the parameter is "
                                         f"{p.dtype} of shape {p.shape}")
                    buffers[k] = np.array(a, dtype=p.dtype, copy=True)
                else:
                    raise ValueError(f"state_dict's state of parameter {idx} has {k!r}, not a "
                                     f"buffer of {type(self).__name__} (another optimizer?)")
            state[name] = buffers
            counts[name] = count
        for group, values in zip(self.param_groups, new_groups, strict=True):
            params = group["params"]
            group.clear()
            group["params"] = params
            group.update(values)
        self.state = state
        self._counts = counts
        if counts and self._STEP_IN_STATE:
            self.steps = max(c["step"] for c in counts.values())

    def _check_kind(self, saved, label):
        missing = [k for k in self._HYPERPARAMETERS if k not in saved]
        if missing:
            raise ValueError(f"state_dict is of another optimizer: {label} has no "
                             f"{', '.join(missing)} ({type(self).__name__} has "
                             f"{', '.join(self._HYPERPARAMETERS)})")

    @staticmethod
    def _count_value(key, value, label):
        value = float(value)
        if key == "step":
            if not value >= 0 or value != int(value):
                raise ValueError(f"{label} must be a whole number of steps; got {value}")
            return int(value)
        return value

    def _load_earlier_layout(self, state_dict):
        steps, hyper, state = (state_dict["steps"], state_dict["hyperparameters"],
                               state_dict["state"])
        if not isinstance(hyper, dict) or not set(self._HYPERPARAMETERS) <= set(hyper) \
                or not set(hyper) <= set(self._SPEC):
            raise ValueError(f"state_dict is of another optimizer: hyperparameters "
                             f"{sorted(hyper)}, expected {sorted(self._HYPERPARAMETERS)}")
        values = dict(self._OPTION_DEFAULTS)
        values.update(hyper)
        values = self._checked_group(values, "state_dict['hyperparameters']")
        steps = self._count_value("step", steps, "state_dict['steps']")
        entries = self._entries()
        arrays = {name: p for name, p, _ in entries}
        unknown = set(state) - set(arrays)
        if unknown:
            raise ValueError(f"state_dict has state for parameters this optimizer does not "
                             f"hold: {sorted(unknown)}")
        restored = {}
        for name, buffers in state.items():
            p = arrays[name]
            restored[name] = {}
            for k, v in buffers.items():
                v = np.asarray(v)
                if v.shape != p.shape or v.dtype != p.dtype:
                    raise ValueError(f"state_dict's {k!r} of parameter {name!r} is {v.dtype} of "
                                     f"shape {v.shape}; the parameter is {p.dtype} of shape "
                                     f"{p.shape}")
                restored[name][k] = np.array(v, copy=True)
        counts = {name: self._replayed_counts(steps, values)
                  for name, buffers in restored.items() if buffers}
        for group in self.param_groups:
            group.update(values)
        object.__setattr__(self, "defaults", dict(values))
        self.steps = steps
        self.state = {name: restored.get(name, {}) for name in arrays}
        self._counts = counts

    def _replayed_counts(self, steps, hp):
        """The per-parameter counts after ``steps`` steps at the hyperparameters ``hp``."""
        return {"step": steps}


@functools.lru_cache(maxsize=256)
def _labels_of(label, keys):
    return {k: f"{label}[{k!r}]" for k in keys}


def _labels(label, spec):
    """``{key: "<label>['<key>']"}`` (cached: built once per group and optimizer kind)."""
    return _labels_of(label, tuple(spec))


def _grad_label(grads, name, j):
    if isinstance(grads, dict):
        return f"grads[{name if name in grads else 'd' + name!r}]"
    return f"grads[{j}]"


def _as_array(value):
    """A tensor (duck-typed: no torch import) or array_like as an ndarray."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value


def _non_empty_list(params):
    """The items of the iterable ``params`` as a list: ``TypeError`` if it is not iterable
    or empty."""
    try:
        items = list(params)
    except TypeError:
        raise TypeError(f"{_PARAMS_EXPECTED}; got {type(params).__name__}") from None
    if not items:
        raise TypeError(_PARAMS_EXPECTED)
    return items


def _as_groups(params):
    """``params`` as a list of parameter-group dicts."""
    if isinstance(params, np.ndarray):
        raise TypeError(f"{_PARAMS_EXPECTED}; got one array (put it in a list)")
    if isinstance(params, dict):
        return [{"params": params}]
    items = _non_empty_list(params)
    if all(isinstance(x, dict) for x in items):
        return items
    return [{"params": items}]


def _group_members(params, index):
    """``(names, arrays, live dict or None)`` of a group's ``"params"``."""
    if isinstance(params, np.ndarray):
        return [f"{index}.0"], [params], None
    if isinstance(params, dict):
        if not params:
            raise TypeError(_PARAMS_EXPECTED)
        for name in params:
            if not isinstance(name, str):
                raise TypeError(f"parameter names must be strings; got {name!r}")
        return list(params), list(params.values()), params
    items = _non_empty_list(params)
    names, arrays = [], []
    for j, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            names.append(item[0])
            arrays.append(item[1])
        else:
            names.append(f"{index}.{j}")
            arrays.append(item)
    if len(set(names)) != len(names):
        raise ValueError("params holds a parameter name twice")
    return names, arrays, None


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


def _lerp(start, end, weight):
    """``start`` moved in place towards ``end`` by ``weight``, as ``torch.lerp`` computes it."""
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def _l2_gradient(p, g, hp):
    """``g`` negated with ``maximize``, plus the L2 penalty ``weight_decay * p``."""
    if hp["maximize"]:
        g = -g
    if hp["weight_decay"]:
        g = g + hp["weight_decay"] * p
    return g


def _decayed_gradient(p, g, hp):
    """:func:`_l2_gradient`, but with ``decoupled_weight_decay`` the decay shrinks ``p``
    in place (``p *= 1 - lr * weight_decay``) and ``g`` keeps no penalty."""
    if hp["maximize"]:
        g = -g
    weight_decay = hp["weight_decay"]
    if weight_decay:
        if hp["decoupled_weight_decay"]:
            p *= 1 - hp["lr"] * weight_decay
        else:
            g = g + weight_decay * p
    return g


def _new_buffers(state, p, names):
    """Zero buffers ``names`` of ``p``'s shape and dtype in a parameter's empty ``state``."""
    if not state:
        for name in names:
            state[name] = np.zeros_like(p)


def _moments(m, v, g, beta1, beta2):
    """Adam's averages in place: ``m = lerp(m, g, 1 - beta1)``,
    ``v = beta2 v + (1 - beta2) g^2``."""
    _lerp(m, g, 1 - beta1)
    v *= beta2
    v += (1 - beta2) * g * g


# -- the docstring sections every optimizer shares ---------------------------------

# A line ``{name}`` alone in an optimizer's docstring stands for _DOCS[name],
# put in place (at the line's indentation) by @_shared_docs when the class is made.
_DOCS = {
    "params": """\
params : dict, iterable of (str, ndarray), iterable of ndarray or iterable of dict
    The parameters to update in place, or parameter groups (see
    :class:`Optimizer`).""",
    "betas": """\
betas : tuple of (float, float), default (0.9, 0.999)
    Decay rates of the averages of the gradient and of its square, each in
    ``[0, 1)``.""",
    "foreach": """\
foreach : bool or None, default None
    Accepted and ignored (the single-tensor rule always runs).""",
    "maximize": """\
maximize : bool, default False
    Ascend the gradient instead.""",
    "capturable": """\
capturable : bool, default False
    Only False: there are no CUDA graphs.""",
    "differentiable": """\
differentiable : bool, default False
    Only False: NumPy arrays have no autograd.""",
    "fused": """\
fused : bool or None, default None
    Only None or False: there is no fused kernel.""",
    "raises": """\
Raises
------
TypeError
    If ``params`` is empty or of another kind, a parameter is not a
    float32/float64 ndarray, or a hyperparameter is not a real number
    (a flag not a bool).
ValueError
    If a parameter is read-only or not C-contiguous, a name repeats, or a
    hyperparameter is negative, not finite, out of range or an option
    rnnfast cannot honour.""",
}

_DOC_SECTION = re.compile(r"^([ \t]*)\{(\w+)\}$", re.MULTILINE)


def _shared_docs(cls):
    """``cls`` with each ``{name}`` line of its docstring replaced by ``_DOCS[name]``."""
    def section(match):
        indent = match.group(1)
        return "\n".join(indent + line if line else line
                         for line in _DOCS[match.group(2)].splitlines())
    cls.__doc__ = _DOC_SECTION.sub(section, cls.__doc__)
    return cls


_ADAM_SPEC = {"lr": _number, "betas": _betas, "eps": _number, "weight_decay": _number,
              "amsgrad": _flag, "maximize": _flag, "foreach": _foreach,
              "capturable": _capturable, "differentiable": _differentiable, "fused": _fused,
              "decoupled_weight_decay": _flag}


@_shared_docs
class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    Each step, for each parameter ``p`` and its gradient ``g``::

        g = -g with maximize;  g = g + weight_decay p
        buf = g at the first step, then momentum buf + (1 - dampening) g
        g = g + momentum buf (nesterov) or buf
        p -= lr g

    Parameters
    ----------
    {params}
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
    {maximize}
    {foreach}
    {differentiable}
    {fused}

    {raises}

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

    _SPEC = {"lr": _number, "momentum": _number, "dampening": _number,
             "weight_decay": _number, "nesterov": _flag, "maximize": _flag,
             "foreach": _foreach, "differentiable": _differentiable, "fused": _fused}
    _HYPERPARAMETERS = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    _OPTION_DEFAULTS = {"maximize": False, "foreach": None, "differentiable": False,
                        "fused": None}
    _BUFFERS = ("momentum_buffer",)
    _STEP_IN_STATE = False

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                         foreach=foreach, differentiable=differentiable, fused=fused)

    def _check_relations(self, values, where):
        if values.get("nesterov") and (values["momentum"] <= 0 or values["dampening"] != 0):
            raise ValueError(f"{where + ': ' if where else ''}Nesterov momentum requires a "
                             "momentum and zero dampening")

    def _update(self, p, g, state, hp, counts):
        g = _l2_gradient(p, g, hp)
        momentum = hp["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                buf += (1 - hp["dampening"]) * g
            g = g + momentum * buf if hp["nesterov"] else buf
        p -= hp["lr"] * g


@_shared_docs
class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient).

    Each step ``t``, for each parameter ``p`` and its gradient ``g``::

        g = -g with maximize
        g = g + weight_decay p     (p *= 1 - lr weight_decay if decoupled_weight_decay)
        m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g^2
        v_max = max(v_max, v) with amsgrad (used instead of v below)
        p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Without amsgrad the step is one compiled pass per parameter.  The buffers
    are ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with amsgrad,
    ``max_exp_avg_sq``.

    Parameters
    ----------
    {params}
    lr : float, default 1e-3
        Learning rate.
    {betas}
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient (or decoupled, below).
    amsgrad : bool, default False
        Use the largest ``v`` seen so far (AMSGrad).
    {foreach}
    {maximize}
    {capturable}
    {differentiable}
    {fused}
    decoupled_weight_decay : bool, default False
        Decay the weights as :class:`AdamW` does instead.

    {raises}

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

    _SPEC = _ADAM_SPEC
    _HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    _OPTION_DEFAULTS = {"maximize": False, "foreach": None, "capturable": False,
                        "differentiable": False, "fused": None, "decoupled_weight_decay": False}
    _BUFFERS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=decoupled_weight_decay)

    def _update(self, p, g, state, hp, counts):
        _new_buffers(state, p, ("exp_avg", "exp_avg_sq"))
        amsgrad = hp["amsgrad"]
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(p)
        if hp["maximize"]:
            g = -g
        step, lr, eps = counts["step"], hp["lr"], hp["eps"]
        beta1, beta2 = hp["betas"]
        weight_decay = hp["weight_decay"]
        if weight_decay and hp["decoupled_weight_decay"]:
            p *= 1 - lr * weight_decay                  # AdamW: decay the weights
            weight_decay = 0.0
        if not amsgrad:
            _updates.adam(p.reshape(-1), np.ascontiguousarray(g).reshape(-1),
                          state["exp_avg"].reshape(-1), state["exp_avg_sq"].reshape(-1),
                          lr, beta1, beta2, eps, weight_decay, step)
            return
        if weight_decay:
            g = g + weight_decay * p
        m, v, v_max = state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"]
        _moments(m, v, g, beta1, beta2)
        np.maximum(v_max, v, out=v_max)
        step_size = lr / (1 - beta1 ** step)
        denom = np.sqrt(v_max) / math.sqrt(1 - beta2 ** step) + eps
        p += -step_size * (m / denom)


@_shared_docs
class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: Adam with decoupled weight decay.

    The decay is applied to the parameter first, ``p *= 1 - lr * weight_decay``,
    and not added to the gradient; the rest of the step is :class:`Adam`'s
    (``decoupled_weight_decay`` is True in its groups, as in torch's).

    Parameters
    ----------
    {params}
    lr : float, default 1e-3
        Learning rate.
    {betas}
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 1e-2
        Decoupled weight decay.
    amsgrad : bool, default False
        Use the largest ``v`` seen so far (AMSGrad).
    {maximize}
    {foreach}
    {capturable}
    {differentiable}
    {fused}

    {raises}

    See Also
    --------
    Adam : The same update with L2 weight decay.
    """

    _OPTION_DEFAULTS = dict(Adam._OPTION_DEFAULTS, decoupled_weight_decay=True)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)


@_shared_docs
class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``.

    Each step, for each parameter ``p`` and its gradient ``g``::

        g = -g with maximize;  g = g + weight_decay p
        s = alpha s + (1 - alpha) g^2
        avg = sqrt(s - a^2) with centered (a = lerp(a, g, 1 - alpha)), else sqrt(s); avg += eps
        buf = momentum buf + g / avg; p -= lr buf     (with momentum)
        p -= lr g / avg                              (without)

    Parameters
    ----------
    {params}
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
    {capturable}
    {foreach}
    {maximize}
    {differentiable}

    {raises}

    See Also
    --------
    Optimizer : The methods and attributes every optimizer has.
    """

    _SPEC = {"lr": _number, "momentum": _number, "alpha": _number, "eps": _number,
             "centered": _flag, "weight_decay": _number, "capturable": _capturable,
             "foreach": _foreach, "maximize": _flag, "differentiable": _differentiable}
    _HYPERPARAMETERS = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    _OPTION_DEFAULTS = {"capturable": False, "foreach": None, "maximize": False,
                        "differentiable": False}
    _BUFFERS = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        super().__init__(params, lr=lr, momentum=momentum, alpha=alpha, eps=eps,
                         centered=centered, weight_decay=weight_decay, capturable=capturable,
                         foreach=foreach, maximize=maximize, differentiable=differentiable)

    def _update(self, p, g, state, hp, counts):
        alpha, momentum = hp["alpha"], hp["momentum"]
        if not state:
            state["square_avg"] = np.zeros_like(p)
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = np.zeros_like(p)
        if hp["centered"] and "grad_avg" not in state:
            state["grad_avg"] = np.zeros_like(p)
        g = _l2_gradient(p, g, hp)
        s = state["square_avg"]
        s *= alpha
        s += (1 - alpha) * g * g
        if hp["centered"]:
            a = state["grad_avg"]
            _lerp(a, g, 1 - alpha)
            avg = np.sqrt(s + -1 * a * a)
        else:
            avg = np.sqrt(s)
        avg += hp["eps"]
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += g / avg
            p -= hp["lr"] * buf
        else:
            p += -hp["lr"] * (g / avg)


@_shared_docs
class Adagrad(Optimizer):
    """Adagrad, as ``torch.optim.Adagrad``.

    Each step ``t``, for each parameter ``p`` and its gradient ``g``::

        g = -g with maximize;  g = g + weight_decay p
        clr = lr / (1 + (t - 1) lr_decay)
        s = s + g^2  (s starts at initial_accumulator_value)
        p -= clr g / (sqrt(s) + eps)

    As in torch, every sum starts at the constructor's
    ``initial_accumulator_value``; a parameter group's own value is kept in
    the group but not used.

    Parameters
    ----------
    {params}
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
    {foreach}
    {maximize}
    {differentiable}
    {fused}

    {raises}

    See Also
    --------
    Optimizer : The methods and attributes every optimizer has.
    """

    _SPEC = {"lr": _number, "lr_decay": _number, "eps": _number, "weight_decay": _number,
             "initial_accumulator_value": _number, "foreach": _foreach, "maximize": _flag,
             "differentiable": _differentiable, "fused": _fused}
    _HYPERPARAMETERS = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    _OPTION_DEFAULTS = {"foreach": None, "maximize": False, "differentiable": False,
                        "fused": None}
    _BUFFERS = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, foreach=None, *, maximize=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                         maximize=maximize, differentiable=differentiable, fused=fused)

    def _update(self, p, g, state, hp, counts):
        if not state:
            # torch starts every sum at the constructor's value, whatever the group's
            state["sum"] = np.full_like(p, self.defaults["initial_accumulator_value"])
        g = _l2_gradient(p, g, hp)
        clr = hp["lr"] / (1 + (counts["step"] - 1) * hp["lr_decay"])
        s = state["sum"]
        s += g * g
        p += -clr * (g / (np.sqrt(s) + hp["eps"]))


def _f32(x):
    """``x`` rounded to float32 (as a Python float)."""
    return float(np.float32(x))


@_shared_docs
class NAdam(Optimizer):
    """NAdam (Adam with Nesterov momentum), as ``torch.optim.NAdam``.

    Each step ``t``, for each parameter ``p`` and its gradient ``g``::

        g = -g with maximize
        g = g + weight_decay p     (p *= 1 - lr weight_decay if decoupled_weight_decay)
        mu_t = beta1 (1 - 0.96^(t momentum_decay) / 2);   mu_prod = mu_1 ... mu_t
        m = lerp(m, g, 1 - beta1);   v = beta2 v + (1 - beta2) g^2
        d = sqrt(v / (1 - beta2^t)) + eps
        p -= lr (1 - mu_t) / (1 - mu_prod) g / d + lr mu_{t+1} / (1 - mu_prod mu_{t+1}) m / d

    The product ``mu_prod`` (state ``"mu_product"``) is kept in float32, as
    torch keeps it under its default dtype, so that the steps are torch's.

    Parameters
    ----------
    {params}
    lr : float, default 2e-3
        Learning rate.
    {betas}
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient (or decoupled, below).
    momentum_decay : float, default 4e-3
        How fast the momentum schedule ``mu_t`` rises to ``beta1``.
    decoupled_weight_decay : bool, default False
        Decay the weights (NAdamW) instead of adding the penalty to the gradient.
    {foreach}
    {maximize}
    {capturable}
    {differentiable}

    {raises}

    See Also
    --------
    Adam : Without the Nesterov momentum.
    """

    _SPEC = {"lr": _number, "betas": _betas, "eps": _number, "weight_decay": _number,
             "momentum_decay": _number, "decoupled_weight_decay": _flag, "maximize": _flag,
             "foreach": _foreach, "capturable": _capturable, "differentiable": _differentiable}
    _HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "momentum_decay")
    _OPTION_DEFAULTS = {"decoupled_weight_decay": False, "maximize": False, "foreach": None,
                        "capturable": False, "differentiable": False}
    _BUFFERS = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         momentum_decay=momentum_decay,
                         decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                         foreach=foreach, capturable=capturable, differentiable=differentiable)

    def _new_counts(self):
        return {"step": 0, "mu_product": 1.0}

    @staticmethod
    def _mu(beta1, momentum_decay, step):
        return beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))

    def _replayed_counts(self, steps, hp):
        mu_product = 1.0
        for t in range(1, steps + 1):
            mu_product = _f32(np.float32(mu_product) * np.float32(
                self._mu(hp["betas"][0], hp["momentum_decay"], float(t))))
        return {"step": steps, "mu_product": mu_product}

    def _update(self, p, g, state, hp, counts):
        _new_buffers(state, p, ("exp_avg", "exp_avg_sq"))
        g = _decayed_gradient(p, g, hp)
        lr = hp["lr"]
        beta1, beta2 = hp["betas"]
        step = float(counts["step"])
        bias_correction2 = 1 - beta2 ** step
        mu = self._mu(beta1, hp["momentum_decay"], step)
        mu_next = self._mu(beta1, hp["momentum_decay"], step + 1)
        # torch keeps the product as a float32 scalar tensor: float32 multiply and rounding
        mu_product = counts["mu_product"] = _f32(np.float32(counts["mu_product"])
                                                 * np.float32(mu))
        m, v = state["exp_avg"], state["exp_avg_sq"]
        _moments(m, v, g, beta1, beta2)
        denom = np.sqrt(v / bias_correction2)
        mu_product_next = mu_product * mu_next
        denom += hp["eps"]
        p += (-lr * (1.0 - mu) / (1.0 - mu_product)) * (g / denom)
        p += ((-lr * mu_next) / (1.0 - mu_product_next)) * (m / denom)


@_shared_docs
class RAdam(Optimizer):
    """RAdam (rectified Adam), as ``torch.optim.RAdam``.

    Each step ``t``, for each parameter ``p`` and its gradient ``g``::

        g = -g with maximize
        g = g + weight_decay p     (p *= 1 - lr weight_decay if decoupled_weight_decay)
        m = lerp(m, g, 1 - beta1);   v = beta2 v + (1 - beta2) g^2
        rho_inf = 2 / (1 - beta2) - 1;   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        p -= lr m / (1 - beta1^t) * sqrt(1 - beta2^t) / (sqrt(v) + eps) * r_t   (rho_t > 5)
        p -= lr m / (1 - beta1^t)                                              (otherwise)

    with ``r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))``.

    Parameters
    ----------
    {params}
    lr : float, default 1e-3
        Learning rate.
    {betas}
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient (or decoupled, below).
    decoupled_weight_decay : bool, default False
        Decay the weights (as AdamW) instead of adding the penalty to the gradient.
    {foreach}
    {maximize}
    {capturable}
    {differentiable}

    {raises}

    See Also
    --------
    Adam : Without the rectification.
    """

    _SPEC = {"lr": _number, "betas": _betas, "eps": _number, "weight_decay": _number,
             "maximize": _flag, "foreach": _foreach, "capturable": _capturable,
             "decoupled_weight_decay": _flag, "differentiable": _differentiable}
    _HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay")
    _OPTION_DEFAULTS = {"maximize": False, "foreach": None, "capturable": False,
                        "decoupled_weight_decay": False, "differentiable": False}
    _BUFFERS = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         maximize=maximize, foreach=foreach, capturable=capturable,
                         decoupled_weight_decay=decoupled_weight_decay,
                         differentiable=differentiable)

    def _update(self, p, g, state, hp, counts):
        _new_buffers(state, p, ("exp_avg", "exp_avg_sq"))
        g = _decayed_gradient(p, g, hp)
        lr = hp["lr"]
        beta1, beta2 = hp["betas"]
        step = float(counts["step"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        _moments(m, v, g, beta1, beta2)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        corrected = m / bias_correction1
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            root = np.sqrt(v)
            root += hp["eps"]
            adaptive = (bias_correction2 ** 0.5) / root
            p -= corrected * lr * adaptive * rect
        else:
            p -= corrected * lr


@_shared_docs
class Adamax(Optimizer):
    """Adamax (Adam with the infinity norm), as ``torch.optim.Adamax``.

    Each step ``t``, for each parameter ``p`` and its gradient ``g``::

        g = -g with maximize;  g = g + weight_decay p
        m = lerp(m, g, 1 - beta1);   u = max(beta2 u, |g| + eps)
        p -= lr / (1 - beta1^t) m / u

    Parameters
    ----------
    {params}
    lr : float, default 2e-3
        Learning rate.
    betas : tuple of (float, float), default (0.9, 0.999)
        Decay rates of the average of the gradient and of the infinity norm,
        each in ``[0, 1)``.
    eps : float, default 1e-8
        Added to ``|g|``.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient.
    {foreach}
    {maximize}
    {differentiable}
    {capturable}

    {raises}

    See Also
    --------
    Adam : With the square root of the second moment instead.
    """

    _SPEC = {"lr": _number, "betas": _betas, "eps": _number, "weight_decay": _number,
             "foreach": _foreach, "maximize": _flag, "differentiable": _differentiable,
             "capturable": _capturable}
    _HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay")
    _OPTION_DEFAULTS = {"foreach": None, "maximize": False, "differentiable": False,
                        "capturable": False}
    _BUFFERS = ("exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         foreach=foreach, maximize=maximize, differentiable=differentiable,
                         capturable=capturable)

    def _update(self, p, g, state, hp, counts):
        _new_buffers(state, p, ("exp_avg", "exp_inf"))
        g = _l2_gradient(p, g, hp)
        beta1, beta2 = hp["betas"]
        m, u = state["exp_avg"], state["exp_inf"]
        _lerp(m, g, 1 - beta1)
        u *= beta2
        np.maximum(u, np.abs(g) + hp["eps"], out=u)
        clr = hp["lr"] / (1 - beta1 ** counts["step"])
        p += -clr * (m / u)

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


from rnnfast.optim import lr_scheduler  # noqa: E402  (the submodule, as torch.optim has it)
