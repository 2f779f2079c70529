"""rnnfast.text.generate / generate_iter: the compiled path against the NumPy twin, the
Python loop for objects that are not an RNNModel, chunking, and the argument checks (no
torch).  The other cells and stacks of layers: test_generate_stack.py."""

import numpy as np
import pytest

import rnnfast
from rnnfast import reference as ref
from rnnfast.text import generate, generate_iter, sample_text, sample_text_iter
from tests.helpers import (
    assert_a_misfit_parameter_is_refused,
    assert_generation_reads_read_only_parameters,
)

VOCAB = list("abcdefg \n")


def fused(dtype=np.float32, hidden=12, seed=0):
    return rnnfast.RNNModel(len(VOCAB), hidden, len(VOCAB), dtype=dtype, seed=seed)


def twin_texts(model, length, prime, seed, streams, **options):
    """The twin's texts: prime run step by step, then generate_steps on the seed's uniforms,
    drawn in chunks of 64 as generate draws them."""
    p = dict(model.parameters)
    h = np.zeros((streams, model.hidden_size), model.dtype)
    index = [VOCAB.index(c) for c in prime]
    for c in index[:-1]:
        h = np.tanh(p["Whx"][:, c] + h @ p["Whh"].T + p["bh"][:, 0])
    last = np.full(streams, index[-1] if index else -1)
    rng = np.random.default_rng(seed)
    chosen = []
    for lo in range(0, length, 64):
        n = min(64, length - lo)
        c, h, last = ref.generate_steps(h, last, rng.random((n, streams)), **p, **options)
        chosen.append(c)
    chosen = np.concatenate(chosen) if chosen else np.zeros((0, streams), np.intp)
    return ["".join(VOCAB[c] for c in chosen[:, i]) for i in range(streams)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("streams", [1, 4])
@pytest.mark.parametrize("prime", ["", "a", "bad cafe"])
@pytest.mark.parametrize("options", [dict(), dict(temperature=0.0), dict(temperature=0.6),
                                     dict(top_k=3), dict(top_p=0.8),
                                     dict(temperature=1.4, top_k=5, top_p=0.9)],
                         ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()) or "default")
def test_generate_matches_the_twin(dtype, streams, prime, options):
    model = fused(dtype)
    texts = generate(model, VOCAB, 150, prime=prime, seed=7, streams=streams, **options)
    assert texts == twin_texts(model, 150, prime, 7, streams, **options)
    assert [len(t) for t in texts] == [150] * streams


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65])
def test_lengths_and_chunks_do_not_change_the_text(length):
    model = fused()
    whole = generate(model, VOCAB, length, seed=3, streams=2, top_p=0.9)
    assert whole == twin_texts(model, length, "", 3, 2, top_p=0.9)
    for chunk in (1, 5, 64, 1000):
        parts = list(generate_iter(model, VOCAB, length, seed=3, streams=2, top_p=0.9,
                                   chunk=chunk))
        assert all(len(p) == 2 and len(p[0]) == len(p[1]) for p in parts)
        assert ["".join(p[i] for p in parts) for i in range(2)] == whole
        assert len(parts) == -(-length // chunk)
    assert [len(t) for t in whole] == [length, length]


def test_streams_are_independent_and_the_first_stream_is_sample_text():
    model = fused()
    texts = generate(model, VOCAB, 80, prime="ab", seed=1, streams=3, temperature=0.9)
    assert len(set(texts)) == 3
    one = generate(model, VOCAB, 80, prime="ab", seed=1, temperature=0.9)[0]
    assert sample_text(model, VOCAB, 80, 0.9, "ab", seed=1) == one
    assert "".join(sample_text_iter(model, VOCAB, 80, 0.9, "ab", 1)) == one
    assert sample_text(model, VOCAB, 80, 0.9, "ab", 1, top_k=2) == \
        generate(model, VOCAB, 80, prime="ab", seed=1, temperature=0.9, top_k=2)[0]


class Wrapped:
    """A model that is not an RNNModel: generation takes the Python loop."""

    def __init__(self, model):
        self.model = model

    def forward(self, X, h=None, return_state=False):
        return self.model.forward(X, h, return_state=return_state)


@pytest.mark.parametrize("options", [dict(), dict(temperature=0.0), dict(top_k=2, top_p=0.7)])
@pytest.mark.parametrize("prime", ["", "fab"])
def test_the_python_loop_draws_what_the_compiled_loop_draws(options, prime):
    model = fused(np.float64)
    compiled = generate(model, VOCAB, 100, prime=prime, seed=4, streams=2, **options)
    loop = generate(Wrapped(model), VOCAB, 100, prime=prime, seed=4, streams=2, **options)
    assert loop == compiled


@pytest.mark.parametrize("config", [dict(cell="lstm"), dict(cell="gru"), dict(num_layers=2),
                                    dict(nonlinearity="relu"), dict(dropout=0.3)],
                         ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_every_model_takes_every_option_and_greedy_is_the_forward_argmax(config):
    c = dict(cell="rnn", num_layers=1, nonlinearity="tanh", dropout=0.0) | config
    if c["dropout"]:
        c["num_layers"] = 2
    model = rnnfast.RNNModel(len(VOCAB), 10, len(VOCAB), c["num_layers"], c["nonlinearity"],
                             c["dropout"], cell=c["cell"], seed=0)
    assert model._rnn is not None                  # not the fused model
    model.train()
    a = generate(model, VOCAB, 70, prime="ab", seed=2, streams=2, top_k=3, top_p=0.9)
    assert a == generate(model, VOCAB, 70, prime="ab", seed=2, streams=2, top_k=3, top_p=0.9)
    assert model.training                          # back in its former mode
    greedy = generate(model, VOCAB, 70, prime="ab", temperature=0.0, streams=2)
    assert generate(model, VOCAB, 70, prime="ab", top_k=1, seed=5, streams=2) == greedy
    assert greedy[0] == greedy[1]
    # the argmax continuation, one forward per character
    index = [VOCAB.index(c) for c in "ab"]
    model.eval()
    logits, state = model.forward(np.array([index]), return_state=True)
    expected = []
    for _ in range(70):
        c = int(np.argmax(logits[0, -1]))
        expected.append(VOCAB[c])
        logits, state = model.forward(np.array([[c]]), state, return_state=True)
    assert greedy[0] == "".join(expected)


def test_generation_reads_read_only_parameters_and_changes_nothing():
    model = fused()
    assert_generation_reads_read_only_parameters(model, VOCAB)


def test_seeds_repeat_and_differ():
    model = fused()
    assert generate(model, VOCAB, 60, seed=11) == generate(model, VOCAB, 60, seed=11)
    assert generate(model, VOCAB, 60, seed=11) != generate(model, VOCAB, 60, seed=12)
    assert len(generate(model, VOCAB, 60)[0]) == 60


BAD = [
    (dict(length=-1), ValueError, "length must be at least 0"),
    (dict(length=2.5), TypeError, "length must be an integer"),
    (dict(length=True), TypeError, "length must be an integer"),
    (dict(temperature=-0.5), ValueError, "temperature must be a non-negative number"),
    (dict(temperature=float("nan")), ValueError, "temperature must be a non-negative number"),
    (dict(temperature=float("inf")), ValueError, "temperature must be a non-negative number"),
    (dict(temperature="1"), TypeError, "temperature must be a real number"),
    (dict(top_k=0), ValueError, "top_k must be at least 1"),
    (dict(top_k=-3), ValueError, "top_k must be at least 1"),
    (dict(top_k=2.0), TypeError, "top_k must be an integer"),
    (dict(top_k=True), TypeError, "top_k must be an integer"),
    (dict(top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), ValueError, r"top_p must be in \(0, 1\]"),
    (dict(top_p=float("nan")), ValueError, r"top_p must be in \(0, 1\]"),
    (dict(top_p="0.5"), TypeError, "top_p must be a real number"),
    (dict(prime="abz"), ValueError, "prime holds characters the model never saw: 'z'"),
    (dict(prime=5), TypeError, "prime must be a str"),
    (dict(seed=-1), ValueError, "seed must be a non-negative integer"),
    (dict(seed=1.5), TypeError, "seed must be an integer"),
    (dict(streams=0), ValueError, "streams must be at least 1"),
    (dict(streams=2.0), TypeError, "streams must be an integer"),
]


@pytest.mark.parametrize("bad, error, message", BAD, ids=lambda x: str(x)[:40])
def test_every_argument_is_checked_at_the_call(bad, error, message):
    model = fused()
    args = dict(length=10) | bad
    length = args.pop("length")
    with pytest.raises(error, match=message):
        generate(model, VOCAB, length, **args)
    with pytest.raises(error, match=message):
        generate_iter(model, VOCAB, length, **args)      # before any character is made


def test_chunk_and_vocabulary_size_are_checked():
    model = fused()
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        generate_iter(model, VOCAB, 5, chunk=0)
    with pytest.raises(ValueError, match=r"chunk \* streams must be at most"):
        generate_iter(model, VOCAB, 5, chunk=1 << 20, streams=1 << 10)
    with pytest.raises(ValueError, match="vocab has 8 characters; the model's input_size is 9"):
        generate(model, VOCAB[:-1], 5)
    other = rnnfast.RNNModel(len(VOCAB), 6, 4, seed=0)
    with pytest.raises(ValueError, match="output_size is 4"):
        generate(other, VOCAB, 5)


@pytest.mark.parametrize("name, bad", [("Whh", np.zeros((12, 11), np.float32)),
                                       ("Wyh", np.zeros((9, 12), np.float64)),
                                       ("bh", np.zeros((12, 2), np.float32)[:, :1])])
def test_a_replaced_parameter_that_does_not_fit_is_refused_as_forward_refuses_it(name, bad):
    # the compiled loop reads the arrays as they are: the model's own check, before any draw
    model = fused()
    assert_a_misfit_parameter_is_refused(model, name, bad, VOCAB)
