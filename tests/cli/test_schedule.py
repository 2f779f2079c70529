"""python -m rnnfast train --schedule: a learning-rate schedule of rnnfast.optim.lr_scheduler,
stepped after every step, exact across a resume."""

import json

import numpy as np
import pytest

from rnnfast.__main__ import main
from rnnfast.checkpoint import load_checkpoint
from rnnfast.training import SCHEDULES, TrainingError, TrainSettings, schedule_rates
from tests.helpers import assert_a_resumed_run_is_exact, assert_training_ends_elsewhere, error_line

BASE = ["--hidden", "16", "--seq-len", "50", "--batch", "4", "--quiet"]


def test_the_rates_are_the_schedules_closed_forms():
    def rates(schedule, n, lr=0.1):
        return schedule_rates(TrainSettings(file="x", lr=lr, schedule=schedule), n)
    assert rates("StepLR(step_size=3, gamma=0.5)", 8) == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05,
                                                          0.025, 0.025]
    assert rates("MultiStepLR(milestones=[2, 5], gamma=0.1)", 6) == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.01, 0.001], rel=1e-12)
    assert rates("ExponentialLR(gamma=0.9)", 4) == pytest.approx([0.1, 0.09, 0.081, 0.0729],
                                                                   rel=1e-12)
    cosine = rates("CosineAnnealingLR(T_max=10, eta_min=0.01)", 11)
    expected = [0.01 + 0.09 * (1 + np.cos(np.pi * k / 10)) / 2 for k in range(11)]
    assert cosine == pytest.approx(expected, rel=1e-12)
    linear = rates("LinearLR(start_factor=0.5, total_iters=4)", 6)
    assert linear == pytest.approx([0.05, 0.0625, 0.075, 0.0875, 0.1, 0.1], rel=1e-12)


@pytest.mark.parametrize("name, kwargs", [
    ("StepLR", {"step_size": 7, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [10, 30], "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.97}),
    ("CosineAnnealingLR", {"T_max": 50, "eta_min": 1e-4}),
    ("LinearLR", {"start_factor": 0.1, "end_factor": 1.0, "total_iters": 20}),
    ("OneCycleLR", {"max_lr": 0.01, "total_steps": 100, "anneal_strategy": "linear"})])
def test_the_rates_are_torchs(name, kwargs):
    torch = pytest.importorskip("torch")
    schedule = f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    ours = schedule_rates(TrainSettings(file="x", lr=3e-3, schedule=schedule), 100)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-3)
    if name == "OneCycleLR":
        kwargs = {**kwargs, "cycle_momentum": False}
    scheduler = getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)
    theirs = []
    for _ in range(100):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert ours == theirs


def test_training_follows_the_schedule_and_records_it(text_file, tmp_path):
    log, ckpt = str(tmp_path / "log.jsonl"), str(tmp_path / "c.npz")
    schedule = "StepLR(step_size=4, gamma=0.5)"
    assert main(["train", text_file, *BASE, "--steps", "10", "--schedule", schedule,
                 "--eval-every", "1", "--log", log, "--checkpoint", ckpt,
                 "--checkpoint-every", "10"]) == 0
    rates = [json.loads(line)["lr"] for line in open(log, encoding="utf-8")]
    assert rates == [3e-3] * 4 + [1.5e-3] * 4 + [7.5e-4] * 2
    meta, _ = load_checkpoint(ckpt)
    assert meta["config"]["schedule"] == schedule and meta["lr"] == 7.5e-4


@pytest.mark.parametrize("options", [
    ["--schedule", "CosineAnnealingLR(T_max=40, eta_min=1e-4)"],
    ["--cell", "gru", "--optimizer", "sgd", "--lr", "0.5", "--schedule",
     "OneCycleLR(max_lr=1.0, total_steps=40)"],
], ids=["cosine-adam", "onecycle-sgd"])
def test_a_resumed_scheduled_run_equals_an_uninterrupted_one(text_file, tmp_path, options):
    args = ["train", text_file, *BASE, *options]
    a = assert_a_resumed_run_is_exact(args, tmp_path)
    # and the schedule did change the training
    constant = [x for x in args if x not in options[-2:]]
    assert_training_ends_elsewhere(constant, a, tmp_path / "plain.npz")


def test_a_resume_with_another_schedule_is_refused(text_file, tmp_path):
    ckpt = str(tmp_path / "c.npz")
    assert main(["train", text_file, *BASE, "--steps", "4", "--checkpoint-every", "4",
                 "--checkpoint", ckpt, "--schedule", "ExponentialLR(gamma=0.9)"]) == 0
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, *BASE, "--steps", "8", "--resume", ckpt])
    assert error_line(info) == (f"error: --resume {ckpt} was trained with --schedule "
                                "ExponentialLR(gamma=0.9); this run has --schedule None (use "
                                "the same settings)")


@pytest.mark.parametrize("schedule, message", [
    ("Foo(x=1)", "Foo is not a schedule train can follow"),
    ("ReduceLROnPlateau()", "ReduceLROnPlateau is not a schedule train can follow"),
    ("StepLR(3)", "arguments are given by name"),
    ("StepLR(step_size=x)", "argument values are numbers, strings, booleans or lists"),
    ("StepLR(gamma=0.1)", "missing 1 required positional argument: 'step_size'"),
    ("StepLR(step_size=2, optimizer=1)", "optimizer is set by train"),
    ("OneCycleLR(max_lr=0.1, total_steps=10, cycle_momentum=True)",
     "train schedules the rate only: cycle_momentum must be False"),
    ("OneCycleLR(max_lr=0.1, total_steps=5)", "at step 6: OneCycleLR stepped 6 times"),
    ("3 +", "not a call"),
])
def test_a_bad_schedule_is_one_line_before_training(text_file, schedule, message):
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, *BASE, "--steps", "10", "--schedule", schedule])
    line = error_line(info)
    assert line.startswith(f"error: --schedule {schedule!r}") and message in line, line


def test_a_schedule_and_a_decay_are_refused_together(text_file):
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, *BASE, "--schedule", "StepLR(step_size=2)", "--lr-decay",
              "0.5"])
    assert error_line(info) == ("error: --schedule and --lr-decay both set the learning rate: "
                                "give one of them")


def test_every_offered_schedule_can_be_made():
    for name, args in zip(SCHEDULES, ["step_size=2", "milestones=[2]", "gamma=0.5", "T_max=4",
                                      "total_iters=3", "max_lr=0.1, total_steps=8"], strict=True):
        assert len(schedule_rates(TrainSettings(file="x", schedule=f"{name}({args})"), 8)) == 8
    with pytest.raises(TrainingError):
        schedule_rates(TrainSettings(file="x", schedule="LambdaLR(lr_lambda=1)"), 1)


def test_a_schedule_that_cannot_run_is_refused_every_time():
    """The replay kept per process does not remember a failed one as if it had run."""
    s = TrainSettings(file="x", schedule="OneCycleLR(max_lr=0.1, total_steps=5)")
    assert len(schedule_rates(s, 5)) == 5
    for _ in range(2):
        with pytest.raises(TrainingError, match="at step 6"):
            schedule_rates(s, 6)
    assert len(schedule_rates(s, 5)) == 5
