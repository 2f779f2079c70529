"""Typed stubs of the compiled kernels (see _kernels.pyx for the layouts and the math).

Private: the wrappers in functional.py, model.py and modules.py validate every
argument (shapes, one float dtype, C order, BLAS size limits) before calling.
"""

import enum
from collections.abc import Sequence
from typing import overload

import numpy as np
import numpy.typing as npt

X_COLUMNS: int
X_ROWS: int
X_INDEX: int

class Activation(enum.IntEnum):
    TANH = 0
    RELU = 1
    SIGMOID = 2

Floats = npt.NDArray[np.float32] | npt.NDArray[np.float64]

def forward(x_mode: int, x: np.ndarray, h0: Floats, w_hx: Floats, w_hh: Floats,
            w_yh: Floats, b_h: Floats, b_y: Floats, own_products: bool,
            softmax: bool = ...) -> tuple[Floats, Floats]: ...
def backward(x_mode: int, x: np.ndarray, h0: Floats, h: Floats, dh: Floats, w_hx: Floats,
             w_hh: Floats, b_h: Floats, dh_is_scratch: bool,
             own_products: bool) -> tuple[Floats | None, Floats, Floats, Floats, Floats]: ...
def loss(x_mode: int, x: np.ndarray, h0: Floats, labels: npt.NDArray[np.intp], w_hx: Floats,
         w_hh: Floats, w_yh: Floats, b_h: Floats, b_y: Floats, own_products: bool
         ) -> tuple[float, Floats, Floats | None, Floats, Floats, Floats, Floats, Floats,
                    Floats]: ...
def layer_forward(x: Floats, h0: Floats, w_ih: Floats, w_hh: Floats, bias: Floats,
                  lengths: npt.NDArray[np.intp] | None, reverse: bool,
                  activation: int, own_products: bool) -> Floats: ...
def layer_backward(x: Floats, h0: Floats, h: Floats, dh: Floats, grad_h_n: Floats,
                   w_ih: Floats, w_hh: Floats, lengths: npt.NDArray[np.intp] | None,
                   reverse: bool, activation: int, own_products: bool
                   ) -> tuple[Floats, Floats, Floats, Floats, Floats]: ...

def lstm_layer_forward(x: Floats, h0: Floats, c0: Floats, w_ih: Floats, w_hh: Floats,
                       bias: Floats | None, w_hr: Floats | None,
                       lengths: npt.NDArray[np.intp] | None, reverse: bool
                       ) -> tuple[Floats, Floats, Floats]: ...
def lstm_layer_backward(x: Floats, h0: Floats, c0: Floats, h: Floats, c: Floats, gates: Floats,
                        dh: Floats, grad_h_n: Floats, grad_c_n: Floats, w_ih: Floats,
                        w_hh: Floats, w_hr: Floats | None,
                        lengths: npt.NDArray[np.intp] | None, reverse: bool
                        ) -> tuple[Floats, Floats, Floats, Floats, Floats, Floats,
                                   Floats | None]: ...
def gru_layer_forward(x: Floats, h0: Floats, w_ih: Floats, w_hh: Floats, b_ih: Floats | None,
                      b_hh: Floats | None, lengths: npt.NDArray[np.intp] | None,
                      reverse: bool) -> tuple[Floats, Floats, Floats]: ...
def gru_layer_backward(x: Floats, h0: Floats, h: Floats, gates: Floats, hn: Floats, dh: Floats,
                       grad_h_n: Floats, w_ih: Floats, w_hh: Floats,
                       lengths: npt.NDArray[np.intp] | None, reverse: bool
                       ) -> tuple[Floats, Floats, Floats, Floats, Floats, Floats]: ...

OWN_PRODUCTS_MAX_HIDDEN: int
def use_own_products(n_batch: int, n_hidden: int) -> bool: ...

class Model:
    x_mode: int
    x: np.ndarray
    h0: Floats
    w_hx: Floats
    w_hh: Floats
    w_yh: Floats
    b_h: Floats
    b_y: Floats
    n_x: int
    n_h: int
    n_y: int
    m: int
    n_steps: int
    def __init__(self, x: np.ndarray, h0: Floats, w_hx: Floats, w_hh: Floats, w_yh: Floats,
                 b_h: Floats, b_y: Floats, n_steps: int, x_mode: int = ...) -> None: ...
    @property
    def dtype(self) -> np.dtype: ...
    def astype(self, dtype: npt.DTypeLike) -> Model: ...
    def own_products(self) -> bool: ...
    def run_forward(self, softmax: bool = ...) -> tuple[Floats, Floats]: ...
    def run_loss(self, labels: npt.NDArray[np.intp]) -> tuple[
        float, Floats, Floats | None, Floats, Floats, Floats, Floats, Floats, Floats]: ...
    def run_backward(self, H: Floats, dH: Floats, dH_is_scratch: bool
                     ) -> tuple[Floats | None, Floats, Floats, Floats, Floats]: ...

class ForwardCache(Sequence[tuple[Floats, Floats, Floats, dict[str, Floats]]]):
    _model: Model
    _h: Floats
    _parameters: dict[str, Floats]
    def __init__(self, model: Model, h: Floats, parameters: dict[str, Floats]) -> None: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, t: int) -> tuple[Floats, Floats, Floats, dict[str, Floats]]: ...
    @overload
    def __getitem__(self, t: slice) -> list[tuple[Floats, Floats, Floats, dict[str, Floats]]]: ...

def fast_model(x: object, h0: object, parameters: object, cell: bool) -> Model | None: ...
def fast_forward(x: object, h0: object, parameters: object
                 ) -> tuple[Floats, Floats, tuple[ForwardCache, Floats]] | None: ...
def fast_backward(dh: object, caches: object) -> dict[str, Floats] | None: ...
def _set_force_products(force: bool | None) -> None: ...

# test hooks (tests/test_blas.py)
def _test_gemm(trans_a: str, trans_b: str, alpha: float, a: Floats, b: Floats, beta: float,
               c: Floats) -> None: ...
def _test_gemv(trans_a: str, alpha: float, a: Floats, x: Floats, beta: float,
               y: Floats) -> None: ...
def _test_vecmat(v: Floats, a: Floats, out: Floats, accumulate: bool) -> None: ...
