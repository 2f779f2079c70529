"""Text for char-level models: reading a corpus, its vocabulary, parallel streams over it,
and generating text from a model.

Everything here raises exceptions (:class:`TextFileError`, ``ValueError``);
nothing prints or exits.
"""

import numbers
from pathlib import Path

import numpy as np

from rnnfast import _kernels
from rnnfast.reference import pick_index

__all__ = ["EXAMPLE_TEXT", "TextFileError", "encode", "generate", "generate_iter", "read_text",
           "sample_text", "sample_text_iter", "streams", "vocabulary"]

#: A small text to try the char model on: the opening scenes of Shakespeare's *Coriolanus*
#: (public domain; about 40,000 characters, 58 distinct ones), shipped with the package.
EXAMPLE_TEXT = Path(__file__).parent / "data" / "coriolanus.txt"


class TextFileError(ValueError):
    """A file that cannot be trained on.

    Raised by :func:`read_text` when the file is missing, unreadable, empty, binary, not
    UTF-8 or too short; the message names the file and says why.
    """


def read_text(path):
    """Read a UTF-8 text file to train on.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    text : str
        The whole content of the file, decoded as UTF-8.

    Raises
    ------
    TextFileError
        If ``path`` does not exist, is a directory, cannot be read, is empty,
        holds NUL bytes (binary), is not UTF-8 or holds fewer than 2
        characters.

    Examples
    --------
    >>> from rnnfast.text import EXAMPLE_TEXT, read_text
    >>> text = read_text(EXAMPLE_TEXT)
    >>> len(text)
    40036
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise TextFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TextFileError(f"{path}: is a directory, not a text file") from None
    except OSError as exc:
        raise TextFileError(f"{path}: {exc.strerror}") from None
    if not raw:
        raise TextFileError(f"{path} is empty; give a UTF-8 text file to train on")
    if b"\0" in raw:
        raise TextFileError(f"{path} looks binary (it holds NUL bytes); give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextFileError(f"{path} is not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start})") from None
    if len(text) < 2:
        raise TextFileError(f"{path} holds {len(text)} character; need at least 2")
    return text


def vocabulary(text):
    """List the distinct characters of a text, sorted.

    The class of a character (its input and target index in the char model) is its
    index in this list.

    Parameters
    ----------
    text : str
        The corpus.

    Returns
    -------
    vocab : list of str
        The distinct characters of ``text``, each once, in code-point order.

    Examples
    --------
    >>> from rnnfast.text import vocabulary
    >>> vocabulary("banana")
    ['a', 'b', 'n']
    """
    return sorted(set(text))


def encode(text, vocab):
    """Turn a text into the class indices of its characters.

    Parameters
    ----------
    text : str
        The text to encode.
    vocab : sequence of str
        The character of each class, as made by :func:`vocabulary`.

    Returns
    -------
    data : ndarray of shape (len(text),), dtype intp
        ``data[i]`` is the index of ``text[i]`` in ``vocab``.

    Raises
    ------
    KeyError
        If ``text`` holds a character that is not in ``vocab``.

    Examples
    --------
    >>> from rnnfast.text import encode, vocabulary
    >>> encode("banana", vocabulary("banana")).tolist()
    [1, 0, 2, 0, 2, 0]
    """
    index = {c: i for i, c in enumerate(vocab)}
    return np.array([index[c] for c in text], dtype=np.intp)


def streams(data, batch):
    """Cut encoded data into ``batch`` parallel streams of inputs and next-character targets.

    Stream ``i`` reads ``per_stream = (len(data) - 1) // batch`` characters
    from position ``i * per_stream``; its targets are the characters one
    position further on.  The last characters that do not fill a stream are
    dropped.

    Parameters
    ----------
    data : ndarray of shape (n,) of int
        The encoded corpus (see :func:`encode`).
    batch : int
        Number of streams, at least 1 and at most ``n - 1``.

    Returns
    -------
    inputs : ndarray of shape (batch, per_stream)
        The characters each stream reads, a view of ``data`` when it can be.
    targets : ndarray of shape (batch, per_stream)
        The character that follows each input.
    per_stream : int
        The length of each stream.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnfast.text import streams
    >>> inputs, targets, per_stream = streams(np.arange(11), 2)
    >>> per_stream
    5
    >>> inputs.tolist()
    [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    >>> targets.tolist()
    [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    """
    per_stream = (len(data) - 1) // batch
    inputs = data[:per_stream * batch].reshape(batch, per_stream)
    targets = data[1:per_stream * batch + 1].reshape(batch, per_stream)
    return inputs, targets, per_stream


def generate(model, vocab, length, *, temperature=1.0, top_k=None, top_p=None, prime="",
             seed=None, streams=1):
    """Generate ``streams`` independent texts of ``length`` characters, after ``prime``.

    Each stream reads ``prime`` (without one, its first character is drawn
    uniformly), then draws each character from the model's prediction and
    feeds it back.  An :class:`~rnnfast.RNNModel` (every model ``python -m
    rnnfast train`` makes: any ``--cell``, ``--layers``, ``--dropout``) runs
    the whole loop, every stream at once, in compiled code; any other object
    with the same ``forward`` runs the same rule one ``forward`` per character.

    Parameters
    ----------
    model : RNNModel
        The model, with ``input_size == output_size == len(vocab)``.  Any
        object with the same ``forward(X, h, return_state=True)`` works (one
        ``forward`` per character).
    vocab : sequence of str
        The character of each class index.
    length : int
        Characters to generate in each stream, at least 0.
    temperature : float, default 1.0
        Any non-negative finite number: 1 samples the model's distribution, a
        smaller one sharpens it, 0 takes the most likely character every time
        (greedy: the lowest index among equal logits), a larger one flattens it.
    top_k : int or None, default None
        Draw only among the ``top_k`` most likely characters (ties: the lower
        index first); at least 1 (1 is greedy); None, or at least the size of
        the vocabulary, keeps every character.
    top_p : float or None, default None
        Nucleus sampling: draw only among the most likely characters whose
        probabilities (after ``temperature`` and ``top_k``) add up to at least
        ``top_p``; in ``(0, 1]`` (a tiny one is greedy; None or 1 keeps every
        character).
    prime : str, default ""
        Text each stream reads first; not part of the result.
    seed : int or None, default None
        Makes the result repeatable: the same number gives the same texts
        (None: different texts each call).
    streams : int, default 1
        Independent texts generated together, at least 1.

    Returns
    -------
    texts : list of str
        ``streams`` strings of ``length`` characters.

    Raises
    ------
    ValueError
        If an argument is out of its range, ``prime`` holds characters outside
        ``vocab``, or the model's sizes do not match ``vocab``.
    TypeError
        If ``length``, ``top_k``, ``streams`` or ``seed`` is not an integer, or
        ``temperature`` or ``top_p`` not a real number.

    See Also
    --------
    generate_iter : The same texts in chunks, as they are made.
    sample_text : One text, with positional arguments.

    Notes
    -----
    Every draw consumes one uniform number of ``numpy.random.default_rng(seed)``,
    ``rng.random((n, streams))`` per chunk of ``n`` steps, and picks the first
    character whose running sum of probabilities (in vocabulary order, float64)
    exceeds it: :func:`rnnfast.reference.pick_index` states the rule, and
    :func:`rnnfast.reference.generate_steps` (the fused model) and
    :func:`rnnfast.reference.generate_stack_steps` (the others) are the NumPy
    twins of the compiled loop.  The model is in evaluation mode (no dropout)
    while it generates and back in its former mode afterwards.

    Examples
    --------
    >>> import rnnfast
    >>> from rnnfast.text import generate
    >>> vocab = list("abc ")
    >>> model = rnnfast.RNNModel(len(vocab), 8, len(vocab), seed=0)
    >>> texts = generate(model, vocab, 12, prime="ab", top_k=2, seed=1, streams=3)
    >>> len(texts), [len(t) for t in texts]
    (3, [12, 12, 12])
    >>> generate(model, vocab, 12, seed=1) == generate(model, vocab, 12, seed=1)
    True
    """
    texts = [[] for _ in range(streams if isinstance(streams, numbers.Integral) else 1)]
    for chunk in generate_iter(model, vocab, length, temperature=temperature, top_k=top_k,
                               top_p=top_p, prime=prime, seed=seed, streams=streams):
        for parts, piece in zip(texts, chunk, strict=True):
            parts.append(piece)
    return ["".join(parts) for parts in texts]


def generate_iter(model, vocab, length, *, temperature=1.0, top_k=None, top_p=None, prime="",
                  seed=None, streams=1, chunk=64):
    """The texts of :func:`generate`, in chunks as they are made.

    The arguments are checked at the call, before any character is made;
    ``length`` may be as large as wanted (the texts are never held whole).

    Parameters
    ----------
    model : RNNModel
        The model, as for :func:`generate`.
    vocab : sequence of str
        The character of each class index.
    length : int
        Characters to generate in each stream, at least 0.
    temperature : float, default 1.0
        Any non-negative finite number: 1 samples the model's distribution, a
        smaller one sharpens it, 0 takes the most likely character every time
        (greedy: the lowest index among equal logits), a larger one flattens it.
    top_k : int or None, default None
        Draw only among the ``top_k`` most likely characters (ties: the lower
        index first); at least 1 (1 is greedy); None, or at least the size of
        the vocabulary, keeps every character.
    top_p : float or None, default None
        Nucleus sampling: draw only among the most likely characters whose
        probabilities (after ``temperature`` and ``top_k``) add up to at least
        ``top_p``; in ``(0, 1]`` (a tiny one is greedy; None or 1 keeps every
        character).
    prime : str, default ""
        Text each stream reads first; not yielded.
    seed : int or None, default None
        Seed of the draws (None: different texts each call).
    streams : int, default 1
        Independent texts generated together, at least 1.
    chunk : int, default 64
        Characters per stream in each chunk but the last, at least 1 (and
        ``chunk * streams`` at most 2**24).  It does not change the texts.

    Returns
    -------
    chunks : iterator of list of str
        Yields, for each chunk, a list of ``streams`` strings of the same
        length: the next characters of each stream.

    Raises
    ------
    ValueError, TypeError
        At the call, as :func:`generate`.

    See Also
    --------
    generate : The whole texts.

    Examples
    --------
    >>> import rnnfast
    >>> from rnnfast.text import generate, generate_iter
    >>> vocab = list("abc ")
    >>> model = rnnfast.RNNModel(len(vocab), 8, len(vocab), seed=0)
    >>> chunks = list(generate_iter(model, vocab, 10, seed=2, chunk=4))
    >>> [len(c[0]) for c in chunks]
    [4, 4, 2]
    >>> "".join(c[0] for c in chunks) == generate(model, vocab, 10, seed=2)[0]
    True
    """
    options = _check_options(model, vocab, length, temperature, top_k, top_p, prime, seed,
                             streams, chunk)
    if _compiled(model):
        return _compiled_chunks(model, vocab, length, options)
    return _forward_chunks(model, vocab, length, options)


def sample_text(model, vocab, length, temperature=1.0, prime="", seed=None, *, top_k=None,
                top_p=None):
    """Generate ``length`` characters, starting after ``prime`` (or a random character).

    Parameters
    ----------
    model : RNNModel
        The model to sample, with ``input_size == output_size == len(vocab)``.
        Any object with the same ``forward(X, h, return_state=True)`` works.
    vocab : sequence of str
        The character of each class index.
    length : int
        Number of characters to generate.
    temperature : float, default 1.0
        Any non-negative finite number: 1 samples the model's distribution, a
        smaller one sharpens it, 0 takes the most likely character every time
        (greedy), a larger one flattens it.
    prime : str, default ""
        Text the model reads first; not part of the result.
    seed : int or None, default None
        Makes the sampling repeatable: the same number gives the same text
        (None: different text each call).
    top_k : int or None, default None, keyword-only
        Draw only among the ``top_k`` most likely characters (see :func:`generate`).
    top_p : float or None, default None, keyword-only
        Nucleus sampling (see :func:`generate`).

    Returns
    -------
    text : str
        The ``length`` generated characters: ``generate(...)[0]`` with one stream.

    Raises
    ------
    ValueError
        If ``temperature`` is not a non-negative finite number or ``prime`` holds
        characters outside ``vocab`` (and as :func:`generate`).

    See Also
    --------
    sample_text_iter : The same characters, one at a time as they are made.
    generate : Several streams at once.

    Notes
    -----
    The model is in evaluation mode (no dropout) while it generates and back in
    its former mode afterwards.

    Examples
    --------
    >>> import rnnfast
    >>> from rnnfast.text import sample_text
    >>> vocab = list("abc ")
    >>> model = rnnfast.RNNModel(len(vocab), 8, len(vocab), seed=0)
    >>> text = sample_text(model, vocab, 12, prime="ab", seed=1)
    >>> len(text), set(text) <= set(vocab)
    (12, True)
    >>> sample_text(model, vocab, 12, seed=1) == sample_text(model, vocab, 12, seed=1)
    True
    """
    return generate(model, vocab, length, temperature=temperature, top_k=top_k, top_p=top_p,
                    prime=prime, seed=seed)[0]


def sample_text_iter(model, vocab, length, temperature=1.0, prime="", seed=None, *,
                     top_k=None, top_p=None):
    """The characters of :func:`sample_text`, yielded one at a time as they are made.

    The arguments are checked at the call, before any character is made
    (``ValueError`` as in :func:`sample_text`); ``length`` may be as large as
    wanted.  The model is in evaluation mode (no dropout) while the iterator
    runs and back in its former mode when it ends or is closed.

    Parameters
    ----------
    model : RNNModel
        The model to sample, with ``input_size == output_size == len(vocab)``.
    vocab : sequence of str
        The character of each class index.
    length : int
        Number of characters to generate.
    temperature : float, default 1.0
        Any non-negative finite number; 0 is greedy (see :func:`sample_text`).
    prime : str, default ""
        Text the model reads first; not yielded.
    seed : int or None, default None
        Seed of the sampling (None: different text each call).
    top_k : int or None, default None, keyword-only
        Draw only among the ``top_k`` most likely characters (see :func:`generate`).
    top_p : float or None, default None, keyword-only
        Nucleus sampling (see :func:`generate`).

    Returns
    -------
    chars : iterator of str
        Yields ``length`` characters, one per step of the model.

    Raises
    ------
    ValueError
        At the call, if ``temperature`` is not a non-negative finite number or
        ``prime`` holds characters outside ``vocab`` (and as :func:`generate`).

    See Also
    --------
    sample_text : The same characters joined into one string.
    generate_iter : The characters in chunks, for several streams.

    Examples
    --------
    >>> import rnnfast
    >>> from rnnfast.text import sample_text, sample_text_iter
    >>> vocab = list("abc ")
    >>> model = rnnfast.RNNModel(len(vocab), 8, len(vocab), seed=0)
    >>> chars = sample_text_iter(model, vocab, 5, seed=3)
    >>> "".join(chars) == sample_text(model, vocab, 5, seed=3)
    True
    """
    chunks = generate_iter(model, vocab, length, temperature=temperature, top_k=top_k,
                           top_p=top_p, prime=prime, seed=seed)
    return (c for chunk in chunks for c in chunk[0])


_MAX_CHUNK = 1 << 24        # draws of one chunk (128 MiB of uniforms)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_options(model, vocab, length, temperature, top_k, top_p, prime, seed, streams,
                   chunk):
    """The checked sampling options as a dict; raises on the first bad argument."""
    for name, value, minimum in (("length", length, 0), ("streams", streams, 1),
                                 ("chunk", chunk, 1)):
        if not _is_int(value):
            raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
        if value < minimum:
            raise ValueError(f"{name} must be at least {minimum}; got {value}")
    if chunk * streams > _MAX_CHUNK:
        raise ValueError(f"chunk * streams must be at most {_MAX_CHUNK} (the draws of one "
                         f"chunk are held at once); got {chunk} * {streams}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a real number; got "
                        f"{type(temperature).__name__} {temperature!r}")
    if not temperature >= 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a non-negative number (0: always the most "
                         f"likely character); got {temperature}")
    if top_k is not None:
        if not _is_int(top_k):
            raise TypeError(f"top_k must be an integer or None; got "
                            f"{type(top_k).__name__} {top_k!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1 (1: always the most likely "
                             f"character; None: off); got {top_k}")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real):
            raise TypeError(f"top_p must be a real number or None; got "
                            f"{type(top_p).__name__} {top_p!r}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1: off); got {top_p}")
    if seed is not None and not _is_int(seed):
        raise TypeError(f"seed must be an integer or None; got {type(seed).__name__} {seed!r}")
    if seed is not None and seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None; got {seed}")
    if not isinstance(prime, str):
        raise TypeError(f"prime must be a str; got {type(prime).__name__}")
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted(set(prime) - set(index))
    if unknown:
        raise ValueError(f"prime holds characters the model never saw: {''.join(unknown)!r}")
    for name in ("input_size", "output_size"):
        size = getattr(model, name, len(vocab))
        if size != len(vocab):
            raise ValueError(f"vocab has {len(vocab)} characters; the model's {name} is "
                             f"{size} (generation feeds each output back in)")
    return {"temperature": float(temperature), "top_k": None if top_k is None else int(top_k),
            "top_p": None if top_p is None else float(top_p),
            "prime": [index[c] for c in prime], "seed": seed, "streams": int(streams),
            "chunk": int(chunk)}


# the cells the compiled loop runs (rnnfast._kernels.generate_layers)
_KERNEL_CELLS = ("rnn", "lstm", "gru")


def _compiled(model):
    """Whether the compiled loop runs ``model``: an RNNModel of a cell it knows (any number
    of layers; a module without biases, bidirectional or projected is not RNNModel's)."""
    from rnnfast.model import RNNModel
    if not isinstance(model, RNNModel):
        return False
    if model._rnn is None:
        return True
    rnn = model._rnn
    return (model._cell.name in _KERNEL_CELLS and rnn.bias and not rnn.bidirectional
            and not rnn.proj_size)


def _steps(length, chunk):
    """The sizes of the chunks of ``length`` steps."""
    while length > 0:
        n = min(chunk, length)
        length -= n
        yield n


def _kernel_layers(model):
    """``(cell, activation, w_x, w_ih_t, w_hh_t, biases, Wyh^T, by)`` for
    ``_kernels.generate_layers``: a checked snapshot of the parameters, every weight
    transposed (generation reads its own copy)."""
    n_h, n_y = model.hidden_size, model.output_size
    t = lambda a: np.array(a.T, order="C", copy=True)     # noqa: E731  (a transposed copy)
    if model._rnn is None:
        model._check_fused_parameters()
        p = model.parameters
        # one tanh layer: W_ih = Whx, W_hh = Whh, b_ih + b_hh = bh
        return ("rnn", _kernels.Activation.TANH, t(p["Whx"]), [], [t(p["Whh"])],
                [p["bh"].reshape(n_h).copy()], t(p["Wyh"]), p["by"].reshape(n_y).copy())
    model._check_live_parameters()
    p = model.parameters
    cell, L = model._cell.name, model.num_layers
    if cell == "gru":       # b_ih and b_hh apart: b_hn sits inside r * (h W_hn^T + b_hn)
        biases = [np.stack([p[f"bias_ih_l{k}"], p[f"bias_hh_l{k}"]]) for k in range(L)]
    else:                   # as the layer kernels take it
        biases = [p[f"bias_ih_l{k}"] + p[f"bias_hh_l{k}"] for k in range(L)]
    activation = _kernels.Activation[model._cell.nonlinearity.upper()]
    # row c of W_ih^T: layer 0's input product for character c (a one-hot row)
    return (cell, activation, t(p["weight_ih_l0"]), [t(p[f"weight_ih_l{k}"]) for k in range(1, L)],
            [t(p[f"weight_hh_l{k}"]) for k in range(L)], biases, t(p["Wyh"]),
            p["by"].reshape(n_y).copy())


def _prime_state(model, prime, streams):
    """``(h (L, streams, H), c or None)``: each stream's state after all of ``prime`` but
    its last character (which the first step reads), run by ``model.forward`` in
    evaluation mode (no dropout)."""
    L, n_h = model.num_layers, model.hidden_size
    lstm = model._rnn is not None and model._cell.name == "lstm"
    h = np.zeros((L, streams, n_h), dtype=model.dtype)
    c = np.zeros_like(h) if lstm else None
    if len(prime) > 1:
        was_training = model.training
        model.eval()
        try:
            _, state = model.forward(np.array([prime[:-1]]), return_state=True)
        finally:
            model.train(was_training)
        # (1, H) with one layer, (L, 1, H) with more; (h, c) for the LSTM
        h[:] = np.reshape(state[0] if lstm else state, (L, 1, n_h))
        if lstm:
            c[:] = np.reshape(state[1], (L, 1, n_h))
    return h, c


def _compiled_chunks(model, vocab, length, options):
    """The chunks of the compiled loop; the parameters are read and the prime is run now."""
    cell, activation, w_x, w_ih_t, w_hh_t, biases, w_yh_t, b_y = _kernel_layers(model)
    top_k = options["top_k"] or 0
    top_p = 1.0 if options["top_p"] is None else options["top_p"]
    streams, prime = options["streams"], options["prime"]
    h, c = _prime_state(model, prime, streams)
    last = np.full(streams, -1, dtype=np.intp)      # -1: no input yet, a uniform first draw
    if prime:
        last[:] = prime[-1]
    rng = np.random.default_rng(options["seed"])

    def run(uniforms):
        # h, c and last carry the state from one chunk to the next
        return _kernels.generate_layers(cell, activation, h, c, last, uniforms, w_x, w_ih_t,
                                        w_hh_t, biases, w_yh_t, b_y, options["temperature"],
                                        top_k, top_p)
    return _compiled_loop(vocab, length, options["chunk"], rng, streams, run)


def _compiled_loop(vocab, length, chunk, rng, streams, run):
    """Chunks of the compiled loop: ``run(uniforms (n, streams))`` draws ``n`` characters of
    each stream."""
    chars = np.array(list(vocab), dtype=object)
    for n in _steps(length, chunk):
        chosen = run(rng.random((n, streams)))
        yield ["".join(chars[chosen[:, i]]) for i in range(streams)]


def _forward_chunks(model, vocab, length, options):
    """The rule of the compiled loop, one ``model.forward`` per character (any model)."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()                  # no dropout while generating
    try:
        rng = np.random.default_rng(options["seed"])
        streams, prime = options["streams"], options["prime"]
        state, logits = None, None
        if prime:
            logits, state = model.forward(np.array([prime] * streams), state,
                                          return_state=True)
            logits = logits[:, -1]
        uniform = np.zeros(len(vocab))
        for n in _steps(length, options["chunk"]):
            u = rng.random((n, streams))
            pieces = [[] for _ in range(streams)]
            for t in range(n):
                if logits is None:    # no prediction yet: the first character is uniform
                    chosen = [pick_index(uniform, u[t, i]) for i in range(streams)]
                else:
                    chosen = [pick_index(logits[i], u[t, i], options["temperature"],
                                         options["top_k"], options["top_p"])
                              for i in range(streams)]
                for i, c in enumerate(chosen):
                    pieces[i].append(vocab[c])
                logits, state = model.forward(np.array(chosen)[:, None], state,
                                              return_state=True)
                logits = logits[:, -1]
            yield ["".join(piece) for piece in pieces]
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
