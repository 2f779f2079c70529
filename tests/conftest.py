"""Fixtures and the hypothesis profiles; the helpers themselves are in tests/helpers."""

import os

import numpy as np
import pytest

pytest.register_assert_rewrite("tests.helpers")

from tests.helpers import DTYPES, TEXT  # noqa: E402

try:
    from hypothesis import HealthCheck, settings
except ImportError:          # hypothesis is in the [test] extra; its tests skip without it
    settings = None
else:
    # default: every run of the suite, derandomized (the same examples each run,
    # so the README's command and CI pass or fail reproducibly); long: a
    # thorough random pass (a few minutes); fuzz: a long random fuzzing run of
    # tests/properties/ (an hour or more).
    # Select with --hypothesis-profile=NAME or RNNFAST_HYPOTHESIS_PROFILE=NAME.
    for _name, _examples in (("default", 200), ("long", 3000), ("fuzz", 50_000)):
        settings.register_profile(_name, max_examples=_examples, deadline=None,
                                  derandomize=_name == "default",
                                  suppress_health_check=[HealthCheck.too_slow,
                                                         HealthCheck.data_too_large])
    settings.load_profile(os.environ.get("RNNFAST_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(params=["auto", "own", "blas", "packed", "team"])
def products(request):
    """Run a test with the recurrent products chosen by size, or forced to one path
    ("packed": LIBXSMM's kernels on every shape, skipped when not built in; "team": the
    Elman and LSTM time loops on the thread team, each member's panels by the plan)."""
    from rnnfast import _kernels
    if request.param == "packed" and not _kernels.LIBXSMM:
        pytest.skip("rnnfast is built without LIBXSMM")
    _kernels._set_force_products({"auto": None, "own": True, "blas": False,
                                  "packed": False, "team": False}[request.param])
    _kernels._set_force_packed({"auto": None, "own": None, "blas": False,
                                "packed": True, "team": None}[request.param])
    _kernels._set_force_team(True if request.param == "team" else None)
    yield request.param
    _kernels._set_force_products(None)
    _kernels._set_force_packed(None)
    _kernels._set_force_team(None)


@pytest.fixture
def text_file(tmp_path):
    """A file holding the CLI tests' TEXT; its path as a str."""
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)
