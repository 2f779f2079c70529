/* A persistent team of threads for the serial time loops (the Elman recurrence).
 *
 * A time loop is serial in its steps, but each step's recurrent product and its
 * elementwise epilogue split by output columns: member k of an n-member team owns
 * a column panel of the step's product and applies the epilogue to those columns
 * only, and one barrier per step makes the step's full result visible before the
 * next step reads it.  Threaded BLAS would fork and join its pool for every step's
 * small product; the team is started once and stays at the loop for its length.
 *
 *   rf_team_acquire(n)          take the team for n members (the caller is member 0;
 *                               workers are started lazily, up to n - 1); returns
 *                               the number of members, or 0 when another thread
 *                               holds the team (the caller then runs its loop
 *                               alone, the way it would without a team) or no
 *                               worker could be started.
 *   rf_team_run(fn, arg, n)     run fn(arg, k, n) on every member k, the caller's
 *                               share included; returns when all have finished.
 *   rf_team_barrier(n)          inside fn: wait for all n members.
 *   rf_team_release()           give the team back.
 *
 * Waiting: workers park on a condition variable between runs (no CPU used while
 * idle).  The per-step barrier spins (RF_TEAM_SPINS pauses), then yields the CPU
 * (RF_TEAM_YIELDS times), then sleeps on a futex (Linux; elsewhere it keeps
 * yielding): on an oversubscribed machine a member that was preempted gets its
 * CPU back instead of being starved by the others' spinning.
 *
 * BLAS inside the team: each member calls NumPy's OpenBLAS on its own panel, so
 * OpenBLAS must run each such call on the calling thread alone
 * (openblas_set_num_threads_local(1), bound by rf_team_bind_openblas); the caller
 * gets its previous setting back after the run.
 *
 * The size: rf_team_natural_size() is the number of threads NumPy's OpenBLAS uses,
 * never more than the CPUs in the calling thread's affinity mask (1: no team).
 *
 * Like _blas_numpy.h, all state here is `static` to rnnfast._kernels.
 */
#ifndef RNNFAST_TEAM_H
#define RNNFAST_TEAM_H

typedef void (*rf_team_fn)(void *arg, int member, int n_members);

/* Tests: 1 plans the team on every shape, 0 never, -1 by the measured plan. */
static int rf_team_forced = -1;
static void rf_team_force(int forced) { rf_team_forced = forced; }
/* Tests: runs of the team so far (written by the team's holder only). */
static long rf_team_runs = 0;

#if defined(__unix__) || defined(__APPLE__)
#define RF_TEAM_THREADS 1
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <unistd.h>
#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#endif
#if defined(__linux__)
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#define RF_TEAM_FUTEX 1
#endif

#define RF_TEAM_MAX 64          /* members at most */
#define RF_TEAM_SPINS 4000      /* pauses before a barrier yields (~20-60 us) */
#define RF_TEAM_YIELDS 64       /* sched_yield()s before it sleeps */

typedef int (*rf_team_threads_local_t)(int);
typedef int (*rf_team_get_threads_t)(void);
static rf_team_threads_local_t rf_team_threads_local = 0;
static rf_team_get_threads_t rf_team_blas_threads = 0;

static pthread_mutex_t rf_team_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rf_team_wake = PTHREAD_COND_INITIALIZER;
static int rf_team_busy = 0;            /* a caller holds the team (atomic) */
static int rf_team_workers = 0;         /* workers started (under the lock) */
static unsigned rf_team_job = 0;        /* number of runs posted (under the lock) */
static rf_team_fn rf_team_job_fn = 0;
static void *rf_team_job_arg = 0;
static int rf_team_job_members = 0;
static int rf_team_job_left = 0;        /* workers still in the current run (atomic) */
static int rf_team_atfork_set = 0;
/* the barrier: arrivals of this round, the round's number, sleepers on the futex */
static int rf_team_arrived = 0;
static unsigned rf_team_round = 0;
static int rf_team_sleepers = 0;

static inline void rf_team_pause(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void rf_team_sleep(unsigned *word, unsigned value)
{
#ifdef RF_TEAM_FUTEX
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
#else
    (void)word; (void)value;
    sched_yield();
#endif
}

static void rf_team_wake_all(unsigned *word)
{
#ifdef RF_TEAM_FUTEX
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
#endif
}

/* Wait until *word differs from `value`: spin, then yield, then sleep on the futex
 * (whoever changes *word wakes the sleepers: see rf_team_sleepers). */
static void rf_team_wait_change(unsigned *word, unsigned value)
{
    int i;
    for (i = 0; i < RF_TEAM_SPINS; ++i) {
        if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != value)
            return;
        rf_team_pause();
    }
    for (i = 0; i < RF_TEAM_YIELDS; ++i) {
        if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != value)
            return;
        sched_yield();
    }
    __atomic_add_fetch(&rf_team_sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(word, __ATOMIC_SEQ_CST) == value)
        rf_team_sleep(word, value);
    __atomic_sub_fetch(&rf_team_sleepers, 1, __ATOMIC_SEQ_CST);
}

/* Wait for all n members (a reusable barrier: rounds are numbered). */
static void rf_team_barrier(int n_members)
{
    unsigned round;
    if (n_members <= 1)
        return;
    round = __atomic_load_n(&rf_team_round, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&rf_team_arrived, 1, __ATOMIC_ACQ_REL) == n_members) {
        /* the last to arrive opens the next round */
        __atomic_store_n(&rf_team_arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&rf_team_round, round + 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&rf_team_sleepers, __ATOMIC_SEQ_CST))
            rf_team_wake_all(&rf_team_round);
        return;
    }
    rf_team_wait_change(&rf_team_round, round);
}

static void *rf_team_worker(void *index_and_job)
{
    uintptr_t packed = (uintptr_t)index_and_job;
    int member = (int)(packed & 0xff);
    unsigned seen = (unsigned)(packed >> 8);    /* the last run posted before its start */
    rf_team_fn fn;
    void *arg;
    int n_members;
    if (rf_team_threads_local)
        rf_team_threads_local(1);               /* its BLAS calls stay on this thread */
    pthread_mutex_lock(&rf_team_lock);
    for (;;) {
        while (rf_team_job == seen)
            pthread_cond_wait(&rf_team_wake, &rf_team_lock);
        seen = rf_team_job;
        fn = rf_team_job_fn;
        arg = rf_team_job_arg;
        n_members = rf_team_job_members;
        pthread_mutex_unlock(&rf_team_lock);
        if (member < n_members) {
            fn(arg, member, n_members);
            __atomic_sub_fetch(&rf_team_job_left, 1, __ATOMIC_ACQ_REL);
        }
        pthread_mutex_lock(&rf_team_lock);
    }
    return NULL;
}

/* In a child after fork(), the workers are gone: start afresh. */
static void rf_team_after_fork(void)
{
    pthread_mutex_init(&rf_team_lock, NULL);
    pthread_cond_init(&rf_team_wake, NULL);
    rf_team_busy = 0;
    rf_team_workers = 0;
    rf_team_job_left = 0;
    rf_team_arrived = 0;
    rf_team_sleepers = 0;
}

static int rf_team_cpus(void)
{
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return CPU_COUNT(&set);
#endif
    {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (int)n : 1;
    }
}

/* Bind openblas_set_num_threads_local and the thread count of NumPy's OpenBLAS
 * (the library `path`, already loaded); 1 when both are found. */
static int rf_team_bind_openblas(const char *path)
{
    void *handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
    void *local, *count;
    if (!handle)
        return 0;
    local = dlsym(handle, "openblas_set_num_threads_local");
    count = dlsym(handle, "scipy_openblas_get_num_threads64_");
    if (!local || !count) {
        dlclose(handle);
        return 0;
    }
    rf_team_threads_local = (rf_team_threads_local_t)local;
    rf_team_blas_threads = (rf_team_get_threads_t)count;
    return 1;
}

/* Members the plan may use: NumPy's OpenBLAS threads, within the affinity mask;
 * 1 (no team) when OpenBLAS's per-thread setting is not bound. */
static int rf_team_natural_size(void)
{
    int n, cpus;
    if (!rf_team_threads_local || !rf_team_blas_threads)
        return 1;
    n = rf_team_blas_threads();
    cpus = rf_team_cpus();
    if (n > cpus)
        n = cpus;
    if (n > RF_TEAM_MAX)
        n = RF_TEAM_MAX;
    return n < 1 ? 1 : n;
}

static int rf_team_acquire(int n_members)
{
    int expected = 0;
    if (n_members < 2)
        return 0;
    if (n_members > RF_TEAM_MAX)
        n_members = RF_TEAM_MAX;
    if (!__atomic_compare_exchange_n(&rf_team_busy, &expected, 1, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return 0;                                /* another thread runs it */
    pthread_mutex_lock(&rf_team_lock);
    if (!rf_team_atfork_set) {
        pthread_atfork(NULL, NULL, rf_team_after_fork);
        rf_team_atfork_set = 1;
    }
    while (rf_team_workers < n_members - 1) {
        pthread_t thread;
        pthread_attr_t attr;
        uintptr_t packed = ((uintptr_t)rf_team_job << 8) | (uintptr_t)(rf_team_workers + 1);
        int failed;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        failed = pthread_create(&thread, &attr, rf_team_worker, (void *)packed);
        pthread_attr_destroy(&attr);
        if (failed)
            break;
        rf_team_workers += 1;
    }
    if (n_members > rf_team_workers + 1)
        n_members = rf_team_workers + 1;
    pthread_mutex_unlock(&rf_team_lock);
    if (n_members < 2) {
        __atomic_store_n(&rf_team_busy, 0, __ATOMIC_RELEASE);
        return 0;
    }
    return n_members;
}

static void rf_team_release(void)
{
    __atomic_store_n(&rf_team_busy, 0, __ATOMIC_RELEASE);
}

static void rf_team_run(rf_team_fn fn, void *arg, int n_members)
{
    int previous = 0;
    if (rf_team_threads_local)
        previous = rf_team_threads_local(1);
    __atomic_store_n(&rf_team_job_left, n_members - 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&rf_team_lock);
    rf_team_job_fn = fn;
    rf_team_job_arg = arg;
    rf_team_job_members = n_members;
    rf_team_job += 1;
    pthread_cond_broadcast(&rf_team_wake);
    pthread_mutex_unlock(&rf_team_lock);
    rf_team_runs += 1;
    fn(arg, 0, n_members);
    /* the others finish their last step after the final barrier of fn: wait */
    {
        int spins = 0;
        while (__atomic_load_n(&rf_team_job_left, __ATOMIC_ACQUIRE) > 0) {
            if (++spins < RF_TEAM_SPINS)
                rf_team_pause();
            else
                sched_yield();
        }
    }
    if (rf_team_threads_local)
        rf_team_threads_local(previous > 0 ? previous : 1);
}

#else   /* no pthreads: no team */
static int rf_team_bind_openblas(const char *path) { (void)path; return 0; }
static int rf_team_natural_size(void) { return 1; }
static int rf_team_acquire(int n_members) { (void)n_members; return 0; }
static void rf_team_release(void) {}
static void rf_team_run(rf_team_fn fn, void *arg, int n_members) { fn(arg, 0, 1); (void)n_members; }
static void rf_team_barrier(int n_members) { (void)n_members; }
#endif

#endif /* RNNFAST_TEAM_H */
