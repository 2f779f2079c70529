"""rnnfast.optim.lr_scheduler: the learning rates of torch.optim.lr_scheduler over 100 steps
(several groups) where torch is installed; closed forms and resumption without it."""

import math
import warnings

import numpy as np
import pytest

import rnnfast.optim.lr_scheduler
from rnnfast import optim
from rnnfast.optim import lr_scheduler as sched

N_STEPS = 100
SHAPES = [(3, 2), (4,), (2, 2)]


def make_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES]


def gradient_lists(n=N_STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(n)]


def groups(arrays):
    return [{"params": arrays[:1]}, {"params": arrays[1:2], "lr": 0.05},
            {"params": arrays[2:], "lr": 0.2}]


OPTIMIZERS = {
    "sgd": ("SGD", dict(lr=0.1, momentum=0.9)),
    "adam": ("Adam", dict(lr=0.1)),
}

# name -> (optimizer, a function (module, optimizer) -> scheduler)
SCHEDULES = {
    "lambda": ("sgd", lambda m, o: m.LambdaLR(o, lambda e: 0.95 ** e)),
    "lambda-per-group": ("adam", lambda m, o: m.LambdaLR(
        o, [lambda e: 0.9 ** e, lambda e: 1 / (1 + e), lambda e: 1.0 + math.sin(e)])),
    "step": ("sgd", lambda m, o: m.StepLR(o, step_size=7, gamma=0.5)),
    "multistep": ("adam", lambda m, o: m.MultiStepLR(o, [10, 30, 30, 70], gamma=0.3)),
    "exponential": ("sgd", lambda m, o: m.ExponentialLR(o, 0.97)),
    "cosine": ("adam", lambda m, o: m.CosineAnnealingLR(o, T_max=30, eta_min=1e-3)),
    "linear": ("sgd", lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=0.9,
                                              total_iters=20)),
    "onecycle-sgd": ("sgd", lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.2, 0.3],
                                                      total_steps=N_STEPS)),
    "onecycle-adam": ("adam", lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=N_STEPS,
                                                        pct_start=0.25)),
    "onecycle-no-momentum": ("sgd", lambda m, o: m.OneCycleLR(
        o, max_lr=0.3, epochs=10, steps_per_epoch=10, cycle_momentum=False)),
    "onecycle-adam-no-momentum": ("adam", lambda m, o: m.OneCycleLR(
        o, max_lr=0.1, total_steps=N_STEPS, cycle_momentum=False)),
    "onecycle-linear-three-phase": ("adam", lambda m, o: m.OneCycleLR(
        o, max_lr=[0.1, 0.2, 0.05], total_steps=120, anneal_strategy="linear",
        three_phase=True, base_momentum=0.8, max_momentum=[0.9, 0.95, 0.99],
        div_factor=10.0, final_div_factor=100.0)),
    "sequential": ("sgd", lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=10), m.CosineAnnealingLR(o, T_max=50)],
        milestones=[10])),
    "sequential-3": ("adam", lambda m, o: m.SequentialLR(
        o, [m.ExponentialLR(o, 0.9), m.StepLR(o, 5, 0.5), m.LambdaLR(o, lambda e: 1 / (1 + e))],
        milestones=[20, 50])),
}


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def run(module, opt, make, grads_seq, step):
    scheduler = make(module, opt)
    lrs, moms = [scheduler.get_last_lr()], [momenta(opt)]
    for grads in grads_seq:
        step(grads)
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
        moms.append(momenta(opt))
    return lrs, moms


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_rates_match_torch(name):
    torch = pytest.importorskip("torch")
    kind, make = SCHEDULES[name]
    cls, kwargs = OPTIMIZERS[kind]
    grads_seq = gradient_lists()
    arrays = make_arrays()
    ours = getattr(optim, cls)(groups(arrays), **kwargs)
    got = run(sched, ours, make, grads_seq, ours.step)
    tensors = [torch.tensor(a, requires_grad=True) for a in make_arrays()]
    theirs = getattr(torch.optim, cls)(groups(tensors), **kwargs)

    def torch_step(grads):
        for t, g in zip(tensors, grads, strict=True):
            t.grad = torch.from_numpy(g)
        theirs.step()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = run(torch.optim.lr_scheduler, theirs, make, grads_seq, torch_step)
    assert got[0] == expected[0]          # the same rates, to the last bit
    assert got[1] == expected[1]          # the same momenta
    for a, t in zip(arrays, tensors, strict=True):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert {k: v for k, v in ours.param_groups[1].items() if k != "params"} == \
        {k: v for k, v in theirs.param_groups[1].items() if k != "params"}


PLATEAU_CASES = [dict(), dict(mode="max", factor=0.5, patience=2, threshold=0.1),
                 dict(patience=1, threshold_mode="abs", threshold=0.05, cooldown=3,
                      min_lr=[0.01, 0.0, 0.05]),
                 dict(mode="max", threshold_mode="abs", patience=0, eps=0.01, min_lr=0.02)]


def plateau_metrics(n=N_STEPS):
    rng = np.random.default_rng(5)
    return [float(1 / (1 + t / 10) + 0.05 * rng.standard_normal()) for t in range(n)]


@pytest.mark.parametrize("kwargs", PLATEAU_CASES, ids=str)
def test_reduce_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    ours = optim.SGD(groups(make_arrays()), lr=0.1)
    theirs = torch.optim.SGD(groups([torch.tensor(a) for a in make_arrays()]), lr=0.1)
    a, b = sched.ReduceLROnPlateau(ours, **kwargs), \
        torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kwargs)
    for metric in plateau_metrics():
        a.step(metric)
        b.step(metric)
        assert a.get_last_lr() == b.get_last_lr()
        assert (a.best, a.num_bad_epochs, a.cooldown_counter) == \
            (b.best, b.num_bad_epochs, b.cooldown_counter)
    assert a.get_last_lr() != [0.1, 0.05, 0.2]     # it did reduce


def test_torch_schedulers_refuse_an_rnnfast_optimizer():
    # torch 2.13 checks isinstance(optimizer, torch.optim.Optimizer): these
    # classes are the way to schedule an rnnfast optimizer
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="is not an Optimizer"):
        torch.optim.lr_scheduler.StepLR(optim.SGD(make_arrays(), lr=0.1), 2)


# -- without torch -------------------------------------------------------------------------

def test_both_imports_are_the_module():
    assert rnnfast.optim.lr_scheduler is sched is optim.lr_scheduler


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_state_dict_resumes_exactly(name):
    kind, make = SCHEDULES[name]
    cls, kwargs = OPTIMIZERS[kind]
    grads_seq = gradient_lists()
    straight_arrays = make_arrays()
    straight = getattr(optim, cls)(groups(straight_arrays), **kwargs)
    lrs, _ = run(sched, straight, make, grads_seq, straight.step)
    arrays = make_arrays()
    first = getattr(optim, cls)(groups(arrays), **kwargs)
    s1 = make(sched, first)
    for grads in grads_seq[:40]:
        first.step(grads)
        s1.step()
    saved_opt, saved_sched = first.state_dict(), s1.state_dict()
    arrays = [a.copy() for a in arrays]
    # as with torch: build both, then load the optimizer's state, then the scheduler's
    second = getattr(optim, cls)(groups(arrays), **kwargs)
    s2 = make(sched, second)
    second.load_state_dict(saved_opt)
    s2.load_state_dict(saved_sched)
    resumed = []
    for grads in grads_seq[40:]:
        second.step(grads)
        s2.step()
        resumed.append(s2.get_last_lr())
    assert resumed == lrs[41:]
    for a, b in zip(arrays, straight_arrays, strict=True):
        np.testing.assert_array_equal(a, b)


def test_closed_forms():
    def lrs_of(make, n=60, lr=0.3):
        opt = optim.SGD([np.zeros(2)], lr=lr)
        s = make(opt)
        out = [s.get_last_lr()[0]]
        for _ in range(n):
            s.step()
            out.append(s.get_last_lr()[0])
        return np.array(out)

    t = np.arange(61)
    np.testing.assert_allclose(lrs_of(lambda o: sched.StepLR(o, 7, 0.5)),
                               0.3 * 0.5 ** (t // 7), rtol=1e-14)
    np.testing.assert_allclose(lrs_of(lambda o: sched.ExponentialLR(o, 0.9)),
                               0.3 * 0.9 ** t, rtol=1e-13)
    np.testing.assert_allclose(lrs_of(lambda o: sched.MultiStepLR(o, [5, 20, 20], 0.1)),
                               0.3 * 0.1 ** ((t >= 5) + 2 * (t >= 20)), rtol=1e-14)
    np.testing.assert_allclose(
        lrs_of(lambda o: sched.CosineAnnealingLR(o, T_max=25, eta_min=0.01)),
        0.01 + (0.3 - 0.01) * (1 + np.cos(np.pi * t / 25)) / 2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        lrs_of(lambda o: sched.LinearLR(o, 0.2, 0.8, total_iters=10)),
        0.3 * (0.2 + 0.6 * np.minimum(t, 10) / 10), rtol=1e-14)
    np.testing.assert_allclose(lrs_of(lambda o: sched.LambdaLR(o, lambda e: 1 / (1 + e))),
                               0.3 / (1 + t), rtol=1e-15)
    one = lrs_of(lambda o: sched.OneCycleLR(o, max_lr=1.0, total_steps=60, pct_start=0.25,
                                            cycle_momentum=False))
    assert one[0] == pytest.approx(1.0 / 25) and one[14] == pytest.approx(1.0)
    assert one[59] == pytest.approx(1.0 / 25 / 1e4)
    assert np.all(np.diff(one[:15]) > 0) and np.all(np.diff(one[14:60]) < 0)
    seq = lrs_of(lambda o: sched.SequentialLR(
        o, [sched.ExponentialLR(o, 0.5), sched.StepLR(o, 10, 0.1)], milestones=[4]))
    np.testing.assert_allclose(seq[:4], 0.3 * 0.5 ** t[:4], rtol=1e-15)
    np.testing.assert_allclose(seq[4:], 0.3 * 0.1 ** ((t[4:] - 4) // 10), rtol=1e-14)


def test_initial_lr_and_last_epoch():
    opt = optim.Adam(groups(make_arrays()), lr=0.1)
    s = sched.StepLR(opt, 2)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.05, 0.2]
    assert s.last_epoch == 0 and s.base_lrs == [0.1, 0.05, 0.2]
    with pytest.raises(KeyError, match="initial_lr"):
        sched.StepLR(optim.Adam(make_arrays()), 2, last_epoch=3)
    # resuming from the groups' initial_lr with last_epoch
    opt2 = optim.Adam(groups(make_arrays()), lr=0.1)
    for g in opt2.param_groups:
        g["initial_lr"] = g["lr"]
    s2 = sched.StepLR(opt2, 2, gamma=0.5, last_epoch=3)
    assert s2.last_epoch == 4
    with pytest.warns(UserWarning, match="deprecated"):
        s2.step(9)
    assert s2.get_last_lr() == [0.1 * 0.5 ** 4, 0.05 * 0.5 ** 4, 0.2 * 0.5 ** 4]


def test_a_schedule_writing_a_bad_rate_fails_the_next_step():
    arrays = make_arrays()
    opt = optim.SGD(arrays, lr=0.1)
    s = sched.LambdaLR(opt, lambda e: 1.0 - e)     # negative from step 2
    grads = gradient_lists(3)
    opt.step(grads[0])
    s.step()
    before = [a.copy() for a in arrays]
    s.step()
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['lr'\] must be non-negative"):
        opt.step(grads[1])
    for a, b in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, error, pattern", [
    (lambda o: sched.StepLR(o, 0), ValueError, "step_size must be at least 1"),
    (lambda o: sched.StepLR(o, 2.5), TypeError, "step_size must be an integer"),
    (lambda o: sched.StepLR(o, 2, gamma=-1), ValueError, "gamma must be non-negative"),
    (lambda o: sched.LambdaLR(o, [lambda e: 1.0] * 2), ValueError, "lr_lambda has 2"),
    (lambda o: sched.LambdaLR(o, 0.5), TypeError, "lr_lambda must be a function"),
    (lambda o: sched.CosineAnnealingLR(o, 0), ValueError, "T_max must be at least 1"),
    (lambda o: sched.LinearLR(o, start_factor=0), ValueError, r"start_factor must be in"),
    (lambda o: sched.OneCycleLR(o, 0.1), ValueError, "give total_steps"),
    (lambda o: sched.OneCycleLR(o, 0.1, 10, anneal_strategy="exp"), ValueError,
     "anneal_strategy"),
    (lambda o: sched.OneCycleLR(o, [0.1], 10), ValueError, "max_lr has 1 values"),
    (lambda o: sched.OneCycleLR(optim.Adagrad(make_arrays()), 0.1, 10), ValueError,
     "cycle_momentum needs"),
    (lambda o: sched.ReduceLROnPlateau(o, factor=1.0), ValueError, r"factor must be in"),
    (lambda o: sched.ReduceLROnPlateau(o, mode="up"), ValueError, "mode must be"),
    (lambda o: sched.SequentialLR(o, [sched.ReduceLROnPlateau(o)], []), ValueError,
     "ReduceLROnPlateau"),
    (lambda o: sched.SequentialLR(o, [sched.StepLR(o, 2)], [3]), ValueError,
     "one fewer"),
    (lambda o: sched.StepLR(object(), 2), TypeError, "must be an rnnfast.optim optimizer"),
])
def test_bad_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make(optim.SGD(groups(make_arrays()), lr=0.1, momentum=0.5))


def test_one_cycle_refuses_to_run_past_its_steps():
    opt = optim.SGD(make_arrays(), lr=0.1, momentum=0.9)
    s = sched.OneCycleLR(opt, 0.5, total_steps=3)
    for _ in range(3):
        s.step()
    with pytest.raises(ValueError, match="stepped 4 times; total_steps is 3"):
        s.step()
