// `fergc reproduce` on the embedded sample with tiny models and one epoch: rows train (one
// from another's checkpoint), an adopted plan is evaluated, an ensemble is built from two rows,
// a row not asked for shows "not run", and a second run skips what is done. Study rows (the
// tiny model with a preprocessing op in front) get the study's table and bar chart; the
// truncated edge-filter row answers one class, and scores that class's share of the faces.

import Foundation
import Training
import XCTest

final class ReproduceTests: XCTestCase {
    func testReproduceWritesTheTable() throws {
        let dir = temporaryDirectory("reproduce")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let adopted = try fergc(["compile", "Models/tiny.graph", "--seed", "5", "-o", dir + "/adopted.plan"])
        XCTAssertEqual(adopted.status, 0, adopted.stderr)
        // The study's rows: the tiny model reading raw pixels through a preprocessing op.
        let tiny = try String(contentsOfFile: repoRoot.appendingPathComponent("Models/tiny.graph").path, encoding: .utf8)
        for (name, pre) in [("base", "pre = scale(x, factor=0.00392156862745098)"), ("sobel", "pre = sobel(x)"),
                            ("sobel_paper", "e = sobel(x)\npre = truncate(e)"), ("yen", "pre = threshold(x, method=yen)")] {
            let text = tiny.replacingOccurrences(of: "small = avgpool(x,", with: pre + "\nsmall = avgpool(pre,")
                .replacingOccurrences(of: "input_scale = 0.00392156862745098", with: "input_scale = 1")
            XCTAssertNotEqual(text, tiny)
            try text.write(toFile: dir + "/\(name).graph", atomically: true, encoding: .utf8)
        }
        try """
        {
          "title": "Tiny table",
          "rows": [
            {"name": "a", "paper_row": "Row A", "paper_accuracy": 50.0, "paper_size_mb": 1.5, "model": "Models/tiny.graph"},
            {"name": "b", "paper_row": "Row B (from A)", "paper_accuracy": 51.0, "model": "Models/tiny.graph", "init_from": "row:a", "seed": 2, "weights_dtype": "f16"},
            {"name": "adopted", "paper_row": "Adopted", "adopt": {"plan": "\(dir)/adopted.plan", "report": "docs/x.md", "epochs": 3, "wall_seconds": 125, "commands": ["fergc train something"]}},
            {"name": "ens", "paper_row": "Ensemble of A and B", "paper_accuracy": 52.0, "ensemble": ["a", "b"]},
            {"name": "never", "paper_row": "Never run", "paper_accuracy": 99.0, "model": "Models/tiny.graph"},
            {"name": "study/base", "model": "\(dir)/base.graph", "study": {"technique": "none", "variant": "baseline"}, "paper_accuracy": 56.9},
            {"name": "study/sobel", "model": "\(dir)/sobel.graph", "study": {"technique": "Sobel", "variant": "intended"}, "paper_accuracy": 24.49},
            {"name": "study/sobel_paper", "model": "\(dir)/sobel_paper.graph", "study": {"technique": "Sobel", "variant": "paper"}},
            {"name": "study/yen", "model": "\(dir)/yen.graph", "study": {"technique": "Yen threshold", "variant": "intended"}, "paper_accuracy": 51.41}
          ],
          "differences": ["Tiny models."],
          "study": {"title": "Tiny study", "chart": "fig12", "notes": ["Tiny note."]}
        }
        """.write(toFile: dir + "/m.json", atomically: true, encoding: .utf8)
        let args = ["reproduce", "--manifest", dir + "/m.json", "--out", dir + "/out", "--runs", dir + "/runs", "--plans", dir + "/plans", "--epochs", "1"]
        let r = try fergc(args + ["--rows", "a,b,adopted,ens,study/base,study/sobel,study/sobel_paper"])
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
        // The learning curves of the trained rows, as a chart beside the table.
        XCTAssertTrue(readme.contains("## Learning curves") && readme.contains("(curves.png)"), readme)
        let curvesPNG = try XCTUnwrap(FileManager.default.contents(atPath: dir + "/out/curves.png"))
        XCTAssertEqual(Array(curvesPNG.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        let curvesSVG = try String(contentsOfFile: dir + "/out/curves.svg", encoding: .utf8)
        XCTAssertTrue(curvesSVG.contains(">a<") && curvesSVG.contains(">b<"), "one series per trained row, named")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/ens-confusion-PublicTest.png"))
        XCTAssertTrue(readme.contains("fergc ensemble \(dir)/plans/a.plan \(dir)/plans/b.plan"), readme)
        XCTAssertTrue(readme.contains("- Tiny models."))
        XCTAssertFalse(table.contains { $0.hasPrefix("| study/") }, "study rows are not rows of the paper's table")
        try checkStudy(readme, dir: dir)
        // The accuracy in the table is the plan's: fergc eval agrees.
        let eval = try fergc(["eval", dir + "/plans/a.plan", "--split", "PublicTest", "--out", dir + "/eval"])
        XCTAssertTrue(eval.stdout.contains("accuracy " + a[3].replacingOccurrences(of: "*", with: "")), eval.stdout + " vs " + a[3])

        // Again: every finished row is skipped; a row whose result is gone is rebuilt from its
        // finished run without training again.
        try FileManager.default.removeItem(atPath: dir + "/out/rows/b.json")
        let again = try fergc(args + ["--rows", "a,b,ens,study/sobel_paper"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("row a: done"), again.stdout)
        XCTAssertTrue(again.stdout.contains("row study/sobel_paper: done"), again.stdout)
        XCTAssertTrue(again.stdout.contains("row ens: done"), again.stdout)
        XCTAssertFalse(again.stdout.contains("row b: training"), again.stdout)
        let readme2 = try String(contentsOfFile: dir + "/out/README.md", encoding: .utf8)
        XCTAssertTrue(readme2.split(separator: "\n").first { $0.hasPrefix("| b |") }!.contains(b[3]))

        // A row that needs another row first is "not run" and the command fails, naming it.
        let lone = try fergc(["reproduce", "--manifest", dir + "/m.json", "--out", dir + "/out2", "--runs", dir + "/runs2", "--epochs", "1", "--rows", "b"])
        XCTAssertNotEqual(lone.status, 0)
        XCTAssertTrue(lone.stderr.contains("needs row 'a' trained first"), lone.stderr)
    }

    /// The study's table (technique by technique), its chart files, and the truncated Sobel row
    /// against the share of the class it answers, counted from the sample's labels here.
    private func checkStudy(_ readme: String, dir: String) throws {
        guard let start = readme.range(of: "## Tiny study") else { return XCTFail("no study section: \(readme)") }
        let section = readme[start.upperBound...]
        XCTAssertTrue(section.contains("Budget: **2 epochs** for every row"), String(section.prefix(600)))
        XCTAssertTrue(section.contains("Rows that ran another budget (`--epochs`): `study/base` 1"), String(section.prefix(600)))
        func cells(_ technique: String) -> [String] {
            guard let line = section.split(separator: "\n").first(where: { $0.hasPrefix("| \(technique) |") }) else { return [] }
            return line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        // Columns: technique, rows, paper, as the paper computed it, as intended, minus baseline, most answered.
        let base = cells("none (baseline)"), sobel = cells("Sobel"), yen = cells("Yen threshold")
        XCTAssertEqual(sobel.count, 7, "\(section)")
        XCTAssertEqual(base[2], "56.9%")
        XCTAssertEqual(sobel[1], "`study/sobel`, `study/sobel_paper`")
        XCTAssertEqual(sobel[2], "24.49%")
        func value(_ cell: String) -> Double? { Double(cell.replacingOccurrences(of: "*", with: "").replacingOccurrences(of: "%", with: "")) }
        let asPaper = try XCTUnwrap(value(sobel[3]), sobel[3]), intended = try XCTUnwrap(value(sobel[4]), sobel[4])
        let baseline = try XCTUnwrap(value(base[4]), base[4])
        XCTAssertEqual(base[3], "= as intended")
        XCTAssertEqual(Double(sobel[5])!, intended - baseline, accuracy: 0.011)
        XCTAssertEqual([yen[3], yen[4], yen[6]], ["not run", "not run", "not run"])
        XCTAssertTrue(section.contains("- Tiny note."))
        XCTAssertTrue(section.contains("min for the 3 finished rows of 4 ("), String(section))

        // The truncated Sobel row sees all-zero faces: it answers one class for every face and so
        // scores that class's share of PublicTest, counted here from the data independently.
        let most = sobel[6]
        XCTAssertTrue(most.contains(" for 100% of faces"), most)
        let cls = String(most.prefix { $0 != " " })
        var counts: [String: Int] = [:]
        for label in try loadFER2013(path: samplePath, options: LoadOptions(splits: [.publicTest]))[.publicTest].labels { counts[Emotion.names[Int(label)], default: 0] += 1 }
        let share = Double(try XCTUnwrap(counts[cls], cls)) / Double(counts.values.reduce(0, +)) * 100
        XCTAssertEqual(asPaper, share, accuracy: 0.005, "a constant answer of \(cls) scores its share")
        XCTAssertTrue(most.hasSuffix(String(format: "(%@ is %.2f%% of them)", cls, share)), most)
        XCTAssertTrue(section.contains(String(format: "- `study/sobel_paper`: answers %@ for 100%% of the faces; accuracy %.2f%%, %@'s share %.2f%%: a constant answer.", cls, asPaper, cls, share)), String(section))
        let commonest = counts.max { $0.value < $1.value }!
        XCTAssertTrue(section.contains(String(format: "the commonest class is %@: %d faces, %.2f%%", commonest.key, commonest.value,
                                              Double(commonest.value) / Double(counts.values.reduce(0, +)) * 100)), String(section))

        // The chart beside the table: the SVG's bars carry the table's numbers, rows not run are
        // labelled (no bar), and the PNG is a picture of the same size.
        XCTAssertTrue(section.contains("![Tiny study](fig12.svg)"))
        let svg = try String(contentsOfFile: dir + "/out/fig12.svg", encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        for v in [asPaper, intended, baseline, 24.49, 56.9] { XCTAssertTrue(svg.contains(String(format: ">%.2f%%</text>", v)), "\(v) in \(svg)") }
        XCTAssertEqual(svg.components(separatedBy: ">not run</text>").count - 1, 2, "Yen's two fergc bars")
        XCTAssertTrue(svg.contains(">Yen threshold</text>") && svg.contains(">always \(commonest.key): "), svg)
        let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/out/fig12.png")))
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        func be32(_ o: Int) -> Int { png[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
        let svgSize = try XCTUnwrap(svg.range(of: #"width="(\d+)" height="(\d+)""#, options: .regularExpression).map { String(svg[$0]) })
        XCTAssertEqual(svgSize, "width=\"\(be32(16))\" height=\"\(be32(20))\"")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/study/sobel_paper-confusion-PublicTest.png"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/plans/study/sobel_paper.plan"))
    }

    /// The committed manifest: its study rows are the files of Models/study (one row each), and
    /// its table and chart, with nothing run, show every row as not run.
    func testTheStudyInTheCommittedManifest() throws {
        let dir = temporaryDirectory("reproduce-study")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: repoRoot.appendingPathComponent("Models/paper.json"))) as? [String: Any]
        let rows = try XCTUnwrap(json?["rows"] as? [[String: Any]])
        let study = rows.filter { $0["study"] != nil }
        let files = try FileManager.default.contentsOfDirectory(atPath: repoRoot.appendingPathComponent("Models/study").path).filter { $0.hasSuffix(".graph") }
        XCTAssertEqual(Set(study.compactMap { $0["model"] as? String }), Set(files.map { "Models/study/" + $0 }))
        XCTAssertEqual(Set(study.compactMap { $0["name"] as? String }), Set(files.map { "study/" + $0.dropLast(6) }))
        let r = try fergc(["reproduce", "--report-only", "--out", dir + "/out", "--runs", dir + "/runs"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let readme = try String(contentsOfFile: dir + "/out/README.md", encoding: .utf8)
        XCTAssertTrue(readme.contains("Budget: **5 epochs** for every row"), readme)
        let techniques = readme.split(separator: "\n").filter { $0.hasPrefix("| ") && $0.contains("`study/") }
        XCTAssertEqual(techniques.count, 12, "the baseline and 11 techniques")
        for line in techniques { XCTAssertEqual(line.components(separatedBy: "| not run |").count, 3, String(line)) }
        let svg = try String(contentsOfFile: dir + "/out/figure12.svg", encoding: .utf8)
        XCTAssertEqual(svg.components(separatedBy: ">not run</text>").count - 1, 24, "two fergc bars for each of 12 techniques")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/figure12.png"))
    }

    /// Manifest mistakes in the study are errors naming the row; `--rows` takes group names.
    func testStudyManifestErrors() throws {
        let dir = temporaryDirectory("reproduce-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases: [(rows: String, study: Bool, message: String)] = [
            (#"{"name": "study/../x", "model": "Models/tiny.graph"}"#, false, "row name 'study/../x' is not words"),
            (#"{"name": "s/a", "model": "Models/tiny.graph", "study": {"technique": "T", "variant": "wrong"}}"#, true, "study variant 'wrong' is not one of"),
            (#"{"name": "s/a", "model": "Models/tiny.graph", "study": {"technique": "T", "variant": "intended"}}, {"name": "s/b", "model": "Models/tiny.graph", "study": {"technique": "T", "variant": "intended"}}"#, true, "row 's/b': a second intended row of 'T'"),
            (#"{"name": "s/a", "model": "Models/tiny.graph", "study": {"technique": "T", "variant": "paper"}}"#, true, "technique 'T' has a paper row but no intended row"),
            (#"{"name": "s/a", "model": "Models/tiny.graph", "study": {"technique": "T", "variant": "intended"}}"#, false, "no \"study\" section"),
        ]
        for c in cases {
            let text = #"{"title": "t", "rows": ["# + c.rows + #"], "differences": []"# + (c.study ? #", "study": {"title": "s", "chart": "c"}}"# : "}")
            try text.write(toFile: dir + "/m.json", atomically: true, encoding: .utf8)
            let r = try fergc(["reproduce", "--manifest", dir + "/m.json", "--out", dir + "/out", "--report-only"])
            XCTAssertEqual(r.status, 1, c.message)
            XCTAssertTrue(r.stderr.contains(c.message), r.stderr)
        }
        // A group name selects the group's rows (here both stop at once: they need row z first).
        try #"""
        {"title": "t", "rows": [{"name": "z", "model": "Models/tiny.graph"}, {"name": "g/a", "model": "Models/tiny.graph", "init_from": "row:z"},
                                {"name": "g/b", "model": "Models/tiny.graph", "init_from": "row:z"}, {"name": "gx", "model": "Models/tiny.graph"}], "differences": []}
        """#.write(toFile: dir + "/m.json", atomically: true, encoding: .utf8)
        let group = try fergc(["reproduce", "--manifest", dir + "/m.json", "--out", dir + "/out", "--runs", dir + "/runs", "--rows", "g"])
        XCTAssertEqual(group.status, 1)
        XCTAssertTrue(group.stderr.contains("row g/a: not run: error: needs row 'z' trained first"), group.stderr)
        XCTAssertTrue(group.stderr.hasSuffix("error: 2 rows not run: g/a, g/b\n"), group.stderr)
        let r = try fergc(["reproduce", "--manifest", dir + "/m.json", "--out", dir + "/out", "--rows", "g/c"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("no row 'g/c'"), r.stderr)
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
