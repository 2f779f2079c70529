"""Training and text as a library: settings in, results and exceptions out (no argparse,
no SystemExit)."""

import numpy as np
import pytest

from rnnfast import RNNModel
from rnnfast.text import TextFileError, encode, read_text, streams, vocabulary
from rnnfast.training import TrainingError, TrainingResult, TrainSettings, train

TEXT = "hello world, hello library; " * 20


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def test_train_takes_settings_and_returns_a_result(text_file, tmp_path, capsys):
    save = str(tmp_path / "m.npz")
    result = train(TrainSettings(text_file, hidden=8, seq_len=8, batch=2, steps=3, save=save,
                                 quiet=True))
    assert result == TrainingResult(signal=None, error=None)
    model = RNNModel.load(save)
    assert model.metadata["vocab"] == "".join(vocabulary(TEXT))
    assert f"saved {save}" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    ({"hidden": 0}, "--hidden must be an integer of at least 1; got 0"),
    ({"dropout": 1.0}, "--dropout must be a number in [0, 1); got 1.0"),
    ({"file": "/no/such/text.txt"}, "/no/such/text.txt: no such file"),
])
def test_train_raises_a_training_error_naming_the_setting(text_file, change, message):
    settings = TrainSettings(text_file, steps=1, quiet=True)
    for name, value in change.items():
        setattr(settings, name, value)
    with pytest.raises(TrainingError) as info:
        train(settings)
    assert str(info.value) == message
    assert info.value.rank is None and not info.value.quiet


def test_read_text_raises_an_exception_not_an_exit(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.bin").write_bytes(b"ab\0cd")
    with pytest.raises(TextFileError, match="empty.txt is empty"):
        read_text(tmp_path / "empty.txt")
    with pytest.raises(TextFileError, match="looks binary"):
        read_text(tmp_path / "binary.bin")
    with pytest.raises(TextFileError, match="no such file"):
        read_text(tmp_path / "missing.txt")


def test_streams_read_the_text_side_by_side():
    vocab = vocabulary("abcab")
    data = encode("abcabcabca", vocab)
    np.testing.assert_array_equal(data, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    inputs, targets, per_stream = streams(data, 3)
    assert per_stream == 3
    np.testing.assert_array_equal(inputs, [[0, 1, 2], [0, 1, 2], [0, 1, 2]])
    np.testing.assert_array_equal(targets, [[1, 2, 0], [1, 2, 0], [1, 2, 0]])
