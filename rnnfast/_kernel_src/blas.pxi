# The BLAS of the kernels: binding at import, and the product policy.
#
# Static state: the BLAS function pointers that _blas.pxd's gemm/gemv call
# (rf_np_*, rf_s_*, rf_t_* in _blas_numpy.h) are `static` variables of the one
# extension that includes _blas_numpy.h, rnnfast._kernels, and are bound here,
# when it is imported.  Another extension cimporting rnnfast._blas gets its own
# copies, never bound: its gemm would call a NULL pointer.  So every kernel that
# calls BLAS lives in an include file of rnnfast._kernels (see CONTRIBUTING.md),
# or a new extension binds its own pointers at its import as this file does.
#
# The product policy: _blas.pxd's plan_product decides how every product runs
# (plain loop, hand-written vector-matrix loop, gemv or gemm) and
# product_is_sequential when a threaded BLAS should stay on one thread (LIBXSMM's
# kernels, _xsmm.h, are initialised here and run the PRODUCT_PACKED plan); this
# file exposes both decisions to Python (use_own_products, product_is_sequential)
# and runs the per-step recurrent product by the plan (_rows_times, _times_whh).

def _numpy_blas_candidates():
    """Paths of the OpenBLAS that NumPy's wheels bundle (``numpy.libs``), if any."""
    import glob
    import os
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    return sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*.so")))


def _bind_numpy_blas():
    """Call NumPy's own BLAS from the kernels when it can be bound; return its path or None.

    ``RNNFAST_BLAS=scipy`` in the environment keeps ``scipy.linalg.cython_blas``.
    """
    import os
    if os.environ.get("RNNFAST_BLAS", "").lower() == "scipy":
        return None
    for path in _numpy_blas_candidates():
        if rf_blas_bind(os.fsencode(path)):
            # and its per-thread setting, for the thread team's members (_team.h)
            _blas.rf_team_bind_openblas(os.fsencode(path))
            return path
    return None


cdef void *_capsule_pointer(object capsule) except NULL:
    """The C function exported in a Cython ``__pyx_capi__`` capsule."""
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


def _bind_scipy_blas():
    """Bind ``scipy.linalg.cython_blas``'s routines, the fallback; imports SciPy on first use."""
    if rf_blas_scipy_bound():
        return
    from scipy.linalg import cython_blas
    capi = cython_blas.__pyx_capi__
    rf_blas_set_scipy(_capsule_pointer(capi["dgemm"]), _capsule_pointer(capi["sgemm"]),
                      _capsule_pointer(capi["dgemv"]), _capsule_pointer(capi["sgemv"]))


#: The BLAS library the kernels call: NumPy's OpenBLAS (its path), or None
#: for SciPy's (``scipy.linalg.cython_blas``, imported only in that case).
NUMPY_BLAS = _bind_numpy_blas()
if NUMPY_BLAS is None:
    _bind_scipy_blas()


def blas_in_use():
    """``"numpy"`` when the kernels call NumPy's own BLAS, else ``"scipy"``."""
    return "numpy" if rf_blas_numpy_active() else "scipy"


#: Whether LIBXSMM's JIT kernels are built in (and initialised): the Elman,
#: LSTM and GRU recurrent products then run in them where the product policy
#: plans PRODUCT_PACKED.
LIBXSMM = bool(rf_xsmm_init())


def products_backend():
    """What runs the per-step recurrent products besides BLAS.

    Returns
    -------
    str
        ``"libxsmm"`` when rnnfast was built with LIBXSMM (its JIT-compiled
        kernels run the Elman, LSTM and GRU recurrent products on the shapes
        where they measured faster), else ``"blas"``.
    """
    return "libxsmm" if LIBXSMM else "blas"


def _use_numpy_blas(bint enabled):
    """Tests only: switch between NumPy's BLAS (when bound) and SciPy's."""
    if not enabled:
        _bind_scipy_blas()
    rf_blas_enable_numpy(enabled)


def _bind_torch_blas(path):
    """Bind torch's BLAS (``dgemm_``, ... of the loaded library ``path``); True on success.

    Called by ``rnnfast.torch`` at import; ``RNNFAST_BLAS=numpy`` or ``scipy``
    in the environment keeps the kernels off torch's BLAS.
    """
    import os
    if os.environ.get("RNNFAST_BLAS", "").lower() in ("numpy", "scipy"):
        return False
    return bool(rf_blas_bind_torch(os.fsencode(path)))


def _bind_torch_openmp(path):
    """Bind the OpenMP runtime torch loaded (``GOMP_parallel`` of ``path``), whose
    threads are the thread team inside ``rnnfast.torch``'s operators; True on success."""
    import os
    return bool(_blas.rf_team_bind_gomp(os.fsencode(path)))


def _use_torch_blas(bint on, int n_threads=1):
    """Make this thread's kernel calls use torch's BLAS (when bound) or not;
    ``n_threads``, torch's intra-op threads, sizes the thread team inside them."""
    rf_blas_use_torch(on, n_threads)


def _torch_blas_active():
    """Whether this thread's kernel calls use torch's BLAS now."""
    return bool(rf_blas_torch_active())


# -- the product policy, for Python and for the time loops -----------------------

#: One sequence times a matrix of at most this many rows and columns runs in the
#: hand-written loop (see plan_product in _blas.pxd).
OWN_PRODUCTS_MAX_HIDDEN = <int>_blas.OWN_PRODUCTS_MAX_HIDDEN
#: Per-step products of at most this many multiply-adds keep a threaded BLAS
#: (torch's MKL, in rnnfast.torch's operators) on one thread.
SEQUENTIAL_PRODUCT_WORK = <long long>_blas.SEQUENTIAL_PRODUCT_WORK
cdef int _ANY_PLAN = (_blas.PRODUCT_LOOP | _blas.PRODUCT_VECMAT | _blas.PRODUCT_GEMV
                      | _blas.PRODUCT_GEMM)
cdef int _force_products = -1       # -1: by the plan; 0: BLAS; 1: hand-written loops


def _set_force_products(force):
    """Tests only: force one product path on every shape (True/False), or None for by size."""
    global _force_products
    _force_products = -1 if force is None else (1 if force else 0)


def _set_force_packed(force):
    """Tests only: LIBXSMM kernels on every Elman, LSTM and GRU shape (True), never (False),
    or by the plan (None).  Without LIBXSMM built in, nothing runs in them whatever the choice."""
    rf_xsmm_configure(force is None or bool(force), force is not None and bool(force))


cdef inline bint _plan_packed(const Dims *d, int n_cols, int n_inner) noexcept nogil:
    """Whether a time loop's per-step recurrent product (d.n_batch, n_inner) (n_inner, n_cols)
    runs in LIBXSMM kernels (``plan_product`` chooses PACKED): the Elman cell's (m, H) (H, H),
    the LSTM's and GRU's (m, P) (P, G H); their backward products follow the same plan."""
    cdef int allowed = _blas.PRODUCT_PACKED | _blas.PRODUCT_GEMV | _blas.PRODUCT_GEMM
    return (plan_product(d.n_batch, n_cols, n_inner, allowed, d.float32)
            == _blas.PRODUCT_PACKED)


def _team_from_environment():
    """``RNNFAST_TEAM=0`` in the environment (read at import) keeps every time loop off
    the thread team, as if it had one member: for programs that interleave rnnfast's calls
    with NumPy's threaded BLAS, whose threads spin for a while after each call and take
    the cores the team's members need."""
    import os
    if os.environ.get("RNNFAST_TEAM", "").strip() == "0":
        _blas.rf_team_force(0)


_team_from_environment()


def _set_force_team(force):
    """Tests only: the Elman time loops in the thread team on every shape (True), never
    (False), or by the plan (None).  Forced on, the team has at least two members even
    where the plan would find one CPU or one BLAS thread."""
    _blas.rf_team_force(-1 if force is None else (1 if force else 0))


def _team_runs():
    """Tests only: how many time loops have run on the thread team in this process."""
    return _blas.rf_team_runs


def _team_product_runs():
    """Tests only: how many products hoisted out of time loops have run on the thread
    team in this process (split by rows among its members)."""
    return _blas.rf_team_product_runs


def _team_workers():
    """Tests only: the threads the team has started of its own (inside rnnfast.torch's
    operators it starts none: torch's OpenMP threads are its members)."""
    return _blas.rf_team_workers


def _team_size():
    """Members of the thread team the plan would use (1: no team): NumPy's OpenBLAS
    threads (with torch's BLAS on this thread, torch's intra-op threads), within this
    thread's CPU affinity."""
    return _blas.rf_team_natural_size()


cdef inline int _plan_team(const Dims *d) noexcept nogil:
    """Members of the thread team that runs the Elman time loop's steps, 0 for none:
    ``plan_product`` chooses TEAM for the recurrent product (m, n_h) (n_h, n_h)."""
    cdef int allowed = (_blas.PRODUCT_TEAM | _blas.PRODUCT_PACKED | _blas.PRODUCT_GEMV
                        | _blas.PRODUCT_GEMM)
    cdef int members
    if (plan_product(d.n_batch, d.n_hidden, d.n_hidden, allowed, d.float32)
            != _blas.PRODUCT_TEAM):
        return 0
    members = _blas.rf_team_natural_size()
    if members < 2:
        members = 2                 # forced (the plan itself wants two or more)
    return members


cdef inline int _plan_gated_team(const Dims *d, int n_gates) noexcept nogil:
    """Members of the thread team that runs a gated loop's steps, 0 for none:
    ``plan_product`` chooses TEAM for the product (m, H) (H, n_gates H), by the cell's
    size H also for the LSTM with a projection (whose product is (m, P) (P, 4 H), plus
    the projection's (m, H) (H, P)): with P 64 or 128, H 256, the team measured
    0.38-0.39 the time at m = 2, 0.77-0.84 at m = 4 (P 64), 0.53-0.54 at m = 8."""
    cdef int allowed = (_blas.PRODUCT_TEAM | _blas.PRODUCT_PACKED | _blas.PRODUCT_GEMV
                        | _blas.PRODUCT_GEMM)
    cdef int members
    if (plan_product(d.n_batch, n_gates * d.n_hidden, d.n_hidden, allowed, d.float32,
                     n_gates) != _blas.PRODUCT_TEAM):
        return 0
    members = _blas.rf_team_natural_size()
    if members < 2:
        members = 2                 # forced (the plan itself wants two or more)
    return members


cpdef bint use_own_products(Py_ssize_t n_batch, Py_ssize_t n_hidden):
    """Whether the Elman recurrent products (n_batch, n_hidden) (n_hidden, n_hidden) run
    in the hand-written loops rather than BLAS (``plan_product`` chooses VECMAT)."""
    if _force_products >= 0:
        return _force_products == 1
    return plan_product(n_batch, n_hidden, n_hidden, _ANY_PLAN) == _blas.PRODUCT_VECMAT


def product_is_sequential(n_rows, n_cols, n_inner):
    """Whether a per-step product (n_rows, n_inner) (n_inner, n_cols) should run on one
    thread of a threaded BLAS (torch's MKL): at most ``SEQUENTIAL_PRODUCT_WORK``
    multiply-adds, computed in 64 bits."""
    return bool(_blas.product_is_sequential(n_rows, n_cols, n_inner))


cdef inline void _vecmat(const floating *v, const floating *a, Py_ssize_t n_k, Py_ssize_t n_j,
                         Py_ssize_t lda, floating *out, bint accumulate) noexcept nogil:
    """out (+)= v^T A for row-major A (n_k, n_j); hand-written, for small products."""
    if floating is float:
        rf_vecmat_f(v, a, n_k, n_j, lda, out, accumulate)
    else:
        rf_vecmat_d(v, a, n_k, n_j, lda, out, accumulate)


cdef inline void _rows_times(const floating *v, int ld_v, const floating *w, bint transposed,
                             floating *out, int ld_out, floating beta, int n_rows, int n_k,
                             int n_j) noexcept nogil:
    """out (n_rows, n_j) = V W^T (``transposed``, W is (n_j, n_k)) or V W (W is (n_k, n_j)),
    plus ``beta`` out; one row (a single sequence) goes through gemv (see plan_product)."""
    cdef int allowed = _blas.PRODUCT_GEMV | _blas.PRODUCT_GEMM   # gemm then plans LOOP or GEMM
    if plan_product(n_rows, n_j, n_k, allowed) == _blas.PRODUCT_GEMV:
        if transposed:
            gemv(c'N', n_j, n_k, 1, w, n_k, v, 1, beta, out, 1)
        else:
            gemv(c'T', n_k, n_j, 1, w, n_j, v, 1, beta, out, 1)
    elif transposed:
        gemm(c'N', c'T', n_rows, n_j, n_k, 1, v, ld_v, w, n_k, beta, out, ld_out)
    else:
        gemm(c'N', c'N', n_rows, n_j, n_k, 1, v, ld_v, w, n_j, beta, out, ld_out)


cdef void _times_whh(const Dims *d, const floating *v, int ld_v, const floating *w_hh,
                     const floating *w_rows, bint transposed, floating *out, int ld_out,
                     bint accumulate) noexcept nogil:
    """out (+)= V M for the d.n_batch rows of V, with M = Whh^T (``transposed``) or Whh.

    ``w_rows`` is M itself, row-major, for the hand-written loops
    (``d.own_products``, decided by use_own_products); BLAS reads ``w_hh`` with
    the transpose flag.
    """
    cdef Py_ssize_t i
    cdef int n_hidden = d.n_hidden
    if d.own_products:
        # out_i (+)= v_i M                 (n_h,) = (n_h,) (n_h, n_h), each row i
        for i in range(d.n_batch):
            _vecmat(v + i * ld_v, w_rows, n_hidden, n_hidden, n_hidden, out + i * ld_out,
                    accumulate)
    else:
        # out (+)= V M                     (m, n_h) = (m, n_h) (n_h, n_h), gemv for one row
        _rows_times(v, ld_v, w_hh, transposed, out, ld_out, 1 if accumulate else 0, d.n_batch,
                    n_hidden, n_hidden)


cdef inline void *_packed_kernel(const floating *like, int n_rows, int n_cols, int n_inner,
                                 int ld_a, int ld_b, int ld_c, bint accumulate) noexcept nogil:
    """LIBXSMM's kernel of the row-major C (n_rows, n_cols) (+)= A (n_rows, n_inner)
    B (n_inner, n_cols) with row strides ld_a, ld_b, ld_c, for ``like``'s dtype; NULL when
    there is none (the caller falls back to BLAS).  Run it with :func:`_packed_times`."""
    # row-major C = A B is column-major C^T = B^T A^T: M = n_cols, N = n_rows, K = n_inner
    if floating is float:
        return rf_xsmm_dispatch_f(n_cols, n_rows, n_inner, ld_b, ld_a, ld_c, accumulate)
    else:
        return rf_xsmm_dispatch_d(n_cols, n_rows, n_inner, ld_b, ld_a, ld_c, accumulate)


cdef inline void _packed_times(const void *kernel, const floating *a, const floating *b,
                               floating *c) noexcept nogil:
    """C (+)= A B, row-major, through a kernel of :func:`_packed_kernel`."""
    if floating is float:
        rf_xsmm_call_f(kernel, b, a, c)
    else:
        rf_xsmm_call_d(kernel, b, a, c)


# -- test hooks ----------------------------------------------------------------
# The BLAS shim and the hand-written products on NumPy arrays, so that tests
# can check each against a NumPy expression (tests/kernels/test_blas.py).  Not used by
# the package; typed memoryviews here, since a microsecond does not matter.

cdef inline char _flag(str trans) except 0:
    if trans not in ("N", "T"):
        raise ValueError(f"trans must be 'N' or 'T'; got {trans!r}")
    return c'T' if trans == "T" else c'N'


def _test_gemm(str trans_a, str trans_b, double alpha, const floating[:, ::1] a,
               const floating[:, ::1] b, double beta, floating[:, ::1] c):
    """``c = alpha op(a) op(b) + beta c`` through ``_blas.gemm`` (BLAS or the small loop)."""
    cdef char ta = _flag(trans_a), tb = _flag(trans_b)
    cdef int n_rows = c.shape[0], n_cols = c.shape[1]
    cdef int n_inner = a.shape[0] if ta == c'T' else a.shape[1]
    if ((a.shape[1] if ta == c'T' else a.shape[0]) != n_rows
            or (b.shape[1] if tb == c'T' else b.shape[0]) != n_inner
            or (b.shape[0] if tb == c'T' else b.shape[1]) != n_cols or n_inner == 0):
        raise ValueError("gemm: shapes do not fit")
    with nogil:
        gemm(ta, tb, n_rows, n_cols, n_inner, <floating>alpha, &a[0, 0], <int>a.shape[1], &b[0, 0],
             <int>b.shape[1], <floating>beta, &c[0, 0], <int>c.shape[1])


def _test_gemv(str trans_a, double alpha, const floating[:, ::1] a, const floating[::1] x,
               double beta, floating[::1] y):
    """``y = alpha op(a) x + beta y`` through ``_blas.gemv``."""
    cdef char ta = _flag(trans_a)
    if ((a.shape[0] if ta == c'T' else a.shape[1]) != x.shape[0]
            or (a.shape[1] if ta == c'T' else a.shape[0]) != y.shape[0]):
        raise ValueError("gemv: shapes do not fit")
    with nogil:
        gemv(ta, <int>a.shape[0], <int>a.shape[1], <floating>alpha, &a[0, 0], <int>a.shape[1],
             &x[0], 1, <floating>beta, &y[0], 1)


def _test_vecmat(const floating[::1] v, const floating[:, ::1] a, floating[::1] out,
                 bint accumulate):
    """``out (+)= v^T a`` through the hand-written product of the small recurrent steps."""
    if v.shape[0] != a.shape[0] or out.shape[0] != a.shape[1]:
        raise ValueError("vecmat: shapes do not fit")
    with nogil:
        _vecmat(&v[0], &a[0, 0], a.shape[0], a.shape[1], a.shape[1], &out[0], accumulate)


def _test_packed_times(const floating[:, ::1] a, const floating[:, ::1] b,
                       floating[:, ::1] c, bint accumulate):
    """``c (+)= a b`` through a LIBXSMM kernel; False (``c`` untouched) when none."""
    cdef void *kernel
    if a.shape[1] != b.shape[0] or c.shape[0] != a.shape[0] or c.shape[1] != b.shape[1]:
        raise ValueError("packed product: shapes do not fit")
    kernel = _packed_kernel(&a[0, 0], <int>a.shape[0], <int>b.shape[1], <int>a.shape[1],
                            <int>a.shape[1], <int>b.shape[1], <int>c.shape[1], accumulate)
    if kernel == NULL:
        return False
    with nogil:
        _packed_times(kernel, &a[0, 0], &b[0, 0], &c[0, 0])
    return True


_PLAN_NAMES = {"loop": _blas.PRODUCT_LOOP, "vecmat": _blas.PRODUCT_VECMAT,
               "gemv": _blas.PRODUCT_GEMV, "gemm": _blas.PRODUCT_GEMM,
               "packed": _blas.PRODUCT_PACKED, "team": _blas.PRODUCT_TEAM}


def _test_plan_product(n_rows, n_cols, n_inner, allowed=("loop", "vecmat", "gemv", "gemm"),
                       float32=False, n_gates=1):
    """The name of the plan ``plan_product`` picks for these sizes among ``allowed`` names
    (for a float32 product with ``float32``; a gated cell's with ``n_gates`` 3 or 4)."""
    cdef int bits = 0
    for name in allowed:
        bits |= _PLAN_NAMES[name]
    chosen = <int>plan_product(n_rows, n_cols, n_inner, bits, float32, n_gates)
    return next(name for name, bit in _PLAN_NAMES.items() if bit == chosen)
