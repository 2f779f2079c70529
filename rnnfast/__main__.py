"""Command line: ``python -m rnnfast {bench,demo,train,sample} [options]``."""

import argparse
import sys

from rnnfast import bench, charrnn


def main(argv=None):
    from rnnfast import __version__

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
    if args.command == "bench":
        bench.run(args)
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
