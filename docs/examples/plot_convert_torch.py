"""
Running a PyTorch model's LSTM on rnnfast
=========================================

:func:`rnnfast.torch.convert` takes a PyTorch model and switches every ``nn.RNN``,
``nn.LSTM`` and ``nn.GRU`` inside it to rnnfast's compiled kernels, in place. Nothing
else changes: the parameters are the same ``nn.Parameter`` objects, autograd computes
the gradients, and torch's optimizers and ``clip_grad_norm_`` work as before.

We build a small part-of-speech-style tagger (an embedding, a two-layer LSTM and a
linear read-out), keep an unconverted copy, convert the other, check that both give the
same outputs and gradients, and time a training step of each.
"""

import copy
import statistics
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

import rnnfast.torch

torch.manual_seed(0)

# %%
# The model
# ---------
# A tagger reads a sentence of word indices and gives scores for each word's tag. The
# data here is random: what matters is that the two models compute the same thing.


class Tagger(nn.Module):
    def __init__(self, n_words, n_tags, embedding=32, hidden=64):
        super().__init__()
        self.embed = nn.Embedding(n_words, embedding)
        self.lstm = nn.LSTM(embedding, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, n_tags)

    def forward(self, words):
        states, _ = self.lstm(self.embed(words))
        return self.out(states)


n_words, n_tags, batch, length = 1000, 12, 16, 40
words = torch.randint(n_words, (batch, length))
tags = torch.randint(n_tags, (batch, length))

original = Tagger(n_words, n_tags)
converted = rnnfast.torch.convert(copy.deepcopy(original))
print(type(original.lstm).__module__, type(original.lstm).__name__)
print(type(converted.lstm).__module__, type(converted.lstm).__name__)

# %%
# The same outputs and gradients
# ------------------------------
# One forward and backward pass of the loss through each model, then the largest
# difference of the outputs and of every parameter's gradient. The two follow the same
# equations in float32 but sum in a different order, so they agree to a few units of
# float32's precision, not bit for bit.

loss_fn = nn.CrossEntropyLoss()


def loss_of(model):
    model.zero_grad()
    scores = model(words)
    loss = loss_fn(scores.reshape(-1, n_tags), tags.reshape(-1))
    loss.backward()
    return scores.detach(), loss.item()


scores_a, loss_a = loss_of(original)
scores_b, loss_b = loss_of(converted)
print(f"loss {loss_a:.6f} (torch) {loss_b:.6f} (rnnfast)")
print(f"scores: max abs difference {(scores_a - scores_b).abs().max().item():.2e}")
for (name, p), q in zip(original.named_parameters(), converted.parameters(), strict=True):
    print(f"grad of {name:22s} max abs difference {(p.grad - q.grad).abs().max().item():.2e}")

# %%
# Training steps, timed
# ---------------------
# A full step: forward, loss, backward, gradient clipping and an Adam update. Each model
# has its own optimizer; both start from the same weights. We alternate between the two
# models, time blocks of steps with :func:`time.perf_counter` and report the medians.
# The ratio depends on the machine (its cores, its BLAS) and on what else it was running
# when these pages were built.

optimizers = {"torch": torch.optim.Adam(original.parameters(), lr=1e-3),
              "rnnfast": torch.optim.Adam(converted.parameters(), lr=1e-3)}
models = {"torch": original, "rnnfast": converted}


def train_step(name):
    model, optimizer = models[name], optimizers[name]
    optimizer.zero_grad()
    scores = model(words)
    loss = loss_fn(scores.reshape(-1, n_tags), tags.reshape(-1))
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return loss.item()


def block_seconds(name, number=5):
    start = time.perf_counter()
    for _ in range(number):
        train_step(name)
    return (time.perf_counter() - start) / number


for name in models:                           # warm-up
    train_step(name)
samples = {name: [] for name in models}
for _ in range(9):
    for name in models:
        samples[name].append(block_seconds(name))
median = {name: statistics.median(s) for name, s in samples.items()}
for name, seconds in median.items():
    print(f"{name:8s} {seconds * 1e3:7.2f} ms per training step")
print(f"the converted model trains {median['torch'] / median['rnnfast']:.1f}x as fast "
      f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")

fig, ax = plt.subplots(figsize=(5, 3))
ax.boxplot([[1e3 * s for s in samples[name]] for name in models], tick_labels=list(models))
ax.set_ylabel("ms per training step")
ax.set_title("2-layer LSTM tagger, batch 16, length 40")
fig.tight_layout()

# %%
# After training, the two models still agree
# -----------------------------------------
# Both took the same number of steps on the same batch from the same weights, so their
# parameters should still be close (float32 rounding differences grow slowly through
# the updates).

gap = max((p - q).abs().max().item()
          for p, q in zip(original.parameters(), converted.parameters(), strict=True))
print(f"after {1 + 9 * 5} steps each: largest parameter difference {gap:.2e}")
