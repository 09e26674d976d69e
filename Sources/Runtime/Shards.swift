// Data-parallel training hooks. When several processes each run the same training plan on one
// shard of a global batch, three things must see the whole batch rather than the shard: the
// batchnorm batch statistics (forward), the batchnorm gradient sums (backward), and the
// gradients themselves before the optimizer reads them. The runtime knows nothing about how
// values travel between processes (the Distributed target does that, over MPI): it calls an
// `ExecutorShards` object, when one is set, at those points.
//
// With a hook set, a batchnorm kernel computes its per-channel sums over the local samples,
// hands them to `sumOverShards` (which must replace them with the sums over every shard, the
// same values on every process), and divides by the global element count (`globalBatch` times
// the spatial size). The kernels keep dgamma and dbeta as the local contributions, so that the
// gradient sum over shards (done by the hook through `willRun`/`didRun`) counts them once.

/// What an executor running one shard of a global batch calls. See Shards.swift.
public protocol ExecutorShards: AnyObject {
    /// Samples of the whole batch this run is a shard of.
    var globalBatch: Int { get }
    /// The whole batch's index of this run's first sample (dropout masks are drawn by element
    /// index over the whole batch, so that a shard draws what one process would have).
    var firstSample: Int { get }
    /// Replaces each of `count` values with its sum over every shard of the batch (identical
    /// on every process, whatever the timing).
    func sumOverShards(_ values: UnsafeMutablePointer<Double>, count: Int)
    /// Called before step `step` runs; may throw to stop the run.
    func willRun(step: Int) throws
    /// Called after step `step` ran; may throw to stop the run.
    func didRun(step: Int) throws
}

/// The batch-wide view a batchnorm kernel needs under data parallelism: the sum over shards
/// and the global sample count. nil (the default everywhere) means the local batch is the batch.
public struct GlobalBatch {
    public var samples: Int
    public var sum: (UnsafeMutablePointer<Double>, Int) -> Void
    public init(samples: Int, sum: @escaping (UnsafeMutablePointer<Double>, Int) -> Void) {
        self.samples = samples
        self.sum = sum
    }
}

// MARK: - The sharded batchnorm kernels (BatchNorm.swift's formulas, sums over every shard)

/// `batchnormTrainForward` over a global batch: the mean from the summed per-channel sums, then
/// the biased variance from the summed squared deviations from that mean (the same two passes
/// as one process makes over the whole batch).
func shardedBatchnormTrainForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>, _ mean: UnsafeMutablePointer<T>, _ variance: UnsafeMutablePointer<T>,
    _ x: UnsafePointer<T>, _ gamma: UnsafePointer<T>, _ beta: UnsafePointer<T>,
    n: Int, channels: Int, spatial: Int, epsilon: T, _ global: GlobalBatch
) {
    let m = Double(global.samples * spatial)
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
        global.sum(sums, channels)
        for c in 0..<channels { mus[c] = sums[c] / m }
        for c in 0..<channels {
            var sq = 0.0
            for s in 0..<n {
                let row = x + (s * channels + c) * spatial
                for i in 0..<spatial { let d = Double(row[i]) - mus[c]; sq += d * d }
            }
            sums[c] = sq
        }
        global.sum(sums, channels)
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

/// `batchnormTrainBackward` over a global batch: dgamma and dbeta are this shard's
/// contributions (summed later with the other gradients); dx uses the sums over every shard.
func shardedBatchnormTrainBackward<T: BLASReal>(
    _ dx: UnsafeMutablePointer<T>, _ dgamma: UnsafeMutablePointer<T>, _ dbeta: UnsafeMutablePointer<T>,
    _ dy: UnsafePointer<T>, _ x: UnsafePointer<T>, _ gamma: UnsafePointer<T>,
    _ mean: UnsafePointer<T>, _ variance: UnsafePointer<T>,
    n: Int, channels: Int, spatial: Int, epsilon: T, _ global: GlobalBatch
) {
    let m = Double(global.samples * spatial)
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
        global.sum(sums, 2 * channels)
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
