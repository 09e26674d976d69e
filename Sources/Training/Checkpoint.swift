// Checkpoints: every persistent tensor of a training step (weights, batchnorm statistics,
// optimizer moments and the iteration counter) by name, plus a JSON record of where the run is
// (epoch, batch within it, iteration, seed, history) and the model's canonical IR text, in one
// .npz archive. Zip's per-member CRC-32 rejects corruption; the archive is written atomically
// (temp file, fsync, rename), so a crash never leaves a partial checkpoint behind.
//
// All randomness is derived from (seed, epoch, batch), so (seed, epoch, batch, iteration) is
// the whole generator state: resuming from a checkpoint redraws exactly what the uninterrupted
// run would have drawn.

import Foundation
import NumPyIO

public struct EpochRecord: Codable, Sendable, Equatable {
    public var epoch: Int
    public var loss: Double
    public var accuracy: Double
    public var valLoss: Double?
    public var valAccuracy: Double?
    public var learningRate: Double
    public var seconds: Double
    public var imagesPerSecond: Double
}

public struct CheckpointMeta: Codable, Sendable {
    public static let format = "fergc-checkpoint"
    public static let currentVersion = 1
    public var format: String = CheckpointMeta.format
    public var version: Int = CheckpointMeta.currentVersion
    public var model: String
    /// Hash of the model's canonical IR; a resume with another model is refused.
    public var modelHash: String
    /// The model graph (as the user wrote it, canonical form) so a checkpoint can be evaluated alone.
    public var modelIR: String
    /// Epochs completed; the next batch is `batch` of epoch `epoch` (0-based).
    public var epoch: Int
    public var batch: Int
    public var iteration: Int
    public var seed: UInt64
    public var epochs: Int
    public var batchSize: Int
    public var bestValAccuracy: Double?
    /// Running sums of the current epoch (loss * images, correct, images) when checkpointed mid-epoch.
    public var partialLossSum: Double = 0
    public var partialCorrect: Int = 0
    public var partialSeen: Int = 0
    /// Seconds the current epoch had run when checkpointed mid-epoch (absent in checkpoints
    /// written before it was recorded): a resumed epoch's time and rate count both parts.
    public var partialSeconds: Double? = nil
    public var history: [EpochRecord]
    public var elapsedSeconds: Double
    /// The data the run trains on (absent in checkpoints written before it was recorded).
    public var data: DataFingerprint? = nil
    /// Ranks of a data-parallel run (absent: one process); a resume needs the same number.
    public var ranks: Int? = nil
    /// The run's mid-epoch checkpoint interval in steps (absent: epoch ends only, or written
    /// before it was recorded); a resume keeps it unless told otherwise.
    public var checkpointEvery: Int? = nil
    /// The teacher's probabilities of a distilling run (absent: no teacher); a resume needs the same.
    public var teacher: TeacherRecord? = nil
    /// Epochs of the run's finish after its `epochs` (absent: none, or written before finishes).
    public var finishEpochs: Int? = nil
}

/// Which teacher's probabilities a distilling run trains with: where they came from and their
/// hash (`TeacherProbabilities.hash`).
public struct TeacherRecord: Codable, Sendable, Equatable {
    public var source: String
    public var hash: String
}


public struct Checkpoint: Sendable {
    public var meta: CheckpointMeta
    public var tensors: [String: [Float]]

    public init(meta: CheckpointMeta, tensors: [String: [Float]]) {
        self.meta = meta
        self.tensors = tensors
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(meta)
        var arrays: [(name: String, array: NDArray)] = [("__meta__", NDArray(bytes: Array(json), shape: [json.count]))]
        for name in tensors.keys.sorted() {
            let v = tensors[name]!
            arrays.append((name, NDArray(floats: v, shape: [v.count])))
        }
        try NumPyIO.writeNPZ(arrays, compressed: false, to: path)
    }

    public static func read(_ path: String, maxBytes: Int = Int.max) throws -> Checkpoint {
        let members: [(name: String, array: NDArray)]
        do { members = try NumPyIO.readNPZ(path: path, maxBytes: maxBytes) } catch {
            let d = "\(error)"  // starts with the path: not printed twice
            throw DataError("\(path): not a readable checkpoint: \(d.hasPrefix(path + ": ") ? String(d.dropFirst(path.count + 2)) : d)")
        }
        guard let metaArray = members.first(where: { $0.name == "__meta__" })?.array, metaArray.dtype == .uint8 else {
            throw DataError("\(path): not a fergc checkpoint (no __meta__ record)")
        }
        let meta: CheckpointMeta
        do { meta = try JSONDecoder().decode(CheckpointMeta.self, from: Data(metaArray.data)) } catch {
            throw DataError("\(path): the checkpoint record is unreadable: \(error)")
        }
        guard meta.format == CheckpointMeta.format else { throw DataError("\(path): not a fergc checkpoint (format '\(meta.format)')") }
        guard meta.version == CheckpointMeta.currentVersion else {
            throw DataError("\(path): checkpoint version \(meta.version); this fergc reads version \(CheckpointMeta.currentVersion)")
        }
        var tensors: [String: [Float]] = [:]
        for (name, array) in members where name != "__meta__" {
            guard array.dtype == .float32 else { throw DataError("\(path): tensor '\(name)' is \(array.dtype), expected float32") }
            tensors[name] = array.floats
        }
        return Checkpoint(meta: meta, tensors: tensors)
    }
}
