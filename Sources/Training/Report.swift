// Reports of a run: training curves (loss and accuracy, training and validation) as SVG, a
// confusion matrix as SVG, and a markdown summary. Plain text generation, no dependencies.

import Foundation

/// A line chart of several series over epochs.
public func lineChartSVG(title: String, yLabel: String, series: [(name: String, color: String, points: [(Double, Double)])],
                         width: Int = 520, height: Int = 320) -> String {
    let left = 60.0, right = 20.0, top = 36.0, bottom = 46.0
    let all = series.flatMap(\.points)
    let xMin = all.map(\.0).min() ?? 0, xMax = max(all.map(\.0).max() ?? 1, xMin + 1)
    var yMin = all.map(\.1).min() ?? 0, yMax = all.map(\.1).max() ?? 1
    if yMax - yMin < 1e-9 { yMin -= 0.5; yMax += 0.5 }
    let pad = (yMax - yMin) * 0.05
    yMin -= pad; yMax += pad
    let w = Double(width) - left - right, h = Double(height) - top - bottom
    func px(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * w }
    func py(_ y: Double) -> Double { top + (1 - (y - yMin) / (yMax - yMin)) * h }
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    s += "<text x=\"\(Int(left))\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
    for k in 0...4 {
        let y = yMin + (yMax - yMin) * Double(k) / 4
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, py(y), left + w, py(y))
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", left - 6, py(y) + 4, y)
    }
    let ticks = min(10, Int(xMax - xMin))
    for k in 0...max(ticks, 1) {
        let x = xMin + (xMax - xMin) * Double(k) / Double(max(ticks, 1))
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", px(x), top + h + 16, x)
    }
    s += String(format: "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n", left + w / 2, height - 8)
    s += String(format: "<text transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\">%@</text>\n", top + h / 2, escape(yLabel))
    s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", left, top, w, h)
    for (i, sr) in series.enumerated() where !sr.points.isEmpty {
        let path = sr.points.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
        s += "<polyline fill=\"none\" stroke=\"\(sr.color)\" stroke-width=\"2\" points=\"\(path)\"/>\n"
        s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"3\" fill=\"%@\"/>", left + 10, top + 10 + Double(i) * 16, sr.color)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>\n", left + 28, top + 15 + Double(i) * 16, escape(sr.name))
    }
    return s + "</svg>\n"
}

/// A confusion matrix as a heat map: rows are true classes, cells show counts and row shares.
public func confusionSVG(_ c: Confusion, names: [String], title: String) -> String {
    let cell = 64.0, left = 90.0, top = 60.0
    let n = c.classes
    let width = Int(left + cell * Double(n) + 20), height = Int(top + cell * Double(n) + 50)
    let norm = c.normalized
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    s += "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
    s += String(format: "<text x=\"%.1f\" y=\"40\" text-anchor=\"middle\">predicted</text>\n", left + cell * Double(n) / 2)
    for j in 0..<n {
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", left + cell * (Double(j) + 0.5), top - 6, escape(names[j]))
    }
    for i in 0..<n {
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 6, top + cell * (Double(i) + 0.55), escape(names[i]))
        for j in 0..<n {
            let v = norm[i][j]
            let shade = Int(255 - v * 200)
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,255)\" stroke=\"white\"/>", left + cell * Double(j), top + cell * Double(i), cell, cell, shade, shade)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"%@\">%d</text>", left + cell * (Double(j) + 0.5), top + cell * (Double(i) + 0.45), v > 0.6 ? "white" : "black", c.counts[i][j])
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\" fill=\"%@\">%.2f</text>\n", left + cell * (Double(j) + 0.5), top + cell * (Double(i) + 0.75), v > 0.6 ? "white" : "#444", v)
        }
    }
    return s + "</svg>\n"
}

func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}

/// Writes curves.svg and report.md for the run in `dir` (from its last checkpoint's history).
public func writeRunReport(dir: String, command: String? = nil) throws -> [String] {
    let c = try Checkpoint.read(dir + "/checkpoint-last.npz")
    let h = c.meta.history
    let loss = lineChartSVG(title: "\(c.meta.model): loss", yLabel: "loss", series: [
        ("training", "#1f77b4", h.map { (Double($0.epoch), $0.loss) }),
        ("validation", "#d62728", h.compactMap { r in r.valLoss.map { (Double(r.epoch), $0) } }),
    ])
    let accuracy = lineChartSVG(title: "\(c.meta.model): accuracy", yLabel: "accuracy", series: [
        ("training", "#1f77b4", h.map { (Double($0.epoch), $0.accuracy) }),
        ("validation", "#d62728", h.compactMap { r in r.valAccuracy.map { (Double(r.epoch), $0) } }),
    ])
    var written: [String] = []
    for (name, text) in [("loss.svg", loss), ("accuracy.svg", accuracy)] {
        let path = dir + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        written.append(path)
    }
    var md = "# Training report: \(c.meta.model)\n\n"
    if let command { md += "Command: `\(command)`\n\n" }
    md += "Epochs run: \(h.count) of \(c.meta.epochs); batch \(c.meta.batchSize); seed \(c.meta.seed); wall time \(String(format: "%.1f", c.meta.elapsedSeconds)) s.\n\n"
    if let best = c.meta.bestValAccuracy { md += String(format: "Best validation accuracy: **%.2f%%**.\n\n", best * 100) }
    md += "![loss](loss.svg) ![accuracy](accuracy.svg)\n\n"
    md += "| epoch | loss | accuracy | val loss | val accuracy | lr | seconds | img/s |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for r in h {
        md += String(format: "| %d | %.4f | %.4f | %@ | %@ | %.3g | %.1f | %.0f |\n", r.epoch, r.loss, r.accuracy,
                     r.valLoss.map { String(format: "%.4f", $0) } ?? "-", r.valAccuracy.map { String(format: "%.4f", $0) } ?? "-",
                     r.learningRate, r.seconds, r.imagesPerSecond)
    }
    let path = dir + "/report.md"
    try md.write(toFile: path, atomically: true, encoding: .utf8)
    written.append(path)
    return written
}
