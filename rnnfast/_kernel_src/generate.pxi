# Text generation with RNNModel (any cell, any number of layers): the whole
# sampling loop (step, read-out, temperature, top-k, top-p, the draw, feed
# back) of n steps for B streams in one call, the GIL released.
#
# A step runs every layer (layer 0 reads the last character, a row of its
# W_ih^T; layer l > 0 the new state of layer l - 1) with the products and the
# cell math of the layer kernels (torch's equations: rf_lstm_cell,
# rf_gru_cell, the Elman activation), then the read-out of the last layer.
# The fused one-layer tanh RNN is one Elman layer (W_ih = Whx, b_ih + b_hh = bh).
#
# Its NumPy twins are rnnfast.reference.generate_steps (the fused model) and
# generate_stack_steps (any stack; the rule of one draw:
# rnnfast.reference.pick_index); they consume the same uniforms and pick the
# same characters.  The rule of a draw, per stream, from the float64 logits z:
#   - no input yet (the stream's last character is -1): the draw below with
#     every weight 1, i.e. uniform over the vocabulary;
#   - temperature 0: the first index of max z;
#   - else w_i = exp((z_i - max z) / temperature)          (libm exp, float64)
#     top_k: keep the k largest w (ties: lower index first), zero the rest;
#     top_p: taking the largest remaining w first (ties: lower index first),
#     keep the shortest run whose running sum reaches top_p * (the sum of the
#     w, index order); zero the rest (if rounding leaves it short, keep all);
#     the draw: the first index i whose running sum of w (in index order)
#     exceeds u * (the sum of w in index order); if rounding leaves none, the
#     last index with w > 0.

from libc.math cimport exp


cdef enum:
    # the cells of the compiled loop (Dims.activation is the Elman cell's activation)
    GEN_ELMAN = 0               # h = f(x W_ih^T + h_prev W_hh^T + b_ih + b_hh)
    GEN_LSTM = 1                # gates i, f, g, o (rf_lstm_cell)
    GEN_GRU = 2                 # gates r, z, n (rf_gru_cell)


cdef struct GenerateBuffers:
    # B streams, V characters, L layers of H units, G gates (Elman 1, LSTM 4, GRU 3)
    # (Dims: n_batch, n_output = V, n_hidden, activation)
    void *h                     # (L, B, H) the states, updated in place
    void *c                     # (L, B, H) the LSTM's cells, updated in place; else NULL
    Py_ssize_t *last            # (B,) each stream's last character (-1: none yet), updated
    const double *uniforms      # (n, B) one uniform in [0, 1) per draw
    Py_ssize_t *chosen          # (n, B) out: the characters drawn
    const void *w_x             # (V, G H) layer 0's W_ih^T: row c is character c's x W_ih^T
    const void **w_ih_t         # (L,) layer l's W_ih^T (H, G H), l >= 1 (entry 0 unused)
    const void **w_hh_t         # (L,) layer l's W_hh^T (H, G H)
    const void **bias           # (L,) (G H,) b_ih + b_hh; the GRU's (2, 3H): b_ih, b_hh
    const void *w_yh_t          # (H, V) Wyh^T
    const void *b_y             # (V,)
    void *a                     # (B, G H) scratch: the pre-activations (the GRU's input part)
    void *gh                    # (B, G H) scratch, GRU: the recurrent part
    void *s                     # (B, H) scratch: the new cells (LSTM), states (GRU)
    void *hn                    # (H,) scratch, GRU: h_prev W_hn^T + b_hn
    void *logits                # (B, V) scratch
    double *weights             # (V,) scratch: the weights of one draw
    Py_ssize_t *taken           # (V,) scratch: which weights are kept
    int cell                    # GEN_ELMAN, GEN_LSTM or GEN_GRU
    int n_layers                # L
    double temperature          # >= 0; 0 is greedy
    Py_ssize_t top_k            # 0: off
    double top_p                # >= 1: off


# The products' LIBXSMM kernels, dispatched once per call where the product policy
# plans PRODUCT_PACKED (NULL: _rows_times, BLAS by the plan).  Every weight is laid out
# transposed, (n_in, n_out) row-major, so that each product is V W, LIBXSMM's "NN".
cdef struct GenerateProducts:
    void *gates_add             # A += H W^T             (B, G H) = (B, H) (H, G H)
    void *gates_set             # A = H W^T
    void *read_out              # logits = H Wyh^T       (B, V) = (B, H) (H, V)


# libm's scalar exp, called through a pointer so that the compiler cannot replace the
# loop by a vectorised exp (libmvec), whose last bits differ from math.exp's, the twin's.
cdef double (*_scalar_exp)(double) noexcept nogil
_scalar_exp = exp


cdef Py_ssize_t _next_largest(const double *w, Py_ssize_t n,
                              const Py_ssize_t *taken) noexcept nogil:
    """The index of the largest w not yet taken, the lower index on ties; -1 if none > 0."""
    cdef Py_ssize_t i, best = -1
    cdef double top = 0
    for i in range(n):
        if not taken[i] and w[i] > top:
            top, best = w[i], i
    return best


cdef void _keep_largest(double *w, Py_ssize_t n, Py_ssize_t top_k, double top_p,
                        Py_ssize_t *taken) noexcept nogil:
    """Zero every weight but the top_k largest (0: all), then, of those, every weight
    outside the shortest run of largest ones whose sum reaches top_p * their sum (index
    order; top_p >= 1: all); largest first, ties lower index first."""
    cdef Py_ssize_t i, j
    cdef double total = 0, running = 0
    if 0 < top_k < n:
        for i in range(n):
            taken[i] = 0
        for j in range(top_k):
            i = _next_largest(w, n, taken)
            if i < 0:
                break
            taken[i] = 1
        for i in range(n):
            if not taken[i]:
                w[i] = 0
    if top_p < 1:
        for i in range(n):
            total += w[i]
            taken[i] = 0
        while True:
            i = _next_largest(w, n, taken)
            if i < 0:
                return                  # rounding: every positive weight stays
            taken[i] = 1
            running += w[i]
            if running >= top_p * total:
                break
        for i in range(n):
            if not taken[i]:
                w[i] = 0


cdef Py_ssize_t _draw(const double *w, Py_ssize_t n, double u) noexcept nogil:
    """The first i whose running sum of w exceeds u * sum(w); else the last i with w_i > 0."""
    cdef Py_ssize_t i, last_positive = n - 1
    cdef double total = 0, running = 0
    for i in range(n):
        total += w[i]
    cdef double threshold = u * total
    for i in range(n):
        if w[i] > 0:
            running += w[i]
            last_positive = i
            if running > threshold:
                return i
    return last_positive


cdef Py_ssize_t _pick(const floating *logits, const floating *b_y, Py_ssize_t n, double u,
                      const GenerateBuffers *b) noexcept nogil:
    """One draw from logits + b_y (n,) by the rule at the top of this file."""
    cdef double *w = b.weights
    cdef Py_ssize_t i, best = 0
    cdef double top
    for i in range(n):
        # the read-out's bias added in the model's dtype, as logits = h Wyh^T + by
        w[i] = <double>(<floating>(logits[i] + b_y[i]))
    top = w[0]
    for i in range(1, n):
        if w[i] > top:
            top, best = w[i], i
    if b.temperature == 0:
        return best
    for i in range(n):
        # z - max <= 0: a tiny temperature sends the rest to -inf, exp to 0
        w[i] = _scalar_exp((w[i] - top) / b.temperature)
    if (0 < b.top_k < n) or b.top_p < 1:
        _keep_largest(w, n, b.top_k, b.top_p, b.taken)
    return _draw(w, n, u)


cdef inline int _gates(int cell) noexcept nogil:
    return 4 if cell == GEN_LSTM else 3 if cell == GEN_GRU else 1


cdef inline void _times(const void *kernel, const floating *v, const floating *w_t,
                        floating *out, bint accumulate, int n_rows, int n_k,
                        int n_j) noexcept nogil:
    """out (+)= V W_t for row-major V (n_rows, n_k), W_t (n_k, n_j), out (n_rows, n_j), all
    contiguous: through ``kernel`` (LIBXSMM's, of that shape) when there is one, else
    _rows_times (gemv for one row)."""
    if kernel != NULL:
        _packed_times(kernel, v, w_t, out)
    else:
        _rows_times(v, n_k, w_t, False, out, n_j, 1 if accumulate else 0, n_rows, n_k, n_j)


cdef void _stack_step(const Dims *d, const GenerateBuffers *b, const GenerateProducts *k,
                      floating *h) noexcept nogil:
    """One step of every layer for the d.n_batch streams: layer 0 reads each stream's last
    character, layer l > 0 the new state of layer l - 1; the states ``h`` (L, B, H) and
    cells are updated in place.  The cell math is the layer kernels' (elman.pxi,
    gated.pxi) for one step: torch's equations."""
    cdef int n_batch = d.n_batch, H = d.n_hidden, G = _gates(b.cell) * d.n_hidden
    cdef int cell = b.cell
    cdef floating *c = <floating *>b.c
    cdef floating *a = <floating *>b.a
    cdef floating *gh = <floating *>b.gh
    cdef floating *s = <floating *>b.s
    cdef floating *hn = <floating *>b.hn
    cdef const floating *w_x = <const floating *>b.w_x
    cdef const floating *w_hh_t
    cdef const floating *bias
    cdef floating *h_l
    cdef floating *c_l = NULL
    cdef Py_ssize_t l, i, state = <Py_ssize_t>n_batch * H       # one layer's state block
    for l in range(b.n_layers):
        h_l = h + l * state
        if c != NULL:
            c_l = c + l * state
        w_hh_t = <const floating *>b.w_hh_t[l]
        bias = <const floating *>b.bias[l]
        if l == 0:
            # A_i = x_i W_ih^T = row last_i of W_ih^T (the one-hot product)
            for i in range(n_batch):
                _copy_row(a + i * G, w_x + b.last[i] * G, G)
        else:
            # A = H_{l-1} W_ih^T           (B, G H) = (B, H) (H, G H)
            _times(k.gates_set, h_l - state, <const floating *>b.w_ih_t[l], a, False,
                   n_batch, H, G)
        if cell == GEN_GRU:
            # GH = H_l W_hh^T              (B, 3H) = (B, H) (H, 3H), kept apart (the n gate)
            _times(k.gates_set, h_l, w_hh_t, gh, False, n_batch, H, G)
        else:
            # A += H_l W_hh^T              (B, G H) = (B, H) (H, G H)
            _times(k.gates_add, h_l, w_hh_t, a, True, n_batch, H, G)
        for i in range(n_batch):
            if cell == GEN_ELMAN:
                # h = f(A + b_ih + b_hh)
                _bias_act(a + i * G, bias, H, d.activation)
                _copy_row(h_l + i * H, a + i * G, H)
            elif cell == GEN_LSTM:
                # c = f c_prev + i g, h = o tanh(c)   (into s, then c_l: the cell reads c_prev)
                if floating is float:
                    rf_lstm_cell_f(a + i * G, bias, c_l + i * H, s + i * H, h_l + i * H, H, H)
                else:
                    rf_lstm_cell_d(a + i * G, bias, c_l + i * H, s + i * H, h_l + i * H, H, H)
                _copy_row(c_l + i * H, s + i * H, H)
            else:
                # n = tanh(A_n + b_in + r (GH_n + b_hn)), h = (1 - z) n + z h_prev   (into s)
                if floating is float:
                    rf_gru_cell_f(a + i * G, gh + i * G, bias, bias + G, h_l + i * H, hn,
                                  s + i * H, H, H)
                else:
                    rf_gru_cell_d(a + i * G, gh + i * G, bias, bias + G, h_l + i * H, hn,
                                  s + i * H, H, H)
                _copy_row(h_l + i * H, s + i * H, H)


cdef void _generate(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """d.n_steps draws for each of the d.n_batch streams (see the top of this file)."""
    cdef GenerateBuffers *b = <GenerateBuffers *>buffers
    cdef floating *h = <floating *>b.h
    cdef floating *logits = <floating *>b.logits
    cdef const floating *w_yh_t = <const floating *>b.w_yh_t
    cdef const floating *b_y = <const floating *>b.b_y
    cdef int n_batch = d.n_batch, H = d.n_hidden, n_vocab = d.n_output
    cdef int G = _gates(b.cell) * d.n_hidden
    cdef floating *top = h + <Py_ssize_t>(b.n_layers - 1) * n_batch * H
    cdef Py_ssize_t t, i, j, c
    cdef double u
    cdef GenerateProducts k
    k.gates_add = k.gates_set = k.read_out = NULL
    if _plan_packed(d, G, H):
        k.gates_add = _packed_kernel(w_yh_t, n_batch, G, H, H, G, G, True)
        k.gates_set = _packed_kernel(w_yh_t, n_batch, G, H, H, G, G, False)
    if _plan_packed(d, n_vocab, H):
        k.read_out = _packed_kernel(w_yh_t, n_batch, n_vocab, H, H, n_vocab, n_vocab, False)
    for t in range(d.n_steps):
        if b.last[0] < 0:
            # no input yet (no prime): a uniform draw, the state unchanged
            for i in range(n_batch):
                for j in range(n_vocab):
                    b.weights[j] = 1
                c = _draw(b.weights, n_vocab, b.uniforms[t * n_batch + i])
                b.chosen[t * n_batch + i] = c
                b.last[i] = c
            continue
        _stack_step(d, b, &k, h)
        # logits = H_top Wyh^T             (B, V) = (B, H) (H, V); by is added in _pick
        _times(k.read_out, top, w_yh_t, logits, False, n_batch, H, n_vocab)
        for i in range(n_batch):
            u = b.uniforms[t * n_batch + i]
            c = _pick(logits + i * n_vocab, b_y, n_vocab, u, b)
            b.chosen[t * n_batch + i] = c
            b.last[i] = c


_GEN_CELLS = {"rnn": GEN_ELMAN, "lstm": GEN_LSTM, "gru": GEN_GRU}


cdef cnp.ndarray _pointers(arrays, Py_ssize_t n, Py_ssize_t skip):
    """The data pointers of ``arrays`` as an (n,) uintp array, after ``skip`` zeros."""
    cdef cnp.ndarray table = np.zeros(n, dtype=np.uintp)
    cdef size_t *p = <size_t *>cnp.PyArray_DATA(table)
    cdef Py_ssize_t k = skip
    for a in arrays:
        p[k] = <size_t>_ptr(a)
        k += 1
    return table


cdef cnp.ndarray _generate_stack(int cell, int activation, cnp.ndarray h, cnp.ndarray c,
                                 cnp.ndarray last, cnp.ndarray uniforms, cnp.ndarray w_x,
                                 w_ih_t, w_hh_t, biases, cnp.ndarray w_yh_t, cnp.ndarray b_y,
                                 double temperature, Py_ssize_t top_k, double top_p):
    """Allocate the outputs and scratch of ``_generate`` and run it (h: (L, B, H))."""
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(h)
    cdef int n_layers = <int>dims[0], n_batch = <int>dims[1], n_hidden = <int>dims[2]
    cdef int n_vocab = <int>cnp.PyArray_DIMS(w_yh_t)[1]
    cdef int n_steps = <int>cnp.PyArray_DIMS(uniforms)[0]
    cdef int type_num = cnp.PyArray_TYPE(h)
    cdef Py_ssize_t G = _gates(cell) * n_hidden
    cdef Dims d = _dims(h, n_batch, n_steps, n_vocab, n_hidden)
    d.n_output, d.activation = n_vocab, activation
    cdef cnp.npy_intp shape[2]
    shape[0], shape[1] = n_steps, n_batch
    cdef cnp.ndarray chosen = cnp.PyArray_EMPTY(2, shape, cnp.NPY_INTP, 0)
    cdef cnp.ndarray a = _empty3(1, n_batch, G, type_num)
    cdef cnp.ndarray gh = _empty3(1, n_batch if cell == GEN_GRU else 1, G, type_num)
    cdef cnp.ndarray s = _empty3(1, n_batch, n_hidden, type_num)
    cdef cnp.ndarray hn = _empty3(1, 1, n_hidden, type_num)
    cdef cnp.ndarray logits = _empty3(1, n_batch, n_vocab, type_num)
    shape[0] = n_vocab
    cdef cnp.ndarray weights = cnp.PyArray_EMPTY(1, shape, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray taken = cnp.PyArray_EMPTY(1, shape, cnp.NPY_INTP, 0)
    cdef cnp.ndarray w_ih_table = _pointers(w_ih_t, n_layers, 1)
    cdef cnp.ndarray w_hh_table = _pointers(w_hh_t, n_layers, 0)
    cdef cnp.ndarray bias_table = _pointers(biases, n_layers, 0)
    cdef GenerateBuffers b
    memset(&b, 0, sizeof(GenerateBuffers))
    b.h, b.c, b.last = _ptr(h), _ptr(c), <Py_ssize_t *>_ptr(last)
    b.uniforms, b.chosen = <const double *>_ptr(uniforms), <Py_ssize_t *>_ptr(chosen)
    b.w_x, b.w_yh_t, b.b_y = _ptr(w_x), _ptr(w_yh_t), _ptr(b_y)
    b.w_ih_t = <const void **>_ptr(w_ih_table)
    b.w_hh_t = <const void **>_ptr(w_hh_table)
    b.bias = <const void **>_ptr(bias_table)
    b.a, b.gh, b.s, b.hn, b.logits = _ptr(a), _ptr(gh), _ptr(s), _ptr(hn), _ptr(logits)
    b.weights, b.taken = <double *>_ptr(weights), <Py_ssize_t *>_ptr(taken)
    b.cell, b.n_layers = cell, n_layers
    b.temperature, b.top_k, b.top_p = temperature, top_k, top_p
    if n_steps > 0:
        _run(_generate[float], _generate[double], &d, &b)
    return chosen


def generate(cnp.ndarray h not None, cnp.ndarray last not None, cnp.ndarray uniforms not None,
             cnp.ndarray w_xh not None, cnp.ndarray w_hh not None, cnp.ndarray w_yh not None,
             cnp.ndarray b_h not None, cnp.ndarray b_y not None, double temperature,
             Py_ssize_t top_k, double top_p):
    """``uniforms.shape[0]`` draws for each stream of ``h``; returns ``chosen (n, B)`` intp.

    The fused one-layer tanh RNN.  ``h (B, H)`` and ``last (B,)`` intp (each
    stream's last character; all -1: none yet, the first draw is uniform) are
    updated in place to carry the state into the next call.  ``uniforms (n,
    B)`` float64 in [0, 1); ``w_xh (V, H)`` (Whx^T), ``w_hh (H, H)``, ``w_yh
    (V, H)``, ``b_h (H,)``, ``b_y (V,)`` of ``h``'s dtype, C-contiguous;
    ``top_k`` 0 is off, ``top_p`` >= 1 is off.  The wrapper (rnnfast.text) has
    checked every shape, dtype, index and option.
    """
    # one layer: (1, B, H), a view, so that h is updated in place
    cdef cnp.ndarray states = h.reshape(1, h.shape[0], h.shape[1])
    return _generate_stack(GEN_ELMAN, TANH, states, None, last, uniforms, w_xh, (),
                           (np.ascontiguousarray(w_hh.T),), (b_h,),
                           np.ascontiguousarray(w_yh.T), b_y, temperature, top_k, top_p)


def generate_layers(str cell not None, int activation, cnp.ndarray h not None, cnp.ndarray c,
                    cnp.ndarray last not None, cnp.ndarray uniforms not None,
                    cnp.ndarray w_x not None, w_ih_t not None, w_hh_t not None,
                    biases not None, cnp.ndarray w_yh_t not None, cnp.ndarray b_y not None,
                    double temperature, Py_ssize_t top_k, double top_p):
    """``uniforms.shape[0]`` draws for each stream of a stack of layers; returns
    ``chosen (n, B)`` intp.

    ``cell`` is ``"rnn"`` (of ``activation``, an :class:`Activation`),
    ``"lstm"`` or ``"gru"``; L layers of H units, G gates (1, 4, 3).  ``h (L,
    B, H)``, ``c (L, B, H)`` (the LSTM's cells; else None) and ``last (B,)``
    intp (all -1: none yet, the first draw is uniform) are updated in place to
    carry the state into the next call.  ``uniforms (n, B)`` float64 in [0,
    1).  The weights transposed: ``w_x (V, G H)`` is layer 0's ``W_ih^T``,
    ``w_ih_t`` the L - 1 ``W_ih^T (H, G H)`` of layers 1 on, ``w_hh_t`` the L
    ``W_hh^T (H, G H)``, ``w_yh_t (H, V)``; ``biases`` the L ``b_ih + b_hh (G
    H,)``, or for the GRU ``(2, 3H)``, ``b_ih`` and ``b_hh``; ``b_y (V,)``: all
    of ``h``'s dtype, C-contiguous.  ``top_k`` 0 is off, ``top_p`` >= 1 is
    off.  The wrapper (rnnfast.text) has checked every shape, dtype, index and
    option.
    """
    if cell not in _GEN_CELLS:
        raise ValueError(f"cell must be 'rnn', 'lstm' or 'gru'; got {cell!r}")
    return _generate_stack(_GEN_CELLS[cell], activation, h, c, last, uniforms, w_x, w_ih_t,
                           w_hh_t, biases, w_yh_t, b_y, temperature, top_k, top_p)
