// Binary 8-bit PGM (P5) decoding, the image format `fergc predict` takes. Self-contained (no
// imports) so the PGM fuzz target (Tools/fuzz) can compile it alone.

/// Why a PGM image was refused; `message` does not name the file.
public struct PGMError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Decodes a binary 8-bit PGM (P5) of exactly `width` x `height`; a maxval other than 255 is
/// rescaled to 0...255. Header numbers over 7 digits, pixels above maxval and short pixel data
/// are errors.
public func decodePGM(_ bytes: [UInt8], width: Int, height: Int) throws(PGMError) -> [UInt8] {
    guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P") else { throw PGMError("not a PGM image (expected a binary PGM, magic 'P5')") }
    guard bytes[1] == UInt8(ascii: "5") else {
        let shown = (0x21...0x7e).contains(bytes[1]) ? String(Unicode.Scalar(bytes[1])) : "\\x" + String(bytes[1], radix: 16)
        throw PGMError("a 'P\(shown)' netpbm file; only binary grayscale PGM ('P5') is supported (e.g. convert with 'pnmtopnm' or ImageMagick 'convert in.png -depth 8 out.pgm')")
    }
    var pos = 2
    func header(_ what: String) throws(PGMError) -> Int {
        // Whitespace and # comments, then a decimal number of at most 7 digits.
        while pos < bytes.count {
            if bytes[pos] == UInt8(ascii: "#") {
                while pos < bytes.count, bytes[pos] != 10, bytes[pos] != 13 { pos += 1 }
            } else if [9, 10, 13, 32].contains(bytes[pos]) {
                pos += 1
            } else { break }
        }
        var v = 0, digits = 0
        while pos < bytes.count, bytes[pos] >= 48, bytes[pos] <= 57 {
            if digits == 7 { throw PGMError("bad PGM header: the \(what) has more than 7 digits") }
            v = v * 10 + Int(bytes[pos] - 48); pos += 1; digits += 1
        }
        guard digits > 0 else { throw PGMError("bad PGM header: expected the \(what)") }
        return v
    }
    let w = try header("width"), h = try header("height"), maxval = try header("maximum value")
    guard pos < bytes.count, [9, 10, 13, 32].contains(bytes[pos]) else { throw PGMError("bad PGM header: no whitespace after the maximum value") }
    pos += 1
    guard (1...255).contains(maxval) else { throw PGMError("PGM maximum value \(maxval); only 8-bit images (1...255) are supported") }
    guard w == width, h == height else {
        throw PGMError("image is \(w)x\(h); the plan takes \(width)x\(height) grayscale faces (resize the image first)")
    }
    guard bytes.count - pos >= w * h else { throw PGMError("truncated PGM: \(bytes.count - pos) pixel bytes, expected \(w * h)") }
    let pixels = Array(bytes[pos..<pos + w * h])
    if maxval == 255 { return pixels }
    if let i = pixels.firstIndex(where: { Int($0) > maxval }) {
        throw PGMError("pixel \(i) (row \(i / w), column \(i % w)) is \(pixels[i]), above the maximum value \(maxval) the header declares")
    }
    return pixels.map { UInt8(min(255, (Int($0) * 255 + maxval / 2) / maxval)) }
}
