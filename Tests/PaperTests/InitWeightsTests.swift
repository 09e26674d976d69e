// `fergc train --init W.npz`: named weights in, the rest initialized as usual, mismatches named.

import Foundation
import GraphIR
import NumPyIO
import Training
import XCTest

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
        try """
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
        """.write(toFile: graph, atomically: true, encoding: .utf8)
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
}
