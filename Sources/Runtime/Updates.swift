// Update kernels: they write parameters and state in place (Keras semantics throughout).
import Glibc

/// Keras' SGD. With momentum: v = momentum*v - lr*g, then p += v, or with Nesterov
/// p += momentum*v - lr*g (with the new v). With momentum 0: p -= lr*g (v untouched).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func sgdUpdate<T: BLASReal>(
    _ p: UnsafeMutablePointer<T>,   // (count) parameter
    _ v: UnsafeMutablePointer<T>,   // (count) velocity
    _ g: UnsafePointer<T>,          // (count) gradient
    count: Int, lr: T, momentum: T, nesterov: Bool
) {
    if momentum == 0 {
        for i in 0..<count { p[i] -= lr * g[i] }
        return
    }
    for i in 0..<count {
        let vi = momentum * v[i] - lr * g[i]
        v[i] = vi
        p[i] += nesterov ? momentum * vi - lr * g[i] : vi
    }
}

/// Keras' Adam step number t (= iterations + 1): lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t),
/// computed in Double.
public func adamLearningRate(lr: Double, t: Double, beta1: Double, beta2: Double) -> Double {
    lr * (1 - Glibc.pow(beta2, t)).squareRoot() / (1 - Glibc.pow(beta1, t))
}

/// Keras' Adam: m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2, p -= lr_t * m / (sqrt(v) + eps),
/// lr_t from `adamLearningRate` with t = iterations + 1.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func adamUpdate<T: BLASReal>(
    _ p: UnsafeMutablePointer<T>,   // (count) parameter
    _ m: UnsafeMutablePointer<T>,   // (count) first moment
    _ v: UnsafeMutablePointer<T>,   // (count) second moment
    _ g: UnsafePointer<T>,          // (count) gradient
    count: Int, lr: Double, t: Double, beta1: T, beta2: T, epsilon: T,
    threads: Int = 1   // elementwise: any split of the range gives the same bits
) {
    let lrT = T(adamLearningRate(lr: lr, t: t, beta1: Double(beta1), beta2: Double(beta2)))
    let oneMinusB1 = 1 - beta1, oneMinusB2 = 1 - beta2
    let parts = count >= 1 << 16 ? max(1, threads) : 1
    parallelFor(parts) { part in
        for i in splitRange(count, parts: parts, part) {
            let gi = g[i]
            let mi = beta1 * m[i] + oneMinusB1 * gi
            let vi = beta2 * v[i] + oneMinusB2 * gi * gi
            m[i] = mi
            v[i] = vi
            p[i] -= lrT * mi / (vi.squareRoot() + epsilon)
        }
    }
}

/// The weight average's step (the trainer's EMA): a = d * a + (1 - d) * w, elementwise, so any
/// split of the range over threads gives the same bits.
public func averageUpdate(_ a: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, count: Int, decay d: Float, threads: Int = 1) {
    let e = 1 - d
    let parts = count >= 1 << 16 ? max(1, threads) : 1
    parallelFor(parts) { part in
        for i in splitRange(count, parts: parts, part) { a[i] = d * a[i] + e * w[i] }
    }
}

/// Max-norm constraint: w *= clip(norm, 0, maxValue) / (1e-7 + norm), with norms (Double)
///   .keras, conv [O, C, KH, KW]: over KH for each (O, C, KW) — Keras' MaxNorm(axis=0) on its
///                                (kh, kw, in, out) kernel;
///   .keras, dense [O, I]:        over I for each O — MaxNorm(axis=0) on (in, out);
///   .perFilter, [O, ...]:        over everything but O.
/// `shape` must be rank 2 or 4 for `.keras`, rank >= 1 for `.perFilter`.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func maxNormProject<T: BLASReal>(
    _ w: UnsafeMutablePointer<T>,   // shape: (O, C, KH, KW) or (O, I)
    shape: [Int], maxValue: Double, mode: MaxNormMode,
    threads: Int = 1   // each norm on one thread: any split gives the same bits
) {
    // Seen as [outer, length, inner]: one norm over the middle axis per (outer, inner).
    let outer: Int, inner: Int, length: Int
    if mode == .keras && shape.count == 4 {
        outer = shape[0] * shape[1]; length = shape[2]; inner = shape[3]  // (O*C) x KH x KW
    } else {
        outer = shape[0]; length = shape.dropFirst().reduce(1, *); inner = 1  // O x rest
    }
    // Norms of contiguous values (inner == 1: dense rows, per-filter) in `sumOfSquares`' eight
    // lanes; strided ones (Keras' conv norms over KH, a few values each) in order.
    let parts = outer * length * inner >= 1 << 16 ? max(1, min(threads, outer)) : 1
    parallelFor(parts) { part in
        for a in splitRange(outer, parts: parts, part) {
            for b in 0..<inner {
                let base = w + a * length * inner + b
                var sq = 0.0
                if inner == 1 {
                    sq = sumOfSquares(UnsafePointer(base), count: length)
                } else {
                    for k in 0..<length { let v = Double(base[k * inner]); sq += v * v }
                }
                let norm = sq.squareRoot()
                let factor = T(min(max(norm, 0), maxValue) / (1e-7 + norm))
                for k in 0..<length { base[k * inner] *= factor }
            }
        }
    }
}

/// Running statistics: r = momentum*r + (1-momentum)*batch, the batch variance made unbiased
/// (times m/(m-1), m = N*spatial elements per channel; left biased when m == 1).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func batchnormStatsUpdate<T: BLASReal>(
    _ runningMean: UnsafeMutablePointer<T>, // (C)
    _ runningVar: UnsafeMutablePointer<T>,  // (C)
    _ batchMean: UnsafePointer<T>,          // (C)
    _ batchVar: UnsafePointer<T>,           // (C) biased
    channels: Int, elementsPerChannel m: Int, momentum: T
) {
    let correction = m > 1 ? T(Double(m) / Double(m - 1)) : 1
    for c in 0..<channels {
        runningMean[c] = momentum * runningMean[c] + (1 - momentum) * batchMean[c]
        runningVar[c] = momentum * runningVar[c] + (1 - momentum) * batchVar[c] * correction
    }
}
