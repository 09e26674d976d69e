// The raster canvas, its bitmap font, and the PNG charts (training curves, confusion matrix):
// PNG structure and CRCs, decoded pixels, clipping, non-finite values and empty inputs.

import CZlib
import Foundation
@testable import Training
import XCTest

/// A decoded 8-bit RGB PNG (as written by encodePNG: one IDAT, filter type 0 on every row).
private struct DecodedPNG {
    var width = 0, height = 0
    var pixels: [UInt8] = []
    var chunkTypes: [String] = []
    func rgb(_ x: Int, _ y: Int) -> RGB {
        let i = (y * width + x) * 3
        return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
    }
    /// Whether column x has `color` (give or take `tolerance` per channel) within 2 pixels of y:
    /// a 2-pixel line covers at least one pixel of each column fully.
    func column(_ x: Int, near y: Double, has color: RGB, tolerance: Int = 0) -> Bool {
        func close(_ c: RGB) -> Bool {
            abs(Int(c.r) - Int(color.r)) <= tolerance && abs(Int(c.g) - Int(color.g)) <= tolerance && abs(Int(c.b) - Int(color.b)) <= tolerance
        }
        return (Int(y) - 2...Int(y) + 2).contains { $0 >= 0 && $0 < height && close(rgb(x, $0)) }
    }
    func count(x: Range<Int>, y: Range<Int>, where test: (RGB) -> Bool) -> Int {
        y.reduce(0) { n, yy in n + x.filter { test(rgb($0, yy)) }.count }
    }
}

private func be32(_ b: [UInt8], _ at: Int) -> UInt32 {
    b[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) }
}

/// Checks the signature, chunk CRCs (zlib's crc32) and IHDR, inflates the IDAT and removes the
/// filter bytes; fails the test (and returns nil) on anything malformed.
private func decodePNG(_ png: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> DecodedPNG? {
    guard png.count > 8, Array(png[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else {
        XCTFail("no PNG signature", file: file, line: line)
        return nil
    }
    var d = DecodedPNG(), idat: [UInt8] = [], at = 8
    while at + 12 <= png.count {
        let length = Int(be32(png, at))
        guard at + 12 + length <= png.count else { XCTFail("truncated chunk", file: file, line: line); return nil }
        let typed = Array(png[(at + 4)..<(at + 8 + length)])
        let crc = typed.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
        let type = String(decoding: typed[0..<4], as: UTF8.self), data = Array(typed[4...])
        XCTAssertEqual(crc, be32(png, at + 8 + length), "CRC of \(type)", file: file, line: line)
        d.chunkTypes.append(type)
        if type == "IHDR" {
            d.width = Int(be32(data, 0))
            d.height = Int(be32(data, 4))
            XCTAssertEqual(Array(data[8...]), [8, 2, 0, 0, 0], "8-bit RGB, no interlace", file: file, line: line)
        } else if type == "IDAT" {
            idat += data
        }
        at += 12 + length
    }
    XCTAssertEqual(at, png.count, "bytes after the last chunk", file: file, line: line)
    XCTAssertEqual(d.chunkTypes.first, "IHDR", file: file, line: line)
    XCTAssertEqual(d.chunkTypes.last, "IEND", file: file, line: line)
    let rowBytes = d.width * 3 + 1
    var raw = [UInt8](repeating: 0, count: rowBytes * d.height)
    var rawCount = uLongf(raw.count)
    let status = raw.withUnsafeMutableBufferPointer { out in
        idat.withUnsafeBufferPointer { uncompress(out.baseAddress, &rawCount, $0.baseAddress, uLong(idat.count)) }
    }
    guard status == Z_OK, Int(rawCount) == raw.count else {
        XCTFail("IDAT does not inflate to \(raw.count) bytes (zlib status \(status))", file: file, line: line)
        return nil
    }
    for r in 0..<d.height {
        XCTAssertEqual(raw[r * rowBytes], 0, "filter type of row \(r)", file: file, line: line)
        d.pixels += raw[(r * rowBytes + 1)..<((r + 1) * rowBytes)]
    }
    return d
}

private func isDark(_ c: RGB) -> Bool { Int(c.r) + Int(c.g) + Int(c.b) < 3 * 100 }
private func isWhite(_ c: RGB) -> Bool { c == .white }

/// Writes PNGs for a look by eye when FERGC_PNG_DIR is set.
private func keep(_ png: [UInt8], _ name: String) {
    guard let dir = ProcessInfo.processInfo.environment["FERGC_PNG_DIR"] else { return }
    try? Data(png).write(to: URL(fileURLWithPath: dir).appendingPathComponent(name))
}

private let blue = "#1f77b4", red = "#d62728"

final class RasterTests: XCTestCase {
    func testPNGStructureAndCRCs() throws {
        var c = Canvas(width: 7, height: 5)
        c.fillRect(x: 2, y: 1, width: 3, height: 2, color: RGB(10, 20, 30))
        let d = try XCTUnwrap(decodePNG(c.png()))
        XCTAssertEqual(d.chunkTypes, ["IHDR", "IDAT", "IEND"])
        XCTAssertEqual([d.width, d.height], [7, 5])
        XCTAssertEqual(d.pixels, c.pixels)
        XCTAssertEqual(d.rgb(0, 0), .white)
        XCTAssertEqual(d.rgb(2, 1), RGB(10, 20, 30))
        XCTAssertEqual(d.rgb(4, 2), RGB(10, 20, 30))
        XCTAssertEqual(d.rgb(5, 2), .white)
        XCTAssertEqual(d.rgb(4, 3), .white)
    }

    func testCSSColours() {
        XCTAssertEqual(RGB(css: "#1f77b4"), RGB(0x1F, 0x77, 0xB4))
        XCTAssertEqual(RGB(css: "#ddd"), RGB(0xDD, 0xDD, 0xDD))
        XCTAssertEqual(RGB(css: "white"), .white)
        XCTAssertNil(RGB(css: "#12345"))
        XCTAssertNil(RGB(css: "teal"))
    }

    func testEveryPrintableGlyphIsDrawnExceptSpace() {
        XCTAssertEqual(Font.table.count, 95)
        XCTAssertEqual(Font.rows.count, 95 * Font.rowCount)
        XCTAssertTrue(Font.rows.allSatisfy { $0 < 0x20 }, "glyphs are 5 pixels wide")
        var seen: [ArraySlice<UInt8>: Character] = [:]
        for v in UInt8(32)...126 {
            let ch = Character(Unicode.Scalar(v))
            var c = Canvas(width: 12, height: 14)
            c.text(String(ch), x: 1, y: 9, color: .black)
            let ink = c.pixels.filter { $0 == 0 }.count / 3
            if ch == " " { XCTAssertEqual(ink, 0) } else { XCTAssertGreaterThan(ink, 1, "glyph '\(ch)' is empty") }
            let glyph = Font.glyph(Unicode.Scalar(v))
            if let other = seen[glyph] { XCTFail("'\(ch)' and '\(other)' have the same glyph") }
            seen[glyph] = ch
        }
        var sheet = Canvas(width: 16 * 18 + 6, height: 6 * 36 + 60)
        for v in 32...126 {
            let k = v - 32
            sheet.text(String(Unicode.Scalar(UInt8(v))), x: Double(3 + k % 16 * 18), y: Double(6 + k / 16 * 36 + 21), color: .black, scale: 3)
        }
        sheet.text("The quick brown fox: 0.123, [4-5]; {x|y} g_p?", x: 3, y: 6 * 36 + 16, color: .black)
        sheet.text("Jumps over 1e-05 lazy dogs!", x: 3, y: 6 * 36 + 44, color: .black, scale: 2)
        keep(sheet.png(), "font.png")
        // Outside printable ASCII: '?'.
        XCTAssertEqual(Font.glyph("é"), Font.glyph("?"))
        XCTAssertEqual(Font.glyph("\n"), Font.glyph("?"))
    }

    func testTextPlacementAndScale() {
        XCTAssertEqual(Canvas.textWidth(""), 0)
        XCTAssertEqual(Canvas.textWidth("ab"), 11)
        XCTAssertEqual(Canvas.textWidth("ab", scale: 2), 22)
        func inkColumns(_ c: Canvas) -> ClosedRange<Int>? {
            let cols = (0..<c.width).filter { x in (0..<c.height).contains { c[x, $0] != .white } }
            return cols.first.map { $0...cols.last! }
        }
        func inkRows(_ c: Canvas) -> ClosedRange<Int>? {
            let rows = (0..<c.height).filter { y in (0..<c.width).contains { c[$0, y] != .white } }
            return rows.first.map { $0...rows.last! }
        }
        var c = Canvas(width: 40, height: 20)
        c.text("H", x: 30, y: 10, color: .black, anchor: .end)  // H fills its 5 x 7 box
        XCTAssertEqual(inkColumns(c), 25...29)
        XCTAssertEqual(inkRows(c), 3...9)
        c = Canvas(width: 40, height: 20)
        c.text("HH", x: 20, y: 10, color: .black, anchor: .middle)
        XCTAssertEqual(inkColumns(c), 15...25)  // 11 wide, centred on 20 (14.5 rounds up)
        c = Canvas(width: 40, height: 20)
        c.text("H", x: 3, y: 16, color: .black, scale: 2)
        XCTAssertEqual(inkColumns(c), 3...12)
        XCTAssertEqual(inkRows(c), 2...15)
        c = Canvas(width: 40, height: 20)
        c.text("g", x: 3, y: 10, color: .black)  // a descender goes below the baseline
        XCTAssertEqual(inkRows(c), 5...11)
        // Text running off any edge is clipped.
        c = Canvas(width: 10, height: 6)
        c.text("clipped text", x: -7, y: 4, color: .black, scale: 2)
        c.text("WWW", x: 12, y: 30, color: .black, anchor: .end)
    }

    func testLinesAreAntialiasedAndClipAtTheEdges() {
        let red = RGB(200, 0, 0)
        var c = Canvas(width: 20, height: 10)
        c.line(-50, 5.25, 80, 5.25, color: red, width: 2)  // covers y 4.25...6.25: row 5 fully, rows 4 and 6 partly
        XCTAssertEqual(c[0, 5], red)
        XCTAssertEqual(c[19, 5], red)
        XCTAssertEqual(c[10, 4], RGB(214, 64, 64), "three quarters")
        XCTAssertEqual(c[10, 6], RGB(241, 191, 191), "a quarter")
        XCTAssertEqual(c[10, 3], .white)
        // Lines far outside, across, or with huge and non-finite coordinates: no crash.
        c.line(-1e6, -1e6, 1e6, 1e6, color: red)
        c.line(-1e300, 3, 1e300, 3, color: red)
        c.line(-Double.greatestFiniteMagnitude, 0, Double.greatestFiniteMagnitude, 9, color: red)
        c.line(-100, -100, -50, -3, color: red, width: 2)
        c.line(5, 30, 6, 30, color: red)
        c.line(.nan, 1, 5, 5, color: red)
        c.line(1, 1, .infinity, 5, color: red)
        c.polyline([], color: red)
        c.polyline([(3, 3)], color: red)  // a dot
        c.polyline([(1, 1), (.nan, 2), (-.infinity, 3), (18, 1), (.infinity, .nan)], color: red, width: 2)
        XCTAssertEqual(c[10, 1], red, "non-finite points are skipped, the rest joined")
        var d = Canvas(width: 3, height: 3)
        d.fillRect(x: -5, y: -5, width: 100, height: 100, color: red)
        d.fillRect(x: 10, y: 10, width: 5, height: 5, color: .black)
        d.strokeRect(x: -1, y: -1, width: 10, height: 10, color: .black)
        XCTAssertEqual(d.pixels, Canvas(width: 3, height: 3, background: red).pixels)
    }

    func testLineChartPNGPixels() throws {
        let series: [ChartSeries] = [("training", blue, [(1, 0.0), (11, 1.0)]), ("validation", red, [(1, 1.0), (11, 0.2)])]
        let png = lineChartPNG(title: "vgg: accuracy", yLabel: "accuracy", series: series)
        keep(png, "line.png")
        let d = try XCTUnwrap(decodePNG(png))
        XCTAssertEqual([d.width, d.height], [520, 320])
        XCTAssertEqual(d.rgb(0, 0), .white)
        XCTAssertEqual(d.rgb(519, 319), .white)
        let l = LineChartLayout(width: 520, height: 320, series: series)
        // The middle of each series' segment has its colour.
        XCTAssertTrue(d.column(Int(l.px(6)), near: l.py(0.5), has: RGB(css: blue)!))
        XCTAssertTrue(d.column(Int(l.px(6)), near: l.py(0.6), has: RGB(css: red)!))
        // The legend swatches.
        XCTAssertEqual(d.rgb(75, Int(l.legendTop(0)) + 1), RGB(css: blue))
        XCTAssertEqual(d.rgb(75, Int(l.legendTop(1)) + 1), RGB(css: red))
        // The title (2x) inside its box; the y label horizontally at the top left; tick labels.
        XCTAssertGreaterThan(d.count(x: 60..<300, y: 4..<26, where: isDark), 100)
        XCTAssertGreaterThan(d.count(x: 0..<56, y: 18..<31, where: isDark), 20)
        XCTAssertGreaterThan(d.count(x: 0..<56, y: Int(l.py(0.5)) - 8..<Int(l.py(0.5)) + 8, where: isDark), 10)
        XCTAssertGreaterThan(d.count(x: 200..<340, y: 300..<315, where: isDark), 10, "epoch")
        // The frame and a grid line.
        XCTAssertEqual(d.rgb(60, 200), RGB(0x33, 0x33, 0x33))
        XCTAssertEqual(d.rgb(300, Int(l.yTicks[2].y)), RGB(0xDD, 0xDD, 0xDD))
    }

    /// A marker is a dashed grey line at its x (4 pixels on, 3 off, under the curves) with its
    /// label beside it: left of the line where it fits, right of it near the left edge; one
    /// outside the data's x range or not finite is not drawn, in the PNG nor in the SVG.
    func testAMarkerIsADashedLineWithItsLabel() throws {
        let series: [ChartSeries] = [("training", blue, [(1, 0.2), (11, 0.2)])]
        let markers: [ChartMarker] = [(9.5, "finish"), (1.2, "start"), (12, "after"), (.nan, "nan")]
        let l = LineChartLayout(width: 520, height: 320, series: series)
        let png = lineChartPNG(title: "marked", yLabel: "y", series: series, markers: markers)
        keep(png, "markers.png")
        let d = try XCTUnwrap(decodePNG(png))
        let grey = RGB(0x88, 0x88, 0x88), top = Int(LineChartLayout.top)
        for x in [Int(l.px(9.5)), Int(l.px(1.2))] {
            XCTAssertEqual((0..<4).map { d.rgb(x, top + 14 + $0) }, Array(repeating: grey, count: 4), "a dash at \(x)")
            XCTAssertEqual((4..<7).map { d.rgb(x, top + 14 + $0) }, Array(repeating: RGB.white, count: 3), "a gap at \(x)")
        }
        XCTAssertTrue(d.column(Int(l.px(9.5)), near: l.py(0.2), has: RGB(css: blue)!), "the curve stays whole where it crosses the line")
        let labelY = (top + 2)..<(top + 16)
        let finishX = Int(l.px(9.5)), startX = Int(l.px(1.2))
        XCTAssertGreaterThan(d.count(x: (finishX - 44)..<(finishX - 2), y: labelY, where: { $0 == RGB(0x55, 0x55, 0x55) }), 10, "finish, left of its line")
        XCTAssertEqual(d.count(x: (finishX + 2)..<(finishX + 44), y: labelY, where: { $0 == RGB(0x55, 0x55, 0x55) }), 0)
        XCTAssertGreaterThan(d.count(x: (startX + 2)..<(startX + 40), y: labelY, where: { $0 == RGB(0x55, 0x55, 0x55) }), 10, "start, right of its line")
        // Nothing else grey in the plot: the markers at 12 and NaN were left out.
        let plotX = Int(LineChartLayout.left) + 1..<(520 - Int(LineChartLayout.right))
        let greyColumns = Set(plotX.filter { x in d.rgb(x, top + 57) == grey })  // a dash: 56-59
        XCTAssertEqual(greyColumns, [finishX, startX])

        let svg = lineChartSVG(title: "marked", yLabel: "y", series: series, markers: markers)
        XCTAssertEqual(svg.components(separatedBy: "stroke-dasharray").count - 1, 2, svg)
        XCTAssertTrue(svg.contains(String(format: "<line x1=\"%.1f\" y1=\"36.0\" x2=\"%.1f\"", l.px(9.5), l.px(9.5))), svg)
        XCTAssertTrue(svg.contains("text-anchor=\"end\" fill=\"#555\">finish</text>") && svg.contains("text-anchor=\"start\" fill=\"#555\">start</text>"), svg)
        XCTAssertFalse(svg.contains(">after<") || svg.contains(">nan<"), svg)
        XCTAssertLessThan(svg.range(of: "stroke-dasharray")!.lowerBound, svg.range(of: "<polyline")!.lowerBound, "the line under the curves")
        XCTAssertEqual(lineChartSVG(title: "marked", yLabel: "y", series: series), lineChartSVG(title: "marked", yLabel: "y", series: series, markers: []))
    }

    func testTicksAreWholeEpochsAndFiveLevels() {
        func labels(_ xs: [Double]) -> [String] {
            LineChartLayout(width: 520, height: 320, series: [("s", blue, xs.map { ($0, $0 / 10) })]).xTicks.map(\.label)
        }
        XCTAssertEqual(labels(Array(stride(from: 1.0, through: 11, by: 1))), (1...11).map(String.init))
        XCTAssertEqual(labels(Array(stride(from: 1.0, through: 12, by: 1))), ["1", "3", "5", "7", "9", "11"])
        XCTAssertEqual(labels([0, 100]), (0...10).map { String($0 * 10) })
        XCTAssertEqual(labels([]), ["0", "1"])
        let l = LineChartLayout(width: 520, height: 320, series: [("s", blue, [(1, 0.25), (2, 0.75)])])
        XCTAssertEqual(l.yTicks.count, 5)
        XCTAssertEqual([0, 2, 4].map { l.yTicks[$0].label }, ["0.225", "0.5", "0.775"], "5% padding above and below")
        XCTAssertEqual(l.xTicks.map(\.x), [LineChartLayout.left, 520 - LineChartLayout.right])
        XCTAssertEqual(l.yTicks.first!.y, 320 - LineChartLayout.bottom, accuracy: 1e-9)
    }

    func testChartsSkipNonFiniteValuesAndSurviveEmptyInput() throws {
        let series: [ChartSeries] = [
            ("training", blue, [(1, 2.0), (2, .nan), (3, 1.0), (4, .infinity), (.nan, 0.5), (5, 0.5)]),
            ("validation", red, [(1, -.infinity), (2, 1.9)]),  // one point: a dot
        ]
        let l = LineChartLayout(width: 520, height: 320, series: series)
        XCTAssertEqual(l.xMin, 1)
        XCTAssertEqual(l.xMax, 5)
        XCTAssertEqual(l.yMax, 2.075, accuracy: 1e-9)
        let chart = lineChartPNG(title: "chart", yLabel: "loss", series: series)
        keep(chart, "nonfinite.png")
        let d = try XCTUnwrap(decodePNG(chart))
        XCTAssertTrue(d.column(Int(l.px(2)), near: l.py(1.5), has: RGB(css: blue)!))
        XCTAssertTrue(d.column(Int(l.px(2)), near: l.py(1.9), has: RGB(css: red)!, tolerance: 16), "the lone validation point is a dot")
        let svg = lineChartSVG(title: "chart", yLabel: "loss", series: series)
        XCTAssertFalse(svg.lowercased().contains("nan,") || svg.contains("inf"), svg)

        for empty: [ChartSeries] in [[], [("training", blue, [])], [("training", blue, [(.nan, .nan)])], [("one", blue, [(3, 0.5)])]] {
            let png = lineChartPNG(title: "empty", yLabel: "loss", series: empty)
            keep(png, "empty-\(empty.count)-\(empty.first?.points.count ?? 0).png")
            let e = try XCTUnwrap(decodePNG(png))
            XCTAssertEqual([e.width, e.height], [520, 320])
            XCTAssertFalse(lineChartSVG(title: "empty", yLabel: "loss", series: empty).contains("nan"))
        }
        let tiny = try XCTUnwrap(decodePNG(lineChartPNG(title: "small", yLabel: "y", series: series, width: 40, height: 30)))
        XCTAssertEqual([tiny.width, tiny.height], [40, 30])
        _ = try XCTUnwrap(decodePNG(confusionPNG(Confusion(classes: 0), names: [], title: "none")))
        _ = try XCTUnwrap(decodePNG(confusionPNG(Confusion(classes: 2), names: ["only one"], title: "no names")))
    }

    func testConfusionPNGPixels() throws {
        var m = Confusion(classes: 7)
        for i in 0..<7 {
            for _ in 0..<(10 * (i + 1)) { m.add(truth: i, predicted: i) }
            for _ in 0..<(3 * i) { m.add(truth: i, predicted: (i + 1) % 7) }
        }
        for _ in 0..<10 { m.add(truth: 0, predicted: 3) }  // row 0: 10 of 20 correct
        let names = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
        let png = confusionPNG(m, names: names, title: "vgg on PublicTest: accuracy 81.23%")
        keep(png, "confusion.png")
        let d = try XCTUnwrap(decodePNG(png))
        let l = ConfusionLayout(n: 7), cell = Int(ConfusionLayout.cell)
        XCTAssertEqual([d.width, d.height], [l.width, l.height])
        XCTAssertEqual(d.rgb(0, d.height - 1), .white)
        // Cells are shaded by the row share: (1, 1) is 20/23, (0, 0) and (0, 3) are 1/2, (0, 1) is 0.
        func corner(_ i: Int, _ j: Int) -> RGB { d.rgb(Int(l.cellX(j)) + 3, Int(l.cellY(i)) + 3) }
        let s11 = UInt8(ConfusionLayout.shade(20.0 / 23)), half = UInt8(ConfusionLayout.shade(0.5))
        XCTAssertEqual(corner(1, 1), RGB(s11, s11, 255))
        XCTAssertEqual(corner(0, 0), RGB(half, half, 255))
        XCTAssertEqual(corner(0, 3), RGB(half, half, 255))
        XCTAssertEqual(corner(0, 1), .white)
        XCTAssertEqual(d.rgb(Int(l.cellX(1)), Int(l.cellY(1)) + 10), .white, "a white pixel between cells")
        // Text: white on the dark diagonal cell, dark on the light one, and the title.
        let x1 = Int(l.cellX(1)), y1 = Int(l.cellY(1))
        XCTAssertGreaterThan(d.count(x: (x1 + 1)..<(x1 + cell), y: (y1 + 1)..<(y1 + cell), where: isWhite), 20)
        let x0 = Int(l.cellX(0)), y0 = Int(l.cellY(0))
        XCTAssertGreaterThan(d.count(x: x0..<(x0 + cell), y: y0..<(y0 + cell), where: isDark), 20)
        XCTAssertGreaterThan(d.count(x: 10..<300, y: 4..<26, where: isDark), 100)
        // Row and column names.
        XCTAssertGreaterThan(d.count(x: 0..<Int(ConfusionLayout.left), y: y0..<(y0 + cell), where: isDark), 20)
        XCTAssertGreaterThan(d.count(x: x0..<(x0 + cell), y: 44..<Int(ConfusionLayout.top), where: isDark), 20)
    }

    func testRunReportWritesPNGs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-report-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let history = (1...12).map { (e: Int) -> EpochRecord in
            let x = Double(e), root = x.squareRoot()
            let valLoss: Double? = e == 3 ? nil : 1.8 / root + 0.01 * x
            return EpochRecord(epoch: e, loss: 1.9 / root, accuracy: 0.25 + 0.05 * x, valLoss: valLoss, valAccuracy: 0.22 + 0.03 * x,
                               learningRate: 0.001, seconds: 10, imagesPerSecond: 900)
        }
        for records in [history, []] {
            let meta = CheckpointMeta(model: "vgg_scratch", modelHash: "h", modelIR: "", epoch: records.count, batch: 0, iteration: 0, seed: 1,
                                      epochs: 12, batchSize: 64, bestValAccuracy: records.isEmpty ? nil : 0.58, history: records, elapsedSeconds: 120)
            try Checkpoint(meta: meta, tensors: [:]).write(to: dir + "/checkpoint-last.npz")
            let written = try writeRunReport(dir: dir, command: "fergc train")
            XCTAssertEqual(written.map { URL(fileURLWithPath: $0).lastPathComponent },
                           ["loss.svg", "loss.png", "accuracy.svg", "accuracy.png", "report.md"])
            for name in ["loss.png", "accuracy.png"] {
                let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
                if !records.isEmpty { keep(png, "report-" + name) }
                let d = try XCTUnwrap(decodePNG(png))
                XCTAssertEqual([d.width, d.height], [520, 320])
            }
            let md = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
            XCTAssertTrue(md.contains("(loss.svg)") && md.contains("(loss.png)") && md.contains("(accuracy.png)"), md)
            XCTAssertFalse(try String(contentsOfFile: dir + "/loss.svg", encoding: .utf8).contains("dasharray"), "no finish, no marker")
        }
        // A run with a finish: 10 main epochs and 2 of finish. The charts mark where it starts
        // (between epochs 10 and 11) and the report names its epochs; a run stopped before its
        // finish began has no marker.
        for (records, marked) in [(history, true), (Array(history.prefix(9)), false)] {
            let ir = "model m {\n}\ntrain {\n  finish = finish(epochs=2, lr=0.001)\n}\n"
            let meta = CheckpointMeta(model: "vgg_scratch", modelHash: "h", modelIR: ir, epoch: records.count, batch: 0, iteration: 0, seed: 1,
                                      epochs: 10, batchSize: 64, bestValAccuracy: 0.58, history: records, elapsedSeconds: 120, finishEpochs: 2)
            try Checkpoint(meta: meta, tensors: [:]).write(to: dir + "/checkpoint-last.npz")
            _ = try writeRunReport(dir: dir)
            let md = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
            XCTAssertTrue(md.contains("Epochs run: \(records.count) of 12 (10 and a finish of 2);"), md)
            XCTAssertTrue(md.contains("Finish: `finish(epochs=2, lr=0.001)` (epochs 11-12, after the main schedule"), md)
            XCTAssertEqual(md.contains("; right of the dashed line in the charts)"), marked, md)
            let l = LineChartLayout(width: 520, height: 320, series: [("", blue, records.map { (Double($0.epoch), $0.loss) })])
            for name in ["loss", "accuracy"] {
                let svg = try String(contentsOfFile: dir + "/\(name).svg", encoding: .utf8)
                XCTAssertEqual(svg.contains(String(format: "<line x1=\"%.1f\" y1=\"36.0\" x2=\"%.1f\"", l.px(10.5), l.px(10.5))), marked, svg)
                let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/\(name).png")))
                if marked { keep(png, "report-finish-\(name).png") }
                let d = try XCTUnwrap(decodePNG(png))
                XCTAssertEqual(d.rgb(Int(l.px(10.5)), Int(LineChartLayout.top) + 1) == RGB(0x88, 0x88, 0x88), marked, name)
            }
        }
    }

    /// The bar chart: each bar's length is its value on the 0..100% axis, a missing value has no
    /// bar (only an empty box and its text), the reference line is at its value, and the SVG
    /// draws the same bars.
    func testBarChartPixels() throws {
        let series = [(name: "paper", color: "#9e9e9e"), (name: "as paper", color: "#e6862e"), (name: "intended", color: blue)]
        let groups = [BarGroup(label: "Sobel", values: [24.49, 25.0, nil], missing: ["-", "not run", "not run"]),
                      BarGroup(label: "Std", values: [53.5, 100, 0], missing: ["-", "not run", "not run"])]
        let reference = BarReference(value: 24.94, label: "always Happy")
        let png = barChartPNG(title: "bars", series: series, groups: groups, reference: reference)
        keep(png, "bars.png")
        let d = try XCTUnwrap(decodePNG(png))
        let l = BarChartLayout(width: 760, groups: groups, series: 3)
        XCTAssertEqual([d.width, d.height], [760, l.height])
        XCTAssertEqual(l.maxValue, 100)
        /// How many pixels of the bar's middle row have its colour, and where the last one ends
        /// (the axis and the reference line are drawn over the bars).
        func runLength(_ g: Int, _ k: Int) -> Int {
            let y = Int(l.barTop(g, k)) + 5, colour = RGB(css: series[k].color)!
            return d.count(x: 0..<760, y: y..<(y + 1)) { $0 == colour }
        }
        func barEnd(_ g: Int, _ k: Int) -> Double {
            let y = Int(l.barTop(g, k)) + 5, colour = RGB(css: series[k].color)!
            return Double((0..<760).last { d.rgb($0, y) == colour }.map { $0 + 1 } ?? 0)
        }
        XCTAssertEqual(barEnd(0, 0), l.px(24.49), accuracy: 1)
        XCTAssertEqual(barEnd(0, 1), l.px(25), accuracy: 1)
        XCTAssertEqual(barEnd(1, 1), l.px(100), accuracy: 1)
        XCTAssertEqual(barEnd(1, 0), l.px(53.5), accuracy: 1)
        XCTAssertEqual(l.px(100) - l.px(0), l.plotWidth)
        XCTAssertGreaterThan(runLength(1, 0), Int(l.px(53.5) - l.px(0)) - 4, "a solid bar")
        // A missing value: the empty box's two sides cross the bar's middle row, nothing more.
        XCTAssertEqual(runLength(0, 2), 2)
        // A zero is a zero-length bar: nothing in its colour, and no "not run" box either.
        XCTAssertEqual(runLength(1, 2), 0)
        // "not run" is written after the box, in gray.
        let y0 = Int(l.barTop(0, 2))
        XCTAssertGreaterThan(d.count(x: Int(BarChartLayout.left) + 14..<Int(BarChartLayout.left) + 70, y: y0..<(y0 + 11)) { $0 == RGB(0x88, 0x88, 0x88) }, 20)
        // The dashed reference line at 24.94%.
        let rx = Int(l.px(24.94))
        XCTAssertGreaterThan(d.count(x: rx..<(rx + 1), y: Int(BarChartLayout.top)..<Int(BarChartLayout.top + l.plotHeight)) { $0 == RGB(0xCC, 0, 0) }, 20)
        // The group labels right-aligned left of the axis.
        XCTAssertGreaterThan(d.count(x: 0..<Int(BarChartLayout.left), y: Int(l.groupBaseline(0)) - 8..<Int(l.groupBaseline(0)) + 1, where: isDark), 15)

        let svg = barChartSVG(title: "bars", series: series, groups: groups, reference: reference)
        XCTAssertEqual(svg.components(separatedBy: "fill=\"\(blue)\"").count - 1, 2, "one legend swatch and the zero bar; no bar for the missing value")
        XCTAssertTrue(svg.contains(">not run</text>"))
        XCTAssertTrue(svg.contains(">24.49%</text>") && svg.contains(">100.00%</text>"))
        XCTAssertTrue(svg.contains(String(format: "width=\"%.1f\"", l.px(53.5) - BarChartLayout.left)))
    }
}
