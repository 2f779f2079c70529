"""The machine's multiply-add peak: timed FMA chains (``_peak.h``), on one thread or several.

The benchmark's ``peak`` column (:func:`rnnfast.bench.machine_peak`) is built on
:func:`fma_seconds`: ``n_threads`` threads each run the same ``n_iter`` rounds of
``CHAINS`` independent FMA chains, one vector register wide each, released together
by a spin barrier; it returns the wall time from the first thread's start to the last
one's end, and each thread's CPU time.

A separate extension, not an include file of ``rnnfast._kernels``: it calls no BLAS
and shares no inline code with the kernels (the two reasons that extension is one,
CONTRIBUTING.md), ``import rnnfast`` never loads it, and it runs nothing but the
benchmark's measurement.
"""

import threading

cimport cython

cdef extern from "_peak.h" nogil:
    int RF_PEAK_GENERIC, RF_PEAK_AVX2, RF_PEAK_AVX512, RF_PEAK_CHAINS
    ctypedef struct rf_peak_gate:
        long arrived
        long n_threads
    int rf_peak_lanes(int isa, int f32)
    int rf_peak_isa_supported(int isa)
    float rf_peak_chains_f(int isa, long long n_iter, float a, float b)
    double rf_peak_chains_d(int isa, long long n_iter, double a, double b)
    double rf_peak_now()
    double rf_peak_cpu_now()
    void rf_peak_gate_arrive(rf_peak_gate *gate, long count)
    void rf_peak_gate_wait(rf_peak_gate *gate)

#: Independent FMA chains per thread (vector registers in flight).
CHAINS = RF_PEAK_CHAINS

_ISAS = {"avx512f": RF_PEAK_AVX512, "avx2+fma": RF_PEAK_AVX2, "generic": RF_PEAK_GENERIC}

# the chains' multiplier and addend: every chain tends to b / (1 - a) = 1, far from
# overflow and from subnormals, however many rounds run
cdef double _A = 0.999
cdef double _B = 0.001


def isas():
    """The loops this CPU runs, widest first: names among ``"avx512f"``, ``"avx2+fma"``,
    ``"generic"`` (always there)."""
    return [name for name, code in _ISAS.items() if rf_peak_isa_supported(code)]


def _isa_code(str isa):
    if isa not in _ISAS:
        raise ValueError(f"isa is {isa!r}; expected one of {', '.join(map(repr, _ISAS))}")
    cdef int code = _ISAS[isa]
    if not rf_peak_isa_supported(code):
        raise ValueError(f"isa {isa!r} is not supported by this CPU; it runs {isas()}")
    return code


def _dtype_is_f32(str dtype):
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype is {dtype!r}; expected 'float32' or 'float64'")
    return dtype == "float32"


def flops_per_iteration(str dtype, str isa):
    """Floating-point operations of one round of the chains of one thread: 2 per lane of
    each of the ``CHAINS`` FMAs."""
    return 2 * CHAINS * rf_peak_lanes(_isa_code(isa), _dtype_is_f32(dtype))


@cython.auto_pickle(False)     # one measurement's state: nothing to pickle
cdef class _Gate:
    """The start barrier of one measurement and each thread's (start, end) times."""
    cdef rf_peak_gate gate
    cdef public list times

    def __cinit__(self, long n_threads):
        self.gate.arrived = 0
        self.gate.n_threads = n_threads
        self.times = [None] * n_threads


cdef double _run(bint f32, int isa, long long n_iter) noexcept nogil:
    if f32:
        return rf_peak_chains_f(isa, n_iter, <float>_A, <float>_B)
    return rf_peak_chains_d(isa, n_iter, _A, _B)


def _thread(_Gate gate, Py_ssize_t index, bint f32, int isa, long long n_iter):
    """One thread of a measurement: wait for the others, run the chains, record the times."""
    cdef double start, end, cpu_start, cpu_end, result
    with nogil:
        rf_peak_gate_wait(&gate.gate)
        cpu_start = rf_peak_cpu_now()
        start = rf_peak_now()
        result = _run(f32, isa, n_iter)
        end = rf_peak_now()
        cpu_end = rf_peak_cpu_now()
    cpu = cpu_end - cpu_start if cpu_start >= 0 and cpu_end >= 0 else float("nan")
    gate.times[index] = (start, end, cpu, result)


def fma_seconds(str dtype, str isa, long long n_iter, int n_threads=1):
    """Seconds that ``n_threads`` threads take to run ``n_iter`` rounds of the chains each.

    Two clocks: the wall clock, from the first thread's start to the last one's end, and
    each thread's CPU time, which leaves out the time the thread waited for its core while
    other processes ran (on a shared machine, the wall clock's rate is the load's as much
    as the CPU's).

    Parameters
    ----------
    dtype : {"float32", "float64"}
    isa : str
        One of :func:`isas`.
    n_iter : int
        Rounds per thread (at least 1); each round is :func:`flops_per_iteration` flops.
    n_threads : int
        Threads running at once (at least 1), started together.

    Returns
    -------
    wall : float
        Seconds from the first thread's start to the last thread's end.
    cpu : tuple of float
        Each thread's CPU seconds (NaN where the platform has no thread CPU clock).
    """
    cdef bint f32 = _dtype_is_f32(dtype)
    cdef int code = _isa_code(isa)
    if n_iter < 1:
        raise ValueError(f"n_iter is {n_iter}; expected at least 1")
    if n_threads < 1:
        raise ValueError(f"n_threads is {n_threads}; expected at least 1")
    gate = _Gate(n_threads)
    if n_threads == 1:
        _thread(gate, 0, f32, code, n_iter)
    else:
        threads = []
        try:
            for i in range(n_threads):
                thread = threading.Thread(target=_thread, args=(gate, i, f32, code, n_iter))
                thread.start()
                threads.append(thread)
        finally:
            # threads that did not start must not keep the others at the barrier
            rf_peak_gate_arrive(&gate.gate, n_threads - len(threads))
            for thread in threads:
                thread.join()
    starts, ends, cpu, sums = zip(*gate.times)
    # every lane of every chain tends to 1: a sum far from that means lost rounds
    expected = CHAINS * rf_peak_lanes(code, f32)
    if n_iter >= 20_000 and not all(abs(total - expected) < 0.01 * expected for total in sums):
        raise RuntimeError(f"the FMA chains' sums are {sums}; expected {expected} each")
    return max(ends) - min(starts), cpu
