// Dropout masks from the counter-based hash: deterministic, fresh per run, the right rate.
import XCTest
@testable import Runtime

final class DropoutTests: RuntimeTestCase {
    func mask(count: Int, rate: Double, seed: UInt64, run: UInt64, step: UInt64 = 0) -> [Double] {
        let x = DBuf([Double](repeating: 1, count: count)), y = DBuf(zeros: count), m = DBuf(zeros: count)
        dropoutForward(y.p, m.p, x.c, count: count, rate: rate, seed: seed, run: run, step: step)
        XCTAssertEqual(y.array, m.array)
        return m.array
    }

    func testDeterministicAndFreshPerRun() {
        let a = mask(count: 1000, rate: 0.5, seed: 42, run: 3)
        XCTAssertEqual(a, mask(count: 1000, rate: 0.5, seed: 42, run: 3))
        XCTAssertNotEqual(a, mask(count: 1000, rate: 0.5, seed: 42, run: 4))
        XCTAssertNotEqual(a, mask(count: 1000, rate: 0.5, seed: 43, run: 3))
        XCTAssertNotEqual(a, mask(count: 1000, rate: 0.5, seed: 42, run: 3, step: 1))
        // A prefix of a larger batch draws the same values (element i depends only on i).
        XCTAssertEqual(Array(mask(count: 2000, rate: 0.5, seed: 42, run: 3).prefix(1000)), a)
    }

    func testKeepFractionAndValues() {
        for rate in [0.1, 0.3, 0.5] {
            let m = mask(count: 100_000, rate: rate, seed: 7, run: 0)
            let keep = 1 / (1 - rate)
            XCTAssert(m.allSatisfy { $0 == 0 || $0 == keep }, "mask values for rate \(rate)")
            let kept = Double(m.filter { $0 != 0 }.count) / Double(m.count)
            XCTAssertEqual(kept, 1 - rate, accuracy: 0.01, "keep fraction for rate \(rate)")
        }
        XCTAssert(mask(count: 100, rate: 0, seed: 1, run: 0).allSatisfy { $0 == 1 })
    }

    func testExecutorDropout() throws {
        let plan = Plan(
            name: "dropout",
            buffers: [BufferDesc(name: "x", perSample: [50], batched: true, role: .input),
                      BufferDesc(name: "y", perSample: [50], batched: true, role: .intermediate),
                      BufferDesc(name: "mask", perSample: [50], batched: true, role: .intermediate)],
            steps: [Step(name: "drop", kernel: .dropoutTrain(rate: 0.5), inputs: [0], outputs: [1, 2])],
            maxBatch: 4, outputs: [1])
        let ex = try Executor<Float>(plan: plan)
        ex.seed = 9
        let x = (0..<200).map { Float($0) }
        ex.setBuffer(0, x)
        try ex.run(batch: 4)
        XCTAssertEqual(ex.runCounter, 1)
        let first = ex.buffer(2)
        XCTAssertEqual(ex.buffer(1), zip(x, first).map { $0 * $1 })
        try ex.run(batch: 4)
        XCTAssertNotEqual(ex.buffer(2), first)
        ex.runCounter = 0
        try ex.run(batch: 4)
        XCTAssertEqual(ex.buffer(2), first)
        ex.dropoutEnabled = false
        try ex.run(batch: 3)
        XCTAssertEqual(ex.buffer(1), Array(x.prefix(150)))
        XCTAssertEqual(ex.buffer(2), [Float](repeating: 1, count: 150))
    }
}
