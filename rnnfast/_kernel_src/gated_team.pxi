# The LSTM's and GRU's serial loops on the thread team (_team.h, the loop in
# elman_team.pxi), where the product policy plans PRODUCT_TEAM for the gated product
# (Dims.team members; see _plan_gated_team); the LSTM with a projection at the end of
# the LSTM's part.
#
# A panel is a range of hidden units [start, stop) and every gate of those units:
# the columns start + k H .. stop + k H of the (m, G H) gate rows, k = i, f, g, o
# (LSTM) or r, z, n (GRU).  So the cell's elementwise step, which mixes a unit's
# gates, runs on the panel's owner right after the panel's products, on nothing
# outside it.  LSTM:
#
#   forward   A_t[:, gate k of p] += H_prev W_hh^T[:, gate k of p]     (k = 0..3)
#             then rf_lstm_cell on units p: the activated gates, c_t[:, p], h_t[:, p]
#   backward  G[:, p] = dA_t W_hh[:, p]   (grad_h: the gradient reaching h_prev)
#             then, for the next step: dh_t[:, p] += G[:, p] and rf_lstm_cell_grad on
#             units p: dA_t of gate k of p and the cells' gradient grad_c[:, p]
#             (stage 0 is the first step's epilogue alone)
#
# GRU:
#
#   forward   GH[:, gate k of p] = H_prev W_hh^T[:, gate k of p]        (k = 0..2)
#             then rf_gru_cell on units p: the activated gates, hn_t[:, p], h_t[:, p]
#   backward  G[:, p] = D[:, p] + dGH_t W_hh[:, p]  (D: the direct share g z)
#             then, for the next step: D[:, p] = G[:, p] + dh_t[:, p] and
#             rf_gru_cell_grad on units p: dGI_t, dGH_t of gate k of p, D[:, p]
#
# Each stage's tasks wait for every task of the previous stage: the forward's
# products read all of H_prev, the backward's all of dA_t (dGH_t).  The hoisted products
# run on the team too, each member's share on one thread, so that NumPy's OpenBLAS pool
# never starts (its threads, spinning for a while after each call, would take the
# CPUs the members need): the forward's stage 0 is the input projection X W_ih^T, split
# by rows; the backward's two stages after the steps are the weight gradients, split
# by the gate rows of dW_ih, db and dW_hh, and dX split by rows (dW_hh in the second
# stage, as _recurrent_weight_grad zeroes the first steps' rows of dA, which dX reads).  Same math as
# _lstm_forward / _lstm_backward / _gru_forward / _gru_backward (gated.pxi), which run whenever the team is not
# planned or another thread holds it.


cdef struct GatedTeamJob:
    const Dims *d
    void *b                     # LstmBuffers or GruBuffers
    int n_panels
    # each panel's LIBXSMM kernels (NULL: BLAS), one for every gate's product: forward
    # with H_prev = h0 (first) and a step of h (step); backward's G (step)
    void *first[TEAM_MAX_PANELS]
    void *step[TEAM_MAX_PANELS]


cdef void _team_input_share(floating tag, GatedTeamJob *job, int panel, const floating *x,
                            const floating *w_ih, floating *out, int G) noexcept nogil:
    """The panel's rows of the input projection OUT = X W_ih^T (m*T, G)."""
    cdef const Dims *d = job.d
    cdef int n_rows = d.n_batch * d.n_steps, n_in = d.n_input
    cdef int r0, r1
    _team_panel(n_rows, panel, job.n_panels, &r0, &r1)
    if r1 > r0:
        # OUT[r] = X[r] W_ih^T             (r, G) = (r, n_in) (n_in, G)
        gemm(c'N', c'T', r1 - r0, G, n_in, 1, x + r0 * n_in, n_in, w_ih, n_in, 0,
             out + r0 * G, G)


cdef void _team_grads_share(floating tag, GatedTeamJob *job, int panel, bint recurrent,
                            int G, const floating *x, const floating *w_ih,
                            const floating *h, const floating *h0, floating *d_in,
                            floating *d_rec, floating *dx, floating *dw_ih, floating *dw_hh,
                            floating *db_in, floating *db_rec) noexcept nogil:
    """The panel's share of the weight gradients, from the gradients of the input
    products ``d_in`` and of the recurrent ones ``d_rec`` (both (m*T, G); the LSTM's are
    one array, dA).  First stage (``recurrent`` False): dW_ih and the bias gradients
    (``db_rec`` may be NULL) of its gate rows, dX of its rows.  Second: dW_hh of its gate
    rows."""
    cdef const Dims *d = job.d
    cdef int n_rows = d.n_batch * d.n_steps, n_in = d.n_input, P = d.n_proj
    cdef int g0, g1, r0, r1
    _team_panel(G, panel, job.n_panels, &g0, &g1)
    if recurrent:
        if g1 > g0:
            # dW_hh[g] = sum_t dRec_t[:, g]^T H_prev(t)       (g, P)
            _recurrent_weight_grad(d, d_rec + g0, g1 - g0, h, h0, P, dw_hh + g0 * P, G)
        return
    if g1 > g0:
        # dW_ih[g] = dIn[:, g]^T X         (g, n_in) = (g, m*T) (m*T, n_in)
        gemm(c'T', c'N', g1 - g0, n_in, n_rows, 1, d_in + g0, G, x, n_in, 0,
             dw_ih + g0 * n_in, n_in)
        _column_sums(d_in + g0, n_rows, g1 - g0, db_in + g0, G)
        if db_rec != NULL:
            _column_sums(d_rec + g0, n_rows, g1 - g0, db_rec + g0, G)
    _team_panel(n_rows, panel, job.n_panels, &r0, &r1)
    if r1 > r0:
        # dX[r] = dIn[r] W_ih              (r, n_in) = (r, G) (G, n_in)
        gemm(c'N', c'N', r1 - r0, n_in, G, 1, d_in + r0 * G, G, w_ih, n_in, 0,
             dx + r0 * n_in, n_in)



cdef void _gated_team_prepare(floating tag, GatedTeamJob *job, int n_gates,
                              const floating *w_hh, const floating *w_hh_t,
                              bint backward) noexcept nogil:
    """Each panel's LIBXSMM kernels, where the policy plans PRODUCT_PACKED for the panel's
    product: forward (m, H) (H, width) per gate (accumulating into the LSTM's gate rows,
    into the GRU's GH), backward (m, G H) (G H, width) (the GRU's accumulates onto D)."""
    cdef const Dims *d = job.d
    cdef int H = d.n_hidden, m = d.n_batch, G = n_gates * d.n_hidden
    cdef int ld_g = d.n_steps * G, ld_h = d.n_steps * H
    cdef bint lstm = n_gates == 4
    cdef int ld_out = ld_g if lstm else G        # forward: the gate rows or GH
    cdef int allowed = _blas.PRODUCT_PACKED | _blas.PRODUCT_GEMM
    cdef int p, start, stop, width
    for p in range(job.n_panels):
        job.first[p] = job.step[p] = NULL
        _team_panel(H, p, job.n_panels, &start, &stop)
        width = stop - start
        if width == 0:
            continue
        if backward:
            if plan_product(m, width, G, allowed, d.float32) == _blas.PRODUCT_PACKED:
                # G[:, p] (+)= dA_t W_hh[:, p]
                job.step[p] = _packed_kernel(w_hh, m, width, G, ld_g, H, H, not lstm)
        elif plan_product(m, width, H, allowed, d.float32) == _blas.PRODUCT_PACKED:
            # (A_t or GH)[:, gate k of p] (+)= H_prev W_hh^T[:, gate k of p], for h0's
            # row stride and a step's
            job.first[p] = _packed_kernel(w_hh_t, m, width, H, H, G, ld_out, lstm)
            job.step[p] = _packed_kernel(w_hh_t, m, width, H, ld_h, G, ld_out, lstm)


cdef void _lstm_team_forward_task(floating tag, GatedTeamJob *job, Py_ssize_t stage,
                                  int panel) noexcept nogil:
    """Forward stage: 0 the panel's rows of the input projection, then step stage - 1
    (in the loop's order) on one panel's hidden units."""
    cdef const Dims *d = job.d
    cdef LstmBuffers *b = <LstmBuffers *>job.b
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef const floating *w_hh_t = <const floating *>b.w_hh_t
    cdef const floating *bias = <const floating *>b.bias
    cdef floating *h = <floating *>b.h
    cdef floating *c = <floating *>b.c
    cdef floating *gates = <floating *>b.gates
    cdef int H = d.n_hidden, m = d.n_batch, n_steps = d.n_steps, G = 4 * d.n_hidden
    cdef int ld_g = n_steps * G, ld_h = n_steps * H
    cdef int start, stop, width, ld_prev, k
    cdef Py_ssize_t s = stage - 1, t, i, col
    cdef const floating *h_prev
    cdef const floating *c_prev
    cdef const floating *bias_p = NULL          # the panel's biases
    cdef floating *a_t
    cdef void *kernel

    if stage == 0:
        # A = X W_ih^T                     (m*T, 4H) = (m*T, n_in) (n_in, 4H)
        _team_input_share(tag, job, panel, <const floating *>b.x,
                          <const floating *>b.w_ih, gates, G)
        return
    _team_panel(H, panel, job.n_panels, &start, &stop)
    width = stop - start
    if width == 0:
        return
    t = n_steps - 1 - s if d.reverse else s
    if s == 0:
        h_prev, c_prev, ld_prev = <const floating *>b.h0, <const floating *>b.c0, H
    else:
        h_prev = h + (t + 1 if d.reverse else t - 1) * H
        c_prev = c + (t + 1 if d.reverse else t - 1) * H
        ld_prev = ld_h
    a_t = gates + t * G
    if bias != NULL:
        bias_p = bias + start
    kernel = job.first[panel] if s == 0 else job.step[panel]
    for k in range(4):
        # A_t[:, gate k of p] += H_prev W_hh^T[:, gate k of p]     (m, w) = (m, H) (H, w)
        col = k * H + start
        if kernel != NULL:
            _packed_times(kernel, h_prev, w_hh_t + col, a_t + col)
        else:
            gemm(c'N', c'T', m, width, H, 1, h_prev, ld_prev, w_hh + col * H, H, 1,
                 a_t + col, ld_g)
    for i in range(m):
        if _padded(d, i, t):
            # past sequence i's end: the states are carried, the gates are zeros
            _copy_row(c + i * ld_h + t * H + start, c_prev + i * ld_prev + start, width)
            _copy_row(h + i * ld_h + t * H + start, h_prev + i * ld_prev + start, width)
            for k in range(4):
                _zero_row(a_t + i * ld_g + k * H + start, width)
            continue
        if floating is float:
            rf_lstm_cell_f(a_t + i * ld_g + start, bias_p,
                           c_prev + i * ld_prev + start, c + i * ld_h + t * H + start,
                           h + i * ld_h + t * H + start, width, H)
        else:
            rf_lstm_cell_d(a_t + i * ld_g + start, bias_p,
                           c_prev + i * ld_prev + start, c + i * ld_h + t * H + start,
                           h + i * ld_h + t * H + start, width, H)


cdef void _lstm_team_backward_task(floating tag, GatedTeamJob *job, Py_ssize_t stage,
                                   int panel) noexcept nogil:
    """Backward stage on one panel's hidden units: the product of step stage - 1 (in
    the loop's order; none at stage 0), then the epilogue of step ``stage`` (none past
    the last); then the two stages of the weight gradients."""
    cdef const Dims *d = job.d
    cdef LstmBuffers *b = <LstmBuffers *>job.b
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef const floating *gates = <const floating *>b.gates
    cdef const floating *c = <const floating *>b.c
    cdef floating *dh = <floating *>b.dh
    cdef floating *grad_h = <floating *>b.grad_h
    cdef floating *grad_c = <floating *>b.grad_c
    cdef floating *da = <floating *>b.da
    cdef floating *carry = <floating *>b.carry
    cdef int H = d.n_hidden, m = d.n_batch, n_steps = d.n_steps, G = 4 * d.n_hidden
    cdef int ld_g = n_steps * G, ld_h = n_steps * H
    cdef int start, stop, width, ld_cp, k
    cdef Py_ssize_t t, i, j, own, off
    cdef const floating *c_prev
    cdef void *kernel = job.step[panel]

    if stage > n_steps:
        # dW_ih, dX, db = column sums of dA; then dW_hh
        _team_grads_share(tag, job, panel, stage == n_steps + 2, G, <const floating *>b.x,
                          <const floating *>b.w_ih, <const floating *>b.h,
                          <const floating *>b.h0, da, da, <floating *>b.dx,
                          <floating *>b.dw_ih, <floating *>b.dw_hh, <floating *>b.db, NULL)
        return
    _team_panel(H, panel, job.n_panels, &start, &stop)
    width = stop - start
    if width == 0:
        return
    if stage > 0:
        t = stage - 1 if d.reverse else n_steps - stage
        # G[:, p] = dA_t W_hh[:, p]          (m, w) = (m, 4H) (4H, w)
        if kernel != NULL:
            _packed_times(kernel, da + t * G, w_hh + start, grad_h + start)
        else:
            gemm(c'N', c'N', m, width, G, 1, da + t * G, ld_g, w_hh + start, H, 0,
                 grad_h + start, H)
        if d.lengths != NULL:
            for i in range(m):
                if t >= d.lengths[i]:
                    _copy_row(grad_h + i * H + start, carry + i * H + start, width)
    if stage == n_steps:
        return
    t = stage if d.reverse else n_steps - 1 - stage
    if stage == n_steps - 1:
        c_prev, ld_cp = <const floating *>b.c0, H
    else:
        c_prev, ld_cp = c + (t + 1 if d.reverse else t - 1) * H, ld_h
    for i in range(m):
        own = i * H + start
        off = i * ld_h + t * H + start
        if _padded(d, i, t):
            # no gradient from a padded output; G passes through unchanged
            _zero_row(dh + off, width)
            for k in range(4):
                _zero_row(da + i * ld_g + t * G + k * H + start, width)
            _copy_row(carry + own, grad_h + own, width)
            continue
        # the total gradient reaching h_t
        for j in range(width):
            dh[off + j] += grad_h[own + j]
        if floating is float:
            rf_lstm_cell_grad_f(gates + i * ld_g + t * G + start, c + off,
                                c_prev + i * ld_cp + start, dh + off, grad_c + own,
                                da + i * ld_g + t * G + start, width, H)
        else:
            rf_lstm_cell_grad_d(gates + i * ld_g + t * G + start, c + off,
                                c_prev + i * ld_cp + start, dh + off, grad_c + own,
                                da + i * ld_g + t * G + start, width, H)


# -- the LSTM with a projection (w_hr, P < H) -----------------------------------------
#
# A step takes two stages: the gates' products (inner size P) and the cell on panels of
# hidden units, as without a projection, then the projection on panels of the P outputs,
# which reads all of M = o tanh(c).  The panels' products run in one-thread BLAS.
#
#   forward   stage 0: A = X W_ih^T, by rows
#             stage 2s + 1 (units p): A_t[:, gates of p] += H_prev W_hh^T[:, gates of p],
#                   then the cell: c_t[:, p] and M[:, p]
#             stage 2s + 2 (outputs q): H_t[:, q] = M W_hr^T[:, q]; carried rows
#   backward  stage 2k (outputs q): G[:, q] = dA W_hh[:, q] of the step before (none at
#                   k = 0; carried rows restored), then dH_t[:, q] += G[:, q] (none at
#                   k = T)
#             stage 2k + 1 (units p): dM[:, p] = dH_t W_hr[:, p], then the cell's
#                   gradient on p: dA_t of the gates of p and grad_c[:, p]
#             then dW_ih, db, dX and M at every step (by rows); then dW_hh and dW_hr.

cdef void _lstmp_team_forward_task(floating tag, GatedTeamJob *job, Py_ssize_t stage,
                                   int panel) noexcept nogil:
    """Forward stage of the LSTM with a projection (see above)."""
    cdef const Dims *d = job.d
    cdef LstmBuffers *b = <LstmBuffers *>job.b
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef const floating *w_hr = <const floating *>b.w_hr
    cdef const floating *bias = <const floating *>b.bias
    cdef floating *h = <floating *>b.h
    cdef floating *c = <floating *>b.c
    cdef floating *gates = <floating *>b.gates
    cdef floating *m_buf = <floating *>b.m_buf
    cdef int H = d.n_hidden, P = d.n_proj, m = d.n_batch, n_steps = d.n_steps, G = 4 * H
    cdef int ld_g = n_steps * G, ld_c = n_steps * H, ld_h = n_steps * P
    cdef int start, stop, width, ld_hp, ld_cp, k
    cdef Py_ssize_t s, t, i, col
    cdef const floating *h_prev
    cdef const floating *c_prev
    cdef const floating *bias_p = NULL
    cdef floating *a_t

    if stage == 0:
        # A = X W_ih^T                     (m*T, 4H) = (m*T, n_in) (n_in, 4H)
        _team_input_share(tag, job, panel, <const floating *>b.x,
                          <const floating *>b.w_ih, gates, G)
        return
    s = (stage - 1) // 2
    t = n_steps - 1 - s if d.reverse else s
    if s == 0:
        h_prev, ld_hp = <const floating *>b.h0, P
        c_prev, ld_cp = <const floating *>b.c0, H
    else:
        h_prev, ld_hp = h + (t + 1 if d.reverse else t - 1) * P, ld_h
        c_prev, ld_cp = c + (t + 1 if d.reverse else t - 1) * H, ld_c
    if (stage - 1) % 2 == 1:
        # H_t[:, q] = M W_hr^T[:, q]       (m, w) = (m, H) (H, w)
        _team_panel(P, panel, job.n_panels, &start, &stop)
        width = stop - start
        if width == 0:
            return
        gemm(c'N', c'T', m, width, H, 1, m_buf, H, w_hr + start * H, H, 0,
             h + t * P + start, ld_h)
        for i in range(m):
            if _padded(d, i, t):
                _copy_row(h + i * ld_h + t * P + start, h_prev + i * ld_hp + start, width)
        return
    _team_panel(H, panel, job.n_panels, &start, &stop)
    width = stop - start
    if width == 0:
        return
    a_t = gates + t * G
    if bias != NULL:
        bias_p = bias + start
    for k in range(4):
        # A_t[:, gate k of p] += H_prev W_hh^T[:, gate k of p]     (m, w) = (m, P) (P, w)
        col = k * H + start
        gemm(c'N', c'T', m, width, P, 1, h_prev, ld_hp, w_hh + col * P, P, 1, a_t + col, ld_g)
    for i in range(m):
        if _padded(d, i, t):
            # the cell is carried, the gates and M are zeros
            _copy_row(c + i * ld_c + t * H + start, c_prev + i * ld_cp + start, width)
            for k in range(4):
                _zero_row(a_t + i * ld_g + k * H + start, width)
            _zero_row(m_buf + i * H + start, width)
            continue
        if floating is float:
            rf_lstm_cell_f(a_t + i * ld_g + start, bias_p, c_prev + i * ld_cp + start,
                           c + i * ld_c + t * H + start, m_buf + i * H + start, width, H)
        else:
            rf_lstm_cell_d(a_t + i * ld_g + start, bias_p, c_prev + i * ld_cp + start,
                           c + i * ld_c + t * H + start, m_buf + i * H + start, width, H)


cdef void _lstmp_team_backward_task(floating tag, GatedTeamJob *job, Py_ssize_t stage,
                                    int panel) noexcept nogil:
    """Backward stage of the LSTM with a projection (see above)."""
    cdef const Dims *d = job.d
    cdef LstmBuffers *b = <LstmBuffers *>job.b
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef const floating *w_hr = <const floating *>b.w_hr
    cdef const floating *gates = <const floating *>b.gates
    cdef const floating *c = <const floating *>b.c
    cdef floating *dh = <floating *>b.dh
    cdef floating *grad_h = <floating *>b.grad_h
    cdef floating *grad_c = <floating *>b.grad_c
    cdef floating *da = <floating *>b.da
    cdef floating *dm = <floating *>b.dm
    cdef floating *carry = <floating *>b.carry
    cdef floating *m_all = <floating *>b.m_all
    cdef int H = d.n_hidden, P = d.n_proj, m = d.n_batch, n_steps = d.n_steps, G = 4 * H
    cdef int ld_g = n_steps * G, ld_c = n_steps * H, ld_h = n_steps * P
    cdef int n_rows = m * n_steps
    cdef int start, stop, width, ld_cp, kk
    cdef Py_ssize_t k = stage // 2, t, i, j, r, own, off
    cdef const floating *c_prev

    if stage > 2 * n_steps:
        if stage == 2 * n_steps + 1:
            # dW_ih, dX, db = column sums of dA; M = o tanh(c) of its rows (zeros at
            # padded steps)
            _team_grads_share(tag, job, panel, False, G, <const floating *>b.x,
                              <const floating *>b.w_ih, <const floating *>b.h,
                              <const floating *>b.h0, da, da, <floating *>b.dx,
                              <floating *>b.dw_ih, <floating *>b.dw_hh, <floating *>b.db, NULL)
            _team_panel(n_rows, panel, job.n_panels, &start, &stop)
            for r in range(start, stop):
                if _padded(d, r // n_steps, r % n_steps):
                    _zero_row(m_all + r * H, H)
                else:
                    _lstm_output(gates + r * G, c + r * H, m_all + r * H, H)
            return
        # dW_hh of its gate rows; dW_hr[q] = dH[:, q]^T M     (q, H) = (q, m*T) (m*T, H)
        _team_grads_share(tag, job, panel, True, G, <const floating *>b.x,
                          <const floating *>b.w_ih, <const floating *>b.h,
                          <const floating *>b.h0, da, da, <floating *>b.dx,
                          <floating *>b.dw_ih, <floating *>b.dw_hh, <floating *>b.db, NULL)
        _team_panel(P, panel, job.n_panels, &start, &stop)
        if stop > start:
            gemm(c'T', c'N', stop - start, H, n_rows, 1, dh + start, P, m_all, H, 0,
                 <floating *>b.dw_hr + start * H, H)
        return
    if stage % 2 == 0:
        _team_panel(P, panel, job.n_panels, &start, &stop)
        width = stop - start
        if width == 0:
            return
        if k > 0:
            t = k - 1 if d.reverse else n_steps - k
            # G[:, q] = dA_t W_hh[:, q]        (m, w) = (m, 4H) (4H, w)
            gemm(c'N', c'N', m, width, G, 1, da + t * G, ld_g, w_hh + start, P, 0,
                 grad_h + start, P)
            if d.lengths != NULL:
                for i in range(m):
                    if t >= d.lengths[i]:
                        _copy_row(grad_h + i * P + start, carry + i * P + start, width)
        if k == n_steps:
            return
        t = k if d.reverse else n_steps - 1 - k
        for i in range(m):
            own = i * P + start
            off = i * ld_h + t * P + start
            if _padded(d, i, t):
                # no gradient from a padded output; G passes through unchanged
                _zero_row(dh + off, width)
                _copy_row(carry + own, grad_h + own, width)
                continue
            # the total gradient reaching h_t
            for j in range(width):
                dh[off + j] += grad_h[own + j]
        return
    t = k if d.reverse else n_steps - 1 - k
    _team_panel(H, panel, job.n_panels, &start, &stop)
    width = stop - start
    if width == 0:
        return
    # dM[:, p] = dH_t W_hr[:, p]           (m, w) = (m, P) (P, w)
    gemm(c'N', c'N', m, width, P, 1, dh + t * P, ld_h, w_hr + start, H, 0, dm + start, H)
    if k == n_steps - 1:
        c_prev, ld_cp = <const floating *>b.c0, H
    else:
        c_prev, ld_cp = c + (t + 1 if d.reverse else t - 1) * H, ld_c
    for i in range(m):
        off = i * ld_g + t * G + start
        if _padded(d, i, t):
            for kk in range(4):
                _zero_row(da + off + kk * H, width)
            continue
        if floating is float:
            rf_lstm_cell_grad_f(gates + off, c + i * ld_c + t * H + start,
                                c_prev + i * ld_cp + start, dm + i * H + start,
                                grad_c + i * H + start, da + off, width, H)
        else:
            rf_lstm_cell_grad_d(gates + off, c + i * ld_c + t * H + start,
                                c_prev + i * ld_cp + start, dm + i * H + start,
                                grad_c + i * H + start, da + off, width, H)


cdef void _lstmp_team_forward_f(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _lstmp_team_forward_task(<float>0, <GatedTeamJob *>job, stage, panel)


cdef void _lstmp_team_forward_d(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _lstmp_team_forward_task(<double>0, <GatedTeamJob *>job, stage, panel)


cdef void _lstmp_team_backward_f(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _lstmp_team_backward_task(<float>0, <GatedTeamJob *>job, stage, panel)


cdef void _lstmp_team_backward_d(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _lstmp_team_backward_task(<double>0, <GatedTeamJob *>job, stage, panel)


# the LSTM tasks, one per direction and dtype (TeamTask)
cdef void _lstm_team_forward_f(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _lstm_team_forward_task(<float>0, <GatedTeamJob *>job, stage, panel)


cdef void _lstm_team_forward_d(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _lstm_team_forward_task(<double>0, <GatedTeamJob *>job, stage, panel)


cdef void _lstm_team_backward_f(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _lstm_team_backward_task(<float>0, <GatedTeamJob *>job, stage, panel)


cdef void _lstm_team_backward_d(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _lstm_team_backward_task(<double>0, <GatedTeamJob *>job, stage, panel)


# the GRU's
cdef void _gru_team_forward_task(floating tag, GatedTeamJob *job, Py_ssize_t stage,
                                 int panel) noexcept nogil:
    """Forward stage: 0 the panel's rows of the input projection, then step stage - 1
    (in the loop's order) on one panel's hidden units."""
    cdef const Dims *d = job.d
    cdef GruBuffers *b = <GruBuffers *>job.b
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef const floating *w_hh_t = <const floating *>b.w_hh_t
    cdef const floating *b_ih = <const floating *>b.b_ih
    cdef const floating *b_hh = <const floating *>b.b_hh
    cdef floating *h = <floating *>b.h
    cdef floating *gates = <floating *>b.gates
    cdef floating *hn = <floating *>b.hn
    cdef floating *gh = <floating *>b.gh
    cdef int H = d.n_hidden, m = d.n_batch, n_steps = d.n_steps, G = 3 * d.n_hidden
    cdef int ld_g = n_steps * G, ld_h = n_steps * H
    cdef int start, stop, width, ld_prev, k
    cdef Py_ssize_t s = stage - 1, t, i, col, off
    cdef const floating *h_prev
    cdef const floating *b_ih_p = NULL          # the panel's biases
    cdef const floating *b_hh_p = NULL
    cdef floating *gi_t
    cdef void *kernel

    if stage == 0:
        # GI = X W_ih^T                    (m*T, 3H) = (m*T, n_in) (n_in, 3H)
        _team_input_share(tag, job, panel, <const floating *>b.x,
                          <const floating *>b.w_ih, gates, G)
        return
    _team_panel(H, panel, job.n_panels, &start, &stop)
    width = stop - start
    if width == 0:
        return
    t = n_steps - 1 - s if d.reverse else s
    if s == 0:
        h_prev, ld_prev = <const floating *>b.h0, H
    else:
        h_prev, ld_prev = h + (t + 1 if d.reverse else t - 1) * H, ld_h
    if b_ih != NULL:
        b_ih_p = b_ih + start
    if b_hh != NULL:
        b_hh_p = b_hh + start
    gi_t = gates + t * G
    kernel = job.first[panel] if s == 0 else job.step[panel]
    for k in range(3):
        # GH[:, gate k of p] = H_prev W_hh^T[:, gate k of p]     (m, w) = (m, H) (H, w)
        col = k * H + start
        if kernel != NULL:
            _packed_times(kernel, h_prev, w_hh_t + col, gh + col)
        else:
            gemm(c'N', c'T', m, width, H, 1, h_prev, ld_prev, w_hh + col * H, H, 0,
                 gh + col, G)
    for i in range(m):
        off = i * ld_h + t * H + start
        if _padded(d, i, t):
            # past sequence i's end: the state is carried, the gates and hn are zeros
            _copy_row(h + off, h_prev + i * ld_prev + start, width)
            for k in range(3):
                _zero_row(gi_t + i * ld_g + k * H + start, width)
            _zero_row(hn + off, width)
        elif floating is float:
            rf_gru_cell_f(gi_t + i * ld_g + start, gh + i * G + start, b_ih_p, b_hh_p,
                          h_prev + i * ld_prev + start, hn + off, h + off, width, H)
        else:
            rf_gru_cell_d(gi_t + i * ld_g + start, gh + i * G + start, b_ih_p, b_hh_p,
                          h_prev + i * ld_prev + start, hn + off, h + off, width, H)


cdef void _gru_team_backward_task(floating tag, GatedTeamJob *job, Py_ssize_t stage,
                                  int panel) noexcept nogil:
    """Backward stage on one panel's hidden units: the product of step stage - 1 (in
    the loop's order; none at stage 0), then the epilogue of step ``stage`` (none past
    the last); then the two stages of the weight gradients."""
    cdef const Dims *d = job.d
    cdef GruBuffers *b = <GruBuffers *>job.b
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef const floating *h = <const floating *>b.h
    cdef const floating *gates = <const floating *>b.gates
    cdef const floating *hn = <const floating *>b.hn
    cdef const floating *dh = <const floating *>b.dh
    cdef floating *grad = <floating *>b.grad
    cdef floating *dgi = <floating *>b.dgi
    cdef floating *dgh = <floating *>b.dgh
    cdef floating *direct = <floating *>b.direct
    cdef int H = d.n_hidden, m = d.n_batch, n_steps = d.n_steps, G = 3 * d.n_hidden
    cdef int ld_g = n_steps * G, ld_h = n_steps * H
    cdef int start, stop, width, ld_hp, k
    cdef Py_ssize_t t, i, j, own, off, gate_off
    cdef const floating *h_prev
    cdef void *kernel = job.step[panel]

    if stage > n_steps:
        # dW_ih, dX, db_ih, db_hh = column sums of dGI, dGH; then dW_hh
        _team_grads_share(tag, job, panel, stage == n_steps + 2, G, <const floating *>b.x,
                          <const floating *>b.w_ih, h, <const floating *>b.h0, dgi, dgh,
                          <floating *>b.dx, <floating *>b.dw_ih, <floating *>b.dw_hh,
                          <floating *>b.db_ih, <floating *>b.db_hh)
        return
    _team_panel(H, panel, job.n_panels, &start, &stop)
    width = stop - start
    if width == 0:
        return
    if stage > 0:
        t = stage - 1 if d.reverse else n_steps - stage
        # G[:, p] = D[:, p] + dGH_t W_hh[:, p]     (m, w) = (m, 3H) (3H, w)
        for i in range(m):
            _copy_row(grad + i * H + start, direct + i * H + start, width)
        if kernel != NULL:
            _packed_times(kernel, dgh + t * G, w_hh + start, grad + start)
        else:
            gemm(c'N', c'N', m, width, G, 1, dgh + t * G, ld_g, w_hh + start, H, 1,
                 grad + start, H)
    if stage == n_steps:
        return
    t = stage if d.reverse else n_steps - 1 - stage
    if stage == n_steps - 1:
        h_prev, ld_hp = <const floating *>b.h0, H
    else:
        h_prev, ld_hp = h + (t + 1 if d.reverse else t - 1) * H, ld_h
    for i in range(m):
        own = i * H + start
        off = i * ld_h + t * H + start
        gate_off = i * ld_g + t * G + start
        if _padded(d, i, t):
            # a carried state: no gate gradients, G passes through unchanged
            for k in range(3):
                _zero_row(dgi + gate_off + k * H, width)
                _zero_row(dgh + gate_off + k * H, width)
            _copy_row(direct + own, grad + own, width)
            continue
        for j in range(width):
            direct[own + j] = grad[own + j] + dh[off + j]
        if floating is float:
            rf_gru_cell_grad_f(gates + gate_off, hn + off, h_prev + i * ld_hp + start,
                               direct + own, dgi + gate_off, dgh + gate_off, width, H)
        else:
            rf_gru_cell_grad_d(gates + gate_off, hn + off, h_prev + i * ld_hp + start,
                               direct + own, dgi + gate_off, dgh + gate_off, width, H)


cdef void _gru_team_forward_f(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _gru_team_forward_task(<float>0, <GatedTeamJob *>job, stage, panel)


cdef void _gru_team_forward_d(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _gru_team_forward_task(<double>0, <GatedTeamJob *>job, stage, panel)


cdef void _gru_team_backward_f(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _gru_team_backward_task(<float>0, <GatedTeamJob *>job, stage, panel)


cdef void _gru_team_backward_d(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _gru_team_backward_task(<double>0, <GatedTeamJob *>job, stage, panel)


cdef bint _gated_team_run(const Dims *d, int n_gates, void *buffers,
                          bint backward) noexcept nogil:
    """Run an LSTM (``n_gates`` 4, ``buffers`` LstmBuffers) or GRU (3, GruBuffers) loop
    on the team (``d.team`` members wanted); False, nothing done, when another thread
    holds the team or no worker could be started.  Forward needs ``w_hh_t`` laid out
    (the caller's, as for the packed path)."""
    cdef int n_members = _team_take(d)
    cdef GatedTeamJob job
    cdef TeamTask task
    cdef const void *w_hh
    cdef const void *w_hh_t
    if n_members == 0:
        return False
    job.d, job.b = d, buffers
    job.n_panels = min(n_members, <int>TEAM_MAX_PANELS)
    if n_gates == 4 and (<LstmBuffers *>buffers).w_hr != NULL:
        # the LSTM with a projection: two stages a step, one-thread BLAS panels
        if d.float32:
            task = _lstmp_team_backward_f if backward else _lstmp_team_forward_f
        else:
            task = _lstmp_team_backward_d if backward else _lstmp_team_forward_d
        _team_go(task, &job, 2 * d.n_steps + (3 if backward else 1), job.n_panels,
                 n_members)
        return True
    if n_gates == 4:
        w_hh, w_hh_t = (<LstmBuffers *>buffers).w_hh, (<LstmBuffers *>buffers).w_hh_t
    else:
        w_hh, w_hh_t = (<GruBuffers *>buffers).w_hh, (<GruBuffers *>buffers).w_hh_t
    if d.float32:
        _gated_team_prepare(<float>0, &job, n_gates, <const float *>w_hh,
                            <const float *>w_hh_t, backward)
        if n_gates == 4:
            task = _lstm_team_backward_f if backward else _lstm_team_forward_f
        else:
            task = _gru_team_backward_f if backward else _gru_team_forward_f
    else:
        _gated_team_prepare(<double>0, &job, n_gates, <const double *>w_hh,
                            <const double *>w_hh_t, backward)
        if n_gates == 4:
            task = _lstm_team_backward_d if backward else _lstm_team_forward_d
        else:
            task = _gru_team_backward_d if backward else _gru_team_forward_d
    # forward: the input projection, then the steps; backward: the steps' T + 1 stages,
    # then the two of the weight gradients
    _team_go(task, &job, d.n_steps + (3 if backward else 1), job.n_panels, n_members)
    return True
