// fergc export / fergc import as a user runs them.

import Foundation
import XCTest

final class ONNXCommandTests: XCTestCase {
    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-onnx-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    func testHelpAndUsageErrors() throws {
        for c in ["export", "import"] {
            let h = try fergc([c, "--help"])
            XCTAssertEqual(h.status, 0)
            XCTAssertTrue(h.stdout.contains("USAGE: fergc \(c)"), h.stdout)
            XCTAssertTrue(h.stdout.contains("EXAMPLE"), h.stdout)
        }
        let top = try fergc(["--help"])
        XCTAssertTrue(top.stdout.contains("export") && top.stdout.contains("import"), top.stdout)
        let noOut = try fergc(["export", "Models/trained/vgg_tuned.plan"])
        XCTAssertEqual(noOut.status, 2)
        XCTAssertTrue(noOut.stderr.contains("missing -o M.onnx"), noOut.stderr)
        let weights = try fergc(["export", "Models/trained/vgg_tuned.plan", "--weights", "w.npz", "-o", "x.onnx"])
        XCTAssertEqual(weights.status, 2)
        XCTAssertTrue(weights.stderr.contains("--weights applies to a .graph"), weights.stderr)
    }

    /// A .graph with its weights: exported, imported back, compiled.
    func testExportGraphImportItCompileIt() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(at: d) }
        let onnx = d.appendingPathComponent("tiny.onnx").path
        let e = try fergc(["export", "Models/tiny.graph", "-o", onnx])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stderr.contains("opset 13"), e.stderr)
        let graph = d.appendingPathComponent("tiny.graph").path
        let i = try fergc(["import", onnx, "-o", graph])
        XCTAssertEqual(i.status, 0, i.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: d.appendingPathComponent("tiny.npz").path))
        let text = try String(contentsOfFile: graph, encoding: .utf8)
        XCTAssertTrue(text.contains("conv2d(") && text.contains("batchnorm("), text)
        let c = try fergc(["compile", graph, "--weights", d.appendingPathComponent("tiny.npz").path, "-o", d.appendingPathComponent("tiny.plan").path])
        XCTAssertEqual(c.status, 0, c.stderr)
    }

    func testCorruptAndUnsupportedFilesAreErrorsNotCrashes() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(at: d) }
        let bad = d.appendingPathComponent("bad.onnx")
        try Data([0x08, 0x07, 0x3a, 0x64, 0x0a]).write(to: bad)
        let r = try fergc(["import", bad.path, "-o", d.appendingPathComponent("b.graph").path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("bad.onnx: not a valid ONNX model: model at byte offset 3"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d.appendingPathComponent("b.graph").path))
        let missing = try fergc(["import", d.appendingPathComponent("none.onnx").path, "-o", d.appendingPathComponent("n.graph").path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("none.onnx: cannot open: No such file or directory"), missing.stderr)
        // A FIFO is refused at once (opened without blocking), not waited on for a writer.
        let fifo = d.appendingPathComponent("fifo.onnx").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let f = try fergc(["import", fifo, "-o", d.appendingPathComponent("f.graph").path])
        XCTAssertEqual(f.status, 1)
        XCTAssertTrue(f.stderr.contains("fifo.onnx: a FIFO (named pipe), not a regular file"), f.stderr)
        // A training plan is not a model to export.
        let train = d.appendingPathComponent("train.plan").path
        XCTAssertEqual(try fergc(["compile", "Models/tiny.graph", "--train", "--batch", "2", "--no-probe", "-o", train]).status, 0)
        let t = try fergc(["export", train, "-o", d.appendingPathComponent("t.onnx").path])
        XCTAssertEqual(t.status, 1)
        XCTAssertTrue(t.stderr.contains("compile without --train"), t.stderr)
    }
}
