"""python -m rnnfast train --lr-decay/--decay-after (char-rnn's learning-rate decay, exact
across a resume) and --keep-best (the checkpoint of the lowest validation loss)."""

import json
import os

import numpy as np
import pytest

from rnnfast.__main__ import main
from rnnfast.checkpoint import load_checkpoint, model_from_checkpoint
from rnnfast.model import RNNModel
from rnnfast.training import TrainSettings, learning_rate, steps_per_epoch
from tests.helpers import (
    TEXT,
    assert_a_resumed_run_is_exact,
    assert_training_ends_elsewhere,
    error_line,
)

# 2370 characters as 4 streams of 592, 50 a chunk: 11 steps an epoch
DECAY = ["--hidden", "16", "--seq-len", "50", "--batch", "4", "--quiet", "--lr-decay", "0.5",
         "--decay-after", "1"]
EPOCH = 11


def char_rnn_rates(lr, decay, decay_after, epoch_steps, steps):
    """The rate of each step as char-rnn's train.lua sets it: after iteration i, at the end
    of an epoch (i % ntrain == 0) whose number i / ntrain is at least decay_after, lr *=
    decay."""
    rates = []
    for i in range(1, steps + 1):
        rates.append(lr)
        if i % epoch_steps == 0 and decay < 1 and i / epoch_steps >= decay_after:
            lr *= decay
    return rates


@pytest.mark.parametrize("decay, after, epoch_steps", [(0.97, 10, 7), (0.5, 1, 11),
                                                       (0.9, 0, 3), (1.0, 2, 5), (0.8, 3, 1)])
def test_the_rate_is_char_rnns(decay, after, epoch_steps):
    s = TrainSettings(file="x", lr=2e-3, lr_decay=decay, decay_after=after)
    expected = char_rnn_rates(2e-3, decay, after, epoch_steps, 150)
    got = [learning_rate(s, step, epoch_steps) for step in range(1, 151)]
    # a power against repeated products: the last bits may differ
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)
    assert got[0] == 2e-3


def test_an_epoch_is_one_pass_of_the_streams(text_file, tmp_path):
    assert steps_per_epoch(len(TEXT), 4, 50) == EPOCH
    assert steps_per_epoch(len(TEXT), 4, 10) == 59
    log = str(tmp_path / "log.jsonl")
    assert main(["train", text_file, *DECAY, "--steps", f"{3 * EPOCH + 2}", "--eval-every", "1",
                 "--log", log]) == 0
    records = [json.loads(line) for line in open(log, encoding="utf-8")]
    rates = [r["lr"] for r in records]
    s = TrainSettings(file=text_file, lr=3e-3, lr_decay=0.5, decay_after=1)
    assert rates == [learning_rate(s, step, EPOCH) for step in range(1, 3 * EPOCH + 3)]
    assert rates[EPOCH - 1] == 3e-3 and rates[EPOCH] == 1.5e-3 and rates[-1] == 3e-3 / 8


def test_the_rate_is_said_and_recorded(text_file, tmp_path, capsys):
    ckpt = str(tmp_path / "c.npz")
    assert main(["train", text_file, *DECAY, "--steps", f"{EPOCH + 3}", "--checkpoint", ckpt,
                 "--checkpoint-every", f"{EPOCH + 3}", "--val-frac", "0.1",
                 "--eval-every", f"{EPOCH + 3}"]) == 0
    out = capsys.readouterr().out
    # the validation split leaves 2133 training characters: 10 steps an epoch
    assert steps_per_epoch(2133, 4, 50) == 10
    assert "adam lr 0.003 x 0.5 after each epoch from epoch 1 (10 steps an epoch)" in out
    assert "step 11: learning rate 0.0015 (epoch 2)" in out
    meta, _ = load_checkpoint(ckpt)
    assert meta["lr"] == meta["optimizer"]["hyperparameters"]["lr"]
    assert meta["config"]["lr_decay"] == 0.5 and meta["config"]["decay_after"] == 1
    assert f"step {EPOCH + 3}: training loss" in out and f"lr {meta['lr']:.6g}" in out


@pytest.mark.parametrize("options", [
    [],
    ["--cell", "lstm", "--layers", "2", "--dropout", "0.2", "--optimizer", "sgd", "--lr", "0.5"],
    ["--cell", "gru", "--dtype", "float64", "--optimizer", "rmsprop", "--lr-decay", "0.7"],
], ids=["rnn-adam", "lstm-2-dropout-sgd", "gru-f64-rmsprop"])
def test_a_resumed_decaying_run_equals_an_uninterrupted_one(text_file, tmp_path, options):
    # decays at the ends of steps 11, 22, 33: one before the break at 16, two after
    args = ["train", text_file, *DECAY, *options]
    a = assert_a_resumed_run_is_exact(args, tmp_path)
    # and the decay did change the training
    assert_training_ends_elsewhere([*args, "--lr-decay", "1"], a, tmp_path / "constant.npz")


def test_a_resume_with_another_decay_is_refused(text_file, tmp_path):
    ckpt = str(tmp_path / "c.npz")
    assert main(["train", text_file, *DECAY, "--steps", "4", "--checkpoint-every", "4",
                 "--checkpoint", ckpt]) == 0
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, *DECAY, "--steps", "8", "--resume", ckpt,
              "--decay-after", "2"])
    assert error_line(info) == (f"error: --resume {ckpt} was trained with --decay-after 1; this "
                                "run has --decay-after 2 (use the same settings)")


@pytest.mark.parametrize("args, message", [
    (["--lr-decay", "0"], "--lr-decay must be a number in (0, 1] (1 = no decay); got 0.0"),
    (["--lr-decay", "1.5"], "--lr-decay must be a number in (0, 1] (1 = no decay); got 1.5"),
    (["--lr-decay", "nan"], "--lr-decay must be a number in (0, 1] (1 = no decay); got nan"),
    (["--decay-after", "-1"], "--decay-after must be an integer of at least 0; got -1"),
    (["--keep-best"], "--keep-best keeps the checkpoint of the lowest validation loss: it "
                      "needs a validation split (--val-frac) and evaluations during training "
                      "(--eval-every)"),
    (["--keep-best", "--val-frac", "0.1"], "--keep-best keeps the checkpoint"),
    (["--keep-best", "--eval-every", "2"], "--keep-best keeps the checkpoint"),
])
def test_bad_decay_and_best_options_are_one_line(text_file, args, message):
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, "--quiet", "--steps", "2", *args])
    assert error_line(info).startswith(f"error: {message}")


def test_the_best_checkpoints_name():
    assert TrainSettings("t", checkpoint="run.npz").best_checkpoint_path == "run.best.npz"
    assert TrainSettings("t", checkpoint="run").best_checkpoint_path == "run.best.npz"
    assert TrainSettings("t", save="m.npz").best_checkpoint_path == "m.npz.ckpt.best.npz"
    assert TrainSettings("t").best_checkpoint_path == "checkpoint.best.npz"


def val_losses(log):
    records = [json.loads(line) for line in open(log, encoding="utf-8")]
    return {r["step"]: r["val_loss"] for r in records}


@pytest.mark.parametrize("options", [[], ["--cell", "gru", "--layers", "2", "--dropout", "0.2"]],
                         ids=["rnn", "gru-2-dropout"])
def test_the_best_checkpoint_holds_the_lowest_validation_loss(text_file, tmp_path, options,
                                                              capsys):
    # a large rate: the validation loss goes down and up (lowest at step 18 for the RNN, 9
    # for the GRU: not the last)
    args = ["train", text_file, "--hidden", "32", "--seq-len", "10", "--batch", "4", "--quiet",
            "--lr", "0.3", "--val-frac", "0.2", "--eval-every", "3", *options]
    ckpt, log = str(tmp_path / "c.npz"), str(tmp_path / "log.jsonl")
    best = str(tmp_path / "c.best.npz")
    assert main([*args, "--steps", "40", "--keep-best", "--checkpoint", ckpt, "--log", log]) == 0
    losses = val_losses(log)
    assert sorted(losses) == [*range(3, 40, 3), 40]
    meta, _ = load_checkpoint(best)
    best_step = min(losses, key=losses.get)
    assert best_step < 40 and max(v for k, v in losses.items() if k > best_step) > losses[best_step]
    assert meta["val_loss"] == losses[best_step] == min(losses.values())
    assert meta["step"] == best_step and meta["history"][-1]["val_loss"] == meta["val_loss"]
    # its weights are those of that step: a run stopped there saves the same model
    there = str(tmp_path / "there.npz")
    assert main([*args, "--steps", str(best_step), "--save", there]) == 0
    expected, got = RNNModel.load(there).parameters, model_from_checkpoint(best).parameters
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    # sample reads it as the checkpoint it is
    capsys.readouterr()
    assert main(["sample", best, "--length", "30", "--seed", "1", "--top-k", "5"]) == 0
    assert len(capsys.readouterr().out) == 31


def test_the_best_so_far_survives_a_resume(text_file, tmp_path):
    args = ["train", text_file, "--hidden", "32", "--seq-len", "10", "--batch", "4", "--quiet",
            "--lr", "0.3", "--val-frac", "0.2", "--eval-every", "3", "--keep-best"]
    ckpt, log = str(tmp_path / "c.npz"), str(tmp_path / "log.jsonl")
    best = str(tmp_path / "c.best.npz")
    assert main([*args, "--steps", "24", "--checkpoint", ckpt, "--checkpoint-every", "12",
                 "--log", log]) == 0
    first = load_checkpoint(best)[0]
    os.remove(log)
    assert main([*args, "--steps", "40", "--checkpoint", ckpt, "--resume", ckpt,
                 "--log", log]) == 0
    later = val_losses(log)                      # steps 15 to 40 of the resumed run
    meta = load_checkpoint(best)[0]
    if min(later.values()) < first["val_loss"]:
        assert meta["val_loss"] == min(later.values()) and meta["step"] > 12
    else:                                       # not replaced by a worse one
        assert meta["step"] == first["step"] and meta["val_loss"] == first["val_loss"]


def test_sample_refuses_a_prime_outside_a_checkpoints_vocabulary(text_file, tmp_path):
    ckpt = str(tmp_path / "c.npz")
    assert main(["train", text_file, "--hidden", "16", "--batch", "4", "--quiet", "--steps",
                 "2", "--checkpoint-every", "2", "--checkpoint", ckpt]) == 0
    with pytest.raises(SystemExit) as info:
        main(["sample", ckpt, "--top-k", "3", "--top-p", "0.9", "--prime", "the QUIZ"])
    assert error_line(info) == ("error: --prime holds characters the model never saw: "
                                "'IQUZ'")
