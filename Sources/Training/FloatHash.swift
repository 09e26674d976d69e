// FNV-1a (64-bit) over the bytes of float values, each value's four bytes low first: the hash
// checkpoints and event logs record of a teacher's probabilities and of the values `--init`
// loaded, so a run says which numbers it used whatever the files were called.

struct FloatHash {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ values: [Float]) {
        for v in values {
            var b = v.bitPattern
            for _ in 0..<4 {
                value = (value ^ UInt64(b & 0xff)) &* 0x100_0000_01b3
                b >>= 8
            }
        }
    }

    /// Lower-case hexadecimal, without leading zeros (as the checkpoints have recorded it).
    var hex: String { String(value, radix: 16) }
}
