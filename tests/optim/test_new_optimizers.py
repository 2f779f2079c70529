"""NAdam, RAdam, Adamax and the options maximize / decoupled_weight_decay: against torch.optim
over 200 steps where torch is installed, and against plain-NumPy twins (below) without it."""

import math

import numpy as np
import pytest

from rnnfast import optim

SHAPES = {"w": (4, 3), "u": (5,), "b": (2, 1)}
N_STEPS = 200


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def gradient_sequence(dtype=np.float64, n=N_STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
            for _ in range(n)]


CASES = [
    ("NAdam", {}),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", {}),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, eps=1e-4)),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1, decoupled_weight_decay=True,
                   maximize=True)),
    ("Adamax", {}),
    ("Adamax", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, maximize=True)),
    ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, maximize=True)),
    ("RMSprop", dict(lr=0.001, momentum=0.5, centered=True, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, maximize=True)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


def run_ours(name, kwargs, dtype):
    params = make_params(dtype)
    opt = getattr(optim, name)(params, **kwargs)
    for grads in gradient_sequence(dtype):
        opt.step(grads)
    return params


# float32 against torch's float32 run, as the twin tests measure it: the largest
# |ours - torch| over the largest move of a parameter; measured at most 1.0e-6.
FLOAT32_UPDATE_RTOL = 5e-6


@pytest.mark.parametrize("name, kwargs", CASES, ids=IDS)
def test_matches_torch(name, kwargs, dtype):
    torch = pytest.importorskip("torch")
    start = make_params(dtype)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    opt = getattr(torch.optim, name)(list(tensors.values()), **kwargs)
    for grads in gradient_sequence(dtype):
        for k, t in tensors.items():
            t.grad = torch.from_numpy(grads[k])
        opt.step()
    got = run_ours(name, kwargs, dtype)
    for k, t in tensors.items():
        expected = t.detach().numpy()
        assert got[k].dtype == dtype
        if dtype == np.float64:
            # measured: at most 3.3e-14 relative (Adam, decoupled), most 1e-15
            np.testing.assert_allclose(got[k], expected, rtol=1e-12, atol=1e-14, err_msg=k)
        else:
            moved = float(np.max(np.abs(expected - start[k])))
            err = float(np.max(np.abs(got[k] - expected)))
            assert err <= FLOAT32_UPDATE_RTOL * moved, f"{k}: error {err:.2e}, moved {moved:.2e}"


# -- plain-NumPy twins, float64, from the algorithms as torch documents them ------------

def _f32_product(a, b):
    return float(np.float32(a) * np.float32(b))


def _decayed(p, g, lr, weight_decay, decoupled_weight_decay, maximize):
    """``(p, g)``: ``g`` negated with maximize; the weight decay shrinks a new ``p``
    (decoupled) or adds ``weight_decay p`` to ``g``."""
    g = -g if maximize else g
    if decoupled_weight_decay:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    return p, g


def _average_moments(st, g, b1, b2):
    """Adam's averages ``st["m"]`` of ``g`` and ``st["v"]`` of ``g^2`` (from 0)."""
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    st["v"] = b2 * st.get("v", 0) + (1 - b2) * g * g


def nadam_twin(p, g, st, t, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
               momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
    b1, b2 = betas
    p, g = _decayed(p, g, lr, weight_decay, decoupled_weight_decay, maximize)
    mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    st["mu_product"] = _f32_product(st.get("mu_product", 1.0), mu)   # float32, as torch
    _average_moments(st, g, b1, b2)
    denom = np.sqrt(st["v"] / (1 - b2 ** t)) + eps
    return (p - lr * (1 - mu) / (1 - st["mu_product"]) * g / denom
            - lr * mu_next / (1 - st["mu_product"] * mu_next) * st["m"] / denom)


def radam_twin(p, g, st, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
               decoupled_weight_decay=False, maximize=False):
    b1, b2 = betas
    p, g = _decayed(p, g, lr, weight_decay, decoupled_weight_decay, maximize)
    _average_moments(st, g, b1, b2)
    m_hat = st["m"] / (1 - b1 ** t)
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
    if rho <= 5:
        return p - lr * m_hat
    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    return p - lr * m_hat * r * math.sqrt(1 - b2 ** t) / (np.sqrt(st["v"]) + eps)


def adamax_twin(p, g, st, t, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                maximize=False):
    b1, b2 = betas
    g = (-g if maximize else g) + weight_decay * p
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    st["u"] = np.maximum(b2 * st.get("u", 0), np.abs(g) + eps)
    return p - lr / (1 - b1 ** t) * st["m"] / st["u"]


def adam_twin(p, g, st, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              decoupled_weight_decay=False, maximize=False, amsgrad=False):
    b1, b2 = betas
    p, g = _decayed(p, g, lr, weight_decay, decoupled_weight_decay, maximize)
    _average_moments(st, g, b1, b2)
    v = st["v"]
    if amsgrad:
        v = st["v_max"] = np.maximum(st.get("v_max", 0), v)
    return p - lr / (1 - b1 ** t) * st["m"] / (np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)


def sgd_ascent_twin(p, g, st, t, lr, momentum, nesterov, maximize):
    g = -g if maximize else g
    st["buf"] = g if t == 1 else momentum * st["buf"] + g
    return p - lr * (g + momentum * st["buf"] if nesterov else st["buf"])


TWIN_CASES = [
    ("NAdam", nadam_twin, dict(lr=0.05)),
    ("NAdam", nadam_twin, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1,
                               momentum_decay=0.01)),
    ("NAdam", nadam_twin, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True,
                               maximize=True)),
    ("RAdam", radam_twin, dict(lr=0.05)),
    ("RAdam", radam_twin, dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1,
                               decoupled_weight_decay=True, maximize=True)),
    ("Adamax", adamax_twin, dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1,
                                 maximize=True)),
    ("Adam", adam_twin, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True,
                             maximize=True)),
    ("Adam", adam_twin, dict(lr=0.01, amsgrad=True, maximize=True, weight_decay=0.1)),
    ("SGD", sgd_ascent_twin,
     dict(lr=0.01, momentum=0.9, nesterov=True, maximize=True)),
]
TWIN_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(TWIN_CASES)]

# Largest |ours - twin| / max|twin - start| over 60 steps (learning rates large
# enough that the moves stand out of float32's rounding of the parameters):
# measured float64 3.1e-15 (other order of operations), float32 1.9e-5 (Adam,
# decoupled decay: float32 arithmetic and rounding of the parameters).
UPDATE_RTOL = {np.dtype(np.float64): 1e-14, np.dtype(np.float32): 5e-5}


@pytest.mark.parametrize("name, twin, kwargs", TWIN_CASES, ids=TWIN_IDS)
def test_matches_the_twin(name, twin, kwargs, dtype):
    params = make_params(dtype)
    start = {k: v.astype(np.float64) for k, v in params.items()}
    opt = getattr(optim, name)(params, **kwargs)
    expected, states = dict(start), {k: {} for k in start}
    for t, grads in enumerate(gradient_sequence(dtype, n=60), 1):
        opt.step(grads)
        expected = {k: twin(expected[k], grads[k].astype(np.float64), states[k], t, **kwargs)
                    for k in expected}
    for k in expected:
        assert params[k].dtype == dtype
        moved = float(np.max(np.abs(expected[k] - start[k])))
        err = float(np.max(np.abs(params[k] - expected[k])))
        assert err <= UPDATE_RTOL[dtype] * moved, f"{k}: error {err:.2e}, moved {moved:.2e}"


def test_nadam_keeps_mu_product_in_float32_and_in_its_state():
    params = {"w": np.zeros(3)}
    opt = optim.NAdam(params)
    for _ in range(5):
        opt.step({"w": np.ones(3)})
    mu = [0.9 * (1 - 0.5 * 0.96 ** (t * 4e-3)) for t in range(1, 6)]
    product = 1.0
    for m in mu:
        product = float(np.float32(product) * np.float32(m))
    saved = opt.state_dict()["state"][0]
    assert saved["mu_product"] == product != math.prod(mu)
    assert saved["step"] == 5.0
    # the earlier layout has no mu_product: it is replayed from the step count
    again = optim.NAdam({"w": params["w"].copy()})
    again.load_state_dict({"steps": 5, "hyperparameters": opt.hyperparameters,
                           "state": {"w": {k: v.copy() for k, v in opt.state["w"].items()}}})
    assert again.state_dict()["state"][0]["mu_product"] == product


def test_radam_first_steps_are_plain_momentum():
    # rho_t <= 5 for the first steps at beta2 = 0.999: p -= lr m / (1 - beta1^t)
    params = {"w": np.array([1.0, -1.0])}
    opt = optim.RAdam(params, lr=0.1)
    opt.step({"w": np.array([2.0, 4.0])})
    np.testing.assert_allclose(params["w"], [1.0 - 0.1 * 2.0, -1.0 - 0.1 * 4.0], rtol=1e-15)


def test_adamax_first_step_by_hand():
    params = {"w": np.array([1.0, -1.0])}
    optim.Adamax(params, lr=0.1).step({"w": np.array([2.0, -0.5])})
    # m = 0.1 g, u = |g| + eps, clr = 0.1 / 0.1: p -= 0.1 g / (|g| + eps)
    np.testing.assert_allclose(params["w"], [1.0 - 0.1 * 2.0 / (2.0 + 1e-8),
                                             -1.0 + 0.1 * 0.5 / (0.5 + 1e-8)], rtol=1e-15)


@pytest.mark.parametrize("name, defaults", [
    ("NAdam", dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                   momentum_decay=4e-3, decoupled_weight_decay=False)),
    ("RAdam", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                   decoupled_weight_decay=False)),
    ("Adamax", dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
])
def test_defaults_are_torchs(name, defaults):
    group = getattr(optim, name)(make_params()).param_groups[0]
    for k, v in defaults.items():
        assert group[k] == v, k
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)]).param_groups[0]
    assert {k for k in theirs if k != "params"} == {k for k in group if k != "params"}
    for k in theirs:
        if k != "params":
            assert theirs[k] == group[k], k


@pytest.mark.parametrize("make, pattern", [
    (lambda p: optim.NAdam(p, momentum_decay=-1), "momentum_decay must be non-negative"),
    (lambda p: optim.RAdam(p, betas=(0.9, 1.0)), r"betas\[1\] must be in"),
    (lambda p: optim.Adamax(p, eps=float("nan")), "eps must be a finite number"),
    (lambda p: optim.NAdam(p, decoupled_weight_decay=1), "decoupled_weight_decay must be a bool"),
    (lambda p: optim.Adam(p, maximize="no"), "maximize must be a bool"),
])
def test_bad_arguments(make, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        make(make_params())
