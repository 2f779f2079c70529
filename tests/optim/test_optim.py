"""Optimizers and clipping against torch.optim / torch.nn.utils (float64, several steps)."""

import numpy as np
import pytest

import rnnfast
from rnnfast import optim
from rnnfast import reference as ref

SHAPES = {"Whx": (4, 3), "Whh": (4, 4), "Wyh": (2, 4), "bh": (4, 1), "by": (2, 1)}


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s) for k, s in SHAPES.items()}


def gradient_sequence(n_steps, seed=1):
    rng = np.random.default_rng(seed)
    return [{"d" + k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(n_steps)]


def run_ours(make_optimizer, grads_seq):
    params = make_params()
    opt = make_optimizer(params)
    for grads in grads_seq:
        opt.step(grads)
    return params


def run_torch(torch, make_optimizer, grads_seq):
    tensors = {k: torch.tensor(v) for k, v in make_params().items()}
    for t in tensors.values():
        t.requires_grad_(True)
    opt = make_optimizer(list(tensors.values()))
    for grads in grads_seq:
        for k, t in tensors.items():
            t.grad = torch.tensor(grads["d" + k])
        opt.step()
    return {k: t.detach().numpy() for k, t in tensors.items()}


CASES = {
    "sgd": (lambda p: optim.SGD(p, lr=0.1), lambda T, p: T.optim.SGD(p, lr=0.1)),
    "sgd-momentum": (lambda p: optim.SGD(p, lr=0.05, momentum=0.9),
                     lambda T, p: T.optim.SGD(p, lr=0.05, momentum=0.9)),
    "adam": (lambda p: optim.Adam(p, lr=0.1), lambda T, p: T.optim.Adam(p, lr=0.1)),
    "adam-wd": (lambda p: optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                lambda T, p: T.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6,
                                          weight_decay=0.1)),
    "adam-beta1-small": (lambda p: optim.Adam(p, lr=0.01, betas=(0.3, 0.9)),
                         lambda T, p: T.optim.Adam(p, lr=0.01, betas=(0.3, 0.9))),
    "adagrad": (lambda p: optim.Adagrad(p, lr=0.1, eps=1e-8),
                lambda T, p: T.optim.Adagrad(p, lr=0.1, eps=1e-8)),
    # every default as torch's
    "sgd-defaults": (lambda p: optim.SGD(p), lambda T, p: T.optim.SGD(p)),
    "adam-defaults": (lambda p: optim.Adam(p), lambda T, p: T.optim.Adam(p)),
    "adagrad-defaults": (lambda p: optim.Adagrad(p), lambda T, p: T.optim.Adagrad(p)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch(case):
    torch = pytest.importorskip("torch")
    ours, theirs = CASES[case]
    grads_seq = gradient_sequence(7)
    expected = run_torch(torch, lambda p: theirs(torch, p), grads_seq)
    got = run_ours(ours, grads_seq)
    for k in SHAPES:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_sgd_by_hand():
    params = make_params()
    start = {k: v.copy() for k, v in params.items()}
    g1, g2 = gradient_sequence(2)
    opt = optim.SGD(params, lr=0.5, momentum=0.5)
    opt.step(g1)
    opt.step(g2)
    for k in SHAPES:
        buf = 0.5 * g1["d" + k] + g2["d" + k]
        np.testing.assert_allclose(params[k], start[k] - 0.5 * g1["d" + k] - 0.5 * buf)


def test_float32_parameters_stay_float32_and_in_place():
    params = {k: v.astype(np.float32) for k, v in make_params().items()}
    arrays = dict(params)
    for make in (lambda p: optim.Adam(p, lr=0.1), lambda p: optim.SGD(p, 0.1, momentum=0.9),
                 lambda p: optim.Adagrad(p, 0.1)):
        opt = make(params)
        opt.step(gradient_sequence(1)[0])
        for k in params:
            assert params[k] is arrays[k] and params[k].dtype == np.float32


def test_failed_step_changes_nothing():
    params = make_params()
    before = {k: v.copy() for k, v in params.items()}
    opt = optim.Adam(params, lr=0.1)
    opt.step(gradient_sequence(1)[0])
    state_before = {k: {s: a.copy() for s, a in st.items()} for k, st in opt.state.items()}
    after_one = {k: v.copy() for k, v in params.items()}
    bad = gradient_sequence(1)[0]
    bad["dby"] = np.zeros((3, 1))
    with pytest.raises(ValueError, match="dby"):
        opt.step(bad)
    del bad["dby"]
    with pytest.raises(KeyError, match="dby"):
        opt.step(bad)
    assert opt.steps == 1
    for k in params:
        np.testing.assert_array_equal(params[k], after_one[k])
        for s in state_before[k]:
            np.testing.assert_array_equal(opt.state[k][s], state_before[k][s])
    assert not all(np.array_equal(before[k], after_one[k]) for k in params)


@pytest.mark.parametrize("make, pattern", [
    (lambda: optim.SGD([], 0.1), "non-empty dict"),
    (lambda: optim.SGD({"a": np.zeros(3, int)}, 0.1), "float32 or float64"),
    (lambda: optim.Adam({"a": np.zeros(3, np.float16)}), "float32 or float64"),
    (lambda: optim.Adam({"a": np.zeros(3, ">f8")}), "native byte order"),
    (lambda: optim.SGD(make_params(), 10**400), "lr must be a finite number"),
    (lambda: optim.SGD(make_params(), 0.1, momentum=10**400), "momentum"),
    (lambda: optim.SGD({"a": np.zeros((3, 4))[:, ::2]}, 0.1), "C-contiguous"),
    (lambda: optim.SGD(make_params(), -1.0), "lr must be"),
    (lambda: optim.Adam(make_params(), betas=(1.0, 0.9)), r"betas\[0\]"),
    (lambda: optim.Adagrad(make_params(), 0.1, eps=-1), "eps must be"),
])
def test_bad_arguments(make, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        make()


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    grads = gradient_sequence(1)[0]
    grads["dx"] = np.ones((3, 2, 2))
    tensors = [torch.tensor(grads["d" + k], requires_grad=False) for k in SHAPES]
    params = []
    for t in tensors:
        p = torch.zeros_like(t, requires_grad=True)
        p.grad = t.clone()
        params.append(p)
    total_t = torch.nn.utils.clip_grad_norm_(params, 1.5)
    total = rnnfast.clip_grad_norm(grads, 1.5)
    assert abs(total - total_t.item()) < 1e-12
    for k, p in zip(SHAPES, params, strict=True):
        np.testing.assert_allclose(grads["d" + k], p.grad.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(grads["dx"], 1.0)       # not a parameter gradient


def test_replaced_parameter_fails_before_any_update():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    params["by"] = params["by"].astype(np.float16)
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(TypeError, match="'by'"):
        opt.step(gradient_sequence(1)[0])
    assert opt.steps == 0 and all(not st for st in opt.state.values())
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_clip_grad_norm_with_nan_gives_nan_like_torch():
    grads = {"dWhh": np.array([[np.nan, 1.0]]), "dbh": np.array([[2.0]])}
    assert np.isnan(rnnfast.clip_grad_norm(grads, 1.0))
    assert np.all(np.isnan(grads["dbh"]))


def test_clip_grad_norm_leaves_small_gradients_alone():
    grads = {"dWhh": np.full((2, 2), 0.1)}
    assert rnnfast.clip_grad_norm(grads, 10.0) == pytest.approx(0.2)
    np.testing.assert_array_equal(grads["dWhh"], 0.1)


def test_clip_grad_value():
    grads = {"dWhh": np.array([[-3.0, 0.5], [2.0, -0.2]]), "dh0": np.array([9.0])}
    rnnfast.clip_grad_value(grads, 1.0)
    np.testing.assert_array_equal(grads["dWhh"], [[-1.0, 0.5], [1.0, -0.2]])
    np.testing.assert_array_equal(grads["dh0"], [9.0])
    with pytest.raises(ValueError, match="none of"):
        rnnfast.clip_grad_value({"dx": np.zeros(2)}, 1.0)


def test_defaults_are_torchs():
    # torch 2.13's defaults (checked against torch itself by the *-defaults cases above)
    p = make_params()
    assert optim.SGD(p).lr == 1e-3 and optim.SGD(p).momentum == 0
    adam = optim.Adam(p)
    assert (adam.lr, adam.betas, adam.eps, adam.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 0)
    adagrad = optim.Adagrad(p)
    assert (adagrad.lr, adagrad.eps) == (1e-2, 1e-10)


def test_adagrad_default_eps_on_small_gradients():
    # with eps = 1e-10 a first step of g = 1e-9 moves p by lr * g / (|g| + eps) = 0.909 lr
    params = {"w": np.zeros(1)}
    optim.Adagrad(params, lr=1.0).step({"dw": np.array([1e-9])})
    np.testing.assert_allclose(params["w"], [-1e-9 / (1e-9 + 1e-10)], rtol=1e-15)


@pytest.mark.parametrize("make", [
    lambda p: optim.Adam(p, lr=0.1),
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: optim.Adagrad(p, lr=0.1),
], ids=["adam", "sgd-momentum", "adagrad"])
@pytest.mark.parametrize("replacement", [
    np.ones(100_000), np.ones(1), np.ones((1, 4)), np.ones((4, 4), np.float32),
], ids=["larger", "smaller", "other-shape", "other-dtype"])
def test_parameter_replaced_after_state_exists_is_refused(make, replacement):
    # Replacing a parameter by an array of another size used to crash the
    # compiled Adam step (out-of-bounds writes); every optimizer refuses it
    # before anything changes.
    params = make_params()
    opt = make(params)
    opt.step(gradient_sequence(1)[0])
    params["Whh"] = replacement
    before = {k: v.copy() for k, v in params.items()}
    state_before = {k: {s: a.copy() for s, a in st.items()} for k, st in opt.state.items()}
    grads = gradient_sequence(1)[0]
    grads["dWhh"] = np.ones_like(replacement)
    with pytest.raises(ValueError, match="parameter 'Whh' is now .* needs a new optimizer"):
        opt.step(grads)
    assert opt.steps == 1
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
        for name, a in state_before[k].items():
            np.testing.assert_array_equal(opt.state[k][name], a)


def test_parameter_added_after_construction_gets_its_own_state():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    opt.step(gradient_sequence(1)[0])
    params["extra"] = np.zeros(3)
    grads = gradient_sequence(1)[0]
    grads["dextra"] = np.ones(3)
    opt.step(grads)
    assert opt.state["extra"]["exp_avg"].shape == (3,) and np.all(params["extra"] < 0)


def test_compiled_adam_step_checks_lengths():
    from rnnfast import _updates
    p, g = np.zeros(4), np.zeros(4)
    with pytest.raises(ValueError, match="one length"):
        _updates.adam(p, g, np.zeros(3), np.zeros(4), 0.1, 0.9, 0.999, 1e-8, 0.0, 1)
    with pytest.raises(ValueError, match="one length"):
        _updates.adam(p, np.zeros(100_000), np.zeros(4), np.zeros(4), 0.1, 0.9, 0.999,
                      1e-8, 0.0, 1)


@pytest.mark.parametrize("call, name", [
    (lambda p: optim.SGD(p, lr="0.1"), "lr"),
    (lambda p: optim.SGD(p, lr=True), "lr"),
    (lambda p: optim.SGD(p, lr=np.True_), "lr"),
    (lambda p: optim.SGD(p, lr=None), "lr"),
    (lambda p: optim.SGD(p, lr=0.1, momentum="0.9"), "momentum"),
    (lambda p: optim.Adam(p, betas=0.9), "betas"),
    (lambda p: optim.Adam(p, betas=(0.9,)), "betas"),
    (lambda p: optim.Adam(p, betas=("0.9", 0.999)), r"betas\[0\]"),
    (lambda p: optim.Adam(p, eps=False), "eps"),
    (lambda p: optim.Adam(p, weight_decay="0"), "weight_decay"),
    (lambda p: optim.Adagrad(p, lr=[0.1]), "lr"),
    (lambda p: rnnfast.clip_grad_value({"dWhh": np.ones((2, 2))}, "1.0"), "clip_value"),
    (lambda p: rnnfast.clip_grad_norm({"dWhh": np.ones((2, 2))}, True), "max_norm"),
    (lambda p: rnnfast.clip_grad_norm({"dWhh": np.ones((2, 2))}, None), "max_norm"),
])
def test_hyperparameters_must_be_real_numbers(call, name):
    with pytest.raises(TypeError, match=f"^{name} must be a real number|^{name} must be a pair"):
        call(make_params())


@pytest.mark.parametrize("call, message", [
    (lambda p: optim.SGD(p, lr=float("nan")), "lr must be a finite number"),
    (lambda p: optim.SGD(p, lr=-0.1), "lr must be non-negative"),
    (lambda p: optim.Adam(p, betas=(0.9, 1)), r"betas\[1\] must be in \[0, 1\)"),
    (lambda p: rnnfast.clip_grad_value({"dWhh": np.ones((2, 2))}, -1), "clip_value must be"),
])
def test_hyperparameters_out_of_range(call, message):
    with pytest.raises(ValueError, match=message):
        call(make_params())


def test_numpy_numbers_are_accepted():
    opt = optim.Adam(make_params(), lr=np.float32(0.1), betas=[np.float64(0.9), 0.99],
                     eps=np.int64(0))
    assert opt.lr == pytest.approx(0.1) and opt.betas == (0.9, 0.99) and opt.eps == 0.0


# -- against the NumPy twins of the update rules (no torch) --------------------

TWIN_CASES = {
    "sgd": (lambda p: optim.SGD(p, lr=0.1), lambda p, g, s, t: ref.sgd_step(p, g, s, 0.1)),
    "sgd-momentum": (lambda p: optim.SGD(p, lr=0.05, momentum=0.9),
                     lambda p, g, s, t: ref.sgd_step(p, g, s, 0.05, momentum=0.9)),
    "adam": (lambda p: optim.Adam(p, lr=0.1),
             lambda p, g, s, t: ref.adam_step(p, g, s, t, 0.1)),
    "adam-wd": (lambda p: optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                lambda p, g, s, t: ref.adam_step(p, g, s, t, 0.01, (0.8, 0.99), 1e-6, 0.1)),
    "adam-beta1-small": (lambda p: optim.Adam(p, lr=0.01, betas=(0.3, 0.9)),
                         lambda p, g, s, t: ref.adam_step(p, g, s, t, 0.01, (0.3, 0.9))),
    "adagrad": (lambda p: optim.Adagrad(p, lr=0.1),
                lambda p, g, s, t: ref.adagrad_step(p, g, s, 0.1)),
}

# Largest |ours - twin| / max|twin - start| over 7 steps (the size of the
# updates, so that a wrong update rule stands out against the parameters):
# measured float64 1.0e-15 (the twin sums in another order), float32 5.3e-6
# (float32 arithmetic and the rounding of float32 parameters).
UPDATE_RTOL = {np.dtype(np.float64): 1e-14, np.dtype(np.float32): 2e-5}


@pytest.mark.parametrize("case", list(TWIN_CASES))
def test_matches_the_twin(case, dtype):
    ours, twin = TWIN_CASES[case]
    grads_seq = gradient_sequence(7)
    params = {k: v.astype(dtype) for k, v in make_params().items()}
    start = {k: v.astype(np.float64) for k, v in params.items()}
    opt = ours(params)
    expected, states = dict(start), {k: {} for k in start}
    for t, grads in enumerate(grads_seq, 1):
        opt.step({k: g.astype(dtype) for k, g in grads.items()})
        expected = {k: twin(expected[k], grads["d" + k].astype(dtype).astype(np.float64),
                            states[k], t) for k in expected}
    for k in expected:
        assert params[k].dtype == dtype
        moved = float(np.max(np.abs(expected[k] - start[k])))
        err = float(np.max(np.abs(params[k] - expected[k])))
        assert err <= UPDATE_RTOL[dtype] * moved, f"{k}: error {err:.2e}, moved {moved:.2e}"


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_the_twin(max_norm, dtype):
    grads = {k: v.astype(dtype) for k, v in gradient_sequence(1)[0].items()}
    grads["dx"] = np.ones((3, 2), dtype)
    expected, norm = ref.clip_grad_norm(
        {k: v.astype(np.float64) for k, v in grads.items() if k != "dx"}, max_norm)
    total = rnnfast.clip_grad_norm(grads, max_norm)
    assert abs(total - norm) <= (1e-12 if dtype == np.float64 else 1e-6) * norm
    for k, v in expected.items():
        np.testing.assert_allclose(grads[k], v, rtol=1e-12 if dtype == np.float64 else 1e-6)
    np.testing.assert_array_equal(grads["dx"], 1)


def test_clip_grad_value_clamps_exactly():
    grads = gradient_sequence(1)[0]
    expected = {k: np.minimum(np.maximum(v, -0.7), 0.7) for k, v in grads.items()}
    rnnfast.clip_grad_value(grads, 0.7)
    for k in expected:
        np.testing.assert_array_equal(grads[k], expected[k])


def test_adam_zero_over_zero_is_nan_in_every_build():
    # v = 0 and eps = 0 make the step 0 / 0: IEEE NaN as in torch, never a
    # ZeroDivisionError (which a build with Python division semantics raised).
    params = {"w": np.zeros(2, np.float32)}
    optim.Adam(params, lr=0.1, eps=0).step({"dw": np.array([0.0, 1.0], np.float32)})
    assert np.isnan(params["w"][0]) and params["w"][1] == pytest.approx(-0.1)
