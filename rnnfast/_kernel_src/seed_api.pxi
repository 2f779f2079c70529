# -- the seed API's model and cache ------------------------------------------
# The objects behind functional.py's rnn_forward / rnn_backward, here so that
# the common case (fast_forward, fast_backward below) builds them at C speed.


cdef class Model:
    """Validated inputs of one forward pass of the seed model, in the kernels' layout.

    ``x`` is in the form ``x_mode`` names (see the top of this file): the
    seed's ``x`` (n_x, m, T) or (n_x, m) (X_COLUMNS, read as an ``(n_x, m*T)``
    matrix), batch-first rows ``(m*T, n_x)`` (X_ROWS) or class indices
    ``(m*T,)`` (X_INDEX).  ``h0`` is ``(m, n_h)``.  Every array is C-contiguous
    and of one float dtype; the biases are ``(n, 1)`` or ``(n,)`` (the kernels
    read n values either way).  The constructor trusts its arguments: build it
    after validating (``functional._model``, ``model.RNNModel``).
    """

    cdef readonly int x_mode
    cdef readonly cnp.ndarray x, h0, w_hx, w_hh, w_yh, b_h, b_y
    cdef readonly Py_ssize_t n_x, n_h, n_y, m, n_steps

    def __init__(self, cnp.ndarray x not None, cnp.ndarray h0 not None,
                 cnp.ndarray w_hx not None, cnp.ndarray w_hh not None,
                 cnp.ndarray w_yh not None, cnp.ndarray b_h not None,
                 cnp.ndarray b_y not None, Py_ssize_t n_steps, int x_mode=X_COLUMNS):
        self._set(x_mode, x, h0, w_hx, w_hh, w_yh, b_h, b_y, n_steps)

    cdef void _set(self, int x_mode, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray w_hx,
                   cnp.ndarray w_hh, cnp.ndarray w_yh, cnp.ndarray b_h, cnp.ndarray b_y,
                   Py_ssize_t n_steps) noexcept:
        self.x_mode, self.x, self.h0 = x_mode, x, h0
        self.w_hx, self.w_hh, self.w_yh, self.b_h, self.b_y = w_hx, w_hh, w_yh, b_h, b_y
        self.n_h, self.n_x = cnp.PyArray_DIMS(w_hx)[0], cnp.PyArray_DIMS(w_hx)[1]
        self.n_y = cnp.PyArray_DIMS(w_yh)[0]
        self.m = cnp.PyArray_DIMS(h0)[0]
        self.n_steps = n_steps

    @property
    def dtype(self):
        """The float dtype of every array."""
        return self.h0.dtype

    def astype(self, dtype):
        """This model with every array in ``dtype`` (itself when already so)."""
        if dtype == self.dtype:
            return self
        x = self.x if self.x_mode == X_INDEX else self.x.astype(dtype)
        return Model(x, *(a.astype(dtype) for a in (self.h0, self.w_hx, self.w_hh,
                                                     self.w_yh, self.b_h, self.b_y)),
                     self.n_steps, self.x_mode)

    def own_products(self):
        """Whether the recurrent products use the hand-written loops rather than BLAS."""
        return use_own_products(self.m, self.n_h)

    cdef tuple _run_forward(self, bint softmax):
        return _seed_forward(self.x_mode, self.x, self.h0, self.w_hx, self.w_hh, self.w_yh,
                             self.b_h, self.b_y, use_own_products(self.m, self.n_h), softmax)

    cdef tuple _run_backward(self, cnp.ndarray h, cnp.ndarray dh, bint dh_is_scratch):
        return _seed_backward(self.x_mode, self.x, self.h0, h, dh, self.w_hx, self.w_hh,
                              self.b_h, dh_is_scratch, use_own_products(self.m, self.n_h))

    def run_forward(self, softmax=True):
        """Run the forward kernel; return ``(H (m,T,n_h), Y (m,T,n_y))``.

        ``Y`` holds the softmax outputs, or the logits when ``softmax`` is false.
        """
        return self._run_forward(softmax)

    def run_loss(self, cnp.ndarray labels not None):
        """Forward, mean cross-entropy against ``labels`` (intp, ``(m*T,)``), backward.

        Returns ``(loss, H, dx, dh0 (m, n_h), dWhx, dWhh, dbh, dWyh, dby)`` with
        ``dx`` shaped like ``x`` (None for class indices) and biases like the
        model's.
        """
        return loss(self.x_mode, self.x, self.h0, labels, self.w_hx, self.w_hh, self.w_yh,
                    self.b_h, self.b_y, use_own_products(self.m, self.n_h))

    def run_backward(self, cnp.ndarray H not None, cnp.ndarray dH not None, bint dH_is_scratch):
        """Run the BPTT kernel on batch-major ``H`` and ``dH`` (both ``(m, T, n_h)``).

        With ``dH_is_scratch`` (``dH`` is a private copy) the kernel overwrites
        ``dH`` with its intermediate ``dZ`` instead of allocating another array.
        Returns ``(dx, dh0 (m, n_h), dWhx, dWhh, dbh)``, ``dx`` shaped like ``x``
        (None for class indices).
        """
        return self._run_backward(H, dH, dH_is_scratch)


cdef class ForwardCache:
    """The per-step caches of :func:`rnnfast.rnn_forward`, without storing anything per step.

    Behaves like the reference's list of step caches: ``len(cache)`` is the
    number of steps and ``cache[t]`` is ``(h_next, h_prev, xt, parameters)``,
    built on demand as views of the arrays computed by the forward pass.
    Iterable, indexable by integers and slices, and a
    ``collections.abc.Sequence``.
    """

    cdef readonly Model model           # validated, converted inputs
    cdef readonly cnp.ndarray states    # hidden states, (m, T, n_h)
    cdef readonly object parameters     # the caller's dict, read again by rnn_backward

    def __init__(self, Model model not None, cnp.ndarray h not None, parameters):
        self.model, self.states, self.parameters = model, h, parameters

    def __len__(self):
        return self.model.n_steps

    def __getitem__(self, t):
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(len(self)))]
        cdef Py_ssize_t n_steps = self.model.n_steps
        try:
            t = operator.index(t)
        except TypeError:
            raise TypeError("ForwardCache indices must be integers or slices, "
                            f"not {type(t).__name__}") from None
        if not -n_steps <= t < n_steps:
            raise IndexError(f"step {t} out of range for {n_steps} steps")
        t %= n_steps
        model = self.model
        h_prev = model.h0.T if t == 0 else self.states[:, t - 1, :].T
        xt = model.x.reshape(model.n_x, model.m, n_steps)[:, :, t]
        return self.states[:, t, :].T, h_prev, xt, self.parameters

    def __repr__(self):
        m = self.model
        return (f"<ForwardCache of {m.n_steps} steps: n_x={m.n_x}, n_h={m.n_h}, "
                f"n_y={m.n_y}, m={m.m}, dtype={m.dtype}>")


Sequence.register(ForwardCache)


cdef inline bint _plain(object a, int type_num, int ndim) noexcept:
    """``a`` is an exact ndarray of type ``type_num``, native byte order, C-contiguous, ``ndim``-D."""
    return (cnp.PyArray_CheckExact(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == type_num
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
            and cnp.PyArray_NDIM(<cnp.ndarray>a) == ndim)


cdef Model _fast_model(x, h0, parameters, bint cell):
    """The seed API's common case, checked at C speed: a :class:`Model`, or None.

    When ``x``, ``h0`` and the five parameters are all C-contiguous ndarrays of
    one float dtype with consistent, non-zero shapes inside the BLAS limits,
    returns the model of the call (``h0`` copied to rows ``(m, n_h)``);
    otherwise None (the caller then validates fully and reports errors).
    """
    if type(parameters) is not dict or len(<dict>parameters) != 5:
        return None
    cdef dict p = <dict>parameters
    w_hx, w_hh, w_yh = p.get("Whx"), p.get("Whh"), p.get("Wyh")
    b_h, b_y = p.get("bh"), p.get("by")
    if not cnp.PyArray_CheckExact(x):
        return None
    cdef int type_num = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if type_num != cnp.NPY_FLOAT32 and type_num != cnp.NPY_FLOAT64:
        return None
    if not (_plain(x, type_num, 2 if cell else 3) and _plain(h0, type_num, 2)
            and _plain(w_hx, type_num, 2) and _plain(w_hh, type_num, 2)
            and _plain(w_yh, type_num, 2) and _plain(b_h, type_num, 2)
            and _plain(b_y, type_num, 2)):
        return None
    cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(<cnp.ndarray>x)
    cdef cnp.npy_intp n_x = xd[0], m = xd[1], n_steps = 1 if cell else xd[2]
    cdef cnp.npy_intp *yd = cnp.PyArray_DIMS(<cnp.ndarray>w_yh)
    cdef cnp.npy_intp n_y = yd[0], n_h = yd[1]
    cdef cnp.npy_intp *d
    cdef cnp.npy_intp limit = 2147483647
    if n_x == 0 or m == 0 or n_steps == 0 or n_h == 0 or n_y == 0:
        return None
    if (n_x > limit or n_h > limit or n_y > limit or m > limit // n_steps
            or n_h > limit // n_steps):
        return None
    d = cnp.PyArray_DIMS(<cnp.ndarray>w_hh)
    if d[0] != n_h or d[1] != n_h:
        return None
    d = cnp.PyArray_DIMS(<cnp.ndarray>w_hx)
    if d[0] != n_h or d[1] != n_x:
        return None
    d = cnp.PyArray_DIMS(<cnp.ndarray>h0)
    if d[0] != n_h or d[1] != m:
        return None
    d = cnp.PyArray_DIMS(<cnp.ndarray>b_h)
    if d[0] != n_h or d[1] != 1:
        return None
    d = cnp.PyArray_DIMS(<cnp.ndarray>b_y)
    if d[0] != n_y or d[1] != 1:
        return None
    # h0 (n_h, m) -> rows (m, n_h): the gather of one step
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = m, n_h
    cdef cnp.ndarray rows = cnp.PyArray_EMPTY(2, dims, type_num, 0)
    _gather(<cnp.ndarray>h0, rows, m, 1, n_h)
    cdef Model model = Model.__new__(Model)
    model._set(X_COLUMNS, <cnp.ndarray>x, rows, <cnp.ndarray>w_hx, <cnp.ndarray>w_hh,
               <cnp.ndarray>w_yh, <cnp.ndarray>b_h, <cnp.ndarray>b_y, n_steps)
    return model


def fast_model(x, h0, parameters, bint cell):
    """:func:`_fast_model` for Python: the call's :class:`Model`, or None."""
    return _fast_model(x, h0, parameters, cell)


cdef inline object _transposed(cnp.ndarray a, cnp.npy_intp p0, cnp.npy_intp p1,
                               cnp.npy_intp p2):
    """A view of the 3-D ``a`` with its axes permuted to (p0, p1, p2)."""
    cdef cnp.npy_intp order[3]
    cdef cnp.PyArray_Dims permute
    order[0], order[1], order[2] = p0, p1, p2
    permute.ptr, permute.len = order, 3
    return cnp.PyArray_Transpose(a, &permute)


cdef inline object _transposed2(cnp.ndarray a):
    """A view of the 2-D ``a``, transposed."""
    cdef cnp.npy_intp order[2]
    cdef cnp.PyArray_Dims permute
    order[0], order[1] = 1, 0
    permute.ptr, permute.len = order, 2
    return cnp.PyArray_Transpose(a, &permute)


def fast_forward(x, h0, parameters):
    """``rnn_forward`` for the common case of :func:`_fast_model`, or None.

    Returns exactly what ``functional.rnn_forward`` returns; None when any
    input differs from the common case (the wrapper then takes its full path).
    """
    cdef Model model = _fast_model(x, h0, parameters, False)
    if model is None:
        return None
    cdef tuple hy = model._run_forward(True)
    cdef cnp.ndarray h_out = <cnp.ndarray>hy[0], y_out = <cnp.ndarray>hy[1]
    # h is the caller's to modify; the cache keeps its own copy of the states
    cdef ForwardCache cache = ForwardCache.__new__(ForwardCache)
    cache.model, cache.states, cache.parameters = (
        model, cnp.PyArray_NewCopy(h_out, cnp.NPY_CORDER), parameters)
    return (_transposed(h_out, 2, 0, 1), _transposed(y_out, 2, 0, 1), (cache, x))


cdef struct GatherBuffers:
    const char *src             # (n_h, m, T) of any byte strides
    cnp.npy_intp strides[3]     # src's, in bytes (0 for a missing T axis)
    void *dst                   # (m, T, n_h) C-contiguous


cdef void _gather_rows(floating tag, const Dims *d, void *buffers) noexcept nogil:
    """dst (m, T, n_h) = src (n_h, m, T) with any byte strides, transposed."""
    cdef GatherBuffers *b = <GatherBuffers *>buffers
    cdef floating *dst = <floating *>b.dst
    cdef Py_ssize_t i, t, j
    cdef const char *base
    for i in range(d.n_batch):
        for t in range(d.n_steps):
            base = b.src + i * b.strides[1] + t * b.strides[2]
            for j in range(d.n_hidden):
                dst[j] = (<const floating *>(base + j * b.strides[0]))[0]
            dst += d.n_hidden


cdef void _gather(cnp.ndarray src, cnp.ndarray dst, cnp.npy_intp m, cnp.npy_intp n_steps,
                  cnp.npy_intp n_h) noexcept:
    """dst (m, T, n_h) = src (n_h, m, T) or (n_h, m) when T is 1, transposed."""
    cdef Dims d = _dims(dst, <int>m, <int>n_steps, 0, <int>n_h)
    cdef GatherBuffers b
    b.src, b.dst = <const char *>cnp.PyArray_DATA(src), cnp.PyArray_DATA(dst)
    b.strides[0], b.strides[1] = cnp.PyArray_STRIDES(src)[0], cnp.PyArray_STRIDES(src)[1]
    b.strides[2] = cnp.PyArray_STRIDES(src)[2] if cnp.PyArray_NDIM(src) == 3 else 0
    _call(_gather_rows[float], _gather_rows[double], &d, &b)      # a copy: keeps the GIL


def fast_backward(dh, caches):
    """``rnn_backward`` for a ForwardCache and a plain ``dh`` of its dtype, or None.

    Returns exactly what ``functional.rnn_backward`` returns; None when the
    cache is not this module's, its parameters dict no longer holds the very
    ``Whx`` and ``Whh`` arrays the model reads, or ``dh`` is not an aligned,
    native-order ndarray of the cache's dtype and shape ``(n_h, m, T)`` (any
    strides).
    """
    if type(caches) is not tuple or len(<tuple>caches) != 2:
        return None
    steps = (<tuple>caches)[0]
    if type(steps) is not ForwardCache or not cnp.PyArray_CheckExact(dh):
        return None
    cdef ForwardCache cache = <ForwardCache>steps
    cdef Model model = cache.model
    # Backward reads the weights in the caller's dict now: when the dict holds other
    # arrays than the model (replaced, or converted by forward), the full path reads it.
    params = cache.parameters
    if (type(params) is not dict or (<dict>params).get("Whx") is not model.w_hx
            or (<dict>params).get("Whh") is not model.w_hh):
        return None
    cdef cnp.ndarray grad = <cnp.ndarray>dh
    cdef int type_num = cnp.PyArray_TYPE(model.h0)
    if (cnp.PyArray_TYPE(grad) != type_num or cnp.PyArray_NDIM(grad) != 3
            or cnp.PyArray_NDIM(model.x) != 3 or not cnp.PyArray_ISNOTSWAPPED(grad)
            or not cnp.PyArray_ISALIGNED(grad)):
        return None
    cdef cnp.npy_intp *d = cnp.PyArray_DIMS(grad)
    if d[0] != model.n_h or d[1] != model.m or d[2] != model.n_steps:
        return None
    cdef cnp.ndarray dz = _empty3(model.m, model.n_steps, model.n_h, type_num)
    _gather(grad, dz, model.m, model.n_steps, model.n_h)
    cdef tuple grads = model._run_backward(cache.states, dz, True)
    return {"dx": grads[0], "dh0": _transposed2(<cnp.ndarray>grads[1]), "dWhx": grads[2],
            "dWhh": grads[3], "dbh": grads[4]}

