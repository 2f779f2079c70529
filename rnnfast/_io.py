"""File input and output shared by models and checkpoints: ``.npz`` archives with a JSON
header, written atomically and read without unpickling anything."""

import contextlib
import errno
import json
import os
import secrets
import stat

import numpy as np

__all__ = ["NotAnArchive", "read_npz_with_header", "write_npz_atomically",
           "write_npz_with_header"]

HEADER = "__meta__"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class NotAnArchive(ValueError):
    """A file that is not a zip archive (so no ``.npz`` file)."""


def _create_temporary(folder):
    """``(fd, path)`` of a new, empty file in ``folder``, created as ``open(..., "wb")`` would.

    Unlike ``tempfile.mkstemp`` (always ``0o600``), the mode is ``0o666``
    masked by the umask, the mode ``np.savez`` gives a new file.
    """
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".rnnfast-{secrets.token_hex(8)}.npz.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:      # name the folder, not the temporary file
            raise type(exc)(exc.errno, exc.strerror, folder) from None
    raise FileExistsError(errno.EEXIST, "no free temporary file name", folder)


def write_npz_atomically(path, arrays, what="a file"):
    """``np.savez(path, **arrays)``, appearing complete or not at all.

    Written to a temporary file in the same folder, flushed to disk
    (``fsync``), then renamed over the target, and the folder is synced so
    that the rename survives a power loss; the temporary file is removed on
    any failure.  Permissions are those a plain ``np.savez`` gives: ``0o666``
    masked by the umask for a new file, the existing bits for an overwritten
    one.  A symbolic link ``path``
    stays a link to the file, which is replaced.  ``IsADirectoryError`` (naming
    ``what`` the file should have been) when ``path`` is a directory.
    """
    path = os.fspath(path)
    target = os.path.realpath(path)           # write through a symlink, keep the link
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        mode = None
    else:
        if stat.S_ISDIR(existing.st_mode):
            raise IsADirectoryError(errno.EISDIR, f"is a directory, not {what}", path)
        mode = stat.S_IMODE(existing.st_mode)
    fd, tmp = _create_temporary(os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:     # before any byte is written
                if hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), mode)
                else:
                    os.chmod(tmp, mode)
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())     # the bytes are on disk before the name points at them
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # make the rename durable (POSIX); Windows cannot open a folder, some file systems
    # refuse to sync one: the file itself is on disk either way
    try:
        folder = os.open(os.path.dirname(target), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)


def write_npz_with_header(path, header, arrays, what="a file"):
    """:func:`write_npz_atomically` of ``arrays`` and the JSON of ``header`` as ``__meta__``."""
    write_npz_atomically(path, {HEADER: np.array(json.dumps(header)), **arrays}, what)


@contextlib.contextmanager
def read_npz_with_header(path):
    """Open the ``.npz`` archive ``path``: yields ``(header, data)``.

    ``header`` is the decoded JSON of its ``__meta__`` entry and ``data`` the
    open ``np.load`` archive (read without pickles), valid inside the block.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        As ``open`` raises them.
    NotAnArchive
        If ``path`` is not a zip archive.
    KeyError, ValueError, OSError, ...
        As ``np.load`` and ``json.loads`` raise them for a damaged archive or
        one without a header.
    """
    with open(os.fspath(path), "rb") as f:
        if not f.read(4).startswith(_ZIP_MAGIC):
            raise NotAnArchive("not an .npz archive")
        f.seek(0)
        with np.load(f, allow_pickle=False) as data:
            yield json.loads(str(data[HEADER])), data
