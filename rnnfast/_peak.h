/* The machine's multiply-add peak, measured: independent FMA chains in vector registers.
 *
 * rf_peak_chains_{f,d}(isa, n_iter, a, b) runs RF_PEAK_CHAINS independent chains
 * acc <- acc * a + b, each a vector register wide, n_iter times: with enough chains in
 * flight every FMA unit issues one vector FMA per cycle (Zen 4/5, Skylake-X and later:
 * latency 4, 2 units: 8 chains suffice; 12 leave room for latency 6).  No chain reads
 * memory, so the loop measures the arithmetic units alone.  The chains' sum is returned,
 * so that the compiler keeps every one; they start at different values so that it cannot
 * merge them.
 *
 * The package is built without -march flags, so each ISA's loop is compiled for its own
 * target (__attribute__((target(...)))) and chosen at run time (rf_peak_isa_supported):
 *
 *   RF_PEAK_AVX512  avx512f, 512-bit registers (16 floats, 8 doubles)
 *   RF_PEAK_AVX2    avx2 + fma, 256-bit registers (8 floats, 4 doubles)
 *   RF_PEAK_GENERIC the compiler's 128-bit vectors (GCC/clang; a multiply and an add
 *                   unless the target has FMA and the compiler contracts them), or
 *                   scalars elsewhere.
 *
 * Threads: rf_peak_gate_wait is a spin barrier, so that the chains of every thread of a
 * measurement start together; rf_peak_now is a monotonic clock in seconds.
 */
#ifndef RF_PEAK_H
#define RF_PEAK_H

#include <stddef.h>

#define RF_PEAK_GENERIC 0
#define RF_PEAK_AVX2 1
#define RF_PEAK_AVX512 2
#define RF_PEAK_CHAINS 12

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RF_PEAK_X86 1
#include <immintrin.h>
#endif

/* Lanes of one register of `isa`, for float (f32 != 0) or double. */
static inline int rf_peak_lanes(int isa, int f32)
{
    int bytes = isa == RF_PEAK_AVX512 ? 64 : isa == RF_PEAK_AVX2 ? 32 : 16;
#if !defined(__GNUC__)
    if (isa == RF_PEAK_GENERIC)
        bytes = f32 ? 4 : 8;                /* scalars */
#endif
    return bytes / (f32 ? 4 : 8);
}

/* Whether this CPU (and the OS, for the registers' state) runs `isa`'s loop. */
static inline int rf_peak_isa_supported(int isa)
{
    if (isa == RF_PEAK_GENERIC)
        return 1;
#ifdef RF_PEAK_X86
    __builtin_cpu_init();
    if (isa == RF_PEAK_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == RF_PEAK_AVX512)
        return __builtin_cpu_supports("avx512f");
#endif
    return 0;
}

#ifdef RF_PEAK_X86
/* The loop body of every ISA: RF_PEAK_CHAINS registers of type T, FMA by FMA. */
#define RF_PEAK_LOOP(T, SET1, FMADD, ADD, REDUCE)                                     \
    T va = SET1(a), vb = SET1(b);                                                     \
    T c0 = SET1(0.00), c1 = SET1(0.01), c2 = SET1(0.02), c3 = SET1(0.03);              \
    T c4 = SET1(0.04), c5 = SET1(0.05), c6 = SET1(0.06), c7 = SET1(0.07);              \
    T c8 = SET1(0.08), c9 = SET1(0.09), c10 = SET1(0.10), c11 = SET1(0.11);            \
    for (long long i = 0; i < n_iter; ++i) {                                          \
        c0 = FMADD(c0, va, vb); c1 = FMADD(c1, va, vb); c2 = FMADD(c2, va, vb);       \
        c3 = FMADD(c3, va, vb); c4 = FMADD(c4, va, vb); c5 = FMADD(c5, va, vb);       \
        c6 = FMADD(c6, va, vb); c7 = FMADD(c7, va, vb); c8 = FMADD(c8, va, vb);       \
        c9 = FMADD(c9, va, vb); c10 = FMADD(c10, va, vb); c11 = FMADD(c11, va, vb);   \
    }                                                                                 \
    c0 = ADD(ADD(ADD(c0, c1), ADD(c2, c3)), ADD(ADD(c4, c5), ADD(c6, c7)));           \
    c0 = ADD(c0, ADD(ADD(c8, c9), ADD(c10, c11)));                                    \
    return REDUCE(c0);

__attribute__((target("avx512f")))
static float rf_peak_avx512_f(long long n_iter, float a, float b)
{
    RF_PEAK_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
                 _mm512_reduce_add_ps)
}

__attribute__((target("avx512f")))
static double rf_peak_avx512_d(long long n_iter, double a, double b)
{
    RF_PEAK_LOOP(__m512d, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_add_pd,
                 _mm512_reduce_add_pd)
}

__attribute__((target("avx2,fma")))
static inline float rf_peak_sum8_f(__m256 v)
{
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6]
           + lanes[7];
}

__attribute__((target("avx2,fma")))
static inline double rf_peak_sum4_d(__m256d v)
{
    double lanes[4];
    _mm256_storeu_pd(lanes, v);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

__attribute__((target("avx2,fma")))
static float rf_peak_avx2_f(long long n_iter, float a, float b)
{
    RF_PEAK_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, rf_peak_sum8_f)
}

__attribute__((target("avx2,fma")))
static double rf_peak_avx2_d(long long n_iter, double a, double b)
{
    RF_PEAK_LOOP(__m256d, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_add_pd, rf_peak_sum4_d)
}
#endif  /* RF_PEAK_X86 */

#if defined(__GNUC__)
typedef float rf_peak_vf __attribute__((vector_size(16)));
typedef double rf_peak_vd __attribute__((vector_size(16)));
#define RF_PEAK_GENERIC_BODY(T, S)                                                    \
    T acc[RF_PEAK_CHAINS];                                                            \
    for (int k = 0; k < RF_PEAK_CHAINS; ++k)                                          \
        for (int j = 0; j < (int)(sizeof(T) / sizeof(S)); ++j)                        \
            acc[k][j] = (S)(0.01 * k);                                                \
    for (long long i = 0; i < n_iter; ++i)                                            \
        for (int k = 0; k < RF_PEAK_CHAINS; ++k)                                      \
            acc[k] = acc[k] * a + b;                                                  \
    S sum = 0;                                                                        \
    for (int k = 0; k < RF_PEAK_CHAINS; ++k)                                          \
        for (int j = 0; j < (int)(sizeof(T) / sizeof(S)); ++j)                        \
            sum += acc[k][j];                                                         \
    return sum;
#else
#define RF_PEAK_GENERIC_BODY(T, S)                                                    \
    S acc[RF_PEAK_CHAINS];                                                            \
    for (int k = 0; k < RF_PEAK_CHAINS; ++k)                                          \
        acc[k] = (S)(0.01 * k);                                                       \
    for (long long i = 0; i < n_iter; ++i)                                            \
        for (int k = 0; k < RF_PEAK_CHAINS; ++k)                                      \
            acc[k] = acc[k] * a + b;                                                  \
    S sum = 0;                                                                        \
    for (int k = 0; k < RF_PEAK_CHAINS; ++k)                                          \
        sum += acc[k];                                                                \
    return sum;
#endif

static float rf_peak_generic_f(long long n_iter, float a, float b)
{
    RF_PEAK_GENERIC_BODY(rf_peak_vf, float)
}

static double rf_peak_generic_d(long long n_iter, double a, double b)
{
    RF_PEAK_GENERIC_BODY(rf_peak_vd, double)
}

/* n_iter rounds of the chains of `isa` (supported: the caller checked), in float. */
static float rf_peak_chains_f(int isa, long long n_iter, float a, float b)
{
#ifdef RF_PEAK_X86
    if (isa == RF_PEAK_AVX512)
        return rf_peak_avx512_f(n_iter, a, b);
    if (isa == RF_PEAK_AVX2)
        return rf_peak_avx2_f(n_iter, a, b);
#endif
    (void)isa;
    return rf_peak_generic_f(n_iter, a, b);
}

/* n_iter rounds of the chains of `isa` (supported: the caller checked), in double. */
static double rf_peak_chains_d(int isa, long long n_iter, double a, double b)
{
#ifdef RF_PEAK_X86
    if (isa == RF_PEAK_AVX512)
        return rf_peak_avx512_d(n_iter, a, b);
    if (isa == RF_PEAK_AVX2)
        return rf_peak_avx2_d(n_iter, a, b);
#endif
    (void)isa;
    return rf_peak_generic_d(n_iter, a, b);
}

/* ---- threads: a start barrier and two clocks ---- */

#if defined(_WIN32)
#include <windows.h>
static double rf_peak_now(void)
{
    LARGE_INTEGER count, frequency;
    QueryPerformanceCounter(&count);
    QueryPerformanceFrequency(&frequency);
    return (double)count.QuadPart / (double)frequency.QuadPart;
}
/* Windows' thread times advance by scheduler ticks: no CPU clock (see below). */
static double rf_peak_cpu_now(void) { return -1.0; }
#else
#include <time.h>
static double rf_peak_clock(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return -1.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double rf_peak_now(void) { return rf_peak_clock(CLOCK_MONOTONIC); }

/* The calling thread's CPU time: it does not advance while another process has the core
 * (nor, in a guest with paravirtual steal-time accounting, while the hypervisor has it);
 * -1 where there is no such clock. */
static double rf_peak_cpu_now(void)
{
#ifdef CLOCK_THREAD_CPUTIME_ID
    return rf_peak_clock(CLOCK_THREAD_CPUTIME_ID);
#else
    return -1.0;
#endif
}
#endif

typedef struct {
    long arrived;       /* threads at the barrier so far */
    long n_threads;     /* threads it waits for */
} rf_peak_gate;

/* Count `count` more threads as arrived (the caller's, or threads that never started). */
static void rf_peak_gate_arrive(rf_peak_gate *gate, long count)
{
#if defined(__GNUC__)
    __atomic_add_fetch(&gate->arrived, count, __ATOMIC_SEQ_CST);
#elif defined(_MSC_VER)
    InterlockedAdd(&gate->arrived, count);
#else
    gate->arrived += count;
#endif
}

/* Arrive, then wait until every one of the gate's threads has (spinning: none sleeps). */
static void rf_peak_gate_wait(rf_peak_gate *gate)
{
    rf_peak_gate_arrive(gate, 1);
#if defined(__GNUC__)
    while (__atomic_load_n(&gate->arrived, __ATOMIC_ACQUIRE) < gate->n_threads) {
#ifdef RF_PEAK_X86
        __builtin_ia32_pause();
#endif
    }
#elif defined(_MSC_VER)
    while (InterlockedCompareExchange(&gate->arrived, 0, -1) < gate->n_threads) {
        YieldProcessor();
    }
#endif                  /* else no atomics: the threads start as they come */
}

#endif  /* RF_PEAK_H */
