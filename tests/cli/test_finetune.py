"""python -m rnnfast train --init-from: fine-tuning a saved model or a checkpoint's weights
on another text, with a fresh optimizer and the file's shape and vocabulary."""

import numpy as np
import pytest

from rnnfast.__main__ import main
from rnnfast.checkpoint import load_checkpoint, model_from_checkpoint
from rnnfast.model import RNNModel
from rnnfast.text import encode, streams
from tests.helpers import BASE, error_line

#: A new text of the training text's characters only.
NEW_TEXT = "a lazy dog and a quick fox pack five boxes; the jugs are brown. " * 20



@pytest.fixture
def new_text(tmp_path):
    path = tmp_path / "new.txt"
    path.write_text(NEW_TEXT, encoding="utf-8")
    return str(path)


def first_chunk_loss(model, text, batch=4, seq_len=10):
    """The loss of ``model`` on the first (batch, seq_len) chunk train reads from ``text``."""
    inputs, targets, _ = streams(encode(text, list(model.metadata["vocab"])), batch)
    model.eval()                          # as the fine-tune runs it, without dropout
    loss, _ = model.loss_and_grads(inputs[:, :seq_len], targets[:, :seq_len])
    return loss


@pytest.mark.parametrize("options", [[], ["--cell", "lstm", "--layers", "2", "--dropout", "0.1"],
                                     ["--cell", "gru", "--dtype", "float64"]],
                         ids=["rnn", "lstm-2", "gru-f64"])
@pytest.mark.parametrize("source", ["model", "checkpoint"])
def test_a_fine_tune_starts_from_the_files_weights(text_file, new_text, tmp_path, options,
                                                   source):
    saved, ckpt = str(tmp_path / "m.npz"), str(tmp_path / "m.ckpt.npz")
    assert main(["train", text_file, *BASE, "--steps", "12", *options, "--save", saved,
                 "--checkpoint", ckpt, "--checkpoint-every", "12"]) == 0
    origin = saved if source == "model" else ckpt
    loaded = RNNModel.load(saved) if source == "model" else model_from_checkpoint(ckpt)
    tuned = str(tmp_path / "tuned.ckpt.npz")
    # neither the shape nor the dtype is given: they come from the file; no dropout (the
    # LSTM had some), so that the first step's loss is the model's
    assert main(["train", new_text, "--seq-len", "10", "--batch", "4", "--quiet", "--steps",
                 "3", "--dropout", "0", "--init-from", origin, "--checkpoint", tuned,
                 "--checkpoint-every", "1"]) == 0
    meta, arrays = load_checkpoint(tuned)
    assert meta["step"] == 3 and meta["optimizer"]["steps"] == 3      # a fresh optimizer
    assert meta["vocab"] == loaded.metadata["vocab"] != "".join(sorted(set(NEW_TEXT)))
    assert meta["init_from"] == origin
    for key in ("cell", "hidden", "layers"):
        assert meta["config"][key] == {"cell": loaded.cell, "hidden": loaded.hidden_size,
                                       "layers": loaded.num_layers}[key]
    assert meta["config"]["dtype"] == np.dtype(loaded.dtype).name
    # the first step's loss is the loaded model's on the new text's first chunk
    assert arrays["curve/train"][0] == first_chunk_loss(loaded, NEW_TEXT)
    # and the fine-tuned weights moved away from it
    moved = model_from_checkpoint(tuned).parameters
    assert any(not np.array_equal(moved[k], loaded.parameters[k]) for k in moved)


def test_a_fine_tuned_run_resumes_with_its_models_vocabulary(text_file, new_text, tmp_path):
    saved = str(tmp_path / "m.npz")
    assert main(["train", text_file, *BASE, "--steps", "4", "--save", saved]) == 0
    args = ["train", new_text, "--seq-len", "10", "--batch", "4", "--quiet", "--steps", "10"]
    straight, ckpt = str(tmp_path / "straight.npz"), str(tmp_path / "c.npz")
    assert main([*args, "--init-from", saved, "--save", straight]) == 0
    assert main([*args, "--init-from", saved, "--steps", "6", "--checkpoint", ckpt,
                 "--checkpoint-every", "6"]) == 0
    resumed = str(tmp_path / "resumed.npz")
    assert main([*args, "--resume", ckpt, "--save", resumed]) == 0
    a, b = RNNModel.load(straight), RNNModel.load(resumed)
    assert a.metadata["vocab"] == b.metadata["vocab"] == RNNModel.load(saved).metadata["vocab"]
    for name in a.parameters:
        np.testing.assert_array_equal(b.parameters[name], a.parameters[name], err_msg=name)


def test_missing_characters_are_one_line_naming_them(text_file, tmp_path):
    saved = str(tmp_path / "m.npz")
    assert main(["train", text_file, *BASE, "--steps", "2", "--save", saved]) == 0
    other = tmp_path / "other.txt"
    other.write_text("The Quick brown fox! \u00e9t\u00e9 " * 20 + "ABCDEFGHIJ", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["train", str(other), *BASE, "--init-from", saved])
    message = error_line(info)
    assert message.startswith(f"error: --init-from {saved}: its vocabulary lacks 14 characters "
                              "('!', 'A', 'B', 'C', 'D', 'E', 'F', 'G', ...) of ")


def test_given_options_that_conflict_with_the_file_are_one_line(text_file, tmp_path):
    saved = str(tmp_path / "m.npz")
    assert main(["train", text_file, *BASE, "--steps", "2", "--cell", "gru",
                 "--save", saved]) == 0
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, *BASE, "--init-from", saved, "--hidden", "32", "--cell",
              "gru", "--dtype", "float64"])
    assert error_line(info) == (f"error: --init-from {saved} is a gru model with --hidden 16, "
                                "--layers 1, --dtype float32; this run gives --hidden 32, "
                                "--dtype float64 (leave them out: the model's are used)")
    # the same values, given, are no conflict
    assert main(["train", text_file, *BASE, "--init-from", saved, "--cell", "gru",
                 "--steps", "1"]) == 0


def test_init_from_with_resume_or_a_bad_file_is_refused(text_file, tmp_path):
    saved, ckpt = str(tmp_path / "m.npz"), str(tmp_path / "c.npz")
    assert main(["train", text_file, *BASE, "--steps", "2", "--save", saved,
                 "--checkpoint", ckpt, "--checkpoint-every", "2"]) == 0
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, *BASE, "--init-from", saved, "--resume", ckpt])
    assert "exclude each other" in error_line(info)
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, *BASE, "--init-from", str(tmp_path / "none.npz")])
    assert error_line(info) == f"error: --init-from {tmp_path / 'none.npz'}: no such file"
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, *BASE, "--init-from", text_file])
    assert error_line(info).startswith(f"error: --init-from {text_file}")


def test_a_one_layer_rnn_keeps_its_dropout_kind(text_file, tmp_path):
    saved = str(tmp_path / "m.npz")
    assert main(["train", text_file, *BASE, "--steps", "2", "--save", saved]) == 0
    with pytest.raises(SystemExit) as info:
        main(["train", text_file, *BASE, "--init-from", saved, "--dropout", "0.2"])
    assert "fine-tunes with no dropout; this run gives --dropout 0.2" in error_line(info)
