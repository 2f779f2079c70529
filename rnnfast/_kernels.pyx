# Compiled time loops of the vanilla RNN: forward and backpropagation through time.
#
# Internal layout (all C-contiguous):
#   x       the inputs, in one of three forms (x_mode):
#           X_COLUMNS  (n_x, m*T)  the seed's x of shape (n_x, m, T) read as a matrix;
#                                  its transpose X (m*T, n_x) has one row per
#                                  (batch i, step t), row r = i*T + t: "batch-major";
#           X_ROWS     (m*T, n_x)  X itself (batch-first input (m, T, n_x));
#           X_INDEX    (m*T,)      class indices: row r of X is one-hot at x[r], so
#                                  X Whx^T is a gather of Whx's columns.
#   h       (m, T, n_h)    hidden states, batch-major rows; step t of all batch
#                          elements is an (m, n_h) block with row stride T*n_h.
#   y       (m, T, n_y)    softmax outputs, batch-major rows.
#   h0      (m, n_h)       initial state, one row per batch element.
#   weights as given: Whx (n_h, n_x), Whh (n_h, n_h), Wyh (n_y, n_h); biases 1-D.
#
# Forward, with Z the pre-activations:
#   Z  = X Whx^T                          one GEMM over all steps
#   H_t = tanh(Z_t + H_{t-1} Whh^T + bh)  the only serial part
#   Y  = softmax_rows(H Wyh^T + by)       one GEMM over all steps
#
# Backward (BPTT; e.g. Werbos 1990, or any derivation of the chain rule through
# h_t = tanh(z_t)): with G_t the gradient reaching H_t from step t+1 (G_{T-1} = 0),
#   dZ_t = (dH_t + G_t) * (1 - H_t^2)     G_{t-1} = dZ_t Whh   (serial)
#   dWhx = dZ^T X,  dX = dZ Whx,  dbh = column sums of dZ     (after the loop)
#   dWhh = sum_t dZ_t^T H_{t-1}  with H_{-1} = h0             (after the loop)
# and dh0 = G_{-1}.
#
# The nn.RNN-style layers (rnnfast.RNN) use the same recurrence with options:
# relu instead of tanh (any Activation), the reverse direction (steps run from
# T-1 down to 0, so "previous" means t+1), and per-sequence lengths: a step
# t outside sequence i's length leaves its state unchanged (the state is carried,
# its dZ is 0 and the gradient G passes through), so each sequence's final state
# is the one at its own last valid step.
#
# Kernels never allocate and never raise: the Python wrapper (functional.py) has
# validated every shape, checked BLAS sizes against INT_MAX and allocated every
# output and scratch array.

import operator
from collections.abc import Sequence

import numpy as np

cimport numpy as cnp
from cython cimport floating
from libc.math cimport tanh, tanhf

from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer

from rnnfast._blas cimport (gemm, gemv, rf_blas_bind, rf_blas_bind_torch, rf_blas_enable_numpy,
                            rf_blas_numpy_active, rf_blas_scipy_bound, rf_blas_set_scipy,
                            rf_blas_torch_active, rf_blas_use_torch)

cnp.import_array()


def _numpy_blas_candidates():
    """Paths of the OpenBLAS that NumPy's wheels bundle (``numpy.libs``), if any."""
    import glob
    import os
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    return sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*.so")))


def _bind_numpy_blas():
    """Call NumPy's own BLAS from the kernels when it can be bound; return its path or None.

    ``RNNFAST_BLAS=scipy`` in the environment keeps ``scipy.linalg.cython_blas``.
    """
    import os
    if os.environ.get("RNNFAST_BLAS", "").lower() == "scipy":
        return None
    for path in _numpy_blas_candidates():
        if rf_blas_bind(os.fsencode(path)):
            return path
    return None


cdef void *_capsule_pointer(object capsule) except NULL:
    """The C function exported in a Cython ``__pyx_capi__`` capsule."""
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


def _bind_scipy_blas():
    """Bind ``scipy.linalg.cython_blas``'s routines, the fallback; imports SciPy on first use."""
    if rf_blas_scipy_bound():
        return
    from scipy.linalg import cython_blas
    capi = cython_blas.__pyx_capi__
    rf_blas_set_scipy(_capsule_pointer(capi["dgemm"]), _capsule_pointer(capi["sgemm"]),
                      _capsule_pointer(capi["dgemv"]), _capsule_pointer(capi["sgemv"]))


#: The BLAS library the kernels call: NumPy's OpenBLAS (its path), or None
#: for SciPy's (``scipy.linalg.cython_blas``, imported only in that case).
NUMPY_BLAS = _bind_numpy_blas()
if NUMPY_BLAS is None:
    _bind_scipy_blas()


def blas_in_use():
    """``"numpy"`` when the kernels call NumPy's own BLAS, else ``"scipy"``."""
    return "numpy" if rf_blas_numpy_active() else "scipy"


def _use_numpy_blas(bint enabled):
    """Tests only: switch between NumPy's BLAS (when bound) and SciPy's."""
    if not enabled:
        _bind_scipy_blas()
    rf_blas_enable_numpy(enabled)


def _bind_torch_blas(path):
    """Bind torch's BLAS (``dgemm_``, ... of the loaded library ``path``); True on success.

    Called by ``rnnfast.torch`` at import; ``RNNFAST_BLAS=numpy`` or ``scipy``
    in the environment keeps the kernels off torch's BLAS.
    """
    import os
    if os.environ.get("RNNFAST_BLAS", "").lower() in ("numpy", "scipy"):
        return False
    return bool(rf_blas_bind_torch(os.fsencode(path)))


def _use_torch_blas(bint on):
    """Make this thread's kernel calls use torch's BLAS (when bound) or not."""
    rf_blas_use_torch(on)


def _torch_blas_active():
    """Whether this thread's kernel calls use torch's BLAS now."""
    return bool(rf_blas_torch_active())

# Forms of the input x (see the top of this file).
cpdef enum:
    X_COLUMNS = 0
    X_ROWS = 1
    X_INDEX = 2

# The activations, each one (f, f') pair defined in _vecmath_impl.h (the codes
# are its RF_ACT_* numbers).
cpdef enum Activation:
    TANH = 0
    RELU = 1
    SIGMOID = 2


cdef extern from "_vecmath.h" nogil:
    double rf_xent_row_d(double *row, Py_ssize_t label, Py_ssize_t n, double scale)
    double rf_xent_row_f(float *row, Py_ssize_t label, Py_ssize_t n, float scale)
    void rf_bias_act_d(int act, double *row, const double *bias, Py_ssize_t n)
    void rf_bias_act_f(int act, float *row, const float *bias, Py_ssize_t n)
    void rf_bias_softmax_d(double *row, const double *bias, Py_ssize_t n)
    void rf_bias_softmax_f(float *row, const float *bias, Py_ssize_t n)
    void rf_act_grad_d(int act, double *dz, const double *dh, const double *grad,
                       const double *y, double *db, Py_ssize_t n)
    void rf_act_grad_f(int act, float *dz, const float *dh, const float *grad,
                       const float *y, float *db, Py_ssize_t n)
    void rf_vecmat_d(const double *v, const double *a, Py_ssize_t n_k, Py_ssize_t n_j,
                     Py_ssize_t lda, double *out, int accumulate)
    void rf_vecmat_f(const float *v, const float *a, Py_ssize_t n_k, Py_ssize_t n_j,
                     Py_ssize_t lda, float *out, int accumulate)
    void rf_lstm_cell_d(double *a, const double *bias, const double *c_prev, double *c,
                        double *m, Py_ssize_t H)
    void rf_lstm_cell_f(float *a, const float *bias, const float *c_prev, float *c,
                        float *m, Py_ssize_t H)
    void rf_lstm_cell_grad_d(const double *a, const double *c, const double *c_prev,
                             const double *dm, double *dc, double *da, Py_ssize_t H)
    void rf_lstm_cell_grad_f(const float *a, const float *c, const float *c_prev,
                             const float *dm, float *dc, float *da, Py_ssize_t H)
    void rf_gru_cell_d(double *gi, const double *gh, const double *b_ih, const double *b_hh,
                       const double *h_prev, double *hn, double *h, Py_ssize_t H)
    void rf_gru_cell_f(float *gi, const float *gh, const float *b_ih, const float *b_hh,
                       const float *h_prev, float *hn, float *h, Py_ssize_t H)
    void rf_gru_cell_grad_d(const double *gates, const double *hn, const double *h_prev,
                            double *g, double *dgi, double *dgh, Py_ssize_t H)
    void rf_gru_cell_grad_f(const float *gates, const float *hn, const float *h_prev,
                            float *g, float *dgi, float *dgh, Py_ssize_t H)


cdef inline void _bias_act(floating *row, const floating *bias, Py_ssize_t n,
                           int activation) noexcept nogil:
    """row = f(row + bias), in place (vectorised), for the activation's f."""
    if floating is float:
        rf_bias_act_f(activation, row, bias, n)
    else:
        rf_bias_act_d(activation, row, bias, n)


cdef inline void _bias_softmax(floating *row, const floating *bias, Py_ssize_t n) noexcept nogil:
    """row = softmax(row + bias), in place; the maximum is subtracted first."""
    if floating is float:
        rf_bias_softmax_f(row, bias, n)
    else:
        rf_bias_softmax_d(row, bias, n)


cdef inline void _act_grad(floating *dz, const floating *dh, const floating *grad,
                           const floating *h, floating *db, Py_ssize_t n,
                           int activation) noexcept nogil:
    """dz = (dh + grad) * f'(h) for the activation's f' (in terms of h = f(z)); db += dz."""
    if floating is float:
        rf_act_grad_f(activation, dz, dh, grad, h, db, n)
    else:
        rf_act_grad_d(activation, dz, dh, grad, h, db, n)


cdef inline double _xent_row(floating *row, Py_ssize_t label, Py_ssize_t n,
                            floating scale) noexcept nogil:
    """Row loss -log softmax(row)[label]; row becomes (softmax - onehot) * scale."""
    if floating is float:
        return rf_xent_row_f(row, label, n, scale)
    else:
        return rf_xent_row_d(row, label, n, scale)


cdef inline void _vecmat(const floating *v, const floating *a, Py_ssize_t n_k, Py_ssize_t n_j,
                         Py_ssize_t lda, floating *out, bint accumulate) noexcept nogil:
    """out (+)= v^T A for row-major A (n_k, n_j); hand-written, for small products."""
    if floating is float:
        rf_vecmat_f(v, a, n_k, n_j, lda, out, accumulate)
    else:
        rf_vecmat_d(v, a, n_k, n_j, lda, out, accumulate)


cdef void _times_whh(const floating *v, int ld_v, const floating *w_hh,
                     const floating *w_rows, bint transposed, floating *out, int ld_out,
                     bint accumulate, int n_hidden, int n_batch, bint own_products) noexcept nogil:
    """out (+)= V M for the n_batch rows of V, with M = Whh^T (``transposed``) or Whh.

    ``w_rows`` is M itself, row-major, for the hand-written loops
    (``own_products``); BLAS reads ``w_hh`` with the transpose flag.
    """
    cdef Py_ssize_t i
    if own_products:
        # out_i (+)= v_i M                 (n_h,) = (n_h,) (n_h, n_h), each row i
        for i in range(n_batch):
            _vecmat(v + i * ld_v, w_rows, n_hidden, n_hidden, n_hidden, out + i * ld_out,
                    accumulate)
    else:
        # out (+)= V M                     (m, n_h) = (m, n_h) (n_h, n_h), gemv for one row
        _rows_times(v, ld_v, w_hh, transposed, out, ld_out, 1 if accumulate else 0, n_batch,
                    n_hidden, n_hidden)


cdef void _project_input(int x_mode, const void *x, const floating *w_hx, floating *z,
                         int n_input, int n_hidden, int n_rows) noexcept nogil:
    """Z = X Whx^T                         (m*T, n_h) = (m*T, n_x) (n_x, n_h)"""
    cdef const Py_ssize_t *index = <const Py_ssize_t *>x
    cdef Py_ssize_t r, j, k
    if x_mode == X_COLUMNS:
        gemm(c'T', c'T', n_rows, n_hidden, n_input, 1, <const floating *>x, n_rows,
             w_hx, n_input, 0, z, n_hidden)
    elif x_mode == X_ROWS:
        gemm(c'N', c'T', n_rows, n_hidden, n_input, 1, <const floating *>x, n_input,
             w_hx, n_input, 0, z, n_hidden)
    else:
        # Z[r, :] = Whx[:, x[r]]
        for r in range(n_rows):
            k = index[r]
            for j in range(n_hidden):
                z[r * n_hidden + j] = w_hx[j * n_input + k]


cdef void _recur_forward(floating *h, const floating *h0, const floating *w_hh,
                         const floating *b_h, floating *w_hh_t, const Py_ssize_t *lengths,
                         int n_hidden, int n_batch, int n_steps, bint reverse, int activation,
                         bint own_products) noexcept nogil:
    """The serial part of the forward pass: H_t = f(Z_t + H_prev Whh^T + bh).

    ``h`` (m, T, n_h) holds Z = X Whx^T on entry and the states on return.
    ``lengths`` (m,) may be NULL (every step valid); ``w_hh_t`` is scratch for
    Whh^T when ``own_products``.
    """
    cdef int ld_step = n_steps * n_hidden        # row stride of one step's block
    cdef int ld_prev
    cdef Py_ssize_t s, t, i, j
    cdef const floating *h_prev
    cdef floating *z_t
    cdef floating *row

    if own_products:
        # Whh^T, row-major, so that each step is a row-vector times matrix
        for i in range(n_hidden):
            for j in range(n_hidden):
                w_hh_t[j * n_hidden + i] = w_hh[i * n_hidden + j]

    for s in range(n_steps):
        t = n_steps - 1 - s if reverse else s
        z_t = h + t * n_hidden
        if s == 0:
            h_prev, ld_prev = h0, n_hidden
        else:
            h_prev, ld_prev = h + (t + 1 if reverse else t - 1) * n_hidden, ld_step
        # Z_t += H_prev Whh^T              (m, n_h) = (m, n_h) (n_h, n_h)
        _times_whh(h_prev, ld_prev, w_hh, w_hh_t, True, z_t, ld_step, True,
                   n_hidden, n_batch, own_products)
        for i in range(n_batch):
            row = z_t + i * ld_step
            if lengths != NULL and t >= lengths[i]:
                # past sequence i's end: its state is carried unchanged
                for j in range(n_hidden):
                    row[j] = h_prev[i * ld_prev + j]
            else:
                # H_t = f(Z_t + bh)
                _bias_act(row, b_h, n_hidden, activation)


cdef void _recur_backward(const floating *h, const floating *dh, floating *dz,
                          floating *grad, floating *carry, const floating *w_hh,
                          floating *db_h_out, const Py_ssize_t *lengths,
                          int n_hidden, int n_batch, int n_steps, bint reverse, int activation,
                          bint own_products) noexcept nogil:
    """The serial part of BPTT, in the reverse of the forward's step order.

    ``grad`` (m, n_h) holds on entry the gradient reaching the final states
    (zeros, or the caller's dL/dh_n) and on return dL/dh0.  ``dz`` (m, T, n_h)
    may be ``dh``.  ``carry`` (m, n_h) is scratch, used with ``lengths``.
    """
    cdef int ld_step = n_steps * n_hidden
    cdef Py_ssize_t s, t, i, j, off
    cdef floating *dz_t

    for j in range(n_hidden):
        db_h_out[j] = 0
    for s in range(n_steps):
        t = s if reverse else n_steps - 1 - s
        dz_t = dz + t * n_hidden
        for i in range(n_batch):
            off = i * ld_step + t * n_hidden
            if lengths != NULL and t >= lengths[i]:
                # a carried state: no pre-activation, G passes through unchanged
                for j in range(n_hidden):
                    dz[off + j] = 0
                    carry[i * n_hidden + j] = grad[i * n_hidden + j]
            else:
                # dZ_t = (dH_t + G_t) * f'(H_t);  dbh += dZ_t
                _act_grad(dz + off, dh + off, grad + i * n_hidden, h + off, db_h_out,
                          n_hidden, activation)
        # G = dZ_t Whh                     (m, n_h) = (m, n_h) (n_h, n_h)
        _times_whh(dz_t, ld_step, w_hh, w_hh, False, grad, n_hidden, False,
                   n_hidden, n_batch, own_products)
        if lengths != NULL:
            for i in range(n_batch):
                if t >= lengths[i]:
                    for j in range(n_hidden):
                        grad[i * n_hidden + j] = carry[i * n_hidden + j]


cdef void _input_grads(int x_mode, const void *x, const floating *dz, const floating *w_hx,
                       floating *dx_out, floating *dw_hx_out,
                       int n_input, int n_hidden, int n_rows) noexcept nogil:
    """dWhx = dZ^T X and dX = dZ Whx (in x's form; none for class indices)."""
    cdef const Py_ssize_t *index = <const Py_ssize_t *>x
    cdef Py_ssize_t i, j, k
    if x_mode == X_COLUMNS:
        # dWhx = dZ^T X                   (n_h, n_x) = (n_h, m*T) (m*T, n_x)
        gemm(c'T', c'T', n_hidden, n_input, n_rows, 1, dz, n_hidden,
             <const floating *>x, n_rows, 0, dw_hx_out, n_input)
        # dX^T = Whx^T dZ^T, into x's (n_x, m*T) layout
        gemm(c'T', c'T', n_input, n_rows, n_hidden, 1, w_hx, n_input, dz, n_hidden,
             0, dx_out, n_rows)
    elif x_mode == X_ROWS:
        # dWhx = dZ^T X                   (n_h, n_x) = (n_h, m*T) (m*T, n_x)
        gemm(c'T', c'N', n_hidden, n_input, n_rows, 1, dz, n_hidden,
             <const floating *>x, n_input, 0, dw_hx_out, n_input)
        # dX = dZ Whx                     (m*T, n_x) = (m*T, n_h) (n_h, n_x)
        gemm(c'N', c'N', n_rows, n_input, n_hidden, 1, dz, n_hidden, w_hx, n_input,
             0, dx_out, n_input)
    else:
        # dWhx[:, x[r]] += dZ[r, :]; class indices have no gradient
        for j in range(n_hidden * n_input):
            dw_hx_out[j] = 0
        for i in range(n_rows):
            k = index[i]
            for j in range(n_hidden):
                dw_hx_out[j * n_input + k] += dz[i * n_hidden + j]


cdef bint _rows_finite(const floating *a, Py_ssize_t n_rows, Py_ssize_t ld,
                       Py_ssize_t n) noexcept nogil:
    """Every value in n_rows rows of n values (row stride ld) is finite."""
    cdef Py_ssize_t i, j
    cdef floating v
    for i in range(n_rows):
        for j in range(n):
            v = a[i * ld + j]
            if v - v != 0:          # NaN or +-Inf
                return False
    return True


cdef void _hidden_weight_grad(floating *dz, const floating *h, const floating *h0,
                              floating *dw_hh_out, int n_hidden, int n_batch, int n_steps,
                              bint reverse) noexcept nogil:
    """dWhh = sum_t dZ_t^T H_prev(t) for the Elman cell (see _recurrent_weight_grad)."""
    _recurrent_weight_grad(dz, n_hidden, h, h0, n_hidden, dw_hh_out, n_batch, n_steps, reverse)


cdef void _recurrent_weight_grad(floating *dz, int n_out, const floating *h, const floating *h0,
                                 int n_in, floating *dw_out, int n_batch, int n_steps,
                                 bint reverse) noexcept nogil:
    """dW = sum_t dZ_t^T H_prev(t), with H_prev(first step) = h0.

    ``dz`` (m, T, n_out) holds the gradients of the pre-activations of the
    recurrent product H_prev W^T, ``h`` (m, T, n_in) the states and ``h0``
    (m, n_in); ``dw_out`` is W's shape (n_out, n_in).

    In the flat batch-major rows, row r of dZ pairs with row r-1 of H (r+1 when
    reversed) except at each sequence's first step, where it must pair with h0
    instead of a neighbouring sequence's state.  The first steps' products with
    h0 come first (one GEMM of m rows); then those dZ rows are set to zero, so
    that one GEMM over all shifted pairs adds exactly nothing for the wrong
    partners.  Every product is then a term of the true sum (no cancellation:
    the result is as accurate as one GEMM per sequence, whatever the states'
    magnitudes).  A zero row times a non-finite state would give NaN instead
    of nothing, so when a wrong partner is not finite every sequence gets its
    own GEMM instead.

    On return the first steps' rows of ``dz`` are zero.
    """
    cdef int n_rows = n_batch * n_steps
    cdef int ld_z = n_steps * n_out, ld_h = n_steps * n_in      # one sequence's block
    cdef int first = (n_steps - 1) * n_out if reverse else 0   # dz offset of the first step
    cdef int last = 0 if reverse else (n_steps - 1) * n_in     # h offset of the last step
    cdef Py_ssize_t i, j
    # dW = dZ_first^T h0                   (n_out, n_in) = (n_out, m) (m, n_in)
    gemm(c'T', c'N', n_out, n_in, n_batch, 1, dz + first, ld_z, h0, n_in, 0, dw_out, n_in)
    if n_steps == 1:
        return
    # The wrong partners are the last steps of sequences 0..m-2 (1..m-1 reversed).
    if not _rows_finite(h + last + (ld_h if reverse else 0), n_batch - 1, ld_h, n_in):
        # dW += sum_i dZ_i[later steps]^T H_i[earlier steps]
        for i in range(n_batch):
            if reverse:
                gemm(c'T', c'N', n_out, n_in, n_steps - 1, 1, dz + i * ld_z, n_out,
                     h + i * ld_h + n_in, n_in, 1, dw_out, n_in)
            else:
                gemm(c'T', c'N', n_out, n_in, n_steps - 1, 1, dz + i * ld_z + n_out, n_out,
                     h + i * ld_h, n_in, 1, dw_out, n_in)
        return
    for i in range(n_batch):
        for j in range(n_out):
            dz[i * ld_z + first + j] = 0
    if reverse:
        # dW += dZ[:-1]^T H[1:]            (n_out, n_in) = (n_out, m*T-1) (m*T-1, n_in)
        gemm(c'T', c'N', n_out, n_in, n_rows - 1, 1, dz, n_out, h + n_in, n_in, 1,
             dw_out, n_in)
    else:
        # dW += dZ[1:]^T H[:-1]            (n_out, n_in) = (n_out, m*T-1) (m*T-1, n_in)
        gemm(c'T', c'N', n_out, n_in, n_rows - 1, 1, dz + n_out, n_out, h, n_in, 1,
             dw_out, n_in)


cdef void _forward(int x_mode, const void *x, const floating *h0,
                   const floating *w_hx, const floating *w_hh, const floating *w_yh,
                   const floating *b_h, const floating *b_y,
                   floating *h_out, floating *y_out, floating *w_hh_t,
                   int n_input, int n_hidden, int n_output,
                   int n_batch, int n_steps, bint own_products, bint softmax) noexcept nogil:
    """The seed model's forward pass: states and softmax outputs (or logits)."""
    cdef int n_rows = n_batch * n_steps
    cdef Py_ssize_t i, j
    cdef floating *row

    _project_input(x_mode, x, w_hx, h_out, n_input, n_hidden, n_rows)
    _recur_forward(h_out, h0, w_hh, b_h, w_hh_t, NULL, n_hidden, n_batch, n_steps,
                   False, TANH, own_products)
    # Y = H Wyh^T                         (m*T, n_y) = (m*T, n_h) (n_h, n_y)
    gemm(c'N', c'T', n_rows, n_output, n_hidden, 1, h_out, n_hidden,
         w_yh, n_hidden, 0, y_out, n_output)
    for i in range(n_rows):
        row = y_out + i * n_output
        if softmax:
            # Y = softmax(Y + by) row by row
            _bias_softmax(row, b_y, n_output)
        else:
            # Y = Y + by (the logits)
            for j in range(n_output):
                row[j] += b_y[j]


cdef void _backward(int x_mode, const void *x, const floating *h0, const floating *h,
                    const floating *dh, const floating *w_hx, const floating *w_hh,
                    floating *dx_out, floating *dh0_out, floating *dw_hx_out,
                    floating *dw_hh_out, floating *db_h_out,
                    floating *dz,
                    int n_input, int n_hidden, int n_batch, int n_steps,
                    bint own_products) noexcept nogil:
    """The seed model's BPTT: every gradient of sum(dh * h)."""
    cdef Py_ssize_t j
    for j in range(n_batch * n_hidden):
        dh0_out[j] = 0            # no gradient reaches the final state from outside
    _recur_backward(h, dh, dz, dh0_out, NULL, w_hh, db_h_out, NULL, n_hidden, n_batch,
                    n_steps, False, TANH, own_products)
    _input_grads(x_mode, x, dz, w_hx, dx_out, dw_hx_out, n_input, n_hidden,
                 n_batch * n_steps)
    _hidden_weight_grad(dz, h, h0, dw_hh_out, n_hidden, n_batch, n_steps, False)


cdef double _loss(int x_mode, const void *x, const floating *h0, const Py_ssize_t *labels,
                  const floating *w_hx, const floating *w_hh, const floating *w_yh,
                  const floating *b_h, const floating *b_y,
                  floating *h_out, floating *logits, floating *dh,
                  floating *dx_out, floating *dh0_out, floating *dw_hx_out,
                  floating *dw_hh_out, floating *db_h_out, floating *dw_yh_out,
                  floating *db_y_out, floating *w_hh_t,
                  int n_input, int n_hidden, int n_output, int n_batch, int n_steps,
                  bint own_products) noexcept nogil:
    """Mean softmax cross-entropy over all m*T positions, and every gradient."""
    cdef int n_rows = n_batch * n_steps
    cdef floating scale = <floating>1 / n_rows
    cdef double total = 0
    cdef Py_ssize_t r, j
    cdef floating *row

    _forward(x_mode, x, h0, w_hx, w_hh, w_yh, b_h, b_y, h_out, logits, w_hh_t,
             n_input, n_hidden, n_output, n_batch, n_steps, own_products, False)
    # loss_r = logsumexp(Y_r) - Y_r[label_r];  dY_r = (softmax(Y_r) - onehot) / (m*T)
    for j in range(n_output):
        db_y_out[j] = 0
    for r in range(n_rows):
        row = logits + r * n_output
        total += _xent_row(row, labels[r], n_output, scale)
        # dby = column sums of dY
        for j in range(n_output):
            db_y_out[j] += row[j]
    # dWyh = dY^T H                       (n_y, n_h) = (n_y, m*T) (m*T, n_h)
    gemm(c'T', c'N', n_output, n_hidden, n_rows, 1, logits, n_output, h_out, n_hidden,
         0, dw_yh_out, n_hidden)
    # dH = dY Wyh                         (m*T, n_h) = (m*T, n_y) (n_y, n_h)
    gemm(c'N', c'N', n_rows, n_hidden, n_output, 1, logits, n_output, w_yh, n_hidden,
         0, dh, n_hidden)
    _backward(x_mode, x, h0, h_out, dh, w_hx, w_hh, dx_out, dh0_out, dw_hx_out, dw_hh_out,
              db_h_out, dh, n_input, n_hidden, n_batch, n_steps, own_products)
    return total / n_rows


# The entry points take ndarrays and read their data pointers directly: the
# wrapper (functional.py, modules.py) has checked that every array is C-contiguous,
# of one float dtype (that of h0), of the documented shape, and that class
# indices are intp values in range, so no buffer is acquired or checked here
# (acquiring typed memoryviews costs about 0.2 us per array, more than a whole
# small model's step).  Each entry point is written once, as a fused
# ``cdef`` body taking a ``floating`` tag; the ``def`` picks float or double
# by h0's dtype.  The outputs and scratch are allocated here, at C speed,
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


cdef inline bint _is_float32(cnp.ndarray a) noexcept:
    return cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32


cdef tuple _forward_entry(floating tag, int x_mode, cnp.ndarray x, cnp.ndarray h0,
                          cnp.ndarray w_hx, cnp.ndarray w_hh, cnp.ndarray w_yh,
                          cnp.ndarray b_h, cnp.ndarray b_y, bint own_products, bint softmax):
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(h0)[0], n_hidden = <int>cnp.PyArray_DIMS(h0)[1]
    cdef int n_output = <int>cnp.PyArray_DIMS(w_yh)[0]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_hx)[1]
    cdef int n_steps = <int>(cnp.PyArray_SIZE(x) // n_batch
                             // (1 if x_mode == X_INDEX else n_input))
    cdef cnp.ndarray h_out = _empty3(n_batch, n_steps, n_hidden, type_num)
    cdef cnp.ndarray y_out = _empty3(n_batch, n_steps, n_output, type_num)
    cdef cnp.ndarray w_hh_t = _scratch(own_products, w_hh)
    cdef const void *x_ = _ptr(x)
    cdef const floating *h0_ = <floating *>_ptr(h0)
    cdef const floating *w_hx_ = <floating *>_ptr(w_hx)
    cdef const floating *w_hh_ = <floating *>_ptr(w_hh)
    cdef const floating *w_yh_ = <floating *>_ptr(w_yh)
    cdef const floating *b_h_ = <floating *>_ptr(b_h)
    cdef const floating *b_y_ = <floating *>_ptr(b_y)
    cdef floating *h_ = <floating *>_ptr(h_out)
    cdef floating *y_ = <floating *>_ptr(y_out)
    cdef floating *w_hh_t_ = <floating *>_ptr(w_hh_t)
    with nogil:
        _forward(x_mode, x_, h0_, w_hx_, w_hh_, w_yh_, b_h_, b_y_, h_, y_, w_hh_t_,
                 n_input, n_hidden, n_output, n_batch, n_steps, own_products, softmax)
    return h_out, y_out


def forward(int x_mode, cnp.ndarray x not None, cnp.ndarray h0 not None,
            cnp.ndarray w_hx not None, cnp.ndarray w_hh not None, cnp.ndarray w_yh not None,
            cnp.ndarray b_h not None, cnp.ndarray b_y not None, bint own_products,
            bint softmax=True):
    """Forward pass over all steps; returns ``(h (m, T, n_h), y (m, T, n_y))``.

    ``y`` holds the softmax outputs, or the logits when ``softmax`` is false.
    ``h0 (m, n_h)``, weights as in the model, biases of n values.  With
    ``own_products`` the recurrent products run in the hand-written loops
    instead of BLAS.  The number of steps is ``x``'s size / (m * n_x) (or its
    length for class indices).
    """
    if _is_float32(h0):
        return _forward_entry(<float>0, x_mode, x, h0, w_hx, w_hh, w_yh, b_h, b_y,
                              own_products, softmax)
    return _forward_entry(<double>0, x_mode, x, h0, w_hx, w_hh, w_yh, b_h, b_y,
                          own_products, softmax)


cdef tuple _backward_entry(floating tag, int x_mode, cnp.ndarray x, cnp.ndarray h0,
                           cnp.ndarray h, cnp.ndarray dh, cnp.ndarray w_hx, cnp.ndarray w_hh,
                           cnp.ndarray b_h, bint dh_is_scratch, bint own_products):
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(h)
    cdef int n_batch = <int>dims[0], n_steps = <int>dims[1], n_hidden = <int>dims[2]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_hx)[1]
    cdef cnp.ndarray dx_out = None if x_mode == X_INDEX else _empty_like(x)
    cdef cnp.ndarray dh0_out = _empty_like(h0)
    cdef cnp.ndarray dw_hx_out = _empty_like(w_hx), dw_hh_out = _empty_like(w_hh)
    cdef cnp.ndarray db_h_out = _empty_like(b_h)
    cdef cnp.ndarray dz = dh if dh_is_scratch else _empty_like(h)
    cdef const void *x_ = _ptr(x)
    cdef const floating *h0_ = <floating *>_ptr(h0)
    cdef const floating *h_ = <floating *>_ptr(h)
    cdef const floating *dh_ = <floating *>_ptr(dh)
    cdef const floating *w_hx_ = <floating *>_ptr(w_hx)
    cdef const floating *w_hh_ = <floating *>_ptr(w_hh)
    cdef floating *dx_ = <floating *>_ptr(dx_out)
    cdef floating *dh0_ = <floating *>_ptr(dh0_out)
    cdef floating *dw_hx_ = <floating *>_ptr(dw_hx_out)
    cdef floating *dw_hh_ = <floating *>_ptr(dw_hh_out)
    cdef floating *db_h_ = <floating *>_ptr(db_h_out)
    cdef floating *dz_ = <floating *>_ptr(dz)
    with nogil:
        _backward(x_mode, x_, h0_, h_, dh_, w_hx_, w_hh_, dx_, dh0_, dw_hx_, dw_hh_, db_h_, dz_,
                  n_input, n_hidden, n_batch, n_steps, own_products)
    return dx_out, dh0_out, dw_hx_out, dw_hh_out, db_h_out


def backward(int x_mode, cnp.ndarray x not None, cnp.ndarray h0 not None,
             cnp.ndarray h not None, cnp.ndarray dh not None, cnp.ndarray w_hx not None,
             cnp.ndarray w_hh not None, cnp.ndarray b_h not None, bint dh_is_scratch,
             bint own_products):
    """BPTT over all steps; returns ``(dx, dh0, dWhx, dWhh, dbh)``.

    ``h`` and ``dh`` are ``(m, T, n_h)``; with ``dh_is_scratch`` the kernel
    overwrites ``dh`` (with dZ) instead of allocating a scratch array.  ``dx``
    has the shape of ``x`` (None for class indices), ``dh0`` that of ``h0
    (m, n_h)``, ``dbh`` that of ``b_h``.
    """
    if _is_float32(h0):
        return _backward_entry(<float>0, x_mode, x, h0, h, dh, w_hx, w_hh, b_h, dh_is_scratch,
                               own_products)
    return _backward_entry(<double>0, x_mode, x, h0, h, dh, w_hx, w_hh, b_h, dh_is_scratch,
                           own_products)


cdef tuple _loss_entry(floating tag, int x_mode, cnp.ndarray x, cnp.ndarray h0,
                       cnp.ndarray labels, cnp.ndarray w_hx, cnp.ndarray w_hh,
                       cnp.ndarray w_yh, cnp.ndarray b_h, cnp.ndarray b_y, bint own_products):
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(h0)[0], n_hidden = <int>cnp.PyArray_DIMS(h0)[1]
    cdef int n_output = <int>cnp.PyArray_DIMS(w_yh)[0]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_hx)[1]
    cdef int n_steps = <int>(cnp.PyArray_SIZE(labels) // n_batch)
    cdef cnp.ndarray h_out = _empty3(n_batch, n_steps, n_hidden, type_num)
    cdef cnp.ndarray logits = _empty3(n_batch, n_steps, n_output, type_num)
    cdef cnp.ndarray dh = _empty3(n_batch, n_steps, n_hidden, type_num)
    cdef cnp.ndarray dx_out = None if x_mode == X_INDEX else _empty_like(x)
    cdef cnp.ndarray dh0_out = _empty_like(h0)
    cdef cnp.ndarray dw_hx_out = _empty_like(w_hx), dw_hh_out = _empty_like(w_hh)
    cdef cnp.ndarray dw_yh_out = _empty_like(w_yh)
    cdef cnp.ndarray db_h_out = _empty_like(b_h), db_y_out = _empty_like(b_y)
    cdef cnp.ndarray w_hh_t = _scratch(own_products, w_hh)
    cdef const void *x_ = _ptr(x)
    cdef const Py_ssize_t *labels_ = <Py_ssize_t *>_ptr(labels)
    cdef const floating *h0_ = <floating *>_ptr(h0)
    cdef const floating *w_hx_ = <floating *>_ptr(w_hx)
    cdef const floating *w_hh_ = <floating *>_ptr(w_hh)
    cdef const floating *w_yh_ = <floating *>_ptr(w_yh)
    cdef const floating *b_h_ = <floating *>_ptr(b_h)
    cdef const floating *b_y_ = <floating *>_ptr(b_y)
    cdef floating *h_ = <floating *>_ptr(h_out)
    cdef floating *logits_ = <floating *>_ptr(logits)
    cdef floating *dh_ = <floating *>_ptr(dh)
    cdef floating *dx_ = <floating *>_ptr(dx_out)
    cdef floating *dh0_ = <floating *>_ptr(dh0_out)
    cdef floating *dw_hx_ = <floating *>_ptr(dw_hx_out)
    cdef floating *dw_hh_ = <floating *>_ptr(dw_hh_out)
    cdef floating *db_h_ = <floating *>_ptr(db_h_out)
    cdef floating *dw_yh_ = <floating *>_ptr(dw_yh_out)
    cdef floating *db_y_ = <floating *>_ptr(db_y_out)
    cdef floating *w_hh_t_ = <floating *>_ptr(w_hh_t)
    cdef double result
    with nogil:
        result = _loss(x_mode, x_, h0_, labels_, w_hx_, w_hh_, w_yh_, b_h_, b_y_, h_, logits_,
                       dh_, dx_, dh0_, dw_hx_, dw_hh_, db_h_, dw_yh_, db_y_, w_hh_t_,
                       n_input, n_hidden, n_output, n_batch, n_steps, own_products)
    return (result, h_out, dx_out, dh0_out, dw_hx_out, dw_hh_out, db_h_out, dw_yh_out,
            db_y_out)


def loss(int x_mode, cnp.ndarray x not None, cnp.ndarray h0 not None,
         cnp.ndarray labels not None, cnp.ndarray w_hx not None, cnp.ndarray w_hh not None,
         cnp.ndarray w_yh not None, cnp.ndarray b_h not None, cnp.ndarray b_y not None,
         bint own_products):
    """Forward, mean softmax cross-entropy against ``labels (m*T,)`` and full backward.

    Returns ``(loss, h, dx, dh0, dWhx, dWhh, dbh, dWyh, dby)``: the loss as a
    float, the states ``(m, T, n_h)``, and gradients shaped like their
    parameters (``dx`` like ``x``, None for class indices).
    """
    if _is_float32(h0):
        return _loss_entry(<float>0, x_mode, x, h0, labels, w_hx, w_hh, w_yh, b_h, b_y,
                           own_products)
    return _loss_entry(<double>0, x_mode, x, h0, labels, w_hx, w_hh, w_yh, b_h, b_y,
                       own_products)


cdef cnp.ndarray _layer_forward_entry(floating tag, cnp.ndarray x, cnp.ndarray h0,
                                      cnp.ndarray w_ih, cnp.ndarray w_hh, cnp.ndarray bias,
                                      cnp.ndarray lengths, bint reverse, int activation,
                                      bint own_products):
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(h0)[0], n_hidden = <int>cnp.PyArray_DIMS(h0)[1]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_ih)[1]
    cdef int n_steps = <int>(cnp.PyArray_SIZE(x) // n_batch // n_input)
    cdef cnp.ndarray h_out = _empty3(n_batch, n_steps, n_hidden, type_num)
    cdef cnp.ndarray w_hh_t = _scratch(own_products, w_hh)
    cdef const floating *x_ = <floating *>_ptr(x)
    cdef const floating *h0_ = <floating *>_ptr(h0)
    cdef const floating *w_ih_ = <floating *>_ptr(w_ih)
    cdef const floating *w_hh_ = <floating *>_ptr(w_hh)
    cdef const floating *bias_ = <floating *>_ptr(bias)
    cdef const Py_ssize_t *lengths_ = <Py_ssize_t *>_ptr(lengths)
    cdef floating *h_ = <floating *>_ptr(h_out)
    cdef floating *w_hh_t_ = <floating *>_ptr(w_hh_t)
    with nogil:
        _project_input(X_ROWS, x_, w_ih_, h_, n_input, n_hidden, n_batch * n_steps)
        _recur_forward(h_, h0_, w_hh_, bias_, w_hh_t_, lengths_, n_hidden, n_batch, n_steps,
                       reverse, activation, own_products)
    return h_out


def layer_forward(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray w_ih not None,
                  cnp.ndarray w_hh not None, cnp.ndarray bias not None, cnp.ndarray lengths,
                  bint reverse, int activation, bint own_products):
    """One direction of one ``nn.RNN`` layer; returns its states ``(m, T, n_h)``.

    ``x (m*T, n_in)`` batch-major rows, ``h0 (m, n_h)``, ``bias (n_h,)`` (the
    sum of both biases), ``lengths`` an intp ``(m,)`` array or None,
    ``activation`` an :class:`Activation` code.
    """
    if _is_float32(h0):
        return _layer_forward_entry(<float>0, x, h0, w_ih, w_hh, bias, lengths, reverse,
                                    activation, own_products)
    return _layer_forward_entry(<double>0, x, h0, w_ih, w_hh, bias, lengths, reverse,
                                activation, own_products)


cdef tuple _layer_backward_entry(floating tag, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray h,
                                 cnp.ndarray dh, cnp.ndarray grad_h_n, cnp.ndarray w_ih,
                                 cnp.ndarray w_hh, cnp.ndarray lengths, bint reverse,
                                 int activation, bint own_products):
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(h)
    cdef int n_batch = <int>dims[0], n_steps = <int>dims[1], n_hidden = <int>dims[2]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_ih)[1]
    cdef cnp.npy_intp n_bias = n_hidden
    cdef cnp.ndarray dx_out = _empty_like(x)
    cdef cnp.ndarray dh0_out = cnp.PyArray_NewCopy(grad_h_n, cnp.NPY_CORDER)  # G on entry
    cdef cnp.ndarray dw_ih_out = _empty_like(w_ih), dw_hh_out = _empty_like(w_hh)
    cdef cnp.ndarray db_out = cnp.PyArray_EMPTY(1, &n_bias, cnp.PyArray_TYPE(h0), 0)
    cdef cnp.ndarray carry = _empty_like(h0)
    cdef const floating *x_ = <floating *>_ptr(x)
    cdef const floating *h0_ = <floating *>_ptr(h0)
    cdef const floating *h_ = <floating *>_ptr(h)
    cdef floating *dz_ = <floating *>_ptr(dh)          # dh is overwritten with dZ
    cdef const floating *w_ih_ = <floating *>_ptr(w_ih)
    cdef const floating *w_hh_ = <floating *>_ptr(w_hh)
    cdef const Py_ssize_t *lengths_ = <Py_ssize_t *>_ptr(lengths)
    cdef floating *dx_ = <floating *>_ptr(dx_out)
    cdef floating *grad_ = <floating *>_ptr(dh0_out)
    cdef floating *dw_ih_ = <floating *>_ptr(dw_ih_out)
    cdef floating *dw_hh_ = <floating *>_ptr(dw_hh_out)
    cdef floating *db_ = <floating *>_ptr(db_out)
    cdef floating *carry_ = <floating *>_ptr(carry)
    with nogil:
        _recur_backward(h_, dz_, dz_, grad_, carry_, w_hh_, db_, lengths_, n_hidden, n_batch,
                        n_steps, reverse, activation, own_products)
        _input_grads(X_ROWS, x_, dz_, w_ih_, dx_, dw_ih_, n_input, n_hidden,
                     n_batch * n_steps)
        _hidden_weight_grad(dz_, h_, h0_, dw_hh_, n_hidden, n_batch, n_steps, reverse)
    return dx_out, dh0_out, dw_ih_out, dw_hh_out, db_out


def layer_backward(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray h not None,
                   cnp.ndarray dh not None, cnp.ndarray grad_h_n not None,
                   cnp.ndarray w_ih not None, cnp.ndarray w_hh not None, cnp.ndarray lengths,
                   bint reverse, int activation, bint own_products):
    """BPTT of one direction of one layer; returns ``(dx, dh0, dW_ih, dW_hh, db)``.

    ``dh (m, T, n_h)`` is the gradient of the outputs and is overwritten (with
    dZ); ``grad_h_n (m, n_h)`` that of the final state.  ``dx`` is
    ``(m*T, n_in)`` like ``x``; ``db (n_h,)`` is the gradient of either bias.
    """
    if _is_float32(h0):
        return _layer_backward_entry(<float>0, x, h0, h, dh, grad_h_n, w_ih, w_hh, lengths,
                                     reverse, activation, own_products)
    return _layer_backward_entry(<double>0, x, h0, h, dh, grad_h_n, w_ih, w_hh, lengths,
                                 reverse, activation, own_products)


# -- gated cells: one direction of one nn.LSTM / nn.GRU layer -------------------
# Layouts as for the Elman layer: x rows (m*T, n_in) batch-major, states
# (m, T, width), step t of all sequences an (m, width) block with row stride
# T*width.  Per step one GEMM for the recurrent product of all gates; the
# input products of all gates and steps, and the weight gradients, are one
# GEMM each, before and after the loop.  What backward reads is saved:
#   LSTM  states h (m,T,P), cells c (m,T,H), activated gates (m,T,4H);
#   GRU   states h (m,T,H), activated gates r,z,n (m,T,3H), hn = h W_hn^T + b_hn (m,T,H).
# A step t >= lengths[i] carries sequence i's states; its gate rows are zeros.


cdef inline void _copy_row(floating *dst, const floating *src, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = src[j]


cdef inline void _zero_row(floating *dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = 0


cdef inline void _column_sums(const floating *a, Py_ssize_t n_rows, Py_ssize_t n,
                              floating *out) noexcept nogil:
    """out = the column sums of the (n_rows, n) row-major a."""
    cdef Py_ssize_t r, j
    _zero_row(out, n)
    for r in range(n_rows):
        for j in range(n):
            out[j] += a[r * n + j]


cdef inline void _rows_times(const floating *v, int ld_v, const floating *w, bint transposed,
                             floating *out, int ld_out, floating beta, int n_rows, int n_k,
                             int n_j) noexcept nogil:
    """out (n_rows, n_j) = V W^T (``transposed``, W is (n_j, n_k)) or V W (W is (n_k, n_j)),
    plus ``beta`` out; one row (a single sequence) goes through gemv."""
    if n_rows == 1:
        if transposed:
            gemv(c'N', n_j, n_k, 1, w, n_k, v, 1, beta, out, 1)
        else:
            gemv(c'T', n_k, n_j, 1, w, n_j, v, 1, beta, out, 1)
    elif transposed:
        gemm(c'N', c'T', n_rows, n_j, n_k, 1, v, ld_v, w, n_k, beta, out, ld_out)
    else:
        gemm(c'N', c'N', n_rows, n_j, n_k, 1, v, ld_v, w, n_j, beta, out, ld_out)


cdef inline bint _padded(const Py_ssize_t *lengths, Py_ssize_t i, Py_ssize_t t) noexcept nogil:
    return lengths != NULL and t >= lengths[i]


cdef void _lstm_forward(const floating *x, const floating *h0, const floating *c0,
                        const floating *w_ih, const floating *w_hh, const floating *bias,
                        const floating *w_hr, floating *h, floating *c, floating *gates,
                        floating *m_buf, const Py_ssize_t *lengths, int n_input, int n_hidden,
                        int n_proj, int n_batch, int n_steps, bint reverse) noexcept nogil:
    """LSTM states ``h`` (m,T,P), cells ``c`` (m,T,H) and activated ``gates`` (m,T,4H).

    ``bias`` (4H, b_ih + b_hh) and ``w_hr`` (P, H) may be NULL (P = H without a
    projection); ``m_buf`` (m, H) is scratch, used with the projection.
    """
    cdef int H = n_hidden, P = n_proj, G = 4 * n_hidden
    cdef int ld_g = n_steps * G, ld_c = n_steps * H, ld_h = n_steps * P
    cdef Py_ssize_t s, t, tp, i
    cdef const floating *h_prev
    cdef const floating *c_prev
    cdef int ld_hp, ld_cp
    cdef floating *out
    # A = X W_ih^T                         (m*T, 4H) = (m*T, n_in) (n_in, 4H)
    gemm(c'N', c'T', n_batch * n_steps, G, n_input, 1, x, n_input, w_ih, n_input, 0, gates, G)
    for s in range(n_steps):
        t = n_steps - 1 - s if reverse else s
        tp = t + 1 if reverse else t - 1
        if s == 0:
            h_prev, ld_hp, c_prev, ld_cp = h0, P, c0, H
        else:
            h_prev, ld_hp, c_prev, ld_cp = h + tp * P, ld_h, c + tp * H, ld_c
        # A_t += H_prev W_hh^T             (m, 4H) = (m, P) (P, 4H)
        _rows_times(h_prev, ld_hp, w_hh, True, gates + t * G, ld_g, 1, n_batch, P, G)
        for i in range(n_batch):
            if _padded(lengths, i, t):
                _copy_row(c + i * ld_c + t * H, c_prev + i * ld_cp, H)
                _zero_row(gates + i * ld_g + t * G, G)
                if w_hr != NULL:
                    _zero_row(m_buf + i * H, H)
                continue
            out = m_buf + i * H if w_hr != NULL else h + i * ld_h + t * P
            if floating is float:
                rf_lstm_cell_f(gates + i * ld_g + t * G, bias, c_prev + i * ld_cp,
                               c + i * ld_c + t * H, out, H)
            else:
                rf_lstm_cell_d(gates + i * ld_g + t * G, bias, c_prev + i * ld_cp,
                               c + i * ld_c + t * H, out, H)
        if w_hr != NULL:
            # H_t = M W_hr^T               (m, P) = (m, H) (H, P)
            _rows_times(m_buf, H, w_hr, True, h + t * P, ld_h, 0, n_batch, H, P)
        if lengths != NULL:
            for i in range(n_batch):
                if t >= lengths[i]:
                    _copy_row(h + i * ld_h + t * P, h_prev + i * ld_hp, P)


cdef void _lstm_backward(const floating *x, const floating *h0, const floating *c0,
                         const floating *h, const floating *c, const floating *gates,
                         floating *dh, floating *grad_h, floating *grad_c,
                         const floating *w_ih, const floating *w_hh, const floating *w_hr,
                         floating *da, floating *dm, floating *carry, floating *m_all,
                         floating *dx, floating *dw_ih, floating *dw_hh, floating *db,
                         floating *dw_hr, const Py_ssize_t *lengths, int n_input,
                         int n_hidden, int n_proj, int n_batch, int n_steps,
                         bint reverse) noexcept nogil:
    """LSTM BPTT.  ``dh`` (m,T,P) is the gradient of the states, overwritten with
    the total gradient reaching each state; ``grad_h`` (m,P) and ``grad_c`` (m,H)
    hold on entry the gradients of h_n, c_n and on return those of h0, c0.
    Scratch: ``da`` (m,T,4H), ``dm`` (m,H), ``carry`` (m,P), ``m_all`` (m,T,H)
    (the last two for lengths and the projection).
    """
    cdef int H = n_hidden, P = n_proj, G = 4 * n_hidden
    cdef int ld_g = n_steps * G, ld_c = n_steps * H, ld_h = n_steps * P
    cdef int n_rows = n_batch * n_steps
    cdef Py_ssize_t s, t, tp, i, j
    cdef const floating *c_prev
    cdef int ld_cp
    cdef floating *dh_t
    cdef const floating *dm_row
    cdef const floating *a_row
    for s in range(n_steps):
        t = s if reverse else n_steps - 1 - s
        tp = t + 1 if reverse else t - 1
        if s == n_steps - 1:
            c_prev, ld_cp = c0, H
        else:
            c_prev, ld_cp = c + tp * H, ld_c
        dh_t = dh + t * P
        for i in range(n_batch):
            if _padded(lengths, i, t):
                _zero_row(dh_t + i * ld_h, P)      # no gradient from a padded output
                continue
            # the total gradient reaching h_t
            for j in range(P):
                dh_t[i * ld_h + j] += grad_h[i * P + j]
        if w_hr != NULL:
            # dM = dH_t W_hr               (m, H) = (m, P) (P, H)
            _rows_times(dh_t, ld_h, w_hr, False, dm, H, 0, n_batch, P, H)
        for i in range(n_batch):
            if _padded(lengths, i, t):
                _zero_row(da + i * ld_g + t * G, G)
                _copy_row(carry + i * P, grad_h + i * P, P)
                continue
            dm_row = dm + i * H if w_hr != NULL else dh_t + i * ld_h
            a_row = gates + i * ld_g + t * G
            if floating is float:
                rf_lstm_cell_grad_f(a_row, c + i * ld_c + t * H, c_prev + i * ld_cp, dm_row,
                                    grad_c + i * H, da + i * ld_g + t * G, H)
            else:
                rf_lstm_cell_grad_d(a_row, c + i * ld_c + t * H, c_prev + i * ld_cp, dm_row,
                                    grad_c + i * H, da + i * ld_g + t * G, H)
        # G_h = dA_t W_hh                  (m, P) = (m, 4H) (4H, P)
        _rows_times(da + t * G, ld_g, w_hh, False, grad_h, P, 0, n_batch, G, P)
        if lengths != NULL:
            for i in range(n_batch):
                if t >= lengths[i]:
                    _copy_row(grad_h + i * P, carry + i * P, P)
    # dW_ih = dA^T X,  dX = dA W_ih,  db = column sums of dA
    gemm(c'T', c'N', G, n_input, n_rows, 1, da, G, x, n_input, 0, dw_ih, n_input)
    gemm(c'N', c'N', n_rows, n_input, G, 1, da, G, w_ih, n_input, 0, dx, n_input)
    _column_sums(da, n_rows, G, db)
    if w_hr != NULL:
        # M = o tanh(c) at every valid step (zeros at padded ones); dW_hr = dH^T M
        for i in range(n_batch):
            for t in range(n_steps):
                if _padded(lengths, i, t):
                    _zero_row(m_all + i * ld_c + t * H, H)
                else:
                    _lstm_output(gates + i * ld_g + t * G, c + i * ld_c + t * H,
                                 m_all + i * ld_c + t * H, H)
        gemm(c'T', c'N', P, H, n_rows, 1, dh, P, m_all, H, 0, dw_hr, H)
    # dW_hh = sum_t dA_t^T H_prev(t)       (4H, P)
    _recurrent_weight_grad(da, G, h, h0, P, dw_hh, n_batch, n_steps, reverse)


cdef inline void _lstm_output(const floating *a, const floating *c, floating *m,
                              Py_ssize_t H) noexcept nogil:
    """m = o tanh(c) for one row (o is the last quarter of the activated gates)."""
    cdef Py_ssize_t j
    if floating is float:
        for j in range(H):
            m[j] = a[3 * H + j] * tanhf(c[j])
    else:
        for j in range(H):
            m[j] = a[3 * H + j] * tanh(c[j])


cdef void _gru_forward(const floating *x, const floating *h0, const floating *w_ih,
                       const floating *w_hh, const floating *b_ih, const floating *b_hh,
                       floating *h, floating *gates, floating *hn, floating *gh,
                       const Py_ssize_t *lengths, int n_input, int n_hidden, int n_batch,
                       int n_steps, bint reverse) noexcept nogil:
    """GRU states ``h`` (m,T,H), activated ``gates`` r,z,n (m,T,3H), ``hn`` (m,T,H).

    The biases may be NULL; ``gh`` (m, 3H) is scratch.
    """
    cdef int H = n_hidden, G = 3 * n_hidden
    cdef int ld_g = n_steps * G, ld_h = n_steps * H
    cdef Py_ssize_t s, t, tp, i
    cdef const floating *h_prev
    cdef int ld_hp
    # GI = X W_ih^T                        (m*T, 3H) = (m*T, n_in) (n_in, 3H)
    gemm(c'N', c'T', n_batch * n_steps, G, n_input, 1, x, n_input, w_ih, n_input, 0, gates, G)
    for s in range(n_steps):
        t = n_steps - 1 - s if reverse else s
        tp = t + 1 if reverse else t - 1
        if s == 0:
            h_prev, ld_hp = h0, H
        else:
            h_prev, ld_hp = h + tp * H, ld_h
        # GH = H_prev W_hh^T               (m, 3H) = (m, H) (H, 3H)
        _rows_times(h_prev, ld_hp, w_hh, True, gh, G, 0, n_batch, H, G)
        for i in range(n_batch):
            if _padded(lengths, i, t):
                _copy_row(h + i * ld_h + t * H, h_prev + i * ld_hp, H)
                _zero_row(gates + i * ld_g + t * G, G)
                _zero_row(hn + i * ld_h + t * H, H)
            elif floating is float:
                rf_gru_cell_f(gates + i * ld_g + t * G, gh + i * G, b_ih, b_hh,
                              h_prev + i * ld_hp, hn + i * ld_h + t * H, h + i * ld_h + t * H, H)
            else:
                rf_gru_cell_d(gates + i * ld_g + t * G, gh + i * G, b_ih, b_hh,
                              h_prev + i * ld_hp, hn + i * ld_h + t * H, h + i * ld_h + t * H, H)


cdef void _gru_backward(const floating *x, const floating *h0, const floating *h,
                        const floating *gates, const floating *hn, const floating *dh,
                        floating *grad, const floating *w_ih, const floating *w_hh,
                        floating *dgi, floating *dgh, floating *direct,
                        floating *dx, floating *dw_ih, floating *dw_hh, floating *db_ih,
                        floating *db_hh, const Py_ssize_t *lengths, int n_input, int n_hidden,
                        int n_batch, int n_steps, bint reverse) noexcept nogil:
    """GRU BPTT.  ``grad`` (m,H) holds on entry the gradient of h_n, on return that
    of h0.  Scratch: ``dgi``, ``dgh`` (m,T,3H), ``direct`` (m,H).
    """
    cdef int H = n_hidden, G = 3 * n_hidden
    cdef int ld_g = n_steps * G, ld_h = n_steps * H
    cdef int n_rows = n_batch * n_steps
    cdef Py_ssize_t s, t, tp, i, j
    cdef const floating *h_prev
    cdef int ld_hp
    for s in range(n_steps):
        t = s if reverse else n_steps - 1 - s
        tp = t + 1 if reverse else t - 1
        if s == n_steps - 1:
            h_prev, ld_hp = h0, H
        else:
            h_prev, ld_hp = h + tp * H, ld_h
        for i in range(n_batch):
            if _padded(lengths, i, t):
                # a carried state: no gate gradients, G passes through unchanged
                _zero_row(dgi + i * ld_g + t * G, G)
                _zero_row(dgh + i * ld_g + t * G, G)
                _copy_row(direct + i * H, grad + i * H, H)
                continue
            for j in range(H):
                direct[i * H + j] = grad[i * H + j] + dh[i * ld_h + t * H + j]
            if floating is float:
                rf_gru_cell_grad_f(gates + i * ld_g + t * G, hn + i * ld_h + t * H,
                                   h_prev + i * ld_hp, direct + i * H, dgi + i * ld_g + t * G,
                                   dgh + i * ld_g + t * G, H)
            else:
                rf_gru_cell_grad_d(gates + i * ld_g + t * G, hn + i * ld_h + t * H,
                                   h_prev + i * ld_hp, direct + i * H, dgi + i * ld_g + t * G,
                                   dgh + i * ld_g + t * G, H)
        # G = direct + dGH_t W_hh          (m, H) = (m, 3H) (3H, H)
        _copy_row(grad, direct, n_batch * H)
        _rows_times(dgh + t * G, ld_g, w_hh, False, grad, H, 1, n_batch, G, H)
    gemm(c'T', c'N', G, n_input, n_rows, 1, dgi, G, x, n_input, 0, dw_ih, n_input)
    gemm(c'N', c'N', n_rows, n_input, G, 1, dgi, G, w_ih, n_input, 0, dx, n_input)
    _column_sums(dgi, n_rows, G, db_ih)
    _column_sums(dgh, n_rows, G, db_hh)
    _recurrent_weight_grad(dgh, G, h, h0, H, dw_hh, n_batch, n_steps, reverse)


cdef tuple _lstm_forward_entry(floating tag, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray c0,
                               cnp.ndarray w_ih, cnp.ndarray w_hh, cnp.ndarray bias,
                               cnp.ndarray w_hr, cnp.ndarray lengths, bint reverse):
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(c0)[0], H = <int>cnp.PyArray_DIMS(c0)[1]
    cdef int P = <int>cnp.PyArray_DIMS(h0)[1]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_ih)[1]
    cdef int n_steps = <int>(cnp.PyArray_DIMS(x)[0] // n_batch)
    cdef cnp.ndarray h = _empty3(n_batch, n_steps, P, type_num)
    cdef cnp.ndarray c = _empty3(n_batch, n_steps, H, type_num)
    cdef cnp.ndarray gates = _empty3(n_batch, n_steps, 4 * H, type_num)
    cdef cnp.ndarray m_buf = _empty3(1, n_batch if w_hr is not None else 1, H, type_num)
    cdef const floating *x_ = <floating *>_ptr(x)
    cdef const floating *h0_ = <floating *>_ptr(h0)
    cdef const floating *c0_ = <floating *>_ptr(c0)
    cdef const floating *w_ih_ = <floating *>_ptr(w_ih)
    cdef const floating *w_hh_ = <floating *>_ptr(w_hh)
    cdef const floating *bias_ = <floating *>_ptr(bias)
    cdef const floating *w_hr_ = <floating *>_ptr(w_hr)
    cdef floating *h_ = <floating *>_ptr(h)
    cdef floating *c_ = <floating *>_ptr(c)
    cdef floating *gates_ = <floating *>_ptr(gates)
    cdef floating *m_ = <floating *>_ptr(m_buf)
    cdef const Py_ssize_t *lengths_ = <Py_ssize_t *>_ptr(lengths)
    with nogil:
        _lstm_forward(x_, h0_, c0_, w_ih_, w_hh_, bias_, w_hr_, h_, c_, gates_, m_, lengths_,
                      n_input, H, P, n_batch, n_steps, reverse)
    return h, c, gates


def lstm_layer_forward(cnp.ndarray x not None, cnp.ndarray h0 not None,
                       cnp.ndarray c0 not None, cnp.ndarray w_ih not None,
                       cnp.ndarray w_hh not None, cnp.ndarray bias, cnp.ndarray w_hr,
                       cnp.ndarray lengths, bint reverse):
    """One LSTM layer direction; returns ``(h (m,T,P), c (m,T,H), gates (m,T,4H))``.

    ``x`` rows ``(m*T, n_in)``, ``h0 (m, P)``, ``c0 (m, H)``, ``w_ih (4H, n_in)``,
    ``w_hh (4H, P)``, ``bias`` (4H, b_ih + b_hh) or None, ``w_hr (P, H)`` or
    None, ``lengths`` intp ``(m,)`` or None.  All C-contiguous, of h0's dtype.
    """
    if _is_float32(h0):
        return _lstm_forward_entry(<float>0, x, h0, c0, w_ih, w_hh, bias, w_hr, lengths, reverse)
    return _lstm_forward_entry(<double>0, x, h0, c0, w_ih, w_hh, bias, w_hr, lengths, reverse)


cdef tuple _lstm_backward_entry(floating tag, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray c0,
                                cnp.ndarray h, cnp.ndarray c, cnp.ndarray gates,
                                cnp.ndarray dh, cnp.ndarray grad_h_n, cnp.ndarray grad_c_n,
                                cnp.ndarray w_ih, cnp.ndarray w_hh, cnp.ndarray w_hr,
                                cnp.ndarray lengths, bint reverse):
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(c)[0], n_steps = <int>cnp.PyArray_DIMS(c)[1]
    cdef int H = <int>cnp.PyArray_DIMS(c)[2], P = <int>cnp.PyArray_DIMS(h0)[1]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_ih)[1]
    cdef bint proj = w_hr is not None
    cdef cnp.ndarray grad_h = cnp.PyArray_NewCopy(grad_h_n, cnp.NPY_CORDER)
    cdef cnp.ndarray grad_c = cnp.PyArray_NewCopy(grad_c_n, cnp.NPY_CORDER)
    cdef cnp.ndarray da = _empty3(n_batch, n_steps, 4 * H, type_num)
    cdef cnp.ndarray dm = _empty3(1, n_batch if proj else 1, H, type_num)
    cdef cnp.ndarray carry = _empty3(1, n_batch, P, type_num)
    cdef cnp.ndarray m_all = _empty3(n_batch if proj else 1, n_steps if proj else 1, H, type_num)
    cdef cnp.ndarray dx = _empty_like(x), dw_ih = _empty_like(w_ih), dw_hh = _empty_like(w_hh)
    cdef cnp.ndarray db = _empty3(1, 1, 4 * H, type_num)
    cdef cnp.ndarray dw_hr = _empty_like(w_hr) if proj else None
    cdef const floating *x_ = <floating *>_ptr(x)
    cdef const floating *h0_ = <floating *>_ptr(h0)
    cdef const floating *c0_ = <floating *>_ptr(c0)
    cdef const floating *h_ = <floating *>_ptr(h)
    cdef const floating *c_ = <floating *>_ptr(c)
    cdef const floating *gates_ = <floating *>_ptr(gates)
    cdef floating *dh_ = <floating *>_ptr(dh)
    cdef floating *grad_h_ = <floating *>_ptr(grad_h)
    cdef floating *grad_c_ = <floating *>_ptr(grad_c)
    cdef const floating *w_ih_ = <floating *>_ptr(w_ih)
    cdef const floating *w_hh_ = <floating *>_ptr(w_hh)
    cdef const floating *w_hr_ = <floating *>_ptr(w_hr)
    cdef floating *da_ = <floating *>_ptr(da)
    cdef floating *dm_ = <floating *>_ptr(dm)
    cdef floating *carry_ = <floating *>_ptr(carry)
    cdef floating *m_all_ = <floating *>_ptr(m_all)
    cdef floating *dx_ = <floating *>_ptr(dx)
    cdef floating *dw_ih_ = <floating *>_ptr(dw_ih)
    cdef floating *dw_hh_ = <floating *>_ptr(dw_hh)
    cdef floating *db_ = <floating *>_ptr(db)
    cdef floating *dw_hr_ = <floating *>_ptr(dw_hr)
    cdef const Py_ssize_t *lengths_ = <Py_ssize_t *>_ptr(lengths)
    with nogil:
        _lstm_backward(x_, h0_, c0_, h_, c_, gates_, dh_, grad_h_, grad_c_, w_ih_, w_hh_, w_hr_,
                       da_, dm_, carry_, m_all_, dx_, dw_ih_, dw_hh_, db_, dw_hr_, lengths_,
                       n_input, H, P, n_batch, n_steps, reverse)
    return dx, grad_h, grad_c, dw_ih, dw_hh, db.reshape(4 * H), dw_hr


def lstm_layer_backward(cnp.ndarray x not None, cnp.ndarray h0 not None,
                        cnp.ndarray c0 not None, cnp.ndarray h not None, cnp.ndarray c not None,
                        cnp.ndarray gates not None, cnp.ndarray dh not None,
                        cnp.ndarray grad_h_n not None, cnp.ndarray grad_c_n not None,
                        cnp.ndarray w_ih not None, cnp.ndarray w_hh not None, cnp.ndarray w_hr,
                        cnp.ndarray lengths, bint reverse):
    """BPTT of one LSTM layer direction; returns ``(dx, dh0, dc0, dW_ih, dW_hh, db, dW_hr)``.

    ``h``, ``c``, ``gates`` as :func:`lstm_layer_forward` returned them; ``dh``
    (m,T,P) is a private copy the kernel overwrites; ``grad_h_n (m, P)``,
    ``grad_c_n (m, H)``; ``db`` is the gradient of b_ih (and of b_hh, equal);
    ``dW_hr`` is None without a projection.
    """
    if _is_float32(h0):
        return _lstm_backward_entry(<float>0, x, h0, c0, h, c, gates, dh, grad_h_n, grad_c_n,
                                    w_ih, w_hh, w_hr, lengths, reverse)
    return _lstm_backward_entry(<double>0, x, h0, c0, h, c, gates, dh, grad_h_n, grad_c_n,
                                w_ih, w_hh, w_hr, lengths, reverse)


cdef tuple _gru_forward_entry(floating tag, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray w_ih,
                              cnp.ndarray w_hh, cnp.ndarray b_ih, cnp.ndarray b_hh,
                              cnp.ndarray lengths, bint reverse):
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(h0)[0], H = <int>cnp.PyArray_DIMS(h0)[1]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_ih)[1]
    cdef int n_steps = <int>(cnp.PyArray_DIMS(x)[0] // n_batch)
    cdef cnp.ndarray h = _empty3(n_batch, n_steps, H, type_num)
    cdef cnp.ndarray gates = _empty3(n_batch, n_steps, 3 * H, type_num)
    cdef cnp.ndarray hn = _empty3(n_batch, n_steps, H, type_num)
    cdef cnp.ndarray gh = _empty3(1, n_batch, 3 * H, type_num)
    cdef const floating *x_ = <floating *>_ptr(x)
    cdef const floating *h0_ = <floating *>_ptr(h0)
    cdef const floating *w_ih_ = <floating *>_ptr(w_ih)
    cdef const floating *w_hh_ = <floating *>_ptr(w_hh)
    cdef const floating *b_ih_ = <floating *>_ptr(b_ih)
    cdef const floating *b_hh_ = <floating *>_ptr(b_hh)
    cdef floating *h_ = <floating *>_ptr(h)
    cdef floating *gates_ = <floating *>_ptr(gates)
    cdef floating *hn_ = <floating *>_ptr(hn)
    cdef floating *gh_ = <floating *>_ptr(gh)
    cdef const Py_ssize_t *lengths_ = <Py_ssize_t *>_ptr(lengths)
    with nogil:
        _gru_forward(x_, h0_, w_ih_, w_hh_, b_ih_, b_hh_, h_, gates_, hn_, gh_, lengths_,
                     n_input, H, n_batch, n_steps, reverse)
    return h, gates, hn


def gru_layer_forward(cnp.ndarray x not None, cnp.ndarray h0 not None,
                      cnp.ndarray w_ih not None, cnp.ndarray w_hh not None, cnp.ndarray b_ih,
                      cnp.ndarray b_hh, cnp.ndarray lengths, bint reverse):
    """One GRU layer direction; returns ``(h (m,T,H), gates r,z,n (m,T,3H), hn (m,T,H))``.

    ``x`` rows ``(m*T, n_in)``, ``h0 (m, H)``, ``w_ih (3H, n_in)``, ``w_hh (3H, H)``,
    the biases ``(3H,)`` or None, ``lengths`` intp ``(m,)`` or None.
    """
    if _is_float32(h0):
        return _gru_forward_entry(<float>0, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse)
    return _gru_forward_entry(<double>0, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse)


cdef tuple _gru_backward_entry(floating tag, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray h,
                               cnp.ndarray gates, cnp.ndarray hn, cnp.ndarray dh,
                               cnp.ndarray grad_h_n, cnp.ndarray w_ih, cnp.ndarray w_hh,
                               cnp.ndarray lengths, bint reverse):
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(h)[0], n_steps = <int>cnp.PyArray_DIMS(h)[1]
    cdef int H = <int>cnp.PyArray_DIMS(h)[2]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_ih)[1]
    cdef cnp.ndarray grad = cnp.PyArray_NewCopy(grad_h_n, cnp.NPY_CORDER)
    cdef cnp.ndarray dgi = _empty3(n_batch, n_steps, 3 * H, type_num)
    cdef cnp.ndarray dgh = _empty3(n_batch, n_steps, 3 * H, type_num)
    cdef cnp.ndarray direct = _empty3(1, n_batch, H, type_num)
    cdef cnp.ndarray dx = _empty_like(x), dw_ih = _empty_like(w_ih), dw_hh = _empty_like(w_hh)
    cdef cnp.ndarray db_ih = _empty3(1, 1, 3 * H, type_num), db_hh = _empty3(1, 1, 3 * H, type_num)
    cdef const floating *x_ = <floating *>_ptr(x)
    cdef const floating *h0_ = <floating *>_ptr(h0)
    cdef const floating *h_ = <floating *>_ptr(h)
    cdef const floating *gates_ = <floating *>_ptr(gates)
    cdef const floating *hn_ = <floating *>_ptr(hn)
    cdef const floating *dh_ = <floating *>_ptr(dh)
    cdef floating *grad_ = <floating *>_ptr(grad)
    cdef const floating *w_ih_ = <floating *>_ptr(w_ih)
    cdef const floating *w_hh_ = <floating *>_ptr(w_hh)
    cdef floating *dgi_ = <floating *>_ptr(dgi)
    cdef floating *dgh_ = <floating *>_ptr(dgh)
    cdef floating *direct_ = <floating *>_ptr(direct)
    cdef floating *dx_ = <floating *>_ptr(dx)
    cdef floating *dw_ih_ = <floating *>_ptr(dw_ih)
    cdef floating *dw_hh_ = <floating *>_ptr(dw_hh)
    cdef floating *db_ih_ = <floating *>_ptr(db_ih)
    cdef floating *db_hh_ = <floating *>_ptr(db_hh)
    cdef const Py_ssize_t *lengths_ = <Py_ssize_t *>_ptr(lengths)
    with nogil:
        _gru_backward(x_, h0_, h_, gates_, hn_, dh_, grad_, w_ih_, w_hh_, dgi_, dgh_, direct_,
                      dx_, dw_ih_, dw_hh_, db_ih_, db_hh_, lengths_, n_input, H, n_batch,
                      n_steps, reverse)
    return dx, grad, dw_ih, dw_hh, db_ih.reshape(3 * H), db_hh.reshape(3 * H)


def gru_layer_backward(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray h not None,
                       cnp.ndarray gates not None, cnp.ndarray hn not None,
                       cnp.ndarray dh not None, cnp.ndarray grad_h_n not None,
                       cnp.ndarray w_ih not None, cnp.ndarray w_hh not None,
                       cnp.ndarray lengths, bint reverse):
    """BPTT of one GRU layer direction; returns ``(dx, dh0, dW_ih, dW_hh, db_ih, db_hh)``.

    ``h``, ``gates``, ``hn`` as :func:`gru_layer_forward` returned them; ``dh``
    (m,T,H) is read only; ``grad_h_n (m, H)``.
    """
    if _is_float32(h0):
        return _gru_backward_entry(<float>0, x, h0, h, gates, hn, dh, grad_h_n, w_ih, w_hh,
                                   lengths, reverse)
    return _gru_backward_entry(<double>0, x, h0, h, gates, hn, dh, grad_h_n, w_ih, w_hh,
                               lengths, reverse)


# -- the seed API's model and cache ------------------------------------------
# The objects behind functional.py's rnn_forward / rnn_backward, here so that
# the common case (fast_forward, fast_backward below) builds them at C speed.

# With one sequence (m = 1) and at most this many hidden units, the per-step
# recurrent products run in the hand-written loops; otherwise in BLAS, which
# measured faster (python -m rnnfast bench, and the crossover table in the notes).
OWN_PRODUCTS_MAX_HIDDEN = 64
cdef int _force_products = -1       # -1: by size; 0: BLAS; 1: hand-written loops


def _set_force_products(force):
    """Tests only: force one product path on every shape (True/False), or None for by size."""
    global _force_products
    _force_products = -1 if force is None else (1 if force else 0)


cpdef bint use_own_products(Py_ssize_t n_batch, Py_ssize_t n_hidden):
    """Whether the recurrent products use the hand-written loops rather than BLAS."""
    if _force_products >= 0:
        return _force_products == 1
    return n_batch == 1 and n_hidden <= OWN_PRODUCTS_MAX_HIDDEN


cdef class Model:
    """Validated inputs of one forward pass of the seed model, in the kernels' layout.

    ``x`` is in the form ``x_mode`` names (see the top of this file): the
    seed's ``x`` (n_x, m, T) or (n_x, m) (X_COLUMNS, read as an ``(n_x, m*T)``
    matrix), batch-first rows ``(m*T, n_x)`` (X_ROWS) or class indices
    ``(m*T,)`` (X_INDEX).  ``h0`` is ``(m, n_h)``.  Every array is C-contiguous
    and of one float dtype; the biases are ``(n, 1)`` or ``(n,)`` (the kernels
    read n values either way).  The constructor trusts its arguments: build it
    after validating (``functional._model``, ``model.RNNModel``).
    """

    cdef readonly int x_mode
    cdef readonly cnp.ndarray x, h0, w_hx, w_hh, w_yh, b_h, b_y
    cdef readonly Py_ssize_t n_x, n_h, n_y, m, n_steps

    def __init__(self, cnp.ndarray x not None, cnp.ndarray h0 not None,
                 cnp.ndarray w_hx not None, cnp.ndarray w_hh not None,
                 cnp.ndarray w_yh not None, cnp.ndarray b_h not None,
                 cnp.ndarray b_y not None, Py_ssize_t n_steps, int x_mode=X_COLUMNS):
        self._set(x_mode, x, h0, w_hx, w_hh, w_yh, b_h, b_y, n_steps)

    cdef void _set(self, int x_mode, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray w_hx,
                   cnp.ndarray w_hh, cnp.ndarray w_yh, cnp.ndarray b_h, cnp.ndarray b_y,
                   Py_ssize_t n_steps) noexcept:
        self.x_mode, self.x, self.h0 = x_mode, x, h0
        self.w_hx, self.w_hh, self.w_yh, self.b_h, self.b_y = w_hx, w_hh, w_yh, b_h, b_y
        self.n_h, self.n_x = cnp.PyArray_DIMS(w_hx)[0], cnp.PyArray_DIMS(w_hx)[1]
        self.n_y = cnp.PyArray_DIMS(w_yh)[0]
        self.m = cnp.PyArray_DIMS(h0)[0]
        self.n_steps = n_steps

    @property
    def dtype(self):
        """The float dtype of every array."""
        return self.h0.dtype

    def astype(self, dtype):
        """This model with every array in ``dtype`` (itself when already so)."""
        if dtype == self.dtype:
            return self
        x = self.x if self.x_mode == X_INDEX else self.x.astype(dtype)
        return Model(x, *(a.astype(dtype) for a in (self.h0, self.w_hx, self.w_hh,
                                                     self.w_yh, self.b_h, self.b_y)),
                     self.n_steps, self.x_mode)

    def own_products(self):
        """Whether the recurrent products use the hand-written loops rather than BLAS."""
        return use_own_products(self.m, self.n_h)

    cdef tuple _run_forward(self, bint softmax):
        cdef bint own = use_own_products(self.m, self.n_h)
        if _is_float32(self.h0):
            return _forward_entry(<float>0, self.x_mode, self.x, self.h0, self.w_hx, self.w_hh,
                                  self.w_yh, self.b_h, self.b_y, own, softmax)
        return _forward_entry(<double>0, self.x_mode, self.x, self.h0, self.w_hx, self.w_hh,
                              self.w_yh, self.b_h, self.b_y, own, softmax)

    cdef tuple _run_backward(self, cnp.ndarray h, cnp.ndarray dh, bint dh_is_scratch):
        cdef bint own = use_own_products(self.m, self.n_h)
        if _is_float32(self.h0):
            return _backward_entry(<float>0, self.x_mode, self.x, self.h0, h, dh, self.w_hx,
                                   self.w_hh, self.b_h, dh_is_scratch, own)
        return _backward_entry(<double>0, self.x_mode, self.x, self.h0, h, dh, self.w_hx,
                               self.w_hh, self.b_h, dh_is_scratch, own)

    def run_forward(self, softmax=True):
        """Run the forward kernel; return ``(H (m,T,n_h), Y (m,T,n_y))``.

        ``Y`` holds the softmax outputs, or the logits when ``softmax`` is false.
        """
        return self._run_forward(softmax)

    def run_loss(self, cnp.ndarray labels not None):
        """Forward, mean cross-entropy against ``labels`` (intp, ``(m*T,)``), backward.

        Returns ``(loss, H, dx, dh0 (m, n_h), dWhx, dWhh, dbh, dWyh, dby)`` with
        ``dx`` shaped like ``x`` (None for class indices) and biases like the
        model's.
        """
        return loss(self.x_mode, self.x, self.h0, labels, self.w_hx, self.w_hh, self.w_yh,
                    self.b_h, self.b_y, use_own_products(self.m, self.n_h))

    def run_backward(self, cnp.ndarray H not None, cnp.ndarray dH not None, bint dH_is_scratch):
        """Run the BPTT kernel on batch-major ``H`` and ``dH`` (both ``(m, T, n_h)``).

        With ``dH_is_scratch`` (``dH`` is a private copy) the kernel overwrites
        ``dH`` with its intermediate ``dZ`` instead of allocating another array.
        Returns ``(dx, dh0 (m, n_h), dWhx, dWhh, dbh)``, ``dx`` shaped like ``x``
        (None for class indices).
        """
        return self._run_backward(H, dH, dH_is_scratch)


cdef class ForwardCache:
    """The per-step caches of :func:`rnnfast.rnn_forward`, without storing anything per step.

    Behaves like the reference's list of step caches: ``len(cache)`` is the
    number of steps and ``cache[t]`` is ``(h_next, h_prev, xt, parameters)``,
    built on demand as views of the arrays computed by the forward pass.
    Iterable, indexable by integers and slices, and a
    ``collections.abc.Sequence``.
    """

    cdef readonly Model _model          # validated, converted inputs
    cdef readonly cnp.ndarray _h        # hidden states, (m, T, n_h)
    cdef readonly object _parameters

    def __init__(self, Model model not None, cnp.ndarray h not None, parameters):
        self._model, self._h, self._parameters = model, h, parameters

    def __len__(self):
        return self._model.n_steps

    def __getitem__(self, t):
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(len(self)))]
        cdef Py_ssize_t n_steps = self._model.n_steps
        try:
            t = operator.index(t)
        except TypeError:
            raise TypeError("ForwardCache indices must be integers or slices, "
                            f"not {type(t).__name__}") from None
        if not -n_steps <= t < n_steps:
            raise IndexError(f"step {t} out of range for {n_steps} steps")
        t %= n_steps
        model = self._model
        h_prev = model.h0.T if t == 0 else self._h[:, t - 1, :].T
        xt = model.x.reshape(model.n_x, model.m, n_steps)[:, :, t]
        return self._h[:, t, :].T, h_prev, xt, self._parameters

    def __repr__(self):
        m = self._model
        return (f"<ForwardCache of {m.n_steps} steps: n_x={m.n_x}, n_h={m.n_h}, "
                f"n_y={m.n_y}, m={m.m}, dtype={m.dtype}>")


Sequence.register(ForwardCache)


cdef inline bint _plain(object a, int type_num, int ndim) noexcept:
    """``a`` is an exact ndarray of type ``type_num``, native byte order, C-contiguous, ``ndim``-D."""
    return (cnp.PyArray_CheckExact(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == type_num
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
            and cnp.PyArray_NDIM(<cnp.ndarray>a) == ndim)


cdef Model _fast_model(x, h0, parameters, bint cell):
    """The seed API's common case, checked at C speed: a :class:`Model`, or None.

    When ``x``, ``h0`` and the five parameters are all C-contiguous ndarrays of
    one float dtype with consistent, non-zero shapes inside the BLAS limits,
    returns the model of the call (``h0`` copied to rows ``(m, n_h)``);
    otherwise None (the caller then validates fully and reports errors).
    """
    if type(parameters) is not dict or len(<dict>parameters) != 5:
        return None
    cdef dict p = <dict>parameters
    w_hx, w_hh, w_yh = p.get("Whx"), p.get("Whh"), p.get("Wyh")
    b_h, b_y = p.get("bh"), p.get("by")
    if not cnp.PyArray_CheckExact(x):
        return None
    cdef int type_num = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if type_num != cnp.NPY_FLOAT32 and type_num != cnp.NPY_FLOAT64:
        return None
    if not (_plain(x, type_num, 2 if cell else 3) and _plain(h0, type_num, 2)
            and _plain(w_hx, type_num, 2) and _plain(w_hh, type_num, 2)
            and _plain(w_yh, type_num, 2) and _plain(b_h, type_num, 2)
            and _plain(b_y, type_num, 2)):
        return None
    cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(<cnp.ndarray>x)
    cdef cnp.npy_intp n_x = xd[0], m = xd[1], n_steps = 1 if cell else xd[2]
    cdef cnp.npy_intp *yd = cnp.PyArray_DIMS(<cnp.ndarray>w_yh)
    cdef cnp.npy_intp n_y = yd[0], n_h = yd[1]
    cdef cnp.npy_intp *d
    cdef cnp.npy_intp limit = 2147483647
    if n_x == 0 or m == 0 or n_steps == 0 or n_h == 0 or n_y == 0:
        return None
    if (n_x > limit or n_h > limit or n_y > limit or m > limit // n_steps
            or n_h > limit // n_steps):
        return None
    d = cnp.PyArray_DIMS(<cnp.ndarray>w_hh)
    if d[0] != n_h or d[1] != n_h:
        return None
    d = cnp.PyArray_DIMS(<cnp.ndarray>w_hx)
    if d[0] != n_h or d[1] != n_x:
        return None
    d = cnp.PyArray_DIMS(<cnp.ndarray>h0)
    if d[0] != n_h or d[1] != m:
        return None
    d = cnp.PyArray_DIMS(<cnp.ndarray>b_h)
    if d[0] != n_h or d[1] != 1:
        return None
    d = cnp.PyArray_DIMS(<cnp.ndarray>b_y)
    if d[0] != n_y or d[1] != 1:
        return None
    # h0 (n_h, m) -> rows (m, n_h)
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = m, n_h
    cdef cnp.ndarray rows = cnp.PyArray_EMPTY(2, dims, type_num, 0)
    cdef Py_ssize_t i, j
    cdef float *sf
    cdef float *df
    cdef double *sd
    cdef double *dd
    if type_num == cnp.NPY_FLOAT32:
        sf, df = <float *>cnp.PyArray_DATA(<cnp.ndarray>h0), <float *>cnp.PyArray_DATA(rows)
        for i in range(m):
            for j in range(n_h):
                df[i * n_h + j] = sf[j * m + i]
    else:
        sd, dd = <double *>cnp.PyArray_DATA(<cnp.ndarray>h0), <double *>cnp.PyArray_DATA(rows)
        for i in range(m):
            for j in range(n_h):
                dd[i * n_h + j] = sd[j * m + i]
    cdef Model model = Model.__new__(Model)
    model._set(X_COLUMNS, <cnp.ndarray>x, rows, <cnp.ndarray>w_hx, <cnp.ndarray>w_hh,
               <cnp.ndarray>w_yh, <cnp.ndarray>b_h, <cnp.ndarray>b_y, n_steps)
    return model


def fast_model(x, h0, parameters, bint cell):
    """:func:`_fast_model` for Python: the call's :class:`Model`, or None."""
    return _fast_model(x, h0, parameters, cell)


cdef inline object _transposed(cnp.ndarray a, cnp.npy_intp p0, cnp.npy_intp p1,
                               cnp.npy_intp p2):
    """A view of the 3-D ``a`` with its axes permuted to (p0, p1, p2)."""
    cdef cnp.npy_intp order[3]
    cdef cnp.PyArray_Dims permute
    order[0], order[1], order[2] = p0, p1, p2
    permute.ptr, permute.len = order, 3
    return cnp.PyArray_Transpose(a, &permute)


cdef inline object _transposed2(cnp.ndarray a):
    """A view of the 2-D ``a``, transposed."""
    cdef cnp.npy_intp order[2]
    cdef cnp.PyArray_Dims permute
    order[0], order[1] = 1, 0
    permute.ptr, permute.len = order, 2
    return cnp.PyArray_Transpose(a, &permute)


def fast_forward(x, h0, parameters):
    """``rnn_forward`` for the common case of :func:`_fast_model`, or None.

    Returns exactly what ``functional.rnn_forward`` returns; None when any
    input differs from the common case (the wrapper then takes its full path).
    """
    cdef Model model = _fast_model(x, h0, parameters, False)
    if model is None:
        return None
    cdef tuple hy = model._run_forward(True)
    cdef cnp.ndarray h_out = <cnp.ndarray>hy[0], y_out = <cnp.ndarray>hy[1]
    # h is the caller's to modify; the cache keeps its own copy of the states
    cdef ForwardCache cache = ForwardCache.__new__(ForwardCache)
    cache._model, cache._h, cache._parameters = model, cnp.PyArray_NewCopy(h_out, cnp.NPY_CORDER), parameters
    return (_transposed(h_out, 2, 0, 1), _transposed(y_out, 2, 0, 1), (cache, x))


cdef void _gather_rows(floating tag, const char *src, cnp.npy_intp *strides, floating *dst,
                       Py_ssize_t n_h, Py_ssize_t m, Py_ssize_t n_steps) noexcept nogil:
    """dst (m, T, n_h) = src (n_h, m, T) with any byte strides, transposed."""
    cdef Py_ssize_t i, t, j
    cdef const char *base
    for i in range(m):
        for t in range(n_steps):
            base = src + i * strides[1] + t * strides[2]
            for j in range(n_h):
                dst[j] = (<const floating *>(base + j * strides[0]))[0]
            dst += n_h


def fast_backward(dh, caches):
    """``rnn_backward`` for a ForwardCache and a plain ``dh`` of its dtype, or None.

    Returns exactly what ``functional.rnn_backward`` returns; None when the
    cache is not this module's, its parameters dict no longer holds the very
    ``Whx`` and ``Whh`` arrays the model reads, or ``dh`` is not an aligned,
    native-order ndarray of the cache's dtype and shape ``(n_h, m, T)`` (any
    strides).
    """
    if type(caches) is not tuple or len(<tuple>caches) != 2:
        return None
    steps = (<tuple>caches)[0]
    if type(steps) is not ForwardCache or not cnp.PyArray_CheckExact(dh):
        return None
    cdef ForwardCache cache = <ForwardCache>steps
    cdef Model model = cache._model
    # Backward reads the weights in the caller's dict now: when the dict holds other
    # arrays than the model (replaced, or converted by forward), the full path reads it.
    params = cache._parameters
    if (type(params) is not dict or (<dict>params).get("Whx") is not model.w_hx
            or (<dict>params).get("Whh") is not model.w_hh):
        return None
    cdef cnp.ndarray grad = <cnp.ndarray>dh
    cdef int type_num = cnp.PyArray_TYPE(model.h0)
    if (cnp.PyArray_TYPE(grad) != type_num or cnp.PyArray_NDIM(grad) != 3
            or cnp.PyArray_NDIM(model.x) != 3 or not cnp.PyArray_ISNOTSWAPPED(grad)
            or not cnp.PyArray_ISALIGNED(grad)):
        return None
    cdef cnp.npy_intp *d = cnp.PyArray_DIMS(grad)
    if d[0] != model.n_h or d[1] != model.m or d[2] != model.n_steps:
        return None
    cdef cnp.ndarray dz = _empty3(model.m, model.n_steps, model.n_h, type_num)
    cdef const char *src = <const char *>cnp.PyArray_DATA(grad)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(grad)
    if type_num == cnp.NPY_FLOAT32:
        _gather_rows(<float>0, src, strides, <float *>cnp.PyArray_DATA(dz), model.n_h, model.m,
                     model.n_steps)
    else:
        _gather_rows(<double>0, src, strides, <double *>cnp.PyArray_DATA(dz), model.n_h,
                     model.m, model.n_steps)
    cdef tuple grads = model._run_backward(cache._h, dz, True)
    return {"dx": grads[0], "dh0": _transposed2(<cnp.ndarray>grads[1]), "dWhx": grads[2],
            "dWhh": grads[3], "dbh": grads[4]}


# -- test hooks ----------------------------------------------------------------
# The BLAS shim and the hand-written products on NumPy arrays, so that tests
# can check each against a NumPy expression (tests/test_blas.py).  Not used by
# the package; typed memoryviews here, since a microsecond does not matter.

cdef inline char _flag(str trans) except 0:
    if trans not in ("N", "T"):
        raise ValueError(f"trans must be 'N' or 'T'; got {trans!r}")
    return c'T' if trans == "T" else c'N'


def _test_gemm(str trans_a, str trans_b, double alpha, const floating[:, ::1] a,
               const floating[:, ::1] b, double beta, floating[:, ::1] c):
    """``c = alpha op(a) op(b) + beta c`` through ``_blas.gemm`` (BLAS or the small loop)."""
    cdef char ta = _flag(trans_a), tb = _flag(trans_b)
    cdef int n_rows = c.shape[0], n_cols = c.shape[1]
    cdef int n_inner = a.shape[0] if ta == c'T' else a.shape[1]
    if ((a.shape[1] if ta == c'T' else a.shape[0]) != n_rows
            or (b.shape[1] if tb == c'T' else b.shape[0]) != n_inner
            or (b.shape[0] if tb == c'T' else b.shape[1]) != n_cols or n_inner == 0):
        raise ValueError("gemm: shapes do not fit")
    with nogil:
        gemm(ta, tb, n_rows, n_cols, n_inner, <floating>alpha, &a[0, 0], <int>a.shape[1], &b[0, 0],
             <int>b.shape[1], <floating>beta, &c[0, 0], <int>c.shape[1])


def _test_gemv(str trans_a, double alpha, const floating[:, ::1] a, const floating[::1] x,
               double beta, floating[::1] y):
    """``y = alpha op(a) x + beta y`` through ``_blas.gemv``."""
    cdef char ta = _flag(trans_a)
    if ((a.shape[0] if ta == c'T' else a.shape[1]) != x.shape[0]
            or (a.shape[1] if ta == c'T' else a.shape[0]) != y.shape[0]):
        raise ValueError("gemv: shapes do not fit")
    with nogil:
        gemv(ta, <int>a.shape[0], <int>a.shape[1], <floating>alpha, &a[0, 0], <int>a.shape[1],
             &x[0], 1, <floating>beta, &y[0], 1)


def _test_vecmat(const floating[::1] v, const floating[:, ::1] a, floating[::1] out,
                 bint accumulate):
    """``out (+)= v^T a`` through the hand-written product of the small recurrent steps."""
    if v.shape[0] != a.shape[0] or out.shape[0] != a.shape[1]:
        raise ValueError("vecmat: shapes do not fit")
    with nogil:
        _vecmat(&v[0], &a[0, 0], a.shape[0], a.shape[1], a.shape[1], &out[0], accumulate)
