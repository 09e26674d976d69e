// Finite-difference gradient checks (Double) for every differentiable kernel except conv
// (ConvTests.swift): L = sum(r * f(x)) with random r, central differences, points within a
// step of a kink skipped.
import XCTest
@testable import Runtime

/// Argmax positions of every maxpool window, the piecewise structure of maxpool.
func maxpoolStructure(_ x: [Double], n: Int, _ g: PoolGeometry) -> [Int] {
    let b = DBuf(x)
    var out: [Int] = []
    for plane in 0..<(n * g.channels) {
        for oh in 0..<g.outHeight {
            for ow in 0..<g.outWidth {
                out.append(maxpoolArgmax(b.c + plane * g.inHeight * g.inWidth, oh: oh, ow: ow, g))
            }
        }
    }
    return out
}

/// TensorFlow 'same' pooling geometry.
func samePool(c: Int, h: Int, w: Int, size: Int, stride: Int) -> PoolGeometry {
    let oh = (h + stride - 1) / stride, ow = (w + stride - 1) / stride
    let padH = max((oh - 1) * stride + size - h, 0), padW = max((ow - 1) * stride + size - w, 0)
    return PoolGeometry(channels: c, inHeight: h, inWidth: w, size: size, stride: stride,
                        padTop: padH / 2, padLeft: padW / 2, outHeight: oh, outWidth: ow)
}

let testPoolGeometries: [(String, PoolGeometry)] = [
    ("2x2 s2 same 5x5", samePool(c: 2, h: 5, w: 5, size: 2, stride: 2)),
    ("3x3 s2 same 5x7 overlapping", samePool(c: 1, h: 5, w: 7, size: 3, stride: 2)),
    ("3x3 s1 same 4x3", samePool(c: 1, h: 4, w: 3, size: 3, stride: 1)),
    ("2x2 s2 valid 4x4", PoolGeometry(channels: 2, inHeight: 4, inWidth: 4, size: 2, stride: 2,
                                      padTop: 0, padLeft: 0, outHeight: 2, outWidth: 2)),
]

final class KernelGradientTests: RuntimeTestCase {
    var rng = TestRNG(seed: 11)

    func testDense() {
        let (n, i, o) = (3, 4, 3)
        checkGradients(GradCase(
            name: "dense", inputs: [rng.array(n * i), rng.array(o * i), rng.array(o)],
            forward: { v in
                let y = DBuf(zeros: n * o)
                denseForward(y.p, DBuf(v[0]).c, DBuf(v[1]).c, DBuf(v[2]).c, n: n, inFeatures: i, outFeatures: o)
                return y.array
            },
            backward: { v, dy in
                let dx = DBuf(zeros: n * i), dw = DBuf(zeros: o * i), db = DBuf(zeros: o), d = DBuf(dy)
                denseBackwardInput(dx.p, d.c, DBuf(v[1]).c, n: n, inFeatures: i, outFeatures: o)
                denseBackwardWeight(dw.p, d.c, DBuf(v[0]).c, n: n, inFeatures: i, outFeatures: o)
                biasBackward(db.p, d.c, n: n, channels: o, spatial: 1)
                return [dx.array, dw.array, db.array]
            }))
    }

    func testRelu() {
        var x = rng.array(40)
        x[3] = 0; x[7] = 1e-6  // kinks: skipped
        let count = x.count
        checkGradients(GradCase(
            name: "relu", inputs: [x],
            forward: { v in let y = DBuf(zeros: count); reluForward(y.p, DBuf(v[0]).c, count: count); return y.array },
            backward: { v, dy in
                let y = DBuf(zeros: count), dx = DBuf(zeros: count)
                reluForward(y.p, DBuf(v[0]).c, count: count)
                reluBackward(dx.p, DBuf(dy).c, y.c, count: count)
                return [dx.array]
            },
            structure: { v in v[0].map { $0 > 0 ? 1 : 0 } }))
    }

    func testLeakyRelu() {
        let x = rng.array(40), count = x.count
        checkGradients(GradCase(
            name: "leaky_relu", inputs: [x],
            forward: { v in
                let y = DBuf(zeros: count)
                leakyReluForward(y.p, DBuf(v[0]).c, count: count, alpha: 0.2)
                return y.array
            },
            backward: { v, dy in
                let dx = DBuf(zeros: count)
                leakyReluBackward(dx.p, DBuf(dy).c, DBuf(v[0]).c, count: count, alpha: 0.2)
                return [dx.array]
            },
            structure: { v in v[0].map { $0 > 0 ? 1 : 0 } }))
    }

    func testBatchnormTrain() {
        let (n, ch, sp) = (2, 3, 4)
        let eps = 1e-3
        func forward(_ v: [[Double]]) -> (DBuf, DBuf, DBuf) {
            let y = DBuf(zeros: n * ch * sp), mean = DBuf(zeros: ch), variance = DBuf(zeros: ch)
            batchnormTrainForward(y.p, mean.p, variance.p, DBuf(v[0]).c, DBuf(v[1]).c, DBuf(v[2]).c,
                                  n: n, channels: ch, spatial: sp, epsilon: eps)
            return (y, mean, variance)
        }
        checkGradients(GradCase(
            name: "batchnorm train",
            inputs: [rng.array(n * ch * sp, -2, 3), rng.array(ch, 0.5, 1.5), rng.array(ch)],
            forward: { v in forward(v).0.array },
            backward: { v, dy in
                let (_, mean, variance) = forward(v)
                let dx = DBuf(zeros: n * ch * sp), dgamma = DBuf(zeros: ch), dbeta = DBuf(zeros: ch)
                batchnormTrainBackward(dx.p, dgamma.p, dbeta.p, DBuf(dy).c, DBuf(v[0]).c, DBuf(v[1]).c,
                                       mean.c, variance.c, n: n, channels: ch, spatial: sp, epsilon: eps)
                return [dx.array, dgamma.array, dbeta.array]
            }))
    }

    func testBatchnormTrainStatistics() {
        // One channel, values 1...4 over N=2, S=2: mean 2.5, biased variance 1.25.
        let x = DBuf([1, 2, 3, 4]), y = DBuf(zeros: 4), mean = DBuf(zeros: 1), variance = DBuf(zeros: 1)
        batchnormTrainForward(y.p, mean.p, variance.p, x.c, DBuf([2]).c, DBuf([1]).c,
                              n: 2, channels: 1, spatial: 2, epsilon: 0)
        XCTAssertEqual(mean.array[0], 2.5, accuracy: 1e-12)
        XCTAssertEqual(variance.array[0], 1.25, accuracy: 1e-12)
        XCTAssertEqual(y.array[0], (1 - 2.5) / 1.25.squareRoot() * 2 + 1, accuracy: 1e-12)
    }

    func testBatchnormInference() {
        let (n, ch, sp) = (2, 3, 2)
        let eps = 1e-3
        let gamma = rng.array(ch, 0.5, 1.5), beta = rng.array(ch), mean = rng.array(ch), variance = rng.array(ch, 0.5, 2)
        checkGradients(GradCase(
            name: "batchnorm inference", inputs: [rng.array(n * ch * sp)],
            forward: { v in
                let y = DBuf(zeros: n * ch * sp)
                batchnormInferenceForward(y.p, DBuf(v[0]).c, DBuf(gamma).c, DBuf(beta).c, DBuf(mean).c,
                                          DBuf(variance).c, n: n, channels: ch, spatial: sp, epsilon: eps)
                return y.array
            },
            backward: { _, dy in
                let dx = DBuf(zeros: n * ch * sp)
                batchnormInferenceBackward(dx.p, DBuf(dy).c, DBuf(gamma).c, DBuf(variance).c,
                                           n: n, channels: ch, spatial: sp, epsilon: eps)
                return [dx.array]
            }))
    }

    func testMaxpool() {
        let n = 2
        for (name, g) in testPoolGeometries {
            let xCount = n * g.channels * g.inHeight * g.inWidth
            let yCount = n * g.channels * g.outHeight * g.outWidth
            checkGradients(GradCase(
                name: "maxpool \(name)", inputs: [rng.array(xCount)],
                forward: { v in let y = DBuf(zeros: yCount); maxpoolForward(y.p, DBuf(v[0]).c, n: n, g); return y.array },
                backward: { v, dy in
                    let dx = DBuf(zeros: xCount)
                    maxpoolBackward(dx.p, DBuf(dy).c, DBuf(v[0]).c, n: n, g)
                    return [dx.array]
                },
                structure: { v in maxpoolStructure(v[0], n: n, g) }))
        }
    }

    func testMaxpoolTiesGoToFirstAndPaddingNeverWins() {
        // 3x3 all-negative input with a tie, 2x2 windows, stride 2, 'same' (pad after): the
        // bottom-right window is mostly padding but its only element still wins.
        let g = samePool(c: 1, h: 3, w: 3, size: 2, stride: 2)
        let x = DBuf([-5, -1, -3,
                      -1, -4, -2,
                      -6, -7, -8])
        let y = DBuf(zeros: 4), dx = DBuf(zeros: 9)
        maxpoolForward(y.p, x.c, n: 1, g)
        XCTAssertEqual(y.array, [-1, -2, -6, -8])
        maxpoolBackward(dx.p, DBuf([10, 20, 30, 40]).c, x.c, n: 1, g)
        XCTAssertEqual(dx.array, [0, 10, 0,
                                  0, 0, 20,
                                  30, 0, 40])
        // Overlapping windows (3x3, stride 1) accumulate into a shared maximum.
        let g2 = PoolGeometry(channels: 1, inHeight: 3, inWidth: 4, size: 3, stride: 1, padTop: 0,
                              padLeft: 0, outHeight: 1, outWidth: 2)
        let x2 = DBuf([0, 0, 0, 0,
                       0, 9, 9, 0,
                       0, 0, 0, 0]), dx2 = DBuf(zeros: 12)
        maxpoolBackward(dx2.p, DBuf([1, 2]).c, x2.c, n: 1, g2)
        XCTAssertEqual(dx2.array, [0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0])
    }

    func testAvgpool() {
        let n = 2
        for (name, g) in testPoolGeometries {
            let xCount = n * g.channels * g.inHeight * g.inWidth
            let yCount = n * g.channels * g.outHeight * g.outWidth
            checkGradients(GradCase(
                name: "avgpool \(name)", inputs: [rng.array(xCount)],
                forward: { v in let y = DBuf(zeros: yCount); avgpoolForward(y.p, DBuf(v[0]).c, n: n, g); return y.array },
                backward: { _, dy in
                    let dx = DBuf(zeros: xCount)
                    avgpoolBackward(dx.p, DBuf(dy).c, n: n, g)
                    return [dx.array]
                }))
        }
    }

    func testAvgpoolCountsInBoundsOnly() {
        // 3x3 input, 2x2 windows, stride 2, 'same': edge windows average 2 or 1 elements.
        let g = samePool(c: 1, h: 3, w: 3, size: 2, stride: 2)
        let y = DBuf(zeros: 4)
        avgpoolForward(y.p, DBuf([1, 2, 3, 4, 5, 6, 7, 8, 9]).c, n: 1, g)
        XCTAssertEqual(y.array, [3, 4.5, 7.5, 9])
    }

    func testSoftmax() {
        let (n, k) = (2, 5)
        checkGradients(GradCase(
            name: "softmax", inputs: [rng.array(n * k, -3, 3)],
            forward: { v in let y = DBuf(zeros: n * k); softmaxForward(y.p, DBuf(v[0]).c, n: n, classes: k); return y.array },
            backward: { v, dy in
                let y = DBuf(zeros: n * k), dx = DBuf(zeros: n * k)
                softmaxForward(y.p, DBuf(v[0]).c, n: n, classes: k)
                softmaxBackward(dx.p, DBuf(dy).c, y.c, n: n, classes: k)
                return [dx.array]
            }))
    }

    func testSoftmaxCrossEntropy() {
        let (n, k) = (3, 4)
        let labels = Buf<Int32>([2, 0, 3])
        checkGradients(GradCase(
            name: "softmax cross-entropy", inputs: [rng.array(n * k, -3, 3)],
            forward: { v in
                let loss = DBuf(zeros: 1)
                softmaxCrossEntropyForward(loss.p, DBuf(v[0]).c, labels.c, n: n, classes: k)
                return loss.array
            },
            backward: { v, dy in
                let dx = DBuf(zeros: n * k)
                softmaxCrossEntropyBackward(dx.p, DBuf(dy).c, DBuf(v[0]).c, labels.c, n: n, classes: k)
                return [dx.array]
            }))
    }

    func testSoftmaxCrossEntropyIsStable() {
        let loss = DBuf(zeros: 1), dx = DBuf(zeros: 3), labels = Buf<Int32>([1])
        let logits = DBuf([1000, -1000, 999])
        softmaxCrossEntropyForward(loss.p, logits.c, labels.c, n: 1, classes: 3)
        XCTAssertEqual(loss.array[0], 2000 + 0.31326168751822286 /* log(1 + e^-1) */, accuracy: 1e-9)
        softmaxCrossEntropyBackward(dx.p, DBuf([1]).c, logits.c, labels.c, n: 1, classes: 3)
        XCTAssert(dx.array.allSatisfy { $0.isFinite })
        let f = Buf<Float>([1000, -1000, 999]), fl = Buf<Float>(zeros: 1)
        softmaxCrossEntropyForward(fl.p, f.c, labels.c, n: 1, classes: 3)
        XCTAssertEqual(fl.array[0], 2000.3133, accuracy: 1e-2)
        XCTAssertEqual(firstInvalidLabel(Buf<Int32>([0, 3, -1]).c, n: 3, classes: 3), 1)
    }

    func testConcatAndSlice() {
        let (n, outer, inner) = (2, 2, 3)
        let sizes = [1, 2, 1], total = 4
        let counts = sizes.map { n * outer * $0 * inner }
        // concat's gradient is a slice of dy per input.
        checkGradients(GradCase(
            name: "concat", inputs: counts.map { rng.array($0) },
            forward: { v in
                let parts = v.map { DBuf($0) }
                let y = DBuf(zeros: n * outer * total * inner)
                let table = parts.map { $0.c }
                table.withUnsafeBufferPointer { concatForward(y.p, $0, n: n, outer: outer, inner: inner, sizes: sizes) }
                return y.array
            },
            backward: { _, dy in
                var start = 0
                return sizes.map { size in
                    let dx = DBuf(zeros: n * outer * size * inner)
                    sliceForward(dx.p, DBuf(dy).c, n: n, outer: outer, inner: inner, total: total, start: start, length: size)
                    start += size
                    return dx.array
                }
            }))
        // slice's gradient is dy concatenated between zeros.
        let (start, length) = (1, 2)
        checkGradients(GradCase(
            name: "slice", inputs: [rng.array(n * outer * total * inner)],
            forward: { v in
                let y = DBuf(zeros: n * outer * length * inner)
                sliceForward(y.p, DBuf(v[0]).c, n: n, outer: outer, inner: inner, total: total, start: start, length: length)
                return y.array
            },
            backward: { _, dy in
                let before = DBuf(zeros: n * outer * start * inner), d = DBuf(dy)
                let after = DBuf(zeros: n * outer * (total - start - length) * inner)
                let dx = DBuf(zeros: n * outer * total * inner)
                [before.c, d.c, after.c].withUnsafeBufferPointer {
                    concatForward(dx.p, $0, n: n, outer: outer, inner: inner, sizes: [start, length, total - start - length])
                }
                return [dx.array]
            }))
    }

    func testMulAddScale() {
        let count = 12
        checkGradients(GradCase(
            name: "mul", inputs: [rng.array(count), rng.array(count), rng.array(count)],
            forward: { v in
                let bufs = v.map { DBuf($0) }, y = DBuf(zeros: count)
                bufs.map { $0.c }.withUnsafeBufferPointer { mulForward(y.p, $0, count: count) }
                return y.array
            },
            backward: { v, dy in
                // d/da = dy * b * c, by the mul kernel itself.
                (0..<3).map { k in
                    let others = [DBuf(dy)] + v.indices.filter { $0 != k }.map { DBuf(v[$0]) }
                    let dx = DBuf(zeros: count)
                    others.map { $0.c }.withUnsafeBufferPointer { mulForward(dx.p, $0, count: count) }
                    return dx.array
                }
            }))
        checkGradients(GradCase(
            name: "add", inputs: [rng.array(count), rng.array(count)],
            forward: { v in
                let bufs = v.map { DBuf($0) }, y = DBuf(zeros: count)
                bufs.map { $0.c }.withUnsafeBufferPointer { addForward(y.p, $0, count: count) }
                return y.array
            },
            backward: { _, dy in [dy, dy] }))
        checkGradients(GradCase(
            name: "scale", inputs: [rng.array(count)],
            forward: { v in let y = DBuf(zeros: count); scaleForward(y.p, DBuf(v[0]).c, count: count, factor: -1.5); return y.array },
            backward: { _, dy in
                let dx = DBuf(zeros: count)
                scaleForward(dx.p, DBuf(dy).c, count: count, factor: -1.5)
                return [dx.array]
            }))
    }

    func testL2Penalty() {
        let count = 10
        checkGradients(GradCase(
            name: "l2 penalty", inputs: [rng.array(count)],
            forward: { v in let y = DBuf(zeros: 1); l2PenaltyForward(y.p, DBuf(v[0]).c, count: count, factor: 0.01); return y.array },
            backward: { v, dy in
                let dw = DBuf(zeros: count)
                l2PenaltyBackward(dw.p, DBuf(dy).c, DBuf(v[0]).c, count: count, factor: 0.01)
                return [dw.array]
            }))
        let y = DBuf(zeros: 1)
        l2PenaltyForward(y.p, DBuf([1, 2, 3]).c, count: 3, factor: 0.5)
        XCTAssertEqual(y.array, [7])
    }
}
