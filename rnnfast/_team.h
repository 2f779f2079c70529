/* A persistent team of threads for the serial time loops (the Elman recurrence).
 *
 * A time loop is serial in its steps, but each step's recurrent product and its
 * elementwise epilogue split by output columns into panels: the task (step s, panel p)
 * runs the step's product and epilogue on panel p's columns only.  Step s's tasks
 * need every task of step s - 1 done, nothing else.  The members of the team take
 * tasks in order from one counter (a ticket k is the task (k / n_panels, k % n_panels))
 * and each waits, before its task, until all tasks of the previous step are done (a
 * second counter).  So no member waits for another member as such, only for the
 * work: a member that is preempted or late (on a busy machine) holds back at most
 * the one task it took, the others take the rest, and the caller alone can run the
 * whole loop.  Threaded BLAS would fork and join its pool for every step's small
 * product; the team is started once and stays at the loop for its length.
 *
 *   rf_team_acquire(n)          take the team for n members (the caller is member 0;
 *                               workers are started lazily, up to n - 1); returns
 *                               the number of members, or 0 when another thread
 *                               holds the team (the caller then runs its loop
 *                               alone, the way it would without a team) or no
 *                               worker could be started.
 *   rf_team_run(fn, arg, n)     run fn(arg, k, n) on the caller (k = 0) and on every
 *                               worker that joins before the run ends; returns when
 *                               every member that joined has left.
 *   rf_team_claim()             inside fn: the next ticket (0, 1, ...: each once).
 *   rf_team_wait_done(k)        inside fn: wait until k tasks are done.
 *   rf_team_task_done()         inside fn: one more task done.
 *   rf_team_release()           give the team back.
 *
 * Waiting: workers park on a condition variable between runs (no CPU used while
 * idle).  rf_team_wait_done spins (RF_TEAM_SPINS pauses), then yields the CPU
 * (RF_TEAM_YIELDS times), then sleeps on a futex (Linux; elsewhere it keeps
 * yielding), so that on an oversubscribed machine the member it waits for gets a CPU.
 *
 * BLAS inside the team: each member calls NumPy's OpenBLAS on its own panel, so
 * OpenBLAS must run each such call on the calling thread alone
 * (openblas_set_num_threads_local(1), bound by rf_team_bind_openblas).  NumPy's
 * OpenBLAS applies that call to its process-wide thread count as well, so members
 * make it only inside a run, and the caller sets the count back once every member
 * has left the run.
 *
 * Inside an rnnfast.torch operator (rf_t_active, _blas_numpy.h: the kernels call
 * torch's MKL) the team is torch's own intra-op pool: rf_team_run hands the run to
 * torch's OpenMP runtime (GOMP_parallel of the libgomp torch loaded, bound by
 * rf_team_bind_gomp), whose threads are members 1, 2, ... for the run.  A team of
 * its own threads measured slower there: after each of torch's ops, torch's OpenMP
 * threads spin for a while, and took the second core from the team's worker (LSTM
 * (8, 256) forward + backward: 41 ms with that team, 26 without; 21 ms with
 * OMP_WAIT_POLICY=PASSIVE).  The members' products run as everywhere else in the
 * team, in NumPy's OpenBLAS on their own thread (rf_t_active is 0 for the run):
 * torch's MKL on one thread measured slower on the AMD EPYC here (MKL's generic
 * kernels; LSTM (32, 256): 57-72 ms against 50-55).  So one pool runs at a time.
 * Without GOMP_parallel bound, no team runs inside the operators.
 *
 * The size: rf_team_natural_size() is the number of threads NumPy's OpenBLAS uses
 * (inside an rnnfast.torch operator: torch's intra-op threads), never more than the
 * CPUs in the calling thread's affinity mask (1: no team).
 *
 * Like _blas_numpy.h, all state here is `static` to rnnfast._kernels.
 */
#ifndef RNNFAST_TEAM_H
#define RNNFAST_TEAM_H

#include "_blas_numpy.h"        /* rf_t_active, rf_t_threads */

typedef void (*rf_team_fn)(void *arg, int member, int n_members);

/* Tests: 1 plans the team on every shape, 0 never, -1 by the measured plan. */
static int rf_team_forced = -1;
static void rf_team_force(int forced) { rf_team_forced = forced; }
/* Tests: time loops, and products hoisted out of them, run on the team so far
 * (written by the team's holder only, in _kernel_src/elman_team.pxi's _team_go). */
static long rf_team_runs = 0;
static long rf_team_product_runs = 0;

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#define RF_TEAM_FUTEX 1
#endif

#define RF_TEAM_MAX 64          /* members at most */
#define RF_TEAM_SPINS 4000      /* pauses before a wait yields (~20-60 us) */
#define RF_TEAM_YIELDS 64       /* sched_yield()s before it sleeps */

typedef int (*rf_team_threads_local_t)(int);
typedef int (*rf_team_get_threads_t)(void);
static rf_team_threads_local_t rf_team_threads_local = 0;
static rf_team_get_threads_t rf_team_blas_threads = 0;
/* torch's OpenMP runtime: GOMP_parallel (libgomp's entry for `omp parallel`, which
 * Intel's runtime provides too) and omp_get_thread_num */
typedef void (*rf_gomp_parallel_t)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*rf_omp_thread_num_t)(void);
static rf_gomp_parallel_t rf_gomp_parallel = 0;
static rf_omp_thread_num_t rf_omp_thread_num = 0;

static pthread_mutex_t rf_team_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rf_team_wake = PTHREAD_COND_INITIALIZER;
static int rf_team_busy = 0;            /* a caller holds the team (atomic) */
static int rf_team_workers = 0;         /* workers started (under the lock) */
static unsigned rf_team_job = 0;        /* number of runs posted (under the lock) */
static rf_team_fn rf_team_job_fn = 0;
static void *rf_team_job_arg = 0;
static int rf_team_job_members = 0;
static int rf_team_atfork_set = 0;
/* The run's state: the run's number (high 32 bits), RF_TEAM_CLOSED once the caller
 * has finished, and the workers inside the run (low bits).  A worker joins only the
 * run it was woken for, and only while it is open. */
#define RF_TEAM_CLOSED 0x80000000ULL
static unsigned long long rf_team_state = 0;
/* the run's tickets taken and tasks done; rf_team_done_word changes with every task
 * done (the futex word), rf_team_sleepers counts the members asleep on it */
static long long rf_team_next_ticket = 0;
static long long rf_team_done = 0;
static unsigned rf_team_done_word = 0;
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

/* Wait until `target` tasks of the run are done: spin, then yield, then sleep. */
static void rf_team_wait_done(long long target)
{
    int i;
    unsigned word;
    for (i = 0; i < RF_TEAM_SPINS; ++i) {
        if (__atomic_load_n(&rf_team_done, __ATOMIC_ACQUIRE) >= target)
            return;
        rf_team_pause();
    }
    for (i = 0; i < RF_TEAM_YIELDS; ++i) {
        if (__atomic_load_n(&rf_team_done, __ATOMIC_ACQUIRE) >= target)
            return;
        sched_yield();
    }
    /* a sleeper counts itself before it reads the word and the count; a task's end
     * changes both before it reads the sleepers: one of the two sees the other */
    __atomic_add_fetch(&rf_team_sleepers, 1, __ATOMIC_SEQ_CST);
    for (;;) {
        word = __atomic_load_n(&rf_team_done_word, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&rf_team_done, __ATOMIC_SEQ_CST) >= target)
            break;
        rf_team_sleep(&rf_team_done_word, word);
    }
    __atomic_sub_fetch(&rf_team_sleepers, 1, __ATOMIC_SEQ_CST);
}

static void rf_team_task_done(void)
{
    __atomic_add_fetch(&rf_team_done, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&rf_team_done_word, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&rf_team_sleepers, __ATOMIC_SEQ_CST))
        rf_team_wake_all(&rf_team_done_word);
}

static long long rf_team_claim(void)
{
    return __atomic_fetch_add(&rf_team_next_ticket, 1, __ATOMIC_ACQ_REL);
}

/* Enter run `run` if it is still open; 1 when entered. */
static int rf_team_join(unsigned run)
{
    unsigned long long state = __atomic_load_n(&rf_team_state, __ATOMIC_ACQUIRE);
    for (;;) {
        if ((unsigned)(state >> 32) != run || (state & RF_TEAM_CLOSED))
            return 0;
        if (__atomic_compare_exchange_n(&rf_team_state, &state, state + 1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
    }
}

static void *rf_team_worker(void *index_and_job)
{
    uintptr_t packed = (uintptr_t)index_and_job;
    int member = (int)(packed & 0xff);
    unsigned seen = (unsigned)(packed >> 8);    /* the last run posted before its start */
    rf_team_fn fn;
    void *arg;
    int n_members;
    pthread_mutex_lock(&rf_team_lock);
    for (;;) {
        while (rf_team_job == seen)
            pthread_cond_wait(&rf_team_wake, &rf_team_lock);
        seen = rf_team_job;
        fn = rf_team_job_fn;
        arg = rf_team_job_arg;
        n_members = rf_team_job_members;
        pthread_mutex_unlock(&rf_team_lock);
        if (member < n_members && rf_team_join(seen)) {
            /* its BLAS calls stay on this thread.  NumPy's OpenBLAS applies this to its
             * process-wide count too, which the caller sets back once every member has
             * left the run: so it is set only inside a run (a worker setting it when it
             * started, after the caller had set it back, left every later BLAS call of
             * the process on one thread, and the plan without a team) */
            if (rf_team_threads_local)
                rf_team_threads_local(1);
            fn(arg, member, n_members);
            __atomic_sub_fetch(&rf_team_state, 1, __ATOMIC_ACQ_REL);       /* leave */
        }
        pthread_mutex_lock(&rf_team_lock);
    }
    return NULL;
}

/* fork(): the lock is held across it, so that the child never gets it locked by a
 * thread that does not exist there; in the child the workers are gone: start afresh. */
static void rf_team_before_fork(void) { pthread_mutex_lock(&rf_team_lock); }
static void rf_team_parent_after_fork(void) { pthread_mutex_unlock(&rf_team_lock); }

static void rf_team_after_fork(void)
{
    pthread_mutex_unlock(&rf_team_lock);        /* this thread took it before the fork */
    pthread_cond_init(&rf_team_wake, NULL);
    rf_team_busy = 0;
    rf_team_workers = 0;
    rf_team_state = 0;
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

/* The symbols `first` and `second` of the already-loaded library `path`; 1 when both are
 * found (the handle then stays open: the library stays loaded anyway). */
static int rf_team_dlsym2(const char *path, const char *first, const char *second,
                          void **first_out, void **second_out)
{
    void *handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
    if (!handle)
        return 0;
    *first_out = dlsym(handle, first);
    *second_out = dlsym(handle, second);
    if (!*first_out || !*second_out) {
        dlclose(handle);
        return 0;
    }
    return 1;
}

/* Bind openblas_set_num_threads_local and the thread count of NumPy's OpenBLAS
 * (the library `path`, already loaded); 1 when both are found. */
static int rf_team_bind_openblas(const char *path)
{
    void *local, *count;
    if (!rf_team_dlsym2(path, "openblas_set_num_threads_local",
                        "scipy_openblas_get_num_threads64_", &local, &count))
        return 0;
    rf_team_threads_local = (rf_team_threads_local_t)local;
    rf_team_blas_threads = (rf_team_get_threads_t)count;
    return 1;
}

/* Bind GOMP_parallel and omp_get_thread_num of the OpenMP runtime `path` (torch's,
 * already loaded); 1 when both are found. */
static int rf_team_bind_gomp(const char *path)
{
    void *parallel, *thread_num;
    if (!rf_team_dlsym2(path, "GOMP_parallel", "omp_get_thread_num", &parallel, &thread_num))
        return 0;
    rf_gomp_parallel = (rf_gomp_parallel_t)parallel;
    rf_omp_thread_num = (rf_omp_thread_num_t)thread_num;
    return 1;
}

/* One run on torch's OpenMP threads: what each of them runs. */
typedef struct {
    rf_team_fn fn;
    void *arg;
    int n_members;
} rf_team_gomp_run_t;

static void rf_team_gomp_member(void *p)
{
    rf_team_gomp_run_t *run = (rf_team_gomp_run_t *)p;
    int member = rf_omp_thread_num();
    /* NumPy's OpenBLAS on this thread alone, as for the team's own workers (the
     * caller, member 0, is set up by rf_team_run; the setting stays on torch's
     * threads, which call no other OpenBLAS) */
    if (member != 0 && rf_team_threads_local)
        rf_team_threads_local(1);
    run->fn(run->arg, member, run->n_members);
}

/* Members the plan may use: NumPy's OpenBLAS threads (inside an rnnfast.torch
 * operator, torch's intra-op threads), within the affinity mask; 1 (no team) when
 * that BLAS's per-thread setting is not bound. */
static int rf_team_natural_size(void)
{
    int n, cpus;
    if (!rf_team_threads_local || !rf_team_blas_threads)
        return 1;
    if (rf_t_active) {
        if (!rf_gomp_parallel)
            return 1;
        n = rf_t_threads;
    } else {
        n = rf_team_blas_threads();
    }
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
    if (rf_t_active && rf_gomp_parallel)
        return n_members;                       /* torch's OpenMP threads: rf_team_run */
    pthread_mutex_lock(&rf_team_lock);
    if (!rf_team_atfork_set) {
        pthread_atfork(rf_team_before_fork, rf_team_parent_after_fork, rf_team_after_fork);
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

/* rf_team_run on the team's own workers */
static void rf_team_run_own(rf_team_fn fn, void *arg, int n_members)
{
    int spins = 0;
    unsigned run;
    /* no worker is inside a run here (the last one waited for them to leave) */
    __atomic_store_n(&rf_team_next_ticket, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&rf_team_done, 0, __ATOMIC_RELAXED);
    pthread_mutex_lock(&rf_team_lock);
    rf_team_job_fn = fn;
    rf_team_job_arg = arg;
    rf_team_job_members = n_members;
    run = ++rf_team_job;
    __atomic_store_n(&rf_team_state, (unsigned long long)run << 32, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&rf_team_wake);
    pthread_mutex_unlock(&rf_team_lock);
    fn(arg, 0, n_members);
    /* fn returns on the caller once every task is done: close the run (late workers
     * stay out) and wait for the workers inside it to leave (they take one more
     * ticket, past the last, and return) */
    __atomic_fetch_or(&rf_team_state, RF_TEAM_CLOSED, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&rf_team_state, __ATOMIC_ACQUIRE) & (RF_TEAM_CLOSED - 1)) {
        if (++spins < RF_TEAM_SPINS) {
            rf_team_pause();
        } else if (spins < RF_TEAM_SPINS + RF_TEAM_YIELDS) {
            sched_yield();
        } else {
            /* a worker preempted before its last ticket: nap instead of burning a CPU
             * the busy machine needs (it leaves as soon as it runs again) */
            struct timespec nap = {0, 20000};
            nanosleep(&nap, NULL);
        }
    }
}

/* Run fn on the team: torch's OpenMP threads inside an rnnfast.torch operator, the
 * team's own workers elsewhere; NumPy's OpenBLAS on each member's own thread. */
static void rf_team_run(rf_team_fn fn, void *arg, int n_members)
{
    int previous = 0, torch = rf_t_active;
    if (rf_team_threads_local)
        previous = rf_team_threads_local(1);
    rf_t_active = 0;            /* the members' products: NumPy's OpenBLAS (see the top) */
    if (torch && rf_gomp_parallel) {
        /* torch's intra-op pool is the team (see the top of this file) */
        rf_team_gomp_run_t gomp_run;
        gomp_run.fn = fn;
        gomp_run.arg = arg;
        gomp_run.n_members = n_members;
        __atomic_store_n(&rf_team_next_ticket, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&rf_team_done, 0, __ATOMIC_RELAXED);
        rf_gomp_parallel(rf_team_gomp_member, &gomp_run, (unsigned)n_members, 0);
    } else {
        rf_team_run_own(fn, arg, n_members);
    }
    rf_t_active = torch;
    if (rf_team_threads_local)
        rf_team_threads_local(previous > 0 ? previous : 1);
}

#else   /* no pthreads: no team */
static int rf_team_bind_openblas(const char *path) { (void)path; return 0; }
static int rf_team_bind_gomp(const char *path) { (void)path; return 0; }
static int rf_team_natural_size(void) { return 1; }
static int rf_team_acquire(int n_members) { (void)n_members; return 0; }
static void rf_team_release(void) {}
static void rf_team_run(rf_team_fn fn, void *arg, int n_members)
{
    rf_team_next_ticket = 0;
    fn(arg, 0, 1);
    (void)n_members;
}
static long long rf_team_next_ticket = 0;
static long long rf_team_claim(void) { return rf_team_next_ticket++; }
static void rf_team_wait_done(long long target) { (void)target; }
static void rf_team_task_done(void) {}
#endif

#endif /* RNNFAST_TEAM_H */
