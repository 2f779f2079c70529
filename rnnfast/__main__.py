"""Command line: ``python -m rnnfast {bench,demo,train,sample} [options]``.

The commands live in :mod:`rnnfast.cli`.
"""

import sys

from rnnfast.cli import main, run

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(run())
