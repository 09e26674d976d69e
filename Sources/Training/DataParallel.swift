// Data-parallel training, seen from the trainer: the interface a process group implements
// (the Distributed target does, over MPI; Training itself stays free of any transport), and the
// sharded training step.
//
// Every rank runs the same training plan on its shard of each global batch: the batch is filled
// as one process would fill it (the same images, augmentation draws and dropout masks), rank r
// runs the samples `shardRange(count, rank, size)`. Through the executor's `ExecutorShards`
// hook (which the group installs) the batchnorm statistics and gradient sums cover the whole
// batch, the loss gradient is seeded with the rank's share (its samples over the batch's) and
// the gradients are summed over the ranks before the optimizer reads them, so every rank applies
// the update one process would apply to the global batch and the weights stay identical.
// Rank 0 alone writes checkpoints, the event log and the report.

import Passes
import Runtime

/// A group of processes training one model together (see DataParallel.swift).
public protocol DataParallelGroup: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// What the group is, for the log (e.g. "MPI (Open MPI v4.1.4)").
    var transport: String { get }
    /// Installs the exchange on the executor of the training step: `lossGradient` is the buffer
    /// of the loss gradient's seed (a constant 1 that the group scales to the rank's share).
    func attach(to executor: Executor<Float>, lossGradient: Int) throws
    /// The shard of the next run: the whole batch has `globalBatch` samples, this rank runs
    /// the samples `range`.
    func setShard(globalBatch: Int, range: Range<Int>)
    /// The element-wise sums of `values` over every rank (the same on all of them).
    func sum(_ values: [Double]) throws -> [Double]
    /// Waits until every rank gets here, with a deadline long enough for the ranks to differ
    /// by the work outside steps (loading and compiling, validation, rank 0's checkpoints),
    /// so that the steps' own deadline can stay short. `what` names the place for errors.
    func synchronize(_ what: String) throws
    /// Bytes each rank contributes to the sums of one training step once attached: the
    /// gradients, and the batchnorm statistics with the loss and accuracy.
    var gradientBytesPerStep: Int { get }
    var statisticsBytesPerStep: Int { get }
}

/// Rank `rank`'s samples of a batch of `count` over `size` ranks: contiguous, in rank order,
/// sizes differing by at most one.
public func shardRange(_ count: Int, rank: Int, size: Int) -> Range<Int> {
    (count * rank / size)..<(count * (rank + 1) / size)
}

extension Trainer {
    /// Whether this process writes the run's files (rank 0, or the only process).
    var isWriter: Bool { (options.group?.rank ?? 0) == 0 }

    /// Checks that a group can split every batch and installs its exchange on the step.
    func attachGroup(_ group: DataParallelGroup) throws {
        let last = trainSet.count % options.batchSize
        let smallest = last == 0 || trainSet.count < options.batchSize ? min(options.batchSize, trainSet.count) : last
        guard smallest >= group.size else {
            throw TrainError("a batch of \(smallest) images (\(smallest == last ? "the last of each epoch" : "batch \(options.batchSize)")) cannot be split over \(group.size) ranks: use fewer ranks or another batch size")
        }
        guard let seed = step.buffer(named: "grad." + stepLoss) else {
            throw TrainError("internal: the training plan has no loss-gradient seed 'grad.\(stepLoss)' to scale by each rank's share")
        }
        try group.attach(to: stepExecutor, lossGradient: seed)
    }

    /// The per-rank share of a global batch, for the log: the samples of each rank.
    func shareDescription(_ group: DataParallelGroup) -> [Int] {
        (0..<group.size).map { shardRange(options.batchSize, rank: $0, size: group.size).count }
    }

    /// `trainStep` on this rank's shard: returns the loss and correct count of the whole batch.
    func shardedTrainStep(_ batch: inout Batch, indices: ArraySlice<Int>, epoch: Int, iteration: Int, rate: Double,
                          _ b: StepBuffers, group: DataParallelGroup) throws -> (loss: Double, correct: Int) {
        // The whole batch, as one process fills it (augmentation draws are by position in it).
        fillTrainingBatch(&batch, indices: indices, epoch: epoch, classes: b.classes)
        let r = shardRange(indices.count, rank: group.rank, size: group.size)
        let pixels = training.augmentation.outputSide * training.augmentation.outputSide
        stepExecutor.setBuffer(b.x, Array(batch.x[(r.lowerBound * pixels)..<(r.upperBound * pixels)]))
        if let labels = b.labels { stepExecutor.setBuffer(labels, ints: Array(batch.labels[r])) }
        if let targets = b.targets {
            stepExecutor.setBuffer(targets, Array(batch.targets[(r.lowerBound * b.classes)..<(r.upperBound * b.classes)]))
        }
        stepExecutor.setBuffer(b.learningRate, [Float(rate)])
        stepExecutor.seed = options.seed
        stepExecutor.runCounter = UInt64(iteration)
        group.setShard(globalBatch: indices.count, range: r)
        try stepExecutor.run(batch: r.count)
        let logits = stepExecutor.buffer(b.logits)
        var correct = 0
        for k in 0..<r.count where argmax(logits, offset: k * b.classes, count: b.classes) == Int(batch.scored[r.lowerBound + k]) {
            correct += 1
        }
        // The step's loss is this shard's mean (plus the regularizers); the batch's is the
        // share-weighted sum.
        let share = Double(r.count) / Double(indices.count)
        let sums = try group.sum([Double(stepExecutor.buffer(b.loss)[0]) * share, Double(correct)])
        return (sums[0], Int(sums[1].rounded()))
    }
}

extension Trainer {
    /// Meets the other ranks after an epoch and checks that every rank holds the same weights,
    /// batchnorm statistics and optimizer state (bitwise): a 64-bit hash of them, in four
    /// 16-bit parts, summed and summed squared over the ranks — all parts equal exactly when
    /// size × Σx² = (Σx)² for each (exact in double up to 512 ranks; past that, not checked).
    func checkRanksAgree(_ group: DataParallelGroup, after what: String) throws {
        try group.synchronize(what)
        guard group.size > 1, group.size <= 512 else { return }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for p in persistent {
            for v in stepExecutor.buffer(p.stepIndex) { h = (h ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 }
        }
        let parts = (0..<4).map { Double((h >> (16 * UInt64($0))) & 0xFFFF) }
        let sums = try group.sum(parts + parts.map { $0 * $0 })
        let n = Double(group.size)
        for k in 0..<4 where n * sums[4 + k] != sums[k] * sums[k] {
            throw TrainError("the ranks' weights differ \(what): the sums over the ranks did not give every rank the same result (rank \(group.rank)'s weight hash \(String(h, radix: 16))). Training stopped; the last checkpoint is \(lastCheckpointPath).")
        }
    }
}
