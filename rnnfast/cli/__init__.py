"""The command line: ``python -m rnnfast {bench,demo,train,sample} [options]``.

One module per command (:mod:`~rnnfast.cli.train`, ``sample``, ``bench``,
``demo``), each with ``add_parser(commands)`` and ``run(args)``, and the
option checks they share (:mod:`~rnnfast.cli.checks`).  Only here do errors
become ``error: ...`` lines and exit statuses.  This package's ``__init__``
imports nothing heavy: the package's start-up imports :mod:`.startup` from it.
"""

import os
import signal
import sys
import warnings


def _parser():
    import argparse

    from rnnfast import __version__
    from rnnfast.cli import bench, demo, sample, train

    parser = argparse.ArgumentParser(prog="python -m rnnfast",
                                     description="rnnfast command line")
    parser.add_argument("--version", action="version", version=f"rnnfast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (bench, demo, train, sample):
        command.add_parser(commands)
    return parser


def error_exit(exc):
    """The ``SystemExit`` of a refused option or failed command ``exc``: its one line
    ``error: ...`` (``rank N: error: ...`` when a rank is named), or a silent exit 1 when
    another MPI rank says it."""
    if getattr(exc, "quiet", False):
        return SystemExit(1)
    rank = getattr(exc, "rank", None)
    return SystemExit(f"error: {exc}" if rank is None else f"rank {rank}: error: {exc}")


def main(argv=None):
    """Run one command of ``python -m rnnfast`` with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status; raises ``SystemExit`` with the line ``error: ...``
    when an option is refused or the command fails.
    """
    from rnnfast.cli.checks import OptionError

    args = _parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            return args.run(args)
        except OptionError as exc:
            raise error_exit(exc) from None


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """Print a warning as the one line ``warning: message`` (no source line)."""
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=sys.stderr if file is None else file, flush=True)


def run():
    """``main()`` as a program: Ctrl-C at any point ends it with status 130 and one line; a
    reader of its output that goes away (``| head``) ends it quietly with 141 (128 + SIGPIPE,
    as a program killed by that signal); an output that cannot be written (a full disk) is
    the one line ``error: cannot write to standard output: ...`` and status 1."""
    stdout = sys.stdout = _WatchedOutput(sys.stdout)
    try:
        # the package's start-up ended Ctrl-C at once; from here a command may handle it
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        detach_stdout()
        return 141
    except OSError as exc:
        if not stdout.failed:          # a file the command named: its own message
            raise
        detach_stdout()
        print(f"error: cannot write to standard output: {exc.strerror or exc}",
              file=sys.stderr, flush=True)
        return 1
    finally:
        sys.stdout = stdout.stream


class _WatchedOutput:
    """Standard output that remembers whether a write or flush failed, so that the
    ``OSError`` ending a command can be told apart from one of a file it named."""

    def __init__(self, stream):
        self.stream = stream
        self.failed = False

    def write(self, text):
        try:
            return self.stream.write(text)
        except OSError:
            self.failed = True
            raise

    def flush(self):
        try:
            return self.stream.flush()
        except OSError:
            self.failed = True
            raise

    def __getattr__(self, name):
        return getattr(self.stream, name)


def detach_stdout():
    """Point standard output's file descriptor at /dev/null, so that nothing more (Python's
    own flush at exit included) tries the dead or full output."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
