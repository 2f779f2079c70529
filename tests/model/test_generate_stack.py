"""Generation in compiled code for every RNNModel: the LSTM, the GRU, the Elman cell (tanh,
relu) and any number of layers, against the NumPy twin ``reference.generate_stack_steps``
(no torch).

The kernel (``_kernels.generate_layers``) and the twin consume the same uniforms and must
pick exactly the same characters (both dtypes, 1-3 layers, one and several streams, every
option); their final states agree to rounding.  Through ``rnnfast.text.generate`` the
texts equal the twin's (prime included), the Python loop's (one ``forward`` per
character), and the compiled loop is the one that runs.
"""

import numpy as np
import pytest

import rnnfast
from rnnfast import _kernels, text
from rnnfast import reference as ref
from rnnfast.text import generate, generate_iter
from tests.helpers import (
    assert_a_misfit_parameter_is_refused,
    assert_generation_reads_read_only_parameters,
)

VOCAB = list("abcdefg \n")
DTYPES = [np.float32, np.float64]
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

# measured largest final-state difference, kernel vs twin of the same dtype, after 60
# steps (V 7, H 13, 1-3 layers, 1 and 3 streams, every cell): float32 2.4e-7, float64 6.7e-16
STATE_TOL = {np.float32: 2e-6, np.float64: 5e-15}


def cell_id(c):
    return c[0] if c[0] != "rnn" else f"rnn-{c[1]}"


def option_id(o):
    return "-".join(f"{k}{v}" for k, v in o.items()) or "default"


def layers(cell, V, H, L, dtype, seed=0):
    """L layers of a contracting recurrence (W_hh of spectral radius about 0.8) and a
    read-out sharp enough that the options matter."""
    rng = np.random.default_rng(seed)
    G = GATES[cell] * H
    out = []
    for k in range(L):
        n_in = V if k == 0 else H
        out.append({"weight_ih": rng.standard_normal((G, n_in)) / np.sqrt(n_in),
                    "weight_hh": 0.8 / np.sqrt(H) * rng.standard_normal((G, H)),
                    "bias_ih": 0.1 * rng.standard_normal(G),
                    "bias_hh": 0.1 * rng.standard_normal(G)})
    out = [{k: v.astype(dtype) for k, v in p.items()} for p in out]
    return out, rng.standard_normal((V, H)).astype(dtype), \
        (0.5 * rng.standard_normal((V, 1))).astype(dtype)


def kernel(cell, nonlinearity, state, last, uniforms, p, w_yh, b_y, temperature=1.0,
           top_k=None, top_p=None):
    """The kernel as rnnfast.text calls it; returns (chosen, state, last), inputs untouched."""
    h = np.array(state[0] if cell == "lstm" else state, copy=True)
    c = np.array(state[1], copy=True) if cell == "lstm" else None
    last = np.array(last, dtype=np.intp)
    for a in (uniforms, w_yh, b_y, *(v for q in p for v in q.values())):
        a.flags.writeable = False           # the kernel only reads them
    if cell == "gru":
        biases = [np.stack([q["bias_ih"], q["bias_hh"]]) for q in p]
    else:
        biases = [q["bias_ih"] + q["bias_hh"] for q in p]
    t = lambda a: np.ascontiguousarray(a.T)       # noqa: E731  (the kernel's layout)
    chosen = _kernels.generate_layers(
        cell, _kernels.Activation[nonlinearity.upper()], h, c, last, uniforms,
        t(p[0]["weight_ih"]), [t(q["weight_ih"]) for q in p[1:]],
        [t(q["weight_hh"]) for q in p], biases, t(w_yh), b_y.ravel(), temperature,
        top_k or 0, 1.0 if top_p is None else top_p)
    return chosen, ((h, c) if cell == "lstm" else h), last


def both(cell, nonlinearity, V, H, L, B, n, dtype, seed=0, last=None, **options):
    """Kernel and twin from the same start and uniforms; checks they agree; returns chosen."""
    p, w_yh, b_y = layers(cell, V, H, L, dtype, seed)
    rng = np.random.default_rng(seed + 1)
    h = (0.5 * rng.standard_normal((L, B, H))).astype(dtype)
    state = (h, (0.5 * rng.standard_normal((L, B, H))).astype(dtype)) if cell == "lstm" else h
    last = rng.integers(V, size=B) if last is None else np.asarray(last)
    uniforms = rng.random((n, B))
    chosen, s_k, last_k = kernel(cell, nonlinearity, state, last, uniforms, p, w_yh, b_y,
                                 **options)
    expected, s_r, last_r = ref.generate_stack_steps(cell, state, last, uniforms, p, w_yh,
                                                     b_y, nonlinearity, **options)
    assert chosen.dtype == np.intp and chosen.shape == (n, B)
    np.testing.assert_array_equal(chosen, expected)
    np.testing.assert_array_equal(last_k, last_r)
    for a_k, a_r in zip(*(s if cell == "lstm" else (s,) for s in (s_k, s_r)), strict=True):
        assert a_k.dtype == dtype
        np.testing.assert_allclose(a_k, a_r, rtol=0, atol=STATE_TOL[dtype])
    return chosen


OPTIONS = [dict(), dict(temperature=0.0), dict(temperature=0.5), dict(top_k=3),
           dict(top_p=0.6), dict(temperature=1.3, top_k=4, top_p=0.9)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_kernel_picks_the_twins_characters(cell, L, dtype, B, options):
    chosen = both(*cell, 7, 13, L, B, 60, dtype, **options)
    assert 0 <= chosen.min() and chosen.max() < 7
    if not options:
        assert len(np.unique(chosen)) > 3         # it draws, not a fixed path


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 1, 2, 1), (1, 5, 1, 2), (65, 33, 2, 2),
                                   (3, 130, 1, 1), (300, 8, 3, 2)],
                         ids=lambda s: "V{}-H{}-L{}-B{}".format(*s))
def test_odd_sizes(cell, dtype, shape):
    V, H, L, B = shape
    both(*cell, V, H, L, B, 20, dtype)
    both(*cell, V, H, L, B, 20, dtype, top_k=2, top_p=0.7, temperature=0.8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
@pytest.mark.parametrize("B", [1, 2, 17])
def test_every_product_path(products, cell, dtype, B):
    # by the plan (LIBXSMM's kernels for 2-32 streams at these sizes, when built in), BLAS
    # only, LIBXSMM on every shape
    both(*cell, 9, 20, 2, B, 30, dtype)
    both(*cell, 9, 20, 2, B, 30, dtype, top_k=3, temperature=0.7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
@pytest.mark.parametrize("n", [0, 1])
def test_zero_and_one_step(cell, dtype, n):
    assert both(*cell, 5, 6, 2, 2, n, dtype).shape == (n, 2)


@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
def test_no_input_yet_draws_uniformly_and_leaves_the_state(cell):
    V, H, L, B, n = 5, 4, 2, 3, 30
    chosen = both(*cell, V, H, L, B, n, np.float64, last=[-1] * B, temperature=0.0)
    rng = np.random.default_rng(1)
    rng.standard_normal((L, B, H))
    if cell[0] == "lstm":
        rng.standard_normal((L, B, H))
    uniforms = rng.random((n, B))
    np.testing.assert_array_equal(chosen[0], np.floor(uniforms[0] * V).astype(np.intp))
    # one uniform step only: the state is unchanged
    p, w_yh, b_y = layers(cell[0], V, H, L, np.float64)
    h = np.full((L, B, H), 0.25)
    state = (h, h + 1) if cell[0] == "lstm" else h
    _, after, _ = kernel(*cell, state, [-1] * B, uniforms[:1], p, w_yh, b_y)
    for a, b in zip(*(s if cell[0] == "lstm" else (s,) for s in (after, state)), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
def test_the_state_carries_across_calls(cell, dtype):
    V, H, L, B = 7, 10, 2, 2
    p, w_yh, b_y = layers(cell[0], V, H, L, dtype)
    rng = np.random.default_rng(5)
    h0 = rng.standard_normal((L, B, H)).astype(dtype)
    state = (h0, h0 / 2) if cell[0] == "lstm" else h0
    uniforms = rng.random((50, B))
    whole, s_whole, last_whole = kernel(*cell, state, [2, 3], uniforms, p, w_yh, b_y, top_p=0.9)
    s, last, parts = state, [2, 3], []
    for lo, hi in ((0, 1), (1, 20), (20, 50)):
        chosen, s, last = kernel(*cell, s, last, uniforms[lo:hi], p, w_yh, b_y, top_p=0.9)
        parts.append(chosen)
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    np.testing.assert_array_equal(last, last_whole)
    for a, b in zip(*(x if cell[0] == "lstm" else (x,) for x in (s, s_whole)), strict=True):
        np.testing.assert_array_equal(a, b)


# -- through rnnfast.text ------------------------------------------------------

def model_of(cell, L, dtype, hidden=12, seed=0, dropout=0.0):
    """An RNNModel with a sharper read-out than its initial one (so the options matter)."""
    model = rnnfast.RNNModel(len(VOCAB), hidden, len(VOCAB), L, cell[1], dropout,
                             cell=cell[0], dtype=dtype, seed=seed)
    model.parameters["Wyh"] *= 8
    return model


def model_layers(model):
    """The model's layers as the twin takes them (the fused model: one layer, W_ih = Whx,
    W_hh = Whh, b_ih + b_hh = bh)."""
    L = model.num_layers
    p = model.parameters
    if model._rnn is None:
        return [{"weight_ih": p["Whx"], "weight_hh": p["Whh"], "bias_ih": p["bh"][:, 0],
                 "bias_hh": np.zeros_like(p["bh"][:, 0])}]
    return [{w: p[f"{w}_l{k}"] for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            for k in range(L)]


def twin_texts(model, length, prime, seed, streams, **options):
    """The twin's texts: all of prime but its last character through the module's twin,
    then generate_stack_steps on the seed's uniforms, drawn in chunks of 64 as generate
    draws them."""
    cell, L, H, dtype = model.cell, model.num_layers, model.hidden_size, model.dtype
    p = model_layers(model)
    params = {f"{w}_l{k}": q[w] for k, q in enumerate(p) for w in q}
    index = [VOCAB.index(c) for c in prime]
    zeros = np.zeros((L, 1, H), dtype)
    state = (zeros, zeros) if cell == "lstm" else zeros
    if len(index) > 1:
        x = np.eye(len(VOCAB), dtype=dtype)[index[:-1]][:, None]     # (T, 1, V) one-hot
        if cell == "lstm":
            _, h, c, _ = ref.lstm_module_forward(x, *state, params, L)
            state = (h, c)
        elif cell == "gru":
            _, state, _ = ref.gru_module_forward(x, state, params, L)
        else:
            _, state, _ = ref.rnn_module_forward(x, state, params, L,
                                                 nonlinearity=model.nonlinearity)
    widen = lambda a: np.repeat(np.asarray(a, dtype), streams, axis=1)    # noqa: E731
    state = tuple(map(widen, state)) if cell == "lstm" else widen(state)
    last = np.full(streams, index[-1] if index else -1)
    rng = np.random.default_rng(seed)
    chosen = []
    for lo in range(0, length, 64):
        n = min(64, length - lo)
        c, state, last = ref.generate_stack_steps(
            cell, state, last, rng.random((n, streams)), p, model.parameters["Wyh"],
            model.parameters["by"], model.nonlinearity, **options)
        chosen.append(c)
    chosen = np.concatenate(chosen) if chosen else np.zeros((0, streams), np.intp)
    return ["".join(VOCAB[c] for c in chosen[:, i]) for i in range(streams)]


RUNS = [dict(streams=1, prime=""), dict(streams=4, prime="a"),
        dict(streams=1, prime="bad cafe", temperature=0.0),
        dict(streams=3, prime="bad cafe", top_k=3, temperature=0.7),
        dict(streams=2, prime="fed", top_p=0.8),
        dict(streams=4, prime="", temperature=1.4, top_k=5, top_p=0.9)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
@pytest.mark.parametrize("run", RUNS, ids=option_id)
def test_generate_matches_the_twin(cell, L, dtype, run):
    model = model_of(cell, L, dtype)
    options = dict(run)
    streams, prime = options.pop("streams"), options.pop("prime")
    texts = generate(model, VOCAB, 150, prime=prime, seed=7, streams=streams, **options)
    assert texts == twin_texts(model, 150, prime, 7, streams, **options)
    assert [len(t) for t in texts] == [150] * streams
    if not options:
        assert len(set("".join(texts))) > 4


@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
@pytest.mark.parametrize("length", [0, 1, 63, 64, 65])
def test_lengths_and_chunks_do_not_change_the_text(cell, length):
    model = model_of(cell, 2, np.float32)
    whole = generate(model, VOCAB, length, prime="ab", seed=3, streams=2, top_p=0.9)
    assert whole == twin_texts(model, length, "ab", 3, 2, top_p=0.9)
    for chunk in (1, 5, 64, 1000):
        parts = list(generate_iter(model, VOCAB, length, prime="ab", seed=3, streams=2,
                                   top_p=0.9, chunk=chunk))
        assert all(len(p) == 2 and len(p[0]) == len(p[1]) for p in parts)
        assert ["".join(p[i] for p in parts) for i in range(2)] == whole
        assert len(parts) == -(-length // chunk)


class Wrapped:
    """A model that is not an RNNModel: generation takes the Python loop."""

    def __init__(self, model):
        self.model = model

    def forward(self, X, h=None, return_state=False):
        return self.model.forward(X, h, return_state=return_state)


@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("options", [dict(), dict(temperature=0.0), dict(top_k=2, top_p=0.7)],
                         ids=option_id)
@pytest.mark.parametrize("prime", ["", "fab"])
def test_the_python_loop_draws_what_the_compiled_loop_draws(cell, L, options, prime):
    model = model_of(cell, L, np.float64)
    compiled = generate(model, VOCAB, 100, prime=prime, seed=4, streams=2, **options)
    loop = generate(Wrapped(model), VOCAB, 100, prime=prime, seed=4, streams=2, **options)
    assert loop == compiled


@pytest.mark.parametrize("config", [dict(cell=c, L=L) for c in CELLS for L in (1, 2, 3)]
                         + [dict(cell=("lstm", "tanh"), L=2, dropout=0.4)],
                         ids=lambda c: f"{cell_id(c['cell'])}-L{c['L']}"
                         + ("-dropout" if "dropout" in c else ""))
def test_the_compiled_loop_runs_every_model(config, monkeypatch):
    # a regression to the Python loop (one forward per character) fails here
    model = model_of(config["cell"], config["L"], np.float32,
                     dropout=config.get("dropout", 0.0))
    assert text._compiled(model)
    calls = {"kernel": 0, "forward": 0}
    run_kernel, run_forward = _kernels.generate_layers, model.forward

    def counting_kernel(*args):
        calls["kernel"] += 1
        return run_kernel(*args)

    def counting_forward(*args, **kwargs):
        calls["forward"] += 1
        return run_forward(*args, **kwargs)

    def no_python_loop(*args):
        raise AssertionError("the Python loop ran")

    monkeypatch.setattr(_kernels, "generate_layers", counting_kernel)
    monkeypatch.setattr(model, "forward", counting_forward)
    monkeypatch.setattr(text, "_forward_chunks", no_python_loop)
    texts = generate(model, VOCAB, 200, prime="bad", seed=1, streams=2)
    assert [len(t) for t in texts] == [200, 200]
    assert calls == {"kernel": 4, "forward": 1}      # 4 chunks of 64; the prime's one forward


def test_dropout_is_off_while_generating_and_the_mode_comes_back():
    model = model_of(("gru", "tanh"), 3, np.float64, dropout=0.5)
    model.train()
    texts = generate(model, VOCAB, 120, prime="bad cafe", seed=9, streams=3, top_k=4)
    assert model.training
    assert texts == twin_texts(model, 120, "bad cafe", 9, 3, top_k=4)     # no dropout
    model.eval()
    assert generate(model, VOCAB, 120, prime="bad cafe", seed=9, streams=3, top_k=4) == texts
    assert not model.training


@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
def test_generation_reads_read_only_parameters_and_changes_nothing(cell):
    model = model_of(cell, 2, np.float32)
    assert_generation_reads_read_only_parameters(model, VOCAB)


@pytest.mark.parametrize("name, bad", [("weight_hh_l1", np.zeros((48, 11), np.float32)),
                                       ("Wyh", np.zeros((9, 12), np.float64)),
                                       ("bias_ih_l0", np.zeros((48, 2), np.float32)[:, 0])])
def test_a_replaced_parameter_that_does_not_fit_is_refused_as_forward_refuses_it(name, bad):
    model = model_of(("lstm", "tanh"), 2, np.float32)
    assert_a_misfit_parameter_is_refused(model, name, bad, VOCAB)


def test_a_replaced_parameter_that_fits_is_the_one_generation_reads():
    model = model_of(("gru", "tanh"), 2, np.float64)
    texts = generate(model, VOCAB, 60, prime="ab", seed=2)
    model.parameters["weight_hh_l1"] = model.parameters["weight_hh_l1"] * -1.5
    changed = generate(model, VOCAB, 60, prime="ab", seed=2)
    assert changed != texts
    assert changed == twin_texts(model, 60, "ab", 2, 1)
