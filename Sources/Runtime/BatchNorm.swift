// Batch normalization, per channel over the batch and spatial positions; tensors are seen as
// [N, C, spatial]. y = (x - mean) / sqrt(var + eps) * gamma + beta. Training uses the batch's
// statistics (biased variance) and saves them for the backward pass; inference uses the
// running statistics. Reductions accumulate in Double. (The running-statistics update is
// `batchnormStatsUpdate` in Updates.swift.)

/// Training forward: computes the batch statistics and normalizes with them. Under data
/// parallelism (`global`), the mean comes from the per-channel sums over every shard, then the
/// biased variance from the summed squared deviations from that mean: the same two passes one
/// process makes over the whole batch.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func batchnormTrainForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,       // (N, C, S)
    _ mean: UnsafeMutablePointer<T>,    // (C) batch mean
    _ variance: UnsafeMutablePointer<T>, // (C) batch variance, biased
    _ x: UnsafePointer<T>,              // (N, C, S)
    _ gamma: UnsafePointer<T>,          // (C)
    _ beta: UnsafePointer<T>,           // (C)
    n: Int, channels: Int, spatial: Int, epsilon: T, global: GlobalBatch? = nil
) {
    let m = Double((global?.samples ?? n) * spatial)
    withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * max(channels, 1)) { buffer in
        let sums = buffer.baseAddress!, mus = sums + channels
        for c in 0..<channels {
            var sum = 0.0
            for s in 0..<n {
                let row = x + (s * channels + c) * spatial
                for i in 0..<spatial { sum += Double(row[i]) }
            }
            sums[c] = sum
        }
        global?.sum(sums, channels)
        for c in 0..<channels { mus[c] = sums[c] / m }
        for c in 0..<channels {
            var sq = 0.0
            for s in 0..<n {
                let row = x + (s * channels + c) * spatial
                for i in 0..<spatial { let d = Double(row[i]) - mus[c]; sq += d * d }
            }
            sums[c] = sq
        }
        global?.sum(sums, channels)
        for c in 0..<channels {
            let mu = mus[c], v = sums[c] / m
            mean[c] = T(mu)
            variance[c] = T(v)
            let rstd = 1 / (v + Double(epsilon)).squareRoot()
            let scale = T(rstd * Double(gamma[c]))
            let shift = beta[c] - T(mu) * scale
            for s in 0..<n {
                let row = x + (s * channels + c) * spatial
                let out = y + (s * channels + c) * spatial
                for i in 0..<spatial { out[i] = row[i] * scale + shift }
            }
        }
    }
}

/// Inference forward with the running statistics. May run in place.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func batchnormInferenceForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,       // (N, C, S)
    _ x: UnsafePointer<T>,              // (N, C, S)
    _ gamma: UnsafePointer<T>,          // (C)
    _ beta: UnsafePointer<T>,           // (C)
    _ runningMean: UnsafePointer<T>,    // (C)
    _ runningVar: UnsafePointer<T>,     // (C)
    n: Int, channels: Int, spatial: Int, epsilon: T
) {
    for c in 0..<channels {
        let rstd = 1 / (Double(runningVar[c]) + Double(epsilon)).squareRoot()
        let scale = T(rstd * Double(gamma[c]))
        let shift = T(Double(beta[c]) - Double(runningMean[c]) * Double(scale))
        for s in 0..<n {
            let row = x + (s * channels + c) * spatial
            let out = y + (s * channels + c) * spatial
            for i in 0..<spatial { out[i] = row[i] * scale + shift }
        }
    }
}

/// Training backward, the standard formula with xhat = (x - mean) * rstd, m = N*S:
///   dbeta = sum dy, dgamma = sum dy * xhat,
///   dx = gamma * rstd / m * (m * dy - dbeta - xhat * dgamma).
/// Under data parallelism (`global`), dgamma and dbeta are this shard's contributions (summed
/// later with the other gradients) and dx uses the sums over every shard, with m the global N*S.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func batchnormTrainBackward<T: BLASReal>(
    _ dx: UnsafeMutablePointer<T>,      // (N, C, S)
    _ dgamma: UnsafeMutablePointer<T>,  // (C)
    _ dbeta: UnsafeMutablePointer<T>,   // (C)
    _ dy: UnsafePointer<T>,             // (N, C, S)
    _ x: UnsafePointer<T>,              // (N, C, S)
    _ gamma: UnsafePointer<T>,          // (C)
    _ mean: UnsafePointer<T>,           // (C) batch mean from the forward pass
    _ variance: UnsafePointer<T>,       // (C) batch variance (biased) from the forward pass
    n: Int, channels: Int, spatial: Int, epsilon: T, global: GlobalBatch? = nil
) {
    let m = Double((global?.samples ?? n) * spatial)
    withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * max(channels, 1)) { buffer in
        let sums = buffer.baseAddress!
        for c in 0..<channels {
            let mu = Double(mean[c])
            let rstd = 1 / (Double(variance[c]) + Double(epsilon)).squareRoot()
            var sumDy = 0.0, sumDyXhat = 0.0
            for s in 0..<n {
                let dyr = dy + (s * channels + c) * spatial
                let xr = x + (s * channels + c) * spatial
                for i in 0..<spatial {
                    let d = Double(dyr[i])
                    sumDy += d
                    sumDyXhat += d * (Double(xr[i]) - mu) * rstd
                }
            }
            dgamma[c] = T(sumDyXhat)
            dbeta[c] = T(sumDy)
            sums[c] = sumDy
            sums[channels + c] = sumDyXhat
        }
        global?.sum(sums, 2 * channels)
        for c in 0..<channels {
            let mu = Double(mean[c])
            let rstd = 1 / (Double(variance[c]) + Double(epsilon)).squareRoot()
            let sumDy = sums[c], sumDyXhat = sums[channels + c]
            let k = Double(gamma[c]) * rstd / m
            for s in 0..<n {
                let dyr = dy + (s * channels + c) * spatial
                let xr = x + (s * channels + c) * spatial
                let dxr = dx + (s * channels + c) * spatial
                for i in 0..<spatial {
                    let xhat = (Double(xr[i]) - mu) * rstd
                    dxr[i] = T(k * (m * Double(dyr[i]) - sumDy - xhat * sumDyXhat))
                }
            }
        }
    }
}

/// Inference backward with respect to x only: dx = dy * gamma / sqrt(running_var + eps).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func batchnormInferenceBackward<T: BLASReal>(
    _ dx: UnsafeMutablePointer<T>,      // (N, C, S)
    _ dy: UnsafePointer<T>,             // (N, C, S)
    _ gamma: UnsafePointer<T>,          // (C)
    _ runningVar: UnsafePointer<T>,     // (C)
    n: Int, channels: Int, spatial: Int, epsilon: T
) {
    for c in 0..<channels {
        let scale = T(Double(gamma[c]) / (Double(runningVar[c]) + Double(epsilon)).squareRoot())
        for s in 0..<n {
            let dyr = dy + (s * channels + c) * spatial
            let dxr = dx + (s * channels + c) * spatial
            for i in 0..<spatial { dxr[i] = dyr[i] * scale }
        }
    }
}
