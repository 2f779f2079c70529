"""python -m rnnfast under Ctrl-C: sample streams and keeps what it made; start-up exits 130
in one line (real processes and real SIGINT)."""

import os
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rnnfast import RNNModel
from rnnfast.text import sample_text, sample_text_iter

VOCAB = "abcde\n"


@pytest.fixture
def model_file(tmp_path):
    model = RNNModel(len(VOCAB), 16, len(VOCAB), seed=0)
    model.metadata = {"vocab": VOCAB}
    path = tmp_path / "model.npz"
    model.save(path)
    return str(path)


def read_until(stream, count, timeout=30):
    """Read ``count`` bytes of ``stream`` (raw) or fail after ``timeout`` seconds."""
    data, deadline = b"", time.monotonic() + timeout
    while len(data) < count and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(stream.fileno(), count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_sample_streams_and_ctrl_c_keeps_what_was_made(model_file):
    proc = subprocess.Popen([sys.executable, "-m", "rnnfast", "sample", model_file,
                             "--length", str(10**20), "--prime", "ab", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    early = read_until(proc.stdout, 200)     # characters arrive while it still runs
    assert len(early) == 200 and proc.poll() is None
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and err == b""
    out = (early + rest).decode()
    assert out.startswith("ab") and out.endswith("\n") and len(out) > 200
    # what was printed is the start of the same sample made in one piece
    model = RNNModel.load(model_file)
    made = out[2:-1]
    assert sample_text(model, list(VOCAB), len(made), prime="ab", seed=1) == made


def test_sample_text_iter_checks_at_the_call_and_matches_sample_text():
    model = RNNModel(3, 4, 3, seed=0)
    with pytest.raises(ValueError, match="prime holds characters"):
        sample_text_iter(model, list("abc"), 10**20, prime="z")
    chars = sample_text_iter(model, list("abc"), 30, 0.5, "ab", seed=2)
    assert "".join(chars) == sample_text(model, list("abc"), 30, 0.5, "ab", seed=2)
    np.testing.assert_equal(len(sample_text(model, list("abc"), 0)), 0)


# A sitecustomize module (run by Python at start-up) whose import hook, when the module
# named by RNNFAST_TEST_SLOW_IMPORT is first imported, prints "importing" and sleeps: the
# test sends SIGINT while the process is certainly inside that import.
SLOW_IMPORT = '''
import os, sys, time

class SlowImport:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ.get("RNNFAST_TEST_SLOW_IMPORT"):
            sys.meta_path.remove(self)
            print("importing", name, flush=True)
            # short sleeps: a SIGINT that the kernel hands to another thread (NumPy's
            # OpenBLAS pool) does not cut a long sleep short; the handler then waits
            # for the main thread's next bytecode
            for _ in range(600):
                time.sleep(0.1)
        return None

sys.meta_path.insert(0, SlowImport())
'''


@pytest.mark.parametrize("module", ["numpy", "rnnfast._kernels", "rnnfast.training"],
                         ids=["numpy-in-package-init", "extension", "command-module"])
def test_ctrl_c_during_start_up_exits_130_with_one_line(module, model_file, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(SLOW_IMPORT)
    env = dict(os.environ, RNNFAST_TEST_SLOW_IMPORT=module,
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "rnnfast", "sample", model_file],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert read_until(proc.stdout, len(f"importing {module}\n")) == \
        f"importing {module}\n".encode()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err, out) == (130, b"interrupted\n", b"")


def test_a_program_started_with_dash_m_that_imports_rnnfast_keeps_its_ctrl_c(tmp_path):
    """Only ``python -m rnnfast`` makes Ctrl-C quiet during its start-up: another package
    run with ``-m`` that imports rnnfast keeps Python's own handler."""
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import signal\nimport rnnfast\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n")
    (package / "__main__.py").write_text("")
    import rnnfast
    where = os.path.dirname(os.path.dirname(rnnfast.__file__))     # this rnnfast
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), where])}
    result = subprocess.run([sys.executable, "-m", "userpkg"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
