// Pass tests for remove-dropout, fold-batchnorm and fuse, TVM style: a `before` graph and an
// `expected` graph, both parsed from text by the frontend, compared through the canonical
// printer after the pass (and the verifier).

import Frontend
import GraphIR
import Passes
import XCTest

func parseGraph(_ text: String, file: String = "test.graph") throws -> Graph {
    try Frontend.compile(source: text, file: file)
}

/// Runs `pass` on `before` and checks the result verifies and prints as `expected` does.
func assertPass(_ pass: (Graph) throws -> Graph, _ before: String, _ expected: String,
                file: StaticString = #filePath, line: UInt = #line) throws {
    let after = try pass(try parseGraph(before))
    try after.verify()
    XCTAssertEqual(after.printed(), try parseGraph(expected).printed(), file: file, line: line)
}

/// A conv layer's parameters (c) and a batchnorm's (bn), in explicit form, with 4 channels.
let convBNParams = """
    model t
    input x: f32[N, 2, 6, 6]
    param c.weight: f32[4, 2, 3, 3], init=glorot_uniform
    param c.bias: f32[4], init=zeros
    param bn.gamma: f32[4], init=ones
    param bn.beta: f32[4], init=zeros
    state bn.running_mean: f32[4], init=zeros
    state bn.running_var: f32[4], init=ones

    """

final class FusionTests: XCTestCase {
    // MARK: remove-dropout

    func testRemoveDropoutRewiresConsumersAndOutputs() throws {
        try assertPass(removeDropout, """
            model t
            input x: f32[N, 3]
            a = relu(x)
            a.drop = dropout(a, rate=0.4)
            b = relu(a.drop)
            b.drop = dropout(b, rate=0.5)
            b.drop2 = dropout(b.drop, rate=0.5)
            output b.drop2, a.drop
            """, """
            model t
            input x: f32[N, 3]
            a = relu(x)
            b = relu(a)
            output b, a
            """)
    }

    func testRemoveDropoutLeavesTrainingFormAlone() throws {
        let text = """
            model t
            input x: f32[N, 3]
            y, y.mask = dropout_train(x, rate=0.4)
            output y
            """
        try assertPass(removeDropout, text, text)
    }

    // MARK: fold-batchnorm

    func testFoldConvBatchnormRelu() throws {
        let before = convBNParams + """
            c = conv2d(x, c.weight, c.bias, stride=1, padding=same)
            bn = batchnorm(c, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.01, momentum=0.99)
            r = relu(bn)
            output r
            """
        let (g, recipes) = try foldBatchnorm(try parseGraph(before))
        try g.verify()
        XCTAssertEqual(g.printed(), try parseGraph("""
            model t
            input x: f32[N, 2, 6, 6]
            param c.weight.folded: f32[4, 2, 3, 3], init=glorot_uniform, trainable=false
            param c.bias.folded: f32[4], init=zeros, trainable=false
            bn = conv2d(x, c.weight.folded, c.bias.folded, stride=1, padding=same)
            r = relu(bn)
            output r
            """).printed())
        XCTAssertEqual(recipes, [FoldRecipe(
            weight: "c.weight.folded", bias: "c.bias.folded", sourceWeight: "c.weight", sourceBias: "c.bias",
            gamma: "bn.gamma", beta: "bn.beta", runningMean: "bn.running_mean", runningVar: "bn.running_var",
            epsilon: 0.01, channels: 4)])
    }

    func testFoldDenseWithoutBiasCreatesOne() throws {
        let (g, recipes) = try foldBatchnorm(try parseGraph("""
            model t
            input x: f32[N, 3]
            param d.weight: f32[4, 3], init=glorot_uniform
            param bn.gamma: f32[4], init=ones
            param bn.beta: f32[4], init=zeros
            state bn.running_mean: f32[4], init=zeros
            state bn.running_var: f32[4], init=ones
            d = dense(x, d.weight)
            bn = batchnorm(d, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.001, momentum=0.99)
            output bn
            """))
        XCTAssertEqual(g.printed(), try parseGraph("""
            model t
            input x: f32[N, 3]
            param d.weight.folded: f32[4, 3], init=glorot_uniform, trainable=false
            param d.bias.folded: f32[4], init=zeros, trainable=false
            bn = dense(x, d.weight.folded, d.bias.folded)
            output bn
            """).printed())
        XCTAssertEqual(recipes.map(\.sourceBias), [nil])
        // The recipe's arithmetic, by hand: s = gamma / sqrt(var + eps), w' = w s, b' = -mean s + beta.
        let w: [Double] = [1, 2, 3, -1, -2, -3, 0.5, 0.5, 0.5, 4, 0, 0]
        let folded = try applyFolds(recipes, weights: [
            "d.weight": w, "bn.gamma": [1, 2, 0.5, 3], "bn.beta": [0, 1, -1, 0.25],
            "bn.running_mean": [0.5, -1, 0, 2], "bn.running_var": [1, 4, 0.25, 9]])
        for o in 0..<4 {
            let gamma = [1.0, 2, 0.5, 3][o], beta = [0.0, 1, -1, 0.25][o]
            let mean = [0.5, -1, 0, 2][o], variance = [1.0, 4, 0.25, 9][o]
            let s = gamma / (variance + 0.001).squareRoot()
            for k in 0..<3 { XCTAssertEqual(folded["d.weight.folded"]![o * 3 + k], w[o * 3 + k] * s, accuracy: 1e-15) }
            XCTAssertEqual(folded["d.bias.folded"]![o], -mean * s + beta, accuracy: 1e-15)
        }
    }

    func testFoldSkipsThePapersOrderAndSharedOutputs() throws {
        // conv -> relu -> batchnorm: relu sits between, nothing folds (fuse takes it instead).
        let papers = convBNParams + """
            c.preact = conv2d(x, c.weight, c.bias, stride=1, padding=same)
            c = relu(c.preact)
            bn = batchnorm(c, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.001, momentum=0.99)
            output bn
            """
        XCTAssertTrue(try foldBatchnorm(try parseGraph(papers)).recipes.isEmpty)
        // The conv output is also a graph output: folding would lose it.
        let shared = convBNParams + """
            c = conv2d(x, c.weight, c.bias, stride=1, padding=same)
            bn = batchnorm(c, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.001, momentum=0.99)
            output bn, c
            """
        XCTAssertTrue(try foldBatchnorm(try parseGraph(shared)).recipes.isEmpty)
    }

    // MARK: fuse (inference)

    func testFuseConvReluBatchnormThePapersOrder() throws {
        try assertPass({ try fuse($0, mode: .inference) }, convBNParams + """
            c.preact = conv2d(x, c.weight, c.bias, stride=1, padding=same)
            c = relu(c.preact)
            bn = batchnorm(c, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.001, momentum=0.99)
            p = maxpool(bn, size=2, stride=2, padding=same)
            output p
            """, convBNParams + """
            bn = fused_conv2d(x, c.weight, c.bias, bn.gamma, bn.beta, bn.running_mean, bn.running_var, stride=1, padding=same, bias=true, relu=true, batchnorm=after_relu, epsilon=0.001)
            p = maxpool(bn, size=2, stride=2, padding=same)
            output p
            """)
    }

    func testFuseConvBatchnormReluWithoutBias() throws {
        let params = convBNParams.replacingOccurrences(of: "param c.bias: f32[4], init=zeros\n", with: "")
        try assertPass({ try fuse($0, mode: .inference) }, params + """
            c = conv2d(x, c.weight, stride=2, padding=valid)
            bn = batchnorm(c, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.01, momentum=0.9)
            r = relu(bn)
            output r
            """, params + """
            r = fused_conv2d(x, c.weight, bn.gamma, bn.beta, bn.running_mean, bn.running_var, stride=2, padding=valid, bias=false, relu=true, batchnorm=before_relu, epsilon=0.01)
            output r
            """)
    }

    func testFuseDenseRelu() throws {
        let g = """
            model t
            input x: f32[N, 3]
            param d.weight: f32[4, 3], init=glorot_uniform
            param d.bias: f32[4], init=zeros

            """
        try assertPass({ try fuse($0, mode: .inference) }, g + """
            d.preact = dense(x, d.weight, d.bias)
            d = relu(d.preact)
            s = softmax(d)
            output s
            """, g + """
            d = fused_dense(x, d.weight, d.bias, bias=true, relu=true, batchnorm=none, epsilon=0.001)
            s = softmax(d)
            output s
            """)
    }

    func testFuseStopsAtASharedValue() throws {
        // c is read twice: the relu stays outside; conv + relu-free fusion is nothing to do.
        let text = convBNParams + """
            c.preact = conv2d(x, c.weight, c.bias, stride=1, padding=same)
            c = relu(c.preact)
            bn = batchnorm(c, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.001, momentum=0.99)
            s = add(bn, c)
            output s
            """
        try assertPass({ try fuse($0, mode: .inference) }, text, convBNParams + """
            c = fused_conv2d(x, c.weight, c.bias, stride=1, padding=same, bias=true, relu=true, batchnorm=none, epsilon=0.001)
            bn = batchnorm(c, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.001, momentum=0.99)
            s = add(bn, c)
            output s
            """)
        // A conv alone (bias included already) is left as it is.
        let alone = convBNParams + """
            c = conv2d(x, c.weight, c.bias, stride=1, padding=same)
            output c
            """
        try assertPass({ try fuse($0, mode: .inference) }, alone, alone)
    }

    // MARK: fuse (training)

    func testFuseTrainingKeepsBatchStatisticsAndTheStatsUpdate() throws {
        let before = try trainingForm(try parseGraph(convBNParams + """
            c.preact = conv2d(x, c.weight, c.bias, stride=1, padding=same)
            c = relu(c.preact)
            bn = batchnorm(c, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.001, momentum=0.99)
            output bn
            """))
        let after = try fuse(before, mode: .training)
        try after.verify()
        XCTAssertEqual(after.printed(), try parseGraph(convBNParams + """
            bn, c, bn.mean, bn.var = fused_conv2d_train(x, c.weight, c.bias, bn.gamma, bn.beta, stride=1, padding=same, bias=true, relu=true, batchnorm=after_relu, epsilon=0.001)
            batchnorm_stats_update(bn.running_mean, bn.running_var, bn.mean, bn.var, c, momentum=0.99)
            output bn
            """).printed())
        // In inference mode batchnorm_train does not join (only conv + relu fuse).
        XCTAssertEqual(try fuse(before, mode: .inference).printed(), try parseGraph(convBNParams + """
            c = fused_conv2d(x, c.weight, c.bias, stride=1, padding=same, bias=true, relu=true, batchnorm=none, epsilon=0.001)
            bn, bn.mean, bn.var = batchnorm_train(c, bn.gamma, bn.beta, epsilon=0.001, momentum=0.99)
            batchnorm_stats_update(bn.running_mean, bn.running_var, bn.mean, bn.var, c, momentum=0.99)
            output bn
            """).printed())
        // And in training mode an inference-form (frozen) batchnorm does not.
        let frozen = try parseGraph(convBNParams.replacingOccurrences(of: "bn.gamma: f32[4], init=ones", with: "bn.gamma: f32[4], init=ones, trainable=false") + """
            c = conv2d(x, c.weight, c.bias, stride=1, padding=same)
            bn = batchnorm(c, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.001, momentum=0.99)
            output bn
            """)
        XCTAssertEqual(try fuse(try trainingForm(frozen), mode: .training).printed(), frozen.printed())
    }

    func testFusedOpsRoundTripThroughThePrinter() throws {
        let text = convBNParams + """
            bn, c, bn.mean, bn.var = fused_conv2d_train(x, c.weight, c.bias, bn.gamma, bn.beta, stride=1, padding=same, bias=true, relu=true, batchnorm=after_relu, epsilon=0.001)
            dbn = relu(bn)
            dx, dw, db, dgamma, dbeta = fused_conv2d_train_grad(dbn, x, c.weight, c, bn.gamma, bn.mean, bn.var, stride=1, padding=same, bias=true, relu=true, batchnorm=after_relu, epsilon=0.001, input_grad=true, weight_grad=true)
            y = fused_conv2d(x, c.weight, c.bias, bn.gamma, bn.beta, bn.running_mean, bn.running_var, stride=1, padding=same, bias=true, relu=true, batchnorm=before_relu, epsilon=0.001)
            output y, dx, dw
            """
        let g = try parseGraph(text)
        try g.verify()
        XCTAssertEqual(try parseGraph(g.printed()).printed(), g.printed())
        XCTAssertThrowsError(try parseGraph(convBNParams + """
            y = fused_conv2d(x, c.weight, c.bias, stride=1, padding=same, bias=true, relu=false, batchnorm=after_relu, epsilon=0.001)
            output y
            """))
    }

    // MARK: pipelines

    func testInferenceOptimizedOnTheTunedModel() throws {
        let model = try Frontend.compile(path: fusionRepoRoot.appendingPathComponent("Models/vgg_tuned.graph").path)
        var pm = PassManager(Pipelines.inferenceOptimized)
        let g = try pm.run(model)
        let ops = g.nodes.map(\.op.name)
        XCTAssertEqual(ops.filter { $0 == "fused_conv2d" }.count, 7)
        XCTAssertEqual(ops.filter { $0 == "fused_dense" }.count, 2)
        for gone in ["dropout", "batchnorm", "relu", "conv2d"] { XCTAssertFalse(ops.contains(gone), gone) }
        XCTAssertEqual(ops.filter { $0 == "dense" }.count, 1)  // predictions: no relu, no batchnorm
        _ = try lowerToPlan(g, maxBatch: 2)
    }

    func testTrainingOptimizedOnTheTunedModel() throws {
        let model = try Frontend.compile(path: fusionRepoRoot.appendingPathComponent("Models/vgg_tuned.graph").path)
        var pm = PassManager(Pipelines.trainingOptimized)
        let g = try pm.run(model)
        let ops = g.nodes.map(\.op.name)
        XCTAssertEqual(ops.filter { $0 == "fused_conv2d_train" }.count, 7)
        XCTAssertEqual(ops.filter { $0 == "fused_dense_train" }.count, 2)
        XCTAssertEqual(ops.filter { $0 == "fused_conv2d_train_grad" }.count, 7)
        XCTAssertEqual(ops.filter { $0 == "fused_dense_train_grad" }.count, 2)
        XCTAssertEqual(ops.filter { $0 == "batchnorm_stats_update" }.count, 9)
        for gone in ["batchnorm_train", "batchnorm_train_grad", "relu", "relu_grad", "conv2d_grad_input", "conv2d_grad_weight"] {
            XCTAssertFalse(ops.contains(gone), gone)
        }
        // The first conv reads the image: no input gradient is computed for it.
        let first = try XCTUnwrap(g.nodes.first { $0.op.name == "fused_conv2d_train_grad" && g[$0.inputs[1]].name == "x" })
        guard case .fusedTrainGrad(let a) = first.op else { return XCTFail() }
        XCTAssertFalse(a.inputGrad)
        XCTAssertTrue(a.weightGrad)
        _ = try lowerToPlan(g, maxBatch: 2)
    }
}

private let fusionRepoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
