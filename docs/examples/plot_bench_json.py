"""
Plotting the benchmark's JSON
=============================

``python -m rnnfast bench`` times forward + backpropagation through time of
:func:`rnnfast.rnn_forward` / :func:`rnnfast.rnn_backward` against the NumPy reference
(:mod:`rnnfast.reference`) and, when it is installed, PyTorch, for a list of shapes and
both float dtypes. With ``--json FILE`` it also writes every number it measured to
``FILE``. This page runs a short benchmark, reads the file back with :mod:`json` and
plots the speed-ups.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

# %%
# Running the benchmark
# ---------------------
# ``--quick`` picks the small shapes; ``--samples 5`` takes the median of five
# interleaved samples of each implementation (the full benchmark takes 15).
# ``--no-torch`` leaves PyTorch out so that this page builds in seconds; without it the
# file also holds torch's times and ratios, and the module cases (``rnnfast.LSTM``
# against ``torch.nn.LSTM`` and so on) under the key ``"modules"``.
#
# We run the command as a user would, in a process of its own, and show what it prints.

folder = Path(tempfile.mkdtemp())
path = folder / "bench.json"
command = [sys.executable, "-m", "rnnfast", "bench", "--quick", "--no-torch",
           "--samples", "5", "--json", str(path)]
run = subprocess.run(command, capture_output=True, text=True, check=True)
print(run.stdout)

# %%
# What the file holds
# -------------------
# The top level is a dict:
#
# ``machine``
#     Versions (Python, NumPy, rnnfast, torch or ``null``), the architecture, the CPU's
#     name and its number of logical CPUs.
# ``threads``
#     The lines describing the BLAS libraries and their thread counts, as printed.
# ``peak_gflops``, ``peak``
#     The machine's multiply-add peak in GFLOP/s, per dtype and thread count (the keys
#     are thread counts), and how it was measured: the vector instructions (``isa``), the
#     clock, the BLAS's thread count and the same rates by the wall clock.
# ``samples``
#     The number of samples each median is taken over.
# ``results``
#     One dict per shape and dtype, described below.
# ``modules``, ``train``, ``memory``
#     Only when they ran: the module cases (with torch), the training-step cases
#     (``--train``, with torch) and the peak memory (``--memory``).
#
# Each result names its case (``shape``, ``dims`` as ``"n_x,n_h,n_y,m,T"``, ``dtype``,
# ``forward_only``) and gives:
#
# ``seconds``
#     The median time of one call of each implementation: ``rnnfast``, ``numpy`` (the
#     reference), ``roof`` (NumPy's matmul on the same set of matrix products, a bound
#     for any implementation built on the BLAS) and ``torch`` when it ran.
# ``vs_numpy``, ``vs_torch``
#     The other's time divided by rnnfast's: how many times faster rnnfast is
#     (``vs_torch`` is ``null`` without torch).
# ``gflops``
#     The floating-point operations of the matrix products divided by rnnfast's time, in
#     billions per second.
# ``roof_share``
#     The roof's time divided by rnnfast's: 1 means as fast as the bare matrix
#     products. Small shapes go above 1: the roof makes one NumPy call per product, and
#     at those sizes the cost of a call outweighs the arithmetic, while rnnfast runs the
#     whole time loop in one compiled call.
# ``peak_share``
#     ``gflops`` as a share of the machine's peak at the BLAS's thread count.
# ``mixed_share``
#     rnnfast's time alone divided by its time right after a 300 x 300 NumPy matmul; 1
#     means unaffected by the BLAS threads that matmul left behind.
# ``target_vs_numpy``, ``target_vs_torch``, ``target_roof``, ``target_mixed``
#     The project's speed targets for that shape and dtype (``null``: none).

report = json.loads(path.read_text())
print(json.dumps(report["machine"], indent=1))
print(f"{len(report['results'])} results, {report['samples']} samples each")
print(json.dumps(report["results"][0], indent=1))

# %%
# The speed-ups per shape
# -----------------------
# One bar per shape and dtype: how many times faster rnnfast's forward + backward pass is
# than the NumPy reference's, with the target as a short black line. The numbers come
# from this build's run and depend on the machine and on whatever else it was running;
# five samples of a few milliseconds each are a rough measurement (the full benchmark,
# ``python -m rnnfast bench``, takes more and longer samples and more shapes).

shapes = list(dict.fromkeys(r["shape"] for r in report["results"]))
dtypes = list(dict.fromkeys(r["dtype"] for r in report["results"]))
by_key = {(r["shape"], r["dtype"]): r for r in report["results"]}
width = 0.8 / len(dtypes)
positions = np.arange(len(shapes))

fig, ax = plt.subplots(figsize=(7, 4))
for k, dtype_name in enumerate(dtypes):
    offset = (k - (len(dtypes) - 1) / 2) * width
    rows = [by_key[shape, dtype_name] for shape in shapes]
    ax.bar(positions + offset, [r["vs_numpy"] for r in rows], width, label=dtype_name)
    for x, r in zip(positions + offset, rows, strict=True):
        if r["target_vs_numpy"] is not None:
            ax.hlines(r["target_vs_numpy"], x - width / 2, x + width / 2, color="black",
                      label="target" if k == 0 and x == positions[0] + offset else None)
ax.axhline(1, color="gray", linewidth=0.8)
ax.set_yscale("log")
ax.set_xticks(positions, [f"{s}\n{by_key[s, dtypes[0]]['dims']}" for s in shapes])
ax.set_ylabel("NumPy reference time / rnnfast time")
ax.set_title("forward + BPTT speed-up over the NumPy reference")
ax.legend()
fig.tight_layout()

# %%
# How close to the matrix products
# --------------------------------
# The same results read another way: the share of the GEMM roof (``roof_share``) and
# the achieved GFLOP/s (of rnnfast's time), and how much a NumPy matmul just before
# slows rnnfast down (``mixed_share``).

for r in report["results"]:
    print(f"{r['shape']:12s} {r['dtype']:8s} {r['gflops']:7.1f} GFLOP/s  "
          f"roof share {r['roof_share']:6.2f}  mixed share {r['mixed_share']:.2f}")
