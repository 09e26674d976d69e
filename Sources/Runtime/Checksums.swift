// Checksums for the .plan file, written here so that the runtime links nothing but OpenBLAS:
//   - CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF; the
//     one zlib, PNG and ZIP use), table-driven (slicing by 8); `crc32("123456789")` is
//     0xCBF43926.
//   - SHA-256 (FIPS 180-4), for the identity of a plan's weights (`weightsSHA256`).

/// CRC-32 tables for slicing by 8: table k maps a byte to its CRC contribution k bytes ahead.
private let crcTables: [UInt32] = {
    var t = [UInt32](repeating: 0, count: 8 * 256)
    for n in 0..<256 {
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        t[n] = c
    }
    for k in 1..<8 {
        for n in 0..<256 { t[k * 256 + n] = (t[(k - 1) * 256 + n] >> 8) ^ t[Int(t[(k - 1) * 256 + n] & 0xFF)] }
    }
    return t
}()

/// Continues a CRC-32 over `bytes`: start with `crc: 0`, feed the pieces in order. Eight bytes
/// per step (slicing by 8), then one at a time.
public func crc32(_ bytes: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
    guard let base = bytes.baseAddress else { return crc }
    var c = ~crc
    let n = bytes.count
    crcTables.withUnsafeBufferPointer { tables in
        let t = tables.baseAddress!
        var i = 0
        while i + 8 <= n {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let lo = c ^ UInt32(truncatingIfNeeded: word), hi = UInt32(truncatingIfNeeded: word >> 32)
            c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                ^ t[256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
            i += 8
        }
        while i < n {
            c = t[Int((c ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (c >> 8)
            i += 1
        }
    }
    return ~c
}

/// The CRC-32 of `bytes[range]`.
public func crc32(_ bytes: [UInt8], _ range: Range<Int>? = nil, crc: UInt32 = 0) -> UInt32 {
    let r = range ?? 0..<bytes.count
    return bytes.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[r]), crc: crc) }
}

/// SHA-256 of `bytes`, streaming: `update` any number of times, then `finish` once.
public struct SHA256 {
    private var h: [UInt32] = [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a,
                               0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19]
    private var block = [UInt8](repeating: 0, count: 64)
    private var filled = 0
    private var length: UInt64 = 0
    /// The message schedule (scratch).
    private var w = [UInt32](repeating: 0, count: 64)

    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        length &+= UInt64(bytes.count)
        guard let base = bytes.baseAddress else { return }
        var i = 0
        while i < bytes.count {
            if filled == 0 && bytes.count - i >= 64 {
                compress(base + i)
                i += 64
                continue
            }
            let n = min(64 - filled, bytes.count - i)
            for j in 0..<n { block[filled + j] = bytes[i + j] }
            filled += n
            i += n
            if filled == 64 {
                let copy = block
                copy.withUnsafeBytes { compress($0.baseAddress!) }
                filled = 0
            }
        }
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The digest (32 bytes); the value is consumed.
    public consuming func finish() -> [UInt8] {
        let bits = length &* 8
        var pad: [UInt8] = [0x80] + [UInt8](repeating: 0, count: (55 - Int(length % 64) + 64) % 64)
        for s in stride(from: 56, through: 0, by: -8) { pad.append(UInt8(truncatingIfNeeded: bits >> UInt64(s))) }
        let saved = length
        update(pad)
        length = saved
        var out: [UInt8] = []
        for word in h { for s in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: word >> UInt32(s))) } }
        return out
    }

    /// One 64-byte block at `p`.
    private mutating func compress(_ p: UnsafeRawPointer) {
        for t in 0..<16 {
            w[t] = UInt32(p.load(fromByteOffset: 4 * t, as: UInt8.self)) << 24
                | UInt32(p.load(fromByteOffset: 4 * t + 1, as: UInt8.self)) << 16
                | UInt32(p.load(fromByteOffset: 4 * t + 2, as: UInt8.self)) << 8
                | UInt32(p.load(fromByteOffset: 4 * t + 3, as: UInt8.self))
        }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }
        for t in 16..<64 {
            let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
            let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        for t in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ SHA256.k[t] &+ w[t]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d
        h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
    }
}

/// Lowercase hex of `bytes`.
public func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
    return String(decoding: out, as: UTF8.self)
}

/// SHA-256 of `bytes` as lowercase hex.
public func sha256Hex(_ bytes: [UInt8]) -> String {
    var s = SHA256()
    s.update(bytes)
    return hexString(s.finish())
}
