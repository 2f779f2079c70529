/* The BLAS that NumPy itself loaded, called through function pointers.
 *
 * NumPy's wheels bundle OpenBLAS with 64-bit integers and the symbol names
 * scipy_dgemm_64_, ...; SciPy's wheels bundle another copy.  Each copy has its
 * own thread pool, and after a call each pool's threads spin for a while: a
 * program that mixes NumPy's matmul with rnnfast's kernels (SciPy's copy)
 * would have two pools fighting over the cores.  rf_blas_bind() looks up
 * NumPy's copy (already loaded: RTLD_NOLOAD) and, when it finds every symbol,
 * _blas.pxd calls it instead of SciPy's copy (below).  Pointers stay NULL
 * elsewhere (another BLAS in NumPy, no dlopen).
 *
 * Every pointer here is `static`: each extension that includes this header has
 * its own copies, bound only by that extension's own import code.  Only
 * rnnfast._kernels binds them (_kernel_src/blas.pxi), so only code built into
 * rnnfast._kernels may call the shim (see CONTRIBUTING.md).
 */
#ifndef RNNFAST_BLAS_NUMPY_H
#define RNNFAST_BLAS_NUMPY_H

#include <stdint.h>

typedef void (*rf_dgemm64_t)(const char *, const char *, const int64_t *, const int64_t *,
                             const int64_t *, const double *, const double *, const int64_t *,
                             const double *, const int64_t *, const double *, double *,
                             const int64_t *);
typedef void (*rf_sgemm64_t)(const char *, const char *, const int64_t *, const int64_t *,
                             const int64_t *, const float *, const float *, const int64_t *,
                             const float *, const int64_t *, const float *, float *,
                             const int64_t *);
typedef void (*rf_dgemv64_t)(const char *, const int64_t *, const int64_t *, const double *,
                             const double *, const int64_t *, const double *, const int64_t *,
                             const double *, double *, const int64_t *);
typedef void (*rf_sgemv64_t)(const char *, const int64_t *, const int64_t *, const float *,
                             const float *, const int64_t *, const float *, const int64_t *,
                             const float *, float *, const int64_t *);

static rf_dgemm64_t rf_np_dgemm = 0;
static rf_sgemm64_t rf_np_sgemm = 0;
static rf_dgemv64_t rf_np_dgemv = 0;
static rf_sgemv64_t rf_np_sgemv = 0;
/* 1: call NumPy's BLAS when bound; 0: always SciPy's (tests use both) */
static int rf_np_blas_enabled = 1;

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>

/* Bind the four routines of the already-loaded library `path`; 1 on success. */
static int rf_blas_bind(const char *path)
{
    void *handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
    void *d, *s, *dv, *sv;
    if (!handle)
        return 0;
    d = dlsym(handle, "scipy_dgemm_64_");
    s = dlsym(handle, "scipy_sgemm_64_");
    dv = dlsym(handle, "scipy_dgemv_64_");
    sv = dlsym(handle, "scipy_sgemv_64_");
    if (!d || !s || !dv || !sv) {
        dlclose(handle);
        return 0;
    }
    /* the handle stays open: NumPy keeps the library loaded anyway */
    rf_np_dgemm = (rf_dgemm64_t)d;
    rf_np_sgemm = (rf_sgemm64_t)s;
    rf_np_dgemv = (rf_dgemv64_t)dv;
    rf_np_sgemv = (rf_sgemv64_t)sv;
    return 1;
}
#else
static int rf_blas_bind(const char *path) { (void)path; return 0; }
#endif

/* torch's BLAS (MKL inside libtorch_cpu on x86 wheels, with 32-bit integers and
 * the Fortran names dgemm_, ...) runs on torch's OpenMP thread pool.  The
 * rnnfast.torch operators call it, for the calling thread only, so that a torch
 * training step has one thread pool instead of torch's and OpenBLAS's fighting
 * over the cores (measured: 5-40x slower steps at small sizes otherwise). */
typedef void (*rf_dgemm32_t)(const char *, const char *, const int *, const int *, const int *,
                             const double *, const double *, const int *, const double *,
                             const int *, const double *, double *, const int *);
typedef void (*rf_sgemm32_t)(const char *, const char *, const int *, const int *, const int *,
                             const float *, const float *, const int *, const float *,
                             const int *, const float *, float *, const int *);
typedef void (*rf_dgemv32_t)(const char *, const int *, const int *, const double *,
                             const double *, const int *, const double *, const int *,
                             const double *, double *, const int *);
typedef void (*rf_sgemv32_t)(const char *, const int *, const int *, const float *,
                             const float *, const int *, const float *, const int *,
                             const float *, float *, const int *);
static rf_dgemm32_t rf_t_dgemm = 0;
static rf_sgemm32_t rf_t_sgemm = 0;
static rf_dgemv32_t rf_t_dgemv = 0;
static rf_sgemv32_t rf_t_sgemv = 0;
#if defined(_MSC_VER)
#define RF_THREAD_LOCAL __declspec(thread)
#else
#define RF_THREAD_LOCAL __thread
#endif
/* 1 while this thread runs an rnnfast.torch operator with torch's BLAS bound */
static RF_THREAD_LOCAL int rf_t_active = 0;
/* torch's intra-op threads (torch.get_num_threads()) as the operator found them: the
 * thread team's size inside the operator (_team.h) */
static RF_THREAD_LOCAL int rf_t_threads = 1;

#if defined(__unix__) || defined(__APPLE__)
/* Bind dgemm_, sgemm_, dgemv_, sgemv_ of the already-loaded library `path`; 1 on success. */
static int rf_blas_bind_torch(const char *path)
{
    void *handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
    void *d, *s, *dv, *sv;
    if (!handle)
        return 0;
    d = dlsym(handle, "dgemm_");
    s = dlsym(handle, "sgemm_");
    dv = dlsym(handle, "dgemv_");
    sv = dlsym(handle, "sgemv_");
    if (!d || !s || !dv || !sv) {
        dlclose(handle);
        return 0;
    }
    rf_t_dgemm = (rf_dgemm32_t)d;
    rf_t_sgemm = (rf_sgemm32_t)s;
    rf_t_dgemv = (rf_dgemv32_t)dv;
    rf_t_sgemv = (rf_sgemv32_t)sv;
    return 1;
}
#else
static int rf_blas_bind_torch(const char *path) { (void)path; return 0; }
#endif

/* SciPy's BLAS (scipy.linalg.cython_blas: 32-bit integers, the Fortran
 * signatures above), the fallback where NumPy's cannot be bound.  Its
 * pointers come from the module's __pyx_capi__ capsules, looked up only when
 * the fallback is needed: importing scipy.linalg costs 0.2-0.4 s, most of
 * `import rnnfast`.  _kernel_src/blas.pxi binds them before any kernel can reach the
 * fallback (at import without NumPy's BLAS, or when a test switches to it). */
static rf_dgemm32_t rf_s_dgemm = 0;
static rf_sgemm32_t rf_s_sgemm = 0;
static rf_dgemv32_t rf_s_dgemv = 0;
static rf_sgemv32_t rf_s_sgemv = 0;

static void rf_blas_set_scipy(void *d, void *s, void *dv, void *sv)
{
    rf_s_dgemm = (rf_dgemm32_t)d;
    rf_s_sgemm = (rf_sgemm32_t)s;
    rf_s_dgemv = (rf_dgemv32_t)dv;
    rf_s_sgemv = (rf_sgemv32_t)sv;
}
static int rf_blas_scipy_bound(void) { return rf_s_dgemm != 0; }

/* this thread calls torch's BLAS (when bound) until told otherwise; `n_threads` is
 * torch's intra-op thread count */
static void rf_blas_use_torch(int on, int n_threads)
{
    rf_t_active = on && rf_t_dgemm != 0;
    rf_t_threads = n_threads > 1 ? n_threads : 1;
}
static int rf_blas_torch_active(void) { return rf_t_active; }

/* 1 when NumPy's BLAS is bound and in use */
static int rf_blas_numpy_active(void) { return rf_np_blas_enabled && rf_np_dgemm != 0; }
static void rf_blas_enable_numpy(int on) { rf_np_blas_enabled = on; }

#endif /* RNNFAST_BLAS_NUMPY_H */
