// The optimized pipelines on the PyTorch parity fixture (the paper's tuned model at 1/8 width):
// every fusion on, and each pass disabled in turn. In Double, the optimized graphs must match
// the unoptimized ones to rounding, and be no further from PyTorch than they are.

import Frontend
import GraphIR
import NumPyIO
import Passes
import Runtime
import XCTest

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("ParityTests/Fixtures")

/// max|a-b| / (|b| + 1e-3 * max|b|), as ParityTests measures.
private func parityError(_ a: [Double], _ b: [Double]) -> Double {
    let scale = 1e-3 * (b.map(abs).max() ?? 0)
    return zip(a, b).map { abs($0 - $1) / (abs($1) + scale) }.max() ?? 0
}

/// max|a-b| / max|b|.
private func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    let scale = b.map(abs).max() ?? 0
    let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
    return scale > 0 ? worst / scale : worst
}

/// Runs `graph` in Double on the fixture's weights and batch; returns its outputs by name.
private func runFixture(_ graph: Graph, _ f: [String: [Double]], labels: [Int32], batch: Int) throws -> [String: [Double]] {
    let plan = try lowerToPlan(graph, maxBatch: batch)
    let ex = try Executor<Double>(plan: plan)
    ex.dropoutEnabled = false
    for id in graph.parameters + graph.states {
        ex.setBuffer(id.index, try XCTUnwrap(f[graph[id].name], "no weights for \(graph[id].name)"))
    }
    for id in graph.inputs {
        switch graph[id].name {
        case "x": ex.setBuffer(id.index, f["x"]!)
        case "labels": ex.setBuffer(id.index, ints: labels)
        case let other: XCTFail("unexpected input \(other)")
        }
    }
    try ex.run(batch: batch)
    var out: [String: [Double]] = [:]
    for o in graph.outputs { out[graph[o].name] = ex.buffer(o.index) }
    return out
}

final class FusionParityTests: XCTestCase {
    func load() throws -> (Graph, [String: [Double]], [Int32]) {
        let path = fixtures.appendingPathComponent("mini_tuned_parity.npz").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("no fixture \(path)") }
        let model = try Frontend.compile(path: fixtures.appendingPathComponent("mini_tuned.graph").path)
        var f: [String: [Double]] = [:]
        var labels: [Int32] = []
        for (name, array) in try NumPyIO.readNPZ(path: path) {
            if name == "y" { labels = array.ints } else { f[name] = array.floats.map(Double.init) }
        }
        return (model, f, labels)
    }

    func testInferencePipelineEachPassDisabled() throws {
        let (model, f, labels) = try load()
        let batch = labels.count
        var reference = model
        reference.training = nil
        reference.outputs = [model.id(named: "predictions")!]
        let unoptimized = try runFixture(reference, f, labels: labels, batch: batch)["predictions"]!
        let baseline = parityError(unoptimized, f["eval_logits"]!)
        for disabled in [nil] + Pipelines.inferenceOptimized.map(\.name) {
            var g = reference
            var folds: [FoldRecipe] = []
            for pass in Pipelines.inferenceOptimized where pass.name != disabled {
                if pass.name == "fold-batchnorm" { (g, folds) = try foldBatchnorm(g) } else { g = try pass.run(g) }
                try g.verify()
            }
            let label = disabled.map { "without \($0)" } ?? "every pass"
            XCTAssertEqual(folds.count, 0, "the paper's order has nothing to fold")
            let fusedCount = g.nodes.filter { $0.op.name.hasPrefix("fused_") }.count
            XCTAssertEqual(fusedCount, disabled == "fuse" ? 0 : 9, label)
            let logits = try runFixture(g, try applyFolds(folds, weights: f), labels: labels, batch: batch)["predictions"]!
            let vsUnoptimized = relativeError(logits, unoptimized)
            let vsTorch = parityError(logits, f["eval_logits"]!)
            print("inference \(label): vs unoptimized \(vsUnoptimized), vs PyTorch \(vsTorch) (unoptimized \(baseline))")
            XCTAssertLessThanOrEqual(vsUnoptimized, 1e-12, label)
            XCTAssertLessThanOrEqual(vsTorch, max(1e-3, baseline * (1 + 1e-6)), label)
        }
    }

    func testTrainingFusedMatchesUnfusedAndPyTorch() throws {
        let (model, f, labels) = try load()
        let batch = labels.count
        // As RunOnce does: training form, autodiff on the data loss (no regularizers).
        func step(fused: Bool) throws -> Graph {
            var g = try trainingForm(model)
            if fused { g = try fuse(g, mode: .training) }
            let wrt = g.parameters.filter { if case .parameter(let p) = g[$0].kind { return p.trainable } else { return false } }
                + g.inputs.filter { g[$0].type.dtype == .f32 }
            g = try autodiff(g, loss: "loss", wrt: wrt)
            g.outputs = [g.id(named: "predictions")!, g.id(named: "loss")!] + wrt.map { g.id(named: gradientName(of: g[$0].name))! }
            return try deadCodeElimination(g)
        }
        let unfused = try runFixture(try step(fused: false), f, labels: labels, batch: batch)
        let fusedGraph = try step(fused: true)
        XCTAssertEqual(fusedGraph.nodes.filter { $0.op.name.hasPrefix("fused_") && $0.op.name.hasSuffix("_train_grad") }.count, 9)
        let fused = try runFixture(fusedGraph, f, labels: labels, batch: batch)
        XCTAssertEqual(Set(fused.keys), Set(unfused.keys))
        var table = "training, fused vs unfused and vs PyTorch (unfused vs PyTorch):\n"
        for name in fused.keys.sorted() {
            let expectedName = name == "predictions" ? "logits" : name
            let vsUnfused = relativeError(fused[name]!, unfused[name]!)
            XCTAssertLessThanOrEqual(vsUnfused, 1e-10, name)
            guard let torch = f[expectedName] else { continue }
            let vsTorch = parityError(fused[name]!, torch), baseline = parityError(unfused[name]!, torch)
            table += "  \(name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(vsUnfused)  \(vsTorch) (\(baseline))\n"
            XCTAssertLessThanOrEqual(vsTorch, max(1e-3, baseline * (1 + 1e-6) + 1e-12), name)
        }
        print(table, terminator: "")
    }
}
