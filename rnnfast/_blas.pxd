# Row-major BLAS shim over NumPy's own BLAS where it can be bound (see
# _blas_numpy.h), else scipy.linalg.cython_blas (bound at run time, only when
# needed: see _blas_numpy.h); inside rnnfast.torch's
# operators, torch's own BLAS (thread-local switch, see _blas_numpy.h).
#
# The BLAS function pointers (rf_np_*, rf_s_*, rf_t_* in _blas_numpy.h) are
# `static` state of the extension that includes this file: they are bound when
# that extension is imported (rnnfast/_kernel_src/blas.pxi) and nowhere else.
# A second extension that cimports this file gets its own, unbound copies and
# would call through NULL pointers: every caller of gemm/gemv must be built into
# rnnfast._kernels (add an include file there rather than a new extension), or
# the new extension must bind its own pointers at its import.
#
# Every matrix in rnnfast is C-ordered, so these helpers take row-major
# arguments and hand BLAS (column-major) the transposed problem:
# C = op(A) op(B) in row-major is C^T = op(B)^T op(A)^T in column-major.
#
# THE product policy: plan_product below is the one place that decides how a
# product runs (a plain loop, the hand-written vector-matrix loop, gemv, gemm,
# or a LIBXSMM kernel when built in, _xsmm.h), and product_is_sequential the one place that decides when torch's
# threaded BLAS should stay on one thread.  The thresholds are measured
# crossovers (python -m rnnfast bench); change them here only.

from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "_blas_numpy.h" nogil:
    ctypedef void (*rf_dgemm64_t)(const char *, const char *, const int64_t *, const int64_t *,
                                  const int64_t *, const double *, const double *,
                                  const int64_t *, const double *, const int64_t *,
                                  const double *, double *, const int64_t *)
    ctypedef void (*rf_sgemm64_t)(const char *, const char *, const int64_t *, const int64_t *,
                                  const int64_t *, const float *, const float *,
                                  const int64_t *, const float *, const int64_t *,
                                  const float *, float *, const int64_t *)
    ctypedef void (*rf_dgemv64_t)(const char *, const int64_t *, const int64_t *,
                                  const double *, const double *, const int64_t *,
                                  const double *, const int64_t *, const double *, double *,
                                  const int64_t *)
    ctypedef void (*rf_sgemv64_t)(const char *, const int64_t *, const int64_t *,
                                  const float *, const float *, const int64_t *,
                                  const float *, const int64_t *, const float *, float *,
                                  const int64_t *)
    ctypedef void (*rf_dgemm32_t)(const char *, const char *, const int *, const int *,
                                  const int *, const double *, const double *, const int *,
                                  const double *, const int *, const double *, double *,
                                  const int *)
    ctypedef void (*rf_sgemm32_t)(const char *, const char *, const int *, const int *,
                                  const int *, const float *, const float *, const int *,
                                  const float *, const int *, const float *, float *,
                                  const int *)
    ctypedef void (*rf_dgemv32_t)(const char *, const int *, const int *, const double *,
                                  const double *, const int *, const double *, const int *,
                                  const double *, double *, const int *)
    ctypedef void (*rf_sgemv32_t)(const char *, const int *, const int *, const float *,
                                  const float *, const int *, const float *, const int *,
                                  const float *, float *, const int *)
    rf_dgemm32_t rf_t_dgemm
    rf_sgemm32_t rf_t_sgemm
    rf_dgemv32_t rf_t_dgemv
    rf_sgemv32_t rf_t_sgemv
    rf_dgemm32_t rf_s_dgemm
    rf_sgemm32_t rf_s_sgemm
    rf_dgemv32_t rf_s_dgemv
    rf_sgemv32_t rf_s_sgemv
    void rf_blas_set_scipy(void *d, void *s, void *dv, void *sv)
    int rf_blas_scipy_bound()
    int rf_t_active
    int rf_blas_bind_torch(const char *path)
    void rf_blas_use_torch(int on, int n_threads)
    int rf_blas_torch_active()
    rf_dgemm64_t rf_np_dgemm
    rf_sgemm64_t rf_np_sgemm
    rf_dgemv64_t rf_np_dgemv
    rf_sgemv64_t rf_np_sgemv
    int rf_np_blas_enabled
    int rf_blas_bind(const char *path)
    int rf_blas_numpy_active()
    void rf_blas_enable_numpy(int on)

cdef extern from "_xsmm.h" nogil:
    int rf_xsmm_enabled
    int rf_xsmm_forced
    int rf_xsmm_init()
    void rf_xsmm_configure(int enabled, int forced)
    void *rf_xsmm_dispatch_f(int m, int n, int k, int lda, int ldb, int ldc, int beta)
    void *rf_xsmm_dispatch_d(int m, int n, int k, int lda, int ldb, int ldc, int beta)
    void rf_xsmm_call_f(const void *kernel, const float *a, const float *b, float *c)
    void rf_xsmm_call_d(const void *kernel, const double *a, const double *b, double *c)

cdef extern from "_team.h" nogil:
    ctypedef void (*rf_team_fn)(void *arg, int member, int n_members) noexcept nogil
    int rf_team_forced
    void rf_team_force(int forced)
    long rf_team_runs
    long rf_team_product_runs
    int rf_team_workers
    int rf_team_bind_openblas(const char *path)
    int rf_team_bind_gomp(const char *path)
    int rf_team_natural_size()
    int rf_team_acquire(int n_members)
    void rf_team_run(rf_team_fn fn, void *arg, int n_members)
    long long rf_team_claim()
    void rf_team_wait_done(long long target)
    void rf_team_task_done()
    void rf_team_release()

cdef extern from "_vecmath.h" nogil:
    void rf_small_gemm_d(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                         double alpha, const double *a, Py_ssize_t lda, const double *b,
                         Py_ssize_t ldb, double beta, double *c, Py_ssize_t ldc)
    void rf_small_gemm_f(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                         float alpha, const float *a, Py_ssize_t lda, const float *b,
                         Py_ssize_t ldb, float beta, float *c, Py_ssize_t ldc)

# How a product C (n_rows, n_cols) = A (n_rows, n_inner) B (n_inner, n_cols) runs.
# The values are bits, so that a caller can say which ways it can run (``allowed``).
cdef enum ProductPlan:
    PRODUCT_LOOP = 1     # a plain loop (rf_small_gemm_*): cheaper than a BLAS call's overhead
    PRODUCT_VECMAT = 2   # the hand-written row-vector times matrix loop (rf_vecmat_*), which
                         # needs the matrix row-major as multiplied (a transposed copy)
    PRODUCT_GEMV = 4     # BLAS gemv: one row
    PRODUCT_GEMM = 8     # BLAS gemm
    PRODUCT_PACKED = 16  # a LIBXSMM kernel dispatched once per call (when built in), the
                         # matrix laid out once per call so that the kernel reads it as is
    PRODUCT_TEAM = 32    # a time loop's every step split by output columns among a team of
                         # threads (_team.h), each running its panel as one thread

cdef enum:
    # Products of at most this many multiply-adds skip BLAS, whose per-call cost
    # (argument checks, threading decisions) exceeds their arithmetic.
    TINY_PRODUCT_WORK = 1024
    # One row times a matrix of at most this many rows and columns runs in the
    # hand-written loop (when the caller can: the Elman recurrence keeps Whh^T);
    # above it BLAS measured faster.
    OWN_PRODUCTS_MAX_HIDDEN = 64
    # Per-step products of at most this many multiply-adds keep torch's threaded
    # BLAS on one thread: at char size (N 1, H 128) forking the OpenMP team for
    # every step's product cost more than the product.
    SEQUENTIAL_PRODUCT_WORK = 262144     # 1 << 18
    # The Elman recurrence's per-step product (m, n_h) (n_h, n_h) runs in a LIBXSMM
    # kernel (when built in) for 2 <= m <= PACKED_MAX_ROWS rows, when n_h <=
    # PACKED_SMALL_HIDDEN or m >= PACKED_MIN_ROWS, up to PACKED_MAX_WORK_F32 (float32) or
    # PACKED_MAX_WORK_F64 (float64) multiply-adds.  LIBXSMM runs on the calling thread,
    # so BLAS's two threads win the larger products.  Measured on a quiet 2-core EPYC
    # (Zen 5), layer forward + BPTT, T = 100, packed time / BLAS time, float32: 0.82 at
    # (2, 100), 0.92 at (8, 64), 0.64 at (16, 128), 0.61 at (16, 256), 0.75 at (24, 256),
    # 0.88 at (32, 256), 0.92 at (32, 384) and (32, 448); but 1.00-1.03 at (32, 512), 1.01 at
    # (48, 256) and (64, 128), 1.11 at (64, 256), 1.09 at (128, 128).  float64: 0.93 at
    # (2, 100), 0.95 at (8, 64), 0.85 at (16, 128), 0.83 at (16, 256), 0.93 at (32, 256),
    # 1.00 at (24, 256); but 1.04 at (64, 128), 1.10 at (64, 256), 1.35 at (32, 448), 1.67
    # at (32, 384).  Under load (other jobs on both cores) the one-thread kernel wins more
    # widely: measure on a quiet machine.  One row (m = 1) stays with gemv or the
    # hand-written loop (1.0-1.25x there).
    # The LSTM and GRU per-step products (m, P) (P, G H), G = 4 or 3, are wider than
    # they are deep; in float64 their output block (m, G H) must also stay within
    # PACKED_MAX_OUTPUT_F64 values (64 KiB; no Elman product within the work limit has a
    # larger one).  Same machine, one layer forward + BPTT, T = 100, input width H,
    # packed / BLAS time (repeats differ by up to 0.1): float32 LSTM 0.63 at (16, 128),
    # 0.83 at (16, 256), 0.95 at (32, 128), 0.98 at (32, 192), 0.93-1.00 at (24, 256), but
    # 1.47 at (32, 256) (over the work limit); GRU 0.73 at (16, 128), 0.86 at (24, 256),
    # 0.91 at (32, 256), 0.93-1.00 at (32, 128).  float64 LSTM 0.82 at (16, 128), 0.99 at
    # (32, 64), but 1.08-1.10 at (32, 128) and 1.03 at (24, 128) (outputs of 16384 and
    # 12288 values), 1.12 at (32, 256); GRU 0.83 at (16, 128), 0.88 at (24, 80), 0.93 at
    # (32, 64), 0.92-1.03 at (32, 128), 1.15 at (32, 256).  One row: 1.0-1.3 (gemv kept).
    PACKED_MAX_OUTPUT_F64 = 8192         # 32 * 256
    # The Elman recurrence's steps run in the thread team (_team.h: each step's product
    # (m, n_h) (n_h, n_h) split by columns, each panel's product and epilogue on one
    # thread; the products hoisted out of the loop split by rows on the team too) for
    # m >= TEAM_MIN_ROWS, n_h >= TEAM_MIN_HIDDEN and TEAM_MIN_WORK to TEAM_MAX_WORK
    # multiply-adds per step, where the product would otherwise run in threaded BLAS (not
    # where a one-thread LIBXSMM kernel is planned, below).  Measured on the shared 2-core
    # EPYC (Zen 5), seed API forward + BPTT, n_x = n_y = 128, T = 100, team / today's
    # path, medians of 9-15 interleaved samples, float32 / float64, over 3-5 runs, with
    # the hoisted products still in threaded BLAS: 0.48-0.75 / 0.69-0.90 at (8, 256);
    # no gain at (8, 128) and (16, 128) (0.96-1.02); slower at (2, 256) and (4, 256)
    # (1.04-1.31), (8, 512) (1.43-1.46), (64, 256) (1.25-1.46), (64, 1024) ("large":
    # 0.97-1.59).  With the hoisted products on the team, on a 2-core EPYC (Zen 4,
    # AVX-512), nn.RNN-shaped layer forward + backward, n_in 128, T 100, separate
    # processes, float32: 0.63-0.67 at (8, 256), and where LIBXSMM's one-thread kernel
    # runs 0.81-0.83 at (16, 256), 0.84-0.87 at (32, 256) ("medium"), 0.86 at (32, 128),
    # 0.71-0.78 at (32, 512) (float64 0.80-0.85 at (16, 256) to (32, 128)); but with one
    # NumPy matmul (300 x 300) before each call, "medium" took 30.4 ms on the team against
    # 20 ms without it (forward 10.9 against 5.5 ms alone): NumPy's OpenBLAS threads spin
    # for a long while after its call and take the second core from the team's member,
    # while the one-thread kernel does not notice them.  So those shapes keep LIBXSMM.
    # A step's hand-off between members costs about 0.4 us.
    TEAM_MIN_ROWS = 8
    TEAM_MIN_HIDDEN = 128
    TEAM_MIN_WORK = 524288               # 8 * 256 * 256 = 32 * 128 * 128
    TEAM_MAX_WORK = 1048576              # 16 * 256 * 256
    TEAM_GATED_MIN_HIDDEN = 128
    TEAM_GATED_MIN_STATES = 512          # 2 * 256 = 4 * 128
    TEAM_GATED_MAX_STATES_F64 = 4096     # 16 * 256
    PACKED_SMALL_HIDDEN = 100
    PACKED_MIN_ROWS = 16
    PACKED_MAX_ROWS = 32
    PACKED_MAX_WORK_F32 = 6422528        # 32 * 448 * 448
    PACKED_MAX_WORK_F64 = 2097152        # 32 * 256 * 256


cdef inline int64_t product_work(int64_t n_rows, int64_t n_cols, int64_t n_inner) noexcept nogil:
    """Multiply-adds of the product, in 64 bits (three BLAS ints overflow a 32-bit long)."""
    return n_rows * n_cols * n_inner


cdef inline bint packed_product_wins(int64_t n_rows, int64_t n_cols, int64_t n_inner,
                                     bint float32) noexcept nogil:
    """Where a LIBXSMM kernel measured faster than BLAS (see PACKED_* above)."""
    cdef int64_t max_work = PACKED_MAX_WORK_F32 if float32 else PACKED_MAX_WORK_F64
    if (n_rows < 2 or n_rows > PACKED_MAX_ROWS
            or product_work(n_rows, n_cols, n_inner) > max_work
            or (not float32 and n_rows * n_cols > PACKED_MAX_OUTPUT_F64)):
        return False
    return (n_rows >= PACKED_MIN_ROWS
            or (n_cols <= PACKED_SMALL_HIDDEN and n_inner <= PACKED_SMALL_HIDDEN))


cdef inline bint team_product_wins(int64_t n_rows, int64_t n_cols, int64_t n_inner,
                                   bint float32, int n_gates) noexcept nogil:
    """Where the thread team measured faster than the path without it (see TEAM_* above):
    the Elman cell's product (n_gates 1), the LSTM's (n_gates 4, n_cols = 4 n_inner)."""
    cdef int64_t work = product_work(n_rows, n_cols, n_inner)
    if n_gates > 1:
        return (n_rows >= 2 and n_inner >= TEAM_GATED_MIN_HIDDEN
                and n_rows * n_inner >= TEAM_GATED_MIN_STATES
                and (float32 or n_rows * n_inner <= TEAM_GATED_MAX_STATES_F64))
    return (n_rows >= TEAM_MIN_ROWS and n_cols >= TEAM_MIN_HIDDEN
            and n_inner >= TEAM_MIN_HIDDEN and TEAM_MIN_WORK <= work <= TEAM_MAX_WORK)


cdef inline ProductPlan plan_product(int64_t n_rows, int64_t n_cols, int64_t n_inner,
                                     int allowed, bint float32=False,
                                     int n_gates=1) noexcept nogil:
    """How (n_rows, n_inner) (n_inner, n_cols) runs, among the ``allowed`` plans (bits).

    PRODUCT_PACKED needs LIBXSMM built in and enabled (``rf_xsmm_enabled``); its limits
    depend on the dtype (``float32``; the float64 ones, the stricter, otherwise).
    ``rf_xsmm_forced`` (tests) plans it on every shape that allows it.
    PRODUCT_TEAM (a time loop's steps split among a thread team, _team.h) needs NumPy's
    OpenBLAS, bound and in use (the members' products), and a team of two or more: its
    threads, or inside an rnnfast.torch operator (torch's BLAS on this thread) torch's
    intra-op threads, its OpenMP runtime bound; ``rf_team_forced`` (tests) plans it on
    every shape (1) or never (0).
    """
    if allowed & PRODUCT_TEAM and (
            rf_team_forced == 1
            or (rf_team_forced == -1
                and team_product_wins(n_rows, n_cols, n_inner, float32, n_gates)
                and (n_gates > 1 or not (rf_xsmm_enabled
                                         and packed_product_wins(n_rows, n_cols, n_inner,
                                                                 float32)))
                and rf_blas_numpy_active()
                and rf_team_natural_size() >= 2)):
        return PRODUCT_TEAM
    if allowed & PRODUCT_PACKED and rf_xsmm_enabled and (
            rf_xsmm_forced or packed_product_wins(n_rows, n_cols, n_inner, float32)):
        return PRODUCT_PACKED
    if (allowed & PRODUCT_VECMAT and n_rows == 1 and n_cols <= OWN_PRODUCTS_MAX_HIDDEN
            and n_inner <= OWN_PRODUCTS_MAX_HIDDEN):
        return PRODUCT_VECMAT
    if allowed & PRODUCT_GEMV and n_rows == 1:
        return PRODUCT_GEMV
    if allowed & PRODUCT_LOOP and product_work(n_rows, n_cols, n_inner) <= TINY_PRODUCT_WORK:
        return PRODUCT_LOOP
    return PRODUCT_GEMM


cdef inline bint product_is_sequential(int64_t n_rows, int64_t n_cols,
                                       int64_t n_inner) noexcept nogil:
    """Whether this per-step product should run on one thread of a threaded BLAS."""
    return product_work(n_rows, n_cols, n_inner) <= SEQUENTIAL_PRODUCT_WORK


cdef inline void gemm(char trans_a, char trans_b, int n_rows, int n_cols, int n_inner,
                      floating alpha, const floating *a, int lda,
                      const floating *b, int ldb,
                      floating beta, floating *c, int ldc) noexcept nogil:
    """C = alpha op(A) op(B) + beta C, row-major; C is (n_rows, n_cols)."""
    if plan_product(n_rows, n_cols, n_inner, PRODUCT_LOOP | PRODUCT_GEMM) == PRODUCT_LOOP:
        # tiny: a plain loop beats the BLAS call's overhead
        if floating is float:
            rf_small_gemm_f(trans_a == c'T', trans_b == c'T', n_rows, n_cols, n_inner, alpha,
                            a, lda, b, ldb, beta, c, ldc)
        else:
            rf_small_gemm_d(trans_a == c'T', trans_b == c'T', n_rows, n_cols, n_inner, alpha,
                            a, lda, b, ldb, beta, c, ldc)
        return
    cdef int64_t m64 = n_cols, n64 = n_rows, k64 = n_inner, lda64 = lda, ldb64 = ldb
    cdef int64_t ldc64 = ldc
    if rf_t_active:
        # torch's BLAS, inside an rnnfast.torch operator: torch's thread pool
        if floating is float:
            rf_t_sgemm(&trans_b, &trans_a, &n_cols, &n_rows, &n_inner, &alpha, b, &ldb, a, &lda,
                       &beta, c, &ldc)
        else:
            rf_t_dgemm(&trans_b, &trans_a, &n_cols, &n_rows, &n_inner, &alpha, b, &ldb, a, &lda,
                       &beta, c, &ldc)
    elif rf_np_blas_enabled and rf_np_dgemm != NULL:
        # NumPy's own OpenBLAS (64-bit integers): one thread pool with NumPy's matmul
        if floating is float:
            rf_np_sgemm(&trans_b, &trans_a, &m64, &n64, &k64, &alpha, b, &ldb64, a, &lda64,
                        &beta, c, &ldc64)
        else:
            rf_np_dgemm(&trans_b, &trans_a, &m64, &n64, &k64, &alpha, b, &ldb64, a, &lda64,
                        &beta, c, &ldc64)
    elif floating is float:
        # SciPy's BLAS (32-bit integers)
        rf_s_sgemm(&trans_b, &trans_a, &n_cols, &n_rows, &n_inner, &alpha, b, &ldb, a, &lda,
                   &beta, c, &ldc)
    else:
        rf_s_dgemm(&trans_b, &trans_a, &n_cols, &n_rows, &n_inner, &alpha, b, &ldb, a, &lda,
                   &beta, c, &ldc)


cdef inline void gemv(char trans_a, int n_rows, int n_cols, floating alpha,
                      const floating *a, int lda, const floating *x, int incx,
                      floating beta, floating *y, int incy) noexcept nogil:
    """y = alpha op(A) x + beta y, row-major A of shape (n_rows, n_cols)."""
    # Row-major A is column-major A^T: flip the transpose flag.
    cdef char flipped = c'T' if trans_a == c'N' else c'N'
    cdef int64_t m64 = n_cols, n64 = n_rows, lda64 = lda, incx64 = incx, incy64 = incy
    if rf_t_active:
        if floating is float:
            rf_t_sgemv(&flipped, &n_cols, &n_rows, &alpha, a, &lda, x, &incx, &beta, y, &incy)
        else:
            rf_t_dgemv(&flipped, &n_cols, &n_rows, &alpha, a, &lda, x, &incx, &beta, y, &incy)
        return
    if rf_np_blas_enabled and rf_np_dgemv != NULL:
        if floating is float:
            rf_np_sgemv(&flipped, &m64, &n64, &alpha, a, &lda64, x, &incx64, &beta, y, &incy64)
        else:
            rf_np_dgemv(&flipped, &m64, &n64, &alpha, a, &lda64, x, &incx64, &beta, y, &incy64)
        return
    if floating is float:
        rf_s_sgemv(&flipped, &n_cols, &n_rows, &alpha, a, &lda, x, &incx, &beta, y, &incy)
    else:
        rf_s_dgemv(&flipped, &n_cols, &n_rows, &alpha, a, &lda, x, &incx, &beta, y, &incy)
