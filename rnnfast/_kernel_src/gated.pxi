# -- gated cells: one direction of one nn.LSTM / nn.GRU layer -------------------
# Layouts as for the Elman layer: x rows (m*T, n_in) batch-major, states
# (m, T, width), step t of all sequences an (m, width) block with row stride
# T*width.  Per step one GEMM for the recurrent product of all gates; the
# input products of all gates and steps, and the weight gradients, are one
# GEMM each, before and after the loop.  What backward reads is saved:
#   LSTM  states h (m,T,P), cells c (m,T,H), activated gates (m,T,4H);
#   GRU   states h (m,T,H), activated gates r,z,n (m,T,3H), hn = h W_hn^T + b_hn (m,T,H).
# A step t >= lengths[i] carries sequence i's states; its gate rows are zeros.
#
# Where the product policy plans PRODUCT_PACKED (Dims.packed, decided once per
# call by _plan_packed), the per-step recurrent products run in LIBXSMM
# kernels dispatched once per call: forward, W_hh is laid out once as W_hh^T
# (into the w_hh_t scratch the entry point allocates) so that H_prev W_hh^T is
# LIBXSMM's plain "NN" product; backward multiplies by W_hh as stored.  A
# dispatch that returns NULL falls back to _rows_times (BLAS).



cdef struct LstmBuffers:
    # inputs (bias and w_hr may be NULL: no bias, no projection)
    const void *x               # (m*T, n_in) rows
    const void *h0              # (m, P)
    const void *c0              # (m, H)
    const void *w_ih            # (4H, n_in)
    const void *w_hh            # (4H, P)
    const void *bias            # (4H,) b_ih + b_hh
    const void *w_hr            # (P, H)
    # forward outputs, read by backward
    void *h                     # (m, T, P)
    void *c                     # (m, T, H)
    void *gates                 # (m, T, 4H) activated
    # backward: dh (m,T,P) is overwritten with the total gradient reaching each
    # state; grad_h (m,P), grad_c (m,H) hold dL/dh_n, dL/dc_n on entry and
    # dL/dh0, dL/dc0 on return
    void *dh
    void *grad_h
    void *grad_c
    void *dx
    void *dw_ih
    void *dw_hh
    void *db                    # (4H,)
    void *dw_hr
    # scratch
    void *w_hh_t                # (P, 4H) W_hh^T, forward with d.packed
    void *m_buf                 # (m, H) forward, with the projection
    void *da                    # (m, T, 4H)
    void *dm                    # (m, H), with the projection
    void *carry                 # (m, P), with lengths
    void *m_all                 # (m, T, H), with the projection


cdef struct GruBuffers:
    # inputs (the biases may be NULL)
    const void *x               # (m*T, n_in) rows
    const void *h0              # (m, H)
    const void *w_ih            # (3H, n_in)
    const void *w_hh            # (3H, H)
    const void *b_ih            # (3H,)
    const void *b_hh            # (3H,)
    # forward outputs, read by backward
    void *h                     # (m, T, H)
    void *gates                 # (m, T, 3H) activated r, z, n
    void *hn                    # (m, T, H) h W_hn^T + b_hn
    # backward: dh (m,T,H) is read only; grad (m,H) holds dL/dh_n on entry,
    # dL/dh0 on return
    const void *dh
    void *grad
    void *dx
    void *dw_ih
    void *dw_hh
    void *db_ih
    void *db_hh
    # scratch
    void *w_hh_t                # (H, 3H) W_hh^T, forward with d.packed
    void *gh                    # (m, 3H) forward
    void *dgi                   # (m, T, 3H)
    void *dgh                   # (m, T, 3H)
    void *direct                # (m, H)

cdef void _lstm_forward(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """LSTM states ``h`` (m,T,P), cells ``c`` (m,T,H) and activated ``gates`` (m,T,4H).

    ``bias`` (4H, b_ih + b_hh) and ``w_hr`` (P, H) may be NULL (P = H without a
    projection); ``m_buf`` (m, H) is scratch, used with the projection, ``w_hh_t``
    (P, 4H) with ``d.packed``.
    """
    cdef LstmBuffers *b = <LstmBuffers *>buffers
    cdef const floating *x = <const floating *>b.x
    cdef const floating *h0 = <const floating *>b.h0
    cdef const floating *c0 = <const floating *>b.c0
    cdef const floating *w_ih = <const floating *>b.w_ih
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef const floating *bias = <const floating *>b.bias
    cdef const floating *w_hr = <const floating *>b.w_hr
    cdef floating *h = <floating *>b.h
    cdef floating *c = <floating *>b.c
    cdef floating *gates = <floating *>b.gates
    cdef floating *m_buf = <floating *>b.m_buf
    cdef floating *w_hh_t = <floating *>b.w_hh_t
    cdef int n_input = d.n_input, n_batch = d.n_batch, n_steps = d.n_steps
    cdef bint reverse = d.reverse
    cdef int H = d.n_hidden, P = d.n_proj, G = 4 * d.n_hidden
    cdef int ld_g = n_steps * G, ld_c = n_steps * H, ld_h = n_steps * P
    cdef Py_ssize_t s, t, tp, i
    cdef const floating *h_prev
    cdef const floating *c_prev
    cdef int ld_hp, ld_cp
    cdef floating *out
    cdef void *first_kernel = NULL               # LIBXSMM's, for H_prev = h0
    cdef void *step_kernel = NULL                # and for H_prev a step of h
    cdef void *kernel
    if d.packed or d.team:
        # W_hh^T (P, 4H), row-major: A_t += H_prev W_hh^T is then LIBXSMM's NN product
        _transpose(w_hh, G, P, w_hh_t)
    if d.team and _gated_team_run(d, 4, b, False):
        return                  # the thread team ran it all (gated_team.pxi)
    # A = X W_ih^T                         (m*T, 4H) = (m*T, n_in) (n_in, 4H)
    gemm(c'N', c'T', n_batch * n_steps, G, n_input, 1, x, n_input, w_ih, n_input, 0, gates, G)
    if d.packed:
        # kernels for h0's row stride and for a step's (NULL: BLAS)
        first_kernel = _packed_kernel(w_hh_t, n_batch, G, P, P, G, ld_g, True)
        step_kernel = _packed_kernel(w_hh_t, n_batch, G, P, ld_h, G, ld_g, True)
    for s in range(n_steps):
        t = n_steps - 1 - s if reverse else s
        tp = t + 1 if reverse else t - 1
        if s == 0:
            h_prev, ld_hp, c_prev, ld_cp = h0, P, c0, H
        else:
            h_prev, ld_hp, c_prev, ld_cp = h + tp * P, ld_h, c + tp * H, ld_c
        kernel = first_kernel if s == 0 else step_kernel
        # A_t += H_prev W_hh^T             (m, 4H) = (m, P) (P, 4H)
        if kernel != NULL:
            _packed_times(kernel, h_prev, w_hh_t, gates + t * G)
        else:
            _rows_times(h_prev, ld_hp, w_hh, True, gates + t * G, ld_g, 1, n_batch, P, G)
        for i in range(n_batch):
            if _padded(d, i, t):
                _copy_row(c + i * ld_c + t * H, c_prev + i * ld_cp, H)
                _zero_row(gates + i * ld_g + t * G, G)
                if w_hr != NULL:
                    _zero_row(m_buf + i * H, H)
                continue
            out = m_buf + i * H if w_hr != NULL else h + i * ld_h + t * P
            if floating is float:
                rf_lstm_cell_f(gates + i * ld_g + t * G, bias, c_prev + i * ld_cp,
                               c + i * ld_c + t * H, out, H, H)
            else:
                rf_lstm_cell_d(gates + i * ld_g + t * G, bias, c_prev + i * ld_cp,
                               c + i * ld_c + t * H, out, H, H)
        if w_hr != NULL:
            # H_t = M W_hr^T               (m, P) = (m, H) (H, P)
            _rows_times(m_buf, H, w_hr, True, h + t * P, ld_h, 0, n_batch, H, P)
        if d.lengths != NULL:
            for i in range(n_batch):
                if t >= d.lengths[i]:
                    _copy_row(h + i * ld_h + t * P, h_prev + i * ld_hp, P)


cdef void _lstm_backward(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """LSTM BPTT.  ``dh`` (m,T,P) is the gradient of the states, overwritten with
    the total gradient reaching each state; ``grad_h`` (m,P) and ``grad_c`` (m,H)
    hold on entry the gradients of h_n, c_n and on return those of h0, c0.
    Scratch: ``da`` (m,T,4H), ``dm`` (m,H), ``carry`` (m,P), ``m_all`` (m,T,H)
    (the last two for lengths and the projection).
    """
    cdef LstmBuffers *b = <LstmBuffers *>buffers
    cdef const floating *x = <const floating *>b.x
    cdef const floating *h0 = <const floating *>b.h0
    cdef const floating *c0 = <const floating *>b.c0
    cdef const floating *h = <const floating *>b.h
    cdef const floating *c = <const floating *>b.c
    cdef const floating *gates = <const floating *>b.gates
    cdef const floating *w_ih = <const floating *>b.w_ih
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef const floating *w_hr = <const floating *>b.w_hr
    cdef floating *dh = <floating *>b.dh
    cdef floating *grad_h = <floating *>b.grad_h
    cdef floating *grad_c = <floating *>b.grad_c
    cdef floating *da = <floating *>b.da
    cdef floating *dm = <floating *>b.dm
    cdef floating *carry = <floating *>b.carry
    cdef floating *m_all = <floating *>b.m_all
    cdef int n_input = d.n_input, n_batch = d.n_batch, n_steps = d.n_steps
    cdef bint reverse = d.reverse
    cdef int H = d.n_hidden, P = d.n_proj, G = 4 * d.n_hidden
    cdef int ld_g = n_steps * G, ld_c = n_steps * H, ld_h = n_steps * P
    cdef int n_rows = n_batch * n_steps
    cdef Py_ssize_t s, t, tp, i, j
    cdef const floating *c_prev
    cdef int ld_cp
    cdef floating *dh_t
    cdef const floating *dm_row
    cdef const floating *a_row
    cdef void *kernel = NULL
    if d.team and _gated_team_run(d, 4, b, True):
        return                  # the thread team ran it all (gated_team.pxi)
    if d.packed:
        # G_h = dA_t W_hh in a LIBXSMM kernel, W_hh as stored (NULL: BLAS)
        kernel = _packed_kernel(w_hh, n_batch, P, G, ld_g, P, P, False)
    for s in range(n_steps):
        t = s if reverse else n_steps - 1 - s
        tp = t + 1 if reverse else t - 1
        if s == n_steps - 1:
            c_prev, ld_cp = c0, H
        else:
            c_prev, ld_cp = c + tp * H, ld_c
        dh_t = dh + t * P
        for i in range(n_batch):
            if _padded(d, i, t):
                _zero_row(dh_t + i * ld_h, P)      # no gradient from a padded output
                continue
            # the total gradient reaching h_t
            for j in range(P):
                dh_t[i * ld_h + j] += grad_h[i * P + j]
        if w_hr != NULL:
            # dM = dH_t W_hr               (m, H) = (m, P) (P, H)
            _rows_times(dh_t, ld_h, w_hr, False, dm, H, 0, n_batch, P, H)
        for i in range(n_batch):
            if _padded(d, i, t):
                _zero_row(da + i * ld_g + t * G, G)
                _copy_row(carry + i * P, grad_h + i * P, P)
                continue
            dm_row = dm + i * H if w_hr != NULL else dh_t + i * ld_h
            a_row = gates + i * ld_g + t * G
            if floating is float:
                rf_lstm_cell_grad_f(a_row, c + i * ld_c + t * H, c_prev + i * ld_cp, dm_row,
                                    grad_c + i * H, da + i * ld_g + t * G, H, H)
            else:
                rf_lstm_cell_grad_d(a_row, c + i * ld_c + t * H, c_prev + i * ld_cp, dm_row,
                                    grad_c + i * H, da + i * ld_g + t * G, H, H)
        # G_h = dA_t W_hh                  (m, P) = (m, 4H) (4H, P)
        if kernel != NULL:
            _packed_times(kernel, da + t * G, w_hh, grad_h)
        else:
            _rows_times(da + t * G, ld_g, w_hh, False, grad_h, P, 0, n_batch, G, P)
        if d.lengths != NULL:
            for i in range(n_batch):
                if t >= d.lengths[i]:
                    _copy_row(grad_h + i * P, carry + i * P, P)
    # dW_ih = dA^T X,  dX = dA W_ih,  db = column sums of dA
    gemm(c'T', c'N', G, n_input, n_rows, 1, da, G, x, n_input, 0, <floating *>b.dw_ih, n_input)
    gemm(c'N', c'N', n_rows, n_input, G, 1, da, G, w_ih, n_input, 0, <floating *>b.dx, n_input)
    _column_sums(da, n_rows, G, <floating *>b.db)
    if w_hr != NULL:
        # M = o tanh(c) at every valid step (zeros at padded ones); dW_hr = dH^T M
        for i in range(n_batch):
            for t in range(n_steps):
                if _padded(d, i, t):
                    _zero_row(m_all + i * ld_c + t * H, H)
                else:
                    _lstm_output(gates + i * ld_g + t * G, c + i * ld_c + t * H,
                                 m_all + i * ld_c + t * H, H)
        gemm(c'T', c'N', P, H, n_rows, 1, dh, P, m_all, H, 0, <floating *>b.dw_hr, H)
    # dW_hh = sum_t dA_t^T H_prev(t)       (4H, P)
    _recurrent_weight_grad(d, da, G, h, h0, P, <floating *>b.dw_hh)


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


cdef void _gru_forward(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """GRU states ``h`` (m,T,H), activated ``gates`` r,z,n (m,T,3H), ``hn`` (m,T,H).

    The biases may be NULL; ``gh`` (m, 3H) is scratch, and ``w_hh_t`` (H, 3H) with
    ``d.packed``.
    """
    cdef GruBuffers *b = <GruBuffers *>buffers
    cdef const floating *x = <const floating *>b.x
    cdef const floating *h0 = <const floating *>b.h0
    cdef const floating *w_ih = <const floating *>b.w_ih
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef const floating *b_ih = <const floating *>b.b_ih
    cdef const floating *b_hh = <const floating *>b.b_hh
    cdef floating *h = <floating *>b.h
    cdef floating *gates = <floating *>b.gates
    cdef floating *hn = <floating *>b.hn
    cdef floating *gh = <floating *>b.gh
    cdef floating *w_hh_t = <floating *>b.w_hh_t
    cdef int n_input = d.n_input, n_batch = d.n_batch, n_steps = d.n_steps
    cdef bint reverse = d.reverse
    cdef int H = d.n_hidden, G = 3 * d.n_hidden
    cdef int ld_g = n_steps * G, ld_h = n_steps * H
    cdef Py_ssize_t s, t, tp, i
    cdef const floating *h_prev
    cdef int ld_hp
    cdef void *first_kernel = NULL               # LIBXSMM's, for H_prev = h0
    cdef void *step_kernel = NULL                # and for H_prev a step of h
    cdef void *kernel
    if d.packed or d.team:
        # W_hh^T (H, 3H), row-major: GH = H_prev W_hh^T is then LIBXSMM's NN product
        _transpose(w_hh, G, H, w_hh_t)
    if d.team and _gated_team_run(d, 3, b, False):
        return                  # the thread team ran it all (gated_team.pxi)
    # GI = X W_ih^T                        (m*T, 3H) = (m*T, n_in) (n_in, 3H)
    gemm(c'N', c'T', n_batch * n_steps, G, n_input, 1, x, n_input, w_ih, n_input, 0, gates, G)
    if d.packed:
        # kernels for h0's row stride and for a step's (NULL: BLAS)
        first_kernel = _packed_kernel(w_hh_t, n_batch, G, H, H, G, G, False)
        step_kernel = _packed_kernel(w_hh_t, n_batch, G, H, ld_h, G, G, False)
    for s in range(n_steps):
        t = n_steps - 1 - s if reverse else s
        tp = t + 1 if reverse else t - 1
        if s == 0:
            h_prev, ld_hp = h0, H
        else:
            h_prev, ld_hp = h + tp * H, ld_h
        kernel = first_kernel if s == 0 else step_kernel
        # GH = H_prev W_hh^T               (m, 3H) = (m, H) (H, 3H), all three gates (the
        # cell adds b_hn to the n-gate's part and keeps it as hn)
        if kernel != NULL:
            _packed_times(kernel, h_prev, w_hh_t, gh)
        else:
            _rows_times(h_prev, ld_hp, w_hh, True, gh, G, 0, n_batch, H, G)
        for i in range(n_batch):
            if _padded(d, i, t):
                _copy_row(h + i * ld_h + t * H, h_prev + i * ld_hp, H)
                _zero_row(gates + i * ld_g + t * G, G)
                _zero_row(hn + i * ld_h + t * H, H)
            elif floating is float:
                rf_gru_cell_f(gates + i * ld_g + t * G, gh + i * G, b_ih, b_hh,
                              h_prev + i * ld_hp, hn + i * ld_h + t * H,
                              h + i * ld_h + t * H, H, H)
            else:
                rf_gru_cell_d(gates + i * ld_g + t * G, gh + i * G, b_ih, b_hh,
                              h_prev + i * ld_hp, hn + i * ld_h + t * H,
                              h + i * ld_h + t * H, H, H)


cdef void _gru_backward(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """GRU BPTT.  ``grad`` (m,H) holds on entry the gradient of h_n, on return that
    of h0.  Scratch: ``dgi``, ``dgh`` (m,T,3H), ``direct`` (m,H).
    """
    cdef GruBuffers *b = <GruBuffers *>buffers
    cdef const floating *x = <const floating *>b.x
    cdef const floating *h0 = <const floating *>b.h0
    cdef const floating *h = <const floating *>b.h
    cdef const floating *gates = <const floating *>b.gates
    cdef const floating *hn = <const floating *>b.hn
    cdef const floating *dh = <const floating *>b.dh
    cdef const floating *w_ih = <const floating *>b.w_ih
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef floating *grad = <floating *>b.grad
    cdef floating *dgi = <floating *>b.dgi
    cdef floating *dgh = <floating *>b.dgh
    cdef floating *direct = <floating *>b.direct
    cdef int n_input = d.n_input, n_batch = d.n_batch, n_steps = d.n_steps
    cdef bint reverse = d.reverse
    cdef int H = d.n_hidden, G = 3 * d.n_hidden
    cdef int ld_g = n_steps * G, ld_h = n_steps * H
    cdef int n_rows = n_batch * n_steps
    cdef Py_ssize_t s, t, tp, i, j
    cdef const floating *h_prev
    cdef int ld_hp
    cdef void *kernel = NULL
    if d.team and _gated_team_run(d, 3, b, True):
        return                  # the thread team ran it all (gated_team.pxi)
    if d.packed:
        # G += dGH_t W_hh in a LIBXSMM kernel, W_hh as stored (NULL: BLAS)
        kernel = _packed_kernel(w_hh, n_batch, H, G, ld_g, H, H, True)
    for s in range(n_steps):
        t = s if reverse else n_steps - 1 - s
        tp = t + 1 if reverse else t - 1
        if s == n_steps - 1:
            h_prev, ld_hp = h0, H
        else:
            h_prev, ld_hp = h + tp * H, ld_h
        for i in range(n_batch):
            if _padded(d, i, t):
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
                                   dgh + i * ld_g + t * G, H, H)
            else:
                rf_gru_cell_grad_d(gates + i * ld_g + t * G, hn + i * ld_h + t * H,
                                   h_prev + i * ld_hp, direct + i * H, dgi + i * ld_g + t * G,
                                   dgh + i * ld_g + t * G, H, H)
        # G = direct + dGH_t W_hh          (m, H) = (m, 3H) (3H, H)
        _copy_row(grad, direct, n_batch * H)
        if kernel != NULL:
            _packed_times(kernel, dgh + t * G, w_hh, grad)
        else:
            _rows_times(dgh + t * G, ld_g, w_hh, False, grad, H, 1, n_batch, G, H)
    # dW_ih = dGI^T X                     (3H, n_in) = (3H, m*T) (m*T, n_in)
    gemm(c'T', c'N', G, n_input, n_rows, 1, dgi, G, x, n_input, 0, <floating *>b.dw_ih, n_input)
    # dX = dGI W_ih                        (m*T, n_in) = (m*T, 3H) (3H, n_in)
    gemm(c'N', c'N', n_rows, n_input, G, 1, dgi, G, w_ih, n_input, 0, <floating *>b.dx, n_input)
    # db_ih, db_hh = column sums of dGI, dGH
    _column_sums(dgi, n_rows, G, <floating *>b.db_ih)
    _column_sums(dgh, n_rows, G, <floating *>b.db_hh)
    # dW_hh = sum_t dGH_t^T H_prev(t)      (3H, H)
    _recurrent_weight_grad(d, dgh, G, h, h0, H, <floating *>b.dw_hh)



# -- entry points: allocate, fill the structs, run -------------------------------

cdef inline Dims _gated_dims(cnp.ndarray h0, cnp.ndarray w_ih, int n_batch, int n_steps,
                             int n_hidden, bint reverse, cnp.ndarray lengths) noexcept:
    cdef Dims d = _dims(h0, n_batch, n_steps, <int>cnp.PyArray_DIMS(w_ih)[1], n_hidden)
    d.n_proj = <int>cnp.PyArray_DIMS(h0)[1]
    d.reverse, d.lengths = reverse, <const Py_ssize_t *>_ptr(lengths)
    return d


def lstm_layer_forward(cnp.ndarray x not None, cnp.ndarray h0 not None,
                       cnp.ndarray c0 not None, cnp.ndarray w_ih not None,
                       cnp.ndarray w_hh not None, cnp.ndarray bias, cnp.ndarray w_hr,
                       cnp.ndarray lengths, bint reverse):
    """One LSTM layer direction; returns ``(h (m,T,P), c (m,T,H), gates (m,T,4H))``.

    ``x`` rows ``(m*T, n_in)``, ``h0 (m, P)``, ``c0 (m, H)``, ``w_ih (4H, n_in)``,
    ``w_hh (4H, P)``, ``bias`` (4H, b_ih + b_hh) or None, ``w_hr (P, H)`` or
    None, ``lengths`` intp ``(m,)`` or None.  All C-contiguous, of h0's dtype.
    """
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(c0)[0], H = <int>cnp.PyArray_DIMS(c0)[1]
    cdef Dims d = _gated_dims(h0, w_ih, n_batch, <int>(cnp.PyArray_DIMS(x)[0] // n_batch), H,
                              reverse, lengths)
    cdef cnp.ndarray h = _empty3(n_batch, d.n_steps, d.n_proj, type_num)
    cdef cnp.ndarray c = _empty3(n_batch, d.n_steps, H, type_num)
    cdef cnp.ndarray gates = _empty3(n_batch, d.n_steps, 4 * H, type_num)
    cdef cnp.ndarray m_buf = _empty3(1, n_batch if w_hr is not None else 1, H, type_num)
    d.packed = _plan_packed(&d, 4 * d.n_hidden, d.n_proj)
    d.team = _plan_gated_team(&d, 4)
    cdef cnp.ndarray w_hh_t = _scratch(d.packed or d.team, w_hh)    # (P, 4H) W_hh^T
    cdef LstmBuffers b
    memset(&b, 0, sizeof(LstmBuffers))
    b.x, b.h0, b.c0, b.w_ih, b.w_hh = _ptr(x), _ptr(h0), _ptr(c0), _ptr(w_ih), _ptr(w_hh)
    b.bias, b.w_hr = _ptr(bias), _ptr(w_hr)
    b.h, b.c, b.gates, b.m_buf = _ptr(h), _ptr(c), _ptr(gates), _ptr(m_buf)
    b.w_hh_t = _ptr(w_hh_t)
    _run(_lstm_forward[float], _lstm_forward[double], &d, &b)
    return h, c, gates


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
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(c)
    cdef int n_batch = <int>dims[0], n_steps = <int>dims[1], H = <int>dims[2]
    cdef Dims d = _gated_dims(h0, w_ih, n_batch, n_steps, H, reverse, lengths)
    cdef bint proj = w_hr is not None
    d.packed = _plan_packed(&d, 4 * d.n_hidden, d.n_proj)
    d.team = _plan_gated_team(&d, 4)
    cdef cnp.ndarray grad_h = cnp.PyArray_NewCopy(grad_h_n, cnp.NPY_CORDER)
    cdef cnp.ndarray grad_c = cnp.PyArray_NewCopy(grad_c_n, cnp.NPY_CORDER)
    cdef cnp.ndarray da = _empty3(n_batch, n_steps, 4 * H, type_num)
    cdef cnp.ndarray dm = _empty3(1, n_batch if proj else 1, H, type_num)
    cdef cnp.ndarray carry = _empty3(1, n_batch, d.n_proj, type_num)
    cdef cnp.ndarray m_all = _empty3(n_batch if proj else 1, n_steps if proj else 1, H, type_num)
    cdef cnp.ndarray dx = _empty_like(x), dw_ih = _empty_like(w_ih), dw_hh = _empty_like(w_hh)
    cdef cnp.ndarray db = _empty3(1, 1, 4 * H, type_num)
    cdef cnp.ndarray dw_hr = _empty_like(w_hr) if proj else None
    cdef LstmBuffers b
    memset(&b, 0, sizeof(LstmBuffers))
    b.x, b.h0, b.c0, b.w_ih, b.w_hh = _ptr(x), _ptr(h0), _ptr(c0), _ptr(w_ih), _ptr(w_hh)
    b.w_hr, b.h, b.c, b.gates = _ptr(w_hr), _ptr(h), _ptr(c), _ptr(gates)
    b.dh, b.grad_h, b.grad_c = _ptr(dh), _ptr(grad_h), _ptr(grad_c)
    b.dx, b.dw_ih, b.dw_hh, b.db = _ptr(dx), _ptr(dw_ih), _ptr(dw_hh), _ptr(db)
    b.dw_hr = _ptr(dw_hr)
    b.da, b.dm, b.carry, b.m_all = _ptr(da), _ptr(dm), _ptr(carry), _ptr(m_all)
    _run(_lstm_backward[float], _lstm_backward[double], &d, &b)
    return dx, grad_h, grad_c, dw_ih, dw_hh, db.reshape(4 * H), dw_hr


def gru_layer_forward(cnp.ndarray x not None, cnp.ndarray h0 not None,
                      cnp.ndarray w_ih not None, cnp.ndarray w_hh not None, cnp.ndarray b_ih,
                      cnp.ndarray b_hh, cnp.ndarray lengths, bint reverse):
    """One GRU layer direction; returns ``(h (m,T,H), gates r,z,n (m,T,3H), hn (m,T,H))``.

    ``x`` rows ``(m*T, n_in)``, ``h0 (m, H)``, ``w_ih (3H, n_in)``, ``w_hh (3H, H)``,
    the biases ``(3H,)`` or None, ``lengths`` intp ``(m,)`` or None.
    """
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(h0)[0], H = <int>cnp.PyArray_DIMS(h0)[1]
    cdef Dims d = _gated_dims(h0, w_ih, n_batch, <int>(cnp.PyArray_DIMS(x)[0] // n_batch), H,
                              reverse, lengths)
    cdef cnp.ndarray h = _empty3(n_batch, d.n_steps, H, type_num)
    cdef cnp.ndarray gates = _empty3(n_batch, d.n_steps, 3 * H, type_num)
    cdef cnp.ndarray hn = _empty3(n_batch, d.n_steps, H, type_num)
    cdef cnp.ndarray gh = _empty3(1, n_batch, 3 * H, type_num)
    d.packed = _plan_packed(&d, 3 * d.n_hidden, d.n_proj)
    d.team = _plan_gated_team(&d, 3)
    cdef cnp.ndarray w_hh_t = _scratch(d.packed or d.team, w_hh)    # (H, 3H) W_hh^T
    cdef GruBuffers b
    memset(&b, 0, sizeof(GruBuffers))
    b.x, b.h0, b.w_ih, b.w_hh = _ptr(x), _ptr(h0), _ptr(w_ih), _ptr(w_hh)
    b.b_ih, b.b_hh = _ptr(b_ih), _ptr(b_hh)
    b.h, b.gates, b.hn, b.gh, b.w_hh_t = _ptr(h), _ptr(gates), _ptr(hn), _ptr(gh), _ptr(w_hh_t)
    _run(_gru_forward[float], _gru_forward[double], &d, &b)
    return h, gates, hn


def gru_layer_backward(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray h not None,
                       cnp.ndarray gates not None, cnp.ndarray hn not None,
                       cnp.ndarray dh not None, cnp.ndarray grad_h_n not None,
                       cnp.ndarray w_ih not None, cnp.ndarray w_hh not None,
                       cnp.ndarray lengths, bint reverse):
    """BPTT of one GRU layer direction; returns ``(dx, dh0, dW_ih, dW_hh, db_ih, db_hh)``.

    ``h``, ``gates``, ``hn`` as :func:`gru_layer_forward` returned them; ``dh``
    (m,T,H) is read only; ``grad_h_n (m, H)``.
    """
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(h)
    cdef int n_batch = <int>dims[0], n_steps = <int>dims[1], H = <int>dims[2]
    cdef Dims d = _gated_dims(h0, w_ih, n_batch, n_steps, H, reverse, lengths)
    d.packed = _plan_packed(&d, 3 * d.n_hidden, d.n_proj)
    d.team = _plan_gated_team(&d, 3)
    cdef cnp.ndarray grad = cnp.PyArray_NewCopy(grad_h_n, cnp.NPY_CORDER)
    cdef cnp.ndarray dgi = _empty3(n_batch, n_steps, 3 * H, type_num)
    cdef cnp.ndarray dgh = _empty3(n_batch, n_steps, 3 * H, type_num)
    cdef cnp.ndarray direct = _empty3(1, n_batch, H, type_num)
    cdef cnp.ndarray dx = _empty_like(x), dw_ih = _empty_like(w_ih), dw_hh = _empty_like(w_hh)
    cdef cnp.ndarray db_ih = _empty3(1, 1, 3 * H, type_num), db_hh = _empty3(1, 1, 3 * H, type_num)
    cdef GruBuffers b
    memset(&b, 0, sizeof(GruBuffers))
    b.x, b.h0, b.w_ih, b.w_hh = _ptr(x), _ptr(h0), _ptr(w_ih), _ptr(w_hh)
    b.h, b.gates, b.hn, b.dh, b.grad = _ptr(h), _ptr(gates), _ptr(hn), _ptr(dh), _ptr(grad)
    b.dx, b.dw_ih, b.dw_hh, b.db_ih, b.db_hh = (_ptr(dx), _ptr(dw_ih), _ptr(dw_hh), _ptr(db_ih),
                                                _ptr(db_hh))
    b.dgi, b.dgh, b.direct = _ptr(dgi), _ptr(dgh), _ptr(direct)
    _run(_gru_backward[float], _gru_backward[double], &d, &b)
    return dx, grad, dw_ih, dw_hh, db_ih.reshape(3 * H), db_hh.reshape(3 * H)
