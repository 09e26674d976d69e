// Reports of a run: training curves (loss and accuracy, training and validation) and a
// confusion matrix, each as SVG (plain text) and PNG (drawn on a Canvas, encoded with zlib), and
// a markdown summary. The two renderers share the geometry in LineChartLayout and ConfusionLayout.

import Foundation
import Runtime

/// A named series of (x, y) points drawn in a CSS colour ("#rrggbb").
public typealias ChartSeries = (name: String, color: String, points: [(Double, Double)])

/// A dashed vertical line at `x` with a label near the top of the plot: where something changes
/// along the x axis (a run's finish, for instance). A marker outside the data's x range, or not
/// finite, is not drawn.
public typealias ChartMarker = (x: Double, label: String)

/// The geometry of a line chart: margins, data ranges, ticks and the legend. Points with NaN or
/// infinite coordinates are ignored (for the ranges and in the drawing).
struct LineChartLayout {
    static let left = 60.0, right = 20.0, top = 36.0, bottom = 46.0
    let width: Int, height: Int
    let xMin: Double, xMax: Double, yMin: Double, yMax: Double
    var plotWidth: Double { Double(width) - Self.left - Self.right }
    var plotHeight: Double { Double(height) - Self.top - Self.bottom }

    init(width: Int, height: Int, series: [ChartSeries]) {
        self.width = width
        self.height = height
        let all = series.flatMap { Self.finite($0.points) }
        let x0 = all.map(\.0).min() ?? 0
        xMin = x0
        xMax = max(all.map(\.0).max() ?? 1, x0 + 1)
        var y0 = all.map(\.1).min() ?? 0, y1 = all.map(\.1).max() ?? 1
        if y1 - y0 < 1e-9 { y0 -= 0.5; y1 += 0.5 }
        let pad = (y1 - y0) * 0.05
        yMin = y0 - pad
        yMax = y1 + pad
    }

    /// The points a chart can place: finite, and small enough that ranges and paddings computed
    /// from them stay finite (a history value of 1e308 is skipped, not turned into inf).
    static func finite(_ points: [(Double, Double)]) -> [(Double, Double)] {
        points.filter { $0.0.isFinite && $0.1.isFinite && $0.0.magnitude <= 1e12 && $0.1.magnitude <= 1e100 }
    }

    func px(_ x: Double) -> Double { Self.left + (x - xMin) / (xMax - xMin) * plotWidth }
    func py(_ y: Double) -> Double { Self.top + (1 - (y - yMin) / (yMax - yMin)) * plotHeight }

    /// Five horizontal grid lines from yMin to yMax, with their labels.
    var yTicks: [(y: Double, label: String)] {
        (0...4).map { k in
            let v = yMin + (yMax - yMin) * Double(k) / 4
            return (py(v), String(format: "%.3g", v))
        }
    }

    /// Up to 11 epoch labels along the x axis, a whole number of epochs apart (so they line up
    /// with the points).
    var xTicks: [(x: Double, label: String)] {
        let step = max(((xMax - xMin) / 10).rounded(.up), 1)
        let n = Int(((xMax - xMin) / step + 1e-9).rounded(.down))
        return (0...n).map { k in
            let v = xMin + Double(k) * step
            return (px(v), String(format: "%.0f", v))
        }
    }

    /// Baselines of the title, the x tick labels and the x-axis label.
    var titleBaseline: Double { 20 }
    var xTickBaseline: Double { Self.top + plotHeight + 16 }
    var xLabelBaseline: Double { Double(height - 8) }
    /// The top of legend entry `i`'s colour swatch (12 x 3) at x = left + 10; its text is at
    /// x = left + 28 with the baseline 5 lower.
    func legendTop(_ i: Int) -> Double { Self.top + 10 + Double(i) * 16 }

    /// The markers inside the x range, in plot coordinates, with where their labels go: left of
    /// the line when the label fits there, right of it otherwise. The label's baseline is 14
    /// below the plot's top; the dashes are 4 on, 3 off from the top down.
    func placed(_ markers: [ChartMarker]) -> [(x: Double, label: String, labelX: Double, anchor: TextAnchor)] {
        markers.filter { $0.x.isFinite && $0.x >= xMin && $0.x <= xMax }.map { m in
            let x = px(m.x), fitsLeft = x - Self.left >= Double(Canvas.textWidth(m.label)) + 8
            return (x, m.label, fitsLeft ? x - 4 : x + 4, fitsLeft ? .end : .start)
        }
    }
    var markerBaseline: Double { Self.top + 14 }
    var dashes: [(y: Double, length: Double)] {
        stride(from: 0.0, to: plotHeight, by: 7).map { (Self.top + $0, min(4, plotHeight - $0)) }
    }
}

/// A line chart of several series over epochs.
public func lineChartSVG(title: String, yLabel: String, series: [ChartSeries], markers: [ChartMarker] = [], width: Int = 520, height: Int = 320) -> String {
    let l = LineChartLayout(width: width, height: height, series: series)
    let left = LineChartLayout.left, top = LineChartLayout.top, w = l.plotWidth, h = l.plotHeight
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    s += "<text x=\"\(Int(left))\" y=\"\(Int(l.titleBaseline))\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
    for t in l.yTicks {
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, t.y, left + w, t.y)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 6, t.y + 4, t.label)
    }
    for t in l.xTicks {
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", t.x, l.xTickBaseline, t.label)
    }
    s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">epoch</text>\n", left + w / 2, l.xLabelBaseline)
    s += String(format: "<text transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\">%@</text>\n", top + h / 2, escape(yLabel))
    s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", left, top, w, h)
    for m in l.placed(markers) {
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n", m.x, top, m.x, top + h)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%@\" fill=\"#555\">%@</text>\n", m.labelX, l.markerBaseline,
                    m.anchor == .end ? "end" : "start", escape(m.label))
    }
    for (i, sr) in series.enumerated() where !sr.points.isEmpty {
        let path = LineChartLayout.finite(sr.points).map { String(format: "%.1f,%.1f", l.px($0.0), l.py($0.1)) }.joined(separator: " ")
        s += "<polyline fill=\"none\" stroke=\"\(sr.color)\" stroke-width=\"2\" points=\"\(path)\"/>\n"
        s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"3\" fill=\"%@\"/>", left + 10, l.legendTop(i), sr.color)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>\n", left + 28, l.legendTop(i) + 5, escape(sr.name))
    }
    return s + "</svg>\n"
}

/// The same chart as `lineChartSVG`, as PNG bytes. The y-axis label is written horizontally
/// above the axis (the bitmap font is not rotated).
public func lineChartPNG(title: String, yLabel: String, series: [ChartSeries], markers: [ChartMarker] = [], width: Int = 520, height: Int = 320) -> [UInt8] {
    lineChartCanvas(title: title, yLabel: yLabel, series: series, markers: markers, width: width, height: height).png()
}

func lineChartCanvas(title: String, yLabel: String, series: [ChartSeries], markers: [ChartMarker] = [], width: Int, height: Int) -> Canvas {
    let l = LineChartLayout(width: width, height: height, series: series)
    let left = Int(LineChartLayout.left), top = Int(LineChartLayout.top)
    let w = Int(l.plotWidth.rounded()), h = Int(l.plotHeight.rounded())
    let ink = RGB(0x22, 0x22, 0x22)
    var c = Canvas(width: width, height: height)
    c.text(title, x: Double(left), y: l.titleBaseline, color: .black, scale: 2)
    c.text(yLabel, x: Double(left) - 6, y: Double(top) - 10, color: ink, anchor: .end)
    for t in l.yTicks {
        c.fillRect(x: left, y: Int(t.y.rounded(.down)), width: w, height: 1, color: RGB(0xDD, 0xDD, 0xDD))
        c.text(t.label, x: Double(left) - 6, y: t.y + 4, color: ink, anchor: .end)
    }
    for t in l.xTicks {
        c.fillRect(x: Int(t.x.rounded(.down)), y: top + h, width: 1, height: 4, color: RGB(0x33, 0x33, 0x33))
        c.text(t.label, x: t.x, y: l.xTickBaseline, color: ink, anchor: .middle)
    }
    c.text("epoch", x: Double(left) + l.plotWidth / 2, y: l.xLabelBaseline, color: ink, anchor: .middle)
    c.strokeRect(x: left, y: top, width: w + 1, height: h + 1, color: RGB(0x33, 0x33, 0x33))
    for m in l.placed(markers) {
        // Under the series: the curves stay whole where they cross it.
        for d in l.dashes {
            c.fillRect(x: Int(m.x.rounded(.down)), y: Int(d.y.rounded(.down)), width: 1, height: Int(d.length.rounded()), color: RGB(0x88, 0x88, 0x88))
        }
        c.text(m.label, x: m.labelX, y: l.markerBaseline, color: RGB(0x55, 0x55, 0x55), anchor: m.anchor)
    }
    let colors = series.map { RGB(css: $0.color) ?? .black }
    for (i, sr) in series.enumerated() {
        c.polyline(LineChartLayout.finite(sr.points).map { (l.px($0.0), l.py($0.1)) }, color: colors[i], width: 2)
    }
    for (i, sr) in series.enumerated() where !sr.points.isEmpty {
        let y = l.legendTop(i)
        c.fillRect(x: left + 10, y: Int(y), width: 12, height: 3, color: colors[i])
        c.text(sr.name, x: Double(left + 28), y: y + 5, color: ink)
    }
    return c
}

/// The geometry of a confusion matrix: n x n square cells below the title and column names,
/// right of the row names.
struct ConfusionLayout {
    static let cell = 64.0, left = 90.0, top = 60.0
    let n: Int
    var width: Int { Int(Self.left + Self.cell * Double(n) + 20) }
    var height: Int { Int(Self.top + Self.cell * Double(n) + 50) }
    func cellX(_ j: Int) -> Double { Self.left + Self.cell * Double(j) }
    func cellY(_ i: Int) -> Double { Self.top + Self.cell * Double(i) }
    /// Baselines of a cell's count and share, and of the "predicted" caption.
    func countBaseline(_ i: Int) -> Double { Self.top + Self.cell * (Double(i) + 0.45) }
    func shareBaseline(_ i: Int) -> Double { Self.top + Self.cell * (Double(i) + 0.75) }
    var captionX: Double { Self.left + Self.cell * Double(n) / 2 }
    /// A cell of row share v is filled rgb(shade, shade, 255); above 0.6 its text is white.
    static func shade(_ v: Double) -> Int { Int(255 - min(max(v, 0), 1) * 200) }
    static func darkCell(_ v: Double) -> Bool { v > 0.6 }
    static func name(_ names: [String], _ k: Int) -> String { k < names.count ? names[k] : String(k) }
}

/// A confusion matrix as a heat map: rows are true classes, cells show counts and row shares.
public func confusionSVG(_ c: Confusion, names: [String], title: String) -> String {
    let l = ConfusionLayout(n: c.classes), cell = ConfusionLayout.cell, n = c.classes
    let norm = c.normalized
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(l.width)\" height=\"\(l.height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    s += "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
    s += String(format: "<text x=\"%.1f\" y=\"40\" text-anchor=\"middle\">predicted</text>\n", l.captionX)
    for j in 0..<n {
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", l.cellX(j) + cell / 2, ConfusionLayout.top - 6, escape(ConfusionLayout.name(names, j)))
    }
    for i in 0..<n {
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", ConfusionLayout.left - 6, l.cellY(i) + cell * 0.55, escape(ConfusionLayout.name(names, i)))
        for j in 0..<n {
            let v = norm[i][j], shade = ConfusionLayout.shade(v), dark = ConfusionLayout.darkCell(v)
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,255)\" stroke=\"white\"/>", l.cellX(j), l.cellY(i), cell, cell, shade, shade)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"%@\">%d</text>", l.cellX(j) + cell / 2, l.countBaseline(i), dark ? "white" : "black", c.counts[i][j])
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\" fill=\"%@\">%.2f</text>\n", l.cellX(j) + cell / 2, l.shareBaseline(i), dark ? "white" : "#444", v)
        }
    }
    return s + "</svg>\n"
}

/// The same heat map as `confusionSVG`, as PNG bytes.
public func confusionPNG(_ c: Confusion, names: [String], title: String) -> [UInt8] {
    confusionCanvas(c, names: names, title: title).png()
}

func confusionCanvas(_ c: Confusion, names: [String], title: String) -> Canvas {
    let l = ConfusionLayout(n: c.classes), cell = Int(ConfusionLayout.cell), n = c.classes
    let norm = c.normalized, ink = RGB(0x22, 0x22, 0x22)
    var k = Canvas(width: l.width, height: l.height)
    k.text(title, x: 10, y: 20, color: .black, scale: 2)
    k.text("predicted", x: l.captionX, y: 40, color: ink, anchor: .middle)
    for j in 0..<n {
        k.text(ConfusionLayout.name(names, j), x: l.cellX(j) + Double(cell) / 2, y: ConfusionLayout.top - 6, color: ink, anchor: .middle)
    }
    for i in 0..<n {
        k.text(ConfusionLayout.name(names, i), x: ConfusionLayout.left - 6, y: l.cellY(i) + Double(cell) * 0.55 + 1, color: ink, anchor: .end)
        for j in 0..<n {
            let v = norm[i][j], shade = UInt8(ConfusionLayout.shade(v)), dark = ConfusionLayout.darkCell(v)
            // One white pixel between neighbouring cells, like the SVG's white stroke.
            k.fillRect(x: Int(l.cellX(j)) + 1, y: Int(l.cellY(i)) + 1, width: cell - 1, height: cell - 1, color: RGB(shade, shade, 255))
            let x = l.cellX(j) + Double(cell) / 2
            k.text(String(c.counts[i][j]), x: x, y: l.countBaseline(i), color: dark ? .white : .black, anchor: .middle)
            k.text(String(format: "%.2f", v), x: x, y: l.shareBaseline(i), color: dark ? .white : RGB(0x44, 0x44, 0x44), anchor: .middle)
        }
    }
    return k
}

func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}

/// Writes loss.svg, accuracy.svg, loss.png, accuracy.png and report.md for the run in `dir`
/// (from its last checkpoint's history); returns the paths written.
public func writeRunReport(dir: String, command: String? = nil) throws -> [String] {
    let c = try Checkpoint.read(dir + "/checkpoint-last.npz")
    let h = c.meta.history
    // The finish's epochs come after the main schedule's `epochs`: a dashed line where they start.
    let finishRan = c.meta.finishEpochs != nil && h.contains { $0.epoch > c.meta.epochs }
    let markers: [ChartMarker] = finishRan ? [(Double(c.meta.epochs) + 0.5, "finish")] : []
    let charts: [(name: String, title: String, series: [ChartSeries])] = [
        ("loss", "\(c.meta.model): loss", [
            ("training", "#1f77b4", h.map { (Double($0.epoch), $0.loss) }),
            ("validation", "#d62728", h.compactMap { r in r.valLoss.map { (Double(r.epoch), $0) } }),
        ]),
        ("accuracy", "\(c.meta.model): accuracy", [
            ("training", "#1f77b4", h.map { (Double($0.epoch), $0.accuracy) }),
            ("validation", "#d62728", h.compactMap { r in r.valAccuracy.map { (Double(r.epoch), $0) } }),
        ]),
    ]
    var written: [String] = []
    for chart in charts {
        let svg = dir + "/" + chart.name + ".svg", png = dir + "/" + chart.name + ".png"
        // fergc's atomic writer: errors name the file and the reason (not an NSError dump).
        try writeFileAtomically(Array(lineChartSVG(title: chart.title, yLabel: chart.name, series: chart.series, markers: markers).utf8), to: svg)
        try writeFileAtomically(lineChartPNG(title: chart.title, yLabel: chart.name, series: chart.series, markers: markers), to: png)
        written += [svg, png]
    }
    var md = "# Training report: \(c.meta.model)\n\n"
    if let command { md += "Command: `\(command)`\n\n" }
    // With a finish: "Epochs run: 96 of 96 (94 and a finish of 2)".
    let planned = c.meta.finishEpochs.map { "\(c.meta.epochs + $0) (\(c.meta.epochs) and a finish of \($0))" } ?? "\(c.meta.epochs)"
    md += "Epochs run: \(h.count) of \(planned); batch \(c.meta.batchSize); seed \(c.meta.seed); wall time \(String(format: "%.1f", c.meta.elapsedSeconds)) s.\n\n"
    if c.meta.modelIR.contains("\n  compute = bf16\n") {
        // What the block asks; what each process ran (bf16 only where it beats f32 on that CPU)
        // is the segments table's compute column.
        md += "Compute: `compute = bf16` (the products of the convolutions and dense layers in bf16 where the CPU runs them faster than f32: AMX, or AVX512_BF16 on Zen 4; f32 elsewhere, as on an Intel core without AMX, whose AVX512_BF16 runs at half the f32 rate). What each segment trained with: the segments table's compute column.\n\n"
    }
    if let line = c.meta.modelIR.split(separator: "\n").first(where: { $0.hasPrefix("  finish = ") }) {
        let epochs = c.meta.finishEpochs.map { $0 == 1 ? "epoch \(c.meta.epochs + 1)" : "epochs \(c.meta.epochs + 1)-\(c.meta.epochs + $0)" } ?? "the last epochs"
        md += "Finish: `\(line.dropFirst(11))` (\(epochs), after the main schedule, with their own rate, schedule and augmentation\(finishRan ? "; right of the dashed line in the charts" : "")).\n\n"
    }
    if let t = c.meta.teacher {
        let weight = c.meta.modelIR.split(separator: "\n").first { $0.hasPrefix("  distill = ") }.map { $0.dropFirst(12) } ?? "?"
        md += "Distilled from: `\(t.source)` (its probabilities on the training faces, hash \(t.hash), weight \(weight) in the targets; the run directory's \(TeacherProbabilities.fileName)).\n\n"
    }
    if let splits = c.meta.data?.trainSplits {
        md += "Trained on: \(splits.joined(separator: " + "))\(splits.contains("PublicTest") ? " (no validation split: a retraining whose schedule was fixed in advance; the last checkpoint is the result)" : "").\n\n"
    }
    if let best = c.meta.bestValAccuracy { md += String(format: "Best validation accuracy: **%.2f%%**.\n\n", best * 100) }
    if let start = c.meta.modelIR.range(of: "\ntrain {\n") {
        // The recipe the run trained with, as its checkpoint recorded it (with any --set applied).
        let block = c.meta.modelIR[c.meta.modelIR.index(after: start.lowerBound)...].trimmingCharacters(in: .newlines)
        md += "Recipe (the train block this run recorded; the epochs, seed and batch above are the ones that ran):\n\n```\n\(block)\n```\n\n"
    }
    do {
        let segments = try runSegments(dir: dir, finalClock: c.meta.elapsedSeconds)
        if let start = segments.first?.initialWeights { md += "Started from: \(start); the other tensors initialized as usual.\n\n" }
        md += segmentsMarkdown(segments, finalClock: c.meta.elapsedSeconds)
    } catch {
        md += "Segments: not listed (\(error)).\n\n"
    }
    md += "![loss](loss.svg) ![accuracy](accuracy.svg)\n\n"
    md += "PNG versions: [loss.png](loss.png), [accuracy.png](accuracy.png).\n\n"
    md += "| epoch | loss | accuracy | val loss | val accuracy | lr | seconds | img/s |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for r in h {
        md += String(format: "| %d | %.4f | %.4f | %@ | %@ | %.3g | %.1f | %.0f |\n", r.epoch, r.loss, r.accuracy,
                     r.valLoss.map { String(format: "%.4f", $0) } ?? "-", r.valAccuracy.map { String(format: "%.4f", $0) } ?? "-",
                     r.learningRate, r.seconds, r.imagesPerSecond)
    }
    let path = dir + "/report.md"
    try writeFileAtomically(Array(md.utf8), to: path)
    written.append(path)
    return written
}
