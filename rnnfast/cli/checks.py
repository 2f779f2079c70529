"""Checks of settings named after their command-line options, shared by the commands of
``python -m rnnfast`` and by :mod:`rnnfast.training`.

Each command checks its options first, so a mistake costs no work.  A check
raises :class:`OptionError`; the command line turns it into one line
``error: ...`` and exit status 1.
"""

import argparse
import math
import os


class OptionError(ValueError):
    """A refused option or input, or a command that cannot go on (the message says why)."""


def fail(message):
    """Stop the command: raise :class:`OptionError` (printed as ``error: message``)."""
    raise OptionError(message)


def check_int(option, value, minimum, note=""):
    """``value`` of ``option`` is an integer of at least ``minimum``.

    Parameters
    ----------
    option : str
        The option as typed, ``"--seed"``.
    value : int
        Its parsed value.
    minimum : int
        The smallest value accepted.
    note : str
        Added after the expectation, e.g. ``" (0 = never)"``.

    Raises
    ------
    OptionError
        ``error: --seed must be an integer of at least 0; got -1``.
    """
    if value < minimum:
        fail(f"{option} must be an integer of at least {minimum}{note}; got {value}")


def check_float(option, value, *, zero_means=None):
    """``value`` of ``option`` is a finite number above 0 (or 0, meaning ``zero_means``).

    Parameters
    ----------
    option : str
        The option as typed, ``"--lr"``.
    value : float
        Its parsed value (argparse accepts ``nan`` and ``inf``).
    zero_means : str or None, keyword-only
        When given, 0 is accepted and the message says what it means.

    Raises
    ------
    OptionError
        ``error: --clip must be a non-negative finite number (0 = no
        clipping); got -1.0``.
    """
    if zero_means is None:
        if not (math.isfinite(value) and value > 0):
            fail(f"{option} must be a positive finite number; got {value}")
    elif not (math.isfinite(value) and value >= 0):
        fail(f"{option} must be a non-negative finite number (0 = {zero_means}); got {value}")


def check_output_path(option, path):
    """Refuse at once an output ``path`` that could not be written when the work is done.

    Shared by ``train --save`` and ``bench --json/--plot``.

    Parameters
    ----------
    option : str
        The option that named ``path``, for the message.
    path : str
        The file to be written: the folder it goes to (that of the link's
        target for a symbolic link) must exist and be a writable directory,
        ``path`` must not be a directory, and an existing file must be
        writable.

    Raises
    ------
    OptionError
        ``error: --save /no/such/m.npz: folder /no/such does not exist``.
    """
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        fail(f"{option} {path} is a directory; give a file name")
    if not os.path.exists(folder):
        fail(f"{option} {path}: folder {folder} does not exist")
    if not os.path.isdir(folder):
        fail(f"{option} {path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"{option} {path}: folder {folder} is not writable")
    if os.path.exists(target) and not os.access(target, os.W_OK):
        fail(f"{option} {path}: the existing file is not writable")


def check_plot_path(option, path):
    """Refuse at once a plot ``path`` that matplotlib could not write.

    Shared by ``train --plot`` and ``bench --plot``: matplotlib must be
    installed and the file's extension must name a format it writes (it picks
    the format from the extension, and adds ``.png`` to a name without one);
    the path must pass :func:`check_output_path`.

    Raises
    ------
    OptionError
        ``error: --plot loss.txt: matplotlib cannot write '.txt' files; use one
        of .eps, .jpg, .pdf, .png, ...``.
    """
    check_output_path(option, path)
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        fail(f"{option} needs matplotlib, which is not installed (pip install matplotlib)")
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    extension = os.path.splitext(path)[1][1:].lower()
    if extension not in formats:
        what = f"'.{extension}' files" if extension else "a file name without an extension"
        fail(f"{option} {path}: matplotlib cannot write {what}; use one of "
             f"{', '.join('.' + f for f in formats)}")


def same_file(a, b):
    """Whether paths ``a`` and ``b`` name one file (through links, hard or symbolic).

    ``os.path.samefile`` when both exist, otherwise their real paths compared.
    """
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def check_distinct_files(outputs, inputs=(), allowed=()):
    """Refuse at once an output that is an input or another output.

    Parameters
    ----------
    outputs : sequence of (str, str or None)
        ``(option, path)`` of each file the command writes; ``None`` paths
        are skipped.
    inputs : sequence of (str, str or None)
        ``(option, path)`` of each file it reads.
    allowed : collection of (str, str)
        ``(output option, input option)`` pairs that may name one file (a
        checkpoint that the run continues from and writes again).

    Raises
    ------
    OptionError
        ``error: --save copy.txt is the same file as FILE copy.txt; writing it
        would destroy it: give another file name``.
    """
    outputs = [(o, p) for o, p in outputs if p]
    for option, path in outputs:
        for source, read in inputs:
            if read and (option, source) not in allowed and same_file(path, read):
                fail(f"{option} {path} is the same file as {source} {read}; writing it "
                     "would destroy it: give another file name")
    for i, (option, path) in enumerate(outputs):
        for other, other_path in outputs[i + 1:]:
            if same_file(path, other_path):
                fail(f"{option} {path} and {other} {other_path} are the same file; give "
                     "each output its own file")




class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Ends an option's help with ``(default: X)`` once: not when the help already states
    its default, nor for a flag or a default of None (whose help says what happens)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.default is None or isinstance(action.default, bool):
            return text
        return super()._get_help_string(action)
