"""``python -m rnnfast bench``: what it says about torch, what --quick runs, and --plot
checked before any timing."""

import json
import types

import pytest

from rnnfast import bench
from rnnfast.__main__ import main

# stands for an installed torch where no case is timed
FAKE_TORCH = types.SimpleNamespace(__version__="0.0", get_num_threads=lambda: 1)
# stands for the machine's measured peak where nothing is timed
FAKE_PEAK = bench.Peak(isa="avx2+fma", clock="thread CPU time", blas_threads=2,
                       gflops={"float32": {1: 100.0, 2: 200.0}, "float64": {1: 50.0, 2: 100.0}},
                       wall_gflops={"float32": {1: 90.0, 2: 150.0},
                                    "float64": {1: 45.0, 2: 75.0}})


def _no_timing(monkeypatch):
    """Record the cases the benchmark would time, without timing them."""
    ran = []

    def shape(name, shape, dtype, torch, args):
        ran.append(name)
        return {"shape": name, "dtype": dtype.name, "forward_only": False, "vs_numpy": 1.0,
                "vs_torch": None}

    def module(name, shape, dtype, torch, args):
        ran.append(name)
        return {"shape": name, "dtype": dtype.name}

    monkeypatch.setattr(bench, "bench_shape", shape)
    monkeypatch.setattr(bench, "bench_module_shape", module)
    monkeypatch.setattr(bench, "machine_peak", lambda: FAKE_PEAK)
    monkeypatch.setattr(bench, "print_table", lambda results: None)
    monkeypatch.setattr(bench, "print_module_table", lambda results: None)
    return ran


def test_no_torch_says_torch_was_skipped_not_missing(monkeypatch, capsys):
    monkeypatch.setattr(bench, "import_torch", lambda: FAKE_TORCH)      # "installed"
    _no_timing(monkeypatch)
    main(["bench", "--no-torch", "--shapes", "seed-apple", "--dtype", "float64"])
    out = capsys.readouterr().out
    assert "torch: skipped (--no-torch)" in out
    assert "not installed" not in out


def test_without_torch_says_it_is_not_installed(monkeypatch, capsys):
    monkeypatch.setattr(bench, "import_torch", lambda: None)
    _no_timing(monkeypatch)
    main(["bench", "--shapes", "seed-apple", "--dtype", "float64"])
    assert "torch: not installed" in capsys.readouterr().out


def test_quick_runs_the_small_cases_only(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(bench, "import_torch", lambda: FAKE_TORCH)
    ran = _no_timing(monkeypatch)
    main(["bench", "--quick", "--dtype", "float32", "--json", str(tmp_path / "q.json")])
    assert ran == [*bench.QUICK_SHAPES, *bench.QUICK_MODULES]
    assert "large" not in ran and "medium" not in ran
    assert json.loads((tmp_path / "q.json").read_text())["samples"] == 3


def test_quick_runs_named_shapes_and_modules(monkeypatch, capsys):
    monkeypatch.setattr(bench, "import_torch", lambda: FAKE_TORCH)
    ran = _no_timing(monkeypatch)
    main(["bench", "--quick", "--dtype", "float32", "--shapes", "large",
          "--modules", "rnn-1layer"])
    assert ran == ["large", "rnn-1layer"]


def test_full_run_covers_every_case(monkeypatch, capsys):
    monkeypatch.setattr(bench, "import_torch", lambda: FAKE_TORCH)
    ran = _no_timing(monkeypatch)
    main(["bench", "--dtype", "float32"])
    assert ran == [*bench.SHAPES, *bench.MODULE_SHAPES]


@pytest.mark.parametrize("name, message", [
    ("loss.txt", "matplotlib cannot write '.txt' files"),
    ("loss", "without an extension"),
])
def test_plot_format_is_checked_before_timing(name, message, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    ran = _no_timing(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--no-torch", "--shapes", "seed-apple", "--plot", str(tmp_path / name)])
    assert message in str(exc.value) and str(exc.value).startswith("error: --plot")
    assert ran == []


def test_plot_without_matplotlib_is_refused_before_timing(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    ran = _no_timing(monkeypatch)
    with pytest.raises(SystemExit, match="--plot needs matplotlib"):
        main(["bench", "--no-torch", "--shapes", "seed-apple", "--plot",
              str(tmp_path / "r.png")])
    assert ran == []


def test_plot_is_written(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    _no_timing(monkeypatch)
    main(["bench", "--no-torch", "--shapes", "seed-apple", "--dtype", "float64", "--plot",
          str(tmp_path / "r.png")])
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def _seed_apple_run(tmp_path, dtype="float64"):
    """A short real run of one shape, without torch; the JSON report."""
    main(["bench", "--no-torch", "--shapes", "seed-apple", "--dtype", dtype, "--samples", "1",
          "--min-sample-ms", "0.1", "--modules", "none", "--json", str(tmp_path / "r.json")])
    return json.loads((tmp_path / "r.json").read_text())


def test_the_header_gives_the_peak_per_dtype_and_thread_count(monkeypatch, capsys):
    _no_timing(monkeypatch)
    main(["bench", "--no-torch", "--shapes", "seed-apple", "--dtype", "float64"])
    out = capsys.readouterr().out
    assert "machine peak: FMA chains (avx2+fma), GFLOP/s by thread CPU time" in out
    assert "  float32: 1 thread 100 [90], 2 threads 200 [150]" in out
    assert "  float64: 1 thread 50 [45], 2 threads 100 [75]" in out
    assert "peak: rnnfast's GFLOP/s / the machine's peak at the BLAS's 2 threads" in out


def test_the_table_has_the_peak_column_next_to_the_roof(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "machine_peak", lambda: FAKE_PEAK)
    report = _seed_apple_run(tmp_path)
    header = next(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("shape "))
    assert header.split()[-4:] == ["GFLOP/s", "peak", "roof", "mixed"]
    result, = report["results"]
    # the share of the peak at the BLAS's thread count, float64's 100 GFLOP/s
    assert result["peak_share"] == pytest.approx(result["gflops"] / 100.0, rel=1e-12)


def test_the_json_has_the_measured_peak_and_each_share(tmp_path, capsys):
    report = _seed_apple_run(tmp_path, "float32")
    peak = bench.machine_peak()             # measured once per process: the run's own
    threads = {str(n) for n in {1, bench.available_cores(), peak.blas_threads}}
    for dtype in ("float32", "float64"):
        assert set(report["peak_gflops"][dtype]) == threads
        assert all(rate > 0 for rate in report["peak_gflops"][dtype].values())
    assert report["peak"]["isa"] == peak.isa and report["peak"]["clock"] == peak.clock
    assert report["peak"]["blas_threads"] == peak.blas_threads
    assert set(report["peak"]["wall_gflops"]["float32"]) == threads
    result, = report["results"]
    at_blas = report["peak_gflops"]["float32"][str(peak.blas_threads)]
    assert result["peak_share"] == pytest.approx(result["gflops"] / at_blas, rel=1e-12)
