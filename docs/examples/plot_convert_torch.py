"""
Running a PyTorch model's recurrent layers on rnnfast
=====================================================

:func:`rnnfast.torch.convert` takes a PyTorch model and switches every ``nn.RNN``,
``nn.LSTM`` and ``nn.GRU`` inside it to rnnfast's compiled kernels, in place. Nothing
else changes: the parameters are the same ``nn.Parameter`` objects, autograd computes
the gradients, and torch's optimizers and ``clip_grad_norm_`` work as before.

We build a small tagger (an embedding, a two-layer recurrent network and a linear
read-out), once with an LSTM and once with a GRU, keep an unconverted copy of each,
check that the converted model gives the same outputs and gradients, and time a
training step of each.
"""

import copy
import statistics
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import rnnfast.torch

_ = torch.manual_seed(0)

# %%
# The model
# ---------
# A tagger reads a sentence of word indices and gives scores for each word's tag (a
# part of speech, say). The data here is random: what matters is that the original and
# the converted model compute the same thing.


class Tagger(nn.Module):
    def __init__(self, cell, n_words, n_tags, embedding=32, hidden=64):
        super().__init__()
        self.embed = nn.Embedding(n_words, embedding)
        self.rnn = getattr(nn, cell)(embedding, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, n_tags)

    def forward(self, words):
        states, _ = self.rnn(self.embed(words))
        return self.out(states)


n_words, n_tags, batch, length = 1000, 12, 16, 30
words = torch.randint(n_words, (batch, length))
tags = torch.randint(n_tags, (batch, length))

originals = {cell: Tagger(cell, n_words, n_tags) for cell in ("LSTM", "GRU")}
converted = {cell: rnnfast.torch.convert(copy.deepcopy(model))
             for cell, model in originals.items()}
for cell in originals:
    before, after = type(originals[cell].rnn), type(converted[cell].rnn)
    print(f"{before.__module__}.{before.__name__} -> {after.__module__}.{after.__name__}")

# %%
# The same outputs and gradients
# ------------------------------
# One forward and backward pass of the loss through each model, then the largest
# difference of the scores and of every parameter's gradient. The two implementations
# follow the same equations in float32 but sum in a different order, so they agree to a
# few units of float32's precision, not bit for bit.

loss_fn = nn.CrossEntropyLoss()


def loss_of(model):
    model.zero_grad()
    scores = model(words)
    loss = loss_fn(scores.reshape(-1, n_tags), tags.reshape(-1))
    loss.backward()
    return scores.detach(), loss.item()


for cell in originals:
    scores_a, loss_a = loss_of(originals[cell])
    scores_b, loss_b = loss_of(converted[cell])
    print(f"{cell}: loss {loss_a:.6f} (torch) {loss_b:.6f} (rnnfast); "
          f"scores differ by at most {(scores_a - scores_b).abs().max().item():.1e}")
    pairs = zip(originals[cell].named_parameters(), converted[cell].parameters(), strict=True)
    for (name, p), q in pairs:
        print(f"    grad of {name:20s} max abs difference {(p.grad - q.grad).abs().max():.1e}")

# %%
# Training steps, timed
# ---------------------
# A full step: forward, loss, backward, gradient clipping and an Adam update. Each model
# has its own optimizer, and each pair starts from the same weights. The original and
# the converted model take turns: in every round each runs a few steps, timed with
# :func:`time.perf_counter`, and the round gives one ratio (the original's time over
# the converted model's; above 1, the converted model is faster). We report the median
# ratio. The ratios depend on the machine (its cores, its BLAS) and on what else it was
# running when these pages were built (torch uses its default thread count, printed
# below; inside the converted layers rnnfast's kernels call torch's BLAS, on the same
# threads).
#
# PyTorch runs its float32 LSTM on CPU as one fused oneDNN operator per layer
# (``aten::mkldnn_rnn_layer`` in torch's profiler), a strong baseline; its GRU, and both
# cells in float64, go through ``aten::gru`` / ``aten::lstm`` without it, which is where
# the converted model gains most.

models = {(cell, kind): model for cell in originals
          for kind, model in (("torch", originals[cell]), ("rnnfast", converted[cell]))}
optimizers = {key: torch.optim.Adam(model.parameters(), lr=1e-3)
              for key, model in models.items()}


def train_step(key):
    model, optimizer = models[key], optimizers[key]
    optimizer.zero_grad()
    scores = model(words)
    loss = loss_fn(scores.reshape(-1, n_tags), tags.reshape(-1))
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()


def seconds_per_step(key, number):
    start = time.perf_counter()
    for _ in range(number):
        train_step(key)
    return (time.perf_counter() - start) / number


for key in models:                            # warm-up
    train_step(key)
rounds, steps_per_round = 7, 3
ratios = {cell: [] for cell in originals}
for _ in range(rounds):
    for cell in originals:
        theirs = seconds_per_step((cell, "torch"), steps_per_round)
        ours = seconds_per_step((cell, "rnnfast"), steps_per_round)
        ratios[cell].append(theirs / ours)
for cell, values in ratios.items():
    print(f"{cell} tagger: a converted training step is {statistics.median(values):.1f}x "
          f"as fast (median of {rounds} rounds)")
print(f"torch {torch.__version__} on {torch.get_num_threads()} threads")

fig, ax = plt.subplots(figsize=(6, 3.5))
for k, values in enumerate(ratios.values()):
    ax.plot(np.full(len(values), k), values, "o", alpha=0.5)
    ax.hlines(statistics.median(values), k - 0.25, k + 0.25, color="black")
ax.axhline(1, color="gray", linewidth=0.8)
ax.set_xticks(range(len(ratios)), [f"{cell} tagger" for cell in ratios])
ax.set_xlim(-0.6, len(ratios) - 0.4)
ax.set_ylabel("torch time / converted time")
ax.set_title(f"training step, batch {batch}, length {length}\none dot per round, "
             "the line at the median", fontsize="medium")
fig.tight_layout()

# %%
# After training, the pairs still agree
# -------------------------------------
# The original and the converted model of each pair took the same number of steps on
# the same batch from the same weights, so their parameters should still be close
# (float32 rounding differences grow slowly through the updates).

for cell in originals:
    gap = max((p - q).abs().max().item() for p, q in zip(
        originals[cell].parameters(), converted[cell].parameters(), strict=True))
    print(f"{cell}: after {1 + rounds * steps_per_round} steps each, "
          f"largest parameter difference {gap:.1e}")
