"""``python -m rnnfast sample --top-k / --top-p``: checked like the other options, the same
text as rnnfast.text.generate, and streamed output for any model."""

import numpy as np
import pytest

from rnnfast import RNNModel
from rnnfast.__main__ import main
from rnnfast.cli import sample as sample_command
from rnnfast.text import generate
from tests.helpers import error_line

VOCAB = "abcdefg \n"


def save(tmp_path, **config):
    model = RNNModel(len(VOCAB), 16, len(VOCAB), seed=0, **config)
    for value in model.parameters.values():
        value *= 3                  # sharp enough for varied, restricted draws
    model.metadata = {"vocab": VOCAB}
    path = tmp_path / "model.npz"
    model.save(path)
    return str(path), RNNModel.load(path)



@pytest.mark.parametrize("option, value, expected", [
    ("--top-k", "0", "--top-k must be an integer of at least 1"),
    ("--top-k", "-2", "--top-k must be an integer of at least 1"),
    ("--top-p", "0", r"--top-p must be a number in (0, 1]"),
    ("--top-p", "1.01", r"--top-p must be a number in (0, 1]"),
    ("--top-p", "nan", r"--top-p must be a number in (0, 1]"),
    ("--top-p", "-inf", r"--top-p must be a number in (0, 1]"),
])
def test_bad_values_are_one_error_line(tmp_path, option, value, expected):
    path, _ = save(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["sample", path, f"{option}={value}"])
    message = error_line(info)
    assert expected in message and value in message


def test_bad_values_are_refused_before_the_model_is_read(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["sample", str(tmp_path / "missing.npz"), "--top-k", "0"])
    assert "--top-k" in error_line(info)


@pytest.mark.parametrize("args, options", [
    ([], dict()),
    (["--top-k", "2"], dict(top_k=2)),
    (["--top-p", "0.6"], dict(top_p=0.6)),
    (["--top-k", "3", "--top-p", "0.9", "--temperature", "1.3"],
     dict(top_k=3, top_p=0.9, temperature=1.3)),
])
@pytest.mark.parametrize("config", [dict(), dict(cell="gru")], ids=["rnn", "gru"])
def test_sample_prints_what_generate_makes(tmp_path, capsys, args, options, config):
    path, model = save(tmp_path, **config)
    assert main(["sample", path, "--length", "150", "--prime", "ab", "--seed", "4",
                 *args]) == 0
    out = capsys.readouterr().out
    expected = generate(model, list(VOCAB), 150, prime="ab", seed=4, **options)[0]
    assert out == "ab" + expected + "\n"


def test_top_k_1_and_a_tiny_top_p_are_greedy(tmp_path, capsys):
    path, _ = save(tmp_path)
    outputs = []
    for args in (["--temperature", "0"], ["--top-k", "1"], ["--top-p", "1e-9"]):
        assert main(["sample", path, "--length", "80", "--prime", "ab", "--seed", "2",
                     *args]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]
    assert main(["sample", path, "--length", "80", "--prime", "ab", "--seed", "2"]) == 0
    assert capsys.readouterr().out != outputs[0]


def test_restricted_draws_use_fewer_characters(tmp_path, capsys):
    path, _ = save(tmp_path)
    assert main(["sample", path, "--length", "400", "--seed", "1", "--temperature", "3"]) == 0
    free = capsys.readouterr().out
    assert main(["sample", path, "--length", "400", "--seed", "1", "--temperature", "3",
                 "--top-k", "2"]) == 0
    top2 = capsys.readouterr().out
    assert len(set(free)) > len(set(top2))


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    out = capsys.readouterr().out
    assert "--top-k K" in out and "--top-p P" in out


class Chunks:
    """Pieces that end in Ctrl-C after the second."""

    def __iter__(self):
        yield "abc"
        yield "d\ne"
        raise KeyboardInterrupt


class Out:
    def __init__(self):
        self.text, self.flushed = "", []

    def write(self, s):
        self.text += s

    def flush(self):
        self.flushed.append(self.text)


def test_stream_writes_pieces_flushes_at_lines_and_keeps_them_on_ctrl_c():
    out = Out()
    assert sample_command._stream("pr", Chunks(), out, interval=np.inf) == 130
    assert out.text == "prabcd\ne\n"
    assert out.flushed[0] == "prabcd\ne"          # the piece holding a newline is flushed
