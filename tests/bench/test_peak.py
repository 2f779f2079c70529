"""The benchmark's FMA peak (rnnfast._peak, rnnfast.bench.machine_peak): what must hold of
any measurement, and the flop count tied to the registers the chains really fill."""

import math
import os
import subprocess
import sys

import pytest

from rnnfast import _peak, bench

DTYPES = ("float32", "float64")


def test_the_generic_loop_is_always_there_and_listed_last():
    assert _peak.isas()[-1] == "generic"


@pytest.mark.parametrize("isa", _peak.isas())
def test_flops_per_iteration_count_the_lanes_of_each_chain(isa):
    lanes = {"avx512f": 16, "avx2+fma": 8, "generic": 4}[isa]
    if isa == "generic" and _peak.flops_per_iteration("float32", isa) == 2 * _peak.CHAINS:
        lanes = 1                 # a compiler without vector extensions: scalar chains
    assert _peak.flops_per_iteration("float32", isa) == 2 * _peak.CHAINS * lanes
    assert _peak.flops_per_iteration("float64", isa) == _peak.CHAINS * lanes


@pytest.mark.parametrize("isa", _peak.isas())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_every_loop_runs_every_lane(isa, dtype, n_threads):
    """From 20,000 rounds on, fma_seconds checks that the chains' sum is one per lane of
    every chain (each tends to 1): a loop that skipped rounds, or registers narrower than
    flops_per_iteration counts, raises instead of returning a time."""
    wall, cpu = _peak.fma_seconds(dtype, isa, 20_000, n_threads)
    assert math.isfinite(wall) and wall > 0
    assert len(cpu) == n_threads
    assert all(math.isnan(c) or c > 0 for c in cpu)


@pytest.mark.parametrize("kwargs, message", [
    ({"dtype": "float16"}, "dtype is 'float16'; expected 'float32' or 'float64'"),
    ({"isa": "sse9"}, "isa is 'sse9'; expected one of"),
    ({"n_iter": 0}, "n_iter is 0; expected at least 1"),
    ({"n_threads": 0}, "n_threads is 0; expected at least 1"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = {"dtype": "float32", "isa": "generic", "n_iter": 10, "n_threads": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        _peak.fma_seconds(**args)


def test_an_isa_the_cpu_lacks_is_refused():
    missing = [isa for isa in ("avx512f", "avx2+fma") if isa not in _peak.isas()]
    if not missing:
        pytest.skip("this CPU runs every loop")
    with pytest.raises(ValueError, match="not supported by this CPU"):
        _peak.fma_seconds("float32", missing[0], 10)


def test_the_peak_is_a_positive_rate_per_dtype_and_thread_count():
    peak = bench.machine_peak()
    threads = {1, bench.available_cores(), peak.blas_threads}
    assert peak.isa in _peak.isas()
    for dtype in DTYPES:
        assert set(peak.gflops[dtype]) == threads == set(peak.wall_gflops[dtype])
        for n in threads:
            assert math.isfinite(peak.gflops[dtype][n]) and peak.gflops[dtype][n] > 0
            assert math.isfinite(peak.wall_gflops[dtype][n]) and peak.wall_gflops[dtype][n] > 0
        assert peak.at_blas_threads(dtype) == peak.gflops[dtype][peak.blas_threads]


def test_float64_peaks_no_higher_than_float32():
    """Half the lanes per FMA: float64's peak is half float32's on every CPU here."""
    peak = bench.machine_peak()
    for n, rate in peak.gflops["float64"].items():
        assert rate <= peak.gflops["float32"][n]


def test_the_peak_is_measured_once_per_process():
    assert bench.machine_peak() is bench.machine_peak()


def test_blas_threads_is_the_blas_own_count():
    """OpenBLAS reads OPENBLAS_NUM_THREADS when it loads: the count asked of the library
    follows it (and is never above the available cores)."""
    code = "from rnnfast import bench; print(bench.blas_threads(), bench.available_cores())"
    for threads in ("1", "64"):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env={**os.environ, "OPENBLAS_NUM_THREADS": threads},
                                timeout=120, check=True)
        blas, cores = map(int, result.stdout.split())
        assert blas == min(int(threads), cores)
