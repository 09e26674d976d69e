// A minimal PNG encoder (8-bit grayscale or RGB, no interlace) over zlib, for face grids,
// confusion matrices and curves that any viewer opens.

import CZlib

public enum PNGColor: UInt8, Sendable {
    case gray = 0
    case rgb = 2
    var channels: Int { self == .gray ? 1 : 3 }
}

public func encodePNG(_ pixels: [UInt8], width: Int, height: Int, color: PNGColor) -> [UInt8] {
    precondition(pixels.count == width * height * color.channels, "PNG: pixel count does not match the size")
    // Each row starts with filter type 0 (none).
    let rowBytes = width * color.channels
    var raw = [UInt8]()
    raw.reserveCapacity((rowBytes + 1) * height)
    for r in 0..<height {
        raw.append(0)
        raw.append(contentsOf: pixels[(r * rowBytes)..<((r + 1) * rowBytes)])
    }
    var bound = compressBound(uLong(raw.count))
    var compressed = [UInt8](repeating: 0, count: Int(bound))
    let status = compressed.withUnsafeMutableBufferPointer { out in
        raw.withUnsafeBufferPointer { compress2(out.baseAddress, &bound, $0.baseAddress, uLong(raw.count), 9) }
    }
    precondition(status == Z_OK, "zlib compress2 failed (\(status))")
    compressed.removeSubrange(Int(bound)...)

    var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
    func chunk(_ type: String, _ data: [UInt8]) {
        let typed = Array(type.utf8) + data
        png += be32(UInt32(data.count)) + typed
        let crc = typed.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        png += be32(UInt32(crc))
    }
    chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [8, color.rawValue, 0, 0, 0])
    chunk("IDAT", compressed)
    chunk("IEND", [])
    return png
}
