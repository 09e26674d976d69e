// .npz = zip archive of .npy members (reader in ZipReader.swift). Writing emits stored or
// raw-deflated members with ZIP64 records when sizes, offsets or counts need them.
import CZlib
import Runtime

extension NumPyIO {
    /// Reads every array in an .npz (zip) archive: stored (np.savez) and deflated (np.savez_compressed)
    /// members, ZIP64 sizes/offsets included; member names without the ".npy" suffix; order as in the archive.
    ///
    /// `maxBytes` bounds the members' total declared uncompressed size, checked from the central
    /// directory before anything is inflated (a 1 MB zip bomb cannot make us allocate 1 GB).
    /// Two members with the same name are an error (the last would silently win).
    public static func readNPZ(_ bytes: [UInt8], file: String = "archive.npz", maxBytes: Int = Int.max) throws(NumPyError) -> [(name: String, array: NDArray)] {
        let zip = ZipReader(bytes: bytes, file: file)
        var result: [(name: String, array: NDArray)] = []
        let entries = try zip.centralDirectory().filter { !$0.name.hasSuffix("/") }
        var total = 0, seen = Set<String>()
        for entry in entries {
            guard seen.insert(entry.name).inserted else { throw NumPyError("\(file): two members are named '\(entry.name)'") }
            let (sum, overflow) = total.addingReportingOverflow(entry.size)
            guard !overflow, sum <= maxBytes else {
                throw NumPyError("\(file): the members declare more than \(maxBytes) bytes uncompressed (at member '\(entry.name)'); refused before inflating")
            }
            total = sum
        }
        // Whatever the caller's bound, the members must fit in what this process may allocate: a
        // deflated member is inflated into a buffer of its declared size (up to 1032 times its
        // compressed bytes), and a failed allocation aborts.
        let memory = memoryLimit()
        guard total <= memory.bytes else {
            throw NumPyError("\(file): the members declare \(total) bytes uncompressed, more than this process may allocate (\(memory)); refused before inflating")
        }
        for entry in entries {
            let data = try zip.contents(of: entry)
            let name = entry.name.hasSuffix(".npy") ? String(entry.name.dropLast(4)) : entry.name
            result.append((name, try readNPY(data, name: "\(file): member '\(entry.name)'")))
        }
        return result
    }

    public static func readNPZ(path: String, maxBytes: Int = Int.max) throws(NumPyError) -> [(name: String, array: NDArray)] {
        try readNPZ(try readFile(path), file: path, maxBytes: maxBytes)
    }

    /// Writes an archive np.load can read; compressed = deflate via zlib (like np.savez_compressed),
    /// else stored (like np.savez). Each member is named "<name>.npy".
    public static func writeNPZ(_ arrays: [(name: String, array: NDArray)], compressed: Bool) -> [UInt8] {
        writeNPZ(arrays, compressed: compressed, forceZip64: false)
    }

    /// Writes the archive atomically (see `atomicWrite`): never leaves a partial file at `path`.
    public static func writeNPZ(_ arrays: [(name: String, array: NDArray)], compressed: Bool, to path: String) throws(NumPyError) {
        try atomicWrite(writeNPZ(arrays, compressed: compressed), to: path)
    }

    /// Standard zip/zlib CRC-32.
    public static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: uLong = 0
        var offset = 0
        while offset < bytes.count, let base = bytes.baseAddress {
            let n = min(bytes.count - offset, 1 << 30)
            crc = CZlib.crc32(crc, (base + offset).assumingMemoryBound(to: Bytef.self), uInt(n))
            offset += n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    static func writeNPZ(_ arrays: [(name: String, array: NDArray)], compressed: Bool, forceZip64: Bool) -> [UInt8] {
        var out = [UInt8](), central = [UInt8]()
        let limit = 0xFFFF_FFFF
        for (name, array) in arrays {
            let raw = writeNPY(array)
            let packed = compressed ? deflateRaw(raw) : raw
            let crc = raw.withUnsafeBytes { crc32($0) }
            let nameBytes = Array((name + ".npy").utf8)
            let offset = out.count
            let sizes64 = forceZip64 || raw.count >= limit || packed.count >= limit
            let offset64 = forceZip64 || offset >= limit
            let flags: UInt16 = nameBytes.allSatisfy { $0 < 0x80 } ? 0 : 0x800  // bit 11: UTF-8 name
            let version: UInt16 = sizes64 || offset64 ? 45 : 20
            func common(_ h: inout [UInt8], extraLen: Int) {
                appendLE(version, to: &h); appendLE(flags, to: &h)
                appendLE(UInt16(compressed ? 8 : 0), to: &h)
                appendLE(UInt16(0), to: &h); appendLE(UInt16(0x21), to: &h)  // 1980-01-01 00:00
                appendLE(crc, to: &h)
                appendLE(UInt32(sizes64 ? limit : packed.count), to: &h)
                appendLE(UInt32(sizes64 ? limit : raw.count), to: &h)
                appendLE(UInt16(nameBytes.count), to: &h); appendLE(UInt16(extraLen), to: &h)
            }
            // Local header; a ZIP64 local extra must carry both sizes.
            appendLE(UInt32(0x0403_4b50), to: &out)
            common(&out, extraLen: sizes64 ? 20 : 0)
            out += nameBytes
            if sizes64 {
                appendLE(UInt16(1), to: &out); appendLE(UInt16(16), to: &out)
                appendLE(UInt64(raw.count), to: &out); appendLE(UInt64(packed.count), to: &out)
            }
            out += packed
            // Central directory entry.
            var extra = [UInt8]()
            if sizes64 { appendLE(UInt64(raw.count), to: &extra); appendLE(UInt64(packed.count), to: &extra) }
            if offset64 { appendLE(UInt64(offset), to: &extra) }
            appendLE(UInt32(0x0201_4b50), to: &central)
            appendLE(UInt16(3 << 8 | 20), to: &central)  // made by: Unix, spec 2.0
            common(&central, extraLen: extra.isEmpty ? 0 : extra.count + 4)
            appendLE(UInt16(0), to: &central); appendLE(UInt16(0), to: &central)  // comment, disk
            appendLE(UInt16(0), to: &central); appendLE(UInt32(0o100644 << 16), to: &central)  // attrs
            appendLE(UInt32(offset64 ? limit : offset), to: &central)
            central += nameBytes
            if !extra.isEmpty {
                appendLE(UInt16(1), to: &central); appendLE(UInt16(extra.count), to: &central)
                central += extra
            }
        }
        let cdOffset = out.count, cdSize = central.count, count = arrays.count
        out += central
        let zip64 = forceZip64 || count >= 0xFFFF || cdOffset >= limit || cdSize >= limit
        if zip64 {
            let recordOffset = out.count
            appendLE(UInt32(0x0606_4b50), to: &out); appendLE(UInt64(44), to: &out)
            appendLE(UInt16(3 << 8 | 45), to: &out); appendLE(UInt16(45), to: &out)
            appendLE(UInt32(0), to: &out); appendLE(UInt32(0), to: &out)
            appendLE(UInt64(count), to: &out); appendLE(UInt64(count), to: &out)
            appendLE(UInt64(cdSize), to: &out); appendLE(UInt64(cdOffset), to: &out)
            appendLE(UInt32(0x0706_4b50), to: &out); appendLE(UInt32(0), to: &out)
            appendLE(UInt64(recordOffset), to: &out); appendLE(UInt32(1), to: &out)
        }
        appendLE(UInt32(0x0605_4b50), to: &out)
        appendLE(UInt16(0), to: &out); appendLE(UInt16(0), to: &out)
        appendLE(UInt16(zip64 ? 0xFFFF : count), to: &out); appendLE(UInt16(zip64 ? 0xFFFF : count), to: &out)
        appendLE(UInt32(zip64 ? limit : cdSize), to: &out); appendLE(UInt32(zip64 ? limit : cdOffset), to: &out)
        appendLE(UInt16(0), to: &out)
        return out
    }

    /// Raw deflate (no zlib header), as used in zip members.
    static func deflateRaw(_ input: [UInt8]) -> [UInt8] {
        var s = z_stream()
        guard deflateInit2_(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY,
                            ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { fatalError("zlib deflateInit2 failed") }
        defer { deflateEnd(&s) }
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        input.withUnsafeBytes { src in
            var offset = 0
            var flush = Z_NO_FLUSH
            repeat {
                let n = min(src.count - offset, 1 << 30)
                s.next_in = src.baseAddress.map { UnsafeMutablePointer(mutating: ($0 + offset).assumingMemoryBound(to: Bytef.self)) }
                s.avail_in = uInt(n)
                offset += n
                if offset == src.count { flush = Z_FINISH }
                repeat {
                    let produced = chunk.withUnsafeMutableBytes { dst in
                        s.next_out = dst.baseAddress?.assumingMemoryBound(to: Bytef.self)
                        s.avail_out = uInt(dst.count)
                        _ = deflate(&s, flush)
                        return dst.count - Int(s.avail_out)
                    }
                    out += chunk[0..<produced]
                } while s.avail_out == 0
            } while flush != Z_FINISH
        }
        return out
    }
}
