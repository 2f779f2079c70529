"""Data parallelism over MPI: equivalence with one process, faults, bad input, resume.

The MPI runs are real ``mpiexec -n 2`` jobs (skipped when mpi4py or mpiexec is
missing: ``pip install ".[mpi]"``); the functions' single-process behaviour is
tested without MPI.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rnnfast import distributed
from rnnfast.checkpoint import load_checkpoint
from rnnfast.model import RNNModel
from tests.helpers import mpiexec

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. " * 30
BASE = ["--hidden", "16", "--seq-len", "10", "--batch", "4", "--quiet", "--dtype", "float64"]


def environment():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")   # one BLAS thread per rank
    for name in distributed._LAUNCHER_SIZE_VARIABLES:
        env.pop(name, None)
    return env


def run(args, n=None, timeout=120, **kwargs):
    """``python args`` (under ``mpiexec -n n`` when n is given); the CompletedProcess."""
    command = [sys.executable, *args]
    if n is not None:
        command = [mpiexec(), "-n", str(n), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=environment(), **kwargs)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


# -- without MPI ------------------------------------------------------------------

def test_without_a_launcher_nothing_changes(monkeypatch):
    for name in distributed._LAUNCHER_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched_by_mpi() == 1 and distributed.world() is None
    grads = {"dW": np.ones(3), "input": np.full(2, 5.0)}
    assert distributed.allreduce_gradients(grads, None) is grads
    np.testing.assert_array_equal(grads["dW"], 1)
    assert distributed.shard(6, None) == slice(0, 6)
    distributed.broadcast_parameters({"W": np.ones(2)}, None)


def test_a_launcher_without_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(RuntimeError, match="mpi4py is not installed"):
        distributed.world()


def test_shards_are_equal_or_refused():
    class Comm:
        def __init__(self, rank, size):
            self.rank, self.size = rank, size

        def Get_rank(self):
            return self.rank

        def Get_size(self):
            return self.size
    assert [distributed.shard(8, Comm(r, 4)) for r in range(4)] == [
        slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)]
    with pytest.raises(ValueError, match="3 ranks do not divide a batch of 8"):
        distributed.shard(8, Comm(0, 3))


# -- under mpiexec -n 2 -------------------------------------------------------------

def test_the_own_loop_example_equals_one_process(tmp_path):
    mpiexec()                                         # skips without mpi4py
    one, two = str(tmp_path / "one.npy"), str(tmp_path / "two.npy")
    single = run([os.path.join(HERE, "mpi", "own_loop.py"), "30", one])
    assert single.returncode == 0, single.stderr
    double = run([os.path.join(HERE, "mpi", "own_loop.py"), "30", two], n=2)
    assert double.returncode == 0, double.stderr
    assert float(double.stdout.split()[-1]) == 0.0      # the ranks hold identical parameters
    a, b = np.load(one), np.load(two)
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_two_ranks_equal_two_shards_averaged_in_one_process_exactly(tmp_path):
    """The only difference from one process on the whole batch is the order of the sums:
    two shards averaged in one process give the two ranks' model bit for bit."""
    mpiexec()                                         # skips without mpi4py
    emulated, two = str(tmp_path / "emulated.npy"), str(tmp_path / "two.npy")
    assert run([os.path.join(HERE, "mpi", "own_loop.py"), "30", emulated, "2"]).returncode == 0
    double = run([os.path.join(HERE, "mpi", "own_loop.py"), "30", two], n=2)
    assert double.returncode == 0, double.stderr
    np.testing.assert_array_equal(np.load(two), np.load(emulated))


@pytest.mark.parametrize("options", [[], ["--cell", "lstm", "--layers", "2"]],
                         ids=["rnn", "lstm-2"])
def test_train_on_two_ranks_equals_one_process(text_file, tmp_path, options):
    mpiexec()                                         # skips without mpi4py
    one, two = str(tmp_path / "one.npz"), str(tmp_path / "two.npz")
    args = ["-m", "rnnfast", "train", text_file, *BASE, "--steps", "30", *options]
    single = run([*args, "--save", one])
    assert single.returncode == 0, single.stderr
    double = run([*args, "--save", two], n=2)
    assert double.returncode == 0, double.stderr
    assert double.stdout.count("training on") == 1            # only rank 0 prints
    assert "MPI: 2 ranks" in double.stdout
    a, b = RNNModel.load(one).parameters, RNNModel.load(two).parameters
    for name in a:
        scale = np.max(np.abs(a[name]))
        assert np.max(np.abs(a[name] - b[name])) <= 1e-10 * scale, name


@pytest.mark.parametrize("fault", ["raise", "kill"])
def test_a_failing_rank_ends_the_job_and_the_last_checkpoint_resumes(text_file, tmp_path,
                                                                     fault):
    ckpt, model = str(tmp_path / "c.npz"), str(tmp_path / "m.npz")
    args = ["train", text_file, *BASE, "--steps", "40", "--checkpoint-every", "10",
            "--checkpoint", ckpt, "--save", model]
    script = os.path.join(HERE, "mpi", "fault_train.py")
    start = time.monotonic()
    env = dict(environment(), FAULT=fault, FAULT_STEP="25")
    failed = subprocess.run([mpiexec(), "-n", "2", sys.executable, script, *args],
                            capture_output=True, text=True, timeout=120, env=env)
    assert time.monotonic() - start < 60
    assert failed.returncode != 0
    if fault == "raise":
        assert "rank 1 failed (RuntimeError: injected fault)" in failed.stderr
    else:                        # mpiexec names the killed process by pid; rank 0 listed them
        pids = failed.stdout.split("(pids ")[1].split(")")[0].split(", ")
        assert f"PID {pids[1]}" in failed.stdout + failed.stderr
    assert not os.path.exists(model)
    meta, _ = load_checkpoint(ckpt)                      # the last checkpoint is intact
    assert meta["step"] == 20 and meta["world_size"] == 2
    resumed = run(["-m", "rnnfast", *args, "--resume", ckpt], n=2)
    assert resumed.returncode == 0, resumed.stderr
    straight = str(tmp_path / "straight.npz")
    assert run(["-m", "rnnfast", "train", text_file, *BASE, "--steps", "40", "--save",
                straight], n=2).returncode == 0
    a, b = RNNModel.load(straight).parameters, RNNModel.load(model).parameters
    for name in a:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)


def test_sigterm_stops_every_rank_at_the_same_step(text_file, tmp_path):
    ckpt = str(tmp_path / "c.npz")
    proc = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, "-m", "rnnfast", "train",
                             text_file, *BASE, "--steps", "100000000", "--checkpoint", ckpt],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment())
    assert proc.stdout.readline().startswith("MPI: 2 ranks")
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert "stopped by SIGTERM" in out, err
    meta, arrays = load_checkpoint(ckpt)
    assert meta["world_size"] == 2 and arrays["state/0"].shape[0] == 4     # the whole batch


def test_bad_input_is_refused_on_every_rank_without_hanging(text_file, tmp_path):
    start = time.monotonic()
    odd = run(["-m", "rnnfast", "train", text_file, *BASE[:4], "--batch", "3", "--steps", "2"],
              n=2, timeout=60)
    assert odd.returncode != 0 and "need a multiple of 2" in odd.stderr
    other = tmp_path / "other.txt"
    other.write_text(TEXT + "!", encoding="utf-8")
    mixed = subprocess.run(
        [mpiexec(), "-n", "1", sys.executable, "-m", "rnnfast", "train", text_file, *BASE,
         "--steps", "2", ":", "-n", "1", sys.executable, "-m", "rnnfast", "train", text_file,
         *BASE, "--steps", "3"], capture_output=True, text=True, timeout=60, env=environment())
    assert mixed.returncode != 0
    assert mixed.stderr.count("started with other arguments or another text") == 2
    texts = subprocess.run(
        [mpiexec(), "-n", "1", sys.executable, "-m", "rnnfast", "train", text_file, *BASE,
         "--steps", "2", ":", "-n", "1", sys.executable, "-m", "rnnfast", "train",
         str(other), *BASE, "--steps", "2"], capture_output=True, text=True, timeout=60,
        env=environment())
    assert texts.returncode != 0 and "another text" in texts.stderr
    # a checkpoint resumes on another number of ranks only when it divides the batch
    ckpt = str(tmp_path / "c.npz")
    assert run(["-m", "rnnfast", "train", text_file, *BASE[:4], "--batch", "3", "--steps",
                "4", "--checkpoint-every", "2", "--checkpoint", ckpt]).returncode == 0
    wrong_n = run(["-m", "rnnfast", "train", text_file, *BASE[:4], "--batch", "3", "--steps",
                   "8", "--resume", ckpt], n=2, timeout=60)
    assert wrong_n.returncode != 0 and (
        f"--batch 3 is the global batch; 2 MPI ranks need a multiple of 2 to share it equally "
        f"(resuming {ckpt} is possible on any number of ranks that divides 3)") in wrong_n.stderr
    assert time.monotonic() - start < 120


def test_default_communicator_is_the_world_on_two_ranks():
    mpiexec()                                         # skips without mpi4py
    done = run([os.path.join(HERE, "mpi", "default_comm.py")], n=2)
    assert done.returncode == 0, done.stderr
    mean, after_broadcast, after_steps = map(float, done.stdout.split()[-3:])
    assert mean == 1.5                                 # (1 + 2) / 2
    assert after_broadcast == 0.0 and after_steps == 0.0


def test_default_communicator_in_one_process(monkeypatch):
    for name in distributed._LAUNCHER_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    model = RNNModel(4, 6, 4, cell="gru", dtype=np.float64, seed=0)
    before = {name: a.copy() for name, a in model.named_parameters()}
    distributed.broadcast_parameters(model.named_parameters())     # nothing to do
    for name, a in model.named_parameters():
        np.testing.assert_array_equal(a, before[name])
    grads = {"dW": np.full(3, 2.0), "dh0": np.ones(2)}
    assert distributed.allreduce_gradients(grads) is grads
    np.testing.assert_array_equal(grads["dW"], 2.0)
