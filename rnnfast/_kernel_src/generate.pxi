# Text generation with the fused one-layer tanh RNN of RNNModel: the whole
# sampling loop (step, read-out, temperature, top-k, top-p, the draw, feed
# back) of n steps for B streams in one call, the GIL released.
#
# Its NumPy twin is rnnfast.reference.generate_steps (the rule of one draw:
# rnnfast.reference.pick_index); both consume the same uniforms and pick the
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


cdef struct GenerateBuffers:
    # B streams, V characters, H hidden units (Dims: n_batch, n_input = n_output, n_hidden).
    void *h                     # (B, H) the state, updated in place
    Py_ssize_t *last            # (B,) each stream's last character (-1: none yet), updated
    const double *uniforms      # (n, B) one uniform in [0, 1) per draw
    Py_ssize_t *chosen          # (n, B) out: the characters drawn
    const void *w_xh            # (V, H) Whx^T: row c is the input column of character c
    const void *w_hh            # (H, H)
    const void *w_yh            # (V, H)
    const void *b_h             # (H,)
    const void *b_y             # (V,)
    void *z                     # (B, H) scratch: the pre-activations
    void *logits                # (B, V) scratch
    double *weights             # (V,) scratch: the weights of one draw
    Py_ssize_t *taken           # (V,) scratch: which weights are kept
    double temperature          # >= 0; 0 is greedy
    Py_ssize_t top_k            # 0: off
    double top_p                # >= 1: off


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


cdef void _generate(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """d.n_steps draws for each of the d.n_batch streams (see the top of this file)."""
    cdef GenerateBuffers *b = <GenerateBuffers *>buffers
    cdef floating *h = <floating *>b.h
    cdef floating *z = <floating *>b.z
    cdef floating *logits = <floating *>b.logits
    cdef const floating *w_xh = <const floating *>b.w_xh
    cdef const floating *w_hh = <const floating *>b.w_hh
    cdef const floating *w_yh = <const floating *>b.w_yh
    cdef const floating *b_h = <const floating *>b.b_h
    cdef const floating *b_y = <const floating *>b.b_y
    cdef int n_batch = d.n_batch, n_hidden = d.n_hidden, n_vocab = d.n_output
    cdef Py_ssize_t t, i, j, c
    cdef double u
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
        # Z = H Whh^T                      (B, H) = (B, H) (H, H), gemv for one stream
        _rows_times(h, n_hidden, w_hh, True, z, n_hidden, 0, n_batch, n_hidden, n_hidden)
        for i in range(n_batch):
            # h_i = tanh(Z_i + Whx[:, last_i] + bh)
            c = b.last[i]
            for j in range(n_hidden):
                z[i * n_hidden + j] += w_xh[c * n_hidden + j]
            _bias_act(z + i * n_hidden, b_h, n_hidden, TANH)
        _copy_row(h, z, <Py_ssize_t>n_batch * n_hidden)
        # logits = H Wyh^T                 (B, V) = (B, H) (H, V); by is added in _pick
        _rows_times(h, n_hidden, w_yh, True, logits, n_vocab, 0, n_batch, n_hidden, n_vocab)
        for i in range(n_batch):
            u = b.uniforms[t * n_batch + i]
            c = _pick(logits + i * n_vocab, b_y, n_vocab, u, b)
            b.chosen[t * n_batch + i] = c
            b.last[i] = c


def generate(cnp.ndarray h not None, cnp.ndarray last not None, cnp.ndarray uniforms not None,
             cnp.ndarray w_xh not None, cnp.ndarray w_hh not None, cnp.ndarray w_yh not None,
             cnp.ndarray b_h not None, cnp.ndarray b_y not None, double temperature,
             Py_ssize_t top_k, double top_p):
    """``uniforms.shape[0]`` draws for each stream of ``h``; returns ``chosen (n, B)`` intp.

    ``h (B, H)`` and ``last (B,)`` intp (each stream's last character; all -1:
    none yet, the first draw is uniform) are updated in place to carry the
    state into the next call.  ``uniforms (n, B)`` float64 in [0, 1);
    ``w_xh (V, H)`` (Whx^T), ``w_hh (H, H)``, ``w_yh (V, H)``, ``b_h (H,)``,
    ``b_y (V,)`` of ``h``'s dtype, C-contiguous; ``top_k`` 0 is off, ``top_p``
    >= 1 is off.  The wrapper (rnnfast.text) has checked every shape, dtype,
    index and option.
    """
    cdef int n_batch = <int>cnp.PyArray_DIMS(h)[0], n_hidden = <int>cnp.PyArray_DIMS(h)[1]
    cdef int n_vocab = <int>cnp.PyArray_DIMS(w_yh)[0]
    cdef int n_steps = <int>cnp.PyArray_DIMS(uniforms)[0]
    cdef Dims d = _dims(h, n_batch, n_steps, n_vocab, n_hidden)
    d.n_output = n_vocab
    cdef cnp.npy_intp shape[2]
    shape[0], shape[1] = n_steps, n_batch
    cdef cnp.ndarray chosen = cnp.PyArray_EMPTY(2, shape, cnp.NPY_INTP, 0)
    cdef cnp.ndarray z = _empty_like(h)
    shape[0], shape[1] = n_batch, n_vocab
    cdef cnp.ndarray logits = cnp.PyArray_EMPTY(2, shape, cnp.PyArray_TYPE(h), 0)
    shape[0] = n_vocab
    cdef cnp.ndarray weights = cnp.PyArray_EMPTY(1, shape, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray taken = cnp.PyArray_EMPTY(1, shape, cnp.NPY_INTP, 0)
    cdef GenerateBuffers b
    b.h, b.last, b.uniforms = _ptr(h), <Py_ssize_t *>_ptr(last), <const double *>_ptr(uniforms)
    b.chosen = <Py_ssize_t *>_ptr(chosen)
    b.w_xh, b.w_hh, b.w_yh, b.b_h, b.b_y = _ptr(w_xh), _ptr(w_hh), _ptr(w_yh), _ptr(b_h), _ptr(b_y)
    b.z, b.logits = _ptr(z), _ptr(logits)
    b.weights, b.taken = <double *>_ptr(weights), <Py_ssize_t *>_ptr(taken)
    b.temperature, b.top_k, b.top_p = temperature, top_k, top_p
    if n_steps > 0:
        _run(_generate[float], _generate[double], &d, &b)
    return chosen
