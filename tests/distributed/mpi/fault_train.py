"""``python -m rnnfast train`` with a fault injected on rank 1 (used by test_distributed.py).

FAULT=raise|kill and FAULT_STEP=k in the environment: at its k-th step, rank 1
raises an exception or kills itself with SIGKILL.
"""

import os
import signal
import sys

from mpi4py import MPI

from rnnfast import training
from rnnfast.__main__ import main

if MPI.COMM_WORLD.Get_rank() == 1:
    fault, at = os.environ["FAULT"], int(os.environ["FAULT_STEP"])
    original, calls = training.clip_grad_norm, [0]

    def clip(grads, max_norm):
        calls[0] += 1
        if calls[0] == at:
            if fault == "raise":
                raise RuntimeError("injected fault")
            os.kill(os.getpid(), signal.SIGKILL)
        return original(grads, max_norm)
    training.clip_grad_norm = clip

sys.exit(main(sys.argv[1:]))
