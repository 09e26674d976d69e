// Convolutions and dense layers in bf16, for plans compiled with `--compute bf16`
// (`PlanMetadata.computeDType`) and training plans of a train block with `compute = bf16`.
// Opt-in per plan and chosen at load time: where the CPU has AMX (fk_bf16_level 2) the products
// run on AMX tiles (CKernels/amx.c), where it has AVX512_BF16 on an AMD core instead (1: Zen 4)
// on its dot product (CKernels/bf16dot.c), both on the same packed operands; elsewhere (Intel's
// AVX512_BF16 without AMX included: half the f32 rate there) the plan runs in f32
// exactly as if compiled without the flag. The executor runs every stride-1 inference
// convolution of 16+ input channels (`conv2d`, `fused` with a conv anchor) and every dense layer
// of 16+ inputs (as a 1x1 convolution of a 1x1 plane) as an implicit GEMM over a padded bf16
// grid of the input, sums in f32, then the same f32 epilogue as the f32 path (bias, relu,
// batchnorm scale and shift). Everything else (the first convolution of a 1- or 3-channel image,
// strided convolutions, pooling, softmax, preprocessing) stays f32.
//
// Training plans of a train block with `compute = bf16` (`bf16Role`): each fused stride-1
// convolution's forward runs on the same kernel (its epilogue also sums the batch statistics),
// its input gradient as the convolution of the output gradient by the flipped kernel, and its
// weight gradient as the padded input times the output gradient in pairs (`fk_bf16_weight_grad`),
// each in the f32 backward's chunks (the weight gradient on the forward's padded grid: the input
// rounded once per chunk); each dense layer of 16+ inputs and units over the whole batch at
// once, on operands packed tile by tile (`fk_bf16_pack_a`/`fk_bf16_pack_b`, `fk_bf16_gemm`): the
// forward as W X^T, the input gradient as dz W, the weight gradient as dz^T X, its output
// gradient computed in f32 first (`fusedTrainBackward`'s `gradientOut`); weights, batchnorm and
// the updates stay f32.
//
// Which unit where: one core's peaks (Tools/bench/bf16_peak.c, docs/performance.md): on the AMX
// Xeon, f32 FMA 166-173 GFLOP/s, AVX512_BF16's vdpbf16ps 84-87 (half: not worth the rounding
// there), AMX 1,180-2,730; on Zen 4, f32 FMA 115-117 and vdpbf16ps 233-235 (twice).
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

/// Whether this machine runs bf16 plans in bf16 (on AMX or AVX512_BF16; `bf16ComputeUnit`).
public var bf16ComputeAvailable: Bool { fk_bf16_level() > 0 }

/// The unit that computes bf16 products here: "AMX", "AVX512_BF16", or nil (bf16 plans run in
/// f32).
public var bf16ComputeUnit: String? {
    switch fk_bf16_level() {
    case 2: return "AMX"
    case 1: return "AVX512_BF16"
    default: return nil
    }
}

/// Why this CPU runs bf16 plans in f32, for messages: "has neither AMX nor AVX512_BF16", or,
/// where it has AVX512_BF16 on a core whose dot product is slower than f32 (Intel's), that.
public var bf16ComputeMissing: String {
    if fk_bf16_dot_cpu() != 0 && fk_bf16_dot_pays() == 0 {
        return "has no usable AMX, and its AVX512_BF16 dot product runs at half the f32 rate on this Intel core"
    }
    return "has neither AMX nor AVX512_BF16"
}

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

/// Whether the AVX512_BF16 unit (no AMX) computes convolution `g` in bf16: for a 3x3 kernel,
/// only where its grid (`grid`) has fewer cells than the f32 path's Winograd F(4x4, 3x3) tiles
/// cover (the plane rounded up to multiples of 4), i.e. where Winograd wastes more than the
/// grid: 10x10 (121 cells against 144) and 5x5 (36 against 64) yes, 12x12 (169 against 144),
/// 20x20, 24x24, 40x40, 48x48 no. Other kernels (no Winograd in f32): always. Measured per
/// layer on Zen 4 (`fergc bench`, bf16 against f32 interleaved, medians of the pairs; docs/
/// performance.md, round seven): inference vgg_k 10x10 0.71-0.85 of the f32 time, 5x5
/// 0.55-0.65; vgg_tuned 12x12 1.32-1.49 (so f32 there); dense layers 0.40-0.58.
public func bf16DotPrefers(_ g: ConvGeometry) -> Bool {
    guard g.kernelHeight == 3, g.kernelWidth == 3 else { return true }
    let (hp, wp) = grid(g)
    return hp * wp < roundUp(g.outHeight, 4) * roundUp(g.outWidth, 4)
}

/// What the bf16 path computes of a step, and with which packed weights.
public enum BF16Role: Equatable, Sendable {
    /// An inference convolution or dense layer, or the forward of a training convolution
    /// (`fusedTrain`): weights packed by `bf16PackWeights`.
    case forward(ConvGeometry)
    /// The backward of a training convolution (`fusedTrainGrad`), in chunks of `samples`: its
    /// input gradient when `flipped` is set (the convolution of the output gradient by the
    /// flipped kernel, weights packed by `bf16PackFlippedWeights`), its weight gradient when
    /// `weightGrad` (the padded input and the output gradient in bf16, `fk_bf16_weight_grad`). What
    /// is not in bf16 (and the bias and batchnorm gradients) stays f32.
    case backward(ConvGeometry, flipped: ConvGeometry?, weightGrad: Bool, samples: Int)
    /// The forward of a training dense layer (`fusedTrain` with a dense anchor): the product on
    /// bf16 unit over the whole batch (`bf16DenseForward`), weights packed by `bf16PackDenseWeights`.
    case denseForward(inFeatures: Int, outFeatures: Int)
    /// The backward of a training dense layer (`fusedTrainGrad`): its output gradient in f32 for
    /// the whole batch, then the input and/or weight gradient in bf16 (`bf16DenseBackward`; the
    /// weights packed by `bf16PackDenseWeights(transposed: true)` when the input gradient is
    /// wanted).
    case denseBackward(inFeatures: Int, outFeatures: Int, inputGrad: Bool, weightGrad: Bool)

    /// bf16 values of the step's packed weights (0: none).
    public var packedWeightCount: Int {
        switch self {
        case .forward(let g): return bf16PackedWeightCount(g)
        case .backward(_, let f, _, _): return f.map(bf16PackedWeightCount) ?? 0
        case .denseForward(let i, let o): return roundUp(o, 16) * roundUp(i, 32)
        case .denseBackward(let i, let o, let dx, _): return dx ? roundUp(i, 16) * roundUp(o, 32) : 0
        }
    }

    /// The input slot of the f32 weights the packed ones are made from.
    public var weightSlot: Int {
        switch self {
        case .forward, .denseForward: return 1
        case .backward, .denseBackward: return 2
        }
    }
}

/// The stride-1 convolution that computes the input gradient of `g`: the output gradient
/// (g.outChannels planes of OH x OW) padded by KH-1-padTop and KW-1-padLeft, convolved with the
/// flipped kernel into g.inChannels planes of H x W. nil unless g has stride 1 and paddings
/// that leave the flipped ones non-negative.
public func bf16FlippedGeometry(_ g: ConvGeometry) -> ConvGeometry? {
    guard g.stride == 1, g.padTop >= 0, g.padLeft >= 0, g.padTop < g.kernelHeight, g.padLeft < g.kernelWidth,
          g.outHeight <= g.inHeight + g.padTop, g.outWidth <= g.inWidth + g.padLeft else { return nil }
    return ConvGeometry(inChannels: g.outChannels, inHeight: g.outHeight, inWidth: g.outWidth, outChannels: g.inChannels,
                        kernelHeight: g.kernelHeight, kernelWidth: g.kernelWidth, stride: 1,
                        padTop: g.kernelHeight - 1 - g.padTop, padLeft: g.kernelWidth - 1 - g.padLeft,
                        outHeight: g.inHeight, outWidth: g.inWidth)
}

/// The bf16 role of a step of a plan in `mode` ("inference" or "training"), or nil: in
/// inference plans as `bf16ConvGeometry`; in training plans the forward of every fused
/// training convolution of stride 1 with 16+ input channels, and the backward of every fused one
/// of stride 1: its input gradient where the output has 16+ channels, its weight gradient where
/// input and output have 16+ (chunks of the f32 backward's `fastConvChunk`, at most `maxChunk`
/// samples).
///
/// On the AVX512_BF16 unit (`level` 1) a convolution is in bf16 only where `bf16DotPrefers` it;
/// on AMX (2) always. Dense layers on both.
public func bf16Role(of kernel: Kernel, mode: String, maxChunk: Int, level: Int32 = fk_bf16_level()) -> BF16Role? {
    if level == 1 {
        switch kernel {
        case .conv2d(let g, _), .fused(.conv2d(let g), _), .fusedTrain(.conv2d(let g), _),
             .fusedTrainGrad(.conv2d(let g), _, _, _):
            if !bf16DotPrefers(g) { return nil }
        default: break
        }
    }
    if mode == "inference" { return bf16ConvGeometry(of: kernel).map { .forward($0) } }
    switch kernel {
    case .fusedTrain(.dense(let i, let o), _):
        return i >= 16 && o >= 16 ? .denseForward(inFeatures: i, outFeatures: o) : nil
    case .fusedTrainGrad(.dense(let i, let o), _, let inputGrad, let weightGrad):
        return i >= 16 && o >= 16 && (inputGrad || weightGrad)
            ? .denseBackward(inFeatures: i, outFeatures: o, inputGrad: inputGrad, weightGrad: weightGrad) : nil
    case .fusedTrain(.conv2d(let g), _):
        return g.stride == 1 && g.inChannels >= 16 ? .forward(g) : nil
    case .fusedTrainGrad(.conv2d(let g), _, let inputGrad, let weightGrad):
        let dx = inputGrad && g.outChannels >= 16 ? bf16FlippedGeometry(g) : nil
        let dw = weightGrad && g.stride == 1 && g.inChannels >= 16 && g.outChannels >= 16
        guard dx != nil || dw else { return nil }
        return .backward(g, flipped: dx, weightGrad: dw, samples: max(1, min(fastConvChunk(g), maxChunk)))
    default:
        return nil
    }
}

/// The packed weights of a convolution: [KH*KW][Opad][Cpad] bf16, O rounded up to 16, C to 32.
public func bf16PackedWeightCount(_ g: ConvGeometry) -> Int {
    g.kernelHeight * g.kernelWidth * roundUp(g.outChannels, 16) * roundUp(g.inChannels, 32)
}

/// The padded grid of one sample: Hp x Wp, the outputs' plane plus the kernel's reach, less the
/// padding a row (a sample) can share with the next one. A row holds padLeft zeros, then the
/// input; its right padding (padRight columns, when 0 <= padRight <= padLeft) is the next row's
/// left padding, which the outputs at its last columns read across the row's end (flattened,
/// position p + ky*Wp + kx). Likewise a sample's bottom padding is the next sample's top rows
/// (the last sample's, the zeros past the grid). For a "same" 3x3 convolution of a 5x5 plane,
/// 6 x 6 cells per sample instead of 7 x 7 (25 outputs: 44% more products computed than kept
/// instead of 96%); 11 x 11 instead of 12 x 12 at 10x10.
@inline(__always) private func grid(_ g: ConvGeometry) -> (h: Int, w: Int) {
    let h = g.outHeight + g.kernelHeight - 1, w = g.outWidth + g.kernelWidth - 1
    let padBottom = h - g.inHeight - g.padTop, padRight = w - g.inWidth - g.padLeft
    return (h - (padBottom >= 0 && padBottom <= g.padTop ? padBottom : 0),
            w - (padRight >= 0 && padRight <= g.padLeft ? padRight : 0))
}

/// The grid of `g` (`grid`), for tests.
func bf16GridShape(_ g: ConvGeometry) -> (h: Int, w: Int) { grid(g) }

/// Whether convolution `g` runs on AVX512_BF16's dot product (`level` 1) with its outputs compact
/// (`fk_bf16_conv_compact`: weights packed as pairs of input channels, the positions broadcast):
/// wherever its grid has cells that are not outputs (a "same" convolution's shared padding, a
/// "valid" one's last columns and rows), whose products the grid kernel computes and drops (44%
/// more than kept for a "same" 3x3 at 5x5, 21% at 10x10); not 1x1 convolutions or dense layers. Its
/// weights are packed by `bf16PackWeights` / `bf16PackFlippedWeights` for the path this says.
public func bf16CompactConv(_ g: ConvGeometry, level: Int32 = fk_bf16_level()) -> Bool {
    guard level == 1, g.stride == 1, g.kernelHeight * g.kernelWidth <= 64 else { return false }
    let (hp, wp) = grid(g)
    return hp * wp > g.outHeight * g.outWidth
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
    // An odd number of cache lines per row: a B tile's 16 rows then fall in 16 different sets of
    // L1 and L2 (rows a power-of-two number of lines apart share a few sets and evict each other).
    var rowLength = roundUp(cols + (g.kernelHeight - 1) * wp + g.kernelWidth + 16, 16)
    if (rowLength / 16) % 2 == 0 { rowLength += 16 }
    let pairs = roundUp(roundUp(g.inChannels, 32) / 2 * rowLength * 4, 64)
    let acc = roundUp(g.outChannels * roundUp(cols, 16) * 4, 64)
    return (rowLength, pairs, pairs + acc)
}

/// Bytes of one thread's scratch for a geometry with chunks of at most `maxChunk` samples:
/// the pair grid, the f32 products and (used in thread 0's) the batchnorm coefficients.
public func bf16ConvScratchBytes(_ g: ConvGeometry, maxChunk: Int) -> Int {
    bf16ScratchParts(g, samples: max(1, min(bf16ConvChunk(g), maxChunk))).coefficients + 3 * g.outChannels * 4
}

/// Bytes of one thread's scratch for a step's role: a forward's (`bf16ConvScratchBytes`), or a
/// backward's for one chunk of the f32 backward: the input gradient's grid and products, then
/// (from `bf16WeightGradOffset`) the weight gradient's panels and partial sums.
public func bf16RoleScratchBytes(_ role: BF16Role, maxChunk: Int) -> Int {
    switch role {
    case .forward(let g): return bf16ConvScratchBytes(g, maxChunk: maxChunk)
    case .backward(let g, let f, let dw, let samples):
        let dxBytes = bf16WeightGradOffset(f, samples: samples)
        return dxBytes + (dw ? bf16WeightGradLayout(g, samples: samples).bytes : 0)
    case .denseForward, .denseBackward: return 0
    }
}

/// Where the weight gradient's part of a backward's scratch starts: after the input gradient's.
public func bf16WeightGradOffset(_ flipped: ConvGeometry?, samples: Int) -> Int {
    flipped.map { roundUp(bf16ScratchParts($0, samples: samples).coefficients, 64) } ?? 0
}

/// The weight gradient's scratch for chunks of `samples` samples: the A panel (the padded grid,
/// Cpad rows of rowLen bf16), where `compact` (`bf16CompactConv`) the taps' rows of the outputs'
/// positions made from it (`fk_bf16_tap_rows`: taps x Cpad rows of rowLen2 bf16, at byte `a2`),
/// the B panel (Kpad/2 rows of ldB dwords), the partial sums (taps x Cpad x Opad f32), the
/// transposition's work row (Kpad f32); byte offsets and the total. Kpad counts the grid's cells,
/// or where compact the outputs. Row lengths are an odd number of cache lines (rows a power of
/// two lines apart share cache sets).
func bf16WeightGradLayout(_ g: ConvGeometry, samples: Int)
    -> (cPad: Int, oPad: Int, kPad: Int, rowLen: Int, ldB: Int, b: Int, sums: Int, work: Int, bytes: Int,
        compact: Bool, a2: Int, rowLen2: Int) {
    let (hp, wp) = grid(g), compact = bf16CompactConv(g)
    let taps = g.kernelHeight * g.kernelWidth, cPad = roundUp(g.inChannels, 16), oPad = roundUp(g.outChannels, 16)
    let gridPad = roundUp(samples * hp * wp, 32)
    let kPad = compact ? roundUp(samples * g.outHeight * g.outWidth, 32) : gridPad
    var rowLen = roundUp(gridPad + (g.kernelHeight - 1) * wp + g.kernelWidth + 32, 32)
    if (rowLen / 32) % 2 == 0 { rowLen += 32 }
    var rowLen2 = compact ? roundUp(kPad + 32, 32) : 0
    if compact && (rowLen2 / 32) % 2 == 0 { rowLen2 += 32 }
    var ldB = oPad
    if (ldB / 16) % 2 == 0 { ldB += 16 }
    let a2 = roundUp(cPad * rowLen * 2, 64)
    let b = a2 + roundUp(taps * cPad * rowLen2 * 2, 64)
    let sums = b + roundUp(kPad / 2 * ldB * 4, 64)
    let work = sums + roundUp(taps * cPad * oPad * 4, 64)
    return (cPad, oPad, kPad, rowLen, ldB, b, sums, work, work + kPad * 4, compact, a2, rowLen2)
}

/// The scratch all threads share in a dense role's step, for batches of up to `samples`: byte
/// offsets of its parts (each 64-byte aligned) and the total. Forward: X's B tiles (`bx`), the
/// product [O][n] (`acc`). Backward: the output gradient [n][O] (`dz`), its A tiles for the input
/// gradient (`aDz`) and transposed for the weight gradient (`aDzT`), X's B tiles (`bx`).
func bf16DenseLayout(_ role: BF16Role, samples S: Int) -> (bx: Int, acc: Int, dz: Int, aDz: Int, aDzT: Int, bytes: Int) {
    func bytes(_ count: Int, _ size: Int) -> Int { roundUp(count * size, 64) }
    switch role {
    case .denseForward(let i, let o):
        let bx = bytes(roundUp(S, 16) * roundUp(i, 32) / 2, 4)
        return (0, bx, 0, 0, 0, bx + bytes(o * S, 4))
    case .denseBackward(let i, let o, let dx, let dw):
        let dz = bytes(S * o, 4)
        let aDz = dx ? bytes(roundUp(S, 16) * roundUp(o, 32), 2) : 0
        let aDzT = dw ? bytes(roundUp(o, 16) * roundUp(S, 32), 2) : 0
        let bx = dw ? bytes(roundUp(i, 16) * roundUp(S, 32) / 2, 4) : 0
        return (dz + aDz + aDzT, 0, 0, dz, dz + aDz, dz + aDz + aDzT + bx)
    case .forward, .backward:
        return (0, 0, 0, 0, 0, 0)
    }
}

/// What an executor allocates for the bf16 path of a plan: per thread, the largest step's
/// scratch; once, the largest dense step's shared scratch (`bf16DenseLayout`) and every step's
/// packed weights (bytes). Zero for a plan that does not ask for bf16 or on a machine without
/// AMX.
public func bf16WorkspaceBytes(_ plan: Plan, threads: Int, enabled: Bool? = nil)
    -> (perThread: Int, shared: Int, weights: Int) {
    guard enabled ?? (plan.metadata.computeDType == "bf16"), bf16ComputeAvailable else {
        return (0, 0, 0)
    }
    var perThread = 0, shared = 0, weights = 0
    for step in plan.steps {
        guard let role = bf16Role(of: step.kernel, mode: plan.metadata.mode, maxChunk: plan.maxBatch) else { continue }
        perThread = max(perThread, bf16RoleScratchBytes(role, maxChunk: plan.maxBatch))
        shared = max(shared, bf16DenseLayout(role, samples: plan.maxBatch).bytes)
        weights += role.packedWeightCount * 2
    }
    return (perThread, shared, weights)
}

/// A dense layer's weights w (O, I) rounded to bf16 for its bf16 training steps, the threads
/// splitting blocks of 16 rows: as the A operand of the forward's W X^T (`fk_bf16_pack_a`,
/// `.denseForward`'s `packedWeightCount` values), or `transposed` as the B operand of the input
/// gradient's dz W (`fk_bf16_pack_b`, `.denseBackward`'s).
public func bf16PackDenseWeights(_ packed: UnsafeMutablePointer<UInt16>, _ w: UnsafePointer<Float>, inFeatures I: Int,
                                 outFeatures O: Int, transposed: Bool, threads: Int) {
    let blocks = (transposed ? roundUp(I, 16) : roundUp(O, 16)) / 16, T = max(1, min(threads, blocks))
    parallelFor(T) { t in
        let r = splitRange(blocks, parts: T, t)
        if transposed {
            packed.withMemoryRebound(to: UInt32.self, capacity: roundUp(I, 16) * roundUp(O, 32) / 2) {
                fk_bf16_pack_b($0, w, I, 1, i32(O), i32(I), i32(r.lowerBound * 16), i32(r.upperBound * 16))
            }
        } else {
            fk_bf16_pack_a(packed, w, I, 1, i32(O), i32(I), i32(r.lowerBound * 16), i32(r.upperBound * 16))
        }
    }
}

/// z (n, O) = x (n, I) w^T + b with the products in bf16 (w packed by
/// `bf16PackDenseWeights`), the batch as one product W X^T ([O][n]) transposed into z.
/// `scratch`: `bf16DenseLayout(.denseForward(...), samples: >= n).bytes`, 64-byte aligned.
/// False (nothing computed) where no bf16 unit is available.
public func bf16DenseForward(_ z: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<UInt16>,
                             _ b: UnsafePointer<Float>?, n: Int, inFeatures I: Int, outFeatures O: Int, threads: Int,
                             scratch: UnsafeMutableRawPointer) -> Bool {
    guard bf16ComputeAvailable, n > 0 else { return false }
    let l = bf16DenseLayout(.denseForward(inFeatures: I, outFeatures: O), samples: n)
    let bx = scratch.assumingMemoryBound(to: UInt32.self), acc = (scratch + l.acc).assumingMemoryBound(to: Float.self)
    let sBlocks = roundUp(n, 16) / 16, oBlocks = roundUp(O, 32) / 32
    // X^T as B: element (i, s) at x[s*I + i].
    let T1 = max(1, min(threads, sBlocks))
    parallelFor(T1) { t in
        let r = splitRange(sBlocks, parts: T1, t)
        fk_bf16_pack_b(bx, x, 1, I, i32(I), i32(n), i32(r.lowerBound * 16), i32(r.upperBound * 16))
    }
    // acc = W X^T, the threads splitting the output features (W, the larger operand, read once).
    let T2 = max(1, min(threads, oBlocks))
    parallelFor(T2) { t in
        let r = splitRange(oBlocks, parts: T2, t)
        _ = fk_bf16_gemm(acc, n, w, bx, i32(roundUp(I, 32)), i32(r.lowerBound * 32), i32(min(O, r.upperBound * 32)), 0,
                        i32(n), 0)
    }
    let T3 = max(1, min(threads, n))
    parallelFor(T3) { t in
        for s in splitRange(n, parts: T3, t) {
            let row = z + s * O
            for o in 0..<O { row[o] = acc[o * n + s] + (b?[o] ?? 0) }
        }
    }
    return true
}

/// The products of a dense layer's backward in bf16, from its output gradient dz (n, O)
/// (in the scratch's `dz` part): dx (n, I) = dz w (w packed by `bf16PackDenseWeights(transposed:
/// true)`), dw (O, I) = dz^T x, each overwritten; the threads split dx's columns and dw's rows.
/// False (nothing computed) where no bf16 unit is available.
public func bf16DenseBackward(dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                              x: UnsafePointer<Float>, w: UnsafePointer<UInt16>?, n: Int, inFeatures I: Int,
                              outFeatures O: Int, threads: Int, scratch: UnsafeMutableRawPointer) -> Bool {
    guard bf16ComputeAvailable, n > 0 else { return false }
    let role = BF16Role.denseBackward(inFeatures: I, outFeatures: O, inputGrad: dx != nil, weightGrad: dw != nil)
    let l = bf16DenseLayout(role, samples: n)
    let dz = UnsafePointer((scratch + l.dz).assumingMemoryBound(to: Float.self))
    if let dx, let w {
        let aDz = (scratch + l.aDz).assumingMemoryBound(to: UInt16.self)
        let sBlocks = roundUp(n, 16) / 16, T1 = max(1, min(threads, sBlocks))
        parallelFor(T1) { t in
            let r = splitRange(sBlocks, parts: T1, t)
            fk_bf16_pack_a(aDz, dz, O, 1, i32(n), i32(O), i32(r.lowerBound * 16), i32(r.upperBound * 16))
        }
        // Columns outside: W's tiles (the larger operand) read once, dz's panels from cache.
        let iBlocks = roundUp(I, 32) / 32, T2 = max(1, min(threads, iBlocks))
        w.withMemoryRebound(to: UInt32.self, capacity: roundUp(I, 16) * roundUp(O, 32) / 2) { wb in
            parallelFor(T2) { t in
                let r = splitRange(iBlocks, parts: T2, t)
                _ = fk_bf16_gemm(dx, I, aDz, wb, i32(roundUp(O, 32)), 0, i32(n), i32(r.lowerBound * 32),
                                i32(min(I, r.upperBound * 32)), 1)
            }
        }
    }
    if let dw {
        let aDzT = (scratch + l.aDzT).assumingMemoryBound(to: UInt16.self)
        let bx = (scratch + l.bx).assumingMemoryBound(to: UInt32.self)
        let oBlocks16 = roundUp(O, 16) / 16, iBlocks16 = roundUp(I, 16) / 16
        let T1 = max(1, min(threads, oBlocks16 + iBlocks16))
        parallelFor(T1) { t in
            // dz^T as A: element (o, s) at dz[s*O + o]; x as B: element (s, i) at x[s*I + i].
            let ra = splitRange(oBlocks16, parts: T1, t), rb = splitRange(iBlocks16, parts: T1, t)
            fk_bf16_pack_a(aDzT, dz, 1, O, i32(O), i32(n), i32(ra.lowerBound * 16), i32(ra.upperBound * 16))
            fk_bf16_pack_b(bx, x, I, 1, i32(n), i32(I), i32(rb.lowerBound * 16), i32(rb.upperBound * 16))
        }
        let oBlocks = roundUp(O, 32) / 32, T2 = max(1, min(threads, oBlocks))
        parallelFor(T2) { t in
            let r = splitRange(oBlocks, parts: T2, t)
            _ = fk_bf16_gemm(dw, I, aDzT, bx, i32(roundUp(n, 32)), i32(r.lowerBound * 32), i32(min(O, r.upperBound * 32)),
                            0, i32(I), 0)
        }
    }
    return true
}

/// w (O, C, KH, KW) rounded to bf16 into `packed` (`bf16PackedWeightCount(g)` values); for the
/// compact path (`bf16CompactConv`) as pairs of input channels, the threads splitting the pairs
/// (a training step packs every weight anew: 2.2 ms for 512 x 512 x 3 x 3 on one Zen 4 core).
public func bf16PackWeights(_ packed: UnsafeMutablePointer<UInt16>, _ w: UnsafePointer<Float>, _ g: ConvGeometry,
                            threads: Int = 1) {
    if bf16CompactConv(g) {
        let pairs = roundUp(g.inChannels, 32) / 2, T = max(1, min(threads, pairs))
        packed.withMemoryRebound(to: UInt32.self, capacity: bf16PackedWeightCount(g) / 2) { p in
            parallelFor(T) { t in
                let r = splitRange(pairs, parts: T, t)
                fk_bf16_pack_conv_pairs(p, w, i32(g.outChannels), i32(g.inChannels), i32(g.kernelHeight),
                                        i32(g.kernelWidth), 0, i32(roundUp(g.outChannels, 16)), i32(r.lowerBound),
                                        i32(r.upperBound))
            }
        }
        return
    }
    fk_bf16_pack_conv_weights(packed, w, Int32(g.outChannels), Int32(g.inChannels), Int32(g.kernelHeight),
                              Int32(g.kernelWidth), Int32(roundUp(g.outChannels, 16)), Int32(roundUp(g.inChannels, 32)))
}

/// The flipped weights of `g`'s input gradient (`fk_bf16_pack_conv_weights_flipped`) into
/// `packed` (`bf16PackedWeightCount(bf16FlippedGeometry(g)!)` values), the threads splitting
/// the input channels.
public func bf16PackFlippedWeights(_ packed: UnsafeMutablePointer<UInt16>, _ w: UnsafePointer<Float>, _ g: ConvGeometry,
                                   threads: Int) {
    let cPad = roundUp(g.inChannels, 16), oPad = roundUp(g.outChannels, 32)
    if let f = bf16FlippedGeometry(g), bf16CompactConv(f) {
        // Pairs of the output gradient's channels by 16 channels of dx, the threads splitting the pairs.
        let pairs = oPad / 2, T = max(1, min(threads, pairs))
        packed.withMemoryRebound(to: UInt32.self, capacity: pairs * cPad * g.kernelHeight * g.kernelWidth) { p in
            parallelFor(T) { t in
                let r = splitRange(pairs, parts: T, t)
                fk_bf16_pack_conv_pairs(p, w, i32(g.outChannels), i32(g.inChannels), i32(g.kernelHeight),
                                        i32(g.kernelWidth), 1, i32(cPad), i32(r.lowerBound), i32(r.upperBound))
            }
        }
        return
    }
    let T = max(1, min(threads, cPad / 16))
    parallelFor(T) { t in
        let r = splitRange(cPad / 16, parts: T, t)
        fk_bf16_pack_conv_weights_flipped(packed, w, Int32(g.outChannels), Int32(g.inChannels), Int32(g.kernelHeight),
                                          Int32(g.kernelWidth), Int32(cPad), Int32(oPad), Int32(r.lowerBound * 16),
                                          Int32(r.upperBound * 16))
    }
}

@inline(__always) private func i32(_ v: Int) -> Int32 { Int32(truncatingIfNeeded: v) }

/// The products of convolution `g` for a chunk laid out by `fk_bf16_pad_pairs` (X, rows `rowLength`
/// dwords apart) into acc (rows `ld` apart): output channels `channels`, positions `positions` of
/// the chunk, grid positions (`fk_bf16_conv`, weights by `fk_bf16_pack_conv_weights`) or, where
/// `compact` (`bf16CompactConv`), compact ones (`fk_bf16_conv_compact`, weights packed as pairs).
/// False where the unit asked for is not available.
@inline(__always) private func bf16Products(
    _ acc: UnsafeMutablePointer<Float>, _ ld: Int, _ w: UnsafePointer<UInt16>, _ g: ConvGeometry, compact: Bool,
    _ X: UnsafePointer<UInt32>, _ rowLength: Int, positions: Range<Int>, channels: Range<Int>
) -> Bool {
    let (hp, wp) = grid(g), cPad = roundUp(g.inChannels, 32)
    if compact {
        let wq = UnsafeRawPointer(w).assumingMemoryBound(to: UInt32.self)
        return fk_bf16_conv_compact(acc, ld, wq, i32(roundUp(g.outChannels, 16)), i32(cPad / 2), i32(g.kernelHeight),
                                    i32(g.kernelWidth), X, rowLength, i32(hp), i32(wp), i32(g.outHeight), i32(g.outWidth),
                                    positions.lowerBound, positions.upperBound, i32(channels.lowerBound),
                                    i32(channels.upperBound)) != 0
    }
    return fk_bf16_conv(acc, ld, w, i32(g.outChannels), i32(cPad), i32(g.kernelHeight), i32(g.kernelWidth), X, rowLength,
                        i32(wp), positions.lowerBound, positions.upperBound, i32(channels.lowerBound),
                        i32(channels.upperBound)) != 0
}

/// The input gradient of a chunk of `samples` samples in bf16: dx (samples, C, H, W) =
/// the flipped convolution (`bf16FlippedGeometry(g)`, weights by `bf16PackFlippedWeights`) of
/// dz, the chunk's output gradient as the f32 backward holds it ([O][samples * OH * OW], rows
/// `ld` apart); the products in bf16, the sums in f32. `scratch`: this thread's, of
/// `bf16RoleScratchBytes(.backward(...))` bytes for at least `samples`. False (nothing
/// computed) where no bf16 unit is available.
public func bf16GradInputChunk(
    _ dx: UnsafeMutablePointer<Float>, _ dz: UnsafePointer<Float>, ld: Int, samples S: Int, _ g: ConvGeometry,
    _ flipped: ConvGeometry, _ w: UnsafePointer<UInt16>, scratch: UnsafeMutableRawPointer
) -> Bool {
    let f = flipped, (hp, wp) = grid(f), parts = bf16ScratchParts(f, samples: S), compact = bf16CompactConv(f)
    let X = scratch.assumingMemoryBound(to: UInt32.self)
    let acc = (scratch + parts.acc).assumingMemoryBound(to: Float.self)
    let (eh, ew) = compact ? (f.outHeight, f.outWidth) : (hp, wp)  // the products' grid
    let cols = S * eh * ew, ldAcc = roundUp(cols, 16)
    fk_bf16_pad_pairs(X, parts.rowLength, dz, g.outHeight * g.outWidth, ld, i32(S), i32(f.inChannels), i32(f.inHeight),
                      i32(f.inWidth), i32(hp), i32(wp), i32(f.padTop), i32(f.padLeft), 0, i32(roundUp(f.inChannels, 32) / 2))
    guard bf16Products(acc, ldAcc, w, f, compact: compact, X, parts.rowLength, positions: 0..<cols,
                       channels: 0..<f.outChannels) else { return false }
    fk_conv_epilogue_grid(dx, acc, ldAcc, i32(f.outChannels), i32(S), i32(f.outHeight), i32(f.outWidth), i32(eh), i32(ew),
                          nil, 0, nil, nil, 0, 0, i32(f.outChannels), nil, nil)
    return true
}

/// out = epilogue(conv(x, w) + b) with the products in bf16 (`w` packed by
/// `bf16PackWeights`; stride 1); the epilogue as `fastConvForward`'s. `scratch`: one pointer per
/// thread, each of `bf16ConvScratchBytes(g, maxChunk:)` bytes, 64-byte aligned. Returns false
/// (and computes nothing) where no bf16 unit is available.
public func bf16ConvForward(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<UInt16>,
    _ b: UnsafePointer<Float>?,
    preRelu: Bool, scale: UnsafePointer<Float>?, shift: UnsafePointer<Float>?, postRelu: Bool,
    stats: (sum: UnsafeMutablePointer<Double>, sumsq: UnsafeMutablePointer<Double>)? = nil,
    statScratch: FastScratch? = nil,  // with stats and a batch over threads: per-thread sums in doubles[t][0, 2O)
    n: Int, _ g: ConvGeometry, threads: Int, scratch: [UnsafeMutableRawPointer], maxChunk: Int = .max
) -> Bool {
    guard bf16ComputeAvailable, g.stride == 1, !scratch.isEmpty else { return false }
    precondition(stats == nil || statScratch != nil, "bf16ConvForward: stats need statScratch")
    let O = g.outChannels, Cpad = roundUp(g.inChannels, 32), pairs = Cpad / 2
    let (hp, wp) = grid(g), compact = bf16CompactConv(g)
    let (eh, ew) = compact ? (g.outHeight, g.outWidth) : (hp, wp)  // the products' grid
    let xStride = g.inChannels * g.inHeight * g.inWidth
    let S = max(1, min(bf16ConvChunk(g), maxChunk)), T = max(1, min(threads, n, scratch.count))
    let parts = bf16ScratchParts(g, samples: S)
    func fill(_ X: UnsafeMutablePointer<UInt32>, _ s0: Int, _ s1: Int, _ rowLength: Int, _ range: Range<Int>) {
        fk_bf16_pad_pairs(X, rowLength, x + s0 * xStride, xStride, g.inHeight * g.inWidth, i32(s1 - s0),
                          i32(g.inChannels), i32(g.inHeight), i32(g.inWidth), i32(hp), i32(wp), i32(g.padTop),
                          i32(g.padLeft), i32(range.lowerBound), i32(range.upperBound))
    }
    func epilogue(_ o: UnsafeMutablePointer<Float>, _ acc: UnsafePointer<Float>, _ ld: Int, samples: Int, _ r: Range<Int>,
                  _ sums: UnsafeMutablePointer<Double>? = nil) {
        fk_conv_epilogue_grid(o, acc, ld, i32(O), i32(samples), i32(g.outHeight), i32(g.outWidth), i32(eh), i32(ew), b,
                              preRelu ? 1 : 0, scale, shift, postRelu ? 1 : 0, i32(r.lowerBound), i32(r.upperBound),
                              sums, sums.map { $0 + O })
    }
    let threadsWanted = max(1, min(threads, scratch.count))
    if T < threadsWanted {
        // Fewer samples than threads (batch 1): sample by sample, every thread building its pairs
        // of the grid, then its output channels in blocks of 16 and their epilogue — or, with
        // too few channels for the threads, its blocks of 32 positions, then the epilogue.
        let X = scratch[0].assumingMemoryBound(to: UInt32.self)
        let acc = (scratch[0] + parts.acc).assumingMemoryBound(to: Float.self)
        let one = bf16ScratchParts(g, samples: 1), cols = eh * ew, ld = roundUp(cols, 16)
        let blocks = (cols + 31) / 32, channelBlocks = (O + 15) / 16
        // By channels wherever there are enough blocks of 16 for the threads: each thread then
        // reads only its share of the weights and runs its epilogue in the same region (one
        // parallel region less per layer than splitting the positions).
        let byChannels = channelBlocks >= threadsWanted || (blocks < threadsWanted && channelBlocks > 1)
        // Statistics: each channel's epilogue runs on one thread, so they add into `stats` directly.
        let sums: UnsafeMutablePointer<Double>? = stats.map { st in
            st.sum.update(repeating: 0, count: O); st.sumsq.update(repeating: 0, count: O)
            return st.sum
        }
        precondition(stats == nil || stats!.sumsq == stats!.sum + O, "bf16ConvForward: sumsq must follow sum")
        for s in 0..<n {
            let y = out + s * O * g.outHeight * g.outWidth
            parallelFor(threadsWanted) { t in fill(X, s, s + 1, one.rowLength, splitRange(pairs, parts: threadsWanted, t)) }
            if byChannels {
                let parts = min(threadsWanted, channelBlocks)
                parallelFor(parts) { t in
                    let r = splitRange(channelBlocks, parts: parts, t), o0 = r.lowerBound * 16, o1 = min(O, r.upperBound * 16)
                    _ = bf16Products(acc, ld, w, g, compact: compact, X, one.rowLength, positions: 0..<cols, channels: o0..<o1)
                    epilogue(y, acc, ld, samples: 1, o0..<o1, sums)
                }
                continue
            }
            parallelFor(min(threadsWanted, blocks)) { t in
                let r = splitRange(blocks, parts: min(threadsWanted, blocks), t)
                _ = bf16Products(acc, ld, w, g, compact: compact, X, one.rowLength,
                                 positions: r.lowerBound * 32..<min(cols, r.upperBound * 32), channels: 0..<O)
            }
            parallelFor(min(threadsWanted, O)) { t in
                epilogue(y, acc, ld, samples: 1, splitRange(O, parts: min(threadsWanted, O), t), sums)
            }
        }
        return true
    }
    parallelFor(T) { t in
        let X = scratch[t].assumingMemoryBound(to: UInt32.self)
        let acc = (scratch[t] + parts.acc).assumingMemoryBound(to: Float.self)
        let sums: UnsafeMutablePointer<Double>? = stats == nil ? nil : statScratch.unsafelyUnwrapped.doubles[t]
        sums?.update(repeating: 0, count: 2 * O)
        var s0 = splitRange(n, parts: T, t).lowerBound
        let end = splitRange(n, parts: T, t).upperBound
        while s0 < end {
            let s1 = min(end, s0 + S), cols = (s1 - s0) * eh * ew, ld = roundUp(cols, 16)
            fill(X, s0, s1, parts.rowLength, 0..<pairs)
            _ = bf16Products(acc, ld, w, g, compact: compact, X, parts.rowLength, positions: 0..<cols, channels: 0..<O)
            epilogue(out + s0 * O * g.outHeight * g.outWidth, acc, ld, samples: s1 - s0, 0..<O, sums)
            s0 = s1
        }
    }
    if let stats, let statScratch { addThreadStatistics(statScratch, threads: T, channels: O, into: stats) }
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

/// The bf16 path of `fusedTrainForward` for a conv anchor (`w` packed by `bf16PackWeights`): the
/// convolution in bf16, its batch statistics from the f32 outputs, then the f32 normalization of
/// `fastFusedConvTrainForward`. `scratch`: the f32 path's (its per-thread doubles hold the
/// statistics, its coefficients the normalization's). False where no bf16 unit is available.
public func bf16FusedConvTrainForward(
    _ y: UnsafeMutablePointer<Float>, _ bnInput: UnsafeMutablePointer<Float>?,
    _ mean: UnsafeMutablePointer<Float>?, _ variance: UnsafeMutablePointer<Float>?,
    _ x: UnsafePointer<Float>, _ w: UnsafePointer<UInt16>, _ b: UnsafePointer<Float>?,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
    n: Int, _ g: ConvGeometry, _ e: FusedEpilogue, threads: Int, scratch: FastScratch,
    bf16Scratch: [UnsafeMutableRawPointer], maxChunk: Int = .max, global: GlobalBatch? = nil
) -> Bool {
    guard bf16ComputeAvailable, g.stride == 1, !bf16Scratch.isEmpty else { return false }
    withTrainingEpilogue(y, bnInput, mean, variance, gamma: gamma, beta: beta, n: n, g, e, threads: threads,
                         scratch: scratch, coef: scratch.floats[0] + coefficientOffset(g, maxChunk: scratch.maxChunk),
                         global: global) { out, pre, stats in
        _ = bf16ConvForward(out, x, w, b, preRelu: pre, scale: nil, shift: nil, postRelu: false, stats: stats,
                            statScratch: scratch, n: n, g, threads: threads, scratch: bf16Scratch, maxChunk: maxChunk)
    }
    return true
}

/// The weight gradient of a chunk in bf16: for samples [0, S) of x (the chunk's input)
/// and dz (the chunk's output gradient as the f32 backward holds it: [O][S * OH * OW], rows `ld`
/// apart), the partial sums at `scratch + bf16WeightGradLayout(g, samples:).sums` (this
/// thread's) start from zero (`accumulate` false) or add. `layoutSamples`: the chunk size the
/// scratch was laid out for (at least S). False where no bf16 unit is available.
public func bf16WeightGradChunk(
    _ x: UnsafePointer<Float>, _ dz: UnsafePointer<Float>, ld: Int, samples S: Int, layoutSamples: Int, _ g: ConvGeometry,
    scratch: UnsafeMutableRawPointer, accumulate: Bool
) -> Bool {
    let l = bf16WeightGradLayout(g, samples: layoutSamples), (hp, wp) = grid(g)
    let A = scratch.assumingMemoryBound(to: UInt16.self)
    let B = (scratch + l.b).assumingMemoryBound(to: UInt32.self)
    let sums = (scratch + l.sums).assumingMemoryBound(to: Float.self)
    let work = (scratch + l.work).assumingMemoryBound(to: Float.self)
    fk_bf16_pad_rows(A, l.rowLen, x, g.inChannels * g.inHeight * g.inWidth, i32(S), i32(g.inChannels), i32(g.inHeight),
                     i32(g.inWidth), i32(hp), i32(wp), i32(g.padTop), i32(g.padLeft), 0, i32(l.cPad))
    if l.compact {
        // The sums over the outputs' positions only: each tap's rows of A at those positions, and
        // dz paired on the plane itself; one tap of taps x Cpad rows gives acc[t][c][o] as before.
        let kPad = roundUp(S * g.outHeight * g.outWidth, 32), taps = g.kernelHeight * g.kernelWidth
        let A2 = (scratch + l.a2).assumingMemoryBound(to: UInt16.self)
        fk_bf16_tap_rows(A2, l.rowLen2, A, l.rowLen, i32(l.cPad), i32(S), i32(g.outHeight), i32(g.outWidth), i32(hp),
                         i32(wp), i32(g.kernelHeight), i32(g.kernelWidth), kPad, 0, i32(l.cPad))
        fk_bf16_grid_pairs_transposed(B, l.ldB, work, dz, ld, i32(g.outChannels), i32(S), i32(g.outHeight),
                                      i32(g.outWidth), i32(g.outHeight), i32(g.outWidth), kPad, 0, i32(l.oPad))
        return fk_bf16_weight_grad(sums, A2, l.rowLen2, B, l.ldB, 1, 1, 1, i32(taps * l.cPad), i32(l.oPad), kPad,
                                  accumulate ? 1 : 0) != 0
    }
    let kPad = roundUp(S * hp * wp, 32)
    fk_bf16_grid_pairs_transposed(B, l.ldB, work, dz, ld, i32(g.outChannels), i32(S), i32(g.outHeight), i32(g.outWidth),
                                  i32(hp), i32(wp), kPad, 0, i32(l.oPad))
    return fk_bf16_weight_grad(sums, A, l.rowLen, B, l.ldB, i32(g.kernelHeight), i32(g.kernelWidth), i32(wp), i32(l.cPad),
                              i32(l.oPad), kPad, accumulate ? 1 : 0) != 0
}

/// dw (O, C, KH, KW) = the sum, in thread order, of the T threads' partial sums (scratch laid
/// out for chunks of `layoutSamples`), output channels split over the threads.
public func bf16WeightGradFold(_ dw: UnsafeMutablePointer<Float>, _ g: ConvGeometry, layoutSamples: Int,
                               scratch: [UnsafeMutableRawPointer], offset: Int, threads T: Int) {
    let l = bf16WeightGradLayout(g, samples: layoutSamples)
    let parts: [UnsafePointer<Float>?] = (0..<T).map {
        UnsafePointer((scratch[$0] + offset + l.sums).assumingMemoryBound(to: Float.self))
    }
    parts.withUnsafeBufferPointer { pp in
        let T2 = max(1, min(T, g.outChannels))
        parallelFor(T2) { t in
            let r = splitRange(g.outChannels, parts: T2, t)
            fk_bf16_weight_grad_fold(dw, pp.baseAddress, i32(T), i32(g.outChannels), i32(g.inChannels),
                                     i32(g.kernelHeight * g.kernelWidth), i32(l.cPad), i32(l.oPad),
                                     i32(r.lowerBound), i32(r.upperBound))
        }
    }
}
