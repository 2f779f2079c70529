"""rnnfast.torch modules off the CPU or in half precision run torch's own implementation
(compared exactly with torch's modules: it is torch's code), and rnnfast.torch.revert turns
them back into torch's modules, which then pickle and load without rnnfast."""

import copy
import pickle
import subprocess
import sys
import textwrap
import warnings

import pytest

torch = pytest.importorskip("torch")
rt = pytest.importorskip("rnnfast.torch")

from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")

N_IN, H = 4, 6
CASES = [("RNN", {"nonlinearity": "relu", "num_layers": 2}),
         ("RNN", {"bidirectional": True, "batch_first": True}),
         ("LSTM", {"num_layers": 2, "bidirectional": True}),
         ("LSTM", {"proj_size": 3, "batch_first": True}),
         ("GRU", {"num_layers": 2, "bias": False}),
         ("GRU", {"bidirectional": True})]
IDS = [f"{kind}-{'-'.join(kwargs)}" for kind, kwargs in CASES]


def pair(kind, dtype, **kwargs):
    """torch's module and a converted copy of it (the same weights), both in ``dtype``."""
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(N_IN, H, **kwargs).to(dtype)
    ours = rt.convert(copy.deepcopy(theirs))
    assert type(ours) is getattr(rt, kind)
    return theirs, ours


def inputs(module, dtype, batched=True, seed=1, N=3, L=5):
    g = torch.Generator().manual_seed(seed)
    D = 2 if module.bidirectional else 1
    P = getattr(module, "proj_size", 0) or H
    lead = ((N, L) if module.batch_first else (L, N)) if batched else (L,)
    widths = [P, H] if module.mode == "LSTM" else [P]
    states = [torch.randn((D * module.num_layers, N, w) if batched else
                          (D * module.num_layers, w), generator=g).to(dtype) for w in widths]
    x = torch.randn(*lead, N_IN, generator=g).to(dtype)
    return x, (tuple(states) if len(states) == 2 else states[0])


def run(module, x, hx):
    """Outputs, and the gradients of input, states and parameters, of a fixed linear loss."""
    module.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    leaves = [x] + [p for p in module.parameters()]
    if hx is not None:
        hx = (tuple(h.detach().clone().requires_grad_(True) for h in hx)
              if isinstance(hx, tuple) else hx.detach().clone().requires_grad_(True))
        leaves += list(hx) if isinstance(hx, tuple) else [hx]
    output, finals = module(x, hx)
    flat = [output] + (list(finals) if isinstance(finals, tuple) else [finals])
    loss = sum((t.float() * torch.linspace(-1, 1, t.numel()).reshape(t.shape)).sum()
               for t in flat)
    grads = torch.autograd.grad(loss, leaves)
    return flat, grads


def as_list(finals):
    return list(finals) if isinstance(finals, tuple) else [finals]


def assert_identical(a, b):
    assert len(a) == len(b)
    for s, t in zip(a, b, strict=True):
        assert s.dtype == t.dtype and s.shape == t.shape
        assert torch.equal(s, t)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind, kwargs", CASES, ids=IDS)
def test_half_precision_runs_torchs_own_module_exactly(kind, kwargs, dtype):
    theirs, ours = pair(kind, dtype, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batched in (True, False):
            for with_hx in (False, True):
                x, hx = inputs(theirs, dtype, batched)
                hx = hx if with_hx else None
                got, got_grads = run(ours, x, hx)
                expected, expected_grads = run(theirs, x, hx)
                assert_identical(got, expected)
                assert_identical(got_grads, expected_grads)
                assert got[0].dtype == dtype
    mine = [w for w in caught if "runs torch's own" in str(w.message)]
    assert len(mine) == 1, [str(w.message) for w in caught]
    message = str(mine[0].message)
    assert f"rnnfast.torch.{kind} runs torch's own nn.{kind}" in message
    assert str(dtype) in message
    assert mine[0].category is UserWarning and mine[0].filename == __file__


@pytest.mark.parametrize("kind, kwargs", CASES[::2], ids=IDS[::2])
def test_a_packed_sequence_in_half_precision_runs_torchs_own_module(kind, kwargs):
    theirs, ours = pair(kind, torch.float16, **kwargs)
    x, _ = inputs(theirs, torch.float16, N=4)
    lengths = torch.tensor([3, 5, 1, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=theirs.batch_first,
                                  enforce_sorted=False)
    with pytest.warns(UserWarning, match="runs torch's own"):
        got = ours(packed)
    expected = theirs(packed)
    assert torch.equal(got[0].data, expected[0].data)
    assert_identical(as_list(got[1]), as_list(expected[1]))


def test_one_warning_per_module_instance():
    _, first = pair("GRU", torch.bfloat16)
    second = copy.deepcopy(first)
    x, _ = inputs(first, torch.bfloat16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            first(x)
            second(x)
        first.forward(x)
    assert len(caught) == 2
    assert all("input is torch.bfloat16" in str(w.message) for w in caught)


def test_the_warning_names_a_half_parameter_when_the_input_is_not_half():
    theirs, ours = pair("LSTM", torch.float32)
    ours.weight_hh_l0.data = ours.weight_hh_l0.data.half()
    theirs.weight_hh_l0.data = theirs.weight_hh_l0.data.half()
    x, _ = inputs(theirs, torch.float32)
    with pytest.warns(UserWarning, match="parameter weight_hh_l0 is torch.float16"):
        with pytest.raises(Exception) as ours_error:
            ours(x)
    with pytest.raises(Exception) as torch_error:
        theirs(x)
    # torch's own module decides; rnnfast's check would have said "must be torch.float32"
    assert type(ours_error.value) is type(torch_error.value)
    assert str(ours_error.value) == str(torch_error.value)


def test_float32_on_the_cpu_still_runs_rnnfasts_kernels(monkeypatch):
    theirs, ours = pair("GRU", torch.float32)
    ours.half()

    def torchs_forward(self, input, hx=None):
        raise AssertionError("torch's forward")
    monkeypatch.setattr(torch.nn.GRU, "forward", torchs_forward)
    x, _ = inputs(theirs, torch.float16)
    with pytest.warns(UserWarning, match="runs torch's own"), \
            pytest.raises(AssertionError, match="torch's forward"):
        ours(x)
    ours.float()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        output, _ = ours(x.float())               # rnnfast's kernels: torch's forward untouched
    assert output.dtype == torch.float32


class Nested(torch.nn.Module):
    """Recurrent modules at several depths, and the top one called as a whole."""

    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(N_IN, H, nonlinearity="relu", batch_first=True)
        self.blocks = torch.nn.ModuleDict({
            "lstm": torch.nn.LSTM(H, H, num_layers=2, proj_size=2, batch_first=True),
            "deep": torch.nn.Sequential(torch.nn.ModuleList([
                torch.nn.GRU(2, 3, bidirectional=True, batch_first=True)]))})
        self.head = torch.nn.Linear(6, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        y, (h, c) = self.blocks["lstm"](y)
        y, h = self.blocks["deep"][0][0](y)
        return self.head(y), h


def nested_model():
    torch.manual_seed(3)
    return Nested()


def recurrent_types(model):
    return [type(m) for m in model.modules() if isinstance(m, torch.nn.RNNBase)]


def test_a_converted_model_on_meta_keeps_working_with_autograd():
    model = rt.convert(nested_model())
    assert recurrent_types(model) == [rt.RNN, rt.LSTM, rt.GRU]
    theirs = nested_model().to("meta")
    model.to("meta")
    x = torch.randn(2, 5, N_IN, device="meta")
    with pytest.warns(UserWarning, match="runs torch's own"):
        out, h = model(x)
    expected, expected_h = theirs(x)
    assert out.device.type == "meta" and out.shape == expected.shape
    assert h.shape == expected_h.shape
    out.sum().backward()
    for p, q in zip(model.parameters(), theirs.parameters(), strict=True):
        assert p.grad is not None and p.grad.device.type == "meta" and p.grad.shape == q.shape


def test_a_converted_model_made_half_matches_torchs_half_model():
    model = rt.convert(nested_model()).half()
    theirs = nested_model().half()
    x = torch.randn(2, 5, N_IN).half()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "rnnfast.torch", UserWarning)
        out, h = model(x)
    expected, expected_h = theirs(x)
    assert torch.equal(out, expected) and torch.equal(h, expected_h)


def test_revert_undoes_convert_in_place():
    reference = nested_model()
    model = nested_model()
    params = list(model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(2, 5, N_IN)
    assert rt.convert(model) is model
    model(x)[0].sum().backward()                      # on rnnfast's kernels
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert rt.revert(model) is model
    assert recurrent_types(model) == [torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU]
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))
    assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True))
    state, expected_state = model.state_dict(), reference.state_dict()
    assert list(state) == list(expected_state)
    assert all(torch.equal(state[k], expected_state[k]) for k in state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, h = model(x)
    expected, expected_h = reference(x)
    assert torch.equal(out, expected) and torch.equal(h, expected_h)
    optimizer.step()                                  # made before convert: still works
    assert not torch.equal(model(x)[0], expected)


def test_revert_takes_modules_built_as_rnnfasts_and_leaves_subclasses_alone():
    class MyGRU(rt.GRU):
        pass

    torch.manual_seed(0)
    lstm = rt.LSTM(N_IN, H, proj_size=2, bidirectional=True)
    mine = MyGRU(N_IN, H)
    holder = torch.nn.ModuleList([lstm, mine])
    assert rt.revert(holder) is holder
    assert type(lstm) is torch.nn.LSTM and type(mine) is MyGRU
    theirs = torch.nn.LSTM(N_IN, H, proj_size=2, bidirectional=True)
    theirs.load_state_dict(lstm.state_dict())
    x, hx = inputs(theirs, torch.float32)
    assert_identical(run(lstm, x, hx)[1], run(theirs, x, hx)[1])
    single = rt.RNN(3, 4, nonlinearity="relu")
    assert type(rt.revert(single)) is torch.nn.RNN and single.nonlinearity == "relu"
    assert rt.revert(torch.nn.Linear(2, 2)).__class__ is torch.nn.Linear


# Loads a whole saved model where rnnfast cannot be imported, runs it and checks the outputs.
LOADER = textwrap.dedent("""
    import sys

    class NoRnnfast:
        def find_spec(self, name, path=None, target=None):
            if name == "rnnfast" or name.startswith("rnnfast."):
                raise ImportError("rnnfast is blocked here")
            return None

    sys.meta_path.insert(0, NoRnnfast())
    import torch

    model_path, data_path = sys.argv[1:3]
    model = torch.load(model_path, weights_only=False)
    data = torch.load(data_path)
    out = {name: module(data["x"][name])[0] for name, module in model.items()}
    assert all(torch.equal(out[k], data["out"][k]) for k in out), "outputs differ"
    assert not any(m.startswith("rnnfast") for m in sys.modules), "rnnfast was imported"
    print("ran", sorted(out))
""")


def load_elsewhere(tmp_path, model, data):
    torch.save(model, tmp_path / "model.pt")
    torch.save(data, tmp_path / "data.pt")
    (tmp_path / "loader.py").write_text(LOADER)
    # -I: no PYTHONPATH, no current directory, no user site: the repository is not on the path
    return subprocess.run([sys.executable, "-I", str(tmp_path / "loader.py"),
                           str(tmp_path / "model.pt"), str(tmp_path / "data.pt")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


def saved_model():
    torch.manual_seed(5)
    model = torch.nn.ModuleDict({
        "rnn": torch.nn.RNN(N_IN, H, num_layers=2),
        "inner": torch.nn.ModuleDict({"lstm": torch.nn.LSTM(N_IN, H, proj_size=2),
                                      "gru": torch.nn.GRU(N_IN, H, bidirectional=True)})})
    x = torch.randn(5, 2, N_IN)
    modules = {"rnn": model["rnn"], "lstm": model["inner"]["lstm"],
               "gru": model["inner"]["gru"]}
    data = {"x": dict.fromkeys(modules, x),
            "out": {k: m(x)[0].detach() for k, m in modules.items()}}
    return model, modules, data


def test_a_reverted_model_pickles_and_runs_where_rnnfast_is_not_importable(tmp_path):
    model, modules, data = saved_model()
    rt.convert(model)
    for name, module in modules.items():              # run and train a bit on rnnfast's kernels
        module(data["x"][name])[0].sum().backward()
    rt.revert(model)
    flat = torch.nn.ModuleDict(modules)
    result = load_elsewhere(tmp_path, flat, data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran ['gru', 'lstm', 'rnn']"
    pickle.loads(pickle.dumps(model))


def test_a_converted_model_does_not_load_where_rnnfast_is_not_importable(tmp_path):
    # the control of the test above: the subprocess does block rnnfast
    model, modules, data = saved_model()
    rt.convert(model)
    result = load_elsewhere(tmp_path, torch.nn.ModuleDict(modules), data)
    assert result.returncode != 0
    assert "rnnfast is blocked here" in result.stderr
