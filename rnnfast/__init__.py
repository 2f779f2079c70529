"""rnnfast: recurrent networks (RNN, LSTM, GRU) whose forward pass and backpropagation
through time run in compiled Cython kernels.

``rnn_forward``, ``rnn_backward`` and the other functions below are drop-in
replacements for the plain NumPy ones in :mod:`rnnfast.reference` (same
arguments, shapes, dict keys and cache format); :class:`RNN`, :class:`LSTM`
and :class:`GRU` are NumPy modules with PyTorch's semantics; :class:`RNNModel`
and :mod:`rnnfast.optim` train a char-level model (:mod:`rnnfast.training`,
``python -m rnnfast train``).
"""

from rnnfast.cli import startup as _startup

if _startup.starting_as_command():            # `python -m rnnfast ...`: Ctrl-C during the
    _startup.exit_quietly_on_interrupt()       # imports below exits 130 in one line

try:
    from rnnfast import _kernels  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "rnnfast's compiled extension is missing. Install the package with "
        "'pip install .' (or 'pip install -e .' for development) and run Python "
        "from outside the source checkout, or from it after an editable install."
    ) from exc

from rnnfast import optim, reference
from rnnfast.functional import (
    ForwardCache,
    rnn_backward,
    rnn_cell_backward,
    rnn_cell_forward,
    rnn_forward,
    rnn_loss,
)
from rnnfast.model import RNNModel
from rnnfast.modules import GRU, LSTM, RNN, is_grad_enabled, no_grad
from rnnfast.optim import clip_grad_norm, clip_grad_value

__version__ = "0.1.0"

__all__ = [
    "ForwardCache",
    "GRU",
    "LSTM",
    "RNN",
    "RNNModel",
    "clip_grad_norm",
    "clip_grad_value",
    "is_grad_enabled",
    "no_grad",
    "optim",
    "reference",
    "rnn_backward",
    "rnn_cell_backward",
    "rnn_cell_forward",
    "rnn_forward",
    "rnn_loss",
]
