"""Characters per second of text generation, one stream: the compiled loop of
``rnnfast.text.generate`` against the per-character Python loop it replaced and a torch
sampling loop (``nn.RNN`` + ``nn.Linear``, one step per call, ``torch.multinomial``).

Interleaved rounds, medians; the ratios are what to read (the machine is shared).

    python tools/bench_generate.py [--hidden 256] [--vocab 65] [--rounds 7] [--threads 1]
"""

import argparse
import statistics
import time

import numpy as np

import rnnfast
from rnnfast import _kernels
from rnnfast.text import generate


def old_python_loop(model, vocab, length, temperature, rng):
    """The loop sample_text_iter ran before: one forward of a (1, 1) input per character,
    the draw in NumPy (rng.choice)."""
    n = len(vocab)
    out, h, logits = [], None, None
    for _ in range(length):
        if logits is None:
            c = int(rng.integers(n))
        else:
            z = logits.astype(np.float64)
            z = (z - z.max()) / temperature
            p = np.exp(z)
            c = int(rng.choice(n, p=p / p.sum()))
        out.append(vocab[c])
        logits, h = model.forward(np.array([[c]]), h, return_state=True)
        logits = logits[0, -1]
    return "".join(out)


def torch_loop(rnn, linear, length, temperature, generator):
    import torch
    n = linear.out_features
    x = torch.zeros(1, 1, n)
    h = None
    out = []
    with torch.no_grad():
        c = int(torch.randint(n, (1,), generator=generator))
        for _ in range(length):
            out.append(c)
            x.zero_()
            x[0, 0, c] = 1
            y, h = rnn(x, h)
            p = torch.softmax(linear(y[0, 0]) / temperature, dim=0)
            c = int(torch.multinomial(p, 1, generator=generator))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    V, H = args.vocab, args.hidden
    vocab = [chr(33 + i) for i in range(V)]
    model = rnnfast.RNNModel(V, H, V, seed=0)
    lengths = {"old Python loop": 2000, "compiled generate": 100000, "torch loop": 3000}
    runs = {
        "old Python loop": lambda n: old_python_loop(model, vocab, n, 1.0,
                                                     np.random.default_rng(0)),
        "compiled generate": lambda n: generate(model, vocab, n, seed=0),
    }
    try:
        import torch
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        rnn, linear = torch.nn.RNN(V, H), torch.nn.Linear(H, V)
        gen = torch.Generator().manual_seed(0)
        runs["torch loop"] = lambda n: torch_loop(rnn, linear, n, 1.0, gen)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    except ImportError:
        print("torch not installed: no torch loop")
    print(f"H {H}, V {V}, one stream, float32; rnnfast BLAS: {_kernels.blas_in_use()}")
    rates = {name: [] for name in runs}
    for run in runs.values():                        # warm-up
        run(200)
    for _ in range(args.rounds):
        for name, run in runs.items():
            n = lengths[name]
            start = time.perf_counter()
            run(n)
            rates[name].append(n / (time.perf_counter() - start))
    median = {name: statistics.median(r) for name, r in rates.items()}
    for name, rate in median.items():
        print(f"{name:18s} {rate:12,.0f} characters/s  (rounds: "
              f"{', '.join(f'{r:,.0f}' for r in rates[name])})")
    fast = median["compiled generate"]
    for name, rate in median.items():
        if name != "compiled generate":
            print(f"compiled / {name}: {fast / rate:.1f}x")


if __name__ == "__main__":
    main()
