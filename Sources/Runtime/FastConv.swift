// The fast Float convolution (plain and fused), forward and backward, over several samples per
// GEMM and both cores. The generic kernels in Conv.swift and FusedKernels.swift stay the
// reference (and the Double path); the tests compare each function here against them.
//
// Chunks. A thread takes a contiguous range of the batch (`splitRange`) and walks it in chunks
// of S samples (S from the geometry alone: the im2col panel and the GEMM result stay under
// `fastConvPanelElements`). For a chunk of cs samples, ld = cs*P columns:
//   forward   col[K, ld] = im2col of the chunk; acc[O, ld] = w[O, K] * col;
//             then one epilogue pass writes NCHW: bias, relu, (inference) batchnorm scale and
//             shift, (training) the per-channel sum and sum of squares for the batch statistics.
//   backward  dz[O, ld] = the pre-activation gradient (relu mask, batchnorm backward) in one pass,
//             db += row sums of dz; dw_t[O, K] += dz * col^T (one GEMM per chunk);
//             col = w^T * dz, then col2im into dx — or, for a 3x3 "same" convolution the
//             plan marks Winograd, dx by F(4x4,3x3) from dz in the freed col panel.
// With fewer samples than threads (batch 1), the forward instead splits the output channels:
// one im2col per sample, then each thread's GEMM rows (fk_sgemm) and their epilogue.
// Reductions over the batch (dw, db, batch statistics, batchnorm gradient sums) are per thread
// and added in thread order afterwards: bitwise reproducible for a given thread count.
// Training batchnorm normalizes in a second pass (the statistics need the whole batch);
// variance = E[z^2] - mean^2, accumulated in double.
import CKernels

/// Upper bound, in floats, of one chunk's im2col panel plus GEMM result per thread.
public let fastConvPanelElements = 1 << 20

/// Columns (samples x output positions) a chunk has at least: the wide layers at small planes
/// (512 -> 512 at 6x6: K = 4608, P = 36) would otherwise get 5 samples per chunk, a weight
/// gradient product of depth 180 re-reading and re-writing its 9.4 MB dw partial for every
/// chunk, and Winograd input gradients over 20 tiles that stream the 38 MB of transformed
/// filters for every chunk.
public let fastConvMinChunkColumns = 512

/// Samples per chunk for a geometry: the im2col panel and the GEMM result within
/// `fastConvPanelElements`, at least one sample and at least `fastConvMinChunkColumns` columns.
public func fastConvChunk(_ g: ConvGeometry) -> Int {
    let P = g.outHeight * g.outWidth, K = g.inChannels * g.kernelHeight * g.kernelWidth
    let minSamples = (fastConvMinChunkColumns + P - 1) / max(P, 1)
    return max(1, minSamples, fastConvPanelElements / max((K + g.outChannels) * P, 1))
}

/// Scratch of one thread for a convolution: floats (col, acc/dz, dw partial, coefficients)
/// and doubles (per-channel sums).
/// Layout: col (S*K*P), acc or dz (S*O*P), the dw partial (O*K), then (thread 0's scratch) the
/// per-channel coefficients (3*O); S = min(fastConvChunk(g), maxChunk).
public func fastConvScratch(_ g: ConvGeometry, maxChunk: Int = .max) -> (floats: Int, doubles: Int) {
    (coefficientOffset(g, maxChunk: maxChunk) + 3 * g.outChannels, 4 * g.outChannels)
}

/// Where a geometry's per-channel coefficients start in thread 0's scratch floats.
@inline(__always)
func coefficientOffset(_ g: ConvGeometry, maxChunk: Int) -> Int {
    let P = g.outHeight * g.outWidth, K = g.inChannels * g.kernelHeight * g.kernelWidth
    return min(fastConvChunk(g), maxChunk) * (K + g.outChannels) * P + g.outChannels * K
}

/// `fastConvScratch` for a backward that computes dw by Winograd: the Winograd dU partial and
/// transforms after the coefficients (`winogradGradWeightScratch`, chunks of the direct path's).
public func fastConvWinogradBackwardScratch(_ g: ConvGeometry, maxChunk: Int = .max) -> (floats: Int, doubles: Int) {
    let base = fastConvScratch(g, maxChunk: maxChunk)
    return (base.floats + winogradGradWeightScratch(g, samples: min(fastConvChunk(g), maxChunk)), base.doubles)
}

/// The bf16 parts of a backward (`BF16Role.backward`): the input gradient's flipped geometry and
/// packed weights (nil: dx in f32), whether the weight gradient is bf16 too, and per thread a
/// scratch of `bf16RoleScratchBytes` for chunks of `samples` (the f32 backward's chunk).
public struct BF16Backward {
    public var flipped: ConvGeometry?
    public var weights: UnsafePointer<UInt16>?
    public var weightGrad: Bool
    public var samples: Int
    public var scratch: [UnsafeMutableRawPointer]
    public init(flipped: ConvGeometry?, weights: UnsafePointer<UInt16>?, weightGrad: Bool, samples: Int,
                scratch: [UnsafeMutableRawPointer]) {
        self.flipped = flipped
        self.weights = weights
        self.weightGrad = weightGrad
        self.samples = samples
        self.scratch = scratch
    }
}

/// Per-thread scratch, owned by the executor.
public struct FastScratch {
    /// One per thread: at least `fastConvScratch(g)` elements for every geometry run with it.
    public var floats: [UnsafeMutablePointer<Float>]
    public var doubles: [UnsafeMutablePointer<Double>]
    /// Caps the samples per chunk (tests use small chunks to cover chunk boundaries).
    public var maxChunk = Int.max
    public init(floats: [UnsafeMutablePointer<Float>], doubles: [UnsafeMutablePointer<Double>], maxChunk: Int = .max) {
        self.floats = floats
        self.doubles = doubles
        self.maxChunk = maxChunk
    }
}

@inline(__always) private func i32(_ v: Int) -> Int32 { Int32(truncatingIfNeeded: v) }

/// col (rows ld apart) <- im2col of samples [s0, s1) of x, sample s at column (s - s0)*P.
@inline(__always)
private func im2colChunk(_ col: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ s0: Int, _ s1: Int, _ g: ConvGeometry) {
    let P = g.outHeight * g.outWidth, ld = (s1 - s0) * P
    let xStride = g.inChannels * g.inHeight * g.inWidth
    for s in s0..<s1 {
        fk_im2col(col + (s - s0) * P, ld, x + s * xStride, i32(g.inChannels), i32(g.inHeight), i32(g.inWidth),
                  i32(g.kernelHeight), i32(g.kernelWidth), i32(g.stride), i32(g.padTop), i32(g.padLeft),
                  i32(g.outHeight), i32(g.outWidth))
    }
}

/// out = epilogue(conv(x, w) + b) for the whole batch; `stats` (sum, sumsq per channel, summed
/// over the batch in thread order) when not nil. See `fk_conv_epilogue` for the epilogue.
public func fastConvForward(
    _ out: UnsafeMutablePointer<Float>,     // (N, O, OH, OW)
    _ x: UnsafePointer<Float>,              // (N, C, H, W)
    _ w: UnsafePointer<Float>,              // (O, C, KH, KW)
    _ b: UnsafePointer<Float>?,             // (O) or nil
    preRelu: Bool, scale: UnsafePointer<Float>?, shift: UnsafePointer<Float>?, postRelu: Bool,
    stats: (sum: UnsafeMutablePointer<Double>, sumsq: UnsafeMutablePointer<Double>)?,
    n: Int, _ g: ConvGeometry, threads: Int, scratch: FastScratch
) {
    let P = g.outHeight * g.outWidth, K = g.inChannels * g.kernelHeight * g.kernelWidth, O = g.outChannels
    let S = min(fastConvChunk(g), scratch.maxChunk), T = max(1, min(threads, n))
    if T < threads, O >= 2 * threads {
        fastConvForwardSplitChannels(out, x, w, b, preRelu: preRelu, scale: scale, shift: shift, postRelu: postRelu,
                                     stats: stats, n: n, g, threads: threads, scratch: scratch)
        return
    }
    withSingleThreadedBLAS(T) {
        parallelFor(T) { t in
            let col = scratch.floats[t], acc = col + S * K * P
            let sum = scratch.doubles[t], sumsq = sum + O
            if stats != nil { sum.update(repeating: 0, count: 2 * O) }
            var s0 = splitRange(n, parts: T, t).lowerBound
            let end = splitRange(n, parts: T, t).upperBound
            while s0 < end {
                let s1 = min(end, s0 + S), ld = (s1 - s0) * P
                im2colChunk(col, x, s0, s1, g)
                Float.gemm(transA: false, transB: false, m: O, n: ld, k: K, alpha: 1, a: w, lda: K,
                           b: UnsafePointer(col), ldb: ld, beta: 0, c: acc, ldc: ld)
                fk_conv_epilogue(out + s0 * O * P, acc, i32(O), i32(s1 - s0), P, b, preRelu ? 1 : 0, scale, shift,
                                 postRelu ? 1 : 0, stats == nil ? nil : sum, stats == nil ? nil : sumsq)
                s0 = s1
            }
        }
    }
    if let stats { addThreadStatistics(scratch, threads: T, channels: O, into: stats) }
}

/// `fastConvForward` when there are fewer samples than threads (batch 1): sample by sample, one
/// im2col, then the threads split the output channels — the GEMM rows (on `fk_sgemm`, which
/// does not pack: at batch 1 the first conv's product is 32 x 2304 x 9) and their epilogue.
/// Thread t's statistics are its own channels' sums (zeros elsewhere), added in thread order.
private func fastConvForwardSplitChannels(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
    preRelu: Bool, scale: UnsafePointer<Float>?, shift: UnsafePointer<Float>?, postRelu: Bool,
    stats: (sum: UnsafeMutablePointer<Double>, sumsq: UnsafeMutablePointer<Double>)?,
    n: Int, _ g: ConvGeometry, threads T: Int, scratch: FastScratch
) {
    let P = g.outHeight * g.outWidth, K = g.inChannels * g.kernelHeight * g.kernelWidth, O = g.outChannels
    let col = scratch.floats[0], acc = col + K * P
    for t in 0..<T where stats != nil { scratch.doubles[t].update(repeating: 0, count: 2 * O) }
    for s in 0..<n {
        im2colChunk(col, x, s, s + 1, g)
        parallelFor(T) { t in
            let r = splitRange(O, parts: T, t), o0 = r.lowerBound
            guard !r.isEmpty else { return }
            fk_sgemm(0, i32(r.count), i32(P), i32(K), w + o0 * K, K, col, P, acc + o0 * P, P, 0)
            let sum = scratch.doubles[t] + o0, sumsq = scratch.doubles[t] + O + o0
            fk_conv_epilogue(out + (s * O + o0) * P, acc + o0 * P, i32(r.count), 1, P, b.map { $0 + o0 },
                             preRelu ? 1 : 0, scale.map { $0 + o0 }, shift.map { $0 + o0 }, postRelu ? 1 : 0,
                             stats == nil ? nil : sum, stats == nil ? nil : sumsq)
        }
    }
    if let stats { addThreadStatistics(scratch, threads: T, channels: O, into: stats) }
}

/// stats = the per-thread partial sums and sums of squares (thread t's doubles [0, O) and
/// [O, 2O)) added in thread order: bitwise reproducible for a given thread count.
func addThreadStatistics(_ scratch: FastScratch, threads T: Int, channels O: Int,
                         into stats: (sum: UnsafeMutablePointer<Double>, sumsq: UnsafeMutablePointer<Double>)) {
    for c in 0..<O {
        var a = 0.0, q = 0.0
        for t in 0..<T { a += scratch.doubles[t][c]; q += scratch.doubles[t][O + c] }
        stats.sum[c] = a; stats.sumsq[c] = q
    }
}

/// A fused inference step's epilogue as a forward convolution's arguments (preRelu, scale,
/// shift, postRelu): without batchnorm, bias and relu only; with it, the running statistics
/// folded into per-channel scale and shift (written to `coef()`, 2 x channels floats) before or
/// after the relu. The direct, Winograd and bf16 paths all run their convolution through it.
@inline(__always)
func withInferenceEpilogue<R>(
    _ e: FusedEpilogue, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
    runningMean: UnsafePointer<Float>?, runningVar: UnsafePointer<Float>?, channels O: Int,
    coef: () -> UnsafeMutablePointer<Float>,
    _ conv: (_ preRelu: Bool, _ scale: UnsafePointer<Float>?, _ shift: UnsafePointer<Float>?, _ postRelu: Bool) -> R
) -> R {
    guard e.hasBatchnorm, let gamma, let beta, let runningMean, let runningVar else { return conv(e.relu, nil, nil, false) }
    let c = coef()
    inferenceBatchnormCoefficients(c, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
                                   channels: O, epsilon: e.epsilon)
    return conv(e.relu && e.batchnorm == .afterRelu, c, c + O, e.relu && e.batchnorm == .beforeRelu)
}

/// A fused training step's forward around a convolution that writes its pre-normalization
/// output and, when asked, the per-channel double sums and sums of squares: without batchnorm
/// the convolution writes y (bias and relu); with it, z = bnInput, sums into thread 0's doubles
/// [2O, 4O) (the per-thread partials use [0, 2O)), then the batch's normalization into y with
/// `coef` as scratch. The direct and Winograd paths run their convolution through it.
@inline(__always)
func withTrainingEpilogue(
    _ y: UnsafeMutablePointer<Float>, _ bnInput: UnsafeMutablePointer<Float>?,
    _ mean: UnsafeMutablePointer<Float>?, _ variance: UnsafeMutablePointer<Float>?,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
    n: Int, _ g: ConvGeometry, _ e: FusedEpilogue, threads: Int, scratch: FastScratch, coef: UnsafeMutablePointer<Float>,
    global: GlobalBatch?,
    _ conv: (_ out: UnsafeMutablePointer<Float>, _ preRelu: Bool,
             _ stats: (sum: UnsafeMutablePointer<Double>, sumsq: UnsafeMutablePointer<Double>)?) -> Void
) {
    let O = g.outChannels, P = g.outHeight * g.outWidth
    let preRelu = e.relu && e.batchnorm != .beforeRelu
    guard e.hasBatchnorm, let z = bnInput, let mean, let variance, let gamma, let beta else {
        conv(y, preRelu, nil)
        return
    }
    let sums = scratch.doubles[0] + 2 * O
    conv(z, preRelu, (sums, sums + O))
    normalizeWithBatchStatistics(y, z, mean, variance, gamma: gamma, beta: beta, sums: sums, coef: coef,
                                 n: n, channels: O, spatial: P, e, threads: threads, global: global)
}

/// The fast path of `fusedForward` (inference) for a conv anchor.
public func fastFusedConvForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
    runningMean: UnsafePointer<Float>?, runningVar: UnsafePointer<Float>?,
    n: Int, _ g: ConvGeometry, _ e: FusedEpilogue, threads: Int, scratch: FastScratch
) {
    withInferenceEpilogue(e, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
                          channels: g.outChannels,
                          coef: { scratch.floats[0] + coefficientOffset(g, maxChunk: scratch.maxChunk) }) { pre, scale, shift, post in
        fastConvForward(y, x, w, b, preRelu: pre, scale: scale, shift: shift, postRelu: post, stats: nil,
                        n: n, g, threads: threads, scratch: scratch)
    }
}

/// The fast path of `fusedTrainForward` for a conv anchor.
public func fastFusedConvTrainForward(
    _ y: UnsafeMutablePointer<Float>, _ bnInput: UnsafeMutablePointer<Float>?,
    _ mean: UnsafeMutablePointer<Float>?, _ variance: UnsafeMutablePointer<Float>?,
    _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
    n: Int, _ g: ConvGeometry, _ e: FusedEpilogue, threads: Int, scratch: FastScratch,
    global: GlobalBatch? = nil  // data parallelism: statistics over every shard
) {
    withTrainingEpilogue(y, bnInput, mean, variance, gamma: gamma, beta: beta, n: n, g, e, threads: threads,
                         scratch: scratch, coef: scratch.floats[0] + coefficientOffset(g, maxChunk: scratch.maxChunk),
                         global: global) { out, pre, stats in
        fastConvForward(out, x, w, b, preRelu: pre, scale: nil, shift: nil, postRelu: false, stats: stats,
                        n: n, g, threads: threads, scratch: scratch)
    }
}

/// coef[c] and coef[O + c]: the per-channel scale and shift of an inference batchnorm, exactly
/// as `fusedForward` computes them (in double, rounded once).
func inferenceBatchnormCoefficients(_ coef: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                    runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
                                    channels O: Int, epsilon: Float) {
    for c in 0..<O {
        let rstd = 1 / (Double(runningVar[c]) + Double(epsilon)).squareRoot()
        coef[c] = Float(rstd * Double(gamma[c]))
        coef[O + c] = Float(Double(beta[c]) - Double(runningMean[c]) * Double(coef[c]))
    }
}

/// The second half of a training forward with batchnorm, shared by the direct and Winograd
/// paths: from the per-channel sums and sums of squares of z (`sums`: O then O doubles), the
/// batch mean and biased variance, then y = gamma * (z - mean) / sqrt(variance + eps) + beta
/// (then relu when the batchnorm comes first), with the per-channel scale and shift in `coef`.
func normalizeWithBatchStatistics(
    _ y: UnsafeMutablePointer<Float>, _ z: UnsafeMutablePointer<Float>,
    _ mean: UnsafeMutablePointer<Float>, _ variance: UnsafeMutablePointer<Float>,
    gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, sums: UnsafePointer<Double>,
    coef: UnsafeMutablePointer<Float>, n: Int, channels O: Int, spatial P: Int, _ e: FusedEpilogue, threads: Int,
    global: GlobalBatch? = nil
) {
    // Under data parallelism the sums (O sums then O sums of squares) become the whole batch's.
    if let global { global.sum(UnsafeMutablePointer(mutating: sums), 2 * O) }
    let m = Double((global?.samples ?? n) * P)
    for c in 0..<O {
        let mu = sums[c] / m
        let v = max(sums[O + c] / m - mu * mu, 0)
        mean[c] = Float(mu)
        variance[c] = Float(v)
        let rstd = 1 / (v + Double(e.epsilon)).squareRoot()
        coef[c] = Float(rstd * Double(gamma[c]))
        coef[O + c] = beta[c] - Float(mu) * coef[c]
    }
    let postRelu: Int32 = e.relu && e.batchnorm == .beforeRelu ? 1 : 0
    let T = max(1, min(threads, n))
    parallelFor(T) { t in
        for s in splitRange(n, parts: T, t) {
            for c in 0..<O {
                let at = (s * O + c) * P
                fk_affine(y + at, z + at, P, coef[c], coef[O + c], postRelu)
            }
        }
    }
}

/// The fast path of `fusedTrainBackward` for a conv anchor; also the plain conv gradients
/// (an epilogue with nothing: dz = dy).
public func fastFusedConvTrainBackward(
    dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?,
    dgamma: UnsafeMutablePointer<Float>?, dbeta: UnsafeMutablePointer<Float>?,
    dy: UnsafePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>, y: UnsafePointer<Float>?,
    bnInput: UnsafePointer<Float>?, gamma: UnsafePointer<Float>?,
    mean: UnsafePointer<Float>?, variance: UnsafePointer<Float>?,
    n: Int, _ g: ConvGeometry, _ e: FusedEpilogue, threads: Int, scratch: FastScratch,
    gradInputFilters: UnsafePointer<Float>? = nil,  // winogradGradInputFilterTransform(w): dx by Winograd
    global: GlobalBatch? = nil,                     // data parallelism: batchnorm sums over every shard
    winogradWeightGrad: Bool = false,               // dw by Winograd (a Winograd geometry; scratch per
                                                    // fastConvWinogradBackwardScratch)
    bf16: BF16Backward? = nil                       // dx and/or dw in bf16 on AMX (BF16Conv.swift)
) {
    let O = g.outChannels, P = g.outHeight * g.outWidth, K = g.inChannels * g.kernelHeight * g.kernelWidth
    let xStride = g.inChannels * g.inHeight * g.inWidth
    let S = min(fastConvChunk(g), scratch.maxChunk), T = max(1, min(threads, n))
    let maskY = e.relu && e.batchnorm != .afterRelu ? y : nil
    let coef = scratch.floats[0] + coefficientOffset(g, maxChunk: scratch.maxChunk)  // A, B, C per channel
    let bn = e.hasBatchnorm ? bnInput : nil

    // Pass 1: the batchnorm gradient sums, per thread then in thread order.
    if e.hasBatchnorm, let bnInput, let mean, let variance, let gamma, let dgamma, let dbeta {
        parallelFor(T) { t in
            let sumG = scratch.doubles[t], sumGX = sumG + O
            sumG.update(repeating: 0, count: 2 * O)
            for s in splitRange(n, parts: T, t) {
                for c in 0..<O {
                    let at = (s * O + c) * P
                    fk_bn_grad_sums(dy + at, maskY.map { $0 + at }, bnInput + at, P, sumG + c, sumGX + c)
                }
            }
        }
        let m = Double((global?.samples ?? n) * P)
        // Under data parallelism: dgamma and dbeta are this shard's sums; the coefficients use
        // the sums over every shard (thread 0's doubles [0, 2O) hold them after the threads').
        if let global {
            let sums = scratch.doubles[0]
            for c in 0..<O {
                var sg = 0.0, sgx = 0.0
                for t in 0..<T { sg += scratch.doubles[t][c]; sgx += scratch.doubles[t][O + c] }
                let mu = Double(mean[c])
                let rstd = 1 / (Double(variance[c]) + Double(e.epsilon)).squareRoot()
                dgamma[c] = Float((sgx - mu * sg) * rstd)
                dbeta[c] = Float(sg)
                sums[c] = sg; sums[O + c] = sgx
            }
            for t in 1..<max(T, 1) { scratch.doubles[t].update(repeating: 0, count: 2 * O) }
            global.sum(sums, 2 * O)
        }
        for c in 0..<O {
            var sg = 0.0, sgx = 0.0
            for t in 0..<T { sg += scratch.doubles[t][c]; sgx += scratch.doubles[t][O + c] }
            let mu = Double(mean[c])
            let rstd = 1 / (Double(variance[c]) + Double(e.epsilon)).squareRoot()
            let sgxhat = (sgx - mu * sg) * rstd
            if global == nil {
                dgamma[c] = Float(sgxhat)
                dbeta[c] = Float(sg)
            }
            // dz = k*(m*g - sumG - xhat*sumGXhat), k = gamma*rstd/m, xhat = (x - mu)*rstd
            let k = Double(gamma[c]) * rstd / m
            coef[c] = Float(Double(gamma[c]) * rstd)
            coef[O + c] = Float(-k * sg + k * rstd * sgxhat * mu)
            coef[2 * O + c] = Float(-k * rstd * sgxhat)
        }
    }

    // Pass 2: chunks.
    let bfDW = bf16?.weightGrad == true && dw != nil && bf16ComputeAvailable
    let bfDWOffset = bf16WeightGradOffset(bf16?.flipped, samples: bf16?.samples ?? 1)
    let winoDW = !bfDW && winogradWeightGrad && dw != nil && isWinogradGeometry(g) && winogradWeightGradPays(g)
    let duOffset = coefficientOffset(g, maxChunk: scratch.maxChunk) + 3 * O  // the Winograd dU partial
    withSingleThreadedBLAS(T) {
        parallelFor(T) { t in
            let col = scratch.floats[t], dz = col + S * K * P, dwPart = dz + S * O * P
            let dwT = t == 0 ? dw : (dw == nil ? nil : dwPart)
            let du = scratch.floats[t] + duOffset
            let dbT = scratch.doubles[t] + 2 * O
            dbT.update(repeating: 0, count: O)
            let range = splitRange(n, parts: T, t)
            if range.isEmpty, let dwT { winoDW ? du.update(repeating: 0, count: 36 * O * g.inChannels) : dwT.update(repeating: 0, count: O * K) }
            var s0 = range.lowerBound
            while s0 < range.upperBound {
                let s1 = min(range.upperBound, s0 + S), ld = (s1 - s0) * P
                for c in 0..<O {
                    for s in s0..<s1 {
                        let at = (s * O + c) * P
                        dbT[c] += fk_preact_grad(dz + c * ld + (s - s0) * P, dy + at, maskY.map { $0 + at },
                                                 bn.map { $0 + at }, P, coef[c], coef[O + c], coef[2 * O + c],
                                                 e.batchnorm == .afterRelu ? 1 : 0)
                    }
                }
                if bfDW, let bf = bf16 {
                    precondition(s1 - s0 <= bf.samples, "bf16 weight gradient: a chunk of \(s1 - s0) > \(bf.samples) samples")
                    _ = bf16WeightGradChunk(x + s0 * xStride, dz, ld: ld, samples: s1 - s0, layoutSamples: bf.samples, g,
                                            scratch: bf.scratch[t] + bfDWOffset, accumulate: s0 != range.lowerBound)
                } else if winoDW {
                    winogradGradWeightChunk(du, accumulate: s0 != range.lowerBound, x + s0 * xStride, dz, samples: s1 - s0, g,
                                            work: du + 36 * O * g.inChannels)
                } else if let dwT {
                    im2colChunk(col, x, s0, s1, g)
                    Float.gemm(transA: false, transB: true, m: O, n: K, k: ld, alpha: 1, a: dz, lda: ld,
                               b: col, ldb: ld, beta: s0 == range.lowerBound ? 0 : 1, c: dwT, ldc: K)
                }
                if let dx, let bf = bf16, let flipped = bf.flipped, let w = bf.weights,
                   bf16GradInputChunk(dx + s0 * xStride, dz, ld: ld, samples: s1 - s0, g, flipped, w, scratch: bf.scratch[t]) {
                    // dx from dz on AMX (the chunk's grid and products in this thread's bf16 scratch).
                } else if let dx, let u = gradInputFilters, isWinogradGeometry(g),
                   winogradGradInputScratch(g, samples: s1 - s0) <= S * K * P {
                    // The im2col panel is free once dw has its product: Winograd's V and M go there.
                    winogradGradInputChunk(dx + s0 * xStride, dz, u, samples: s1 - s0, g, work: col)
                } else if let dx {
                    Float.gemm(transA: true, transB: false, m: K, n: ld, k: O, alpha: 1, a: w, lda: K,
                               b: dz, ldb: ld, beta: 0, c: col, ldc: ld)
                    (dx + s0 * xStride).update(repeating: 0, count: (s1 - s0) * xStride)
                    for s in s0..<s1 {
                        fk_col2im_add(dx + s * xStride, col + (s - s0) * P, ld, i32(g.inChannels), i32(g.inHeight),
                                      i32(g.inWidth), i32(g.kernelHeight), i32(g.kernelWidth), i32(g.stride),
                                      i32(g.padTop), i32(g.padLeft), i32(g.outHeight), i32(g.outWidth))
                    }
                }
                s0 = s1
            }
        }
    }
    if let dw, bfDW, let bf = bf16 {
        bf16WeightGradFold(dw, g, layoutSamples: bf.samples, scratch: bf.scratch, offset: bfDWOffset, threads: T)
    } else if let dw, winoDW {
        // dw = G^T dU G over the threads' partials (in thread order), output channels split.
        let parts: [UnsafePointer<Float>?] = (0..<T).map { UnsafePointer(scratch.floats[$0] + duOffset) }
        parts.withUnsafeBufferPointer { pp in
            let T2 = max(1, min(threads, O))
            parallelFor(T2) { t in
                let r = splitRange(O, parts: T2, t)
                fk_winograd_weight_fold(dw, pp.baseAddress, i32(T), i32(O), i32(g.inChannels), i32(r.lowerBound),
                                        i32(r.upperBound))
            }
        }
    } else if let dw {
        for t in 1..<max(T, 1) {
            let part = scratch.floats[t] + S * (K + O) * P
            for i in 0..<(O * K) { dw[i] += part[i] }
        }
    }
    if let db {
        for c in 0..<O {
            var sum = 0.0
            for t in 0..<T { sum += scratch.doubles[t][2 * O + c] }
            db[c] = Float(sum)
        }
    }
}
