// Zip reading: end-of-central-directory scan, ZIP64, local headers, raw inflate, CRC-32 checks.
import CZlib

/// Bounds-checked view of a zip archive; every failure names the file (and member).
struct ZipReader {
    struct Entry { var name: String, nameBytes: ArraySlice<UInt8>, flags: UInt16, method: UInt16, crc: UInt32, packedSize: Int, size: Int, offset: Int }

    let bytes: [UInt8]
    let file: String

    func fail(_ what: String) -> NumPyError { NumPyError("\(file): \(what)") }

    func uint<T: FixedWidthInteger>(_ at: Int, _ what: String, as _: T.Type = T.self) throws(NumPyError) -> T {
        let n = MemoryLayout<T>.size
        guard at >= 0, at <= bytes.count - n else { throw fail("truncated \(what) (offset \(at))") }
        var v: T = 0
        for i in 0..<n { v |= T(bytes[at + i]) << (8 * i) }
        return v
    }

    func int<T: FixedWidthInteger>(_ at: Int, _ what: String, as t: T.Type) throws(NumPyError) -> Int {
        let v: T = try uint(at, what)
        guard let i = Int(exactly: v) else { throw fail("\(what): value \(v) too large") }
        return i
    }

    /// Locates the end-of-central-directory record (scanning backward) and parses every entry.
    func centralDirectory() throws(NumPyError) -> [Entry] {
        var eocd = -1
        var p = bytes.count - 22
        while p >= 0 && p >= bytes.count - 22 - 0xFFFF {
            if bytes[p] == 0x50, bytes[p + 1] == 0x4B, bytes[p + 2] == 5, bytes[p + 3] == 6,
               Int(bytes[p + 20]) | Int(bytes[p + 21]) << 8 == bytes.count - p - 22 {
                eocd = p
                break
            }
            p -= 1
        }
        guard eocd >= 0 else { throw fail("not a zip archive or truncated (no end-of-central-directory record)") }
        var count = try int(eocd + 10, "end of central directory", as: UInt16.self)
        var cdSize = try int(eocd + 12, "end of central directory", as: UInt32.self)
        var cdOffset = try int(eocd + 16, "end of central directory", as: UInt32.self)
        let diskA: UInt16 = try uint(eocd + 4, "end of central directory")
        let diskB: UInt16 = try uint(eocd + 6, "end of central directory")
        var cdLimit = eocd
        if eocd >= 20, try uint(eocd - 20, "ZIP64 locator", as: UInt32.self) == 0x0706_4b50 {
            let rec = try int(eocd - 12, "ZIP64 locator", as: UInt64.self)
            guard rec <= eocd - 20 - 56, try uint(rec, "ZIP64 end record", as: UInt32.self) == 0x0606_4b50 else {
                throw fail("bad ZIP64 end-of-central-directory record")
            }
            count = try int(rec + 32, "ZIP64 end record", as: UInt64.self)
            cdSize = try int(rec + 40, "ZIP64 end record", as: UInt64.self)
            cdOffset = try int(rec + 48, "ZIP64 end record", as: UInt64.self)
            cdLimit = rec
        } else if diskA != 0 || diskB != 0 {
            throw fail("multi-disk zip archives are not supported")
        }
        guard cdOffset <= cdLimit, cdSize <= cdLimit - cdOffset else {
            throw fail("central directory (offset \(cdOffset), size \(cdSize)) lies outside the archive")
        }
        guard count <= cdSize / 46 else { throw fail("central directory too small for \(count) entries") }
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        var at = cdOffset
        let cdEnd = cdOffset + cdSize
        for index in 0..<count {
            let what = "central directory entry \(index)"
            guard at <= cdEnd - 46, try uint(at, what, as: UInt32.self) == 0x0201_4b50 else {
                throw fail("\(what): bad signature or truncated")
            }
            let nameLen = try int(at + 28, what, as: UInt16.self)
            let extraLen = try int(at + 30, what, as: UInt16.self)
            let commentLen = try int(at + 32, what, as: UInt16.self)
            let next = at + 46 + nameLen + extraLen + commentLen
            guard next <= cdEnd else { throw fail("\(what): extends past the central directory") }
            let nameBytes = bytes[(at + 46)..<(at + 46 + nameLen)]
            let name = String(decoding: nameBytes, as: UTF8.self)
            var e = Entry(name: name, nameBytes: nameBytes, flags: try uint(at + 8, what), method: try uint(at + 10, what),
                          crc: try uint(at + 16, what),
                          packedSize: try int(at + 20, what, as: UInt32.self), size: try int(at + 24, what, as: UInt32.self),
                          offset: try int(at + 42, what, as: UInt32.self))
            // ZIP64 extended information: present fields follow the order size, packedSize, offset.
            var x = at + 46 + nameLen
            let xEnd = x + extraLen
            while x <= xEnd - 4 {
                let tag: UInt16 = try uint(x, what), len = try int(x + 2, what, as: UInt16.self)
                guard len <= xEnd - x - 4 else { throw fail("member '\(name)': malformed extra field") }
                if tag == 1 {
                    var f = x + 4
                    func field(_ v: inout Int) throws(NumPyError) {
                        guard v == 0xFFFF_FFFF else { return }
                        guard f <= x + 4 + len - 8 else { throw fail("member '\(name)': ZIP64 extra field too short") }
                        v = try int(f, "member '\(name)' ZIP64 field", as: UInt64.self)
                        f += 8
                    }
                    try field(&e.size); try field(&e.packedSize); try field(&e.offset)
                }
                x += 4 + len
            }
            entries.append(e)
            at = next
        }
        guard at == cdEnd else { throw fail("central directory holds more than the \(count) entries declared") }
        return entries
    }

    /// The uncompressed, CRC-verified bytes of one member.
    func contents(of e: Entry) throws(NumPyError) -> [UInt8] {
        func failM(_ what: String) -> NumPyError { fail("member '\(e.name)': \(what)") }
        guard e.flags & 1 == 0 else { throw failM("encrypted members are not supported") }
        let what = "local header of member '\(e.name)'"
        guard try uint(e.offset, what, as: UInt32.self) == 0x0403_4b50 else { throw failM("bad local header signature") }
        let nameLen = try int(e.offset + 26, what, as: UInt16.self)
        let extraLen = try int(e.offset + 28, what, as: UInt16.self)
        let start = e.offset + 30 + nameLen + extraLen
        guard start <= bytes.count, e.packedSize <= bytes.count - start else {
            throw failM("data (\(e.packedSize) bytes at offset \(start)) extends past the end of the archive")
        }
        guard bytes[(e.offset + 30)..<(e.offset + 30 + nameLen)] == e.nameBytes else {
            throw failM("local header name does not match the central directory")
        }
        let data: [UInt8]
        switch e.method {
        case 0:
            guard e.packedSize == e.size else { throw failM("stored member has compressed size \(e.packedSize) != size \(e.size)") }
            data = Array(bytes[start..<(start + e.size)])
        case 8:
            // Deflate expands at most ~1032:1; reject absurd declared sizes before allocating.
            guard e.size / 1032 <= e.packedSize else { throw failM("declared size \(e.size) is implausible for \(e.packedSize) compressed bytes") }
            data = try inflateRaw(start, e.packedSize, size: e.size, fail: failM)
        default:
            throw failM("unsupported compression method \(e.method)")
        }
        let crc = data.withUnsafeBytes { NumPyIO.crc32($0) }
        guard crc == e.crc else {
            throw failM("CRC-32 mismatch (stored \(hex(e.crc)), computed \(hex(crc)))")
        }
        return data
    }

    private func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }

    /// Inflates `count` raw-deflate bytes at `start` into exactly `size` bytes.
    func inflateRaw(_ start: Int, _ count: Int, size: Int, fail: (String) -> NumPyError) throws(NumPyError) -> [UInt8] {
        var s = z_stream()
        guard inflateInit2_(&s, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw fail("zlib inflateInit2 failed")
        }
        defer { inflateEnd(&s) }
        var out = [UInt8](repeating: 0, count: max(size, 1))  // zlib needs a non-null output pointer
        let step = 1 << 30  // zlib counts are 32-bit
        var inPos = start, outPos = 0
        let rc: Int32 = bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                guard let inBase = src.baseAddress, let outBase = dst.baseAddress else { return Z_MEM_ERROR }
                s.next_out = outBase.assumingMemoryBound(to: Bytef.self)
                while true {
                    if s.avail_in == 0, inPos < start + count {
                        let n = min(start + count - inPos, step)
                        s.next_in = UnsafeMutablePointer(mutating: (inBase + inPos).assumingMemoryBound(to: Bytef.self))
                        s.avail_in = uInt(n)
                        inPos += n
                    }
                    if s.avail_out == 0, outPos < size {
                        let n = min(size - outPos, step)
                        s.next_out = (outBase + outPos).assumingMemoryBound(to: Bytef.self)
                        s.avail_out = uInt(n)
                        outPos += n
                    }
                    let rc = inflate(&s, Z_NO_FLUSH)  // Z_OK means progress was made
                    if rc != Z_OK { return rc }
                }
            }
        }
        let inputLeft = s.avail_in > 0 || inPos < start + count
        let produced = Int(s.total_out)
        switch rc {
        case Z_STREAM_END where produced == size:
            return size == 0 ? [] : out
        case Z_STREAM_END:
            throw fail("decompressed to \(produced) bytes but \(size) were declared")
        case Z_BUF_ERROR where inputLeft:
            throw fail("decompressed data is larger than the declared \(size) bytes")
        case Z_BUF_ERROR:
            throw fail("compressed data is truncated")
        default:
            let msg = s.msg.map { String(cString: $0) } ?? "error \(rc)"
            throw fail("corrupt deflate data (\(msg))")
        }
    }
}
