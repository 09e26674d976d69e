// `fergc train --init W.npz`: named weights in, the rest initialized as usual, mismatches named;
// `--init M.plan`: an inference plan's stored values, for a model without batchnorm only.

import Foundation
import GraphIR
import NumPyIO
import Runtime
import Training
import XCTest

/// A convolution whose weights the run must keep (trainable=false) and a dense layer it trains.
private let frozenSource = """
model frozen
input x: f32[N, 1, 48, 48]
input labels: i32[N]
small = avgpool(x, size=4, stride=4)
c1 = conv2d(small, filters=4, kernel=3, activation=relu, trainable=false)
p1 = maxpool(c1, size=2, stride=2)
f = flatten(p1)
logits = dense(f, units=7)
loss = softmax_cross_entropy(logits, labels)
output logits, loss
train {
  loss = loss
  optimizer = adam(lr=1e-3)
  batch = 16
  epochs = 1
  input_scale = 0.00392156862745098
}
"""

final class InitWeightsTests: XCTestCase {
    func testMatchingNamesLoadAndTheRestAreReported() throws {
        let tiny = try model("Models/tiny.graph")
        let w: [Float] = (0..<36).map { Float($0) / 100 }
        let file = InitTensors(source: "w.npz", tensors: [
            "c1.weight": (shape: [4, 1, 3, 3], values: w),
            "c1_bn.running_var": (shape: [4], values: [2, 2, 2, 2]),
            "not_in_model.weight": (shape: [2], values: [1, 2]),
        ])
        let (report, values) = try planInit(model: tiny, file: file)
        XCTAssertEqual(report.loaded, ["c1.weight", "c1_bn.running_var"])
        XCTAssertEqual(values["c1.weight"], w)
        XCTAssertEqual(report.unused, ["not_in_model.weight"])
        XCTAssertTrue(report.notLoaded.contains("c1.bias"))
        XCTAssertTrue(report.notLoaded.contains("logits.weight"))
        XCTAssertFalse(report.notLoaded.contains("c1.weight"))
        XCTAssertEqual(report.loadedElements, 40)
    }

    func testAShapeMismatchNamesTheParameterAndBothShapes() throws {
        let tiny = try model("Models/tiny.graph")
        let file = InitTensors(source: "w.npz", tensors: ["c1.weight": (shape: [4, 3, 3, 3], values: [Float](repeating: 0, count: 108))])
        XCTAssertThrowsError(try planInit(model: tiny, file: file)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("'c1.weight'") && m.contains("[4, 3, 3, 3]") && m.contains("[4, 1, 3, 3]"), m)
        }
        // A checkpoint's flat tensor: sizes are compared.
        let flat = InitTensors(source: "c.npz", tensors: ["c1.weight": (shape: nil, values: [1, 2, 3])])
        XCTAssertThrowsError(try planInit(model: tiny, file: flat)) { e in
            XCTAssertTrue("\(e)".contains("'c1.weight' has 3 values"), "\(e)")
        }
    }

    /// The CLI: a one-step run from an .npz prints what it loaded, and the checkpoint it
    /// writes holds the loaded (frozen) values unchanged.
    func testTrainInitLoadsFrozenWeightsIntoTheRun() throws {
        let dir = temporaryDirectory("init")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let graph = dir + "/frozen.graph"
        try frozenSource.write(toFile: graph, atomically: true, encoding: .utf8)
        let w: [Float] = (0..<36).map { Float($0 % 7) / 10 - 0.3 }
        try NumPyIO.writeNPZ([("c1.weight", NDArray(floats: w, shape: [4, 1, 3, 3])), ("c1.bias", NDArray(floats: [0.1, 0.2, 0.3, 0.4], shape: [4]))],
                             compressed: false, to: dir + "/w.npz")
        let r = try fergc(["train", graph, "--init", dir + "/w.npz", "--max-steps", "2", "--out", dir + "/run"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("loaded 2 tensors (40 values): c1.weight, c1.bias"), r.stdout)
        XCTAssertTrue(r.stdout.contains("not in the file): logits.weight, logits.bias"), r.stdout)
        let c = try Checkpoint.read(dir + "/run/checkpoint-last.npz")
        XCTAssertEqual(c.tensors["c1.weight"], w)
        XCTAssertEqual(c.tensors["c1.bias"], [0.1, 0.2, 0.3, 0.4])

        try NumPyIO.writeNPZ([("c1.weight", NDArray(floats: [Float](repeating: 0, count: 18), shape: [2, 1, 3, 3]))], compressed: false, to: dir + "/bad.npz")
        let bad = try fergc(["train", graph, "--init", dir + "/bad.npz", "--max-steps", "1", "--out", dir + "/run2"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("'c1.weight' has shape [2, 1, 3, 3] in the file but [4, 1, 3, 3] in the model"), bad.stderr)
    }

    /// `--init M.plan`: a plan's stored values (here rounded to f16 and widened back) start the
    /// run exactly; a model with batchnorm and an ensemble plan are refused, each saying why.
    func testTrainInitFromAPlan() throws {
        let dir = temporaryDirectory("init-plan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let graph = dir + "/frozen.graph"
        try frozenSource.write(toFile: graph, atomically: true, encoding: .utf8)
        // The seeded weights, as f32 and as f16.
        let full = try fergc(["compile", graph, "-o", dir + "/m32.plan"])
        XCTAssertEqual(full.status, 0, full.stderr)
        let compiled = try fergc(["compile", graph, "--weights-dtype", "f16", "--tta", "flip", "-o", dir + "/m.plan"])
        XCTAssertEqual(compiled.status, 0, compiled.stderr)
        let w = try XCTUnwrap(readPlan(path: dir + "/m32.plan").parameters["c1.weight"])
        let stored = try readPlan(path: dir + "/m.plan").parameters
        let storedWeight = try XCTUnwrap(stored["c1.weight"])
        XCTAssertNotEqual(storedWeight, w, "f16 rounding should change some of these values")
        for (a, b) in zip(storedWeight, w) { XCTAssertEqual(a, b, accuracy: 1e-3 * max(abs(b), 1e-3)) }

        let r = try fergc(["train", graph, "--init", dir + "/m.plan", "--max-steps", "2", "--out", dir + "/run"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("loaded 4 tensors"), r.stdout)
        XCTAssertTrue(r.stdout.contains("not in the file): none"), r.stdout)
        let c = try Checkpoint.read(dir + "/run/checkpoint-last.npz")
        // The run's report says where its weights came from.
        let report = try String(contentsOfFile: dir + "/run/report.md", encoding: .utf8)
        XCTAssertTrue(report.contains("Started from: `\(dir)/m.plan` (`--init`: an inference plan's stored values, 4 tensors, \(stored.values.reduce(0) { $0 + $1.count }) values, FNV-1a "), report)
        // The frozen convolution holds the plan's values, bit for bit, after two steps.
        XCTAssertEqual(c.tensors["c1.weight"], storedWeight)
        XCTAssertEqual(c.tensors["c1.bias"], stored["c1.bias"])

        // Batchnorm was folded into the plan's convolution: its values are not the model's.
        let tiny = try fergc(["compile", "Models/tiny.graph", "-o", dir + "/tiny.plan"])
        XCTAssertEqual(tiny.status, 0, tiny.stderr)
        let bn = try fergc(["train", "Models/tiny.graph", "--init", dir + "/tiny.plan", "--max-steps", "1", "--out", dir + "/run2"])
        XCTAssertNotEqual(bn.status, 0)
        XCTAssertTrue(bn.stderr.contains("has batchnorm") && bn.stderr.contains("checkpoint"), bn.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run2/checkpoint-last.npz"))

        let ens = try fergc(["ensemble", dir + "/m.plan", dir + "/m.plan", "-o", dir + "/e.plan"])
        XCTAssertEqual(ens.status, 0, ens.stderr)
        let e = try fergc(["train", graph, "--init", dir + "/e.plan", "--max-steps", "1", "--out", dir + "/run3"])
        XCTAssertNotEqual(e.status, 0)
        XCTAssertTrue(e.stderr.contains("an ensemble plan") && e.stderr.contains("--member"), e.stderr)
    }
}
