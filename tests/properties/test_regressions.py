"""What fuzzing the public API found, as explicit examples (tools/fuzz_api.py, now retired).

The fuzzer (commit a343301, "Fix what API fuzzing found") ran hypothesis over
every entry point against the NumPy twins; its search lives on in
tests/properties/test_properties.py.  Each finding is a test, here or (where one already
covered it) in the topical file:

* rnnfast.RNN: hx or grad_h_n not C-contiguous (Fortran order) gave wrong results
  -> test_rnn_module.py::test_hx_and_grad_h_n_in_any_memory_order
* rnnfast.RNN: writing into the returned output changed backward
  -> test_rnn_module.py::test_writing_into_output_does_not_change_backward
* rnn_forward: writing into the returned h changed rnn_backward (h was the cache)
  -> test_hostile.py::test_writing_into_h_does_not_change_the_backward_pass
* inf in dh gave NaN in dWhh (the shifted GEMM's correction, inf - inf)
  -> test_hostile.py::test_infinite_dh_gives_the_references_dwhh (seed API);
     here for rnnfast.RNN, both directions, infinite gradients and relu states
* optimizers accepted float16 and big-endian parameters
  -> test_optim.py::test_bad_arguments
* a parameter replaced by a float16 one failed halfway through an update
  -> test_optim.py::test_replaced_parameter_fails_before_any_update
* a huge integer hyperparameter (10**400) raised OverflowError
  -> test_optim.py::test_bad_arguments (lr, momentum); here every hyperparameter
* clip_grad_norm with a NaN gradient left the gradients unscaled (min(1, nan) is 1)
  -> test_optim.py::test_clip_grad_norm_with_nan_gives_nan_like_torch
* demo ran with --iterations 0 and with --lr <= 0 or NaN
  -> test_cli.py::test_demo_refuses_bad_arguments,
     test_cli.py::test_bad_options_give_one_error_line_naming_the_option
* sample_text took a NaN or infinite temperature
  -> here (test_cli.py checks the --temperature option)
* sample crashed (AttributeError) on a model whose metadata is not a dict
  -> test_model.py::test_metadata_must_be_a_dict (save); here (load and sample)
* RNNModel.load let zlib, JSON, recursion and key errors escape
  -> test_model.py::test_load_rejects_foreign_and_damaged_files and
     test_model.py::test_load_says_a_foreign_file_is_not_a_model...; here the
     rest of the fuzzer's crafted files
"""

import json
import re

import numpy as np
import pytest

import rnnfast
from rnnfast import RNNModel, optim
from rnnfast.__main__ import main
from rnnfast.text import sample_text
from tests.helpers import numpy_run

# -- inf in the gradient or in relu states: dWhh as the twin's, both directions ----


@pytest.mark.parametrize("where", ["grad_output-first", "grad_output-last", "input-first",
                                   "input-last"])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_non_finite_values_give_the_twins_weight_hh_in_both_directions(where, value):
    """dWhh pairs each step with its predecessor in one GEMM over all sequences; a
    non-finite gradient or state next to a sequence boundary must not turn into NaN
    where the twin's sums have none (the fix: inf - inf, then 0 * inf)."""
    r = rnnfast.RNN(1, 2, nonlinearity="relu", bidirectional=True, dtype=np.float64, seed=0)
    for name in ("weight_ih_l0", "weight_ih_l0_reverse", "weight_hh_l0",
                 "weight_hh_l0_reverse"):
        setattr(r, name, np.abs(getattr(r, name)))       # positive: relu passes inf on
    x = np.ones((3, 2, 1))                               # (T, N, 1)
    go = np.ones((3, 2, 4))
    step = 0 if where.endswith("first") else 2
    if where.startswith("input"):
        x[step, 0] = value
    else:
        go[step, 0] = value
    h0 = np.full((2, 2, 2), 0.5)                         # positive states throughout
    with np.errstate(all="ignore"):
        out, h_n = r(x, h0)
        grads = r.backward(go)
        weights = r.state_dict()
        _, _, expected = numpy_run(r, weights, x, h0, go, np.zeros(h_n.shape))
    for key in ("weight_hh_l0", "weight_hh_l0_reverse", "weight_ih_l0", "weight_ih_l0_reverse"):
        got, want = grads[key], expected[key]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{key}: NaN")
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=f"{key}: Inf")
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-13, err_msg=key)


# -- every hyperparameter: a huge integer is out of range, a complex is not a number --


def make_params():
    return {"Whh": np.ones((2, 2)), "by": np.zeros((2, 1))}


HYPERPARAMETERS = [
    ("SGD", "lr"), ("SGD", "momentum"),
    ("Adam", "lr"), ("Adam", "betas[0]"), ("Adam", "betas[1]"), ("Adam", "eps"),
    ("Adam", "weight_decay"),
    ("Adagrad", "lr"), ("Adagrad", "eps"),
    ("clip_grad_norm", "max_norm"), ("clip_grad_value", "clip_value"),
]


def call_with(owner, name, value):
    if owner.startswith("clip"):
        return getattr(rnnfast, owner)({"dWhh": np.ones((2, 2))}, value)
    if name.startswith("betas"):
        betas = [0.9, 0.999]
        betas[int(name[-2])] = value
        return optim.Adam(make_params(), betas=tuple(betas))
    return getattr(optim, owner)(make_params(), **{name: value})


@pytest.mark.parametrize("owner, name", HYPERPARAMETERS, ids=lambda v: str(v))
def test_a_huge_integer_hyperparameter_is_refused_by_name(owner, name):
    # float(10**400) raises OverflowError: it used to escape
    with pytest.raises(ValueError, match="^" + re.escape(name) + " must be a finite number"):
        call_with(owner, name, 10**400)


@pytest.mark.parametrize("owner, name", HYPERPARAMETERS, ids=lambda v: str(v))
def test_a_complex_hyperparameter_is_refused_by_name(owner, name):
    with pytest.raises(TypeError, match="^" + re.escape(name) + " must be a real number"):
        call_with(owner, name, 1j)


# -- sampling: temperature, and models whose metadata is not a dict -------------------


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -1.0, -1e-300])
def test_sample_text_refuses_a_temperature_that_is_not_a_non_negative_number(temperature):
    # 0 is greedy sampling (the most likely character every time), tested in test_cli.py
    model = RNNModel(3, 4, 3, seed=0)
    with pytest.raises(ValueError, match="temperature must be a non-negative number"):
        sample_text(model, list("abc"), 5, temperature)


def write_model_file(path, meta, arrays=None, saver=np.savez):
    arrays = RNNModel(3, 4, 3, seed=0).parameters if arrays is None else arrays
    saver(path, __meta__=np.array(meta if isinstance(meta, str) else json.dumps(meta)),
          **arrays)
    return path


@pytest.mark.parametrize("metadata", [[1, 2], "text", 5, None], ids=repr)
def test_a_model_whose_metadata_is_not_a_dict_is_not_a_model(tmp_path, metadata):
    path = write_model_file(tmp_path / "m.npz", {"format": "rnnfast.RNNModel/1",
                                                  "dtype": "float32", "metadata": metadata})
    with pytest.raises(ValueError, match="not a model saved by RNNModel.save"):
        RNNModel.load(path)
    with pytest.raises(SystemExit) as info:
        main(["sample", str(path)])
    message = str(info.value)
    assert message.startswith("error: ") and "\n" not in message, message


# -- loading crafted files: ValueError "not a model", never another exception --------

HEADER = {"format": "rnnfast.RNNModel/1", "dtype": "float32", "metadata": {}}


def edited(**changes):
    """The arrays of a good model file with some entries replaced (None: removed)."""
    arrays = {k: np.asarray(v) for k, v in RNNModel(3, 4, 3, seed=0).parameters.items()}
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value(arrays[name]) if callable(value) else value
    return arrays


CRAFTED = {
    "dtype None": (dict(HEADER, dtype=None), None),
    "dtype float16": (dict(HEADER, dtype="float16"), None),
    "dtype complex128": (dict(HEADER, dtype="complex128"), None),
    "dtype unknown": (dict(HEADER, dtype="no such dtype"), None),
    "dtype a list": (dict(HEADER, dtype=[1, 2]), None),
    "dtype a number": (dict(HEADER, dtype=5), None),
    "another format": ({"format": "other"}, None),
    "header a JSON list": ([1, 2, 3], None),
    "header not JSON": ("not json", None),
    "Whx 1-D": (HEADER, edited(Whx=np.ravel)),
    "Whx 3-D": (HEADER, edited(Whx=lambda a: a[None])),
    "Whx empty": (HEADER, edited(Whx=np.zeros((0, 3)))),
    "Whx 0-D": (HEADER, edited(Whx=np.float64(1.0))),
    "bh of another shape": (HEADER, edited(bh=np.zeros((5, 1)))),
    "complex Whh": (HEADER, edited(Whh=lambda a: a.astype(complex))),
    "integer Whh": (HEADER, edited(Whh=lambda a: a.astype(np.int64))),
    "boolean Wyh": (HEADER, edited(Wyh=lambda a: a > 0)),
    "string by": (HEADER, edited(by=lambda a: a.astype(str))),
    "no by": (HEADER, edited(by=None)),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_model_files_are_not_models(tmp_path, case):
    meta, arrays = CRAFTED[case]
    path = write_model_file(tmp_path / "m.npz", meta, arrays)
    with pytest.raises(ValueError, match="not a model saved by RNNModel.save"):
        RNNModel.load(path)


def test_a_header_that_is_an_array_of_numbers_is_not_a_model(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, __meta__=np.array([1.0, 2.0]), **RNNModel(3, 4, 3).parameters)
    with pytest.raises(ValueError, match="not a model saved by RNNModel.save"):
        RNNModel.load(path)


def test_a_single_saved_array_is_not_a_model(tmp_path):
    path = tmp_path / "m.npz"
    with open(path, "wb") as f:
        np.save(f, np.ones((4, 4)))
    with pytest.raises(ValueError, match="not a model saved by RNNModel.save"):
        RNNModel.load(path)


def test_extra_arrays_and_float16_arrays_load(tmp_path):
    """What the fuzzer accepted: an unknown extra array is ignored, float16 values are cast."""
    model = RNNModel(3, 4, 3, seed=0)
    arrays = edited(Whh=lambda a: a.astype(np.float16), extra=np.zeros(3))
    path = write_model_file(tmp_path / "m.npz", HEADER, arrays)
    loaded = RNNModel.load(path)
    assert loaded.dtype == np.float32 and "extra" not in loaded.parameters
    np.testing.assert_array_equal(loaded.parameters["Whh"],
                                  model.parameters["Whh"].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(loaded.parameters["Wyh"], model.parameters["Wyh"])
