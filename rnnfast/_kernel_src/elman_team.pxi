# The Elman recurrence's serial loops on a thread team (_team.h), where the
# product policy plans PRODUCT_TEAM (Dims.team members; see _plan_team).
#
# Each step's recurrent product splits by output columns into one panel per member
# (_team_panel).  A task is one step on one panel's columns [start, stop): the
# step's product there, run on one thread (a LIBXSMM kernel where the policy plans
# PRODUCT_PACKED for the panel's shape, else one-thread BLAS), and the step's
# elementwise epilogue, which reads and writes nothing outside those columns:
#
#   forward   Z_t[:, p] += H_prev Whh^T[:, p];  H_t[:, p] = f(Z_t[:, p] + bh[p])
#   backward  G[:, p] = dZ_t Whh[:, p];  dZ_next[:, p] = (dH_next + G)[:, p] f'(H_next[:, p]),
#             dbh[p] += dZ_next[:, p]   (stage 0 is the first step's epilogue alone)
#
# The members take tasks in step order from the team's counter and start a task
# once every task of the previous step (stage) is done: the forward's product reads
# all of H_prev, the backward's all of dZ_t.  Which member runs which panel changes
# from step to step; a member that falls behind just takes fewer tasks.  The hoisted
# products (the input projection, the read-out, the weight gradients, dX) run on the
# team too, split by rows (_hoisted_gemm, at the end of this file).  Same math as
# _recur_forward / _recur_backward (elman.pxi), which run whenever the team is not
# planned or another thread holds it.

cdef enum:
    TEAM_MAX_PANELS = 64        # RF_TEAM_MAX in _team.h: one panel per member

cdef struct ElmanTeamJob:
    const Dims *d
    int n_panels
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
    # each panel's LIBXSMM kernels (NULL: BLAS): forward with H_prev = h0 (first) and
    # a step of h (step); backward's G = dZ_t Whh (step)
    void *first[TEAM_MAX_PANELS]
    void *step[TEAM_MAX_PANELS]


cdef inline void _team_panel(int n_cols, int panel, int n_panels, int *start,
                             int *stop) noexcept nogil:
    """Columns [start, stop) of a panel: equal shares, in whole blocks of 16 columns
    (one vector register of floats) where there are enough columns."""
    cdef int unit = 16 if n_cols >= 16 * n_panels else 1
    cdef int units = (n_cols + unit - 1) // unit
    start[0] = min(n_cols, units * panel // n_panels * unit)
    stop[0] = min(n_cols, units * (panel + 1) // n_panels * unit)


cdef void _team_prepare(floating tag, ElmanTeamJob *job, bint backward) noexcept nogil:
    """Each panel's LIBXSMM kernels, where the policy plans PRODUCT_PACKED for the panel's
    product (m, n_h) (n_h, width)."""
    cdef const Dims *d = job.d
    cdef int n_hidden = d.n_hidden, n_batch = d.n_batch, ld_step = d.n_steps * d.n_hidden
    cdef int allowed = _blas.PRODUCT_PACKED | _blas.PRODUCT_GEMM
    cdef int p, start, stop, width
    for p in range(job.n_panels):
        job.first[p] = job.step[p] = NULL
        _team_panel(n_hidden, p, job.n_panels, &start, &stop)
        width = stop - start
        if (width == 0 or plan_product(n_batch, width, n_hidden, allowed, d.float32)
                != _blas.PRODUCT_PACKED):
            continue
        if backward:
            # G[:, p] = dZ_t Whh[:, p]
            job.step[p] = _packed_kernel(<const floating *>job.w_hh, n_batch, width, n_hidden,
                                         ld_step, n_hidden, n_hidden, False)
        else:
            # Z_t[:, p] += H_prev Whh^T[:, p], for h0's row stride and a step's
            job.first[p] = _packed_kernel(<const floating *>job.w_hh_t, n_batch, width,
                                          n_hidden, n_hidden, n_hidden, ld_step, True)
            job.step[p] = _packed_kernel(<const floating *>job.w_hh_t, n_batch, width,
                                         n_hidden, ld_step, n_hidden, ld_step, True)


cdef void _team_forward_task(floating tag, ElmanTeamJob *job, Py_ssize_t s,
                             int panel) noexcept nogil:
    """Forward step s (in the loop's order) on one panel's columns."""
    cdef const Dims *d = job.d
    cdef floating *h = <floating *>job.h
    cdef const floating *b_h = <const floating *>job.b_h
    cdef int n_hidden = d.n_hidden, n_batch = d.n_batch, n_steps = d.n_steps
    cdef int ld_step = n_steps * n_hidden
    cdef int start, stop, width, ld_prev
    cdef Py_ssize_t t, i, j
    cdef const floating *h_prev
    cdef floating *z_t
    cdef floating *row
    cdef void *kernel

    _team_panel(n_hidden, panel, job.n_panels, &start, &stop)
    width = stop - start
    if width == 0:
        return
    t = n_steps - 1 - s if d.reverse else s
    z_t = h + t * n_hidden
    if s == 0:
        h_prev, ld_prev = <const floating *>job.h0, n_hidden
    else:
        h_prev, ld_prev = h + (t + 1 if d.reverse else t - 1) * n_hidden, ld_step
    kernel = job.first[panel] if s == 0 else job.step[panel]
    # Z_t[:, p] += H_prev Whh^T[:, p]      (m, w) = (m, n_h) (n_h, w)
    if kernel != NULL:
        _packed_times(kernel, h_prev, <const floating *>job.w_hh_t + start, z_t + start)
    else:
        gemm(c'N', c'T', n_batch, width, n_hidden, 1, h_prev, ld_prev,
             <const floating *>job.w_hh + start * n_hidden, n_hidden, 1, z_t + start, ld_step)
    for i in range(n_batch):
        row = z_t + i * ld_step + start
        if _padded(d, i, t):
            # past sequence i's end: its state is carried unchanged
            for j in range(width):
                row[j] = h_prev[i * ld_prev + start + j]
        else:
            # H_t[:, p] = f(Z_t[:, p] + bh[p])
            _bias_act(row, b_h + start, width, d.activation)


cdef void _team_backward_task(floating tag, ElmanTeamJob *job, Py_ssize_t stage,
                              int panel) noexcept nogil:
    """Backward stage on one panel's columns: the product of step stage - 1 (in the
    loop's order; none at stage 0), then the epilogue of step ``stage`` (none past the
    last)."""
    cdef const Dims *d = job.d
    cdef const floating *h = <const floating *>job.states
    cdef const floating *dh = <const floating *>job.dh
    cdef floating *dz = <floating *>job.dz
    cdef floating *grad = <floating *>job.grad
    cdef floating *carry = <floating *>job.carry
    cdef floating *db_h = <floating *>job.db_h
    cdef int n_hidden = d.n_hidden, n_batch = d.n_batch, n_steps = d.n_steps
    cdef int ld_step = n_steps * n_hidden
    cdef int start, stop, width
    cdef Py_ssize_t t, i, j, off, own
    cdef void *kernel = job.step[panel]

    _team_panel(n_hidden, panel, job.n_panels, &start, &stop)
    width = stop - start
    if width == 0:
        return
    if stage == 0:
        for j in range(start, stop):
            db_h[j] = 0
    else:
        t = stage - 1 if d.reverse else n_steps - stage
        # G[:, p] = dZ_t Whh[:, p]          (m, w) = (m, n_h) (n_h, w)
        if kernel != NULL:
            _packed_times(kernel, dz + t * n_hidden, <const floating *>job.w_hh + start,
                          grad + start)
        else:
            gemm(c'N', c'N', n_batch, width, n_hidden, 1, dz + t * n_hidden, ld_step,
                 <const floating *>job.w_hh + start, n_hidden, 0, grad + start, n_hidden)
        if d.lengths != NULL:
            for i in range(n_batch):
                if t >= d.lengths[i]:
                    own = i * n_hidden + start
                    for j in range(width):
                        grad[own + j] = carry[own + j]
    if stage == n_steps:
        return
    t = stage if d.reverse else n_steps - 1 - stage
    for i in range(n_batch):
        off = i * ld_step + t * n_hidden + start
        own = i * n_hidden + start
        if _padded(d, i, t):
            # a carried state: no pre-activation, G passes through unchanged
            for j in range(width):
                dz[off + j] = 0
                carry[own + j] = grad[own + j]
        else:
            # dZ_t[:, p] = (dH_t + G) * f'(H_t);  dbh[p] += dZ_t[:, p]
            _act_grad(dz + off, dh + off, grad + own, h + off, db_h + start, width,
                      d.activation)


# -- the team's loop, shared by every cell -----------------------------------------

ctypedef void (*TeamTask)(void *job, Py_ssize_t stage, int panel) noexcept nogil


cdef struct TeamLoop:
    TeamTask task               # runs the task (stage, panel) of the cell's job
    void *job
    Py_ssize_t n_stages
    int n_panels


cdef void _team_member(void *arg, int member, int n_members) noexcept nogil:
    """A member's share of a loop (rf_team_fn): tasks in stage order, each once the
    previous stage is done; the caller (member 0) returns once every task is done."""
    cdef TeamLoop *loop = <TeamLoop *>arg
    cdef long long total = loop.n_stages * loop.n_panels
    cdef long long ticket
    cdef Py_ssize_t stage
    while True:
        ticket = _blas.rf_team_claim()
        if ticket >= total:
            break
        stage = ticket // loop.n_panels
        # every task of the previous stage is done
        _blas.rf_team_wait_done(stage * loop.n_panels)
        loop.task(loop.job, stage, <int>(ticket % loop.n_panels))
        _blas.rf_team_task_done()
    if member == 0:
        _blas.rf_team_wait_done(total)


cdef int _team_take(const Dims *d) noexcept nogil:
    """Take the team for ``d.team`` members: the number of members (the panels of each
    stage are at most TEAM_MAX_PANELS), or 0 when another thread holds the team or no
    worker could be started (the caller then runs its ordinary loop)."""
    return _blas.rf_team_acquire(d.team)


cdef void _team_go(TeamTask task, void *job, Py_ssize_t n_stages, int n_panels,
                   int n_members, bint loop=True) noexcept nogil:
    """Run ``n_stages`` stages of ``n_panels`` tasks on the team taken by
    :func:`_team_take` (``n_members``), then give the team back; ``loop``: a time loop
    (else a hoisted product), for the tests' counts."""
    cdef TeamLoop team_loop
    team_loop.task, team_loop.job = task, job
    team_loop.n_stages, team_loop.n_panels = n_stages, n_panels
    if loop:
        _blas.rf_team_runs += 1
    else:
        _blas.rf_team_product_runs += 1
    _blas.rf_team_run(_team_member, &team_loop, n_members)
    _blas.rf_team_release()


# the Elman tasks, one per direction and dtype (TeamTask)
cdef void _team_forward_f(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _team_forward_task(<float>0, <ElmanTeamJob *>job, stage, panel)


cdef void _team_forward_d(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _team_forward_task(<double>0, <ElmanTeamJob *>job, stage, panel)


cdef void _team_backward_f(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _team_backward_task(<float>0, <ElmanTeamJob *>job, stage, panel)


cdef void _team_backward_d(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _team_backward_task(<double>0, <ElmanTeamJob *>job, stage, panel)


cdef bint _team_run(const Dims *d, ElmanTeamJob *job, bint backward) noexcept nogil:
    """Run the Elman loop on the team (``d.team`` members wanted); False, nothing done,
    when another thread holds the team or no worker could be started."""
    cdef int n_members = _team_take(d)
    cdef TeamTask task
    if n_members == 0:
        return False
    job.d = d
    job.n_panels = min(n_members, <int>TEAM_MAX_PANELS)
    if d.float32:
        _team_prepare(<float>0, job, backward)
        task = _team_backward_f if backward else _team_forward_f
    else:
        _team_prepare(<double>0, job, backward)
        task = _team_backward_d if backward else _team_forward_d
    _team_go(task, job, d.n_steps + (1 if backward else 0), job.n_panels, n_members)
    return True


# -- the products hoisted out of the Elman loop, on the team too ------------------------
#
# Where the loop runs on the team, the big products before and after it (the input
# projection, the seed model's read-out, the weight gradients, dX) run on the team as
# well, split by rows of the result, each member's share in one-thread BLAS.  In
# NumPy's threaded OpenBLAS instead, its pool's threads kept spinning long after the
# call and took the second core from the team's loop (perf: blas_thread_server 36% of
# the seed model's (32, 256) forward + BPTT on the team).

cdef struct TeamGemm:
    # C (n_rows, n_cols) = alpha op(A) op(B) + beta C, row-major, as gemm() takes it
    char trans_a
    char trans_b
    int n_rows, n_cols, n_inner, lda, ldb, ldc, n_panels
    double alpha, beta
    const void *a
    const void *b
    void *c
    # dW = sum_t dZ_t^T H_prev(t) by rows of dW instead (_recurrent_weight_grad): with
    # dims set, the job is that product (dz (m, T, n_rows), h, h0, c = dW (n_rows, n_cols))
    const Dims *dims
    const void *h0


cdef void _team_gemm_rows(floating tag, TeamGemm *job, int panel) noexcept nogil:
    """One member's rows [r0, r1) of the job's product."""
    cdef int r0, r1
    _team_panel(job.n_rows, panel, job.n_panels, &r0, &r1)
    if r1 <= r0:
        return
    if job.dims != NULL:
        # dW[r0:r1] = sum_t dZ_t[:, r0:r1]^T H_prev(t)
        _recurrent_weight_grad(job.dims, <floating *>job.a + r0, r1 - r0,
                               <const floating *>job.b, <const floating *>job.h0, job.n_cols,
                               <floating *>job.c + r0 * job.ldc, job.n_rows)
        return
    # rows r0.. of op(A): a row offset of A, or a column offset when A is transposed
    gemm(job.trans_a, job.trans_b, r1 - r0, job.n_cols, job.n_inner, <floating>job.alpha,
         <const floating *>job.a + (r0 if job.trans_a == c'T' else r0 * job.lda), job.lda,
         <const floating *>job.b, job.ldb, <floating>job.beta,
         <floating *>job.c + r0 * job.ldc, job.ldc)


cdef void _team_gemm_f(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _team_gemm_rows(<float>0, <TeamGemm *>job, panel)


cdef void _team_gemm_d(void *job, Py_ssize_t stage, int panel) noexcept nogil:
    _team_gemm_rows(<double>0, <TeamGemm *>job, panel)


cdef bint _team_product(const Dims *d, TeamGemm *job) noexcept nogil:
    """Run the job on the team, split by rows; False, nothing done, when another thread
    holds the team or no worker could be started."""
    cdef int n_members = _team_take(d)
    if n_members == 0:
        return False
    job.n_panels = min(n_members, <int>TEAM_MAX_PANELS)
    _team_go(_team_gemm_f if d.float32 else _team_gemm_d, job, 1, job.n_panels, n_members,
             False)
    return True


cdef void _hoisted_gemm(const Dims *d, char trans_a, char trans_b, int n_rows, int n_cols,
                        int n_inner, floating alpha, const floating *a, int lda,
                        const floating *b, int ldb, floating beta, floating *c,
                        int ldc) noexcept nogil:
    """gemm() for a product hoisted out of a time loop: on the team, by rows, where the
    loop runs on it (``d.team``) and the product is not tiny; else as gemm()."""
    cdef TeamGemm job
    if (d.team and n_rows >= 2
            and _blas.product_work(n_rows, n_cols, n_inner) > _blas.TINY_PRODUCT_WORK):
        memset(&job, 0, sizeof(TeamGemm))
        job.trans_a, job.trans_b = trans_a, trans_b
        job.n_rows, job.n_cols, job.n_inner = n_rows, n_cols, n_inner
        job.lda, job.ldb, job.ldc, job.alpha, job.beta = lda, ldb, ldc, alpha, beta
        job.a, job.b, job.c = a, b, c
        if _team_product(d, &job):
            return
    gemm(trans_a, trans_b, n_rows, n_cols, n_inner, alpha, a, lda, b, ldb, beta, c, ldc)


cdef void _hoisted_weight_grad(const Dims *d, floating *dz, int n_out, const floating *h,
                               const floating *h0, int n_in, floating *dw_out) noexcept nogil:
    """_recurrent_weight_grad(), by rows of dW on the team where the loop runs on it."""
    cdef TeamGemm job
    if d.team and n_out >= 2:
        memset(&job, 0, sizeof(TeamGemm))
        job.dims, job.n_rows, job.n_cols, job.ldc = d, n_out, n_in, n_in
        job.a, job.b, job.h0, job.c = dz, h, h0, dw_out
        if _team_product(d, &job):
            return
    _recurrent_weight_grad(d, dz, n_out, h, h0, n_in, dw_out)
