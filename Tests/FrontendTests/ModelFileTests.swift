import XCTest
import GraphIR
@testable import Frontend

final class ModelFileTests: XCTestCase {
    func testScratchParamsMatchKeras() throws {
        let g = try compileModel("vgg_scratch")
        XCTAssertEqual(g.name, "vgg_scratch")
        XCTAssertEqual(g.summary().paramsTotal, 3_060_071)
        XCTAssertEqual(g.summary().paramsTrainable, 3_060_071)
        XCTAssertEqual(g[try XCTUnwrap(g.id(named: "fc6.weight"))].type, .fixed([512, 4608]))
        XCTAssertEqual(g[try XCTUnwrap(g.id(named: "flatten"))].type, .batched([4608]))
        XCTAssertEqual(g.outputs.map { g[$0].name }, ["predictions", "loss"])
    }

    func testTunedParamsMatchKeras() throws {
        let g = try compileModel("vgg_tuned")
        let s = g.summary()
        XCTAssertEqual(s.paramsTotal, 3_066_471)
        XCTAssertEqual(s.paramsTrainable, 3_063_271)
        XCTAssertEqual(s.paramsNonTrainable, 3_200)
    }

    func testTunedRecipe() throws {
        let g = try compileModel("vgg_tuned")
        func param(_ name: String) throws -> ParameterInfo {
            guard let id = g.id(named: name), case .parameter(let p) = g[id].kind else {
                XCTFail("no parameter \(name)")
                throw XCTSkip()
            }
            return p
        }
        let maxNormed = ["block1_conv1", "block1_conv2", "block2_conv1", "block3_conv1", "block3_conv2", "fc6", "fc7"]
        let l2 = ["block3_conv1", "block3_conv2", "block3_conv3", "fc6", "fc7", "predictions"]
        for layer in ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1",
                      "block3_conv2", "block3_conv3", "fc6", "fc7", "predictions"] {
            let w = try param("\(layer).weight")
            XCTAssertEqual(w.maxNorm, maxNormed.contains(layer) ? MaxNorm(4, axis: .keras) : nil, layer)
            XCTAssertEqual(w.l2, l2.contains(layer) ? 1e-6 : 0, layer)
            XCTAssertEqual(w.initializer, .glorotUniform)
            let b = try param("\(layer).bias")
            XCTAssertEqual(b.l2, 0)
            XCTAssertNil(b.maxNorm)
            XCTAssertEqual(b.initializer, .zeros)
            if layer != "predictions" {
                XCTAssertNotNil(g.id(named: "\(layer)_bn.gamma"), layer)
                XCTAssertNotNil(g.id(named: "\(layer)_bn.running_var"), layer)
            }
        }
        let rates = g.nodes.compactMap { n -> Double? in if case .dropout(let r) = n.op { return r } else { return nil } }
        XCTAssertEqual(rates, [0.4, 0.5, 0.6, 0.7, 0.8])
        let bn = g.nodes.compactMap { n -> BatchNormAttrs? in if case .batchnorm(let a) = n.op { return a } else { return nil } }
        XCTAssertEqual(bn.count, 9)
        XCTAssert(bn.allSatisfy { $0 == BatchNormAttrs(epsilon: 1e-3, momentum: 0.99) })
        let t = try XCTUnwrap(g.training)
        XCTAssertEqual(t.loss, "loss")
        XCTAssertEqual(t.optimizer, .adam(lr: 1e-4, AdamAttrs()))
        XCTAssertEqual(t.schedule, .inverseTime(decay: 1e-6))
        XCTAssertEqual(t.batchSize, 128)
        XCTAssertEqual(t.epochs, 100)
        XCTAssertEqual(t.inputScale, 1)
        XCTAssertEqual(t.augmentation, .none)
    }

    func testTunedLayerOrder() throws {
        let g = try compileModel("vgg_tuned")
        let chain = g.nodes.map { "\($0.name)=\($0.op.name)" }
        XCTAssertEqual(Array(chain.prefix(5)), ["block1_conv1.preact=conv2d", "block1_conv1=relu",
                                                 "block1_conv1_bn=batchnorm", "block1_conv1_drop=dropout",
                                                 "block1_conv2.preact=conv2d"])
        let convs = g.nodes.filter { if case .conv2d(let a) = $0.op { return a == Conv2DAttrs(stride: 1, padding: .same) } else { return false } }
        XCTAssertEqual(convs.count, 7)
        let pools = g.nodes.compactMap { n -> PoolAttrs? in if case .maxpool(let a) = n.op { return a } else { return nil } }
        XCTAssertEqual(pools, Array(repeating: PoolAttrs(size: 2, stride: 2, padding: .same), count: 3))
    }

    func testTiny() throws {
        let g = try compileModel("tiny")
        let t = try XCTUnwrap(g.training)
        XCTAssertEqual(t.batchSize, 16)
        XCTAssertEqual(t.epochs, 2)
        XCTAssertEqual(t.seed, 7)
        XCTAssertEqual(t.optimizer, .adam(lr: 1e-3, AdamAttrs()))
        XCTAssertEqual(t.schedule, .constant)
        XCTAssertEqual(g[try XCTUnwrap(g.id(named: "f"))].type, .batched([72]))
        try g.verify()
    }

    /// `vgg_k_gap` is written with blocks: its layers are `vgg_k`'s in order, with the same shapes,
    /// initializers and recipe, under the names the block calls give.
    func testBlocksModelHasVggKLayers() throws {
        let gap = try compileModel("vgg_k_gap")
        let k = try compileModel("vgg_k")
        XCTAssertEqual(gap.summary().paramsTotal, 4_693_575)
        func features(_ g: Graph) -> [String] {
            g.parameters.filter { !g[$0].name.hasPrefix("fc") && !g[$0].name.hasPrefix("predictions") }
                .map { "\(g[$0].type) \(g[$0].kind)" }
        }
        XCTAssertEqual(features(gap), features(k))
        XCTAssertEqual(features(gap).count, 8 * 3)
        XCTAssertNotNil(gap.id(named: "s4.conv2.bn.gamma"))
        var recipe = try XCTUnwrap(gap.training)
        XCTAssertEqual(recipe.seed, 7)
        recipe.seed = 1
        XCTAssertEqual(recipe, k.training, "the recipe is vgg_k's but for the seed")
    }

    func testModelFilesRoundTrip() throws {
        for name in ["vgg_scratch", "vgg_tuned", "tiny", "proxy/narrow_bf16", "vgg_k_gap", "vgg16_gap_lr"] {
            let g = try compileModel(name)
            let text = g.printed()
            let again = try Frontend.compile(source: text, file: "\(name).printed")
            XCTAssertEqual(again.printed(), text, name)
            XCTAssertEqual(again.summary(), g.summary(), name)
            XCTAssertEqual(again.training, g.training, name)
            XCTAssertEqual(again.nodes.map(\.op), g.nodes.map(\.op), name)
            let untyped = try Frontend.compile(source: g.printed(types: false), file: "\(name).untyped")
            XCTAssertEqual(untyped.printed(), text, name)
        }
        XCTAssertEqual(try compileModel("proxy/narrow_bf16").training?.compute, "bf16")
        XCTAssertTrue(try compileModel("proxy/narrow_bf16").printed().contains("  compute = bf16\n"))
        // The per-layer learning rates survive printing: every pretrained convolution at 0.1, the head at 1.
        let lr = try compileModel("vgg16_gap_lr")
        let rates = lr.values.compactMap { v -> Double? in
            guard case .parameter(let p) = v.kind else { return nil }
            return p.lrScale
        }
        XCTAssertEqual(rates.filter { $0 == 0.1 }.count, 20)
        XCTAssertEqual(rates.filter { $0 == 1 }.count, 2)
    }

    func testUnreadableFile() {
        do {
            _ = try Frontend.compile(path: "/nonexistent/dir/model.graph")
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.line, 1)
            XCTAssertEqual(error.column, 1)
            XCTAssertEqual(error.message, "cannot read '/nonexistent/dir/model.graph': no such file")
            XCTAssertEqual(error.description, "/nonexistent/dir/model.graph:1:1: error: cannot read '/nonexistent/dir/model.graph': no such file\n")
        }
        do {
            _ = try Frontend.compile(path: "\(repoRoot)/Models")
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.message, "cannot read '\(repoRoot)/Models': it is a directory")
        }
    }
}
