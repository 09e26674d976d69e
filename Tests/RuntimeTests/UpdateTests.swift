// Update kernels against hand-computed numbers.
import XCTest
import CKernels
@testable import Runtime

final class UpdateTests: RuntimeTestCase {
    func testAdamTwoSteps() {
        let p = DBuf([1, -2]), g = DBuf([0.1, -0.2]), m = DBuf(zeros: 2), v = DBuf(zeros: 2)
        let (lr, b1, b2, eps) = (0.001, 0.9, 0.999, 1e-7)
        // t = 1: m = 0.1 g, v = 0.001 g^2, lr_t = 0.001 * sqrt(0.001) / 0.1.
        adamUpdate(p.p, m.p, v.p, g.c, count: 2, lr: lr, t: 1, beta1: b1, beta2: b2, epsilon: eps)
        let lr1 = 0.001 * 0.001.squareRoot() / 0.1
        XCTAssertEqual(m.array[0], 0.01, accuracy: 1e-15)
        XCTAssertEqual(v.array[1], 0.001 * 0.04, accuracy: 1e-15)
        let p0 = 1 - lr1 * 0.01 / ((0.001 * 0.01).squareRoot() + eps)
        let p1 = -2 - lr1 * -0.02 / ((0.001 * 0.04).squareRoot() + eps)
        XCTAssertEqual(p.array[0], p0, accuracy: 1e-14)
        XCTAssertEqual(p.array[1], p1, accuracy: 1e-14)
        // t = 2 with the same gradient: m = 0.19 g, v = 0.001999 g^2,
        // lr_t = 0.001 * sqrt(1 - 0.999^2) / (1 - 0.81).
        adamUpdate(p.p, m.p, v.p, g.c, count: 2, lr: lr, t: 2, beta1: b1, beta2: b2, epsilon: eps)
        let lr2 = 0.001 * (1 - 0.998001).squareRoot() / 0.19
        XCTAssertEqual(adamLearningRate(lr: lr, t: 2, beta1: b1, beta2: b2), lr2, accuracy: 1e-15)
        XCTAssertEqual(m.array[0], 0.019, accuracy: 1e-15)
        XCTAssertEqual(v.array[0], 0.001999 * 0.01, accuracy: 1e-15)
        XCTAssertEqual(p.array[0], p0 - lr2 * 0.019 / ((0.001999 * 0.01).squareRoot() + eps), accuracy: 1e-14)
    }

    /// Split over threads (a range each), Adam gives the bits of one thread.
    func testAdamWithThreadsIsBitwiseOneThread() {
        var rng = TestRNG(seed: 41)
        let count = 70_001
        let g = Buf(rng.array(count).map(Float.init)), p0 = rng.array(count).map(Float.init)
        var results: [[Float]] = []
        for threads in [1, 2, 3] {
            let p = Buf(p0), m = Buf<Float>(zeros: count), v = Buf<Float>(zeros: count)
            for t in 1...2 {
                adamUpdate(p.p, m.p, v.p, g.c, count: count, lr: 1e-3, t: Double(t), beta1: 0.9, beta2: 0.999,
                           epsilon: 1e-7, threads: threads)
            }
            results.append(p.array + m.array + v.array)
        }
        XCTAssertEqual(results[1], results[0], "2 threads")
        XCTAssertEqual(results[2], results[0], "3 threads")
        XCTAssertNotEqual(results[0][0], p0[0], "the update moved the parameters")
    }

    /// SGD with weight decay (both forms, Nesterov or not) and the weight average's step split
    /// over threads: the same bits as one thread.
    func testSGDWeightDecayAndAverageWithThreadsAreBitwiseOneThread() {
        var rng = TestRNG(seed: 43)
        let count = 70_001
        let g = Buf(rng.array(count).map(Float.init)), p0 = rng.array(count).map(Float.init)
        for (nesterov, decoupled) in [(true, false), (false, true), (true, true)] {
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                let p = Buf(p0), v = Buf<Float>(zeros: count), a = Buf(p0.map { $0 * 0.5 })
                for _ in 1...2 {
                    sgdWeightDecayUpdate(p.p, v.p, g.c, count: count, lr: 0.01, momentum: 0.9, nesterov: nesterov,
                                         weightDecay: 1e-4, decoupled: decoupled, threads: threads)
                    averageUpdate(a.p, p.c, count: count, decay: 0.999, threads: threads)
                }
                results.append(p.array + v.array + a.array)
            }
            XCTAssertEqual(results[1], results[0], "2 threads")
            XCTAssertEqual(results[2], results[0], "3 threads")
            XCTAssertNotEqual(results[0][0], p0[0], "the update moved the parameters")
            // The C loop against the expression in Swift Float arithmetic, two steps.
            var rp = p0, rv = [Float](repeating: 0, count: count)
            let (lr, m, wd): (Float, Float, Float) = (0.01, 0.9, 1e-4)
            for _ in 1...2 {
                for i in 0..<count {
                    let q = rp[i]
                    let gi = decoupled ? g.array[i] : g.array[i] + wd * q
                    let vi = m * rv[i] - lr * gi
                    rv[i] = vi
                    var step = nesterov ? m * vi - lr * gi : vi
                    if decoupled { step -= lr * wd * q }
                    rp[i] = q + step
                }
            }
            XCTAssertEqual(Array(results[0][0..<count]), rp, "parameters: the Swift expression's bits")
            XCTAssertEqual(Array(results[0][count..<2 * count]), rv, "velocity")
            // The average's step is d * a + (1 - d) * w, in Float.
            let p = Buf(p0), a = Buf(p0.map { $0 * 0.5 })
            averageUpdate(a.p, p.c, count: count, decay: 0.999, threads: 2)
            let d: Float = 0.999, e: Float = 1 - d
            XCTAssertEqual(a.array[12_345], d * (p0[12_345] * 0.5) + e * p0[12_345])
        }
    }

    func testSGD() {
        // p = 1, g = 0.5, v = 0.1, lr = 0.1, momentum 0.9: v = 0.09 - 0.05 = 0.04.
        var p = DBuf([1]), v = DBuf([0.1])
        sgdUpdate(p.p, v.p, DBuf([0.5]).c, count: 1, lr: 0.1, momentum: 0.9, nesterov: false)
        XCTAssertEqual(v.array[0], 0.04, accuracy: 1e-15)
        XCTAssertEqual(p.array[0], 1.04, accuracy: 1e-15)
        // Nesterov: p += 0.9 * 0.04 - 0.05.
        p = DBuf([1]); v = DBuf([0.1])
        sgdUpdate(p.p, v.p, DBuf([0.5]).c, count: 1, lr: 0.1, momentum: 0.9, nesterov: true)
        XCTAssertEqual(v.array[0], 0.04, accuracy: 1e-15)
        XCTAssertEqual(p.array[0], 0.986, accuracy: 1e-15)
        // No momentum: p -= lr * g.
        p = DBuf([1, 2]); v = DBuf([0, 0])
        sgdUpdate(p.p, v.p, DBuf([0.5, -1]).c, count: 2, lr: 0.1, momentum: 0, nesterov: false)
        XCTAssertEqual(p.array, [0.95, 2.1])
    }

    func testMaxNormDenseKeras() {
        // [O=2, I=2]: row norms 5 (clipped to 2) and 0.5 (kept).
        let w = DBuf([3, 4, 0.3, 0.4])
        maxNormProject(w.p, shape: [2, 2], maxValue: 2, mode: .keras)
        let f0 = 2 / (1e-7 + 5), f1 = 0.5 / (1e-7 + 0.5)
        assertClose(w.array, [3 * f0, 4 * f0, 0.3 * f1, 0.4 * f1], tol: 1e-15, "dense keras")
    }

    func testMaxNormConvKerasNormsOverKH() {
        // [O=1, C=2, KH=2, KW=2]; for (c=0, kw=0) the KH column is (3, 4): norm 5 -> scaled to 2;
        // every other column has norm sqrt(2) < 2 and is (almost exactly) kept.
        let w = DBuf([3, 1,
                      4, 1,
                      1, 1,
                      1, 1])
        maxNormProject(w.p, shape: [1, 2, 2, 2], maxValue: 2, mode: .keras)
        let f = 2 / (1e-7 + 5), k = 2.0.squareRoot() / (1e-7 + 2.0.squareRoot())
        assertClose(w.array, [3 * f, k, 4 * f, k, k, k, k, k], tol: 1e-15, "conv keras")
    }

    func testMaxNormPerFilter() {
        // [O=2, C=1, KH=2, KW=2]: filter 0 has norm sqrt(27) -> 2; filter 1 norm 1 is kept.
        let w = DBuf([3, 1, 4, 1,
                      0.5, 0.5, 0.5, 0.5])
        maxNormProject(w.p, shape: [2, 1, 2, 2], maxValue: 2, mode: .perFilter)
        let f = 2 / (1e-7 + 27.0.squareRoot()), k = 1 / (1e-7 + 1.0)
        assertClose(w.array, [3 * f, f, 4 * f, f, 0.5 * k, 0.5 * k, 0.5 * k, 0.5 * k], tol: 1e-15, "per filter")
    }

    func testBatchnormStatsUpdate() {
        // m = N*S = 4: unbiased variance 3 * 4/3 = 4; r = 0.9 r + 0.1 b.
        let rm = DBuf([0, 1]), rv = DBuf([1, 2])
        batchnormStatsUpdate(rm.p, rv.p, DBuf([2, -1]).c, DBuf([3, 0.75]).c, channels: 2,
                             elementsPerChannel: 4, momentum: 0.9)
        assertClose(rm.array, [0.2, 0.8], tol: 1e-15, "mean")
        assertClose(rv.array, [1.3, 1.9], tol: 1e-15, "variance")
        // m = 1: the biased variance is used as is.
        let rm1 = DBuf([0]), rv1 = DBuf([1])
        batchnormStatsUpdate(rm1.p, rv1.p, DBuf([2]).c, DBuf([3]).c, channels: 1,
                             elementsPerChannel: 1, momentum: 0.9)
        assertClose(rv1.array, [1.2], tol: 1e-15, "variance m = 1")
    }
}

/// The passes over a layer's weights that do little arithmetic (the L2 penalty, its gradient,
/// the max-norm projection): threads and SIMD levels give the same bits, and the sums equal a
/// naive Double sum to rounding.
final class WeightPassTests: RuntimeTestCase {
    func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = TestRNG(seed: seed)
        return rng.array(count, -0.2, 0.2).map(Float.init)
    }

    func testSumOfSquaresIsTheSameOnEveryPathAndCloseToTheNaiveSum() {
        for count in [0, 1, 7, 8, 9, 4608, 100_003] {
            let x = values(count, seed: UInt64(count) + 1)
            let naive = x.reduce(0.0) { $0 + Double($1) * Double($1) }
            var bits: [UInt64] = []
            for level: Int32 in [2, 1, 0] {
                fk_limit_simd(level)
                bits.append(fk_sumsq(x, count).bitPattern)
            }
            fk_limit_simd(2)
            XCTAssertEqual(Set(bits).count, 1, "count \(count): the SIMD levels disagree")
            XCTAssertEqual(Double(bitPattern: bits[0]), naive, accuracy: max(naive, 1e-300) * 1e-13, "count \(count)")
            // The Double path of sumOfSquares keeps the same lanes.
            let d = x.map(Double.init)
            XCTAssertEqual(d.withUnsafeBufferPointer { sumOfSquares($0.baseAddress!, count: count) },
                           naive, accuracy: max(naive, 1e-300) * 1e-13)
        }
    }

    /// The vectorized finiteness check against Float.isFinite: a NaN, an infinity of either
    /// sign, or a signalling NaN at any place (first, inside and at the end of a block, in the
    /// tail); the largest finite values and subnormals are finite. (fk_all_finite is plain C
    /// compiled as clones for three targets: this checks the clone this CPU loads.)
    func testAllFiniteFindsEveryNonFiniteValue() {
        let specials: [Float] = [.nan, .infinity, -.infinity, .signalingNaN, -.nan]
        for count in [0, 1, 15, 16, 17, 4095, 4096, 4097, 10_003] {
            var x = values(count, seed: UInt64(count) + 7)
            if count > 2 { x[1] = .greatestFiniteMagnitude; x[2] = -.leastNonzeroMagnitude }
            XCTAssertEqual(fk_all_finite(x, count), 1, "count \(count)")
            for at in Set([0, count / 2, 4095, 4096, count - 1]) where at >= 0 && at < count {
                for v in specials {
                    var y = x
                    y[at] = v
                    XCTAssertFalse(y[at].isFinite)
                    XCTAssertEqual(fk_all_finite(y, count), 0, "count \(count), \(v) at \(at)")
                }
            }
        }
    }

    func testL2PenaltyAndItsGradientAreTheSameBitsForAnyThreadCount() {
        let count = 9 * l2PenaltyBlock + 123
        let w = values(count, seed: 5)
        let naive = 1e-4 * w.reduce(0.0) { $0 + Double($1) * Double($1) }
        var y: [[Float]] = [], dw: [[Float]] = []
        for threads in [1, 2, 3] {
            let out = Buf<Float>(zeros: 1), grad = Buf<Float>(zeros: count)
            l2PenaltyForward(out.p, w, count: count, factor: 1e-4, threads: threads)
            l2PenaltyBackward(grad.p, [Float(0.5)], w, count: count, factor: 1e-4, threads: threads)
            y.append(out.array); dw.append(grad.array)
        }
        XCTAssertEqual(y[0], y[1]); XCTAssertEqual(y[0], y[2])
        XCTAssertEqual(dw[0], dw[1]); XCTAssertEqual(dw[0], dw[2])
        XCTAssertEqual(Double(y[0][0]), naive, accuracy: naive * 1e-6)
        XCTAssertEqual(dw[0][count - 1], 2 * 1e-4 * 0.5 * w[count - 1])
    }

    func testMaxNormProjectionIsTheSameBitsForAnyThreadCountAndBoundsEveryRow() {
        let (rows, cols) = (64, 4608)
        let w = values(rows * cols, seed: 9).enumerated().map { $0.element * 0.25 * Float($0.offset / cols % 3 + 1) }
        var results: [[Float]] = []
        for threads in [1, 2, 3] {
            let b = Buf<Float>(w)
            maxNormProject(b.p, shape: [rows, cols], maxValue: 4, mode: .keras, threads: threads)
            results.append(b.array)
        }
        XCTAssertEqual(results[0], results[1]); XCTAssertEqual(results[0], results[2])
        var clipped = 0
        for r in 0..<rows {
            let before = w[(r * cols)..<((r + 1) * cols)].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let after = results[0][(r * cols)..<((r + 1) * cols)].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            if before > 4 { clipped += 1; XCTAssertEqual(after, 4, accuracy: 1e-4) } else { XCTAssertEqual(after, before, accuracy: before * 1e-6) }
        }
        XCTAssertGreaterThan(clipped, 0, "some rows must exceed the bound for the test to mean anything")
        XCTAssertLessThan(clipped, rows)
    }
}
