"""Every public name has an entry in the API reference (docs/api/*.rst).

The build (``sphinx -W``, numpydoc's validation) checks the entries' docstrings; this test
checks that no public name is missing from the pages, so a new function or class cannot
ship without a reference entry.
"""

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

import rnnfast

API = Path(__file__).resolve().parents[2] / "docs" / "api"
DIRECTIVE = re.compile(r"^\.\. (currentmodule|automodule|auto(?:function|class|exception|data|"
                       r"method|attribute))::\s*(\S+)", re.M)
PUBLIC_MODULES = ["rnnfast", "rnnfast.optim", "rnnfast.optim.lr_scheduler",
                  "rnnfast.distributed", "rnnfast.reference",
                  "rnnfast.modules", "rnnfast.training", "rnnfast.text", "rnnfast.checkpoint",
                  "rnnfast.torch"]
# the torch operators are functions of rnnfast.torch documented with it, outside __all__
EXTRA = {"rnnfast.torch": ["rnn_layer", "rnn_layer_backward", "lstm_layer",
                           "lstm_layer_backward", "gru_layer", "gru_layer_backward"]}


def documented():
    """The fully qualified names the API pages document."""
    names = set()
    for page in sorted(API.glob("*.rst")):
        module = None
        for kind, target in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            if kind in ("currentmodule", "automodule"):
                module = target
                names.add(target)
            else:
                names.add(target if target.startswith("rnnfast") else f"{module}.{target}")
    return names


def _resolve(qualified):
    """The object a documented name refers to, or None when it does not import."""
    parts = qualified.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


def test_the_pages_are_read():
    names = documented()
    assert "rnnfast.rnn_forward" in names and "rnnfast.optim.Adam" in names


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_reference_entry(module_name):
    if module_name == "rnnfast.torch" and importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch")
    module = importlib.import_module(module_name)
    names = documented()
    # a name re-exported elsewhere (rnnfast.RNN is rnnfast.modules.RNN) needs one entry
    objects = {id(obj) for obj in map(_resolve, names) if obj is not None}
    public = [n for n in list(module.__all__) + EXTRA.get(module_name, [])
              if not isinstance(getattr(module, n), type(rnnfast))]      # submodules: own pages
    missing = [n for n in public if f"{module_name}.{n}" not in names
               and id(getattr(module, n)) not in objects]
    assert not missing, f"{module_name}: no entry in docs/api for {missing}"


def test_every_public_module_has_a_page():
    names = documented()
    for module_name in PUBLIC_MODULES[1:]:
        assert module_name in names, f"{module_name} has no page in docs/api"
