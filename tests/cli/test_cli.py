"""The command line: demo, train, sample and bench run, and refuse bad input clearly."""

import json
import re
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest

from rnnfast import RNNModel, bench
from rnnfast.__main__ import main
from tests.helpers import error_line

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


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_train_and_sample_with_a_gated_cell(cell, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    model_path = tmp_path / "model.npz"
    assert main(["train", str(text), "--cell", cell, "--hidden", "32", "--steps", "150",
                 "--lr", "0.01", "--save", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert f"{cell} cell" in out
    final = float(out.split("final smoothed loss ")[1].split()[0])
    assert final < np.log(len(set(TEXT))) * 0.6
    model = RNNModel.load(model_path)
    assert model.cell == cell and "weight_hh_l0" in model.parameters
    assert main(["sample", str(model_path), "--length", "30", "--seed", "1",
                 "--prime", "the "]) == 0
    sample = capsys.readouterr().out.rstrip("\n")
    assert sample.startswith("the ") and len(sample) == 34 and set(sample) <= set(TEXT)


def test_train_refuses_an_unknown_cell(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["train", str(text), "--cell", "transformer"])
    assert "invalid choice: 'transformer'" in capsys.readouterr().err


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


# -- regressions: every user error is one line "error: ..." naming the option --

@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def model_file(tmp_path):
    model = RNNModel(5, 16, 5, seed=0)
    for value in model.parameters.values():
        value *= 4                  # sharp enough for a varied argmax path
    model.metadata = {"vocab": "abcde"}
    path = tmp_path / "model.npz"
    model.save(path)
    return path



TRAIN = ["--hidden", "8", "--seq-len", "8", "--batch", "2", "--steps", "2", "--quiet"]


@pytest.mark.parametrize("command, args, pattern", [
    ("demo", ["--lr", "inf"], "--lr must be a positive finite number; got inf"),
    ("demo", ["--lr", "nan"], "--lr must be a positive finite number; got nan"),
    ("demo", ["--lr", "0"], "--lr .*; got 0.0"),
    ("demo", ["--seed", "-1"], "--seed .*; got -1"),
    ("demo", ["--iterations", "-5"], "--iterations .*; got -5"),
    ("train", ["--lr", "inf"], "--lr .*; got inf"),
    ("train", ["--lr", "-1"], "--lr .*; got -1.0"),
    ("train", ["--clip", "-1"], r"--clip must be a non-negative finite number .*; got -1\.0"),
    ("train", ["--clip", "nan"], "--clip .*; got nan"),
    ("train", ["--clip", "inf"], "--clip .*; got inf"),
    ("train", ["--seed", "-1"], "--seed .*; got -1"),
    ("train", ["--sample-every", "-3"], r"--sample-every .*\(0 = never\); got -3"),
    ("train", ["--hidden", "0"], "--hidden .*; got 0"),
    ("train", ["--seq-len", "-1"], "--seq-len .*; got -1"),
    ("train", ["--batch", "0"], "--batch .*; got 0"),
    ("train", ["--steps", "0"], "--steps .*; got 0"),
    ("train", ["--hidden", "1000000"], r"--hidden 1000000 needs about [\d,.]+ GiB"),
    ("bench", ["--samples", "0"], "--samples .*; got 0"),
    ("bench", ["--samples", "-2"], "--samples .*; got -2"),
    ("bench", ["--min-sample-ms", "0"], "--min-sample-ms .*; got 0.0"),
    ("bench", ["--min-sample-ms", "-1"], "--min-sample-ms .*; got -1.0"),
    ("bench", ["--min-sample-ms", "nan"], "--min-sample-ms .*; got nan"),
    ("bench", ["--modules", "none", "rnn-1layer"], "--modules none .*rnn-1layer"),
    ("sample", ["--seed", "-1"], "--seed .*; got -1"),
    ("sample", ["--temperature", "-1"], "--temperature .*; got -1.0"),
    ("sample", ["--temperature", "nan"], "--temperature .*; got nan"),
    ("sample", ["--temperature", "1e400"], "--temperature .*; got inf"),
    ("sample", ["--length", "-1"], "--length .*; got -1"),
])
def test_bad_options_give_one_error_line_naming_the_option(command, args, pattern, text_file,
                                                          model_file, capsys, monkeypatch):
    def no_benchmark(*a, **k):
        raise AssertionError("the benchmark ran before the options were checked")
    monkeypatch.setattr(bench, "bench_shape", no_benchmark)
    base = {"demo": ["demo"], "train": ["train", str(text_file), *TRAIN],
            "bench": ["bench", "--quick", "--shapes", "seed-apple", "--no-torch"],
            "sample": ["sample", str(model_file)]}[command]
    with pytest.raises(SystemExit) as info:
        main([*base, *args])
    assert re.search(pattern, error_line(info))
    assert capsys.readouterr().out == ""          # refused before any work


def test_length_is_checked_before_the_model_is_read(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["sample", str(tmp_path / "missing.npz"), "--length", "-1"])
    assert "--length" in error_line(info)


@pytest.mark.parametrize("args", [["train", "TEXT", "--hidden", "1000000"],
                                  ["train", "TEXT", "--clip", "nan"],
                                  ["bench", "--samples", "0"],
                                  ["sample", "DIR"]])
def test_command_line_errors_are_one_line_without_traceback(args, text_file, tmp_path):
    args = [str(text_file) if a == "TEXT" else str(tmp_path) if a == "DIR" else a for a in args]
    result = subprocess.run([sys.executable, "-m", "rnnfast", *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""


def test_train_refuses_a_model_bigger_than_the_machine(text_file, monkeypatch, capsys):
    from rnnfast import training
    monkeypatch.setattr(training, "physical_memory", lambda: 2**30)
    with pytest.raises(SystemExit) as info:
        main(["train", str(text_file), "--hidden", "8000", *TRAIN[2:]])
    message = error_line(info)
    assert "--hidden 8000 needs about" in message and "this machine has 1.0 GiB" in message
    assert capsys.readouterr().out == ""
    needed = training.training_memory(len(set(TEXT)), 8000, 2, 8)
    assert 6 * 4 * 8000 * 8000 < needed < 2**30 * 2       # six float32 copies of Whh at least


def test_train_turns_a_memory_error_into_an_error_line(text_file, monkeypatch):
    from rnnfast import training

    def no_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(training, "physical_memory", lambda: None, raising=False)
    monkeypatch.setattr(training, "RNNModel", no_memory)
    with pytest.raises(SystemExit) as info:
        main(["train", str(text_file), *TRAIN])
    assert "out of memory" in error_line(info) and "--hidden 8" in str(info.value)


def test_sample_refuses_directories_and_unreadable_files(tmp_path, model_file, monkeypatch):
    with pytest.raises(SystemExit) as info:
        main(["sample", str(tmp_path)])
    assert "is a directory" in error_line(info)

    def locked(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(RNNModel, "load", locked)
    with pytest.raises(SystemExit) as info:
        main(["sample", str(model_file)])
    assert str(model_file) in error_line(info) and "Permission denied" in str(info.value)


@pytest.mark.parametrize("vocab, sizes, pattern", [
    (5, (3, 4, 3), "metadata 'vocab' must be a string of 3 distinct characters.*got int 5"),
    (None, (3, 4, 3), "metadata 'vocab' must be a string of 3 distinct characters.*got NoneType"),
    (["a", "b", "c"], (3, 4, 3), "must be a string of 3 distinct characters.*got list"),
    ("aab", (3, 4, 3), "3 distinct characters.*got 3 characters, 2 distinct"),
    ("abcd", (3, 4, 3), "3 distinct characters.*got 4 characters"),
    ("abc", (3, 4, 5), "input_size 3 and output_size 5"),
])
def test_sample_refuses_a_bad_vocabulary(tmp_path, vocab, sizes, pattern):
    model = RNNModel(*sizes)
    model.metadata = {"vocab": vocab}
    path = tmp_path / "model.npz"
    model.save(path)
    with pytest.raises(SystemExit) as info:
        main(["sample", str(path)])
    assert re.search(pattern, error_line(info))


def greedy(model, vocab, prime, length):
    """The argmax continuation of ``prime``: temperature 0, and what sampling tends to as
    temperature -> 0."""
    index = {c: i for i, c in enumerate(vocab)}
    logits, h = model.forward(np.array([[index[c] for c in prime]]), return_state=True)
    out = []
    for _ in range(length):
        c = int(np.argmax(logits[0, -1]))
        out.append(vocab[c])
        logits, h = model.forward(np.array([[c]]), h, return_state=True)
    return "".join(out)


@pytest.mark.parametrize("temperature", ["0", "1e-320", "5e-324", "1e-300"])
def test_zero_and_tiny_temperatures_sample_the_argmax_without_warnings(model_file, temperature,
                                                                       capsys):
    from rnnfast.text import sample_text
    model = RNNModel.load(model_file)
    expected = greedy(model, "abcde", "ab", 40)
    assert len(set(expected)) == 5           # the argmax path visits every letter
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sample_text(model, list("abcde"), 40, float(temperature), "ab", seed=0) == expected
        assert main(["sample", str(model_file), "--temperature", temperature, "--length", "40",
                     "--prime", "ab", "--seed", "1"]) == 0
    assert capsys.readouterr().out == "ab" + expected + "\n"


def test_sample_refuses_an_unknown_prime_naming_the_option(model_file):
    with pytest.raises(SystemExit) as info:
        main(["sample", str(model_file), "--prime", "abz"])
    assert "--prime" in error_line(info) and "'z'" in str(info.value)


def test_train_checks_save_path_before_training(text_file, tmp_path, capsys):
    for target, pattern in ((tmp_path / "nonexistent" / "dir" / "m.npz", "does not exist"),
                            (tmp_path, "is a directory"),
                            (text_file / "m.npz", "is not a directory")):
        with pytest.raises(SystemExit) as info:
            main(["train", str(text_file), *TRAIN, "--save", str(target)])
        message = error_line(info)
        assert message.startswith(f"error: --save {target}") and pattern in message
        assert capsys.readouterr().out == ""       # nothing trained


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_bench_checks_output_paths_before_timing(option, tmp_path, monkeypatch, capsys):
    def no_benchmark(*a, **k):
        raise AssertionError("the benchmark ran before the output path was checked")
    monkeypatch.setattr(bench, "bench_shape", no_benchmark)
    for target, pattern in ((tmp_path / "nonexistent" / "x.out", "does not exist"),
                            (tmp_path, "is a directory")):
        with pytest.raises(SystemExit) as info:
            main(["bench", "--quick", "--shapes", "seed-apple", "--no-torch", option,
                  str(target)])
        message = error_line(info)
        assert message.startswith(f"error: {option} {target}") and pattern in message
        assert capsys.readouterr().out == ""


@pytest.mark.parametrize("modules", [["--modules", "none"], ["--modules"]])
def test_bench_modules_none_skips_the_module_cases(modules, tmp_path, monkeypatch, capsys):
    def no_modules(*a, **k):
        raise AssertionError("a module case ran")
    monkeypatch.setattr(bench, "bench_module_shape", no_modules)
    out_file = tmp_path / "bench.json"
    main(["bench", "--quick", "--shapes", "seed-apple", "--dtype", "float64", "--samples", "1",
          *modules, "--json", str(out_file)])
    report = json.loads(out_file.read_text())
    assert "modules" not in report and [r["shape"] for r in report["results"]] == ["seed-apple"]


def test_clip_zero_means_no_clipping(text_file, tmp_path):
    trained = {}
    for clip in ("0", "1e30"):
        path = tmp_path / f"clip-{clip}.npz"
        assert main(["train", str(text_file), *TRAIN, "--steps", "5", "--clip", clip,
                     "--save", str(path)]) == 0
        trained[clip] = RNNModel.load(path).parameters
    n_vocab = len(set(TEXT))
    initial = RNNModel(n_vocab, 8, n_vocab, seed=0).parameters
    for name, value in trained["0"].items():
        np.testing.assert_array_equal(value, trained["1e30"][name])   # 0 = never clipped
        assert not np.array_equal(value, initial[name]), name           # and it trained


def test_clip_help_says_zero_means_no_clipping(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    assert "max gradient norm; 0 = no clipping" in capsys.readouterr().out


def test_training_header_precedes_the_progress_bar(text_file, monkeypatch):
    """With tqdm, the header is printed before the bar exists, 'done' after it is closed."""
    events = []

    class Stream:
        def __init__(self, name):
            self.name = name

        def write(self, text):
            if text.strip():
                events.append((self.name, text))
            return len(text)

        def flush(self):
            pass

        def isatty(self):
            return True

    class FakeTqdm:
        def __init__(self, total, **kwargs):
            events.append(("bar", "open"))

        def set_postfix(self, **kwargs):
            pass

        def update(self, n):
            events.append(("bar", "update"))

        def write(self, text):
            events.append(("bar", text))

        def close(self):
            events.append(("bar", "close"))

    fake = types.ModuleType("tqdm")
    fake.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", fake)
    monkeypatch.setattr(sys, "stdout", Stream("out"))
    monkeypatch.setattr(sys, "stderr", Stream("err"))
    assert main(["train", str(text_file), *TRAIN[:-1], "--steps", "3"]) == 0

    def first(predicate):
        return next(i for i, e in enumerate(events) if predicate(e))
    header = first(lambda e: e[0] == "out" and e[1].startswith("training on"))
    done = first(lambda e: e[0] == "out" and e[1].startswith("done:"))
    assert header < events.index(("bar", "open")) < events.index(("bar", "close")) < done
    assert events.count(("bar", "update")) == 3


def test_bench_warns_when_openblas_coretype_forces_older_kernels(monkeypatch):
    from rnnfast import bench
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setattr("builtins.open", lambda *a, **k: __import__("io").StringIO(
        "model name\t: test cpu\nflags\t\t: fpu sse2 avx2 avx512f\n"))
    assert "OPENBLAS_CORETYPE=Haswell" in bench.coretype_warning()
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert bench.coretype_warning() is None


def test_bench_reports_the_mixed_share(tmp_path, capsys):
    report = tmp_path / "b.json"
    main(["bench", "--quick", "--no-torch", "--shapes", "seed-apple", "--dtype", "float64",
          "--samples", "2", "--json", str(report)])
    import json
    result = json.loads(report.read_text())["results"][0]
    assert result["mixed_share"] > 0 and "mixed" in capsys.readouterr().out


def test_bench_train_step_runs_and_reports(tmp_path, capsys):
    pytest.importorskip("torch")
    out_file = tmp_path / "b.json"
    monkey_cases = dict(bench.TRAIN_CASES)
    try:
        bench.TRAIN_CASES.clear()
        bench.TRAIN_CASES["tiny"] = ((11, 8, 2, 5), 1.0)
        main(["bench", "--quick", "--shapes", "seed-apple", "--modules", "none", "--train",
              "--json", str(out_file)])
    finally:
        bench.TRAIN_CASES.clear()
        bench.TRAIN_CASES.update(monkey_cases)
    report = json.loads(out_file.read_text())
    (r,) = report["train"]
    assert r["shape"] == "tiny" and r["vs_torch"] > 0
    assert "training step" in capsys.readouterr().out

