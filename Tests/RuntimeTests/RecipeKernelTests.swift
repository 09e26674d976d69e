// The recipe and test-time-augmentation kernels (Recipe.swift), and label smoothing in the
// cross-entropy (Softmax.swift: finite differences, and the loss against its definition), SGD with weight decay (against
// plain SGD on the decayed gradient, and SGDW by hand), the views and the mean of a TTA plan.
import XCTest
@testable import Runtime

final class RecipeKernelTests: RuntimeTestCase {
    var rng = TestRNG(seed: 23)

    func testSmoothedCrossEntropyGradient() {
        let (n, k) = (3, 5)
        let labels = Buf<Int32>([2, 0, 4])
        for smoothing in [0.1, 0.3] {
            checkGradients(GradCase(
                name: "smoothed cross-entropy \(smoothing)", inputs: [rng.array(n * k, -3, 3)],
                forward: { v in
                    let loss = DBuf(zeros: 1)
                    softmaxCrossEntropyForward(loss.p, DBuf(v[0]).c, labels.c, n: n, classes: k, smoothing: smoothing)
                    return loss.array
                },
                backward: { v, dy in
                    let dx = DBuf(zeros: n * k)
                    softmaxCrossEntropyBackward(dx.p, DBuf(dy).c, DBuf(v[0]).c, labels.c, n: n, classes: k, smoothing: smoothing)
                    return [dx.array]
                }))
        }
    }

    func testSmoothedCrossEntropyMatchesItsDefinition() {
        let (n, k) = (4, 7), e = 0.1
        let x = rng.array(n * k, -4, 4)
        let labels = Buf<Int32>([6, 0, 3, 3])
        // -sum_k q_k log p_k with q = (1 - e) onehot + e / K, written out directly.
        var expected = 0.0
        for s in 0..<n {
            let row = Array(x[(s * k)..<((s + 1) * k)])
            let z = row.map { Foundation.exp($0) }.reduce(0, +)
            for j in 0..<k {
                let q = (j == Int(labels.array[s]) ? 1 - e : 0) + e / Double(k)
                expected -= q * Foundation.log(Foundation.exp(row[j]) / z)
            }
        }
        expected /= Double(n)
        let loss = DBuf(zeros: 1)
        softmaxCrossEntropyForward(loss.p, DBuf(x).c, labels.c, n: n, classes: k, smoothing: e)
        XCTAssertEqual(loss.array[0], expected, accuracy: 1e-12)
        // Smoothing 0 is the plain loss, -log p_label, and gradient p - onehot, written out.
        var plainExpected = 0.0
        var dExpected = [Double](repeating: 0, count: n * k)
        for s in 0..<n {
            let row = Array(x[(s * k)..<((s + 1) * k)])
            let z = row.map { Foundation.exp($0) }.reduce(0, +)
            let label = Int(labels.array[s])
            plainExpected -= Foundation.log(Foundation.exp(row[label]) / z) / Double(n)
            for j in 0..<k { dExpected[s * k + j] = (Foundation.exp(row[j]) / z - (j == label ? 1 : 0)) / Double(n) }
        }
        let plain = DBuf(zeros: 1), dPlain = DBuf(zeros: n * k)
        softmaxCrossEntropyForward(plain.p, DBuf(x).c, labels.c, n: n, classes: k)
        XCTAssertEqual(plain.array[0], plainExpected, accuracy: 1e-12)
        softmaxCrossEntropyBackward(dPlain.p, DBuf([1]).c, DBuf(x).c, labels.c, n: n, classes: k)
        assertClose(dPlain.array, dExpected, tol: 1e-12, "smoothing 0")
    }

    /// Mixup's loss (soft targets): finite differences with targets that sum to 1 and with ones
    /// that do not (the gradient is of the loss as written either way), and against the
    /// label-smoothed loss when each target row is the smoothing's target of a label.
    func testSoftTargetCrossEntropy() {
        let (n, k) = (3, 5)
        for (name, targets) in [("mixed", [0.7, 0.3, 0, 0, 0, 0.1, 0.1, 0.6, 0.1, 0.1, 0, 0, 0, 0.5, 0.5]),
                                ("unnormalized", rng.array(n * k, 0, 1))] {
            checkGradients(GradCase(
                name: "soft-target cross-entropy, \(name)", inputs: [rng.array(n * k, -3, 3)],
                forward: { v in
                    let loss = DBuf(zeros: 1)
                    softTargetCrossEntropyForward(loss.p, DBuf(v[0]).c, DBuf(targets).c, n: n, classes: k)
                    return loss.array
                },
                backward: { v, dy in
                    let dx = DBuf(zeros: n * k)
                    softTargetCrossEntropyBackward(dx.p, DBuf(dy).c, DBuf(v[0]).c, DBuf(targets).c, n: n, classes: k)
                    return [dx.array]
                }))
        }
        let x = rng.array(n * k, -4, 4), e = 0.1
        let labels = Buf<Int32>([4, 0, 2])
        let q = (0..<(n * k)).map { i in (i % k == Int(labels.array[i / k]) ? 1 - e : 0) + e / Double(k) }
        let soft = DBuf(zeros: 1), smoothed = DBuf(zeros: 1), dSoft = DBuf(zeros: n * k), dSmoothed = DBuf(zeros: n * k)
        softTargetCrossEntropyForward(soft.p, DBuf(x).c, DBuf(q).c, n: n, classes: k)
        softmaxCrossEntropyForward(smoothed.p, DBuf(x).c, labels.c, n: n, classes: k, smoothing: e)
        XCTAssertEqual(soft.array[0], smoothed.array[0], accuracy: 1e-12)
        softTargetCrossEntropyBackward(dSoft.p, DBuf([0.5]).c, DBuf(x).c, DBuf(q).c, n: n, classes: k)
        softmaxCrossEntropyBackward(dSmoothed.p, DBuf([0.5]).c, DBuf(x).c, labels.c, n: n, classes: k, smoothing: e)
        assertClose(dSoft.array, dSmoothed.array, tol: 1e-12, "smoothed one-hot targets")
    }

    func testSGDWeightDecay() {
        let p0 = rng.array(6), v0 = rng.array(6), g = rng.array(6)
        let (lr, m, wd) = (0.05, 0.9, 0.01)
        for nesterov in [false, true] {
            // Coupled: plain SGD on g + wd * p.
            let p = DBuf(p0), v = DBuf(v0), pr = DBuf(p0), vr = DBuf(v0)
            sgdWeightDecayUpdate(p.p, v.p, DBuf(g).c, count: 6, lr: lr, momentum: m, nesterov: nesterov, weightDecay: wd, decoupled: false)
            sgdUpdate(pr.p, vr.p, DBuf(zip(g, p0).map { $0 + wd * $1 }).c, count: 6, lr: lr, momentum: m, nesterov: nesterov)
            assertClose(p.array, pr.array, tol: 1e-15, "coupled p, nesterov \(nesterov)")
            assertClose(v.array, vr.array, tol: 1e-15, "coupled v, nesterov \(nesterov)")
            // Decoupled: plain SGD on g, then p -= lr * wd * p_before.
            let pd = DBuf(p0), vd = DBuf(v0), ps = DBuf(p0), vs = DBuf(v0)
            sgdWeightDecayUpdate(pd.p, vd.p, DBuf(g).c, count: 6, lr: lr, momentum: m, nesterov: nesterov, weightDecay: wd, decoupled: true)
            sgdUpdate(ps.p, vs.p, DBuf(g).c, count: 6, lr: lr, momentum: m, nesterov: nesterov)
            assertClose(pd.array, zip(ps.array, p0).map { $0 - lr * wd * $1 }, tol: 1e-15, "decoupled p, nesterov \(nesterov)")
            assertClose(vd.array, vs.array, tol: 1e-15, "decoupled v, nesterov \(nesterov)")
        }
        // By hand: p = 1, v = 0, g = 0, lr 0.1, momentum 0.9, wd 0.5, Nesterov, coupled:
        // g' = 0.5, v = -0.05, p = 1 + 0.9 * -0.05 - 0.05 = 0.905.
        let p = DBuf([1]), v = DBuf([0])
        sgdWeightDecayUpdate(p.p, v.p, DBuf([0]).c, count: 1, lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.5, decoupled: false)
        XCTAssertEqual(p.array[0], 0.905, accuracy: 1e-15)
    }

    func testTTAViewsAndMean() {
        // Two 2-channel 4x4 faces, views of side 3: corner (0, 0), corner (1, 1) mirrored.
        let faces = (0..<(2 * 2 * 16)).map(Double.init)
        let t = TTAViews(channels: 2, faceSide: 4, side: 3, views: [TTAView(row: 0, col: 0, flip: false), TTAView(row: 1, col: 1, flip: true)])
        let y = DBuf(zeros: 2 * 2 * 2 * 9)
        ttaViewsForward(y.p, DBuf(faces).c, n: 2, t)
        for f in 0..<2 {
            for (vi, view) in t.views.enumerated() {
                for ch in 0..<2 {
                    for r in 0..<3 {
                        for c in 0..<3 {
                            let sc = view.flip ? view.col + 2 - c : view.col + c
                            let want = faces[((f * 2 + ch) * 4 + view.row + r) * 4 + sc]
                            XCTAssertEqual(y.array[(((f * 2 + vi) * 2 + ch) * 3 + r) * 3 + c], want)
                        }
                    }
                }
            }
        }
        // The mean of the views' softmax, per face.
        let (k, v) = (3, 2)
        let logits = rng.array(2 * v * k, -3, 3)
        let out = DBuf(zeros: 2 * k)
        ttaMeanForward(out.p, DBuf(logits).c, n: 2, classes: k, views: v, probabilities: false)
        for f in 0..<2 {
            var mean = [Double](repeating: 0, count: k)
            for view in 0..<v {
                let row = Array(logits[((f * v + view) * k)..<((f * v + view + 1) * k)])
                let z = row.map { Foundation.exp($0) }.reduce(0, +)
                for j in 0..<k { mean[j] += Foundation.exp(row[j]) / z / Double(v) }
            }
            assertClose(Array(out.array[(f * k)..<((f + 1) * k)]), mean, tol: 1e-14, "face \(f)")
        }
        // Scores that already are probabilities are averaged as they are.
        ttaMeanForward(out.p, DBuf([0.2, 0.3, 0.5, 0.4, 0.4, 0.2]).c, n: 1, classes: 3, views: 2, probabilities: true)
        assertClose(Array(out.array[0..<3]), [0.3, 0.35, 0.35], tol: 1e-15)
    }
}
