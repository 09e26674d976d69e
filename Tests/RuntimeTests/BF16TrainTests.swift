// The training side of the bf16 path (BF16Conv.swift): the forward's batch statistics, the
// input gradient as the flipped convolution of the output gradient, and the weight gradient
// from the padded input and the output gradient in pairs, on each bf16 unit the CPU has, each
// against an independent reference in Double on the same bf16-rounded operands — the forward
// against the naive convolution (and the statistics against sums of the outputs it wrote), the
// gradients against the naive seven-loop backward (scatter form, no flipping, no im2col). The
// bias gradient stays f32, bitwise. Skips on CPUs with neither AMX nor AVX512_BF16.
import XCTest
import CKernels
@testable import Runtime

final class BF16TrainTests: RuntimeTestCase {
    func geometry(_ c: Int, _ o: Int, _ h: Int, _ w: Int, k: Int = 3, pad: (Int, Int)? = nil) -> ConvGeometry {
        let p = pad ?? (k / 2, k / 2)
        return ConvGeometry(inChannels: c, inHeight: h, inWidth: w, outChannels: o, kernelHeight: k, kernelWidth: k,
                            stride: 1, padTop: p.0, padLeft: p.1, outHeight: h + 2 * p.0 - k + 1,
                            outWidth: w + 2 * p.1 - k + 1)
    }

    func rounded(_ v: [Float]) -> [Double] { v.map { Double(Float(bitPattern: UInt32(fk_bf16_round($0)) << 16)) } }

    func floats(_ rng: inout TestRNG, _ count: Int) -> [Float] { rng.array(count, -1, 1).map(Float.init) }

    func fastScratch(_ g: ConvGeometry, threads: Int, maxChunk: Int) -> FastScratch {
        let need = fastConvScratch(g, maxChunk: maxChunk)
        return FastScratch(floats: (0..<threads).map { _ in Buf<Float>(zeros: need.floats).p },
                           doubles: (0..<threads).map { _ in Buf<Double>(zeros: need.doubles).p }, maxChunk: maxChunk)
    }

    func rawScratch(bytes: Int, threads: Int) -> [UnsafeMutableRawPointer] {
        (0..<threads).map { _ in
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
            p.initializeMemory(as: UInt8.self, repeating: 0xff, count: max(bytes, 64))  // garbage, not zeros
            addTeardownBlock { p.deallocate() }
            return p
        }
    }

    /// The backward of the convolution as written, in Double, scatter form: for every output
    /// element and tap, dx[s][c][ih][iw] += dy * w[o][c][kh][kw] and dw[o][c][kh][kw] += dy *
    /// x[s][c][ih][iw], with ih = oh - padTop + kh, iw = ow - padLeft + kw inside the input.
    func naiveBackward(_ dy: [Double], _ x: [Double], _ w: [Double], n: Int, _ g: ConvGeometry)
        -> (dx: [Double], dw: [Double]) {
        var dx = [Double](repeating: 0, count: n * g.inChannels * g.inHeight * g.inWidth)
        var dw = [Double](repeating: 0, count: w.count)
        for s in 0..<n {
            for o in 0..<g.outChannels {
                for oh in 0..<g.outHeight {
                    for ow in 0..<g.outWidth {
                        let d = dy[((s * g.outChannels + o) * g.outHeight + oh) * g.outWidth + ow]
                        for c in 0..<g.inChannels {
                            for kh in 0..<g.kernelHeight {
                                let ih = oh - g.padTop + kh
                                if ih < 0 || ih >= g.inHeight { continue }
                                for kw in 0..<g.kernelWidth {
                                    let iw = ow - g.padLeft + kw
                                    if iw < 0 || iw >= g.inWidth { continue }
                                    let xi = ((s * g.inChannels + c) * g.inHeight + ih) * g.inWidth + iw
                                    let wi = ((o * g.inChannels + c) * g.kernelHeight + kh) * g.kernelWidth + kw
                                    dx[xi] += d * w[wi]
                                    dw[wi] += d * x[xi]
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dx, dw)
    }

    // MARK: - Geometry

    func testFlippedGeometryReadsTheOutputGradientBack() {
        let same = geometry(32, 64, 12, 10)
        let f = bf16FlippedGeometry(same)!
        XCTAssertEqual([f.inChannels, f.outChannels, f.inHeight, f.inWidth, f.outHeight, f.outWidth, f.padTop, f.padLeft],
                       [64, 32, 12, 10, 12, 10, 1, 1])
        let valid = geometry(16, 16, 9, 8, k: 3, pad: (0, 0))
        let v = bf16FlippedGeometry(valid)!
        XCTAssertEqual([v.inHeight, v.inWidth, v.outHeight, v.outWidth, v.padTop, v.padLeft], [7, 6, 9, 8, 2, 2])
        var strided = same
        strided.stride = 2
        XCTAssertNil(bf16FlippedGeometry(strided))
        // Roles: forward for 16+ input channels, input gradient for 16+ output channels.
        let e = FusedEpilogue(bias: true, relu: true, batchnorm: .none, epsilon: 1e-3)
        XCTAssertEqual(bf16Role(of: .fusedTrain(.conv2d(same), e), mode: "training", maxChunk: 8), .forward(same))
        XCTAssertNil(bf16Role(of: .fusedTrain(.conv2d(geometry(3, 64, 12, 10)), e), mode: "training", maxChunk: 8))
        XCTAssertEqual(bf16Role(of: .fusedTrainGrad(.conv2d(same), e, inputGrad: true, weightGrad: true), mode: "training",
                                maxChunk: 3),
                       .backward(same, flipped: f, weightGrad: true, samples: min(fastConvChunk(same), 3)))
        // No input gradient wanted: the weight gradient alone.
        XCTAssertEqual(bf16Role(of: .fusedTrainGrad(.conv2d(same), e, inputGrad: false, weightGrad: true), mode: "training",
                                maxChunk: 3),
                       .backward(same, flipped: nil, weightGrad: true, samples: min(fastConvChunk(same), 3)))
        // Few output channels: neither (both products would be mostly padding).
        XCTAssertNil(bf16Role(of: .fusedTrainGrad(.conv2d(geometry(32, 8, 12, 10)), e, inputGrad: true, weightGrad: true),
                              mode: "training", maxChunk: 8))
        // Few input channels: dx in bf16, dw in f32.
        let narrow = geometry(3, 32, 12, 10)
        XCTAssertEqual(bf16Role(of: .fusedTrainGrad(.conv2d(narrow), e, inputGrad: true, weightGrad: true), mode: "training",
                                maxChunk: 8),
                       .backward(narrow, flipped: bf16FlippedGeometry(narrow), weightGrad: false,
                                 samples: min(fastConvChunk(narrow), 8)))
        // Inference plans keep the inference roles.
        XCTAssertNil(bf16Role(of: .fusedTrain(.conv2d(same), e), mode: "inference", maxChunk: 8))
    }

    // MARK: - Forward statistics

    func testForwardStatisticsAreTheSumsOfTheWrittenOutputs() throws {
        try onEachBF16Unit { unit in
            var rng = TestRNG(seed: 11)
            for (g, n, threads, chunk) in [(geometry(16, 24, 9, 7), 5, 2, 2), (geometry(40, 17, 6, 6), 3, 2, Int.max),
                                           (geometry(16, 48, 12, 12), 1, 2, Int.max), (geometry(32, 32, 5, 5, k: 1), 4, 3, 1),
                                           (geometry(40, 24, 1, 1, k: 1), 9, 2, Int.max), (geometry(40, 24, 1, 1, k: 1), 1, 2, Int.max)] {
                let x = floats(&rng, n * g.inChannels * g.inHeight * g.inWidth)
                let w = floats(&rng, g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth)
                let b = floats(&rng, g.outChannels)
                let packed = Buf<UInt16>([UInt16](repeating: 0xffff, count: bf16PackedWeightCount(g)))
                let wb = Buf(w), xb = Buf(x), bb = Buf(b)
                bf16PackWeights(packed.p, wb.c, g)
                let O = g.outChannels, P = g.outHeight * g.outWidth
                let y = Buf<Float>([Float](repeating: .nan, count: n * O * P))
                let fs = fastScratch(g, threads: threads, maxChunk: chunk)
                let sums = Buf<Double>([Double](repeating: .nan, count: 2 * O))
                let ok = bf16ConvForward(y.p, xb.c, packed.c, bb.c, preRelu: true, scale: nil, shift: nil, postRelu: false,
                                         stats: (sums.p, sums.p + O), statScratch: fs, n: n, g, threads: threads,
                                         scratch: rawScratch(bytes: bf16ConvScratchBytes(g, maxChunk: chunk), threads: threads),
                                         maxChunk: chunk)
                XCTAssertTrue(ok)
                // The outputs: relu(conv + b) of the rounded operands.
                var want = [Double](repeating: 0, count: n * O * P)
                let xd = rounded(x), wd = rounded(w)
                xd.withUnsafeBufferPointer { xp in
                    wd.withUnsafeBufferPointer { wp in
                        want.withUnsafeMutableBufferPointer { yp in
                            conv2dForwardNaive(yp.baseAddress!, xp.baseAddress!, wp.baseAddress!, nil, n: n, g)
                        }
                    }
                }
                want = want.enumerated().map { i, v in max(v + Double(b[(i / P) % O]), 0) }
                let out = y.array
                XCTAssertLessThan(relativeError(out, want), 1e-5, "\(unit) \(g) n \(n) threads \(threads)")
                // The statistics: of the f32 values written, per channel.
                for o in 0..<O {
                    var s1 = 0.0, s2 = 0.0
                    for s in 0..<n { for p in 0..<P { let v = Double(out[(s * O + o) * P + p]); s1 += v; s2 += v * v } }
                    XCTAssertEqual(sums.p[o], s1, accuracy: 1e-9 * max(1, abs(s1)), "sum, channel \(o), \(g)")
                    XCTAssertEqual(sums.p[O + o], s2, accuracy: 1e-9 * max(1, s2), "sum of squares, channel \(o), \(g)")
                }
            }
        }
    }

    // MARK: - Input gradient

    /// The backward with dx and dw in bf16 against the naive backward on rounded operands; db
    /// bitwise the f32 backward's; and each of dx and dw alone in bf16, the other then bitwise f32.
    func testBackwardMatchesTheNaiveBackwardOnRoundedOperands() throws {
        try onEachBF16Unit { unit in
            var rng = TestRNG(seed: 12)
            let plain = FusedEpilogue(bias: true, relu: false, batchnorm: .none, epsilon: 0)
            let cases: [(ConvGeometry, Int, Int, Int)] = [
                (geometry(16, 32, 8, 8), 3, 2, Int.max),             // "same" 3x3
                (geometry(5, 20, 7, 9), 4, 2, 1),                   // few input channels, O not a multiple of 32, chunks of 1
                (geometry(24, 40, 6, 6, k: 5), 2, 1, Int.max),      // 5x5
                (geometry(16, 16, 9, 8, k: 3, pad: (0, 0)), 3, 3, 2),  // "valid"
                (geometry(18, 33, 5, 4, k: 3, pad: (2, 0)), 2, 2, Int.max),  // uneven padding
                (geometry(32, 64, 4, 4, k: 1), 5, 2, 2),            // 1x1
                (geometry(40, 24, 1, 1, k: 1), 37, 2, Int.max),      // a 1x1 plane (a dense layer's shape)
                (geometry(300, 33, 1, 1, k: 1), 9, 2, 4),           // and in chunks
            ]
            for (g, n, threads, chunk) in cases {
                let O = g.outChannels, C = g.inChannels
                let xCount = n * C * g.inHeight * g.inWidth, yCount = n * O * g.outHeight * g.outWidth
                let wCount = O * C * g.kernelHeight * g.kernelWidth
                let x = Buf(floats(&rng, xCount)), dy = Buf(floats(&rng, yCount)), w = Buf(floats(&rng, wCount))
                guard let f = bf16FlippedGeometry(g) else { XCTFail("\(g) has a flipped geometry"); continue }
                let packed = Buf<UInt16>([UInt16](repeating: 0xffff, count: bf16PackedWeightCount(f)))
                bf16PackFlippedWeights(packed.p, w.c, g, threads: threads)
                let samples = max(1, min(fastConvChunk(g), chunk))
                let role = BF16Role.backward(g, flipped: f, weightGrad: true, samples: samples)
                let bfScratch = rawScratch(bytes: bf16RoleScratchBytes(role, maxChunk: chunk), threads: threads)
                func backward(dx bfDX: Bool, dw bfDW: Bool) -> (dx: [Float], dw: [Float], db: [Float]) {
                    let dx = Buf<Float>([Float](repeating: .nan, count: xCount))
                    let dw = Buf<Float>([Float](repeating: .nan, count: wCount))
                    let db = Buf<Float>(zeros: O)
                    let bf = bfDX || bfDW ? BF16Backward(flipped: bfDX ? f : nil, weights: bfDX ? packed.c : nil, weightGrad: bfDW,
                                                         samples: samples, scratch: bfScratch) : nil
                    fastFusedConvTrainBackward(dx: dx.p, dw: dw.p, db: db.p, dgamma: nil, dbeta: nil, dy: dy.c, x: x.c, w: w.c,
                                               y: nil, bnInput: nil, gamma: nil, mean: nil, variance: nil, n: n, g, plain,
                                               threads: threads, scratch: fastScratch(g, threads: threads, maxChunk: chunk),
                                               bf16: bf)
                    return (dx.array, dw.array, db.array)
                }
                let amx = backward(dx: true, dw: true), f32 = backward(dx: false, dw: false)
                let label = "\(unit) \(g), n \(n), threads \(threads), chunk \(chunk)"
                let want = naiveBackward(rounded(dy.array), rounded(x.array), rounded(w.array), n: n, g)
                XCTAssertLessThan(relativeError(amx.dx, want.dx), 1e-5, "dx of " + label)
                XCTAssertLessThan(relativeError(amx.dw, want.dw), 1e-5, "dw of " + label)
                XCTAssertNotEqual(amx.dx, f32.dx, "the bf16 dx is rounded, not the f32 one")
                XCTAssertNotEqual(amx.dw, f32.dw, "the bf16 dw is rounded, not the f32 one")
                XCTAssertLessThan(relativeError(amx.dx, f32.dx.map(Double.init)), 2e-2, "dx close to f32, " + label)
                XCTAssertLessThan(relativeError(amx.dw, f32.dw.map(Double.init)), 2e-2, "dw close to f32, " + label)
                XCTAssertEqual(amx.db, f32.db, "db stays f32, " + label)
                // One in bf16, the other f32 as without bf16.
                let dxOnly = backward(dx: true, dw: false), dwOnly = backward(dx: false, dw: true)
                XCTAssertEqual(dxOnly.dx, amx.dx, label)
                XCTAssertEqual(dxOnly.dw, f32.dw, label)
                XCTAssertEqual(dwOnly.dw, amx.dw, label)
                XCTAssertEqual(dwOnly.dx, f32.dx, label)
            }
        }
    }

    /// The compact weight gradient's rows (`fk_bf16_tap_rows`): for each tap and channel, the
    /// padded grid's values at the outputs' positions moved by the tap, zeros to Kpad; the vector
    /// path (CPUs with AVX512_BF16) and the scalar one (under fk_limit_bf16(0)) against the
    /// definition, for planes narrower and wider than one vector (OW 5 and 37), in two ranges of
    /// channels as two threads make them.
    func testTapRowsHoldTheGridAtEachTapsOutputs() {
        defer { fk_limit_bf16(2) }
        var rng = TestRNG(seed: 14)
        for (S, OH, OW, KH, KW) in [(3, 5, 5, 3, 3), (2, 3, 37, 3, 5), (1, 4, 6, 1, 1)] {
            let hp = OH + KH - 1, wp = OW + KW - 1, cPad = 32, Q = S * OH * OW, kPad = (Q + 31) / 32 * 32
            let rowLen = S * hp * wp + (KH - 1) * wp + KW + 40, rowLen2 = kPad + 32, taps = KH * KW
            let A = (0..<cPad * rowLen).map { _ in UInt16(truncatingIfNeeded: Int(rng.uniform(0, 65535))) }
            var want = [UInt16](repeating: 0, count: taps * cPad * rowLen2)
            for t in 0..<taps {
                for c in 0..<cPad {
                    for q in 0..<Q {
                        let s = q / (OH * OW), y = q % (OH * OW) / OW, x = q % OW
                        want[(t * cPad + c) * rowLen2 + q] = A[c * rowLen + s * hp * wp + y * wp + x + (t / KW) * wp + t % KW]
                    }
                }
            }
            for limit: Int32 in [2, 0] {
                fk_limit_bf16(limit)
                let got = Buf<UInt16>([UInt16](repeating: 0xabcd, count: want.count)), a = Buf(A)
                for r in [0..<12, 12..<cPad] {
                    fk_bf16_tap_rows(got.p, rowLen2, a.c, rowLen, Int32(cPad), Int32(S), Int32(OH), Int32(OW), Int32(hp),
                                     Int32(wp), Int32(KH), Int32(KW), kPad, Int32(r.lowerBound), Int32(r.upperBound))
                }
                for row in 0..<taps * cPad {  // the rows to Kpad; what lies past it is not the function's
                    XCTAssertEqual(Array(got.array[row * rowLen2..<row * rowLen2 + kPad]),
                                   Array(want[row * rowLen2..<row * rowLen2 + kPad]), "\(S)x\(OH)x\(OW) k\(KH)x\(KW) limit \(limit) row \(row)")
                }
            }
        }
    }

    /// Both layouts of the flipped weights: the grid kernels' (AMX, and wherever no bf16 unit
    /// runs: packing needs none) and, on the dot product unit, the compact path's pairs of output
    /// gradient channels (`bf16CompactConv`).
    func testFlippedPackingPutsEveryWeightWhereTheReferenceExpectsIt() {
        defer { fk_limit_bf16(2) }
        var rng = TestRNG(seed: 13)
        let g = geometry(5, 19, 4, 4, k: 3)
        let w = floats(&rng, 19 * 5 * 9)
        var layouts = 0
        for limit: Int32 in [0, 1] {
            fk_limit_bf16(limit)
            let compact = bf16CompactConv(bf16FlippedGeometry(g)!)
            if limit == 1 && !compact { continue }  // no AVX512_BF16 here: the grid layout only
            layouts += 1
            let packed = Buf<UInt16>([UInt16](repeating: 0xffff, count: bf16PackedWeightCount(bf16FlippedGeometry(g)!)))
            let wb = Buf(w)
            bf16PackFlippedWeights(packed.p, wb.c, g, threads: 2)
            let cPad = 16, oPad = 32
            XCTAssertEqual(packed.count, 9 * cPad * oPad)
            for t in 0..<9 {
                for c in 0..<cPad {
                    for o in 0..<oPad {
                        // pairs: dword ((o/2)*taps + t)*cPad + c, o's half of it (little-endian)
                        let got = compact ? packed.p[2 * (((o / 2) * 9 + t) * cPad + c) + o % 2] : packed.p[(t * cPad + c) * oPad + o]
                        let want: UInt16 = c < 5 && o < 19 ? fk_bf16_round(w[(o * 5 + c) * 9 + (8 - t)]) : 0
                        XCTAssertEqual(got, want, "limit \(limit) compact \(compact) tap \(t) c \(c) o \(o)")
                    }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(layouts, 1)
    }
}
