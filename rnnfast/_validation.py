"""Argument checks shared by every public entry point.

Each check raises ``TypeError`` or ``ValueError`` naming the argument and
saying what was expected and what came.  Used by the seed API
(``functional``), the modules (``rnn``, ``model``), the optimizers and the
command line; nothing here imports from the rest of the package.
"""

import math
import numbers

import numpy as np

__all__ = ["INT_MAX", "ACCEPTED_KINDS", "as_array", "common_dtype", "check_shape", "check_ndim",
           "check_sizes", "check_labels", "check_number", "check_positive_int"]

INT_MAX = 2**31 - 1       # BLAS sizes are 32-bit ints
ACCEPTED_KINDS = "fiub"   # real floating, signed and unsigned integers, booleans


def as_array(name, value):
    """``value`` as an ndarray of a real numeric kind, or a clear error."""
    if type(value) is not np.ndarray:
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} cannot be converted to a numeric array: {exc}") from None
    if value.dtype.kind not in ACCEPTED_KINDS:
        raise TypeError(f"{name} has dtype {value.dtype}; expected real numbers "
                        "(floating, integer or boolean)")
    return value


def common_dtype(arrays):
    """float32 when every array is float32 (in either byte order), float64 otherwise."""
    for a in arrays:
        if a.dtype.newbyteorder("=") != np.float32:
            return np.dtype(np.float64)
    return np.dtype(np.float32)


def check_shape(name, array, expected, labels):
    if array.shape != expected:
        raise ValueError(f"{name} has shape {array.shape}; expected {labels} = {expected}")


def check_ndim(name, array, ndim, labels):
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D with shape {labels}; "
                         f"got shape {array.shape}")


def check_sizes(**sizes):
    """Every size is at least 1 and every BLAS dimension fits a 32-bit int."""
    for label, size in sizes.items():
        if size == 0:
            raise ValueError(f"{label} is 0; rnnfast needs at least one "
                             "input feature, hidden unit, output, batch element and time step")
    n_x, n_h, n_y, m, n_steps = (sizes[k] for k in ("n_x", "n_h", "n_y", "m", "T_x"))
    blas_dims = {"m*T_x": m * n_steps, "T_x*n_h": n_steps * n_h, "n_x": n_x,
                 "n_h": n_h, "n_y": n_y}
    for label, size in blas_dims.items():
        if size > INT_MAX:
            raise ValueError(f"{label} = {size} exceeds the 32-bit BLAS limit {INT_MAX}")


def check_labels(y, shape, n_classes, name="y"):
    """Integer class indices of ``shape``, each in [0, n_classes), as a flat intp array."""
    y = as_array(name, y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} has dtype {y.dtype}; expected integer class indices")
    check_ndim(name, y, len(shape), "(m, T_x)" if len(shape) == 2 else str(shape))
    check_shape(name, y, shape, "(m, T_x)" if len(shape) == 2 else str(shape))
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)].flat[0]
        raise ValueError(f"{name} holds class index {bad}; expected 0 <= index < {n_classes}")
    return np.ascontiguousarray(y, dtype=np.intp).reshape(-1)


def check_number(name, value, below=None, finite=True):
    """``value`` as a float: a real number (not bool, not str), finite (``+inf`` allowed
    with ``finite=False``), ``0 <= value``, and ``value < below`` when ``below`` is given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} "
                        f"{str(value)[:40]!r}")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if math.isnan(result) or (finite and math.isinf(result)):
        raise ValueError(f"{name} must be a finite number; got {str(value)[:40]}")
    if result < 0 or (below is not None and result >= below):
        bounds = "non-negative" if below is None else f"in [0, {below})"
        raise ValueError(f"{name} must be {bounds}; got {str(value)[:40]}")
    return result


def check_positive_int(name, value):
    """``value`` as an int: an integer (Python or NumPy, not bool) of at least 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)
