"""
The apple example: "apple" to "pple!"
=====================================

The classic first recurrent network: a vanilla RNN reads the five characters of
``"apple"`` and learns to answer each one with the next character of ``"pple!"``.
At every step the hidden state is ``h_t = tanh(Whx x_t + Whh h_{t-1} + bh)`` and the
scores of the next character are ``Wyh h_t + by``.

This page trains that network with :class:`rnnfast.RNNModel` and
:class:`rnnfast.optim.Adam`, the way ``python -m rnnfast demo`` does, then checks the
compiled :func:`rnnfast.rnn_forward` and :func:`rnnfast.rnn_backward` against the plain
NumPy functions of :mod:`rnnfast.reference` and times the two.
"""

import statistics
import time

import matplotlib.pyplot as plt
import numpy as np

import rnnfast
from rnnfast import reference

# %%
# The data
# --------
# Five distinct characters make the vocabulary; the input is one-hot, batch-first
# ``(batch, steps, vocabulary)`` = ``(1, 5, 5)``, and the targets are the class
# indices ``(1, 5)`` of ``"pple!"``.

source, target = "apple", "pple!"
vocab = sorted(set(source + target))
index = {c: i for i, c in enumerate(vocab)}
X = np.eye(len(vocab), dtype=np.float32)[[index[c] for c in source]][None]
Y = np.array([[index[c] for c in target]])
print("vocabulary:", vocab)
print("X", X.shape, "Y", Y.tolist())

# %%
# Training
# --------
# A hidden state of 5 units and Adam with a learning rate of 0.1, for 100 steps.
# :meth:`~rnnfast.RNNModel.loss_and_grads` runs the forward pass, the softmax
# cross-entropy and backpropagation through time in one compiled call.

model = rnnfast.RNNModel(len(vocab), 5, len(vocab), seed=0)
optimizer = rnnfast.optim.Adam(model.parameters, lr=0.1)
losses = []
for step in range(100):
    loss, grads = model.loss_and_grads(X, Y)
    prediction = "".join(vocab[c] for c in model.predict(X)[0])
    optimizer.step(grads)
    losses.append(loss)
    if step < 5 or step % 20 == 0:
        print(f"step {step:3d}  loss {loss:.4f}  prediction {prediction!r}")

final = "".join(vocab[c] for c in model.predict(X)[0])
print(f"after 100 steps: loss {losses[-1]:.4f}, prediction {final!r}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(losses)
ax.set_yscale("log")
ax.set_xlabel("Adam step")
ax.set_ylabel("cross-entropy (nats per character)")
ax.set_title('"apple" -> "pple!"')
fig.tight_layout()

# %%
# The NumPy API against its reference
# -----------------------------------
# The model's parameters are the five arrays of the textbook NumPy RNN (``Whx``,
# ``Whh``, ``Wyh``, ``bh``, ``by``), so they can go straight into
# :func:`rnnfast.rnn_forward`. That API is column-major: ``x`` is
# ``(n_x, m, T_x)``, one column per sequence of the batch. We run the compiled functions
# and the NumPy reference on the same inputs in float64 and compare every output.
# (``x`` is made C-contiguous: arrays that are all C-contiguous and of one dtype go
# through the shortest path of the compiled wrapper; others are converted first.)

parameters = {k: v.astype(np.float64) for k, v in model.parameters.items()}
x = np.ascontiguousarray(X[0].T[:, None, :], dtype=np.float64)   # (n_x, m, T_x) = (5, 1, 5)
h0 = np.zeros((5, 1))
dh = np.random.default_rng(1).standard_normal((5, 1, 5))   # an upstream gradient

h_fast, y_fast, cache_fast = rnnfast.rnn_forward(x, h0, parameters)
h_ref, y_ref, cache_ref = reference.rnn_forward(x, h0, parameters)
g_fast = rnnfast.rnn_backward(dh, cache_fast)
g_ref = reference.rnn_backward(dh, cache_ref)

print(f"h       max abs difference {np.max(np.abs(h_fast - h_ref)):.2e}")
print(f"y_pred  max abs difference {np.max(np.abs(y_fast - y_ref)):.2e}")
for key in ("dx", "dh0", "dWhx", "dWhh", "dbh"):
    print(f"{key:7s} max abs difference {np.max(np.abs(g_fast[key] - g_ref[key])):.2e}")

# %%
# The predictions of the compiled forward pass are those of the trained model:

print("prediction:", "".join(vocab[c] for c in y_fast[:, 0, :].argmax(axis=0)))

# %%
# How much faster
# ---------------
# We time one forward pass followed by one backward pass of each implementation,
# alternating between the two, and take the median of several repeats. At this tiny
# size the reference's time is mostly Python overhead (a few NumPy calls per step),
# which the compiled version does not pay. The ratio depends on the machine and on
# its load when these pages were built.


def forward_backward(module):
    _, _, caches = module.rnn_forward(x, h0, parameters)
    return module.rnn_backward(dh, caches)


def median_seconds(fn, number=200, repeats=7):
    fn()                                   # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


times = {"rnnfast": [], "reference": []}
for _ in range(5):                          # interleaved rounds
    times["rnnfast"].append(median_seconds(lambda: forward_backward(rnnfast)))
    times["reference"].append(median_seconds(lambda: forward_backward(reference)))
fast, slow = (statistics.median(times[k]) for k in ("rnnfast", "reference"))
print("forward + backward, (n_x, n_h, n_y, m, T) = (5, 5, 5, 1, 5), float64:")
print(f"rnnfast is {slow / fast:.0f}x faster than the NumPy reference on this machine")
