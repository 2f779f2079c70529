"""Smoke test of an installed rnnfast, run from outside the clone (CI runs it after
installing the sdist and after ``pip install .``).

Checks that rnnfast is imported from the environment, not from a source folder; that the
compiled kernels agree with the NumPy reference on forward and backward; that the typing
files are installed; and that the command line starts.
"""

import os
import subprocess
import sys

import numpy as np

import rnnfast
from rnnfast import reference


def main():
    package = os.path.dirname(rnnfast.__file__)
    if "site-packages" not in package:
        sys.exit(f"rnnfast was imported from {package}, not from an installed package")
    missing = [f for f in ("py.typed", "_kernels.pyi", "_updates.pyi", "_peak.pyi")
               if not os.path.isfile(os.path.join(package, f))]
    if missing:
        sys.exit(f"installed rnnfast lacks {', '.join(missing)}")
    rng = np.random.default_rng(0)
    shapes = dict(Whx=(4, 3), Whh=(4, 4), Wyh=(2, 4), bh=(4, 1), by=(2, 1))
    p = {k: rng.standard_normal(s) for k, s in shapes.items()}
    x, h0 = rng.standard_normal((3, 2, 5)), rng.standard_normal((4, 2))
    h, y, caches = rnnfast.rnn_forward(x, h0, p)
    h_ref, y_ref, caches_ref = reference.rnn_forward(x, h0, p)
    assert np.allclose(h, h_ref) and np.allclose(y, y_ref)
    grads = rnnfast.rnn_backward(h, caches)
    grads_ref = reference.rnn_backward(h_ref, caches_ref)
    assert all(np.allclose(grads[k], grads_ref[k]) for k in grads_ref)
    version = subprocess.run([sys.executable, "-m", "rnnfast", "--version"], check=True,
                             capture_output=True, text=True).stdout.strip()
    print(f"installed {version} from {package}: ok")


if __name__ == "__main__":
    main()
