"""torch.func on rnnfast.torch's modules: grad, vjp and per-sample gradients (vmap of grad).

torch's own modules, differentiated by autograd one sample at a time, are the
oracle.  Warnings are errors: a vmap fallback (one call per sample with a
warning) fails these tests.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
rt = pytest.importorskip("rnnfast.torch")

pytestmark = [pytest.mark.filterwarnings("error"),
              pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")]

N_IN, H = 3, 4
CONFIGS = [("RNN", {}), ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
           ("LSTM", {}), ("LSTM", dict(proj_size=2, bidirectional=True)),
           ("GRU", dict(num_layers=2)), ("GRU", dict(batch_first=True, bias=False))]


def pair(cls, **kwargs):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, cls)(N_IN, H, dtype=torch.float64, **kwargs)
    ours = getattr(rt, cls)(N_IN, H, dtype=torch.float64, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def loss_of(module):
    """``loss(params, x, y)``: a scalar from the outputs and final states of ``module``."""
    def loss(params, x, y):
        out, finals = torch.func.functional_call(module, params, (x,))
        h_n = finals[0] if isinstance(finals, tuple) else finals
        return (out * y).sum() + h_n.square().sum()
    return loss


def batch(module, n=3, L=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    D = 2 if module.bidirectional else 1
    P = getattr(module, "proj_size", 0) or H
    shape = (n, L) if module.batch_first else (L, n)
    return (torch.randn(*shape, N_IN, generator=g, dtype=torch.float64),
            torch.randn(*shape, D * P, generator=g, dtype=torch.float64))


def params_of(module):
    return {k: v.detach() for k, v in module.named_parameters()}


def autograd_grads(module, x, y):
    module.zero_grad()
    loss_of(module)(dict(module.named_parameters()), x, y).backward()
    return {k: p.grad.clone() for k, p in module.named_parameters()}


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=str)
def test_grad_matches_autograd_of_torchs_module(cls, kwargs):
    theirs, ours = pair(cls, **kwargs)
    x, y = batch(ours)
    got = torch.func.grad(loss_of(ours))(params_of(ours), x, y)
    expected = autograd_grads(theirs, x, y)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls, kwargs", CONFIGS[:3], ids=str)
def test_vjp_matches_autograd_of_torchs_module(cls, kwargs):
    theirs, ours = pair(cls, **kwargs)
    x, y = batch(ours)

    def outputs(module):
        return lambda x: module(x)[0]

    out, vjp_fn = torch.func.vjp(outputs(ours), x)
    (dx,) = vjp_fn(y)
    xx = x.clone().requires_grad_(True)
    expected = theirs(xx)[0]
    (expected * y).sum().backward()
    torch.testing.assert_close(out, expected.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dx, xx.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=str)
def test_per_sample_gradients_as_opacus_computes_them(cls, kwargs):
    theirs, ours = pair(cls, **kwargs)
    x, y = batch(ours)
    dim = 0 if ours.batch_first else 1
    sample_loss = loss_of(ours)

    def one(params, xi, yi):                   # one sample, kept batched with N = 1
        return sample_loss(params, xi.unsqueeze(dim), yi.unsqueeze(dim))

    got = torch.func.vmap(torch.func.grad(one), in_dims=(None, dim, dim))(params_of(ours), x, y)
    for i in range(x.shape[dim]):
        xi, yi = x.narrow(dim, i, 1), y.narrow(dim, i, 1)
        expected = autograd_grads(theirs, xi, yi)
        for k in expected:
            torch.testing.assert_close(got[k][i], expected[k], rtol=1e-10, atol=1e-12)


def test_vmap_over_unbatched_samples_folds_them_into_the_batch():
    theirs, ours = pair("GRU")
    x, _ = batch(ours)                                      # (L, n, in)
    got = torch.func.vmap(lambda xi: ours(xi)[0], in_dims=1)(x)
    expected = torch.stack([theirs(x[:, i])[0] for i in range(x.shape[1])])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_torchscript_refuses_the_modules_as_documented():
    with warnings.catch_warnings(), pytest.raises(torch.jit.frontend.UnsupportedNodeError,
                                                  match="Lambda aren't supported"):
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        torch.jit.script(rt.GRU(N_IN, H))
