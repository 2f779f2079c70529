"""Command line: ``python -m rnnfast bench [options]``."""

import argparse
import sys

from rnnfast import bench


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rnnfast",
                                     description="rnnfast command line")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench.build_parser(commands.add_parser(
        "bench", help="time forward + BPTT against the NumPy reference and PyTorch",
        description=bench.__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    if args.command == "bench":
        bench.reexec_with_blas_env(sys.argv[1:] if argv is None else argv)
        bench.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
