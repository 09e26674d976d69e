// Plans with weights stored as IEEE half (format 1.1): they round-trip, read back as the
// rounded f32 values, are half the size, and give nearly the f32 plan's probabilities.

import Foundation
import Passes
import Runtime
import Training
import XCTest

final class HalfWeightsTests: XCTestCase {
    func testHalfPlansRoundTrip() throws {
        var options = CompileOptions()
        options.batch = 4
        options.probe = false
        let plan = try compile(try model("Models/tiny.graph"), options).plan
        var half = plan
        half.parameters = roundedToHalf(plan.parameters)
        half.metadata.weightsDType = "f16"

        let bytes = encodePlan(half)
        let back = try decodePlanFile(bytes)
        XCTAssertEqual(back.formatVersion, "1.1")
        XCTAssertEqual(back.plan.metadata.weightsDType, "f16")
        XCTAssertEqual(back.plan.parameters, half.parameters)  // exactly the rounded values
        XCTAssertEqual(encodePlan(back.plan), bytes)          // and the same bytes again
        // The rounding is to the nearest half: within half an ulp of half precision.
        for (name, v) in plan.parameters {
            for (a, b) in zip(v, half.parameters[name]!) {
                XCTAssertLessThanOrEqual(abs(a - b), max(abs(a), 6.1e-5) * 4.9e-4, name)
                XCTAssertEqual(Float(Float16(b)), b)
            }
        }
        // f32 plans are unchanged: format 1.0.
        XCTAssertEqual(try decodePlanFile(encodePlan(plan)).formatVersion, "1.0")
        // The values take 2 bytes instead of 4.
        let f32Values = plan.parameters.values.reduce(0) { $0 + $1.count }
        XCTAssertLessThan(bytes.count, encodePlan(plan).count - f32Values)

        // Both plans classify alike.
        let set = try loadFER2013(path: samplePath, options: LoadOptions(splits: [.publicTest]))[.publicTest]
        let pixels = Array(set.pixels[0..<(8 * FaceSet.pixelsPerImage)])
        let a = try Session(LoadedPlan(plan: plan)).predictRaw(pixels: pixels)
        let b = try Session(LoadedPlan(bytes: bytes)).predictRaw(pixels: pixels)
        for (ra, rb) in zip(a, b) { for (x, y) in zip(ra, rb) { XCTAssertEqual(x, y, accuracy: 1e-2) } }
    }

    func testACorruptEncodingWordIsRefused() throws {
        var options = CompileOptions()
        options.probe = false
        var half = try compile(try model("Models/tiny.graph"), options).plan
        half.metadata.weightsDType = "f16"
        half.parameters = roundedToHalf(half.parameters)
        var bytes = encodePlan(half)
        let file = try decodePlanFile(bytes)
        let parm = try XCTUnwrap(file.sections.first { $0.tag == "PARM" })
        bytes[parm.offset + 4] = 7
        XCTAssertThrowsError(try decodePlanFile(bytes))  // the CRC catches it first; either way it is refused
    }

    /// A tensor beyond the half range (a batchnorm running variance of 10^6 after training on
    /// raw pixels) stays f32, the command says which, and `inspect` shows it.
    func testTheCompileCommandKeepsBigTensorsInF32() throws {
        let dir = temporaryDirectory("f16big")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = CompileOptions()
        options.probe = false
        var plan = try compile(try model("Models/tiny.graph"), options).plan
        let name = try XCTUnwrap(plan.parameters.keys.sorted().first { $0.hasSuffix("running_var") })
        plan.parameters[name]![1] = 1_029_609.2
        try writePlan(plan, to: dir + "/big.plan")
        let r = try fergc(["compile", dir + "/big.plan", "--weights-dtype", "f16", "-o", dir + "/h.plan"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("kept in f32") && r.stderr.contains(name), r.stderr)
        let inspect = try fergc(["inspect", dir + "/h.plan"])
        XCTAssertTrue(inspect.stdout.contains("kept f32") && inspect.stdout.contains(name), inspect.stdout)
        XCTAssertTrue(inspect.stdout.contains("1.2"), inspect.stdout)
        let back = try readPlan(path: dir + "/h.plan")
        XCTAssertEqual(back.parameters[name], plan.parameters[name], "the kept tensor keeps every f32 value")
        for (other, values) in back.parameters where other != name {
            XCTAssertEqual(values, roundedToHalf([other: plan.parameters[other]!])[other], other)
        }
        XCTAssertEqual(back.metadata.weightsDType, "f16")
    }

    func testTheCompileCommandStoresHalfWeights() throws {
        let dir = temporaryDirectory("f16")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try fergc(["compile", "Models/tiny.graph", "--weights-dtype", "f16", "-o", dir + "/t.plan"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let inspect = try fergc(["inspect", dir + "/t.plan"])
        XCTAssertTrue(inspect.stdout.contains("stored as f16"), inspect.stdout)
        XCTAssertTrue(inspect.stdout.contains("1.1"), inspect.stdout)
        let back = try fergc(["compile", dir + "/t.plan", "--weights-dtype", "f32", "-o", dir + "/t32.plan"])
        XCTAssertEqual(back.status, 0, back.stderr)
        let bad = try fergc(["compile", "Models/tiny.graph", "--weights-dtype", "f8", "-o", dir + "/x.plan"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("f32 or f16"), bad.stderr)
    }
}
