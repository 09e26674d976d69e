// Threading for the Float kernels: a fixed split of the batch over a fixed number of threads,
// so that each thread's work and the order partial results are combined in never depend on
// timing — results are bitwise reproducible for a given thread count.
import CKernels
import Glibc

/// Runs body(0..<count) on `count` threads (the calling thread included) and waits for all:
/// the spinning workers of CKernels/pool.c (libdispatch's concurrentPerform took about 30 us to
/// wake a worker on the 2-core VM, longer than many batch-1 regions). A nested call runs its
/// parts serially on the calling thread.
func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    if count <= 1 { body(0); return }
    withoutActuallyEscaping(body) { b in
        var region = b
        withUnsafeMutablePointer(to: &region) { context in
            fk_parallel(Int32(count), { context, part in
                context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(part))
            }, context)
        }
    }
}

/// Part t of splitting 0..<n into `parts` contiguous, near-equal ranges (earlier parts larger).
@inline(__always)
func splitRange(_ n: Int, parts: Int, _ t: Int) -> Range<Int> {
    let base = n / parts, extra = n % parts
    let lo = t * base + min(t, extra)
    return lo..<(lo + base + (t < extra ? 1 : 0))
}

/// Runs `body` with OpenBLAS limited to one thread when `threads` > 1 (each of our threads
/// then calls sgemm single-threaded: no oversubscription), restoring the count afterwards.
/// Concurrent regions (sessions on several threads) share one count: the first to enter saves
/// the embedder's thread count, the last to leave restores it (saving and restoring per region
/// let overlapping regions restore each other's 1, leaving OpenBLAS at one thread for good).
func withSingleThreadedBLAS(_ threads: Int, _ body: () -> Void) {
    guard threads > 1 else { body(); return }
    pthread_mutex_lock(blasRegionLock)
    if blasRegions == 0 {
        blasSavedThreads = blasThreads()
        setBLASThreads(1)
    }
    blasRegions += 1
    pthread_mutex_unlock(blasRegionLock)
    body()
    pthread_mutex_lock(blasRegionLock)
    blasRegions -= 1
    if blasRegions == 0 { setBLASThreads(blasSavedThreads) }
    pthread_mutex_unlock(blasRegionLock)
}

nonisolated(unsafe) private var blasRegions = 0
nonisolated(unsafe) private var blasSavedThreads = 1
nonisolated(unsafe) private let blasRegionLock: UnsafeMutablePointer<pthread_mutex_t> = {
    let p = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    pthread_mutex_init(p, nil)
    return p
}()

/// Online processors, the default thread count of an executor.
public func onlineProcessors() -> Int { max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1) }
