"""The command line: demo, train, sample and bench run, and refuse bad input clearly."""

import subprocess
import sys

import numpy as np
import pytest

from rnnfast import RNNModel
from rnnfast.__main__ import main

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def test_demo_prints_each_iteration_and_ends_on_pple(capsys):
    assert main(["demo", "--iterations", "100"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if " loss: " in line]
    assert len(lines) == 100 and lines[0].startswith("0 loss:")
    assert lines[-1].endswith("prediction str:  pple!")
    assert "final prediction: 'pple!'" in out and "100 iterations in" in out


def test_demo_compares_with_torch(capsys):
    pytest.importorskip("torch")
    assert main(["demo", "--iterations", "20", "--dtype", "float64", "--compare-torch"]) == 0
    out = capsys.readouterr().out
    gap = float(out.split("largest loss difference ")[1].split()[0])
    assert gap < 1e-9


def test_train_save_and_sample(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    model_path = tmp_path / "model.npz"
    assert main(["train", str(text), "--hidden", "16", "--seq-len", "8", "--batch", "4",
                 "--steps", "30", "--sample-every", "15", "--save", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert "done: 30 steps" in out and "--- step 15" in out and "--- step 30" in out
    model = RNNModel.load(model_path)
    assert model.metadata["vocab"] == "".join(sorted(set(TEXT)))
    assert main(["sample", str(model_path), "--length", "50", "--temperature", "0.8",
                 "--seed", "1", "--prime", "the "]) == 0
    sample = capsys.readouterr().out.rstrip("\n")
    assert sample.startswith("the ") and len(sample) == 54
    assert set(sample) <= set(TEXT)


def test_training_reduces_the_loss(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    main(["train", str(text), "--hidden", "32", "--steps", "150", "--lr", "0.01"])
    out = capsys.readouterr().out
    final = float(out.split("final smoothed loss ")[1].split()[0])
    assert final < np.log(len(set(TEXT))) * 0.6


@pytest.mark.parametrize("content, pattern", [
    (None, "no such file"),
    (b"", "is empty"),
    (b"\x00\x01\x02binary", "looks binary"),
    (b"\xff\xfe\xfa text", "not UTF-8"),
])
def test_train_refuses_bad_files(tmp_path, content, pattern):
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit, match=pattern):
        main(["train", str(path), "--steps", "1"])


@pytest.mark.parametrize("args, pattern", [(["--iterations", "0"], "--iterations"),
                                           (["--lr", "-1"], "--lr")])
def test_demo_refuses_bad_arguments(args, pattern):
    with pytest.raises(SystemExit, match=pattern):
        main(["demo", *args])


def test_sample_refuses_bad_models(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        main(["sample", str(tmp_path / "missing.npz")])
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    with pytest.raises(SystemExit, match="not a model"):
        main(["sample", str(junk)])
    no_vocab = tmp_path / "plain.npz"
    RNNModel(3, 4, 3).save(no_vocab)
    with pytest.raises(SystemExit, match="no vocabulary"):
        main(["sample", str(no_vocab)])


def test_python_dash_m_runs_from_outside_the_source_tree(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rnnfast", "demo", "--iterations", "3"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2 loss:" in result.stdout


def test_bench_quick_json(tmp_path, capsys):
    out_file = tmp_path / "bench.json"
    main(["bench", "--quick", "--shapes", "seed-apple", "--dtype", "float64", "--no-torch",
          "--samples", "1", "--json", str(out_file)])
    import json
    report = json.loads(out_file.read_text())
    (result,) = report["results"]
    assert result["shape"] == "seed-apple" and result["vs_numpy"] > 0
    assert "seed-apple" in capsys.readouterr().out
