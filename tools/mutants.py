#!/usr/bin/env python3
"""Mutation check: the torch-free test suite must catch results that are off by 1e-3.

Run from the repository root with the environment's Python::

    python tools/mutants.py                          # every mutant
    python tools/mutants.py --list                   # their names and what each changes
    python tools/mutants.py --only rnn_loss.dWhh Adam.step
    python tools/mutants.py --jobs 1                 # one test run at a time

It prints one line per mutant (name, ``caught`` or ``SURVIVED``, the first
failing test, seconds) and a summary, and exits 0 when every mutant is caught,
1 when any survives, 2 on a set-up error (the control run fails, a mutant's
target is missing, a test module fails to import, or a mutant's own code
raised).

How it works
------------
A mutant wraps one public callable of rnnfast (``rnnfast.RNN.backward``,
``rnnfast.rnn_loss``, ``rnnfast.optim.Adam.step``, ...) and perturbs what it
returns or what it does in place, by a factor ``1 + 1e-3`` unless its docstring
says otherwise.  No file is edited.  For each mutant this script runs the
README's test command, ``python -m pytest``, plus ``-x -q -p no:cacheprovider
-p mutants``, with ``RNNFAST_MUTANT=<name>``: this file, loaded as a pytest
plugin (``tools/`` is put on ``PYTHONPATH``), installs the wrapper in
``pytest_configure``, before any test module is imported.  It replaces the
target in the class named (with its aliases, inherited ones included:
``RNN.__call__`` is ``RNN.forward``) and in every imported module that holds
it (``rnnfast.rnn_loss`` and ``rnnfast.functional.rnn_loss`` are both the
mutant).

The suite runs first with every target wrapped but unchanged (the control
run): it must pass, and it records which tests call each target and how long
each test takes.  A mutant's run then starts with the tests that call its
target, quickest first (the others follow in the suite's order), and ``-x``
stops it at the first failure, so a caught mutant costs seconds; a survivor
runs the whole suite.  The runs go ``--jobs`` at a time (default: the number
of CPUs).

The runs are torch-free whatever Python runs this script: a ``sitecustomize``
in a temporary folder at the head of ``PYTHONPATH`` sets
``sys.modules["torch"] = None`` in the test process and in every Python it
starts, so ``import torch`` raises ``ImportError`` and the torch tests skip.
Hypothesis keeps its example database in that temporary folder too, and
nothing is written into the source tree.

Adding a mutant
---------------
Write ``body(original, *args)``: it calls ``original`` with the arguments of
the public callable, changes the result and returns it.  ``bumped(a)`` is a
perturbed copy of array ``a`` and ``bump_entries(d, keys)`` perturbs entries
of a dict of arrays; other changes call ``hit()`` so that a survivor reports
how many results it changed.  Decorate it with ``@mutant(name, target)``,
``target`` being the public dotted path; the first line of its docstring is
what ``--list`` prints.  What ``original`` raises passes through (tests of
errors still pass); an exception raised by the body itself is a set-up error.
"""

import argparse
import functools
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

EPS = 1e-3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
PYTEST = ["-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "mutants"]
PARAMETER_GRADIENTS = ("dWhx", "dWhh", "dWyh", "dbh", "dby")   # as README names them
BLOCK_TORCH = ('import sys\n'
               'sys.modules["torch"] = None  # tools/mutants.py: run as if torch were absent\n')

MUTANTS = {}       # name -> (target, body)


def mutant(name, target):
    """Register ``body`` as mutant ``name`` of the public callable ``target``.

    Parameters
    ----------
    name : str
        What ``--only`` and ``RNNFAST_MUTANT`` select it by.
    target : str
        Dotted public path of the wrapped callable, e.g. ``"rnnfast.RNN.backward"``.

    Returns
    -------
    callable
        A decorator that registers its function and returns it unchanged.
    """
    def register(body):
        MUTANTS[name] = (target, body)
        return body
    return register


def bumped(a):
    """A copy of array ``a`` (same dtype and memory layout) times ``1 + EPS``.

    Parameters
    ----------
    a : ndarray

    Returns
    -------
    ndarray
    """
    out = np.array(a, copy=True, order="K")
    out *= 1 + EPS
    hit()
    return out


def bump_entries(grads, keys):
    """Replace ``grads[k]`` by ``bumped(grads[k])`` for every ``k`` in ``keys`` it holds.

    Parameters
    ----------
    grads : dict of ndarray
    keys : iterable of str

    Returns
    -------
    dict
        ``grads`` itself.
    """
    for k in keys:
        if k in grads:
            grads[k] = bumped(grads[k])
    return grads


# -- the mutants ----------------------------------------------------------------

@mutant("RNN.backward.params", "rnnfast.RNN.backward")
def _(original, self, *args, **kwargs):
    """RNN.backward: every weight_*/bias_* gradient."""
    grads = original(self, *args, **kwargs)
    return bump_entries(grads, [name for name, _ in self.named_parameters()])


@mutant("RNN.backward.input", "rnnfast.RNN.backward")
def _(original, self, *args, **kwargs):
    """RNN.backward: the "input" gradient."""
    return bump_entries(original(self, *args, **kwargs), ["input"])


@mutant("RNN.backward.hx", "rnnfast.RNN.backward")
def _(original, self, *args, **kwargs):
    """RNN.backward: the "hx" gradient."""
    return bump_entries(original(self, *args, **kwargs), ["hx"])


@mutant("RNN.backward.relu", "rnnfast.RNN.backward")
def _(original, self, *args, **kwargs):
    """RNN.backward: the parameter gradients of relu modules only."""
    grads = original(self, *args, **kwargs)
    if self.nonlinearity != "relu":
        return grads
    return bump_entries(grads, [name for name, _ in self.named_parameters()])


@mutant("RNN.forward.relu", "rnnfast.RNN.forward")
def _(original, self, input, hx=None, lengths=None):
    """RNN.forward: the output of relu modules only."""
    output, h_n = original(self, input, hx, lengths)
    return (bumped(output) if self.nonlinearity == "relu" else output), h_n


@mutant("RNN.forward.padded", "rnnfast.RNN.forward")
def _(original, self, input, hx=None, lengths=None):
    """RNN.forward: add 1e-3 to the output past each sequence's length (it must be 0)."""
    output, h_n = original(self, input, hx, lengths)
    if lengths is None:
        return output, h_n
    lengths = np.asarray(lengths).reshape(-1)
    if output.ndim == 2:                                   # unbatched (L, features)
        padded = np.arange(output.shape[0]) >= lengths[0]
    elif self.batch_first:                                 # (N, L, features)
        padded = np.arange(output.shape[1])[None, :] >= lengths[:, None]
    else:                                                  # (L, N, features)
        padded = np.arange(output.shape[0])[:, None] >= lengths[None, :]
    if padded.any():
        output = np.array(output, copy=True, order="K")
        output[padded] += EPS
        hit()
    return output, h_n


@mutant("LSTM.backward.params", "rnnfast.LSTM.backward")
def _(original, self, *args, **kwargs):
    """LSTM.backward: every weight_*/bias_* gradient."""
    grads = original(self, *args, **kwargs)
    return bump_entries(grads, [name for name, _ in self.named_parameters()])


@mutant("LSTM.backward.input-hx-cx", "rnnfast.LSTM.backward")
def _(original, self, *args, **kwargs):
    """LSTM.backward: the "input", "hx" and "cx" gradients."""
    return bump_entries(original(self, *args, **kwargs), ["input", "hx", "cx"])


@mutant("LSTM.forward.c_n", "rnnfast.LSTM.forward")
def _(original, self, input, hx=None, lengths=None):
    """LSTM.forward: the final cell state c_n."""
    output, (h_n, c_n) = original(self, input, hx, lengths)
    return output, (h_n, bumped(c_n))


@mutant("LSTM.forward.projected", "rnnfast.LSTM.forward")
def _(original, self, input, hx=None, lengths=None):
    """LSTM.forward: the output of modules with a projection only."""
    output, finals = original(self, input, hx, lengths)
    return (bumped(output) if self.proj_size else output), finals


@mutant("GRU.backward.params", "rnnfast.GRU.backward")
def _(original, self, *args, **kwargs):
    """GRU.backward: every weight_*/bias_* gradient."""
    grads = original(self, *args, **kwargs)
    return bump_entries(grads, [name for name, _ in self.named_parameters()])


@mutant("GRU.forward", "rnnfast.GRU.forward")
def _(original, self, input, hx=None, lengths=None):
    """GRU.forward: the output."""
    output, h_n = original(self, input, hx, lengths)
    return bumped(output), h_n


@mutant("rnn_loss.loss", "rnnfast.rnn_loss")
def _(original, x, h0, y, parameters):
    """rnn_loss: the loss value."""
    loss, grads = original(x, h0, y, parameters)
    hit()
    return loss * (1 + EPS), grads


@mutant("rnn_loss.dWhh", "rnnfast.rnn_loss")
def _(original, x, h0, y, parameters):
    """rnn_loss: dWhh."""
    loss, grads = original(x, h0, y, parameters)
    return loss, bump_entries(grads, ["dWhh"])


@mutant("rnn_loss.dWhx-dbh", "rnnfast.rnn_loss")
def _(original, x, h0, y, parameters):
    """rnn_loss: dWhx and dbh."""
    loss, grads = original(x, h0, y, parameters)
    return loss, bump_entries(grads, ["dWhx", "dbh"])


@mutant("rnn_loss.dWyh-dby", "rnnfast.rnn_loss")
def _(original, x, h0, y, parameters):
    """rnn_loss: dWyh and dby."""
    loss, grads = original(x, h0, y, parameters)
    return loss, bump_entries(grads, ["dWyh", "dby"])


@mutant("rnn_loss.dx-dh0", "rnnfast.rnn_loss")
def _(original, x, h0, y, parameters):
    """rnn_loss: dx and dh0."""
    loss, grads = original(x, h0, y, parameters)
    return loss, bump_entries(grads, ["dx", "dh0"])


@mutant("RNNModel.loss_and_grads", "rnnfast.RNNModel.loss_and_grads")
def _(original, self, *args, **kwargs):
    """RNNModel.loss_and_grads: every gradient."""
    result = original(self, *args, **kwargs)
    bump_entries(result[1], list(result[1]))
    return result


def overshoot(original, self, grads):
    """Run ``self.step(grads)``, then move each parameter by ``EPS`` x its change.

    Parameters
    ----------
    original : callable
        The optimizer's unmutated ``step``.
    self : rnnfast.optim.Optimizer
    grads : dict

    Returns
    -------
    object
        What ``step`` returned.
    """
    before = {k: p.copy() for k, p in self.params.items() if isinstance(p, np.ndarray)}
    result = original(self, grads)
    for k, p in self.params.items():
        if k in before and before[k].shape == p.shape:
            p += EPS * (p - before[k])
            hit()
    return result


@mutant("SGD.step", "rnnfast.optim.SGD.step")
def _(original, self, grads):
    """optim.SGD without momentum: each step moves the parameters 1e-3 x too far."""
    if self.momentum:
        return original(self, grads)
    return overshoot(original, self, grads)


@mutant("SGD.step.momentum", "rnnfast.optim.SGD.step")
def _(original, self, grads):
    """optim.SGD with momentum: each step moves the parameters 1e-3 x too far."""
    if not self.momentum:
        return original(self, grads)
    return overshoot(original, self, grads)


@mutant("Adam.step", "rnnfast.optim.Adam.step")
def _(original, self, grads):
    """optim.Adam: each step moves the parameters 1e-3 x too far."""
    return overshoot(original, self, grads)


@mutant("Adagrad.step", "rnnfast.optim.Adagrad.step")
def _(original, self, grads):
    """optim.Adagrad: each step moves the parameters 1e-3 x too far."""
    return overshoot(original, self, grads)


@mutant("clip_grad_norm", "rnnfast.clip_grad_norm")
def _(original, grads, max_norm):
    """clip_grad_norm: the parameter gradients, after clipping."""
    total = original(grads, max_norm)
    for k in PARAMETER_GRADIENTS:
        if k in grads:
            grads[k] *= 1 + EPS
            hit()
    return total


@mutant("rnn_forward.h", "rnnfast.rnn_forward")
def _(original, x, h0, parameters):
    """rnn_forward: h."""
    h, y_pred, caches = original(x, h0, parameters)
    return bumped(h), y_pred, caches


@mutant("rnn_forward.y", "rnnfast.rnn_forward")
def _(original, x, h0, parameters):
    """rnn_forward: y_pred."""
    h, y_pred, caches = original(x, h0, parameters)
    return h, bumped(y_pred), caches


@mutant("rnn_backward.dWhh", "rnnfast.rnn_backward")
def _(original, dh, caches):
    """rnn_backward: dWhh."""
    return bump_entries(original(dh, caches), ["dWhh"])


@mutant("rnn_cell_backward.dxt", "rnnfast.rnn_cell_backward")
def _(original, dh_next, cache):
    """rnn_cell_backward: dxt."""
    return bump_entries(original(dh_next, cache), ["dxt"])


# -- the pytest plugin (inside each test run) -------------------------------------

# What a run reports: perturbed results, its first failure, set-up errors and,
# in the control run, each target's callers and each test's duration.
_RUN = {"hits": 0, "first_failure": None, "errors": [], "callers": {}, "seconds": {}}
_TEST = {"nodeid": None}


def hit():
    """Count one perturbed result (reported for mutants that survive)."""
    _RUN["hits"] += 1


def install(target, body, label):
    """Replace ``target`` by a wrapper that runs ``body`` wherever it is looked up.

    Parameters
    ----------
    target : str
        Dotted public path, e.g. ``"rnnfast.RNN.backward"``.
    body : callable
        ``body(original, *args, **kwargs)``, called instead of the target.
    label : str
        Names the wrapper in error messages.

    Raises
    ------
    LookupError
        If ``target`` does not exist.
    """
    module_name, *path = target.split(".")
    owner = importlib.import_module(module_name)
    for part in path[:-1]:
        owner = getattr(owner, part, None)
    original = getattr(owner, path[-1], None)
    if not callable(original):
        raise LookupError(f"{label}: {target} does not exist")

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        inside = False                 # whether an exception came from rnnfast itself

        def call(*a, **k):
            nonlocal inside
            inside = True
            result = original(*a, **k)
            inside = False
            return result

        try:
            return body(call, *args, **kwargs)
        except BaseException as exc:
            if not inside:
                _RUN["errors"].append(f"{label} raised {type(exc).__name__}: {exc}")
            raise

    if isinstance(owner, type):    # on owner alone, with aliases (RNN.__call__ is forward)
        for alias in dir(owner):   # and inherited ones: SGD.step is Optimizer.step
            if inspect.getattr_static(owner, alias, None) is original:
                setattr(owner, alias, wrapper)
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None) or {}
        for key, value in list(namespace.items()):
            if value is original:
                setattr(module, key, wrapper)


def record_caller(target, original, *args, **kwargs):
    """The control run's wrapper: note that the running test calls ``target``."""
    _RUN["callers"].setdefault(target, {})[_TEST["nodeid"]] = True
    return original(*args, **kwargs)


def pytest_configure(config):
    """Install the mutant ``RNNFAST_MUTANT`` names; when it is empty (the control
    run), wrap every target unchanged and record which tests call it."""
    import pytest

    name = os.environ.get("RNNFAST_MUTANT")
    try:
        if name not in MUTANTS and name:
            raise LookupError(f"unknown mutant {name!r}; see python tools/mutants.py --list")
        if name:
            install(*MUTANTS[name], label=f"mutant {name}")
        for target in [] if name else sorted({target for target, _ in MUTANTS.values()}):
            install(target, functools.partial(record_caller, target), label="control")
    except (LookupError, ImportError) as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(session, config, items):
    """Run first the tests ``RNNFAST_MUTANT_FIRST`` lists (a JSON file), in its order."""
    path = os.environ.get("RNNFAST_MUTANT_FIRST")
    if path:
        with open(path) as f:
            rank = {nodeid: i for i, nodeid in enumerate(json.load(f))}
        items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))   # stable


def pytest_collectreport(report):
    """A module that fails to import is a set-up error, not a caught mutant."""
    if report.failed:
        _RUN["errors"].append(f"collecting {report.nodeid} failed")


def pytest_runtest_logstart(nodeid, location):
    """Note the test now running, to whom the control run attributes calls."""
    _TEST["nodeid"] = nodeid


def pytest_runtest_logreport(report):
    """Add up each test's duration; remember the first failing test."""
    _RUN["seconds"][report.nodeid] = _RUN["seconds"].get(report.nodeid, 0) + report.duration
    if report.failed and _RUN["first_failure"] is None:
        phase = "" if report.when == "call" else f" ({report.when})"
        _RUN["first_failure"] = report.nodeid + phase


def pytest_sessionfinish(session, exitstatus):
    """Write ``_RUN`` to the file ``RNNFAST_MUTANT_REPORT`` names."""
    path = os.environ.get("RNNFAST_MUTANT_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(_RUN, f)


# -- the driver ---------------------------------------------------------------------

def run_suite(name, workdir, first=()):
    """Run the test suite with mutant ``name`` (``""``: the control run) without torch.

    Parameters
    ----------
    name : str
    workdir : str
        The temporary folder holding the torch blocker; each run keeps its
        files and pytest's ``--basetemp`` in a folder of its own inside it.
    first : sequence of str
        Node ids of the tests to run first, in this order; the others follow
        in the suite's order.

    Returns
    -------
    returncode : int
        pytest's exit status.
    report : dict
        ``_RUN`` of the plugin (empty when the run did not get as far as writing it).
    output : str
        pytest's stdout and stderr.
    seconds : float
    """
    start = time.perf_counter()
    rundir = tempfile.mkdtemp(prefix=(name or "control") + "-", dir=workdir)
    report_path = os.path.join(rundir, "report.json")
    first_path = os.path.join(rundir, "first.json")
    with open(first_path, "w") as f:
        json.dump(list(first), f)
    env = dict(os.environ, RNNFAST_MUTANT=name, RNNFAST_MUTANT_REPORT=report_path,
               RNNFAST_MUTANT_FIRST=first_path, PYTHONDONTWRITEBYTECODE="1",
               HYPOTHESIS_STORAGE_DIRECTORY=os.path.join(workdir, "hypothesis"),
               PYTHONPATH=os.pathsep.join(filter(None, [workdir, TOOLS,
                                                        os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, *PYTEST, "--basetemp", os.path.join(rundir, "tmp")],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    report = {}
    if os.path.exists(report_path):
        with open(report_path) as f:
            report = json.load(f)
    return proc.returncode, report, proc.stdout, time.perf_counter() - start


def verdict(returncode, report):
    """``"caught"``, ``"SURVIVED"`` or ``"ERROR"`` (a set-up error) for one run."""
    if report.get("errors") or returncode not in (0, 1):
        return "ERROR"
    if returncode == 0:
        return "SURVIVED"
    return "caught" if report.get("first_failure") else "ERROR"


def main(argv=None):
    """Command line entry point; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        ``--list``, ``--only NAME...``, ``--jobs N``; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        0 when every mutant is caught, 1 when any survives, 2 on a set-up error.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="test runs at a time (default: the number of CPUs)")
    args = parser.parse_args(argv)
    if args.list:
        for name, (_target, body) in MUTANTS.items():
            print(f"{name:24} {body.__doc__.splitlines()[0]}")
        return 0
    names = args.only or list(MUTANTS)
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        print(f"error: unknown mutant(s) {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2

    start = time.perf_counter()
    counts = {"caught": 0, "SURVIVED": 0, "ERROR": 0}
    with tempfile.TemporaryDirectory(prefix="rnnfast-mutants-") as workdir:
        with open(os.path.join(workdir, "sitecustomize.py"), "w") as f:
            f.write(BLOCK_TORCH)
        print(f"python -m pytest {' '.join(PYTEST[2:])} with {sys.executable}, torch "
              f"blocked; {len(names)} mutant(s), {args.jobs} at a time", flush=True)
        returncode, control, output, seconds = run_suite("", workdir)
        if verdict(returncode, control) != "SURVIVED":
            print(output[-3000:], "\n".join(control.get("errors", [])), file=sys.stderr)
            print(f"error: the suite fails with every target wrapped unchanged (pytest exit "
                  f"{returncode}); fix that first", file=sys.stderr)
            return 2
        print(f"{'(control: no change)':24} {'passed':8}  -  {seconds:.1f}s", flush=True)

        def callers(name):
            """The tests that call the mutant's target, quickest first."""
            called = control["callers"].get(MUTANTS[name][0], {})
            return sorted(called, key=lambda nodeid: control["seconds"].get(nodeid, 0))

        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            runs = [pool.submit(run_suite, name, workdir, callers(name)) for name in names]
            for name, run in zip(names, runs, strict=True):
                returncode, report, output, seconds = run.result()
                result = verdict(returncode, report)
                if result == "caught":
                    where = report["first_failure"]
                elif result == "SURVIVED":
                    where = (f"(no test failed; {len(callers(name))} tests call "
                             f"{MUTANTS[name][0]}, {report['hits']} results perturbed)")
                else:
                    where = "; ".join(report.get("errors", [])) or f"(pytest exit {returncode})"
                counts[result] += 1
                print(f"{name:24} {result:8}  {where}  {seconds:.1f}s", flush=True)
                if result == "ERROR":
                    print(output[-3000:], file=sys.stderr)
    print(f"mutants: {counts['caught']} caught, {counts['SURVIVED']} survived"
          + (f", {counts['ERROR']} set-up errors" if counts["ERROR"] else "")
          + f"; total {time.perf_counter() - start:.0f}s")
    if counts["ERROR"]:
        return 2
    return 1 if counts["SURVIVED"] else 0


if __name__ == "__main__":
    sys.exit(main())
