// The preprocessing ops (Figure 12) against scikit-image 0.26 / OpenCV:
// - ../shared/fixtures/preprocess_reference.npz: the paper's exact calls on 16 training faces,
//   and their `.paper` arrays (the same values truncated toward zero) for `truncate` after the op
//   (skipped when ../shared is absent);
// - Fixtures/preprocess_extra.npz (made by Fixtures/make_preprocess_extra.py): other sizes,
//   low-contrast, two-level and constant images, and equalize_hist.
// Plus the located errors, the gradient rule, the printer round trip, and a plan with a
// preprocessing op against the op applied separately followed by the model.

import Frontend
import GraphIR
import NumPyIO
import Passes
import Runtime
import Training
import XCTest

/// float64 (or any) array values as Double, exactly.
private func doubles(_ a: NDArray) -> [Double] {
    switch a.dtype {
    case .float64:
        return a.data.withUnsafeBytes { raw in
            (0..<(a.data.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    case .int64:
        return a.data.withUnsafeBytes { raw in
            (0..<(a.data.count / 8)).map { Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) }
        }
    case .float32, .int32, .uint8:
        return a.floats.map(Double.init)
    }
}

/// How a technique's output is compared: to 1e-5, or exactly (masks and 8-bit levels).
private enum Comparison { case close, exact }

/// Reference name, the op as written in a graph, and the comparison.
private let figure12: [(ref: String, op: String, comparison: Comparison)] = [
    ("clahe", "clahe(x, clip=0.99)", .close),
    ("equalize", "equalize_local(x, radius=30)", .exact),
    ("normalize", "normalize_minmax(x)", .close),
    ("prewitt", "prewitt(x)", .close),
    ("scharr", "scharr(x)", .close),
    ("sobel", "sobel(x)", .close),
    ("roberts", "roberts(x)", .close),
    ("yen", "threshold(x, method=yen)", .exact),
    ("isodata", "threshold(x, method=isodata)", .exact),
    ("mean", "threshold(x, method=mean)", .exact),
    ("std", "standardize(x)", .close),
]

/// A graph of one op on an image input, and `truncate` after it.
private func opGraph(_ op: String, height: Int, width: Int) throws -> Graph {
    try Frontend.compile(source: """
        model pre
        input x: f32[N, 1, \(height), \(width)]
        y = \(op)
        t = truncate(y)
        output y, t
        """, file: "pre.graph")
}

/// Runs the op's compiled inference plan (Float) on `n` images; returns (y, truncate(y)).
private func runPlan(_ op: String, images: [Float], n: Int, height: Int, width: Int) throws -> (y: [Float], t: [Float]) {
    // Lowered and memory-planned directly: an inference compile keeps the first output only.
    let plan = planMemory(try lowerToPlan(try opGraph(op, height: height, width: width), maxBatch: n))
    let ex = try Executor<Float>(plan: plan)
    ex.setBuffer(plan.buffer(named: "x")!, images)
    try ex.run(batch: n)
    return (ex.buffer(plan.outputs[0]), ex.buffer(plan.outputs[1]))
}

private func maxError(_ a: [Float], _ b: [Double]) -> Double {
    zip(a, b).reduce(0) { max($0, abs(Double($1.0) - $1.1)) }
}

private func mismatches(_ a: [Float], _ b: [Double]) -> Int {
    zip(a, b).reduce(0) { $0 + (Double($1.0) == $1.1 ? 0 : 1) }
}

final class PreprocessParityTests: XCTestCase {
    let referencePath = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures/preprocess_reference.npz").path
    let extraPath = repoRoot.appendingPathComponent("Tests/ParityTests/Fixtures/preprocess_extra.npz").path

    /// Every technique on the 16 faces: the plan's output to 1e-5 (exact for masks and levels),
    /// truncate(output) exactly equal to `.paper`; and the Double kernel to 1e-9.
    func testFigure12ReferenceFaces() throws {
        guard FileManager.default.fileExists(atPath: referencePath) else { throw XCTSkip("\(referencePath) is not present") }
        let f = try readArchive(referencePath)
        let x = f["x"]!
        XCTAssertEqual(x.shape, [16, 48, 48])
        let images = x.floats
        for t in figure12 {
            let ref = doubles(f[t.ref]!), paper = doubles(f[t.ref + ".paper"]!)
            let (y, truncated) = try runPlan(t.op, images: images, n: 16, height: 48, width: 48)
            let e = maxError(y, ref)
            print("\(t.ref): plan max error \(e), truncate mismatches \(mismatches(truncated, paper))")
            switch t.comparison {
            case .close: XCTAssertLessThanOrEqual(e, 1e-5, t.ref)
            case .exact: XCTAssertEqual(mismatches(y, ref), 0, t.ref)
            }
            XCTAssertEqual(mismatches(truncated, paper), 0, "\(t.ref).paper")
        }
    }

    /// The kernels in Double, image by image, against the float64 references.
    func testFigure12KernelsInDouble() throws {
        guard FileManager.default.fileExists(atPath: referencePath) else { throw XCTSkip("\(referencePath) is not present") }
        let f = try readArchive(referencePath)
        let pixels = doubles(f["x"]!)
        let techniques: [(String, PreprocessTechnique)] = [
            ("clahe", .clahe(clip: 0.99)), ("equalize", .equalizeLocal(radius: 30)), ("normalize", .normalizeMinmax),
            ("prewitt", .prewitt), ("scharr", .scharr), ("sobel", .sobel), ("roberts", .roberts),
            ("yen", .thresholdYen), ("isodata", .thresholdIsodata), ("mean", .thresholdMean), ("std", .standardize),
        ]
        for (name, technique) in techniques {
            let ref = doubles(f[name]!)
            var worst = 0.0
            for i in 0..<16 {
                let plane = Array(pixels[(i * 2304)..<((i + 1) * 2304)])
                var out = [Double](repeating: 0, count: 2304)
                preprocessPlane(technique, plane, &out, height: 48, width: 48)
                for j in 0..<2304 { worst = max(worst, abs(out[j] - ref[i * 2304 + j])) }
            }
            // normalize: OpenCV computes in float32.
            XCTAssertLessThanOrEqual(worst, name == "normalize" ? 1e-6 : 1e-9, name)
        }
    }

    /// Other sizes and degenerate images, and equalize_hist (no ../shared needed).
    func testExtraCases() throws {
        let f = try readArchive(extraPath)
        let ops: [(ref: String, op: String, comparison: Comparison)] = figure12 + [
            ("clahe_default", "clahe(x)", .close),
            ("equalize_r5", "equalize_local(x, radius=5)", .exact),
            ("equalize_hist", "equalize_hist(x)", .close),
        ]
        var compared = 0
        defer { XCTAssertEqual(compared, 5 * 14 - 1) }  // every technique on every case but std on the constant
        for case_ in ["random", "smooth", "lowcontrast", "twolevel", "constant"] {
            let x = f["\(case_).x"]!
            let (h, w) = (x.shape[0], x.shape[1])
            for t in ops {
                guard let refArray = f["\(case_).\(t.ref)"] else { continue }
                let ref = doubles(refArray)
                compared += 1
                let y = try runPlan(t.op, images: x.floats, n: 1, height: h, width: w).y
                switch t.comparison {
                case .close: XCTAssertLessThanOrEqual(maxError(y, ref), 1e-5, "\(case_) \(t.ref)")
                case .exact: XCTAssertEqual(mismatches(y, ref), 0, "\(case_) \(t.ref)")
                }
            }
        }
        // The constant image: standardize gives 0 where numpy divides 0 by 0.
        let c = f["constant.x"]!
        let y = try runPlan("standardize(x)", images: c.floats, n: 1, height: c.shape[0], width: c.shape[1]).y
        XCTAssertEqual(Set(y), [0])
    }

    /// Pixel values off the 8-bit grid: the histogram ops read clamp(round(x), 0, 255).
    func testHistogramOpsReadRoundedClampedLevels() throws {
        let levels: [Float] = (0..<64).map { Float(($0 * 37) % 256) }
        let off = levels.enumerated().map { i, v in v == 0 ? -3 : (v == 255 ? 300 : v + (i % 2 == 0 ? 0.3 : -0.4)) }
        for op in ["equalize_local(x, radius=3)", "equalize_hist(x)", "clahe(x, clip=0.5)", "threshold(x, method=yen)",
                   "threshold(x, method=isodata)"] {
            let a = try runPlan(op, images: levels, n: 1, height: 8, width: 8).y
            let b = try runPlan(op, images: off, n: 1, height: 8, width: 8).y
            XCTAssertEqual(a, b, op)
        }
    }

    func testWrongInputShapeIsALocatedError() {
        let source = """
            model bad
            input x: f32[N, 1, 48, 48]
            f = flatten(x)
            y = sobel(f)
            output y
            """
        XCTAssertThrowsError(try Frontend.compile(source: source, file: "bad.graph")) { error in
            let d = error as! Diagnostic
            XCTAssertEqual(d.line, 4)
            XCTAssertEqual(d.column, 11)
            XCTAssertTrue(d.message.contains("sobel works on images: it expects an input f32[N, C, H, W], got f32[N, 2304]"), d.message)
        }
        XCTAssertThrowsError(try Frontend.compile(source: "model m\ninput x: f32[N, 1, 8, 8]\ny = threshold(x)\noutput y\n", file: "m.graph")) { error in
            let d = error as! Diagnostic
            XCTAssertEqual(d.line, 3)
            XCTAssertTrue(d.message.contains("method"), d.message)
        }
        XCTAssertThrowsError(try Frontend.compile(source: "model m\ninput x: f32[N, 1, 8, 8]\ny = clahe(x, clip=2)\noutput y\n", file: "m.graph")) { error in
            XCTAssertTrue((error as! Diagnostic).message.contains("clip"), "\(error)")
        }
    }

    func testScaledInputIsRejected() {
        let source = """
            model scaled
            input x: f32[N, 1, 48, 48]
            input labels: i32[N]
            e = equalize_local(x)
            f = flatten(e)
            logits = dense(f, units=7)
            loss = softmax_cross_entropy(logits, labels)
            output logits, loss
            train {
              loss = loss
              optimizer = adam(lr=1e-3)
              input_scale = 0.5
            }
            """
        XCTAssertThrowsError(try Frontend.compile(source: source, file: "scaled.graph")) { error in
            let d = error as! Diagnostic
            XCTAssertEqual(d.line, 4)
            XCTAssertTrue(d.message.contains("reads raw pixels 0..255"), d.message)
        }
        // standardize does not depend on the scale: allowed.
        XCTAssertNoThrow(try Frontend.compile(source: source.replacingOccurrences(of: "equalize_local(x)", with: "standardize(x)"), file: "s.graph"))
    }

    func testPrinterRoundTrip() throws {
        let source = """
            model rt
            input x: f32[N, 1, 16, 16]
            a = equalize_local(x, radius=7)
            b = clahe(a, clip=0.25)
            c = threshold(b, method=isodata)
            d = truncate(c)
            output d
            """
        let g = try Frontend.compile(source: source, file: "rt.graph")
        let printed = g.printed()
        XCTAssertTrue(printed.contains("equalize_local(x, radius=7)"), printed)
        XCTAssertTrue(printed.contains("threshold(b, method=isodata)"), printed)
        let again = try Frontend.compile(source: printed, file: "rt2.graph")
        XCTAssertEqual(again.nodes, g.nodes)
        XCTAssertEqual(again.printed(), printed)
    }

    /// No gradient passes through a preprocessing op: on the input it is fine (the training plan
    /// runs it in the forward), after a parameter the compile fails and names it.
    func testTrainingPlanRunsTheOpAndNoGradientPassesThrough() throws {
        func model(_ body: String) -> String {
            """
            model t
            input x: f32[N, 1, 8, 8]
            input labels: i32[N]
            \(body)
            f = flatten(z)
            logits = dense(f, units=3)
            loss = softmax_cross_entropy(logits, labels)
            output logits, loss
            train {
              loss = loss
              optimizer = adam(lr=1e-3)
              batch = 4
            }
            """
        }
        var options = CompileOptions()
        options.mode = .training
        options.batch = 4
        let ok = try compile(try Frontend.compile(source: model("z = sobel(x)"), file: "ok.graph"), options).plan
        XCTAssertTrue(ok.steps.contains { if case .preprocess(.sobel, 1, 8, 8) = $0.kernel { return true } else { return false } })
        let bad = try Frontend.compile(source: model("c = conv2d(x, filters=2)\nz = sobel(c)"), file: "bad.graph")
        XCTAssertThrowsError(try compile(bad, options)) { error in
            XCTAssertTrue("\(error)".contains("sobel is a preprocessing op, which passes no gradient"), "\(error)")
        }
    }

    /// A plan compiled from a model with a preprocessing op, given raw faces, against the op
    /// applied separately (the runtime's kernel in Double) followed by the same model without it.
    func testPlanWithOpMatchesOpThenModel() throws {
        let body = """
            c1 = conv2d(p, filters=4, kernel=3, activation=relu)
            pool = maxpool(c1, size=2, stride=2)
            f = flatten(pool)
            logits = dense(f, units=7)
            probs = softmax(logits)
            output probs
            """
        var rng = SplitMix(seed: 7)
        let pixels = (0..<(3 * 48 * 48)).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 56) }
        for (op, technique) in [("clahe(x, clip=0.99)", PreprocessTechnique.clahe(clip: 0.99)), ("sobel(x)", .sobel),
                                ("threshold(x, method=yen)", .thresholdYen), ("standardize(x)", .standardize),
                                ("equalize_local(x)", .equalizeLocal(radius: 30))] {
            let with = try Frontend.compile(source: "model a\ninput x: f32[N, 1, 48, 48]\np = \(op)\n" + body, file: "a.graph")
            let without = try Frontend.compile(source: "model b\ninput p: f32[N, 1, 48, 48]\n" + body, file: "b.graph")
            var options = CompileOptions()
            options.batch = 3
            options.probe = false
            let a = try compile(with, options)
            let b = try compile(without, options)  // same seed, same parameter names: same weights
            XCTAssertEqual(a.plan.parameters["c1.weight"], b.plan.parameters["c1.weight"])
            let raw = try Session(try LoadedPlan(plan: a.plan)).predictRaw(pixels: pixels)
            var separate: [Float] = []
            for i in 0..<3 {
                var out = [Double](repeating: 0, count: 2304)
                preprocessPlane(technique, pixels[(i * 2304)..<((i + 1) * 2304)].map(Double.init), &out, height: 48, width: 48)
                separate += out.map(Float.init)
            }
            let expected = try Session(try LoadedPlan(plan: b.plan)).predict(images: separate)
            let e = zip(raw.joined(), expected.joined()).reduce(0) { max($0, abs($1.0 - $1.1)) }
            XCTAssertLessThanOrEqual(e, 1e-5, op)
        }
    }
}

extension PreprocessParityTests {
    /// The preprocess kernel survives the .plan encoding, and a bad one is refused on load.
    func testPlanFileRoundTripAndValidation() throws {
        let plan = planMemory(try lowerToPlan(try opGraph("clahe(x, clip=0.5)", height: 12, width: 10), maxBatch: 2))
        let decoded = try decodePlan(encodePlan(plan))
        XCTAssertEqual(decoded.steps.map(\.kernel), plan.steps.map(\.kernel))
        XCTAssertEqual(decoded.steps[0].kernel, .preprocess(.clahe(clip: 0.5), planes: 1, height: 12, width: 10))
        var bad = plan
        bad.steps[0].kernel = .preprocess(.equalizeLocal(radius: 0), planes: 1, height: 12, width: 10)
        XCTAssertThrowsError(try decodePlan(encodePlan(bad))) { XCTAssertTrue("\($0)".contains("radius 0"), "\($0)") }
        bad.steps[0].kernel = .preprocess(.sobel, planes: 1, height: 12, width: 11)
        XCTAssertThrowsError(try decodePlan(encodePlan(bad)))
    }

    /// Every study row: the same layers, parameters and recipe, raw pixels in, epochs 5 (the budget).
    func testStudyModelFiles() throws {
        let dir = repoRoot.appendingPathComponent("Models/study")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".graph") }.sorted()
        XCTAssertEqual(files.count, 19)
        let base = try Frontend.compile(path: repoRoot.appendingPathComponent("Models/vgg_scratch_fast.graph").path)
        for f in files {
            let g = try Frontend.compile(path: dir.appendingPathComponent(f).path)
            XCTAssertEqual(g.parameters.map { g[$0] }, base.parameters.map { base[$0] }, f)
            var t = try XCTUnwrap(g.training), b = try XCTUnwrap(base.training)
            XCTAssertEqual(t.epochs, 5, f)
            XCTAssertEqual(t.inputScale, 1, f)
            (t.epochs, t.inputScale, b.epochs, b.inputScale) = (0, 0, 0, 0)
            XCTAssertEqual(t, b, f)
            let preprocessing = g.nodes.filter { if case .preprocess = $0.op { return true } else { return false } }
            XCTAssertEqual(preprocessing.count, f == "baseline.graph" ? 0 : (f.hasSuffix("_paper.graph") ? 2 : 1), f)
        }
    }
}

/// A small deterministic generator for test pixels.
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
