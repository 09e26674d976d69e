// Regression tests for the reliability audit (../shared/design/reliability-audit.md, issue 17):
// hostile plans with valid CRCs, FIFOs, non-finite inputs, training plans, memory, OpenBLAS
// threads. Each test names its finding (audit id and issue number).

import CFergc
import Foundation
import Runtime
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class ReliabilityPlanTests: XCTestCase {
    /// Writes `plan` (any content: encodePlan does not validate, CRCs are right) and returns the path.
    func write(_ plan: Plan, _ name: String) throws -> String {
        let path = try temporaryDirectory(self).appendingPathComponent(name).path
        try Data(encodePlan(plan)).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Writes `plan` as `name` and asserts that `inspect` refuses it saying `needle` and that
    /// loading it throws; returns the path.
    @discardableResult
    func assertRefusedWhenRead(_ plan: Plan, _ name: String, _ needle: String,
                               file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = try write(plan, name)
        let r = try fergc(["inspect", path])
        XCTAssertEqual(r.status, 1, r.stdout, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(needle), r.stderr, file: file, line: line)
        XCTAssertThrowsError(try LoadedPlan(path: path), file: file, line: line)
        return path
    }

    func face(_ dir: URL) throws -> String {
        let path = dir.appendingPathComponent("face.pgm").path
        try pgm(syntheticPixels(1), width: 48, height: 48).write(to: URL(fileURLWithPath: path))
        return path
    }

    // #4 / R4: an arena larger than its buffers reach is refused by inspect and by loading.
    func testHugeArenaIsRefusedByInspectAndLoad() throws {
        var plan = try facePlan()
        XCTAssertNotNil(plan.memory)
        plan.memory!.arenaBytes = 4_294_967_297
        try assertRefusedWhenRead(plan, "arena.plan", "arena size 4294967297 bytes is larger than")
    }

    // #12 / H1, W6: pool sizes of 2^31 and 2^32+1 and a conv padTop of 2^32+1 or 7 are refused
    // (geometry bounded and cross-checked) instead of hanging or being truncated in C.
    func testHostileGeometryIsRefused() throws {
        let base = try facePlan()
        var sawPool = false, sawConv = false
        for (s, step) in base.steps.enumerated() {
            if case .maxpool(var g) = step.kernel {
                for size in [1 << 31, (1 << 32) + 1, (1 << 32) - 5, 1000] {
                    g.size = size
                    var p = base
                    p.steps[s].kernel = .maxpool(g)
                    let r = try fergc(["inspect", try write(p, "pool.plan")])
                    XCTAssertEqual(r.status, 1, "size \(size): \(r.stdout)")
                    // Sizes past Int32 fail the format's size check; 1000 the geometry cross-check.
                    XCTAssertTrue(r.stderr.contains(size == 1000 ? "pool geometry" : "too large"), r.stderr)
                    sawPool = true
                }
            }
            if case .conv2d(var g, let bias) = step.kernel {
                for pad in [(1 << 32) + 1, 7] {
                    g.padTop = pad
                    var p = base
                    p.steps[s].kernel = .conv2d(g, bias: bias)
                    XCTAssertThrowsError(try LoadedPlan(plan: p), "padTop \(pad)") { e in
                        XCTAssertTrue("\(e)".contains(pad == 7 ? "conv geometry" : "too large"), "\(e)")
                    }
                    sawConv = true
                }
            }
        }
        // The face plan may fuse its convolutions; the pool check must have run at least.
        XCTAssertTrue(sawPool)
        _ = sawConv
        // The kernels clip windows to the input: a huge valid-looking window costs O(H*W).
        let g = PoolGeometry(channels: 1, inHeight: 4, inWidth: 4, size: 1 << 30, stride: 1, padTop: 0, padLeft: 0, outHeight: 1, outWidth: 1)
        let x: [Float] = (0..<16).map(Float.init)
        var y: [Float] = [0]
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { maxpoolForward($0.baseAddress!, xp.baseAddress!, n: 1, g) } }
        XCTAssertEqual(y[0], 15)
    }

    // #14 / H4: validation is one sweep: a 20,000-step relu chain alternating two offsets
    // validates (quadratically that was 1.1 s in release; 60,000 steps 8.3 s).
    func testLongPlanValidates() throws {
        var buffers = [BufferDesc(name: "x", perSample: [64], batched: true, role: .input)]
        var steps: [Step] = []
        let n = 20_000
        for i in 0..<n {
            buffers.append(BufferDesc(name: "a\(i)", perSample: [64], batched: true, role: .intermediate, offset: (i % 2) * 256))
            steps.append(Step(name: "r\(i)", kernel: .relu, inputs: [i], outputs: [i + 1]))
        }
        var plan = Plan(name: "chain", buffers: buffers, steps: steps, maxBatch: 1, outputs: [n])
        var m = MemorySummary()
        m.arenaBytes = 512
        plan.memory = m
        XCTAssertNoThrow(try Executor<Float>(plan: plan))
        // An overlap is still found: the second buffer moved onto the first's bytes while both live.
        var bad = plan
        bad.steps[1] = Step(name: "add", kernel: .add, inputs: [1, 2], outputs: [3])
        bad.steps[0] = Step(name: "r0", kernel: .relu, inputs: [0], outputs: [2])
        bad.steps.insert(Step(name: "r", kernel: .relu, inputs: [0], outputs: [1]), at: 0)
        bad.buffers[2].offset = 128
        XCTAssertThrowsError(try Executor<Float>(plan: bad)) { e in XCTAssertTrue("\(e)".contains("overlap"), "\(e)") }
    }

    // #11 / H2: fergc_plan_load and inspect refuse a FIFO at once instead of blocking.
    func testFIFOPlanIsRefused() throws {
        let dir = try temporaryDirectory(self)
        let fifo = dir.appendingPathComponent("f.plan").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        var err = [CChar](repeating: 0, count: 256)
        let p = fifo.withCString { fergc_plan_load($0, &err, err.count) }
        XCTAssertNil(p)
        XCTAssertTrue(textUpToNUL(err).contains("FIFO"), textUpToNUL(err))
        let r = try fergc(["inspect", fifo])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("not a regular file"), r.stderr)
    }

    // A plan naming a class twice (or with an empty name) is refused when read: the names key
    // predict's records, where the duplicate once trapped in a Dictionary initializer.
    func testDuplicateClassNamesAreRefused() throws {
        for names in [["Angry", "Disgust", "Fear", "Happy", "Sad", "Disgust", "Neutral"],
                      ["Angry", "Disgust", "Fear", "", "Sad", "Surprise", "Neutral"]] {
            var plan = try facePlan()
            plan.metadata.classNames = names
            let path = try assertRefusedWhenRead(plan, "names.plan", names[5] == "Disgust" ? "names class 'Disgust' twice" : "an empty class name")
            let p = try fergc(["predict", path, try face(try temporaryDirectory(self)), "--detector", "none", "--format", "jsonl"])
            XCTAssertEqual(p.status, 65, p.stdout)  // predict's status for a plan it cannot use
            XCTAssertFalse(p.stderr.contains("Fatal error"), p.stderr)
        }
    }

    // A plan file whose buffer table names two buffers alike is refused when read: a mutated
    // table that renamed the input 'x' after a weight made the executor fill the input with
    // the weight's values past its end (found by mutating plan files).
    func testTwoBuffersOfOneNameAreRefusedInAFile() throws {
        var plan = try facePlan()
        let x = try XCTUnwrap(plan.buffer(named: "x"))
        let weight = try XCTUnwrap(plan.buffers.first { $0.role == .parameter }).name
        plan.buffers[x].name = weight
        try assertRefusedWhenRead(plan, "twins.plan", "two buffers are named '\(weight)'")
    }

    // The memory summary's thread count sizes an ensemble's workspace: one of 2^62 once
    // overflowed that product (a trap in `fergc ensemble`); it is refused when read.
    func testAbsurdWorkspaceThreadsAreRefused() throws {
        var plan = try facePlan()
        XCTAssertNotNil(plan.memory)
        plan.memory!.workspaceThreads = 1 << 62
        let path = try assertRefusedWhenRead(plan, "threads.plan", "workspace threads 4611686018427387904 outside 1...4096")
        let e = try fergc(["ensemble", path, path, "-o", path + ".e"])
        XCTAssertEqual(e.status, 1, e.stdout)
        XCTAssertTrue(e.stderr.contains("workspace threads"), e.stderr)
        XCTAssertFalse(e.stderr.contains("Fatal error") || e.stderr.contains("runtime failure"), e.stderr)
    }

    // Found by Tools/fuzz/commands.py: a plan whose unused `labels` input had the shape [0] per
    // sample passed every check, and `fergc bench`, which fills every input, trapped on it.
    func testAnInputWithNoElementsIsRefused() throws {
        let dir = try temporaryDirectory(self)
        let compiled = dir.appendingPathComponent("tiny.plan").path
        XCTAssertEqual(try fergc(["compile", "Models/tiny.graph", "-o", compiled]).status, 0)
        var plan = try readPlan(path: compiled)
        let labels = try XCTUnwrap(plan.buffers.firstIndex { $0.name == "labels" && $0.role == .input })
        plan.buffers[labels].perSample = [0]
        let path = try assertRefusedWhenRead(plan, "empty-input.plan", "input buffer \(labels) 'labels' has shape [0]: an input holds at least one value a sample")
        let b = try fergc(["bench", path, "--runs", "5", "--batch", "1"])
        XCTAssertEqual(b.status, 1, b.stdout)
        XCTAssertTrue(b.stderr.contains("an input holds at least one value"), b.stderr)
    }

    // A program embedding the runtime is not aborted by a plan path that names a sparse file
    // stating more bytes than the process may allocate: the C API and the Swift API refuse it.
    func testSparsePlanLargerThanMemoryIsRefusedByTheCAPI() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("sparse.plan").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
        XCTAssertEqual(truncate(path, 1 << 40), 0, "the scratch file system cannot hold a sparse 1 TiB file")
        var err = [CChar](repeating: 0, count: 512)
        XCTAssertNil(path.withCString { fergc_plan_load($0, &err, err.count) })
        XCTAssertTrue(textUpToNUL(err).contains("the file has 1099511627776 bytes, more than this process may allocate"), textUpToNUL(err))
        XCTAssertThrowsError(try LoadedPlan(path: path))
    }

    // #18 / W3, W4: NaN parameters are refused at load; NaN or infinite pixels are an error
    // naming the image (Swift API and C API), not uniform probabilities.
    func testNonFiniteWeightsAndPixelsAreRefused() throws {
        var plan = try facePlan()
        let name = try XCTUnwrap(plan.parameters.keys.sorted().first)
        plan.parameters[name]![0] = .nan
        XCTAssertThrowsError(try LoadedPlan(plan: plan)) { e in
            XCTAssertTrue("\(e)".contains("tensor '\(name)' holds a non-finite value"), "\(e)")
        }
        let good = try LoadedPlan(plan: try facePlan())
        let session = try Session(good)
        for bad in [Float.nan, .infinity, -.infinity] {
            var images = [Float](repeating: 0.5, count: 2 * good.inputElements)
            images[good.inputElements + 7] = bad
            XCTAssertThrowsError(try session.predict(images: images)) { e in
                XCTAssertTrue("\(e)".contains("image 1 holds a non-finite value"), "\(e)")
            }
        }
        let path = try write(try facePlan(), "face.plan")
        var err = [CChar](repeating: 0, count: 256)
        let p = try XCTUnwrap(path.withCString { fergc_plan_load($0, &err, err.count) })
        defer { fergc_plan_free(p) }
        let s = try XCTUnwrap(fergc_session_new(p))
        defer { fergc_session_free(s) }
        var images = [Float](repeating: .nan, count: good.inputElements)
        var probs = [Float](repeating: 0, count: good.classes)
        XCTAssertEqual(fergc_predict(s, &images, 1, &probs, &err, err.count), -1)
        XCTAssertTrue(textUpToNUL(err).contains("non-finite"), textUpToNUL(err))
    }

    // #22 / W5: a training plan is refused by sessions (and so by predict and the C API).
    func testTrainingPlanIsRefusedForClassification() throws {
        var plan = try facePlan()
        plan.metadata.mode = "training"
        XCTAssertThrowsError(try LoadedPlan(plan: plan)) { e in
            XCTAssertTrue("\(e)".contains("is a training plan"), "\(e)")
        }
        let dir = try temporaryDirectory(self)
        let path = try write(plan, "train.plan")
        let r = try fergc(["predict", path, try face(dir)])
        XCTAssertEqual(r.status, 65, r.stdout)   // predict's exit code for a plan it cannot use
        XCTAssertTrue(r.stderr.contains("training plan"), r.stderr)
    }

    // #13 / R5: a session on an unplanned plan with a huge maxBatch allocates for the batches it
    // runs, and grows when a larger batch comes.
    func testUnplannedSessionGrowsOnDemand() throws {
        var plan = try facePlan(maxBatch: 4)
        for i in plan.buffers.indices { plan.buffers[i].offset = nil }
        plan.memory = nil
        plan.maxBatch = 1 << 20
        let model = try LoadedPlan(plan: plan)
        let session = try Session(model)
        let one = try session.predictRaw(pixels: syntheticPixels(3))
        let many = try session.predictRaw(pixels: (0..<40).flatMap { _ in syntheticPixels(3) })
        XCTAssertEqual(many.count, 40)
        for row in many { for (a, b) in zip(row, one[0]) { XCTAssertEqual(a, b, accuracy: 1e-5) } }
        XCTAssertTrue(executorBytes(plan, elementSize: 4) > 1 << 30)  // what up-front allocation would cost
    }

    // The memory budget counts parameters and optimizer state once, not once per sample: the
    // pretrained VGG16's training plan (85 MB of parameters, 157 MB of Adam state) was refused at
    // batch 128 as needing 31 GB.
    func testMemoryBudgetCountsUnbatchedBuffersOnce() throws {
        var plan = try facePlan(maxBatch: 1)
        for i in plan.buffers.indices { plan.buffers[i].offset = nil }
        plan.memory = nil
        let one = executorBytes(plan, elementSize: 4)
        plan.maxBatch = 100
        let hundred = executorBytes(plan, elementSize: 4)
        let perSample = plan.buffers.filter(\.batched).reduce(0) { $0 + $1.elementsPerSample * ($1.views ?? 1) * 4 }
        let unbatched = plan.buffers.filter { !$0.batched }.reduce(0) { $0 + $1.elementsPerSample * 4 }
        XCTAssertGreaterThan(unbatched, 0)
        XCTAssertEqual(hundred - one, 99 * perSample)
    }

    // #24 / G1: concurrent sessions leave OpenBLAS's thread count as they found it.
    func testConcurrentSessionsRestoreBLASThreads() throws {
        let before = blasThreads()
        let model = try LoadedPlan(plan: try facePlan(maxBatch: 8))
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            guard let s = try? Session(model) else { return }
            for _ in 0..<5 { _ = try? s.predictRaw(pixels: (0..<8).flatMap { syntheticPixels(t + $0) }) }
        }
        XCTAssertEqual(blasThreads(), before)
    }

    // #26 / U8: control characters and bidi overrides from a plan are escaped by inspect.
    func testInspectEscapesControlCharacters() throws {
        var plan = try facePlan()
        plan.name = "evil\u{1B}[31m\u{202E}"
        plan.metadata.classNames[0] = "An\u{07}gry"
        let r = try fergc(["inspect", try write(plan, "evil.plan")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x202E }, r.stdout)
        XCTAssertTrue(r.stdout.contains("evil\\u{1b}[31m\\u{202e}"), r.stdout)
    }

    // #26 / U7: fergc_session_new_err says why; fergc_plan_load_memory with SIZE_MAX does not
    // claim the bytes are NULL.
    func testSessionNewErrorHasAReason() throws {
        var err = [CChar](repeating: 0, count: 256)
        XCTAssertNil(fergc_session_new_err(nil, &err, err.count))
        XCTAssertTrue(textUpToNUL(err).contains("plan is NULL"), textUpToNUL(err))
        var byte: UInt8 = 0
        XCTAssertNil(fergc_plan_load_memory(&byte, Int(bitPattern: UInt(Int.max) + 1), &err, err.count))
        XCTAssertTrue(textUpToNUL(err).contains("too large"), textUpToNUL(err))
    }
}
