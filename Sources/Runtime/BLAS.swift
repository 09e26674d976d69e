// The element types the runtime computes in: Float in production, Double for gradient checks.
// Every kernel is generic over `BLASReal`; the protocol adds what BinaryFloatingPoint lacks
// (gemm, exp, log) by forwarding to OpenBLAS and libm.
import CKernels
import COpenBLAS
import Glibc

public protocol BLASReal: BinaryFloatingPoint, Sendable {
    /// Row-major C = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T.
    /// op(A) is [m, k], op(B) is [k, n], C is [m, n]; lda/ldb/ldc are the row strides of the
    /// matrices as stored (before transposition).
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                     alpha: Self, a: UnsafePointer<Self>, lda: Int,
                     b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    /// Row-major y = alpha * op(A) * x + beta * y; A is [m, n] as stored, lda its row stride.
    static func gemv(trans: Bool, m: Int, n: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int,
                     x: UnsafePointer<Self>, beta: Self, y: UnsafeMutablePointer<Self>)
    /// e^x
    static func exp(_ x: Self) -> Self
    /// Natural logarithm.
    static func log(_ x: Self) -> Self
}

@inline(__always)
private func cblasTrans(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: BLASReal {
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                            alpha: Float, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, cblasTrans(transA), cblasTrans(transB),
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda),
                    b, blasint(ldb), beta, c, blasint(ldc))
    }
    @inline(__always)
    public static func gemv(trans: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                            x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>) {
        cblas_sgemv(CblasRowMajor, cblasTrans(trans), blasint(m), blasint(n), alpha, a, blasint(lda), x, 1, beta, y, 1)
    }
    @inline(__always) public static func exp(_ x: Float) -> Float { Glibc.expf(x) }
    @inline(__always) public static func log(_ x: Float) -> Float { Glibc.logf(x) }
}

extension Double: BLASReal {
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                            alpha: Double, a: UnsafePointer<Double>, lda: Int,
                            b: UnsafePointer<Double>, ldb: Int,
                            beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        cblas_dgemm(CblasRowMajor, cblasTrans(transA), cblasTrans(transB),
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda),
                    b, blasint(ldb), beta, c, blasint(ldc))
    }
    @inline(__always)
    public static func gemv(trans: Bool, m: Int, n: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
                            x: UnsafePointer<Double>, beta: Double, y: UnsafeMutablePointer<Double>) {
        cblas_dgemv(CblasRowMajor, cblasTrans(trans), blasint(m), blasint(n), alpha, a, blasint(lda), x, 1, beta, y, 1)
    }
    @inline(__always) public static func exp(_ x: Double) -> Double { Glibc.exp(x) }
    @inline(__always) public static func log(_ x: Double) -> Double { Glibc.log(x) }
}

// MARK: - Threads and timing

/// The number of threads OpenBLAS uses for one call.
public func blasThreads() -> Int { Int(openblas_get_num_threads()) }

/// Sets the number of threads OpenBLAS uses for one call.
public func setBLASThreads(_ n: Int) { openblas_set_num_threads(Int32(max(n, 1))) }

/// Seconds on the monotonic clock.
@inline(__always)
public func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// The sgemm rate of this machine right now: the best of `runs` timed n^3 products (after one
/// warm-up), in GFLOP/s, with OpenBLAS's current thread count.
public func measureSgemmGFLOPs(size n: Int = 1024, runs: Int = 5) -> Double {
    let a = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
    let b = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
    let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
    defer { a.deallocate(); b.deallocate(); c.deallocate() }
    for i in 0..<(n * n) { a[i] = Float(i % 7) * 0.25; b[i] = Float(i % 5) * 0.5; c[i] = 0 }
    var best = Double.infinity
    for r in 0...runs {
        let start = monotonicNow()
        Float.gemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: b, ldb: n, beta: 0, c: c, ldc: n)
        let t = monotonicNow() - start
        if r > 0 { best = min(best, t) }
    }
    return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
}

// MARK: - The small-matrix sgemm (CKernels/gemm.c)

/// Row-major c (m x n) = op(a) (m x k) * b (k x n), plus the old c when `accumulate`; op(a) = a
/// (rows lda apart) or, with `transA`, a^T (a is k x m, rows lda apart). The runtime's kernel for
/// the small products OpenBLAS packs at a loss (the Winograd tile products, batch 1).
public func smallSgemm(transA: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                       b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                       accumulate: Bool = false) {
    fk_sgemm(transA ? 1 : 0, Int32(m), Int32(n), Int32(k), a, lda, b, ldb, c, ldc, accumulate ? 1 : 0)
}

/// Whether `smallSgemm` and the Winograd output transform run their AVX2 + FMA code on this CPU
/// (else plain C loops).
public var smallSgemmUsesSIMD: Bool { fk_sgemm_has_simd() != 0 }

/// `smallSgemm` with b in panels of 16 columns: element (k, j) of b at
/// b[k*ldb + (j/16)*panelStride + j%16] (the layout of the Winograd filters; panelStride 16 is
/// a plain row-major b).
func smallSgemmPanels(transA: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                      b: UnsafePointer<Float>, ldb: Int, panelStride: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                      accumulate: Bool = false) {
    fk_sgemm_panels(transA ? 1 : 0, Int32(m), Int32(n), Int32(k), a, lda, b, ldb, panelStride, c, ldc, accumulate ? 1 : 0)
}

/// The instruction set `smallSgemm` runs on this CPU: 2 AVX-512F, 1 AVX2 + FMA, 0 plain C
/// (chosen at run time; lowered by `withKernelLevel`).
public var smallSgemmLevel: Int { Int(fk_simd_level()) }

/// `smallSgemmLevel` in words ("AVX-512F", "AVX2+FMA", "plain C"): what a run's event log
/// records of the kernels it ran on, since each level rounds differently.
public var smallSgemmName: String { ["plain C", "AVX2+FMA", "AVX-512F"][min(max(smallSgemmLevel, 0), 2)] }

/// Runs `body` with `smallSgemm` (and the Winograd output transform) limited to `level`
/// (1: AVX2 + FMA at most, as on a CPU without AVX-512; 0: plain C). For tests and
/// benchmarks; not thread-safe against other kernels running meanwhile.
public func withKernelLevel<R>(_ level: Int, _ body: () throws -> R) rethrows -> R {
    fk_limit_simd(Int32(level))
    defer { fk_limit_simd(2) }
    return try body()
}

/// Runs `body` with the AVX2 code of `smallSgemm` and the Winograd output transform turned off
/// (the plain C paths that CPUs without AVX2 take). For tests; not thread-safe against other
/// kernels running meanwhile.
public func withPortableKernels<R>(_ body: () throws -> R) rethrows -> R {
    fk_allow_simd(0)
    defer { fk_allow_simd(1) }
    return try body()
}
