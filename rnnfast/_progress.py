"""What training shows while it runs: a progress line (or tqdm bar) on stderr, and the
``--log`` file of JSON records."""

import json
import sys


def duration(seconds):
    """``1h02m``, ``3m05s`` or ``12s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """tqdm when installed and stderr is a terminal, a plain line otherwise; silent off a
    terminal."""

    def __init__(self, total, enabled, output=None):
        self.output = Output() if output is None else output
        self.bar = None
        self.enabled = enabled
        self.total = total
        if enabled:
            try:
                from tqdm import tqdm  # noqa: F401 (optional)
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, unit="step", file=sys.stderr)

    def update(self, step, loss, chars_per_second=None, eta=None):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)
        elif self.enabled and (step % max(1, self.total // 100) == 0 or step == self.total):
            rate = "" if chars_per_second is None else f"  {chars_per_second:,.0f} chars/s"
            left = "" if eta is None else f"  ETA {duration(eta)}"
            print(f"\rstep {step}/{self.total}  loss {loss:.4f}{rate}{left}", end="",
                  file=sys.stderr, flush=True)

    def write(self, text, file=None):
        """Print ``text`` (to stdout through :class:`Output`, or to ``file``) on lines of its
        own, off the progress line."""
        if file is None:
            if self.bar is None and self.enabled:
                print(file=sys.stderr)
            self.output.print(text, bar=self.bar)
        elif self.bar is not None:
            self.bar.write(text, file=file)
        else:
            if self.enabled:
                print(file=sys.stderr)
            print(text, file=file, flush=True)

    def warn(self, text):
        """Print the one line ``warning: text`` to stderr."""
        self.write(f"warning: {text}", file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(file=sys.stderr)


class Output:
    """Training's standard output.  A write that fails (a full disk, a reader that went away
    as in ``| head``) warns once on stderr and ends the output, not the training: the
    checkpoints and the model are still written."""

    def __init__(self):
        self.lost = False

    def print(self, *args, bar=None, **kwargs):
        """``print`` to stdout (through a tqdm ``bar``'s ``write`` when given), flushed."""
        if self.lost:
            return
        try:
            if bar is not None:
                bar.write(" ".join(map(str, args)), file=sys.stdout)
            else:
                print(*args, **kwargs)
            sys.stdout.flush()
        except OSError as exc:
            self.lost = True
            print(f"warning: standard output: {reason(exc)}; nothing more is printed there "
                  "(training goes on)", file=sys.stderr, flush=True)


def reason(exc):
    """What went wrong in an ``OSError``, in a few words: ``No space left on device``."""
    return exc.strerror or str(exc) or type(exc).__name__


class JsonLog:
    """The ``--log`` file: one JSON record a line.  A failing write (a full disk) warns once
    and ends the log, not the training."""

    def __init__(self, path, progress):
        self.path, self.progress, self.file = path, progress, None
        if path:
            try:
                self.file = open(path, "a", encoding="utf-8")
            except OSError as exc:
                self._failed(exc)

    def write(self, record):
        if self.file is None:
            return
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc):
        self.progress.warn(f"--log {self.path}: {reason(exc)}; no more records are written to "
                           "it (training goes on)")
        self.close()

    def close(self):
        file, self.file = self.file, None
        if file is not None:
            try:
                file.close()
            except OSError:           # the records that could not be written
                pass
