// Fully connected layer: y[N, O] = x[N, I] * w[O, I]^T + b. The bias gradient is
// `biasBackward(db, dy, n:, channels: O, spatial: 1)` (Conv.swift).

/// y = x w^T + b.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func denseForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (N, O)
    _ x: UnsafePointer<T>,          // (N, I)
    _ w: UnsafePointer<T>,          // (O, I)
    _ b: UnsafePointer<T>?,         // (O) or nil
    n: Int, inFeatures: Int, outFeatures: Int, threads: Int = 1
) {
    if n == 1 {
        // One sample: a matrix-vector product, which OpenBLAS's gemm runs at a fraction of the
        // memory bandwidth (vgg_tuned's fc6 at batch 1: 0.97 ms as gemm, the weights are 9.4 MB).
        // With threads, each takes a range of output rows on the runtime's own workers (whose
        // wake-up is cheaper than OpenBLAS's, and which are already spinning between layers).
        let parts = outFeatures >= 64 ? max(1, threads) : 1
        withSingleThreadedBLAS(parts) {
            parallelFor(parts) { t in
                let r = splitRange(outFeatures, parts: parts, t)
                T.gemv(trans: false, m: r.count, n: inFeatures, alpha: 1, a: w + r.lowerBound * inFeatures,
                       lda: inFeatures, x: x, beta: 0, y: y + r.lowerBound)
            }
        }
    } else {
        // With threads, each takes a range of samples (OpenBLAS single-threaded inside): no
        // OpenBLAS threads left spinning against the runtime's workers after the call.
        let parts = max(1, min(threads, n))
        withSingleThreadedBLAS(parts) {
            parallelFor(parts) { t in
                let r = splitRange(n, parts: parts, t)
                T.gemm(transA: false, transB: true, m: r.count, n: outFeatures, k: inFeatures,
                       alpha: 1, a: x + r.lowerBound * inFeatures, lda: inFeatures, b: w, ldb: inFeatures, beta: 0,
                       c: y + r.lowerBound * outFeatures, ldc: outFeatures)
            }
        }
    }
    if let b {
        for s in 0..<n {
            let ys = y + s * outFeatures
            for o in 0..<outFeatures { ys[o] += b[o] }
        }
    }
}

/// dx = dy w.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func denseBackwardInput<T: BLASReal>(
    _ dx: UnsafeMutablePointer<T>,  // (N, I)
    _ dy: UnsafePointer<T>,         // (N, O)
    _ w: UnsafePointer<T>,          // (O, I)
    n: Int, inFeatures: Int, outFeatures: Int
) {
    T.gemm(transA: false, transB: false, m: n, n: inFeatures, k: outFeatures,
           alpha: 1, a: dy, lda: outFeatures, b: w, ldb: inFeatures, beta: 0, c: dx, ldc: inFeatures)
}

/// dw = dy^T x, summed over the batch.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func denseBackwardWeight<T: BLASReal>(
    _ dw: UnsafeMutablePointer<T>,  // (O, I)
    _ dy: UnsafePointer<T>,         // (N, O)
    _ x: UnsafePointer<T>,          // (N, I)
    n: Int, inFeatures: Int, outFeatures: Int
) {
    T.gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: n,
           alpha: 1, a: dy, lda: outFeatures, b: x, ldb: inFeatures, beta: 0, c: dw, ldc: inFeatures)
}
