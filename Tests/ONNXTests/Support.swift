// Helpers shared by the ONNX tests: paths, compiling an imported graph, running a plan.

import Foundation
import GraphIR
import Interop
import Passes
import Runtime
import XCTest

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let sharedFixtures = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures")
/// Debian's libonnx-testdata (`.ci/run` installs it); FERGC_ONNX_TESTDATA overrides.
let onnxTestdata = ProcessInfo.processInfo.environment["FERGC_ONNX_TESTDATA"] ?? "/usr/share/libonnx-testdata/data"

func sharedFixture(_ name: String) throws -> String {
    let p = sharedFixtures.appendingPathComponent(name).path
    guard FileManager.default.fileExists(atPath: p) else { throw XCTSkip("\(p) is absent (the shared fixtures are not beside the project)") }
    return p
}

/// Compiles an imported graph for inference with its weights.
func compileImported(_ imp: ImportedModel, batch: Int, algorithms: ConvAlgorithmPolicy = .auto) throws -> Plan {
    var o = CompileOptions()
    o.convAlgorithms = algorithms
    o.mode = .inference
    o.batch = batch
    o.probe = false
    o.weights = Dictionary(uniqueKeysWithValues: imp.weights.map { ($0.name, $0.values) })
    return try compile(imp.graph, o).plan
}

/// An executor for a plan with its parameters set, run on inputs given by buffer name.
final class PlanRunner {
    let plan: Plan
    let ex: Executor<Float>
    init(_ plan: Plan) throws {
        self.plan = plan
        ex = try Executor<Float>(plan: plan)
        ex.dropoutEnabled = false
        for (i, b) in plan.buffers.enumerated() {
            if let v = plan.parameters[b.name] { ex.setBuffer(i, v) }
        }
    }

    /// Every output by buffer name.
    func run(_ inputs: [String: [Float]], batch: Int) throws -> [String: [Float]] {
        for (name, v) in inputs {
            guard let i = plan.buffer(named: name) else { throw ModelError("the plan has no input '\(name)'") }
            ex.setBuffer(i, v)
        }
        try ex.run(batch: batch)
        var out: [String: [Float]] = [:]
        for o in plan.outputs { out[plan.buffers[o].name] = ex.buffer(o) }
        return out
    }
}

/// Runs a plan on inputs given by buffer name; returns every output by buffer name.
func runPlan(_ plan: Plan, inputs: [String: [Float]], batch: Int) throws -> [String: [Float]] {
    try PlanRunner(plan).run(inputs, batch: batch)
}

func maxAbsDiff(_ a: [Float], _ b: [Double]) -> Double {
    zip(a, b).map { abs(Double($0) - $1) }.max() ?? .infinity
}
