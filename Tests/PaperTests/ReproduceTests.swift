// `fergc reproduce` on the embedded sample with tiny models and one epoch: rows train (one
// from another's checkpoint), an adopted plan is evaluated, an ensemble is built from two rows,
// a row not asked for shows "not run", and a second run skips what is done.

import Foundation
import XCTest

final class ReproduceTests: XCTestCase {
    func testReproduceWritesTheTable() throws {
        let dir = temporaryDirectory("reproduce")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let adopted = try fergc(["compile", "Models/tiny.graph", "--seed", "5", "-o", dir + "/adopted.plan"])
        XCTAssertEqual(adopted.status, 0, adopted.stderr)
        try """
        {
          "title": "Tiny table",
          "rows": [
            {"name": "a", "paper_row": "Row A", "paper_accuracy": 50.0, "paper_size_mb": 1.5, "model": "Models/tiny.graph"},
            {"name": "b", "paper_row": "Row B (from A)", "paper_accuracy": 51.0, "model": "Models/tiny.graph", "init_from": "row:a", "seed": 2, "weights_dtype": "f16"},
            {"name": "adopted", "paper_row": "Adopted", "adopt": {"plan": "\(dir)/adopted.plan", "report": "docs/x.md", "epochs": 3, "wall_seconds": 125, "commands": ["fergc train something"]}},
            {"name": "ens", "paper_row": "Ensemble of A and B", "paper_accuracy": 52.0, "ensemble": ["a", "b"]},
            {"name": "never", "paper_row": "Never run", "paper_accuracy": 99.0, "model": "Models/tiny.graph"}
          ],
          "differences": ["Tiny models."]
        }
        """.write(toFile: dir + "/m.json", atomically: true, encoding: .utf8)
        let args = ["reproduce", "--manifest", dir + "/m.json", "--out", dir + "/out", "--runs", dir + "/runs", "--plans", dir + "/plans", "--epochs", "1"]
        let r = try fergc(args + ["--rows", "a,b,adopted,ens"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("init from \(dir)/runs/a/checkpoint-best.npz: loaded"), r.stdout)

        let readme = try String(contentsOfFile: dir + "/out/README.md", encoding: .utf8)
        let table = readme.split(separator: "\n").filter { $0.hasPrefix("| ") }
        func row(_ name: String) -> [String] {
            guard let line = table.first(where: { $0.hasPrefix("| \(name) |") }) else { return [] }
            return line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        // Columns: row, paper, paper accuracy, PublicTest, PrivateTest, epochs, wall, plan size, paper size, values.
        let a = row("a"), b = row("b"), ens = row("ens"), adoptedRow = row("adopted"), never = row("never")
        XCTAssertEqual(a.count, 10, "\(table)")
        XCTAssertEqual(a[2], "50.0%")
        XCTAssertTrue(a[3].hasPrefix("**") && a[3].hasSuffix("%**"), a[3])
        XCTAssertEqual(a[5], "1")
        XCTAssertEqual(a[8], "1.5 MB")
        XCTAssertTrue(b[7].hasSuffix("(f16)"), b[7])
        XCTAssertTrue(ens[3].hasSuffix("%**"), ens[3])
        XCTAssertEqual(adoptedRow[5], "3")
        XCTAssertEqual(adoptedRow[6], "2 min 5 s")
        XCTAssertEqual(never[3...7].map { $0 }, ["not run", "not run", "not run", "not run", "not run"])
        XCTAssertTrue(readme.contains("a-confusion-PublicTest.png"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/ens-confusion-PublicTest.png"))
        XCTAssertTrue(readme.contains("fergc ensemble \(dir)/plans/a.plan \(dir)/plans/b.plan"), readme)
        XCTAssertTrue(readme.contains("- Tiny models."))
        // The accuracy in the table is the plan's: fergc eval agrees.
        let eval = try fergc(["eval", dir + "/plans/a.plan", "--split", "PublicTest", "--out", dir + "/eval"])
        XCTAssertTrue(eval.stdout.contains("accuracy " + a[3].replacingOccurrences(of: "*", with: "")), eval.stdout + " vs " + a[3])

        // Again: every finished row is skipped; a row whose result is gone is rebuilt from its
        // finished run without training again.
        try FileManager.default.removeItem(atPath: dir + "/out/rows/b.json")
        let again = try fergc(args + ["--rows", "a,b,ens"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("row a: done"), again.stdout)
        XCTAssertTrue(again.stdout.contains("row ens: done"), again.stdout)
        XCTAssertFalse(again.stdout.contains("row b: training"), again.stdout)
        let readme2 = try String(contentsOfFile: dir + "/out/README.md", encoding: .utf8)
        XCTAssertTrue(readme2.split(separator: "\n").first { $0.hasPrefix("| b |") }!.contains(b[3]))

        // A row that needs another row first is "not run" and the command fails, naming it.
        let lone = try fergc(["reproduce", "--manifest", dir + "/m.json", "--out", dir + "/out2", "--runs", dir + "/runs2", "--epochs", "1", "--rows", "b"])
        XCTAssertNotEqual(lone.status, 0)
        XCTAssertTrue(lone.stderr.contains("needs row 'a' trained first"), lone.stderr)
    }

    /// A row whose run was interrupted continues from its last checkpoint.
    func testAnInterruptedRowResumes() throws {
        let dir = temporaryDirectory("reproduce-resume")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        {"title": "Resume", "rows": [{"name": "a", "paper_row": "A", "model": "Models/tiny.graph", "seed": 7}], "differences": []}
        """.write(toFile: dir + "/m.json", atomically: true, encoding: .utf8)
        let cut = try fergc(["train", "Models/tiny.graph", "--out", dir + "/runs/a", "--epochs", "2", "--batch", "16", "--seed", "7", "--max-steps", "3"])
        XCTAssertEqual(cut.status, 0, cut.stderr)
        let r = try fergc(["reproduce", "--manifest", dir + "/m.json", "--out", dir + "/out", "--runs", dir + "/runs", "--plans", dir + "/plans", "--epochs", "2", "--batch", "16"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("row a: resuming Models/tiny.graph for 2 epochs"), r.stdout)
        XCTAssertTrue(r.stdout.contains("resuming at epoch 1, batch 4"), r.stdout)
        let readme = try String(contentsOfFile: dir + "/out/README.md", encoding: .utf8)
        XCTAssertTrue(readme.split(separator: "\n").first { $0.hasPrefix("| a |") }?.contains("| 2 |") ?? false, readme)
    }
}
