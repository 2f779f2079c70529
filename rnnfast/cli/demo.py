"""``python -m rnnfast demo``: the classic toy task, learning to map ``"apple"`` to
``"pple!"`` with :class:`~rnnfast.RNNModel` and Adam (lr 0.1) for 100 iterations,
printing each iteration like the PyTorch original does; ``--compare-torch`` also
runs that original (``nn.RNN`` + ``nn.Linear`` + ``CrossEntropyLoss``) from the
same initial weights and times both.
"""

import sys
import time

import numpy as np

from rnnfast.cli.checks import HelpFormatter, check_float, check_int
from rnnfast.model import RNNModel
from rnnfast.optim import Adam

APPLE_INPUT, APPLE_TARGET = "apple", "pple!"


def apple_data(dtype=np.float32):
    """Vocabulary, one-hot inputs ``(1, 5, 5)`` and targets ``(1, 5)`` of the apple task."""
    vocab = sorted(set(APPLE_INPUT + APPLE_TARGET))
    index = {c: i for i, c in enumerate(vocab)}
    X = np.eye(len(vocab), dtype=dtype)[[index[c] for c in APPLE_INPUT]][None]
    Y = np.array([[index[c] for c in APPLE_TARGET]])
    return vocab, X, Y


def train_apple(model, iterations=100, lr=0.1, log=None):
    """Train ``model`` on the apple task with Adam; return (losses, predictions, seconds).

    Each iteration takes the loss and gradients, notes the prediction made by
    the same parameters (as the PyTorch original prints the outputs of the
    forward pass it just ran), then steps.  Printing is not timed.
    """
    vocab, X, Y = apple_data(model.dtype)
    optimizer = Adam(model.parameters, lr=lr)
    losses, predictions, elapsed = [], [], 0.0
    for i in range(iterations):
        start = time.perf_counter()
        loss, grads = model.loss_and_grads(X, Y)
        predicted = model.predict(X)
        optimizer.step(grads)
        elapsed += time.perf_counter() - start
        text = "".join(vocab[c] for c in predicted[0])
        losses.append(loss)
        predictions.append(text)
        if log is not None:
            log(f"{i} loss:  {loss:.6f} prediction:  {predicted.tolist()} "
                f"true Y:  {Y.tolist()} prediction str:  {text}")
    return losses, predictions, elapsed


def train_apple_torch(model, iterations=100, lr=0.1):
    """The PyTorch original from ``model``'s initial weights; return (losses, seconds).

    ``nn.RNN`` has two hidden biases where RNNModel has one (``bh``): to train
    the same model, ``bias_hh_l0`` stays frozen at zero and ``bias_ih_l0``
    plays ``bh``.
    """
    import torch

    vocab, X, Y = apple_data(model.dtype)
    rnn, linear = model.to_torch()
    rnn.bias_hh_l0.requires_grad_(False)
    params = [p for p in list(rnn.parameters()) + list(linear.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    criterion = torch.nn.CrossEntropyLoss()
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    losses, elapsed = [], 0.0
    for _ in range(iterations):
        start = time.perf_counter()
        optimizer.zero_grad()
        out, _ = rnn(Xt)
        outputs = linear(out)
        loss = criterion(outputs.view(-1, len(vocab)), Yt.view(-1))
        loss.backward()
        optimizer.step()
        outputs.data.numpy().argmax(axis=2)
        elapsed += time.perf_counter() - start
        losses.append(loss.item())
    return losses, elapsed


def add_parser(commands):
    """Add the ``demo`` command to an argparse sub-parser set."""
    p = commands.add_parser("demo", help="train 'apple' -> 'pple!' with RNNModel + Adam",
                            formatter_class=HelpFormatter,
                            description="The apple example: RNNModel + Adam(lr=0.1), "
                                        "100 iterations.")
    p.add_argument("--iterations", type=int, default=100, help="Adam steps")
    p.add_argument("--lr", type=float, default=0.1, help="Adam's learning rate")
    p.add_argument("--seed", type=int, default=0,
                   help="a number that fixes the random initial weights (the same number, the "
                        "same run)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="the model's floating-point type")
    p.add_argument("--compare-torch", action="store_true",
                   help="also train the PyTorch original from the same weights and time both "
                        "(default: rnnfast alone)")
    p.set_defaults(run=run)


def _check_args(args):
    check_int("--iterations", args.iterations, 1)
    check_float("--lr", args.lr)
    check_int("--seed", args.seed, 0)


def run(args, out=None):
    """Run ``demo`` with the parsed ``args``; the exit status."""
    _check_args(args)
    out = sys.stdout if out is None else out
    dtype = np.dtype(args.dtype)
    model = RNNModel(5, 5, 5, dtype=dtype, seed=args.seed)
    initial = {k: v.copy() for k, v in model.parameters.items()}
    lines = []
    losses, predictions, seconds = train_apple(model, args.iterations, args.lr, log=lines.append)
    print("\n".join(lines), file=out)
    print(f"\nfinal prediction: {predictions[-1]!r} (target {APPLE_TARGET!r})", file=out)
    print(f"rnnfast: {args.iterations} iterations in {seconds * 1e3:.2f} ms "
          f"({seconds / args.iterations * 1e6:.1f} us each, {dtype.name})", file=out)
    if args.compare_torch:
        try:
            import torch
        except ImportError:
            print("--compare-torch needs PyTorch (pip install torch)", file=out)
            return 1
        torch.set_num_threads(torch.get_num_threads())
        twin = RNNModel(5, 5, 5, dtype=dtype)
        for k, v in initial.items():
            twin.parameters[k][...] = v
        torch_losses, torch_seconds = train_apple_torch(twin, args.iterations, args.lr)
        gap = max(abs(a - b) for a, b in zip(losses, torch_losses, strict=True))
        print(f"torch:   {args.iterations} iterations in {torch_seconds * 1e3:.2f} ms "
              f"({torch_seconds / args.iterations * 1e6:.1f} us each); "
              f"rnnfast is {torch_seconds / seconds:.1f}x faster; "
              f"largest loss difference {gap:.2e}", file=out)
    return 0
