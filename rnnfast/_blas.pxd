# Row-major BLAS shim over scipy.linalg.cython_blas.
#
# Every matrix in rnnfast is C-ordered, so these helpers take row-major
# arguments and hand BLAS (column-major) the transposed problem:
# C = op(A) op(B) in row-major is C^T = op(B)^T op(A)^T in column-major.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void gemm(char trans_a, char trans_b, int n_rows, int n_cols, int n_inner,
                      floating alpha, const floating *a, int lda,
                      const floating *b, int ldb,
                      floating beta, floating *c, int ldc) noexcept nogil:
    """C = alpha op(A) op(B) + beta C, row-major; C is (n_rows, n_cols)."""
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
