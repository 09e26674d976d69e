// fergc inspect, explain and predict on the built binary.

import Foundation
import Passes
import Runtime
import TestSupport
import XCTest

final class PlanCommandTests: XCTestCase {
    func writeFacePlan() throws -> (path: String, plan: Plan, dir: URL) {
        let dir = try temporaryDirectory(self)
        let plan = try facePlan()
        let path = dir.appendingPathComponent("face.plan").path
        try writePlan(plan, to: path)
        return (path, plan, dir)
    }

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func testInspect() throws {
        let f = try writeFacePlan()
        let r = try fergc(["inspect", f.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        for expected in ["model 'face' (inference)", "format        1.0, written by \(PlanFormat.producer); compiled by fergc tests",
                         "input         'x' [1, 48, 48]", "classes       7: Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral",
                         "passes        dce, lower, plan-memory", "probe errors  logits 1.5e-07", "memory        arena",
                         "weights       sha256 \(weightsSHA256(f.plan))"] {
            XCTAssertTrue(r.stdout.contains(expected), "missing '\(expected)' in:\n\(r.stdout)")
        }

        let j = try fergc(["inspect", f.path, "--json"])
        XCTAssertEqual(j.status, 0, j.stderr)
        let o = try json(j.stdout)
        XCTAssertEqual(o["weights_sha256"] as? String, weightsSHA256(f.plan))
        XCTAssertEqual(o["format_version"] as? String, "1.0")
        XCTAssertEqual(o["input_shape"] as? [Int], [1, 48, 48])
        XCTAssertEqual(o["classes"] as? [String], fer2013ClassNames)
        XCTAssertEqual(o["steps"] as? Int, f.plan.steps.count)
        XCTAssertEqual(o["parameter_count"] as? Int, f.plan.parameters.values.reduce(0) { $0 + $1.count })
        XCTAssertEqual((o["memory"] as? [String: Any])?["arena_bytes"] as? Int, f.plan.memory?.arenaBytes)
    }

    func testInspectReportsCorruption() throws {
        let f = try writeFacePlan()
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: f.path)))
        bytes.removeLast(10)
        try Data(bytes).write(to: URL(fileURLWithPath: f.path))
        let r = try fergc(["inspect", f.path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.hasPrefix("error: \(f.path): "), r.stderr)
        XCTAssertTrue(r.stderr.contains("offset"), r.stderr)
        let missing = try fergc(["inspect", f.dir.appendingPathComponent("nope.plan").path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("cannot open"), missing.stderr)
    }

    func testExplain() throws {
        let f = try writeFacePlan()
        let svg = f.dir.appendingPathComponent("memory.svg").path
        let r = try fergc(["explain", f.path, "--svg", svg])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("plan 'face': \(f.plan.steps.count) steps"), r.stdout)
        for step in f.plan.steps { XCTAssertTrue(r.stdout.contains(step.name), "step \(step.name) missing:\n\(r.stdout)") }
        XCTAssertTrue(r.stdout.contains("x:input"), r.stdout)
        XCTAssertTrue(r.stdout.contains("@0+"), r.stdout)  // an arena buffer at offset 0
        XCTAssertTrue(r.stdout.contains("fusions:"), r.stdout)
        XCTAssertTrue(r.stdout.contains("peak live arena bytes:"), r.stdout)
        XCTAssertTrue(r.stdout.contains("wrote \(svg)"), r.stdout)
        let text = try String(contentsOfFile: svg, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("<svg"), text)
        XCTAssertEqual(text.components(separatedBy: "<title>step ").count - 1, f.plan.steps.count)
    }

    func testPredictPGM() throws {
        let f = try writeFacePlan()
        let pixels = syntheticPixels(3)
        let image = f.dir.appendingPathComponent("face.pgm").path
        try pgm(pixels, width: 48, height: 48).write(to: URL(fileURLWithPath: image))
        let expected = try Session(try LoadedPlan(plan: f.plan)).predictRaw(pixels: pixels)[0]
        let best = fer2013ClassNames[argmax(expected)]

        // A 48x48 image is taken whole as a face (--detector auto); the table names its file.
        let r = try fergc(["predict", f.path, image, "--format", "table"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("FILE"), r.stdout)
        XCTAssertTrue(r.stdout.contains("face.pgm  0     [0, 0, 48, 48]"), r.stdout)
        XCTAssertTrue(r.stdout.contains(" \(best) "), r.stdout)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 2, r.stdout)

        let j = try fergc(["predict", f.path, image, image, "--json"])
        XCTAssertEqual(j.status, 0, j.stderr)
        let predictions = try j.stdout.split(separator: "\n").map { try json(String($0)) }
        XCTAssertEqual(predictions.count, 2)
        XCTAssertEqual(predictions[0]["emotion"] as? String, best)
        XCTAssertEqual(predictions[0]["status"] as? String, "face")
        let probs = try XCTUnwrap(predictions[0]["probabilities"] as? [String: Double])
        for (name, want) in zip(fer2013ClassNames, expected) { XCTAssertEqual(probs[name] ?? -1, Double(want), accuracy: 1e-6) }
    }

    func testPredictRejectsOtherImages() throws {
        let f = try writeFacePlan()
        let small = f.dir.appendingPathComponent("small.pgm").path
        try pgm(syntheticPixels(1, side: 64), width: 64, height: 64).write(to: URL(fileURLWithPath: small))
        // Another size goes through face detection: no face in a synthetic pattern.
        let r = try fergc(["predict", f.path, small, "--format", "jsonl"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\"status\":\"no_face\""), r.stdout)
        let ascii = f.dir.appendingPathComponent("ascii.pgm").path
        try Data("P2\n2 2\n255\n0 1 2 3\n".utf8).write(to: URL(fileURLWithPath: ascii))
        let a = try fergc(["predict", f.path, ascii, "--format", "jsonl"])
        XCTAssertEqual(a.status, 1)
        XCTAssertTrue(a.stdout.contains("\"status\":\"error\""), a.stdout)
        XCTAssertTrue(a.stdout.contains("not an image fergc reads"), a.stdout)
        let none = try fergc(["predict", f.path])
        XCTAssertEqual(none.status, 64)
        XCTAssertTrue(none.stderr.contains("nothing to classify"), none.stderr)
    }

    func testPredictCSVRow() throws {
        let f = try writeFacePlan()
        let csv = f.dir.appendingPathComponent("faces.csv").path
        var text = "emotion,pixels,Usage\n"
        for (k, (label, usage)) in [(3, "Training"), (5, "Training"), (6, "PublicTest")].enumerated() {
            text += "\(label),\(syntheticPixels(k).map(String.init).joined(separator: " ")),\(usage)\n"
        }
        try text.write(toFile: csv, atomically: true, encoding: .utf8)
        let expected = try Session(try LoadedPlan(plan: f.plan)).predictRaw(pixels: syntheticPixels(2))[0]

        let r = try fergc(["predict", f.path, "--csv", csv, "--row", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let p = try json(r.stdout)
        XCTAssertEqual(p["label"] as? String, "Neutral")
        XCTAssertEqual(p["emotion"] as? String, fer2013ClassNames[argmax(expected)])
        let split = try fergc(["predict", f.path, "--csv", csv, "--row", "1", "--split", "Training", "--format", "table"])
        XCTAssertEqual(split.status, 0, split.stderr)
        XCTAssertTrue(split.stdout.contains("label Surprise"), split.stdout)
        let past = try fergc(["predict", f.path, "--csv", csv, "--row", "3"])
        XCTAssertEqual(past.status, 1)
        XCTAssertTrue(past.stderr.contains("no row 3: the file has 3 faces"), past.stderr)
    }

    // eval --predictions: one line per face, the probabilities the runtime gives (a softmax of
    // a logits plan's output; a TTA plan's mean as it is), and an accuracy that agrees with the
    // printed one.
    func testEvalWritesEveryFacesProbabilities() throws {
        let f = try writeFacePlan()
        let csv = f.dir.appendingPathComponent("faces.csv").path
        let labels = [3, 0, 6, 5, 3, 2]
        var text = "emotion,pixels,Usage\n"
        for (k, label) in labels.enumerated() {
            text += "\(label),\(syntheticPixels(k).map(String.init).joined(separator: " ")),\(k == 1 ? "Training" : "PublicTest")\n"
        }
        try text.write(toFile: csv, atomically: true, encoding: .utf8)
        let tta = f.dir.appendingPathComponent("tta.plan").path
        try writePlan(try applyTTA(f.plan, kind: .flip), to: tta)
        for plan in [f.path, tta] {
            let out = f.dir.appendingPathComponent("p.csv").path
            let r = try fergc(["eval", plan, "--data", csv, "--predictions", out, "--out", f.dir.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.first, "face,label,predicted,Angry,Disgust,Fear,Happy,Sad,Surprise,Neutral")
            let publicFaces = labels.indices.filter { $0 != 1 }
            XCTAssertEqual(lines.count, 1 + publicFaces.count)
            let session = try Session(try LoadedPlan(path: plan))
            var correct = 0
            for (face, k) in publicFaces.enumerated() where face + 1 < lines.count {
                let fields = lines[face + 1].split(separator: ",").map(String.init)
                XCTAssertEqual(fields.count, 10)
                XCTAssertEqual(fields[0], "\(face)")
                XCTAssertEqual(fields[1], "\(labels[k])")
                let want = try session.predictRaw(pixels: syntheticPixels(k))[0]
                let got = fields.dropFirst(3).compactMap(Float.init)
                XCTAssertEqual(got.count, 7)
                for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 2e-6, "\(plan) face \(face)") }
                XCTAssertEqual(fields[2], "\(argmax(want))")
                if fields[1] == fields[2] { correct += 1 }
            }
            let accuracy = String(format: "accuracy %.2f%%", Double(correct) / Double(publicFaces.count) * 100)
            XCTAssertTrue(r.stdout.contains(accuracy), "\(accuracy) not in \(r.stdout)")
        }
        // Without --out, a plan's images go to runs/eval/NAME under the working directory,
        // not beside the plan (a committed plan's folder stays as it was).
        let cwd = f.dir.appendingPathComponent("cwd")
        try FileManager.default.createDirectory(at: cwd, withIntermediateDirectories: true)
        let plain = try runFergc(["eval", tta, "--data", csv], in: cwd)
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let images = cwd.appendingPathComponent("runs/eval/tta/confusion-PublicTest.png").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: images), plain.stdout)
        XCTAssertTrue(plain.stdout.contains("wrote runs/eval/tta/confusion-PublicTest.svg"), plain.stdout)
        try FileManager.default.removeItem(atPath: f.dir.appendingPathComponent("confusion-PublicTest.png").path)
        XCTAssertEqual(try runFergc(["eval", tta, "--data", csv], in: cwd).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: f.dir.appendingPathComponent("confusion-PublicTest.png").path))
        // --batch is a checkpoint's: a plan says it runs at its own batch, and gives the same answer.
        let batched = try fergc(["eval", f.path, "--data", csv, "--batch", "64", "--out", f.dir.path])
        XCTAssertEqual(batched.status, 0, batched.stderr)
        XCTAssertTrue(batched.stderr.contains("a plan runs at the batch it was compiled for (4), not --batch 64"), batched.stderr)  // writeFacePlan: batch 4
        let unbatched = try fergc(["eval", f.path, "--data", csv, "--out", f.dir.path])
        XCTAssertFalse(unbatched.stderr.contains("a plan runs at the batch"), unbatched.stderr)
        XCTAssertEqual(batched.stdout.firstMatch(of: /accuracy [0-9.]+%/).map { String($0.0) },
                       unbatched.stdout.firstMatch(of: /accuracy [0-9.]+%/).map { String($0.0) })
        let huge = try fergc(["eval", f.path, "--data", csv, "--batch", "100000000000", "--out", f.dir.path])
        XCTAssertEqual(huge.status, 2, huge.stderr)
        XCTAssertTrue(huge.stderr.contains("--batch expects an integer in 1...1048576, got '100000000000'"), huge.stderr)
        // A directory that does not exist fails before the evaluation, naming it.
        let bad = try fergc(["eval", f.path, "--data", csv, "--predictions", f.dir.path + "/no/such/p.csv", "--out", f.dir.path])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("the directory \(f.dir.path)/no/such does not exist"), bad.stderr)
        XCTAssertFalse(bad.stdout.contains("accuracy"), bad.stdout)
    }
}
