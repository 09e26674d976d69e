// Softmax over the last axis of [N, K] and the softmax cross-entropy loss, numerically stable
// (the row maximum is subtracted before exponentiating). Labels are Int32 class indices; the
// kernels require every label in [0, K) — callers check with `firstInvalidLabel` first (the
// executor turns a bad label into a thrown error).

/// y[n, :] = softmax(x[n, :]).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func softmaxForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (N, K)
    _ x: UnsafePointer<T>,          // (N, K)
    n: Int, classes: Int
) {
    for s in 0..<n {
        let xr = x + s * classes, yr = y + s * classes
        var maxValue = xr[0]
        for k in 1..<max(classes, 1) where xr[k] > maxValue { maxValue = xr[k] }
        var sum = 0.0
        for k in 0..<classes { let e = T.exp(xr[k] - maxValue); yr[k] = e; sum += Double(e) }
        let inv = T(1 / sum)
        for k in 0..<classes { yr[k] *= inv }
    }
}

/// dx = y * (dy - sum(dy * y)) per row, y the softmax output.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func softmaxBackward<T: BLASReal>(
    _ dx: UnsafeMutablePointer<T>,  // (N, K)
    _ dy: UnsafePointer<T>,         // (N, K)
    _ y: UnsafePointer<T>,          // (N, K)
    n: Int, classes: Int
) {
    for s in 0..<n {
        let dyr = dy + s * classes, yr = y + s * classes, dxr = dx + s * classes
        var dot = 0.0
        for k in 0..<classes { dot += Double(dyr[k]) * Double(yr[k]) }
        let d = T(dot)
        for k in 0..<classes { dxr[k] = yr[k] * (dyr[k] - d) }
    }
}

/// The index of the first sample whose label is outside [0, classes), or nil.
public func firstInvalidLabel(_ labels: UnsafePointer<Int32>, n: Int, classes: Int) -> Int? {
    for s in 0..<n where labels[s] < 0 || Int(labels[s]) >= classes { return s }
    return nil
}

/// loss = mean over the batch of -sum_k q_k log softmax(logits[n, :])_k, accumulated in Double,
/// with q = (1 - smoothing) onehot(label) + smoothing / K: the plain cross-entropy
/// -log softmax(logits)[label] when smoothing is 0 (the default), label smoothing otherwise.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func softmaxCrossEntropyForward<T: BLASReal>(
    _ loss: UnsafeMutablePointer<T>, // (1)
    _ logits: UnsafePointer<T>,     // (N, K)
    _ labels: UnsafePointer<Int32>, // (N) in [0, K)
    n: Int, classes: Int, smoothing: Double = 0
) {
    precondition(firstInvalidLabel(labels, n: n, classes: classes) == nil, "label out of range")
    var total = 0.0
    for s in 0..<n {
        let xr = logits + s * classes
        // -sum_k q_k (x_k - lse) = lse - (1 - e) x_label - e/K sum_k x_k
        total += rowLogSumExp(xr, classes: classes) - (1 - smoothing) * Double(xr[Int(labels[s])])
        if smoothing != 0 {
            var sumLogits = 0.0
            for k in 0..<classes { sumLogits += Double(xr[k]) }
            total -= smoothing / Double(classes) * sumLogits
        }
    }
    loss[0] = T(total / Double(n))
}

/// log sum_k exp(x_k) of one row, stably: the maximum is subtracted inside the exponentials
/// (in T, as the softmax does) and added back outside, in Double.
@inline(__always)
func rowLogSumExp<T: BLASReal>(_ xr: UnsafePointer<T>, classes: Int) -> Double {
    var maxValue = Double(xr[0])
    for k in 0..<classes { maxValue = max(maxValue, Double(xr[k])) }
    var sum = 0.0
    for k in 0..<classes { sum += Double(T.exp(T(Double(xr[k]) - maxValue))) }
    return maxValue + Double(T.log(T(sum)))
}

/// dlogits = dloss / N * (softmax(logits) - q), q as in `softmaxCrossEntropyForward`
/// (onehot(label) when smoothing is 0).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func softmaxCrossEntropyBackward<T: BLASReal>(
    _ dlogits: UnsafeMutablePointer<T>, // (N, K)
    _ dloss: UnsafePointer<T>,      // (1)
    _ logits: UnsafePointer<T>,     // (N, K)
    _ labels: UnsafePointer<Int32>, // (N) in [0, K)
    n: Int, classes: Int, smoothing: Double = 0
) {
    precondition(firstInvalidLabel(labels, n: n, classes: classes) == nil, "label out of range")
    softmaxForward(dlogits, logits, n: n, classes: classes)
    let scale = Double(dloss[0]) / Double(n)
    let off = smoothing / Double(classes), on = 1 - smoothing + off
    for s in 0..<n {
        let row = dlogits + s * classes, label = Int(labels[s])
        for j in 0..<classes {
            row[j] = T((Double(row[j]) - (j == label ? on : off)) * scale)
        }
    }
}

/// loss = mean over the batch of -sum_k t[n, k] log softmax(logits[n, :])_k, accumulated in
/// Double: the cross-entropy against soft targets (mixup's; a row of t sums to 1 there, and
/// a one-hot row gives `softmaxCrossEntropyForward`'s loss).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func softTargetCrossEntropyForward<T: BLASReal>(
    _ loss: UnsafeMutablePointer<T>, // (1)
    _ logits: UnsafePointer<T>,     // (N, K)
    _ targets: UnsafePointer<T>,    // (N, K)
    n: Int, classes: Int
) {
    var total = 0.0
    for s in 0..<n {
        let xr = logits + s * classes, tr = targets + s * classes
        let logSumExp = rowLogSumExp(xr, classes: classes)
        // -sum_k t_k (x_k - lse) = lse sum_k t_k - sum_k t_k x_k
        var mass = 0.0, dot = 0.0
        for k in 0..<classes {
            mass += Double(tr[k])
            dot += Double(tr[k]) * Double(xr[k])
        }
        total += logSumExp * mass - dot
    }
    loss[0] = T(total / Double(n))
}

/// dlogits = dloss / N * (softmax(logits) sum_k t_k - t): the gradient of
/// `softTargetCrossEntropyForward` (softmax - t where the row of t sums to 1).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func softTargetCrossEntropyBackward<T: BLASReal>(
    _ dlogits: UnsafeMutablePointer<T>, // (N, K)
    _ dloss: UnsafePointer<T>,      // (1)
    _ logits: UnsafePointer<T>,     // (N, K)
    _ targets: UnsafePointer<T>,    // (N, K)
    n: Int, classes: Int
) {
    softmaxForward(dlogits, logits, n: n, classes: classes)
    let scale = Double(dloss[0]) / Double(n)
    for s in 0..<n {
        let row = dlogits + s * classes, tr = targets + s * classes
        var mass = 0.0
        for k in 0..<classes { mass += Double(tr[k]) }
        for j in 0..<classes {
            row[j] = T((Double(row[j]) * mass - Double(tr[j])) * scale)
        }
    }
}
