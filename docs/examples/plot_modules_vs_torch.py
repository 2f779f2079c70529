"""
rnnfast.RNN, LSTM and GRU against torch.nn's
============================================

:class:`rnnfast.RNN`, :class:`rnnfast.LSTM` and :class:`rnnfast.GRU` are recurrent
layers on NumPy arrays with the constructors, parameter names, shapes and equations of
``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU``. Where torch computes the
gradients with autograd, these modules have an explicit ``backward`` that returns the
same gradients.

For each cell, in float32 and float64, we copy a torch module's weights into the
rnnfast module with ``load_state_dict``, run both on the same input with the same
upstream gradient, compare the outputs and every gradient, then time forward +
backward of each.
"""

import statistics
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import rnnfast

torch.manual_seed(0)
rng = np.random.default_rng(0)

# %%
# Two layers, bidirectional
# -------------------------
# A two-layer bidirectional module exercises the whole layer driver: both directions,
# the second layer reading the concatenated outputs of the first. The input is
# time-major ``(L, N, input_size)``, as torch's default.

input_size, hidden_size, num_layers, batch, length = 16, 32, 2, 8, 30
CELLS = ("RNN", "LSTM", "GRU")
DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


def make_pair(cell, dtype):
    """A torch module and an rnnfast module with the same weights, and their data."""
    theirs = getattr(torch.nn, cell)(input_size, hidden_size, num_layers,
                                     bidirectional=True, dtype=DTYPES[dtype])
    ours = getattr(rnnfast, cell)(input_size, hidden_size, num_layers,
                                  bidirectional=True, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    x = rng.standard_normal((length, batch, input_size)).astype(dtype)
    grad_out = rng.standard_normal((length, batch, 2 * hidden_size)).astype(dtype)
    return ours, theirs, x, grad_out


def torch_pass(theirs, x, grad_out):
    """Forward and autograd's backward; the output and the gradients, as NumPy arrays."""
    xt = torch.from_numpy(x).requires_grad_(True)
    for p in theirs.parameters():
        p.grad = None
    out, _ = theirs(xt)
    out.backward(torch.from_numpy(grad_out))
    grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    grads["input"] = xt.grad.numpy()
    return out.detach().numpy(), grads


def rnnfast_pass(ours, x, grad_out):
    out, _ = ours(x)
    return out, ours.backward(grad_out)


# %%
# The same numbers
# ----------------
# The largest absolute difference over the output and over all gradients (the input's
# and every parameter's), next to the largest gradient entry for scale. Float32 results
# differ from torch's by rounding: the two sum the same products in a different order.
# The weight gradients sum over every step and sequence, so their entries are large and
# so are their absolute rounding differences.

rows = []
for cell in CELLS:
    for dtype in DTYPES:
        ours, theirs, x, grad_out = make_pair(cell, dtype)
        out_ours, g_ours = rnnfast_pass(ours, x, grad_out)
        out_theirs, g_theirs = torch_pass(theirs, x, grad_out)
        out_gap = np.max(np.abs(out_ours - out_theirs))
        grad_gap = max(np.max(np.abs(g_ours[k] - g_theirs[k])) for k in g_theirs)
        grad_size = max(np.max(np.abs(g_theirs[k])) for k in g_theirs)
        rows.append((cell, np.dtype(dtype).name, out_gap, grad_gap, grad_size))
print(f"{'cell':5s} {'dtype':8s} {'output':>8s} {'gradients':>10s}   largest |gradient|")
for cell, dtype_name, out_gap, grad_gap, grad_size in rows:
    print(f"{cell:5s} {dtype_name:8s} {out_gap:8.1e} {grad_gap:10.1e}   {grad_size:.1f}")
print(f"gradients compared: the input's and the {len(g_theirs) - 1} parameters'")

# %%
# Timing forward + backward
# -------------------------
# Each sample runs forward then backward a few times; the two implementations take turns,
# and the median of the samples is kept. The ratio is torch's time over rnnfast's
# (above 1: rnnfast is faster). These ratios depend on the machine, on the thread
# counts and on the load of the machine when these pages were built; at these small
# sizes per-step overhead matters more than arithmetic.
#
# The float32 LSTM is torch's fastest case: on CPU it runs on fused oneDNN operators
# (``aten::mkldnn_rnn_layer``); its GRU and its float64 paths do not.


def median_seconds(calls, samples=5, number=2):
    times = {name: [] for name in calls}
    for fn in calls.values():
        fn()                                   # warm-up
    for _ in range(samples):
        for name, fn in calls.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(ts) for name, ts in times.items()}


def time_cell(cell, dtype):
    ours, theirs, x, grad_out = make_pair(cell, dtype)
    return median_seconds({"rnnfast": lambda: rnnfast_pass(ours, x, grad_out),
                           "torch": lambda: torch_pass(theirs, x, grad_out)})


ratios = {}
for dtype in DTYPES:
    for cell in CELLS:
        t = time_cell(cell, dtype)
        ratios[cell, np.dtype(dtype).name] = t["torch"] / t["rnnfast"]
        print(f"{cell:5s} {np.dtype(dtype).name}: torch's time / rnnfast's = "
              f"{ratios[cell, np.dtype(dtype).name]:.1f}")
print(f"torch {torch.__version__} on {torch.get_num_threads()} threads")

fig, ax = plt.subplots(figsize=(6, 3.5))
positions = np.arange(len(CELLS))
for offset, dtype_name in ((-0.2, "float32"), (0.2, "float64")):
    ax.bar(positions + offset, [ratios[cell, dtype_name] for cell in CELLS], 0.4,
           label=dtype_name)
ax.axhline(1, color="black", linewidth=0.8)
ax.set_xticks(positions, CELLS)
ax.set_ylabel("torch time / rnnfast time")
ax.set_title(f"forward + backward, 2 layers, bidirectional, N {batch}, L {length}")
ax.legend()
fig.tight_layout()
