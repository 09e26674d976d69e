// f16 plans keep a tensor beyond the half range in f32 (format 1.2, a per-tensor encoding in the
// PARM table): they round-trip exactly, the kept tensor keeps its bits, the others are halves,
// and non-canonical or corrupt per-tensor words are refused with their offset.

import Foundation
@testable import Runtime
import XCTest

final class MixedWeightsTests: XCTestCase {
    /// The tiny plan as an f16 plan with one tensor holding a value beyond ±65504.
    private func mixedPlan() throws -> (plan: Plan, big: String) {
        var plan = try tinyPlan()
        let big = plan.parameters.keys.sorted()[0]
        plan.parameters[big]![0] = 1_029_609.2
        plan.parameters = roundedToHalf(plan.parameters)
        plan.metadata.weightsDType = "f16"
        return (plan, big)
    }

    func testMixedPlansRoundTripAndKeepTheBigTensorInF32() throws {
        let (plan, big) = try mixedPlan()
        XCTAssertEqual(plan.parameters[big]![0], 1_029_609.2, "the tensor beyond the half range is not rounded")
        XCTAssertEqual(halfKeptTensors(plan.parameters).map(\.name), [big])
        let bytes = encodePlan(plan)
        let file = try decodePlanFile(bytes)
        XCTAssertEqual(file.formatVersion, "1.2")
        XCTAssertEqual(file.plan.parameters, plan.parameters)
        XCTAssertEqual(encodePlan(file.plan), bytes)
        XCTAssertEqual(file.weightsSHA256, weightsSHA256(plan))
        for (name, values) in file.plan.parameters where name != big {
            XCTAssertTrue(isHalfExact(values), name)
        }
        // The size: the kept tensor at 4 bytes per value, the rest at 2.
        var allHalf = plan
        allHalf.parameters[big] = roundedToHalf([big: plan.parameters[big]!.map { min($0, 1) }])[big]
        let allHalfBytes = encodePlan(allHalf)
        XCTAssertEqual(try decodePlanFile(allHalfBytes).formatVersion, "1.1", "no kept tensor: the 1.1 layout")
        XCTAssertGreaterThan(bytes.count, allHalfBytes.count)
        XCTAssertLessThan(bytes.count, encodePlan({ var p = plan; p.metadata.weightsDType = nil; return p }()).count)
    }

    func testNonCanonicalPerTensorWordsAreRefused() throws {
        let (plan, big) = try mixedPlan()
        let original = encodePlan(plan)
        let parm = try XCTUnwrap(try decodePlanFile(original).sections.first { $0.tag == "PARM" })
        let payload = parm.offset
        XCTAssertEqual(original[payload + 4], 2, "encoding word 2")
        // The first entry is `big` (names ascending): its per-tensor word follows the name.
        let nameLength = Int(original[payload + 8])
        let word = payload + 12 + nameLength
        XCTAssertEqual(original[word], 0, "'\(big)' is stored as f32")

        func refused(_ bytes: [UInt8], _ needle: String, _ line: UInt = #line) {
            var b = bytes
            fixChecksums(&b)
            XCTAssertThrowsError(try decodePlanFile(b), line: line) { e in
                let e = e as? PlanFileError
                XCTAssertNotNil(e?.offset, line: line)
                XCTAssertTrue(e?.description.contains(needle) ?? false, "\(String(describing: e))", line: line)
            }
        }
        var bad = original
        bad[word] = 5
        refused(bad, "encoding 5 is not 0 (f32) or 1 (f16)")
        bad = original
        bad[payload + 4] = 3
        refused(bad, "value encoding 3")
        // A tensor stored f32 whose values are all halves is not the canonical layout: write
        // halves into the kept tensor's f32 slots (it is the first tensor in the data).
        bad = original
        let data = firstDataOffset(original, payload: payload, count: plan.parameters.count)
        for (i, v) in plan.parameters[big]!.enumerated() {
            let bits = Float(Float16(i == 0 ? 1 : v)).bitPattern
            for k in 0..<4 { bad[data + 4 * i + k] = UInt8(truncatingIfNeeded: bits >> UInt32(8 * k)) }
        }
        refused(bad, "every value is a half")
    }

    /// Random byte changes in the PARM section of a mixed plan, behind valid checksums: each is
    /// refused with an offset or decodes to a plan the executor accepts; nothing crashes.
    func testMutatedMixedParametersNeverCrash() throws {
        let original = encodePlan(try mixedPlan().plan)
        let parm = try XCTUnwrap(try decodePlanFile(original).sections.first { $0.tag == "PARM" })
        var state: UInt64 = 777
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33)
        }
        var rejected = 0
        for round in 0..<400 {
            var bytes = original
            // Half the rounds aim at the table (the encoding words, counts, offsets).
            let span = round % 2 == 0 ? min(parm.length, 256) : parm.length
            for _ in 0..<(1 + next() % 3) { bytes[parm.offset + next() % span] = UInt8(next() % 256) }
            fixChecksums(&bytes)
            do {
                _ = try Executor<Float>(plan: try decodePlan(bytes))
            } catch let e as PlanFileError {
                XCTAssertTrue(e.kind == .invalidPlan || e.offset != nil, "\(e)")
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 100)
    }

    /// The start of the data area of a PARM payload with encoding 2 (each entry: u32 length,
    /// name, u32 encoding, u64 count, u64 offset; then padding to 64).
    private func firstDataOffset(_ bytes: [UInt8], payload: Int, count: Int) -> Int {
        var pos = payload + 8
        for _ in 0..<count {
            let n = (0..<4).reduce(0) { $0 | Int(bytes[pos + $1]) << (8 * $1) }
            pos += 4 + n + 4 + 16
        }
        let table = pos - payload
        return payload + (table + 63) / 64 * 64
    }
}
