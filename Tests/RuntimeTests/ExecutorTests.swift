// The executor: plan validation errors, run-time label errors, and a hand-built training plan
// (dense -> relu -> softmax cross-entropy with its backward steps) whose gradients match
// finite differences of the loss computed by the same executor.
import XCTest
@testable import Runtime

/// dense(I -> O) -> relu -> softmax cross-entropy, then the backward steps and an Adam update.
func tinyTrainingPlan(i: Int = 4, o: Int = 3, maxBatch: Int = 3) -> Plan {
    let buffers: [BufferDesc] = [
        .init(name: "x", perSample: [i], batched: true, role: .input),                     // 0
        .init(name: "labels", elementType: .i32, perSample: [], batched: true, role: .input), // 1
        .init(name: "w", perSample: [o, i], batched: false, role: .parameter),             // 2
        .init(name: "b", perSample: [o], batched: false, role: .parameter),                // 3
        .init(name: "h", perSample: [o], batched: true, role: .intermediate),              // 4
        .init(name: "a", perSample: [o], batched: true, role: .intermediate),              // 5
        .init(name: "loss", perSample: [], batched: false, role: .intermediate),           // 6
        .init(name: "dloss", perSample: [], batched: false, role: .intermediate),          // 7
        .init(name: "da", perSample: [o], batched: true, role: .intermediate),             // 8
        .init(name: "dh", perSample: [o], batched: true, role: .intermediate),             // 9
        .init(name: "dw", perSample: [o, i], batched: false, role: .intermediate),         // 10
        .init(name: "db", perSample: [o], batched: false, role: .intermediate),            // 11
        .init(name: "dx", perSample: [i], batched: true, role: .intermediate),             // 12
    ]
    let steps: [Step] = [
        .init(name: "dense", kernel: .dense(inFeatures: i, outFeatures: o, bias: true), inputs: [0, 2, 3], outputs: [4]),
        .init(name: "relu", kernel: .relu, inputs: [4], outputs: [5]),
        .init(name: "loss", kernel: .softmaxCrossEntropy(classes: o), inputs: [5, 1], outputs: [6]),
        .init(name: "seed", kernel: .constant(value: 1), inputs: [], outputs: [7]),
        .init(name: "loss.grad", kernel: .softmaxCrossEntropyGrad(classes: o), inputs: [7, 5, 1], outputs: [8]),
        .init(name: "relu.grad", kernel: .reluGrad, inputs: [8, 5], outputs: [9]),
        .init(name: "dense.gradW", kernel: .denseGradWeight(inFeatures: i, outFeatures: o), inputs: [9, 0], outputs: [10]),
        .init(name: "dense.gradB", kernel: .biasGrad(channels: o, spatial: 1), inputs: [9], outputs: [11]),
        .init(name: "dense.gradX", kernel: .denseGradInput(inFeatures: i, outFeatures: o), inputs: [9, 2], outputs: [12]),
    ]
    return Plan(name: "tiny", buffers: buffers, steps: steps, maxBatch: maxBatch, outputs: [6])
}

final class ExecutorTests: RuntimeTestCase {
    func testTrainingPlanGradientsMatchFiniteDifferences() throws {
        let plan = tinyTrainingPlan()
        let ex = try Executor<Double>(plan: plan)
        var rng = TestRNG(seed: 5)
        let n = 2  // a partial batch of a maxBatch-3 plan
        let x = rng.array(n * 4), w = rng.array(12), b = rng.array(3, 0, 0.5)
        ex.setBuffer(plan.buffer(named: "x")!, x)
        ex.setBuffer(plan.buffer(named: "labels")!, ints: [2, 0])
        ex.setBuffer(2, w)
        ex.setBuffer(3, b)
        try ex.run(batch: n)
        XCTAssertEqual(ex.lastBatch, 2)
        XCTAssertEqual(ex.buffer(0).count, 8)
        XCTAssertEqual(ex.bufferInts(1), [2, 0])
        let analytic: [(Int, [Double])] = [(0, ex.buffer(12)), (2, ex.buffer(10)), (3, ex.buffer(11))]
        let values: [Int: [Double]] = [0: x, 2: w, 3: b]
        let h = 1e-5
        var checked = 0
        for (index, grad) in analytic {
            let base = values[index]!
            for k in base.indices {
                var plus = base, minus = base
                plus[k] += h; minus[k] -= h
                ex.setBuffer(index, plus); try ex.run(batch: n)
                let hPlus = ex.buffer(4), lossPlus = ex.buffer(6)[0]
                ex.setBuffer(index, minus); try ex.run(batch: n)
                let hMinus = ex.buffer(4), lossMinus = ex.buffer(6)[0]
                ex.setBuffer(index, base)
                // Skip points within a step of the relu kink.
                if zip(hPlus, hMinus).contains(where: { ($0 > 0) != ($1 > 0) }) { continue }
                let numeric = (lossPlus - lossMinus) / (2 * h)
                XCTAssertEqual(grad[k], numeric, accuracy: 1e-7 * max(1, abs(numeric)), "\(plan.buffers[index].name)[\(k)]")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 20)
    }

    func testFloatExecutorMatchesDouble() throws {
        let plan = tinyTrainingPlan()
        let d = try Executor<Double>(plan: plan), f = try Executor<Float>(plan: plan)
        var rng = TestRNG(seed: 6)
        for (index, count) in [(0, 12), (2, 12), (3, 3)] {
            let v = rng.array(count)
            d.setBuffer(index, v); f.setBuffer(index, v.map { Float($0) })
        }
        d.setBuffer(1, ints: [0, 1, 2]); f.setBuffer(1, ints: [0, 1, 2])
        try d.run(batch: 3); try f.run(batch: 3)
        for index in [6, 10, 11, 12] {
            assertClose(f.buffer(index).map { Double($0) }, d.buffer(index), tol: 1e-5, plan.buffers[index].name)
        }
    }

    func testAdamStepsAndIncrementThroughExecutor() throws {
        let plan = Plan(
            name: "adam",
            buffers: [.init(name: "p", perSample: [2], batched: false, role: .parameter),
                      .init(name: "g", perSample: [2], batched: false, role: .intermediate),
                      .init(name: "m", perSample: [2], batched: false, role: .state),
                      .init(name: "v", perSample: [2], batched: false, role: .state),
                      .init(name: "lr", perSample: [], batched: false, role: .input),
                      .init(name: "iterations", elementType: .i32, perSample: [], batched: false, role: .state)],
            steps: [.init(name: "adam", kernel: .adamUpdate(beta1: 0.9, beta2: 0.999, epsilon: 1e-7),
                          inputs: [0, 1, 2, 3, 4, 5], outputs: []),
                    .init(name: "iterations++", kernel: .increment, inputs: [5], outputs: [])],
            maxBatch: 1, outputs: [])
        let ex = try Executor<Double>(plan: plan)
        ex.setBuffer(0, [1, -2]); ex.setBuffer(1, [0.1, -0.2]); ex.setBuffer(4, [0.001])
        try ex.run(batch: 1)
        try ex.run(batch: 1)
        XCTAssertEqual(ex.bufferInts(5), [2])
        // The same two steps by the kernel directly (t = 1, 2).
        let p = DBuf([1, -2]), m = DBuf(zeros: 2), v = DBuf(zeros: 2), g = DBuf([0.1, -0.2])
        for t in [1.0, 2.0] {
            adamUpdate(p.p, m.p, v.p, g.c, count: 2, lr: 0.001, t: t, beta1: Double(Float(0.9)),
                       beta2: Double(Float(0.999)), epsilon: Double(Float(1e-7)))
        }
        XCTAssertEqual(ex.buffer(0), p.array)
    }

    func testBadLabelThrowsNamingTheStep() throws {
        let plan = tinyTrainingPlan()
        let ex = try Executor<Float>(plan: plan)
        ex.setBuffer(1, ints: [0, 7, 1])
        XCTAssertThrowsError(try ex.run(batch: 3)) { error in
            XCTAssertEqual(error as? ExecutorError,
                           .invalidLabel(step: 2, name: "loss", sample: 1, label: 7, classes: 3))
            XCTAssert("\(error)".contains("'loss'"), "\(error)")
        }
        // Only the first n labels matter.
        XCTAssertNoThrow(try ex.run(batch: 1))
        ex.setBuffer(1, ints: [-1])
        XCTAssertThrowsError(try ex.run(batch: 1))
    }

    func testBatchOutOfRange() throws {
        let ex = try Executor<Float>(plan: tinyTrainingPlan(maxBatch: 3))
        XCTAssertThrowsError(try ex.run(batch: 0))
        XCTAssertThrowsError(try ex.run(batch: 4)) { error in
            XCTAssertEqual(error as? ExecutorError, .invalidBatch(n: 4, maxBatch: 3))
        }
    }

    /// Asserts that the plan is rejected at step `step` with a reason containing `fragment`.
    func assertRejected(_ plan: Plan, step: Int?, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Executor<Float>(plan: plan), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssert(text.contains(fragment), "'\(text)' lacks '\(fragment)'", file: file, line: line)
            switch error as? ExecutorError {
            case .invalidStep(let s, let name, _, _)?:
                XCTAssertEqual(s, step, file: file, line: line)
                XCTAssert(text.contains(name), file: file, line: line)
            case .invalidPlan?:
                XCTAssertNil(step, file: file, line: line)
            default:
                XCTFail("unexpected error \(error)", file: file, line: line)
            }
        }
    }

    func testValidationErrors() {
        var p = tinyTrainingPlan()
        XCTAssertNoThrow(try Executor<Float>(plan: p))

        p = tinyTrainingPlan(); p.steps[1].inputs = [99]
        assertRejected(p, step: 1, "input 0 is buffer 99")
        p = tinyTrainingPlan(); p.steps[0].inputs = [0, 2]
        assertRejected(p, step: 0, "has 2 inputs; the kernel takes 3")
        p = tinyTrainingPlan(); p.steps[0].outputs = []
        assertRejected(p, step: 0, "has 0 outputs")
        p = tinyTrainingPlan(); p.buffers[2].perSample = [3, 5]
        assertRejected(p, step: 0, "input 1 is buffer 2 'w'")
        p = tinyTrainingPlan(); p.buffers[3].batched = true
        assertRejected(p, step: 0, "expected an unbatched buffer")
        p = tinyTrainingPlan(); p.buffers[1].elementType = .f32
        assertRejected(p, step: 2, "expected i32")
        p = tinyTrainingPlan(); p.steps[0].outputs = [0]  // dense writing its own input
        assertRejected(p, step: 0, "output 0")
        p = tinyTrainingPlan(); p.steps[1].outputs = [4]  // relu in place is fine
        XCTAssertNoThrow(try Executor<Float>(plan: p))
        p = tinyTrainingPlan(); p.steps[0].kernel = .dense(inFeatures: 0, outFeatures: 3, bias: true)
        assertRejected(p, step: 0, "positive")
        p = tinyTrainingPlan(); p.maxBatch = 0
        assertRejected(p, step: nil, "maxBatch")
        p = tinyTrainingPlan(); p.outputs = [42]
        assertRejected(p, step: nil, "plan output 42")

        // Kernel-specific checks.
        let x = BufferDesc(name: "x", perSample: [1, 4, 4], batched: true, role: .input)
        let y = BufferDesc(name: "y", perSample: [1, 2, 2], batched: true, role: .intermediate)
        func one(_ kernel: Kernel, _ buffers: [BufferDesc] = [x, y], outputs: [Int] = [1]) -> Plan {
            Plan(name: "one", buffers: buffers, steps: [Step(name: "k", kernel: kernel, inputs: [0], outputs: outputs)],
                 maxBatch: 2, outputs: [])
        }
        let pool = PoolGeometry(channels: 1, inHeight: 4, inWidth: 4, size: 2, stride: 2, padTop: 0,
                                padLeft: 0, outHeight: 2, outWidth: 2)
        XCTAssertNoThrow(try Executor<Float>(plan: one(.maxpool(pool))))
        var bad = pool; bad.padTop = 2
        assertRejected(one(.maxpool(bad)), step: 0, "entirely in padding")
        bad = pool; bad.outHeight = 3
        assertRejected(one(.avgpool(bad)), step: 0, "entirely in padding")
        let y3 = BufferDesc(name: "y3", perSample: [1, 3, 3], batched: true, role: .intermediate)
        assertRejected(one(.avgpool(pool), [x, y3]), step: 0, "output 0 is buffer 1 'y3'")
        assertRejected(one(.dropoutTrain(rate: 1), [x, x, x], outputs: [1, 2]), step: 0, "dropout rate")
        assertRejected(one(.dropoutTrain(rate: 0.5), [x, x], outputs: [1, 0]), step: 0, "cannot run in place")
        assertRejected(one(.slice(outer: 1, inner: 4, total: 4, start: 3, length: 2)), step: 0, "exceeds")
        assertRejected(one(.maxNormProject(maxValue: 1, mode: .keras, shape: [16])), step: 0, "rank-2 or rank-4")
        assertRejected(one(.dropoutTrain(rate: 0.5), [x, x], outputs: [1, 1]), step: 0, "writes the same buffer twice")
        assertRejected(one(.concat(outer: 1, inner: 1, sizes: [16, 16]), [x, x]), step: 0, "has 1 inputs; the kernel takes 2")
    }

    /// Initial values fill the parameter buffer they were checked against, not a smaller buffer
    /// that shares its name (a plan file's mutated buffer table once made the executor copy a
    /// weight's 100 values into a 2-value buffer). Plan files with two buffers of one name are
    /// refused when read; a plan built in code is not, so the executor must not trust names.
    func testInitialValuesFillOnlyTheirParameterBuffer() throws {
        let x = BufferDesc(name: "x", perSample: [1], batched: true, role: .input)
        let w = BufferDesc(name: "w", perSample: [100], batched: false, role: .parameter)
        let twin = BufferDesc(name: "w", perSample: [1], batched: true, role: .intermediate)
        var plan = Plan(name: "twins", buffers: [x, w, twin], steps: [Step(name: "r", kernel: .relu, inputs: [0], outputs: [2])],
                        maxBatch: 2, outputs: [2])
        plan.parameters = ["w": (0..<100).map { Float($0) + 1.5 }]
        let ex = try Executor<Float>(plan: plan)
        XCTAssertEqual(ex.buffer(1), (0..<100).map { Float($0) + 1.5 })
        XCTAssertEqual(ex.buffer(2), [0, 0])  // zeros, not the weight's first values
        ex.setBuffer(0, [-1, 3])
        try ex.run(batch: 2)
        XCTAssertEqual(ex.buffer(2), [0, 3])
    }
}
