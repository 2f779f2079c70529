"""--resume on another number of MPI ranks, and --keep-best under MPI.

Rank 0's checkpoint holds the whole batch's carried state, the parameters and the
optimizer's buffers (the same on every rank), so a run resumed on N' ranks continues the
N-rank run up to the order in which the gradients of the shards are added.  Real
``mpiexec -n 1`` / ``-n 2`` jobs, skipped when mpi4py or mpiexec is missing.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnfast import distributed
from rnnfast.checkpoint import load_checkpoint
from rnnfast.model import RNNModel
from tests.helpers import mpiexec

BASE = ["--hidden", "16", "--seq-len", "10", "--batch", "4", "--quiet"]

# max |resumed - continued| / max |continued| over each parameter after 20 steps on either
# side of the break, measured (AMD EPYC, mpich) for rnn, 2-layer lstm and gru, 2 -> 1 and
# 1 -> 2 ranks: <= 4.8e-16 in float64 (max abs 1.7e-16, max rel 2.4e-14 where |p| >= 1e-3)
# and <= 2.3e-7 in float32 (max abs 9e-8, max rel 1e-5); the bounds leave room for Adam
# amplifying a rounding difference over more steps
TOLERANCE = {"float64": 1e-13, "float32": 1e-5}


def environment():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")   # one BLAS thread per rank
    for name in distributed._LAUNCHER_SIZE_VARIABLES:
        env.pop(name, None)
    return env


def train(n, args):
    """``python -m rnnfast train args`` under ``mpiexec -n n``; the CompletedProcess."""
    return subprocess.run([mpiexec(), "-n", str(n), sys.executable, "-m", "rnnfast", "train",
                           *args], capture_output=True, text=True, timeout=120,
                          env=environment())


def relative_difference(a, b):
    return max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(a[k]))) for k in a)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", [[], ["--cell", "lstm", "--layers", "2"]],
                         ids=["rnn", "lstm-2"])
@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)], ids=["2to1", "1to2"])
def test_a_resume_on_another_number_of_ranks_continues_the_run(text_file, tmp_path, dtype,
                                                               options, first, then):
    args = [text_file, *BASE, "--dtype", dtype, *options]
    straight, resumed, ckpt = (str(tmp_path / n) for n in ("s.npz", "r.npz", "c.npz"))
    done = train(first, [*args, "--steps", "40", "--save", straight])
    assert done.returncode == 0, done.stderr
    half = train(first, [*args, "--steps", "20", "--checkpoint-every", "20",
                         "--checkpoint", ckpt])
    assert half.returncode == 0, half.stderr
    assert load_checkpoint(ckpt)[0]["world_size"] == first
    again = train(then, [*args, "--steps", "40", "--resume", ckpt, "--save", resumed])
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("resumed from") == 1
    assert again.stderr == (f"note: --resume {ckpt} was written by {first} MPI rank(s), this "
                            f"run has {then}: the gradient sums are added in another order\n")
    a, b = RNNModel.load(straight).parameters, RNNModel.load(resumed).parameters
    assert relative_difference(a, b) <= TOLERANCE[dtype]
    # and not trivially: the second half moved the parameters much more than that
    c = RNNModel.load(straight).parameters
    half_model = {k: v for k, v in load_checkpoint(ckpt)[1].items() if k.startswith("model/")}
    moved = relative_difference({k: c[k] for k in c},
                                {k: half_model[f"model/{k}"] for k in c})
    assert moved > 1e3 * TOLERANCE[dtype]


def test_with_dropout_the_note_says_the_masks_differ(text_file, tmp_path):
    args = [text_file, *BASE, "--layers", "2", "--dropout", "0.2"]
    ckpt = str(tmp_path / "c.npz")
    assert train(2, [*args, "--steps", "6", "--checkpoint-every", "6",
                     "--checkpoint", ckpt]).returncode == 0
    again = train(1, [*args, "--steps", "10", "--resume", ckpt])
    assert again.returncode == 0, again.stderr
    assert again.stderr == (f"note: --resume {ckpt} was written by 2 MPI rank(s), this run has "
                            "1: the gradient sums are added in another order and the dropout "
                            "masks differ from those of the first run\n")


def test_keep_best_on_two_ranks(text_file, tmp_path):
    ckpt, log = str(tmp_path / "c.npz"), str(tmp_path / "log.jsonl")
    args = [text_file, *BASE, "--dtype", "float64", "--lr", "0.3", "--val-frac", "0.2",
            "--eval-every", "3", "--keep-best", "--checkpoint", ckpt]
    done = train(2, [*args, "--steps", "20", "--log", log])
    assert done.returncode == 0, done.stderr
    losses = {r["step"]: r["val_loss"] for r in map(json.loads, open(log, encoding="utf-8"))}
    assert sorted(losses) == [3, 6, 9, 12, 15, 18, 20]
    meta, arrays = load_checkpoint(str(tmp_path / "c.best.npz"))
    assert meta["val_loss"] == min(losses.values()) and losses[meta["step"]] == meta["val_loss"]
    assert meta["world_size"] == 2 and arrays["state/0"].shape[0] == 4   # the whole batch
    # the best checkpoint resumes on one rank
    again = train(1, [*args, "--steps", "24", "--resume", str(tmp_path / "c.best.npz"),
                      "--checkpoint", str(tmp_path / "d.npz")])
    assert again.returncode == 0, again.stderr


def test_a_fine_tune_on_two_ranks_continues_the_same_model(text_file, tmp_path):
    saved = str(tmp_path / "m.npz")
    assert train(1, [text_file, *BASE, "--dtype", "float64", "--cell", "gru", "--steps", "5",
                     "--save", saved]).returncode == 0
    tuned = {n: str(tmp_path / f"tuned{n}.npz") for n in (1, 2)}
    for n, path in tuned.items():
        done = train(n, [text_file, "--seq-len", "10", "--batch", "4", "--quiet", "--steps",
                         "20", "--lr-decay", "0.5", "--decay-after", "0", "--init-from", saved,
                         "--save", path])
        assert done.returncode == 0, done.stderr
    a, b = RNNModel.load(tuned[1]), RNNModel.load(tuned[2])
    assert a.cell == b.cell == "gru" and a.metadata["vocab"] == b.metadata["vocab"]
    assert relative_difference(a.parameters, b.parameters) <= TOLERANCE["float64"]
