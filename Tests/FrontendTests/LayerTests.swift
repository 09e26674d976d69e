import XCTest
import GraphIR
@testable import Frontend

/// Layer sugar, defaults and the smaller language features.
final class LayerTests: XCTestCase {
    private func param(_ g: Graph, _ name: String, file: StaticString = #filePath, line: UInt = #line) -> (TensorType, ParameterInfo)? {
        guard let id = g.id(named: name), case .parameter(let p) = g[id].kind else {
            XCTFail("no parameter \(name)", file: file, line: line)
            return nil
        }
        return (g[id].type, p)
    }

    func testConvLayerDefaults() throws {
        let g = try XCTUnwrap(compiles(header + "c = conv2d(x, filters=6)\noutput c\n"))
        let (wt, w) = try XCTUnwrap(param(g, "c.weight"))
        XCTAssertEqual(wt, .fixed([6, 1, 3, 3]))
        XCTAssertEqual(w, ParameterInfo(initializer: .glorotUniform, trainable: true, l2: 0, maxNorm: nil))
        let (bt, b) = try XCTUnwrap(param(g, "c.bias"))
        XCTAssertEqual(bt, .fixed([6]))
        XCTAssertEqual(b, ParameterInfo(initializer: .zeros))
        XCTAssertEqual(g.nodes.count, 1)
        XCTAssertEqual(g.nodes[0].op, .conv2d(Conv2DAttrs(stride: 1, padding: .same)))
        XCTAssertEqual(g.nodes[0].name, "c")
        XCTAssertEqual(g.nodes[0].inputs.map { g[$0].name }, ["x", "c.weight", "c.bias"])
        XCTAssertEqual(g[g.nodes[0].outputs[0]].type, .batched([6, 8, 8]))
    }

    func testConvLayerEverything() throws {
        let src = header + """
            c = conv2d(x, filters=5, kernel=[3, 5], stride=2, padding=valid, bias=true,
                       activation=leaky_relu, alpha=0.1, init=he_uniform, bias_init=constant(0.5),
                       l2=1e-4, max_norm=3, max_norm_axis=per_filter, trainable=false)
            output c

            """
        let g = try XCTUnwrap(compiles(src))
        let (wt, w) = try XCTUnwrap(param(g, "c.weight"))
        XCTAssertEqual(wt, .fixed([5, 1, 3, 5]))
        XCTAssertEqual(w, ParameterInfo(initializer: .heUniform, trainable: false, l2: 1e-4, maxNorm: MaxNorm(3, axis: .perFilter)))
        let (_, b) = try XCTUnwrap(param(g, "c.bias"))
        XCTAssertEqual(b, ParameterInfo(initializer: .constant(0.5), trainable: false))
        XCTAssertEqual(g.nodes.map(\.name), ["c.preact", "c"])
        XCTAssertEqual(g.nodes[0].op, .conv2d(Conv2DAttrs(stride: 2, padding: .valid)))
        XCTAssertEqual(g.nodes[1].op, .leakyRelu(alpha: 0.1))
        XCTAssertEqual(g[g.nodes[1].outputs[0]].type, .batched([5, 3, 2]))
        XCTAssertEqual(g.summary().paramsNonTrainable, 5 * 15 + 5)
    }

    func testReluActivationNamesThePreactivation() throws {
        let g = try XCTUnwrap(compiles(header + "c = conv2d(x, filters=2, activation=relu)\nd = relu(c)\n"))
        XCTAssertEqual(g.nodes.map { "\(g[$0.outputs[0]].name)=\($0.op.name)(\($0.inputs.map { g[$0].name }.joined(separator: ",")))" },
                       ["c.preact=conv2d(x,c.weight,c.bias)", "c=relu(c.preact)", "d=relu(c)"])
        XCTAssertEqual(g.summary().layers.map(\.name), ["c", "d"])
    }

    func testDenseLayer() throws {
        let src = header + "f = flatten(x)\nh = dense(f, units=10, bias=false, l2=0.5, max_norm=2)\n"
        let g = try XCTUnwrap(compiles(src))
        let (wt, w) = try XCTUnwrap(param(g, "h.weight"))
        XCTAssertEqual(wt, .fixed([10, 64]))
        XCTAssertEqual(w, ParameterInfo(initializer: .glorotUniform, l2: 0.5, maxNorm: MaxNorm(2, axis: .keras)))
        XCTAssertNil(g.id(named: "h.bias"))
        XCTAssertEqual(g.nodes.last?.op, .dense)
        XCTAssertEqual(g.nodes.last?.inputs.count, 2)
    }

    func testBatchnormLayer() throws {
        let g = try XCTUnwrap(compiles(header + "c = conv2d(x, filters=3)\nbn = batchnorm(c)\nbn2 = batchnorm(bn, epsilon=1e-5, momentum=0.9, trainable=false)\n"))
        XCTAssertEqual(g.nodes[1].op, .batchnorm(BatchNormAttrs(epsilon: 1e-3, momentum: 0.99)))
        XCTAssertEqual(g.nodes[1].inputs.map { g[$0].name }, ["c", "bn.gamma", "bn.beta", "bn.running_mean", "bn.running_var"])
        XCTAssertEqual(g.nodes[2].op, .batchnorm(BatchNormAttrs(epsilon: 1e-5, momentum: 0.9)))
        let (gt, gamma) = try XCTUnwrap(param(g, "bn.gamma"))
        XCTAssertEqual(gt, .fixed([3]))
        XCTAssertEqual(gamma.initializer, .ones)
        XCTAssertEqual(try XCTUnwrap(param(g, "bn.beta")).1.initializer, .zeros)
        XCTAssertFalse(try XCTUnwrap(param(g, "bn2.gamma")).1.trainable)
        guard let rv = g.id(named: "bn.running_var"), case .state(.ones) = g[rv].kind else { return XCTFail("running_var") }
        guard let rm = g.id(named: "bn.running_mean"), case .state(.zeros) = g[rm].kind else { return XCTFail("running_mean") }
        XCTAssertEqual(g.summary().paramsNonTrainable, 12 + 6)
    }

    func testExplicitBatchnormStillWorks() throws {
        let src = header + "param g: f32[1], init=ones\nparam b: f32[1]\nstate m: f32[1]\nstate v: f32[1], init=ones\ny = batchnorm(x, g, b, m, v)\n"
        let g = try XCTUnwrap(compiles(src))
        XCTAssertEqual(g.nodes[0].op, .batchnorm(BatchNormAttrs()))
    }

    func testOpDefaults() throws {
        let g = try XCTUnwrap(compiles(header + "p = maxpool(x)\nq = avgpool(x, size=3)\nk = leaky_relu(x)\nc = concat(x, x)\n"))
        XCTAssertEqual(g.nodes.map(\.op), [.maxpool(PoolAttrs(size: 2, stride: 2, padding: .valid)),
                                           .avgpool(PoolAttrs(size: 3, stride: 3, padding: .valid)),
                                           .leakyRelu(alpha: 0.3), .concat(axis: 1)])
    }

    func testParamAndStateDefaults() throws {
        let g = try XCTUnwrap(compiles("model m\nparam w: f32[2, 2]\nparam b: f32[2]\nparam s: f32[]\nstate t: f32[2]\n"))
        XCTAssertEqual(g.values.map(\.kind), [.parameter(ParameterInfo(initializer: .glorotUniform)),
                                              .parameter(ParameterInfo(initializer: .zeros)),
                                              .parameter(ParameterInfo(initializer: .zeros)), .state(.zeros)])
    }

    func testTrainDefaults() throws {
        let src = header + "s = l2_penalty(x, factor=1)\ntrain {\n  loss = s\n  optimizer = adam(lr=0.01)\n}\n"
        let t = try XCTUnwrap(compiles(src)?.training)
        XCTAssertEqual(t, TrainingConfig(loss: "s", optimizer: .adam(lr: 0.01, AdamAttrs(beta1: 0.9, beta2: 0.999, epsilon: 1e-7)),
                                         schedule: .constant, batchSize: 128, epochs: 100, seed: 1, inputScale: 1,
                                         augmentation: .none))
    }

    func testTrainSettings() throws {
        let src = header + """
            let base = 0.5
            s = l2_penalty(x, factor=1)
            train { loss = s, optimizer = sgd(lr=base, decay=0), schedule = cosine(min_factor=0.1, warmup_epochs=2) }

            """
        let t = try XCTUnwrap(compiles(src)?.training)
        XCTAssertEqual(t.optimizer, .sgd(lr: 0.5, SGDAttrs()))
        XCTAssertEqual(t.schedule, .cosine(minFactor: 0.1, warmupEpochs: 2))
        let decay = header + "s = l2_penalty(x, factor=1)\ntrain {\n  loss = s\n  optimizer = adam(lr=1e-4, decay=1e-6)\n  schedule = constant\n}\n"
        XCTAssertEqual(compiles(decay)?.training?.schedule, .inverseTime(decay: 1e-6))
        let inverse = header + "s = l2_penalty(x, factor=1)\ntrain {\n  loss = s\n  optimizer = adam(lr=1)\n  schedule = inverse_time(decay=0.5)\n}\n"
        XCTAssertEqual(compiles(inverse)?.training?.schedule, .inverseTime(decay: 0.5))
    }

    func testLetConstants() throws {
        let src = header + "let wd = 1e-6\nlet pad = valid\nlet k = [1, 3]\nlet wd2 = wd\nc = conv2d(x, filters=2, kernel=k, padding=pad, l2=wd2)\n"
        let g = try XCTUnwrap(compiles(src))
        XCTAssertEqual(try XCTUnwrap(param(g, "c.weight")).0, .fixed([2, 1, 1, 3]))
        XCTAssertEqual(try XCTUnwrap(param(g, "c.weight")).1.l2, 1e-6)
        XCTAssertEqual(g.nodes[0].op, .conv2d(Conv2DAttrs(stride: 1, padding: .valid)))
    }

    func testKeywordsAreContextual() throws {
        let g = try XCTUnwrap(compiles(header + "output = relu(x)\ninput2 = relu(output)\noutput output, input2\n"))
        XCTAssertEqual(g.outputs.map { g[$0].name }, ["output", "input2"])
    }

    func testStatementsContinueInsideParentheses() throws {
        let src = header + "c = conv2d(\n  x,            # the image\n  filters=4,\n  kernel=[\n    3,\n    3\n  ]\n)\noutput c,\n"
        XCTAssertNil(try? Frontend.compile(source: src, file: "t"))  // a trailing comma outside brackets is an error
        let ok = header + "c = conv2d(\n  x,            # the image\n  filters=4,\n  kernel=[\n    3,\n    3\n  ]\n)\noutput c\n"
        XCTAssertEqual(compiles(ok)?.nodes.count, 1)
    }

    func testOutputsAppend() throws {
        let g = try XCTUnwrap(compiles(header + "a = relu(x)\nb = relu(a)\noutput b\noutput a\n"))
        XCTAssertEqual(g.outputs.map { g[$0].name }, ["b", "a"])
    }

    func testUpdateNodeNaming() throws {
        let g = try XCTUnwrap(compiles("model m\nstate it: f32[]\nincrement(it)\nincrement(it)\n"))
        XCTAssertEqual(g.nodes.map(\.name), ["increment.it", "increment.it"])
    }

    func testLearningRateScaleOnLayersAndParams() throws {
        let src = header + """
            c = conv2d(x, filters=2, lr_scale=0.1)
            bn = batchnorm(c, lr_scale=0)
            f = flatten(bn)
            d = dense(f, units=7, lr_scale=2, l2=1e-4)
            param w: f32[3], lr_scale=0.5
            output d

            """
        let g = try XCTUnwrap(compiles(src))
        // The layer's factor reaches every parameter it makes; l2 stays on the weight alone.
        for (name, rate) in [("c.weight", 0.1), ("c.bias", 0.1), ("bn.gamma", 0), ("bn.beta", 0),
                             ("d.weight", 2), ("d.bias", 2), ("w", 0.5)] {
            XCTAssertEqual(try XCTUnwrap(param(g, name)).1.lrScale, rate, name)
        }
        XCTAssertEqual(try XCTUnwrap(param(g, "d.bias")).1.l2, 0)
        XCTAssertEqual(try XCTUnwrap(param(compiles(header + "c = conv2d(x, filters=2)\n")!, "c.weight")).1.lrScale, 1)
        // Printed back (1 is not printed), and the printed form compiles to the same factors.
        let printed = g.printed()
        XCTAssertTrue(printed.contains("param c.bias: f32[2], init=zeros, lr_scale=0.1\n"), printed)
        XCTAssertTrue(printed.contains("param bn.gamma: f32[2], init=ones, lr_scale=0.0\n"), printed)
        func params(_ g: Graph) -> [String: ParameterInfo] {
            var out: [String: ParameterInfo] = [:]
            for v in g.values { if case .parameter(let p) = v.kind { out[v.name] = p } }
            return out
        }
        XCTAssertEqual(params(try XCTUnwrap(compiles(printed))), params(g))

        expectError(header + "c = conv2d(x, filters=2, lr_scale=-1)\n", 5, 35,
                    "attribute 'lr_scale': must be zero or positive (the factor on the learning rate), got -1")
        expectError(header + "c = conv2d(x, filters=2, lr_scale=0.1, trainable=false)\n", 5, 26,
                    "lr_scale has no effect on the conv2d layer: it has trainable=false, so nothing updates it")
        expectError(header + "bn = batchnorm(x, trainable=false, lr_scale=0.5)\n", 5, 36,
                    "lr_scale has no effect on the batchnorm layer: it has trainable=false, so nothing updates it")
        expectError("model m\nparam w: f32[2], lr_scale=fast\n", 2, 27, "attribute 'lr_scale' must be a number, got fast")
    }
}
