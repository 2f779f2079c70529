"""
A character-level language model
================================

A recurrent network that reads text one character at a time and predicts the next
one. We train :class:`rnnfast.RNNModel` on the text shipped with the package,
:data:`rnnfast.text.EXAMPLE_TEXT` (the opening scenes of Shakespeare's *Coriolanus*,
public domain, about 40,000 characters), with :class:`rnnfast.optim.Adam` and
:func:`rnnfast.clip_grad_norm`, follow the training and validation loss, and let the
model write some text with :func:`rnnfast.text.sample_text`.

The loop below is the core of what ``python -m rnnfast train`` runs, written out in a few
lines (:func:`rnnfast.training.train` adds layers, dropout, other optimizers,
checkpoints and logging). It runs for a few seconds only: the model learns common
words and the layout of the play's speeches, not Shakespeare.
"""

import math

import matplotlib.pyplot as plt
import numpy as np

import rnnfast
from rnnfast import text
from rnnfast.training import evaluate

# %%
# The text
# --------
# Each distinct character is a class; :func:`~rnnfast.text.encode` turns the text into
# class indices. The last tenth is held out for validation.

corpus = text.read_text(text.EXAMPLE_TEXT)
vocab = text.vocabulary(corpus)
data = text.encode(corpus, vocab)
n_val = len(data) // 10
train_data, val_data = data[:-n_val], data[-n_val:]
print(f"{len(corpus)} characters, {len(vocab)} distinct; "
      f"{len(train_data)} for training, {len(val_data)} for validation")
print(corpus[:200])

# %%
# Parallel streams and truncated backpropagation
# ----------------------------------------------
# :func:`~rnnfast.text.streams` cuts the training text into ``batch`` streams read side
# by side; the targets are the same streams shifted by one character. Each step takes
# the next ``seq_len`` characters of every stream, and the hidden state at the end of a
# chunk is carried into the next (``return_state=True``), so the model sees context
# longer than one chunk while the gradient flows back ``seq_len`` steps only.
#
# The inputs are integer class indices ``(batch, seq_len)``: the model looks up the
# column of its input weights directly instead of multiplying a one-hot vector.

hidden, batch, seq_len, steps = 128, 16, 50, 400
inputs, targets, per_stream = text.streams(train_data, batch)
print(f"{batch} streams of {per_stream} characters; {per_stream // seq_len} chunks per pass")

model = rnnfast.RNNModel(len(vocab), hidden, len(vocab), seed=0)
optimizer = rnnfast.optim.Adam(model.parameters, lr=5e-3)
print(model)

# %%
# Training
# --------
# Every step computes the mean cross-entropy and every gradient in one compiled call
# (:meth:`~rnnfast.RNNModel.loss_and_grads`), scales the gradients so that their joint
# norm is at most 5 (:func:`rnnfast.clip_grad_norm`, as ``torch.nn.utils.clip_grad_norm_``
# does), and lets Adam update the parameters in place. Losses are in nats; dividing by
# ``ln 2`` gives bits per character (a uniform guess over 58 characters costs
# ``log2(58)`` = 5.86 bits).

bits = 1 / math.log(2)
train_curve, val_curve = [], []
state, pos = None, 0
for step in range(steps):
    if pos + seq_len > per_stream:            # the end of the streams: start over
        state, pos = None, 0
    X = inputs[:, pos:pos + seq_len]
    Y = targets[:, pos:pos + seq_len]
    loss, grads, state = model.loss_and_grads(X, Y, state, return_state=True)
    rnnfast.clip_grad_norm(grads, 5.0)
    optimizer.step(grads)
    pos += seq_len
    train_curve.append(loss * bits)
    if step % 40 == 0 or step == steps - 1:
        val_curve.append((step, evaluate(model, val_data, 16, seq_len) * bits))
        print(f"step {step:4d}  training {np.mean(train_curve[-20:]):.2f} bits/char  "
              f"validation {val_curve[-1][1]:.2f} bits/char")

# %%
# The loss curves
# ---------------
# The training curve is noisy (each point is one batch); the validation loss is the
# mean over the whole held-out text, with the state carried as in training. The
# validation loss levels off sooner than the training loss: 36,000 characters are little
# text, and the model starts to learn this text's particulars rather than English.

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(train_curve, alpha=0.35, label="training (one batch)")
window = 20
smooth = np.convolve(train_curve, np.ones(window) / window, mode="valid")
ax.plot(np.arange(window - 1, steps), smooth, label=f"training ({window}-step mean)")
ax.plot(*zip(*val_curve, strict=True), "o-", label="validation")
ax.axhline(math.log2(len(vocab)), color="gray", linestyle=":", label="uniform guess")
ax.set_xlabel("step")
ax.set_ylabel("bits per character")
ax.legend()
fig.tight_layout()

# %%
# Sampling
# --------
# :func:`~rnnfast.text.sample_text` feeds the model its own output one character at a
# time. The temperature divides the scores before the softmax: below 1 the model picks
# its likelier characters more often (safer, more repetitive text), above 1 it takes
# more risks. A fixed ``seed`` makes the sample repeatable.

for temperature in (0.5, 1.0):
    print(f"--- temperature {temperature}")
    print(text.sample_text(model, vocab, 300, temperature=temperature, prime="MENENIUS:",
                           seed=1))
