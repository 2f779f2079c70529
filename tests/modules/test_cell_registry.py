"""The cell registry (``rnnfast.modules.CELLS``) and the stacking scheme every layer driver
shares (``rnnfast._layers``): every list of cells derives from the registry."""

import argparse

import numpy as np
import pytest

import rnnfast
from rnnfast import _layers
from rnnfast import reference as ref
from rnnfast.cli import train as train_cli
from rnnfast.model import CELL_NAMES, RNNModel
from rnnfast.modules import CELLS, RNNBase, cell_mode, cell_names, nonlinearities
from rnnfast.training import training_memory

# What torch.nn.RNNBase's modes are: (lowercase name, class name, gates, states)
KNOWN = {"RNN_TANH": ("rnn", "RNN", 1, ("h",)), "RNN_RELU": ("rnn", "RNN", 1, ("h",)),
         "LSTM": ("lstm", "LSTM", 4, ("h", "c")), "GRU": ("gru", "GRU", 3, ("h",))}


@pytest.mark.parametrize("mode", sorted(KNOWN))
def test_the_torch_modes_are_registered_with_their_names_gates_and_states(mode):
    cell = CELLS[mode]
    assert (cell.name, cell.torch_name, cell.gates, cell.states) == KNOWN[mode]


def test_the_char_model_names_are_the_registered_names_in_order():
    assert cell_names() == ("rnn", "lstm", "gru")
    assert CELL_NAMES == cell_names()
    assert nonlinearities("rnn") == ("tanh", "relu")
    assert nonlinearities("gru") == ("tanh",)


@pytest.mark.parametrize("mode", list(CELLS))
def test_every_registered_cell_has_a_module_a_twin_and_a_char_model(mode):
    cell = CELLS[mode]
    assert cell_mode(cell.name, cell.nonlinearity) == mode
    module = getattr(rnnfast, cell.torch_name)
    assert issubclass(module, RNNBase)
    m = RNNBase(mode, 3, 4, num_layers=2, bidirectional=True, seed=0)
    assert m.weight_ih_l0.shape == (cell.gates * 4, 3)
    assert m.weight_hh_l1_reverse.shape == (cell.gates * 4, 4)
    assert m.weight_ih_l1.shape == (cell.gates * 4, 8)
    assert callable(getattr(ref, f"{cell.name}_module_forward"))
    assert callable(getattr(ref, f"{cell.name}_module_backward"))
    model = RNNModel(5, 4, 3, 2, cell.nonlinearity, cell=cell.name, seed=0)
    assert type(model._rnn) is module and model._rnn.mode == mode


def test_an_unregistered_cell_is_refused_by_name():
    with pytest.raises(ValueError, match="no cell 'lstm' with nonlinearity 'relu'"):
        cell_mode("lstm", "relu")
    with pytest.raises(ValueError, match="cell must be one of 'rnn', 'lstm', 'gru'; got 'x'"):
        RNNModel(3, 4, 3, cell="x")


def test_the_train_command_offers_every_registered_cell():
    parser = argparse.ArgumentParser()
    train_cli.add_parser(parser.add_subparsers())
    options = parser._subparsers._group_actions[0].choices["train"]._option_string_actions
    assert options["--cell"].choices == list(cell_names())


def test_training_memory_counts_each_cells_gates():
    small = {name: training_memory(65, 128, 16, 25, cell=name) for name in cell_names()}
    assert small["rnn"] < small["gru"] < small["lstm"]
    assert set(small) == set(cell_names())


# -- the stacking scheme ------------------------------------------------------------

@pytest.mark.parametrize("num_layers, D", [(1, 1), (3, 1), (2, 2)])
def test_stack_forward_reads_state_k_times_D_plus_d_and_feeds_each_layer_the_joined_output(
        num_layers, D):
    initial = ([f"h{i}" for i in range(num_layers * D)], [f"c{i}" for i in range(num_layers * D)])
    calls, joins = [], []

    def run_direction(layer_input, k, d, sfx, states):
        calls.append((layer_input, k, d, sfx, states))
        return f"out{k}{d}", (f"hn{k}{d}", f"cn{k}{d}")

    def join_layer(k, outputs):
        joins.append((k, outputs))
        return f"layer{k}"

    output, finals = _layers.stack_forward("x", initial, num_layers, D, run_direction,
                                           join_layer)
    expected_calls = [("x" if k == 0 else f"layer{k - 1}", k, d, ("", "_reverse")[d],
                       (f"h{k * D + d}", f"c{k * D + d}"))
                      for k in range(num_layers) for d in range(D)]
    assert calls == expected_calls
    assert joins == [(k, [f"out{k}{d}" for d in range(D)]) for k in range(num_layers)]
    assert output == f"layer{num_layers - 1}"
    assert finals == [[f"{s}n{k}{d}" for k in range(num_layers) for d in range(D)]
                      for s in "hc"]


def test_stack_backward_runs_the_last_layer_first_on_each_directions_columns():
    num_layers, D, P = 2, 2, 3
    g = np.arange(2 * 4 * D * P, dtype=float).reshape(2, 4, D * P)
    d_initial = [[None] * (num_layers * D)]
    seen = []

    def unjoin_layer(k, g_layer):
        seen.append(("unjoin", k))
        return g_layer * 2

    def back_direction(g_d, k, d, sfx, i):
        seen.append(("back", k, d, sfx, i))
        assert g_d.shape == (2, 4, P)
        return np.full((2, 4, D * P), g_d.sum()), [f"dh{i}"], {"weight_ih": (k, d)}

    d_input, grads = _layers.stack_backward(g, d_initial, num_layers, D, P, unjoin_layer,
                                            back_direction)
    assert seen == [("unjoin", 1), ("back", 1, 0, "", 2), ("back", 1, 1, "_reverse", 3),
                    ("unjoin", 0), ("back", 0, 0, "", 0), ("back", 0, 1, "_reverse", 1)]
    assert d_initial == [["dh0", "dh1", "dh2", "dh3"]]
    assert grads == {"weight_ih_l1": (1, 0), "weight_ih_l1_reverse": (1, 1),
                     "weight_ih_l0": (0, 0), "weight_ih_l0_reverse": (0, 1)}
    # layer 1: each direction sums its doubled columns; layer 0 sees their sum, doubled
    top = 2 * g
    layer1 = np.full(g.shape, top[..., :P].sum() + top[..., P:].sum())
    expected = np.full(g.shape, 2 * layer1[..., :P].sum() + 2 * layer1[..., P:].sum())
    np.testing.assert_array_equal(d_input, expected)


@pytest.mark.parametrize("mode", list(CELLS))
@pytest.mark.parametrize("bidirectional, bias", [(False, True), (True, False)])
def test_parameter_shapes_follow_the_gate_count_as_torch_shapes_them(mode, bidirectional,
                                                                     bias):
    torch = pytest.importorskip("torch")
    proj = 2 if CELLS[mode].projection else 0
    theirs = torch.nn.RNNBase(mode, 3, 5, num_layers=2, bias=bias,
                              bidirectional=bidirectional, proj_size=proj)
    expected = {name: tuple(p.shape) for name, p in theirs.named_parameters()}
    shapes = _layers.parameter_shapes(CELLS[mode].gates, 3, 5, 2, bidirectional, bias, proj)
    assert list(shapes.items()) == list(expected.items())


@pytest.mark.parametrize("mode", list(CELLS))
def test_the_torch_plugin_and_interchange_cover_every_registered_cell(mode):
    torch = pytest.importorskip("torch")
    rt = pytest.importorskip("rnnfast.torch")
    cell = CELLS[mode]
    kwargs = {"nonlinearity": cell.nonlinearity} if len(nonlinearities(cell.name)) > 1 else {}
    module = getattr(torch.nn, cell.torch_name)(3, 4, dtype=torch.float64, **kwargs)
    rt.convert(module)
    assert type(module) is getattr(rt, cell.torch_name) and module.mode == mode
    out, _ = module(torch.zeros(2, 1, 3, dtype=torch.float64))
    assert out.shape == (2, 1, 4)
    model = RNNModel(3, 4, 2, 2, cell.nonlinearity, cell=cell.name, dtype=np.float64, seed=0)
    rnn, _ = model.to_torch()
    assert type(rnn) is getattr(torch.nn, cell.torch_name) and rnn.mode == mode
    back = RNNModel.from_torch(rnn, torch.nn.Linear(4, 2, dtype=torch.float64))
    assert (back.cell, back.nonlinearity) == (cell.name, cell.nonlinearity)
