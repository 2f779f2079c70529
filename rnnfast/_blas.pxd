# Row-major BLAS shim over NumPy's own BLAS where it can be bound (see
# _blas_numpy.h), else scipy.linalg.cython_blas (bound at run time, only when
# needed: see _blas_numpy.h); inside rnnfast.torch's
# operators, torch's own BLAS (thread-local switch, see _blas_numpy.h).
#
# Every matrix in rnnfast is C-ordered, so these helpers take row-major
# arguments and hand BLAS (column-major) the transposed problem:
# C = op(A) op(B) in row-major is C^T = op(B)^T op(A)^T in column-major.

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
    void rf_blas_use_torch(int on)
    int rf_blas_torch_active()
    rf_dgemm64_t rf_np_dgemm
    rf_sgemm64_t rf_np_sgemm
    rf_dgemv64_t rf_np_dgemv
    rf_sgemv64_t rf_np_sgemv
    int rf_np_blas_enabled
    int rf_blas_bind(const char *path)
    int rf_blas_numpy_active()
    void rf_blas_enable_numpy(int on)

cdef extern from "_vecmath.h" nogil:
    void rf_small_gemm_d(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                         double alpha, const double *a, Py_ssize_t lda, const double *b,
                         Py_ssize_t ldb, double beta, double *c, Py_ssize_t ldc)
    void rf_small_gemm_f(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                         float alpha, const float *a, Py_ssize_t lda, const float *b,
                         Py_ssize_t ldb, float beta, float *c, Py_ssize_t ldc)

# gemm: products of at most 1024 multiply-adds skip BLAS, whose per-call cost
# (argument checks, threading decisions) exceeds their arithmetic.


cdef inline void gemm(char trans_a, char trans_b, int n_rows, int n_cols, int n_inner,
                      floating alpha, const floating *a, int lda,
                      const floating *b, int ldb,
                      floating beta, floating *c, int ldc) noexcept nogil:
    """C = alpha op(A) op(B) + beta C, row-major; C is (n_rows, n_cols)."""
    if <long>n_rows * n_cols * n_inner <= 1024:
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
