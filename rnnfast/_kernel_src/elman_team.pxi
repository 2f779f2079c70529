# The Elman recurrence's serial loops on a thread team (_team.h), where the
# product policy plans PRODUCT_TEAM (Dims.team members; see _plan_team).
#
# Each step's recurrent product splits by output columns: member k of n owns the
# columns [start, stop) of its panel (_team_panel) and, on those columns only,
# runs the step's product as one thread (a LIBXSMM kernel where the policy plans
# PRODUCT_PACKED for the panel's shape, else one-thread BLAS) and the step's
# elementwise epilogue, which reads and writes nothing outside them:
#
#   forward   Z_t[:, panel] += H_prev Whh^T[:, panel];  H_t[:, panel] = f(Z_t[:, panel] + bh)
#   backward  dZ_t[:, panel] = (dH_t + G)[:, panel] * f'(H_t[:, panel]);  dbh[panel] += ...
#             G[:, panel] = dZ_t Whh[:, panel]
#
# One barrier per step: the forward's next product reads all of H_t, the
# backward's product all of dZ_t.  The hoisted products (the input projection,
# the weight gradients, dX) stay outside the team, in threaded BLAS: only one pool
# runs at a time.  Same math as _recur_forward / _recur_backward (elman.pxi),
# which run whenever the team is not planned or another thread holds it.

cdef struct ElmanTeamJob:
    const Dims *d
    void *h                     # (m, T, n_h) forward: Z on entry, the states on return
    const void *h0              # (m, n_h)
    const void *w_hh            # (n_h, n_h) as stored
    const void *w_hh_t          # (n_h, n_h) Whh^T, laid out by the caller (forward)
    const void *b_h             # (n_h,)
    const void *states          # (m, T, n_h) backward: the forward's states
    const void *dh              # (m, T, n_h) backward: dL/dH
    void *dz                    # (m, T, n_h) backward: dZ (may be dh)
    void *grad                  # (m, n_h) G: the final states' gradient on entry, dh0 on return
    void *carry                 # (m, n_h) scratch, with lengths
    void *db_h                  # (n_h,)


cdef inline void _team_panel(int n_cols, int member, int n_members, int *start,
                             int *stop) noexcept nogil:
    """Columns [start, stop) of ``member``'s panel: equal shares, in whole blocks of 16
    columns (one vector register of floats) where there are enough columns."""
    cdef int unit = 16 if n_cols >= 16 * n_members else 1
    cdef int units = (n_cols + unit - 1) // unit
    start[0] = min(n_cols, units * member // n_members * unit)
    stop[0] = min(n_cols, units * (member + 1) // n_members * unit)


cdef inline bint _team_panel_packed(const Dims *d, int width) noexcept nogil:
    """Whether a member's panel product (m, n_h) (n_h, width) runs in a LIBXSMM kernel."""
    cdef int allowed = _blas.PRODUCT_PACKED | _blas.PRODUCT_GEMM
    return (width > 0 and plan_product(d.n_batch, width, d.n_hidden, allowed, d.float32)
            == _blas.PRODUCT_PACKED)


cdef void _team_forward_member(floating tag, ElmanTeamJob *job, int member,
                               int n_members) noexcept nogil:
    """Member ``member``'s share of _recur_forward: its panel of every step."""
    cdef const Dims *d = job.d
    cdef floating *h = <floating *>job.h
    cdef const floating *h0 = <const floating *>job.h0
    cdef const floating *w_hh = <const floating *>job.w_hh
    cdef const floating *w_hh_t = <const floating *>job.w_hh_t
    cdef const floating *b_h = <const floating *>job.b_h
    cdef int n_hidden = d.n_hidden, n_batch = d.n_batch, n_steps = d.n_steps
    cdef int ld_step = n_steps * n_hidden
    cdef int start, stop, width, ld_prev
    cdef Py_ssize_t s, t, i, j
    cdef const floating *h_prev
    cdef floating *z_t
    cdef floating *row
    cdef void *first_kernel = NULL
    cdef void *step_kernel = NULL
    cdef void *kernel

    _team_panel(n_hidden, member, n_members, &start, &stop)
    width = stop - start
    if _team_panel_packed(d, width):
        # Z_t[:, panel] += H_prev Whh^T[:, panel]: kernels for h0's row stride and a step's
        first_kernel = _packed_kernel(w_hh_t, n_batch, width, n_hidden, n_hidden, n_hidden,
                                      ld_step, True)
        step_kernel = _packed_kernel(w_hh_t, n_batch, width, n_hidden, ld_step, n_hidden,
                                     ld_step, True)
    for s in range(n_steps):
        t = n_steps - 1 - s if d.reverse else s
        z_t = h + t * n_hidden
        if s == 0:
            h_prev, ld_prev = h0, n_hidden
        else:
            h_prev, ld_prev = h + (t + 1 if d.reverse else t - 1) * n_hidden, ld_step
        if width > 0:
            kernel = first_kernel if s == 0 else step_kernel
            # Z_t[:, panel] += H_prev Whh^T[:, panel]   (m, w) = (m, n_h) (n_h, w)
            if kernel != NULL:
                _packed_times(kernel, h_prev, w_hh_t + start, z_t + start)
            else:
                gemm(c'N', c'T', n_batch, width, n_hidden, 1, h_prev, ld_prev,
                     w_hh + start * n_hidden, n_hidden, 1, z_t + start, ld_step)
            for i in range(n_batch):
                row = z_t + i * ld_step + start
                if _padded(d, i, t):
                    # past sequence i's end: its state is carried unchanged
                    for j in range(width):
                        row[j] = h_prev[i * ld_prev + start + j]
                else:
                    # H_t[:, panel] = f(Z_t[:, panel] + bh[panel])
                    _bias_act(row, b_h + start, width, d.activation)
        if s + 1 < n_steps:
            # every panel of H_t is written before any member reads H_t
            _blas.rf_team_barrier(n_members)


cdef void _team_backward_member(floating tag, ElmanTeamJob *job, int member,
                                int n_members) noexcept nogil:
    """Member ``member``'s share of _recur_backward: its panel of every step."""
    cdef const Dims *d = job.d
    cdef const floating *h = <const floating *>job.states
    cdef const floating *dh = <const floating *>job.dh
    cdef const floating *w_hh = <const floating *>job.w_hh
    cdef floating *dz = <floating *>job.dz
    cdef floating *grad = <floating *>job.grad
    cdef floating *carry = <floating *>job.carry
    cdef floating *db_h = <floating *>job.db_h
    cdef int n_hidden = d.n_hidden, n_batch = d.n_batch, n_steps = d.n_steps
    cdef int ld_step = n_steps * n_hidden
    cdef int start, stop, width
    cdef Py_ssize_t s, t, i, j, off, own
    cdef floating *dz_t
    cdef void *kernel = NULL

    _team_panel(n_hidden, member, n_members, &start, &stop)
    width = stop - start
    if _team_panel_packed(d, width):
        # G[:, panel] = dZ_t Whh[:, panel] in a LIBXSMM kernel (NULL: BLAS)
        kernel = _packed_kernel(w_hh, n_batch, width, n_hidden, ld_step, n_hidden, n_hidden,
                                False)
    for j in range(start, stop):
        db_h[j] = 0
    for s in range(n_steps):
        t = s if d.reverse else n_steps - 1 - s
        dz_t = dz + t * n_hidden
        for i in range(n_batch):
            off = i * ld_step + t * n_hidden + start
            own = i * n_hidden + start
            if _padded(d, i, t):
                # a carried state: no pre-activation, G passes through unchanged
                for j in range(width):
                    dz[off + j] = 0
                    carry[own + j] = grad[own + j]
            elif width > 0:
                # dZ_t[:, panel] = (dH_t + G) * f'(H_t);  dbh[panel] += dZ_t[:, panel]
                _act_grad(dz + off, dh + off, grad + own, h + off, db_h + start, width,
                          d.activation)
        # every panel of dZ_t is written before any member reads dZ_t
        _blas.rf_team_barrier(n_members)
        if width == 0:
            continue
        # G[:, panel] = dZ_t Whh[:, panel]    (m, w) = (m, n_h) (n_h, w)
        if kernel != NULL:
            _packed_times(kernel, dz_t, w_hh + start, grad + start)
        else:
            gemm(c'N', c'N', n_batch, width, n_hidden, 1, dz_t, ld_step, w_hh + start,
                 n_hidden, 0, grad + start, n_hidden)
        if d.lengths != NULL:
            for i in range(n_batch):
                if t >= d.lengths[i]:
                    own = i * n_hidden + start
                    for j in range(width):
                        grad[own + j] = carry[own + j]


# the members' entry points, one per direction and dtype (rf_team_fn)
cdef void _team_forward_f(void *job, int member, int n_members) noexcept nogil:
    _team_forward_member(<float>0, <ElmanTeamJob *>job, member, n_members)


cdef void _team_forward_d(void *job, int member, int n_members) noexcept nogil:
    _team_forward_member(<double>0, <ElmanTeamJob *>job, member, n_members)


cdef void _team_backward_f(void *job, int member, int n_members) noexcept nogil:
    _team_backward_member(<float>0, <ElmanTeamJob *>job, member, n_members)


cdef void _team_backward_d(void *job, int member, int n_members) noexcept nogil:
    _team_backward_member(<double>0, <ElmanTeamJob *>job, member, n_members)


cdef bint _team_run(const Dims *d, ElmanTeamJob *job, bint backward) noexcept nogil:
    """Run the loop on the team (``d.team`` members wanted); False, nothing done, when
    another thread holds the team or no worker could be started."""
    cdef int n_members = _blas.rf_team_acquire(d.team)
    cdef _blas.rf_team_fn fn
    if n_members == 0:
        return False
    job.d = d
    if backward:
        fn = _team_backward_f if d.float32 else _team_backward_d
    else:
        fn = _team_forward_f if d.float32 else _team_forward_d
    _blas.rf_team_run(fn, job, n_members)
    _blas.rf_team_release()
    return True
