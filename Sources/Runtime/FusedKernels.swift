// Fused conv2d/dense + bias + relu + batchnorm kernels (the `fused*` kernels of Plan.swift),
// llm.c style: the inference forward, the training forward and the training backward as
// adjacent free functions, outputs first, `d` prefix for gradients.
//
// Correctness first (a later issue makes them fast):
//   - `fusedForward` runs the anchor (conv2d or dense, with its bias) into y, then applies relu
//     and the batchnorm — a per-channel scale and shift from the running statistics, computed
//     in Double — in one pass over y.
//   - `fusedTrainForward` runs the existing kernels in order (anchor, relu, batch-statistics
//     batchnorm), writing the batchnorm's input to `bnInput` for the backward.
//   - `fusedTrainBackward` first reduces the batchnorm sums per channel over the batch, then
//     walks the batch one sample (conv) or one chunk of `fusedDenseChunk` samples (dense) at a
//     time: it forms the pre-activation gradient dz of that sample in the workspace (relu mask
//     and batchnorm backward in one pass) and feeds it to the bias, weight and input gradients.
//     So dz never needs a batch-sized buffer: the scratch is `fusedTrainBackwardWorkspace`.
// Every formula and summation order is the one the unfused kernels use (BatchNorm.swift,
// Activations.swift, Conv.swift, Dense.swift), so fused and unfused agree to rounding in Double.

extension FusedAnchor {
    /// Channels of the anchor's output (O).
    public var outputChannels: Int {
        switch self {
        case .conv2d(let g): return g.outChannels
        case .dense(_, let o): return o
        }
    }
    /// Positions per channel of the anchor's output, per sample (OH*OW, or 1 for dense).
    public var outputSpatial: Int {
        switch self {
        case .conv2d(let g): return g.outHeight * g.outWidth
        case .dense: return 1
        }
    }
    /// Elements of one sample of x.
    public var inputCount: Int {
        switch self {
        case .conv2d(let g): return g.inChannels * g.inHeight * g.inWidth
        case .dense(let i, _): return i
        }
    }
    /// Elements of w.
    public var weightCount: Int {
        switch self {
        case .conv2d(let g): return g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth
        case .dense(let i, let o): return o * i
        }
    }
}

/// Samples per chunk in the dense backward.
public let fusedDenseChunk = 64

/// Scratch elements of the forward kernels: the convolution's im2col matrix.
public func fusedForwardWorkspace(_ a: FusedAnchor) -> Int {
    switch a {
    case .conv2d(let g): return im2colCount(g)
    case .dense: return 0
    }
}

/// Scratch elements of the backward: im2col plus one sample's dz (conv), or one chunk's dz (dense).
public func fusedTrainBackwardWorkspace(_ a: FusedAnchor) -> Int {
    switch a {
    case .conv2d(let g): return im2colCount(g) + g.outChannels * g.outHeight * g.outWidth
    case .dense(_, let o): return fusedDenseChunk * o
    }
}

/// Positions of the optional inputs and outputs of a `fusedTrainGrad` step:
/// inputs (dy, x, w, y?, bn_input?, gamma?, batch_mean?, batch_var?),
/// outputs (dx?, dw?, db?, dgamma?, dbeta?).
public struct FusedGradSlots: Sendable, Equatable {
    public var y: Int?, bnInput: Int?, gamma: Int?, mean: Int?, variance: Int?
    public var inputCount: Int
    public var dx: Int?, dw: Int?, db: Int?, dgamma: Int?, dbeta: Int?
    public var outputCount: Int

    public init(_ e: FusedEpilogue, inputGrad: Bool, weightGrad: Bool) {
        var k = 3
        func take(_ present: Bool) -> Int? {
            guard present else { return nil }
            defer { k += 1 }
            return k
        }
        y = take(e.backwardReadsOutput)
        bnInput = take(e.hasBatchnorm); gamma = take(e.hasBatchnorm)
        mean = take(e.hasBatchnorm); variance = take(e.hasBatchnorm)
        inputCount = k
        k = 0
        dx = take(inputGrad)
        dw = take(weightGrad); db = take(weightGrad && e.bias)
        dgamma = take(e.hasBatchnorm); dbeta = take(e.hasBatchnorm)
        outputCount = k
    }
}

/// y = anchor(x, w) + b.
@inline(__always)
private func anchorForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>, _ x: UnsafePointer<T>, _ w: UnsafePointer<T>, _ b: UnsafePointer<T>?,
    n: Int, _ a: FusedAnchor, workspace: UnsafeMutablePointer<T>?, threads: Int = 1
) {
    switch a {
    case .conv2d(let g): conv2dForward(y, x, w, b, n: n, g, workspace: workspace)
    case .dense(let i, let o): denseForward(y, x, w, b, n: n, inFeatures: i, outFeatures: o, threads: threads)
    }
}

/// Inference: y = epilogue(anchor(x, w) + b), the batchnorm with the running statistics.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func fusedForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,       // (N, O, OH, OW) or (N, O)
    _ x: UnsafePointer<T>,              // (N, C, H, W) or (N, I)
    _ w: UnsafePointer<T>,              // (O, C, KH, KW) or (O, I)
    _ b: UnsafePointer<T>?,             // (O) or nil
    gamma: UnsafePointer<T>?,           // (O) — the four batchnorm vectors: all or none
    beta: UnsafePointer<T>?,            // (O)
    runningMean: UnsafePointer<T>?,     // (O)
    runningVar: UnsafePointer<T>?,      // (O)
    n: Int, _ a: FusedAnchor, _ e: FusedEpilogue,
    workspace: UnsafeMutablePointer<T>? = nil,  // fusedForwardWorkspace(a)
    threads: Int = 1                            // for a batch-1 dense anchor (denseForward)
) {
    anchorForward(y, x, w, b, n: n, a, workspace: workspace, threads: threads)
    let channels = a.outputChannels, spatial = a.outputSpatial
    for c in 0..<channels {
        // The scale and shift exactly as batchnormInferenceForward computes them.
        var scale: T = 1, shift: T = 0
        if e.hasBatchnorm, let gamma, let beta, let runningMean, let runningVar {
            let rstd = 1 / (Double(runningVar[c]) + Double(T(e.epsilon))).squareRoot()
            scale = T(rstd * Double(gamma[c]))
            shift = T(Double(beta[c]) - Double(runningMean[c]) * Double(scale))
        }
        for s in 0..<n {
            let row = y + (s * channels + c) * spatial
            switch e.batchnorm {
            case .none:
                if e.relu { for i in 0..<spatial { row[i] = row[i] > 0 ? row[i] : 0 } }
            case .beforeRelu:
                for i in 0..<spatial {
                    let v = row[i] * scale + shift
                    row[i] = e.relu && !(v > 0) ? 0 : v
                }
            case .afterRelu:
                for i in 0..<spatial {
                    let r = row[i] > 0 ? row[i] : 0
                    row[i] = r * scale + shift
                }
            }
        }
    }
}

/// Training forward with batch statistics. Without a batchnorm, `bnInput`, `mean` and
/// `variance` are nil and y = relu(anchor(x, w) + b).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func fusedTrainForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,           // (N, O, spatial)
    _ bnInput: UnsafeMutablePointer<T>?,    // (N, O, spatial) what the batchnorm normalized
    _ mean: UnsafeMutablePointer<T>?,       // (O) batch mean
    _ variance: UnsafeMutablePointer<T>?,   // (O) batch variance, biased
    _ x: UnsafePointer<T>,                  // (N, C, H, W) or (N, I)
    _ w: UnsafePointer<T>,                  // (O, C, KH, KW) or (O, I)
    _ b: UnsafePointer<T>?,                 // (O) or nil
    gamma: UnsafePointer<T>?,               // (O)
    beta: UnsafePointer<T>?,                // (O)
    n: Int, _ a: FusedAnchor, _ e: FusedEpilogue,
    workspace: UnsafeMutablePointer<T>? = nil,  // fusedForwardWorkspace(a)
    global: GlobalBatch? = nil,                 // data parallelism: statistics over every shard
    anchorComputed: Bool = false                // anchor(x, w) + b is already in bnInput (with a batchnorm) or y
) {
    let channels = a.outputChannels, spatial = a.outputSpatial
    let count = n * channels * spatial
    guard e.hasBatchnorm, let z = bnInput, let mean, let variance, let gamma, let beta else {
        if !anchorComputed { anchorForward(y, x, w, b, n: n, a, workspace: workspace) }
        if e.relu { reluForward(y, UnsafePointer(y), count: count) }
        return
    }
    if !anchorComputed { anchorForward(z, x, w, b, n: n, a, workspace: workspace) }
    if e.batchnorm == .afterRelu { reluForward(z, UnsafePointer(z), count: count) }
    batchnormTrainForward(y, mean, variance, UnsafePointer(z), gamma, beta,
                          n: n, channels: channels, spatial: spatial, epsilon: T(e.epsilon), global: global)
    if e.batchnorm == .beforeRelu && e.relu { reluForward(y, UnsafePointer(y), count: count) }
}

/// Training backward of `fusedTrainForward`. Gradients not asked for are nil; dgamma and dbeta
/// are required with a batchnorm (they also carry the per-channel sums to the second pass).
/// With `gradientOut`, dx and dw are not computed: the anchor's output gradient (what they
/// would be computed from) goes there for the whole batch, with db, dgamma and dbeta as usual.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func fusedTrainBackward<T: BLASReal>(
    dx: UnsafeMutablePointer<T>?,       // (N, C, H, W) or (N, I)
    dw: UnsafeMutablePointer<T>?,       // (O, C, KH, KW) or (O, I)
    db: UnsafeMutablePointer<T>?,       // (O)
    dgamma: UnsafeMutablePointer<T>?,   // (O)
    dbeta: UnsafeMutablePointer<T>?,    // (O)
    dy: UnsafePointer<T>,               // (N, O, spatial)
    x: UnsafePointer<T>,                // (N, C, H, W) or (N, I)
    w: UnsafePointer<T>,                // (O, C, KH, KW) or (O, I)
    y: UnsafePointer<T>?,               // (N, O, spatial) when e.backwardReadsOutput
    bnInput: UnsafePointer<T>?,         // (N, O, spatial) with a batchnorm
    gamma: UnsafePointer<T>?,           // (O)
    mean: UnsafePointer<T>?,            // (O) batch mean from the forward
    variance: UnsafePointer<T>?,        // (O) batch variance (biased) from the forward
    n: Int, _ a: FusedAnchor, _ e: FusedEpilogue,
    workspace: UnsafeMutablePointer<T>? = nil,  // fusedTrainBackwardWorkspace(a)
    global: GlobalBatch? = nil,                 // data parallelism: sums over every shard
    gradientOut: UnsafeMutablePointer<T>? = nil // the anchor's output gradient (N, O, spatial) instead of dx and dw
) {
    let channels = a.outputChannels, spatial = a.outputSpatial
    let m = Double((global?.samples ?? n) * spatial)
    // Under data parallelism, dgamma and dbeta keep this shard's sums; dz uses these, summed
    // over every shard.
    var globalSums: [Double]? = nil
    let eps = Double(T(e.epsilon))
    let maskBefore = e.relu && e.batchnorm != .afterRelu  // relu applied last: mask from y

    // Pass 1: per channel, dbeta = sum g and dgamma = sum g * xhat, g the gradient at the
    // batchnorm's output (dy through the relu mask when relu comes last).
    if e.hasBatchnorm, let bnInput, let mean, let variance, let dgamma, let dbeta {
        for c in 0..<channels {
            let mu = Double(mean[c])
            let rstd = 1 / (Double(variance[c]) + eps).squareRoot()
            var sumG = 0.0, sumGXhat = 0.0
            for s in 0..<n {
                let base = (s * channels + c) * spatial
                for i in 0..<spatial {
                    var g = dy[base + i]
                    if maskBefore, let y { g = y[base + i] > 0 ? g : 0 }
                    let d = Double(g)
                    sumG += d
                    sumGXhat += d * (Double(bnInput[base + i]) - mu) * rstd
                }
            }
            dgamma[c] = T(sumGXhat)
            dbeta[c] = T(sumG)
        }
        if let global {
            var sums = (0..<channels).map { Double(dbeta[$0]) } + (0..<channels).map { Double(dgamma[$0]) }
            sums.withUnsafeMutableBufferPointer { global.sum($0.baseAddress!, 2 * channels) }
            globalSums = sums
        }
    }

    /// dz for samples [s0, s1) into `out`, laid out (sample, channel, spatial) from s0.
    func preactivationGradient(_ out: UnsafeMutablePointer<T>, _ s0: Int, _ s1: Int) {
        for c in 0..<channels {
            var mu = 0.0, rstd = 0.0, k = 0.0, sumG = 0.0, sumGXhat = 0.0
            if e.hasBatchnorm, let mean, let variance, let gamma, let dgamma, let dbeta {
                mu = Double(mean[c])
                rstd = 1 / (Double(variance[c]) + eps).squareRoot()
                k = Double(gamma[c]) * rstd / m
                sumG = Double(dbeta[c]); sumGXhat = Double(dgamma[c])
                if let globalSums { sumG = Double(T(globalSums[c])); sumGXhat = Double(T(globalSums[channels + c])) }
            }
            for s in s0..<s1 {
                let base = (s * channels + c) * spatial
                let dz = out + ((s - s0) * channels + c) * spatial
                for i in 0..<spatial {
                    var g = dy[base + i]
                    if maskBefore, let y { g = y[base + i] > 0 ? g : 0 }
                    if e.hasBatchnorm, let bnInput {
                        let xhat = (Double(bnInput[base + i]) - mu) * rstd
                        g = T(k * (m * Double(g) - sumG - xhat * sumGXhat))
                        if e.batchnorm == .afterRelu { g = bnInput[base + i] > 0 ? g : 0 }
                    }
                    dz[i] = g
                }
            }
        }
    }

    /// db += sum of dz over samples [s0, s1), continuing one Double sum per channel.
    func accumulateBias(_ db: UnsafeMutablePointer<T>, _ dz: UnsafePointer<T>, _ s0: Int, _ s1: Int) {
        for c in 0..<channels {
            var sum = s0 == 0 ? 0.0 : Double(db[c])
            for s in 0..<(s1 - s0) {
                let row = dz + (s * channels + c) * spatial
                for i in 0..<spatial { sum += Double(row[i]) }
            }
            db[c] = T(sum)
        }
    }

    if let gradientOut {
        // The caller computes dx and dw from it (the bf16 path of a dense layer).
        preactivationGradient(gradientOut, 0, n)
        if let db { accumulateBias(db, gradientOut, 0, n) }
        return
    }
    withWorkspace(workspace, count: fusedTrainBackwardWorkspace(a)) { ws in
        switch a {
        case .conv2d(let g):
            let P = g.outHeight * g.outWidth
            let K = g.inChannels * g.kernelHeight * g.kernelWidth
            let xStride = g.inChannels * g.inHeight * g.inWidth
            let col = ws, dz = ws + im2colCount(g)  // (K, P), (O, P)
            dx?.update(repeating: 0, count: n * xStride)
            dw?.update(repeating: 0, count: g.outChannels * K)
            for s in 0..<n {
                preactivationGradient(dz, s, s + 1)
                if let db { accumulateBias(db, dz, s, s + 1) }
                if let dw {
                    im2col(col, x + s * xStride, g)
                    T.gemm(transA: false, transB: true, m: g.outChannels, n: K, k: P,
                           alpha: 1, a: dz, lda: P, b: col, ldb: P, beta: 1, c: dw, ldc: K)
                }
                if let dx {
                    T.gemm(transA: true, transB: false, m: K, n: P, k: g.outChannels,
                           alpha: 1, a: w, lda: K, b: dz, ldb: P, beta: 0, c: col, ldc: P)
                    col2imAccumulate(dx + s * xStride, col, g)
                }
            }
        case .dense(let inF, let outF):
            let dz = ws  // (chunk, O)
            var s0 = 0
            while s0 < n {
                let s1 = min(n, s0 + fusedDenseChunk)
                preactivationGradient(dz, s0, s1)
                if let db { accumulateBias(db, dz, s0, s1) }
                if let dw {
                    T.gemm(transA: true, transB: false, m: outF, n: inF, k: s1 - s0,
                           alpha: 1, a: dz, lda: outF, b: x + s0 * inF, ldb: inF,
                           beta: s0 == 0 ? 0 : 1, c: dw, ldc: inF)
                }
                if let dx {
                    T.gemm(transA: false, transB: false, m: s1 - s0, n: inF, k: outF,
                           alpha: 1, a: dz, lda: outF, b: w, ldb: inF, beta: 0, c: dx + s0 * inF, ldc: inF)
                }
                s0 = s1
            }
        }
    }
}
