"""python -m rnnfast train: the files it reads and writes (inputs never overwritten, failing
writes never lose the run, durable atomic writes, checkpoints named and usable)."""

import errno
import os

import numpy as np
import pytest

from rnnfast import model as model_module
from rnnfast.model import RNNModel, write_npz_atomically

TEXT = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. " * 30
BASE = ["--hidden", "16", "--seq-len", "10", "--batch", "4", "--quiet"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def error_line(excinfo):
    message = str(excinfo.value)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


# -- durable atomic writes ----------------------------------------------------------

def test_atomic_write_syncs_the_file_then_renames_then_syncs_the_folder(tmp_path, monkeypatch):
    calls = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        kind = "folder" if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")) else "file"
        calls.append(("fsync", kind))
        return fsync(fd)

    def recording_replace(src, dst):
        calls.append(("replace", os.path.basename(dst)))
        return replace(src, dst)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to tell files from folders")
    monkeypatch.setattr(model_module.os, "fsync", recording_fsync)
    monkeypatch.setattr(model_module.os, "replace", recording_replace)
    write_npz_atomically(str(tmp_path / "a.npz"), {"x": np.arange(3)})
    assert calls == [("fsync", "file"), ("replace", "a.npz"), ("fsync", "folder")]
    np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["x"], np.arange(3))


def test_atomic_write_works_where_a_folder_cannot_be_opened(tmp_path, monkeypatch):
    real_open = os.open

    def no_folders(path, flags, *args):
        if os.path.isdir(path):
            raise PermissionError(errno.EACCES, "cannot open a directory", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(model_module.os, "open", no_folders)
    model = RNNModel(3, 4, 3, seed=0)
    model.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(RNNModel.load(tmp_path / "m.npz").parameters["Whh"],
                                  model.parameters["Whh"])
