# rnnfast's compiled kernels: one extension, built from the include files of
# rnnfast/_kernel_src/ (one concern each; the folder is not named _kernels so
# that it can never be imported in place of this module, see CONTRIBUTING.md):
#
#   common.pxi     vectorised row operations, row helpers, the recurrent weight gradient
#   blas.pxi       BLAS binding at import, the product policy for Python and the time loops,
#                  and the BLAS test hooks
#   elman.pxi      the Elman recurrence (seed model and nn.RNN layer): math, loops, entry points
#   elman_team.pxi its serial loops split by columns among a thread team (_team.h),
#                  and the team's loop every cell's team runs
#   gated.pxi      the LSTM and GRU layers: loops and entry points
#   gated_team.pxi the LSTM's serial loops on the team
#   seed_api.pxi   the seed API's Model, ForwardCache and fast path
#   generate.pxi   text generation: the whole sampling loop of RNNModel (any cell, any layers)
#
# The contract of every kernel (the `nogil` functions of the include files):
#   - sizes and loop options travel in one Dims struct, the buffers in one
#     struct per cell family (ElmanBuffers, LstmBuffers, GruBuffers), both
#     filled once by the entry point (a `def`);
#   - buffers are `void *` in the structs: an entry point fills them from any
#     ndarray without knowing its dtype, and a kernel's first lines give each
#     buffer its element type (`floating`), the only place that type is stated;
#   - a kernel is one fused function `kernel(floating tag, const Dims *, void *buffers)`;
#     _call picks its float or double version by Dims.float32, the one dtype
#     dispatch of the module (_run: the same, with the GIL released);
#   - kernels never allocate and never raise: the Python wrapper (functional.py,
#     modules.py) has validated every shape, checked BLAS sizes against INT_MAX,
#     and the entry point has allocated every output and scratch array.

import operator
from collections.abc import Sequence

import numpy as np

cimport numpy as cnp
from cython cimport floating
from libc.math cimport tanh, tanhf
from libc.string cimport memset

from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer

from rnnfast cimport _blas
from rnnfast._blas cimport (gemm, gemv, plan_product, rf_blas_bind, rf_blas_bind_torch,
                            rf_blas_enable_numpy, rf_blas_numpy_active, rf_blas_scipy_bound,
                            rf_blas_set_scipy, rf_blas_torch_active, rf_blas_use_torch,
                            rf_xsmm_call_d, rf_xsmm_call_f, rf_xsmm_configure,
                            rf_xsmm_dispatch_d, rf_xsmm_dispatch_f, rf_xsmm_init)

cnp.import_array()


cdef struct Dims:
    # Sizes and loop options of one entry point's call (unused ones are 0).
    bint float32                # every float buffer is float32 (else float64)
    int n_batch                 # m, the sequences
    int n_steps                 # T
    int n_input                 # n_x / n_in, the input width
    int n_hidden                # n_h / H, the cell width
    int n_proj                  # P, the state width (LSTM projection; else n_hidden)
    int n_output                # n_y (the seed model's output layer)
    bint reverse                # steps run from T-1 down to 0 ("previous" is t+1)
    const Py_ssize_t *lengths   # (m,) valid steps of each sequence, or NULL (all valid)
    int activation              # the Elman cell's Activation
    int x_mode                  # the form of the seed model's x (X_COLUMNS, X_ROWS, X_INDEX)
    bint own_products           # Elman: recurrent products in the hand-written loops
    bint packed                 # recurrent products in LIBXSMM kernels (PRODUCT_PACKED)
    int team                    # members of the thread team running the steps, or 0
    bint softmax                # seed forward: softmax outputs (else logits)


ctypedef void (*kernel_f32)(float, const Dims *, void *) noexcept nogil
ctypedef void (*kernel_f64)(double, const Dims *, void *) noexcept nogil


cdef inline void _call(kernel_f32 f32, kernel_f64 f64, const Dims *d,
                       void *buffers) noexcept nogil:
    """Call a kernel's float or double version, by ``d.float32``."""
    if d.float32:
        f32(0, d, buffers)
    else:
        f64(0, d, buffers)


cdef inline void _run(kernel_f32 f32, kernel_f64 f64, const Dims *d, void *buffers) noexcept:
    """:func:`_call` without the GIL (for the time loops; copies too short to be worth
    releasing it call ``_call`` directly)."""
    with nogil:
        _call(f32, f64, d, buffers)


cdef inline Dims _dims(cnp.ndarray like, int n_batch, int n_steps, int n_input,
                       int n_hidden) noexcept:
    """Dims of the given sizes (n_proj = n_hidden, options off) for ``like``'s dtype."""
    cdef Dims d
    memset(&d, 0, sizeof(Dims))
    d.float32 = cnp.PyArray_TYPE(like) == cnp.NPY_FLOAT32
    d.n_batch, d.n_steps, d.n_input, d.n_hidden = n_batch, n_steps, n_input, n_hidden
    d.n_proj = n_hidden
    return d


# The entry points take ndarrays and read their data pointers directly: the
# wrapper (functional.py, modules.py) has checked that every array is C-contiguous,
# of one float dtype (that of h0), of the documented shape, and that class
# indices are intp values in range, so no buffer is acquired or checked here
# (acquiring typed memoryviews costs about 0.2 us per array, more than a whole
# small model's step).  The outputs and scratch are allocated at C speed,
# before the GIL is released.

cdef inline void *_ptr(cnp.ndarray a) noexcept:
    return NULL if a is None else cnp.PyArray_DATA(a)


cdef inline cnp.ndarray _empty_like(cnp.ndarray a):
    return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(a), cnp.PyArray_DIMS(a), cnp.PyArray_TYPE(a), 0)


cdef inline cnp.ndarray _empty3(cnp.npy_intp d0, cnp.npy_intp d1, cnp.npy_intp d2, int type_num):
    cdef cnp.npy_intp dims[3]
    dims[0], dims[1], dims[2] = d0, d1, d2
    return cnp.PyArray_EMPTY(3, dims, type_num, 0)


cdef inline cnp.ndarray _scratch(bint needed, cnp.ndarray like):
    """An array shaped like ``like`` when ``needed``, else a 1-element placeholder."""
    cdef cnp.npy_intp one = 1
    if needed:
        return _empty_like(like)
    return cnp.PyArray_EMPTY(1, &one, cnp.PyArray_TYPE(like), 0)


include "_kernel_src/common.pxi"
include "_kernel_src/blas.pxi"
include "_kernel_src/elman_team.pxi"
include "_kernel_src/elman.pxi"
include "_kernel_src/gated.pxi"
include "_kernel_src/gated_team.pxi"
include "_kernel_src/seed_api.pxi"
include "_kernel_src/generate.pxi"
