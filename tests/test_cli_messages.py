"""python -m rnnfast: what it says besides errors (warnings, notes, help) is one clean line
each, and the help states every default once."""

import os
import re
import subprocess
import sys

import pytest

from rnnfast.__main__ import main

TEXT = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. " * 30
BASE = ["--hidden", "16", "--seq-len", "10", "--batch", "4", "--quiet"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def test_a_library_warning_is_one_line(text_file):
    result = subprocess.run([sys.executable, "-m", "rnnfast", "train", text_file, *BASE,
                             "--steps", "2", "--dropout", "0.3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert re.fullmatch(r"warning: dropout applies between layers, [^\n]*\n", result.stderr)
