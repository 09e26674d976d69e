// Knowledge distillation (Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural
// Network"): a teacher, any inference plan (an ensemble, a bigger model), is run once over the
// training faces before the first step; each training image's target is then
// (1 - a) q(y) + a p(T), q the label smoothing's target for its label and p(T) the teacher's
// probabilities on the face raised to 1/T and renormalized (the softmax of the teacher's logits
// divided by T). The train block holds a and T (`distill`, `distill_temperature`); the
// probabilities are stored in the run directory (teacher.npy) and their hash in every
// checkpoint, so that a resumed run reads the same targets without the teacher.
//
// The teacher sees each face whole and unaugmented (its plan's own views: centre crop, TTA),
// the student its augmented crop of it: one target per face, as in the reference.

import Foundation
import NumPyIO
import Runtime

/// The teacher's probabilities on the training faces: `classes` per face, in the order of the
/// trainer's training set (`trainingFaces`).
public struct TeacherProbabilities: Sendable {
    /// The file the probabilities were computed with (a plan) or read from.
    public var source: String
    public var classes: Int
    public var values: [Float]
    public var faces: Int { values.count / classes }
    /// FNV-1a over the values' bits, in hexadecimal: what checkpoints record.
    public var hash: String {
        var h = FloatHash()
        h.add(values)
        return h.hex
    }

    /// Checks what the trainer relies on: `classes` values per face, each a probability, each
    /// face's summing to 1 (within 1e-3: a plan's f32 softmax, or probabilities written out).
    public init(source: String, classes: Int, values: [Float]) throws {
        guard classes > 0, values.count % classes == 0 else {
            throw TrainError("\(source): \(values.count) teacher probabilities are not a whole number of rows of \(classes)")
        }
        for f in 0..<(values.count / classes) {
            let row = values[(f * classes)..<((f + 1) * classes)]
            guard row.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }) else {
                throw TrainError("\(source): the teacher's row for face \(f) is not a probability vector: \(Array(row))")
            }
            let sum = row.reduce(0.0) { $0 + Double($1) }
            guard abs(sum - 1) <= 1e-3 else {
                throw TrainError("\(source): the teacher's probabilities for face \(f) sum to \(sum), not 1")
            }
        }
        self.source = source
        self.classes = classes
        self.values = values
    }

    /// Where a run directory keeps them.
    public static let fileName = "teacher.npy"

    /// Writes them as a float32 [faces, classes] .npy, atomically.
    public func write(to path: String) throws {
        do { try atomicWrite(NumPyIO.writeNPY(NDArray(floats: values, shape: [faces, classes])), to: path) } catch {
            throw TrainError("\(path): cannot write the teacher's probabilities: \(error)")
        }
    }

    /// Reads a .npy written by `write`, for `faces` faces of `classes`: the file's size is
    /// checked before it is read.
    public static func read(_ path: String, faces: Int, classes: Int) throws -> TeacherProbabilities {
        let expected = faces * classes * 4
        let bytes: [UInt8]
        do { bytes = try readRegularFile(path, limit: expected + 65_536) } catch {
            throw TrainError("\(error)")
        }
        let array: NDArray
        do { array = try NumPyIO.readNPY(bytes, name: path) } catch { throw TrainError("\(path): \(error)") }
        guard array.dtype == .float32, array.shape == [faces, classes] else {
            throw TrainError("\(path): the teacher's probabilities are \(array.dtype) \(array.shape); this run needs float32 [\(faces), \(classes)] (its training faces by the classes)")
        }
        return try TeacherProbabilities(source: path, classes: classes, values: array.floats)
    }

    /// The teacher's rows softened by the temperature, in Double: p^(1/T) / sum (T = 1: the
    /// rows renormalized).
    public func tempered(_ temperature: Double) -> [Double] {
        var out = [Double](repeating: 0, count: values.count)
        for f in 0..<faces {
            var sum = 0.0
            for j in 0..<classes {
                let p = Double(values[f * classes + j])
                let w = temperature == 1 ? p : (p > 0 ? pow(p, 1 / temperature) : 0)
                out[f * classes + j] = w
                sum += w
            }
            for j in 0..<classes { out[f * classes + j] /= sum }
        }
        return out
    }
}

/// The faces a run trains on: the splits' faces, in this order (the trainer's training set).
public func trainingFaces(_ data: FERData, splits: [Split]) -> FaceSet {
    var set = data[splits.first ?? .training]
    for s in splits.dropFirst() { set.append(contentsOf: data[s]) }
    return set
}

/// Runs a teacher plan over `set` (its own views and input scale) and returns its probabilities
/// (the softmax of its outputs when the plan gives logits). `progress` sees the faces done.
public func computeTeacherProbabilities(_ executor: Executor<Float>, plan: Plan, set: FaceSet, source: String,
                                        progress: ((Int) -> Void)? = nil) throws -> TeacherProbabilities {
    guard let x = plan.buffer(named: "x"), plan.buffers[x].perSample.count == 3, plan.buffers[x].perSample[0] == 1,
          let side = plan.buffers[x].perSample.last, side <= FaceSet.side else {
        throw TrainError("\(source): a teacher takes one 48x48 face (or a centre crop of it) as 'x: f32[N, 1, S, S]'")
    }
    let classes = plan.buffers[plan.outputs[0]].perSample.reduce(1, *)
    var values = [Float](repeating: 0, count: set.count * classes)
    let logits = !plan.outputIsProbabilities
    _ = try evaluateInference(executor, plan: plan, set: set, inputScale: Float(plan.metadata.inputScale)) { face, scores in
        values.withUnsafeMutableBufferPointer { v in
            let row = v.baseAddress! + face * classes
            for (j, s) in scores.enumerated() { row[j] = s }
            if logits { softmaxInPlace(row, classes) }
        }
        if (face + 1) % 1024 == 0 || face + 1 == set.count { progress?(face + 1) }
    }
    return try TeacherProbabilities(source: source, classes: classes, values: values)
}

/// Each image's own target before any mixing, in Double: q(y), the label smoothing's target
/// ((1 - e) on the label plus e / K on every class), and with a teacher (1 - a) q(y) + a t,
/// t the face's tempered teacher row (`faces[k]`: the image's index in the training set).
public func ownTargets(labels: [Int32], classes: Int, smoothing: Double,
                       teacher: (weight: Double, rows: [Double], faces: [Int])? = nil) -> [Double] {
    let off = smoothing / Double(classes), on = 1 - smoothing + off
    var t = [Double](repeating: off, count: labels.count * classes)
    for k in labels.indices { t[k * classes + Int(labels[k])] = on }
    if let teacher {
        let a = teacher.weight
        for k in labels.indices {
            let f = teacher.faces[k]
            for j in 0..<classes { t[k * classes + j] = (1 - a) * t[k * classes + j] + a * teacher.rows[f * classes + j] }
        }
    }
    return t
}
