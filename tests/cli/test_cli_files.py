"""python -m rnnfast train: the files it reads and writes (inputs never overwritten, failing
writes never lose the run, durable atomic writes, checkpoints named and usable)."""

import errno
import os
import struct
import zipfile

import numpy as np
import pytest

from rnnfast import model as model_module
from rnnfast.__main__ import main
from rnnfast._io import write_npz_atomically
from rnnfast.model import RNNModel
from tests.helpers import BASE, TEXT, error_line

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


# -- outputs never overwrite an input or another output ---------------------------

def refused(args, pattern, capsys, up_front=True):
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["train", *args])
    message = error_line(info)
    assert pattern in message, message
    if up_front:
        assert capsys.readouterr().out == ""         # refused before any work
    return message


@pytest.mark.parametrize("option", ["--save", "--checkpoint", "--log", "--plot"])
def test_no_output_may_be_the_text(option, text_file, tmp_path, capsys):
    if option == "--plot":
        pytest.importorskip("matplotlib")
        text = tmp_path / "text.png"                    # a name matplotlib could write
        text.write_text(TEXT, encoding="utf-8")
        text_file = str(text)
    refused([text_file, *BASE, "--steps", "2", option, text_file],
            f"{option} {text_file} is the same file as FILE {text_file}", capsys)
    assert open(text_file, encoding="utf-8").read() == TEXT


@pytest.mark.parametrize("link", ["symlink", "link"])
def test_links_to_the_text_are_the_text(link, text_file, tmp_path, capsys):
    alias = str(tmp_path / "alias.npz")
    getattr(os, link)(text_file, alias)
    refused([text_file, *BASE, "--steps", "2", "--save", alias], "is the same file as FILE",
            capsys)
    assert open(text_file, encoding="utf-8").read() == TEXT


def test_the_default_checkpoint_may_not_be_the_text(text_file, tmp_path, capsys,
                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoint.npz").write_text(TEXT, encoding="utf-8")
    refused(["checkpoint.npz", *BASE, "--steps", "2"],
            "--checkpoint (default) checkpoint.npz is the same file as FILE", capsys)


@pytest.fixture
def checkpoint(text_file, tmp_path):
    path = str(tmp_path / "c.npz")
    assert main(["train", text_file, *BASE, "--steps", "4", "--checkpoint-every", "2",
                 "--checkpoint", path]) == 0
    return path


def test_the_resumed_checkpoint_may_only_be_written_as_the_checkpoint(text_file, checkpoint,
                                                                      tmp_path, capsys):
    capsys.readouterr()
    original = open(checkpoint, "rb").read()
    for option in ("--save", "--log"):
        refused([text_file, *BASE, "--steps", "8", "--resume", checkpoint, option, checkpoint],
                f"{option} {checkpoint} is the same file as --resume {checkpoint}", capsys)
    assert open(checkpoint, "rb").read() == original
    # continuing from the checkpoint the run writes again is the normal way to resume
    assert main(["train", text_file, *BASE, "--steps", "8", "--resume", checkpoint,
                 "--checkpoint", checkpoint, "--checkpoint-every", "2"]) == 0
    from rnnfast.checkpoint import load_checkpoint
    assert load_checkpoint(checkpoint)[0]["step"] == 8


@pytest.mark.parametrize("first, second", [("--save", "--checkpoint"), ("--save", "--log"),
                                           ("--checkpoint", "--log"), ("--log", "--plot")])
def test_two_outputs_may_not_share_a_file(first, second, text_file, tmp_path, capsys):
    if "--plot" in (first, second):
        pytest.importorskip("matplotlib")
    path = str(tmp_path / "out.png")
    refused([text_file, *BASE, "--steps", "2", first, path, second, path],
            f"{first} {path} and {second} {path} are the same file", capsys)
    assert not os.path.exists(path)


def test_save_may_not_be_the_default_checkpoint_of_another_name(text_file, tmp_path, capsys):
    model = str(tmp_path / "m.npz")
    refused([text_file, *BASE, "--steps", "2", "--save", model, "--log",
             model + ".ckpt.npz"], "--checkpoint (default)", capsys)


# -- train --plot checks its format up front ---------------------------------------

def test_a_plot_format_matplotlib_cannot_write_is_refused_before_training(text_file, tmp_path,
                                                                         capsys):
    pytest.importorskip("matplotlib")
    plot = str(tmp_path / "loss.txt")
    refused([text_file, *BASE, "--steps", "2", "--plot", plot],
            f"--plot {plot}: matplotlib cannot write '.txt' files", capsys)


# -- a checkpoint resumes only on the text it was trained on -----------------------

def test_resume_refuses_another_text_with_the_same_characters(text_file, checkpoint, tmp_path,
                                                              capsys):
    other = tmp_path / "other.txt"
    other.write_text(TEXT[::-1], encoding="utf-8")       # the same vocabulary
    refused([str(other), *BASE, "--steps", "8", "--resume", checkpoint],
            f"--resume {checkpoint} was trained on another text than {other}", capsys,
            up_front=False)


def test_a_checkpoint_without_a_text_digest_still_resumes_with_a_note(text_file, checkpoint,
                                                                     capsys):
    from rnnfast.checkpoint import load_checkpoint, save_checkpoint
    meta, arrays = load_checkpoint(checkpoint)
    assert len(meta.pop("text_sha256")) == 64
    meta.pop("format")
    save_checkpoint(checkpoint, meta, arrays)             # as older versions wrote it
    capsys.readouterr()
    assert main(["train", text_file, *BASE, "--steps", "8", "--resume", checkpoint]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"note: --resume {checkpoint} does not record which text it was "
                          "trained on") and err.count("\n") == 1


# -- checkpoints are named, and sample reads them ----------------------------------

def test_checkpoints_are_announced_in_the_header_each_write_and_the_last_line(
        text_file, tmp_path, capsys):
    model = str(tmp_path / "b.npz")
    ckpt = model + ".ckpt.npz"                           # the default with --save
    assert main(["train", text_file, *BASE, "--steps", "12", "--checkpoint-every", "5",
                 "--save", model]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("training on") and lines[0].endswith(f"checkpoints go to {ckpt}")
    assert f"step 5: checkpoint written to {ckpt}" in lines
    assert f"step 10: checkpoint written to {ckpt}" in lines
    done = next(line for line in lines if line.startswith("done:"))
    assert done.endswith(f"last checkpoint (step 10) in {ckpt}")


def test_sample_reads_a_checkpoint_like_the_model_it_holds(text_file, tmp_path, capsys):
    model, ckpt = str(tmp_path / "m.npz"), str(tmp_path / "c.npz")
    assert main(["train", text_file, *BASE, "--steps", "6", "--layers", "2", "--cell", "gru",
                 "--checkpoint-every", "6", "--checkpoint", ckpt, "--save", model]) == 0
    samples = []
    for path in (model, ckpt):
        capsys.readouterr()
        assert main(["sample", path, "--length", "80", "--seed", "3", "--prime", "the "]) == 0
        samples.append(capsys.readouterr().out)
    assert samples[0] == samples[1] and len(samples[0]) == 85


def test_sample_refuses_a_damaged_checkpoint_saying_why(text_file, checkpoint, tmp_path):
    data = bytearray(open(checkpoint, "rb").read())
    # a byte of a parameter's values (the middle of the file may fall in a zip header's
    # field that no reader looks at, which moves with the lengths of the paths recorded)
    info = zipfile.ZipFile(checkpoint).getinfo("model/Whh.npy")
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:
                                                     info.header_offset + 30])
    payload = info.header_offset + 30 + name_len + extra_len
    data[payload + info.compress_size - 8] ^= 0xFF
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(SystemExit) as info:
        main(["sample", str(bad)])
    assert f"{bad} is not an rnnfast checkpoint, or it is damaged" in error_line(info)


# -- a failing write never loses the run --------------------------------------------

def no_space_for(monkeypatch, path, times=1):
    """Make the first ``times`` checkpoint writes to ``path`` fail as on a full disk."""
    from rnnfast import training
    original, calls = training.save_checkpoint, {"n": 0}

    def save_checkpoint(target, meta, arrays):
        if target == path and calls["n"] < times:
            calls["n"] += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
        return original(target, meta, arrays)
    monkeypatch.setattr(training, "save_checkpoint", save_checkpoint)


def test_a_failing_periodic_checkpoint_warns_and_training_goes_on(text_file, tmp_path,
                                                                  monkeypatch, capsys):
    from rnnfast.checkpoint import load_checkpoint
    ckpt, model = str(tmp_path / "c.npz"), str(tmp_path / "m.npz")
    no_space_for(monkeypatch, ckpt)
    assert main(["train", text_file, *BASE, "--steps", "12", "--checkpoint-every", "5",
                 "--checkpoint", ckpt, "--save", model]) == 0
    captured = capsys.readouterr()
    assert captured.err == (f"warning: could not write the checkpoint {ckpt} at step 5 "
                            "(No space left on device); training goes on\n")
    assert load_checkpoint(ckpt)[0]["step"] == 10 and os.path.exists(model)


def test_a_checkpoint_that_cannot_be_written_on_a_signal_goes_to_a_fallback(
        text_file, tmp_path, monkeypatch, capsys):
    import signal
    import tempfile

    from rnnfast import training
    spare = tmp_path / "spare"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    ckpt = str(tmp_path / "c.npz")
    no_space_for(monkeypatch, ckpt)
    calls, clip = {"n": 0}, training.clip_grad_norm

    def interrupted(grads, max_norm):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return clip(grads, max_norm)
    monkeypatch.setattr(training, "clip_grad_norm", interrupted)
    assert main(["train", text_file, *BASE, "--steps", "12", "--checkpoint", ckpt]) == 130
    fallback = str(spare / f"rnnfast-{os.getpid()}-c.npz")
    assert (f"stopped by SIGINT after step 3; could not write {ckpt} (No space left on "
            f"device): checkpoint written to {fallback} instead (continue with --resume "
            f"{fallback})") in capsys.readouterr().out
    monkeypatch.undo()
    assert main(["train", text_file, *BASE, "--steps", "6", "--checkpoint", ckpt,
                 "--resume", fallback]) == 0
    assert "resumed from" in capsys.readouterr().out


def test_a_failing_log_warns_once_and_a_failing_save_keeps_the_model(text_file, tmp_path):
    """Real failing writes: /dev/full refuses every byte, /proc takes no new file."""
    import subprocess
    import sys
    if not (os.access("/dev/full", os.W_OK) and os.access("/proc", os.W_OK)):
        pytest.skip("needs a writable /dev/full and a /proc that passes the write check")
    env = dict(os.environ, TMPDIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "rnnfast", "train", text_file, *BASE, "--steps", "6",
         "--val-frac", "0.1", "--eval-every", "2", "--log", "/dev/full",
         "--save", "/proc/m.npz", "--checkpoint", str(tmp_path / "c.npz")],
        capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == ("warning: --log /dev/full: No space left on device; no more records "
                        "are written to it (training goes on)")
    assert "done: 6 steps" in result.stdout                     # training went on
    assert len(lines) == 2 and lines[1].startswith("error: --save /proc/m.npz: ")
    fallback = lines[1].split("the model was written to ")[1].split(" instead")[0]
    assert os.path.dirname(fallback) == str(tmp_path)
    assert RNNModel.load(fallback).metadata["vocab"] == "".join(sorted(set(TEXT)))


@pytest.fixture
def saved_model(text_file, tmp_path):
    path = str(tmp_path / "m.npz")
    assert main(["train", text_file, *BASE, "--steps", "3", "--save", path]) == 0
    return path


def test_a_sample_that_cannot_be_written_is_one_error_line(saved_model):
    """A full output (/dev/full refuses every byte): one error line, status 1, no traceback."""
    import subprocess
    import sys
    if not os.access("/dev/full", os.W_OK):
        pytest.skip("needs a writable /dev/full")
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "rnnfast", "sample", saved_model,
                                 "--length", "50"], stdout=full, stderr=subprocess.PIPE,
                                text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == "error: cannot write the sample: No space left on device\n"


def test_a_reader_that_goes_away_ends_sample_quietly(saved_model):
    """`sample | head`: status 141 (128 + SIGPIPE), nothing on stderr."""
    import subprocess
    import sys
    process = subprocess.Popen([sys.executable, "-m", "rnnfast", "sample", saved_model,
                                "--length", "2000000"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert len(process.stdout.read(10)) == 10
    process.stdout.close()                      # the reader leaves
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141
    assert stderr == b""


@pytest.mark.parametrize("output", ["full", "closed pipe"])
def test_train_whose_output_fails_warns_once_and_keeps_the_model(output, text_file, tmp_path):
    """A full stdout (/dev/full) or a reader that went away: one warning, the training goes
    on and the model is saved."""
    import subprocess
    import sys
    if output == "full" and not os.access("/dev/full", os.W_OK):
        pytest.skip("needs a writable /dev/full")
    model = tmp_path / "m.npz"
    # enough samples that the output outlasts the reader (a pipe holds 64 KiB)
    args = [sys.executable, "-m", "rnnfast", "train", text_file, *BASE, "--steps", "600",
            "--sample-every", "1", "--save", str(model)]
    if output == "full":
        with open("/dev/full", "w") as full:
            result = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, text=True,
                                    timeout=120)
        returncode, stderr = result.returncode, result.stderr
    else:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        process.stdout.read(5)
        process.stdout.close()                  # the reader leaves
        _, stderr = process.communicate(timeout=120)
        returncode = process.returncode
    reason = "No space left on device" if output == "full" else "Broken pipe"
    assert returncode == 0, stderr
    assert stderr == (f"warning: standard output: {reason}; nothing more is printed there "
                      "(training goes on)\n")
    assert RNNModel.load(str(model)).metadata["vocab"] == "".join(sorted(set(TEXT)))


@pytest.mark.parametrize("command", [["demo", "--iterations", "2"],
                                     ["bench", "--quick", "--shapes", "seed-apple", "--dtype",
                                      "float32", "--no-torch", "--samples", "1"]])
def test_a_full_output_ends_any_command_in_one_error_line(command):
    """Commands without output handling of their own: one line and status 1 (they ended in
    a traceback)."""
    import subprocess
    import sys
    if not os.access("/dev/full", os.W_OK):
        pytest.skip("needs a writable /dev/full")
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "rnnfast", *command], stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr == "error: cannot write to standard output: No space left on device\n"


def test_a_file_error_is_not_taken_for_a_full_output(tmp_path, monkeypatch, capsys):
    """An OSError that did not come from standard output is not reported as one."""
    from rnnfast import cli

    def failing_main():
        print("fine so far")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli, "main", failing_main)
    with pytest.raises(OSError):
        cli.run()
    assert capsys.readouterr().out == "fine so far\n"
