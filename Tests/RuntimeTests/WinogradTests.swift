// The Winograd F(4x4,3x3) forward (Winograd.swift, CKernels/winograd.c) against the reference
// convolution run in Double on the same inputs: the transform matrices themselves (exact in
// double), the filter transform, the forward with every epilogue option and the batch
// statistics over several geometries (partial tiles, 1 and 3 samples, 1 to 3 threads, chunk
// boundaries), in-place runs, bitwise reproducibility, and the executor's opt-in path.
import XCTest
@testable import Runtime

/// Largest error of F(4x4,3x3) in float we accept: max |y - reference| over max |reference|,
/// the reference being `conv2dForward` in Double on the same inputs (x uniform in [-1, 1],
/// w in [-0.5, 0.5]). Measured, worst over the epilogue options and thread counts:
///   1->4 5x7 n=3: 1.2e-6,  3->5 8x8 n=1: 1.3e-6,  16->8 13x10 n=3: 2.2e-6,  2->3 1x1: 1.2e-7,
///   2->3 2x3: 2.8e-7,  32->32 48x48 n=2: 4.4e-6,  64->64 24x24 n=1: 6.6e-6,
///   128->128 12x12 n=3: 9.1e-6
/// (it grows with C, as the rounding errors of the 36 channel sums go through A^T's 8s). The
/// direct im2col path is at about 1e-7 on the same cases.
private let winogradTolerance = 5e-5

final class WinogradTests: RuntimeTestCase {
    func scratch(_ g: ConvGeometry, threads: Int, maxChunk: Int = .max) -> FastScratch {
        let need = winogradScratch(g, maxChunk: maxChunk)
        return FastScratch(floats: (0..<threads).map { _ in Buf<Float>(zeros: need.floats).p },
                           doubles: (0..<threads).map { _ in Buf<Double>(zeros: need.doubles).p }, maxChunk: maxChunk)
    }

    func same(_ c: Int, _ o: Int, _ h: Int, _ w: Int) -> ConvGeometry {
        ConvGeometry(inChannels: c, inHeight: h, inWidth: w, outChannels: o, kernelHeight: 3, kernelWidth: 3,
                     stride: 1, padTop: 1, padLeft: 1, outHeight: h, outWidth: w)
    }

    func floats(_ rng: inout TestRNG, _ count: Int, _ lo: Double = -1, _ hi: Double = 1) -> [Float] {
        rng.array(count, lo, hi).map(Float.init)
    }

    // MARK: - The matrices

    /// A^T [(G g G^T) (.) (B^T d B)] A is the 4x4 valid correlation of a 6x6 d with a 3x3 g.
    func testTransformsReproduceDirectConvolutionInDouble() {
        func mul(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
            a.map { row in (0..<b[0].count).map { j in zip(row, b).reduce(0) { $0 + $1.0 * $1.1[j] } } }
        }
        func transpose(_ a: [[Double]]) -> [[Double]] { (0..<a[0].count).map { j in a.map { $0[j] } } }
        XCTAssertEqual(winogradBT.count, 6); XCTAssertEqual(winogradG.count, 6); XCTAssertEqual(winogradAT.count, 4)
        var rng = TestRNG(seed: 11)
        var worst = 0.0
        for _ in 0..<20 {
            let d = (0..<6).map { _ in rng.array(6) }, g = (0..<3).map { _ in rng.array(3) }
            let u = mul(mul(winogradG, g), transpose(winogradG))
            let v = mul(mul(winogradBT, d), transpose(winogradBT))
            let m = zip(u, v).map { zip($0, $1).map { $0 * $1 } }
            let y = mul(mul(winogradAT, m), transpose(winogradAT))
            for i in 0..<4 {
                for j in 0..<4 {
                    var direct = 0.0
                    for k in 0..<3 { for l in 0..<3 { direct += d[i + k][j + l] * g[k][l] } }
                    worst = max(worst, abs(y[i][j] - direct))
                }
            }
        }
        XCTAssertLessThan(worst, 1e-13, "the F(4x4,3x3) matrices do not compute the convolution")
    }

    /// U = G g G^T in double, rounded once: at most one float rounding from the double product,
    /// at the panel layout's index (two panels of output channels, the second partial). The
    /// input gradient's U: the rotated filter, channels swapped, panels of input channels.
    func testFilterTransformIsGgGtInDouble() {
        var rng = TestRNG(seed: 12)
        let g = same(18, 20, 4, 4), O = 20, C = 18
        let w = floats(&rng, O * C * 9)
        let u = Buf<Float>(zeros: winogradFilterCount(g))
        let ug = Buf<Float>(zeros: winogradFilterCount(g, gradInput: true))
        XCTAssertEqual(u.count, 36 * C * 32)
        XCTAssertEqual(ug.count, 36 * O * 32)
        winogradFilterTransform(u.p, w, g, threads: 2)
        winogradGradInputFilterTransform(ug.p, w, g, threads: 2)
        for o in 0..<O {
            for c in 0..<C {
                let k = (0..<3).map { r in (0..<3).map { q in Double(w[((o * C + c) * 3 + r) * 3 + q]) } }
                for i in 0..<6 {
                    for j in 0..<6 {
                        var want = 0.0, wantGrad = 0.0
                        for r in 0..<3 {
                            for q in 0..<3 {
                                want += winogradG[i][r] * k[r][q] * winogradG[j][q]
                                wantGrad += winogradG[i][r] * k[2 - r][2 - q] * winogradG[j][q]
                            }
                        }
                        let got = Double(u.p[((o / 16) * 36 + i * 6 + j) * C * 16 + c * 16 + o % 16])
                        XCTAssertLessThanOrEqual(abs(got - want), Double(Float(want).ulp) + 1e-15 * abs(want),
                                                 "U[\(i),\(j)] of (\(o), \(c))")
                        let gotGrad = Double(ug.p[((c / 16) * 36 + i * 6 + j) * O * 16 + o * 16 + c % 16])
                        XCTAssertLessThanOrEqual(abs(gotGrad - wantGrad), Double(Float(wantGrad).ulp) + 1e-15 * abs(wantGrad),
                                                 "gradient U[\(i),\(j)] of (\(o), \(c))")
                    }
                }
            }
        }
    }

    // MARK: - The forward against the reference

    /// `all`: every epilogue option (the small cases), else the plain and the fullest one.
    struct Case { var g: ConvGeometry; var n: Int; var threads: [Int]; var maxChunk: Int; var all = true }

    var cases: [Case] {
        [
            Case(g: same(1, 4, 5, 7), n: 3, threads: [1, 2, 3], maxChunk: 1),
            Case(g: same(3, 5, 8, 8), n: 1, threads: [1, 2], maxChunk: .max),
            Case(g: same(16, 8, 13, 10), n: 3, threads: [2], maxChunk: 2),
            Case(g: same(5, 16, 8, 8), n: 2, threads: [1, 2], maxChunk: .max),
            Case(g: same(6, 9, 17, 10), n: 1, threads: [2, 3], maxChunk: .max),
            Case(g: same(5, 40, 6, 6), n: 1, threads: [2, 3], maxChunk: .max),
            Case(g: same(2, 3, 1, 1), n: 2, threads: [1, 3], maxChunk: .max),
            Case(g: same(2, 3, 2, 3), n: 1, threads: [2], maxChunk: .max),
            Case(g: same(32, 32, 48, 48), n: 2, threads: [2], maxChunk: .max, all: false),
            Case(g: same(64, 64, 24, 24), n: 1, threads: [2], maxChunk: .max, all: false),
            Case(g: same(128, 128, 12, 12), n: 3, threads: [2], maxChunk: .max, all: false),
        ]
    }

    /// The epilogue options: bias, preRelu, scale/shift, postRelu, statistics.
    struct Options { var bias: Bool; var preRelu: Bool; var affine: Bool; var postRelu: Bool; var stats: Bool }
    let options: [Options] = [
        Options(bias: false, preRelu: false, affine: false, postRelu: false, stats: false),
        Options(bias: true, preRelu: false, affine: false, postRelu: false, stats: true),
        Options(bias: true, preRelu: true, affine: false, postRelu: false, stats: true),
        Options(bias: true, preRelu: true, affine: true, postRelu: false, stats: false),
        Options(bias: true, preRelu: false, affine: true, postRelu: true, stats: true),
        Options(bias: false, preRelu: true, affine: true, postRelu: true, stats: true),
    ]

    /// The epilogue of `fk_conv_epilogue` in double (postRelu only with scale, as there).
    func epilogue(_ z0: Double, _ o: Options, _ sc: Double, _ sh: Double) -> Double {
        var z = z0
        if o.preRelu { z = max(z, 0) }
        if o.affine { z = z * sc + sh; if o.postRelu { z = max(z, 0) } }
        return z
    }

    func testForwardMatchesDoubleReferenceWithEveryEpilogue() {
        forwardAgainstReference(cases)
    }

    /// The same with the plain C tile products and output transform (CPUs without AVX2 and FMA),
    /// on the cases up to 16 channels (full and partial 8-channel blocks, partial tiles).
    func testPortableForwardMatchesDoubleReference() {
        withPortableKernels { forwardAgainstReference(cases.filter { $0.g.outChannels <= 16 }) }
    }

    /// The AVX2 tile products (CPUs without AVX-512, e.g. the AVX2-only machines), on the larger
    /// cases (position-major products from 16 tiles on) and a wide small-plane one (chunks of
    /// at least 64 tiles).
    func testAVX2ForwardMatchesDoubleReference() {
        let wide = Case(g: same(48, 40, 6, 6), n: 17, threads: [2], maxChunk: .max, all: false)
        withKernelLevel(1) { forwardAgainstReference(cases.filter { !$0.all } + [wide]) }
        forwardAgainstReference([wide])
    }

    func forwardAgainstReference(_ cases: [Case]) {
        var rng = TestRNG(seed: 13)
        var report: [String] = []
        for k in cases {
            let g = k.g, n = k.n, O = g.outChannels, P = g.outHeight * g.outWidth
            let x = floats(&rng, n * g.inChannels * g.inHeight * g.inWidth)
            let w = floats(&rng, O * g.inChannels * 9, -0.5, 0.5)
            let b = floats(&rng, O), sc = floats(&rng, O, 0.5, 1.5), sh = floats(&rng, O)
            // Reference: conv2dForward in Double on the same (float) values.
            let yd = DBuf(zeros: n * O * P)
            conv2dForward(yd.p, DBuf(x.map(Double.init)).c, DBuf(w.map(Double.init)).c, nil, n: n, g)
            let u = Buf<Float>(zeros: winogradFilterCount(g))
            winogradFilterTransform(u.p, w, g)
            var worstCase = 0.0
            // Chunks of at most n samples: a tiny geometry's default chunk is huge.
            let scratches = Dictionary(uniqueKeysWithValues: k.threads.map {
                ($0, scratch(g, threads: $0, maxChunk: min(k.maxChunk, n)))
            })
            for opt in k.all ? options : [options[1], options[5]] {
                var want = [Double](repeating: 0, count: n * O * P)
                var sumWant = [Double](repeating: 0, count: O), sqWant = [Double](repeating: 0, count: O)
                var absSum = [Double](repeating: 0, count: O), absSq = [Double](repeating: 0, count: O)
                for s in 0..<n {
                    for o in 0..<O {
                        for p in 0..<P {
                            let i = (s * O + o) * P + p
                            let z = epilogue(yd.p[i] + (opt.bias ? Double(b[o]) : 0), opt, Double(sc[o]), Double(sh[o]))
                            want[i] = z
                            sumWant[o] += z; sqWant[o] += z * z; absSum[o] += abs(z); absSq[o] += z * z
                        }
                    }
                }
                for threads in k.threads {
                    let y = Buf<Float>(zeros: n * O * P)
                    let sum = DBuf(zeros: O), sumsq = DBuf(zeros: O)
                    winogradConvForward(y.p, x, u.c, opt.bias ? b : nil, preRelu: opt.preRelu,
                                        scale: opt.affine ? sc : nil, shift: opt.affine ? sh : nil, postRelu: opt.postRelu,
                                        stats: opt.stats ? (sum.p, sumsq.p) : nil, n: n, g, threads: threads,
                                        scratch: scratches[threads]!)
                    let e = relativeError(y.array, want)
                    worstCase = max(worstCase, e)
                    XCTAssertLessThan(e, winogradTolerance, "\(g.inChannels)->\(O) \(g.inHeight)x\(g.inWidth) n=\(n) \(opt) \(threads) threads")
                    if opt.stats {
                        for o in 0..<O {
                            XCTAssertEqual(sum.p[o], sumWant[o], accuracy: 1e-4 * max(absSum[o], 1), "sum[\(o)] \(opt)")
                            XCTAssertEqual(sumsq.p[o], sqWant[o], accuracy: 1e-4 * max(absSq[o], 1), "sumsq[\(o)] \(opt)")
                        }
                    }
                }
            }
            report.append("\(g.inChannels)->\(O) \(g.inHeight)x\(g.inWidth) n=\(n): \(String(format: "%.2e", worstCase))")
        }
        print("Winograd max error relative to the output magnitude:\n  " + report.joined(separator: "\n  "))
    }

    /// The fused backward with dx by Winograd (`gradInputFilters`) against the same backward
    /// with dx by GEMM + col2im: dx within the Winograd tolerance, every other gradient bitwise
    /// (they do not depend on how dx is computed). Several chunks per thread, 1 and 2 threads,
    /// partial tiles, a chunk the col panel cannot hold V and M for (the GEMM path then).
    func testGradInputMatchesDirectBackward() {
        var rng = TestRNG(seed: 29)
        let epilogues = [
            FusedEpilogue(bias: true, relu: true, batchnorm: .beforeRelu, epsilon: 1e-3),
            FusedEpilogue(bias: false, relu: true, batchnorm: .afterRelu, epsilon: 1e-3),
            FusedEpilogue(bias: true, relu: false, batchnorm: .none, epsilon: 1e-3),
        ]
        for (g, n) in [(same(8, 16, 12, 12), 5), (same(6, 5, 9, 7), 3), (same(20, 8, 6, 7), 3), (same(1, 32, 8, 8), 2)] {
            let C = g.inChannels, O = g.outChannels, P = g.outHeight * g.outWidth
            let x = Buf(floats(&rng, n * C * P)), w = Buf(floats(&rng, O * C * 9, -0.5, 0.5))
            let dy = Buf(floats(&rng, n * O * P)), y = Buf(floats(&rng, n * O * P, 0, 1))
            let z = Buf(floats(&rng, n * O * P)), gamma = Buf(floats(&rng, O, 0.5, 1.5))
            let mean = Buf(floats(&rng, O, -0.1, 0.1)), variance = Buf(floats(&rng, O, 0.5, 1.5))
            let u = Buf<Float>(zeros: winogradFilterCount(g, gradInput: true))
            winogradGradInputFilterTransform(u.p, w.c, g, threads: 2)
            for e in epilogues {
                for threads in [1, 2] {
                    let need = fastConvScratch(g, maxChunk: 2)
                    let sc = FastScratch(floats: (0..<threads).map { _ in Buf<Float>(zeros: need.floats).p },
                                         doubles: (0..<threads).map { _ in Buf<Double>(zeros: need.doubles).p }, maxChunk: 2)
                    func run(_ filters: UnsafePointer<Float>?) -> [[Float]] {
                        let dx = Buf<Float>(zeros: n * C * P), dw = Buf<Float>(zeros: O * C * 9)
                        let db = Buf<Float>(zeros: O), dg = Buf<Float>(zeros: O), dbe = Buf<Float>(zeros: O)
                        let bn = e.hasBatchnorm
                        fastFusedConvTrainBackward(dx: dx.p, dw: dw.p, db: e.bias ? db.p : nil, dgamma: bn ? dg.p : nil,
                                                   dbeta: bn ? dbe.p : nil, dy: dy.c, x: x.c, w: w.c,
                                                   y: e.backwardReadsOutput ? y.c : nil, bnInput: bn ? z.c : nil,
                                                   gamma: bn ? gamma.c : nil, mean: bn ? mean.c : nil,
                                                   variance: bn ? variance.c : nil, n: n, g, e, threads: threads,
                                                   scratch: sc, gradInputFilters: filters)
                        return [dx.array, dw.array, db.array, dg.array, dbe.array]
                    }
                    let direct = run(nil), winograd = run(u.c)
                    let what = "\(C)->\(O) \(g.inHeight)x\(g.inWidth) \(e) \(threads) threads"
                    XCTAssertLessThan(relativeError(winograd[0], direct[0].map(Double.init)), winogradTolerance, "dx " + what)
                    XCTAssertEqual(Array(winograd[1...]), Array(direct[1...]), "dw, db, dgamma, dbeta " + what)
                    // Where V and M fit the col panel, dx really came from Winograd (other roundings).
                    let fits = winogradGradInputScratch(g, samples: 2) <= 2 * C * 9 * P
                    XCTAssertEqual(winograd[0] == direct[0], !fits, "which path computed dx, " + what)
                }
            }
        }
    }

    /// dw by Winograd (the adjoints of the output and filter transforms) against dw by im2col +
    /// GEMM in the same backward, and against a double-precision direct sum: within the Winograd
    /// tolerance of the output gradient's scale; every other output bitwise the same. Partial tiles,
    /// several chunks per thread (maxChunk 2), 1 to 3 threads (a thread with no samples), 1x1
    /// planes, a wide small-plane layer.
    func testWeightGradMatchesDirectBackward() {
        var rng = TestRNG(seed: 41)
        let e = FusedEpilogue(bias: true, relu: true, batchnorm: .beforeRelu, epsilon: 1e-3)
        var report: [String] = []
        for (g, n, maxChunk) in [(same(8, 16, 12, 12), 5, 2), (same(6, 5, 9, 8), 3, 2), (same(3, 4, 1, 1), 2, 1),
                                 (same(20, 8, 8, 7), 3, 8), (same(64, 48, 8, 8), 17, 64), (same(16, 8, 6, 6), 3, 2)] {
            let C = g.inChannels, O = g.outChannels, P = g.outHeight * g.outWidth
            let x = Buf(floats(&rng, n * C * P)), w = Buf(floats(&rng, O * C * 9, -0.5, 0.5))
            let dy = Buf(floats(&rng, n * O * P)), y = Buf(floats(&rng, n * O * P, 0, 1))
            let z = Buf(floats(&rng, n * O * P)), gamma = Buf(floats(&rng, O, 0.5, 1.5))
            let mean = Buf(floats(&rng, O, -0.1, 0.1)), variance = Buf(floats(&rng, O, 0.5, 1.5))
            var worst = 0.0
            for threads in [1, 2, 3] {
                let need = fastConvWinogradBackwardScratch(g, maxChunk: maxChunk)
                let sc = FastScratch(floats: (0..<threads).map { _ in Buf<Float>(zeros: need.floats).p },
                                     doubles: (0..<threads).map { _ in Buf<Double>(zeros: need.doubles).p }, maxChunk: maxChunk)
                func run(_ winograd: Bool) -> [[Float]] {
                    let dx = Buf<Float>(zeros: n * C * P), dw = Buf<Float>(zeros: O * C * 9)
                    let db = Buf<Float>(zeros: O), dg = Buf<Float>(zeros: O), dbe = Buf<Float>(zeros: O)
                    fastFusedConvTrainBackward(dx: dx.p, dw: dw.p, db: db.p, dgamma: dg.p, dbeta: dbe.p, dy: dy.c, x: x.c,
                                               w: w.c, y: y.c, bnInput: z.c, gamma: gamma.c, mean: mean.c,
                                               variance: variance.c, n: n, g, e, threads: threads, scratch: sc,
                                               winogradWeightGrad: winograd)
                    return [dw.array, dx.array, db.array, dg.array, dbe.array]
                }
                let direct = run(false), winograd = run(true)
                let what = "\(C)->\(O) \(g.inHeight)x\(g.inWidth) n=\(n) \(threads) threads"
                let err = relativeError(winograd[0], direct[0].map(Double.init))
                worst = max(worst, err)
                XCTAssertLessThan(err, winogradTolerance, "dw " + what)
                // By Winograd where the tiles cover the plane well (1x1: both exact); at 6x6 direct.
                if g.inHeight > 1 {
                    XCTAssertEqual(winograd[0] == direct[0], !winogradWeightGradPays(g), "which path computed dw, " + what)
                }
                XCTAssertEqual(Array(winograd[1...]), Array(direct[1...]), "dx, db, dgamma, dbeta " + what)
            }
            report.append("\(C)->\(O) \(g.inHeight)x\(g.inWidth) n=\(n): \(String(format: "%.2e", worst))")
        }
        print("Winograd dw error relative to the direct dw:\n  " + report.joined(separator: "\n  "))
    }

    /// The fused wrappers against the generic fused kernels run in Double.
    func testFusedInferenceAndTrainingForwardMatchDoubleReference() {
        var rng = TestRNG(seed: 14)
        let g = same(6, 7, 9, 6), n = 3, O = 7, P = 54
        let x = floats(&rng, n * 6 * 9 * 6), w = floats(&rng, O * 6 * 9, -0.5, 0.5)
        let b = floats(&rng, O), gamma = floats(&rng, O, 0.5, 1.5), beta = floats(&rng, O)
        let rm = floats(&rng, O, -0.2, 0.2), rv = floats(&rng, O, 0.5, 2)
        let u = Buf<Float>(zeros: winogradFilterCount(g))
        winogradFilterTransform(u.p, w, g)
        let D = { (a: [Float]) in DBuf(a.map(Double.init)).c }
        let epilogues = [
            FusedEpilogue(bias: true, relu: true, batchnorm: .afterRelu, epsilon: 1e-3),
            FusedEpilogue(bias: true, relu: true, batchnorm: .beforeRelu, epsilon: 1e-3),
            FusedEpilogue(bias: false, relu: true, batchnorm: .none, epsilon: 1e-3),
            FusedEpilogue(bias: true, relu: false, batchnorm: .none, epsilon: 1e-3),
        ]
        for e in epilogues {
            let bn = e.hasBatchnorm
            for threads in [1, 2] {
                // Inference.
                let want = DBuf(zeros: n * O * P), got = Buf<Float>(zeros: n * O * P)
                fusedForward(want.p, D(x), D(w), e.bias ? D(b) : nil, gamma: bn ? D(gamma) : nil, beta: bn ? D(beta) : nil,
                             runningMean: bn ? D(rm) : nil, runningVar: bn ? D(rv) : nil, n: n, .conv2d(g), e)
                winogradFusedConvForward(got.p, x, u.c, e.bias ? b : nil, gamma: bn ? gamma : nil, beta: bn ? beta : nil,
                                         runningMean: bn ? rm : nil, runningVar: bn ? rv : nil, n: n, g, e,
                                         threads: threads, scratch: scratch(g, threads: threads, maxChunk: 2))
                XCTAssertLessThan(relativeError(got.array, want.array), winogradTolerance, "inference \(e) \(threads)")
                // Training forward with batch statistics.
                let y0 = DBuf(zeros: n * O * P), z0 = DBuf(zeros: n * O * P), m0 = DBuf(zeros: O), v0 = DBuf(zeros: O)
                fusedTrainForward(y0.p, bn ? z0.p : nil, bn ? m0.p : nil, bn ? v0.p : nil, D(x), D(w), e.bias ? D(b) : nil,
                                  gamma: bn ? D(gamma) : nil, beta: bn ? D(beta) : nil, n: n, .conv2d(g), e)
                let y = Buf<Float>(zeros: n * O * P), z = Buf<Float>(zeros: n * O * P)
                let mean = Buf<Float>(zeros: O), variance = Buf<Float>(zeros: O)
                winogradFusedConvTrainForward(y.p, bn ? z.p : nil, bn ? mean.p : nil, bn ? variance.p : nil, x, u.c,
                                              e.bias ? b : nil, gamma: bn ? gamma : nil, beta: bn ? beta : nil, n: n, g, e,
                                              threads: threads, scratch: scratch(g, threads: threads, maxChunk: 1))
                // The normalized output divides by the batch's standard deviation: a looser bound.
                XCTAssertLessThan(relativeError(y.array, y0.array), 10 * winogradTolerance, "train y \(e) \(threads)")
                if bn {
                    XCTAssertLessThan(relativeError(z.array, z0.array), winogradTolerance, "train z \(e) \(threads)")
                    XCTAssertLessThan(relativeError(mean.array, m0.array), winogradTolerance, "mean \(e) \(threads)")
                    XCTAssertLessThan(relativeError(variance.array, v0.array), winogradTolerance, "variance \(e) \(threads)")
                }
            }
        }
    }

    // MARK: - Threads, reproducibility, in place

    /// The same thread count gives the same bits (outputs and statistics), batch split and
    /// channel split alike; 1 and 2 threads agree within the bound.
    func testBitwiseReproducibleForAThreadCount() {
        var rng = TestRNG(seed: 15)
        for (g, n) in [(same(8, 12, 11, 9), 5), (same(8, 12, 11, 9), 1)] {
            let O = g.outChannels, count = n * O * g.outHeight * g.outWidth
            let x = floats(&rng, n * g.inChannels * g.inHeight * g.inWidth), w = floats(&rng, O * g.inChannels * 9)
            let b = floats(&rng, O)
            let u = Buf<Float>(zeros: winogradFilterCount(g))
            winogradFilterTransform(u.p, w, g)
            func run(_ threads: Int) -> [Float] {
                let y = Buf<Float>(zeros: count), sum = DBuf(zeros: O), sq = DBuf(zeros: O)
                winogradConvForward(y.p, x, u.c, b, preRelu: true, scale: nil, shift: nil, postRelu: false,
                                    stats: (sum.p, sq.p), n: n, g, threads: threads,
                                    scratch: scratch(g, threads: threads, maxChunk: 2))
                return y.array + sum.array.map(Float.init) + sq.array.map(Float.init)
            }
            for threads in [1, 2] { XCTAssertEqual(run(threads), run(threads), "n=\(n), \(threads) threads") }
            // Different chunks and GEMM shapes: equal within the bound, not bitwise.
            let one = run(1), two = run(2)
            XCTAssertLessThan(relativeError(Array(two[0..<count]), one[0..<count].map(Double.init)), winogradTolerance)
        }
    }

    /// With O == C the executor may hand the same buffer as input and output.
    func testInPlaceMatchesOutOfPlace() {
        var rng = TestRNG(seed: 16)
        // 10x7: batch 1 splits the channels; 17x7 (5 rows of tiles): batch 1 splits the rows
        // of tiles with 2 threads, whose halos overlap the other thread's output rows.
        for (g, n, threads) in [(same(8, 8, 10, 7), 3, 2), (same(8, 8, 10, 7), 1, 2), (same(8, 8, 10, 7), 2, 1),
                                (same(8, 8, 17, 7), 1, 2), (same(8, 8, 17, 7), 1, 3)] {
            let count = n * 8 * g.inHeight * g.inWidth
            let x = floats(&rng, count), w = floats(&rng, 8 * 8 * 9), b = floats(&rng, 8)
            let u = Buf<Float>(zeros: winogradFilterCount(g))
            winogradFilterTransform(u.p, w, g)
            let sc = scratch(g, threads: threads, maxChunk: 1)
            let apart = Buf<Float>(zeros: count)
            winogradConvForward(apart.p, x, u.c, b, preRelu: true, scale: nil, shift: nil, postRelu: false, stats: nil,
                                n: n, g, threads: threads, scratch: sc)
            let inPlace = Buf(x)
            winogradConvForward(inPlace.p, inPlace.c, u.c, b, preRelu: true, scale: nil, shift: nil, postRelu: false,
                                stats: nil, n: n, g, threads: threads, scratch: sc)
            XCTAssertEqual(inPlace.array, apart.array, "\(g.inHeight)x\(g.inWidth) n=\(n), \(threads) threads")
        }
    }

    // MARK: - Executor

    /// An executor with `winograd` on against the direct fast path: plain conv, fused inference
    /// and fused training forward steps; the inference cache follows `setBuffer`, and a conv
    /// whose weights a step updates is re-transformed every run.
    func testExecutorWinogradPathMatchesDirectPath() throws {
        let g = same(3, 6, 9, 7), g2 = same(6, 6, 9, 7), n = 3
        var rng = TestRNG(seed: 17)
        let inference = FusedEpilogue(bias: true, relu: true, batchnorm: .afterRelu, epsilon: 1e-3)
        let training = FusedEpilogue(bias: true, relu: true, batchnorm: .beforeRelu, epsilon: 1e-3)
        let act = [6, 9, 7]
        let buffers = [
            BufferDesc(name: "x", perSample: [3, 9, 7], batched: true, role: .input),                 // 0
            BufferDesc(name: "w1", perSample: [6, 3, 3, 3], batched: false, role: .parameter),       // 1
            BufferDesc(name: "b1", perSample: [6], batched: false, role: .parameter),                // 2
            BufferDesc(name: "gamma", perSample: [6], batched: false, role: .parameter),             // 3
            BufferDesc(name: "beta", perSample: [6], batched: false, role: .parameter),              // 4
            BufferDesc(name: "mean", perSample: [6], batched: false, role: .state),                  // 5
            BufferDesc(name: "var", perSample: [6], batched: false, role: .state),                   // 6
            BufferDesc(name: "y1", perSample: act, batched: true, role: .intermediate),              // 7
            BufferDesc(name: "w2", perSample: [6, 6, 3, 3], batched: false, role: .parameter),       // 8
            BufferDesc(name: "y2", perSample: act, batched: true, role: .intermediate),              // 9
            BufferDesc(name: "w3", perSample: [6, 6, 3, 3], batched: false, role: .parameter),       // 10
            BufferDesc(name: "y3", perSample: act, batched: true, role: .intermediate),              // 11
            BufferDesc(name: "z3", perSample: act, batched: true, role: .intermediate),              // 12
            BufferDesc(name: "m3", perSample: [6], batched: false, role: .intermediate),             // 13
            BufferDesc(name: "v3", perSample: [6], batched: false, role: .intermediate),             // 14
            BufferDesc(name: "dw3", perSample: [6, 6, 3, 3], batched: false, role: .input),          // 15
            BufferDesc(name: "lr", perSample: [1], batched: false, role: .input),                    // 16
            BufferDesc(name: "velocity", perSample: [6, 6, 3, 3], batched: false, role: .state),     // 17
        ]
        let steps = [
            Step(name: "conv1", kernel: .fused(.conv2d(g), inference), inputs: [0, 1, 2, 3, 4, 5, 6], outputs: [7]),
            Step(name: "conv2", kernel: .conv2d(g2, bias: false), inputs: [7, 8], outputs: [9]),
            Step(name: "conv3", kernel: .fusedTrain(.conv2d(g2), training), inputs: [9, 10, 2, 3, 4], outputs: [11, 12, 13, 14]),
            Step(name: "sgd", kernel: .sgdUpdate(momentum: 0, nesterov: false), inputs: [8, 15, 17, 16], outputs: []),
        ]
        let plan = Plan(name: "wino", buffers: buffers, steps: steps, maxBatch: n, outputs: [9, 11, 12, 13, 14])
        let values: [Int: [Float]] = [
            0: floats(&rng, n * 3 * 63), 1: floats(&rng, 6 * 27), 2: floats(&rng, 6), 3: floats(&rng, 6, 0.5, 1.5),
            4: floats(&rng, 6), 5: floats(&rng, 6, -0.2, 0.2), 6: floats(&rng, 6, 0.5, 2),
            8: floats(&rng, 6 * 54, -0.3, 0.3), 10: floats(&rng, 6 * 54, -0.3, 0.3), 15: floats(&rng, 6 * 54), 16: [0.5],
        ]
        let newW1 = floats(&rng, 6 * 27)
        func outputs(_ ex: Executor<Float>) -> [[Float]] { [9, 11, 12, 13, 14].map { ex.buffer($0) } }
        func runs(winograd: Bool) throws -> [[[Float]]] {
            let ex = try Executor<Float>(plan: plan)
            ex.threads = 2
            ex.winograd = winograd
            for (i, v) in values { ex.setBuffer(i, v) }
            try ex.run(batch: n)
            let first = outputs(ex)
            try ex.run(batch: n)  // conv2's weights moved (sgd): conv2 must see the new ones
            let second = outputs(ex)
            ex.setBuffer(1, newW1)  // conv1's cached filters must follow
            try ex.run(batch: n)
            return [first, second, outputs(ex)]
        }
        let direct = try runs(winograd: false), wino = try runs(winograd: true)
        for r in 0..<3 {
            XCTAssertNotEqual(direct[r][0], direct[(r + 1) % 3][0], "the runs should differ (test setup)")
            for k in 0..<5 {
                let tol = k == 1 ? 10 * winogradTolerance : winogradTolerance  // y3 is normalized
                XCTAssertLessThan(relativeError(wino[r][k], direct[r][k].map(Double.init)), tol, "run \(r), output \(k)")
            }
            XCTAssertNotEqual(wino[r][0], direct[r][0], "the Winograd path did not run")
        }
    }
}
