// The small-matrix sgemm (CKernels/gemm.c) against a double-precision triple loop, over the
// shapes its kernel specializes (row blocks of 1..6, column panels of 16 with masked tails of
// 1..15, transposed A, accumulate), and the worker pool of parallelFor (CKernels/pool.c).
import XCTest
import CKernels
@testable import Runtime

final class SmallGemmTests: RuntimeTestCase {
    func check(transA: Bool, m: Int, n: Int, k: Int, accumulate: Bool, seed: UInt64,
               file: StaticString = #filePath, line: UInt = #line) {
        var rng = TestRNG(seed: seed)
        // Leading dimensions larger than the matrices, so that stride mistakes show.
        let lda = (transA ? m : k) + 3, ldb = n + 5, ldc = n + 2
        let a = Buf(rng.array((transA ? k : m) * lda).map(Float.init))
        let b = Buf(rng.array(k * ldb).map(Float.init))
        let c0 = rng.array(m * ldc).map(Float.init)
        let c = Buf(c0)
        smallSgemm(transA: transA, m: m, n: n, k: k, a: a.p, lda: lda, b: b.p, ldb: ldb, c: c.p, ldc: ldc,
                   accumulate: accumulate)
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<ldc {
                let got = Double(c.p[i * ldc + j])
                guard j < n else {
                    // Past column n: untouched.
                    XCTAssertEqual(got, Double(c0[i * ldc + j]), "wrote outside the matrix at (\(i), \(j))",
                                   file: file, line: line)
                    continue
                }
                var want = accumulate ? Double(c0[i * ldc + j]) : 0
                for q in 0..<k {
                    let av = transA ? a.p[q * lda + i] : a.p[i * lda + q]
                    want += Double(av) * Double(b.p[q * ldb + j])
                }
                worst = max(worst, abs(got - want))
            }
        }
        // k products of values in [-1, 1): float rounding grows like k * 2^-24.
        XCTAssertLessThan(worst, Double(k + 1) * 2e-7,
                          "transA \(transA) m \(m) n \(n) k \(k) accumulate \(accumulate)", file: file, line: line)
    }

    func testEveryRowAndColumnTailAgainstDouble() {
        var seed: UInt64 = 1
        for transA in [false, true] {
            for m in [1, 2, 3, 4, 5, 6, 7, 13] {
                for n in [1, 5, 8, 9, 15, 16, 17, 24, 33] {
                    check(transA: transA, m: m, n: n, k: 7, accumulate: seed % 2 == 0, seed: seed)
                    seed += 1
                }
            }
        }
    }

    /// The plain C loop that CPUs without AVX2 and FMA run.
    func testPortablePathAgainstDouble() {
        withPortableKernels {
            XCTAssertFalse(smallSgemmUsesSIMD)
            for (transA, m, n, k) in [(false, 7, 19, 5), (true, 9, 33, 12), (true, 1, 1, 1)] {
                check(transA: transA, m: m, n: n, k: k, accumulate: m == 7, seed: UInt64(n))
            }
        }
    }

    /// Each instruction set the CPU has (AVX-512F 12-row blocks with k in blocks of 128, AVX2
    /// 6-row blocks, plain C), forced in turn, on row tails past 12 and 24, column tails and depths
    /// across the k blocks.
    func testEveryKernelLevelAgainstDouble() {
        var seed: UInt64 = 100
        for level in [2, 1, 0] {
            withKernelLevel(level) {
                XCTAssertLessThanOrEqual(smallSgemmLevel, level)
                for transA in [false, true] {
                    for (m, n, k) in [(1, 1, 1), (12, 16, 9), (13, 17, 129), (25, 33, 300), (11, 15, 128), (24, 40, 257)] {
                        check(transA: transA, m: m, n: n, k: k, accumulate: seed % 2 == 0, seed: seed)
                        seed += 1
                    }
                }
            }
        }
        print("smallSgemm level on this CPU: \(smallSgemmLevel)")
    }

    /// B in panels of 16 columns (the Winograd filters' layout) at every level: the same product
    /// as with B gathered into a plain matrix.
    func testPanelLayoutMatchesPlainLayout() {
        var rng = TestRNG(seed: 77)
        let m = 14, n = 37, k = 140, panels = (n + 15) / 16, ps = 16 * k + 48  // panels ps floats apart
        let a = Buf(rng.array(k * m).map(Float.init))
        let bp = Buf(rng.array(panels * ps).map(Float.init))
        var plain = [Float](repeating: 0, count: k * n)
        for q in 0..<k { for j in 0..<n { plain[q * n + j] = bp.p[(j / 16) * ps + q * 16 + j % 16] } }
        let b = Buf(plain)
        for level in [2, 1, 0] {
            withKernelLevel(level) {
                let want = Buf<Float>(zeros: m * n), got = Buf<Float>(zeros: m * n)
                smallSgemm(transA: true, m: m, n: n, k: k, a: a.p, lda: m, b: b.p, ldb: n, c: want.p, ldc: n)
                smallSgemmPanels(transA: true, m: m, n: n, k: k, a: a.p, lda: m, b: bp.p, ldb: 16, panelStride: ps,
                                 c: got.p, ldc: n)
                var worst: Float = 0
                for i in 0..<(m * n) { worst = max(worst, abs(got.p[i] - want.p[i])) }
                XCTAssertLessThan(worst, 1e-4, "level \(level)")
            }
        }
    }

    func testWinogradShapes() {
        // The tile products of vgg_tuned at batch 1 and 128: (tiles, channels out, channels in).
        for (m, n, k) in [(9, 128, 128), (36, 64, 32), (144, 32, 32), (27, 128, 64)] {
            check(transA: true, m: m, n: n, k: k, accumulate: false, seed: UInt64(m * n + k))
        }
        check(transA: false, m: 32, n: 100, k: 9, accumulate: true, seed: 5)
    }

    func testEmptyShapes() {
        let c = Buf<Float>([1, 2, 3, 4])
        let a = Buf<Float>([1]), b = Buf<Float>([1])
        smallSgemm(transA: false, m: 2, n: 2, k: 0, a: a.p, lda: 1, b: b.p, ldb: 2, c: c.p, ldc: 2)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: c.p, count: 4)), [0, 0, 0, 0], "k = 0 sets c to zero")
        c.p.update(repeating: 7, count: 4)
        smallSgemm(transA: false, m: 2, n: 2, k: 0, a: a.p, lda: 1, b: b.p, ldb: 2, c: c.p, ldc: 2, accumulate: true)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: c.p, count: 4)), [7, 7, 7, 7], "k = 0 with accumulate keeps c")
        smallSgemm(transA: false, m: 0, n: 2, k: 3, a: a.p, lda: 3, b: b.p, ldb: 2, c: c.p, ldc: 2)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: c.p, count: 4)), [7, 7, 7, 7], "m = 0 writes nothing")
    }

    // MARK: - The worker pool

    /// Every part runs exactly once, on more parts than workers, many regions in a row, and a
    /// nested region runs all its parts (serially, on the calling worker).
    func testParallelForRunsEveryPartOnce() {
        for count in [1, 2, 3, 5, 8] {
            for _ in 0..<200 {
                let hits = Buf<Int>(Array(repeating: 0, count: count * count))
                parallelFor(count) { part in
                    parallelFor(count) { inner in hits.p[part * count + inner] += 1 }
                }
                let all = Array(UnsafeBufferPointer(start: hits.p, count: count * count))
                if all != Array(repeating: 1, count: count * count) {
                    XCTFail("parallelFor(\(count)) ran parts \(all) times")
                    return
                }
            }
        }
    }

    /// While the pool is set aside (as it sets itself aside when its workers lag behind a busy
    /// machine), every part still runs once, on the calling thread, and a region after the spell
    /// runs on the pool again with the same parts.
    func testSetAsidePoolRunsEveryPartOnce() {
        fk_pool_serial_for(10_000_000_000)
        defer { fk_pool_serial_for(0) }
        let me = pthread_self()
        for count in [2, 5] {
            let hits = Buf<Int>(Array(repeating: 0, count: count)), elsewhere = Buf<Int>([0])
            parallelFor(count) { part in
                hits.p[part] += 1
                if pthread_equal(pthread_self(), me) == 0 { elsewhere.p[0] += 1 }
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: hits.p, count: count)), Array(repeating: 1, count: count))
            XCTAssertEqual(elsewhere.p[0], 0, "a part ran on a worker while the pool was set aside")
        }
        fk_pool_serial_for(0)
        let hits = Buf<Int>(Array(repeating: 0, count: 4))
        parallelFor(4) { hits.p[$0] += 1 }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: hits.p, count: 4)), [1, 1, 1, 1])
    }

    /// Regions called from several threads at once (two executors in one process): each runs
    /// all its parts, either on the pool or serially.
    func testParallelForFromSeveralThreads() {
        let results = Buf<Int>(Array(repeating: 0, count: 4))
        let out = SendablePointer(value: results.p)
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            var total = 0
            for _ in 0..<300 {
                let parts = Buf<Int>(Array(repeating: 0, count: 2))
                parallelFor(2) { parts.p[$0] = $0 + 1 }
                total += parts.p[0] + parts.p[1]
            }
            out.value[caller] = total
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: results.p, count: 4)), [900, 900, 900, 900])
    }
}

/// A pointer handed to the threads of a test; each writes its own element.
private struct SendablePointer: @unchecked Sendable { let value: UnsafeMutablePointer<Int> }

/// The threaded dense forward (rows of the weights split for one sample, samples split for a
/// batch) against a double triple loop.
final class ThreadedDenseTests: RuntimeTestCase {
    func testDenseForwardWithThreadsMatchesDouble() {
        var rng = TestRNG(seed: 31)
        let inF = 37, outF = 70
        let w = rng.array(outF * inF).map(Float.init), b = rng.array(outF).map(Float.init)
        for n in [1, 2, 5] {
            let x = rng.array(n * inF).map(Float.init)
            for threads in [1, 2, 3] {
                let y = Buf<Float>(zeros: n * outF)
                denseForward(y.p, Buf(x).c, Buf(w).c, Buf(b).c, n: n, inFeatures: inF, outFeatures: outF, threads: threads)
                var worst = 0.0
                for s in 0..<n {
                    for o in 0..<outF {
                        var want = Double(b[o])
                        for i in 0..<inF { want += Double(x[s * inF + i]) * Double(w[o * inF + i]) }
                        worst = max(worst, abs(Double(y.p[s * outF + o]) - want))
                    }
                }
                XCTAssertLessThan(worst, 1e-5, "n \(n), \(threads) threads")
            }
        }
    }
}
