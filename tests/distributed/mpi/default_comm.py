"""Training with the distributed helpers' default communicator (used by test_distributed.py).

Every rank starts from its own initialisation and trains on its own data;
``broadcast_parameters`` and ``allreduce_gradients`` get no communicator.
Rank 0 prints the mean of the test gradient and the largest difference
between the ranks' parameters (before any step, then after the steps).
"""

import numpy as np
from mpi4py import MPI

import rnnfast
from rnnfast import distributed as dist

rank = MPI.COMM_WORLD.Get_rank()
model = rnnfast.RNNModel(5, 8, 5, 2, cell="lstm", dtype=np.float64, seed=rank)
optimizer = rnnfast.optim.Adam(model.named_parameters(), lr=0.05)
dist.broadcast_parameters(model.named_parameters())


def spread():
    flat = np.concatenate([p.ravel() for _, p in model.named_parameters()])
    return max(float(np.max(np.abs(f - flat))) for f in MPI.COMM_WORLD.allgather(flat))


after_broadcast = spread()
mean = dist.allreduce_gradients({"dW": np.full(3, rank + 1.0)})["dW"]
rng = np.random.default_rng(rank)                 # different data on every rank
for _step in range(5):
    X, Y = rng.integers(0, 5, (2, 6)), rng.integers(0, 5, (2, 6))
    loss, grads = model.loss_and_grads(X, Y)
    dist.allreduce_gradients(grads)
    optimizer.step(grads)
after_steps = spread()
if rank == 0:
    print(float(mean[0]), after_broadcast, after_steps)
