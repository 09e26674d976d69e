// Test-time augmentation compiled into a plan (Passes/TTA.swift, Runtime/Recipe.swift): a
// --tta plan's probabilities against the mean of the plain plan's over the views, written to
// and read from a .plan file and run through the embedding API, the predict command and
// inspect; the views a plan may hold are checked when it is read.

import Foundation
import Frontend
import Passes
import Runtime
import XCTest

/// The face model's layers on 40x40 crops.
let cropModelSource = faceModelSource.replacingOccurrences(of: "f32[N, 1, 48, 48]", with: "f32[N, 1, 40, 40]")

final class TTATests: XCTestCase {
    /// Mean class probabilities of `plan` over views of each face: (row, col, flip) crops of
    /// the plan's input side, cut here by hand.
    func meanOverViews(_ plan: Plan, faces: [[UInt8]], views: [(Int, Int, Bool)]) throws -> [[Double]] {
        let session = try Session(try LoadedPlan(plan: plan))
        let side = plan.metadata.inputShape[1]
        return try faces.map { face in
            var mean = [Double](repeating: 0, count: 7)
            for (row, col, flip) in views {
                var crop: [UInt8] = []
                for r in 0..<side {
                    for c in 0..<side { crop.append(face[(row + r) * 48 + col + (flip ? side - 1 - c : c)]) }
                }
                let p = try session.predictRaw(pixels: crop)[0]
                for k in 0..<7 { mean[k] += Double(p[k]) / Double(views.count) }
            }
            return mean
        }
    }

    func testFlipPlanAveragesTheFaceAndItsMirrorImage() throws {
        let plain = try facePlan(maxBatch: 4)
        let tta = try applyTTA(plain, kind: .flip)
        XCTAssertEqual(tta.metadata.inputShape, [1, 48, 48])
        XCTAssertNotNil(tta.metadata.tta)
        // Through the file format and the embedding API, 5 faces (two runs at maxBatch 4).
        let loaded = try LoadedPlan(bytes: encodePlan(tta))
        XCTAssertTrue(loaded.outputIsProbabilities)
        let faces = (0..<5).map { syntheticPixels($0) }
        let got = try Session(loaded).predictRaw(pixels: faces.flatMap { $0 })
        let want = try meanOverViews(plain, faces: faces, views: [(0, 0, false), (0, 0, true)])
        XCTAssertEqual(got.count, 5)
        for (g, w) in zip(got, want) {
            for k in 0..<7 { XCTAssertEqual(Double(g[k]), w[k], accuracy: 1e-6) }
        }
        // The mirror image changes this model's probabilities: the average is not trivially
        // the plain plan's.
        let plainProbs = try Session(try LoadedPlan(plan: plain)).predictRaw(pixels: faces[0])[0]
        XCTAssertGreaterThan(zip(plainProbs, got[0]).map { abs(Double($0) - Double($1)) }.max()!, 1e-4)
    }

    func testTenCropPlanOfACropModel() throws {
        let graph = try Frontend.compile(source: cropModelSource, file: "crop.graph")
        let plain = try inferencePlan(graph, output: "logits", maxBatch: 3, inputScale: 1.0 / 255)
        let faces = (0..<4).map { syntheticPixels($0 + 10) }
        let five = [(0, 0), (0, 8), (8, 0), (8, 8), (4, 4)]
        for (kind, views) in [(TTAKind.center, [(4, 4, false)]),
                              (.tencrop, five.map { ($0.0, $0.1, false) } + five.map { ($0.0, $0.1, true) })] {
            let tta = try applyTTA(plain, kind: kind)
            XCTAssertEqual(tta.metadata.inputShape, [1, 48, 48])
            let got = try Session(try LoadedPlan(bytes: encodePlan(tta))).predictRaw(pixels: faces.flatMap { $0 })
            let want = try meanOverViews(plain, faces: faces, views: views)
            for (g, w) in zip(got, want) {
                for k in 0..<7 { XCTAssertEqual(Double(g[k]), w[k], accuracy: 1e-6, "\(kind)") }
            }
            // One arena for maxBatch faces' views: the body's buffers hold views * maxBatch samples.
            let viewsBuffer = try XCTUnwrap(tta.buffer(named: "tta.views"))
            XCTAssertEqual(tta.buffers[viewsBuffer].elementCount(batch: tta.maxBatch), views.count * 3 * 40 * 40)
        }
        // Views that need another input side are refused with the kind to use.
        XCTAssertThrowsError(try applyTTA(plain, kind: .flip)) { XCTAssertTrue("\($0)".contains("center_flip"), "\($0)") }
        XCTAssertThrowsError(try applyTTA(try facePlan(), kind: .tencrop)) { XCTAssertTrue("\($0)".contains("--tta flip"), "\($0)") }
        XCTAssertThrowsError(try applyTTA(try applyTTA(plain, kind: .center), kind: .center))
    }

    func testPlanFileRefusesAbsurdViewsAndMixedSteps() throws {
        var tta = try applyTTA(try facePlan(), kind: .flip)
        let i = try XCTUnwrap(tta.buffer(named: "tta.views"))
        tta.buffers[i].views = 1 << 40
        XCTAssertThrowsError(try decodePlan(encodePlan(tta))) { XCTAssertTrue("\($0)".contains("views"), "\($0)") }
        // A model step reading a face buffer and writing view buffers is rejected.
        var mixed = try applyTTA(try facePlan(), kind: .flip)
        let x = try XCTUnwrap(mixed.buffer(named: "x"))
        let s = try XCTUnwrap(mixed.steps.firstIndex { $0.inputs.contains(i) && $0.name != "tta.mean" })
        mixed.steps[s].inputs[0] = x
        XCTAssertThrowsError(try Executor<Float>(plan: mixed)) { XCTAssertTrue("\($0)".contains("views"), "\($0)") }
    }

    func testPredictAndInspectUseATTAPlanUnchanged() throws {
        let dir = try temporaryDirectory(self)
        let tta = try applyTTA(try facePlan(), kind: .flip)
        let path = dir.appendingPathComponent("flip.plan").path
        try writePlan(tta, to: path)
        let pixels = syntheticPixels(7)
        let image = dir.appendingPathComponent("face.pgm").path
        try pgm(pixels, width: 48, height: 48).write(to: URL(fileURLWithPath: image))
        let expected = try Session(try LoadedPlan(plan: tta)).predictRaw(pixels: pixels)[0]
        let j = try fergc(["predict", path, image, "--format", "jsonl"])
        XCTAssertEqual(j.status, 0, j.stderr)
        // One JSONL record for the face; its probabilities by class name.
        let line = try XCTUnwrap(j.stdout.split(separator: "\n").first)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let probs = try XCTUnwrap(o["probabilities"] as? [String: Double])
        let names = try LoadedPlan(plan: tta).classNames
        XCTAssertEqual(probs.count, names.count)
        for (name, want) in zip(names, expected) { XCTAssertEqual(try XCTUnwrap(probs[name]), Double(want), accuracy: 1e-6, name) }
        let r = try fergc(["inspect", path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("tta           flip: 2 views of 48x48 from each 48x48 face"), r.stdout)
        XCTAssertTrue(r.stdout.contains("output        'probabilities' (probabilities)"), r.stdout)
    }
}
