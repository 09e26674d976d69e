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

/// The weights with every float moved one ulp up or down (seeded): what rounding the fixture's
/// float64 weights to float32 could have done to them.
func perturbedByOneULP(_ f: [String: NDArray]) -> [String: NDArray] {
    var state: UInt64 = 0x2545F4914F6CDD1D
    var out = f
    // In name order, so that every run moves the same weights the same way.
    for (name, array) in f.sorted(by: { $0.key < $1.key })
    where array.dtype == .float32 && !name.hasPrefix("grad.") && !["x", "logits", "loss", "eval_logits"].contains(name) {
        let moved = array.floats.map { v -> Float in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state & 1 == 0 ? v.nextUp : v.nextDown
        }
        out[name] = NDArray(floats: moved, shape: array.shape)
    }
    return out
}

final class ParityTests: XCTestCase {
    /// Runs the model on the fixture in float64 (the fixture's own precision) and compares every
    /// tensor. `sensitivityBound`: also run on weights moved by one ulp and allow each tensor
    /// twice that movement when it exceeds 1e-3 (the fixture's float32 storage cannot pin such
    /// a tensor any closer).
    func check(model modelPath: String, fixture: String, sensitivityBound: Bool,
               file: StaticString = #filePath, line: UInt = #line) throws {
        guard FileManager.default.fileExists(atPath: fixture) else {
            throw XCTSkip("fixture \(fixture) is not present")
        }
        let model = try Frontend.compile(path: modelPath)
        let f = try readArchive(fixture)
        let inputs = ["x": f["x"]!, "labels": f["y"]!]
        let trainOptions = RunOnceOptions(train: true, dropout: false, double: true)
        let train = try runOnce(model: model, weights: f, inputs: inputs, options: trainOptions)
        let eval = try runOnce(model: model, weights: f, inputs: inputs, options: RunOnceOptions(train: false, double: true))
        var sensitivity: [String: Double] = [:]
        if sensitivityBound {
            let moved = try runOnce(model: model, weights: perturbedByOneULP(f), inputs: inputs, options: trainOptions)
            for ((name, a), (_, b)) in zip(train, moved) { sensitivity[name] = parityError(b.floats, a.floats) }
        }
        var rows: [(name: String, error: Double, sensitivity: Double?)] = []
        for (name, array) in train {
            guard let expected = f[name] else { XCTFail("fixture has no '\(name)'", file: file, line: line); continue }
            XCTAssertEqual(array.shape, expected.shape, "\(name) shape", file: file, line: line)
            rows.append((name, parityError(array.floats, expected.floats), sensitivity[name]))
        }
        rows.append(("eval_logits", parityError(eval[0].array.floats, f["eval_logits"]!.floats), nil))
        let gradients = Set(f.keys.filter { $0.hasPrefix("grad.") })
        XCTAssertEqual(Set(train.map(\.name).filter { $0.hasPrefix("grad.") }), gradients, "every fixture gradient is computed", file: file, line: line)
        var table = "parity \(URL(fileURLWithPath: fixture).lastPathComponent) (float64; error, then movement under a one-ulp weight change):\n"
        for r in rows {
            table += "  \(r.name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(String(format: "%.2e", r.error))"
            table += r.sensitivity.map { String(format: "   %.2e", $0) } ?? ""
            table += "\n"
        }
        print(table, terminator: "")
        for r in rows {
            let bound = max(1e-3, 2 * (r.sensitivity ?? 0))
            XCTAssertLessThanOrEqual(r.error, bound, "\(r.name) error \(r.error)", file: file, line: line)
        }
    }

    func testMiniTunedMatchesPyTorch() throws {
        try check(model: repoRoot.appendingPathComponent("Tests/ParityTests/Fixtures/mini_tuned.graph").path,
                  fixture: repoRoot.appendingPathComponent("Tests/ParityTests/Fixtures/mini_tuned_parity.npz").path,
                  sensitivityBound: false)
    }

    func testVGGTunedMatchesPyTorch() throws {
        try check(model: repoRoot.appendingPathComponent("Models/vgg_tuned.graph").path,
                  fixture: repoRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures/vgg_tuned_parity.npz").path,
                  sensitivityBound: true)
    }
}
