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
# Kernels never allocate and never raise: the Python wrapper (functional.py) has
# validated every shape, checked BLAS sizes against INT_MAX and allocated every
# output and scratch array.

cimport numpy as cnp
from cython cimport floating

from rnnfast._blas cimport gemm, gemv

cnp.import_array()

# Forms of the input x (see the top of this file).
cpdef enum:
    X_COLUMNS = 0
    X_ROWS = 1
    X_INDEX = 2


cdef extern from "_vecmath.h" nogil:
    double rf_xent_row_d(double *row, Py_ssize_t label, Py_ssize_t n, double scale)
    double rf_xent_row_f(float *row, Py_ssize_t label, Py_ssize_t n, float scale)
    void rf_bias_tanh_d(double *row, const double *bias, Py_ssize_t n)
    void rf_bias_tanh_f(float *row, const float *bias, Py_ssize_t n)
    void rf_bias_softmax_d(double *row, const double *bias, Py_ssize_t n)
    void rf_bias_softmax_f(float *row, const float *bias, Py_ssize_t n)
    void rf_tanh_grad_d(double *dz, const double *dh, const double *grad, const double *h,
                        double *db, Py_ssize_t n)
    void rf_tanh_grad_f(float *dz, const float *dh, const float *grad, const float *h,
                        float *db, Py_ssize_t n)
    void rf_vecmat_d(const double *v, const double *a, Py_ssize_t n_k, Py_ssize_t n_j,
                     Py_ssize_t lda, double *out, int accumulate)
    void rf_vecmat_f(const float *v, const float *a, Py_ssize_t n_k, Py_ssize_t n_j,
                     Py_ssize_t lda, float *out, int accumulate)


cdef inline void _bias_tanh(floating *row, const floating *bias, Py_ssize_t n) noexcept nogil:
    """row = tanh(row + bias), in place (vectorised)."""
    if floating is float:
        rf_bias_tanh_f(row, bias, n)
    else:
        rf_bias_tanh_d(row, bias, n)


cdef inline void _bias_softmax(floating *row, const floating *bias, Py_ssize_t n) noexcept nogil:
    """row = softmax(row + bias), in place; the maximum is subtracted first."""
    if floating is float:
        rf_bias_softmax_f(row, bias, n)
    else:
        rf_bias_softmax_d(row, bias, n)


cdef inline void _tanh_grad(floating *dz, const floating *dh, const floating *grad,
                            const floating *h, floating *db, Py_ssize_t n) noexcept nogil:
    """dz = (dh + grad) * (1 - h^2); db += dz."""
    if floating is float:
        rf_tanh_grad_f(dz, dh, grad, h, db, n)
    else:
        rf_tanh_grad_d(dz, dh, grad, h, db, n)


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


cdef void _forward(int x_mode, const void *x, const floating *h0,
                   const floating *w_hx, const floating *w_hh, const floating *w_yh,
                   const floating *b_h, const floating *b_y,
                   floating *h_out, floating *y_out, floating *w_hh_t,
                   int n_input, int n_hidden, int n_output,
                   int n_batch, int n_steps, bint own_products, bint softmax) noexcept nogil:
    cdef int n_rows = n_batch * n_steps          # m*T rows, batch-major
    cdef int ld_step = n_steps * n_hidden        # row stride of one step's block
    cdef int ld_prev
    cdef Py_ssize_t t, i, j
    cdef const floating *h_prev
    cdef floating *z_t
    cdef floating *row

    _project_input(x_mode, x, w_hx, h_out, n_input, n_hidden, n_rows)

    if own_products:
        # Whh^T, row-major, so that each step is a row-vector times matrix
        for i in range(n_hidden):
            for j in range(n_hidden):
                w_hh_t[j * n_hidden + i] = w_hh[i * n_hidden + j]

    for t in range(n_steps):
        z_t = h_out + t * n_hidden
        if t == 0:
            h_prev, ld_prev = h0, n_hidden
        else:
            h_prev, ld_prev = h_out + (t - 1) * n_hidden, ld_step
        if own_products:
            # z_{t,i} += h_{t-1,i} Whh^T      (n_h,) = (n_h,) (n_h, n_h), each batch row i
            for i in range(n_batch):
                _vecmat(h_prev + i * ld_prev, w_hh_t, n_hidden, n_hidden, n_hidden,
                        z_t + i * ld_step, True)
        elif n_batch == 1:
            # z_t += Whh h_{t-1}           (n_h,) = (n_h, n_h) (n_h,)
            gemv(c'N', n_hidden, n_hidden, 1, w_hh, n_hidden, h_prev, 1, 1, z_t, 1)
        else:
            # Z_t += H_{t-1} Whh^T         (m, n_h) = (m, n_h) (n_h, n_h)
            gemm(c'N', c'T', n_batch, n_hidden, n_hidden, 1, h_prev, ld_prev,
                 w_hh, n_hidden, 1, z_t, ld_step)
        # H_t = tanh(Z_t + bh)
        for i in range(n_batch):
            _bias_tanh(z_t + i * ld_step, b_h, n_hidden)

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
                    floating *dz, floating *h_edge,
                    int n_input, int n_hidden, int n_batch, int n_steps,
                    bint own_products) noexcept nogil:
    cdef int n_rows = n_batch * n_steps
    cdef int ld_step = n_steps * n_hidden
    cdef Py_ssize_t t, i, j, off, k
    cdef floating *grad = dh0_out      # G_t, the gradient arriving from step t+1
    cdef floating v
    cdef const Py_ssize_t *index = <const Py_ssize_t *>x

    for j in range(n_batch * n_hidden):
        grad[j] = 0
    for j in range(n_hidden):
        db_h_out[j] = 0

    for t in range(n_steps - 1, -1, -1):
        # dZ_t = (dH_t + G_t) * (1 - H_t^2);  dbh += column sums of dZ_t
        for i in range(n_batch):
            off = i * ld_step + t * n_hidden
            _tanh_grad(dz + off, dh + off, grad + i * n_hidden, h + off, db_h_out, n_hidden)
        if own_products:
            # G_{t-1,i} = dz_{t,i} Whh        (n_h,) = (n_h,) (n_h, n_h), each batch row i
            for i in range(n_batch):
                _vecmat(dz + i * ld_step + t * n_hidden, w_hh, n_hidden, n_hidden, n_hidden,
                        grad + i * n_hidden, False)
        elif n_batch == 1:
            # G_{t-1} = Whh^T dz_t         (n_h,) = (n_h, n_h)^T (n_h,)
            gemv(c'T', n_hidden, n_hidden, 1, w_hh, n_hidden, dz + t * n_hidden, 1,
                 0, grad, 1)
        else:
            # G_{t-1} = dZ_t Whh           (m, n_h) = (m, n_h) (n_h, n_h)
            gemm(c'N', c'N', n_batch, n_hidden, n_hidden, 1, dz + t * n_hidden, ld_step,
                 w_hh, n_hidden, 0, grad, n_hidden)
    # dh0 = G_{-1} is already in dh0_out.

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

    # dWhh = sum_t dZ_t^T H_{t-1}.  In the flat batch-major rows, row r of dZ pairs
    # with row r-1 of H except at t = 0, where it must pair with h0 instead of the
    # previous batch element's last state.  One GEMM takes all shifted pairs, a
    # second (m rows) swaps the wrong t = 0 partners for h0:
    #   h_edge[i] = h0[i] - H[i-1, T-1]   (H[-1, T-1] taken as 0)
    if n_steps == 1:
        # dWhh = dZ^T h0                   (n_h, n_h) = (n_h, m) (m, n_h)
        gemm(c'T', c'N', n_hidden, n_hidden, n_batch, 1, dz, n_hidden, h0, n_hidden,
             0, dw_hh_out, n_hidden)
        return
    # dWhh = dZ[1:]^T H[:-1]              (n_h, n_h) = (n_h, m*T-1) (m*T-1, n_h)
    gemm(c'T', c'N', n_hidden, n_hidden, n_rows - 1, 1, dz + n_hidden, n_hidden,
         h, n_hidden, 0, dw_hh_out, n_hidden)
    for i in range(n_batch):
        for j in range(n_hidden):
            v = h0[i * n_hidden + j]
            if i > 0:
                v = v - h[(i - 1) * ld_step + (n_steps - 1) * n_hidden + j]
            h_edge[i * n_hidden + j] = v
    # dWhh += dZ_0^T h_edge               (n_h, n_h) = (n_h, m) (m, n_h)
    gemm(c'T', c'N', n_hidden, n_hidden, n_batch, 1, dz, ld_step, h_edge, n_hidden,
         1, dw_hh_out, n_hidden)


cdef double _loss(int x_mode, const void *x, const floating *h0, const Py_ssize_t *labels,
                  const floating *w_hx, const floating *w_hh, const floating *w_yh,
                  const floating *b_h, const floating *b_y,
                  floating *h_out, floating *logits, floating *dh,
                  floating *dx_out, floating *dh0_out, floating *dw_hx_out,
                  floating *dw_hh_out, floating *db_h_out, floating *dw_yh_out,
                  floating *db_y_out, floating *h_edge, floating *w_hh_t,
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
              db_h_out, dh, h_edge, n_input, n_hidden, n_batch, n_steps, own_products)
    return total / n_rows


# The entry points take ndarrays and read their data pointers directly: the
# wrapper (functional.py) has checked that every array is C-contiguous, of one
# float dtype (that of h0), of the documented shape, and that class indices are
# intp values in range, so no buffer is acquired or checked here.  Sizes come
# from the shapes of h_out/h (m, T, n_h), y_out/logits (m*T or m, T, n_y) and
# w_hx (n_h, n_x).

cdef inline void *_ptr(cnp.ndarray a) noexcept:
    return NULL if a is None else cnp.PyArray_DATA(a)


def forward(int x_mode, cnp.ndarray x not None, cnp.ndarray h0 not None,
            cnp.ndarray w_hx not None, cnp.ndarray w_hh not None, cnp.ndarray w_yh not None,
            cnp.ndarray b_h not None, cnp.ndarray b_y not None,
            cnp.ndarray h_out not None, cnp.ndarray y_out not None,
            cnp.ndarray w_hh_t not None, bint own_products, bint softmax=True):
    """Forward pass over all steps; writes ``h_out (m, T, n_h)`` and ``y_out (m, T, n_y)``.

    ``y_out`` gets the softmax outputs, or the logits when ``softmax`` is false.
    ``h0 (m, n_h)``, weights as in the model, biases 1-D, ``w_hh_t (n_h, n_h)``
    scratch (used when ``own_products``: the recurrent products then run in the
    hand-written loops instead of BLAS).
    """
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(h_out)
    cdef int n_batch = <int>dims[0], n_steps = <int>dims[1], n_hidden = <int>dims[2]
    cdef int n_output = <int>cnp.PyArray_DIMS(w_yh)[0]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_hx)[1]
    cdef void *p[10]
    p[:] = [_ptr(x), _ptr(h0), _ptr(w_hx), _ptr(w_hh), _ptr(w_yh), _ptr(b_h), _ptr(b_y),
            _ptr(h_out), _ptr(y_out), _ptr(w_hh_t)]
    if cnp.PyArray_TYPE(h0) == cnp.NPY_FLOAT32:
        with nogil:
            _forward(x_mode, p[0], <float *>p[1], <float *>p[2], <float *>p[3], <float *>p[4],
                     <float *>p[5], <float *>p[6], <float *>p[7], <float *>p[8], <float *>p[9],
                     n_input, n_hidden, n_output, n_batch, n_steps, own_products, softmax)
    else:
        with nogil:
            _forward(x_mode, p[0], <double *>p[1], <double *>p[2], <double *>p[3],
                     <double *>p[4], <double *>p[5], <double *>p[6], <double *>p[7],
                     <double *>p[8], <double *>p[9],
                     n_input, n_hidden, n_output, n_batch, n_steps, own_products, softmax)


def backward(int x_mode, cnp.ndarray x not None, cnp.ndarray h0 not None,
             cnp.ndarray h not None, cnp.ndarray dh not None, cnp.ndarray w_hx not None,
             cnp.ndarray w_hh not None, cnp.ndarray dx_out, cnp.ndarray dh0_out not None,
             cnp.ndarray dw_hx_out not None, cnp.ndarray dw_hh_out not None,
             cnp.ndarray db_h_out not None, cnp.ndarray dz_scratch not None,
             cnp.ndarray edge_scratch not None, bint own_products):
    """BPTT over all steps; writes the ``*_out`` arrays (see the top of this file).

    ``h`` and ``dh`` are ``(m, T, n_h)``; ``dz_scratch`` has the shape of ``h``
    and may be ``dh`` itself (then overwritten); ``edge_scratch`` has the
    shape of ``h0 (m, n_h)``.  ``dx_out`` has the layout of ``x``, or is None
    for class indices.
    """
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(h)
    cdef int n_batch = <int>dims[0], n_steps = <int>dims[1], n_hidden = <int>dims[2]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_hx)[1]
    cdef void *p[13]
    p[:] = [_ptr(x), _ptr(h0), _ptr(h), _ptr(dh), _ptr(w_hx), _ptr(w_hh), _ptr(dx_out),
            _ptr(dh0_out), _ptr(dw_hx_out), _ptr(dw_hh_out), _ptr(db_h_out),
            _ptr(dz_scratch), _ptr(edge_scratch)]
    if cnp.PyArray_TYPE(h0) == cnp.NPY_FLOAT32:
        with nogil:
            _backward(x_mode, p[0], <float *>p[1], <float *>p[2], <float *>p[3], <float *>p[4],
                      <float *>p[5], <float *>p[6], <float *>p[7], <float *>p[8], <float *>p[9],
                      <float *>p[10], <float *>p[11], <float *>p[12],
                      n_input, n_hidden, n_batch, n_steps, own_products)
    else:
        with nogil:
            _backward(x_mode, p[0], <double *>p[1], <double *>p[2], <double *>p[3],
                      <double *>p[4], <double *>p[5], <double *>p[6], <double *>p[7],
                      <double *>p[8], <double *>p[9], <double *>p[10], <double *>p[11],
                      <double *>p[12], n_input, n_hidden, n_batch, n_steps, own_products)


def loss(int x_mode, cnp.ndarray x not None, cnp.ndarray h0 not None,
         cnp.ndarray labels not None, cnp.ndarray w_hx not None, cnp.ndarray w_hh not None,
         cnp.ndarray w_yh not None, cnp.ndarray b_h not None, cnp.ndarray b_y not None,
         cnp.ndarray h_out not None, cnp.ndarray logits not None, cnp.ndarray dh not None,
         cnp.ndarray dx_out, cnp.ndarray dh0_out not None, cnp.ndarray dw_hx_out not None,
         cnp.ndarray dw_hh_out not None, cnp.ndarray db_h_out not None,
         cnp.ndarray dw_yh_out not None, cnp.ndarray db_y_out not None,
         cnp.ndarray edge_scratch not None, cnp.ndarray w_hh_t not None, bint own_products):
    """Forward, mean softmax cross-entropy against ``labels (m*T,)`` and full backward.

    Returns the loss (a float); writes ``h_out``, the ``d*_out`` gradients, and
    uses ``logits (m, T, n_y)`` and ``dh (m, T, n_h)`` as scratch.
    """
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(h_out)
    cdef int n_batch = <int>dims[0], n_steps = <int>dims[1], n_hidden = <int>dims[2]
    cdef int n_output = <int>cnp.PyArray_DIMS(w_yh)[0]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_hx)[1]
    cdef double result
    cdef void *p[20]
    p[:] = [_ptr(x), _ptr(h0), _ptr(labels), _ptr(w_hx), _ptr(w_hh), _ptr(w_yh), _ptr(b_h),
            _ptr(b_y), _ptr(h_out), _ptr(logits), _ptr(dh), _ptr(dx_out), _ptr(dh0_out),
            _ptr(dw_hx_out), _ptr(dw_hh_out), _ptr(db_h_out), _ptr(dw_yh_out),
            _ptr(db_y_out), _ptr(edge_scratch), _ptr(w_hh_t)]
    if cnp.PyArray_TYPE(h0) == cnp.NPY_FLOAT32:
        with nogil:
            result = _loss(x_mode, p[0], <float *>p[1], <Py_ssize_t *>p[2], <float *>p[3],
                           <float *>p[4], <float *>p[5], <float *>p[6], <float *>p[7],
                           <float *>p[8], <float *>p[9], <float *>p[10], <float *>p[11],
                           <float *>p[12], <float *>p[13], <float *>p[14], <float *>p[15],
                           <float *>p[16], <float *>p[17], <float *>p[18], <float *>p[19],
                           n_input, n_hidden, n_output, n_batch, n_steps, own_products)
    else:
        with nogil:
            result = _loss(x_mode, p[0], <double *>p[1], <Py_ssize_t *>p[2], <double *>p[3],
                           <double *>p[4], <double *>p[5], <double *>p[6], <double *>p[7],
                           <double *>p[8], <double *>p[9], <double *>p[10], <double *>p[11],
                           <double *>p[12], <double *>p[13], <double *>p[14], <double *>p[15],
                           <double *>p[16], <double *>p[17], <double *>p[18], <double *>p[19],
                           n_input, n_hidden, n_output, n_batch, n_steps, own_products)
    return result
