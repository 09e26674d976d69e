// The embedding API: LoadedPlan (shared, immutable) and Session (one per thread).

import Foundation
import Runtime
import XCTest

final class ModelTests: XCTestCase {
    func testSessionGivesSoftmaxOfTheExecutorsLogits() throws {
        let plan = try facePlan(maxBatch: 4)
        let model = try LoadedPlan(bytes: encodePlan(plan))
        XCTAssertEqual(model.classes, 7)
        XCTAssertEqual(model.inputShape, [1, 48, 48])
        XCTAssertFalse(model.outputIsProbabilities)
        XCTAssertEqual(model.parametersWithoutValues, [])
        let pixels = (0..<3).flatMap { syntheticPixels($0) }
        let images = pixels.map { Float($0) / 255 }

        let ex = try Executor<Float>(plan: plan)
        ex.dropoutEnabled = false
        for (i, b) in plan.buffers.enumerated() { if let v = plan.parameters[b.name] { ex.setBuffer(i, v) } }
        ex.setBuffer(model.inputBuffer, images)
        try ex.run(batch: 3)
        let logits = ex.buffer(plan.outputs[0])

        let session = try Session(model)
        let probs = try session.predict(images: images)
        XCTAssertEqual(probs.count, 3)
        for (i, row) in probs.enumerated() {
            XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
            let l = logits[i * 7..<(i + 1) * 7].map(Double.init), m = l.max()!
            let e = l.map { Foundation.exp($0 - m) }, sum = e.reduce(0, +)
            for j in 0..<7 { XCTAssertEqual(Double(row[j]), e[j] / sum, accuracy: 1e-6) }
        }
        // Raw pixels get the plan's input scale (1/255 here).
        let raw = try session.predictRaw(pixels: pixels)
        for (a, b) in zip(raw, probs) { for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-6) } }
    }

    func testBatchesLargerThanMaxBatchAreSplit() throws {
        let model = try LoadedPlan(plan: try facePlan(maxBatch: 2))
        let session = try Session(model)
        let pixels = (0..<5).flatMap { syntheticPixels($0) }
        let all = try session.predictRaw(pixels: pixels)
        XCTAssertEqual(all.count, 5)
        // Alone, an image runs through other kernels (matrix-vector products for the dense
        // layers, Winograd split over channels instead of samples): the same sums in another
        // order, so equal to rounding, not bit for bit.
        for i in 0..<5 {
            let one = try session.predictRaw(pixels: syntheticPixels(i))
            XCTAssertEqual(one[0].count, 7)
            for (a, b) in zip(one[0], all[i]) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        }
        XCTAssertThrowsError(try session.predict(images: [1, 2, 3])) { e in
            XCTAssertTrue("\(e)".contains("not a whole number of images of 2304"), "\(e)")
        }
    }

    func testFourThreadsWithTheirOwnSessionsAgree() throws {
        let model = try LoadedPlan(plan: try facePlan(maxBatch: 4))
        let pixels = (0..<6).flatMap { syntheticPixels($0) }
        let reference = try Session(model).predictRaw(pixels: pixels)
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            do {
                let session = try Session(model)
                var mine: [[Float]] = []
                for _ in 0..<5 { mine = try session.predictRaw(pixels: pixels) }
                results.set(t, mine)
            } catch {
                results.set(t, [])
            }
        }
        for t in 0..<4 { XCTAssertEqual(results.get(t), reference, "thread \(t)") }
    }

    func testPlanEndingInSoftmaxIsReturnedAsIs() throws {
        var plan = try facePlan()
        let logits = plan.outputs[0]
        var probs = plan.buffers[logits]
        probs.name = "probs"
        probs.offset = nil
        plan.buffers.append(probs)
        plan.steps.append(Step(name: "probs", kernel: .softmax(classes: 7), inputs: [logits], outputs: [plan.buffers.count - 1]))
        plan.outputs = [plan.buffers.count - 1]
        plan.buffers = plan.buffers.map { var b = $0; b.offset = nil; return b }
        plan.memory = nil
        let model = try LoadedPlan(plan: plan)
        XCTAssertTrue(model.outputIsProbabilities)
        let p = try Session(model).predictRaw(pixels: syntheticPixels(1))
        XCTAssertEqual(p[0].reduce(0, +), 1, accuracy: 1e-5)
    }

    func testPlansThatAreNotClassifiersAreExplained() throws {
        var plan = try facePlan()
        plan.metadata.classNames = ["a", "b"]
        XCTAssertThrowsError(try LoadedPlan(plan: plan)) { e in
            XCTAssertTrue("\(e)".contains("names 2 classes but the output 'logits' has 7"), "\(e)")
        }
        plan = try facePlan()
        plan.metadata.inputShape = [3, 48, 48]
        XCTAssertThrowsError(try LoadedPlan(plan: plan)) { e in
            XCTAssertTrue("\(e)".contains("cannot tell which input is the image"), "\(e)")
        }
    }
}

/// Per-thread results, behind a lock.
final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: [[Float]]] = [:]
    func set(_ t: Int, _ v: [[Float]]) { lock.lock(); values[t] = v; lock.unlock() }
    func get(_ t: Int) -> [[Float]]? { lock.lock(); defer { lock.unlock() }; return values[t] }
}
