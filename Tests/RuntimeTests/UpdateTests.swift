// Update kernels against hand-computed numbers.
import XCTest
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
