"""Typed stub of the compiled optimizer update (see _updates.pyx)."""

import numpy as np
import numpy.typing as npt

_Floats = npt.NDArray[np.float32] | npt.NDArray[np.float64]

def adam(param: _Floats, grad: _Floats, exp_avg: _Floats, exp_avg_sq: _Floats, lr: float,
         beta1: float, beta2: float, eps: float, weight_decay: float, step: int) -> None: ...
