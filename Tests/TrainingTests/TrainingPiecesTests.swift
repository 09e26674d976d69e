// The pieces of the training loop: shuffling, batches and augmentation, initializers,
// schedules, metrics, and the PNG encoder.

import Foundation
import GraphIR
import Passes
import Training
import XCTest

final class TrainingPiecesTests: XCTestCase {
    func testEpochOrderIsASeededPermutation() {
        let a = epochOrder(count: 1000, seed: 1, epoch: 0)
        XCTAssertEqual(a.sorted(), Array(0..<1000))
        XCTAssertEqual(a, epochOrder(count: 1000, seed: 1, epoch: 0))
        XCTAssertNotEqual(a, epochOrder(count: 1000, seed: 1, epoch: 1))
        XCTAssertNotEqual(a, epochOrder(count: 1000, seed: 2, epoch: 0))
        XCTAssertNotEqual(a, Array(0..<1000))
    }

    func testBatchScalingFlipAndShift() {
        var set = FaceSet()
        let image = (0..<2304).map { UInt8($0 % 48) }  // pixel value = column
        set.append(label: 3, pixels: image)
        var x: [Float] = [], y: [Int32] = []
        fillBatch(x: &x, labels: &y, set: set, indices: [0], scale: 0.5, augmentation: .none, augmentSeed: 9)
        XCTAssertEqual(y, [3])
        XCTAssertEqual(x[5], 2.5)
        // Flips only: every row is the mirror or the original; over seeds both occur.
        var flipped = 0
        for seed in 0..<20 as Range<UInt64> {
            fillBatch(x: &x, labels: &y, set: set, indices: [0], scale: 1, augmentation: Augmentation(horizontalFlip: true), augmentSeed: seed)
            if x[0] == 47 { flipped += 1 } else { XCTAssertEqual(x[0], 0) }
        }
        XCTAssertGreaterThan(flipped, 0)
        XCTAssertLessThan(flipped, 20)
        // Shifts move the image by at most 10% and fill with zeros.
        for seed in 0..<20 as Range<UInt64> {
            fillBatch(x: &x, labels: &y, set: set, indices: [0], scale: 1, augmentation: Augmentation(shift: 0.1), augmentSeed: seed)
            let row = Array(x[(24 * 48)..<(25 * 48)])
            let dx = 24 - Int(row[24])  // x[r][c] = image[r - dy][c - dx], and image[.][j] = j
            XCTAssertLessThanOrEqual(abs(dx), 4)
            for c in 0..<48 { XCTAssertEqual(Int(row[c]), (0..<48).contains(c - dx) ? c - dx : 0) }
        }
    }

    func testGlorotUniformLimitsAndDeterminism() {
        let w = initialValues(.glorotUniform, shape: [32, 16, 3, 3], seed: 1, name: "c.weight")
        let limit = Float((6.0 / Double(16 * 9 + 32 * 9)).squareRoot())
        XCTAssertLessThanOrEqual(w.map(abs).max()!, limit)
        XCTAssertGreaterThan(w.map(abs).max()!, limit * 0.95)
        XCTAssertEqual(w, initialValues(.glorotUniform, shape: [32, 16, 3, 3], seed: 1, name: "c.weight"))
        XCTAssertNotEqual(w, initialValues(.glorotUniform, shape: [32, 16, 3, 3], seed: 1, name: "d.weight"))
        XCTAssertEqual(initialValues(.zeros, shape: [4], seed: 1, name: "b"), [0, 0, 0, 0])
        let h = initialValues(.heNormal, shape: [64, 4608], seed: 3, name: "fc.weight")
        let std = (h.map { Double($0 * $0) }.reduce(0, +) / Double(h.count)).squareRoot()
        XCTAssertEqual(std, (2.0 / 4608).squareRoot(), accuracy: 0.002)
    }

    func testSchedulesMatchTheirFormulas() {
        let keras = LRSchedule.inverseTime(decay: 1e-6)
        XCTAssertEqual(keras.rate(base: 1e-4, iteration: 0, stepsPerEpoch: 225, epochs: 100), 1e-4)
        XCTAssertEqual(keras.rate(base: 1e-4, iteration: 22_500, stepsPerEpoch: 225, epochs: 100), 1e-4 / 1.0225, accuracy: 1e-12)
        let cosine = LRSchedule.cosine(minFactor: 0, warmupEpochs: 0)
        XCTAssertEqual(cosine.rate(base: 1, iteration: 0, stepsPerEpoch: 10, epochs: 10), 1, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(base: 1, iteration: 50, stepsPerEpoch: 10, epochs: 10), 0.5, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(base: 1, iteration: 100, stepsPerEpoch: 10, epochs: 10), 0, accuracy: 1e-12)
        XCTAssertEqual(LRSchedule.step(every: 2, factor: 0.5).rate(base: 1, iteration: 45, stepsPerEpoch: 10, epochs: 10), 0.25)
    }

    /// A finish: the main schedule over `epochs`, then the finish's from its own rate over its
    /// epochs; augmentation switches at the same epoch.
    func testAFinishTakesOverTheRateAndTheAugmentationAfterTheMainEpochs() {
        var t = TrainingConfig(loss: "loss", optimizer: .sgd(lr: 0.01, SGDAttrs()), schedule: .cosine(minFactor: 0, warmupEpochs: 1),
                               epochs: 4, augmentation: Augmentation(horizontalFlip: true, shift: 0.1))
        let none = (0..<60).map { t.learningRate(iteration: $0, stepsPerEpoch: 10) }
        XCTAssertEqual(none, (0..<60).map { t.schedule.rate(base: 0.01, iteration: $0, stepsPerEpoch: 10, epochs: 4) },
                       "without a finish the rate is the main schedule's")
        XCTAssertEqual(t.totalEpochs, 4)
        t.finish = FinishStage(epochs: 2, learningRate: 0.001, augmentation: Augmentation(horizontalFlip: true))
        XCTAssertEqual(t.totalEpochs, 6)
        // The main epochs are unchanged: warm-up, then cosine to 0 at the end of epoch 4.
        for i in 0..<40 { XCTAssertEqual(t.learningRate(iteration: i, stepsPerEpoch: 10), none[i]) }
        XCTAssertLessThan(t.learningRate(iteration: 39, stepsPerEpoch: 10), 0.01 * 0.01)
        // The finish starts at its own rate and falls by cosine to 0 over its 20 steps.
        XCTAssertEqual(t.learningRate(iteration: 40, stepsPerEpoch: 10), 0.001, accuracy: 1e-15)
        XCTAssertEqual(t.learningRate(iteration: 50, stepsPerEpoch: 10), 0.0005, accuracy: 1e-15)
        XCTAssertEqual(t.learningRate(iteration: 59, stepsPerEpoch: 10), 0.001 * 0.5 * (1 + cos(Double.pi * 19 / 20)), accuracy: 1e-15)
        XCTAssertEqual(t.augmentation(epoch: 3).shift, 0.1)
        XCTAssertEqual(t.augmentation(epoch: 4).shift, 0)
        XCTAssertEqual(t.augmentation(epoch: 5), Augmentation(horizontalFlip: true))
        XCTAssertTrue(t.augmentsAnyEpoch)
        t.augmentation = .none
        XCTAssertTrue(t.augmentsAnyEpoch, "the finish alone augments")
        t.finish?.augmentation = .none
        XCTAssertFalse(t.augmentsAnyEpoch)
    }

    func testConfusionMetrics() {
        var c = Confusion(classes: 3)
        for (t, p) in [(0, 0), (0, 0), (0, 1), (1, 1), (2, 1), (2, 2)] { c.add(truth: t, predicted: p) }
        XCTAssertEqual(c.accuracy, 4.0 / 6)
        XCTAssertEqual(c.precision(1), 1.0 / 3)
        XCTAssertEqual(c.recall(0), 2.0 / 3)
        XCTAssertEqual(c.f1(2), 2 * 1 * 0.5 / 1.5)
        XCTAssertEqual(c.normalized[2], [0, 0.5, 0.5])
    }

    func testPNGIsWellFormed() {
        let png = encodePNG([0, 128, 255, 64], width: 2, height: 2, color: .gray)
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(String(decoding: png[12..<16], as: UTF8.self), "IHDR")
        XCTAssertEqual(String(decoding: png[(png.count - 8)..<(png.count - 4)], as: UTF8.self), "IEND")
    }
}
