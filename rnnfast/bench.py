"""Speed benchmark: rnnfast against the NumPy reference and PyTorch, in one process.

Run it as ``python -m rnnfast bench`` (or ``python bench/bench_rnn.py``).

For every shape and dtype it times forward + BPTT of

* **rnnfast**: :func:`rnnfast.rnn_forward` then :func:`rnnfast.rnn_backward`;
* **numpy**: the same two calls of :mod:`rnnfast.reference`;
* **torch** (when installed): ``nn.RNN`` + ``nn.Linear`` + softmax, then
  autograd's backward of the hidden states with the same upstream gradient;

and the **GEMM roof**: the time NumPy's matmul takes for the set of matrix
products the computation needs (input projection, every step's recurrent
product forward and backward, output projection, ``dWhx``, ``dWhh``, ``dx``).
Calls are interleaved (one sample of each in turn, after a warm-up) and the
medians are reported, so that the ratios compare implementations under the
same machine load.  Ratios are what to read: absolute times drift on a shared
machine.

The benchmark runs in a plain process, as a user's program does: nothing in
the environment is set for it.  rnnfast's kernels call the OpenBLAS that NumPy
loaded (when they can bind it), so they share NumPy's thread pool.  The
**mixed** column checks what that buys: rnnfast's time right after a NumPy
matmul (300 x 300, as any program around rnnfast does) as a share of its time
alone, both timed call by call and interleaved.  With two OpenBLAS copies each
pool's threads spin for a while after a call and take the cores from the
other's.

``OPENBLAS_CORETYPE`` forces OpenBLAS's kernels for one CPU type; when it names
an older one than the CPU supports the benchmark says so, since the roof and
every BLAS-bound time then drop.

The **peak** column is rnnfast's GFLOP/s as a share of the machine's multiply-add
peak, measured at the start (:func:`machine_peak`): independent FMA chains in
the widest vector registers the CPU has, on one thread and on every core the
process may use, per dtype, timed by each thread's CPU clock so that other
processes on a shared machine do not lower it.  The share is taken at the
thread count of the BLAS the kernels call (:func:`blas_threads`).
"""

import ctypes
import functools
import glob
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np

import rnnfast
from rnnfast import reference


@dataclass(frozen=True)
class Shape:
    n_x: int
    n_h: int
    n_y: int
    m: int
    T: int
    why: str = ""

    def __str__(self):
        return f"{self.n_x},{self.n_h},{self.n_y},{self.m},{self.T}"

    def flops(self, forward_only=False):
        """Floating-point operations of the matrix products (2 per multiply-add)."""
        rows = self.m * self.T
        forward = 2 * rows * (self.n_x * self.n_h + self.n_h * self.n_h + self.n_h * self.n_y)
        backward = 2 * rows * (2 * self.n_h * self.n_h + 2 * self.n_x * self.n_h)
        return forward if forward_only else forward + backward


SHAPES = {
    "seed-apple": Shape(5, 5, 5, 1, 5, "the seed notebook's example"),
    "min-char": Shape(65, 100, 65, 1, 25, "the classic char-RNN setting"),
    "char-small": Shape(65, 128, 65, 1, 100, "longer char sequences"),
    "small-batch": Shape(32, 64, 32, 16, 50, "small layers, some batch"),
    "medium": Shape(128, 256, 128, 32, 100, ""),
    "large": Shape(512, 1024, 512, 64, 25, "BLAS-bound"),
}

# --quick: the shapes and module cases that finish in about a minute on a 2-core machine
QUICK_SHAPES = ("seed-apple", "min-char", "char-small", "small-batch")

@dataclass(frozen=True)
class ModuleShape:
    """A torch-module-shaped case: rnnfast.RNN/LSTM/GRU against torch.nn's, forward + backward.

    ``targets`` is the speed-up target over torch, (float64, float32).
    """
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    batch: int
    length: int
    cell: str = "RNN"
    targets: tuple = (1.5, 1.5)
    plugin: bool = False          # rnnfast.torch's module inside a torch training step

    def __str__(self):
        name = f"rnnfast.torch.{self.cell}" if self.plugin else self.cell
        return (f"{name}, in {self.input_size}, H {self.hidden_size}, {self.num_layers} "
                f"layer{'s' if self.num_layers > 1 else ''}{', bi' if self.bidirectional else ''}"
                f", N {self.batch}, L {self.length}")


MODULE_SHAPES = {
    "rnn-1layer": ModuleShape(128, 256, 1, False, 32, 100),
    "rnn-2layer-bi": ModuleShape(128, 256, 2, True, 32, 100),
    # torch's float32 LSTM runs on oneDNN; its GRU and every float64 path run ATen ops per step
    "lstm-char": ModuleShape(65, 128, 1, False, 1, 100, "LSTM", (8, 1.5)),
    "lstm-small-batch": ModuleShape(32, 64, 1, False, 16, 50, "LSTM", (4, 1.5)),
    "lstm-1layer": ModuleShape(128, 256, 1, False, 32, 100, "LSTM", (1.5, 1.2)),
    "lstm-2layer-bi": ModuleShape(128, 256, 2, True, 32, 100, "LSTM", (1.5, 1.2)),
    "gru-char": ModuleShape(65, 128, 1, False, 1, 100, "GRU", (8, 8)),
    "gru-small-batch": ModuleShape(32, 64, 1, False, 16, 50, "GRU", (4, 4)),
    "gru-1layer": ModuleShape(128, 256, 1, False, 32, 100, "GRU", (1.5, 1.5)),
    "gru-2layer-bi": ModuleShape(128, 256, 2, True, 32, 100, "GRU", (1.5, 1.5)),
    # rnnfast.torch.X against torch.nn.X, both inside a torch training step
    **{f"torch-{cell.lower()}-{case}": ModuleShape(*dims, cell, targets, plugin=True)
       for cell in ("RNN", "LSTM", "GRU")
       for case, dims, targets in (("char", (65, 128, 1, False, 1, 100), (5, 5)),
                                   ("small-batch", (32, 64, 1, False, 16, 50), (3, 3)),
                                   ("1layer", (128, 256, 1, False, 32, 100), (1.5, 1.5)))},
}
QUICK_MODULES = ("lstm-char", "gru-small-batch", "torch-rnn-char")

# Speed-up targets for forward + BPTT: (vs numpy, vs torch) per dtype; None = no target.
TARGETS = {
    "float64": {"seed-apple": (40, 80), "min-char": (12, 14), "char-small": (12, 12),
                "small-batch": (5, 6), "medium": (None, 2), "large": (None, 1.7)},
    "float32": {"seed-apple": (40, 80), "min-char": (25, 25), "char-small": (25, 20),
                "small-batch": (10, 10), "medium": (None, 2.5), "large": (None, 2)},
}
# The mixed scenario's target: rnnfast after a NumPy matmul keeps this share of
# its speed alone, from char-small up.
MIXED_TARGET = 0.9
MIXED_SHAPES = ("char-small", "small-batch", "medium", "large")

# Share of the GEMM roof targeted, per shape and dtype.
ROOF_TARGETS = {"float64": {"medium": 0.85, "large": 0.92},
                "float32": {"medium": 0.85, "large": 0.95}}

# Environment variables that change the BLAS; printed with the results.
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
            "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "RNNFAST_BLAS",
            "RNNFAST_TEAM")

# The "mixed" scenario: rnnfast after a NumPy matmul of this size.
MIXED_MATMUL = 300

MEMORY_SHAPE = Shape(64, 64, 64, 1, 100_000, "long sequence, for peak memory")


def coretype_warning():
    """A warning when OPENBLAS_CORETYPE forces kernels older than this CPU supports, or None."""
    core = os.environ.get("OPENBLAS_CORETYPE")
    if not core:
        return None
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        flags = []
    if "avx512f" in flags and core.lower() in ("haswell", "zen", "sandybridge", "nehalem",
                                               "prescott", "core2", "atom"):
        return (f"warning: OPENBLAS_CORETYPE={core} forces OpenBLAS's {core} kernels on a CPU "
                "with AVX-512: BLAS-bound times and the roof are about half what this machine "
                "can do. Unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this command to "
                "measure its peak.")
    return None


def make_case(shape, dtype, seed=0):
    """Inputs ``(x, h0, parameters, dh)`` of ``shape`` in ``dtype``."""
    rng = np.random.default_rng(seed)
    s = shape
    x = rng.standard_normal((s.n_x, s.m, s.T)).astype(dtype)
    h0 = (0.1 * rng.standard_normal((s.n_h, s.m))).astype(dtype)
    parameters = {
        "Whx": (rng.standard_normal((s.n_h, s.n_x)) / np.sqrt(s.n_x)).astype(dtype),
        "Whh": (0.9 * rng.standard_normal((s.n_h, s.n_h)) / np.sqrt(s.n_h)).astype(dtype),
        "Wyh": (rng.standard_normal((s.n_y, s.n_h)) / np.sqrt(s.n_h)).astype(dtype),
        "bh": np.zeros((s.n_h, 1), dtype),
        "by": np.zeros((s.n_y, 1), dtype),
    }
    dh = rng.standard_normal((s.n_h, s.m, s.T)).astype(dtype)
    return x, h0, parameters, dh


def module_calls(module, case, forward_only):
    """A no-argument callable running ``module``'s forward (+ backward) on ``case``."""
    x, h0, parameters, dh = case
    forward, backward = module.rnn_forward, module.rnn_backward
    if forward_only:
        return lambda: forward(x, h0, parameters)

    def run():
        _, _, caches = forward(x, h0, parameters)
        return backward(dh, caches)
    return run


def torch_calls(torch, case, forward_only):
    """The same computation with ``torch.nn.RNN`` + ``nn.Linear`` + softmax and autograd."""
    x, h0, parameters, dh = case
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[x.dtype]
    n_h, n_x = parameters["Whx"].shape
    n_y = parameters["Wyh"].shape[0]
    rnn = torch.nn.RNN(n_x, n_h, nonlinearity="tanh", dtype=dtype)
    linear = torch.nn.Linear(n_h, n_y, dtype=dtype)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(parameters["Whx"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(parameters["Whh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(parameters["bh"][:, 0]))
        rnn.bias_hh_l0.zero_()
        linear.weight.copy_(torch.from_numpy(parameters["Wyh"]))
        linear.bias.copy_(torch.from_numpy(parameters["by"][:, 0]))
    # torch's own layout, prepared once: (T, m, n)
    xs = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 1, 0)))
    h0s = torch.from_numpy(np.ascontiguousarray(h0.T)[None])
    dhs = torch.from_numpy(np.ascontiguousarray(dh.transpose(2, 1, 0)))

    if forward_only:
        def run():
            with torch.no_grad():
                out, _ = rnn(xs, h0s)
                return torch.softmax(linear(out), dim=-1)
        return run

    xs.requires_grad_(True)
    h0s.requires_grad_(True)
    leaves = [xs, h0s, *rnn.parameters()]

    def run():
        for leaf in leaves:
            leaf.grad = None
        out, _ = rnn(xs, h0s)
        torch.softmax(linear(out), dim=-1)
        out.backward(dhs)
    return run


def roof_calls(shape, dtype, forward_only):
    """NumPy matmul over the products of forward (+ backward), into preallocated outputs."""
    s = shape
    rows = s.m * s.T
    rng = np.random.default_rng(1)

    def mat(*dims):
        return rng.standard_normal(dims).astype(dtype)

    step = (mat(s.m, s.n_h), mat(s.n_h, s.n_h), np.empty((s.m, s.n_h), dtype))
    products = [
        (mat(rows, s.n_x), mat(s.n_x, s.n_h), np.empty((rows, s.n_h), dtype)),   # input projection
        *[step] * s.T,                                                   # recurrent, forward
        (mat(rows, s.n_h), mat(s.n_h, s.n_y), np.empty((rows, s.n_y), dtype)),   # output projection
    ]
    if not forward_only:
        products += [
            *[step] * s.T,                                               # recurrent, backward
            (mat(s.n_h, rows), mat(rows, s.n_x), np.empty((s.n_h, s.n_x), dtype)),  # dWhx
            (mat(s.n_h, rows), mat(rows, s.n_h), np.empty((s.n_h, s.n_h), dtype)),  # dWhh
            (mat(rows, s.n_h), mat(s.n_h, s.n_x), np.empty((rows, s.n_x), dtype)),  # dx
        ]
    matmul = np.matmul

    def run():
        for a, b, out in products:
            matmul(a, b, out=out)
    return run


def time_interleaved(calls, samples, min_sample_seconds):
    """Median seconds per call of each callable, sampling them in turn.

    Each sample repeats a call enough times to last ``min_sample_seconds``
    (calibrated once during the warm-up), so tiny calls are not timer-bound.
    It starts with one untimed call: the previous sample's library may leave
    its thread pool spinning (torch's after a call slows rnnfast's next call at
    medium by 1.2-1.35x), and that interaction is the mixed column's subject,
    not the speed ratios'.
    """
    numbers = {}
    for name, fn in calls.items():
        fn()                                          # warm-up
        start = time.perf_counter()
        fn()
        once = max(time.perf_counter() - start, 1e-9)
        numbers[name] = max(1, int(min_sample_seconds / once))
    times = {name: [] for name in calls}
    clock = time.perf_counter
    for _ in range(samples):
        for name, fn in calls.items():
            number = numbers[name]
            fn()                                      # untimed: see above
            start = clock()
            for _ in range(number):
                fn()
            times[name].append((clock() - start) / number)
    return {name: statistics.median(ts) for name, ts in times.items()}


def time_mixed(fn, samples, dtype):
    """Median seconds of ``fn`` alone and right after a NumPy matmul, sampled in turn.

    Each sample is one call, timed on its own: the matmul is outside the timing.
    """
    a = np.random.default_rng(2).standard_normal((MIXED_MATMUL, MIXED_MATMUL)).astype(dtype)
    clock = time.perf_counter
    fn()
    alone, mixed = [], []
    for _ in range(samples):
        start = clock()
        fn()
        alone.append(clock() - start)
        a @ a
        start = clock()
        fn()
        mixed.append(clock() - start)
    return statistics.median(alone), statistics.median(mixed)


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def thread_report(torch):
    """Lines describing the BLAS libraries and thread counts in use."""
    lines = []
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        for pool in threadpool_info():
            owner = os.path.basename(os.path.dirname(pool["filepath"]))
            lines.append(f"{pool['internal_api']} {pool.get('version') or ''} "
                         f"({pool.get('architecture') or pool['user_api']}, from {owner}): "
                         f"{pool['num_threads']} threads")
    else:
        lines.append("BLAS thread pools: unknown (pip install threadpoolctl to list them)")
        lines.append(f"numpy BLAS: {np.__config__.CONFIG['Build Dependencies']['blas']['name']}")
    if torch is not None:
        lines.append(f"torch {torch.__version__}: {torch.get_num_threads()} threads")
    return lines


def machine_info(torch):
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rnnfast": rnnfast.__version__,
        "torch": None if torch is None else torch.__version__,
        "machine": platform.machine(),
        "processor": cpu_name(),
        "cpu_count": os.cpu_count(),
    }


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# The FMA peak: CPU seconds of one measurement, and measurements per setting (the median).
PEAK_SECONDS = 0.06
PEAK_REPEATS = 3
# the calibration's rounds of the chains: a fraction of a millisecond per ISA
PEAK_CALIBRATION_ITERATIONS = 100_000


@dataclass(frozen=True)
class Peak:
    """The machine's measured multiply-add peak (:func:`machine_peak`).

    ``gflops[dtype][threads]`` is the median rate of the FMA chains on ``threads``
    threads, each thread's rate taken by its own CPU clock (``clock``), summed over the
    threads; ``wall_gflops`` the same by the wall clock, lower than ``gflops`` when other
    processes share the cores.  ``isa`` names the chains' loop (``"avx512f"``,
    ``"avx2+fma"``, ``"generic"``), ``blas_threads`` the thread count the shares use.
    """
    isa: str
    clock: str
    blas_threads: int
    gflops: dict = field(default_factory=dict)
    wall_gflops: dict = field(default_factory=dict)

    def at_blas_threads(self, dtype):
        """The peak of ``dtype`` (a name) at the thread count of the kernels' BLAS."""
        return self.gflops[dtype][self.blas_threads]


def available_cores():
    """The CPUs this process may run on (its affinity where the OS says, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _blas_libraries():
    """Paths of the OpenBLAS the kernels call: NumPy's bundled one, or SciPy's."""
    from rnnfast import _kernels
    if _kernels.blas_in_use() == "numpy" and _kernels.NUMPY_BLAS:
        return [_kernels.NUMPY_BLAS]
    try:
        import scipy
    except ImportError:
        return []
    folder = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    return sorted(glob.glob(os.path.join(folder, "libscipy_openblas*.so*")))


def blas_threads():
    """Threads of the BLAS rnnfast's kernels call, at most :func:`available_cores`.

    Asked of the library itself (OpenBLAS's ``get_num_threads`` under the names
    NumPy's and SciPy's wheels give it); where that fails, ``OPENBLAS_NUM_THREADS``
    or ``OMP_NUM_THREADS``, else every available core, as OpenBLAS starts with.
    """
    cores = available_cores()
    names = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
             "openblas_get_num_threads64_", "openblas_get_num_threads")
    for path in _blas_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in names:
            function = getattr(library, name, None)
            if function is not None:
                function.restype = ctypes.c_int
                return max(1, min(int(function()), cores))
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return min(int(value), cores)
    return cores


def _fma_rates(dtype, isa, n_iter, n_threads):
    """``(CPU-clock rate, wall-clock rate)`` in GFLOP/s of one run of the FMA chains; the
    first is None where the platform has no thread CPU clock."""
    from rnnfast import _peak
    wall, cpu = _peak.fma_seconds(dtype, isa, n_iter, n_threads)
    flops = _peak.flops_per_iteration(dtype, isa) * n_iter
    wall_rate = flops * n_threads / wall / 1e9
    if any(not seconds > 0 for seconds in cpu):          # NaN: no thread CPU clock
        return None, wall_rate
    return sum(flops / seconds for seconds in cpu) / 1e9, wall_rate


@functools.cache
def machine_peak():
    """Measure the machine's multiply-add peak once per process; a :class:`Peak`.

    Each ISA the CPU runs (:func:`rnnfast._peak.isas`) is tried briefly and the fastest
    kept. Then ``PEAK_REPEATS`` rounds, interleaved, each running the chains for about
    ``PEAK_SECONDS`` of CPU time per thread, for float32 and float64, on one thread, on
    :func:`available_cores` threads and on :func:`blas_threads` threads: 1 to 3 s.
    Rates count 2 flops per lane of each FMA; each thread's is taken by its CPU clock
    where the platform has one (on Windows, by the wall clock), so that a shared
    machine's load, which stretches the wall clock, does not lower the peak.
    """
    from rnnfast import _peak

    def rate(*run):
        cpu_rate, wall_rate = _fma_rates(*run)
        return wall_rate if cpu_rate is None else cpu_rate

    best = {}
    for isa in _peak.isas():
        _fma_rates("float32", isa, PEAK_CALIBRATION_ITERATIONS, 1)          # warm-up
        best[isa] = max(rate("float32", isa, PEAK_CALIBRATION_ITERATIONS, 1) for _ in range(3))
    isa = max(best, key=best.get)
    n_iter = max(1, int(PEAK_SECONDS * best[isa] * 1e9
                        / _peak.flops_per_iteration("float32", isa)))
    threads = sorted({1, available_cores(), blas_threads()})
    settings = [(dtype, n) for dtype in ("float32", "float64") for n in threads]
    cpu_rates = {setting: [] for setting in settings}
    wall_rates = {setting: [] for setting in settings}
    for _ in range(PEAK_REPEATS):
        for dtype, n in settings:
            cpu_rate, wall_rate = _fma_rates(dtype, isa, n_iter, n)
            cpu_rates[dtype, n].append(cpu_rate)
            wall_rates[dtype, n].append(wall_rate)
    cpu_clock = all(r is not None for rates in cpu_rates.values() for r in rates)
    gflops, wall_gflops = {}, {}
    for dtype, n in settings:
        rates = cpu_rates[dtype, n] if cpu_clock else wall_rates[dtype, n]
        gflops.setdefault(dtype, {})[n] = statistics.median(rates)
        wall_gflops.setdefault(dtype, {})[n] = statistics.median(wall_rates[dtype, n])
    return Peak(isa=isa, clock="thread CPU time" if cpu_clock else "wall clock",
                blas_threads=blas_threads(), gflops=gflops, wall_gflops=wall_gflops)


def bench_shape(name, shape, dtype, torch, args):
    """Time every implementation on one shape; return a result dict."""
    case = make_case(shape, dtype)
    calls = {
        "rnnfast": module_calls(rnnfast, case, args.forward_only),
        "numpy": module_calls(reference, case, args.forward_only),
        "roof": roof_calls(shape, dtype, args.forward_only),
    }
    if torch is not None:
        calls["torch"] = torch_calls(torch, case, args.forward_only)
    times = time_interleaved(calls, args.samples, args.min_sample_ms / 1000)
    fast = times["rnnfast"]
    alone, mixed = time_mixed(calls["rnnfast"], max(args.samples, 15), dtype)
    dtype_name = np.dtype(dtype).name
    gflops = shape.flops(args.forward_only) / fast / 1e9
    target_numpy, target_torch = TARGETS[dtype_name].get(name, (None, None))
    result = {
        "shape": name, "dims": str(shape), "dtype": dtype_name,
        "forward_only": args.forward_only,
        "seconds": times,
        "vs_numpy": times["numpy"] / fast,
        "vs_torch": times["torch"] / fast if "torch" in times else None,
        "gflops": gflops,
        "roof_share": times["roof"] / fast,
        "peak_share": gflops / machine_peak().at_blas_threads(dtype_name),
        "mixed_share": alone / mixed,
        "target_mixed": MIXED_TARGET if name in MIXED_SHAPES else None,
        "target_vs_numpy": None if args.forward_only else target_numpy,
        "target_vs_torch": None if args.forward_only else target_torch,
        "target_roof": None if args.forward_only else ROOF_TARGETS[dtype_name].get(name),
    }
    return result


def torch_module_calls(torch, shape, dtype):
    """``(rnnfast_fn, torch_fn)`` running forward + backward of the same module and weights.

    rnnfast's side is ``rnnfast.RNN/LSTM/GRU`` on NumPy arrays or, for a
    ``plugin`` case, ``rnnfast.torch``'s module inside torch autograd; torch's
    side is ``torch.nn``'s module.
    """
    s = shape
    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype]
    torch.manual_seed(0)
    sizes = (s.input_size, s.hidden_size, s.num_layers)
    theirs = getattr(torch.nn, s.cell)(*sizes, bidirectional=s.bidirectional, dtype=tdtype)
    if s.plugin:
        import rnnfast.torch as rt
        ours = getattr(rt, s.cell)(*sizes, bidirectional=s.bidirectional, dtype=tdtype)
    else:
        ours = getattr(rnnfast, s.cell)(*sizes, bidirectional=s.bidirectional, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((s.length, s.batch, s.input_size)).astype(dtype)
    go = rng.standard_normal((s.length, s.batch, s.hidden_size * (1 + s.bidirectional)))
    go = go.astype(dtype)
    xt, got = torch.from_numpy(x), torch.from_numpy(go)

    def torch_step(module, x_in):
        def run():
            x_in.grad = None
            for p in module.parameters():
                p.grad = None
            out, _ = module(x_in)
            out.backward(got)
        return run

    if s.plugin:
        return torch_step(ours, xt), torch_step(theirs, xt)

    def run_rnnfast():
        ours.forward(x)
        return ours.backward(go)
    return run_rnnfast, torch_step(theirs, xt.clone().requires_grad_(True))


def bench_module_shape(name, shape, dtype, torch, args):
    fast, slow = torch_module_calls(torch, shape, dtype)
    times = time_interleaved({"rnnfast": fast, "torch": slow}, args.samples,
                             args.min_sample_ms / 1000)
    return {"shape": name, "dims": str(shape), "dtype": np.dtype(dtype).name,
            "seconds": times, "vs_torch": times["torch"] / times["rnnfast"],
            "target_vs_torch": shape.targets[0 if np.dtype(dtype) == np.float64 else 1]}


# A whole training step of a char model: (vocabulary, hidden, batch, length), target vs torch.
TRAIN_CASES = {"char": ((107, 128, 16, 25), 6.0), "mid": ((107, 256, 32, 64), 4.0),
               "large": ((107, 512, 64, 64), 3.0)}


def train_step_calls(torch, dims, seed=0):
    """``(rnnfast_fn, torch_fn)``: one training step of the same char model, same batch."""
    V, H, B, L = dims
    torch.manual_seed(seed)
    rnn = torch.nn.RNN(V, H, batch_first=True)
    linear = torch.nn.Linear(H, V)
    model = rnnfast.RNNModel.from_torch(rnn, linear)
    rng = np.random.default_rng(seed)
    X, Y = rng.integers(0, V, (B, L)), rng.integers(0, V, (B, L))
    opt = rnnfast.optim.Adam(model.parameters, lr=1e-3)
    params = [*rnn.parameters(), *linear.parameters()]
    topt = torch.optim.Adam(params, lr=1e-3)
    x = torch.nn.functional.one_hot(torch.from_numpy(X), V).float()
    y = torch.from_numpy(Y).reshape(-1)
    loss_fn = torch.nn.CrossEntropyLoss()

    def ours():
        _, grads = model.loss_and_grads(X, Y)
        rnnfast.clip_grad_norm(grads, 5.0)
        opt.step(grads)

    def theirs():
        topt.zero_grad()
        out, _ = rnn(x)
        loss_fn(linear(out).reshape(-1, V), y).backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        topt.step()
    return ours, theirs


def bench_train_step(name, case, torch, args):
    dims, target = case
    ours, theirs = train_step_calls(torch, dims)
    times = time_interleaved({"rnnfast": ours, "torch": theirs}, args.samples,
                             args.min_sample_ms / 1000)
    return {"shape": name, "dims": "V {}, H {}, B {}, L {}".format(*dims),
            "dtype": "float32", "seconds": times,
            "vs_torch": times["torch"] / times["rnnfast"], "target_vs_torch": target}


def print_module_table(results, out=None):
    out = sys.stdout if out is None else out
    for r in results:
        print(f"{r['shape']:22s} {r['dims']:66s} rnnfast {_fmt_time(r['seconds']['rnnfast']):>10s}"
              f"  torch {_fmt_time(r['seconds']['torch']):>10s}  "
              f"{_fmt_ratio(r['vs_torch'], r['target_vs_torch'])}", file=out)


def _fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


def _fmt_ratio(value, target):
    if value is None:
        return "-"
    text = f"{value:.1f}x"
    if target is not None:
        text += f" ({'ok' if value >= target else 'below'} >={target:g})"
    return text


def _fmt_share(share, target):
    text = f"{share:.2f}"
    if target is not None:
        text += f" ({'ok' if share >= target else 'below'} >={target})"
    return text


def _fmt_percent(share):
    """A share as a percentage: two significant digits below 10%."""
    percent = 100 * share
    if percent >= 10:
        return f"{percent:.0f}%"
    return f"{percent:.1f}%" if percent >= 1 else f"{percent:.2g}%"


def print_table(results, out=None):
    out = sys.stdout if out is None else out
    headers = ["shape", "n_x,n_h,n_y,m,T", "rnnfast", "numpy", "torch",
               "vs numpy (target)", "vs torch (target)", "GFLOP/s", "peak", "roof", "mixed"]
    rows = []
    for r in results:
        roof = f"{100 * r['roof_share']:.0f}%"
        if r["target_roof"] is not None:
            roof += f" ({'ok' if r['roof_share'] >= r['target_roof'] else 'below'} " \
                    f">={100 * r['target_roof']:.0f}%)"
        rows.append([r["shape"], r["dims"], _fmt_time(r["seconds"]["rnnfast"]),
                     _fmt_time(r["seconds"]["numpy"]), _fmt_time(r["seconds"].get("torch")),
                     _fmt_ratio(r["vs_numpy"], r["target_vs_numpy"]),
                     _fmt_ratio(r["vs_torch"], r["target_vs_torch"]),
                     f"{r['gflops']:.1f}", _fmt_percent(r["peak_share"]), roof,
                     _fmt_share(r["mixed_share"], r["target_mixed"])])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line, file=out)
    print("-" * len(line), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)), file=out)


def print_train_table(results, out=None):
    """One line per training-step case: rnnfast's and torch's times and their ratio."""
    for r in results:
        print(f"{r['shape']:10s} {r['dims']:32s} "
              f"rnnfast {_fmt_time(r['seconds']['rnnfast']):>10s}"
              f"  torch {_fmt_time(r['seconds']['torch']):>10s}  "
              f"{_fmt_ratio(r['vs_torch'], r['target_vs_torch'])}", file=out)


def print_memory(memory, out=None):
    """The peak memory of :func:`measure_memory`'s result, against the essential bytes."""
    print(f"\npeak memory of forward + backward at n_x,n_h,n_y,m,T = {memory['shape']} "
          f"(float64), relative to x + h + y + dx ({memory['essential_bytes'] / 2**20:.1f} MiB):",
          file=out)
    for name in ("rnnfast", "numpy"):
        print(f"  {name}: {memory[name]['peak_bytes'] / 2**20:.1f} MiB = "
              f"{memory[name]['ratio']:.2f}x", file=out)


def measure_memory(shape=MEMORY_SHAPE, dtype=np.float64):
    """Peak traced memory of forward + backward, for rnnfast and the reference.

    Returns bytes of the peak (inputs ``x`` and ``dh`` included) and of
    ``x + h + y + dx``, the arrays any implementation must hold.
    """
    x, h0, parameters, dh = make_case(shape, dtype)
    itemsize = np.dtype(dtype).itemsize
    essential = x.nbytes * 2 + itemsize * shape.m * shape.T * (shape.n_h + shape.n_y)
    report = {"shape": str(shape), "essential_bytes": essential}
    for name, module in (("rnnfast", rnnfast), ("numpy", reference)):
        tracemalloc.start()
        h, y, caches = module.rnn_forward(x, h0, parameters)
        grads = module.rnn_backward(dh, caches)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del h, y, caches, grads
        report[name] = {"peak_bytes": peak + x.nbytes + dh.nbytes,
                        "ratio": (peak + x.nbytes + dh.nbytes) / essential}
    return report


def plot(results, path):
    """Bar chart of the ratios to ``path`` (matplotlib; the command line checks ``path`` first)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = sorted({r["dtype"] for r in results})
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6 * len(dtypes), 4), squeeze=False)
    for ax, dtype_name in zip(axes[0], dtypes, strict=True):
        rows = [r for r in results if r["dtype"] == dtype_name]
        pos = np.arange(len(rows))
        ax.bar(pos - 0.2, [r["vs_numpy"] for r in rows], 0.4, label="vs NumPy reference")
        if all(r["vs_torch"] is not None for r in rows):
            ax.bar(pos + 0.2, [r["vs_torch"] for r in rows], 0.4, label="vs PyTorch nn.RNN")
        ax.axhline(1, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(pos, [r["shape"] for r in rows], rotation=30, ha="right")
        ax.set_ylabel("speed-up of rnnfast (x)")
        ax.set_title(f"{dtype_name}, {'forward' if rows[0]['forward_only'] else 'forward + BPTT'}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    """``python -m rnnfast bench`` as a script (``bench/bench_rnn.py``)."""
    from rnnfast.cli.bench import main as bench_main

    return bench_main(argv)


if __name__ == "__main__":
    main()
