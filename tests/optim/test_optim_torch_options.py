"""Every option of every optimizer against torch.optim (torch 2.13), 12 steps, float64;
the training convention (named_parameters, name-keyed gradients, clipping, state_dict)."""

import math

import numpy as np
import pytest

import rnnfast
from rnnfast import optim

SHAPES = {"w": (4, 3), "u": (5,), "b": (2, 1)}
STEPS = 12


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s) for k, s in SHAPES.items()}


def gradient_sequence(n=STEPS, seed=1, prefix=""):
    rng = np.random.default_rng(seed)
    return [{prefix + k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(n)]


OPTIONS = {
    "SGD": [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
            dict(lr=0.05, momentum=0.8, nesterov=True), dict(lr=0.1, weight_decay=0.2),
            dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)],
    "Adam": [dict(lr=0.1), dict(lr=0.01, weight_decay=0.1), dict(lr=0.05, amsgrad=True),
             dict(lr=0.05, betas=(0.3, 0.8), eps=1e-3, weight_decay=0.05, amsgrad=True)],
    "AdamW": [dict(lr=0.1), dict(lr=0.05, weight_decay=0.3), dict(lr=0.05, amsgrad=True),
              dict(lr=0.02, betas=(0.7, 0.95), eps=1e-4, weight_decay=0.0, amsgrad=True)],
    "RMSprop": [dict(), dict(lr=0.05, alpha=0.9), dict(lr=0.01, momentum=0.9),
                dict(lr=0.01, centered=True), dict(lr=0.01, weight_decay=0.1, eps=1e-4),
                dict(lr=0.01, alpha=0.8, momentum=0.5, centered=True, weight_decay=0.05)],
    "Adagrad": [dict(), dict(lr=0.1, lr_decay=0.05), dict(lr=0.1, weight_decay=0.2),
                dict(lr=0.1, initial_accumulator_value=0.5),
                dict(lr=0.2, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1,
                     eps=1e-6)],
}
CASES = [(name, kw) for name, kws in OPTIONS.items() for kw in kws]


def torch_run(torch, name, kwargs, grads_seq):
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in make_params().items()}
    opt = getattr(torch.optim, name)(list(tensors.values()), **kwargs)
    for grads in grads_seq:
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        opt.step()
    return {k: t.detach().numpy() for k, t in tensors.items()}


@pytest.mark.parametrize("name, kwargs", CASES, ids=lambda v: str(v))
def test_every_option_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    grads_seq = gradient_sequence()
    expected = torch_run(torch, name, kwargs, grads_seq)
    params = make_params()
    opt = getattr(optim, name)(params, **kwargs)
    for grads in grads_seq:
        opt.step(grads)
    for k in SHAPES:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("name, kwargs", CASES, ids=lambda v: str(v))
def test_state_dict_resumes_exactly(name, kwargs):
    grads_seq = gradient_sequence(seed=3, prefix="d")
    straight = make_params()
    opt = getattr(optim, name)(straight, **kwargs)
    for grads in grads_seq:
        opt.step(grads)
    # an interrupted run: 5 steps, then its state and parameters are saved
    params = make_params()
    first = getattr(optim, name)(params, **kwargs)
    for grads in grads_seq[:5]:
        first.step(grads)
    saved, saved_params = first.state_dict(), {k: v.copy() for k, v in params.items()}
    first.step(grads_seq[5])                  # moves on; the saved copy must not follow
    # resumed: a new optimizer (other hyperparameters: loading restores them)
    second = getattr(optim, name)(saved_params, lr=0.5)
    second.load_state_dict(saved)
    for grads in grads_seq[5:]:
        second.step(grads)
    for k in SHAPES:
        np.testing.assert_array_equal(saved_params[k], straight[k], err_msg=k)


def test_load_state_dict_refuses_a_mismatch_and_changes_nothing():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    opt.step(gradient_sequence(1)[0])
    other = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    other.step(gradient_sequence(1)[0])
    before = opt.state_dict()
    with pytest.raises(ValueError, match="another optimizer"):
        opt.load_state_dict(other.state_dict())
    bad = opt.state_dict()
    bad["state"][0]["exp_avg"] = np.zeros((3, 3))          # parameter 0 is "w"
    with pytest.raises(ValueError, match="exp_avg"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="state, param_groups; or steps, hyperparameters, "
                                         "state"):
        opt.load_state_dict({"state": {}})
    # the layout of earlier versions (checkpoints) is checked the same way
    earlier = {"steps": 1, "hyperparameters": opt.hyperparameters,
               "state": {k: {b: a.copy() for b, a in st.items()} for k, st in opt.state.items()}}
    earlier["state"]["w"]["exp_avg"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="exp_avg"):
        opt.load_state_dict(earlier)
    earlier_sgd = {"steps": 1, "hyperparameters": other.hyperparameters, "state": {}}
    with pytest.raises(ValueError, match="another optimizer"):
        opt.load_state_dict(earlier_sgd)
    after = opt.state_dict()
    assert opt.steps == 1 and after["param_groups"] == before["param_groups"]
    for k in before["state"]:
        assert after["state"][k]["step"] == before["state"][k]["step"] == 1.0
        for b in before["state"][k]:
            np.testing.assert_array_equal(after["state"][k][b], before["state"][k][b])


def test_nesterov_needs_momentum_and_zero_dampening():
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        optim.SGD(make_params(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        optim.SGD(make_params(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(TypeError, match="amsgrad must be a bool"):
        optim.Adam(make_params(), amsgrad=1)


def test_first_steps_by_hand_without_torch():
    p0, g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 1.0]), np.array([-1.0, 2.0])
    # SGD, nesterov, weight decay: g' = g + wd p; b1 = g1'; p1 = p0 - lr (g1' + m b1)
    p = {"p": p0.copy()}
    opt = optim.SGD(p, lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.1)
    opt.step({"p": g1})
    g1w = g1 + 0.1 * p0
    p1 = p0 - 0.1 * (g1w + 0.5 * g1w)
    np.testing.assert_allclose(p["p"], p1, rtol=1e-15)
    opt.step({"p": g2})
    g2w = g2 + 0.1 * p1
    b2 = 0.5 * g1w + g2w
    np.testing.assert_allclose(p["p"], p1 - 0.1 * (g2w + 0.5 * b2), rtol=1e-15)
    # RMSprop, centered: s = (1 - a) g^2, m = (1 - a) g, p -= lr g / (sqrt(s - m^2) + eps)
    p = {"p": p0.copy()}
    optim.RMSprop(p, lr=0.01, alpha=0.9, centered=True).step({"p": g1})
    s, m = 0.1 * g1 * g1, 0.1 * g1
    np.testing.assert_allclose(p["p"], p0 - 0.01 * g1 / (np.sqrt(s - m * m) + 1e-8),
                               rtol=1e-14)
    # AdamW: p *= 1 - lr wd first, then Adam's first step moves by lr g / (|g| + eps)
    p = {"p": p0.copy()}
    optim.AdamW(p, lr=0.1, weight_decay=0.5).step({"p": g1})
    np.testing.assert_allclose(p["p"], p0 * (1 - 0.05) - 0.1 * g1 / (np.abs(g1) + 1e-8),
                               rtol=1e-14)
    # Adam with amsgrad, second step: v_max = max(v1, v2)
    p = {"p": p0.copy()}
    opt = optim.Adam(p, lr=0.1, betas=(0.5, 0.5), amsgrad=True)
    opt.step({"p": g1})
    opt.step({"p": np.array([0.0, 0.0])})
    m2 = 0.5 * 0.5 * g1
    v_max = np.maximum(0.5 * g1 ** 2, 0.25 * g1 ** 2)
    expected_1 = p0 - 0.1 * g1 / (np.abs(g1) + 1e-8)
    np.testing.assert_allclose(
        p["p"], expected_1 - 0.1 / 0.75 * m2 / (np.sqrt(v_max) / np.sqrt(0.75) + 1e-8),
        rtol=1e-14)
    # Adagrad with lr_decay and an initial accumulator
    p = {"p": p0.copy()}
    opt = optim.Adagrad(p, lr=0.1, lr_decay=0.5, initial_accumulator_value=1.0)
    opt.step({"p": g1})
    opt.step({"p": g2})
    s1, s2 = 1 + g1 ** 2, 1 + g1 ** 2 + g2 ** 2
    p1 = p0 - 0.1 * g1 / (np.sqrt(s1) + 1e-10)
    np.testing.assert_allclose(p["p"], p1 - 0.1 / 1.5 * g2 / (np.sqrt(s2) + 1e-10),
                               rtol=1e-14)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_norm_types(norm_type):
    grads = gradient_sequence(1, seed=4)[0]
    grads["input"] = np.full((2, 2), 100.0)               # never counted nor changed
    arrays = [grads[k] for k in SHAPES]
    flat = np.concatenate([a.ravel() for a in arrays])
    expected = (np.max(np.abs(flat)) if norm_type == math.inf
                else np.sum(np.abs(flat) ** norm_type) ** (1 / norm_type))
    originals = {k: grads[k].copy() for k in SHAPES}
    total = rnnfast.clip_grad_norm(grads, 0.5, norm_type)
    assert total == pytest.approx(expected, rel=1e-12)
    for k in SHAPES:
        np.testing.assert_allclose(grads[k], originals[k] * 0.5 / (expected + 1e-6),
                                   rtol=1e-12)
    np.testing.assert_array_equal(grads["input"], 100.0)
    torch = pytest.importorskip("torch")
    ts = [torch.tensor(v, requires_grad=True) for v in originals.values()]
    for t, v in zip(ts, originals.values(), strict=True):
        t.grad = torch.tensor(v)
    theirs = torch.nn.utils.clip_grad_norm_(ts, 0.5, norm_type)
    assert total == pytest.approx(float(theirs), rel=1e-12)
    for t, k in zip(ts, SHAPES, strict=True):
        np.testing.assert_allclose(grads[k], t.grad.numpy(), rtol=1e-12)


def test_the_training_convention_follows_torchs_trajectory():
    torch = pytest.importorskip("torch")
    r = rnnfast.RNN(10, 20, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    t = torch.nn.RNN(10, 20, num_layers=2, bidirectional=True, dtype=torch.float64)
    t.load_state_dict({k: torch.tensor(v) for k, v in r.state_dict().items()})
    opt = rnnfast.optim.Adam(r.named_parameters(), lr=1e-2)
    topt = torch.optim.Adam(t.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.standard_normal((7, 3, 10))
        dout = rng.standard_normal((7, 3, 40))
        out, h_n = r(x)
        grads = r.backward(dout)
        rnnfast.clip_grad_norm(grads, 1.0)
        opt.step(grads)
        topt.zero_grad()
        tout, _ = t(torch.tensor(x))
        tout.backward(torch.tensor(dout))
        torch.nn.utils.clip_grad_norm_(t.parameters(), 1.0)
        topt.step()
    for name, p in t.named_parameters():
        np.testing.assert_allclose(getattr(r, name), p.detach().numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)
