"""``import rnnfast`` writes nothing into the process's environment behind Python's back.

LIBXSMM's initialisation (at the import of rnnfast._kernels, when built in) puts
``OMP_PROC_BIND=TRUE`` into the C environment when no affinity variable is set;
an OpenMP runtime that starts later in the process (torch's libgomp) or in a
child process then pins threads to CPUs.  Each case runs in a fresh process
and compares the C library's environment with ``os.environ`` after the import
(Python's own writes, NumPy's included, reach both).
"""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads the C environment through glibc's environ")

# The C environment minus os.environ after `import rnnfast`, and the C value of
# OMP_PROC_BIND (None when unset).
PROBE = """\
import ctypes, os
import rnnfast
libc = ctypes.CDLL(None)
environ = ctypes.POINTER(ctypes.c_char_p).in_dll(libc, "environ")
c_env, i = {}, 0
while environ[i] is not None:
    name, _, value = environ[i].partition(b"=")
    c_env[os.fsdecode(name)] = os.fsdecode(value)
    i += 1
print(sorted(set(c_env.items()) - set(os.environ.items())))
print(repr(c_env.get("OMP_PROC_BIND")))
print(rnnfast._kernels.products_backend())
"""
AFFINITY_VARIABLES = ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY",
                      "I_MPI_SHM_HEAP")


def _probe(**env):
    clean = {k: v for k, v in os.environ.items() if k not in AFFINITY_VARIABLES}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            env={**clean, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    written, omp_proc_bind, backend = result.stdout.splitlines()
    return written, omp_proc_bind, backend


def test_import_writes_no_variable():
    written, omp_proc_bind, _ = _probe()
    assert written == "[]"
    assert omp_proc_bind == "None"


def test_import_keeps_an_empty_omp_proc_bind_empty():
    written, omp_proc_bind, _ = _probe(OMP_PROC_BIND="")
    assert written == "[]"
    assert omp_proc_bind == "''"


def test_import_keeps_the_users_omp_proc_bind():
    written, omp_proc_bind, _ = _probe(OMP_PROC_BIND="close")
    assert written == "[]"
    assert omp_proc_bind == "'close'"
