/* LIBXSMM's JIT-compiled small GEMM kernels, when rnnfast is built with them.
 *
 * setup.py defines RNNFAST_HAVE_LIBXSMM and links LIBXSMM (with libxsmmnoblas,
 * so that LIBXSMM's BLAS fallbacks need no second BLAS) when it finds the
 * library; without it every function here is a stub that says "not available"
 * and the product policy (_blas.pxd's plan_product) never plans PRODUCT_PACKED.
 *
 * LIBXSMM is column-major: a kernel computes C = A B (+ C with beta 1) for
 * column-major A (M, K), B (K, N), C (M, N).  A row-major product
 * C (n_rows, n_cols) = A (n_rows, n_inner) B (n_inner, n_cols) is the
 * column-major C^T = B^T A^T: M = n_cols, N = n_rows, K = n_inner, the
 * row-major B passed first.
 *
 * Like _blas_numpy.h, the state here is `static`: only rnnfast._kernels
 * initialises it (at import, _kernel_src/blas.pxi).
 */
#ifndef RNNFAST_XSMM_H
#define RNNFAST_XSMM_H

#ifdef RNNFAST_HAVE_LIBXSMM
#include <stdlib.h>
#include <libxsmm.h>
#endif

/* 1 once LIBXSMM is initialised (and not switched off by a test hook). */
static int rf_xsmm_enabled = 0;
/* Tests only: 1 plans PRODUCT_PACKED on every shape it is allowed for. */
static int rf_xsmm_forced = 0;
static int rf_xsmm_initialised = 0;

#ifdef RNNFAST_HAVE_LIBXSMM
/* The variables LIBXSMM's initialisation may write when they are unset or empty
 * (its "autopin": OMP_PROC_BIND=TRUE, or I_MPI_SHM_HEAP=1 when an MPI library is
 * loaded).  With OMP_PROC_BIND=TRUE in the environment, a libgomp initialised
 * later (torch's, at `import torch`) builds one place per CPU and pins the thread
 * that loads it, Python's main thread, to the first: the process, and every
 * thread it starts from then on, runs on one CPU.  Child processes inherit the
 * variable.  Importing rnnfast must not change the environment, so
 * rf_xsmm_init puts these variables back as they were. */
static const char *const rf_xsmm_env_names[] = {"OMP_PROC_BIND", "I_MPI_SHM_HEAP"};
#define RF_XSMM_N_ENV ((int)(sizeof(rf_xsmm_env_names) / sizeof(rf_xsmm_env_names[0])))
#endif

/* Initialise LIBXSMM, leaving the environment as it was; 1 when it is built in. */
static int rf_xsmm_init(void)
{
#ifdef RNNFAST_HAVE_LIBXSMM
    /* -1: unset, 0: set and empty (LIBXSMM writes only these two), 1: set */
    int before[RF_XSMM_N_ENV];
    int i;
    for (i = 0; i < RF_XSMM_N_ENV; ++i) {
        const char *value = getenv(rf_xsmm_env_names[i]);
        before[i] = value == NULL ? -1 : (*value != '\0');
    }
    libxsmm_init();
    for (i = 0; i < RF_XSMM_N_ENV; ++i) {
        const char *value = getenv(rf_xsmm_env_names[i]);
        if (before[i] == -1 && value != NULL)
            unsetenv(rf_xsmm_env_names[i]);
        else if (before[i] == 0 && value != NULL && *value != '\0')
            setenv(rf_xsmm_env_names[i], "", 1);
    }
    rf_xsmm_initialised = 1;
    rf_xsmm_enabled = 1;
    return 1;
#else
    return 0;
#endif
}

/* Tests only: switch the kernels on or off (on only once initialised), and
 * force PRODUCT_PACKED on every allowed shape or leave it to the sizes. */
static void rf_xsmm_configure(int enabled, int forced)
{
    rf_xsmm_enabled = enabled && rf_xsmm_initialised;
    rf_xsmm_forced = forced;
}

/* The kernel of column-major C (m, n) = A (m, k) B (k, n) + beta C, beta 0 or 1,
 * or NULL (not built, or LIBXSMM has no kernel for it: the caller falls back). */
static void *rf_xsmm_dispatch_f(int m, int n, int k, int lda, int ldb, int ldc, int beta)
{
#ifdef RNNFAST_HAVE_LIBXSMM
    libxsmm_blasint lda_ = lda, ldb_ = ldb, ldc_ = ldc;
    float beta_ = (float)beta;
    int flags = LIBXSMM_GEMM_FLAG_NONE, prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
    if (!rf_xsmm_enabled)
        return 0;
    return (void *)libxsmm_smmdispatch(m, n, k, &lda_, &ldb_, &ldc_, 0, &beta_, &flags,
                                       &prefetch);
#else
    (void)m; (void)n; (void)k; (void)lda; (void)ldb; (void)ldc; (void)beta;
    return 0;
#endif
}

static void *rf_xsmm_dispatch_d(int m, int n, int k, int lda, int ldb, int ldc, int beta)
{
#ifdef RNNFAST_HAVE_LIBXSMM
    libxsmm_blasint lda_ = lda, ldb_ = ldb, ldc_ = ldc;
    double beta_ = (double)beta;
    int flags = LIBXSMM_GEMM_FLAG_NONE, prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
    if (!rf_xsmm_enabled)
        return 0;
    return (void *)libxsmm_dmmdispatch(m, n, k, &lda_, &ldb_, &ldc_, 0, &beta_, &flags,
                                       &prefetch);
#else
    (void)m; (void)n; (void)k; (void)lda; (void)ldb; (void)ldc; (void)beta;
    return 0;
#endif
}

/* Run a kernel of rf_xsmm_dispatch_{f,d} (column-major arguments: A, B, C). */
static inline void rf_xsmm_call_f(const void *kernel, const float *a, const float *b, float *c)
{
#ifdef RNNFAST_HAVE_LIBXSMM
    ((libxsmm_smmfunction)kernel)(a, b, c);
#else
    (void)kernel; (void)a; (void)b; (void)c;
#endif
}

static inline void rf_xsmm_call_d(const void *kernel, const double *a, const double *b,
                                  double *c)
{
#ifdef RNNFAST_HAVE_LIBXSMM
    ((libxsmm_dmmfunction)kernel)(a, b, c);
#else
    (void)kernel; (void)a; (void)b; (void)c;
#endif
}

#endif
