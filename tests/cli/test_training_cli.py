"""python -m rnnfast train: layers, optimizers, validation, checkpoints, signals and exact
resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rnnfast import training
from rnnfast.__main__ import main
from rnnfast.checkpoint import load_checkpoint
from rnnfast.model import RNNModel
from tests.helpers import BASE, TEXT


def params_of(path):
    return RNNModel.load(path).parameters


def interrupt_at(monkeypatch, step, signum=signal.SIGINT):
    """Send ``signum`` to this process during the ``step``-th optimizer step."""
    calls = {"n": 0}
    original = training.clip_grad_norm

    def clip(grads, max_norm):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signum)
        return original(grads, max_norm)
    monkeypatch.setattr(training, "clip_grad_norm", clip)


@pytest.mark.parametrize("options", [
    [],
    ["--cell", "lstm", "--layers", "2", "--dropout", "0.2", "--optimizer", "rmsprop"],
    ["--cell", "gru", "--dtype", "float64", "--optimizer", "adamw", "--val-frac", "0.1"],
    ["--layers", "3", "--dropout", "0.3", "--optimizer", "sgd", "--lr", "0.1"],
], ids=["rnn", "lstm-2-dropout", "gru-f64", "rnn-3-dropout-sgd"])
def test_an_interrupted_run_resumed_equals_an_uninterrupted_one(text_file, tmp_path, options,
                                                                 monkeypatch, capsys):
    args = [text_file, *BASE, "--steps", "40", *options]
    straight = str(tmp_path / "straight.npz")
    assert main(["train", *args, "--save", straight]) == 0
    resumed, ckpt = str(tmp_path / "resumed.npz"), str(tmp_path / "ckpt.npz")
    interrupt_at(monkeypatch, 17)
    assert main(["train", *args, "--save", resumed, "--checkpoint", ckpt]) == 130
    out = capsys.readouterr().out
    assert f"stopped by SIGINT after step 17; checkpoint written to {ckpt}" in out
    assert not os.path.exists(resumed)                  # an interrupted run saves no model
    monkeypatch.undo()
    assert main(["train", *args, "--save", resumed, "--resume", ckpt]) == 0
    assert "resumed from" in capsys.readouterr().out
    expected, got = params_of(straight), params_of(resumed)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_checkpoints_every_k_steps_hold_the_step(text_file, tmp_path):
    ckpt = str(tmp_path / "c.npz")
    assert main(["train", text_file, *BASE, "--steps", "25", "--checkpoint-every", "10",
                 "--checkpoint", ckpt]) == 0
    meta, arrays = load_checkpoint(ckpt)
    assert meta["step"] == 20 and meta["optimizer"]["steps"] == 20
    assert len(arrays["curve/train"]) == 20


def test_sigterm_in_a_real_process_writes_a_checkpoint_and_exits_143(text_file, tmp_path):
    ckpt = str(tmp_path / "c.npz")
    proc = subprocess.Popen([sys.executable, "-m", "rnnfast", "train", text_file, *BASE,
                             "--steps", "10000000", "--checkpoint", ckpt],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()                       # the header: training has started
    assert line.startswith("training on")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in out and "Traceback" not in err
    meta, _ = load_checkpoint(ckpt)
    assert meta["step"] >= 1


def test_validation_log_and_plot(text_file, tmp_path, capsys):
    log, plot = tmp_path / "log.jsonl", tmp_path / "loss.png"
    pytest.importorskip("matplotlib")
    assert main(["train", text_file, *BASE, "--steps", "30", "--val-frac", "0.2",
                 "--eval-every", "10", "--log", str(log), "--plot", str(plot)]) == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30]
    for r in records:
        assert r["val_bpc"] == pytest.approx(r["val_loss"] / np.log(2))
        assert r["chars_per_second"] > 0
    assert plot.stat().st_size > 1000
    out = capsys.readouterr().out
    assert "bits per character" in out and "validation" in out


def test_evaluation_is_the_mean_cross_entropy(text_file):
    model = RNNModel(5, 8, 5, dtype=np.float64, seed=0)
    data = np.random.default_rng(0).integers(0, 5, 200)
    loss = training.evaluate(model, data, 4, 10)
    # the same by hand: 4 streams of 49 characters, chunks of 10, state carried
    streams = (len(data) - 1) // 4
    X = data[:streams * 4].reshape(4, streams)
    Y = data[1:streams * 4 + 1].reshape(4, streams)
    logits = model.forward(X)
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    assert loss == pytest.approx(-np.take_along_axis(logp, Y[..., None], -1).mean(), rel=1e-12)


def test_resume_refuses_bad_checkpoints_and_overwrites_nothing(text_file, tmp_path, capsys):
    ckpt = str(tmp_path / "c.npz")
    save = tmp_path / "model.npz"
    assert main(["train", text_file, *BASE, "--steps", "12", "--checkpoint-every", "6",
                 "--checkpoint", ckpt]) == 0
    save.write_bytes(b"keep me")
    original = open(ckpt, "rb").read()

    def refused(args, pattern):
        with pytest.raises(SystemExit) as info:
            main(["train", *args, "--save", str(save)])
        message = str(info.value)
        assert message.startswith("error: ") and "\n" not in message
        assert pattern in message, message
        assert save.read_bytes() == b"keep me"

    refused([text_file, *BASE, "--steps", "20", "--hidden", "32", "--resume", ckpt],
            "--hidden 16")                                        # another model
    other = tmp_path / "other.txt"
    other.write_text(TEXT + "XYZ", encoding="utf-8")
    refused([str(other), *BASE, "--steps", "20", "--resume", ckpt], "vocabulary")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(original[:len(original) // 2])
    refused([text_file, *BASE, "--steps", "20", "--resume", str(truncated)],
            "not an rnnfast checkpoint")
    with np.load(ckpt) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["model/Whh"] = arrays["model/Whh"] + 1e-3              # edited weights
    tampered = tmp_path / "tampered.npz"
    np.savez(tampered, **arrays)
    refused([text_file, *BASE, "--steps", "20", "--resume", str(tampered)],
            "damaged or was edited")
    refused([text_file, *BASE, "--steps", "20", "--resume", text_file],
            "not an rnnfast checkpoint")
    refused([text_file, *BASE, "--steps", "5", "--resume", ckpt], "past --steps 5")
    refused([text_file, *BASE, "--steps", "20", "--resume", str(tmp_path / "none.npz")],
            "no such file")
    assert open(ckpt, "rb").read() == original


@pytest.mark.parametrize("args, pattern", [
    (["--layers", "0"], "--layers must be an integer of at least 1"),
    (["--dropout", "1"], "--dropout must be a number in [0, 1)"),
    (["--val-frac", "-0.1"], "--val-frac must be"),
    (["--eval-every", "-1"], "--eval-every"),
    (["--checkpoint-every", "-2"], "--checkpoint-every"),
    (["--checkpoint", "/no/such/dir/c.npz"], "--checkpoint /no/such/dir/c.npz"),
    (["--log", "/no/such/dir/l.jsonl"], "--log"),
])
def test_bad_options_are_one_line(text_file, args, pattern):
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, *BASE, "--steps", "2", *args])
    assert str(info.value).startswith("error: ") and pattern in str(info.value)


def test_help_names_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for option in ("--layers", "--dropout", "--dtype", "--optimizer", "--val-frac",
                   "--eval-every", "--checkpoint-every", "--resume", "--plot", "--log"):
        assert option in out
    assert "(default: 128)" in out and "(default: adam)" in out


def test_version(capsys):
    import rnnfast
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"rnnfast {rnnfast.__version__}"


def test_resume_identity_with_real_processes_and_sigint(text_file, tmp_path):
    """The interrupted run is stopped by a real SIGINT at whatever step it has reached."""
    args = [sys.executable, "-m", "rnnfast", "train", text_file, *BASE, "--steps", "6000",
            "--layers", "2", "--dropout", "0.1"]
    straight, resumed = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    ckpt = str(tmp_path / "c.npz")
    subprocess.run([*args, "--save", straight], check=True, capture_output=True, timeout=300)
    proc = subprocess.Popen([*args, "--save", resumed, "--checkpoint", ckpt],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("training on")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    step = load_checkpoint(ckpt)[0]["step"]
    assert 0 < step < 6000 and f"after step {step}" in out
    done = subprocess.run([*args, "--save", resumed, "--resume", ckpt], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    expected, got = params_of(straight), params_of(resumed)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
