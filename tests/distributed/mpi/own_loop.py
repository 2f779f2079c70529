"""The README's own-loop example under MPI (used by test_distributed.py).

``own_loop.py STEPS OUT.npy [SHARDS]``: rank 0 saves its parameters to OUT.npy
and prints the largest difference between the ranks' parameters.  With SHARDS
and no MPI, one process computes SHARDS shards' gradients and averages them,
as SHARDS ranks would.
"""

import sys

import numpy as np
from mpi4py import MPI

import rnnfast
from rnnfast import distributed as dist

comm = dist.world()
model = rnnfast.RNNModel(7, 16, 7, dtype=np.float64, seed=MPI.COMM_WORLD.Get_rank())
optimizer = rnnfast.optim.Adam(model.parameters, lr=0.01)
dist.broadcast_parameters(model.parameters, comm)     # rank 0's initialisation everywhere
rng = np.random.default_rng(0)                        # the same global batches on every rank
for _step in range(int(sys.argv[1])):
    X, Y = rng.integers(0, 7, (8, 10)), rng.integers(0, 7, (8, 10))
    if len(sys.argv) > 3:                             # SHARDS ranks, emulated in one process
        k = int(sys.argv[3])
        parts = [model.loss_and_grads(X[i * 8 // k:(i + 1) * 8 // k],
                                      Y[i * 8 // k:(i + 1) * 8 // k])[1] for i in range(k)]
        grads = {key: sum(p[key] for p in parts) / k for key in parts[0]}
    else:
        rows = dist.shard(len(X), comm)
        loss, grads = model.loss_and_grads(X[rows], Y[rows])
        dist.allreduce_gradients(grads, comm)
    rnnfast.clip_grad_norm(grads, 5.0)
    optimizer.step(grads)
flat = np.concatenate([p.ravel() for _, p in sorted(model.parameters.items())])
everyone = comm.allgather(flat) if comm is not None else [flat]
if MPI.COMM_WORLD.Get_rank() == 0:
    np.save(sys.argv[2], flat)
    print(max(float(np.max(np.abs(f - flat))) for f in everyone))
