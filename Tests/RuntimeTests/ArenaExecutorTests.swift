// The executor over one arena: a hand-placed plan (intermediates at byte offsets, one in-place
// hand-over) gives the same bits as the unplanned plan, in Float and Double (offsets scaled),
// with freed memory poisoned; initial values come from `plan.parameters`; a placement that
// overlaps live values is refused.
import XCTest
@testable import Runtime

/// `tinyTrainingPlan` with its gradients as outputs, placed by hand in a 384-byte arena:
/// h@0, a@0 (relu in place), loss@64, dloss@128, da@192, dh@192 (relu_grad in place),
/// dw@128 (dloss is dead by then), db@256, dx@320.
func placedTinyPlan() -> Plan {
    var plan = tinyTrainingPlan()
    plan.outputs = [6, 10, 11, 12]
    let offsets: [String: Int] = ["h": 0, "a": 0, "loss": 64, "dloss": 128, "da": 192, "dh": 192,
                                  "dw": 128, "db": 256, "dx": 320]
    for (name, offset) in offsets { plan.buffers[plan.buffer(named: name)!].offset = offset }
    var memory = MemorySummary()
    memory.arenaBytes = 384
    plan.memory = memory
    return plan
}

final class ArenaExecutorTests: RuntimeTestCase {
    func run<T: BLASReal>(_: T.Type, _ plan: Plan, poison: Bool) throws -> [[T]] {
        let ex = try Executor<T>(plan: plan)
        ex.poisonFreedBuffers = poison
        var rng = TestRNG(seed: 9)
        ex.setBuffer(0, rng.array(3 * 4).map { T($0) })
        ex.setBuffer(1, ints: [2, 0, 1])
        if plan.parameters.isEmpty {
            ex.setBuffer(2, rng.array(12).map { T($0) })
            ex.setBuffer(3, rng.array(3, 0, 0.5).map { T($0) })
        }
        try ex.run(batch: 3)
        try ex.run(batch: 2)
        return plan.outputs.map { ex.buffer($0) }
    }

    func testPlacedPlanMatchesUnplanned() throws {
        let placed = placedTinyPlan()
        var plain = placed
        for i in plain.buffers.indices { plain.buffers[i].offset = nil }
        plain.memory = nil
        XCTAssertEqual(intermediateLifetimes(placed)[placed.buffer(named: "a")!], 1...5)
        XCTAssertEqual(inPlaceSource(placed, step: 1, lifetimes: intermediateLifetimes(placed)), placed.buffer(named: "h"))
        XCTAssertEqual(inPlaceSource(placed, step: 5, lifetimes: intermediateLifetimes(placed)), placed.buffer(named: "da"))
        let a = try run(Double.self, placed, poison: true), b = try run(Double.self, plain, poison: false)
        XCTAssertEqual(a.map { $0.map(\.bitPattern) }, b.map { $0.map(\.bitPattern) })
        XCTAssertFalse(a.joined().contains { $0.isNaN })
        let af = try run(Float.self, placed, poison: true), bf = try run(Float.self, plain, poison: false)
        XCTAssertEqual(af.map { $0.map(\.bitPattern) }, bf.map { $0.map(\.bitPattern) })
    }

    func testInitialValuesFromThePlan() throws {
        var plan = placedTinyPlan()
        var rng = TestRNG(seed: 9)
        _ = rng.array(3 * 4)
        let w = rng.array(12).map { Float($0) }, b = rng.array(3, 0, 0.5).map { Float($0) }
        plan.parameters = ["w": w, "b": b]
        let ex = try Executor<Float>(plan: plan)
        XCTAssertEqual(ex.buffer(2), w)
        XCTAssertEqual(ex.buffer(3), b)
        // The same run as with setBuffer.
        let fromPlan = try run(Float.self, plan, poison: false)
        plan.parameters = [:]
        XCTAssertEqual(fromPlan, try run(Float.self, plan, poison: false))

        // An i32 counter starts from its value too.
        var counter = tinyTrainingPlan()
        counter.buffers.append(.init(name: "iterations", elementType: .i32, perSample: [], batched: false, role: .state))
        counter.steps.append(.init(name: "inc", kernel: .increment, inputs: [counter.buffers.count - 1], outputs: []))
        counter.parameters = ["iterations": [41]]
        let ce = try Executor<Float>(plan: counter)
        try ce.run(batch: 1)
        XCTAssertEqual(ce.bufferInts(counter.buffers.count - 1), [42])
    }

    func testOverlappingLiveValuesAreRefused() throws {
        var plan = placedTinyPlan()
        plan.buffers[plan.buffer(named: "dw")!].offset = 64  // over loss, live to the end
        XCTAssertThrowsError(try Executor<Float>(plan: plan)) { error in
            XCTAssertTrue("\(error)".contains("'loss'") && "\(error)".contains("'dw'"), "\(error)")
        }
        var shifted = placedTinyPlan()
        shifted.buffers[shifted.buffer(named: "a")!].offset = 64  // a off h and onto loss
        XCTAssertThrowsError(try Executor<Float>(plan: shifted))
        var onDB = placedTinyPlan()
        onDB.buffers[onDB.buffer(named: "dh")!].offset = 256  // db is born while dh is still read
        XCTAssertThrowsError(try Executor<Float>(plan: onDB))
        var apart = placedTinyPlan()
        apart.buffers[apart.buffer(named: "dh")!].offset = 384  // not in place: memory of its own
        apart.memory!.arenaBytes = 448
        XCTAssertNoThrow(try Executor<Float>(plan: apart))
        apart.memory!.arenaBytes = 400
        XCTAssertThrowsError(try Executor<Float>(plan: apart), "dh ends past the arena")
    }
}
