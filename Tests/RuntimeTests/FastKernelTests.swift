// Every fast Float kernel against its reference: the fast convolutions (plain and fused,
// forward and backward, 1 and 2 threads, several chunks per thread) against the generic
// kernels, and the C dropout and pooling against theirs (bitwise). Tiny shapes.
import XCTest
import CKernels
@testable import Runtime

final class FastKernelTests: RuntimeTestCase {
    /// Scratch for `threads` threads and geometry g, chunks of at most `maxChunk` samples.
    func scratch(_ g: ConvGeometry, threads: Int, maxChunk: Int) -> FastScratch {
        let need = fastConvScratch(g, maxChunk: maxChunk)
        return FastScratch(floats: (0..<threads).map { _ in Buf<Float>(zeros: need.floats).p },
                           doubles: (0..<threads).map { _ in Buf<Double>(zeros: need.doubles).p }, maxChunk: maxChunk)
    }

    func floats(_ rng: inout TestRNG, _ count: Int, _ lo: Double = -1, _ hi: Double = 1) -> Buf<Float> {
        Buf(rng.array(count, lo, hi).map(Float.init))
    }

    let geometries = [
        ConvGeometry(inChannels: 3, inHeight: 6, inWidth: 5, outChannels: 4, kernelHeight: 3, kernelWidth: 3,
                     stride: 1, padTop: 1, padLeft: 1, outHeight: 6, outWidth: 5),
        ConvGeometry(inChannels: 2, inHeight: 7, inWidth: 7, outChannels: 3, kernelHeight: 3, kernelWidth: 2,
                     stride: 2, padTop: 1, padLeft: 0, outHeight: 4, outWidth: 3),
    ]
    let epilogues: [FusedEpilogue] = [
        FusedEpilogue(bias: true, relu: true, batchnorm: .afterRelu, epsilon: 1e-3),
        FusedEpilogue(bias: true, relu: true, batchnorm: .beforeRelu, epsilon: 1e-3),
        FusedEpilogue(bias: false, relu: true, batchnorm: .none, epsilon: 1e-3),
        FusedEpilogue(bias: true, relu: false, batchnorm: .none, epsilon: 1e-3),
    ]

    func testConvForwardMatchesNaive() {
        var rng = TestRNG(seed: 1)
        for (g, n) in geometries.map({ ($0, 5) }) + [(geometries[0], 1), (geometries[1], 1)] {
            let x = floats(&rng, n * g.inChannels * g.inHeight * g.inWidth)
            let w = floats(&rng, g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth)
            let b = floats(&rng, g.outChannels)
            let count = n * g.outChannels * g.outHeight * g.outWidth
            let want = Buf<Float>(zeros: count)
            conv2dForwardNaive(want.p, x.c, w.c, b.c, n: n, g)
            for threads in [1, 2, 3] {
                let y = Buf<Float>(zeros: count)
                fastConvForward(y.p, x.c, w.c, b.c, preRelu: false, scale: nil, shift: nil, postRelu: false, stats: nil,
                                n: n, g, threads: threads, scratch: scratch(g, threads: threads, maxChunk: 2))
                assertClose(y.array, want.array, tol: 1e-5, "conv forward, n \(n), \(threads) threads")
            }
        }
    }

    func testFusedTrainForwardAndBackwardMatchReference() {
        var rng = TestRNG(seed: 2)
        // n = 1 with 2 and 3 threads: the forward splits the output channels (batch 1).
        for (g, n) in geometries.map({ ($0, 5) }) + [(geometries[0], 1)] {
            for e in epilogues {
                let O = g.outChannels
                let P: Int = g.outHeight * g.outWidth
                let xCount: Int = n * g.inChannels * g.inHeight * g.inWidth
                let yCount: Int = n * O * P
                let x = floats(&rng, xCount)
                let w = floats(&rng, O * g.inChannels * g.kernelHeight * g.kernelWidth)
                let b = floats(&rng, O), gamma = floats(&rng, O, 0.5, 1.5), beta = floats(&rng, O)
                let dy = floats(&rng, yCount)
                let bn = e.hasBatchnorm
                // Reference.
                let y0 = Buf<Float>(zeros: yCount), z0 = Buf<Float>(zeros: yCount)
                let mean0 = Buf<Float>(zeros: O), var0 = Buf<Float>(zeros: O)
                let bIn: UnsafePointer<Float>? = e.bias ? b.c : nil
                let gIn: UnsafePointer<Float>? = bn ? gamma.c : nil
                let beIn: UnsafePointer<Float>? = bn ? beta.c : nil
                let zOut0: UnsafeMutablePointer<Float>? = bn ? z0.p : nil
                let mOut0: UnsafeMutablePointer<Float>? = bn ? mean0.p : nil
                let vOut0: UnsafeMutablePointer<Float>? = bn ? var0.p : nil
                fusedTrainForward(y0.p, zOut0, mOut0, vOut0, x.c, w.c, bIn, gamma: gIn, beta: beIn, n: n, .conv2d(g), e)
                let dx0 = Buf<Float>(zeros: xCount), dw0 = Buf<Float>(zeros: w.count), db0 = Buf<Float>(zeros: O)
                let dg0 = Buf<Float>(zeros: O), dbe0 = Buf<Float>(zeros: O)
                let yIn: UnsafePointer<Float>? = e.backwardReadsOutput ? y0.c : nil
                let zIn: UnsafePointer<Float>? = bn ? z0.c : nil
                let gammaIn: UnsafePointer<Float>? = bn ? gamma.c : nil
                let meanIn: UnsafePointer<Float>? = bn ? mean0.c : nil
                let varIn: UnsafePointer<Float>? = bn ? var0.c : nil
                let dbOut0: UnsafeMutablePointer<Float>? = e.bias ? db0.p : nil
                let dgOut0: UnsafeMutablePointer<Float>? = bn ? dg0.p : nil
                let dbeOut0: UnsafeMutablePointer<Float>? = bn ? dbe0.p : nil
                fusedTrainBackward(dx: dx0.p, dw: dw0.p, db: dbOut0, dgamma: dgOut0, dbeta: dbeOut0,
                                   dy: dy.c, x: x.c, w: w.c, y: yIn, bnInput: zIn,
                                   gamma: gammaIn, mean: meanIn, variance: varIn, n: n, .conv2d(g), e)
                for threads in n == 1 ? [2, 3] : [1, 2] {
                    let sc = scratch(g, threads: threads, maxChunk: 2)
                    let what = "\(e), stride \(g.stride), \(threads) threads"
                    let y = Buf<Float>(zeros: yCount), z = Buf<Float>(zeros: yCount)
                    let mean = Buf<Float>(zeros: O), variance = Buf<Float>(zeros: O)
                    let zOut: UnsafeMutablePointer<Float>? = bn ? z.p : nil
                    let mOut: UnsafeMutablePointer<Float>? = bn ? mean.p : nil
                    let vOut: UnsafeMutablePointer<Float>? = bn ? variance.p : nil
                    fastFusedConvTrainForward(y.p, zOut, mOut, vOut, x.c, w.c, bIn, gamma: gIn, beta: beIn,
                                              n: n, g, e, threads: threads, scratch: sc)
                    assertClose(y.array, y0.array, tol: 1e-4, "y, " + what)
                    if bn {
                        assertClose(z.array, z0.array, tol: 1e-5, "bn input, " + what)
                        assertClose(mean.array, mean0.array, tol: 1e-5, "mean, " + what)
                        assertClose(variance.array, var0.array, tol: 1e-4, "variance, " + what)
                    }
                    // The backward from the reference forward, so both see the same y and z.
                    let dx = Buf<Float>(zeros: xCount), dw = Buf<Float>(zeros: w.count), db = Buf<Float>(zeros: O)
                    let dg = Buf<Float>(zeros: O), dbe = Buf<Float>(zeros: O)
                    let dbOut: UnsafeMutablePointer<Float>? = e.bias ? db.p : nil
                    let dgOut: UnsafeMutablePointer<Float>? = bn ? dg.p : nil
                    let dbeOut: UnsafeMutablePointer<Float>? = bn ? dbe.p : nil
                    fastFusedConvTrainBackward(dx: dx.p, dw: dw.p, db: dbOut, dgamma: dgOut, dbeta: dbeOut,
                                               dy: dy.c, x: x.c, w: w.c, y: yIn, bnInput: zIn,
                                               gamma: gammaIn, mean: meanIn, variance: varIn,
                                               n: n, g, e, threads: threads, scratch: sc)
                    assertClose(dx.array, dx0.array, tol: 1e-4, "dx, " + what)
                    assertClose(dw.array, dw0.array, tol: 1e-4, "dw, " + what)
                    if e.bias { assertClose(db.array, db0.array, tol: 1e-4, "db, " + what) }
                    if bn {
                        assertClose(dg.array, dg0.array, tol: 1e-4, "dgamma, " + what)
                        assertClose(dbe.array, dbe0.array, tol: 1e-4, "dbeta, " + what)
                    }
                }
            }
        }
    }

    func testFusedInferenceForwardMatchesReference() {
        var rng = TestRNG(seed: 3)
        let g = geometries[0], n = 3, O = g.outChannels
        let x = floats(&rng, n * g.inChannels * g.inHeight * g.inWidth)
        let w = floats(&rng, O * g.inChannels * g.kernelHeight * g.kernelWidth)
        let b = floats(&rng, O), gamma = floats(&rng, O, 0.5, 1.5), beta = floats(&rng, O)
        let rm = floats(&rng, O), rv = floats(&rng, O, 0.5, 2)
        for e in epilogues {
            let bn = e.hasBatchnorm, count = n * O * g.outHeight * g.outWidth
            let want = Buf<Float>(zeros: count), got = Buf<Float>(zeros: count)
            let bIn: UnsafePointer<Float>? = e.bias ? b.c : nil
            let gIn: UnsafePointer<Float>? = bn ? gamma.c : nil, beIn: UnsafePointer<Float>? = bn ? beta.c : nil
            let rmIn: UnsafePointer<Float>? = bn ? rm.c : nil, rvIn: UnsafePointer<Float>? = bn ? rv.c : nil
            fusedForward(want.p, x.c, w.c, bIn, gamma: gIn, beta: beIn, runningMean: rmIn, runningVar: rvIn, n: n, .conv2d(g), e)
            fastFusedConvForward(got.p, x.c, w.c, bIn, gamma: gIn, beta: beIn, runningMean: rmIn, runningVar: rvIn,
                                 n: n, g, e, threads: 2, scratch: scratch(g, threads: 2, maxChunk: 1))
            assertClose(got.array, want.array, tol: 1e-5, "fused inference \(e)")
        }
    }

    /// Same thread count, same bits; the reductions never depend on timing.
    func testFastBackwardIsBitwiseReproducible() {
        var rng = TestRNG(seed: 4)
        let g = geometries[0], n = 7, O = g.outChannels, e = epilogues[0]
        let P: Int = g.outHeight * g.outWidth
        let xCount: Int = n * g.inChannels * g.inHeight * g.inWidth
        let x = floats(&rng, xCount)
        let w = floats(&rng, O * g.inChannels * 9), gamma = floats(&rng, O, 0.5, 1.5)
        let dy = floats(&rng, n * O * P), z = floats(&rng, n * O * P)
        let mean = floats(&rng, O), variance = floats(&rng, O, 0.5, 1)
        func run() -> [Float] {
            let dx = Buf<Float>(zeros: x.count), dw = Buf<Float>(zeros: w.count), db = Buf<Float>(zeros: O)
            let dg = Buf<Float>(zeros: O), dbe = Buf<Float>(zeros: O)
            fastFusedConvTrainBackward(dx: dx.p, dw: dw.p, db: db.p, dgamma: dg.p, dbeta: dbe.p, dy: dy.c, x: x.c, w: w.c,
                                       y: nil, bnInput: z.c, gamma: gamma.c, mean: mean.c, variance: variance.c,
                                       n: n, g, e, threads: 2, scratch: scratch(g, threads: 2, maxChunk: 2))
            return dx.array + dw.array + db.array + dg.array + dbe.array
        }
        XCTAssertEqual(run(), run())
    }

    func testPlainConvGradientsMatchReference() {
        var rng = TestRNG(seed: 5)
        for g in geometries {
            let n = 4, O = g.outChannels
            let x = floats(&rng, n * g.inChannels * g.inHeight * g.inWidth)
            let w = floats(&rng, O * g.inChannels * g.kernelHeight * g.kernelWidth)
            let dy = floats(&rng, n * O * g.outHeight * g.outWidth)
            let dx0 = Buf<Float>(zeros: x.count), dw0 = Buf<Float>(zeros: w.count)
            conv2dBackwardInput(dx0.p, dy.c, w.c, n: n, g)
            conv2dBackwardWeight(dw0.p, dy.c, x.c, n: n, g)
            let dx = Buf<Float>(zeros: x.count), dw = Buf<Float>(zeros: w.count)
            let plain = FusedEpilogue(bias: false, relu: false, batchnorm: .none, epsilon: 0)
            fastFusedConvTrainBackward(dx: dx.p, dw: dw.p, db: nil, dgamma: nil, dbeta: nil, dy: dy.c, x: x.c, w: w.c,
                                       y: nil, bnInput: nil, gamma: nil, mean: nil, variance: nil,
                                       n: n, g, plain, threads: 2, scratch: scratch(g, threads: 2, maxChunk: 1))
            assertClose(dx.array, dx0.array, tol: 1e-5, "conv grad input")
            assertClose(dw.array, dw0.array, tol: 1e-5, "conv grad weight")
        }
    }

    /// The C kernel (16 lanes of AVX-512 hashing where the CPU has AVX-512DQ, a scalar tail)
    /// gives the reference's bits for every count (tails of 0...15), rate, and thread split
    /// (a split starts the hash at another element).
    func testDropoutIsBitwiseTheReference() {
        var rng = TestRNG(seed: 6)
        for (count, rate, threads) in [(1000, 0.4, 1), (17, 0.5, 1), (15, 0.1, 1), (1, 0.3, 1), (0, 0.3, 1),
                                       (70_001, 0.25, 2), (70_003, 0.0, 2), (40_000, 0.9, 1)] {
            let x = floats(&rng, max(count, 1))
            let y0 = Buf<Float>(zeros: max(count, 1)), m0 = Buf<Float>(zeros: max(count, 1))
            let y = Buf<Float>(zeros: max(count, 1)), m = Buf<Float>(zeros: max(count, 1))
            dropoutForward(y0.p, m0.p, x.c, count: count, rate: rate, seed: 9, run: 3, step: 5)
            fastDropout(y.p, m.p, x.c, count: count, rate: rate, seed: 9, run: 3, step: 5, threads: threads)
            XCTAssertEqual(y.array.map(\.bitPattern), y0.array.map(\.bitPattern), "count \(count) rate \(rate)")
            XCTAssertEqual(m.array.map(\.bitPattern), m0.array.map(\.bitPattern), "count \(count) rate \(rate)")
            if count >= 1000 {
                let kept = Double(m.array.filter { $0 != 0 }.count) / Double(count)
                XCTAssertEqual(kept, 1 - rate, accuracy: 0.02, "count \(count) rate \(rate)")
            }
        }
    }

    /// The maxpool gradient on wide rows (what the compiler's vectorized clones run), under every
    /// kernel-level limit: bitwise the reference, with ties (which go to the first maximum in
    /// scan order), NaNs and infinities among the values. (An explicit AVX-512 version, 16
    /// windows at a time, measured no faster: the step is bound by memory; not kept.)
    func testMaxpool2x2GradientWideRowsAtEveryLevel() {
        var rng = TestRNG(seed: 17)
        defer { fk_allow_simd(1) }
        for (h, w) in [(10, 70), (4, 96), (2, 32)] {
            let g = PoolGeometry(channels: 2, inHeight: h, inWidth: w, size: 2, stride: 2, padTop: 0, padLeft: 0,
                                 outHeight: h / 2, outWidth: w / 2)
            XCTAssertTrue(isPlain2x2(g))
            let n = 3
            var values = rng.array(n * 2 * h * w, -2, 2).map { Float(($0 * 2).rounded()) }  // many ties
            values[5] = .nan; values[40] = .infinity; values[77] = -.infinity; values[130] = .nan
            let x = Buf(values), dy = Buf(rng.array(n * 2 * (h / 2) * (w / 2)).map(Float.init))
            let reference = Buf<Float>(zeros: x.count)
            maxpoolBackward(reference.p, dy.c, x.c, n: n, g)
            for level in [2, 1, 0] {
                fk_limit_simd(Int32(level))
                let dx = Buf([Float](repeating: 7, count: x.count))
                fastMaxpool2x2Backward(dx.p, dy.c, x.c, n: n, g, threads: 2)
                XCTAssertEqual(dx.array.map(\.bitPattern), reference.array.map(\.bitPattern), "\(h)x\(w), level \(level)")
            }
        }
    }

    /// Bitwise the reference, with ties; split over threads when large, and in place (which
    /// must stay one thread: a later plane's output lands on an earlier plane's input).
    func testMaxpool2x2IsBitwiseTheReference() {
        var rng = TestRNG(seed: 7)
        let g = PoolGeometry(channels: 3, inHeight: 6, inWidth: 8, size: 2, stride: 2, padTop: 0, padLeft: 0,
                             outHeight: 3, outWidth: 4)
        XCTAssertTrue(isPlain2x2(g))
        for (n, threads) in [(2, 1), (700, 2), (701, 3)] {
            // Rounded values make ties, which must go to the first maximum.
            let x = Buf(rng.array(n * 3 * 6 * 8, -2, 2).map { Float(($0 * 2).rounded()) })
            let dy = floats(&rng, n * 3 * 3 * 4)
            let y0 = Buf<Float>(zeros: dy.count), y = Buf<Float>(zeros: dy.count)
            maxpoolForward(y0.p, x.c, n: n, g)
            fastMaxpool2x2(y.p, x.c, n: n, g, threads: threads)
            XCTAssertEqual(y.array, y0.array, "n \(n), \(threads) threads")
            let inPlace = Buf(x.array)
            fastMaxpool2x2(inPlace.p, inPlace.c, n: n, g, threads: threads)
            XCTAssertEqual(Array(inPlace.array[0..<y0.count]), y0.array, "in place, n \(n), \(threads) threads")
            let dx0 = Buf<Float>(zeros: x.count), dx = Buf([Float](repeating: 7, count: x.count))
            maxpoolBackward(dx0.p, dy.c, x.c, n: n, g)
            fastMaxpool2x2Backward(dx.p, dy.c, x.c, n: n, g, threads: threads)
            XCTAssertEqual(dx.array, dx0.array, "n \(n), \(threads) threads")
        }
    }

    /// The executor's fast path against its reference path on a small conv training step.
    func testExecutorFastAndReferencePathsAgree() throws {
        let g = geometries[0]
        let e = epilogues[0]
        var rng = TestRNG(seed: 8)
        let n = 3, O = g.outChannels
        let P: Int = g.outHeight * g.outWidth
        let buffers = [
            BufferDesc(name: "x", perSample: [g.inChannels, g.inHeight, g.inWidth], batched: true, role: .input),
            BufferDesc(name: "w", perSample: [O, g.inChannels, 3, 3], batched: false, role: .parameter),
            BufferDesc(name: "b", perSample: [O], batched: false, role: .parameter),
            BufferDesc(name: "gamma", perSample: [O], batched: false, role: .parameter),
            BufferDesc(name: "beta", perSample: [O], batched: false, role: .parameter),
            BufferDesc(name: "y", perSample: [O, g.outHeight, g.outWidth], batched: true, role: .intermediate),
            BufferDesc(name: "z", perSample: [O, g.outHeight, g.outWidth], batched: true, role: .intermediate),
            BufferDesc(name: "mean", perSample: [O], batched: false, role: .intermediate),
            BufferDesc(name: "var", perSample: [O], batched: false, role: .intermediate),
        ]
        let step = Step(name: "conv", kernel: .fusedTrain(.conv2d(g), e), inputs: [0, 1, 2, 3, 4], outputs: [5, 6, 7, 8])
        let plan = Plan(name: "t", buffers: buffers, steps: [step], maxBatch: n, outputs: [5, 6, 7, 8])
        let inputs: [[Float]] = [
            rng.array(n * g.inChannels * g.inHeight * g.inWidth).map(Float.init),
            rng.array(O * g.inChannels * 9).map(Float.init), rng.array(O).map(Float.init),
            rng.array(O, 0.5, 1.5).map(Float.init), rng.array(O).map(Float.init),
        ]
        func run(fast: Bool) throws -> [[Float]] {
            let ex = try Executor<Float>(plan: plan)
            ex.fastKernels = fast
            for (i, v) in inputs.enumerated() { ex.setBuffer(i, v) }
            try ex.run(batch: n)
            return (5...8).map { ex.buffer($0) }
        }
        let fast = try run(fast: true), slow = try run(fast: false)
        for k in 0..<4 { assertClose(fast[k], slow[k], tol: 1e-4, "output \(k)") }
        XCTAssertEqual(fast[0].count, n * O * P)
    }

    /// The executor's two-input add and mul steps (gradient sums, dropout masks): the fast path
    /// (CKernels, split over threads) gives the generic kernels' bits, in place too.
    func testExecutorAddAndMulMatchTheGenericKernels() throws {
        var rng = TestRNG(seed: 9)
        let n = 3, per = 40_000  // above the threading threshold at n = 3
        for kernel in [Kernel.add, Kernel.mul] {
            for inPlace in [false, true] {
                let buffers = [
                    BufferDesc(name: "a", perSample: [per], batched: true, role: .input),
                    BufferDesc(name: "b", perSample: [per], batched: true, role: .input),
                    BufferDesc(name: "y", perSample: [per], batched: true, role: .intermediate),
                ]
                let out = inPlace ? 0 : 2
                let plan = Plan(name: "e", buffers: buffers, steps: [Step(name: "s", kernel: kernel, inputs: [0, 1], outputs: [out])],
                                maxBatch: n, outputs: [out])
                let a = rng.array(n * per).map(Float.init), b = rng.array(n * per).map(Float.init)
                func run(fast: Bool, threads: Int) throws -> [Float] {
                    let ex = try Executor<Float>(plan: plan)
                    ex.fastKernels = fast
                    ex.threads = threads
                    ex.setBuffer(0, a)
                    ex.setBuffer(1, b)
                    try ex.run(batch: n)
                    return ex.buffer(out)
                }
                let reference = try run(fast: false, threads: 1)
                XCTAssertEqual(reference, zip(a, b).map { kernel == .add ? $0 + $1 : $0 * $1 }, "\(kernel)")
                for t in [1, 2, 3] {
                    XCTAssertEqual(try run(fast: true, threads: t), reference, "\(kernel), in place \(inPlace), \(t) threads")
                }
            }
        }
    }
}
