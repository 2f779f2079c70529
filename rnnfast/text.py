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
    """A file that cannot be trained on: missing, unreadable, empty, binary, not UTF-8 or too
    short (the message names the file and says why)."""


def read_text(path):
    """The text of ``path``.

    Raises
    ------
    TextFileError
        If ``path`` does not exist, is a directory, cannot be read, is empty,
        holds NUL bytes (binary), is not UTF-8 or holds fewer than 2
        characters.
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
    """The distinct characters of ``text``, sorted: the class of a character is its index."""
    return sorted(set(text))


def encode(text, vocab):
    """``text`` as an intp array of the indices of its characters in ``vocab``."""
    index = {c: i for i, c in enumerate(vocab)}
    return np.array([index[c] for c in text], dtype=np.intp)


def streams(data, batch):
    """``(inputs, targets, per_stream)``: ``batch`` parallel streams over ``data``.

    Stream ``i`` reads ``per_stream = (len(data) - 1) // batch`` characters
    from position ``i * per_stream``; ``targets`` are the next characters.
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
        Makes the sampling repeatable: the same number gives the same text
        (None: different text each call).

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
