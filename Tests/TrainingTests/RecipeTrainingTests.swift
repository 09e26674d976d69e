// The training recipe: crops from a padded face, rotation and zoom, random erasing (against
// pixel maps worked out here), the schedule's end, the train block's new settings, and the
// weight average the trainer keeps (against its formula from the initial and trained weights).

import Foundation
import Frontend
import GraphIR
import Passes
import Runtime
@testable import Training
import XCTest

final class RecipeTrainingTests: XCTestCase {
    /// A face whose pixel (r, c) is 2r + c + 1 (1...142): linear, so bilinear sampling of it is
    /// exact, and never zero, so erased pixels show.
    let linear: [UInt8] = (0..<2304).map { (i: Int) -> UInt8 in
        let r = i / 48, c = i % 48
        return UInt8(2 * r + c + 1)
    }

    func render(_ a: Augmentation, _ d: FaceDraw) -> [Float] {
        var x: [Float] = []
        linear.withUnsafeBufferPointer { renderFace($0.baseAddress!, a, d, scale: 1, into: &x) }
        return x
    }

    func batch(_ a: Augmentation, seed: UInt64?) -> [Float] {
        var set = FaceSet()
        set.append(label: 1, pixels: linear)
        var x: [Float] = [], y: [Int32] = []
        fillBatch(x: &x, labels: &y, set: set, indices: [0], scale: 1, augmentation: a, augmentSeed: seed)
        return x
    }

    func testCentreCropAndRandomCropsFromAReflectedPad() {
        var a = Augmentation()
        a.crop = 40
        // Without a generator (validation): the centre crop.
        let centre = batch(a, seed: nil)
        XCTAssertEqual(centre.count, 1600)
        for r in 0..<40 { for c in 0..<40 { XCTAssertEqual(centre[r * 40 + c], Float(2 * (r + 4) + c + 4 + 1)) } }
        // Random crops of the face padded by 6, mirrored at its edges.
        a.pad = 6
        a.padMode = .reflect
        a.horizontalFlip = true
        func reflect(_ i: Int) -> Int { i < 0 ? -i : (i > 47 ? 94 - i : i) }
        var rows = Set<Int>(), flips = 0
        for seed in 0..<40 as Range<UInt64> {
            var g = SplitMix64(seed: mixSeed(seed, 0))
            let d = FaceDraw(a, &g)
            XCTAssertTrue((-6...14).contains(d.row) && (-6...14).contains(d.col), "\(d.row), \(d.col)")
            rows.insert(d.row)
            if d.flip { flips += 1 }
            let x = batch(a, seed: seed)
            XCTAssertEqual(x, batch(a, seed: seed), "seeded")
            for r in 0..<40 {
                for c in 0..<40 {
                    let sc = reflect(d.col + (d.flip ? 39 - c : c)), sr = reflect(d.row + r)
                    XCTAssertEqual(x[r * 40 + c], Float(2 * sr + sc + 1))
                }
            }
        }
        XCTAssertGreaterThan(rows.count, 8)
        XCTAssertTrue((1..<40).contains(flips))
        // Zero and edge padding.
        var d = FaceDraw(centre: a)
        (d.row, d.col, d.flip) = (-3, 10, false)
        a.padMode = .zero
        XCTAssertEqual(render(a, d)[0], 0)
        XCTAssertEqual(render(a, d)[3 * 40], Float(0 + 10 + 1))
        a.padMode = .edge
        XCTAssertEqual(render(a, d)[0], Float(0 + 10 + 1))
    }

    func testRotationAndZoomAboutTheCentre() {
        var a = Augmentation()
        a.rotate = 90
        var d = FaceDraw(centre: a)
        // A quarter turn of the whole face: pixel (r, c) comes from (c, 47 - r).
        d.angle = Double.pi / 2
        let turned = render(a, d)
        for r in 0..<48 { for c in 0..<48 { XCTAssertEqual(turned[r * 48 + c], Float(2 * c + 47 - r + 1), accuracy: 1e-3) } }
        // Zoom 2 on a 40x40 crop: (r, c) comes from 23.5 + (r - 19.5) / 2, likewise c; the face
        // is linear, so the bilinear value is exact.
        a.crop = 40
        d = FaceDraw(centre: a)
        d.zoom = 2
        let zoomed = render(a, d)
        for r in 0..<40 {
            for c in 0..<40 {
                let sr = 23.5 + (Double(r) - 19.5) / 2, sc = 23.5 + (Double(c) - 19.5) / 2
                XCTAssertEqual(Double(zoomed[r * 40 + c]), 2 * sr + sc + 1, accuracy: 1e-4)
            }
        }
        // A drawn angle and zoom stay in their ranges and differ between seeds.
        a.rotate = 10
        a.scale = 0.2
        var angles = Set<Double>()
        for seed in 0..<20 as Range<UInt64> {
            var g = SplitMix64(seed: seed)
            let d = FaceDraw(a, &g)
            XCTAssertLessThanOrEqual(abs(d.angle), 10 * Double.pi / 180)
            XCTAssertTrue((0.8...1.2).contains(d.zoom))
            angles.insert(d.angle)
        }
        XCTAssertEqual(angles.count, 20)
    }

    func testRandomErasingZeroesOneRectangle() {
        var a = Augmentation()
        a.erase = 1
        a.eraseMin = 0.1
        a.eraseMax = 0.1
        for seed in 0..<10 as Range<UInt64> {
            let x = batch(a, seed: seed)
            let zeros = x.indices.filter { x[$0] == 0 }
            let rows = Set(zeros.map { $0 / 48 }), cols = Set(zeros.map { $0 % 48 })
            XCTAssertEqual(zeros.count, rows.count * cols.count, "a filled rectangle")
            XCTAssertEqual(rows.max()! - rows.min()! + 1, rows.count)
            XCTAssertEqual(Double(zeros.count), 230.4, accuracy: 30)   // 10% of 2304, rounding the sides
            let ratio = Double(rows.count) / Double(cols.count)
            XCTAssertTrue((0.25...4).contains(ratio), "\(ratio)")
            for i in x.indices where x[i] != 0 { XCTAssertEqual(x[i], Float(2 * (i / 48) + i % 48 + 1)) }
        }
        a.erase = 0.5
        let erased = (0..<40 as Range<UInt64>).filter { batch(a, seed: $0).contains(0) }.count
        XCTAssertTrue((8...32).contains(erased), "\(erased) of 40")
    }

    func testCosineReachesItsMinimumAtTheLastStep() {
        let s = LRSchedule.cosine(minFactor: 0, warmupEpochs: 2)
        let (steps, epochs) = (100, 30)
        XCTAssertEqual(s.rate(base: 0.1, iteration: 0, stepsPerEpoch: steps, epochs: epochs), 0.1 / 200, accuracy: 1e-15)
        XCTAssertEqual(s.rate(base: 0.1, iteration: 199, stepsPerEpoch: steps, epochs: epochs), 0.1, accuracy: 1e-15)
        let last = s.rate(base: 0.1, iteration: steps * epochs - 1, stepsPerEpoch: steps, epochs: epochs)
        XCTAssertLessThan(last, 0.1 * 1e-6)
        var previous = 1.0
        for t in stride(from: 200, to: steps * epochs, by: 7) {
            let r = s.rate(base: 0.1, iteration: t, stepsPerEpoch: steps, epochs: epochs)
            XCTAssertLessThanOrEqual(r, previous)
            previous = r
        }
    }

    func testTrainBlockSettingsParseAndPrintBack() throws {
        let source = """
        model m
        input x: f32[N, 1, 40, 40]
        input labels: i32[N]
        f = flatten(x)
        logits = dense(f, units=7)
        loss = softmax_cross_entropy(logits, labels)
        output logits, loss
        train {
          loss = loss
          optimizer = sgd(lr=0.01, momentum=0.9, nesterov=true, weight_decay=5e-4)
          label_smoothing = 0.1
          ema = 0.999
          mixup = 0.2
          augment = augment(hflip=true, crop=40, pad=4, pad_mode=reflect, rotate=10, scale=0.1, erase=0.5, erase_min=0.02, erase_max=0.2)
        }
        """
        let g = try Frontend.compile(source: source, file: "m.graph")
        let t = try XCTUnwrap(g.training)
        XCTAssertEqual(t.optimizer, .sgd(lr: 0.01, SGDAttrs(momentum: 0.9, nesterov: true, weightDecay: 5e-4)))
        XCTAssertEqual(t.labelSmoothing, 0.1)
        XCTAssertEqual(t.ema, 0.999)
        XCTAssertEqual(t.mixup, 0.2)
        XCTAssertEqual(t.augmentation.crop, 40)
        XCTAssertEqual(t.augmentation.pad, 4)
        XCTAssertEqual(t.augmentation.padMode, .reflect)
        XCTAssertEqual(t.augmentation.eraseMax, 0.2)
        let again = try Frontend.compile(source: g.printed(), file: "printed.graph")
        XCTAssertEqual(again.training, t)
        // A model without the new settings prints as before (its checkpoints' hashes stay).
        XCTAssertFalse(try Frontend.compile(path: "\(repoRoot)/Models/small.graph").printed().contains("label_smoothing"))
        for (old, bad, message) in [("pad_mode=reflect", "pad_mode=mirror", "pad_mode"), ("erase_min=0.02, erase_max=0.2", "erase_min=0.5, erase_max=0.1", "erase_min"),
                                    ("crop=40", "crop=50", "at most 48")] {
            let s = source.replacingOccurrences(of: old, with: bad)
            XCTAssertThrowsError(try Frontend.compile(source: s, file: "bad.graph")) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
        XCTAssertThrowsError(try Frontend.compile(source: source.replacingOccurrences(of: "ema = 0.999", with: "ema = 1"), file: "bad.graph"))
        XCTAssertThrowsError(try Frontend.compile(source: source.replacingOccurrences(of: "mixup = 0.2", with: "mixup = -0.2"), file: "bad.graph")) {
            XCTAssertTrue("\($0)".contains("bad.graph:13:") && "\($0)".contains("Beta"), "\($0)")
        }
        XCTAssertFalse(try Frontend.compile(path: "\(repoRoot)/Models/small.graph").printed().contains("mixup"))

        // With mixup the training step's loss reads soft targets of the logits' shape, and the
        // validation graph (training = nil) still reads the labels.
        var options = CompileOptions()
        options.mode = .training
        options.batch = 4
        options.probe = false
        let step = try compile(g, options)
        let targets = try XCTUnwrap(step.plan.buffer(named: "targets"))
        XCTAssertEqual(step.plan.buffers[targets].perSample, [7])
        XCTAssertTrue(step.plan.steps.contains { if case .softmaxCrossEntropySoft(7) = $0.kernel { return true } else { return false } })
        XCTAssertFalse(step.plan.steps.contains { if case .softmaxCrossEntropySmoothed = $0.kernel { return true } else { return false } })
        var plain = g
        plain.training?.mixup = 0
        let plainStep = try compile(plain, options)
        XCTAssertNil(plainStep.plan.buffer(named: "targets"))
        XCTAssertTrue(plainStep.plan.steps.contains { if case .softmaxCrossEntropySmoothed = $0.kernel { return true } else { return false } })
    }

    /// One weight from Beta(a, a) per batch and a pairing that is a permutation, both keyed by
    /// the seed; over many batches the weights have Beta(a, a)'s mean 1/2 and variance
    /// 1 / (4 (2a + 1)).
    func testMixupDrawsBetaWeightsAndAPermutation() {
        let d = MixupDraw(count: 64, alpha: 0.2, seed: 11)
        XCTAssertEqual(d, MixupDraw(count: 64, alpha: 0.2, seed: 11))
        XCTAssertNotEqual(d, MixupDraw(count: 64, alpha: 0.2, seed: 12))
        XCTAssertEqual(d.partner.sorted(), Array(0..<64))
        XCTAssertNotEqual(d.partner, Array(0..<64))
        for alpha in [0.2, 1, 4] {
            let draws = (0..<20_000).map { MixupDraw(count: 1, alpha: alpha, seed: mixSeed(99, UInt64($0))).lambda }
            XCTAssertTrue(draws.allSatisfy { $0 >= 0 && $0 <= 1 && $0.isFinite })
            let mean = draws.reduce(0, +) / Double(draws.count)
            let variance = draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(draws.count - 1)
            let expected = 1 / (4 * (2 * alpha + 1))
            // Standard errors at 20,000 draws: the mean's under 0.004, the variance's under 2%.
            XCTAssertEqual(mean, 0.5, accuracy: 0.012, "alpha \(alpha)")
            XCTAssertEqual(variance / expected, 1, accuracy: 0.06, "alpha \(alpha): variance \(variance), Beta's \(expected)")
        }
        // A tiny a puts the weights at the ends (about 4% of Beta(0.01, 0.01) lies in
        // [0.01, 0.99]) without a NaN from two Gamma(0.01) draws that underflow a Double.
        let tiny = (0..<1000).map { MixupDraw(count: 1, alpha: 0.01, seed: UInt64($0)).lambda }
        XCTAssertTrue(tiny.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
        XCTAssertLessThan(tiny.filter { $0 >= 0.01 && $0 <= 0.99 }.count, 80)
        XCTAssertGreaterThan(tiny.filter { $0 < 0.5 }.count, 400)
        XCTAssertGreaterThan(tiny.filter { $0 > 0.5 }.count, 400)
    }

    /// Each image becomes l x + (1 - l) x' of itself and its partner, its target the same mix
    /// of the two labels' smoothed targets, and it is scored against the heavier label.
    func testMixupMixesTheImagesAndTheirTargets() {
        let pixels = 3, classes = 4
        let x0: [Float] = [1, 2, 3, 10, 20, 30, 100, 200, 300]
        let labels: [Int32] = [0, 2, 3]
        for (lambda, scored) in [(0.75, labels), (0.25, [Int32(3), 0, 2])] {
            let draw = MixupDraw(lambda: lambda, partner: [2, 0, 1])
            var x = x0, targets: [Float] = []
            let s = applyMixup(draw, x: &x, labels: labels, targets: &targets, pixels: pixels, classes: classes, smoothing: 0.1)
            XCTAssertEqual(s, scored)
            for k in 0..<3 {
                for i in 0..<pixels {
                    let p = draw.partner[k]
                    XCTAssertEqual(x[k * pixels + i], Float(lambda) * x0[k * pixels + i] + Float(1 - lambda) * x0[p * pixels + i])
                }
                let row = targets[(k * classes)..<((k + 1) * classes)]
                XCTAssertEqual(Double(row.reduce(0, +)), 1, accuracy: 1e-6)
                for j in 0..<classes {
                    let q = { (y: Int32) in (j == Int(y) ? 0.9 : 0) + 0.1 / 4 }
                    XCTAssertEqual(Double(row[row.startIndex + j]), lambda * q(labels[k]) + (1 - lambda) * q(labels[draw.partner[k]]), accuracy: 1e-7)
                }
            }
        }
    }

    func testWeightAverageFollowsItsFormula() throws {
        let source = try String(contentsOfFile: "\(repoRoot)/Models/tiny.graph", encoding: .utf8)
            .replacingOccurrences(of: "  epochs = 2\n", with: "  epochs = 2\n  ema = 0.9\n")
        let model = try Frontend.compile(source: source, file: "tiny-ema.graph")
        XCTAssertEqual(model.training?.ema, 0.9)
        let c = try trained(model, steps: 2)
        XCTAssertEqual(c.meta.iteration, 2)
        // After step 1 avg = d1 w0 + (1 - d1) w1, after step 2 avg = d2 avg + (1 - d2) w2,
        // d_t = min(0.9, (1 + t) / (10 + t)). Only w0 and w2 are known here, so run again to
        // step 1 for w1.
        let c1 = try trained(model, steps: 1)
        let w0 = initialWeights(model, seed: 7)
        let d1 = Float(2.0 / 11), d2 = Float(3.0 / 12)
        for name in ["c1.weight", "d1.weight", "logits.bias", "d1_bn.gamma"] {
            let start = try XCTUnwrap(w0[name], name)
            let w1 = try XCTUnwrap(c1.tensors["train." + name]), w2 = try XCTUnwrap(c.tensors["train." + name])
            let avg = try XCTUnwrap(c.tensors[name])
            XCTAssertNotEqual(w2, start, "\(name) trained")
            for i in avg.indices {
                let a1 = d1 * start[i] + (1 - d1) * w1[i]
                XCTAssertEqual(avg[i], d2 * a1 + (1 - d2) * w2[i], accuracy: 1e-6, name)
            }
        }
        // The batchnorm running statistics are averaged too; the optimizer state is not.
        XCTAssertNotNil(c.tensors["train.d1_bn.running_var"])
        XCTAssertNil(c.tensors["train.optimizer.iterations"])
        XCTAssertTrue(c.tensors.keys.contains { $0.hasPrefix("adam.") })
    }

    /// Two steps of `Models/tiny.graph` with `source`'s optimizer line replaced and, when
    /// `lrScale` is given, `lr_scale=` on the layers it names (every layer: nil names).
    private func twoSteps(optimizer: String, lrScale: String?, layers: Set<String>? = nil) throws -> [String: [Float]] {
        var source = try String(contentsOfFile: "\(repoRoot)/Models/tiny.graph", encoding: .utf8)
            .replacingOccurrences(of: "  optimizer = adam(lr=1e-3)\n", with: "  optimizer = \(optimizer)\n")
        XCTAssertTrue(source.contains(optimizer))
        if let lrScale {
            source = source.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                let name = String(line.prefix { $0 != " " })
                let isLayer = ["conv2d(", "batchnorm(", "dense("].contains { line.contains(" = " + $0) }
                guard isLayer, layers?.contains(name) ?? true, line.hasSuffix(")") else { return String(line) }
                return line.dropLast() + ", lr_scale=\(lrScale))"
            }.joined(separator: "\n")
            XCTAssertEqual(source.components(separatedBy: "lr_scale=").count - 1, layers?.count ?? 6, source)
        }
        return try trained(try Frontend.compile(source: source, file: "tiny-lr.graph"), steps: 2).tensors
    }

    /// The last checkpoint of `steps` training steps of `model` (seed 7, batch 16) on the embedded
    /// sample, in a temporary directory removed after the test.
    private func trained(_ model: Graph, steps: Int) throws -> Checkpoint {
        let data = try loadFER2013(path: "\(repoRoot)/Data/fer2013-sample.csv.gz")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-recipe-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        var options = TrainOptions(epochs: 1, batchSize: 16, seed: 7, outDir: dir)
        options.maxSteps = steps
        try Trainer(model: model, data: data, options: options).run { _ in }
        return try Checkpoint.read(dir + "/checkpoint-last.npz")
    }

    func testLearningRateScaleIsTheStepOfTheScaledRate() throws {
        // lr_scale=0.5 on every layer takes the same steps, to the bit, as half the rate: the
        // weights, Adam's moments and SGD's velocities (halving is exact in f32).
        for (full, half) in [("adam(lr=1e-3)", "adam(lr=5e-4)"),
                             ("sgd(lr=0.01, momentum=0.9, nesterov=true, weight_decay=1e-4, decoupled=true)",
                              "sgd(lr=0.005, momentum=0.9, nesterov=true, weight_decay=1e-4, decoupled=true)"),
                             ("sgd(lr=0.01, momentum=0.9, weight_decay=1e-4)", "sgd(lr=0.005, momentum=0.9, weight_decay=1e-4)")] {
            let scaled = try twoSteps(optimizer: full, lrScale: "0.5")
            let halved = try twoSteps(optimizer: half, lrScale: nil)
            let unscaled = try twoSteps(optimizer: full, lrScale: nil)
            XCTAssertEqual(Set(scaled.keys), Set(halved.keys), full)
            for (name, value) in scaled { XCTAssertEqual(value, halved[name], "\(full): \(name)") }
            XCTAssertNotEqual(scaled["c1.weight"], unscaled["c1.weight"], "the factor changes the step: \(full)")
        }
    }

    func testLearningRateScaleZeroHoldsALayerWhileGradientsPassThroughIt() throws {
        let w0 = initialWeights(try Frontend.compile(path: "\(repoRoot)/Models/tiny.graph"), seed: 7)
        for optimizer in ["adam(lr=1e-3)", "sgd(lr=0.01, momentum=0.9, nesterov=true, weight_decay=1e-4)"] {
            let t = try twoSteps(optimizer: optimizer, lrScale: "0", layers: ["c2"])
            for name in ["c2.weight", "c2.bias"] { XCTAssertEqual(t[name], w0[name], "\(optimizer): \(name) held") }
            // c1 comes before c2: it can only move if c2 passes its gradient back.
            for name in ["c1.weight", "d1.weight", "logits.bias"] {
                XCTAssertNotNil(t[name])
                XCTAssertNotEqual(t[name], w0[name], "\(optimizer): \(name) trained")
            }
        }
    }
}

/// The repository root, found from this file's path.
let repoRoot: String = {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()
