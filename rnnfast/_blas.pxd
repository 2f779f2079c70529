# Row-major BLAS shim over scipy.linalg.cython_blas.
#
# Every matrix in rnnfast is C-ordered, so these helpers take row-major
# arguments and hand BLAS (column-major) the transposed problem:
# C = op(A) op(B) in row-major is C^T = op(B)^T op(A)^T in column-major.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

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
    if floating is float:
        sgemm(&trans_b, &trans_a, &n_cols, &n_rows, &n_inner, &alpha,
              <float *>b, &ldb, <float *>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&trans_b, &trans_a, &n_cols, &n_rows, &n_inner, &alpha,
              <double *>b, &ldb, <double *>a, &lda, &beta, c, &ldc)


cdef inline void gemv(char trans_a, int n_rows, int n_cols, floating alpha,
                      const floating *a, int lda, const floating *x, int incx,
                      floating beta, floating *y, int incy) noexcept nogil:
    """y = alpha op(A) x + beta y, row-major A of shape (n_rows, n_cols)."""
    # Row-major A is column-major A^T: flip the transpose flag.
    cdef char flipped = c'T' if trans_a == c'N' else c'N'
    if floating is float:
        sgemv(&flipped, &n_cols, &n_rows, &alpha, <float *>a, &lda,
              <float *>x, &incx, &beta, y, &incy)
    else:
        dgemv(&flipped, &n_cols, &n_rows, &alpha, <double *>a, &lda,
              <double *>x, &incx, &beta, y, &incy)
