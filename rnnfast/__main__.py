"""Command line: ``python -m rnnfast {bench,demo,train,sample} [options]``."""

import signal
import sys
import warnings


def main(argv=None):
    """Run one command of ``python -m rnnfast`` with ``argv`` (default: ``sys.argv[1:]``)."""
    import argparse

    from rnnfast import __version__, bench, charrnn

    parser = argparse.ArgumentParser(prog="python -m rnnfast",
                                     description="rnnfast command line")
    parser.add_argument("--version", action="version", version=f"rnnfast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench_parser = commands.add_parser(
        "bench", help="time forward + BPTT against the NumPy reference and PyTorch",
        description=bench.__doc__.split("\n\n")[0])
    bench.build_parser(bench_parser)
    bench_parser.set_defaults(func=None)
    charrnn.add_commands(commands)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        if args.command == "bench":
            bench.run(args)
            return 0
        return args.func(args)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """Print a warning as the one line ``warning: message`` (no source line)."""
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=sys.stderr if file is None else file, flush=True)


def _run():
    """``main()`` as a program: Ctrl-C at any point ends it with status 130 and one line."""
    try:
        # the package's start-up ended Ctrl-C at once; from here a command may handle it
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(_run())
