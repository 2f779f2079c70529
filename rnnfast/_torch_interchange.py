"""Between :class:`rnnfast.RNNModel` and PyTorch's ``nn.RNN``/``nn.LSTM``/``nn.GRU`` +
``nn.Linear`` (torch is imported only when these are called)."""

import sys

import numpy as np

from rnnfast.model import uses_fused_kernel
from rnnfast.modules import CELLS, cell_mode, nonlinearities

READOUT = ("Wyh", "by")


def _type_name(obj):
    """The public dotted name of ``type(obj)``: ``torch.nn.LSTM``, ``rnnfast.RNN``, ``NoneType``."""
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    parts = cls.__module__.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if getattr(sys.modules.get(prefix), cls.__qualname__, None) is cls:
            return f"{prefix}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


# torch.nn.RNNBase's modes: (cell, nonlinearity)
_TORCH_MODES = {mode: (cell.name, cell.nonlinearity) for mode, cell in CELLS.items()}


def model_from_torch(cls, rnn, linear):
    """:meth:`RNNModel.from_torch` (``cls`` is the model class)."""
    import torch

    mode = getattr(rnn, "mode", None) if isinstance(rnn, torch.nn.RNNBase) else None
    if mode not in _TORCH_MODES:
        raise TypeError("rnn must be a torch.nn.RNN (unidirectional), nn.LSTM or nn.GRU, "
                        f"or the same from rnnfast.torch; got {_type_name(rnn)}")
    if not isinstance(linear, torch.nn.Linear):
        raise TypeError(f"linear must be a torch.nn.Linear; got {_type_name(linear)}")
    cell, nonlinearity = _TORCH_MODES[mode]
    kind = CELLS[mode].torch_name
    proj_size = getattr(rnn, "proj_size", 0)
    fused = uses_fused_kernel(cell, rnn.num_layers, nonlinearity, rnn.dropout)
    if rnn.bidirectional or not (rnn.bias or fused) or proj_size:
        raise ValueError(f"from_torch needs a unidirectional nn.{kind} with biases and no "
                         f"projection (proj_size=0); got num_layers={rnn.num_layers}, "
                         f"bidirectional={rnn.bidirectional}, bias={rnn.bias}, "
                         f"proj_size={proj_size}")
    if linear.in_features != rnn.hidden_size:
        raise ValueError(f"linear.in_features = {linear.in_features} does not match "
                         f"rnn.hidden_size = {rnn.hidden_size}")
    dtype = {torch.float32: "float32", torch.float64: "float64"}.get(rnn.weight_ih_l0.dtype)
    if dtype is None:
        raise TypeError(f"unsupported torch dtype: rnn's weights are "
                        f"{rnn.weight_ih_l0.dtype}; expected torch.float32 or "
                        "torch.float64")
    arrays = {name: t.detach().cpu().numpy() for name, t in rnn.state_dict().items()}
    by = (linear.bias.detach().cpu().numpy() if linear.bias is not None
          else np.zeros(linear.out_features))
    arrays["Wyh"], arrays["by"] = linear.weight.detach().cpu().numpy(), by[:, None]
    if fused:
        bh = np.zeros(rnn.hidden_size)
        for name in ("bias_ih_l0", "bias_hh_l0"):
            if name in arrays:
                bh = bh + arrays.pop(name).astype(np.float64)
        arrays = {"Whx": arrays.pop("weight_ih_l0"), "Whh": arrays.pop("weight_hh_l0"),
                  "bh": bh[:, None], **arrays}
        return cls.from_arrays(arrays, dtype, "torch modules")
    return cls.from_arrays(arrays, dtype, "torch modules", cell=cell,
                            num_layers=rnn.num_layers, nonlinearity=nonlinearity,
                            dropout=rnn.dropout)



def model_to_torch(model):
    """:meth:`RNNModel.to_torch`."""
    import torch

    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
    dt = tdtype[model.dtype]
    fused = uses_fused_kernel(model.cell, model.num_layers, model.nonlinearity, model.dropout)
    if not fused:
        kind = CELLS[cell_mode(model.cell, model.nonlinearity)].torch_name
        kwargs = ({"nonlinearity": model.nonlinearity} if len(nonlinearities(model.cell)) > 1
                  else {})
        rnn = getattr(torch.nn, kind)(model.input_size, model.hidden_size, model.num_layers,
                                      batch_first=True, dropout=model.dropout, dtype=dt,
                                      **kwargs)
        rnn.load_state_dict({k: torch.from_numpy(v.copy())
                             for k, v in model.parameters.items() if k not in READOUT})
        linear = torch.nn.Linear(model.hidden_size, model.output_size, dtype=dt)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(model.parameters["Wyh"]))
            linear.bias.copy_(torch.from_numpy(model.parameters["by"][:, 0].copy()))
        return rnn, linear
    rnn = torch.nn.RNN(model.input_size, model.hidden_size, batch_first=True, dtype=dt)
    linear = torch.nn.Linear(model.hidden_size, model.output_size, dtype=dt)
    p = model.parameters
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["Whx"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["Whh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["bh"][:, 0].copy()))
        rnn.bias_hh_l0.zero_()
        linear.weight.copy_(torch.from_numpy(p["Wyh"]))
        linear.bias.copy_(torch.from_numpy(p["by"][:, 0].copy()))
    return rnn, linear
