"""Training a char-level language model, as a library: ``train(TrainSettings(...))``.

Truncated BPTT with the hidden state carried across chunks over ``batch``
parallel streams of a UTF-8 text; layers, dropout, five optimizers, a
validation split, atomic checkpoints (also on Ctrl-C and SIGTERM) and exact
resumption.  With several MPI ranks (``mpiexec``) the batch is shared, the
gradients averaged, and only rank 0 prints and writes files.

:func:`train` raises :class:`TrainingError` for anything that stops it (a
refused setting, an unreadable text or checkpoint, a file that cannot be
written); ``python -m rnnfast train`` prints that as one ``error:`` line.
"""

import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnfast import distributed, optim
from rnnfast._io import read_npz_with_header
from rnnfast._progress import JsonLog, Output, Progress, reason
from rnnfast._validation import INT_MAX
from rnnfast.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_arrays,
    model_from_checkpoint,
    save_checkpoint,
)
from rnnfast.cli.checks import (
    OptionError,
    check_distinct_files,
    check_float,
    check_int,
    check_output_path,
    check_plot_path,
)
from rnnfast.model import CELL_NAMES as CELLS_BY_NAME
from rnnfast.model import RNNModel, softmax_cross_entropy, uses_fused_kernel
from rnnfast.modules import CELLS, cell_mode
from rnnfast.optim import clip_grad_norm
from rnnfast.text import TextFileError, encode, read_text, sample_text, streams, vocabulary

__all__ = ["OPTIMIZERS", "SCHEDULES", "TrainSettings", "TrainingError", "TrainingResult",
           "evaluate", "learning_rate", "physical_memory", "schedule_rates", "steps_per_epoch",
           "train", "training_memory"]

#: The optimizers ``train`` offers, by the name ``TrainSettings.optimizer`` (``--optimizer``)
#: takes: ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"sgd"``, ``"adagrad"`` to their
#: :mod:`rnnfast.optim` classes.
OPTIMIZERS = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop,
              "sgd": optim.SGD, "adagrad": optim.Adagrad}

# What a checkpoint must agree with to be resumed: the settings that shape the
# model, the data and the updates (the rest may change between runs).
_RESUME_OPTIONS = ("cell", "hidden", "layers", "dropout", "dtype", "optimizer", "lr", "batch",
                   "seq_len", "clip", "val_frac", "seed", "lr_decay", "decay_after",
                   "schedule")

# The model's shape: taken from the file with ``init_from``, else these defaults.
_ARCHITECTURE = {"cell": "rnn", "hidden": 128, "layers": 1, "dtype": "float32"}
_DTYPES = ("float32", "float64")

# What a checkpoint written before an option existed holds for it.
_OLD_CHECKPOINT = {"lr_decay": 1.0, "decay_after": 10, "schedule": None}

#: The :mod:`rnnfast.optim.lr_scheduler` classes ``TrainSettings.schedule`` (``--schedule``)
#: may name: those whose rate is a function of the step count alone.
SCHEDULES = ("StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
             "OneCycleLR")


@dataclass
class TrainSettings:
    """What :func:`train` does.

    Each field is the option of ``python -m rnnfast train`` of the same name
    (``seq_len`` is ``--seq-len``), with the same default and meaning.  The
    values are checked by :func:`train`, which raises :class:`TrainingError`
    naming the option.

    Parameters
    ----------
    file : str or path-like
        The UTF-8 text file to train on.
    cell : {"rnn", "lstm", "gru"} or None, default None
        The recurrent cell; saved with the model (None: that of ``init_from``
        or ``resume``, else ``"rnn"``).
    hidden : int or None, default None
        Hidden units per layer (None: as ``cell``, else 128).
    layers : int or None, default None
        Recurrent layers (None: as ``cell``, else 1).
    dropout : float, default 0.0
        Dropout between layers while training, in ``[0, 1)``.
    dtype : {"float32", "float64"} or None, default None
        The model's floating-point type (None: as ``cell``, else
        ``"float32"``).
    seq_len : int, default 25
        Characters per chunk (steps of truncated BPTT).
    batch : int, default 16
        Parallel streams over the text (the global batch under MPI).
    steps : int, default 1000
        Total optimizer steps (a resumed run continues to this total).
    optimizer : {"adam", "adamw", "rmsprop", "sgd", "adagrad"}, default "adam"
        The update rule (:data:`OPTIMIZERS`), with torch.optim's defaults
        besides ``lr``.
    lr : float, default 3e-3
        Learning rate (at the start: see ``lr_decay``).
    lr_decay : float, default 1.0
        Multiply the learning rate by this factor, in ``(0, 1]``, at the end
        of every epoch from epoch ``decay_after`` on (char-rnn's
        ``-learning_rate_decay``); 1 for a constant rate.  An epoch is
        :func:`steps_per_epoch` steps: one pass of the streams over the
        training text.  See :func:`learning_rate`.
    decay_after : int, default 10
        The first epoch whose end decays the learning rate
        (char-rnn's ``-learning_rate_decay_after``).
    schedule : str, optional
        A learning-rate schedule instead of ``lr_decay``: one of :data:`SCHEDULES`
        called with keyword arguments, as in torch,
        ``"CosineAnnealingLR(T_max=1000, eta_min=1e-4)"`` (the optimizer is
        implied).  The schedule steps after every optimizer step, starting from
        ``lr``; ``OneCycleLR`` schedules the rate only (``cycle_momentum`` is
        false here).  See :func:`learning_rate`.
    clip : float, default 5.0
        Largest gradient norm; 0 for no clipping.
    val_frac : float, default 0.0
        Hold out this last fraction of the text for validation; 0 for none.
    eval_every : int, default 0
        Report the validation loss and bits per character every this many
        steps and at the end; 0 for at the end only.
    checkpoint_every : int, default 0
        Write a checkpoint every this many steps; 0 for only when stopped by a
        signal.
    checkpoint : str or None, default None
        Where checkpoints go (None: ``save + ".ckpt.npz"`` with ``save``, else
        ``checkpoint.npz``).
    resume : str or None, default None
        Continue from this checkpoint, with the same settings and text, to
        ``steps`` (None: start afresh); ``cell``, ``hidden``, ``layers`` and
        ``dtype`` left None are the checkpoint's.  Under MPI the number of ranks may
        differ from the run that wrote it, as long as it divides ``batch``.
    init_from : str or None, default None
        Fine-tune: start from the weights of this model file (``save``) or
        checkpoint, with a fresh optimizer and step count.  The cell, sizes
        and dtype are the file's (any given must agree), and so is the
        vocabulary, which must hold every character of ``file``.  Not with
        ``resume``.
    keep_best : bool, default False
        Keep the checkpoint of the lowest validation loss so far in
        :attr:`best_checkpoint_path` (needs ``val_frac`` and ``eval_every``).
    sample_every : int, default 0
        Print 200 sampled characters every this many steps; 0 for never.
    save : str or None, default None
        Save the trained model here (:meth:`RNNModel.save`; None: not saved).
    plot : str or None, default None
        Plot the training and validation loss curves to this file, in the
        format its extension names (needs matplotlib; None: no plot).
    log : str or None, default None
        Append one JSON record per evaluation to this file (None: no log).
    seed : int, default 0
        Fixes the random initial weights and dropout masks.
    quiet : bool, default False
        No progress bar (by default there is one on a terminal).
    """

    file: str
    cell: str | None = None
    hidden: int | None = None
    layers: int | None = None
    dropout: float = 0.0
    dtype: str | None = None
    seq_len: int = 25
    batch: int = 16
    steps: int = 1000
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_decay: float = 1.0
    decay_after: int = 10
    schedule: str | None = None
    clip: float = 5.0
    val_frac: float = 0.0
    eval_every: int = 0
    checkpoint_every: int = 0
    checkpoint: str | None = None
    resume: str | None = None
    init_from: str | None = None
    keep_best: bool = False
    sample_every: int = 0
    save: str | None = None
    plot: str | None = None
    log: str | None = None
    seed: int = 0
    quiet: bool = False

    @property
    def checkpoint_path(self):
        """Where checkpoints go: ``checkpoint``, else MODEL.npz.ckpt.npz or checkpoint.npz."""
        if self.checkpoint:
            return self.checkpoint
        return self.save + ".ckpt.npz" if self.save else "checkpoint.npz"

    @property
    def best_checkpoint_path(self):
        """Where ``keep_best`` keeps the best checkpoint: :attr:`checkpoint_path` with
        ``.npz`` turned into ``.best.npz`` (``.best.npz`` added to another name)."""
        path = self.checkpoint_path
        return (path[:-4] if path.endswith(".npz") else path) + ".best.npz"


class TrainingError(OptionError):
    """Training cannot start or go on.

    The message says why, naming the setting as its command-line option.

    Parameters
    ----------
    message : str
        What went wrong.
    rank : int or None, default None
        The MPI rank the message is about.
    quiet : bool, default False
        Whether this rank stays silent (rank 0 says it).

    Attributes
    ----------
    rank : int or None
        The MPI rank the message is about (None: this process, or every rank).
    quiet : bool
        True on the ranks other than 0 when every rank refused alike: rank 0
        says it.
    """

    def __init__(self, message, rank=None, quiet=False):
        super().__init__(message)
        self.rank, self.quiet = rank, quiet


@dataclass
class TrainingResult:
    """How :func:`train` ended.

    Parameters
    ----------
    signal : int or None, default None
        The signal that stopped the run, or None.
    error : str or None, default None
        Why no checkpoint could be written, or None.

    Attributes
    ----------
    signal : int or None
        ``signal.SIGINT`` or ``signal.SIGTERM`` when one stopped the run
        after a step (a checkpoint written), None when it ran to the end.
    error : str or None
        When stopped by a signal: why no checkpoint could be written
        anywhere (None: one was written).
    """

    signal: int | None = None
    error: str | None = None


def check_settings(settings):
    """Refuse settings that cannot train, naming the option (:class:`TrainingError`)."""
    s = settings
    for name in ("hidden", "seq_len", "batch", "steps", "layers"):
        check_int(f"--{name.replace('_', '-')}", getattr(s, name), 1)
    check_float("--lr", s.lr)
    check_float("--clip", s.clip, zero_means="no clipping")
    if not (math.isfinite(s.dropout) and 0 <= s.dropout < 1):
        raise TrainingError(f"--dropout must be a number in [0, 1); got {s.dropout}")
    if not (math.isfinite(s.val_frac) and 0 <= s.val_frac < 1):
        raise TrainingError(f"--val-frac must be a number in [0, 1) (0 = no validation); got "
                            f"{s.val_frac}")
    check_int("--sample-every", s.sample_every, 0, " (0 = never)")
    check_int("--eval-every", s.eval_every, 0, " (0 = only at the end)")
    check_int("--checkpoint-every", s.checkpoint_every, 0, " (0 = only when stopped)")
    check_int("--seed", s.seed, 0)
    if not (math.isfinite(s.lr_decay) and 0 < s.lr_decay <= 1):
        raise TrainingError(f"--lr-decay must be a number in (0, 1] (1 = no decay); got "
                            f"{s.lr_decay}")
    check_int("--decay-after", s.decay_after, 0)
    if s.schedule is not None:
        if not isinstance(s.schedule, str):
            raise TrainingError(f"--schedule must be a string such as 'StepLR(step_size=100)'; "
                                f"got {s.schedule!r}")
        if s.lr_decay != 1:
            raise TrainingError("--schedule and --lr-decay both set the learning rate: "
                                "give one of them")
        schedule_rates(s, s.steps)                # one that cannot run so far: its error now
    if s.keep_best and not (s.val_frac and s.eval_every):
        raise TrainingError("--keep-best keeps the checkpoint of the lowest validation loss: "
                            "it needs a validation split (--val-frac) and evaluations during "
                            "training (--eval-every)")
    _check_files(s)


def _check_files(s):
    """The files of ``s``: outputs writable, ``resume`` a file, no output over an input."""
    for option, path in (("--save", s.save), ("--checkpoint", s.checkpoint), ("--log", s.log)):
        if path:
            check_output_path(option, path)
    if s.plot:
        check_plot_path("--plot", s.plot)
    for option, path in (("--resume", s.resume), ("--init-from", s.init_from)):
        if path and not os.path.isfile(path):
            raise TrainingError(f"{option} {path}: no such file" if not os.path.exists(path)
                                else f"{option} {path}: not a file")
    checkpoint = ("--checkpoint" if s.checkpoint else "--checkpoint (default)",
                  s.checkpoint_path)
    best = ("--keep-best", s.best_checkpoint_path if s.keep_best else None)
    if best[1]:
        check_output_path(*best)
    # continuing from the checkpoint that the run writes again is the usual way to resume
    check_distinct_files([("--save", s.save), checkpoint, best, ("--log", s.log),
                          ("--plot", s.plot)],
                         inputs=[("FILE", s.file), ("--resume", s.resume),
                                 ("--init-from", s.init_from)],
                         allowed={(checkpoint[0], "--resume"), ("--keep-best", "--resume")})


def steps_per_epoch(n_train, batch, seq_len):
    """The number of optimizer steps of one epoch: one pass of the streams over the text.

    :func:`train` reads the training text as ``batch`` streams
    (:func:`rnnfast.text.streams`) in chunks of ``seq_len`` characters, one
    chunk per step, and goes back to the start of the streams when the next
    chunk would not fit: an epoch is that many steps.

    Parameters
    ----------
    n_train : int
        Characters of training text (after the validation split), at least
        ``batch + 1``.
    batch, seq_len : int
        The streams and the chunk length used (``seq_len`` at most a stream's
        length: :func:`train` shortens it so).

    Returns
    -------
    steps : int
        Steps per epoch, at least 1.

    Examples
    --------
    2400 characters as 4 streams of 599 predictions, 50 at a time:

    >>> from rnnfast.training import steps_per_epoch
    >>> steps_per_epoch(2400, 4, 50)
    11
    """
    per_stream = (n_train - 1) // batch
    return max(1, per_stream // seq_len)


def learning_rate(settings, step, epoch_steps):
    """The learning rate of optimizer step ``step`` (counted from 1), as :func:`train` sets it.

    With ``schedule``, the rate the named :mod:`rnnfast.optim.lr_scheduler`
    gives after ``step - 1`` of its steps (:func:`schedule_rates`).
    Otherwise char-rnn's decay: at the end of every epoch ``e >= decay_after``
    (and ``e >= 1``) the rate is multiplied by ``lr_decay``, so step ``step``
    runs at ``lr * lr_decay ** k``, ``k`` the number of such epochs ended
    before it.  A pure function of the settings and the step: a resumed run
    sets the same rates as an uninterrupted one.

    Parameters
    ----------
    settings : TrainSettings
        Its ``lr``, ``lr_decay``, ``decay_after`` and ``schedule``.
    step : int
        The step, from 1.
    epoch_steps : int
        Steps per epoch (:func:`steps_per_epoch`).

    Returns
    -------
    lr : float
        The learning rate for that step.

    Examples
    --------
    Halved at the end of every epoch from the second on, 10 steps an epoch:

    >>> from rnnfast.training import TrainSettings, learning_rate
    >>> s = TrainSettings(file="text.txt", lr=0.1, lr_decay=0.5, decay_after=2)
    >>> [learning_rate(s, step, 10) for step in (1, 20, 21, 30, 31)]
    [0.1, 0.1, 0.05, 0.05, 0.025]

    A schedule, here the rate divided by 10 every 3 steps:

    >>> s = TrainSettings(file="text.txt", lr=0.1, schedule="StepLR(step_size=3, gamma=0.1)")
    >>> [round(learning_rate(s, step, 10), 6) for step in (1, 3, 4, 7)]
    [0.1, 0.1, 0.01, 0.001]
    """
    if settings.schedule is not None:
        return _replayed_rates(settings, step)[step - 1]
    ended = (step - 1) // epoch_steps               # epochs ended before this step
    decays = max(0, ended - max(settings.decay_after, 1) + 1)
    return settings.lr * settings.lr_decay ** decays


# (schedule, lr) -> (scheduler, rates so far): a schedule is replayed once per process
_SCHEDULES_MADE: dict[tuple[str, float], tuple[Any, list[float]]] = {}


def schedule_rates(settings, steps):
    """The learning rates of steps 1 to ``steps`` under ``settings.schedule``.

    The schedule is parsed (a call of one of :data:`SCHEDULES` with keyword
    arguments whose values are Python literals), made on an optimizer of one
    parameter with learning rate ``settings.lr``, and stepped once after each
    step, as a training loop steps it; the rates are kept, so a long run or a
    resumed one replays it once.

    Parameters
    ----------
    settings : TrainSettings
        Its ``schedule`` (not None) and ``lr``.
    steps : int
        How many steps' rates to return, at least 1.

    Returns
    -------
    rates : list of float
        ``rates[k]`` is the rate of step ``k + 1``.

    Raises
    ------
    TrainingError
        If the schedule cannot be parsed, names another class, or the class
        refuses its arguments (the message names ``--schedule``).
    """
    return _replayed_rates(settings, steps)[:steps]


def _replayed_rates(settings, steps):
    """The kept list of ``settings.schedule``'s rates, replayed to at least ``steps`` (not a
    copy: :func:`learning_rate` reads it every step)."""
    key = (settings.schedule, float(settings.lr))
    made = _SCHEDULES_MADE.get(key)
    if made is None:
        made = _SCHEDULES_MADE[key] = (_make_schedule(settings.schedule, settings.lr), [])
    scheduler, rates = made
    while len(rates) < steps:
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        try:
            # stepped after every step, the last included, as a torch loop steps it
            scheduler.step()
        except ValueError as exc:         # OneCycleLR past its total_steps
            del _SCHEDULES_MADE[key]      # it moved on regardless: made anew next time
            raise TrainingError(f"--schedule {settings.schedule!r} at step {len(rates)}: "
                                f"{exc}") from None
    return rates


def _make_schedule(text, lr):
    """The scheduler ``text`` names, on a one-parameter SGD with rate ``lr``."""
    import ast

    from rnnfast.optim import lr_scheduler

    def refuse(why):
        return TrainingError(f"--schedule {text!r}: {why}; give one of {', '.join(SCHEDULES)} "
                             "with keyword arguments, as 'StepLR(step_size=100, gamma=0.5)'")

    try:
        call = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        raise refuse("not a call") from None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
        raise refuse("not a call")
    if call.func.id not in SCHEDULES:
        raise refuse(f"{call.func.id} is not a schedule train can follow")
    if call.args or any(k.arg is None for k in call.keywords):
        raise refuse("arguments are given by name")
    try:
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except ValueError:
        raise refuse("argument values are numbers, strings, booleans or lists") from None
    if call.func.id == "OneCycleLR":
        if kwargs.get("cycle_momentum", False):
            raise refuse("train schedules the rate only: cycle_momentum must be False")
        kwargs["cycle_momentum"] = False
    for name in ("optimizer", "last_epoch"):
        if name in kwargs:
            raise refuse(f"{name} is set by train")
    opt = optim.SGD([np.zeros(1)], lr=lr)
    try:
        return getattr(lr_scheduler, call.func.id)(opt, **kwargs)
    except (TypeError, ValueError) as exc:
        raise refuse(str(exc)) from None


def training_memory(n_vocab, n_hidden, batch, seq_len, itemsize=4, cell="rnn"):
    """Bytes the training loop of ``train`` holds at once (an estimate from above).

    Six copies of the parameters (themselves, their gradients, Adam's two
    moments, the kernel's transposed ``Whh`` and room for a temporary) and
    per batch the hidden states, their gradients and the logits (with room
    for their softmax), ``(batch, seq_len, 3 n_h + 2 n_y)``.  An LSTM (GRU)
    has 4 (3) gates: its weights are that many times larger, and per batch it
    also keeps the gates, their gradients, the cells and the one-hot inputs.

    Parameters
    ----------
    n_vocab, n_hidden, batch, seq_len : int
        Vocabulary size (``n_x = n_y``), ``--hidden``, ``--batch`` and the
        chunk length used.
    itemsize : int
        Bytes per number (4: float32, 8: float64).
    cell : {"rnn", "lstm", "gru"}, default "rnn"
        The recurrent cell.

    Returns
    -------
    nbytes : int
        The estimate for one layer, in bytes (``train`` multiplies it by the
        number of layers).

    Examples
    --------
    >>> from rnnfast.training import training_memory
    >>> training_memory(58, 128, 16, 25)
    1554032
    >>> training_memory(58, 128, 16, 25, cell="lstm") > training_memory(58, 128, 16, 25)
    True
    """
    gates = CELLS[cell_mode(cell)].gates
    biases = n_hidden if cell == "rnn" else 2 * gates * n_hidden
    n_params = gates * n_hidden * (n_vocab + n_hidden) + biases + n_vocab * (n_hidden + 1)
    per_step = 3 * n_hidden + 2 * n_vocab
    if cell != "rnn":
        per_step += 3 * gates * n_hidden + 2 * n_hidden + n_vocab
    return itemsize * (6 * n_params + batch * seq_len * per_step)


def physical_memory():
    """Return the size of the physical memory of this machine.

    Returns
    -------
    nbytes : int or None
        Bytes of physical memory, or None where the system does not say.
    """
    try:
        size = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return size if size > 0 else None


def _check_training_size(s, n_vocab, seq_len):
    """Refuse a model that cannot fit the machine, before allocating it."""
    if s.hidden * seq_len > INT_MAX:
        raise TrainingError(f"--hidden {s.hidden} x --seq-len {seq_len} = {s.hidden * seq_len} "
                            f"exceeds the 32-bit BLAS limit {INT_MAX}")
    itemsize = 8 if s.dtype == "float64" else 4
    needed = s.layers * training_memory(n_vocab, s.hidden, s.batch, seq_len,
                                        itemsize=itemsize, cell=s.cell)
    available = physical_memory()
    if available is not None and needed > available:
        raise TrainingError(
            f"--hidden {s.hidden} needs about {needed / 2**30:,.1f} GiB of memory (parameters, "
            f"gradients, optimizer state and one batch of {s.batch} x {seq_len}); this "
            f"machine has {available / 2**30:,.1f} GiB")


def evaluate(model, data, batch, seq_len):
    """Compute the mean cross-entropy of a model on encoded text, in evaluation mode.

    The text is read as ``batch`` parallel streams (fewer when it is short),
    in chunks of ``seq_len`` with the state carried, as training reads it.
    The model is back in its former mode afterwards.

    Parameters
    ----------
    model : RNNModel
        The model, ``input_size == output_size`` the vocabulary size.
    data : ndarray of int, shape (n,)
        The encoded text (:func:`rnnfast.text.encode`), at least 2 characters.
    batch : int
        Number of parallel streams.
    seq_len : int
        Characters per chunk.

    Returns
    -------
    loss : float
        The mean cross-entropy in nats per character, over every character
        the streams predict (divide by ``log(2)`` for bits per character).

    Examples
    --------
    An untrained model is close to uniform, ``log(n_vocab)``:

    >>> import math
    >>> import rnnfast
    >>> from rnnfast.text import encode, vocabulary
    >>> from rnnfast.training import evaluate
    >>> text = "to be or not to be, that is the question"
    >>> vocab = vocabulary(text)
    >>> model = rnnfast.RNNModel(len(vocab), 16, len(vocab), seed=0)
    >>> loss = evaluate(model, encode(text, vocab), batch=2, seq_len=8)
    >>> abs(loss - math.log(len(vocab))) < 0.5
    True
    """
    batch = max(1, min(batch, len(data) - 1))
    inputs, targets, per_stream = streams(data, batch)
    was_training = model.training
    model.eval()
    total, count, h = 0.0, 0, None
    try:
        for pos in range(0, per_stream, seq_len):
            X, Y = inputs[:, pos:pos + seq_len], targets[:, pos:pos + seq_len]
            logits, h = model.forward(X, h, return_state=True)
            losses, _ = softmax_cross_entropy(logits, Y.reshape(-1))
            total += float(losses.sum())
            count += Y.size
    finally:
        model.train(was_training)
    return total / count


def _fallback_paths(path):
    """Where to write what could not go to ``path``: the temporary folder, then the current
    one."""
    name = f"rnnfast-{os.getpid()}-{os.path.basename(path) or 'unnamed.npz'}"
    return [os.path.join(tempfile.gettempdir(), name), os.path.abspath(name)]


def _write_somewhere(write, path, fallback=True):
    """``write(path)``; if that fails and ``fallback``, ``write`` to a fallback path.

    Returns
    -------
    (str or None, OSError or None)
        The path written (None: nowhere) and the error of ``path`` (None: no error).
    """
    try:
        write(path)
        return path, None
    except OSError as exc:
        error = exc
    for other in _fallback_paths(path) if fallback else []:
        try:
            write(other)
            return other, error
        except OSError:
            continue
    return None, error


class _Stop:
    """Records SIGINT / SIGTERM so that the training loop stops after the current step."""

    CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

    def __init__(self):
        self.signal = None
        self._previous = {}

    def __enter__(self):
        for sig in self.CODES:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:          # not the main thread: no handlers (and no stops)
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is None:
            self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _batch_axis(model):
    """The batch axis of the carried state: (m, H) for one layer, (layers, m, H) for more."""
    return 0 if model.num_layers == 1 else 1


def _checkpoint_arrays(model, opt, states, curve):
    arrays = {f"model/{k}": v for k, v in model.parameters.items()}
    for name, buffers in opt.state.items():
        for buf, v in buffers.items():
            arrays[f"opt/{name}/{buf}"] = v
    for i, a in enumerate(states):
        arrays[f"state/{i}"] = a
    arrays["curve/train"] = np.asarray(curve, dtype=np.float64)
    return arrays


def _load_resume(s, vocab, comm, text_digest):
    """``(meta, arrays, step, pos)`` of the checkpoint ``s.resume``, checked against this
    run: the same settings, text and number of ranks, a step not past ``s.steps``."""
    try:
        meta, arrays = load_checkpoint(s.resume)
    except CheckpointError as exc:
        raise TrainingError(f"--resume {exc}") from None
    except OSError as exc:
        raise TrainingError(f"--resume {s.resume}: "
                            f"{exc.strerror or type(exc).__name__}") from None
    try:
        config, saved_vocab = meta["config"], meta["vocab"]
        step, pos = int(meta["step"]), int(meta["pos"])
    except (KeyError, TypeError, ValueError):
        raise TrainingError(f"--resume {s.resume}: a checkpoint without its step, position or "
                            "settings") from None
    for option in _RESUME_OPTIONS:
        saved = config.get(option, _OLD_CHECKPOINT.get(option))
        if option == "decay_after" and s.lr_decay == 1:
            continue                      # no decay: the epoch it would start at is moot
        if saved != getattr(s, option):
            flag = "--" + option.replace("_", "-")
            raise TrainingError(f"--resume {s.resume} was trained with {flag} "
                                f"{saved}; this run has {flag} "
                                f"{getattr(s, option)} (use the same settings)")
    if saved_vocab != "".join(vocab):
        raise TrainingError(f"--resume {s.resume}: the checkpoint's vocabulary "
                            f"({len(saved_vocab)} characters) differs from {s.file}'s "
                            f"({len(vocab)}): not the same text")
    _check_resumed_text(s, meta.get("text_sha256"), comm, text_digest)
    if step > s.steps:
        raise TrainingError(f"--resume {s.resume} is at step {step}, past --steps {s.steps}")
    return meta, arrays, step, pos


def _check_resumed_text(s, saved_digest, comm, text_digest):
    """The checkpoint comes from the same text (one written before checkpoints recorded it
    is accepted with a note)."""
    if saved_digest is None:
        if comm is None or comm.Get_rank() == 0:
            print(f"note: --resume {s.resume} does not record which text it was trained "
                  f"on (an older checkpoint); assuming {s.file}", file=sys.stderr,
                  flush=True)
    elif text_digest is not None and saved_digest != text_digest:
        raise TrainingError(f"--resume {s.resume} was trained on another text than {s.file} "
                            "(same characters, other contents: the SHA-256 differs); resume "
                            "with the same text")


def _restore(s, vocab, model, opt, comm=None, rows=None, text_digest=None):
    """Load ``s.resume`` into ``model`` and ``opt``; return the loop's state
    ``(step, pos, h, smooth, curve, history, world_size)`` (``world_size``: the number of
    ranks that wrote it).

    With several ranks, each takes its ``rows`` of the carried state (rank 0 wrote the
    whole batch's) and the dropout generator of the rank of its number.  The checkpoint
    may come from another number of ranks: the carried state, parameters and optimizer
    are the same whatever the ranks; only the dropout masks then differ from those the
    writing ranks would have drawn (a rank beyond their number takes the generator of
    rank ``rank % written``).
    """
    meta, arrays, step, pos = _load_resume(s, vocab, comm, text_digest)
    try:
        model.load_state_dict(model_arrays(arrays, model))
        state = {}
        for key, a in arrays.items():
            if key.startswith("opt/"):
                _, name, buf = key.split("/", 2)
                state.setdefault(name, {})[buf] = a
        hyper = dict(meta["optimizer"]["hyperparameters"])
        if "betas" in hyper:
            hyper["betas"] = tuple(hyper["betas"])
        opt.load_state_dict({"steps": meta["optimizer"]["steps"], "hyperparameters": hyper,
                             "state": state})
        states = [arrays[f"state/{i}"] for i in range(2) if f"state/{i}" in arrays]
        if rows is not None and states:
            axis = _batch_axis(model)
            states = [np.ascontiguousarray(np.take(a, np.arange(a.shape[axis])[rows], axis=axis))
                      for a in states]
        h = None if not states else (tuple(states) if meta["state_kind"] == "tuple"
                                     else states[0])
        rngs = meta.get("rngs", [meta.get("rng")])
        model.set_rng_state(rngs[(0 if comm is None else comm.Get_rank()) % len(rngs)])
        curve = list(arrays["curve/train"])
        world_size = int(meta.get("world_size", 1))
    except (KeyError, ValueError, TypeError) as exc:
        raise TrainingError(f"--resume {s.resume} does not fit this model: {exc}") from None
    return step, pos, h, meta.get("smooth"), curve, list(meta.get("history", [])), world_size


class _AllRanksError(TrainingError):
    """An error every rank detected alike: each stops on its own, no abort needed."""


def _restore_agreed(s, vocab, model, opt, comm, rows, text_digest):
    """:func:`_restore`; with several ranks, all fail together when any cannot resume (the
    first refusal said once, by rank 0), so that none waits for the others."""
    try:
        restored, refusal = _restore(s, vocab, model, opt, comm, rows, text_digest), None
    except TrainingError as exc:
        if comm is None:
            raise
        restored, refusal = None, str(exc)
    if comm is None:
        return restored
    refusals = comm.allgather(refusal)
    for rank, message in enumerate(refusals):
        if message is not None:
            raise _AllRanksError(message, rank=None if rank == 0 else rank)
    return restored


def _load_init_model(path):
    """The model of ``--init-from path``: a model file (``--save``) or a checkpoint's."""
    if not os.path.isfile(path):
        raise TrainingError(f"--init-from {path}: no such file" if not os.path.exists(path)
                            else f"--init-from {path}: not a file")
    try:
        try:
            model = RNNModel.load(path)
        except ValueError as not_a_model:
            try:
                model = model_from_checkpoint(path)
            except CheckpointError as exc:
                header = "no rnnfast.RNNModel header" in str(not_a_model)
                raise (exc if header else not_a_model) from None
    except OSError as exc:
        raise TrainingError(f"--init-from {path}: "
                            f"{exc.strerror or type(exc).__name__}") from None
    except ValueError as exc:
        raise TrainingError(f"--init-from {exc}" if str(exc).startswith(str(path))
                            else f"--init-from {path}: {exc}") from None
    vocab = model.metadata.get("vocab")
    if (not isinstance(vocab, str) or len(vocab) != model.input_size
            or len(set(vocab)) != len(vocab) or model.output_size != model.input_size):
        raise TrainingError(f"--init-from {path}: not a char model with its vocabulary (a "
                            "model saved by train --save, or a training checkpoint)")
    if model.nonlinearity != "tanh":
        raise TrainingError(f"--init-from {path}: a {model.nonlinearity} RNN; train runs "
                            "tanh RNNs")
    return model


def _resolve_architecture(s):
    """``(settings, model)``: ``s`` with its model's shape filled in, from ``s.init_from``
    (whose model comes too) or from the defaults."""
    if not s.init_from:
        # a resumed run's shape is its checkpoint's unless given (checked against it later)
        saved = _checkpoint_header(s.resume).get("config") if s.resume else None
        saved = saved if isinstance(saved, dict) else {}
        valid = {"cell": lambda v: v in CELLS_BY_NAME, "dtype": lambda v: v in _DTYPES,
                 "hidden": lambda v: type(v) is int, "layers": lambda v: type(v) is int}
        fill = {k: saved[k] if valid[k](saved.get(k)) else d
                for k, d in _ARCHITECTURE.items() if getattr(s, k) is None}
        return dataclasses.replace(s, **fill), None
    if s.resume:
        raise TrainingError(f"--init-from {s.init_from} and --resume {s.resume} exclude each "
                            "other: --resume continues a run (weights, optimizer, step), "
                            "--init-from starts a new run from a model's weights")
    model = _load_init_model(s.init_from)
    found = {"cell": model.cell, "hidden": model.hidden_size, "layers": model.num_layers,
             "dtype": np.dtype(model.dtype).name}
    conflicts = [f"--{k} {getattr(s, k)}" for k, v in found.items()
                 if getattr(s, k) is not None and getattr(s, k) != v]
    if conflicts:
        raise TrainingError(f"--init-from {s.init_from} is a {found['cell']} model with "
                            f"--hidden {found['hidden']}, --layers {found['layers']}, --dtype "
                            f"{found['dtype']}; this run gives {', '.join(conflicts)} (leave "
                            "them out: the model's are used)")
    was_fused = uses_fused_kernel(model.cell, model.num_layers, "tanh", model.dropout)
    if uses_fused_kernel(model.cell, model.num_layers, "tanh", s.dropout) != was_fused:
        # the one-layer RNN's parameters are named and shaped after its kernels
        raise TrainingError(f"--init-from {s.init_from}: a one-layer RNN trained with --dropout "
                            f"{model.dropout:g} fine-tunes with {'some' if model.dropout else 'no'}"
                            f" dropout; this run gives --dropout {s.dropout:g}")
    return dataclasses.replace(s, **found), model


def _missing_characters(text, vocab):
    """A short description of the characters of ``text`` missing from ``vocab`` (None:
    none is)."""
    missing = sorted(set(text) - set(vocab))
    if not missing:
        return None
    shown = ", ".join(map(repr, missing[:8])) + (", ..." if len(missing) > 8 else "")
    return f"{len(missing)} character{'s' if len(missing) > 1 else ''} ({shown})"


def _checkpoint_header(path):
    """A checkpoint's header alone, unchecked ({} if it cannot be read: the checkpoint is
    read and checked in full when resumed)."""
    try:
        with read_npz_with_header(path) as (meta, _):
            return meta if isinstance(meta, dict) else {}
    except Exception:         # anything wrong is reported by the full read of _load_resume
        return {}


def _checkpoint_vocabulary(path):
    """The vocabulary a checkpoint records, from :func:`_checkpoint_header` (None: none)."""
    vocab = _checkpoint_header(path).get("vocab")
    return vocab if isinstance(vocab, str) else None


def _say_adjustments(s, seq_len, per_stream):
    """One ``note:`` line (stderr) for each setting the run cannot follow as given."""
    if seq_len < s.seq_len:
        print(f"note: --seq-len {s.seq_len} is longer than each of the {s.batch} "
              f"streams of {s.file} ({per_stream} characters); using --seq-len {seq_len}",
              file=sys.stderr, flush=True)
    if s.eval_every and not s.val_frac:
        print(f"note: --eval-every {s.eval_every} without --val-frac holds no text out: "
              "each evaluation records only the training loss (in --log)", file=sys.stderr,
              flush=True)


def _consistency(s, text, comm):
    """Refuse, on every rank alike, ranks started with other settings or another text."""
    if comm is None:
        return
    settings = {k: v for k, v in sorted(dataclasses.asdict(s).items()) if k != "file"}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()
                            + text.encode("utf-8")).hexdigest()
    digests = comm.allgather(digest)
    odd = [r for r, d in enumerate(digests) if d != digests[0]]
    if odd:
        raise _AllRanksError(f"MPI rank(s) {', '.join(map(str, odd))} started with other "
                             "arguments or another text than rank 0; every rank must run the "
                             "same command on the same file")


class _Run:
    """One training run on this rank: the settings, this rank's streams, the model, the
    optimizer and the loop's state (step, position, carried state, curve, history)."""

    def __init__(self, settings, comm, phase, stop):
        self.s, self.comm, self.phase, self.stop = settings, comm, phase, stop
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self.root = self.rank == 0
        self.progress = self.log = None
        self.output = Output()            # stdout: a failing write warns once, training goes on
        self.seconds = 0.0

    def say(self, *args, **kwargs):
        """``print`` to stdout on rank 0 only (through :class:`~rnnfast._progress.Output`)."""
        if self.root:
            self.output.print(*args, **kwargs)

    def run(self):
        """Set up, train, save; the :class:`TrainingResult`."""
        self._prepare(self._read())
        if self.phase is not None:
            self.phase["setup"] = False   # from here on a failure may strand the other ranks
        self._announce()
        try:
            self._build()
            stopped = self._loop()
            if stopped is not None:
                return stopped
        except MemoryError:
            raise TrainingError(f"out of memory training a model with --hidden {self.s.hidden}, "
                                f"--batch {self.s.batch}, --seq-len {self.seq_len}; make them "
                                "smaller") from None
        finally:
            if self.progress is not None:
                self.progress.close()
            if self.log is not None:
                self.log.close()
        self._finish()
        return TrainingResult()

    # -- setting up ---------------------------------------------------------------

    def _read(self):
        """The text, after the settings are checked.  With several ranks, every rank reads
        its settings and text before any check, so that ranks that differ are told so
        together (a rank failing alone would leave the others waiting)."""
        s, comm = self.s, self.comm
        if comm is not None:
            try:
                text, unreadable = read_text(s.file), None
            except TextFileError as exc:
                text, unreadable = "", exc
            _consistency(s, text, comm)
            if unreadable is not None:           # unreadable alike on every rank
                raise TrainingError(str(unreadable))
            if s.batch % self.size:
                resumed = f" (resuming {s.resume} is possible on any number of ranks that " \
                          f"divides {s.batch})" if s.resume else ""
                raise _AllRanksError(f"--batch {s.batch} is the global batch; {self.size} MPI "
                                     f"ranks need a multiple of {self.size} to share it "
                                     f"equally{resumed}")
        s, self.init = _resolve_architecture(s)
        self.s = s
        check_settings(s)
        if comm is None:
            try:
                text = read_text(s.file)
            except TextFileError as exc:
                raise TrainingError(str(exc)) from None
        return text

    def _prepare(self, text):
        """The vocabulary, the training and validation data and this rank's streams."""
        s = self.s
        self.n_chars, self.vocab = len(text), vocabulary(text)
        if self.init is not None:
            # the model keeps its read-out: its vocabulary must cover the new text
            self.vocab = list(self.init.metadata["vocab"])
            missing = _missing_characters(text, self.vocab)
            if missing:
                raise TrainingError(f"--init-from {s.init_from}: its vocabulary lacks {missing} "
                                    f"of {s.file}; fine-tune on a text of its characters")
        elif s.resume:
            # a fine-tuned run's checkpoint holds its model's vocabulary, wider than the text's
            saved = _checkpoint_vocabulary(s.resume)
            if saved and saved != "".join(self.vocab) and not _missing_characters(text, saved):
                self.vocab = list(saved)
        self.text_digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        data = encode(text, self.vocab)
        self.n_val = n_val = int(len(data) * s.val_frac)
        if s.val_frac and n_val < 2:
            raise TrainingError(f"--val-frac {s.val_frac} leaves {n_val} characters of {s.file} "
                                "for validation; give a larger fraction or a longer text")
        self.train_data, self.val_data = ((data[:len(data) - n_val], data[len(data) - n_val:])
                                          if n_val else (data, None))
        # batch parallel streams over the training text; each chunk is (batch, seq_len)
        if (len(self.train_data) - 1) // s.batch < 1:
            raise TrainingError(f"{s.file} holds {len(self.train_data)} training characters, "
                                f"too few for --batch {s.batch}")
        inputs, targets, self.per_stream = streams(self.train_data, s.batch)
        self.rows = distributed.shard(s.batch, self.comm)
        self.inputs, self.targets = inputs[self.rows], targets[self.rows]   # this rank's
        self.seq_len = min(s.seq_len, self.per_stream)
        self.epoch_steps = self.per_stream // self.seq_len    # one pass over the streams
        _check_training_size(s, len(self.vocab), self.seq_len)
        if self.root:
            _say_adjustments(s, self.seq_len, self.per_stream)
        self.checkpoint = s.checkpoint_path
        check_output_path("--checkpoint", self.checkpoint)

    def _announce(self):
        s = self.s
        if self.comm is not None:
            pids = self.comm.gather(os.getpid(), root=0)
            self.say(f"MPI: {self.size} ranks (pids {', '.join(map(str, pids or []))}), "
                     f"{s.batch // self.size} streams each", flush=True)
        self.say(f"training on {s.file}: {self.n_chars} characters ({len(self.train_data)} "
                 f"training, {self.n_val} validation), vocabulary {len(self.vocab)}, {s.cell} "
                 f"cell, {s.layers} layer{'s' if s.layers > 1 else ''} of {s.hidden}, batch "
                 f"{s.batch} x {self.seq_len} steps, {s.optimizer} lr {s.lr:g}"
                 + (f" x {s.lr_decay:g} after each epoch from epoch {max(s.decay_after, 1)} "
                    f"({self.epoch_steps} steps an epoch)" if s.lr_decay != 1 else "")
                 + (f", schedule {s.schedule}" if s.schedule is not None else "")
                 + f"; checkpoints go to {self.checkpoint}", flush=True)
        if self.init is not None:
            self.say(f"fine-tuning {s.init_from} (its vocabulary of {len(self.vocab)}, a fresh "
                     f"{s.optimizer} optimizer from step 0)", flush=True)

    def _build(self):
        """The model and optimizer, restored from ``resume`` when given."""
        s, vocab = self.s, self.vocab
        dtype = np.float64 if s.dtype == "float64" else np.float32
        self.model = model = RNNModel(len(vocab), s.hidden, len(vocab), s.layers,
                                      dropout=s.dropout, cell=s.cell, dtype=dtype, seed=s.seed)
        model.metadata = {"vocab": "".join(vocab), "source": str(s.file)}
        if self.init is not None:
            model.load_state_dict(self.init.parameters)
            model.metadata["init_from"] = str(s.init_from)
        distributed.broadcast_parameters(model.parameters, self.comm)
        self.opt = OPTIMIZERS[s.optimizer](model.parameters, lr=s.lr)
        self.start_step, self.pos, self.h, self.smooth, self.curve, self.history = \
            0, 0, None, None, [], []
        self.written = None               # the step of the last checkpoint written
        if s.resume:
            (self.start_step, self.pos, self.h, self.smooth, self.curve, self.history,
             self.resumed_world_size) = _restore_agreed(s, vocab, model, self.opt, self.comm,
                                                        self.rows, self.text_digest)
            self.say(f"resumed from {s.resume} at step {self.start_step}", flush=True)
            written = self.resumed_world_size
            if written != self.size and self.root:
                dropout = (" and the dropout masks differ from those of the first run"
                           if model.get_rng_state() is not None and s.dropout else "")
                print(f"note: --resume {s.resume} was written by {written} MPI rank(s), this "
                      f"run has {self.size}: the gradient sums are added in another order"
                      f"{dropout}", file=sys.stderr, flush=True)
        # the lowest validation loss so far, and where --keep-best keeps its checkpoint
        self.best_path = s.best_checkpoint_path if s.keep_best else None
        self.best = min((r["val_loss"] for r in self.history if r.get("val_loss") is not None),
                        default=None)
        self.progress = Progress(s.steps, self.root and sys.stderr.isatty() and not s.quiet,
                                 self.output)
        self.log = JsonLog(s.log if self.root else None, self.progress)
        self.start = time.perf_counter()

    # -- the loop -------------------------------------------------------------------

    def _loop(self):
        """Every step to ``steps``; a :class:`TrainingResult` when a signal stopped it."""
        s = self.s
        for step in range(self.start_step + 1, s.steps + 1):
            signum = self._step(step)
            stopped = self._after_step(step, signum)
            if stopped is not None:
                return stopped
        self.seconds = time.perf_counter() - self.start
        # the last step is evaluated once (decided alike on every rank: only rank 0 records)
        evaluated = ((s.steps > self.start_step and s.eval_every and s.steps % s.eval_every == 0)
                     or (s.steps == self.start_step and self.history
                         and self.history[-1]["step"] == s.steps))
        if s.keep_best and not evaluated:
            self._evaluation(s.steps)     # collective: a new best is written by every rank
        if self.phase is not None:
            self.phase["alone"] = True    # no more collectives: a failure strands no other rank
        if not s.keep_best and not evaluated:
            self._evaluation(s.steps)
        return None

    def _step(self, step):
        """One optimizer step; the signal it decides on (agreed by every rank), or None."""
        s, comm, seq_len, pos = self.s, self.comm, self.seq_len, self.pos
        if pos + seq_len > self.per_stream:
            pos, self.h = 0, None         # back to the start of every stream
        X = self.inputs[:, pos:pos + seq_len]
        Y = self.targets[:, pos:pos + seq_len]
        loss, grads, self.h = self.model.loss_and_grads(X, Y, self.h, return_state=True)
        signum = self.stop.signal         # what this step decides on (a later one waits)
        if comm is not None:
            # the mean gradient of the global batch, the global loss, and whether any
            # rank was signalled: every rank decides on the same, agreed value
            distributed.allreduce_gradients(grads, comm)
            loss, sigint, sigterm = distributed.allreduce_mean(
                [loss, signum == signal.SIGINT, signum == signal.SIGTERM], comm)
            signum = signal.SIGTERM if sigterm else signal.SIGINT if sigint else None
        if s.clip > 0:                    # 0 = no clipping
            clip_grad_norm(grads, s.clip)
        lr = learning_rate(s, step, self.epoch_steps)
        if lr != self.opt.lr:
            if self.root and step > 1 and s.schedule is None:   # a schedule: the log
                self.progress.write(f"step {step}: learning rate {lr:.6g} (epoch "
                                    f"{(step - 1) // self.epoch_steps + 1})")
            self.opt.lr = lr
        self.opt.step(grads)
        self.pos = pos + seq_len
        self.smooth = loss if self.smooth is None else 0.98 * self.smooth + 0.02 * loss
        self.curve.append(self.smooth)
        rate = (step - self.start_step) / (time.perf_counter() - self.start)
        self.progress.update(step, self.smooth, rate * s.batch * seq_len, (s.steps - step) / rate)
        return signum

    def _after_step(self, step, signum):
        """Sample, evaluate and write a checkpoint when due; a result when ``signum`` stops."""
        s = self.s
        if self.root and s.sample_every and step % s.sample_every == 0:
            self.progress.write(f"--- step {step}, loss {self.smooth:.4f} ---\n"
                                f"{sample_text(self.model, self.vocab, 200, 0.8, seed=step)}\n---")
        if s.eval_every and step % s.eval_every == 0:
            self._evaluation(step)
        if self.comm is None:
            signum = self.stop.signal     # alone, any signal so far stops after this step
        if signum is None and not (s.checkpoint_every and step % s.checkpoint_every == 0):
            return None
        where, error = self._write_checkpoint(step, fallback=signum is not None)
        if error is None:
            self.written = step
            if signum is None and self.root:
                self.progress.write(f"step {step}: checkpoint written to {self.checkpoint}")
        elif signum is None:
            self.progress.warn(f"could not write the checkpoint {self.checkpoint} at step "
                               f"{step} ({reason(error)}); training goes on")
        return None if signum is None else self._stopped(step, signum, where, error)

    def _stopped(self, step, signum, where, error):
        """The result of a run stopped by ``signum`` after ``step``, said on rank 0."""
        self.progress.close()
        self.progress = None
        name, checkpoint = ("SIGINT" if signum == signal.SIGINT else "SIGTERM"), self.checkpoint
        if error is None:
            self.say(f"stopped by {name} after step {step}; checkpoint written to "
                     f"{checkpoint} (continue with --resume {checkpoint})", flush=True)
        elif where is not None:
            self.say(f"stopped by {name} after step {step}; could not write {checkpoint} "
                     f"({reason(error)}): checkpoint written to {where} instead (continue "
                     f"with --resume {where})", flush=True)
        else:
            return TrainingResult(signum, f"stopped by {name} after step {step}; could not "
                                  f"write the checkpoint {checkpoint} ({reason(error)}) nor "
                                  f"a copy in {tempfile.gettempdir()} or the current folder")
        return TrainingResult(signum)

    def _evaluation(self, step):
        """Record (and with a validation split, print) the losses at ``step`` on rank 0; with
        ``keep_best``, write the best checkpoint when this loss is the lowest so far
        (collective with several ranks)."""
        s, loss = self.s, None
        if self.root:
            record = {"step": step, "train_loss": self.smooth, "lr": self.opt.lr,
                      "chars_per_second": (step - self.start_step) * s.batch * self.seq_len
                      / max(time.perf_counter() - self.start, 1e-9)}
            if self.val_data is not None:
                loss = evaluate(self.model, self.val_data, s.batch, self.seq_len)
                record.update(val_loss=loss, val_bpc=loss / math.log(2))
                self.progress.write(f"step {step}: training loss {self.smooth:.4f}, validation "
                                    f"loss {loss:.4f} ({loss / math.log(2):.3f} bits per "
                                    f"character), lr {self.opt.lr:.6g}")
            self.history.append(record)
            self.log.write(record)
        if s.keep_best:
            self._keep_best(step, loss)

    def _keep_best(self, step, loss):
        """Write the best checkpoint if ``loss`` (rank 0's) is the lowest so far."""
        better = loss is not None and (self.best is None or loss < self.best)
        if self.comm is not None:
            better = self.comm.bcast(better, root=0)
        if not better:
            return
        self.best = loss
        _, error = self._write_checkpoint(step, fallback=False, path=self.best_path,
                                          extra={"val_loss": loss})
        if error is not None:
            self.progress.warn(f"could not write the best checkpoint {self.best_path} at step "
                               f"{step} ({reason(error)}); training goes on")

    def _write_checkpoint(self, step, fallback, path=None, extra=None):
        """Write a checkpoint to ``path`` (None: the checkpoint's), its header with the
        fields of ``extra`` added (collective with several ranks: rank 0 writes the whole
        batch's carried state and every rank's dropout generator).

        Returns :func:`_write_somewhere`'s ``(path written, error)``: a failing write is
        retried in a fallback path only when the run stops (``fallback``).
        """
        path = self.checkpoint if path is None else path
        s, comm, model, opt, h = self.s, self.comm, self.model, self.opt, self.h
        rng = model.get_rng_state()
        states = [] if h is None else (list(h) if isinstance(h, tuple) else [h])
        if comm is not None:
            rngs = comm.gather(rng, root=0)
            gathered = [comm.gather(a, root=0) for a in states]
            if comm.Get_rank() != 0:
                return path, None
            states = [np.concatenate(parts, axis=_batch_axis(model)) for parts in gathered]
        else:
            rngs = [rng]
        meta = {"config": {k: getattr(s, k) for k in _RESUME_OPTIONS},
                "vocab": "".join(self.vocab), "step": step, "pos": self.pos,
                "smooth": self.smooth, "rngs": rngs, "world_size": self.size,
                "state_kind": None if h is None else ("tuple" if isinstance(h, tuple)
                                                      else "array"),
                "optimizer": {"steps": opt.steps, "hyperparameters": opt.hyperparameters},
                "history": self.history, "source": str(s.file), "text_sha256": self.text_digest,
                "lr": opt.lr, "init_from": None if s.init_from is None else str(s.init_from),
                **(extra or {})}
        arrays = _checkpoint_arrays(model, opt, states, self.curve)
        return _write_somewhere(lambda p: save_checkpoint(p, meta, arrays), path, fallback)

    # -- the end ------------------------------------------------------------------

    def _finish(self):
        """Say what was done; on rank 0 save the model and plot the curves."""
        s = self.s
        chars = (s.steps - self.start_step) * s.batch * self.seq_len
        self.say(f"done: {s.steps - self.start_step} steps in {self.seconds:.2f} s "
                 f"({chars / max(self.seconds, 1e-9):,.0f} characters/s), final smoothed loss "
                 f"{self.smooth:.4f}" + ("" if self.written is None else
                                         f"; last checkpoint (step {self.written}) in "
                                         f"{self.checkpoint}"), flush=True)
        if not self.root:
            return
        if s.save:
            self._save()
        if s.plot:
            try:
                _plot(s.plot, self.curve, self.history)
            except OSError as exc:
                raise TrainingError(f"--plot {s.plot}: {reason(exc)}") from None
            self.say(f"plotted {s.plot}")

    def _save(self):
        s = self.s
        where, error = _write_somewhere(self.model.save, s.save)
        if error is not None and where is not None:
            raise TrainingError(f"--save {s.save}: {reason(error)}; the model was written to "
                                f"{where} instead")
        if error is not None:
            raise TrainingError(f"--save {s.save}: {reason(error)}, and no copy could be "
                                f"written to {tempfile.gettempdir()} or the current folder"
                                + ("" if self.written is None else f"; the checkpoint "
                                   f"{self.checkpoint} holds step {self.written}"))
        self.say(f"saved {s.save}")


def train(settings):
    """Train a char-level model on ``settings.file``; see :class:`TrainSettings`.

    Run under ``mpiexec`` with several ranks, the training is data-parallel:
    ``batch`` is the global batch, each rank runs its equal share of the
    streams, the gradients are averaged before clipping and the step, and
    only rank 0 prints, evaluates, samples and writes files.  A rank that
    fails after the setup ends every rank (``MPI_Abort``), naming itself.

    SIGINT and SIGTERM are caught from the start (so that one arriving during
    the setup, on any rank, still stops every rank after the same step, with a
    checkpoint).

    Parameters
    ----------
    settings : TrainSettings
        What to train, on which text, and where to write.

    Returns
    -------
    result : TrainingResult
        How the run ended: to the last step, or stopped by a signal.

    Raises
    ------
    TrainingError
        A refused setting, an unreadable text or checkpoint, a file that
        cannot be written.

    See Also
    --------
    rnnfast.checkpoint.model_from_checkpoint : The model of a checkpoint.
    rnnfast.RNNModel.load : The model saved with ``save``.

    Examples
    --------
    A few steps on the shipped text; the model is saved, with its vocabulary in
    its ``metadata``:

    >>> import os, tempfile
    >>> import rnnfast
    >>> from rnnfast.text import EXAMPLE_TEXT
    >>> from rnnfast.training import TrainSettings, train
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> result = train(TrainSettings(file=EXAMPLE_TEXT, hidden=32, batch=4, seq_len=10,
    ...                              steps=5, save=path, quiet=True))
    training on ...
    done: 5 steps in ...
    saved ...
    >>> result
    TrainingResult(signal=None, error=None)
    >>> model = rnnfast.RNNModel.load(path)
    >>> model.hidden_size, len(model.metadata["vocab"])
    (32, 58)
    """
    try:
        comm = distributed.world()
    except RuntimeError as exc:
        raise TrainingError(str(exc)) from None
    if comm is None:
        return _train(settings, None)
    rank = comm.Get_rank()
    # "setup": every rank checks the same settings and text alike; "alone": the ranks are
    # done with collectives (only rank 0 still writes files)
    phase = {"setup": True, "alone": False}
    try:
        return _train(settings, comm, phase)
    except _AllRanksError as exc:
        if phase["setup"] or rank == 0:
            raise
        raise TrainingError(str(exc), exc.rank, quiet=True) from None   # said by rank 0
    except OptionError as exc:
        if phase["setup"] or phase["alone"]:
            raise
        # the others may be waiting in a collective: end the whole job, naming this rank
        _abort(comm, f"rank {rank}: error: {exc}")
    except BaseException as exc:
        _abort(comm, f"rank {rank} failed ({type(exc).__name__}: "
                     f"{' '.join(str(exc).split())}); ending all ranks")
    return TrainingResult()           # not reached: MPI_Abort ends every rank


def _abort(comm, message):
    """Say ``message`` on stderr, then end every rank (``MPI_Abort``).

    The launcher forwards each rank's output on its own schedule, and the abort
    tears the job down at once: the pause lets the line reach the terminal first.
    """
    print(message, file=sys.stderr, flush=True)
    time.sleep(0.2)
    comm.Abort(1)


def _train(settings, comm, phase=None):
    with _Stop() as stop:
        try:
            return _Run(settings, comm, phase, stop).run()
        except TrainingError:
            raise
        except OptionError as exc:        # a shared check refused a setting
            raise TrainingError(str(exc)) from None


def _plot(path, curve, history):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(1, len(curve) + 1), curve, label="training loss (smoothed)")
    val = [(r["step"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
