// `fergc check-grad`'s engine (Passes/GradientCheck.swift) on small models: the compiled
// training step's gradients agree with float64 central differences, and the check can fail.

import Frontend
import GraphIR
import Passes
import XCTest

final class CheckGradTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testTinyModelGradientsMatchFiniteDifferences() throws {
        let model = try Frontend.compile(path: root.appendingPathComponent("Models/tiny.graph").path)
        var options = GradientCheckOptions()
        options.samples = 2
        let rows = try checkGradients(model, options)
        // Every trainable tensor of tiny: conv, batchnorm and dense weights and biases.
        XCTAssertEqual(Set(rows.map(\.name)).isSuperset(of: ["c1.weight", "c2.weight", "d1.weight", "logits.weight"]), true, "\(rows.map(\.name))")
        for r in rows {
            XCTAssertEqual(r.checked, min(2, r.elements))
            XCTAssertLessThan(r.maxRelativeError, 1e-4, "\(r.name): analytic \(r.analytic), numeric \(r.numeric)")
        }
        // The check can fail: a huge step makes the differences wrong for a nonlinear model.
        options.step = 30
        options.layers = ["c2.weight"]
        let coarse = try checkGradients(model, options)
        XCTAssertGreaterThan(coarse.map(\.maxRelativeError).max() ?? 0, 1e-3)
    }

    func testLayerFilterAndClearErrors() throws {
        let model = try Frontend.compile(path: root.appendingPathComponent("Models/tiny.graph").path)
        var options = GradientCheckOptions()
        options.samples = 1
        options.layers = ["d1"]
        let rows = try checkGradients(model, options)
        XCTAssertFalse(rows.isEmpty)
        XCTAssertTrue(rows.allSatisfy { $0.name.hasPrefix("d1") }, "\(rows.map(\.name))")
        options.layers = ["nothing"]
        XCTAssertThrowsError(try checkGradients(model, options)) { XCTAssertTrue("\($0)".contains("no trainable parameter starts with")) }
        options.layers = []
        options.weights = ["c1.weight": [Float](repeating: .nan, count: 36)]
        XCTAssertThrowsError(try checkGradients(model, options)) { XCTAssertTrue("\($0)".contains("non-finite"), "\($0)") }
    }
}
