"""The ``Examples`` sections of the public docstrings run, and show what they print.

Every example of the public modules is a doctest; one test per module runs them all
(``rnnfast.torch``'s only when torch imports).  The custom operators of
``rnnfast.torch`` are ``CustomOpDef`` objects that doctest does not look into, so
their functions' docstrings are collected by hand.
"""

import doctest
import importlib

import pytest

MODULES = ["rnnfast.functional", "rnnfast.modules", "rnnfast.model", "rnnfast.optim",
           "rnnfast.optim.lr_scheduler",
           "rnnfast.distributed", "rnnfast.text", "rnnfast.training", "rnnfast.checkpoint",
           "rnnfast.reference"]

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _doctests(module):
    """Every doctest of ``module``'s own objects, the torch operators' functions included."""
    finder = doctest.DocTestFinder()
    tests = finder.find(module)
    for name, obj in vars(module).items():
        function = getattr(obj, "_init_fn", None)       # torch.library.custom_op
        if callable(function) and getattr(function, "__module__", None) == module.__name__:
            tests += finder.find(function, f"{module.__name__}.{name}", module=module,
                                 globs=vars(module))
    return [t for t in tests if t.examples]


def _run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)        # nothing an example writes lands in the worktree
    tests = _doctests(module)
    assert tests, f"{module.__name__} has no examples"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = []
    for test in sorted(tests, key=lambda t: t.name):
        test.globs = dict(test.globs)
        runner.run(test, out=report.append)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, "".join(report)
    return attempted


@pytest.mark.parametrize("name", MODULES)
def test_examples(name, tmp_path, monkeypatch):
    _run(importlib.import_module(name), tmp_path, monkeypatch)


def test_torch_examples(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    module = importlib.import_module("rnnfast.torch")
    names = {t.name.rsplit(".", 1)[-1] for t in _doctests(module)}
    assert {"rnn_layer", "lstm_layer", "convert", "RNN"} <= names
    _run(module, tmp_path, monkeypatch)
