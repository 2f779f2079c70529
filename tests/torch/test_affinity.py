"""Importing rnnfast, before or after torch, leaves the process's CPU affinity alone.

LIBXSMM's initialisation (at the import of rnnfast._kernels) puts
``OMP_PROC_BIND=TRUE`` into the environment when no affinity variable is set;
torch's libgomp, initialised later at ``import torch``, then pins the importing
thread to one CPU.  Each case runs in a fresh process, so that the import order
is the case's own.  The child first widens its affinity to every CPU the system
lets it have (the pytest process may itself have been pinned by an earlier
import) and compares the affinity after the imports with that one.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                reason="torch is not installed")

# Widen the affinity to every CPU the system allows (the kernel drops those a
# cpuset forbids); skip (exit 3) with fewer than two; print the set.
WIDEN = ("import os, sys\n"
         "os.sched_setaffinity(0, range(os.cpu_count()))\n"
         "if len(os.sched_getaffinity(0)) < 2:\n"
         "    sys.exit(3)\n"
         "print('BEFORE', sorted(os.sched_getaffinity(0)), flush=True)\n")
# Print the affinity and whether torch was imported, as the process ends.
AT_EXIT = ("import atexit, os, sys\n"
           "atexit.register(lambda: print('AFTER', sorted(os.sched_getaffinity(0)), "
           "'torch' in sys.modules, flush=True))\n")


def _affinities(stdout):
    """The affinities printed by WIDEN and AT_EXIT, and whether torch was imported."""
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in stdout.splitlines()
             if line.startswith(("BEFORE ", "AFTER "))}
    before = lines["BEFORE"]
    after, torch_imported = lines["AFTER"].rsplit(" ", 1)
    return before, after, torch_imported == "True"


def _check(result):
    if result.returncode == 3:
        pytest.skip("fewer than 2 CPUs in this process's affinity")
    assert result.returncode == 0, result.stderr
    before, after, torch_imported = _affinities(result.stdout)
    assert torch_imported
    assert after == before


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no sched_setaffinity")
@pytest.mark.parametrize("imports", ["import rnnfast; import torch",
                                     "import rnnfast.torch",
                                     "import rnnfast._peak; import torch",
                                     "import torch; import rnnfast"])
def test_importing_rnnfast_keeps_the_affinity(imports):
    result = subprocess.run([sys.executable, "-c", WIDEN + AT_EXIT + imports + "\n"],
                            capture_output=True, text=True, timeout=300)
    _check(result)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no sched_setaffinity")
def test_the_benchmark_command_keeps_the_affinity(tmp_path):
    """``python -m rnnfast bench`` imports torch after rnnfast; a ``sitecustomize`` of the
    test's own widens the affinity at start and prints it at the end."""
    (tmp_path / "sitecustomize.py").write_text(WIDEN + AT_EXIT, encoding="utf-8")
    path = os.pathsep.join(p for p in [str(tmp_path), os.environ.get("PYTHONPATH")] if p)
    result = subprocess.run(
        [sys.executable, "-m", "rnnfast", "bench", "--shapes", "seed-apple", "--dtype",
         "float64", "--forward-only", "--samples", "1", "--min-sample-ms", "0.1",
         "--modules", "none"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": path})
    _check(result)
