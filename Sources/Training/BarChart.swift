// A horizontal grouped bar chart of percentages (the Figure 12 study: per technique, the paper's
// accuracy and fergc's), as SVG (plain text) and PNG (drawn on a Canvas). A missing value is no
// bar and a text saying why (e.g. "not run"), never a bar of zero. The two renderers share the
// geometry in BarChartLayout.

import Foundation

/// One group of bars: its label, one value (a percentage) per series, and, where a value is
/// nil, the text written in its place.
public struct BarGroup: Sendable {
    public var label: String
    public var values: [Double?]
    public var missing: [String]

    public init(label: String, values: [Double?], missing: [String]) {
        self.label = label
        self.values = values
        self.missing = missing
    }
}

/// A vertical line across the bars at a value, with its label under the axis.
public struct BarReference: Sendable {
    public var value: Double
    public var label: String
    public init(value: Double, label: String) { (self.value, self.label) = (value, label) }
}

/// The geometry: the title, the legend under it, then the groups top to bottom (each series one
/// bar high), the percentage axis under them, and the reference's label under the axis.
struct BarChartLayout {
    static let left = 150.0, right = 70.0, top = 58.0, bar = 11.0, groupGap = 9.0
    let width: Int, groups: Int, series: Int
    /// The axis runs from 0 to maxValue (100, or more when a value exceeds it).
    let maxValue: Double

    init(width: Int, groups: [BarGroup], series: Int) {
        self.width = width
        self.groups = groups.count
        self.series = series
        let largest = groups.flatMap { $0.values.compactMap { $0 } }.filter { $0.isFinite }.max() ?? 0
        maxValue = max(100, (largest / 10).rounded(.up) * 10)
    }

    var groupHeight: Double { Self.bar * Double(series) + Self.groupGap }
    var plotWidth: Double { Double(width) - Self.left - Self.right }
    var plotHeight: Double { groupHeight * Double(groups) }
    var height: Int { Int(Self.top + plotHeight + 44) }
    func px(_ v: Double) -> Double { Self.left + min(max(v, 0), maxValue) / maxValue * plotWidth }
    func barTop(_ g: Int, _ k: Int) -> Double { Self.top + Double(g) * groupHeight + Self.groupGap / 2 + Double(k) * Self.bar }
    /// The baseline of text beside bar (g, k), and of group g's label (centred on its bars).
    func barBaseline(_ g: Int, _ k: Int) -> Double { barTop(g, k) + Self.bar - 2 }
    func groupBaseline(_ g: Int) -> Double { Self.top + (Double(g) + 0.5) * groupHeight + 4 }
    var ticks: [(x: Double, label: String)] {
        stride(from: 0.0, through: maxValue + 1e-9, by: 20).map { (px($0), String(format: "%.0f%%", $0)) }
    }
    var titleBaseline: Double { 20 }
    var legendBaseline: Double { 42 }
    var tickBaseline: Double { Self.top + plotHeight + 16 }
    var referenceBaseline: Double { Self.top + plotHeight + 34 }
    /// The x of legend entry i's swatch (10 x 10, its text 14 to the right), from the entries' widths.
    func legendX(_ names: [String]) -> [Double] {
        var x = Self.left, out: [Double] = []
        for n in names {
            out.append(x)
            x += 14 + Double(Canvas.textWidth(n)) + 24
        }
        return out
    }
    static func valueLabel(_ v: Double) -> String { String(format: "%.2f%%", v) }
}

/// The chart as SVG.
public func barChartSVG(title: String, series: [(name: String, color: String)], groups: [BarGroup],
                        reference: BarReference? = nil, width: Int = 760) -> String {
    let l = BarChartLayout(width: width, groups: groups, series: series.count)
    let left = BarChartLayout.left, top = BarChartLayout.top, bar = BarChartLayout.bar
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(l.height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    s += "<text x=\"10\" y=\"\(Int(l.titleBaseline))\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
    for (x, sr) in zip(l.legendX(series.map(\.name)), series) {
        s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%@\"/>", x, l.legendBaseline - 9, sr.color)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>\n", x + 14, l.legendBaseline, escape(sr.name))
    }
    for t in l.ticks {
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", t.x, top, t.x, top + l.plotHeight)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", t.x, l.tickBaseline, t.label)
    }
    for (g, group) in groups.enumerated() {
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 8, l.groupBaseline(g), escape(group.label))
        for (k, sr) in series.enumerated() {
            if let v = group.values.count > k ? group.values[k] : nil, v.isFinite {
                s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"/>", left, l.barTop(g, k), l.px(v) - left, bar - 1, sr.color)
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%@</text>\n", l.px(v) + 4, l.barBaseline(g, k), BarChartLayout.valueLabel(v))
            } else {
                // An empty box in the series' colour, then why there is no bar.
                let text = group.missing.count > k ? group.missing[k] : "no value"
                s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"none\" stroke=\"%@\"/>", left + 4.5, l.barTop(g, k) + 1.5, sr.color)
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#888\">%@</text>\n", left + 16, l.barBaseline(g, k), escape(text))
            }
        }
    }
    s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", left, top, left, top + l.plotHeight)
    if let r = reference, r.value.isFinite {
        let x = l.px(r.value)
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>\n", x, top, x, top + l.plotHeight)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#c00\">%@</text>\n", x, l.referenceBaseline, escape(r.label))
    }
    return s + "</svg>\n"
}

/// The same chart as `barChartSVG`, as PNG bytes.
public func barChartPNG(title: String, series: [(name: String, color: String)], groups: [BarGroup],
                        reference: BarReference? = nil, width: Int = 760) -> [UInt8] {
    let l = BarChartLayout(width: width, groups: groups, series: series.count)
    let left = Int(BarChartLayout.left), top = Int(BarChartLayout.top), bar = Int(BarChartLayout.bar)
    let plotBottom = top + Int(l.plotHeight.rounded())
    let ink = RGB(0x22, 0x22, 0x22), gray = RGB(0x88, 0x88, 0x88)
    let colors = series.map { RGB(css: $0.color) ?? .black }
    var c = Canvas(width: width, height: l.height)
    // The title at twice the font's size when it fits the width.
    c.text(title, x: 10, y: l.titleBaseline, color: .black, scale: Canvas.textWidth(title, scale: 2) <= width - 20 ? 2 : 1)
    for (i, x) in l.legendX(series.map(\.name)).enumerated() {
        c.fillRect(x: Int(x), y: Int(l.legendBaseline) - 9, width: 10, height: 10, color: colors[i])
        c.text(series[i].name, x: x + 14, y: l.legendBaseline, color: ink)
    }
    for t in l.ticks {
        c.fillRect(x: Int(t.x.rounded(.down)), y: top, width: 1, height: plotBottom - top, color: RGB(0xDD, 0xDD, 0xDD))
        c.text(t.label, x: t.x, y: l.tickBaseline, color: ink, anchor: .middle)
    }
    for (g, group) in groups.enumerated() {
        c.text(group.label, x: Double(left - 8), y: l.groupBaseline(g), color: ink, anchor: .end)
        for k in series.indices {
            let y = Int(l.barTop(g, k).rounded(.down))
            if let v = group.values.count > k ? group.values[k] : nil, v.isFinite {
                let w = Int((l.px(v) - Double(left)).rounded())
                c.fillRect(x: left, y: y, width: w, height: bar - 1, color: colors[k])
                c.text(BarChartLayout.valueLabel(v), x: l.px(v) + 4, y: l.barBaseline(g, k), color: ink)
            } else {
                c.strokeRect(x: left + 4, y: y + 1, width: 8, height: 8, color: colors[k])
                c.text(group.missing.count > k ? group.missing[k] : "no value", x: Double(left + 16), y: l.barBaseline(g, k), color: gray)
            }
        }
    }
    c.fillRect(x: left, y: top, width: 1, height: plotBottom - top, color: RGB(0x33, 0x33, 0x33))
    if let r = reference, r.value.isFinite {
        let x = Int(l.px(r.value).rounded(.down)), red = RGB(0xCC, 0, 0)
        for y in stride(from: top, to: plotBottom, by: 7) { c.fillRect(x: x, y: y, width: 1, height: min(4, plotBottom - y), color: red) }
        c.text(r.label, x: Double(x), y: l.referenceBaseline, color: red)
    }
    return c.png()
}
