"""The NumPy twins of the whole nn.LSTM / nn.GRU, checked in float64.

Layers, both directions, biases or none, the LSTM projection, lengths
(pack_padded_sequence semantics) and dropout masks given as inputs: against
central finite differences (no torch needed), and, without dropout, against
torch's own nn.LSTM / nn.GRU forward and autograd where torch is installed.
"""

import numpy as np
import pytest

from rnnfast import reference as ref
from tests.helpers import numeric_grad

T, N, N_IN, H = 3, 2, 2, 3


def gated_problem(kind, num_layers, bidirectional, bias, proj=0, seed=7):
    """Inputs, initial states, torch-named parameters and dropout masks.

    Returns ``(x, states, params, masks)`` with ``states`` ``{"hx": ...}`` for
    the GRU and ``{"hx": ..., "cx": ...}`` for the LSTM.
    """
    rng = np.random.default_rng(seed)
    gates = 4 if kind == "lstm" else 3
    D = 2 if bidirectional else 1
    P = proj or H
    params = {}
    for k in range(num_layers):
        for sfx in ("", "_reverse")[:D]:
            n_in = N_IN if k == 0 else D * P
            params[f"weight_ih_l{k}{sfx}"] = 0.6 * rng.standard_normal((gates * H, n_in))
            params[f"weight_hh_l{k}{sfx}"] = 0.6 * rng.standard_normal((gates * H, P))
            if bias:
                params[f"bias_ih_l{k}{sfx}"] = 0.3 * rng.standard_normal(gates * H)
                params[f"bias_hh_l{k}{sfx}"] = 0.3 * rng.standard_normal(gates * H)
            if proj:
                params[f"weight_hr_l{k}{sfx}"] = 0.6 * rng.standard_normal((P, H))
    x = rng.standard_normal((T, N, N_IN))
    states = {"hx": 0.5 * rng.standard_normal((num_layers * D, N, P))}
    if kind == "lstm":
        states["cx"] = 0.5 * rng.standard_normal((num_layers * D, N, H))
    masks = [(rng.random((T, N, D * P)) > 0.3) / 0.7 for _ in range(num_layers - 1)]
    return x, states, params, masks


def run(kind, x, states, params, num_layers, bidirectional, proj, lengths, masks):
    """``(outputs, cache)``: the twin's output and final states as one tuple."""
    if kind == "lstm":
        out, h_n, c_n, cache = ref.lstm_module_forward(x, states["hx"], states["cx"], params,
                                                       num_layers, bidirectional, proj,
                                                       lengths, masks)
        return (out, h_n, c_n), cache
    out, h_n, cache = ref.gru_module_forward(x, states["hx"], params, num_layers,
                                             bidirectional, lengths, masks)
    return (out, h_n), cache


def backward(kind, seeds, cache):
    if kind == "lstm":
        return ref.lstm_module_backward(*seeds, cache)
    return ref.gru_module_backward(*seeds, cache)


# (num_layers, bidirectional, bias, proj_size, lengths, dropout); lengths [2, 1]
# leaves the last step padded in every sequence.
LSTM_FD_CASES = [
    (1, False, True, 0, None, False),
    (1, True, False, 2, [3, 1], False),
    (2, False, True, 2, None, True),
    (2, True, True, 0, [3, 1], True),
    (2, True, False, 0, None, True),
    (2, False, True, 0, [2, 1], False),
    (3, False, False, 2, [1, 3], True),
    (3, True, True, 2, [3, 1], True),
    (3, True, True, 0, None, False),
]

# (num_layers, bidirectional, bias, lengths, dropout)
GRU_FD_CASES = [
    (1, False, True, None, False),
    (1, True, False, [3, 1], False),
    (2, False, True, [1, 3], True),
    (2, True, True, None, True),
    (2, True, False, [2, 1], False),
    (3, False, True, None, True),
    (3, True, True, [3, 1], True),
    (3, True, False, [1, 3], False),
]


def check_finite_differences(kind, num_layers, bidirectional, bias, proj, lengths, dropout):
    x, states, params, masks = gated_problem(kind, num_layers, bidirectional, bias, proj)
    masks = masks if dropout else None
    outputs, cache = run(kind, x, states, params, num_layers, bidirectional, proj, lengths,
                         masks)
    rng = np.random.default_rng(5)
    seeds = [rng.standard_normal(z.shape) for z in outputs]
    grads = backward(kind, seeds, cache)

    def loss():
        outs, _ = run(kind, x, states, params, num_layers, bidirectional, proj, lengths, masks)
        return float(sum(np.sum(s * o) for s, o in zip(seeds, outs, strict=True)))

    targets = {"input": x, **states, **params}
    assert set(grads) == set(targets)
    for key, array in targets.items():
        assert grads[key].shape == array.shape, key
        np.testing.assert_allclose(grads[key], numeric_grad(loss, array),
                                   rtol=1e-6, atol=1e-8, err_msg=key)
    if lengths is not None:      # padded steps output zeros and get no input gradient
        valid = np.arange(T)[:, None] < np.asarray(lengths)[None, :]
        assert not outputs[0][~valid].any()
        assert not grads["input"][~valid].any()


@pytest.mark.parametrize("num_layers, bidirectional, bias, proj, lengths, dropout",
                         LSTM_FD_CASES)
def test_lstm_module_backward_matches_finite_differences(num_layers, bidirectional, bias,
                                                         proj, lengths, dropout):
    check_finite_differences("lstm", num_layers, bidirectional, bias, proj, lengths, dropout)


@pytest.mark.parametrize("num_layers, bidirectional, bias, lengths, dropout", GRU_FD_CASES)
def test_gru_module_backward_matches_finite_differences(num_layers, bidirectional, bias,
                                                        lengths, dropout):
    check_finite_differences("gru", num_layers, bidirectional, bias, 0, lengths, dropout)


def test_one_layer_module_is_the_layer_twins():
    # one unidirectional layer: the module twin is the layer twin, bit for bit
    x, states, params, _ = gated_problem("lstm", 1, False, True, proj=2)
    (out, h_n, c_n), _ = run("lstm", x, states, params, 1, False, 2, [3, 1], None)
    o, hn, cn, _ = ref.lstm_layer_forward(x, states["hx"][0], states["cx"][0],
                                          params["weight_ih_l0"], params["weight_hh_l0"],
                                          params["bias_ih_l0"], params["bias_hh_l0"],
                                          params["weight_hr_l0"], lengths=[3, 1])
    np.testing.assert_array_equal(out, o)
    np.testing.assert_array_equal(h_n[0], hn)
    np.testing.assert_array_equal(c_n[0], cn)


# -- torch as a second oracle --------------------------------------------------

# (num_layers, bidirectional, bias, proj_size, lengths); torch draws its own
# dropout masks, so these run without dropout.
LSTM_TORCH_CASES = [
    (1, False, True, 0, None),
    (1, True, True, 2, [3, 1]),
    (1, False, False, 2, [2, 1]),
    (2, False, True, 2, None),
    (2, True, True, 0, [1, 3]),
    (2, True, False, 0, None),
    (2, True, True, 2, [2, 1]),
    (3, False, False, 0, [3, 1]),
    (3, True, True, 2, [1, 3]),
    (3, True, True, 0, None),
]

# (num_layers, bidirectional, bias, lengths)
GRU_TORCH_CASES = [
    (1, False, True, None),
    (1, True, True, [3, 1]),
    (1, False, False, [2, 1]),
    (2, False, True, None),
    (2, True, True, [1, 3]),
    (2, True, False, None),
    (2, False, False, [3, 1]),
    (3, False, True, [1, 3]),
    (3, True, True, [2, 1]),
    (3, True, False, None),
]


def torch_module(kind, x, states, params, num_layers, bidirectional, bias, proj, lengths,
                 seeds, masks=None):
    """torch's outputs and, after a backward of sum(seed * output), every gradient.

    With ``masks``, torch's dropout is replayed by hand: one single-layer torch
    module per layer, each output multiplied by its mask before it feeds the
    next layer, as torch's layer stack applies dropout in training mode.
    """
    torch = pytest.importorskip("torch")
    kwargs = {"proj_size": proj} if kind == "lstm" else {}
    D = 2 if bidirectional else 1

    def make(n_in, n_layers, layer_params):
        module = getattr(torch.nn, kind.upper())(n_in, H, num_layers=n_layers, bias=bias,
                                                 bidirectional=bidirectional,
                                                 dtype=torch.float64, **kwargs)
        # strict: the twin's parameter names are exactly torch's state_dict keys
        module.load_state_dict({k: torch.tensor(v) for k, v in layer_params.items()},
                               strict=True)
        return module.eval()

    def call(module, inputs, hx):
        if lengths is None:
            return module(inputs, hx)
        packed = torch.nn.utils.rnn.pack_padded_sequence(inputs, torch.tensor(lengths),
                                                         enforce_sorted=False)
        out, final = module(packed, hx)
        return torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)[0], final

    x_t = torch.tensor(x, requires_grad=True)
    states_t = {k: torch.tensor(v, requires_grad=True) for k, v in states.items()}
    if masks is None:
        modules = [("", make(N_IN, num_layers, params))]
        hx = (states_t["hx"], states_t["cx"]) if kind == "lstm" else states_t["hx"]
        out, final = call(modules[0][1], x_t, hx)
        finals = list(final) if kind == "lstm" else [final]
    else:
        modules, layer_input, per_layer = [], x_t, []
        for k in range(num_layers):
            own = {name.replace(f"_l{k}", "_l0"): v for name, v in params.items()
                   if f"_l{k}" in name}
            module = make(N_IN if k == 0 else layer_input.shape[2], 1, own)
            modules.append((f"_l{k}", module))
            slots = {name: t[k * D:(k + 1) * D] for name, t in states_t.items()}
            hx = (slots["hx"], slots["cx"]) if kind == "lstm" else slots["hx"]
            out, final = call(module, layer_input, hx)
            per_layer.append(list(final) if kind == "lstm" else [final])
            layer_input = out * torch.tensor(masks[k]) if k < num_layers - 1 else out
        finals = [torch.cat(parts) for parts in zip(*per_layer, strict=True)]
    outputs = (out, *finals)
    loss = sum((o * torch.tensor(s)).sum() for o, s in zip(outputs, seeds, strict=True))
    loss.backward()
    grads = {"input": x_t.grad, **{k: t.grad for k, t in states_t.items()}}
    for layer, module in modules:
        for name, p in module.named_parameters():
            grads[name.replace("_l0", layer) if layer else name] = p.grad
    return ([o.detach().numpy() for o in outputs],
            {k: g.numpy() for k, g in grads.items()})


def check_against_torch(kind, num_layers, bidirectional, bias, proj, lengths, dropout=False):
    x, states, params, masks = gated_problem(kind, num_layers, bidirectional, bias, proj,
                                             seed=11)
    masks = masks if dropout else None
    outputs, cache = run(kind, x, states, params, num_layers, bidirectional, proj, lengths,
                         masks)
    rng = np.random.default_rng(13)
    seeds = [rng.standard_normal(z.shape) for z in outputs]
    theirs, their_grads = torch_module(kind, x, states, params, num_layers, bidirectional,
                                       bias, proj, lengths, seeds, masks)
    names = ("output", "h_n", "c_n")
    for name, mine, expected in zip(names[:len(outputs)], outputs, theirs, strict=True):
        assert mine.shape == expected.shape, name
        np.testing.assert_allclose(mine, expected, rtol=1e-12, atol=1e-14, err_msg=name)
    grads = backward(kind, seeds, cache)
    assert set(grads) == set(their_grads)
    for key, expected in their_grads.items():
        np.testing.assert_allclose(grads[key], expected, rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("num_layers, bidirectional, bias, proj, lengths", LSTM_TORCH_CASES)
def test_lstm_module_twin_matches_torch(num_layers, bidirectional, bias, proj, lengths):
    check_against_torch("lstm", num_layers, bidirectional, bias, proj, lengths)


@pytest.mark.parametrize("num_layers, bidirectional, bias, lengths", GRU_TORCH_CASES)
def test_gru_module_twin_matches_torch(num_layers, bidirectional, bias, lengths):
    check_against_torch("gru", num_layers, bidirectional, bias, 0, lengths)


# (kind, num_layers, bidirectional, bias, proj_size, lengths)
DROPOUT_TORCH_CASES = [
    ("lstm", 2, True, True, 0, None),
    ("lstm", 3, False, False, 2, [1, 3]),
    ("lstm", 3, True, True, 2, [3, 1]),
    ("gru", 2, False, True, 0, [2, 1]),
    ("gru", 3, True, True, 0, [3, 1]),
    ("gru", 3, True, False, 0, None),
]


@pytest.mark.parametrize("kind, num_layers, bidirectional, bias, proj, lengths",
                         DROPOUT_TORCH_CASES)
def test_dropout_masks_match_torch_layers_chained_by_hand(kind, num_layers, bidirectional,
                                                          bias, proj, lengths):
    # finite differences cannot tell where the masks go (forward and backward
    # would agree on a wrong place); torch, one layer at a time, can
    check_against_torch(kind, num_layers, bidirectional, bias, proj, lengths, dropout=True)
