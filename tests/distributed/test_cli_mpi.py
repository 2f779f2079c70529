"""python -m rnnfast train under mpiexec: an error after the set-up is one clean line, said
once (by rank 0 when every rank sees it, else by the failing rank).

Real ``mpiexec -n 2`` jobs, skipped when mpi4py or mpiexec is missing.
"""

import os
import subprocess
import sys

import pytest

from rnnfast import distributed
from tests.helpers import BASE as CLI_BASE
from tests.helpers import mpiexec

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = [*CLI_BASE, "--dtype", "float64"]


def run(args, n=2, env=None, script=None):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **(env or {}))
    for name in distributed._LAUNCHER_SIZE_VARIABLES:
        env.pop(name, None)
    program = [script] if script else ["-m", "rnnfast"]
    return subprocess.run([mpiexec(), "-n", str(n), sys.executable, *program, *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_resume_every_rank_refuses_is_one_line_without_an_abort(text_file, tmp_path):
    ckpt = str(tmp_path / "c.npz")
    first = run(["train", text_file, *BASE, "--steps", "4", "--checkpoint-every", "2",
                 "--checkpoint", ckpt])
    assert first.returncode == 0, first.stderr
    refused = run(["train", text_file, *BASE, "--steps", "8", "--hidden", "32", "--resume",
                   ckpt])
    assert refused.returncode != 0
    assert refused.stderr == (f"error: --resume {ckpt} was trained with --hidden 16; this run "
                              "has --hidden 32 (use the same settings)\n")


def test_a_failing_rank_says_so_in_one_line_once(text_file, tmp_path):
    script = os.path.join(HERE, "mpi", "fault_train.py")
    failed = run(["train", text_file, *BASE, "--steps", "20"], script=script,
                 env={"FAULT": "raise", "FAULT_STEP": "5"})
    assert failed.returncode != 0
    ours = [line for line in failed.stderr.splitlines() if "rank" in line and "MPI_Abort"
            not in line and not line.startswith("Abort(")]
    assert ours == ["rank 1 failed (RuntimeError: injected fault); ending all ranks"], \
        failed.stderr
    assert "Traceback" not in failed.stderr


def test_a_save_that_fails_at_the_end_is_one_line_without_an_abort(text_file, tmp_path):
    if not os.access("/proc", os.W_OK):
        pytest.skip("needs a /proc that passes the write check")
    failed = run(["train", text_file, *BASE, "--steps", "4", "--save", "/proc/m.npz",
                  "--checkpoint", str(tmp_path / "c.npz")], env={"TMPDIR": str(tmp_path)})
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1 and "Abort" not in failed.stderr, failed.stderr
    assert failed.stderr.startswith("error: --save /proc/m.npz: ")
    assert f"the model was written to {tmp_path}" in failed.stderr
