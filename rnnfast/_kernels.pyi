"""Typed stubs of the compiled kernels (see _kernels.pyx and _kernel_src/ for the layouts
and the math).

Private: the wrappers in functional.py, model.py and modules.py validate every
argument (shapes, one float dtype, C order, BLAS size limits) before calling.
"""

import enum
from collections.abc import Iterable, Sequence
from typing import overload

from typing_extensions import disjoint_base

import numpy as np
import numpy.typing as npt

X_COLUMNS: int
X_ROWS: int
X_INDEX: int

class Activation(enum.IntEnum):
    TANH = 0
    RELU = 1
    SIGMOID = 2

_Floats = npt.NDArray[np.float32] | npt.NDArray[np.float64]

def forward(x_mode: int, x: np.ndarray, h0: _Floats, w_hx: _Floats, w_hh: _Floats,
            w_yh: _Floats, b_h: _Floats, b_y: _Floats, own_products: bool,
            softmax: bool = ...) -> tuple[_Floats, _Floats]: ...
def backward(x_mode: int, x: np.ndarray, h0: _Floats, h: _Floats, dh: _Floats, w_hx: _Floats,
             w_hh: _Floats, b_h: _Floats, dh_is_scratch: bool,
             own_products: bool) -> tuple[_Floats | None, _Floats, _Floats, _Floats, _Floats]: ...
def loss(x_mode: int, x: np.ndarray, h0: _Floats, labels: npt.NDArray[np.intp], w_hx: _Floats,
         w_hh: _Floats, w_yh: _Floats, b_h: _Floats, b_y: _Floats, own_products: bool
         ) -> tuple[float, _Floats, _Floats | None, _Floats, _Floats, _Floats, _Floats, _Floats,
                    _Floats]: ...
def layer_forward(x: _Floats, h0: _Floats, w_ih: _Floats, w_hh: _Floats, bias: _Floats,
                  lengths: npt.NDArray[np.intp] | None, reverse: bool,
                  activation: int, own_products: bool) -> _Floats: ...
def layer_backward(x: _Floats, h0: _Floats, h: _Floats, dh: _Floats, grad_h_n: _Floats,
                   w_ih: _Floats, w_hh: _Floats, lengths: npt.NDArray[np.intp] | None,
                   reverse: bool, activation: int, own_products: bool
                   ) -> tuple[_Floats, _Floats, _Floats, _Floats, _Floats]: ...

def lstm_layer_forward(x: _Floats, h0: _Floats, c0: _Floats, w_ih: _Floats, w_hh: _Floats,
                       bias: _Floats | None, w_hr: _Floats | None,
                       lengths: npt.NDArray[np.intp] | None, reverse: bool
                       ) -> tuple[_Floats, _Floats, _Floats]: ...
def lstm_layer_backward(x: _Floats, h0: _Floats, c0: _Floats, h: _Floats, c: _Floats,
                        gates: _Floats, dh: _Floats, grad_h_n: _Floats, grad_c_n: _Floats,
                        w_ih: _Floats,
                        w_hh: _Floats, w_hr: _Floats | None,
                        lengths: npt.NDArray[np.intp] | None, reverse: bool
                        ) -> tuple[_Floats, _Floats, _Floats, _Floats, _Floats, _Floats,
                                   _Floats | None]: ...
def gru_layer_forward(x: _Floats, h0: _Floats, w_ih: _Floats, w_hh: _Floats,
                      b_ih: _Floats | None, b_hh: _Floats | None,
                      lengths: npt.NDArray[np.intp] | None,
                      reverse: bool) -> tuple[_Floats, _Floats, _Floats]: ...
def gru_layer_backward(x: _Floats, h0: _Floats, h: _Floats, gates: _Floats, hn: _Floats,
                       dh: _Floats, grad_h_n: _Floats, w_ih: _Floats, w_hh: _Floats,
                       lengths: npt.NDArray[np.intp] | None, reverse: bool
                       ) -> tuple[_Floats, _Floats, _Floats, _Floats, _Floats, _Floats]: ...

# the BLAS in use (blas.pxi)
NUMPY_BLAS: str | None
def blas_in_use() -> str: ...
def _numpy_blas_candidates() -> list[str]: ...
def _bind_numpy_blas() -> str | None: ...
def _bind_scipy_blas() -> None: ...
def _use_numpy_blas(enabled: bool) -> None: ...
def _bind_torch_blas(path: str) -> bool: ...
def _use_torch_blas(on: bool) -> None: ...
def _torch_blas_active() -> bool: ...

# the product policy (plan_product in _blas.pxd)
OWN_PRODUCTS_MAX_HIDDEN: int
SEQUENTIAL_PRODUCT_WORK: int
def use_own_products(n_batch: int, n_hidden: int) -> bool: ...
def product_is_sequential(n_rows: int, n_cols: int, n_inner: int) -> bool: ...

@disjoint_base
class Model:
    x_mode: int
    x: np.ndarray
    h0: _Floats
    w_hx: _Floats
    w_hh: _Floats
    w_yh: _Floats
    b_h: _Floats
    b_y: _Floats
    n_x: int
    n_h: int
    n_y: int
    m: int
    n_steps: int
    def __init__(self, x: np.ndarray, h0: _Floats, w_hx: _Floats, w_hh: _Floats, w_yh: _Floats,
                 b_h: _Floats, b_y: _Floats, n_steps: int, x_mode: int = ...) -> None: ...
    @property
    def dtype(self) -> np.dtype: ...
    def astype(self, dtype: npt.DTypeLike) -> Model: ...
    def own_products(self) -> bool: ...
    def run_forward(self, softmax: bool = ...) -> tuple[_Floats, _Floats]: ...
    def run_loss(self, labels: npt.NDArray[np.intp]) -> tuple[
        float, _Floats, _Floats | None, _Floats, _Floats, _Floats, _Floats, _Floats, _Floats]: ...
    def run_backward(self, H: _Floats, dH: _Floats, dH_is_scratch: bool
                     ) -> tuple[_Floats | None, _Floats, _Floats, _Floats, _Floats]: ...
    # Cython's automatic pickling support
    def __reduce_cython__(self) -> object: ...
    def __setstate_cython__(self, __pyx_state: object, /) -> None: ...

@disjoint_base
class ForwardCache(Sequence[tuple[_Floats, _Floats, _Floats, dict[str, _Floats]]]):
    _model: Model
    _h: _Floats
    _parameters: dict[str, _Floats]
    def __init__(self, model: Model, h: _Floats, parameters: dict[str, _Floats]) -> None: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, t: int, /) -> tuple[_Floats, _Floats, _Floats, dict[str, _Floats]]: ...
    @overload
    def __getitem__(self, t: slice, /
                    ) -> list[tuple[_Floats, _Floats, _Floats, dict[str, _Floats]]]: ...
    # Cython's automatic pickling support
    def __reduce_cython__(self) -> object: ...
    def __setstate_cython__(self, __pyx_state: object, /) -> None: ...

def fast_model(x: object, h0: object, parameters: object, cell: bool) -> Model | None: ...
def fast_forward(x: object, h0: object, parameters: object
                 ) -> tuple[_Floats, _Floats, tuple[ForwardCache, _Floats]] | None: ...
def fast_backward(dh: object, caches: object) -> dict[str, _Floats] | None: ...
def _set_force_products(force: bool | None) -> None: ...

# test hooks (tests/kernels/test_blas.py)
def _test_gemm(trans_a: str, trans_b: str, alpha: float, a: _Floats, b: _Floats, beta: float,
               c: _Floats) -> None: ...
def _test_gemv(trans_a: str, alpha: float, a: _Floats, x: _Floats, beta: float,
               y: _Floats) -> None: ...
def _test_vecmat(v: _Floats, a: _Floats, out: _Floats, accumulate: bool) -> None: ...
def _test_plan_product(n_rows: int, n_cols: int, n_inner: int,
                       allowed: Iterable[str] = ...) -> str: ...
