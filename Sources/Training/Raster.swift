// A small RGB canvas for PNG charts: filled rectangles, anti-aliased lines and polylines, and
// text in a built-in 5x7 bitmap font (with descenders), drawn 1x or scaled. Coordinates are
// SVG-like: pixel (x, y) covers [x, x+1) x [y, y+1), and text is placed by its baseline.

/// An 8-bit RGB colour.
public struct RGB: Sendable, Equatable {
    public var r, g, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { (self.r, self.g, self.b) = (r, g, b) }
    public static let white = RGB(255, 255, 255), black = RGB(0, 0, 0)

    /// "#rrggbb", "#rgb", "white" or "black" (the colours the SVG charts use); nil otherwise.
    public init?(css: String) {
        switch css.lowercased() {
        case "white": self = .white
        case "black": self = .black
        default:
            guard css.hasPrefix("#") else { return nil }
            var hex = String(css.dropFirst())
            if hex.count == 3 { hex = hex.map { "\($0)\($0)" }.joined() }
            guard hex.count == 6, let v = UInt32(hex, radix: 16) else { return nil }
            self.init(UInt8(v >> 16), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF))
        }
    }
}

public enum TextAnchor: Sendable { case start, middle, end }

public struct Canvas: Sendable {
    public let width: Int, height: Int
    /// Row-major RGB triples.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, background: RGB = .white) {
        precondition(width > 0 && height > 0, "Canvas: empty size")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fillRect(x: 0, y: 0, width: width, height: height, color: background)
    }

    public subscript(x: Int, y: Int) -> RGB {
        let i = (y * width + x) * 3
        return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// Mixes `color` into pixel (x, y) with opacity `alpha` (0...1); outside the canvas, nothing.
    public mutating func blend(x: Int, y: Int, color: RGB, alpha: Double = 1) {
        guard x >= 0, y >= 0, x < width, y < height, alpha > 0 else { return }
        let i = (y * width + x) * 3, a = min(alpha, 1)
        func mix(_ old: UInt8, _ new: UInt8) -> UInt8 { UInt8((Double(old) * (1 - a) + Double(new) * a).rounded()) }
        pixels[i] = mix(pixels[i], color.r)
        pixels[i + 1] = mix(pixels[i + 1], color.g)
        pixels[i + 2] = mix(pixels[i + 2], color.b)
    }

    public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, color: RGB) {
        let x0 = max(x, 0), y0 = max(y, 0), x1 = min(x + w, width), y1 = min(y + h, height)
        guard x0 < x1, y0 < y1 else { return }
        for yy in y0..<y1 {
            for xx in x0..<x1 {
                let i = (yy * width + xx) * 3
                (pixels[i], pixels[i + 1], pixels[i + 2]) = (color.r, color.g, color.b)
            }
        }
    }

    /// A 1-pixel outline just inside the rectangle.
    public mutating func strokeRect(x: Int, y: Int, width w: Int, height h: Int, color: RGB) {
        fillRect(x: x, y: y, width: w, height: 1, color: color)
        fillRect(x: x, y: y + h - 1, width: w, height: 1, color: color)
        fillRect(x: x, y: y, width: 1, height: h, color: color)
        fillRect(x: x + w - 1, y: y, width: 1, height: h, color: color)
    }

    public mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, color: RGB, width lineWidth: Double = 1) {
        polyline([(x0, y0), (x1, y1)], color: color, width: lineWidth)
    }

    /// An anti-aliased polyline with round joins: each pixel's coverage is 1 within width/2 of
    /// the path and fades out over the next pixel. Points with NaN or infinite coordinates are
    /// skipped; segments are clipped to the canvas.
    public mutating func polyline(_ points: [(Double, Double)], color: RGB, width lineWidth: Double = 1) {
        let pts = points.filter { $0.0.isFinite && $0.1.isFinite }
        let reach = lineWidth / 2 + 0.5
        // The coverage of the whole path (the maximum over its segments), so joins are not painted twice.
        var coverage = [Float](repeating: 0, count: width * height)
        var touched = false
        // A lone point is drawn as a dot (a segment of length zero).
        let segments = pts.count == 1 ? [(pts[0], pts[0])] : Array(zip(pts, pts.dropFirst()))
        for (p, q) in segments {
            guard let (a, b) = clip(p, q, margin: reach) else { continue }
            // (Clamped as doubles first: clipping far-away segments can leave endpoints off by rounding.)
            func pixel(_ v: Double, _ limit: Int) -> Int { Int(min(max(v, 0), Double(limit)).rounded(.down)) }
            let xs = pixel(min(a.0, b.0) - reach, width - 1), xe = pixel(max(a.0, b.0) + reach, width - 1)
            let ys = pixel(min(a.1, b.1) - reach, height - 1), ye = pixel(max(a.1, b.1) + reach, height - 1)
            guard xs <= xe, ys <= ye else { continue }
            let dx = b.0 - a.0, dy = b.1 - a.1, len2 = dx * dx + dy * dy
            for y in ys...ye {
                for x in xs...xe {
                    let cx = Double(x) + 0.5 - a.0, cy = Double(y) + 0.5 - a.1
                    let t = len2 == 0 ? 0 : min(max((cx * dx + cy * dy) / len2, 0), 1)
                    let ex = cx - t * dx, ey = cy - t * dy
                    let c = Float(min(max(reach - (ex * ex + ey * ey).squareRoot(), 0), 1))
                    if c > coverage[y * width + x] { coverage[y * width + x] = c; touched = true }
                }
            }
        }
        guard touched else { return }
        for (i, c) in coverage.enumerated() where c > 0 { blend(x: i % width, y: i / width, color: color, alpha: Double(c)) }
    }

    /// The part of segment a-b inside the canvas grown by `margin` (Liang-Barsky), or nil.
    private func clip(_ a: (Double, Double), _ b: (Double, Double), margin m: Double) -> ((Double, Double), (Double, Double))? {
        let dx = b.0 - a.0, dy = b.1 - a.1
        guard dx.isFinite, dy.isFinite else { return nil }
        var t0 = 0.0, t1 = 1.0
        for (p, q) in [(-dx, a.0 + m), (dx, Double(width) + m - a.0), (-dy, a.1 + m), (dy, Double(height) + m - a.1)] {
            if p == 0 {
                if q < 0 { return nil }
            } else {
                let r = q / p
                if p < 0 { t0 = max(t0, r) } else { t1 = min(t1, r) }
            }
        }
        guard t0 <= t1 else { return nil }
        return ((a.0 + t0 * dx, a.1 + t0 * dy), (a.0 + t1 * dx, a.1 + t1 * dy))
    }

    // MARK: - Text

    /// The width in pixels of `text` in the bitmap font at `scale`.
    public static func textWidth(_ text: String, scale: Int = 1) -> Int {
        let n = text.unicodeScalars.count
        return n == 0 ? 0 : (n * Font.advance - 1) * scale
    }

    /// Draws `text` with its baseline at `y`; `x` is its left edge, centre or right edge by `anchor`.
    /// Characters outside printable ASCII are drawn as '?'.
    public mutating func text(_ text: String, x: Double, y: Double, color: RGB, scale: Int = 1, anchor: TextAnchor = .start) {
        let w = Double(Canvas.textWidth(text, scale: scale))
        var left = Int((anchor == .start ? x : anchor == .middle ? x - w / 2 : x - w).rounded())
        let top = Int(y.rounded()) - Font.ascent * scale
        for u in text.unicodeScalars {
            let rows = Font.glyph(u)
            for (r, bits) in rows.enumerated() where bits != 0 {
                for c in 0..<Font.glyphWidth where bits & (0x10 >> UInt8(c)) != 0 {
                    fillRect(x: left + c * scale, y: top + r * scale, width: scale, height: scale, color: color)
                }
            }
            left += Font.advance * scale
        }
    }

    /// The canvas as PNG bytes.
    public func png() -> [UInt8] { encodePNG(pixels, width: width, height: height, color: .rgb) }
}

/// The bitmap font: 95 glyphs (ASCII 32-126), 5 pixels wide and 9 rows tall. Rows 0-6 stand on the
/// baseline (capitals and digits fill them, lowercase letters rows 2-6); rows 7-8 hold descenders.
/// Each glyph is 9 rows of two hex digits; in a row, 0x10 is the leftmost pixel and 0x01 the rightmost.
enum Font {
    static let glyphWidth = 5, rowCount = 9, ascent = 7, advance = 6

    static func glyph(_ u: Unicode.Scalar) -> ArraySlice<UInt8> {
        let i = (32...126).contains(u.value) ? Int(u.value) - 32 : Int(UInt8(ascii: "?")) - 32
        return rows[(i * rowCount)..<((i + 1) * rowCount)]
    }

    /// All glyph rows, decoded once from `table`.
    static let rows: [UInt8] = table.flatMap { hex in
        stride(from: 0, to: hex.count, by: 2).map { k in
            let s = hex.index(hex.startIndex, offsetBy: k)
            return UInt8(hex[s...hex.index(after: s)], radix: 16)!
        }
    }

    static let table: [String] = [
        "000000000000000000", "040404040400040000", "0A0A0A000000000000", "0A0A1F0A1F0A0A0000", "040F140E051E040000", "181902040813030000",  //  !"#$%
        "0C12140815120D0000", "040408000000000000", "020408080804020000", "080402020204080000", "0004150E1504000000", "0004041F0404000000",  // &'()*+
        "00000000000C0C0408", "0000001F0000000000", "00000000000C0C0000", "010102040810100000", "0E11131519110E0000", "040C040404040E0000",  // ,-./01
        "0E11010204081F0000", "0E11010601110E0000", "02060A121F02020000", "1F101E0101110E0000", "0608101E11110E0000", "1F0102040808080000",  // 234567
        "0E11110E11110E0000", "0E11110F01020C0000", "00000C0C000C0C0000", "00000C0C000C0C0408", "020408100804020000", "00001F001F00000000",  // 89:;<=
        "080402010204080000", "0E1101020400040000", "0E11171517100F0000", "0E11111F1111110000", "1E11111E11111E0000", "0E11101010110E0000",  // >?@ABC
        "1C12111111121C0000", "1F10101E10101F0000", "1F10101E1010100000", "0E11101711110F0000", "1111111F1111110000", "0E04040404040E0000",  // DEFGHI
        "0702020202120C0000", "111214181412110000", "1010101010101F0000", "111B15151111110000", "111119151311110000", "0E11111111110E0000",  // JKLMNO
        "1E11111E1010100000", "0E11111115120D0000", "1E11111E1412110000", "0F10100E01011E0000", "1F0404040404040000", "1111111111110E0000",  // PQRSTU
        "11111111110A040000", "1111111515150A0000", "11110A040A11110000", "11110A040404040000", "1F01020408101F0000", "0E08080808080E0000",  // VWXYZ[
        "101008040201010000", "0E02020202020E0000", "040A11000000000000", "000000000000001F00", "080400000000000000", "00000E010F110F0000",  // \]^_`a
        "10101E1111111E0000", "00000F1010100F0000", "01010F1111110F0000", "00000E111F100F0000", "06081E080808080000", "00000F1111110F010E",  // bcdefg
        "10101E111111110000", "04000C0404040E0000", "02000602020202120C", "101012141814120000", "0C04040404040E0000", "00001A151515150000",  // hijklm
        "00001E111111110000", "00000E1111110E0000", "00001E1111111E1010", "00000F1111110F0101", "000016191010100000", "00000F100E011E0000",  // nopqrs
        "08081E080809060000", "0000111111110F0000", "00001111110A040000", "0000111115150A0000", "0000110A040A110000", "0000111111110F010E",  // tuvwxy
        "00001F0204081F0000", "030404080404030000", "040404040404040400", "180404020404180000", "000008150200000000",  // z{|}~
    ]
}
