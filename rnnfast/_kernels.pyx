# Compiled time loops of the vanilla RNN: forward and backpropagation through time.
#
# Internal layout (all C-contiguous):
#   x2      (n_x, m*T)     the caller's x of shape (n_x, m, T), read as a matrix;
#                          its transpose X (m*T, n_x) has one row per (batch i, step t),
#                          row index r = i*T + t: "batch-major".
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

from cython cimport floating
from libc.math cimport tanh, tanhf, exp, expf

from rnnfast._blas cimport gemm, gemv


cdef inline floating _tanh(floating v) noexcept nogil:
    """tanh(v) in the precision of v."""
    if floating is float:
        return tanhf(v)
    else:
        return tanh(v)


cdef inline floating _exp(floating v) noexcept nogil:
    """exp(v) in the precision of v."""
    if floating is float:
        return expf(v)
    else:
        return exp(v)


cdef inline void _bias_tanh(floating *row, const floating *bias,
                            Py_ssize_t n) noexcept nogil:
    """row = tanh(row + bias), in place."""
    cdef Py_ssize_t j
    for j in range(n):
        row[j] = _tanh(row[j] + bias[j])


cdef inline void _bias_softmax(floating *row, const floating *bias,
                               Py_ssize_t n) noexcept nogil:
    """row = softmax(row + bias), in place; the maximum is subtracted first."""
    cdef Py_ssize_t k
    cdef floating top, total = 0
    for k in range(n):
        row[k] += bias[k]
    top = row[0]
    for k in range(1, n):
        if row[k] > top:
            top = row[k]
    for k in range(n):
        row[k] = _exp(row[k] - top)
        total += row[k]
    total = 1 / total
    for k in range(n):
        row[k] *= total


cdef void _forward(const floating *x2, const floating *h0,
                   const floating *w_hx, const floating *w_hh, const floating *w_yh,
                   const floating *b_h, const floating *b_y,
                   floating *h_out, floating *y_out,
                   int n_input, int n_hidden, int n_output,
                   int n_batch, int n_steps) noexcept nogil:
    cdef int n_rows = n_batch * n_steps          # m*T rows, batch-major
    cdef int ld_step = n_steps * n_hidden        # row stride of one step's block
    cdef int ld_prev
    cdef Py_ssize_t t, i
    cdef const floating *h_prev
    cdef floating *z_t

    # Z = X Whx^T                         (m*T, n_h) = (m*T, n_x) (n_x, n_h)
    gemm(c'T', c'T', n_rows, n_hidden, n_input, 1, x2, n_rows,
         w_hx, n_input, 0, h_out, n_hidden)

    for t in range(n_steps):
        z_t = h_out + t * n_hidden
        if t == 0:
            h_prev, ld_prev = h0, n_hidden
        else:
            h_prev, ld_prev = h_out + (t - 1) * n_hidden, ld_step
        if n_batch == 1:
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
    # Y = softmax(Y + by) row by row
    for i in range(n_rows):
        _bias_softmax(y_out + i * n_output, b_y, n_output)


cdef void _backward(const floating *x2, const floating *h0, const floating *h,
                    const floating *dh, const floating *w_hx, const floating *w_hh,
                    floating *dx_out, floating *dh0_out, floating *dw_hx_out,
                    floating *dw_hh_out, floating *db_h_out,
                    floating *dz, floating *h_edge,
                    int n_input, int n_hidden, int n_batch, int n_steps) noexcept nogil:
    cdef int n_rows = n_batch * n_steps
    cdef int ld_step = n_steps * n_hidden
    cdef Py_ssize_t t, i, j, off
    cdef floating *grad = dh0_out      # G_t, the gradient arriving from step t+1
    cdef floating v

    for j in range(n_batch * n_hidden):
        grad[j] = 0
    for j in range(n_hidden):
        db_h_out[j] = 0

    for t in range(n_steps - 1, -1, -1):
        # dZ_t = (dH_t + G_t) * (1 - H_t^2);  dbh += column sums of dZ_t
        for i in range(n_batch):
            off = i * ld_step + t * n_hidden
            for j in range(n_hidden):
                v = (dh[off + j] + grad[i * n_hidden + j]) * (1 - h[off + j] * h[off + j])
                dz[off + j] = v
                db_h_out[j] += v
        if n_batch == 1:
            # G_{t-1} = Whh^T dz_t         (n_h,) = (n_h, n_h)^T (n_h,)
            gemv(c'T', n_hidden, n_hidden, 1, w_hh, n_hidden, dz + t * n_hidden, 1,
                 0, grad, 1)
        else:
            # G_{t-1} = dZ_t Whh           (m, n_h) = (m, n_h) (n_h, n_h)
            gemm(c'N', c'N', n_batch, n_hidden, n_hidden, 1, dz + t * n_hidden, ld_step,
                 w_hh, n_hidden, 0, grad, n_hidden)
    # dh0 = G_{-1} is already in dh0_out.

    # dWhx = dZ^T X                       (n_h, n_x) = (n_h, m*T) (m*T, n_x)
    gemm(c'T', c'T', n_hidden, n_input, n_rows, 1, dz, n_hidden, x2, n_rows,
         0, dw_hx_out, n_input)
    # dX^T = Whx^T dZ^T, i.e. dx2          (n_x, m*T) = (n_x, n_h) (n_h, m*T)
    gemm(c'T', c'T', n_input, n_rows, n_hidden, 1, w_hx, n_input, dz, n_hidden,
         0, dx_out, n_rows)

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


def forward(const floating[:, ::1] x2, const floating[:, ::1] h0,
            const floating[:, ::1] w_hx, const floating[:, ::1] w_hh,
            const floating[:, ::1] w_yh, const floating[::1] b_h,
            const floating[::1] b_y,
            floating[:, :, ::1] h_out, floating[:, :, ::1] y_out):
    """Forward pass over all steps; writes ``h_out (m, T, n_h)`` and ``y_out (m, T, n_y)``.

    Shapes are trusted: the caller has validated them.
    """
    cdef int n_batch = <int>h_out.shape[0], n_steps = <int>h_out.shape[1]
    cdef int n_hidden = <int>h_out.shape[2], n_output = <int>y_out.shape[2]
    cdef int n_input = <int>x2.shape[0]
    with nogil:
        _forward(&x2[0, 0], &h0[0, 0], &w_hx[0, 0], &w_hh[0, 0], &w_yh[0, 0],
                 &b_h[0], &b_y[0], &h_out[0, 0, 0], &y_out[0, 0, 0],
                 n_input, n_hidden, n_output, n_batch, n_steps)


def backward(const floating[:, ::1] x2, const floating[:, ::1] h0,
             const floating[:, :, ::1] h, const floating[:, :, ::1] dh,
             const floating[:, ::1] w_hx, const floating[:, ::1] w_hh,
             floating[:, ::1] dx_out, floating[:, ::1] dh0_out,
             floating[:, ::1] dw_hx_out, floating[:, ::1] dw_hh_out,
             floating[::1] db_h_out, floating[:, :, ::1] dz_scratch,
             floating[:, ::1] edge_scratch):
    """BPTT over all steps; writes the ``*_out`` arrays (see the module comment).

    ``dz_scratch`` has the shape of ``h``; ``edge_scratch`` the shape of ``h0``.
    Shapes are trusted: the caller has validated them.
    """
    cdef int n_batch = <int>h.shape[0], n_steps = <int>h.shape[1]
    cdef int n_hidden = <int>h.shape[2], n_input = <int>x2.shape[0]
    with nogil:
        _backward(&x2[0, 0], &h0[0, 0], &h[0, 0, 0], &dh[0, 0, 0], &w_hx[0, 0],
                  &w_hh[0, 0], &dx_out[0, 0], &dh0_out[0, 0], &dw_hx_out[0, 0],
                  &dw_hh_out[0, 0], &db_h_out[0], &dz_scratch[0, 0, 0],
                  &edge_scratch[0, 0], n_input, n_hidden, n_batch, n_steps)
