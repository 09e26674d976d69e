// The memory planner: offsets and reuse on hand-made plans (in place only when safe, best fit,
// merging, liveness), a brute-force overlap check of every plan it produces, the validator
// rejecting corrupt placements, the targets on the paper's tuned model, and executors
// over the arena (with freed memory poisoned) matching unplanned ones bit for bit.

import Frontend
import GraphIR
import NumPyIO
import Passes
import Runtime
import XCTest

private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

// MARK: - Helpers

/// A hand-made plan: buffers by name, steps by kernel and buffer names.
private struct PlanBuilder {
    var buffers: [BufferDesc] = []
    var steps: [Step] = []
    var maxBatch = 1

    mutating func buffer(_ name: String, _ elements: Int, role: BufferRole = .intermediate, batched: Bool = false) {
        buffers.append(BufferDesc(name: name, perSample: [elements], batched: batched, role: role))
    }
    func index(_ name: String) -> Int { buffers.firstIndex { $0.name == name }! }
    mutating func step(_ kernel: Kernel, _ inputs: [String], _ outputs: [String]) {
        steps.append(Step(name: outputs.first ?? "update\(steps.count)", kernel: kernel,
                          inputs: inputs.map(index), outputs: outputs.map(index)))
    }
    func plan(outputs: [String]) -> Plan {
        Plan(name: "hand", buffers: buffers, steps: steps, maxBatch: maxBatch, outputs: outputs.map(index))
    }
}

private extension Plan {
    func offset(_ name: String) -> Int? { buffers[buffer(named: name)!].offset }
}

/// Independent of the validator: every pair of intermediates live at a common step must not
/// share a byte, unless one is the in-place source of the other's defining step and they sit
/// exactly on each other. Also checks alignment and bounds.
private func assertOverlapFree(_ plan: Plan, file: StaticString = #filePath, line: UInt = #line) {
    guard let memory = plan.memory else { return XCTFail("plan has no memory summary", file: file, line: line) }
    let life = intermediateLifetimes(plan)
    let size = plan.buffers.map { arenaSize($0, batch: plan.maxBatch) }
    let placed = plan.buffers.indices.filter { plan.buffers[$0].role == .intermediate }
    for i in placed {
        guard let o = plan.buffers[i].offset else { return XCTFail("\(plan.buffers[i].name) has no offset", file: file, line: line) }
        XCTAssertEqual(o % 64, 0, file: file, line: line)
        XCTAssertLessThanOrEqual(o + size[i], memory.arenaBytes, file: file, line: line)
    }
    for a in placed {
        for b in placed where a < b {
            guard let la = life[a], let lb = life[b], la.overlaps(lb) else { continue }
            let oa = plan.buffers[a].offset!, ob = plan.buffers[b].offset!
            guard oa < ob + size[b] && ob < oa + size[a] else { continue }
            // Allowed: one dies at the step where the other is born, in place, exactly on it.
            let handOver = (la.upperBound == lb.lowerBound && inPlaceSource(plan, step: la.upperBound, lifetimes: life) == a
                            && plan.steps[la.upperBound].outputs.first == b)
                || (lb.upperBound == la.lowerBound && inPlaceSource(plan, step: lb.upperBound, lifetimes: life) == b
                    && plan.steps[lb.upperBound].outputs.first == a)
            XCTAssertTrue(handOver && oa == ob,
                          "\(plan.buffers[a].name) \(la) @\(oa) and \(plan.buffers[b].name) \(lb) @\(ob) overlap",
                          file: file, line: line)
        }
    }
}

private func model(_ name: String) throws -> Graph {
    try Frontend.compile(path: repoRoot.appendingPathComponent("Models/\(name).graph").path)
}

/// The inference plan of a model: no loss, the first declared output only.
private func inferencePlan(_ m: Graph, maxBatch: Int) throws -> Plan {
    var g = m
    g.training = nil
    g.outputs = [g.outputs[0]]
    return try lowerToPlan(try deadCodeElimination(g), maxBatch: maxBatch)
}

/// The training-step plan of a model (forward, loss, backward, update).
private func trainingPlan(_ m: Graph, maxBatch: Int) throws -> Plan {
    var pm = PassManager(Pipelines.training)
    return try lowerToPlan(try pm.run(m), maxBatch: maxBatch)
}

/// A model through a pipeline, with only its first output (inference) or as is (training).
private func pipelinePlan(_ m: Graph, _ passes: [Pass], maxBatch: Int, inference: Bool) throws -> Plan {
    var g = m
    if inference {
        g.training = nil
        g.outputs = [g.outputs[0]]
    }
    var pm = PassManager(passes)
    return try lowerToPlan(try pm.run(g), maxBatch: maxBatch)
}

/// Seeded values for every input, parameter and state buffer (positive for variances), by name.
private func seededValues(_ plan: Plan, batch: Int, seed: UInt64, classes: Int = 7) -> [String: [Float]] {
    var state = seed | 1
    func next() -> Float {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Float(Double(state >> 11) / Double(1 << 53)) * 2 - 1
    }
    var out: [String: [Float]] = [:]
    for b in plan.buffers where b.role != .intermediate {
        let n = b.elementCount(batch: batch)
        if b.elementType == .i32 {
            out[b.name] = (0..<n).map { _ in Float(Int((next() + 1) * 1000) % classes) }
        } else if b.name == "learning_rate" {
            out[b.name] = [1e-3]
        } else if b.name.hasSuffix("running_var") {
            out[b.name] = (0..<n).map { _ in 0.5 + abs(next()) }
        } else if b.role == .state {
            out[b.name] = [Float](repeating: 0, count: n)
        } else {
            out[b.name] = (0..<n).map { _ in next() * (b.role == .input ? 2 : 0.3) }
        }
    }
    return out
}

/// Runs `plan` `runs` times with the given values and returns every output and every
/// persistent buffer (bit patterns), by name. Planned plans take parameters from the plan
/// itself when `fromPlan`; inputs are always set by hand.
private func execute<T: BLASReal>(_: T.Type, _ plan: Plan, values: [String: [Float]], batch: Int, runs: Int = 2,
                                  poison: Bool, fromPlan: Bool = false, dropout: Bool = true) throws -> [String: [UInt64]] {
    var plan = plan
    if fromPlan {
        for b in plan.buffers where b.role == .parameter || b.role == .state { plan.parameters[b.name] = values[b.name] }
    }
    let ex = try Executor<T>(plan: plan)
    ex.poisonFreedBuffers = poison
    ex.dropoutEnabled = dropout
    ex.seed = 42
    for (i, b) in plan.buffers.enumerated() where b.role == .input || (!fromPlan && b.role != .intermediate) {
        let v = values[b.name]!
        if b.elementType == .i32 { ex.setBuffer(i, ints: v.map { Int32($0) }) } else { ex.setBuffer(i, v.map { T($0) }) }
    }
    for _ in 0..<runs { try ex.run(batch: batch) }
    var out: [String: [UInt64]] = [:]
    for (i, b) in plan.buffers.enumerated() where plan.outputs.contains(i) || b.role == .parameter || b.role == .state {
        out[b.name] = b.elementType == .i32 ? ex.bufferInts(i).map { UInt64(UInt32(bitPattern: $0)) }
                                            : ex.buffer(i).map { UInt64(Double($0).bitPattern) }
    }
    return out
}

private func assertIdentical(_ a: [String: [UInt64]], _ b: [String: [UInt64]], _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(Set(a.keys), Set(b.keys), what, file: file, line: line)
    for (name, x) in a where x != b[name] {
        XCTFail("\(what): '\(name)' differs", file: file, line: line)
    }
}

final class MemoryPlanTests: XCTestCase {
    // MARK: - Hand-made plans

    /// The example in MemoryPlan.swift's opening comment.
    func testDocumentedExample() throws {
        var p = PlanBuilder()
        p.buffers = [
            BufferDesc(name: "x", perSample: [1, 16, 16], batched: true, role: .input),
            BufferDesc(name: "w", perSample: [4, 1, 3, 3], batched: false, role: .parameter),
            BufferDesc(name: "w2", perSample: [1024, 256], batched: false, role: .parameter),
            BufferDesc(name: "a", perSample: [4, 16, 16], batched: true, role: .intermediate),
            BufferDesc(name: "b", perSample: [4, 16, 16], batched: true, role: .intermediate),
            BufferDesc(name: "c", perSample: [4, 8, 8], batched: true, role: .intermediate),
            BufferDesc(name: "d", perSample: [1024], batched: true, role: .intermediate),
        ]
        let conv = ConvGeometry(inChannels: 1, inHeight: 16, inWidth: 16, outChannels: 4, kernelHeight: 3, kernelWidth: 3,
                                stride: 1, padTop: 1, padLeft: 1, outHeight: 16, outWidth: 16)
        let pool = PoolGeometry(channels: 4, inHeight: 16, inWidth: 16, size: 2, stride: 2, padTop: 0, padLeft: 0, outHeight: 8, outWidth: 8)
        p.step(.conv2d(conv, bias: false), ["x", "w"], ["a"])
        p.step(.relu, ["a"], ["b"])
        p.step(.maxpool(pool), ["b"], ["c"])
        p.step(.dense(inFeatures: 256, outFeatures: 1024, bias: false), ["c", "w2"], ["d"])
        let plan = planMemory(p.plan(outputs: ["d"]))
        XCTAssertEqual(["a", "b", "c", "d"].map { plan.offset($0)! }, [0, 0, 0, 1024])
        XCTAssertEqual(plan.memory?.arenaBytes, 5 * 1024)
        XCTAssertEqual(plan.memory?.naiveBytes, 13 * 1024)
        XCTAssertTrue(memoryReport(plan).hasPrefix("memory: arena 5.1 KB (naive 13.3 KB, -62%), parameters 1.0 MB"), memoryReport(plan))
        XCTAssertEqual(memoryTimeline(plan).map(\.liveBytes), [4096, 4096, 4096, 5120])
        assertOverlapFree(plan)
    }

    /// x (input) -> a -> b (relu, in place over a) -> c (scale; b is still read) -> d = add(c, b)
    /// (in place over c). The input is never reused; b's memory is not taken while b is live.
    func testInPlaceChain() throws {
        var p = PlanBuilder()
        p.maxBatch = 4
        for n in ["x", "a", "b", "c", "d"] { p.buffer(n, 16, role: n == "x" ? .input : .intermediate, batched: true) }
        p.step(.relu, ["x"], ["a"])          // x is an input: not in place
        p.step(.relu, ["a"], ["b"])          // a dies here: in place
        p.step(.scale(factor: 2), ["b"], ["c"])  // b is read later: new memory
        p.step(.add, ["c", "b"], ["d"])      // c dies here, first input: in place
        let plan = planMemory(p.plan(outputs: ["d"]))
        XCTAssertNil(plan.offset("x"))
        XCTAssertEqual(plan.offset("a"), 0)
        XCTAssertEqual(plan.offset("b"), 0)
        XCTAssertEqual(plan.offset("c"), 256)
        XCTAssertEqual(plan.offset("d"), 256)
        XCTAssertEqual(plan.memory?.arenaBytes, 512)
        XCTAssertEqual(plan.memory?.naiveBytes, 4 * 256)
        XCTAssertEqual(plan.memory?.inputBytes, 256)
        assertOverlapFree(plan)
        XCTAssertNoThrow(try Executor<Float>(plan: plan))
    }

    /// In place never over a plan output, a value read later, or the non-first input; a pool
    /// takes over the first bytes of its dying input.
    func testInPlaceOnlyWhenSafe() throws {
        var p = PlanBuilder()
        p.buffer("x", 64, role: .input, batched: true)
        for n in ["a", "b", "c", "d", "e", "f"] { p.buffer(n, 64, batched: true) }
        p.buffer("pooled", 16, batched: true)
        p.buffer("g", 16, batched: true)
        p.step(.relu, ["x"], ["a"])
        p.step(.relu, ["a"], ["b"])                 // a is a plan output: new memory
        p.step(.scale(factor: 3), ["b"], ["c"])
        p.step(.add, ["a", "c"], ["d"])             // c dies, but as the second input: new memory
        let pool = PoolGeometry(channels: 1, inHeight: 8, inWidth: 8, size: 2, stride: 2, padTop: 0, padLeft: 0, outHeight: 4, outWidth: 4)
        p.step(.maxpool(pool), ["d"], ["pooled"])   // d dies: in place, shrinking
        p.step(.relu, ["pooled"], ["g"])            // in place
        p.step(.relu, ["b"], ["e"])                 // b dies here: in place
        p.step(.mul, ["e", "e"], ["f"])             // mul(e, e): in place over e
        let plan = planMemory(p.plan(outputs: ["a", "f", "g"]))
        assertOverlapFree(plan)
        let offsets = Dictionary(uniqueKeysWithValues: ["a", "b", "c", "d", "e", "f", "pooled", "g"].map { ($0, plan.offset($0)!) })
        XCTAssertNotEqual(offsets["b"], offsets["a"], "a is an output")
        XCTAssertNotEqual(offsets["d"], offsets["c"], "c is not the first input")
        XCTAssertNotEqual(offsets["d"], offsets["a"], "a is an output")
        XCTAssertEqual(offsets["g"], offsets["pooled"])
        XCTAssertEqual(offsets["e"], offsets["b"])
        XCTAssertEqual(offsets["f"], offsets["e"])
        XCTAssertEqual(offsets["pooled"], offsets["d"], "the pool's output takes d's first bytes")
        XCTAssertEqual(plan.memory?.arenaBytes, 4 * 256, "a, b, c, d; d's tail is freed after the pool")
        let ex = try Executor<Float>(plan: plan)
        ex.poisonFreedBuffers = true
        let x = (0..<64).map { Float($0 % 7) - 3 }
        ex.setBuffer(p.index("x"), x)
        try ex.run(batch: 1)
        let a = x.map { max($0, 0) }
        XCTAssertEqual(ex.buffer(p.index("a")), a)
        XCTAssertEqual(ex.buffer(p.index("f")), a.map { $0 * $0 })
    }

    /// A VGG-style stack: a convolution whose output is as large as its input overwrites it,
    /// a pool keeps the first bytes of its input and frees the rest, and the next block's
    /// larger value reuses that rest. Planned, poisoned and run (Float on two threads, Double)
    /// at batches 1 and 3, it gives the same bits as the unplanned plan, fused or not.
    func testInPlaceConvolutionsAndPools() throws {
        let source = """
        model inplace
        input x: f32[N, 3, 8, 8]
        a = conv2d(x, filters=4, kernel=3, padding=same, activation=relu)
        b = conv2d(a, filters=4, kernel=3, padding=same, activation=relu)
        b_bn = batchnorm(b)
        p = maxpool(b_bn, size=2, stride=2, padding=same)
        c = conv2d(p, filters=8, kernel=3, padding=same, activation=relu)
        d = conv2d(c, filters=8, kernel=3, padding=same)
        q = avgpool(d, size=2, stride=2)
        f = flatten(q)
        logits = dense(f, units=5)
        output logits
        """
        let m = try Frontend.compile(source: source, file: "inplace.graph")
        for (label, passes) in [("plain", Pipelines.inference), ("fused", Pipelines.inferenceOptimized)] {
            for batch in [1, 3] {
                let plain = try pipelinePlan(m, passes, maxBatch: batch, inference: true)
                let planned = planMemory(plain)
                assertOverlapFree(planned)
                func at(_ name: String) -> Int { planned.buffers[planned.buffer(named: name)!].offset! }
                // The fused pipeline names each fused node after its last op (b_bn for b's).
                let b = label == "fused" ? "b_bn" : "b"
                XCTAssertEqual(at(b), at("a"), "\(label)@\(batch): b over a")
                XCTAssertEqual(at("p"), at(b), "\(label)@\(batch): the pool over b")
                XCTAssertEqual(at("d"), at("c"), "\(label)@\(batch): d over c")
                XCTAssertEqual(at("q"), at("d"), "\(label)@\(batch): the average pool over d")
                // c (8x4x4) fits in what the pool left of a's block (4x8x8 less 4x4x4).
                let block = 4 * 8 * 8 * 4 * batch
                XCTAssertGreaterThanOrEqual(at("c"), at("p") + 4 * 4 * 4 * 4 * batch, "\(label)@\(batch)")
                XCTAssertLessThanOrEqual(at("c") + 8 * 4 * 4 * 4 * batch, at("a") + block, "\(label)@\(batch)")
                XCTAssertEqual(planned.memory!.arenaBytes, block, "\(label)@\(batch): one block-sized buffer")

                let values = seededValues(plain, batch: batch, seed: 5)
                let reference = try execute(Float.self, plain, values: values, batch: batch, poison: false)
                assertIdentical(try execute(Float.self, planned, values: values, batch: batch, poison: true),
                                reference, "\(label) Float batch \(batch)")
                let referenceD = try execute(Double.self, plain, values: values, batch: batch, poison: false)
                assertIdentical(try execute(Double.self, planned, values: values, batch: batch, poison: true),
                                referenceD, "\(label) Double batch \(batch)")
            }
        }
    }

    /// Best fit: the smallest free block that holds the value, not the first; freed
    /// neighbours merge into one block.
    func testBestFitAndMerging() throws {
        var p = PlanBuilder()
        p.buffer("a", 128); p.buffer("sep1", 16); p.buffer("b", 64); p.buffer("sep2", 16)
        p.buffer("la", 1); p.buffer("lb", 1); p.buffer("c", 64)
        p.step(.constant(value: 1), [], ["a"])       // [0, 512)
        p.step(.constant(value: 2), [], ["sep1"])    // [512, 576)
        p.step(.constant(value: 3), [], ["b"])       // [576, 832)
        p.step(.constant(value: 4), [], ["sep2"])    // [832, 896)
        p.step(.l2Penalty(factor: 1), ["a"], ["la"]) // [896, 960); then a's block is free
        p.step(.l2Penalty(factor: 1), ["b"], ["lb"]) // [0, 64) best fit; then b's block is free
        p.step(.constant(value: 5), [], ["c"])       // 256 bytes: b's block fits exactly
        let plan = planMemory(p.plan(outputs: ["sep1", "sep2", "la", "lb", "c"]))
        assertOverlapFree(plan)
        XCTAssertEqual(plan.offset("la"), 896)
        XCTAssertEqual(plan.offset("lb"), 0)
        XCTAssertEqual(plan.offset("c"), 576, "best fit, not first fit (64)")
        XCTAssertEqual(plan.memory?.arenaBytes, 960)

        // Merging: two freed neighbours make one block that holds a value as big as both.
        var q = PlanBuilder()
        q.buffer("a", 64); q.buffer("b", 64); q.buffer("keep", 16); q.buffer("ab", 128); q.buffer("big", 128)
        q.step(.constant(value: 1), [], ["a"])      // [0, 256)
        q.step(.constant(value: 2), [], ["b"])      // [256, 512)
        q.step(.constant(value: 3), [], ["keep"])   // [512, 576)
        q.step(.concat(outer: 1, inner: 1, sizes: [64, 64]), ["a", "b"], ["ab"])  // [576, 1088); a, b die
        q.step(.constant(value: 4), [], ["big"])    // 512 bytes: a's and b's blocks, merged
        let merged = planMemory(q.plan(outputs: ["keep", "ab", "big"]))
        assertOverlapFree(merged)
        XCTAssertEqual(merged.offset("ab"), 576)
        XCTAssertEqual(merged.offset("big"), 0, "the freed neighbours merged")
        XCTAssertEqual(merged.memory?.arenaBytes, 1088)
    }

    /// Lifetimes: from first write to last read; outputs to the end; read-before-write values
    /// through the whole plan; shape-only inputs are not reads; persistent buffers have none.
    func testLiveness() throws {
        var p = PlanBuilder()
        p.buffer("w", 4, role: .parameter)
        for n in ["a", "b", "c", "unwritten", "last", "never"] { p.buffer(n, 4) }
        p.step(.scale(factor: 1), ["w"], ["a"])          // 0
        p.step(.scale(factor: 2), ["a"], ["b"])          // 1
        p.step(.add, ["b", "unwritten"], ["c"])          // 2: reads a buffer nothing writes
        p.step(.scale(factor: 1), ["w"], ["last"])       // 3
        let plan = p.plan(outputs: ["last"])
        let life = intermediateLifetimes(plan)
        XCTAssertNil(life[p.index("w")])
        XCTAssertEqual(life[p.index("a")], 0...1)
        XCTAssertEqual(life[p.index("b")], 1...2)
        XCTAssertEqual(life[p.index("c")], 2...2, "a dead output lives through its step")
        XCTAssertEqual(life[p.index("unwritten")], 0...3, "read before written: the whole plan")
        XCTAssertEqual(life[p.index("last")], 3...3)
        XCTAssertNil(life[p.index("never")])
        let planned = planMemory(plan)
        assertOverlapFree(planned)
        XCTAssertNotNil(planned.offset("never"), "every intermediate gets an address")

        // batchnorm_stats_update reads x for its shape only.
        var q = PlanBuilder()
        q.maxBatch = 2
        for n in ["rm", "rv"] { q.buffer(n, 2, role: .state) }
        q.buffer("x", 6, batched: true); q.buffer("mean", 2); q.buffer("var", 2); q.buffer("y", 6, batched: true)
        q.buffer("g", 2, role: .parameter); q.buffer("be", 2, role: .parameter); q.buffer("src", 6, role: .input, batched: true)
        q.step(.relu, ["src"], ["x"])
        q.step(.batchnormTrain(channels: 2, spatial: 3, epsilon: 1e-3), ["x", "g", "be"], ["y", "mean", "var"])
        q.step(.batchnormStatsUpdate(momentum: 0.9, channels: 2, spatial: 3), ["rm", "rv", "mean", "var", "x"], [])
        let ql = intermediateLifetimes(q.plan(outputs: ["y"]))
        XCTAssertEqual(ql[q.index("x")], 0...1)
        XCTAssertEqual(ql[q.index("mean")], 1...2)
    }

    // MARK: - The validator

    func testValidatorRejectsCorruptPlacements() throws {
        var p = PlanBuilder()
        p.maxBatch = 2
        p.buffer("x", 16, role: .input, batched: true)
        p.buffer("w", 16, role: .parameter)
        for n in ["a", "b", "c"] { p.buffer(n, 16, batched: true) }
        p.step(.relu, ["x"], ["a"])
        p.step(.scale(factor: 2), ["a"], ["b"])
        p.step(.add, ["a", "b"], ["c"])
        let good = planMemory(p.plan(outputs: ["c"]))
        assertOverlapFree(good)
        XCTAssertNoThrow(try Executor<Float>(plan: good))
        func rejects(_ change: (inout Plan) -> Void, _ message: String, line: UInt = #line) {
            var bad = good
            change(&bad)
            XCTAssertThrowsError(try Executor<Float>(plan: bad), line: line) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)", line: line)
            }
        }
        let a = p.index("a"), b = p.index("b"), c = p.index("c")
        rejects({ $0.buffers[b].offset = $0.buffers[a].offset }, "overlap")
        rejects({ $0.buffers[b].offset = $0.buffers[a].offset! + 64 }, "overlap")
        rejects({ $0.buffers[c].offset = 32 }, "aligned place")
        rejects({ $0.buffers[c].offset = $0.memory!.arenaBytes }, "inside")
        rejects({ $0.buffers[c].offset = -64 }, "inside")
        rejects({ $0.memory!.arenaBytes = 64 }, "inside")
        rejects({ $0.memory = nil }, "no memory summary")
        rejects({ $0.buffers[a].offset = nil }, "no arena offset")
        rejects({ $0.buffers[p.index("w")].offset = 0 }, "has an arena offset")
        rejects({ $0.parameters["w"] = [1, 2] }, "2 values")
        rejects({ $0.parameters["a"] = [Float](repeating: 0, count: 32) }, "role intermediate")
        rejects({ $0.parameters["nope"] = [] }, "not a buffer")
        // The planner put c over a (add's first input, dying there); over b, the second
        // input, which also dies there, it may not go.
        XCTAssertEqual(good.buffers[c].offset, good.buffers[a].offset)
        rejects({ $0.buffers[c].offset = $0.buffers[b].offset; $0.buffers[a].offset = 0; $0.buffers[b].offset = 128 }, "overlap")

        // A pool over its input: the output takes the first bytes; the rest of the input is
        // still being read during the pool, so nothing else live then may sit there.
        var q = PlanBuilder()
        q.buffer("x", 64, role: .input, batched: true)
        for n in ["a", "k"] { q.buffer(n, 64, batched: true) }
        q.buffer("pooled", 16, batched: true)
        q.step(.relu, ["x"], ["a"])
        q.step(.relu, ["x"], ["k"])
        let pool = PoolGeometry(channels: 1, inHeight: 8, inWidth: 8, size: 2, stride: 2, padTop: 0, padLeft: 0, outHeight: 4, outWidth: 4)
        q.step(.maxpool(pool), ["a"], ["pooled"])
        q.step(.add, ["k", "k"], ["k"])
        let pooled = planMemory(q.plan(outputs: ["pooled", "k"]))
        assertOverlapFree(pooled)
        XCTAssertEqual(pooled.offset("pooled"), pooled.offset("a"))
        XCTAssertNoThrow(try Executor<Float>(plan: pooled))
        var tail = pooled
        tail.buffers[q.index("k")].offset = pooled.offset("a")! + 64  // inside a's tail
        XCTAssertThrowsError(try Executor<Float>(plan: tail)) { error in
            XCTAssertTrue("\(error)".contains("overlap"), "\(error)")
        }
        // A padded pool may not run in place.
        var padded = pooled
        let shifted = PoolGeometry(channels: 1, inHeight: 8, inWidth: 8, size: 2, stride: 2, padTop: 1, padLeft: 1, outHeight: 4, outWidth: 4)
        padded.steps[2].kernel = .maxpool(shifted)
        XCTAssertThrowsError(try Executor<Float>(plan: padded)) { error in
            XCTAssertTrue("\(error)".contains("overlap"), "\(error)")
        }
    }

    // MARK: - The paper's tuned model

    func testTunedModelTargets() throws {
        let m = try model("vgg_tuned")
        let inference = planMemory(try inferencePlan(m, maxBatch: 1))
        let training = planMemory(try trainingPlan(m, maxBatch: 128))
        let training8 = planMemory(try trainingPlan(m, maxBatch: 8))
        for (label, plan) in [("inference@1", inference), ("training@8", training8), ("training@128", training)] {
            assertOverlapFree(plan)
            XCTAssertNoThrow(try Executor<Float>(plan: plan))
            let peak = memoryTimeline(plan).map(\.liveBytes).max() ?? 0
            print("vgg_tuned \(label): \(memoryReport(plan)); peak live \(peak) bytes")
            XCTAssertLessThanOrEqual(peak, plan.memory!.arenaBytes)
        }
        // The fused pipelines, for comparison (fewer, larger values: less to reuse).
        let fusedInference = planMemory(try pipelinePlan(m, Pipelines.inferenceOptimized, maxBatch: 1, inference: true))
        let fusedTraining = planMemory(try pipelinePlan(m, Pipelines.trainingOptimized, maxBatch: 128, inference: false))
        for (label, plan) in [("optimized inference@1", fusedInference), ("optimized training@128", fusedTraining)] {
            assertOverlapFree(plan)
            XCTAssertNoThrow(try Executor<Float>(plan: plan))
            print("vgg_tuned \(label): \(memoryReport(plan))")
        }
        let i = inference.memory!, t = training.memory!, fi = fusedInference.memory!
        XCTAssertLessThanOrEqual(4 * i.arenaBytes, i.naiveBytes, "inference@1: arena \(i.arenaBytes) > naive \(i.naiveBytes) / 4")
        XCTAssertLessThanOrEqual(4 * fi.arenaBytes, fi.naiveBytes, "optimized inference@1: arena \(fi.arenaBytes) > naive \(fi.naiveBytes) / 4")
        XCTAssertEqual(fi.arenaBytes, 4 * 32 * 48 * 48, "one block1-sized buffer: conv2 over conv1, the pool over conv2")
        XCTAssertLessThanOrEqual(3 * t.arenaBytes, 2 * t.naiveBytes, "training@128: arena \(t.arenaBytes) > 2/3 naive \(t.naiveBytes)")
        XCTAssertEqual(i.parameterBytes, 4 * 3_063_271, "trainable parameters; running statistics are state")
        XCTAssertEqual(i.optimizerBytes, 4 * 3_200)
    }

    // MARK: - Executors over the arena

    /// The tiny model's training step and inference plan, planned and run with freed memory
    /// poisoned, against the unplanned plan: bit-identical outputs and updates, in Float and
    /// Double, with parameters taken from the plan.
    func testPoisonedArenaMatchesUnplanned() throws {
        let m = try model("tiny")
        let plans = [
            ("training", try trainingPlan(m, maxBatch: 6)),
            ("inference", try inferencePlan(m, maxBatch: 6)),
            ("fused training", try pipelinePlan(m, Pipelines.trainingOptimized, maxBatch: 6, inference: false)),
            ("fused inference", try pipelinePlan(m, Pipelines.inferenceOptimized, maxBatch: 6, inference: true)),
        ]
        for (label, plain) in plans {
            let planned = planMemory(plain)
            assertOverlapFree(planned)
            XCTAssertLessThan(planned.memory!.arenaBytes, planned.memory!.naiveBytes)
            let values = seededValues(plain, batch: 6, seed: 11)
            for batch in [6, 4] {
                let reference = try execute(Float.self, plain, values: values, batch: batch, poison: false)
                let arena = try execute(Float.self, planned, values: values, batch: batch, poison: true, fromPlan: true)
                assertIdentical(arena, reference, "tiny \(label) Float batch \(batch)")
                let referenceD = try execute(Double.self, plain, values: values, batch: batch, poison: false)
                let arenaD = try execute(Double.self, planned, values: values, batch: batch, poison: true)
                assertIdentical(arenaD, referenceD, "tiny \(label) Double batch \(batch)")
            }
            // Poisoning is not vacuous: the run reads freed memory nowhere, yet NaN was written.
            let ex = try Executor<Float>(plan: planned)
            ex.poisonFreedBuffers = true
            for (i, b) in planned.buffers.enumerated() where b.role != .intermediate {
                let v = values[b.name]!
                if b.elementType == .i32 { ex.setBuffer(i, ints: v.map { Int32($0) }) } else { ex.setBuffer(i, v) }
            }
            try ex.run(batch: 6)
            let dead = planned.buffers.indices.filter { planned.buffers[$0].role == .intermediate && !planned.outputs.contains($0) && planned.buffers[$0].elementType == .f32 }
            XCTAssertTrue(dead.contains { ex.buffer($0).contains { $0.isNaN } }, "\(label): some freed buffer was poisoned")
            for o in planned.outputs where planned.buffers[o].elementType == .f32 {
                XCTAssertFalse(ex.buffer(o).contains { $0.isNaN }, "\(label): output \(planned.buffers[o].name)")
            }
        }
    }

    /// Poisoning fills dead buffers, but not memory an in-place step handed to its output.
    func testPoisonSparesInPlaceHandOvers() throws {
        var p = PlanBuilder()
        for n in ["x"] { p.buffer(n, 16, role: .input) }
        for n in ["a", "b", "c"] { p.buffer(n, 16) }
        p.step(.relu, ["x"], ["a"])
        p.step(.scale(factor: 2), ["a"], ["b"])
        p.step(.scale(factor: 3), ["b"], ["c"])
        let plan = planMemory(p.plan(outputs: ["c"]))
        let ex = try Executor<Float>(plan: plan)
        ex.poisonFreedBuffers = true
        ex.setBuffer(0, [Float](repeating: 1, count: 16))
        try ex.run(batch: 1)
        XCTAssertEqual(ex.buffer(p.index("c")), [Float](repeating: 6, count: 16))
        // a and b died before the end and were handed over in place, so c sits on them: no
        // NaN reached c. Unplanned, the dead ones are poisoned.
        let plain = try Executor<Float>(plan: p.plan(outputs: ["c"]))
        plain.poisonFreedBuffers = true
        plain.setBuffer(0, [Float](repeating: 1, count: 16))
        try plain.run(batch: 1)
        XCTAssertTrue(plain.buffer(p.index("a")).allSatisfy { $0.isNaN })
        XCTAssertTrue(plain.buffer(p.index("b")).allSatisfy { $0.isNaN })
        XCTAssertEqual(plain.buffer(p.index("c")), [Float](repeating: 6, count: 16))
    }

    /// The parity fixture's model (the tuned model at 1/8 width) on the fixture's weights and
    /// batch: the training-mode forward and backward pass and the inference pass give the
    /// same bits planned (poisoned) and unplanned.
    func testParityFixturePlannedMatchesUnplanned() throws {
        let fixtures = repoRoot.appendingPathComponent("Tests/ParityTests/Fixtures")
        let npz = fixtures.appendingPathComponent("mini_tuned_parity.npz").path
        guard FileManager.default.fileExists(atPath: npz) else { throw XCTSkip("no \(npz)") }
        let arrays = Dictionary(try NumPyIO.readNPZ(path: npz).map { ($0.name, $0.array) }, uniquingKeysWith: { a, _ in a })
        let m = try Frontend.compile(path: fixtures.appendingPathComponent("mini_tuned.graph").path)
        let x = arrays["x"]!, y = arrays["y"]!
        let batch = x.shape[0]

        // Training mode, as `fergc run --train` builds it: gradients of every parameter.
        var g = try trainingForm(m)
        g = try autodiff(g, loss: "loss")
        g.outputs = [g.id(named: "predictions")!, g.id(named: "loss")!] + g.outputs.filter { g[$0].name.hasPrefix("grad.") }
        let trainPlain = try lowerToPlan(try deadCodeElimination(g), maxBatch: batch)
        let evalPlain = try inferencePlan(m, maxBatch: batch)
        for (label, plain) in [("train", trainPlain), ("eval", evalPlain)] {
            var values: [String: [Float]] = [:]
            for b in plain.buffers where b.role != .intermediate {
                switch b.name {
                case "x": values[b.name] = x.floats
                case "labels": values[b.name] = y.ints.map(Float.init)
                default:
                    guard let a = arrays[b.name] else { return XCTFail("fixture has no '\(b.name)'") }
                    values[b.name] = a.floats
                }
            }
            let planned = planMemory(plain)
            assertOverlapFree(planned)
            print("mini_tuned \(label): \(memoryReport(planned))")
            for dropout in [false, true] {
                let reference = try execute(Double.self, plain, values: values, batch: batch, runs: 1, poison: false, dropout: dropout)
                let arena = try execute(Double.self, planned, values: values, batch: batch, runs: 1, poison: true, fromPlan: true, dropout: dropout)
                assertIdentical(arena, reference, "mini_tuned \(label) dropout \(dropout)")
                let referenceF = try execute(Float.self, plain, values: values, batch: batch, runs: 1, poison: false, dropout: dropout)
                let arenaF = try execute(Float.self, planned, values: values, batch: batch, runs: 1, poison: true, dropout: dropout)
                assertIdentical(arenaF, referenceF, "mini_tuned \(label) Float dropout \(dropout)")
            }
            // And against PyTorch, loosely: the planned run computes the fixture's logits.
            if label == "eval", let expected = arrays["eval_logits"] {
                let ex = try Executor<Double>(plan: planned)
                for (i, b) in planned.buffers.enumerated() where b.role != .intermediate {
                    if b.elementType == .i32 { ex.setBuffer(i, ints: values[b.name]!.map { Int32($0) }) } else { ex.setBuffer(i, values[b.name]!.map(Double.init)) }
                }
                try ex.run(batch: batch)
                let got = ex.buffer(planned.outputs[0])
                let scale = expected.floats.map { abs(Double($0)) }.max()!
                let worst = zip(got, expected.floats).map { abs($0 - Double($1)) }.max()!
                XCTAssertLessThan(worst, 1e-3 * scale + 1e-6)
            }
        }
    }
}
