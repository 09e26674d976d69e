// Whole-model parity with PyTorch: the fixtures hold weights, a batch, and PyTorch's logits,
// loss, every gradient and the inference-mode logits for the paper's tuned model. Each tensor's
// error is max|a-b| / (|b| + 1e-3 * max|b|), and must be at most 1e-3.

import Frontend
import GraphIR
import NumPyIO
import Training
import XCTest

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// max|a-b| / (|b| + 1e-3 * max|b|), elementwise then the max.
func parityError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    let scale = 1e-3 * Double(b.map { abs($0) }.max() ?? 0)
    var worst = 0.0
    for (x, y) in zip(a, b) {
        let e = abs(Double(x) - Double(y)) / (abs(Double(y)) + scale)
        if e.isNaN { return .infinity }
        worst = max(worst, e)
    }
    return worst
}

final class ParityTests: XCTestCase {
    func check(model modelPath: String, fixture: String, file: StaticString = #filePath, line: UInt = #line) throws {
        guard FileManager.default.fileExists(atPath: fixture) else {
            throw XCTSkip("fixture \(fixture) is not present")
        }
        let model = try Frontend.compile(path: modelPath)
        let f = try readArchive(fixture)
        let inputs = ["x": f["x"]!, "labels": f["y"]!]
        let train = try runOnce(model: model, weights: f, inputs: inputs, options: RunOnceOptions(train: true, dropout: false))
        let eval = try runOnce(model: model, weights: f, inputs: inputs, options: RunOnceOptions(train: false))
        var rows: [(String, Double)] = []
        for (name, array) in train {
            let key = name
            guard let expected = f[key] else { XCTFail("fixture has no '\(key)'", file: file, line: line); continue }
            XCTAssertEqual(array.shape, expected.shape, "\(name) shape", file: file, line: line)
            rows.append((name, parityError(array.floats, expected.floats)))
        }
        rows.append(("eval_logits", parityError(eval[0].array.floats, f["eval_logits"]!.floats)))
        let gradients = Set(f.keys.filter { $0.hasPrefix("grad.") })
        XCTAssertEqual(Set(train.map(\.name).filter { $0.hasPrefix("grad.") }), gradients, "every fixture gradient is computed", file: file, line: line)
        var table = "parity \(URL(fileURLWithPath: fixture).lastPathComponent):\n"
        for (name, e) in rows { table += "  \(name.padding(toLength: 36, withPad: " ", startingAt: 0)) \(String(format: "%.3e", e))\n" }
        print(table, terminator: "")
        for (name, e) in rows {
            XCTAssertLessThanOrEqual(e, 1e-3, "\(name) error \(e)", file: file, line: line)
        }
    }

    func testMiniTunedMatchesPyTorch() throws {
        try check(model: repoRoot.appendingPathComponent("Tests/ParityTests/Fixtures/mini_tuned.graph").path,
                  fixture: repoRoot.appendingPathComponent("Tests/ParityTests/Fixtures/mini_tuned_parity.npz").path)
    }

    func testVGGTunedMatchesPyTorch() throws {
        try check(model: repoRoot.appendingPathComponent("Models/vgg_tuned.graph").path,
                  fixture: repoRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures/vgg_tuned_parity.npz").path)
    }
}
