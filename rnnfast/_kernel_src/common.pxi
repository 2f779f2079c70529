# Pieces every cell's time loop uses: the vectorised row operations of
# _vecmath.h (each activation an (f, f') pair defined once there), small row
# helpers, and the recurrent weight gradient shared by every cell.

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
                        double *m, Py_ssize_t n, Py_ssize_t gs)
    void rf_lstm_cell_f(float *a, const float *bias, const float *c_prev, float *c,
                        float *m, Py_ssize_t n, Py_ssize_t gs)
    void rf_lstm_cell_grad_d(const double *a, const double *c, const double *c_prev,
                             const double *dm, double *dc, double *da, Py_ssize_t n,
                             Py_ssize_t gs)
    void rf_lstm_cell_grad_f(const float *a, const float *c, const float *c_prev,
                             const float *dm, float *dc, float *da, Py_ssize_t n,
                             Py_ssize_t gs)
    void rf_gru_cell_d(double *gi, const double *gh, const double *b_ih, const double *b_hh,
                       const double *h_prev, double *hn, double *h, Py_ssize_t n,
                       Py_ssize_t gs)
    void rf_gru_cell_f(float *gi, const float *gh, const float *b_ih, const float *b_hh,
                       const float *h_prev, float *hn, float *h, Py_ssize_t n,
                       Py_ssize_t gs)
    void rf_gru_cell_grad_d(const double *gates, const double *hn, const double *h_prev,
                            double *g, double *dgi, double *dgh, Py_ssize_t n,
                            Py_ssize_t gs)
    void rf_gru_cell_grad_f(const float *gates, const float *hn, const float *h_prev,
                            float *g, float *dgi, float *dgh, Py_ssize_t n,
                            Py_ssize_t gs)


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



cdef void _transpose(const floating *a, Py_ssize_t n_rows, Py_ssize_t n_cols,
                     floating *out) noexcept nogil:
    """out (n_cols, n_rows) = A^T for a row-major A (n_rows, n_cols), in 16 x 16 tiles.

    Row by row, the writes of a large power-of-two width all fall in a few cache
    sets (a square 128 took 40 us, 512 over 1 ms, against 2.4 us at 96); tiles keep
    both sides in cache.  The recurrent weights' layout for the hand-written and the
    packed (LIBXSMM) products.
    """
    cdef Py_ssize_t i0, j0, i, j, i_end, j_end
    for i0 in range(0, n_rows, 16):
        i_end = min(i0 + 16, n_rows)
        for j0 in range(0, n_cols, 16):
            j_end = min(j0 + 16, n_cols)
            for i in range(i0, i_end):
                for j in range(j0, j_end):
                    out[j * n_rows + i] = a[i * n_cols + j]


cdef inline void _copy_row(floating *dst, const floating *src, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = src[j]


cdef inline void _zero_row(floating *dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = 0


cdef inline void _column_sums(const floating *a, Py_ssize_t n_rows, Py_ssize_t n,
                              floating *out, Py_ssize_t ld=0) noexcept nogil:
    """out = the column sums of the (n_rows, n) row-major a (row stride ``ld``, n when 0)."""
    cdef Py_ssize_t r, j
    if ld == 0:
        ld = n
    _zero_row(out, n)
    for r in range(n_rows):
        for j in range(n):
            out[j] += a[r * ld + j]


cdef inline bint _padded(const Dims *d, Py_ssize_t i, Py_ssize_t t) noexcept nogil:
    """Step t lies past sequence i's length (its state is carried unchanged)."""
    return d.lengths != NULL and t >= d.lengths[i]


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



cdef void _recurrent_weight_grad(const Dims *d, floating *dz, int n_out, const floating *h,
                                 const floating *h0, int n_in, floating *dw_out,
                                 int ld_out=0) noexcept nogil:
    """dW = sum_t dZ_t^T H_prev(t), with H_prev(first step) = h0.

    ``dz`` (m, T, n_out) holds the gradients of the pre-activations of the
    recurrent product H_prev W^T, ``h`` (m, T, n_in) the states and ``h0``
    (m, n_in); ``dw_out`` is W's shape (n_out, n_in).  With ``ld_out`` (0: n_out),
    ``dz`` is n_out columns of a (m, T, ld_out) array and ``dw_out`` those n_out rows
    of W (a thread team's share).

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
    cdef int n_batch = d.n_batch, n_steps = d.n_steps
    cdef bint reverse = d.reverse
    cdef int n_rows = n_batch * n_steps
    cdef int ld_z, ld_h = n_steps * n_in                        # one sequence's block
    cdef int first                                              # dz offset of the first step
    cdef int last = 0 if reverse else (n_steps - 1) * n_in     # h offset of the last step
    cdef Py_ssize_t i, j
    if ld_out == 0:
        ld_out = n_out
    ld_z = n_steps * ld_out
    first = (n_steps - 1) * ld_out if reverse else 0
    # dW = dZ_first^T h0                   (n_out, n_in) = (n_out, m) (m, n_in)
    gemm(c'T', c'N', n_out, n_in, n_batch, 1, dz + first, ld_z, h0, n_in, 0, dw_out, n_in)
    if n_steps == 1:
        return
    # The wrong partners are the last steps of sequences 0..m-2 (1..m-1 reversed).
    if not _rows_finite(h + last + (ld_h if reverse else 0), n_batch - 1, ld_h, n_in):
        # dW += sum_i dZ_i[later steps]^T H_i[earlier steps]
        for i in range(n_batch):
            if reverse:
                gemm(c'T', c'N', n_out, n_in, n_steps - 1, 1, dz + i * ld_z, ld_out,
                     h + i * ld_h + n_in, n_in, 1, dw_out, n_in)
            else:
                gemm(c'T', c'N', n_out, n_in, n_steps - 1, 1, dz + i * ld_z + ld_out, ld_out,
                     h + i * ld_h, n_in, 1, dw_out, n_in)
        return
    for i in range(n_batch):
        for j in range(n_out):
            dz[i * ld_z + first + j] = 0
    if reverse:
        # dW += dZ[:-1]^T H[1:]            (n_out, n_in) = (n_out, m*T-1) (m*T-1, n_in)
        gemm(c'T', c'N', n_out, n_in, n_rows - 1, 1, dz, ld_out, h + n_in, n_in, 1,
             dw_out, n_in)
    else:
        # dW += dZ[1:]^T H[:-1]            (n_out, n_in) = (n_out, m*T-1) (m*T-1, n_in)
        gemm(c'T', c'N', n_out, n_in, n_rows - 1, 1, dz + ld_out, ld_out, h, n_in, 1,
             dw_out, n_in)


