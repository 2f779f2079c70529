"""Synchronous data parallelism over MPI, for training on more than one process or machine.

Every rank holds the whole model; each runs forward and backward on its shard
of the global batch; :func:`allreduce_gradients` averages the parameter
gradients over the ranks before clipping and the optimizer step, so every
rank takes the same step and the parameters stay identical.  MPI comes
through mpi4py (``pip install "rnnfast[mpi]"`` brings mpi4py and the MPICH
wheels with ``mpiexec``; a system MPI works as well), imported only when a
function here needs it.  In a loop of your own::

    from rnnfast import distributed as dist

    dist.broadcast_parameters(model.named_parameters())   # rank 0's, in dist.world()
    rows = dist.shard(len(X), dist.world())   # this rank's rows of the global batch
    for step in range(steps):
        loss, grads = model.loss_and_grads(X[rows], Y[rows])
        dist.allreduce_gradients(grads)       # the mean over ranks, in place
        rnnfast.clip_grad_norm(grads, 5.0)
        optimizer.step(grads)

and run it with ``mpiexec -n 4 python my_training.py``.  The gradients of
equal shards average to those of the whole batch: the same model as one
process, up to the order of the sums.
"""

import os

import numpy as np

from rnnfast._gradients import parameter_keys

__all__ = ["world", "launched_by_mpi", "broadcast_parameters", "allreduce_gradients", "shard",
           "allreduce_mean"]

# Environment variables that MPI launchers set in every process they start.
_LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


def launched_by_mpi():
    """Count the processes an MPI launcher started, from this process's environment.

    Reads the size variables MPI launchers set (``PMI_SIZE``,
    ``OMPI_COMM_WORLD_SIZE``, ``PMIX_SIZE``, ``MPI_LOCALNRANKS``); imports
    nothing.

    Returns
    -------
    size : int
        The number of processes of the launch, or 1 when no launcher started this
        process.

    See Also
    --------
    world : The communicator itself, when there are several processes.
    """
    for name in _LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 1


def world():
    """Return the world communicator when this process is one of several MPI ranks.

    mpi4py is imported only when :func:`launched_by_mpi` counts more than one
    process, so a single process never needs it.

    Returns
    -------
    comm : mpi4py.MPI.Intracomm or None
        ``MPI.COMM_WORLD`` when it holds more than one process, else None.

    Raises
    ------
    RuntimeError
        When an MPI launcher started several processes but mpi4py is missing.
    """
    size = launched_by_mpi()
    if size <= 1:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise RuntimeError(f"started by an MPI launcher as one of {size} processes, but "
                           "mpi4py is not installed: pip install \"rnnfast[mpi]\"") from None
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def _size(comm):
    return 1 if comm is None else comm.Get_size()


def _rank(comm):
    return 0 if comm is None else comm.Get_rank()


_WORLD = object()      # the default communicator: world() at call time


def _communicator(comm):
    return world() if comm is _WORLD else comm


def broadcast_parameters(params, comm=_WORLD, root=0):
    """Copy every parameter array of rank ``root`` into the others', in place.

    Parameters
    ----------
    params : dict or list of (name, ndarray)
        ``RNNModel.parameters``, or the pairs of ``named_parameters()`` (of
        an ``RNNModel`` or a module); every rank must hold the same names,
        shapes and dtypes.
    comm : mpi4py communicator or None, optional
        Default :func:`world` (``MPI.COMM_WORLD`` under an MPI launcher, else
        None); None does nothing (a single process).
    root : int, default 0
        The rank whose values every rank receives.

    Raises
    ------
    TypeError
        If a parameter is not a writeable C-contiguous ndarray (only checked when
        there is a communicator).

    See Also
    --------
    allreduce_gradients : Keeps the parameters equal at every step after this.
    """
    comm = _communicator(comm)
    if comm is None:
        return
    arrays = params if isinstance(params, dict) else dict(params)
    for name in sorted(arrays):
        a = arrays[name]
        if not (isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.writeable):
            raise TypeError(f"parameter {name!r} must be a writeable C-contiguous ndarray")
        comm.Bcast(a, root=root)


def allreduce_gradients(grads, comm=_WORLD):
    """Replace every parameter gradient in ``grads`` by its mean over the ranks, in place.

    The gradients of inputs and initial states (``input``, ``hx``, ``cx``,
    ``dx``, ``dh0``, ``dc0``, ``dxt``, ``dh_prev``) are left alone.  The arrays
    of one dtype travel in one flat buffer: one all-reduce per dtype, whatever
    the model's number of parameters.

    Parameters
    ----------
    grads : dict[str, ndarray]
        Gradients by name, as returned by a module's ``backward``,
        :meth:`RNNModel.loss_and_grads` or :func:`rnnfast.rnn_backward`.  Every
        rank must hold the same names, shapes and dtypes.
    comm : mpi4py communicator or None, optional
        Default :func:`world`; None (a single process) leaves ``grads`` as it is.

    Returns
    -------
    grads : dict[str, ndarray]
        The same dict, its parameter gradients averaged.

    Raises
    ------
    TypeError
        If a parameter gradient is not a writeable floating-point ndarray (only
        checked when there is a communicator).

    Examples
    --------
    On one process there is nothing to average:

    >>> import numpy as np
    >>> from rnnfast import distributed
    >>> grads = {"dWax": np.ones((2, 3)), "dx": np.zeros((3, 1, 4))}
    >>> distributed.allreduce_gradients(grads, comm=None) is grads
    True
    """
    comm = _communicator(comm)
    if comm is None:
        return grads
    from mpi4py import MPI

    keys = sorted(parameter_keys(grads))
    by_dtype = {}
    for k in keys:
        a = grads[k]
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or not a.flags.writeable:
            raise TypeError(f"grads[{k!r}] must be a writeable floating-point ndarray")
        by_dtype.setdefault(a.dtype.str, []).append(k)
    size = comm.Get_size()
    for dtype in sorted(by_dtype):
        group = by_dtype[dtype]
        flat = np.concatenate([grads[k].ravel() for k in group])
        comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        flat /= size
        offset = 0
        for k in group:
            a = grads[k]
            a[...] = flat[offset:offset + a.size].reshape(a.shape)
            offset += a.size
    return grads


def allreduce_mean(values, comm):
    """Average a few numbers over the ranks (such as the losses of a step).

    Parameters
    ----------
    values : array_like of float
        This rank's numbers, the same count on every rank.
    comm : mpi4py communicator or None
        The ranks to average over; None returns the values as they are.

    Returns
    -------
    mean : ndarray of float64
        A new array of the shape of ``values``: the element-wise mean over the ranks.

    Examples
    --------
    >>> from rnnfast import distributed
    >>> distributed.allreduce_mean([1.5, 2.0], None)
    array([1.5, 2. ])
    """
    values = np.array(values, dtype=np.float64)
    if comm is None:
        return values
    from mpi4py import MPI

    comm.Allreduce(MPI.IN_PLACE, values, op=MPI.SUM)
    return values / comm.Get_size()


def shard(n, comm):
    """Return this rank's rows of a global batch of ``n`` rows.

    The rows are cut into equal contiguous blocks, in rank order: rank ``r`` of
    ``size`` ranks gets rows ``r * n // size`` to ``(r + 1) * n // size``.

    Parameters
    ----------
    n : int
        The number of rows (sequences) of the global batch.
    comm : mpi4py communicator or None
        The ranks that share the batch; None (a single process) gets every row.

    Returns
    -------
    rows : slice
        This rank's block, for indexing the batch: ``X[rows]``.

    Raises
    ------
    ValueError
        When the number of ranks does not divide ``n`` (the shards must be
        equal for the averaged gradients to be the whole batch's).

    Examples
    --------
    >>> from rnnfast import distributed
    >>> distributed.shard(8, None)
    slice(0, 8, None)

    Anything with ``Get_size`` and ``Get_rank`` stands for a communicator; rank 2
    of 4:

    >>> class Rank2of4:
    ...     def Get_size(self):
    ...         return 4
    ...     def Get_rank(self):
    ...         return 2
    >>> distributed.shard(8, Rank2of4())
    slice(4, 6, None)
    """
    size, rank = _size(comm), _rank(comm)
    if n % size:
        raise ValueError(f"{size} ranks do not divide a batch of {n}: give a batch that is a "
                         f"multiple of {size}")
    per = n // size
    return slice(rank * per, (rank + 1) * per)
