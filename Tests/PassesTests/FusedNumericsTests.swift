// Numerics of fold-batchnorm and fuse: finite-difference gradient checks of the fused training
// ops (the GradientCheckTests harness with the fuse pass inserted before autodiff), fused vs
// unfused on vgg-like mini graphs in inference and training (outputs and every gradient, in
// Double), folding against the unfolded graph, and the probe check naming a bad pass.

import Frontend
import GraphIR
import Passes
import Runtime
import XCTest

/// The model's training step up to the gradients: training-form, regularize, (fuse), autodiff
/// with respect to `wrt` names (default: trainable parameters and f32 inputs); outputs are the
/// loss, then the gradients.
func trainingGraph(_ model: Graph, fused: Bool, wrt names: [String]? = nil) throws -> Graph {
    var g = try regularize(try trainingForm(model))
    if fused { g = try fuse(g, mode: .training) }
    let wrt = try names.map { try $0.map { n -> ValueID in
        guard let id = g.id(named: n) else { throw PassError(pass: "test", message: "no '\(n)'") }
        return id
    } } ?? (g.parameters.filter { if case .parameter(let p) = g[$0].kind { return p.trainable } else { return false } }
            + g.inputs.filter { g[$0].type.dtype == .f32 })
    g = try autodiff(g, wrt: wrt)
    g.outputs = [g.id(named: g.training!.loss)!] + wrt.map { g.id(named: gradientName(of: g[$0].name))! }
    g = try deadCodeElimination(g)
    try g.verify()
    return g
}

/// A vgg-like mini model: two conv blocks (the paper's conv -> relu -> batchnorm order, or
/// conv -> batchnorm -> relu when `bnFirst`), a dense block, logits and the loss.
func miniVGG(bnFirst: Bool, bias: Bool = true) -> String {
    func block(_ name: String, _ input: String, filters: Int) -> String {
        if bnFirst {
            return """
                \(name) = conv2d(\(input), filters=\(filters), kernel=3, padding=same, bias=\(bias))
                \(name)_bn = batchnorm(\(name), epsilon=1e-3, momentum=0.99)
                \(name)_act = relu(\(name)_bn)
                """
        }
        return """
            \(name) = conv2d(\(input), filters=\(filters), kernel=3, padding=same, activation=relu, bias=\(bias))
            \(name)_act = batchnorm(\(name), epsilon=1e-3, momentum=0.99)
            """
    }
    return """
        model mini
        input x: f32[N, 1, 8, 8]
        input labels: i32[N]
        \(block("b1c1", "x", filters: 3))
        b1_drop = dropout(b1c1_act, rate=0.4)
        \(block("b1c2", "b1_drop", filters: 3))
        b1_pool = maxpool(b1c2_act, size=2, stride=2, padding=same)
        \(block("b2c1", "b1_pool", filters: 4))
        b2_pool = maxpool(b2c1_act, size=2, stride=2, padding=same)
        flat = flatten(b2_pool)
        fc = dense(flat, units=6, activation=relu, l2=1e-3)
        fc_bn = batchnorm(fc, epsilon=1e-3, momentum=0.99)
        fc_drop = dropout(fc_bn, rate=0.5)
        predictions = dense(fc_drop, units=5)
        loss = softmax_cross_entropy(predictions, labels)
        output predictions, loss
        train {
          loss = loss
          optimizer = adam(lr=1e-4)
          batch = 4
        }
        """
}

final class FusedNumericsTests: XCTestCase {
    // MARK: finite differences of the fused training ops

    /// GradientCheckTests.check with the fuse pass (training mode) before autodiff; asserts
    /// that the graph really contains the fused op `expect`.
    func checkFused(_ graph: Graph, wrt: [ValueID], expect: String, positive: Set<String> = [], samples: Int = 12,
                    file: StaticString = #filePath, line: UInt = #line) throws {
        let batch = 3
        let g = try trainingGraph(graph, fused: true, wrt: wrt.map { graph[$0].name })
        XCTAssertTrue(g.nodes.contains { $0.op.name == expect }, "no \(expect) in\n\(g.printed())", file: file, line: line)
        XCTAssertTrue(g.nodes.contains { $0.op.name == expect + "_grad" }, file: file, line: line)
        try finiteDifferenceCheck(g, original: graph, wrt: wrt, positive: positive, samples: samples, batch: batch, file: file, line: line)
    }

    func testConvReluBatchnormWithBias() throws {
        var b = GraphBuilder()
        let x = b.input("x", [2, 5, 5])
        let w = b.param("w", [3, 2, 3, 3]), bias = b.param("b", [3])
        let gamma = b.param("bn.gamma", [3]), beta = b.param("bn.beta", [3])
        let mean = b.state("bn.running_mean", [3]), variance = b.state("bn.running_var", [3])
        let z = b.op(.conv2d(Conv2DAttrs()), x, w, bias, name: "z")
        let r = b.op(.relu, z, name: "r")
        let y = b.op(.batchnorm(BatchNormAttrs()), r, gamma, beta, mean, variance, name: "y")
        try checkFused(b.finish(y), wrt: b.wrt, expect: "fused_conv2d_train")
    }

    func testConvBatchnormReluNoBiasStride2Valid() throws {
        var b = GraphBuilder()
        let x = b.input("x", [2, 7, 6])
        let w = b.param("w", [3, 2, 3, 2])
        let gamma = b.param("bn.gamma", [3]), beta = b.param("bn.beta", [3])
        let mean = b.state("bn.running_mean", [3]), variance = b.state("bn.running_var", [3])
        let z = b.op(.conv2d(Conv2DAttrs(stride: 2, padding: .valid)), x, w, name: "z")
        let n = b.op(.batchnorm(BatchNormAttrs(epsilon: 0.01)), z, gamma, beta, mean, variance, name: "n")
        let y = b.op(.relu, n, name: "y")
        try checkFused(b.finish(y), wrt: b.wrt, expect: "fused_conv2d_train")
    }

    func testConvReluAlone() throws {
        var b = GraphBuilder()
        let x = b.input("x", [1, 6, 5])
        let w = b.param("w", [2, 1, 3, 3]), bias = b.param("b", [2])
        let z = b.op(.conv2d(Conv2DAttrs(stride: 2, padding: .same)), x, w, bias, name: "z")
        let y = b.op(.relu, z, name: "y")
        try checkFused(b.finish(y), wrt: b.wrt, expect: "fused_conv2d_train")
    }

    func testConvBatchnormWithoutRelu() throws {
        var b = GraphBuilder()
        let x = b.input("x", [2, 4, 4])
        let w = b.param("w", [3, 2, 1, 1]), bias = b.param("b", [3])
        let gamma = b.param("bn.gamma", [3]), beta = b.param("bn.beta", [3])
        let mean = b.state("bn.running_mean", [3]), variance = b.state("bn.running_var", [3])
        let z = b.op(.conv2d(Conv2DAttrs()), x, w, bias, name: "z")
        let y = b.op(.batchnorm(BatchNormAttrs()), z, gamma, beta, mean, variance, name: "y")
        try checkFused(b.finish(y), wrt: b.wrt, expect: "fused_conv2d_train")
    }

    func testDenseReluBatchnorm() throws {
        var b = GraphBuilder()
        let x = b.input("x", [6])
        let w = b.param("w", [4, 6]), bias = b.param("b", [4])
        let gamma = b.param("bn.gamma", [4]), beta = b.param("bn.beta", [4])
        let mean = b.state("bn.running_mean", [4]), variance = b.state("bn.running_var", [4])
        let h = b.op(.dense, x, w, bias, name: "h")
        let r = b.op(.relu, h, name: "r")
        let y = b.op(.batchnorm(BatchNormAttrs()), r, gamma, beta, mean, variance, name: "y")
        try checkFused(b.finish(y), wrt: b.wrt, expect: "fused_dense_train")
    }

    func testDenseBatchnormReluFrozenWeight() throws {
        var b = GraphBuilder()
        let x = b.input("x", [5])
        let w = b.param("w", [4, 5], trainable: false)
        let gamma = b.param("bn.gamma", [4]), beta = b.param("bn.beta", [4])
        let mean = b.state("bn.running_mean", [4]), variance = b.state("bn.running_var", [4])
        let h = b.op(.dense, x, w, name: "h")
        let n = b.op(.batchnorm(BatchNormAttrs()), h, gamma, beta, mean, variance, name: "n")
        let y = b.op(.relu, n, name: "y")
        try checkFused(b.finish(y), wrt: b.wrt, expect: "fused_dense_train")
    }

    // MARK: fused vs unfused

    func testFusedMatchesUnfusedInferenceBothOrders() throws {
        for bnFirst in [false, true] {
            for bias in [true, false] {
                let model = try parseGraph(miniVGG(bnFirst: bnFirst, bias: bias))
                let (folded, recipes) = try foldBatchnorm(try removeDropout(model))
                XCTAssertEqual(recipes.count, bnFirst ? 3 : 0)
                // Fusion alone: to rounding.
                let fusedOnly = try fuse(try removeDropout(model), mode: .inference)
                XCTAssertEqual(fusedOnly.nodes.filter { $0.op.name.hasPrefix("fused_") }.count, 4)
                for (name, e) in try probeCheck(original: model, optimized: fusedOnly) {
                    XCTAssertLessThanOrEqual(e, 1e-12, "\(name), bnFirst \(bnFirst), bias \(bias)")
                }
                // Folding computes the scale with the model's epsilon in double; the unfused
                // kernel's epsilon is the float 1e-3, hence a looser bound.
                let all = try fuse(folded, mode: .inference)
                for (name, e) in try probeCheck(original: model, optimized: all, folds: recipes) {
                    XCTAssertLessThanOrEqual(e, 1e-9, "\(name), bnFirst \(bnFirst), bias \(bias)")
                }
                // And in Float, what a plan computes.
                for (name, e) in try probeCheck(original: model, optimized: all, folds: recipes, options: ProbeOptions(double: false)) {
                    XCTAssertLessThanOrEqual(e, 1e-4, "float \(name), bnFirst \(bnFirst), bias \(bias)")
                }
            }
        }
    }

    func testFusedMatchesUnfusedTrainingEveryGradient() throws {
        for bnFirst in [false, true] {
            let model = try parseGraph(miniVGG(bnFirst: bnFirst))
            let unfused = try trainingGraph(model, fused: false)
            let fused = try trainingGraph(model, fused: true)
            XCTAssertEqual(fused.nodes.filter { $0.op.name.hasSuffix("_train_grad") && $0.op.name.hasPrefix("fused_") }.count, 4)
            XCTAssertEqual(unfused.outputs.map { unfused[$0].name }, fused.outputs.map { fused[$0].name })
            let d = try probeDifferences(original: unfused, optimized: fused, options: ProbeOptions(inputRange: 0...1))
            XCTAssertEqual(d.count, unfused.outputs.count)
            // With bnFirst, a conv bias sits in front of a batchnorm: its gradient is zero in
            // exact arithmetic and both graphs give rounding noise (~1e-17), whose relative
            // difference is anything (0.4-1.1 on AVX-512 OpenBLAS kernels). Such an output is
            // measured against the largest gradient of the step instead of its own size.
            let largest = d.values.map(\.scale).max() ?? 0
            for (name, e) in d {
                let zeroInExactArithmetic = e.scale < 1e-12 * largest
                let error = e.maxAbs / (zeroInExactArithmetic ? largest : e.scale)
                XCTAssertLessThanOrEqual(error, 1e-10, "\(name), bnFirst \(bnFirst), max |diff| \(e.maxAbs), scale \(e.scale)")
            }
        }
    }

    func testDenseBackwardAcrossChunks() throws {
        // More samples than fusedDenseChunk: the dense backward runs in several chunks.
        let model = try parseGraph("""
            model d
            input x: f32[N, 7]
            input labels: i32[N]
            h = dense(x, units=5, activation=relu)
            h_bn = batchnorm(h)
            predictions = dense(h_bn, units=3)
            loss = softmax_cross_entropy(predictions, labels)
            output loss
            train { loss = loss
              optimizer = sgd(lr=0.1) }
            """)
        let unfused = try trainingGraph(model, fused: false)
        let fused = try trainingGraph(model, fused: true)
        let errors = try probeCheck(original: unfused, optimized: fused,
                                    options: ProbeOptions(batch: fusedDenseChunk * 2 + 3, inputRange: -1...1))
        for (name, e) in errors { XCTAssertLessThanOrEqual(e, 1e-10, name) }
    }

    // MARK: probe

    func testProbePipelineNamesTheBadPass() throws {
        let model = try parseGraph(miniVGG(bnFirst: true))
        let report = try probePipeline(model, passes: Pipelines.inferenceOptimized, tolerance: 1e-9)
        XCTAssertEqual(report.errors.map(\.pass), ["remove-dropout", "fold-batchnorm", "fuse", "dce"])
        XCTAssertEqual(report.folds.count, 3)
        // A pass that turns the first relu into a leaky one changes the results.
        let leaky = Pass("leaky") { g in
            var g = g
            let i = g.nodes.firstIndex { if case .relu = $0.op { return true } else { return false } }!
            g.nodes[i].op = .leakyRelu(alpha: 0.3)
            return g
        }
        XCTAssertThrowsError(try probePipeline(model, passes: [Pipelines.removeDropout, leaky, Pipelines.fuse], tolerance: 1e-6)) { error in
            XCTAssertEqual((error as? PassError)?.pass, "leaky", "\(error)")
        }
        // The training pipeline: training-form re-bases the reference, fusion keeps the loss.
        let training = try probePipeline(model, passes: Pipelines.trainingOptimized, tolerance: 1e-9,
                                         options: ProbeOptions(inputRange: 0...1))
        XCTAssertEqual(training.errors.map(\.pass), ["regularize", "fuse", "autodiff", "optimizer", "dce", "frozen-prefix"])
    }
}
