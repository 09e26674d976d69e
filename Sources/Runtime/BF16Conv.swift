// Inference convolutions and dense layers in bf16 on AMX, for plans compiled with `--compute
// bf16` (`PlanMetadata.computeDType`). Opt-in per plan and chosen at load time: where the CPU
// has AMX (fk_amx_available) the executor runs every stride-1 inference convolution of 16+ input
// channels (`conv2d`, `fused` with a conv anchor) and every dense layer of 16+ inputs (as a 1x1
// convolution of a 1x1 plane) as an implicit GEMM on AMX tiles over a padded bf16 grid of the
// input (CKernels/amx.c), sums in f32, then the same f32 epilogue as the f32 path (bias, relu,
// batchnorm scale and shift); elsewhere the plan runs in f32 exactly as if compiled without the
// flag. Everything else (the first convolution of a 1- or 3-channel image, strided
// convolutions, pooling, softmax, preprocessing) stays f32.
//
// Why only AMX: on the Xeon this was measured on, AVX512_BF16's dot product (vdpbf16ps) does
// half the f32 FMA's work per second (84-87 against 166-173 GFLOP/s on one core) and AMX 7-16
// times it (1,180-2,730 GFLOP/s); Tools/bench/bf16_peak.c measures it, docs/performance.md has it.
//
// Accuracy: weights and activations are rounded to bf16 (8 bits of mantissa) before each
// product, so outputs differ from the f32 plan's by about 1e-3 relative; the change in accuracy
// of a trained plan is measured with `fergc eval` (docs/performance.md).
//
// Threads: each thread takes a contiguous range of the batch in chunks (`bf16ConvChunk`); with
// fewer samples than threads (batch 1), the threads build the one sample's grid together (by
// channel pairs), then split the output channels in blocks of 16 (each with its epilogue), or
// where there are too few channels for that, the positions in blocks of 32.
import CKernels

/// Whether this machine runs bf16 plans in bf16 (AMX-BF16 and the kernel's permission).
public var bf16ComputeAvailable: Bool { fk_amx_available() != 0 }

/// The compute types a plan may ask for (`PlanMetadata.computeDType`).
public let computeDTypes = ["f32", "bf16"]

@inline(__always) private func roundUp(_ v: Int, _ m: Int) -> Int { (v + m - 1) / m * m }

/// The geometry of a step the bf16 path computes, or nil: an inference convolution of stride 1
/// with at least 16 input channels (the channels are padded to 32 per tile: a first layer of 1
/// or 3 channels would do 10-32x the products, measured slower than its f32 direct path), or a
/// dense layer of at least 16 inputs as the 1x1 convolution of a 1x1 plane.
public func bf16ConvGeometry(of kernel: Kernel) -> ConvGeometry? {
    switch kernel {
    case .conv2d(let g, _), .fused(.conv2d(let g), _): return g.stride == 1 && g.inChannels >= 16 ? g : nil
    case .dense(let i, let o, _), .fused(.dense(let i, let o), _):
        guard i >= 16 else { return nil }
        return ConvGeometry(inChannels: i, inHeight: 1, inWidth: 1, outChannels: o, kernelHeight: 1, kernelWidth: 1,
                            stride: 1, padTop: 0, padLeft: 0, outHeight: 1, outWidth: 1)
    default: return nil
    }
}

/// The packed weights of a convolution: [KH*KW][Opad][Cpad] bf16, O rounded up to 16, C to 32.
public func bf16PackedWeightCount(_ g: ConvGeometry) -> Int {
    g.kernelHeight * g.kernelWidth * roundUp(g.outChannels, 16) * roundUp(g.inChannels, 32)
}

/// The padded grid of one sample: Hp x Wp (the outputs' plane plus the kernel's reach).
@inline(__always) private func grid(_ g: ConvGeometry) -> (h: Int, w: Int) {
    (g.outHeight + g.kernelHeight - 1, g.outWidth + g.kernelWidth - 1)
}

/// Samples per chunk: the pair grid near 512 KB (it is read once per 32 output channels and
/// tap), and at least 512 grid positions so that small planes still fill tiles.
public func bf16ConvChunk(_ g: ConvGeometry) -> Int {
    let (hp, wp) = grid(g), cells = max(hp * wp, 1)
    return max(1, (512 + cells - 1) / cells, (1 << 19) / (roundUp(g.inChannels, 32) * 2 * cells))
}

/// Byte offsets in a thread's scratch for chunks of `samples` samples: the pair grid (its rows
/// `rowLength` dwords), the f32 products, the batchnorm coefficients.
private func bf16ScratchParts(_ g: ConvGeometry, samples S: Int) -> (rowLength: Int, acc: Int, coefficients: Int) {
    let (hp, wp) = grid(g), cols = S * hp * wp
    let rowLength = roundUp(cols + (g.kernelHeight - 1) * wp + g.kernelWidth + 16, 16)
    let pairs = roundUp(roundUp(g.inChannels, 32) / 2 * rowLength * 4, 64)
    let acc = roundUp(g.outChannels * roundUp(cols, 16) * 4, 64)
    return (rowLength, pairs, pairs + acc)
}

/// Bytes of one thread's scratch for a geometry with chunks of at most `maxChunk` samples:
/// the pair grid, the f32 products and (used in thread 0's) the batchnorm coefficients.
public func bf16ConvScratchBytes(_ g: ConvGeometry, maxChunk: Int) -> Int {
    bf16ScratchParts(g, samples: max(1, min(bf16ConvChunk(g), maxChunk))).coefficients + 3 * g.outChannels * 4
}

/// What an executor allocates for the bf16 path of a plan: per thread, the largest step's
/// scratch; once, every step's packed weights (bytes). Zero for a plan that does not ask for
/// bf16, a training plan, or on a machine without AMX.
public func bf16WorkspaceBytes(_ plan: Plan, threads: Int, enabled: Bool? = nil) -> (perThread: Int, weights: Int) {
    guard plan.metadata.mode == "inference", enabled ?? (plan.metadata.computeDType == "bf16"), bf16ComputeAvailable else {
        return (0, 0)
    }
    var perThread = 0, weights = 0
    for step in plan.steps {
        guard let g = bf16ConvGeometry(of: step.kernel) else { continue }
        perThread = max(perThread, bf16ConvScratchBytes(g, maxChunk: plan.maxBatch))
        weights += bf16PackedWeightCount(g) * 2
    }
    return (perThread, weights)
}

/// w (O, C, KH, KW) rounded to bf16 into `packed` (`bf16PackedWeightCount(g)` values).
public func bf16PackWeights(_ packed: UnsafeMutablePointer<UInt16>, _ w: UnsafePointer<Float>, _ g: ConvGeometry) {
    fk_bf16_pack_conv_weights(packed, w, Int32(g.outChannels), Int32(g.inChannels), Int32(g.kernelHeight),
                              Int32(g.kernelWidth), Int32(roundUp(g.outChannels, 16)), Int32(roundUp(g.inChannels, 32)))
}

@inline(__always) private func i32(_ v: Int) -> Int32 { Int32(truncatingIfNeeded: v) }

/// out = epilogue(conv(x, w) + b) with the products in bf16 on AMX (`w` packed by
/// `bf16PackWeights`; stride 1); the epilogue as `fastConvForward`'s. `scratch`: one pointer per
/// thread, each of `bf16ConvScratchBytes(g, maxChunk:)` bytes, 64-byte aligned. Returns false
/// (and computes nothing) where AMX is not available.
public func bf16ConvForward(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<UInt16>,
    _ b: UnsafePointer<Float>?,
    preRelu: Bool, scale: UnsafePointer<Float>?, shift: UnsafePointer<Float>?, postRelu: Bool,
    n: Int, _ g: ConvGeometry, threads: Int, scratch: [UnsafeMutableRawPointer], maxChunk: Int = .max
) -> Bool {
    guard bf16ComputeAvailable, g.stride == 1, !scratch.isEmpty else { return false }
    let O = g.outChannels, Cpad = roundUp(g.inChannels, 32), pairs = Cpad / 2
    let (hp, wp) = grid(g)
    let xStride = g.inChannels * g.inHeight * g.inWidth
    let S = max(1, min(bf16ConvChunk(g), maxChunk)), T = max(1, min(threads, n, scratch.count))
    let parts = bf16ScratchParts(g, samples: S)
    func fill(_ X: UnsafeMutablePointer<UInt32>, _ s0: Int, _ s1: Int, _ rowLength: Int, _ range: Range<Int>) {
        fk_bf16_pad_pairs(X, rowLength, x + s0 * xStride, xStride, i32(s1 - s0), i32(g.inChannels), i32(g.inHeight),
                          i32(g.inWidth), i32(hp), i32(wp), i32(g.padTop), i32(g.padLeft),
                          i32(range.lowerBound), i32(range.upperBound))
    }
    func epilogue(_ o: UnsafeMutablePointer<Float>, _ acc: UnsafePointer<Float>, _ ld: Int, samples: Int, _ r: Range<Int>) {
        fk_conv_epilogue_grid(o, acc, ld, i32(O), i32(samples), i32(g.outHeight), i32(g.outWidth), i32(hp), i32(wp), b,
                              preRelu ? 1 : 0, scale, shift, postRelu ? 1 : 0, i32(r.lowerBound), i32(r.upperBound))
    }
    let threadsWanted = max(1, min(threads, scratch.count))
    if T < threadsWanted {
        // Fewer samples than threads (batch 1): sample by sample, every thread building its pairs
        // of the grid, then its output channels in blocks of 16 and their epilogue — or, with
        // too few channels for the threads, its blocks of 32 positions, then the epilogue.
        let X = scratch[0].assumingMemoryBound(to: UInt32.self)
        let acc = (scratch[0] + parts.acc).assumingMemoryBound(to: Float.self)
        let one = bf16ScratchParts(g, samples: 1), cols = hp * wp, ld = roundUp(cols, 16)
        let blocks = (cols + 31) / 32, channelBlocks = (O + 15) / 16
        // By channels wherever there are enough blocks of 16 for the threads: each thread then
        // reads only its share of the weights and runs its epilogue in the same region (one
        // parallel region less per layer than splitting the positions).
        let byChannels = channelBlocks >= threadsWanted || (blocks < threadsWanted && channelBlocks > 1)
        for s in 0..<n {
            let y = out + s * O * g.outHeight * g.outWidth
            parallelFor(threadsWanted) { t in fill(X, s, s + 1, one.rowLength, splitRange(pairs, parts: threadsWanted, t)) }
            if byChannels {
                let parts = min(threadsWanted, channelBlocks)
                parallelFor(parts) { t in
                    let r = splitRange(channelBlocks, parts: parts, t), o0 = r.lowerBound * 16, o1 = min(O, r.upperBound * 16)
                    _ = fk_amx_conv(acc, ld, w, i32(O), i32(Cpad), i32(g.kernelHeight), i32(g.kernelWidth), X, one.rowLength,
                                    i32(wp), 0, cols, i32(o0), i32(o1))
                    epilogue(y, acc, ld, samples: 1, o0..<o1)
                }
                continue
            }
            parallelFor(min(threadsWanted, blocks)) { t in
                let r = splitRange(blocks, parts: min(threadsWanted, blocks), t)
                _ = fk_amx_conv(acc, ld, w, i32(O), i32(Cpad), i32(g.kernelHeight), i32(g.kernelWidth), X, one.rowLength,
                                i32(wp), r.lowerBound * 32, min(cols, r.upperBound * 32), 0, i32(O))
            }
            parallelFor(min(threadsWanted, O)) { t in
                epilogue(y, acc, ld, samples: 1, splitRange(O, parts: min(threadsWanted, O), t))
            }
        }
        return true
    }
    parallelFor(T) { t in
        let X = scratch[t].assumingMemoryBound(to: UInt32.self)
        let acc = (scratch[t] + parts.acc).assumingMemoryBound(to: Float.self)
        var s0 = splitRange(n, parts: T, t).lowerBound
        let end = splitRange(n, parts: T, t).upperBound
        while s0 < end {
            let s1 = min(end, s0 + S), cols = (s1 - s0) * hp * wp, ld = roundUp(cols, 16)
            fill(X, s0, s1, parts.rowLength, 0..<pairs)
            _ = fk_amx_conv(acc, ld, w, i32(O), i32(Cpad), i32(g.kernelHeight), i32(g.kernelWidth), X, parts.rowLength,
                            i32(wp), 0, cols, 0, i32(O))
            epilogue(out + s0 * O * g.outHeight * g.outWidth, acc, ld, samples: s1 - s0, 0..<O)
            s0 = s1
        }
    }
    return true
}

/// The bf16 path of `fusedForward` (inference) for a conv anchor: the batchnorm folded into the
/// epilogue's scale and shift (computed into the end of thread 0's scratch).
public func bf16FusedConvForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<UInt16>, _ b: UnsafePointer<Float>?,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
    runningMean: UnsafePointer<Float>?, runningVar: UnsafePointer<Float>?,
    n: Int, _ g: ConvGeometry, _ e: FusedEpilogue, threads: Int, scratch: [UnsafeMutableRawPointer], maxChunk: Int = .max
) -> Bool {
    guard bf16ComputeAvailable, g.stride == 1, !scratch.isEmpty else { return false }
    let offset = bf16ScratchParts(g, samples: max(1, min(bf16ConvChunk(g), maxChunk))).coefficients
    return withInferenceEpilogue(e, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
                                 channels: g.outChannels,
                                 coef: { (scratch[0] + offset).assumingMemoryBound(to: Float.self) }) { pre, scale, shift, post in
        bf16ConvForward(y, x, w, b, preRelu: pre, scale: scale, shift: shift, postRelu: post, n: n, g, threads: threads,
                        scratch: scratch, maxChunk: maxChunk)
    }
}
