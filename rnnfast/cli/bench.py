"""``python -m rnnfast bench``: the options of the speed benchmark (:mod:`rnnfast.bench`),
checked before any timing, and its report."""

import argparse
import json
import os
import platform

import numpy as np

import rnnfast
from rnnfast import _kernels
from rnnfast import bench as B
from rnnfast.cli.checks import check_float, check_int, check_output_path, check_plot_path, fail


def add_parser(commands):
    """Add the ``bench`` command to an argparse sub-parser set."""
    parser = commands.add_parser(
        "bench", help="time forward + BPTT against the NumPy reference and PyTorch",
        description=B.__doc__.split("\n\n")[0])
    build_parser(parser)
    parser.set_defaults(run=run)


def build_parser(parser=None):
    """The benchmark's options, added to ``parser`` (default: a new parser)."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="python -m rnnfast bench",
                                         description=B.__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test of about a minute: few short samples, the small "
                             f"shapes ({', '.join(B.QUICK_SHAPES)}) and module cases "
                             f"({', '.join(B.QUICK_MODULES)}) unless --shapes/--modules name "
                             "others; ratios are rough")
    parser.add_argument("--shapes", nargs="+", metavar="NAME", choices=list(B.SHAPES),
                        default=None,
                        help=f"shapes to run (default: all of {', '.join(B.SHAPES)})")
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    parser.add_argument("--forward-only", action="store_true",
                        help="time the forward pass alone")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--samples", type=int, default=None,
                        help="samples per implementation (default 15, 3 with --quick)")
    parser.add_argument("--min-sample-ms", type=float, default=None,
                        help="minimum duration of one sample (default 20 ms, 2 ms with --quick)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="bar chart of the ratios (needs matplotlib)")
    parser.add_argument("--modules", nargs="*", metavar="NAME",
                        choices=[*B.MODULE_SHAPES, "none"], default=None,
                        help="torch-module-shaped cases: rnnfast.RNN/LSTM/GRU against torch.nn's "
                             "(default: all, when "
                             f"torch is installed; none: skip); {', '.join(B.MODULE_SHAPES)}")
    parser.add_argument("--memory", action="store_true",
                        help=f"also measure peak memory at {B.MEMORY_SHAPE} (n_x,n_h,n_y,m,T)")
    parser.add_argument("--train", action="store_true",
                        help="also time a whole char-model training step (forward, loss, "
                             "backward, clipping, Adam) against the same model in torch "
                             "(float32; needs torch)")
    return parser


def check_args(args):
    """Refuse bad options before any timing (``OptionError``: one line ``error: ...``)."""
    if args.samples is not None:
        check_int("--samples", args.samples, 1)
    if args.min_sample_ms is not None:
        check_float("--min-sample-ms", args.min_sample_ms)
    if args.modules and "none" in args.modules and len(args.modules) > 1:
        fail(f"--modules none skips the module cases; it cannot be combined with "
             f"{', '.join(m for m in args.modules if m != 'none')}")
    if args.json:
        check_output_path("--json", args.json)
    if args.plot:
        check_plot_path("--plot", args.plot)


def _fill_defaults(args):
    """The defaults that depend on ``--quick``."""
    if args.samples is None:
        args.samples = 3 if args.quick else 15
    if args.min_sample_ms is None:
        args.min_sample_ms = 2.0 if args.quick else 20.0
    if args.shapes is None:
        args.shapes = list(B.QUICK_SHAPES if args.quick else B.SHAPES)
    if args.modules == ["none"]:
        args.modules = []          # the same as a bare --modules
    elif args.modules is None:
        args.modules = list(B.QUICK_MODULES if args.quick else B.MODULE_SHAPES)


def _print_setting(args, torch):
    """What is timed, on what machine, with which threads and BLAS; the thread lines."""
    print(f"rnnfast {rnnfast.__version__} benchmark: "
          f"{'forward' if args.forward_only else 'forward + BPTT'}, "
          f"median of {args.samples} interleaved samples; ratios = other time / rnnfast time")
    print(f"machine: {B.cpu_name()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, NumPy {np.__version__}")
    threads = B.thread_report(torch)
    for line in threads:
        print(f"  {line}")
    if args.no_torch:
        print("  torch: skipped (--no-torch)")
    elif torch is None:
        print("  torch: not installed (pip install torch to compare with nn.RNN)")
    print("  " + ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in B.BLAS_ENV))
    print(f"  rnnfast's kernels call {_kernels.blas_in_use()}'s BLAS"
          + (f" ({_kernels.NUMPY_BLAS})" if _kernels.blas_in_use() == "numpy" else ""))
    warning = B.coretype_warning()
    if warning:
        print(warning)
    peak = B.machine_peak()
    _print_peak(peak)
    print("peak: rnnfast's GFLOP/s / the machine's peak at the BLAS's "
          f"{_threads(peak.blas_threads)}")
    print("roof: time of NumPy matmul on the same matrix products; 100% = as fast as that")
    print(f"mixed: rnnfast's time alone / its time right after a {B.MIXED_MATMUL}x"
          f"{B.MIXED_MATMUL} NumPy matmul; 1.00 = unaffected")
    return threads


def _threads(n):
    return f"{n} thread{'s' if n > 1 else ''}"


def _print_peak(peak):
    """The machine's peak per dtype and thread count, by both clocks."""
    print(f"machine peak: FMA chains ({peak.isa}), GFLOP/s by {peak.clock} "
          "[by the wall clock, under this load]")
    for dtype, rates in peak.gflops.items():
        print(f"  {dtype}: " + ", ".join(
            f"{_threads(n)} {rate:.0f} [{peak.wall_gflops[dtype][n]:.0f}]"
            for n, rate in rates.items()))


def _peak_report(peak):
    """The JSON fields of the peak: ``peak_gflops`` and how it was measured."""
    return {"peak_gflops": {dtype: {str(n): rate for n, rate in rates.items()}
                            for dtype, rates in peak.gflops.items()},
            "peak": {"isa": peak.isa, "clock": peak.clock, "blas_threads": peak.blas_threads,
                     "wall_gflops": {dtype: {str(n): rate for n, rate in rates.items()}
                                     for dtype, rates in peak.wall_gflops.items()}}}


def _run_shapes(args, dtypes, torch):
    results = []
    for dtype_name in dtypes:
        print(f"\n{dtype_name}")
        dtype_results = [B.bench_shape(name, B.SHAPES[name], np.dtype(dtype_name), torch, args)
                         for name in args.shapes]
        B.print_table(dtype_results)
        results += dtype_results
    return results


def _run_modules(args, dtypes, torch):
    print("\ntorch-module-shaped: rnnfast.RNN/LSTM/GRU vs torch.nn's, forward + backward "
          "(time-major input, zero initial state)")
    results = [B.bench_module_shape(name, B.MODULE_SHAPES[name], np.dtype(dtype_name), torch,
                                    args)
               for dtype_name in dtypes for name in args.modules]
    for dtype_name in dtypes:
        print(dtype_name)
        B.print_module_table([r for r in results if r["dtype"] == dtype_name])
    return results


def _run_train_steps(args, torch):
    print("\ntraining step: RNNModel + clip_grad_norm + Adam vs nn.RNN + nn.Linear + "
          "CrossEntropyLoss + clip_grad_norm_ + torch.optim.Adam (float32, one-hot input, "
          "same weights and batches)")
    results = [B.bench_train_step(name, case, torch, args)
               for name, case in B.TRAIN_CASES.items()]
    B.print_train_table(results)
    return results


def _write_outputs(args, report, results):
    """``--json`` and ``--plot``; a failure names the option (the results were printed)."""
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)
        except OSError as exc:
            fail(f"--json {args.json}: {exc.strerror or exc}; the results are printed above")
        print(f"\nwrote {args.json}")
    if args.plot:
        try:
            B.plot(results, args.plot)
        except OSError as exc:
            fail(f"--plot {args.plot}: {exc.strerror or exc}; the results are printed above")
        print(f"wrote {args.plot}")


def report(args):
    """Run the benchmark of parsed ``args``, print it; the report (a JSON-able dict)."""
    check_args(args)
    _fill_defaults(args)
    torch = None if args.no_torch else B.import_torch()
    dtypes = ["float32", "float64"] if args.dtype == "both" else [args.dtype]
    threads = _print_setting(args, torch)
    results = _run_shapes(args, dtypes, torch)
    report = {"machine": B.machine_info(torch), "threads": threads,
              **_peak_report(B.machine_peak()), "samples": args.samples, "results": results}
    if torch is not None and args.modules and not args.forward_only:
        report["modules"] = _run_modules(args, dtypes, torch)
    if args.train and torch is not None:
        report["train"] = _run_train_steps(args, torch)
    elif args.train:
        print("\ntraining step: skipped (torch is not installed)")
    if args.memory:
        report["memory"] = B.measure_memory()
        B.print_memory(report["memory"])
    _write_outputs(args, report, results)
    return report


def run(args):
    """Run ``bench`` with the parsed ``args``; the exit status."""
    report(args)
    return 0


def main(argv=None):
    """The benchmark as a program of its own, with the same options."""
    from rnnfast.cli import error_exit
    from rnnfast.cli.checks import OptionError

    try:
        report(build_parser().parse_args(argv))
    except OptionError as exc:
        raise error_exit(exc) from None
