"""Parameter groups and the torch-layout state_dict: against torch.optim where installed,
and by hand without it."""

import numpy as np
import pytest

from rnnfast import optim

SHAPES = [(4, 3), (5,), (2, 1), (3, 3)]
NAMES = ["0.0", "0.1", "1.0", "1.1"]          # bare arrays in two groups of two


def make_arrays(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def gradient_lists(n, dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(n)]


# (rnnfast/torch class name, constructor kwargs, second group's own settings)
GROUP_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9), dict(lr=0.2, momentum=0.5, nesterov=True)),
    ("Adam", dict(lr=0.01), dict(lr=0.05, betas=(0.5, 0.9), weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True), dict(lr=0.03, maximize=True)),
    ("AdamW", dict(lr=0.01), dict(lr=0.02, weight_decay=0.3)),
    ("RMSprop", dict(lr=0.01), dict(momentum=0.5, centered=True)),
    ("Adagrad", dict(lr=0.1), dict(lr_decay=0.01, initial_accumulator_value=0.2)),
    ("NAdam", dict(lr=0.01), dict(momentum_decay=0.01, weight_decay=0.1,
                                  decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.01), dict(lr=0.02, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01), dict(betas=(0.5, 0.99), weight_decay=0.05)),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(GROUP_CASES)]


def ours_two_groups(name, kwargs, second, arrays):
    return getattr(optim, name)([{"params": arrays[:2]}, {"params": arrays[2:], **second}],
                                **kwargs)


def torch_two_groups(torch, name, kwargs, second, tensors):
    return getattr(torch.optim, name)([{"params": tensors[:2]},
                                       {"params": tensors[2:], **second}], **kwargs)


def torch_step(torch, opt, tensors, grads):
    for t, g in zip(tensors, grads, strict=True):
        t.grad = None if g is None else torch.from_numpy(g.copy())
    opt.step()


def assert_close(arrays, tensors, rtol=1e-12):
    for i, (a, t) in enumerate(zip(arrays, tensors, strict=True)):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=rtol, atol=1e-14,
                                   err_msg=f"parameter {i}")


@pytest.mark.parametrize("name, kwargs, second", GROUP_CASES, ids=IDS)
def test_groups_match_torch(name, kwargs, second):
    # 40 steps with list gradients; at step 20 both groups' lr are edited in
    # place, at step 30 a parameter gets no gradient.
    torch = pytest.importorskip("torch")
    arrays = make_arrays()
    tensors = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    ours = ours_two_groups(name, kwargs, second, arrays)
    theirs = torch_two_groups(torch, name, kwargs, second, tensors)
    for t, grads in enumerate(gradient_lists(40)):
        if t == 20:
            for g_ours, g_theirs in zip(ours.param_groups, theirs.param_groups, strict=True):
                g_ours["lr"] *= 0.5
                g_theirs["lr"] *= 0.5
        if t == 30:
            grads[1] = None
        ours.step(grads)
        torch_step(torch, theirs, tensors, grads)
    assert_close(arrays, tensors)


@pytest.mark.parametrize("name, kwargs, second", GROUP_CASES, ids=IDS)
def test_add_param_group_matches_torch(name, kwargs, second):
    # the added group's parameters count their own steps, as in torch
    torch = pytest.importorskip("torch")
    arrays = make_arrays()
    tensors = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    ours = getattr(optim, name)(arrays[:2], **kwargs)
    theirs = getattr(torch.optim, name)(tensors[:2], **kwargs)
    for t, grads in enumerate(gradient_lists(25)):
        if t == 10:
            ours.add_param_group({"params": arrays[2:], **second})
            theirs.add_param_group({"params": tensors[2:], **second})
        n = 2 if t < 10 else 4
        ours.step(grads[:n])
        torch_step(torch, theirs, tensors[:n], grads[:n])
    assert_close(arrays, tensors)


@pytest.mark.parametrize("name, kwargs, second", GROUP_CASES, ids=IDS)
def test_state_dict_moves_between_rnnfast_and_torch(name, kwargs, second):
    torch = pytest.importorskip("torch")
    grads_seq = gradient_lists(30)
    # rnnfast runs 15 steps, torch loads its state and both go on
    arrays = make_arrays()
    ours = ours_two_groups(name, kwargs, second, arrays)
    for grads in grads_seq[:15]:
        ours.step(grads)
    saved = ours.state_dict()
    tensors = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = torch_two_groups(torch, name, dict(kwargs, lr=0.5), {}, tensors)
    theirs.load_state_dict({
        "state": {i: {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                      for k, v in st.items()} for i, st in saved["state"].items()},
        "param_groups": saved["param_groups"]})
    for grads in grads_seq[15:]:
        ours.step(grads)
        torch_step(torch, theirs, tensors, grads)
    assert_close(arrays, tensors)
    # torch runs 15 steps, rnnfast loads its state (tensors and all) and both go on
    arrays = make_arrays()
    tensors = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = torch_two_groups(torch, name, kwargs, second, tensors)
    for grads in grads_seq[:15]:
        torch_step(torch, theirs, tensors, grads)
    for a, t in zip(arrays, tensors, strict=True):
        a[...] = t.detach().numpy()
    ours = ours_two_groups(name, dict(kwargs, lr=0.5), {}, arrays)
    ours.load_state_dict(theirs.state_dict())
    assert ours.steps == (0 if name == "SGD" else 15)       # SGD's state has no "step"
    for grads in grads_seq[15:]:
        ours.step(grads)
        torch_step(torch, theirs, tensors, grads)
    assert_close(arrays, tensors)


@pytest.mark.parametrize("name, kwargs, second", GROUP_CASES, ids=IDS)
def test_state_dict_resumes_bit_identically(name, kwargs, second, dtype):
    grads_seq = gradient_lists(20, dtype)
    straight = make_arrays(dtype)
    opt = ours_two_groups(name, kwargs, second, straight)
    for grads in grads_seq:
        opt.step(grads)
    arrays = make_arrays(dtype)
    first = ours_two_groups(name, kwargs, second, arrays)
    for grads in grads_seq[:8]:
        first.step(grads)
    saved, saved_arrays = first.state_dict(), [a.copy() for a in arrays]
    first.step(grads_seq[8])                  # the saved copy must not follow
    second_opt = ours_two_groups(name, dict(kwargs, lr=0.5), {}, saved_arrays)
    second_opt.load_state_dict(saved)
    for grads in grads_seq[8:]:
        second_opt.step(grads)
    for a, b in zip(saved_arrays, straight, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam"])
def test_the_earlier_layout_resumes_bit_identically(name):
    # what checkpoints hold: steps, hyperparameters, buffers by parameter name
    kwargs = dict(lr=0.01, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    rng = np.random.default_rng(0)
    start = {"Whh": rng.standard_normal((3, 3)), "by": rng.standard_normal((2, 1))}
    grads_seq = [{"d" + k: rng.standard_normal(v.shape) for k, v in start.items()}
                 for _ in range(12)]
    straight = {k: v.copy() for k, v in start.items()}
    opt = getattr(optim, name)(straight, **kwargs)
    for grads in grads_seq:
        opt.step(grads)
    params = {k: v.copy() for k, v in start.items()}
    first = getattr(optim, name)(params, **kwargs)
    for grads in grads_seq[:5]:
        first.step(grads)
    earlier = {"steps": first.steps, "hyperparameters": first.hyperparameters,
               "state": {k: {b: a.copy() for b, a in st.items()}
                         for k, st in first.state.items()}}
    resumed = getattr(optim, name)(params, lr=0.5)
    resumed.load_state_dict(earlier)
    assert resumed.steps == 5 and resumed.lr == 0.01
    for grads in grads_seq[5:]:
        resumed.step(grads)
    for k in start:
        np.testing.assert_array_equal(params[k], straight[k])


def test_names_of_bare_arrays_pairs_and_dicts():
    a, b, c, d = make_arrays()
    opt = optim.SGD([{"params": [a, b]}, {"params": {"c": c}}, {"params": [("d", d)]}], lr=1.0)
    assert list(opt.params) == ["0.0", "0.1", "c", "d"]
    assert opt.params["0.1"] is b
    before = [x.copy() for x in (a, b, c, d)]
    opt.step({"0.0": np.ones_like(a), "d0.1": np.ones_like(b), "c": np.ones_like(c),
              "dd": np.ones_like(d)})
    for x, x0 in zip((a, b, c, d), before, strict=True):
        np.testing.assert_array_equal(x, x0 - 1)
    opt2 = optim.SGD([a, b])
    opt2.add_param_group({"params": [c]})
    with pytest.raises(KeyError, match="'1.0'"):
        opt2.step({"0.0": np.ones_like(a), "0.1": np.ones_like(b)})


def test_group_values_are_checked_at_construction_add_and_step():
    arrays = make_arrays()
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['lr'\] must be non-negative"):
        optim.Adam([{"params": arrays[:2]}, {"params": arrays[2:], "lr": -1}])
    with pytest.raises(TypeError, match=r"param_groups\[0\]\['betas'\] must be a pair"):
        optim.Adam([{"params": arrays, "betas": 0.9}])
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([{"params": arrays, "nesterov": True}], momentum=0.0)
    opt = optim.Adam(arrays[:2], lr=0.1)
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['eps'\] must be"):
        opt.add_param_group({"params": arrays[2:], "eps": float("nan")})
    with pytest.raises(ValueError, match="already in a parameter group"):
        opt.add_param_group({"params": [("0.0", arrays[2])]})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": arrays[2:], "lr": 0.2})
    grads = gradient_lists(2)
    opt.step(grads[0])
    before = [a.copy() for a in arrays]
    state = {k: {b: v.copy() for b, v in st.items()} for k, st in opt.state.items()}
    for bad, match in [(-1, r"param_groups\[1\]\['lr'\] must be non-negative"),
                       (float("inf"), r"param_groups\[1\]\['lr'\] must be a finite"),
                       ("0.1", r"param_groups\[1\]\['lr'\] must be a real number")]:
        opt.param_groups[1]["lr"] = bad
        with pytest.raises((ValueError, TypeError), match=match):
            opt.step(grads[1])
    opt.param_groups[1]["lr"] = 0.2
    opt.param_groups[0]["betas"] = (0.9, 1.0)
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['betas'\]\[1\] must be in"):
        opt.step(grads[1])
    assert opt.steps == 1
    for a, a0 in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(a, a0)
    for k, st in state.items():
        for b, v in st.items():
            np.testing.assert_array_equal(opt.state[k][b], v)


def test_lr_property():
    arrays = make_arrays()
    opt = optim.SGD([{"params": arrays[:2]}, {"params": arrays[2:], "lr": 0.5}], lr=0.1)
    with pytest.raises(ValueError, match="different lr"):
        _ = opt.lr
    with pytest.raises(ValueError, match="lr must be non-negative"):
        opt.lr = -1
    with pytest.raises(TypeError, match="lr must be a real number"):
        opt.lr = "0.1"
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    opt.lr = 0.25
    assert opt.lr == 0.25 and [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(arrays, momentum=0.9, nesterov=True).momentum = 0.0


def test_a_step_of_lists_equals_the_by_hand_update():
    arrays = make_arrays()
    start = [a.copy() for a in arrays]
    opt = optim.SGD([{"params": arrays[:2], "lr": 0.1}, {"params": arrays[2:]}], lr=0.3,
                    maximize=True)
    grads = gradient_lists(1)[0]
    grads[3] = None
    opt.step(grads)
    for a, a0, g, lr in zip(arrays[:3], start[:3], grads[:3], (0.1, 0.1, 0.3), strict=True):
        np.testing.assert_allclose(a, a0 + lr * g, rtol=1e-15)
    np.testing.assert_array_equal(arrays[3], start[3])
    with pytest.raises(ValueError, match="grads has 3 gradients; the optimizer holds 4"):
        opt.step(grads[:3])


def test_torch_layout_by_hand():
    arrays = make_arrays()
    opt = optim.Adam([{"params": arrays[:2]}, {"params": arrays[2:], "lr": 0.5}], lr=0.1)
    opt.step(gradient_lists(1)[0])
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert sd["state"][2]["step"] == 1.0 and sorted(sd["state"][2]) == [
        "exp_avg", "exp_avg_sq", "step"]
    assert sd["state"][2]["exp_avg"] is not opt.state["1.0"]["exp_avg"]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1] == {
        "lr": 0.5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
        "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
        "fused": None, "decoupled_weight_decay": False, "params": [2, 3]}
    # wrong sizes are refused before anything changes
    bad = opt.state_dict()
    bad["param_groups"][1]["params"] = [2]
    with pytest.raises(ValueError, match="has 1 parameters; this optimizer's group 1 has 2"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="2 parameter groups; this optimizer has 1"):
        optim.Adam(arrays).load_state_dict(sd)
    bad = opt.state_dict()
    bad["state"][0]["momentum_buffer"] = np.zeros(SHAPES[0])
    with pytest.raises(ValueError, match="'momentum_buffer', not a buffer of Adam"):
        opt.load_state_dict(bad)
    assert opt.state_dict()["param_groups"] == sd["param_groups"]


def test_sgd_without_momentum_keeps_no_state_and_adagrad_counts_steps():
    arrays = make_arrays()
    opt = optim.SGD(arrays, lr=0.1)
    opt.step(gradient_lists(1)[0])
    assert opt.state_dict()["state"] == {}
    opt = optim.Adagrad(arrays, lr=0.1, lr_decay=0.5)
    for grads in gradient_lists(3):
        opt.step(grads)
    assert opt.state_dict()["state"][0]["step"] == 3.0


@pytest.mark.parametrize("option", ["fused", "capturable", "differentiable"])
def test_options_rnnfast_cannot_honour_are_refused(option):
    cls = optim.SGD if option != "capturable" else optim.Adam
    with pytest.raises(ValueError, match=f"^{option}=True is not supported"):
        cls(make_arrays(), **{option: True})
    cls(make_arrays(), **{option: False})
    with pytest.raises(TypeError, match=f"^{option} must be a bool"):
        cls(make_arrays(), **{option: "yes"})


def test_foreach_is_accepted_and_changes_nothing():
    a, b = make_arrays(), make_arrays()
    grads = gradient_lists(3)
    for arrays, foreach in ((a, True), (b, None)):
        opt = optim.Adam(arrays, lr=0.1, foreach=foreach)
        for g in grads:
            opt.step(g)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_hyperparameters_name_options_only_when_set():
    arrays = make_arrays()
    assert optim.AdamW(arrays).hyperparameters == {
        "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2,
        "amsgrad": False}
    assert optim.Adam(arrays, maximize=True).hyperparameters["maximize"] is True
    assert optim.AdamW(arrays).param_groups[0]["decoupled_weight_decay"] is True
