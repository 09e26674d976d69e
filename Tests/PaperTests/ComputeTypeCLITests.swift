// `fergc compile --compute bf16`: the flag on a graph and on an existing plan, what `inspect`
// says, the refusal of an unknown type, training plans in bf16, and that an ensemble of bf16 members
// stays bf16. Whether the executor then runs bf16 is BF16PlanTests' (PassesTests) business.
import Runtime
import XCTest

final class ComputeTypeCLITests: XCTestCase {
    func testCompileMarksPlansAndInspectSaysSo() throws {
        let dir = temporaryDirectory("compute")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try fergc(["compile", "Models/tiny.graph", "--compute", "bf16", "-o", dir + "/b.plan"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try fergc(["inspect", dir + "/b.plan", "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(j["compute_dtype"] as? String, "bf16")
        let text = try fergc(["inspect", dir + "/b.plan"])
        XCTAssertTrue(text.stdout.contains("convolutions in bf16"), text.stdout)

        // An existing plan: to f32 and back; the weights are untouched either way.
        XCTAssertEqual(try fergc(["compile", "Models/tiny.graph", "-o", dir + "/f.plan"]).status, 0)
        let again = try fergc(["compile", dir + "/f.plan", "--compute", "bf16", "-o", dir + "/f16c.plan"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("convolutions in bf16"), again.stderr)
        let sums = try [dir + "/f.plan", dir + "/f16c.plan"].map { p -> String in
            let o = try fergc(["inspect", p, "--json"])
            let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any])
            return try XCTUnwrap(j["weights_sha256"] as? String)
        }
        XCTAssertEqual(sums[0], sums[1])

        // Two bf16 members make a bf16 ensemble.
        let e = try fergc(["ensemble", dir + "/b.plan", dir + "/f16c.plan", "-o", dir + "/e.plan"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let ej = try fergc(["inspect", dir + "/e.plan", "--json"])
        let ejj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(ej.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(ejj["compute_dtype"] as? String, "bf16")
    }

    /// `fergc bench` on a .plan times that plan as compiled: its batch bound, its mode, its
    /// compute type (bf16 where this CPU has AMX or AVX512_BF16).
    func testBenchTimesAPlanAsCompiled() throws {
        let dir = temporaryDirectory("compute-bench")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(try fergc(["compile", "Models/small.graph", "--batch", "2", "--compute", "bf16", "-o", dir + "/s.plan"]).status, 0)
        let r = try fergc(["bench", dir + "/s.plan", "--runs", "5", "--warmup", "0", "--no-sgemm", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(j["batch"] as? Int, 2)
        XCTAssertEqual(j["mode"] as? String, "infer")
        let compute = try XCTUnwrap(j["compute"] as? String)
        XCTAssertTrue(compute.hasPrefix("bf16") || compute == "f32", compute)
        let big = try fergc(["bench", dir + "/s.plan", "--batch", "3", "--runs", "5", "--no-sgemm"])
        XCTAssertEqual(big.status, 2)
        XCTAssertTrue(big.stderr.contains("1...2"), big.stderr)
        let train = try fergc(["bench", dir + "/s.plan", "--train", "--runs", "5", "--no-sgemm"])
        XCTAssertEqual(train.status, 2)
        XCTAssertTrue(train.stderr.contains("is an inference plan"), train.stderr)
    }

    func testRefusals() throws {
        let dir = temporaryDirectory("compute-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bad = try fergc(["compile", "Models/tiny.graph", "--compute", "fp8", "-o", dir + "/x.plan"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("--compute expects f32 or bf16, got 'fp8'"), bad.stderr)
        let bad2 = try fergc(["compile", "Models/tiny.graph", "--train", "--compute", "f16", "-o", dir + "/t.plan"])
        XCTAssertEqual(bad2.status, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/t.plan"))
    }

    /// Training plans take bf16 too (the products of the convolutions and dense layers): compile
    /// --train --compute marks them, inspect and bench --train --bf16 say what runs.
    func testTrainingPlansTakeBF16() throws {
        let dir = temporaryDirectory("compute-train")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try fergc(["compile", "Models/vgg_k_narrow.graph", "--train", "--compute", "bf16", "--batch", "8", "-o", dir + "/t.plan"])
        XCTAssertEqual(c.status, 0, c.stderr)
        let i = try fergc(["inspect", dir + "/t.plan"])
        XCTAssertEqual(i.status, 0, i.stderr)
        XCTAssertTrue(i.stdout.contains("bf16"), i.stdout)
        let b = try fergc(["bench", "Models/vgg_k_narrow.graph", "--train", "--bf16", "--batch", "8", "--runs", "5", "--warmup", "1", "--no-sgemm"])
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertTrue(b.stdout.contains(bf16ComputeUnit.map { "convolutions in bf16 (\($0))" } ?? "asked bf16"), b.stdout)
        // --f32 runs a model whose train block asks bf16 in f32 (the f32 figure beside it);
        // --bf16 with --f32 is a usage error.
        let source = try String(contentsOfFile: "Models/vgg_k_narrow.graph", encoding: .utf8)
            .replacingOccurrences(of: "  seed = 1\n", with: "  compute = bf16\n  seed = 1\n")
        XCTAssertTrue(source.contains("compute = bf16"))
        try source.write(toFile: dir + "/m.graph", atomically: true, encoding: .utf8)
        let asked = try fergc(["bench", dir + "/m.graph", "--train", "--batch", "8", "--runs", "5", "--warmup", "1", "--no-sgemm", "--json"])
        XCTAssertEqual(asked.status, 0, asked.stderr)
        XCTAssertTrue(asked.stdout.contains(bf16ComputeUnit.map { "\"bf16 (\($0))\"" } ?? "\"f32\""), asked.stdout)
        let f = try fergc(["bench", dir + "/m.graph", "--train", "--f32", "--batch", "8", "--runs", "5", "--warmup", "1", "--no-sgemm", "--json"])
        XCTAssertEqual(f.status, 0, f.stderr)
        XCTAssertTrue(f.stdout.contains("\"compute\" : \"f32\"") || f.stdout.contains("\"compute\":\"f32\""), f.stdout)
        let both = try fergc(["bench", dir + "/m.graph", "--train", "--f32", "--bf16", "--no-sgemm"])
        XCTAssertEqual(both.status, 2)
        XCTAssertTrue(both.stderr.contains("--bf16 and --f32 exclude each other"), both.stderr)
    }
}
