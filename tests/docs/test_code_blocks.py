"""Every code block of the README and of the documentation's pages runs as written.

- ```python blocks: each page's blocks run in order in one namespace (a later block may use
  what an earlier one made), in a temporary folder holding ``input.txt`` (a copy of the
  shipped example text). A block that imports torch or mpi4py is left out where that is not
  installed (so the torch-free run still runs the page's other blocks).
- ```bash blocks: each runs with ``bash -e`` in such a folder, with ``python`` the interpreter
  running the tests. Lines that set up a machine (``pip install``, ``python -m venv``,
  ``apt-get``, ``git clone``, activating a venv) are not run here: CI runs the README's
  commands from a fresh clone. Nor are the developer's commands in the checkout (building
  in place, ``python -m pytest``, ``tools/``, stubtest), which CI runs itself. Lines that
  need a cluster (``srun``, ``mpiexec -hosts``) are not run either, but their
  ``python -m rnnfast`` arguments must parse. ``mpiexec -n N`` lines run when mpi4py is
  installed.
- Any other fence must say it holds no code (``text``, ``output``, or ``cython`` for
  excerpts of the kernels): a block cannot escape these checks by its label, nor by having
  none.
"""

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rnnfast.text

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
               + [p for p in (ROOT / "docs").rglob("*.md")
                  if not {"_build", "auto_examples"} & set(p.relative_to(ROOT / "docs").parts)])
NOT_CODE = {"text", "output", "cython"}      # cython: excerpts of the kernels, built by setup.py
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\n`]*)$")
SETUP = re.compile(r"^(pip install|python3? -m venv|\. \S*activate|source \S*activate|"
                   r"(sudo )?apt-get|git clone|cd )")
CHECKOUT = re.compile(r"^(python setup\.py|python -m mypy|python -m pytest|python tools/|"
                      r"bash tools/|RNNFAST_\w+=\S+ (pip|python|bash) )")
CLUSTER = re.compile(r"^(srun|mpiexec -hosts)\b")
MPIEXEC = re.compile(r"^mpiexec -n \d+ ")


def _blocks(page):
    """The fenced blocks of ``page``: (language, first line number, code)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        info, indent, fence = m["info"].strip(), len(m["indent"]), m["fence"]
        lang = info.split()[0] if info else ""
        if lang.startswith("{code-block}") or lang.startswith("{code}"):
            lang = info.split()[1] if len(info.split()) > 1 else ""
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:])
            i += 1
        i += 1
        if lang.startswith("{"):            # a MyST directive (toctree, include, ...)
            continue
        body = [b for b in body if not b.startswith(":")] if info.startswith("{") else body
        yield lang, start + 1, "\n".join(body) + "\n"


def _page_id(page):
    return str(page.relative_to(ROOT))


def _workdir(tmp_path):
    shutil.copy(rnnfast.text.EXAMPLE_TEXT, tmp_path / "input.txt")
    return tmp_path


def _environment():
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


PYTHON_PAGES = [p for p in PAGES if any(lang == "python" for lang, _, _ in _blocks(p))]
BASH_BLOCKS = [(p, line, code) for p in PAGES for lang, line, code in _blocks(p)
               if lang in ("bash", "sh", "shell")]


def test_every_block_is_python_bash_or_not_code():
    labels = {(_page_id(p), line, lang) for p in PAGES for lang, line, _ in _blocks(p)
              if lang not in {"python", "bash", "sh", "shell"} | NOT_CODE}
    assert not labels, f"code blocks with a language these tests do not run: {sorted(labels)}"


def test_the_pages_hold_code_to_run():
    # the collector finds the blocks it should: a parse that found nothing would pass vacuously
    assert len(PYTHON_PAGES) >= 5 and len(BASH_BLOCKS) >= 5


def _requirements(code):
    needs = []
    if re.search(r"^\s*(import|from) torch\b|rnnfast\.torch|import numpy as np, torch",
                 code, re.M):
        needs.append("torch")
    if re.search(r"mpi4py", code):
        needs.append("mpi4py")
    return needs


def _missing(modules):
    """The first of ``modules`` that is not installed, or None."""
    return next((name for name in modules if importlib.util.find_spec(name) is None), None)


def _skip_without(modules):
    if _missing(modules) is not None:
        pytest.skip(f"needs {_missing(modules)}")


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_page_id)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    """A block that imports torch (or mpi4py) is left out where that is not installed; the
    page's other blocks must not depend on it."""
    blocks = [(line, code) for lang, line, code in _blocks(page) if lang == "python"]
    runnable = [(line, code) for line, code in blocks if _missing(_requirements(code)) is None]
    if not runnable:
        pytest.skip(f"needs {_missing(_requirements(''.join(c for _, c in blocks)))}")
    monkeypatch.chdir(_workdir(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__docs__"}
    for line, code in runnable:
        try:
            exec(compile(code, f"{_page_id(page)}:{line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"the block at {_page_id(page)}:{line} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc


def _commands(code):
    """The block's command lines, continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    for line in joined.splitlines():
        line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
        if line:
            yield line


def _rnnfast_arguments(command):
    words = shlex.split(command)
    i = words.index("rnnfast")
    return [w for w in words[i + 1:] if w != "..."]


@pytest.mark.parametrize("page, line, code", BASH_BLOCKS,
                         ids=[f"{_page_id(p)}:{line}" for p, line, _ in BASH_BLOCKS])
def test_bash_blocks_run(page, line, code, tmp_path):
    from rnnfast.cli import _parser

    script, parsed = [], 0
    for command in _commands(code):
        if SETUP.match(command) or CHECKOUT.match(command):
            continue
        if CLUSTER.match(command):
            args = _rnnfast_arguments(command)
            if "..." not in command:
                _parser().parse_args(args)      # the options exist and take these values
                parsed += 1
            continue
        if MPIEXEC.match(command):
            _skip_without(["mpi4py"])
            if shutil.which("mpiexec") is None and not (
                    Path(sys.executable).parent / "mpiexec").exists():
                pytest.skip("needs mpiexec")
        if "rnnfast.torch" in command or "--compare-torch" in command:
            _skip_without(["torch"])
        script.append(command)
    if not script:
        if parsed:
            return                              # cluster commands: their options parsed
        pytest.skip("only setup commands (run by CI from a fresh clone)")
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", "\n".join(script)],
                            cwd=_workdir(tmp_path), env=_environment(), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, (
        f"the block at {_page_id(page)}:{line} failed ({result.returncode}):\n"
        f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
