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
func withSingleThreadedBLAS(_ threads: Int, _ body: () -> Void) {
    guard threads > 1 else { body(); return }
    let previous = blasThreads()
    setBLASThreads(1)
    body()
    setBLASThreads(previous)
}

/// Online processors, the default thread count of an executor.
public func onlineProcessors() -> Int { max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1) }
