// A model trained on 40x40 crops, also shown the whole 48x48 face: the model recompiled at
// another input side (GraphIR/InputSide.swift) from a compiled plan's weights
// (CompileOptions.planWeights, `fergc compile --weights P.plan`), and both view sets merged into
// one plan that stores the weights once (Passes/Ensemble.swift) and transforms them for
// Winograd once (Runtime/Scratch.swift). Checked against the views cut and run by hand.

import Foundation
import Frontend
import GraphIR
import Passes
import Runtime
import TestSupport
import Training
import XCTest

/// Two convolutions (the second with a batchnorm, folded at compile time), global average
/// pooling over the 20x20 map and the logits, on 40x40 crops.
private let pooledSource = """
model pooled
input x: f32[N, 1, 40, 40]
input labels: i32[N]
c1 = conv2d(x, filters=8, kernel=3, padding=same, activation=relu)
p1 = maxpool(c1, size=2, stride=2)
c2 = conv2d(p1, filters=8, kernel=3, padding=same, bias=false)
c2_bn = batchnorm(c2, epsilon=1e-3)
c2_relu = relu(c2_bn)
gap = avgpool(c2_relu, size=20, stride=20)
f = flatten(gap)
logits = dense(f, units=7)
loss = softmax_cross_entropy(logits, labels)
output logits, loss
train {
  loss = loss
  optimizer = sgd(lr=0.01, momentum=0.9)
  batch = 4
  input_scale = 0.00392156862745098
}
"""

/// The same layers with a 10x10 max pooling flattened into the dense layer: its weights fit
/// one input side only.
private let flattenedSource = pooledSource
    .replacingOccurrences(of: "gap = avgpool(c2_relu, size=20, stride=20)", with: "gap = maxpool(c2_relu, size=2, stride=2)")

/// The pooled model written without its batchnorm (the convolution before it with a bias): what a
/// plan's folded values start (`fergc train M.graph --init P.plan`).
private let unfoldedSource = pooledSource
    .replacingOccurrences(of: "c2 = conv2d(p1, filters=8, kernel=3, padding=same, bias=false)\nc2_bn = batchnorm(c2, epsilon=1e-3)\nc2_relu = relu(c2_bn)",
                          with: "c2 = conv2d(p1, filters=8, kernel=3, padding=same, bias=true)\nc2_relu = relu(c2)")

final class WholeFaceViewTests: XCTestCase {
    /// Values for every parameter and state of `g`, variances positive, the rest signed.
    func values(_ g: Graph) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (k, id) in (g.parameters + g.states).enumerated() {
            let v = g[id], n = v.type.perSample.reduce(1, *)
            out[v.name] = (0..<n).map { i in
                // A fixed hash of (k, i) in [-1, 1).
                var z = UInt64(k + 7) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(i) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 31)) &* 0x94D0_49BB_1331_11EB
                let r = Float(Double(z >> 11) / Double(1 << 53) * 2 - 1)
                return v.name.hasSuffix("var") ? 0.5 + abs(r) : v.name.hasSuffix("gamma") ? 1 + 0.5 * r : 0.2 * r
            }
        }
        return out
    }

    func compiled(_ g: Graph, weights: [String: [Float]]? = nil, plan: [String: [Float]]? = nil) throws -> Plan {
        var options = CompileOptions()
        options.batch = 4
        options.probe = false
        options.convAlgorithms = .winograd
        options.weights = weights
        options.planWeights = plan
        return try compile(g, options).plan
    }

    func testAnotherSideKeepsAGlobalPoolingGlobalAndTheParametersAsTheyAre() throws {
        let g = try model(source: pooledSource)
        let g48 = try withInputSide(g, side: 48)
        XCTAssertEqual(g48[try XCTUnwrap(g48.id(named: "x"))].type.perSample, [1, 48, 48])
        XCTAssertEqual(g48[try XCTUnwrap(g48.id(named: "c2_relu"))].type.perSample, [8, 24, 24])
        XCTAssertEqual(g48[try XCTUnwrap(g48.id(named: "gap"))].type.perSample, [8, 1, 1])
        let pool = try XCTUnwrap(g48.nodes.first { $0.name == "gap" })
        guard case .avgpool(let a) = pool.op else { return XCTFail("\(pool.op)") }
        XCTAssertEqual([a.size, a.stride], [24, 24])
        XCTAssertEqual(g48.parameters.map { g48[$0].type }, g.parameters.map { g[$0].type })
        // A window that does not cover its map is left as it is: the 2x2 pooling after c1.
        guard case .maxpool(let m) = try XCTUnwrap(g48.nodes.first { $0.name == "p1" }).op else { return XCTFail() }
        XCTAssertEqual([m.size, m.stride], [2, 2])

        // Where a parameter's shape would change, the error names the node.
        XCTAssertThrowsError(try withInputSide(try model(source: flattenedSource), side: 48)) {
            XCTAssertTrue("\($0)".contains("'logits'") && "\($0)".contains("global pooling"), "\($0)")
        }
        // A side whose map cannot be pooled globally (an odd map after the 2x2 pooling is fine,
        // a side too small for the pooling is not).
        XCTAssertThrowsError(try withInputSide(g, side: 1)) { XCTAssertTrue("\($0)".contains("'p1'"), "\($0)") }
        XCTAssertThrowsError(try withInputSide(g, side: 0)) { XCTAssertTrue("\($0)".contains("--input-side"), "\($0)") }
    }

    func testCropsAndTheWholeFaceInOnePlanAreTheMeanOfFourViews() throws {
        let g = try model(source: pooledSource)
        let crops = try compiled(g, weights: values(g))
        XCTAssertTrue(crops.parameters.keys.contains { $0.hasSuffix(".folded") }, "the batchnorm is folded")
        let whole = try compiled(try withInputSide(g, side: 48), plan: crops.parameters)
        XCTAssertEqual(whole.parameters, crops.parameters)
        XCTAssertEqual(whole.metadata.inputShape, [1, 48, 48])
        let views = try ensemblePlans([EnsembleMember(label: "crops", plan: try applyTTA(crops, kind: .centerFlip)),
                                       EnsembleMember(label: "whole", plan: try applyTTA(whole, kind: .flip))])
        // The weights once, their Winograd transforms once.
        XCTAssertEqual(views.parameters.values.map(\.count).reduce(0, +), crops.parameters.values.map(\.count).reduce(0, +))
        XCTAssertEqual(views.buffers.filter { $0.role == .parameter }.count, crops.buffers.filter { $0.role == .parameter }.count)
        XCTAssertGreaterThan(fastScratchElements(crops).filters, 0)
        XCTAssertEqual(fastScratchElements(views).filters, fastScratchElements(crops).filters)

        // By hand: the centre crop and its mirror image through the 40x40 plan, the face and its
        // mirror image through the 48x48 one (the session's probabilities), the mean of the four.
        let set = try loadFER2013(path: samplePath, options: LoadOptions(splits: [.publicTest]))[.publicTest]
        let n = 5, pixels = Array(set.pixels[0..<(n * 48 * 48)])
        let c = try Session(LoadedPlan(plan: crops)), w = try Session(LoadedPlan(plan: whole))
        let got = try Session(LoadedPlan(bytes: encodePlan(views))).predictRaw(pixels: pixels)
        XCTAssertEqual(got.count, n)
        var moved = 0.0
        for i in 0..<n {
            let face = Array(pixels[(i * 2304)..<((i + 1) * 2304)])
            func view(_ side: Int, flip: Bool) -> [UInt8] {
                let o = (48 - side) / 2
                return (0..<side).flatMap { r in (0..<side).map { k in face[(o + r) * 48 + o + (flip ? side - 1 - k : k)] } }
            }
            let four = [try c.predictRaw(pixels: view(40, flip: false))[0], try c.predictRaw(pixels: view(40, flip: true))[0],
                        try w.predictRaw(pixels: view(48, flip: false))[0], try w.predictRaw(pixels: view(48, flip: true))[0]].map { $0.map(Double.init) }
            for k in 0..<7 {
                let mean = four.reduce(0) { $0 + $1[k] } / 4
                XCTAssertEqual(Double(got[i][k]), mean, accuracy: 1e-6, "face \(i) class \(k)")
                moved = max(moved, abs(four[2][k] - four[0][k]))
            }
        }
        XCTAssertGreaterThan(moved, 1e-4, "the whole face must answer differently from the crop for the test to mean anything")

        // The second member taken out is the whole-face plan, under the model's own names.
        let out = try ensembleMember(views, number: 2)
        XCTAssertEqual(Set(out.parameters.keys), Set(whole.parameters.keys))
        XCTAssertEqual(try Session(LoadedPlan(bytes: encodePlan(out))).predictRaw(pixels: pixels),
                       try Session(LoadedPlan(plan: try applyTTA(whole, kind: .flip))).predictRaw(pixels: pixels))

        // A model that already takes the whole face is told to use flip.
        XCTAssertThrowsError(try applyViewSets(whole, sets: [.wholeFlip], model: try withInputSide(g, side: 48), options: CompileOptions())) {
            XCTAssertTrue("\($0)".contains("use --tta flip"), "\($0)")
        }
        XCTAssertEqual(ViewSet.parse("center_flip+whole_flip"), [.crops(.centerFlip), .wholeFlip])
        XCTAssertNil(ViewSet.parse("flip+"))

        // A plan's values fit only the model it was compiled from.
        let other = try model(source: flattenedSource)
        XCTAssertThrowsError(try compiled(other, plan: crops.parameters)) { XCTAssertTrue("\($0)".contains("weights:"), "\($0)") }
        var extra = crops.parameters
        extra["spare.weight"] = [1, 2]
        XCTAssertThrowsError(try compiled(g, plan: extra)) { XCTAssertTrue("\($0)".contains("spare.weight"), "\($0)") }
    }

    func testTheCommandRecompilesAPlanForTheWholeFace() throws {
        let dir = temporaryDirectory("whole-face")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try pooledSource.write(toFile: "\(dir)/pooled.graph", atomically: true, encoding: .utf8)
        try flattenedSource.write(toFile: "\(dir)/flat.graph", atomically: true, encoding: .utf8)
        let ok = { (args: [String]) throws in
            let r = try fergc(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
        }
        try ok(["compile", "\(dir)/pooled.graph", "--seed", "3", "-o", "\(dir)/a.plan"])
        // The same model from its own plan: the same weights.
        try ok(["compile", "\(dir)/pooled.graph", "--weights", "\(dir)/a.plan", "-o", "\(dir)/again.plan"])
        let sha = { (p: String) throws -> String in
            let j = try fergc(["inspect", p, "--json"]).stdout
            return try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(j.utf8)) as? [String: Any])?["weights_sha256"] as? String)
        }
        XCTAssertEqual(try sha("\(dir)/again.plan"), try sha("\(dir)/a.plan"))
        try ok(["compile", "\(dir)/pooled.graph", "--weights", "\(dir)/a.plan", "--tta", "center_flip", "-o", "\(dir)/c.plan"])
        try ok(["compile", "\(dir)/pooled.graph", "--weights", "\(dir)/a.plan", "--input-side", "48", "--tta", "flip", "-o", "\(dir)/w.plan"])
        let merged = try fergc(["ensemble", "\(dir)/c.plan", "\(dir)/w.plan", "--name", "pooled", "-o", "\(dir)/v.plan"])
        XCTAssertEqual(merged.status, 0, merged.stderr)
        XCTAssertTrue(merged.stdout.contains("shared, equal in name, shape and value"), merged.stdout)
        let inspect = try fergc(["inspect", "\(dir)/v.plan"]).stdout
        XCTAssertTrue(inspect.contains("(center_flip: 2 views of 40x40)") && inspect.contains("(flip: 2 views of 48x48)"), inspect)
        let eval = try fergc(["eval", "\(dir)/v.plan", "--data", samplePath, "--split", "PublicTest", "--out", dir])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("accuracy"), eval.stdout)

        // One command: the same two view sets, the same weights, the same probabilities.
        try ok(["compile", "\(dir)/pooled.graph", "--weights", "\(dir)/a.plan", "--tta", "center_flip+whole_flip", "-o", "\(dir)/one.plan"])
        XCTAssertEqual(try sha("\(dir)/one.plan"), try sha("\(dir)/v.plan"))
        let one = try fergc(["inspect", "\(dir)/one.plan"]).stdout
        XCTAssertTrue(one.contains("tta           center_flip+whole_flip: 4 views"), one)
        let set = try loadFER2013(path: samplePath, options: LoadOptions(splits: [.publicTest]))[.publicTest]
        let pixels = Array(set.pixels[0..<(6 * 48 * 48)])
        let run = { (p: String) throws -> [[Float]] in try Session(try LoadedPlan(plan: try readPlan(path: p))).predictRaw(pixels: pixels) }
        XCTAssertEqual(try run("\(dir)/one.plan"), try run("\(dir)/v.plan"))
        // tencrop+whole_flip weighs each of the twelve views alike: 10/12 and 2/12.
        try ok(["compile", "\(dir)/pooled.graph", "--weights", "\(dir)/a.plan", "--tta", "tencrop+whole_flip", "-o", "\(dir)/twelve.plan"])
        let twelve = try readPlan(path: "\(dir)/twelve.plan")
        let weights = twelve.metadata.ensemble?.members.map(\.weight) ?? []
        XCTAssertEqual(weights.count, 2)
        for (w, want) in zip(weights, [10.0 / 12, 2.0 / 12]) { XCTAssertEqual(w, want, accuracy: 1e-12) }
        XCTAssertEqual(twelve.parameters.count, try readPlan(path: "\(dir)/a.plan").parameters.count)

        for (args, status, says) in [
            (["--tta", "center_flip+center_flip"], 2, "each once"),
            (["--tta", "center_flip+whole"], 2, "whole_flip"),
            (["--tta", "whole_flip", "--input-side", "48"], 2, "does not combine with --input-side"),
            (["--weights", "\(dir)/v.plan"], 1, "--member K"),
            (["--weights", "\(dir)/a.plan", "--train"], 2, "training plan starts from a checkpoint"),
            (["--input-side", "48", "--train"], 2, "does not combine with --train"),
            (["--input-side", "0"], 2, "--input-side"),
        ] {
            let r = try fergc(["compile", "\(dir)/pooled.graph"] + args + ["-o", "\(dir)/x.plan"])
            XCTAssertEqual(r.status, Int32(status), "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(says), "\(args): \(r.stderr)")
        }
        let whole = try fergc(["compile", "\(dir)/flat.graph", "--tta", "center_flip+whole_flip", "-o", "\(dir)/x.plan"])
        XCTAssertEqual(whole.status, 1, whole.stderr)
        XCTAssertTrue(whole.stderr.contains("whole_flip") && whole.stderr.contains("'logits'"), whole.stderr)
        let flat = try fergc(["compile", "\(dir)/flat.graph", "--input-side", "48", "-o", "\(dir)/x.plan"])
        XCTAssertEqual(flat.status, 1, flat.stderr)
        XCTAssertTrue(flat.stderr.contains("flat.graph") && flat.stderr.contains("'logits'"), flat.stderr)
        let wrong = try fergc(["compile", "\(dir)/flat.graph", "--weights", "\(dir)/a.plan", "-o", "\(dir)/x.plan"])
        XCTAssertEqual(wrong.status, 1, wrong.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/x.plan"))
    }

    /// `--init P.plan` on a plan whose convolution had a batchnorm folded into it: refused for the
    /// model with the batchnorm, and the folded values start the model written without it, which
    /// then answers as the plan does.
    func testAFoldedPlanStartsTheModelWrittenWithoutItsBatchnorm() throws {
        XCTAssertNotEqual(unfoldedSource, pooledSource)
        let g = try model(source: pooledSource)
        let plan = try compiled(g, weights: values(g))
        let dir = temporaryDirectory("folded-init")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writePlan(plan, to: dir + "/p.plan")
        let file = try InitTensors.read(dir + "/p.plan")
        XCTAssertTrue(file.fromPlan)
        XCTAssertNotNil(file.tensors["c2.weight"])
        XCTAssertNil(file.tensors["c2.weight.folded"])
        XCTAssertThrowsError(try planInit(model: g, file: file)) {
            XCTAssertTrue("\($0)".contains("has batchnorm ('c2_bn')") && "\($0)".contains("bias=true"), "\($0)")
        }
        let unfolded = try model(source: unfoldedSource)
        let (report, start) = try planInit(model: unfolded, file: file)
        XCTAssertEqual(report.notLoaded, [])
        XCTAssertEqual(report.unused, [])
        XCTAssertEqual(start["c2.weight"], plan.parameters["c2.weight.folded"])
        XCTAssertNotEqual(start["c2.weight"], values(g)["c2.weight"], "the fold must have changed the weights")
        let again = try compiled(unfolded, weights: start)
        // `fergc compile M.graph --weights P.plan` of the model without batchnorm: the folded
        // tensors go to its convolutions by the same renaming, without a run.
        let direct = try compiled(unfolded, plan: plan.parameters)
        XCTAssertEqual(direct.parameters["c2.weight"], plan.parameters["c2.weight.folded"])
        XCTAssertEqual(direct.parameters["c2.bias"], plan.parameters["c2.bias.folded"])
        XCTAssertNil(direct.parameters["c2.weight.folded"])
        var both = plan.parameters
        both["c2.weight"] = both["c2.weight.folded"]
        XCTAssertThrowsError(try compiled(unfolded, plan: both)) {
            XCTAssertTrue("\($0)".contains("both 'c2.weight' and 'c2.weight.folded'"), "\($0)")
        }
        var pixels = [UInt8](repeating: 0, count: 3 * 40 * 40)
        for i in pixels.indices { pixels[i] = UInt8(truncatingIfNeeded: i * 37 + 11) }
        let a = try Session(LoadedPlan(plan: plan)).predictRaw(pixels: pixels)
        for other in [again, direct] {
            let b = try Session(LoadedPlan(plan: other)).predictRaw(pixels: pixels)
            XCTAssertEqual(a.count, 3)
            for (x, y) in zip(a, b) {
                for k in 0..<7 { XCTAssertEqual(x[k], y[k], accuracy: 1e-5) }
            }
        }
    }

    /// Session 44's fine-tune models take their base models' trained values: the same tensors,
    /// by name and shape, as `vgg16_gap`'s parameters and as the folded tensors of a compiled
    /// `vgg_k_narrow_gap` plan.
    func testTheFineTuneModelsFitTheirBaseModelsValues() throws {
        XCTAssertEqual(parameterShapes(try model("Models/vgg16_gap_48.graph")), parameterShapes(try model("Models/vgg16_gap.graph")))
        let narrow = try model("Models/vgg_k_narrow_gap.graph")
        let plan = try compiled(narrow, weights: values(narrow))
        let folded = try model("Models/vgg_k_narrow_gap_folded_48.graph")
        var fromPlan: [String: Int] = [:]
        for (name, v) in plan.parameters { fromPlan[name.hasSuffix(".folded") ? String(name.dropLast(7)) : name] = v.count }
        XCTAssertEqual(parameterShapes(folded).mapValues { $0.reduce(1, *) }, fromPlan)
        XCTAssertTrue(plan.parameters.keys.contains("s1_conv1.weight.folded"))
    }
}
