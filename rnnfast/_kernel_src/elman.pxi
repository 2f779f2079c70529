# The Elman recurrence (the seed model and the nn.RNN layer): forward and BPTT.
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


cdef struct ElmanBuffers:
    # inputs (x in the form Dims.x_mode; the others of the float dtype)
    const void *x
    const void *h0              # (m, n_h)
    const void *w_hx            # Whx / W_ih (n_h, n_x)
    const void *w_hh            # (n_h, n_h)
    const void *b_h             # (n_h,): bh, or b_ih + b_hh for a layer
    const void *w_yh            # (n_y, n_h), seed model only
    const void *b_y             # (n_y,), seed model only
    const Py_ssize_t *labels    # (m*T,) class indices, loss only
    # outputs
    void *h                     # (m, T, n_h) states
    void *y                     # (m, T, n_y) softmax outputs or logits
    void *dx                    # like x (unused for class indices)
    void *dh0                   # (m, n_h); a layer's: dL/dh_n on entry
    void *dw_hx
    void *dw_hh
    void *db_h
    void *dw_yh
    void *db_y
    double loss
    # read, then scratch
    void *dh                    # (m, T, n_h) dL/dH; may be dz
    void *dz                    # (m, T, n_h)
    void *w_hh_t                # (n_h, n_h) Whh^T, with own products
    void *carry                 # (m, n_h), with lengths


cdef void _project_input(const Dims *d, const void *x, const floating *w_hx,
                         floating *z) noexcept nogil:
    """Z = X Whx^T                         (m*T, n_h) = (m*T, n_x) (n_x, n_h)"""
    cdef const Py_ssize_t *index = <const Py_ssize_t *>x
    cdef int n_input = d.n_input, n_hidden = d.n_hidden, n_rows = d.n_batch * d.n_steps
    cdef Py_ssize_t r, j, k
    if d.x_mode == X_COLUMNS:
        _hoisted_gemm(d, c'T', c'T', n_rows, n_hidden, n_input, 1, <const floating *>x,
                      n_rows, w_hx, n_input, 0, z, n_hidden)
    elif d.x_mode == X_ROWS:
        _hoisted_gemm(d, c'N', c'T', n_rows, n_hidden, n_input, 1, <const floating *>x,
                      n_input, w_hx, n_input, 0, z, n_hidden)
    else:
        # Z[r, :] = Whx[:, x[r]]
        for r in range(n_rows):
            k = index[r]
            for j in range(n_hidden):
                z[r * n_hidden + j] = w_hx[j * n_input + k]


cdef void _recur_forward(const Dims *d, floating *h, const floating *h0, const floating *w_hh,
                         const floating *b_h, floating *w_hh_t) noexcept nogil:
    """The serial part of the forward pass: H_t = f(Z_t + H_prev Whh^T + bh).

    ``h`` (m, T, n_h) holds Z = X Whx^T on entry and the states on return.
    ``d.lengths`` (m,) may be NULL (every step valid); ``w_hh_t`` is scratch
    for Whh^T when ``d.own_products`` or ``d.packed``.
    """
    cdef int n_hidden = d.n_hidden, n_batch = d.n_batch, n_steps = d.n_steps
    cdef bint reverse = d.reverse
    cdef int ld_step = n_steps * n_hidden        # row stride of one step's block
    cdef int ld_prev
    cdef Py_ssize_t s, t, i, j
    cdef const floating *h_prev
    cdef floating *z_t
    cdef floating *row
    cdef void *first_kernel = NULL               # LIBXSMM's, for H_prev = h0
    cdef void *step_kernel = NULL                # and for H_prev a step of h
    cdef void *kernel

    cdef ElmanTeamJob job
    if d.own_products or d.packed or d.team:
        # Whh^T, row-major, so that each step is a row-vector (or rows) times matrix
        _transpose(w_hh, n_hidden, n_hidden, w_hh_t)
    if d.team:
        # the steps split by columns among the thread team (elman_team.pxi), unless
        # another thread holds it
        memset(&job, 0, sizeof(ElmanTeamJob))
        job.h, job.h0, job.w_hh, job.w_hh_t, job.b_h = h, h0, w_hh, w_hh_t, b_h
        if _team_run(d, &job, False):
            return
    if d.packed:
        # Z_t += H_prev Whh^T: kernels for h0's row stride and for a step's; NULL
        # (no kernel) falls back to BLAS
        first_kernel = _packed_kernel(w_hh_t, n_batch, n_hidden, n_hidden, n_hidden,
                                      n_hidden, ld_step, True)
        step_kernel = _packed_kernel(w_hh_t, n_batch, n_hidden, n_hidden, ld_step,
                                     n_hidden, ld_step, True)

    for s in range(n_steps):
        t = n_steps - 1 - s if reverse else s
        z_t = h + t * n_hidden
        if s == 0:
            h_prev, ld_prev = h0, n_hidden
        else:
            h_prev, ld_prev = h + (t + 1 if reverse else t - 1) * n_hidden, ld_step
        kernel = first_kernel if s == 0 else step_kernel
        # Z_t += H_prev Whh^T              (m, n_h) = (m, n_h) (n_h, n_h)
        if kernel != NULL:
            _packed_times(kernel, h_prev, w_hh_t, z_t)
        else:
            _times_whh(d, h_prev, ld_prev, w_hh, w_hh_t, True, z_t, ld_step, True)
        for i in range(n_batch):
            row = z_t + i * ld_step
            if _padded(d, i, t):
                # past sequence i's end: its state is carried unchanged
                for j in range(n_hidden):
                    row[j] = h_prev[i * ld_prev + j]
            else:
                # H_t = f(Z_t + bh)
                _bias_act(row, b_h, n_hidden, d.activation)


cdef void _recur_backward(const Dims *d, const floating *h, const floating *dh, floating *dz,
                          floating *grad, floating *carry, const floating *w_hh,
                          floating *db_h_out) noexcept nogil:
    """The serial part of BPTT, in the reverse of the forward's step order.

    ``grad`` (m, n_h) holds on entry the gradient reaching the final states
    (zeros, or the caller's dL/dh_n) and on return dL/dh0.  ``dz`` (m, T, n_h)
    may be ``dh``.  ``carry`` (m, n_h) is scratch, used with ``d.lengths``.
    """
    cdef int n_hidden = d.n_hidden, n_batch = d.n_batch, n_steps = d.n_steps
    cdef bint reverse = d.reverse
    cdef int ld_step = n_steps * n_hidden
    cdef Py_ssize_t s, t, i, j, off
    cdef floating *dz_t
    cdef void *kernel = NULL
    cdef ElmanTeamJob job

    if d.team:
        # the steps split by columns among the thread team (elman_team.pxi), unless
        # another thread holds it
        memset(&job, 0, sizeof(ElmanTeamJob))
        job.states, job.dh, job.dz, job.grad, job.carry = h, dh, dz, grad, carry
        job.w_hh, job.db_h = w_hh, db_h_out
        if _team_run(d, &job, True):
            return
    if d.packed:
        # G = dZ_t Whh in a LIBXSMM kernel (NULL: BLAS)
        kernel = _packed_kernel(w_hh, n_batch, n_hidden, n_hidden, ld_step, n_hidden,
                                n_hidden, False)
    for j in range(n_hidden):
        db_h_out[j] = 0
    for s in range(n_steps):
        t = s if reverse else n_steps - 1 - s
        dz_t = dz + t * n_hidden
        for i in range(n_batch):
            off = i * ld_step + t * n_hidden
            if _padded(d, i, t):
                # a carried state: no pre-activation, G passes through unchanged
                for j in range(n_hidden):
                    dz[off + j] = 0
                    carry[i * n_hidden + j] = grad[i * n_hidden + j]
            else:
                # dZ_t = (dH_t + G_t) * f'(H_t);  dbh += dZ_t
                _act_grad(dz + off, dh + off, grad + i * n_hidden, h + off, db_h_out,
                          n_hidden, d.activation)
        # G = dZ_t Whh                     (m, n_h) = (m, n_h) (n_h, n_h)
        if kernel != NULL:
            _packed_times(kernel, dz_t, w_hh, grad)
        else:
            _times_whh(d, dz_t, ld_step, w_hh, w_hh, False, grad, n_hidden, False)
        if d.lengths != NULL:
            for i in range(n_batch):
                if t >= d.lengths[i]:
                    for j in range(n_hidden):
                        grad[i * n_hidden + j] = carry[i * n_hidden + j]


cdef void _input_grads(const Dims *d, const void *x, const floating *dz, const floating *w_hx,
                       floating *dx_out, floating *dw_hx_out) noexcept nogil:
    """dWhx = dZ^T X and dX = dZ Whx (in x's form; none for class indices)."""
    cdef const Py_ssize_t *index = <const Py_ssize_t *>x
    cdef int n_input = d.n_input, n_hidden = d.n_hidden, n_rows = d.n_batch * d.n_steps
    cdef Py_ssize_t i, j, k
    if d.x_mode == X_COLUMNS:
        # dWhx = dZ^T X                   (n_h, n_x) = (n_h, m*T) (m*T, n_x)
        _hoisted_gemm(d, c'T', c'T', n_hidden, n_input, n_rows, 1, dz, n_hidden,
                      <const floating *>x, n_rows, 0, dw_hx_out, n_input)
        # dX^T = Whx^T dZ^T, into x's (n_x, m*T) layout
        _hoisted_gemm(d, c'T', c'T', n_input, n_rows, n_hidden, 1, w_hx, n_input, dz,
                      n_hidden, 0, dx_out, n_rows)
    elif d.x_mode == X_ROWS:
        # dWhx = dZ^T X                   (n_h, n_x) = (n_h, m*T) (m*T, n_x)
        _hoisted_gemm(d, c'T', c'N', n_hidden, n_input, n_rows, 1, dz, n_hidden,
                      <const floating *>x, n_input, 0, dw_hx_out, n_input)
        # dX = dZ Whx                     (m*T, n_x) = (m*T, n_h) (n_h, n_x)
        _hoisted_gemm(d, c'N', c'N', n_rows, n_input, n_hidden, 1, dz, n_hidden, w_hx,
                      n_input, 0, dx_out, n_input)
    else:
        # dWhx[:, x[r]] += dZ[r, :]; class indices have no gradient
        for j in range(n_hidden * n_input):
            dw_hx_out[j] = 0
        for i in range(n_rows):
            k = index[i]
            for j in range(n_hidden):
                dw_hx_out[j * n_input + k] += dz[i * n_hidden + j]


# -- the kernels: kernel(floating tag, const Dims *, ElmanBuffers *) ------------

cdef void _forward(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """The seed model's forward pass: states and softmax outputs (or logits)."""
    cdef ElmanBuffers *b = <ElmanBuffers *>buffers
    cdef floating *h = <floating *>b.h
    cdef floating *y = <floating *>b.y
    cdef const floating *b_y = <const floating *>b.b_y
    cdef int n_rows = d.n_batch * d.n_steps, n_hidden = d.n_hidden, n_output = d.n_output
    cdef Py_ssize_t i, j
    cdef floating *row

    _project_input(d, b.x, <const floating *>b.w_hx, h)
    _recur_forward(d, h, <const floating *>b.h0, <const floating *>b.w_hh,
                   <const floating *>b.b_h, <floating *>b.w_hh_t)
    # Y = H Wyh^T                         (m*T, n_y) = (m*T, n_h) (n_h, n_y)
    _hoisted_gemm(d, c'N', c'T', n_rows, n_output, n_hidden, 1, h, n_hidden,
                  <const floating *>b.w_yh, n_hidden, 0, y, n_output)
    for i in range(n_rows):
        row = y + i * n_output
        if d.softmax:
            # Y = softmax(Y + by) row by row
            _bias_softmax(row, b_y, n_output)
        else:
            # Y = Y + by (the logits)
            for j in range(n_output):
                row[j] += b_y[j]


cdef void _backward(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """BPTT of the seed model or of one layer direction: every gradient of sum(dh * h).

    ``b.dh0`` holds on entry the gradient reaching the final states, dL/dh_n
    (zeros for the seed model: none reaches them from outside), on return dL/dh0.
    """
    cdef ElmanBuffers *b = <ElmanBuffers *>buffers
    cdef const floating *h = <const floating *>b.h
    cdef floating *dz = <floating *>b.dz
    cdef floating *grad = <floating *>b.dh0
    _recur_backward(d, h, <const floating *>b.dh, dz, grad, <floating *>b.carry,
                    <const floating *>b.w_hh, <floating *>b.db_h)
    _input_grads(d, b.x, dz, <const floating *>b.w_hx, <floating *>b.dx, <floating *>b.dw_hx)
    # dWhh = sum_t dZ_t^T H_prev(t)       (n_h, n_h)
    _hoisted_weight_grad(d, dz, d.n_hidden, h, <const floating *>b.h0, d.n_hidden,
                         <floating *>b.dw_hh)


cdef void _loss(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """Mean softmax cross-entropy over all m*T positions (into ``b.loss``), every gradient."""
    cdef ElmanBuffers *b = <ElmanBuffers *>buffers
    cdef floating *h = <floating *>b.h
    cdef floating *logits = <floating *>b.y
    cdef floating *db_y = <floating *>b.db_y
    cdef int n_rows = d.n_batch * d.n_steps, n_hidden = d.n_hidden, n_output = d.n_output
    cdef floating scale = <floating>1 / n_rows
    cdef double total = 0
    cdef Py_ssize_t r, j
    cdef floating *row

    _forward(tag, d, buffers)          # d.softmax is off: logits
    # loss_r = logsumexp(Y_r) - Y_r[label_r];  dY_r = (softmax(Y_r) - onehot) / (m*T)
    for j in range(n_output):
        db_y[j] = 0
    for r in range(n_rows):
        row = logits + r * n_output
        total += _xent_row(row, b.labels[r], n_output, scale)
        # dby = column sums of dY
        for j in range(n_output):
            db_y[j] += row[j]
    # dWyh = dY^T H                       (n_y, n_h) = (n_y, m*T) (m*T, n_h)
    _hoisted_gemm(d, c'T', c'N', n_output, n_hidden, n_rows, 1, logits, n_output, h,
                  n_hidden, 0, <floating *>b.dw_yh, n_hidden)
    # dH = dY Wyh                         (m*T, n_h) = (m*T, n_y) (n_y, n_h)
    _hoisted_gemm(d, c'N', c'N', n_rows, n_hidden, n_output, 1, logits, n_output,
                  <const floating *>b.w_yh, n_hidden, 0, <floating *>b.dh, n_hidden)
    _backward(tag, d, buffers)
    b.loss = total / n_rows


cdef void _layer_forward(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """One direction of one nn.RNN layer: Z = X W_ih^T, then the recurrence."""
    cdef ElmanBuffers *b = <ElmanBuffers *>buffers
    _project_input(d, b.x, <const floating *>b.w_hx, <floating *>b.h)
    _recur_forward(d, <floating *>b.h, <const floating *>b.h0, <const floating *>b.w_hh,
                   <const floating *>b.b_h, <floating *>b.w_hh_t)


# -- entry points: validate nothing (the wrapper has), allocate, fill the structs, run --

cdef inline cnp.ndarray _zeros_like(cnp.ndarray a):
    """An array of zeros shaped like ``a`` (empty + memset: cheaper than PyArray_ZEROS)."""
    cdef cnp.ndarray z = _empty_like(a)
    memset(cnp.PyArray_DATA(z), 0, cnp.PyArray_NBYTES(z))
    return z


cdef ElmanBuffers _seed_buffers(cnp.ndarray x, cnp.ndarray h0, cnp.ndarray w_hx,
                                cnp.ndarray w_hh, cnp.ndarray b_h) noexcept:
    """The seed model's inputs, every other buffer NULL."""
    cdef ElmanBuffers b
    memset(&b, 0, sizeof(ElmanBuffers))
    b.x, b.h0, b.w_hx, b.w_hh, b.b_h = _ptr(x), _ptr(h0), _ptr(w_hx), _ptr(w_hh), _ptr(b_h)
    return b


cdef tuple _seed_forward(int x_mode, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray w_hx,
                         cnp.ndarray w_hh, cnp.ndarray w_yh, cnp.ndarray b_h, cnp.ndarray b_y,
                         bint own_products, bint softmax):
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(h0)[0], n_hidden = <int>cnp.PyArray_DIMS(h0)[1]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_hx)[1]
    cdef int n_steps = <int>(cnp.PyArray_SIZE(x) // n_batch
                             // (1 if x_mode == X_INDEX else n_input))
    cdef Dims d = _dims(h0, n_batch, n_steps, n_input, n_hidden)
    d.n_output = <int>cnp.PyArray_DIMS(w_yh)[0]
    d.x_mode, d.activation, d.own_products, d.softmax = x_mode, TANH, own_products, softmax
    d.packed = not own_products and _plan_packed(&d, d.n_hidden, d.n_hidden)
    d.team = 0 if own_products else _plan_team(&d)
    cdef cnp.ndarray h_out = _empty3(n_batch, n_steps, n_hidden, type_num)
    cdef cnp.ndarray y_out = _empty3(n_batch, n_steps, d.n_output, type_num)
    cdef cnp.ndarray w_hh_t = _scratch(own_products or d.packed or d.team, w_hh)
    cdef ElmanBuffers b = _seed_buffers(x, h0, w_hx, w_hh, b_h)
    b.w_yh, b.b_y = _ptr(w_yh), _ptr(b_y)
    b.h, b.y, b.w_hh_t = _ptr(h_out), _ptr(y_out), _ptr(w_hh_t)
    _run(_forward[float], _forward[double], &d, &b)
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
    return _seed_forward(x_mode, x, h0, w_hx, w_hh, w_yh, b_h, b_y, own_products, softmax)


cdef tuple _seed_backward(int x_mode, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray h,
                          cnp.ndarray dh, cnp.ndarray w_hx, cnp.ndarray w_hh,
                          cnp.ndarray b_h, bint dh_is_scratch, bint own_products):
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(h)
    cdef Dims d = _dims(h0, <int>dims[0], <int>dims[1], <int>cnp.PyArray_DIMS(w_hx)[1],
                        <int>dims[2])
    d.x_mode, d.activation, d.own_products = x_mode, TANH, own_products
    d.packed = not own_products and _plan_packed(&d, d.n_hidden, d.n_hidden)
    d.team = 0 if own_products else _plan_team(&d)
    cdef cnp.ndarray dx_out = None if x_mode == X_INDEX else _empty_like(x)
    cdef cnp.ndarray dh0_out = _zeros_like(h0)     # no gradient reaches the final state
    cdef cnp.ndarray dw_hx_out = _empty_like(w_hx), dw_hh_out = _empty_like(w_hh)
    cdef cnp.ndarray db_h_out = _empty_like(b_h)
    cdef cnp.ndarray dz = dh if dh_is_scratch else _empty_like(h)
    cdef ElmanBuffers b = _seed_buffers(x, h0, w_hx, w_hh, b_h)
    b.h, b.dh, b.dz = _ptr(h), _ptr(dh), _ptr(dz)
    b.dx, b.dh0, b.dw_hx, b.dw_hh, b.db_h = (_ptr(dx_out), _ptr(dh0_out), _ptr(dw_hx_out),
                                             _ptr(dw_hh_out), _ptr(db_h_out))
    _run(_backward[float], _backward[double], &d, &b)
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
    return _seed_backward(x_mode, x, h0, h, dh, w_hx, w_hh, b_h, dh_is_scratch, own_products)


def loss(int x_mode, cnp.ndarray x not None, cnp.ndarray h0 not None,
         cnp.ndarray labels not None, cnp.ndarray w_hx not None, cnp.ndarray w_hh not None,
         cnp.ndarray w_yh not None, cnp.ndarray b_h not None, cnp.ndarray b_y not None,
         bint own_products):
    """Forward, mean softmax cross-entropy against ``labels (m*T,)`` and full backward.

    Returns ``(loss, h, dx, dh0, dWhx, dWhh, dbh, dWyh, dby)``: the loss as a
    float, the states ``(m, T, n_h)``, and gradients shaped like their
    parameters (``dx`` like ``x``, None for class indices).
    """
    cdef int type_num = cnp.PyArray_TYPE(h0)
    cdef int n_batch = <int>cnp.PyArray_DIMS(h0)[0], n_hidden = <int>cnp.PyArray_DIMS(h0)[1]
    cdef int n_steps = <int>(cnp.PyArray_SIZE(labels) // n_batch)
    cdef Dims d = _dims(h0, n_batch, n_steps, <int>cnp.PyArray_DIMS(w_hx)[1], n_hidden)
    d.n_output = <int>cnp.PyArray_DIMS(w_yh)[0]
    d.x_mode, d.activation, d.own_products, d.softmax = x_mode, TANH, own_products, False
    d.packed = not own_products and _plan_packed(&d, d.n_hidden, d.n_hidden)
    d.team = 0 if own_products else _plan_team(&d)
    cdef cnp.ndarray h_out = _empty3(n_batch, n_steps, n_hidden, type_num)
    cdef cnp.ndarray logits = _empty3(n_batch, n_steps, d.n_output, type_num)
    cdef cnp.ndarray dh = _empty3(n_batch, n_steps, n_hidden, type_num)
    cdef cnp.ndarray dx_out = None if x_mode == X_INDEX else _empty_like(x)
    cdef cnp.ndarray dh0_out = _zeros_like(h0)     # no gradient reaches the final state
    cdef cnp.ndarray dw_hx_out = _empty_like(w_hx), dw_hh_out = _empty_like(w_hh)
    cdef cnp.ndarray dw_yh_out = _empty_like(w_yh)
    cdef cnp.ndarray db_h_out = _empty_like(b_h), db_y_out = _empty_like(b_y)
    cdef cnp.ndarray w_hh_t = _scratch(own_products or d.packed or d.team, w_hh)
    cdef ElmanBuffers b = _seed_buffers(x, h0, w_hx, w_hh, b_h)
    b.w_yh, b.b_y, b.labels = _ptr(w_yh), _ptr(b_y), <const Py_ssize_t *>_ptr(labels)
    b.h, b.y, b.w_hh_t = _ptr(h_out), _ptr(logits), _ptr(w_hh_t)
    b.dh, b.dz = _ptr(dh), _ptr(dh)            # dH is overwritten with dZ
    b.dx, b.dh0, b.dw_hx, b.dw_hh, b.db_h = (_ptr(dx_out), _ptr(dh0_out), _ptr(dw_hx_out),
                                             _ptr(dw_hh_out), _ptr(db_h_out))
    b.dw_yh, b.db_y = _ptr(dw_yh_out), _ptr(db_y_out)
    _run(_loss[float], _loss[double], &d, &b)
    return (b.loss, h_out, dx_out, dh0_out, dw_hx_out, dw_hh_out, db_h_out, dw_yh_out,
            db_y_out)


def layer_forward(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray w_ih not None,
                  cnp.ndarray w_hh not None, cnp.ndarray bias not None, cnp.ndarray lengths,
                  bint reverse, int activation, bint own_products):
    """One direction of one ``nn.RNN`` layer; returns its states ``(m, T, n_h)``.

    ``x (m*T, n_in)`` batch-major rows, ``h0 (m, n_h)``, ``bias (n_h,)`` (the
    sum of both biases), ``lengths`` an intp ``(m,)`` array or None,
    ``activation`` an :class:`Activation` code.
    """
    cdef int n_batch = <int>cnp.PyArray_DIMS(h0)[0], n_hidden = <int>cnp.PyArray_DIMS(h0)[1]
    cdef int n_input = <int>cnp.PyArray_DIMS(w_ih)[1]
    cdef int n_steps = <int>(cnp.PyArray_SIZE(x) // n_batch // n_input)
    cdef Dims d = _dims(h0, n_batch, n_steps, n_input, n_hidden)
    d.x_mode, d.activation, d.own_products, d.reverse = X_ROWS, activation, own_products, reverse
    d.lengths = <const Py_ssize_t *>_ptr(lengths)
    d.packed = not own_products and _plan_packed(&d, d.n_hidden, d.n_hidden)
    d.team = 0 if own_products else _plan_team(&d)
    cdef cnp.ndarray h_out = _empty3(n_batch, n_steps, n_hidden, cnp.PyArray_TYPE(h0))
    cdef cnp.ndarray w_hh_t = _scratch(own_products or d.packed or d.team, w_hh)
    cdef ElmanBuffers b = _seed_buffers(x, h0, w_ih, w_hh, bias)
    b.h, b.w_hh_t = _ptr(h_out), _ptr(w_hh_t)
    _run(_layer_forward[float], _layer_forward[double], &d, &b)
    return h_out


def layer_backward(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray h not None,
                   cnp.ndarray dh not None, cnp.ndarray grad_h_n not None,
                   cnp.ndarray w_ih not None, cnp.ndarray w_hh not None, cnp.ndarray lengths,
                   bint reverse, int activation, bint own_products):
    """BPTT of one direction of one layer; returns ``(dx, dh0, dW_ih, dW_hh, db)``.

    ``dh (m, T, n_h)`` is the gradient of the outputs and is overwritten (with
    dZ); ``grad_h_n (m, n_h)`` that of the final state.  ``dx`` is
    ``(m*T, n_in)`` like ``x``; ``db (n_h,)`` is the gradient of either bias.
    """
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(h)
    cdef Dims d = _dims(h0, <int>dims[0], <int>dims[1], <int>cnp.PyArray_DIMS(w_ih)[1],
                        <int>dims[2])
    d.x_mode, d.activation, d.own_products, d.reverse = X_ROWS, activation, own_products, reverse
    d.lengths = <const Py_ssize_t *>_ptr(lengths)
    d.packed = not own_products and _plan_packed(&d, d.n_hidden, d.n_hidden)
    d.team = 0 if own_products else _plan_team(&d)
    cdef cnp.npy_intp n_bias = d.n_hidden
    cdef cnp.ndarray dx_out = _empty_like(x)
    cdef cnp.ndarray dh0_out = cnp.PyArray_NewCopy(grad_h_n, cnp.NPY_CORDER)  # G on entry
    cdef cnp.ndarray dw_ih_out = _empty_like(w_ih), dw_hh_out = _empty_like(w_hh)
    cdef cnp.ndarray db_out = cnp.PyArray_EMPTY(1, &n_bias, cnp.PyArray_TYPE(h0), 0)
    cdef cnp.ndarray carry = _empty_like(h0)
    cdef ElmanBuffers b = _seed_buffers(x, h0, w_ih, w_hh, None)
    b.h, b.dh, b.dz, b.carry = _ptr(h), _ptr(dh), _ptr(dh), _ptr(carry)   # dh becomes dZ
    b.dx, b.dh0, b.dw_hx, b.dw_hh, b.db_h = (_ptr(dx_out), _ptr(dh0_out), _ptr(dw_ih_out),
                                             _ptr(dw_hh_out), _ptr(db_out))
    _run(_backward[float], _backward[double], &d, &b)
    return dx_out, dh0_out, dw_ih_out, dw_hh_out, db_out
