// Reading photos: JPEG (TurboJPEG), PNG (libpng's simplified API), binary PGM/PPM (P5/P6).
// Every size a file states is checked before anything is allocated for it, and every failure is
// an ImageError naming the file and what is wrong — never a crash. Decoded images are 8-bit
// gray or RGB (alpha dropped, 16-bit reduced to 8).

import CPNG
import CTurboJPEG
import Runtime
import Vision

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct ImageError: Error, CustomStringConvertible, Sendable, Equatable {
    public var path: String
    public var message: String
    public init(path: String, message: String) { (self.path, self.message) = (path, message) }
    public var description: String { "\(path): \(message)" }
}

public enum ImageFormat: String, Sendable { case jpeg, png, pnm }

public enum ImageIO {
    /// Limits on what a file may ask for.
    public static let maxSide = 32768
    public static let maxPixels = 1 << 28
    public static let maxFileBytes = 512 << 20

    /// The file extensions folder walks pick up.
    public static let extensions: Set<String> = ["jpg", "jpeg", "png", "pgm", "ppm", "pnm"]

    /// The format named by a file's first bytes.
    public static func sniff(_ bytes: [UInt8]) -> ImageFormat? {
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        if bytes.count >= 8, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), bytes[1] == UInt8(ascii: "5") || bytes[1] == UInt8(ascii: "6") { return .pnm }
        return nil
    }

    /// Reads and decodes an image file (the format from its content, not its name).
    public static func read(path: String) throws(ImageError) -> Image {
        let bytes: [UInt8]
        do { bytes = try readFile(path) } catch { throw error }
        return try decode(bytes, path: path)
    }

    /// Decodes the bytes of a JPEG, PNG or PGM/PPM file; `path` names it in errors.
    public static func decode(_ bytes: [UInt8], path: String = "<memory>") throws(ImageError) -> Image {
        guard !bytes.isEmpty else { throw ImageError(path: path, message: "empty file") }
        switch sniff(bytes) {
        case .jpeg: return try decodeJPEG(bytes, path: path)
        case .png: return try decodePNG(bytes, path: path)
        case .pnm: return try decodePNM(bytes, path: path)
        case nil: throw ImageError(path: path, message: "not an image fergc reads (JPEG, PNG, or binary PGM/PPM): unknown content")
        }
    }

    static func checkSize(_ w: Int, _ h: Int, _ path: String, _ what: String) throws(ImageError) {
        guard w > 0, h > 0 else { throw ImageError(path: path, message: "\(what) with an empty size (\(w)x\(h))") }
        guard w <= maxSide, h <= maxSide, w * h <= maxPixels else {
            throw ImageError(path: path, message: "\(what) of \(w)x\(h) is larger than fergc reads (\(maxSide) a side, \(maxPixels) pixels)")
        }
    }

    // MARK: JPEG

    /// Photos hold a few pixels per byte of JPEG (flat synthetic images a few hundred); a file
    /// claiming more is decoded at 1/8 scale first, so it cannot make fergc allocate the image
    /// its header states before its data is shown to decode.
    static let jpegPixelsPerByte = 256

    public static func decodeJPEG(_ bytes: [UInt8], path: String) throws(ImageError) -> Image {
        guard let tj = tjInitDecompress() else { throw ImageError(path: path, message: "cannot start the JPEG decoder") }
        defer { tjDestroy(tj) }
        func tjError(_ what: String) -> ImageError {
            ImageError(path: path, message: "\(what): \(String(cString: tjGetErrorStr2(tj)))")
        }
        var w: Int32 = 0, h: Int32 = 0, sub: Int32 = 0, cs: Int32 = 0
        let header = bytes.withUnsafeBufferPointer { tjDecompressHeader3(tj, $0.baseAddress, UInt(bytes.count), &w, &h, &sub, &cs) }
        guard header == 0 else { throw tjError("bad or truncated JPEG header") }
        // TurboJPEG 2.1.5 may report success on a truncated header without setting the size.
        try checkSize(Int(w), Int(h), path, "JPEG image")
        let gray = cs == Int32(TJCS_GRAY.rawValue)
        let channels = gray ? 1 : 3
        let format = gray ? Int32(TJPF_GRAY.rawValue) : Int32(TJPF_RGB.rawValue)
        // A well-formed progressive JPEG can state a huge image in a few hundred bytes (end-of-
        // band runs: a 252-byte file decoded to 19216x9740): past 4096 pixels a byte (photos
        // hold a few), beyond a megapixel, it is refused rather than allocated.
        guard Int(w) * Int(h) <= (1 << 20) + 4096 * bytes.count else {
            throw ImageError(path: path, message: "a \(bytes.count)-byte JPEG stating \(w)x\(h) pixels (more than 4096 a byte): not a photo fergc reads")
        }
        if Int(w) * Int(h) > jpegPixelsPerByte * bytes.count {
            // More pixels than a photo's data holds (an 87-byte file asked for 561 MB): first
            // show that the data decodes, at 1/8 scale (a 64th of the memory), before
            // allocating the whole image. A truncated or corrupt stream fails here.
            let sw = (Int(w) + 7) / 8, sh = (Int(h) + 7) / 8
            var probe = [UInt8](repeating: 0, count: sw * sh * channels)
            let r = probe.withUnsafeMutableBufferPointer { o in
                bytes.withUnsafeBufferPointer { tjDecompress2(tj, $0.baseAddress, UInt(bytes.count), o.baseAddress, Int32(sw), 0, Int32(sh), format, 0) }
            }
            guard r == 0 else { throw tjError("cannot decode the JPEG (corrupt or truncated; its \(w)x\(h) pixels were not allocated)") }
        }
        var out = [UInt8](repeating: 0, count: Int(w) * Int(h) * channels)
        let r = out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { tjDecompress2(tj, $0.baseAddress, UInt(bytes.count), o.baseAddress, w, 0, h, format, 0) }
        }
        // A warning (e.g. "Premature end of JPEG file") leaves part of the image unset: an error.
        guard r == 0 else { throw tjError("cannot decode the JPEG (corrupt or truncated)") }
        return Image(width: Int(w), height: Int(h), channels: channels, pixels: out)
    }

    // MARK: PNG

    public static func decodePNG(_ bytes: [UInt8], path: String) throws(ImageError) -> Image {
        var img = png_image()
        img.version = UInt32(PNG_IMAGE_VERSION)
        func message() -> String {
            withUnsafeBytes(of: img.message) { raw in
                let b = raw.bindMemory(to: UInt8.self)
                return String(decoding: b.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
        }
        let begun = bytes.withUnsafeBufferPointer { png_image_begin_read_from_memory(&img, $0.baseAddress, $0.count) }
        guard begun != 0 else {
            let m = message()
            png_image_free(&img)
            throw ImageError(path: path, message: "bad PNG: \(m)")
        }
        do { try checkSize(Int(img.width), Int(img.height), path, "PNG image") } catch { png_image_free(&img); throw error }
        // Deflate expands at most 1032:1 and a row holds at least 1 + width/8 bytes (1 bit per
        // pixel): a file too small for its stated size is truncated, found before allocating.
        let leastRaw = Int(img.height) * (1 + (Int(img.width) + 7) / 8)
        guard leastRaw <= 1032 * bytes.count else {
            png_image_free(&img)
            throw ImageError(path: path, message: "truncated PNG: \(bytes.count) bytes cannot hold a \(img.width)x\(img.height) image")
        }
        let color = img.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        img.format = color ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
        let channels = color ? 3 : 1
        let w = Int(img.width), h = Int(img.height)
        var out = [UInt8](repeating: 0, count: w * h * channels)
        let done = out.withUnsafeMutableBufferPointer { png_image_finish_read(&img, nil, $0.baseAddress, Int32(w * channels), nil) }
        guard done != 0 else {
            let m = message()
            png_image_free(&img)
            throw ImageError(path: path, message: "cannot decode the PNG (corrupt or truncated): \(m)")
        }
        png_image_free(&img)
        return Image(width: w, height: h, channels: channels, pixels: out)
    }

    // MARK: PGM / PPM

    public static func decodePNM(_ bytes: [UInt8], path: String) throws(ImageError) -> Image {
        func fail(_ m: String) -> ImageError { ImageError(path: path, message: m) }
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), bytes[1] == UInt8(ascii: "5") || bytes[1] == UInt8(ascii: "6") else {
            throw fail("not a binary PGM/PPM (magic P5 or P6)")
        }
        let channels = bytes[1] == UInt8(ascii: "5") ? 1 : 3
        var pos = 2
        func number(_ what: String) throws(ImageError) -> Int {
            while pos < bytes.count {
                if bytes[pos] == UInt8(ascii: "#") {
                    while pos < bytes.count, bytes[pos] != 10, bytes[pos] != 13 { pos += 1 }
                } else if [9, 10, 13, 32].contains(bytes[pos]) { pos += 1 } else { break }
            }
            var v = 0, digits = 0
            while pos < bytes.count, bytes[pos] >= 48, bytes[pos] <= 57 {
                guard digits < 7 else { throw fail("bad header: the \(what) has more than 7 digits") }
                v = v * 10 + Int(bytes[pos] - 48); pos += 1; digits += 1
            }
            guard digits > 0 else { throw fail("bad header: expected the \(what)") }
            return v
        }
        let w = try number("width"), h = try number("height"), maxval = try number("maximum value")
        guard pos < bytes.count, [9, 10, 13, 32].contains(bytes[pos]) else { throw fail("bad header: no whitespace after the maximum value") }
        pos += 1
        guard (1...65535).contains(maxval) else { throw fail("maximum value \(maxval) is outside 1...65535") }
        try checkSize(w, h, path, channels == 1 ? "PGM image" : "PPM image")
        let bps = maxval > 255 ? 2 : 1
        let need = w * h * channels * bps
        guard bytes.count - pos >= need else { throw fail("truncated: \(bytes.count - pos) pixel bytes, expected \(need)") }
        var out = [UInt8](repeating: 0, count: w * h * channels)
        for i in 0..<out.count {
            let v = bps == 1 ? Int(bytes[pos + i]) : Int(bytes[pos + 2 * i]) << 8 | Int(bytes[pos + 2 * i + 1])
            guard v <= maxval else {
                let p = i / channels
                throw fail("sample \(i) (row \(p / w), column \(p % w)) is \(v), above the maximum value \(maxval) the header declares")
            }
            out[i] = maxval == 255 ? UInt8(v) : UInt8((v * 255 + maxval / 2) / maxval)
        }
        return Image(width: w, height: h, channels: channels, pixels: out)
    }

    /// A regular file's bytes (opened without blocking, so a FIFO is refused, never waited on),
    /// or standard input for "-"; refuses directories, devices and files over maxFileBytes.
    static func readFile(_ path: String) throws(ImageError) -> [UInt8] {
        if path == "-" { return try readStandardInput(limit: maxFileBytes) }
        do { return try readRegularFile(path, limit: maxFileBytes) } catch {
            throw ImageError(path: path, message: error.what)
        }
    }

    private static func readStandardInput(limit: Int) throws(ImageError) -> [UInt8] {
        var out = [UInt8](), chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let r = chunk.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
            if r < 0, errno == EINTR { continue }
            guard r >= 0 else { throw ImageError(path: "-", message: "read failed: \(String(cString: strerror(errno)))") }
            if r == 0 { return out }
            guard out.count + r <= limit else { throw ImageError(path: "-", message: "standard input is larger than \(limit >> 20) MiB") }
            out += chunk[0..<r]
        }
    }
}
