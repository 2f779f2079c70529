"""Text for char-level models: reading a corpus, its vocabulary, parallel streams over it,
and generating text from a model.

Everything here raises exceptions (:class:`TextFileError`, ``ValueError``);
nothing prints or exits.
"""

from pathlib import Path

import numpy as np

__all__ = ["EXAMPLE_TEXT", "TextFileError", "encode", "read_text", "sample_text",
           "sample_text_iter", "streams", "vocabulary"]

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


def sample_text(model, vocab, length, temperature=1.0, prime="", seed=None):
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

    Returns
    -------
    text : str
        The ``length`` generated characters.

    Raises
    ------
    ValueError
        If ``temperature`` is not a non-negative finite number or ``prime`` holds
        characters outside ``vocab``.

    See Also
    --------
    sample_text_iter : The same characters, one at a time as they are made.

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
    return "".join(sample_text_iter(model, vocab, length, temperature, prime, seed))


def sample_text_iter(model, vocab, length, temperature=1.0, prime="", seed=None):
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

    Returns
    -------
    chars : iterator of str
        Yields ``length`` characters, one per step of the model.

    Raises
    ------
    ValueError
        At the call, if ``temperature`` is not a non-negative finite number or
        ``prime`` holds characters outside ``vocab``.

    See Also
    --------
    sample_text : The same characters joined into one string.

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
