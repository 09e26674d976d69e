// fergc data summary: the class-by-split table of a FER2013 file (the paper's Figure 2) and a
// grid image of its first faces (Figure 3).

import Foundation
import GraphIR
import Training

enum DataCommand {
    static let spec = CommandSpec(
        name: "data",
        usage: "data summary [F] [--grid OUT.png] [--skip-bad-rows]\n       fergc data preprocess [F] [--face K] [--out OUT.png]",
        summary: "Summarize a FER2013 CSV: faces per class and split, and a grid of the first 128 faces.",
        options: [
            OptionSpec(name: "grid", kind: .value("OUT.png"), help: "Where to write the grid of the first 128 faces (default: fer2013-grid.png)."),
            OptionSpec(name: "skip-bad-rows", kind: .flag, help: "Skip malformed rows (counted and reported) instead of stopping."),
            OptionSpec(name: "json", kind: .flag, help: "Print the table as JSON."),
            OptionSpec(name: "face", kind: .value("K"), help: "preprocess: which training face (0-based, default 0)."),
            OptionSpec(name: "out", kind: .value("OUT.png"), help: "preprocess: where to write the picture (default: preprocess.png)."),
        ],
        details: """
            With no file, reads the embedded sample (Data/fer2013-sample.csv.gz).
            'data preprocess' draws one training face through every Figure 12 technique (the
            preprocessing ops of docs/graph-language.md): as intended on top, truncated toward zero
            (as the paper's code computed it) below, each on the same gray scale.
            """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        if a.positional.first == "preprocess" { return try preprocessMain(a) }
        guard a.positional.first == "summary" else {
            throw UsageError(message: a.positional.isEmpty ? "missing the subcommand: fergc data summary [F]" : "unknown data subcommand '\(a.positional[0])' (expected 'summary' or 'preprocess')", command: spec.name)
        }
        guard a.positional.count <= 2 else { throw UsageError(message: "expected at most one data file", command: spec.name) }
        let path = a.positional.count == 2 ? a.positional[1] : repoPath("Data/fer2013-sample.csv.gz")
        let data: FERData
        do { data = try loadFER2013(path: path, options: LoadOptions(skipBadRows: a.flag("skip-bad-rows"))) } catch { throw CLIError("\(error)") }
        let splits = Split.allCases
        // A header and no rows is not a data set (e.g. a file whose line endings were not seen).
        guard splits.contains(where: { data[$0].count > 0 }) || data.skippedRows > 0 else {
            throw CLIError("\(path): no faces (a header and no data rows)")
        }
        var counts = [[Int]](repeating: [Int](repeating: 0, count: splits.count), count: 7)
        for (j, s) in splits.enumerated() {
            for l in data[s].labels { counts[Int(l)][j] += 1 }
        }
        if a.flag("json") {
            var table: [String: Any] = [:]
            for (j, s) in splits.enumerated() {
                table[s.rawValue] = Dictionary(uniqueKeysWithValues: Emotion.allCases.map { ($0.name, counts[$0.rawValue][j]) })
            }
            Console.out(try jsonText(["file": path, "counts": table, "skipped_rows": data.skippedRows]))
        } else {
            var s = "\(path)\n"
            s += "emotion".padding(toLength: 10, withPad: " ", startingAt: 0) + splits.map { $0.rawValue.leftPadded(12) }.joined() + "total".leftPadded(10) + "\n"
            for e in Emotion.allCases {
                let row = counts[e.rawValue]
                s += e.name.padding(toLength: 10, withPad: " ", startingAt: 0) + row.map { String($0).leftPadded(12) }.joined() + String(row.reduce(0, +)).leftPadded(10) + "\n"
            }
            let totals = (0..<splits.count).map { j in counts.reduce(0) { $0 + $1[j] } }
            s += "Total".padding(toLength: 10, withPad: " ", startingAt: 0) + totals.map { String($0).leftPadded(12) }.joined() + String(totals.reduce(0, +)).leftPadded(10) + "\n"
            if data.skippedRows > 0 { s += "skipped \(data.skippedRows) malformed rows\n" }
            Console.out(s)
        }
        // The first faces of the file in reading order: training rows come first in Kaggle's file.
        var faces = FaceSet()
        for sp in splits where faces.count < 128 {
            let set = data[sp]
            for i in 0..<min(set.count, 128 - faces.count) {
                faces.append(label: Int(set.labels[i]), pixels: Array(set.pixels[(i * 2304)..<((i + 1) * 2304)]))
            }
        }
        let grid = a.value("grid") ?? "fer2013-grid.png"
        try writeGridPNG(faces, columns: 16, path: grid)
        Console.err("wrote the first \(faces.count) faces to \(grid)\n")
    }

    /// A PNG with the faces in a grid, 2 white pixels apart.
    static func writeGridPNG(_ faces: FaceSet, columns: Int, path: String) throws {
        let side = 48, gap = 2
        let rows = (faces.count + columns - 1) / columns
        let width = columns * (side + gap) - gap, height = max(rows, 1) * (side + gap) - gap
        var pixels = [UInt8](repeating: 255, count: width * height)
        for k in 0..<faces.count {
            let ox = (k % columns) * (side + gap), oy = (k / columns) * (side + gap)
            for r in 0..<side {
                for c in 0..<side { pixels[(oy + r) * width + ox + c] = faces.pixels[k * 2304 + r * side + c] }
            }
        }
        let data = Data(encodePNG(pixels, width: width, height: height, color: .gray))
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch { throw CLIError("\(path): \(error.localizedDescription)") }
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
