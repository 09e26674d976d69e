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
