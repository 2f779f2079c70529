"""Training checkpoints: everything ``python -m rnnfast train`` needs to continue exactly.

A checkpoint is an ``.npz`` archive written atomically (a temporary file in
the same folder, renamed over the target), holding the model's parameters,
the optimizer's buffers, the carried hidden state and the training curve as
arrays, and as a JSON header the step, data position, random generator state,
configuration, vocabulary and history.  A SHA-256 digest of all of it is kept
in the header: a truncated, damaged or edited file is refused on load.
Nothing in a checkpoint is ever unpickled.
"""

import hashlib
import json

import numpy as np

from rnnfast._io import HEADER, NotAnArchive, read_npz_with_header, write_npz_with_header
from rnnfast.model import RNNModel

__all__ = ["save_checkpoint", "load_checkpoint", "model_from_checkpoint", "CheckpointError"]

FORMAT = "rnnfast.checkpoint/1"


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint (the message says why)."""


def _digest(meta, arrays):
    """SHA-256 over the header (without its digest) and every array's name, dtype, shape, bytes."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path, meta, arrays):
    """Write ``meta`` (JSON-serialisable dict) and ``arrays`` (name -> ndarray) to ``path``.

    The file appears complete or not at all.
    """
    meta = dict(meta, format=FORMAT)
    meta["digest"] = _digest(meta, arrays)
    write_npz_with_header(path, meta, arrays, "a checkpoint")


def load_checkpoint(path):
    """``(meta, arrays)`` of a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        As ``open`` raises them.
    CheckpointError
        For anything else: not an archive, not a checkpoint, truncated,
        damaged or edited (the digest does not match).
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
        model.load_state_dict(model_arrays(arrays, model))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: a checkpoint whose model cannot be rebuilt "
                              f"({type(exc).__name__}: {exc})") from None
    model.metadata = {"vocab": vocab, "source": meta.get("source")}
    return model
