// Knowledge distillation: the targets against their formula (the temperature against the
// softmax of the teacher's log-probabilities divided by T), a teacher that repeats the labels
// training as the labels do, the teacher's probabilities checked when given and when read
// back, and a resumed run refusing probabilities other than those it started with.

import Foundation
import Frontend
import GraphIR
import NumPyIO
import Runtime
import TestSupport
@testable import Training
import XCTest

final class DistillationTests: XCTestCase {
    /// Targets (1 - a) q(y) + a p(T), p(T) = softmax(log p / T), computed here independently.
    func testTargetsMixTheSmoothedLabelAndTheTemperedTeacher() throws {
        let classes = 3
        let teacher = try TeacherProbabilities(source: "t", classes: classes, values: [0.7, 0.2, 0.1, 0, 0.5, 0.5, 0.25, 0.25, 0.5])
        for temperature in [1.0, 2.0, 0.5] {
            let rows = teacher.tempered(temperature)
            let labels: [Int32] = [2, 0]
            let faces = [0, 2]  // image k is face faces[k] of the training set
            let t = ownTargets(labels: labels, classes: classes, smoothing: 0.1, teacher: (0.4, rows, faces))
            for k in 0..<2 {
                let p = teacher.values[(faces[k] * classes)..<((faces[k] + 1) * classes)].map(Double.init)
                let logits = p.map { log($0) / temperature }
                let m = logits.max()!
                let e = logits.map { exp($0 - m) }
                let softened = e.map { $0 / e.reduce(0, +) }
                var sum = 0.0
                for j in 0..<classes {
                    let q = (j == Int(labels[k]) ? 0.9 : 0) + 0.1 / 3
                    XCTAssertEqual(t[k * classes + j], 0.6 * q + 0.4 * softened[j], accuracy: 1e-12, "T \(temperature), image \(k), class \(j)")
                    sum += t[k * classes + j]
                }
                XCTAssertEqual(sum, 1, accuracy: 1e-12)
            }
        }
        // A zero stays zero at any temperature; a higher one flattens the row.
        XCTAssertEqual(teacher.tempered(3)[3], 0)
        XCTAssertLessThan(teacher.tempered(4)[0], teacher.tempered(1)[0])
        // Without a teacher the targets are the smoothed labels, as mixup has always used.
        XCTAssertEqual(ownTargets(labels: [1], classes: 3, smoothing: 0), [0, 1, 0])
    }

    /// With mixup each image's target is the mix of its own and its partner's distilled targets.
    func testMixupMixesTheDistilledTargets() throws {
        let classes = 2, pixels = 1
        let own: [Double] = [0.8, 0.2, 0.3, 0.7]
        var x: [Float] = [1, 3], targets: [Float] = []
        let draw = MixupDraw(lambda: 0.75, partner: [1, 0])
        applyMixup(draw, x: &x, labels: [0, 1], own: own, targets: &targets, pixels: pixels, classes: classes)
        XCTAssertEqual(x, [1.5, 2.5])
        for (got, want) in zip(targets, [0.75 * 0.8 + 0.25 * 0.3, 0.75 * 0.2 + 0.25 * 0.7, 0.75 * 0.3 + 0.25 * 0.8, 0.75 * 0.7 + 0.25 * 0.2]) {
            XCTAssertEqual(Double(got), want, accuracy: 1e-7)
        }
    }

    /// Probabilities that are not (a NaN, a negative value, a row off 1, a ragged count) are
    /// refused with the face named; a file is read only at its expected size and shape.
    func testTeacherProbabilitiesAreChecked() throws {
        func message(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message { try TeacherProbabilities(source: "t", classes: 2, values: [0.5, 0.5, .nan, 1]) }
            .contains("face 1 is not a probability vector"))
        XCTAssertTrue(message { try TeacherProbabilities(source: "t", classes: 2, values: [-0.5, 1.5]) }.contains("face 0"))
        XCTAssertTrue(message { try TeacherProbabilities(source: "t", classes: 2, values: [0.5, 0.5, 0.6, 0.6]) }
            .contains("face 1 sum to 1.2"))
        XCTAssertTrue(message { try TeacherProbabilities(source: "t", classes: 2, values: [0.5, 0.5, 1]) }.contains("not a whole number of rows"))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-teacher-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let t = try TeacherProbabilities(source: "t", classes: 2, values: [0.25, 0.75, 1, 0, 0.5, 0.5])
        let path = dir + "/teacher.npy"
        try t.write(to: path)
        let back = try TeacherProbabilities.read(path, faces: 3, classes: 2)
        XCTAssertEqual(back.values, t.values)
        XCTAssertEqual(back.hash, t.hash)
        XCTAssertNotEqual(try TeacherProbabilities(source: "t", classes: 2, values: [0.25, 0.75, 1, 0, 0.5, 0.5].reversed()).hash, t.hash)
        XCTAssertTrue(message { try TeacherProbabilities.read(path, faces: 2, classes: 3) }.contains("needs float32 [2, 3]"))
        // A file far larger than the run's faces need is not read into memory.
        try atomicWrite([UInt8](repeating: 0, count: 200_000), to: path)
        XCTAssertTrue(message { try TeacherProbabilities.read(path, faces: 3, classes: 2) }.contains("more than the"))
    }

    /// A teacher whose probabilities are the labels, at weight 1, trains as the labels do (the
    /// soft-target loss against the hard-label one: the same gradients up to rounding), and a
    /// teacher that says something else trains otherwise.
    func testATeacherThatRepeatsTheLabelsTrainsAsTheLabels() throws {
        let source = try String(contentsOfFile: "\(repoRoot)/Models/tiny.graph", encoding: .utf8)
        let plain = try Frontend.compile(source: source, file: "tiny.graph")
        let distilling = try Frontend.compile(source: source.replacingOccurrences(of: "  epochs = 2\n", with: "  epochs = 2\n  distill = 1\n"),
                                              file: "tiny-distill.graph")
        XCTAssertEqual(distilling.training?.distill, 1)
        let data = try loadFER2013(path: "\(repoRoot)/Data/fer2013-sample.csv.gz")
        let faces = trainingFaces(data, splits: [.training])
        func run(_ model: Graph, teacher: TeacherProbabilities?) throws -> Checkpoint {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-distill-\(UUID().uuidString)").path
            addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
            var options = TrainOptions(epochs: 1, batchSize: 16, seed: 7, outDir: dir)
            options.maxSteps = 6
            options.teacher = teacher
            try Trainer(model: model, data: data, options: options).run { _ in }
            return try Checkpoint.read(dir + "/checkpoint-last.npz")
        }
        var oneHot = [Float](repeating: 0, count: faces.count * 7)
        for f in 0..<faces.count { oneHot[f * 7 + Int(faces.labels[f])] = 1 }
        let labels = try run(plain, teacher: nil)
        let repeated = try run(distilling, teacher: TeacherProbabilities(source: "labels", classes: 7, values: oneHot))
        XCTAssertEqual(repeated.meta.teacher?.source, "labels")
        for name in ["c1.weight", "d1.weight", "logits.bias"] {
            let a = try XCTUnwrap(labels.tensors[name], name)
            XCTAssertLessThanOrEqual(largestRelativeDifference(a, repeated.tensors[name]), 1e-5, name)
        }
        // A uniform teacher moves the weights elsewhere (the comparison above can fail).
        let uniform = try run(distilling, teacher: TeacherProbabilities(source: "uniform", classes: 7,
                                                                        values: [Float](repeating: 1.0 / 7, count: faces.count * 7)))
        let a = try XCTUnwrap(labels.tensors["logits.bias"]), u = try XCTUnwrap(uniform.tensors["logits.bias"])
        XCTAssertGreaterThan(zip(a, u).map { abs($0 - $1) }.max()!, 1e-3)
    }

    /// A distilling run needs a teacher, one for its faces; a run that does not distil takes none.
    func testTheTrainerAsksForTheRightTeacher() throws {
        let source = try String(contentsOfFile: "\(repoRoot)/Models/tiny.graph", encoding: .utf8)
        let plain = try Frontend.compile(source: source, file: "tiny.graph")
        let distilling = try Frontend.compile(source: source.replacingOccurrences(of: "  epochs = 2\n", with: "  epochs = 2\n  distill = 0.5\n"),
                                              file: "tiny-distill.graph")
        let data = try loadFER2013(path: "\(repoRoot)/Data/fer2013-sample.csv.gz")
        let options = TrainOptions(epochs: 1, batchSize: 16, seed: 7, outDir: "unused")
        func message(_ model: Graph, _ teacher: TeacherProbabilities?) -> String {
            var o = options
            o.teacher = teacher
            do { _ = try Trainer(model: model, data: data, options: o); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(distilling, nil).contains("give one with --teacher"), message(distilling, nil))
        let few = try TeacherProbabilities(source: "few", classes: 7, values: [Float](repeating: 1.0 / 7, count: 70))
        XCTAssertTrue(message(distilling, few).contains("the teacher gave 7 probabilities for each of 10 faces; this run trains on 899"),
                      message(distilling, few))
        XCTAssertTrue(message(plain, few).contains("has no teacher's weight"), message(plain, few))
    }
}
