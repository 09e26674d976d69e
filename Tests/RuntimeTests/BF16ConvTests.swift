// The bf16 convolution (BF16Conv.swift; CKernels/amx.c on AMX, CKernels/bf16dot.c on
// AVX512_BF16) against an independent reference: the naive seven-loop convolution in Double on
// the operands rounded to bf16 by the same rounding (checked on its own below). Only the f32
// sums' order differs, so the tolerance is that of f32 accumulation, not of bf16. Geometries
// cover channel and output padding (C not a multiple of 32, O not of 16), kernels of 1x1, 3x3
// and 5x5, "valid" and uneven padding, chunk boundaries, 1 to 3 threads, the batch-1 path that
// splits positions over the threads, and every epilogue option. Each kernel test runs on every
// bf16 unit the CPU has (an AMX Xeon: both) and skips on CPUs with neither, where bf16 plans
// run in f32 (the executor tests in PlanFileTests check that fallback).
import XCTest
import CKernels
@testable import Runtime

/// max |bf16 conv - reference| / max |reference| we accept, the reference computed in Double
/// from the same bf16-rounded operands. Measured: 2.1e-7 to 6.0e-7 over the cases below; 1.2e-6
/// on Zen 4's dot product since its compact path (session 60), which sums the taps inside the pairs.
private let bf16SumTolerance = 1e-5

final class BF16ConvTests: RuntimeTestCase {
    func geometry(_ c: Int, _ o: Int, _ h: Int, _ w: Int, k: Int = 3, pad: (Int, Int)? = nil,
                  out: (Int, Int)? = nil) -> ConvGeometry {
        let p = pad ?? (k / 2, k / 2)
        let oh = out?.0 ?? h + 2 * p.0 - k + 1, ow = out?.1 ?? w + 2 * p.1 - k + 1
        return ConvGeometry(inChannels: c, inHeight: h, inWidth: w, outChannels: o, kernelHeight: k, kernelWidth: k,
                            stride: 1, padTop: p.0, padLeft: p.1, outHeight: oh, outWidth: ow)
    }

    func rounded(_ v: [Float]) -> [Float] {
        v.map { Float(bitPattern: UInt32(fk_bf16_round($0)) << 16) }
    }

    struct Epilogue { var bias = true, preRelu = false, scale = false, postRelu = false }

    /// The reference convolution: in Double, of the rounded x and w, without bias.
    func reference(_ x: [Float], _ w: [Float], n: Int, _ g: ConvGeometry) -> [Double] {
        let xd = rounded(x).map(Double.init), wd = rounded(w).map(Double.init)
        var y = [Double](repeating: 0, count: n * g.outChannels * g.outHeight * g.outWidth)
        xd.withUnsafeBufferPointer { xp in
            wd.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    conv2dForwardNaive(yp.baseAddress!, xp.baseAddress!, wp.baseAddress!, nil, n: n, g)
                }
            }
        }
        return y
    }

    /// Bias, relu, scale and shift, relu, in Double.
    func epilogue(_ conv: [Double], _ b: [Float], _ scale: [Float], _ shift: [Float], _ g: ConvGeometry,
                  _ e: Epilogue) -> [Double] {
        let P = g.outHeight * g.outWidth
        return conv.enumerated().map { i, v in
            let o = (i / P) % g.outChannels
            var z = v + (e.bias ? Double(b[o]) : 0)
            if e.preRelu { z = max(z, 0) }
            if e.scale { z = z * Double(scale[o]) + Double(shift[o]) }
            if e.postRelu { z = max(z, 0) }
            return z
        }
    }

    func scratch(_ g: ConvGeometry, threads: Int, maxChunk: Int) -> [UnsafeMutableRawPointer] {
        let bytes = bf16ConvScratchBytes(g, maxChunk: maxChunk)
        return (0..<threads).map { _ in
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            p.initializeMemory(as: UInt8.self, repeating: 0xff, count: bytes)  // garbage, not zeros
            addTeardownBlock { p.deallocate() }
            return p
        }
    }

    /// Runs the bf16 convolution; nil when AMX is missing.
    func run(_ x: [Float], _ w: [Float], _ b: [Float], _ scale: [Float], _ shift: [Float], n: Int, _ g: ConvGeometry,
             _ e: Epilogue, threads: Int, maxChunk: Int = .max) -> [Float]? {
        let packed = Buf<UInt16>([UInt16](repeating: 0xffff, count: bf16PackedWeightCount(g)))
        let wb = Buf(w), xb = Buf(x), bb = Buf(b), sb = Buf(scale), hb = Buf(shift)
        bf16PackWeights(packed.p, wb.c, g, threads: threads)
        let y = Buf<Float>([Float](repeating: .nan, count: n * g.outChannels * g.outHeight * g.outWidth))
        let ok = bf16ConvForward(y.p, xb.c, packed.c, e.bias ? bb.c : nil, preRelu: e.preRelu,
                                 scale: e.scale ? sb.c : nil, shift: e.scale ? hb.c : nil, postRelu: e.postRelu,
                                 n: n, g, threads: threads, scratch: scratch(g, threads: threads, maxChunk: maxChunk),
                                 maxChunk: maxChunk)
        return ok ? y.array : nil
    }

    // MARK: - The rounding

    func testRoundingIsToNearestEvenAndKeepsSpecials() {
        func r(_ bits: UInt32) -> UInt16 { fk_bf16_round(Float(bitPattern: bits)) }
        XCTAssertEqual(r(0x3f80_0000), 0x3f80)            // 1.0 exactly
        XCTAssertEqual(r(0x3f80_8000), 0x3f80)            // halfway, to the even 1.0
        XCTAssertEqual(r(0x3f81_8000), 0x3f82)            // halfway, to the even above
        XCTAssertEqual(r(0x3f80_8001), 0x3f81)            // above halfway
        XCTAssertEqual(r(0x3f80_7fff), 0x3f80)            // below halfway
        XCTAssertEqual(r(0xbf80_8000), 0xbf80)            // the sign is kept
        XCTAssertEqual(r(0x7f80_0000), 0x7f80)            // +inf
        XCTAssertEqual(r(0x7f7f_ffff), 0x7f80)            // the largest float rounds to +inf
        XCTAssertTrue(Float(bitPattern: UInt32(r(0x7fc0_0001)) << 16).isNaN)
        XCTAssertTrue(Float(bitPattern: UInt32(r(0x7f80_0001)) << 16).isNaN)  // a NaN whose payload is low bits
        // Against Double: the nearest bf16 of random floats, ties broken to even.
        var rng = TestRNG(seed: 5)
        for _ in 0..<2000 {
            let f = Float(rng.uniform(-1e3, 1e3))
            let h = Float(bitPattern: UInt32(fk_bf16_round(f)) << 16)
            let step = Float(bitPattern: (f.bitPattern & 0xffff_0000) + 0x1_0000) - Float(bitPattern: f.bitPattern & 0xffff_0000)
            XCTAssertLessThanOrEqual(abs(Double(h) - Double(f)), Double(abs(step)) / 2 + 1e-30, "\(f)")
        }
    }

    // MARK: - The convolution

    func testConvolutionMatchesRoundedReference() throws {
        try onEachBF16Unit { unit in
            var rng = TestRNG(seed: 21)
            let cases: [(ConvGeometry, Int, String)] = [
                (geometry(32, 32, 48, 48), 2, "32->32 48x48"),
                (geometry(64, 64, 24, 24), 3, "64->64 24x24"),
                (geometry(128, 128, 12, 12), 2, "128->128 12x12"),
                (geometry(40, 20, 7, 9), 3, "40->20 7x9 (channel and output padding)"),
                (geometry(3, 17, 10, 10), 2, "3->17 (a mostly padded pair grid)"),
                (geometry(33, 18, 10, 11, k: 5), 2, "33->18 5x5 'same'"),
                (geometry(32, 16, 8, 8, k: 3, pad: (0, 0)), 3, "32->16 'valid'"),
                (geometry(32, 16, 8, 8, k: 3, pad: (1, 0), out: (8, 6)), 2, "32->16 padding top only"),
                (geometry(48, 24, 6, 6, k: 1, pad: (0, 0)), 4, "48->24 1x1"),
                (geometry(512, 48, 6, 6), 2, "512->48 6x6"),
                (geometry(4608, 40, 1, 1, k: 1, pad: (0, 0)), 5, "dense 4608->40 (a 1x1 plane)"),
                (geometry(70, 33, 1, 1, k: 1, pad: (0, 0)), 1, "dense 70->33 at batch 1"),
            ]
            var worstSeen = 0.0
            for (g, n, name) in cases {
                let x = rng.array(n * g.inChannels * g.inHeight * g.inWidth).map(Float.init)
                let w = rng.array(g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth, -0.5, 0.5).map(Float.init)
                let b = rng.array(g.outChannels).map(Float.init)
                let sc = rng.array(g.outChannels, 0.5, 1.5).map(Float.init), sh = rng.array(g.outChannels).map(Float.init)
                let conv = reference(x, w, n: n, g)
                for e in [Epilogue(bias: false), Epilogue(bias: true, preRelu: true),
                          Epilogue(bias: true, preRelu: true, scale: true), Epilogue(bias: true, scale: true, postRelu: true)] {
                    let ref = epilogue(conv, b, sc, sh, g, e)
                    for (threads, chunk) in [(1, Int.max), (2, Int.max), (3, 1), (2, 2)] {
                        let y = try XCTUnwrap(run(x, w, b, sc, sh, n: n, g, e, threads: threads, maxChunk: chunk))
                        let err = relativeError(y, ref)
                        worstSeen = max(worstSeen, err)
                        XCTAssertLessThan(err, bf16SumTolerance, "\(unit) \(name) \(e) threads \(threads) chunk \(chunk)")
                    }
                }
            }
            print("bf16 conv (\(unit)): worst relative error against the rounded reference \(worstSeen)")
        }
    }

    /// Batch 1 with more threads splits the output channels (the positions where there are too
    /// few channels: the 16-channel case); each sample's outputs are the
    /// same bits as in a batch computed in chunks (every output's sum runs in the same order).
    func testBatchOneSplitPathIsBitwiseTheChunkedPath() throws {
        try onEachBF16Unit { unit in
            var rng = TestRNG(seed: 22)
            for g in [geometry(32, 32, 48, 48), geometry(64, 40, 13, 11), geometry(128, 128, 6, 6), geometry(32, 16, 20, 20),
                      geometry(600, 70, 1, 1, k: 1, pad: (0, 0))] {
                let n = 3, per = g.inChannels * g.inHeight * g.inWidth, outPer = g.outChannels * g.outHeight * g.outWidth
                let x = rng.array(n * per).map(Float.init)
                let w = rng.array(g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth, -0.5, 0.5).map(Float.init)
                let b = rng.array(g.outChannels).map(Float.init)
                let e = Epilogue(bias: true, preRelu: true)
                let batch = try XCTUnwrap(run(x, w, b, b, b, n: n, g, e, threads: 1))
                for s in 0..<n {
                    let one = try XCTUnwrap(run(Array(x[s * per..<(s + 1) * per]), w, b, b, b, n: 1, g, e, threads: 2))
                    XCTAssertEqual(one, Array(batch[s * outPer..<(s + 1) * outPer]), "\(unit) sample \(s) of \(g)")
                }
            }
        }
    }

    /// Against the f32 convolution: bf16 keeps 8 bits, so outputs differ by about 2^-9 of their
    /// magnitude times the growth over the channel sum; the check is that they are close, and
    /// that they are not bitwise the f32 results (the path really ran in bf16).
    func testCloseToFloatConvolution() throws {
        try onEachBF16Unit { unit in
            var rng = TestRNG(seed: 23)
            let g = geometry(64, 32, 12, 12), n = 2
            let x = rng.array(n * 64 * 144).map(Float.init), w = rng.array(32 * 64 * 9, -0.5, 0.5).map(Float.init)
            let b = rng.array(32).map(Float.init)
            let y = try XCTUnwrap(run(x, w, b, b, b, n: n, g, Epilogue(), threads: 2))
            let f = Buf<Float>(zeros: y.count), xb = Buf(x), wb = Buf(w), bb = Buf(b)
            conv2dForwardNaive(f.p, xb.c, wb.c, bb.c, n: n, g)
            let err = relativeError(y, f.array.map(Double.init))
            XCTAssertLessThan(err, 1e-2)
            XCTAssertGreaterThan(err, 1e-6, "\(unit): the outputs equal the f32 convolution's: bf16 did not run")
        }
    }

    /// Which convolutions the AVX512_BF16 unit takes (`bf16DotPrefers`): 3x3 ones only where f32
    /// Winograd's 4x4 tiles waste more than the bf16 grid; other kernels always; AMX takes all.
    func testTheDotUnitTakesTheConvolutionsWinogradServesWorst() {
        for (side, want) in [(5, true), (6, true), (10, true), (3, false), (12, false), (20, false), (24, false), (48, false)] {
            XCTAssertEqual(bf16DotPrefers(geometry(64, 64, side, side)), want, "3x3 'same' at \(side)x\(side)")
        }
        XCTAssertTrue(bf16DotPrefers(geometry(64, 64, 40, 40, k: 1, pad: (0, 0))), "1x1 at 40x40")
        XCTAssertTrue(bf16DotPrefers(geometry(64, 64, 40, 40, k: 5)), "5x5 at 40x40")
        let e = FusedEpilogue(bias: true, relu: true, batchnorm: .none, epsilon: 0)
        for (side, dot) in [(10, true), (12, false)] {
            let g = geometry(64, 64, side, side)
            for kernel in [Kernel.fused(.conv2d(g), e), .fusedTrain(.conv2d(g), e)] {
                let mode = kernel == .fused(.conv2d(g), e) ? "inference" : "training"
                XCTAssertEqual(bf16Role(of: kernel, mode: mode, maxChunk: 8, level: 2), .forward(g), "AMX, \(mode) \(side)")
                XCTAssertEqual(bf16Role(of: kernel, mode: mode, maxChunk: 8, level: 1), dot ? .forward(g) : nil,
                               "AVX512_BF16, \(mode) \(side)")
            }
            let grad = Kernel.fusedTrainGrad(.conv2d(g), e, inputGrad: true, weightGrad: true)
            XCTAssertNotNil(bf16Role(of: grad, mode: "training", maxChunk: 8, level: 2))
            XCTAssertEqual(bf16Role(of: grad, mode: "training", maxChunk: 8, level: 1) != nil, dot)
        }
        let dense = Kernel.fusedTrain(.dense(inFeatures: 4608, outFeatures: 1024), e)
        XCTAssertEqual(bf16Role(of: dense, mode: "training", maxChunk: 8, level: 1), .denseForward(inFeatures: 4608, outFeatures: 1024))
    }

    /// The compact path (`bf16CompactConv`): on the dot product unit only, wherever the grid
    /// holds cells that are not outputs ("same" padding's shared columns, "valid"'s last ones),
    /// not for 1x1 convolutions and dense layers, whose grid is their outputs.
    func testTheCompactPathIsTakenWhereTheGridHasCellsThatAreNotOutputs() {
        for (g, want) in [(geometry(512, 512, 5, 5), true), (geometry(256, 256, 10, 10), true),
                          (geometry(33, 18, 10, 11, k: 5), true),
                          (geometry(32, 16, 8, 8, k: 3, pad: (0, 0)), true),  // "valid": an 8x8 grid for 6x6 outputs
                          (geometry(48, 24, 6, 6, k: 1, pad: (0, 0)), false),
                          (geometry(4608, 40, 1, 1, k: 1, pad: (0, 0)), false)] {
            XCTAssertEqual(bf16CompactConv(g, level: 1), want, "\(g)")
            XCTAssertFalse(bf16CompactConv(g, level: 2), "AMX keeps the grid: \(g)")
            XCTAssertFalse(bf16CompactConv(g, level: 0), "\(g)")
        }
    }

    /// The pairs layout of the compact path against its definition, forward and flipped, with
    /// channel counts that leave padding, in the threads' ranges of pairs; the vector path (on
    /// CPUs with AVX512_BF16) and the scalar one (under fk_limit_bf16(0), and on other CPUs).
    func testPackedPairsMatchTheirDefinition() {
        defer { fk_limit_bf16(2) }
        var rng = TestRNG(seed: 24)
        for (O, C, k) in [(70, 33, 3), (16, 5, 5), (48, 64, 1), (17, 2, 3)] {
            let taps = k * k, w = rng.array(O * C * taps).map(Float.init)
            for flipped in [false, true] {
                let nOut = flipped ? C : O, nIn = flipped ? O : C, outPad = (nOut + 15) / 16 * 16, pairs = (nIn + 31) / 32 * 16
                var want = [UInt32](repeating: 0, count: pairs * taps * outPad)
                for j in 0..<pairs {
                    for t in 0..<taps {
                        for o in 0..<nOut {
                            var pair: UInt32 = 0
                            for h in 0..<2 where 2 * j + h < nIn {
                                let i = 2 * j + h
                                let v = flipped ? w[(i * C + o) * taps + taps - 1 - t] : w[(o * C + i) * taps + t]
                                pair |= UInt32(fk_bf16_round(v)) << (16 * h)
                            }
                            want[(j * taps + t) * outPad + o] = pair
                        }
                    }
                }
                for limit: Int32 in [2, 0] {
                    fk_limit_bf16(limit)
                    let got = Buf<UInt32>([UInt32](repeating: 0xdead_beef, count: want.count)), wb = Buf(w)
                    let cut = pairs / 3  // two calls, as two threads make them
                    fk_bf16_pack_conv_pairs(got.p, wb.c, Int32(O), Int32(C), Int32(k), Int32(k), flipped ? 1 : 0,
                                            Int32(outPad), 0, Int32(cut))
                    fk_bf16_pack_conv_pairs(got.p, wb.c, Int32(O), Int32(C), Int32(k), Int32(k), flipped ? 1 : 0,
                                            Int32(outPad), Int32(cut), Int32(pairs))
                    XCTAssertEqual(got.array, want, "O \(O) C \(C) \(k)x\(k) flipped \(flipped) limit \(limit)")
                }
            }
        }
    }

    /// The compact kernel against the grid kernel it replaces on the dot product unit: the same
    /// products in another order, so equal to f32 rounding; and over any ranges of positions and
    /// channels (the threads' and the batch-1 path's) the same bits as over the whole.
    func testCompactKernelMatchesTheGridKernel() throws {
        fk_limit_bf16(1)
        defer { fk_limit_bf16(2) }
        guard fk_bf16_level() == 1 else { throw XCTSkip("no AVX512_BF16 here") }
        var rng = TestRNG(seed: 25)
        for (g, S) in [(geometry(40, 70, 5, 5), 3), (geometry(33, 18, 10, 11, k: 5), 2), (geometry(64, 48, 7, 9), 2),
                       (geometry(32, 16, 8, 8, k: 3, pad: (1, 0), out: (8, 6)), 2)] {
            let (hp, wp) = bf16GridShape(g)
            let cPad = (g.inChannels + 31) / 32 * 32, oPad = (g.outChannels + 15) / 16 * 16, taps = g.kernelHeight * g.kernelWidth
            let cols = S * hp * wp, rowLen = cols + (g.kernelHeight - 1) * wp + g.kernelWidth + 48
            let plane = g.outHeight * g.outWidth, Q = S * plane
            let x = rng.array(S * g.inChannels * g.inHeight * g.inWidth).map(Float.init)
            let w = rng.array(g.outChannels * g.inChannels * taps, -0.5, 0.5).map(Float.init)
            let X = Buf<UInt32>([UInt32](repeating: 0, count: cPad / 2 * rowLen)), xb = Buf(x), wb = Buf(w)
            fk_bf16_pad_pairs(X.p, rowLen, xb.c, g.inChannels * g.inHeight * g.inWidth, g.inHeight * g.inWidth, Int32(S),
                              Int32(g.inChannels), Int32(g.inHeight), Int32(g.inWidth), Int32(hp), Int32(wp),
                              Int32(g.padTop), Int32(g.padLeft), 0, Int32(cPad / 2))
            let wt = Buf<UInt16>([UInt16](repeating: 0, count: taps * oPad * cPad)), wq = Buf<UInt32>([UInt32](repeating: 0, count: taps * oPad * cPad / 2))
            fk_bf16_pack_conv_weights(wt.p, wb.c, Int32(g.outChannels), Int32(g.inChannels), Int32(g.kernelHeight),
                                      Int32(g.kernelWidth), Int32(oPad), Int32(cPad))
            fk_bf16_pack_conv_pairs(wq.p, wb.c, Int32(g.outChannels), Int32(g.inChannels), Int32(g.kernelHeight),
                                    Int32(g.kernelWidth), 0, Int32(oPad), 0, Int32(cPad / 2))
            let gridAcc = Buf<Float>(zeros: g.outChannels * (cols + 16))
            XCTAssertEqual(fk_bf16_conv(gridAcc.p, cols + 16, wt.c, Int32(g.outChannels), Int32(cPad), Int32(g.kernelHeight),
                                        Int32(g.kernelWidth), X.c, rowLen, Int32(wp), 0, cols, 0, Int32(g.outChannels)), 1)
            func compact(_ q: Range<Int>, _ o: Range<Int>, into acc: Buf<Float>) {
                XCTAssertEqual(fk_bf16_conv_compact(acc.p, Q, wq.c, Int32(oPad), Int32(cPad / 2), Int32(g.kernelHeight),
                                                    Int32(g.kernelWidth), X.c, rowLen, Int32(hp), Int32(wp),
                                                    Int32(g.outHeight), Int32(g.outWidth), q.lowerBound, q.upperBound,
                                                    Int32(o.lowerBound), Int32(o.upperBound)), 1)
            }
            let whole = Buf<Float>([Float](repeating: .nan, count: g.outChannels * Q))
            compact(0..<Q, 0..<g.outChannels, into: whole)
            var worst = 0.0, scale = 0.0
            for o in 0..<g.outChannels {
                for s in 0..<S {
                    for y in 0..<g.outHeight {
                        for xx in 0..<g.outWidth {
                            let a = Double(gridAcc.p[o * (cols + 16) + s * hp * wp + y * wp + xx])
                            let b = Double(whole.p[o * Q + s * plane + y * g.outWidth + xx])
                            worst = max(worst, abs(a - b)); scale = max(scale, abs(a))
                        }
                    }
                }
            }
            XCTAssertLessThan(worst / scale, bf16SumTolerance, "\(g)")
            let parts = Buf<Float>([Float](repeating: .nan, count: g.outChannels * Q))
            let qCut = Q / 3 + 1, oCut = g.outChannels > 16 ? 16 : g.outChannels
            for q in [0..<qCut, qCut..<Q] { for o in [0..<oCut, oCut..<g.outChannels] where !o.isEmpty { compact(q, o, into: parts) } }
            XCTAssertEqual(parts.array, whole.array, "\(g): ranges against the whole")
        }
    }

    func testWithoutABF16UnitNothingIsComputed() {
        fk_limit_bf16(0)
        defer { fk_limit_bf16(2) }
        XCTAssertFalse(bf16ComputeAvailable)
        let g = geometry(32, 16, 4, 4)
        XCTAssertNil(run([Float](repeating: 1, count: 32 * 16), [Float](repeating: 1, count: 16 * 32 * 9),
                         [Float](repeating: 0, count: 16), [], [], n: 1, g, Epilogue(bias: false), threads: 1))
        XCTAssertEqual(bf16WorkspaceBytes(Plan(name: "p", buffers: [], steps: [], maxBatch: 1, outputs: []), threads: 2, enabled: true).perThread, 0)
    }

    /// AVX512_BF16's dot product is used by default only on AMD's cores (twice the f32 FMA's rate
    /// on Zen 4), not on Intel's (half: the AMX Xeon, and a Xeon whose hypervisor hides AMX), and
    /// the vendor CPUID reports is the one /proc/cpuinfo names.
    func testTheDotProductIsTheDefaultOnlyWhereItPays() throws {
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let vendorLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("vendor_id") }) else {
            throw XCTSkip("no /proc/cpuinfo vendor_id here")
        }
        let amd = vendorLine.hasSuffix("AuthenticAMD")
        XCTAssertEqual(fk_bf16_dot_pays() == 1, amd, String(vendorLine))
        defer { fk_limit_bf16(2) }
        fk_limit_bf16(2)
        let level = fk_bf16_level()
        if level != 2 {  // no AMX granted: the dot product, or f32
            XCTAssertEqual(level == 1, fk_bf16_dot_cpu() == 1 && amd, "level \(level), \(vendorLine)")
        }
        fk_limit_bf16(1)  // tests and callers that ask for it still get it wherever the CPU has it
        XCTAssertEqual(fk_bf16_level() == 1, fk_bf16_dot_cpu() == 1)
    }
}
