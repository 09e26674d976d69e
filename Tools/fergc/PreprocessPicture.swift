// fergc data preprocess: one face through every Figure 12 technique, as a PNG for the study's
// report. Top row: each technique as intended; bottom row: the same truncated toward zero, as
// the paper's code computed it. The runtime's kernels compute each image, so the picture shows
// exactly what the study's models receive.

import Foundation
import Runtime
import Training

enum PreprocessPicture {
    /// A technique, its label, and the value range shown from black to white (the same range
    /// for both rows, so the truncated row shows what truncation leaves).
    static let columns: [(label: String, technique: PreprocessTechnique?, range: ClosedRange<Double>)] = [
        ("original", nil, 0...255),
        ("equalize", .equalizeLocal(radius: 30), 0...255),
        ("CLAHE", .clahe(clip: 0.99), 0...1),
        ("normalize", .normalizeMinmax, 0...1),
        ("Sobel", .sobel, 0...1),
        ("Scharr", .scharr, 0...1),
        ("Prewitt", .prewitt, 0...1),
        ("Roberts", .roberts, 0...1),
        ("Yen", .thresholdYen, 0...1),
        ("isodata", .thresholdIsodata, 0...1),
        ("mean", .thresholdMean, 0...1),
        ("std", .standardize, -3...3),
    ]

    /// The picture of one 48x48 face (2304 pixels), enlarged `zoom` times.
    static func render(face: [UInt8], caption: String, zoom: Int = 3) -> Canvas {
        let side = 48 * zoom, gap = 6, labelHeight = 14, left = 78, top = 22
        let width = left + columns.count * (side + gap), height = top + 2 * (side + labelHeight + gap) + 4
        var canvas = Canvas(width: width, height: height)
        canvas.text(caption, x: 4, y: 12, color: RGB(0, 0, 0))
        let x = face.map(Double.init)
        for (row, rowLabel) in ["intended", "as paper"].enumerated() {
            let oy = top + row * (side + labelHeight + gap)
            canvas.text(rowLabel, x: 4, y: Double(oy + side / 2 + 4), color: RGB(0, 0, 0))
            for (k, column) in columns.enumerated() {
                var y = x
                if let t = column.technique { preprocessPlane(t, x, &y, height: 48, width: 48) }
                if row == 1 { y = y.map { $0.rounded(.towardZero) } }
                let ox = left + k * (side + gap)
                let lo = column.range.lowerBound, span = column.range.upperBound - lo
                for r in 0..<side {
                    for c in 0..<side {
                        let v = (y[(r / zoom) * 48 + c / zoom] - lo) / span
                        let g = UInt8((min(max(v, 0), 1) * 255).rounded())
                        canvas.fillRect(x: ox + c, y: oy + r, width: 1, height: 1, color: RGB(g, g, g))
                    }
                }
                canvas.text(column.label, x: Double(ox + side / 2), y: Double(oy + side + 12), color: RGB(0, 0, 0), anchor: .middle)
            }
        }
        return canvas
    }
}

extension DataCommand {
    /// fergc data preprocess [F] [--face K] [--out OUT.png]
    static func preprocessMain(_ a: ParsedArguments) throws {
        guard a.positional.count <= 2 else { throw UsageError(message: "expected at most one data file", command: spec.name) }
        let path = a.positional.count == 2 ? a.positional[1] : repoPath("Data/fer2013-sample.csv.gz")
        let index = try a.int("face", spec.name, range: 0...Int.max) ?? 0
        let data: FERData
        do { data = try loadFER2013(path: path, options: LoadOptions(skipBadRows: a.flag("skip-bad-rows"))) } catch { throw CLIError("\(error)") }
        let faces = data[.training]
        guard index < faces.count else {
            throw CLIError("--face \(index): \(path) has \(faces.count) training faces (0...\(max(faces.count - 1, 0)))")
        }
        let face = Array(faces.pixels[(index * 2304)..<((index + 1) * 2304)])
        let emotion = Emotion(rawValue: Int(faces.labels[index]))?.name ?? "class \(faces.labels[index])"
        let canvas = PreprocessPicture.render(face: face, caption: "training face \(index) (\(emotion)) through the Figure 12 techniques; bottom: truncated toward zero, as the paper's code computed it")
        let out = a.value("out") ?? "preprocess.png"
        do { try writeFileAtomically(canvas.png(), to: out) } catch { throw CLIError("\(out): \(error)") }
        Console.err("wrote \(out): \(canvas.width)x\(canvas.height)\n")
    }
}
