"""Char-level RNN jobs behind ``python -m rnnfast demo | train | sample``.

* ``demo``: the classic toy task, learning to map ``"apple"`` to ``"pple!"``
  with :class:`~rnnfast.RNNModel` and Adam (lr 0.1) for 100 iterations,
  printing each iteration like the PyTorch original does; ``--compare-torch``
  also runs that original (``nn.RNN`` + ``nn.Linear`` + ``CrossEntropyLoss``)
  from the same initial weights and times both.
* ``train FILE``: char-level language model on any UTF-8 text, truncated BPTT
  with the hidden state carried across chunks; layers, dropout, five
  optimizers, a validation split, atomic checkpoints (also on Ctrl-C and
  SIGTERM) and exact resumption.
* ``sample MODEL``: generate text from a model saved by ``train`` (or a checkpoint).
"""

import argparse
import hashlib
import json
import math
import os
import signal
import sys
import tempfile
import time

import numpy as np

from rnnfast import distributed, optim
from rnnfast._cli import (check_distinct_files, check_float, check_int, check_output_path,
                          check_plot_path, fail)
from rnnfast._validation import INT_MAX
from rnnfast.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rnnfast.model import RNNModel
from rnnfast.optim import Adam, clip_grad_norm

APPLE_INPUT, APPLE_TARGET = "apple", "pple!"


# -- demo --------------------------------------------------------------------

def apple_data(dtype=np.float32):
    """Vocabulary, one-hot inputs ``(1, 5, 5)`` and targets ``(1, 5)`` of the apple task."""
    vocab = sorted(set(APPLE_INPUT + APPLE_TARGET))
    index = {c: i for i, c in enumerate(vocab)}
    X = np.eye(len(vocab), dtype=dtype)[[index[c] for c in APPLE_INPUT]][None]
    Y = np.array([[index[c] for c in APPLE_TARGET]])
    return vocab, X, Y


def train_apple(model, iterations=100, lr=0.1, log=None):
    """Train ``model`` on the apple task with Adam; return (losses, predictions, seconds).

    Each iteration takes the loss and gradients, notes the prediction made by
    the same parameters (as the PyTorch original prints the outputs of the
    forward pass it just ran), then steps.  Printing is not timed.
    """
    vocab, X, Y = apple_data(model.dtype)
    optimizer = Adam(model.parameters, lr=lr)
    losses, predictions, elapsed = [], [], 0.0
    for i in range(iterations):
        start = time.perf_counter()
        loss, grads = model.loss_and_grads(X, Y)
        predicted = model.predict(X)
        optimizer.step(grads)
        elapsed += time.perf_counter() - start
        text = "".join(vocab[c] for c in predicted[0])
        losses.append(loss)
        predictions.append(text)
        if log is not None:
            log(f"{i} loss:  {loss:.6f} prediction:  {predicted.tolist()} "
                f"true Y:  {Y.tolist()} prediction str:  {text}")
    return losses, predictions, elapsed


def train_apple_torch(model, iterations=100, lr=0.1):
    """The PyTorch original from ``model``'s initial weights; return (losses, seconds).

    ``nn.RNN`` has two hidden biases where RNNModel has one (``bh``): to train
    the same model, ``bias_hh_l0`` stays frozen at zero and ``bias_ih_l0``
    plays ``bh``.
    """
    import torch

    vocab, X, Y = apple_data(model.dtype)
    rnn, linear = model.to_torch()
    rnn.bias_hh_l0.requires_grad_(False)
    params = [p for p in list(rnn.parameters()) + list(linear.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    criterion = torch.nn.CrossEntropyLoss()
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    losses, elapsed = [], 0.0
    for _ in range(iterations):
        start = time.perf_counter()
        optimizer.zero_grad()
        out, _ = rnn(Xt)
        outputs = linear(out)
        loss = criterion(outputs.view(-1, len(vocab)), Yt.view(-1))
        loss.backward()
        optimizer.step()
        outputs.data.numpy().argmax(axis=2)
        elapsed += time.perf_counter() - start
        losses.append(loss.item())
    return losses, elapsed


def _check_demo_args(args):
    check_int("--iterations", args.iterations, 1)
    check_float("--lr", args.lr)
    check_int("--seed", args.seed, 0)


def demo(args, out=None):
    _check_demo_args(args)
    out = sys.stdout if out is None else out
    dtype = np.dtype(args.dtype)
    model = RNNModel(5, 5, 5, dtype=dtype, seed=args.seed)
    initial = {k: v.copy() for k, v in model.parameters.items()}
    lines = []
    losses, predictions, seconds = train_apple(model, args.iterations, args.lr, log=lines.append)
    print("\n".join(lines), file=out)
    print(f"\nfinal prediction: {predictions[-1]!r} (target {APPLE_TARGET!r})", file=out)
    print(f"rnnfast: {args.iterations} iterations in {seconds * 1e3:.2f} ms "
          f"({seconds / args.iterations * 1e6:.1f} us each, {dtype.name})", file=out)
    if args.compare_torch:
        try:
            import torch
        except ImportError:
            print("--compare-torch needs PyTorch (pip install torch)", file=out)
            return 1
        torch.set_num_threads(torch.get_num_threads())
        twin = RNNModel(5, 5, 5, dtype=dtype)
        for k, v in initial.items():
            twin.parameters[k][...] = v
        torch_losses, torch_seconds = train_apple_torch(twin, args.iterations, args.lr)
        gap = max(abs(a - b) for a, b in zip(losses, torch_losses))
        print(f"torch:   {args.iterations} iterations in {torch_seconds * 1e3:.2f} ms "
              f"({torch_seconds / args.iterations * 1e6:.1f} us each); "
              f"rnnfast is {torch_seconds / seconds:.1f}x faster; "
              f"largest loss difference {gap:.2e}", file=out)
    return 0


# -- text training -----------------------------------------------------------

def read_text(path):
    """The text of ``path``, with clear errors for missing, empty and binary files."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SystemExit(f"error: {path}: no such file") from None
    except IsADirectoryError:
        raise SystemExit(f"error: {path}: is a directory, not a text file") from None
    except OSError as exc:
        raise SystemExit(f"error: {path}: {exc.strerror}") from None
    if not raw:
        raise SystemExit(f"error: {path} is empty; give a UTF-8 text file to train on")
    if b"\0" in raw:
        raise SystemExit(f"error: {path} looks binary (it holds NUL bytes); "
                         "give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SystemExit(f"error: {path} is not UTF-8 text ({exc.reason} at byte "
                         f"{exc.start})") from None
    if len(text) < 2:
        raise SystemExit(f"error: {path} holds {len(text)} character; need at least 2")
    return text


def sample_text(model, vocab, length, temperature=1.0, prime="", seed=None):
    """Generate ``length`` characters, starting after ``prime`` (or a random character).

    Parameters
    ----------
    model : RNNModel
        With ``input_size == output_size == len(vocab)``.
    vocab : sequence of str
        The character of each class index.
    length : int
        Number of characters to generate.
    temperature : float
        Any non-negative finite number: 1 samples the model's distribution, a
        smaller one sharpens it, 0 takes the most likely character every time
        (greedy), a larger one flattens it.
    prime : str
        Text the model reads first; not part of the result.
    seed : int or None
        Seed of the sampling.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If ``temperature`` is not a non-negative finite number or ``prime`` holds
        characters outside ``vocab``.

    See Also
    --------
    sample_text_iter : the same characters, one at a time as they are made.
    """
    return "".join(sample_text_iter(model, vocab, length, temperature, prime, seed))


def sample_text_iter(model, vocab, length, temperature=1.0, prime="", seed=None):
    """The characters of :func:`sample_text`, yielded one at a time as they are made.

    The arguments are checked at the call, before any character is made
    (``ValueError`` as in :func:`sample_text`); ``length`` may be as large as
    wanted.  The model is in evaluation mode (no dropout) while the iterator
    runs and back in its former mode when it ends or is closed.

    Returns
    -------
    iterator of str
    """
    if not temperature >= 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a non-negative number (0: always the most "
                         f"likely character); got {temperature}")
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted(set(prime) - set(index))
    if unknown:
        raise ValueError(f"prime holds characters the model never saw: {''.join(unknown)!r}")
    return _generate(model, vocab, length, temperature, [index[c] for c in prime],
                     np.random.default_rng(seed))


def _generate(model, vocab, length, temperature, prime, rng):
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()                  # no dropout while generating
    try:
        h = None
        if prime:
            logits, h = model.forward(np.array([prime]), h, return_state=True)
            logits = logits[0, -1]
        else:
            logits = None             # no prediction yet: the first character is uniform
        for _ in range(length):
            c = _pick(logits, len(vocab), temperature, rng)
            yield vocab[c]
            logits, h = model.forward(np.array([[c]]), h, return_state=True)
            logits = logits[0, -1]
    finally:
        if was_training and hasattr(model, "train"):
            model.train()


def _pick(logits, n, temperature, rng):
    """The index of the next character: uniform without ``logits``, else at ``temperature``."""
    if logits is None:
        return int(rng.integers(n))
    if temperature == 0:
        return int(np.argmax(logits))
    # shift first, so that z <= 0 and the largest logit gives z = 0 exactly:
    # a tiny temperature overflows the rest to -inf (p = 0), i.e. argmax
    z = logits.astype(np.float64)
    with np.errstate(over="ignore"):
        z = (z - z.max()) / temperature
    p = np.exp(z)
    return int(rng.choice(n, p=p / p.sum()))


def _duration(seconds):
    """``1h02m``, ``3m05s`` or ``12s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class _Progress:
    """tqdm when installed and stderr is a terminal, a plain line otherwise; silent off a terminal."""

    def __init__(self, total, enabled):
        self.bar = None
        self.enabled = enabled
        self.total = total
        if enabled:
            try:
                from tqdm import tqdm  # noqa: F401 (optional)
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, unit="step", file=sys.stderr)

    def update(self, step, loss, chars_per_second=None, eta=None):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)
        elif self.enabled and (step % max(1, self.total // 100) == 0 or step == self.total):
            rate = "" if chars_per_second is None else f"  {chars_per_second:,.0f} chars/s"
            left = "" if eta is None else f"  ETA {_duration(eta)}"
            print(f"\rstep {step}/{self.total}  loss {loss:.4f}{rate}{left}", end="",
                  file=sys.stderr, flush=True)

    def write(self, text, file=None):
        """Print ``text`` (to stdout, or ``file``) on lines of its own, off the progress line."""
        file = sys.stdout if file is None else file
        if self.bar is not None:
            self.bar.write(text, file=file)
        else:
            if self.enabled:
                print(file=sys.stderr)
            print(text, file=file, flush=True)

    def warn(self, text):
        """Print the one line ``warning: text`` to stderr."""
        self.write(f"warning: {text}", file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(file=sys.stderr)


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
        Bytes per number (4: ``train`` uses float32).

    Returns
    -------
    int
    """
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    biases = n_hidden if cell == "rnn" else 2 * gates * n_hidden
    n_params = gates * n_hidden * (n_vocab + n_hidden) + biases + n_vocab * (n_hidden + 1)
    per_step = 3 * n_hidden + 2 * n_vocab
    if cell != "rnn":
        per_step += 3 * gates * n_hidden + 2 * n_hidden + n_vocab
    return itemsize * (6 * n_params + batch * seq_len * per_step)


def physical_memory():
    """Bytes of physical memory of this machine, or None where the system does not say."""
    try:
        size = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return size if size > 0 else None


OPTIMIZERS = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop,
              "sgd": optim.SGD, "adagrad": optim.Adagrad}

# What a checkpoint must agree with to be resumed: the options that shape the
# model, the data and the updates (the rest may change between runs).
_RESUME_OPTIONS = ("cell", "hidden", "layers", "dropout", "dtype", "optimizer", "lr", "batch",
                   "seq_len", "clip", "val_frac", "seed")


def _check_train_args(args):
    for name in ("hidden", "seq_len", "batch", "steps", "layers"):
        check_int(f"--{name.replace('_', '-')}", getattr(args, name), 1)
    check_float("--lr", args.lr)
    check_float("--clip", args.clip, zero_means="no clipping")
    if not (math.isfinite(args.dropout) and 0 <= args.dropout < 1):
        fail(f"--dropout must be a number in [0, 1); got {args.dropout}")
    if not (math.isfinite(args.val_frac) and 0 <= args.val_frac < 1):
        fail(f"--val-frac must be a number in [0, 1) (0 = no validation); got {args.val_frac}")
    check_int("--sample-every", args.sample_every, 0, " (0 = never)")
    check_int("--eval-every", args.eval_every, 0, " (0 = only at the end)")
    check_int("--checkpoint-every", args.checkpoint_every, 0, " (0 = only when stopped)")
    check_int("--seed", args.seed, 0)
    for option, path in (("--save", args.save), ("--checkpoint", args.checkpoint),
                         ("--log", args.log)):
        if path:
            check_output_path(option, path)
    if args.plot:
        check_plot_path("--plot", args.plot)
    if args.resume and not os.path.isfile(args.resume):
        fail(f"--resume {args.resume}: no such file" if not os.path.exists(args.resume)
             else f"--resume {args.resume}: not a file")
    checkpoint = ("--checkpoint" if args.checkpoint else "--checkpoint (default)",
                  _checkpoint_path(args))
    # continuing from the checkpoint that the run writes again is the usual way to resume
    check_distinct_files([("--save", args.save), checkpoint, ("--log", args.log),
                          ("--plot", args.plot)],
                         inputs=[("FILE", args.file), ("--resume", args.resume)],
                         allowed={(checkpoint[0], "--resume")})


def _checkpoint_path(args):
    """Where checkpoints go: ``--checkpoint``, else MODEL.npz.ckpt.npz or checkpoint.npz."""
    if args.checkpoint:
        return args.checkpoint
    return args.save + ".ckpt.npz" if args.save else "checkpoint.npz"


def _check_training_size(args, n_vocab, seq_len):
    """Refuse a model that cannot fit the machine, before allocating it."""
    if args.hidden * seq_len > INT_MAX:
        fail(f"--hidden {args.hidden} x --seq-len {seq_len} = {args.hidden * seq_len} "
             f"exceeds the 32-bit BLAS limit {INT_MAX}")
    itemsize = 8 if args.dtype == "float64" else 4
    needed = args.layers * training_memory(n_vocab, args.hidden, args.batch, seq_len,
                                           itemsize=itemsize, cell=args.cell)
    available = physical_memory()
    if available is not None and needed > available:
        fail(f"--hidden {args.hidden} needs about {needed / 2**30:,.1f} GiB of memory "
             f"(parameters, gradients, optimizer state and one batch of {args.batch} x "
             f"{seq_len}); this machine has {available / 2**30:,.1f} GiB")


def _streams(data, batch):
    """``(inputs, targets, per_stream)``: ``batch`` parallel streams over ``data``."""
    per_stream = (len(data) - 1) // batch
    inputs = data[:per_stream * batch].reshape(batch, per_stream)
    targets = data[1:per_stream * batch + 1].reshape(batch, per_stream)
    return inputs, targets, per_stream


def evaluate(model, data, batch, seq_len):
    """Mean cross-entropy (nats per character) of ``model`` on ``data``, in evaluation mode.

    The text is read as ``batch`` parallel streams (fewer when it is short),
    in chunks of ``seq_len`` with the state carried, as training reads it.
    """
    batch = max(1, min(batch, len(data) - 1))
    inputs, targets, per_stream = _streams(data, batch)
    was_training = model.training
    model.eval()
    total, count, h = 0.0, 0, None
    try:
        for pos in range(0, per_stream, seq_len):
            X, Y = inputs[:, pos:pos + seq_len], targets[:, pos:pos + seq_len]
            logits, h = model.forward(X, h, return_state=True)
            z = logits.astype(np.float64)
            z -= z.max(axis=-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
            total -= float(np.take_along_axis(logp, Y[..., None], axis=-1).sum())
            count += Y.size
    finally:
        model.train(was_training)
    return total / count


def _reason(exc):
    """What went wrong in an ``OSError``, in a few words: ``No space left on device``."""
    return exc.strerror or str(exc) or type(exc).__name__


class _Log:
    """The ``--log`` file: one JSON record a line.  A failing write (a full disk) warns once
    and ends the log, not the training."""

    def __init__(self, path, progress):
        self.path, self.progress, self.file = path, progress, None
        if path:
            try:
                self.file = open(path, "a", encoding="utf-8")
            except OSError as exc:
                self._failed(exc)

    def write(self, record):
        if self.file is None:
            return
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc):
        self.progress.warn(f"--log {self.path}: {_reason(exc)}; no more records are written to "
                           "it (training goes on)")
        self.close()

    def close(self):
        file, self.file = self.file, None
        if file is not None:
            try:
                file.close()
            except OSError:           # the records that could not be written
                pass


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


def _write_checkpoint(path, args, vocab, model, opt, step, pos, h, smooth, curve, history,
                      comm=None, text_digest=None, fallback=False):
    """Write a checkpoint (collective with several ranks: rank 0 writes the whole batch's
    carried state and every rank's dropout generator).

    Returns :func:`_write_somewhere`'s ``(path written, error)``: a failing write is
    retried in a fallback path only when the run stops (``fallback``).
    """
    rng = None if model._rnn is None else model._rnn._dropout_rng.bit_generator.state
    states = [] if h is None else (list(h) if isinstance(h, tuple) else [h])
    if comm is not None:
        rngs = comm.gather(rng, root=0)
        gathered = [comm.gather(a, root=0) for a in states]
        if comm.Get_rank() != 0:
            return path, None
        states = [np.concatenate(parts, axis=_batch_axis(model)) for parts in gathered]
    else:
        rngs = [rng]
    meta = {"config": {k: getattr(args, k) for k in _RESUME_OPTIONS}, "vocab": "".join(vocab),
            "step": step, "pos": pos, "smooth": smooth, "rngs": rngs,
            "world_size": 1 if comm is None else comm.Get_size(),
            "state_kind": None if h is None else ("tuple" if isinstance(h, tuple) else "array"),
            "optimizer": {"steps": opt.steps,
                          "hyperparameters": {k: getattr(opt, k) for k in
                                              opt._HYPERPARAMETERS}},
            "history": history, "source": str(args.file), "text_sha256": text_digest}
    arrays = _checkpoint_arrays(model, opt, states, curve)
    return _write_somewhere(lambda p: save_checkpoint(p, meta, arrays), path, fallback)


def _restore(args, vocab, model, opt, comm=None, rows=None, text_digest=None):
    """Load ``args.resume`` into ``model`` and ``opt``; return the loop's state.

    The checkpoint must come from the same text (its SHA-256 ``text_digest``);
    one written before checkpoints recorded it is accepted with a note.

    With several ranks, each takes its ``rows`` of the carried state and its own
    dropout generator; the checkpoint must come from as many ranks.
    """
    try:
        meta, arrays = load_checkpoint(args.resume)
    except CheckpointError as exc:
        fail(f"--resume {exc}")
    except OSError as exc:
        fail(f"--resume {args.resume}: {exc.strerror or type(exc).__name__}")
    try:
        config, saved_vocab = meta["config"], meta["vocab"]
        step, pos = int(meta["step"]), int(meta["pos"])
    except (KeyError, TypeError, ValueError):
        fail(f"--resume {args.resume}: a checkpoint without its step, position or settings")
    for option in _RESUME_OPTIONS:
        if config.get(option) != getattr(args, option):
            flag = "--" + option.replace("_", "-")
            fail(f"--resume {args.resume} was trained with {flag} {config.get(option)}; "
                 f"this run has {flag} {getattr(args, option)} (use the same settings)")
    if saved_vocab != "".join(vocab):
        fail(f"--resume {args.resume}: the checkpoint's vocabulary ({len(saved_vocab)} "
             f"characters) differs from {args.file}'s ({len(vocab)}): not the same text")
    saved_digest = meta.get("text_sha256")
    if saved_digest is None:
        if comm is None or comm.Get_rank() == 0:
            print(f"note: --resume {args.resume} does not record which text it was trained "
                  f"on (an older checkpoint); assuming {args.file}", file=sys.stderr,
                  flush=True)
    elif text_digest is not None and saved_digest != text_digest:
        fail(f"--resume {args.resume} was trained on another text than {args.file} (same "
             "characters, other contents: the SHA-256 differs); resume with the same text")
    if step > args.steps:
        fail(f"--resume {args.resume} is at step {step}, past --steps {args.steps}")
    size = 1 if comm is None else comm.Get_size()
    if int(meta.get("world_size", 1)) != size:
        fail(f"--resume {args.resume} was written by {meta.get('world_size', 1)} MPI rank(s); "
             f"this run has {size}: resume with the same number (mpiexec -n "
             f"{meta.get('world_size', 1)})")
    try:
        for name, p in model.parameters.items():
            a = arrays[f"model/{name}"]
            if a.shape != p.shape or a.dtype != p.dtype:
                raise ValueError(f"parameter {name} is {a.dtype} {a.shape}")
            p[...] = a
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
        rank = 0 if comm is None else comm.Get_rank()
        if model._rnn is not None and rngs[rank] is not None:
            model._rnn._dropout_rng.bit_generator.state = rngs[rank]
        curve = list(arrays["curve/train"])
    except (KeyError, ValueError, TypeError) as exc:
        fail(f"--resume {args.resume} does not fit this model: {exc}")
    return step, pos, h, meta.get("smooth"), curve, list(meta.get("history", []))


def _say_adjustments(args, seq_len, per_stream):
    """One ``note:`` line (stderr) for each option the run cannot follow as given."""
    if seq_len < args.seq_len:
        print(f"note: --seq-len {args.seq_len} is longer than each of the {args.batch} "
              f"streams of {args.file} ({per_stream} characters); using --seq-len {seq_len}",
              file=sys.stderr, flush=True)
    if args.eval_every and not args.val_frac:
        print(f"note: --eval-every {args.eval_every} without --val-frac holds no text out: "
              "each evaluation records only the training loss (in --log)", file=sys.stderr,
              flush=True)


def _restore_agreed(args, vocab, model, opt, comm, rows, text_digest):
    """:func:`_restore`; with several ranks, all fail together when any cannot resume (the
    first refusal said once, by rank 0), so that none waits for the others."""
    try:
        restored, refusal = _restore(args, vocab, model, opt, comm, rows, text_digest), None
    except SystemExit as exc:
        restored, refusal = None, str(exc.code)
    if comm is None:
        if refusal is not None:
            raise SystemExit(refusal)
        return restored
    refusals = comm.allgather(refusal)
    for rank, message in enumerate(refusals):
        if message is not None:
            raise _AllRanksExit(message if rank == 0 else f"rank {rank}: {message}")
    return restored


def _plot(path, curve, history):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(1, len(curve) + 1), curve, label="training loss (smoothed)")
    val = [(r["step"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class _AllRanksExit(SystemExit):
    """An error every rank detected alike: each exits on its own, no abort needed."""


def train(args):
    """``python -m rnnfast train``; with several MPI ranks, data-parallel (see _train)."""
    try:
        comm = distributed.world()
    except RuntimeError as exc:
        fail(str(exc))
    if comm is None:
        return _train(args, None)
    rank = comm.Get_rank()
    # "setup": every rank checks the same arguments and text alike; "alone": the ranks are
    # done with collectives (only rank 0 still writes files)
    phase = {"setup": True, "alone": False}
    try:
        return _train(args, comm, phase)
    except _AllRanksExit as exc:
        if phase["setup"] or rank == 0:
            raise
        raise SystemExit(1) from None     # said once, by rank 0
    except SystemExit as exc:
        if exc.code in (None, 0) or phase["setup"] or phase["alone"]:
            raise
        # the others may be waiting in a collective: end the whole job, naming this rank
        print(f"rank {rank}: {exc.code}", file=sys.stderr, flush=True)
        comm.Abort(exc.code if isinstance(exc.code, int) else 1)
    except BaseException as exc:
        print(f"rank {rank} failed ({type(exc).__name__}: {' '.join(str(exc).split())}); "
              "ending all ranks", file=sys.stderr, flush=True)
        comm.Abort(1)


def _consistency(args, text, comm):
    """Refuse, on every rank alike, ranks started with other arguments or another text."""
    if comm is None:
        return
    settings = {k: v for k, v in sorted(vars(args).items()) if k not in ("func", "file")}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()
                            + text.encode("utf-8")).hexdigest()
    digests = comm.allgather(digest)
    odd = [r for r, d in enumerate(digests) if d != digests[0]]
    if odd:
        raise _AllRanksExit(f"error: MPI rank(s) {', '.join(map(str, odd))} started with other "
                            "arguments or another text than rank 0; every rank must run the "
                            "same command on the same file")


def _train(args, comm, phase=None):
    """The training loop.  With ``comm`` (several MPI ranks), ``--batch`` is the global batch:
    each rank runs its equal share of the streams, the gradients are averaged before clipping
    and the step, and only rank 0 prints, evaluates, samples and writes files.

    SIGINT and SIGTERM are caught from the start (so that one arriving during the setup,
    on any rank, still stops every rank after the same step, with a checkpoint)."""
    with _Stop() as stop:
        return _train_body(args, comm, phase, stop)


def _train_body(args, comm, phase, stop):
    rank = 0 if comm is None else comm.Get_rank()
    size = 1 if comm is None else comm.Get_size()
    root = rank == 0

    def say(*a, **k):
        if root:
            print(*a, **k)

    if comm is not None:
        # every rank reads its arguments and text before any check, so that ranks that
        # differ are told so together (a rank failing alone would leave the others waiting)
        try:
            text = read_text(args.file)
        except SystemExit as exc:
            text, unreadable = "", exc
        else:
            unreadable = None
        _consistency(args, text, comm)
        if unreadable is not None:           # unreadable alike on every rank
            raise unreadable
        if args.batch % size:
            raise _AllRanksExit(f"error: --batch {args.batch} is the global batch; {size} MPI "
                                f"ranks need a multiple of {size} to share it equally")
    _check_train_args(args)
    if comm is None:
        text = read_text(args.file)
    vocab = sorted(set(text))
    text_digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    index = {c: i for i, c in enumerate(vocab)}
    data = np.array([index[c] for c in text], dtype=np.intp)
    n_val = int(len(data) * args.val_frac)
    if args.val_frac and n_val < 2:
        fail(f"--val-frac {args.val_frac} leaves {n_val} characters of {args.file} for "
             "validation; give a larger fraction or a longer text")
    train_data, val_data = (data[:len(data) - n_val], data[len(data) - n_val:]) if n_val \
        else (data, None)
    # batch parallel streams over the training text; each chunk is (batch, seq_len)
    if (len(train_data) - 1) // args.batch < 1:
        fail(f"{args.file} holds {len(train_data)} training characters, too few for "
             f"--batch {args.batch}")
    inputs, targets, per_stream = _streams(train_data, args.batch)
    rows = distributed.shard(args.batch, comm)
    inputs, targets = inputs[rows], targets[rows]          # this rank's streams
    seq_len = min(args.seq_len, per_stream)
    _check_training_size(args, len(vocab), seq_len)
    if root:
        _say_adjustments(args, seq_len, per_stream)
    checkpoint = _checkpoint_path(args)
    check_output_path("--checkpoint", checkpoint)
    dtype = np.float64 if args.dtype == "float64" else np.float32
    if phase is not None:
        phase["setup"] = False      # from here on a failure may strand the other ranks
    if comm is not None:
        pids = comm.gather(os.getpid(), root=0)
        say(f"MPI: {size} ranks (pids {', '.join(map(str, pids or []))}), "
            f"{args.batch // size} streams each", flush=True)

    say(f"training on {args.file}: {len(text)} characters ({len(train_data)} training, "
          f"{n_val} validation), vocabulary {len(vocab)}, {args.cell} cell, "
          f"{args.layers} layer{'s' if args.layers > 1 else ''} of {args.hidden}, batch "
          f"{args.batch} x {seq_len} steps, {args.optimizer} lr {args.lr:g}; checkpoints "
          f"go to {checkpoint}", flush=True)
    progress = log = None
    seconds = 0.0
    try:
        model = RNNModel(len(vocab), args.hidden, len(vocab), args.layers,
                         dropout=args.dropout, cell=args.cell, dtype=dtype, seed=args.seed)
        model.metadata = {"vocab": "".join(vocab), "source": str(args.file)}
        distributed.broadcast_parameters(model.parameters, comm)
        opt = OPTIMIZERS[args.optimizer](model.parameters, lr=args.lr)
        start_step, pos, h, smooth, curve, history = 0, 0, None, None, [], []
        written = None                    # the step of the last checkpoint written
        if args.resume:
            start_step, pos, h, smooth, curve, history = _restore_agreed(
                args, vocab, model, opt, comm, rows, text_digest)
            say(f"resumed from {args.resume} at step {start_step}", flush=True)
        progress = _Progress(args.steps, root and sys.stderr.isatty() and not args.quiet)
        log = _Log(args.log if root else None, progress)
        start = time.perf_counter()
        step = start_step

        def evaluation(step):
            if not root:
                return
            record = {"step": step, "train_loss": smooth,
                      "chars_per_second": (step - start_step) * args.batch * seq_len
                      / max(time.perf_counter() - start, 1e-9)}
            if val_data is not None:
                loss = evaluate(model, val_data, args.batch, seq_len)
                record.update(val_loss=loss, val_bpc=loss / math.log(2))
                progress.write(f"step {step}: training loss {smooth:.4f}, validation loss "
                               f"{loss:.4f} ({loss / math.log(2):.3f} bits per character)")
            history.append(record)
            log.write(record)

        for step in range(start_step + 1, args.steps + 1):
            if pos + seq_len > per_stream:
                pos, h = 0, None          # back to the start of every stream
            X = inputs[:, pos:pos + seq_len]
            Y = targets[:, pos:pos + seq_len]
            loss, grads, h = model.loss_and_grads(X, Y, h, return_state=True)
            signum = stop.signal              # what this step decides on (a later one waits)
            if comm is not None:
                # the mean gradient of the global batch, the global loss, and whether any
                # rank was signalled: every rank decides on the same, agreed value
                distributed.allreduce_gradients(grads, comm)
                loss, sigint, sigterm = distributed.allreduce_mean(
                    [loss, signum == signal.SIGINT, signum == signal.SIGTERM], comm)
                signum = signal.SIGTERM if sigterm else signal.SIGINT if sigint else None
            if args.clip > 0:             # 0 = no clipping
                clip_grad_norm(grads, args.clip)
            opt.step(grads)
            pos += seq_len
            smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
            curve.append(smooth)
            elapsed = time.perf_counter() - start
            rate = (step - start_step) / elapsed
            progress.update(step, smooth, rate * args.batch * seq_len,
                            (args.steps - step) / rate)
            if root and args.sample_every and step % args.sample_every == 0:
                progress.write(f"--- step {step}, loss {smooth:.4f} ---\n"
                               f"{sample_text(model, vocab, 200, 0.8, seed=step)}\n---")
            if args.eval_every and step % args.eval_every == 0:
                evaluation(step)
            if comm is None:
                signum = stop.signal          # alone, any signal so far stops after this step
            if signum is not None or (args.checkpoint_every
                                      and step % args.checkpoint_every == 0):
                where, error = _write_checkpoint(checkpoint, args, vocab, model, opt, step, pos,
                                                 h, smooth, curve, history, comm, text_digest,
                                                 fallback=signum is not None)
                if error is None:
                    written = step
                    if signum is None and root:
                        progress.write(f"step {step}: checkpoint written to {checkpoint}")
                elif signum is None:
                    progress.warn(f"could not write the checkpoint {checkpoint} at step {step} "
                                  f"({_reason(error)}); training goes on")
            if signum is not None:
                progress.close()
                progress = None
                name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
                if error is None:
                    say(f"stopped by {name} after step {step}; checkpoint written to "
                        f"{checkpoint} (continue with --resume {checkpoint})", flush=True)
                elif where is not None:
                    say(f"stopped by {name} after step {step}; could not write {checkpoint} "
                        f"({_reason(error)}): checkpoint written to {where} instead (continue "
                        f"with --resume {where})", flush=True)
                else:
                    print(f"error: stopped by {name} after step {step}; could not write the "
                          f"checkpoint {checkpoint} ({_reason(error)}) nor a copy in "
                          f"{tempfile.gettempdir()} or the current folder", file=sys.stderr)
                return _Stop.CODES[signum]
        seconds = time.perf_counter() - start
        if phase is not None:
            phase["alone"] = True     # no more collectives: a failure strands no other rank
        if not history or history[-1]["step"] != args.steps:
            evaluation(args.steps)
    except MemoryError:
        fail(f"out of memory training a model with --hidden {args.hidden}, --batch "
             f"{args.batch}, --seq-len {seq_len}; make them smaller")
    finally:
        if progress is not None:
            progress.close()
        if log is not None:
            log.close()
    chars = (args.steps - start_step) * args.batch * seq_len
    say(f"done: {args.steps - start_step} steps in {seconds:.2f} s "
        f"({chars / max(seconds, 1e-9):,.0f} characters/s), final smoothed loss "
        f"{smooth:.4f}" + ("" if written is None else
                           f"; last checkpoint (step {written}) in {checkpoint}"), flush=True)
    if not root:
        return 0
    if args.save:
        where, error = _write_somewhere(model.save, args.save)
        if error is not None and where is not None:
            fail(f"--save {args.save}: {_reason(error)}; the model was written to {where} "
                 "instead")
        if error is not None:
            fail(f"--save {args.save}: {_reason(error)}, and no copy could be written to "
                 f"{tempfile.gettempdir()} or the current folder"
                 + ("" if written is None else f"; the checkpoint {checkpoint} holds step "
                    f"{written}"))
        print(f"saved {args.save}")
    if args.plot:
        try:
            _plot(args.plot, curve, history)
        except OSError as exc:
            fail(f"--plot {args.plot}: {_reason(exc)}")
        print(f"plotted {args.plot}")
    return 0


def _check_sample_args(args):
    check_int("--length", args.length, 0)
    check_float("--temperature", args.temperature, zero_means="greedy: the most likely "
                "character every time")
    if args.seed is not None:
        check_int("--seed", args.seed, 0)


def model_from_checkpoint(path):
    """The model of a checkpoint written by ``train``, with its vocabulary in ``metadata``.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint (``--checkpoint``), e.g. what a stopped run left.

    Returns
    -------
    RNNModel

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        As ``open`` raises them.
    CheckpointError
        If ``path`` is not a checkpoint, or its parameters do not fit the
        configuration it records.
    """
    meta, arrays = load_checkpoint(path)
    try:
        config, vocab = meta["config"], meta["vocab"]
        model = RNNModel(len(vocab), config["hidden"], len(vocab), config["layers"],
                         dropout=config["dropout"], cell=config["cell"],
                         dtype=np.dtype(config["dtype"]))
        for name, p in model.parameters.items():
            a = arrays[f"model/{name}"]
            if a.shape != p.shape or a.dtype != p.dtype:
                raise ValueError(f"parameter {name} is {a.dtype} {a.shape}, expected "
                                 f"{p.dtype} {p.shape}")
            p[...] = a
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: a checkpoint whose model cannot be rebuilt "
                              f"({type(exc).__name__}: {exc})") from None
    model.metadata = {"vocab": vocab, "source": meta.get("source")}
    return model


def _load_for_sampling(path):
    """The model in ``path``: a model file (``train --save``) or a checkpoint."""
    try:
        try:
            return RNNModel.load(path)
        except ValueError as not_a_model:
            try:
                return model_from_checkpoint(path)
            except CheckpointError as exc:
                # an archive with a header that is not a model's: say why it is no checkpoint
                header = "no rnnfast.RNNModel header" in str(not_a_model)
                raise (exc if header else not_a_model) from None
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except IsADirectoryError:
        fail(f"{path}: is a directory, not a model file")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or type(exc).__name__}")
    except ValueError as exc:
        fail(str(exc))


def sample(args):
    _check_sample_args(args)
    model = _load_for_sampling(args.model)
    if "vocab" not in model.metadata:
        raise SystemExit(f"error: {args.model} has no vocabulary; save it with "
                         "'python -m rnnfast train ... --save'")
    vocab = model.metadata["vocab"]
    n = model.input_size
    if not isinstance(vocab, str) or len(vocab) != n or len(set(vocab)) != n:
        got = (f"{len(vocab)} characters, {len(set(vocab))} distinct"
               if isinstance(vocab, str) else f"{type(vocab).__name__} {vocab!r}"[:80])
        raise SystemExit(f"error: {args.model}: metadata 'vocab' must be a string of "
                         f"{n} distinct characters (one per input); got {got}")
    if model.output_size != n:
        raise SystemExit(f"error: {args.model} has input_size {n} and output_size "
                         f"{model.output_size}; sampling feeds each output back in, so "
                         "they must be equal")
    unknown = sorted(set(args.prime) - set(vocab))
    if unknown:
        raise SystemExit(f"error: --prime holds characters the model never saw: "
                         f"{''.join(unknown)!r}")
    try:
        characters = sample_text_iter(model, list(vocab), args.length, args.temperature,
                                      args.prime, args.seed)
    except ValueError as exc:
        fail(str(exc))
    return _stream(args.prime, characters, sys.stdout)


def _stream(prime, characters, out, interval=0.05):
    """Write ``prime`` and ``characters`` to ``out`` as they come (flushed at each line
    and at least every ``interval`` seconds), then a newline; 0, or 130 on Ctrl-C (what was
    made is written)."""
    out.write(prime)
    last = time.monotonic()
    try:
        for c in characters:
            out.write(c)
            if c == "\n" or time.monotonic() - last >= interval:
                out.flush()
                last = time.monotonic()
    except KeyboardInterrupt:
        out.write("\n")
        out.flush()
        return 130
    out.write("\n")
    out.flush()
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Ends an option's help with ``(default: X)`` once: not when the help already states
    its default, nor for a flag or a default of None (whose help says what happens)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.default is None or isinstance(action.default, bool):
            return text
        return super()._get_help_string(action)


def add_commands(commands):
    """Add the demo, train and sample sub-commands to an argparse sub-parser set."""
    p = commands.add_parser("demo", help="train 'apple' -> 'pple!' with RNNModel + Adam",
                            formatter_class=_HelpFormatter,
                            description="The apple example: RNNModel + Adam(lr=0.1), "
                                        "100 iterations.")
    p.add_argument("--iterations", type=int, default=100, help="Adam steps")
    p.add_argument("--lr", type=float, default=0.1, help="Adam's learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="the model's floating-point type")
    p.add_argument("--compare-torch", action="store_true",
                   help="also train the PyTorch original from the same weights and time both "
                        "(default: rnnfast alone)")
    p.set_defaults(func=demo)

    p = commands.add_parser(
        "train", help="train a char-level model on a UTF-8 text file",
        formatter_class=_HelpFormatter,
        description="Char-level language model on a text file: truncated BPTT with the "
                    "hidden state carried across chunks. Ctrl-C or SIGTERM finish the current "
                    "step, write a checkpoint and exit (130 / 143); --resume continues it "
                    "exactly.")
    p.add_argument("file", help="a UTF-8 text file")
    p.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="rnn",
                   help="the recurrent cell; saved with the model")
    p.add_argument("--hidden", type=int, default=128, help="hidden units per layer")
    p.add_argument("--layers", type=int, default=1, help="recurrent layers")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout between layers while training, in [0, 1)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="the model's floating-point type")
    p.add_argument("--seq-len", type=int, default=25,
                   help="characters per chunk (steps of truncated BPTT)")
    p.add_argument("--batch", type=int, default=16, help="parallel streams over the text")
    p.add_argument("--steps", type=int, default=1000,
                   help="total optimizer steps (a resumed run continues to this total)")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam",
                   help="update rule, with torch.optim's defaults besides --lr")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate")
    p.add_argument("--clip", type=float, default=5.0,
                   help="max gradient norm; 0 = no clipping")
    p.add_argument("--val-frac", type=float, default=0.0, metavar="F",
                   help="hold out the last fraction F of the text for validation; 0 = none")
    p.add_argument("--eval-every", type=int, default=0, metavar="K",
                   help="report the validation loss and bits per character every K steps "
                        "(and at the end); 0 = at the end only")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K",
                   help="write a checkpoint every K steps; 0 = only when stopped by a signal")
    p.add_argument("--checkpoint", metavar="CKPT.npz", default=None,
                   help="where checkpoints go (default: MODEL.npz.ckpt.npz with --save, "
                        "else checkpoint.npz)")
    p.add_argument("--resume", metavar="CKPT.npz", default=None,
                   help="continue from a checkpoint, with the same settings and text, to "
                        "--steps (default: start afresh)")
    p.add_argument("--sample-every", type=int, default=0, metavar="K",
                   help="print 200 sampled characters every K steps; 0 = never")
    p.add_argument("--save", metavar="MODEL.npz",
                   help="save the trained model here (default: not saved)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="plot the training and validation loss curves, in a format named by "
                        "the extension (needs matplotlib; default: no plot)")
    p.add_argument("--log", metavar="FILE.jsonl",
                   help="append one JSON record per evaluation (step, losses, speed) "
                        "(default: no log)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and dropout")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (default: a progress bar on a terminal)")
    p.set_defaults(func=train)

    p = commands.add_parser("sample", help="generate text from a trained model",
                            formatter_class=_HelpFormatter,
                            description="Generate text from a model saved by 'train --save', "
                                        "or from a checkpoint written by 'train'.")
    p.add_argument("model", help="a model file saved by 'train --save', or a checkpoint "
                                 "written by 'train'")
    p.add_argument("--length", type=int, default=200,
                   help="characters to generate (printed as they are made)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="any non-negative finite number: below 1 sharpens the distribution, "
                        "0 picks the most likely character every time, above 1 flattens it")
    p.add_argument("--prime", default="",
                   help="text the model reads first, printed before what it makes (default: "
                        "none, the first character is drawn uniformly)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the sampling (default: a fresh random seed each run)")
    p.set_defaults(func=sample)
