// Plans that ask for bf16 convolutions (`PlanMetadata.computeDType`, `fergc compile --compute
// bf16`): the executor's choice at load time, its results against the same plan in f32, batch
// independence, the f32 fallback where no bf16 unit is (forced here with fk_limit_bf16), the
// workspace it allocates against the plan's summary, and validation of the field.

import CKernels
import Frontend
import GraphIR
import Passes
import Runtime
import XCTest

private let source = """
model bf16net
input x: f32[N, 1, 16, 16]
a = conv2d(x, filters=16, kernel=3, padding=same, activation=relu)
a_bn = batchnorm(a)
b = conv2d(a_bn, filters=32, kernel=3, padding=same, activation=relu)
b_bn = batchnorm(b)
p = maxpool(b_bn, size=2, stride=2)
c = conv2d(p, filters=40, kernel=3, padding=same, activation=relu)
d = conv2d(c, filters=24, kernel=1)
e = conv2d(d, filters=8, kernel=3, stride=2, padding=same)
f = flatten(e)
logits = dense(f, units=7)
output logits
"""

final class BF16PlanTests: XCTestCase {
    override func setUp() {
        super.setUp()
        fk_limit_bf16(fk_bf16_any_unit_limit())
    }

    override func tearDown() {
        fk_limit_bf16(2)
        super.tearDown()
    }

    private func plan(batch: Int = 3, bf16: Bool) throws -> Plan {
        var o = CompileOptions()
        o.mode = .inference
        o.batch = batch
        var p = try compile(try Frontend.compile(source: source, file: "bf16net.graph"), o).plan
        if bf16 { p.metadata.computeDType = "bf16" }
        // Batchnorm statistics that are not the identity, so the folded epilogue is exercised.
        for (name, values) in p.parameters where name.hasSuffix("running_var") || name.hasSuffix("var") {
            p.parameters[name] = values.enumerated().map { 0.5 + Float($0.offset % 5) * 0.3 }
        }
        return p
    }

    private func input(_ n: Int) -> [Float] {
        (0..<n * 256).map { Float(sin(Double($0) * 0.37)) }
    }

    private func logits(_ p: Plan, n: Int, configure: (Executor<Float>) -> Void = { _ in }) throws -> (Executor<Float>, [Float]) {
        let ex = try Executor<Float>(plan: p)
        ex.threads = 2
        configure(ex)
        ex.setBuffer(try XCTUnwrap(p.buffer(named: "x")), input(n))
        try ex.run(batch: n)
        return (ex, Array(ex.buffer(p.outputs[0]).prefix(n * 7)))
    }

    func testBF16PlanRunsInBF16WhereTheCPUCanAndStaysClose() throws {
        let f32 = try logits(try plan(bf16: false), n: 3)
        let (ex, bf) = try logits(try plan(bf16: true), n: 3)
        XCTAssertFalse(f32.0.computesInBF16)
        guard bf16ComputeAvailable else {
            XCTAssertFalse(ex.computesInBF16)
            XCTAssertEqual(bf, f32.1, "without a bf16 unit a bf16 plan is the f32 plan")
            throw XCTSkip("neither AMX nor AVX512_BF16 here: checked the f32 fallback only")
        }
        XCTAssertTrue(ex.computesInBF16)
        let scale = f32.1.map { abs($0) }.max()!, worst = zip(bf, f32.1).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst / scale, 3e-2, "bf16 logits too far from f32: \(bf) vs \(f32.1)")
        XCTAssertGreaterThan(worst, 0, "bitwise the f32 logits: the bf16 path did not run")
        // The executor can be told otherwise either way.
        XCTAssertEqual(try logits(try plan(bf16: true), n: 3) { $0.bf16 = false }.1, f32.1)
        XCTAssertEqual(try logits(try plan(bf16: false), n: 3) { $0.bf16 = true }.1, bf)
    }

    /// Each sample's logits do not depend on the batch it ran in nor on the thread count, up to
    /// the f32 steps' rounding (the dense layer's OpenBLAS product is not bitwise the same across
    /// batch sizes; the bf16 kernel itself is, BF16ConvTests checks it bitwise). On AVX512_BF16
    /// the 3x3 convolutions at 16x16 and 8x8 run f32 (`bf16DotPrefers`) and feed the bf16 1x1
    /// one: a last-bit difference of theirs across batch sizes can move an input of it to the
    /// neighbouring bf16 value (2^-8 relative), so the bound there is bf16's, not f32's.
    func testBatchAndThreadIndependence() throws {
        guard let unit = bf16ComputeUnit else { throw XCTSkip("neither AMX nor AVX512_BF16 here") }
        let p = try plan(bf16: true)
        let whole = try logits(p, n: 3).1
        let bound = unit == "AMX" ? 1e-5 : 4e-3
        func close(_ a: [Float], _ b: [Float], _ what: String) {
            let scale = b.map { abs($0) }.max()!, worst = zip(a, b).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst / scale, Float(bound), what)
        }
        for t in [1, 3] {
            close(try logits(p, n: 3) { $0.threads = t }.1, whole, "threads \(t)")
        }
        let ex = try Executor<Float>(plan: p)
        ex.threads = 2
        let x = input(3)
        for s in 0..<3 {
            ex.setBuffer(try XCTUnwrap(p.buffer(named: "x")), Array(x[s * 256..<(s + 1) * 256]))
            try ex.run(batch: 1)
            close(Array(ex.buffer(p.outputs[0]).prefix(7)), Array(whole[s * 7..<(s + 1) * 7]), "sample \(s)")
        }
    }

    func testFallbackWithoutABF16UnitIsBitwiseF32() throws {
        fk_limit_bf16(0)
        defer { fk_limit_bf16(2) }
        let (ex, bf) = try logits(try plan(bf16: true), n: 3)
        XCTAssertFalse(ex.computesInBF16)
        XCTAssertEqual(bf, try logits(try plan(bf16: false), n: 3).1)
        XCTAssertEqual(ex.workspaceBytesAllocated, executorWorkspaceBytes(try plan(bf16: true), threads: 2))
    }

    /// New weights written with setBuffer are packed again before the next run.
    func testWeightsWrittenAfterARunAreRepacked() throws {
        guard bf16ComputeAvailable else { throw XCTSkip("neither AMX nor AVX512_BF16 here") }
        let p = try plan(bf16: true)
        let (ex, before) = try logits(p, n: 2)
        let w = try XCTUnwrap(p.buffer(named: "b.weight") ?? p.buffers.firstIndex { $0.name.hasPrefix("b") && $0.name.hasSuffix("weight") })
        ex.setBuffer(w, ex.buffer(w).map { $0 * 0.5 })
        try ex.run(batch: 2)
        let after = Array(ex.buffer(p.outputs[0]).prefix(14))
        XCTAssertNotEqual(after, before)
        var q = p
        q.parameters[p.buffers[w].name] = p.parameters[p.buffers[w].name]!.map { $0 * 0.5 }
        XCTAssertEqual(try logits(q, n: 2).1, after, "the run after setBuffer used stale packed weights")
    }

    func testWorkspaceMatchesSummaryAndValidation() throws {
        let p = try plan(bf16: true)
        let (ex, _) = try logits(p, n: 3)
        XCTAssertEqual(ex.workspaceBytesAllocated, executorWorkspaceBytes(p, threads: 2))
        if bf16ComputeAvailable {
            XCTAssertGreaterThan(executorWorkspaceBytes(p, threads: 2), executorWorkspaceBytes(try plan(bf16: false), threads: 2))
        }
        var bad = p
        bad.metadata.computeDType = "bf17"
        XCTAssertThrowsError(try Executor<Float>(plan: bad)) { e in
            XCTAssertTrue("\(e)".contains("compute type 'bf17'"), "\(e)")
        }
        // The steps the bf16 path takes: stride 1 with 16+ input channels (not the first conv,
        // not the strided one), and the dense layer (8 * 4 * 4 = 128 inputs).
        let names = p.steps.filter { bf16ConvGeometry(of: $0.kernel) != nil }.map(\.name)
        XCTAssertEqual(names.count, 4, "\(names)")
        XCTAssertFalse(names.contains { $0.hasPrefix("a") || $0.hasPrefix("e") }, "\(names)")
    }
}
