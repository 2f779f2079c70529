"""Training checkpoints: everything ``python -m rnnfast train`` needs to continue exactly.

A checkpoint is an ``.npz`` archive written atomically (a temporary file in
the same folder, renamed over the target), holding the model's parameters,
the optimizer's buffers, the carried hidden state and the training curve as
arrays, and as a JSON header the step, data position, random generator state,
configuration, vocabulary and history.  A SHA-256 digest of all of it is kept
in the header: a truncated, damaged or edited file is refused on load.
Nothing in a checkpoint is ever unpickled.

.. rubric:: The file format

A checkpoint is an uncompressed ``.npz`` archive (read it with :func:`numpy.load`,
``allow_pickle=False``) holding these entries:

``__meta__``
    A 0-d unicode array: the JSON text of the header (below).
``model/<name>``
    Each parameter of the model, under its name in ``RNNModel.parameters``
    (``model/Whx``, ``model/weight_ih_l0``, ``model/Wyh``, ``model/by``...).
``opt/<name>/<buffer>``
    Each buffer the optimizer keeps for the parameter ``<name>``
    (``exp_avg`` and ``exp_avg_sq`` for Adam, ``momentum_buffer`` for SGD with
    momentum...).
``state/0``, ``state/1``
    The hidden state carried from one batch to the next, when there is one:
    ``state/0`` alone for the Elman and GRU cells, ``h`` and ``c`` for the LSTM.
    With several MPI ranks, rank 0 writes the whole batch's state.
``curve/train``
    A float64 array of the training loss at each step so far.

The header is a JSON object with the fields

``format``
    The string ``"rnnfast.checkpoint/1"`` (``FORMAT``); any other file is refused.
``config``
    The settings a resumed run must share (``cell``, ``hidden``, ``layers``,
    ``dropout``, ``dtype``, ``optimizer``, ``lr``, ``batch``, ``seq_len``,
    ``clip``, ``val_frac``, ``seed``, ``lr_decay``, ``decay_after``, ``schedule``;
    a checkpoint without the last three is read as 1.0, 10 and None), as in
    :class:`rnnfast.training.TrainSettings`.
``vocab``
    The vocabulary as one string, the character of class ``i`` at index ``i``.
``step``, ``pos``
    The number of steps taken and the position reached in the training streams.
``smooth``
    The smoothed training loss.
``rngs``
    The state of the dropout generator of each rank (``bit_generator`` state dicts).
``world_size``
    The number of MPI ranks that wrote it (1 without MPI); a run may resume it on
    another number of ranks that divides the batch.
``lr``
    The learning rate of the last step (``lr`` decayed by ``lr_decay``).
``init_from``
    The model file or checkpoint a fine-tuning run started from, or null.
``val_loss``
    Only in the best checkpoint (``train --keep-best``): its validation loss.
``state_kind``
    ``"array"``, ``"tuple"`` (the LSTM's ``(h, c)``) or null (no carried state).
``optimizer``
    ``{"steps": ..., "hyperparameters": {...}}``: the optimizer's step count and settings.
``history``
    One record per evaluation: ``step``, ``train_loss``, ``lr``,
    ``chars_per_second`` and, with a validation split, ``val_loss`` and ``val_bpc``.
``source``, ``text_sha256``
    The training file's path and the SHA-256 of its text.
``digest``
    The SHA-256, in hex, of ``json.dumps(header, sort_keys=True)`` (the header
    without ``digest``, encoded as UTF-8) followed by, for each array in the
    sorted order of the names, ``f"{name}|{a.dtype.str}|{a.shape}"`` encoded
    as UTF-8 (the shape as a Python tuple, such as ``(64, 58)``) and the
    array's bytes in C order.  Recomputing it from the file, as
    :func:`load_checkpoint` does, checks every byte that matters.

:func:`save_checkpoint` adds ``format`` and ``digest`` to any header it is given;
the other fields are the ones ``python -m rnnfast train`` writes.
"""

import hashlib
import json

import numpy as np

from rnnfast._io import HEADER, NotAnArchive, read_npz_with_header, write_npz_with_header
from rnnfast.model import RNNModel

__all__ = ["save_checkpoint", "load_checkpoint", "model_from_checkpoint", "CheckpointError"]

#: The ``format`` field of every checkpoint header this version writes and reads.
FORMAT = "rnnfast.checkpoint/1"


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint.

    The message names the file and says why: not an archive, not a checkpoint,
    damaged, edited, or a model that does not fit its configuration.
    """


def _digest(meta, arrays):
    """SHA-256 over the header (without its digest) and every array's name, dtype, shape, bytes."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path, meta, arrays):
    """Write a checkpoint: a JSON header and named arrays, with their digest.

    The file is written to a temporary file in the same folder and renamed over
    ``path``, so it appears complete or not at all.  See the module's
    description for the format.

    Parameters
    ----------
    path : str or path-like
        The file to write (replaced if it exists).
    meta : dict
        The header: any JSON-serialisable dict.  It is not modified; the file's
        header is a copy with ``format`` (``FORMAT``) and ``digest`` added.
    arrays : dict[str, ndarray]
        The arrays to store, by name (names must not be ``__meta__``).

    Raises
    ------
    IsADirectoryError
        If ``path`` is a directory.
    OSError
        As the file system raises it (no such folder, no permission, disk full).
    TypeError
        If ``meta`` is not JSON-serialisable.

    See Also
    --------
    load_checkpoint : Reads the file back and checks its digest.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from rnnfast.checkpoint import load_checkpoint, save_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt.npz")
    >>> save_checkpoint(path, {"step": 3}, {"model/w": np.ones((2, 2))})
    >>> meta, arrays = load_checkpoint(path)
    >>> meta["step"], meta["format"], arrays["model/w"].shape
    (3, 'rnnfast.checkpoint/1', (2, 2))
    """
    meta = dict(meta, format=FORMAT)
    meta["digest"] = _digest(meta, arrays)
    write_npz_with_header(path, meta, arrays, "a checkpoint")


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint` and check its digest.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file.

    Returns
    -------
    meta : dict
        The header, with its ``format`` field and without ``digest``.
    arrays : dict[str, ndarray]
        Every array of the file but ``__meta__``, by name, loaded into memory.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        As ``open`` raises them.
    CheckpointError
        For anything else: not an archive, not a checkpoint, truncated,
        damaged or edited (the digest does not match).

    See Also
    --------
    model_from_checkpoint : The model of a training checkpoint.
    """
    try:
        with read_npz_with_header(path) as (meta, data):
            arrays = {k: data[k] for k in data.files if k != HEADER}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except NotAnArchive as exc:
        raise CheckpointError(f"{path} is not an rnnfast checkpoint ({exc})") from None
    except Exception as exc:       # zip, zlib, JSON: damage reads as "not a checkpoint"
        detail = " ".join(str(exc).split())          # one line, and not the whole file
        detail = detail if len(detail) <= 120 else detail[:117] + "..."
        raise CheckpointError(f"{path} is not an rnnfast checkpoint, or it is damaged "
                              f"({type(exc).__name__}: {detail})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rnnfast checkpoint (no {FORMAT} header)")
    digest = meta.pop("digest", None)
    if digest != _digest(meta, arrays):
        raise CheckpointError(f"{path} is damaged or was edited: its contents do not match "
                              "the digest written with it")
    return meta, arrays


def model_arrays(arrays, model):
    """The parameters of ``model`` in a checkpoint's ``arrays`` (``KeyError`` if one is
    missing), keyed as ``model.parameters``."""
    return {name: arrays[f"model/{name}"] for name in model.parameters}


def model_from_checkpoint(path):
    """Rebuild the model of a checkpoint written by training.

    The model has the configuration the checkpoint records (cell, sizes, layers,
    dropout, dtype) and its parameters at the checkpoint's step; it can sample text
    or be saved with :meth:`RNNModel.save`.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint (``--checkpoint``), e.g. what a stopped run left.

    Returns
    -------
    model : RNNModel
        The model, its ``metadata`` the dict ``{"vocab": ..., "source": ...}``:
        the vocabulary (one string) and the training file's path.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        As ``open`` raises them.
    CheckpointError
        If ``path`` is not a checkpoint, or its parameters do not fit the
        configuration it records.

    See Also
    --------
    rnnfast.training.train : Writes the checkpoints (``checkpoint_every``).
    rnnfast.text.sample_text : Generates text with the model.
    """
    meta, arrays = load_checkpoint(path)
    try:
        config, vocab = meta["config"], meta["vocab"]
        model = RNNModel(len(vocab), config["hidden"], len(vocab), config["layers"],
                         dropout=config["dropout"], cell=config["cell"],
                         dtype=np.dtype(config["dtype"]))
        model.load_state_dict(model_arrays(arrays, model))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: a checkpoint whose model cannot be rebuilt "
                              f"({type(exc).__name__}: {exc})") from None
    model.metadata = {"vocab": vocab, "source": meta.get("source")}
    return model
