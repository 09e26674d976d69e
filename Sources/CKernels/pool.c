// The worker threads of the runtime's parallel regions (Runtime/Parallel.swift's parallelFor).
//
// Why not libdispatch: on this project's 2-core VM, DispatchQueue.concurrentPerform wakes its
// worker in about 30 us, so a region of two 19 us halves took 52 us against 38 us serially,
// and a batch-1 inference has some twenty such regions. Here the workers spin on a generation
// counter for a while after each region (a pause loop, then sched_yield so that other runnable
// threads such as OpenBLAS's get the core), then sleep on a condition variable.
//
// One region at a time: the caller that holds the pool runs part 0 and the workers parts
// 1..count-1 (participant p runs parts p, p + P, ... for P participants); a call from a worker
// (nested) or while another thread holds the pool runs all its parts serially on the calling
// thread. The parts are the same either way, so results do not depend on which path ran.
//
// Contention. On a machine where another busy process holds a core, a worker that has lost its
// core makes every region wait for it: a batch-1 inference of some twenty regions took 24 ms
// against ORT's 10.5 (one busy loop on the 2-core machine). So the caller times its own part and
// its wait for the workers; when the workers lag (the wait exceeds both the caller's own part
// and FK_LAG_NS, in a region shorter than FK_SHORT_NS) in FK_LAG_STRIKES regions in a row,
// regions run on the calling thread alone for the next FK_SERIAL_NS, then the pool is tried
// again. The parts are the same either way, so the results are too (bitwise); only the time
// changes. Batch 1, vgg_tuned, one busy loop running (Tools/bench/latency_pairs.py, two rounds):
// 4.0-4.4 ms mean against 5.3-5.9 before (ORT 6.5-7.0 in the same rounds); without the busy
// loop but with other agents' builds on the machine, 1.7-1.8 against 4.0-4.2 ms.
#include "ckernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define FK_MAX_WORKERS 63
/// Pause iterations before a waiting thread starts yielding, and yields before a worker sleeps.
#define FK_SPIN_PAUSES 4000
#define FK_SPIN_YIELDS 2000

/// A lag: the caller waited this much longer than its own part took. Regions in a row that lag
/// before the pool is set aside, and for how long.
#define FK_LAG_NS 50000L
#define FK_LAG_STRIKES 2
#define FK_SERIAL_NS 50000000L
/// Only regions whose own part is shorter count: in a long region (a training step's
/// convolution) a worker that gets part of a core still adds to the caller's; at batch 1 (regions
/// of 20-200 us) a lost timeslice costs more than the whole region.
#define FK_SHORT_NS 1000000L

static _Atomic long fk_serial_until;  // CLOCK_MONOTONIC ns before which regions run serially
static int fk_lag_strikes;            // consecutive lagging regions (the owner's)
static _Atomic long fk_serial_spells; // times the pool was set aside (for tests and benchmarks)

static long fk_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

void fk_pool_serial_for(long ns) { fk_serial_until = ns > 0 ? fk_now_ns() + ns : 0; fk_lag_strikes = 0; }

long fk_pool_serial_spells(void) { return fk_serial_spells; }

static pthread_mutex_t fk_pool_owner = PTHREAD_MUTEX_INITIALIZER;  // held by the running caller
static pthread_mutex_t fk_pool_lock = PTHREAD_MUTEX_INITIALIZER;   // guards sleeping / wake-ups
static pthread_cond_t fk_pool_wake = PTHREAD_COND_INITIALIZER;

static _Atomic unsigned long fk_generation;
static _Atomic int fk_sleeping;
static _Atomic int fk_remaining;
static int fk_workers;  // started so far (only the owner changes it)
static unsigned long fk_created_generation;  // the generation before the region a worker was started for

// The current region (written by the owner before the generation is bumped).
static void (*fk_fn)(void *, int);
static void *fk_ctx;
static int fk_count, fk_participants;

static _Thread_local int fk_is_worker;

static inline void fk_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void fk_run_parts(int participant) {
    for (int i = participant; i < fk_count; i += fk_participants) fk_fn(fk_ctx, i);
}

static void *fk_worker_main(void *arg) {
    const int self = (int)(long)arg;
    fk_is_worker = 1;
    // Not the current generation: the region this worker was started for may be published before
    // the thread first runs. (The owner waits for every worker's acknowledgement, so no later
    // worker creation overwrites this before it is read.)
    unsigned long seen = fk_created_generation;
    for (;;) {
        // Wait for the next region: spin, then yield, then sleep.
        unsigned long now;
        int spins = 0;
        while ((now = atomic_load_explicit(&fk_generation, memory_order_acquire)) == seen) {
            if (spins < FK_SPIN_PAUSES) { fk_cpu_relax(); spins++; continue; }
            if (spins < FK_SPIN_PAUSES + FK_SPIN_YIELDS) { sched_yield(); spins++; continue; }
            pthread_mutex_lock(&fk_pool_lock);
            atomic_fetch_add(&fk_sleeping, 1);
            while (atomic_load(&fk_generation) == seen) pthread_cond_wait(&fk_pool_wake, &fk_pool_lock);
            atomic_fetch_sub(&fk_sleeping, 1);
            pthread_mutex_unlock(&fk_pool_lock);
        }
        seen = now;
        if (self < fk_participants) fk_run_parts(self);
        atomic_fetch_sub_explicit(&fk_remaining, 1, memory_order_acq_rel);
    }
    return 0;
}

/// Starts workers until there are `want` (or as many as could be started).
static void fk_start_workers(int want) {
    fk_created_generation = atomic_load(&fk_generation);
    while (fk_workers < want) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attr, fk_worker_main, (void *)(long)(fk_workers + 1));
        pthread_attr_destroy(&attr);
        if (failed) break;
        fk_workers++;
    }
}

void fk_parallel(int count, void (*fn)(void *ctx, int part), void *ctx) {
    if (count <= 0) return;
    if (count == 1 || fk_is_worker || (fk_serial_until != 0 && fk_now_ns() < fk_serial_until) ||
        pthread_mutex_trylock(&fk_pool_owner) != 0) {
        for (int i = 0; i < count; i++) fn(ctx, i);
        return;
    }
    fk_start_workers(count - 1 < FK_MAX_WORKERS ? count - 1 : FK_MAX_WORKERS);
    const int workers = fk_workers;
    if (workers == 0) {
        pthread_mutex_unlock(&fk_pool_owner);
        for (int i = 0; i < count; i++) fn(ctx, i);
        return;
    }
    fk_fn = fn;
    fk_ctx = ctx;
    fk_count = count;
    fk_participants = count < workers + 1 ? count : workers + 1;
    // Every started worker acknowledges the region (idle ones run no part) before it returns.
    atomic_store(&fk_remaining, workers);
    atomic_fetch_add(&fk_generation, 1);  // sequentially consistent: pairs with fk_sleeping
    if (atomic_load(&fk_sleeping) > 0) {
        pthread_mutex_lock(&fk_pool_lock);
        pthread_cond_broadcast(&fk_pool_wake);
        pthread_mutex_unlock(&fk_pool_lock);
    }
    const long start = fk_now_ns();
    fk_run_parts(0);
    const long own = fk_now_ns() - start;
    int spins = 0;
    while (atomic_load_explicit(&fk_remaining, memory_order_acquire) > 0) {
        if (spins < FK_SPIN_PAUSES) { fk_cpu_relax(); spins++; } else sched_yield();
    }
    const long wait = fk_now_ns() - start - own;
    if (own < FK_SHORT_NS && wait > own && wait > FK_LAG_NS) {
        if (++fk_lag_strikes >= FK_LAG_STRIKES) {
            fk_lag_strikes = 0;
            fk_serial_until = fk_now_ns() + FK_SERIAL_NS;
            fk_serial_spells++;
        }
    } else {
        fk_lag_strikes = 0;
    }
    pthread_mutex_unlock(&fk_pool_owner);
}
