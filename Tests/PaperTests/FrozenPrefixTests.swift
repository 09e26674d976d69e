// The frozen-prefix pass and the trainer's cache: the prefix is found and put first, and two
// epochs with the cache (whole, or partly over budget) end with the very same weights as two
// epochs without it.

import Foundation
import GraphIR
import Passes
import Runtime
@testable import Training
import TestSupport
import XCTest

final class FrozenPrefixTests: XCTestCase {
    let frozenModel = "Tests/PaperTests/Fixtures/frozen_prefix.graph"

    func testThePassFindsThePrefixAndPutsItFirst() throws {
        var options = CompileOptions()
        options.mode = .training
        options.batch = 4
        options.probe = false
        let plan = try compile(try model(frozenModel), options).plan
        let p = try XCTUnwrap(plan.metadata.frozenPrefix)
        XCTAssertEqual(p.output, "p1")
        XCTAssertEqual(p.outputPerSample, [8, 6, 6])
        XCTAssertEqual(p.frozenParameters, ["c1.bias", "c1.weight", "c1b.bias", "c1b.weight"])
        XCTAssertEqual(plan.steps[p.steps - 1].outputs.map { plan.buffers[$0].name }, ["p1"])
        XCTAssertTrue(plan.metadata.passes.contains("frozen-prefix"))
        // Nothing after the prefix reads what the prefix computed except its output.
        let prefixValues = Set(plan.steps[..<p.steps].flatMap(\.outputs))
        for s in plan.steps[p.steps...] {
            for i in s.inputs where prefixValues.contains(i) { XCTAssertEqual(plan.buffers[i].name, "p1", s.name) }
        }
        // Models without frozen weights have none; vgg16_pretrained's is blocks 1-3.
        XCTAssertNil(analyzeFrozenPrefix(try model("Models/tiny.graph")).analysis)
        let pretrained = try model("Models/vgg16_pretrained.graph")
        let a = try XCTUnwrap(analyzeFrozenPrefix(pretrained).analysis)
        XCTAssertEqual(pretrained[a.cut].name, "block3_pool")
    }

    func testCachedTrainingEndsWithIdenticalWeights() throws {
        let data = try loadFER2013(path: samplePath, options: LoadOptions(splits: [.training, .publicTest]))
        let m = try model(frozenModel)
        func train(cacheBytes: Int) throws -> (tensors: [String: [Float]], trainer: Trainer) {
            let dir = temporaryDirectory("prefix")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var options = TrainOptions(epochs: 2, batchSize: 16, seed: 3, outDir: dir)
            options.prefixCacheBytes = cacheBytes
            let trainer = try Trainer(model: m, data: data, options: options)
            try trainer.run { _ in }
            return (try Checkpoint.read(trainer.lastCheckpointPath).tensors, trainer)
        }
        let plain = try train(cacheBytes: 0)
        XCTAssertNil(plain.trainer.prefixCache)
        XCTAssertTrue(plain.trainer.prefixCacheNote?.contains("cache off") ?? false)
        let cached = try train(cacheBytes: 1 << 30)
        let all = try XCTUnwrap(cached.trainer.prefixCache)
        XCTAssertEqual(all.capacity, data[.training].count)
        XCTAssertEqual(all.computed, data[.training].count)  // once per image
        XCTAssertEqual(all.served, data[.training].count)    // the second epoch
        // 100 images within the budget: the rest recomputed on each step.
        let partial = try train(cacheBytes: 100 * 8 * 6 * 6 * 4)
        XCTAssertEqual(partial.trainer.prefixCache?.capacity, 100)
        XCTAssertEqual(partial.trainer.prefixCache?.served, 100)

        // The same weights up to the products' rounding: the prefix is computed per image when
        // cached and per batch when not, and OpenBLAS's Haswell kernels (a machine whose
        // environment sets OPENBLAS_CORETYPE=Haswell) round those shapes apart by an ulp or two,
        // where the kernels of the machines CI ran on before gave bitwise equal weights. A wrong
        // cached value (another image's, or a stale one) moves them by far more than 1e-5 of the
        // tensor.
        XCTAssertEqual(Set(plain.tensors.keys), Set(cached.tensors.keys))
        for (name, v) in plain.tensors {
            XCTAssertLessThanOrEqual(largestRelativeDifference(v, cached.tensors[name]), 1e-5, "\(name) differs with the cache")
            XCTAssertLessThanOrEqual(largestRelativeDifference(v, partial.tensors[name]), 1e-5, "\(name) differs with the partial cache")
        }
        // The weights moved (the comparison is not of two untouched initial states).
        XCTAssertNotEqual(plain.tensors["c2.weight"], initialWeights(m, seed: 3)["c2.weight"])
    }

    func testAugmentationTurnsTheCacheOff() throws {
        var m = try model(frozenModel)
        m.training?.augmentation = Augmentation(horizontalFlip: true)
        let data = try loadFER2013(path: samplePath, options: LoadOptions(splits: [.training]))
        let trainer = try Trainer(model: m, data: data, options: TrainOptions(epochs: 1, batchSize: 8, seed: 1, outDir: temporaryDirectory("aug")))
        XCTAssertNil(trainer.prefixCache)
        XCTAssertTrue(trainer.prefixCacheNote?.contains("augmentation") ?? false, trainer.prefixCacheNote ?? "nil")
    }
}
