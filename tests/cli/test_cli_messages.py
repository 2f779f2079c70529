"""python -m rnnfast: what it says besides errors (warnings, notes, help) is one clean line
each, and the help states every default once."""

import re
import subprocess
import sys

import pytest

from rnnfast.__main__ import main
from tests.helpers import BASE


def test_a_library_warning_is_one_line(text_file):
    result = subprocess.run([sys.executable, "-m", "rnnfast", "train", text_file, *BASE,
                             "--steps", "2", "--dropout", "0.3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert re.fullmatch(r"warning: dropout applies between layers, [^\n]*\n", result.stderr)


def test_a_seq_len_longer_than_the_streams_is_noted(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 5, encoding="utf-8")            # 4 streams of 12
    assert main(["train", str(short), "--hidden", "8", "--batch", "4", "--seq-len", "25",
                 "--steps", "2", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (f"note: --seq-len 25 is longer than each of the 4 streams of "
                            f"{short} (12 characters); using --seq-len 12\n")
    assert "batch 4 x 12 steps" in captured.out


def test_eval_every_without_a_validation_split_is_noted(text_file, capsys):
    assert main(["train", text_file, *BASE, "--steps", "4", "--eval-every", "2"]) == 0
    assert capsys.readouterr().err == ("note: --eval-every 2 without --val-frac holds no text "
                                       "out: each evaluation records only the training loss "
                                       "(in --log)\n")


def test_no_note_when_nothing_is_adjusted(text_file, capsys):
    assert main(["train", text_file, *BASE, "--steps", "4", "--eval-every", "2",
                 "--val-frac", "0.1"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command", ["demo", "train", "sample"])
def test_every_option_has_a_help_stating_its_default_once(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    blocks = []                                          # an option and its help
    for line in out.split("options:")[1].splitlines():
        if line.startswith("  -"):
            blocks.append(line)
        elif blocks:
            blocks[-1] += " " + line.strip()
    options = [b for b in blocks if not b.startswith("  -h")]
    assert len(options) >= 4
    for line in options:
        assert line.count("default:") == 1, line
        assert "(default: None)" not in line and "(default: False)" not in line
    assert ("--checkpoint" not in out) or out.count("MODEL.npz.ckpt.npz") == 1


@pytest.mark.parametrize("command", ["demo", "train", "sample"])
def test_help_explains_seed_without_the_jargon(command, capsys):
    """The help says what ``--seed`` does in words a reader knows."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    text = text.replace("--seed SEED", "").replace("--seed", "")
    assert "seed" not in text.lower(), text
    assert "the same number" in text
