// Parity of compiled plans (optimized, memory-planned, run by the arena executor) with
// PyTorch, with every optimization on and with each one disabled: the inference plan's logits
// against `eval_logits`, and one training step's gradients against the fixture's.

import Frontend
import GraphIR
import NumPyIO
import Passes
import Runtime
import Training
import XCTest

final class PlanParityTests: XCTestCase {
    let fixturePath = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures/vgg_tuned_parity.npz").path
    let modelPath = repoRoot.appendingPathComponent("Models/vgg_tuned.graph").path

    func fixture() throws -> [String: NDArray] {
        guard FileManager.default.fileExists(atPath: fixturePath) else { throw XCTSkip("fixture \(fixturePath) is not present") }
        return try readArchive(fixturePath)
    }

    func testInferencePlanLogitsMatchEvalLogits() throws {
        let f = try fixture()
        let model = try Frontend.compile(path: modelPath)
        let x = f["x"]!
        let n = x.shape[0]
        for disabled in [[], ["remove-dropout"], ["fold-batchnorm"], ["fuse"]] as [[String]] {
            var options = CompileOptions()
            options.batch = n
            options.probe = false
            options.disabled = Set(disabled)
            options.weights = f.mapValues(\.floats)
            let plan = try compile(model, options).plan
            let ex = try Executor<Float>(plan: plan)
            ex.setBuffer(plan.buffer(named: "x")!, x.floats)
            try ex.run(batch: n)
            let e = parityError(ex.buffer(plan.outputs[0]), f["eval_logits"]!.floats)
            print("inference plan, disabled \(disabled): eval_logits error \(String(format: "%.2e", e))")
            XCTAssertLessThanOrEqual(e, 1e-3, "disabled \(disabled)")
        }
    }

    /// One training step of the compiled plan (without regularizers: the fixture's loss is the
    /// plain cross-entropy) in float64, gradients against the fixture within 1e-3, or within
    /// twice what a one-ulp change of the weights moves them where that is larger (see
    /// ParityTests).
    func testTrainingPlanGradientsMatchTheFixture() throws {
        let f = try fixture()
        let model = try Frontend.compile(path: modelPath)
        let n = f["x"]!.shape[0]
        let reference = try runOnce(model: model, weights: f, inputs: ["x": f["x"]!, "labels": f["y"]!],
                                    options: RunOnceOptions(train: true, dropout: false, double: true))
        let moved = try runOnce(model: model, weights: perturbedByOneULP(f), inputs: ["x": f["x"]!, "labels": f["y"]!],
                                options: RunOnceOptions(train: true, dropout: false, double: true))
        var sensitivity: [String: Double] = [:]
        for ((name, a), (_, b)) in zip(reference, moved) { sensitivity[name] = parityError(b.floats, a.floats) }
        for disabled in [["regularize"], ["regularize", "fuse"]] {
            var options = CompileOptions()
            options.mode = .training
            options.batch = n
            options.probe = false
            options.disabled = Set(disabled)
            options.weights = f.mapValues(\.floats)
            let plan = try compile(model, options).plan
            let ex = try Executor<Double>(plan: plan)
            ex.dropoutEnabled = false
            ex.setBuffer(plan.buffer(named: "x")!, f["x"]!.floats.map(Double.init))
            ex.setBuffer(plan.buffer(named: "labels")!, ints: f["y"]!.ints)
            ex.setBuffer(plan.buffer(named: "learning_rate")!, [1e-4])
            try ex.run(batch: n)
            var worst = (name: "", error: 0.0)
            var checked = 0
            for (name, expected) in f where name.hasPrefix("grad.") && name != "grad.x" {
                guard let i = plan.buffer(named: name) else { XCTFail("the plan has no '\(name)'"); continue }
                let e = parityError(ex.buffer(i).map(Float.init), expected.floats)
                XCTAssertLessThanOrEqual(e, max(1e-3, 2 * (sensitivity[name] ?? 0)), "\(name) with \(disabled) disabled")
                if e > worst.error { worst = (name, e) }
                checked += 1
            }
            XCTAssertEqual(checked, f.keys.filter { $0.hasPrefix("grad.") }.count - 1)
            print("training plan (float64), disabled \(disabled): \(checked) gradients, worst \(worst.name) \(String(format: "%.2e", worst.error))")
        }
    }
}
