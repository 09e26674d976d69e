// The Figure 12 preprocessing in the CLI: the picture command, the study's model files and the
// summary's technique names.

import Foundation
import XCTest

final class PreprocessCLITests: XCTestCase {
    func testDataPreprocessWritesThePicture() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-pre-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("face.png").path
        let r = try fergc(["data", "preprocess", "--face", "3", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        func be32(_ o: Int) -> Int { png[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
        XCTAssertEqual(be32(16), 78 + 12 * (144 + 6))  // width: the labels, then 12 columns
        XCTAssertEqual(be32(20), 354)
        let bad = try fergc(["data", "preprocess", "--face", "5000", "--out", out])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--face 5000"), bad.stderr)
        XCTAssertTrue(try fergc(["data", "--help"]).stdout.contains("data preprocess"))
    }

    /// The files of `Models/<folder>` are what its committed generate.sh makes (and `count` of them).
    func checkGeneratedFiles(_ folder: String, count: Int) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-gen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = [repoRoot.appendingPathComponent("Models/\(folder)/generate.sh").path]
        p.environment = ["OUT": dir.path, "PATH": "/usr/bin:/bin"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let made = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".graph") }.sorted()
        let committed = try FileManager.default.contentsOfDirectory(atPath: repoRoot.appendingPathComponent("Models/\(folder)").path)
            .filter { $0.hasSuffix(".graph") }.sorted()
        XCTAssertEqual(made.count, count)
        XCTAssertEqual(made, committed)
        for name in made {
            XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent(name)),
                           try Data(contentsOf: repoRoot.appendingPathComponent("Models/\(folder)/\(name)")), name)
        }
    }

    /// The study's files are what the committed script makes from vgg_scratch_fast.graph.
    func testStudyFilesMatchTheirGenerator() throws {
        try checkGeneratedFiles("study", count: 19)
    }

    /// The issue-13 proxies: what their script makes from vgg_k_narrow.graph and vgg_k.graph, each
    /// a valid training model whose train block differs as the script says.
    func testProxyFilesMatchTheirGenerator() throws {
        try checkGeneratedFiles("proxy", count: 16)
        for name in ["narrow_adam", "narrow_gap", "narrow_gap_distill", "narrow_head", "narrow_mixup", "narrow_crop44", "narrow_48", "narrow_4096"] {
            let r = try fergc(["compile", "Models/proxy/\(name).graph", "--train", "--batch", "2", "--no-probe", "--emit", "ir"])
            XCTAssertEqual(r.status, 0, name + ": " + r.stderr)
        }
        // The two classifier proxies: 256 pooled features into the logits; one dense layer of 256.
        let gap = try fergc(["compile", "Models/proxy/narrow_gap.graph", "--summary"])
        XCTAssertTrue(gap.stdout.contains("f32[N, 256, 1, 1]") && !gap.stdout.contains("fc1"), gap.stdout)
        let head = try fergc(["compile", "Models/proxy/narrow_head.graph", "--summary"])
        XCTAssertTrue(head.stdout.contains("f32[N, 256]") && !head.stdout.contains("fc2"), head.stdout)
        let text = try String(contentsOfFile: repoRoot.appendingPathComponent("Models/proxy/narrow_adam.graph").path, encoding: .utf8)
        XCTAssertTrue(text.contains("optimizer = adam(lr=1e-3)") && text.contains("compute = bf16") && text.contains("epochs = 10"))
        let f32 = try String(contentsOfFile: repoRoot.appendingPathComponent("Models/proxy/narrow_f32.graph").path, encoding: .utf8)
        XCTAssertFalse(f32.contains("compute ="))
        // The input-size proxy: 44x44 crops into the same 256 x 3 x 3 features; the mixup one.
        let crop = try fergc(["compile", "Models/proxy/narrow_crop44.graph", "--summary"])
        XCTAssertTrue(crop.stdout.contains("f32[N, 32, 44, 44]") && crop.stdout.contains("f32[N, 2304]"), crop.stdout)
        let whole = try fergc(["compile", "Models/proxy/narrow_48.graph", "--summary"])
        XCTAssertTrue(whole.stdout.contains("f32[N, 32, 48, 48]") && whole.stdout.contains("f32[N, 2304]"), whole.stdout)
        let wholeText = try String(contentsOfFile: repoRoot.appendingPathComponent("Models/proxy/narrow_48.graph").path, encoding: .utf8)
        XCTAssertTrue(wholeText.contains("crop=48, pad=4, pad_mode=reflect"), wholeText)
        let mixup = try String(contentsOfFile: repoRoot.appendingPathComponent("Models/proxy/narrow_mixup.graph").path, encoding: .utf8)
        XCTAssertTrue(mixup.contains("  mixup = 0.2\n"), mixup)
        // The distillation proxy: narrow_gap's model and recipe with the teacher's weight and
        // temperature added, nothing else.
        let gapText = try String(contentsOfFile: repoRoot.appendingPathComponent("Models/proxy/narrow_gap.graph").path, encoding: .utf8)
        let distill = try String(contentsOfFile: repoRoot.appendingPathComponent("Models/proxy/narrow_gap_distill.graph").path, encoding: .utf8)
        XCTAssertEqual(distill.split(separator: "\n").dropFirst(5).filter { !$0.hasPrefix("  distill") },
                       gapText.split(separator: "\n").dropFirst(5))
        XCTAssertTrue(distill.contains("  distill = 0.5\n  distill_temperature = 2\n"), distill)
        // The references' head: 2304 features into two dense layers of 4096.
        let big = try fergc(["compile", "Models/proxy/narrow_4096.graph", "--summary"])
        XCTAssertTrue(big.stdout.contains("f32[N, 2304]") && big.stdout.contains("f32[N, 4096]") && !big.stdout.contains("f32[N, 512]"), big.stdout)
    }

    func testSummaryNamesTheTechnique() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-sum-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m.graph").path
        try "model m\ninput x: f32[N, 1, 8, 8]\nm = threshold(x, method=yen)\nf = flatten(m)\ny = dense(f, units=2)\noutput y\n"
            .write(toFile: model, atomically: true, encoding: .utf8)
        let r = try fergc(["compile", model, "--summary"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("threshold(method=yen)"), r.stdout)
    }
}
