"""RNNModel: batch-first forward and loss, class-index input, persistence, torch interchange."""

import builtins
import copy
import os
import pickle
import stat

import numpy as np
import pytest

import rnnfast
from rnnfast import RNNModel
from rnnfast import reference as ref
from rnnfast.cli.demo import apple_data, train_apple, train_apple_torch
from tests.helpers import assert_close, torch_dtype


def make_batch(model, m=3, n_steps=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n_steps, model.input_size)).astype(model.dtype)
    Y = rng.integers(0, model.output_size, size=(m, n_steps))
    return X, Y


def seed_layout(model, X, h0=None):
    """rnn_loss / rnn_forward arguments for the same computation in the seed's layout."""
    m = X.shape[0]
    x = X.transpose(2, 0, 1)
    h0 = np.zeros((model.hidden_size, m), model.dtype) if h0 is None else h0.T
    return x, h0


def test_initialisation_ranges_and_seed():
    model = RNNModel(7, 16, 5, seed=3)
    bound = 1 / np.sqrt(16)
    for name, shape in {"Whx": (16, 7), "Whh": (16, 16), "Wyh": (5, 16), "bh": (16, 1),
                        "by": (5, 1)}.items():
        a = model.parameters[name]
        assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous
        assert np.all(np.abs(a) <= bound) and np.std(a) > bound / 4
    again = RNNModel(7, 16, 5, seed=3)
    for name in model.parameters:
        np.testing.assert_array_equal(model.parameters[name], again.parameters[name])
    assert RNNModel(7, 16, 5, dtype=np.float64).parameters["Whh"].dtype == np.float64


@pytest.mark.parametrize("args, error", [((0, 4, 3), ValueError), ((2, -1, 3), ValueError),
                                         ((2, 4, 2.5), TypeError), ((2, True, 3), TypeError),
                                         ((2, 4, 3, 1.0), TypeError), ((2, 4, 3, 0), ValueError),
                                         ((2, 4, 3, 2, "tanh", "0.1"), ValueError),
                                         ((2, 4, 3, 2, "tanh", None), ValueError),
                                         ((2, 4, 3, 2, "tanh", 1.5), ValueError)])
def test_bad_sizes(args, error):
    with pytest.raises(error):
        RNNModel(*args)


def test_bad_dtype():
    with pytest.raises(TypeError, match="float32 or float64"):
        RNNModel(2, 3, 4, dtype=np.int32)


def test_forward_and_loss_match_the_functional_api(dtype, products):
    model = RNNModel(4, 6, 5, dtype=dtype, seed=1)
    X, Y = make_batch(model)
    h0 = np.random.default_rng(5).standard_normal((3, 6)).astype(dtype)
    x, h0_seed = seed_layout(model, X, h0)
    p = model.parameters
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    h, _, _ = ref.rnn_forward(x.astype(np.float64), h0_seed.astype(np.float64), p64)
    logits = model.forward(X, h0)
    expected = np.einsum("yh,hmt->mty", p64["Wyh"], h) + p64["by"][:, 0]
    assert logits.shape == (3, 4, 5)
    assert_close(logits, expected, dtype, "logits")
    np.testing.assert_array_equal(model.predict(X, h0), np.argmax(logits, axis=-1))

    loss, grads = model.loss_and_grads(X, Y, h0)
    # the oracle: the NumPy twin of the fused loss, in float64 on the same values
    loss_ref, grads_ref = ref.rnn_loss(x.astype(np.float64), h0_seed.astype(np.float64), Y, p64)
    assert abs(loss - loss_ref) < (1e-12 if dtype == np.float64 else 1e-5)
    for key in ("dWhx", "dWhh", "dWyh", "dbh", "dby"):
        assert_close(grads[key], grads_ref[key], dtype, key)
    assert_close(grads["dx"], grads_ref["dx"].transpose(1, 2, 0), dtype, "dx")
    assert_close(grads["dh0"], grads_ref["dh0"].T, dtype, "dh0")


def test_class_index_input_equals_one_hot(dtype, products):
    model = RNNModel(6, 8, 6, dtype=dtype, seed=2)
    idx = np.random.default_rng(0).integers(0, 6, size=(2, 9))
    one_hot = np.eye(6, dtype=dtype)[idx]
    Y = np.roll(idx, -1, axis=1)
    assert_close(model.forward(idx), model.forward(one_hot).astype(np.float64), dtype)
    loss_i, g_i = model.loss_and_grads(idx, Y)
    loss_o, g_o = model.loss_and_grads(one_hot, Y)
    assert abs(loss_i - loss_o) < 1e-6
    assert "dx" not in g_i and "dx" in g_o
    for key in g_i:
        assert_close(g_i[key], g_o[key].astype(np.float64), dtype, key)
    with pytest.raises(ValueError, match="class index 6"):
        model.forward(idx + 1)


def test_state_carries_across_chunks(dtype):
    model = RNNModel(3, 5, 4, dtype=dtype, seed=0)
    X, Y = make_batch(model, m=2, n_steps=10)
    whole, h_end = model.forward(X, return_state=True)
    first, h_mid = model.forward(X[:, :6], return_state=True)
    second, h_last = model.forward(X[:, 6:], h_mid, return_state=True)
    assert_close(np.concatenate([first, second], axis=1), whole.astype(np.float64), dtype)
    assert_close(h_last, h_end.astype(np.float64), dtype)
    loss, grads, h = model.loss_and_grads(X, Y, return_state=True)
    assert_close(h, h_end.astype(np.float64), dtype)


def test_input_validation():
    model = RNNModel(3, 5, 4)
    with pytest.raises(ValueError, match="input_size = 3"):
        model.forward(np.zeros((2, 4, 2), np.float32))
    with pytest.raises(ValueError, match="X must be 3-D"):
        model.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"h0 has shape \(5, 2\)"):
        model.forward(np.zeros((2, 4, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"Y has shape"):
        model.loss_and_grads(np.zeros((2, 4, 3)), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="class index 4"):
        model.loss_and_grads(np.zeros((2, 4, 3)), np.full((2, 4), 4))
    model.parameters["Whh"] = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="Whh"):
        model.forward(np.zeros((2, 4, 3)))


def test_save_load_round_trip(tmp_path, dtype):
    model = RNNModel(3, 5, 4, dtype=dtype, seed=7)
    model.metadata = {"vocab": "abc", "note": [1, 2]}
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = RNNModel.load(path)
    assert loaded.dtype == dtype and loaded.metadata == model.metadata
    for name in model.parameters:
        np.testing.assert_array_equal(loaded.parameters[name], model.parameters[name])
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]     # no temporary left behind


def test_load_rejects_foreign_and_damaged_files(tmp_path):
    model = RNNModel(3, 5, 4, seed=7)
    good = tmp_path / "good.npz"
    model.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    text = tmp_path / "text.npz"
    text.write_text("hello")
    deep = tmp_path / "deep.npz"
    np.savez(deep, __meta__=np.array("[" * 100000), **model.parameters)
    bad_dtype = tmp_path / "dtype.npz"
    np.savez(bad_dtype, __meta__=np.array('{"format": "rnnfast.RNNModel/1", "dtype": "int8"}'),
             **model.parameters)
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, __meta__=np.array("x" * 5000), **model.parameters)
    damaged = tmp_path / "damaged.npz"
    raw = bytearray(compressed.read_bytes())
    raw[100:400] = bytes(300)
    damaged.write_bytes(bytes(raw))
    for path in (truncated, foreign, text, deep, bad_dtype, damaged):
        with pytest.raises(ValueError, match="not a model saved by RNNModel.save"):
            RNNModel.load(path)
    with pytest.raises(FileNotFoundError):
        RNNModel.load(tmp_path / "missing.npz")


def test_metadata_must_be_a_dict(tmp_path):
    model = RNNModel(3, 5, 4)
    model.metadata = [1, 2]
    with pytest.raises(TypeError, match="metadata must be a dict"):
        model.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


def test_torch_round_trip_and_forward_parity(dtype):
    torch = pytest.importorskip("torch")
    tdtype = torch_dtype(dtype)
    torch.manual_seed(0)
    rnn = torch.nn.RNN(4, 6, batch_first=True, dtype=tdtype)
    linear = torch.nn.Linear(6, 3, dtype=tdtype)
    model = RNNModel.from_torch(rnn, linear)
    assert model.dtype == dtype
    X = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(dtype)
    with torch.no_grad():
        expected = linear(rnn(torch.from_numpy(X))[0]).numpy()
    assert_close(model.forward(X), expected.astype(np.float64), dtype)
    rnn2, linear2 = model.to_torch()
    with torch.no_grad():
        again = linear2(rnn2(torch.from_numpy(X))[0]).numpy()
    assert_close(again, expected.astype(np.float64), dtype)
    with pytest.raises(ValueError, match="unidirectional"):
        RNNModel.from_torch(torch.nn.RNN(4, 6, bidirectional=True, dtype=tdtype), linear)


def test_apple_training_matches_torch_adam_every_iteration():
    """Same initial weights, float64: the loss of every one of 100 iterations agrees."""
    pytest.importorskip("torch")
    model = RNNModel(5, 5, 5, dtype=np.float64, seed=0)
    twin = RNNModel(5, 5, 5, dtype=np.float64)
    for k, v in model.parameters.items():
        twin.parameters[k][...] = v
    losses, predictions, _ = train_apple(model, 100, 0.1)
    torch_losses, _ = train_apple_torch(twin, 100, 0.1)
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-9, atol=1e-12)
    assert predictions[-1] == "pple!"


def test_apple_training_learns_without_torch(dtype):
    vocab, X, Y = apple_data(dtype)
    model = RNNModel(5, 5, 5, dtype=dtype, seed=0)
    losses, predictions, seconds = train_apple(model, 100, 0.1)
    assert losses[-1] < 0.01 < losses[0] and predictions[-1] == "pple!" and seconds > 0


# -- regressions: from_torch types, save permissions and links, load messages --

def test_from_torch_names_the_expected_and_the_given_types():
    torch = pytest.importorskip("torch")
    linear = torch.nn.Linear(6, 3)
    for rnn, got in ((torch.nn.Conv1d(4, 6, 1), "torch.nn.Conv1d"),
                     (rnnfast.RNN(4, 6), "rnnfast.RNN"), (None, "NoneType")):
        with pytest.raises(TypeError) as info:
            RNNModel.from_torch(rnn, linear)
        assert str(info.value) == ("rnn must be a torch.nn.RNN (unidirectional), nn.LSTM or "
                                   f"nn.GRU, or the same from rnnfast.torch; got {got}")
    for wrong in (torch.nn.GRU(4, 6, bidirectional=True), torch.nn.LSTM(4, 6, proj_size=2),
                  torch.nn.GRU(4, 6, bias=False)):
        with pytest.raises(ValueError, match="unidirectional nn.(LSTM|GRU) with biases and no "
                                             "projection"):
            RNNModel.from_torch(wrong, linear)
    with pytest.raises(TypeError, match="linear must be a torch.nn.Linear; got str"):
        RNNModel.from_torch(torch.nn.LSTM(4, 6), "linear")
    rnn = torch.nn.RNN(4, 6)
    for bad, got in ((torch.nn.Bilinear(6, 6, 3), "torch.nn.Bilinear"),
                     (torch.nn.RNN(6, 3), "torch.nn.RNN"), ("linear", "str")):
        with pytest.raises(TypeError) as info:
            RNNModel.from_torch(rnn, bad)
        assert str(info.value) == f"linear must be a torch.nn.Linear; got {got}"
    for wrong in (torch.nn.RNN(4, 6, bidirectional=True),
                  torch.nn.RNN(4, 6, num_layers=2, bidirectional=True)):
        with pytest.raises(ValueError, match="unidirectional"):
            RNNModel.from_torch(wrong, linear)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_save_gives_a_new_file_the_mode_np_savez_gives(tmp_path, umask, mode):
    model = RNNModel(3, 5, 4, seed=0)
    previous = os.umask(umask)
    try:
        model.save(tmp_path / "m.npz")
        np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "m.npz") == _mode(tmp_path / "plain.npz") == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "plain.npz"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_save_over_a_file_keeps_its_permission_bits(tmp_path):
    path = tmp_path / "m.npz"
    RNNModel(3, 5, 4, seed=0).save(path)
    os.chmod(path, 0o640)
    model = RNNModel(3, 5, 4, seed=1)
    model.save(path)
    assert _mode(path) == 0o640
    np.testing.assert_array_equal(RNNModel.load(path).parameters["Whh"],
                                  model.parameters["Whh"])


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_save_through_a_symlink_writes_its_target(tmp_path):
    target_dir = tmp_path / "store"
    target_dir.mkdir()
    target = target_dir / "real.npz"
    RNNModel(3, 5, 4, seed=0).save(target)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    model = RNNModel(3, 5, 4, seed=1)
    model.metadata = {"vocab": "abc"}
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    loaded = RNNModel.load(target)
    assert loaded.metadata == {"vocab": "abc"}
    for name in model.parameters:
        np.testing.assert_array_equal(loaded.parameters[name], model.parameters[name])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "store"]
    assert [p.name for p in target_dir.iterdir()] == ["real.npz"]


def test_save_removes_its_temporary_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    RNNModel(3, 5, 4, seed=0).save(path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="No space left"):
        RNNModel(3, 5, 4, seed=1).save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"] and path.read_bytes() == before


def test_load_says_a_foreign_file_is_not_a_model_and_never_suggests_unpickling(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("hello")
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"Whx": np.zeros((2, 2))}))
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    objects = tmp_path / "objects.npz"
    np.savez(objects, __meta__=np.array([{"format": "rnnfast.RNNModel/1"}], dtype=object),
             **RNNModel(3, 5, 4).parameters)
    for path in (text, pickled, npy, empty, objects):
        with pytest.raises(ValueError) as info:
            RNNModel.load(path)
        message = str(info.value)
        assert message.startswith(f"{path} is not an rnnfast model file"), message
        assert "not a model saved by RNNModel.save" in message
        assert "allow_pickle" not in message and "pickle.load" not in message, message
    for path in (text, pickled, npy, empty):
        assert "not an .npz archive" in str(pytest.raises(ValueError, RNNModel.load, path).value)


def test_load_lets_os_errors_through(tmp_path, monkeypatch):
    with pytest.raises(IsADirectoryError):
        RNNModel.load(tmp_path)
    locked = tmp_path / "locked.npz"
    RNNModel(3, 5, 4).save(locked)
    real_open = builtins.open

    def open_(file, *args, **kwargs):
        if os.fspath(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", open_)
    with pytest.raises(PermissionError):
        RNNModel.load(locked)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_models_round_trip_through_torch_and_files(cell, tmp_path):
    torch = pytest.importorskip("torch")
    model = RNNModel(5, 7, 4, cell=cell, dtype=np.float64, seed=1)
    rnn, linear = model.to_torch()
    assert isinstance(rnn, torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)
    X = np.random.default_rng(0).standard_normal((3, 6, 5))
    with torch.no_grad():
        out, _ = rnn(torch.tensor(X))
        expected = linear(out).numpy()
    np.testing.assert_allclose(model.forward(X), expected, rtol=1e-12, atol=1e-14)
    back = RNNModel.from_torch(rnn, linear)
    assert back.cell == cell and back.dtype == np.float64
    for name, a in model.parameters.items():
        np.testing.assert_array_equal(back.parameters[name], a)
    model.save(tmp_path / "m.npz")
    loaded = RNNModel.load(tmp_path / "m.npz")
    assert loaded.cell == cell
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))


@pytest.mark.parametrize("cell, num_layers", [("rnn", 1), ("rnn", 2), ("lstm", 1), ("gru", 2)])
def test_named_parameters_are_the_live_parameters_in_order(cell, num_layers):
    model = RNNModel(5, 6, 4, num_layers, cell=cell, dtype=np.float64, seed=0)
    pairs = model.named_parameters()
    assert [name for name, _ in pairs] == list(model.parameters)
    for name, a in pairs:
        assert a is model.parameters[name]
    X = np.random.default_rng(0).integers(0, 5, (2, 7))
    loss, grads = model.loss_and_grads(X, X % 4)
    opt = rnnfast.optim.SGD(model.named_parameters(), lr=0.5)
    opt.step(grads)
    assert model.loss_and_grads(X, X % 4)[0] < loss     # the step reached the model


@pytest.mark.parametrize("kind, kwargs", [("RNN", {}), ("RNN", dict(nonlinearity="relu")),
                                          ("RNN", dict(num_layers=2)), ("LSTM", {}),
                                          ("GRU", dict(num_layers=2))], ids=lambda v: str(v))
def test_from_torch_takes_rnnfast_torch_modules(kind, kwargs):
    torch = pytest.importorskip("torch")
    import rnnfast.torch as rt

    torch.manual_seed(0)
    plain = getattr(torch.nn, kind)(4, 6, batch_first=True, dtype=torch.float64, **kwargs)
    converted = rt.convert(copy.deepcopy(plain))
    assert type(converted).__module__ == "rnnfast.torch"
    linear = torch.nn.Linear(6, 3, dtype=torch.float64)
    model = RNNModel.from_torch(converted, linear)
    expected = RNNModel.from_torch(plain, linear)
    assert (model.cell, model.num_layers, model.nonlinearity) == (
        expected.cell, expected.num_layers, expected.nonlinearity)
    X = np.random.default_rng(0).standard_normal((2, 5, 4))
    with torch.no_grad():
        out = linear(plain(torch.from_numpy(X))[0]).numpy()
    np.testing.assert_allclose(model.forward(X), out, rtol=1e-10, atol=1e-12)


def test_from_torch_refuses_a_projection_by_name():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"no projection \(proj_size=0\); .*proj_size=2"):
        RNNModel.from_torch(torch.nn.LSTM(4, 6, proj_size=2), torch.nn.Linear(2, 3))


def test_softmax_cross_entropy_is_stable_and_matches_the_formula():
    from rnnfast.model import softmax_cross_entropy
    logits = np.array([[1000.0, 0.0, -1000.0], [0.5, 1.5, -0.25]], dtype=np.float32)
    labels = np.array([1, 2])
    losses, p = softmax_cross_entropy(logits, labels)
    assert losses.dtype == np.float64 and np.all(np.isfinite(losses))
    np.testing.assert_allclose(losses[0], 1000.0)
    z = logits[1].astype(np.float64)
    np.testing.assert_allclose(losses[1], np.log(np.exp(z).sum()) - z[2], rtol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p[1], np.exp(z) / np.exp(z).sum(), rtol=1e-12)


@pytest.mark.parametrize("config, fused", [
    (("rnn", 1, "tanh", 0.0), True),
    (("rnn", 2, "tanh", 0.0), False),
    (("rnn", 1, "relu", 0.0), False),
    (("rnn", 1, "tanh", 0.5), False),
    (("lstm", 1, "tanh", 0.0), False),
])
def test_one_rule_decides_the_fused_kernel(config, fused):
    from rnnfast.model import uses_fused_kernel
    cell, layers, nonlinearity, dropout = config
    assert uses_fused_kernel(*config) is fused
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # dropout with one layer has no effect
        model = RNNModel(3, 4, 3, layers, nonlinearity, dropout, cell=cell)
    assert ("Whx" in model.parameters) is fused
