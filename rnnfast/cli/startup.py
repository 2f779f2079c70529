"""Start-up of ``python -m rnnfast``: quiet Ctrl-C while the package is imported.

Imported by the package's ``__init__`` before anything heavy, so it imports
nothing but the standard library.
"""

import itertools
import signal
import sys


def starting_as_command():
    """Whether this process is ``python -m rnnfast ...`` and is still importing the package.

    While ``-m`` locates the module, ``sys.argv[0]`` is ``"-m"``; ``sys.orig_argv``
    says which module was named, so a program of the user's started with ``-m``
    that imports rnnfast is left alone.
    """
    if sys.argv[:1] != ["-m"]:
        return False
    argv = getattr(sys, "orig_argv", [])
    named = [b for a, b in itertools.pairwise(argv) if a == "-m"]
    named += [a[2:] for a in argv if a.startswith("-m") and len(a) > 2]
    return bool(named) and named[0] in ("rnnfast", "rnnfast.__main__")


def _interrupted_at_start(signum, frame):
    print("interrupted", file=sys.stderr, flush=True)
    raise SystemExit(130)


def exit_quietly_on_interrupt():
    """Until the command runs, Ctrl-C ends ``python -m rnnfast`` with status 130 and the one
    line ``interrupted`` (the imports of the package take a while; nothing is lost)."""
    signal.signal(signal.SIGINT, _interrupted_at_start)
