// .npy format: magic "\x93NUMPY", version, header length, a Python-dict header, raw data.
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

/// Namespace for reading and writing .npy / .npz data.
public enum NumPyIO {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    /// Parses a complete .npy file (versions 1.0, 2.0, 3.0). `name` prefixes error messages.
    public static func readNPY(_ bytes: [UInt8], name: String = "array") throws(NumPyError) -> NDArray {
        func fail(_ what: String) -> NumPyError { NumPyError("\(name): \(what)") }
        guard bytes.count >= 10 else { throw fail("truncated .npy (\(bytes.count) bytes, need at least 10)") }
        guard bytes.starts(with: magic) else { throw fail("not a .npy file (bad magic)") }
        let major = bytes[6], minor = bytes[7]
        let headerStart: Int, headerLen: Int
        switch major {
        case 1:
            headerStart = 10
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated .npy header length") }
            headerStart = 12
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        default:
            throw fail("unsupported .npy version \(major).\(minor)")
        }
        guard headerLen <= bytes.count - headerStart else {
            throw fail("truncated .npy header (declares \(headerLen) bytes, \(bytes.count - headerStart) present)")
        }
        let dataStart = headerStart + headerLen
        var parser = HeaderParser(bytes: bytes, pos: headerStart, end: dataStart)
        let header: (descr: String, shape: [Int])
        do throws(HeaderParser.Failure) {
            header = try parser.parseHeader()
        } catch {
            throw fail("bad .npy header: \(error.message)")
        }
        let dtype = try dtypeFor(descr: header.descr, fail: fail)
        guard let count = NDArray.elementCount(header.shape) else {
            throw fail("invalid shape \(header.shape) (negative or overflowing)")
        }
        let (nbytes, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow else { throw fail("shape \(header.shape) is too large") }
        let present = bytes.count - dataStart
        guard present == nbytes else {
            throw fail("data is \(present) bytes but shape \(header.shape) of \(dtype.rawValue) needs \(nbytes)")
        }
        return NDArray(dtype: dtype, shape: header.shape, data: Array(bytes[dataStart...]))
    }

    /// Serializes to .npy (version 1.0, or 2.0 if the header needs it), header padded to 64 bytes.
    public static func writeNPY(_ a: NDArray) -> [UInt8] {
        let shape = a.shape.count == 1 ? "(\(a.shape[0]),)" : "(" + a.shape.map(String.init).joined(separator: ", ") + ")"
        let dict = Array("{'descr': '\(a.dtype.rawValue)', 'fortran_order': False, 'shape': \(shape), }".utf8)
        var prefix = 10
        if dict.count + 1 + 64 > 0xFFFF { prefix = 12 }
        let padded = (prefix + dict.count + 1 + 63) / 64 * 64 - prefix  // dict + spaces + "\n"
        var out = magic
        out.reserveCapacity(prefix + padded + a.data.count)
        out += prefix == 10 ? [1, 0] : [2, 0]
        if prefix == 10 { appendLE(UInt16(padded), to: &out) } else { appendLE(UInt32(padded), to: &out) }
        out += dict
        out += [UInt8](repeating: 0x20, count: padded - dict.count - 1)
        out.append(0x0A)
        out += a.data
        return out
    }

    static func dtypeFor(descr: String, fail: (String) -> NumPyError) throws(NumPyError) -> NDArray.DType {
        if let t = NDArray.DType(rawValue: descr) { return t }
        let order = descr.first, kind = descr.dropFirst()
        if kind == "u1", let order, "<>=|".contains(order) { return .uint8 }
        if kind.hasPrefix("O") { throw fail("object arrays ('\(descr)') are not supported") }
        if order == ">" { throw fail("big-endian dtype '\(descr)' is not supported") }
        throw fail("unsupported dtype '\(descr)' (supported: <f4 <f8 <i4 <i8 |u1)")
    }
}

/// Minimal parser for the Python literal dict in a .npy header.
struct HeaderParser {
    struct Failure: Error { var message: String }
    indirect enum Value { case str(String), int(Int), bool(Bool), none, seq([Value]) }

    let bytes: [UInt8]
    var pos: Int
    let end: Int

    mutating func parseHeader() throws(Failure) -> (descr: String, shape: [Int]) {
        var descr: String?, fortran: Bool?, shape: [Int]?
        try expect(UInt8(ascii: "{"))
        while true {
            skipSpace()
            if peek() == UInt8(ascii: "}") { pos += 1; break }
            guard case .str(let key) = try value(depth: 0) else { throw Failure(message: "dict key is not a string") }
            try expect(UInt8(ascii: ":"))
            let v = try value(depth: 0)
            switch key {
            case "descr":
                guard descr == nil else { throw Failure(message: "duplicate key 'descr'") }
                switch v {
                case .str(let s): descr = s
                case .seq: throw Failure(message: "structured dtypes are not supported")
                default: throw Failure(message: "'descr' is not a string")
                }
            case "fortran_order":
                guard fortran == nil else { throw Failure(message: "duplicate key 'fortran_order'") }
                guard case .bool(let b) = v else { throw Failure(message: "'fortran_order' is not True/False") }
                fortran = b
            case "shape":
                guard shape == nil else { throw Failure(message: "duplicate key 'shape'") }
                guard case .seq(let items) = v else { throw Failure(message: "'shape' is not a tuple") }
                var dims = [Int]()
                for item in items {
                    guard case .int(let d) = item, d >= 0 else { throw Failure(message: "'shape' entries must be non-negative integers") }
                    dims.append(d)
                }
                shape = dims
            default:
                throw Failure(message: "unexpected key '\(key)'")
            }
            skipSpace()
            if peek() == UInt8(ascii: ",") { pos += 1 } else if peek() != UInt8(ascii: "}") {
                throw Failure(message: "expected ',' or '}' at byte \(pos)")
            }
        }
        skipSpace()
        guard pos == end else { throw Failure(message: "unexpected text after the dict") }
        guard let descr else { throw Failure(message: "missing key 'descr'") }
        guard let fortran else { throw Failure(message: "missing key 'fortran_order'") }
        guard let shape else { throw Failure(message: "missing key 'shape'") }
        if fortran { throw Failure(message: "fortran_order=True arrays are not supported") }
        return (descr, shape)
    }

    func peek() -> UInt8? { pos < end ? bytes[pos] : nil }

    mutating func skipSpace() {
        while let c = peek(), c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { pos += 1 }
    }

    mutating func expect(_ c: UInt8) throws(Failure) {
        skipSpace()
        guard peek() == c else { throw Failure(message: "expected '\(Character(Unicode.Scalar(c)))' at byte \(pos)") }
        pos += 1
    }

    mutating func value(depth: Int) throws(Failure) -> Value {
        guard depth < 16 else { throw Failure(message: "nesting too deep") }
        skipSpace()
        guard let c = peek() else { throw Failure(message: "unexpected end of header") }
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            pos += 1
            let start = pos
            while let d = peek(), d != c { pos += 1 }
            guard pos < end else { throw Failure(message: "unterminated string") }
            pos += 1
            return .str(String(decoding: bytes[start..<pos - 1], as: UTF8.self))
        case UInt8(ascii: "("), UInt8(ascii: "["):
            let close = c == UInt8(ascii: "(") ? UInt8(ascii: ")") : UInt8(ascii: "]")
            pos += 1
            var items = [Value]()
            while true {
                skipSpace()
                if peek() == close { pos += 1; return .seq(items) }
                items.append(try value(depth: depth + 1))
                skipSpace()
                if peek() == UInt8(ascii: ",") { pos += 1 } else if peek() != close {
                    throw Failure(message: "expected ',' or '\(Character(Unicode.Scalar(close)))' at byte \(pos)")
                }
            }
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let negative = c == UInt8(ascii: "-")
            if negative { pos += 1 }
            var n = 0, digits = 0
            while let d = peek(), d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") {
                let (m, o1) = n.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int(d - UInt8(ascii: "0")))
                guard !o1, !o2 else { throw Failure(message: "integer too large") }
                n = s; digits += 1; pos += 1
            }
            guard digits > 0 else { throw Failure(message: "malformed integer") }
            if peek() == UInt8(ascii: "L") { pos += 1 }  // Python 2 long literal
            return .int(negative ? -n : n)
        default:
            let start = pos
            while let d = peek(), (d | 0x20) >= UInt8(ascii: "a"), (d | 0x20) <= UInt8(ascii: "z") { pos += 1 }
            switch String(decoding: bytes[start..<pos], as: UTF8.self) {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default: throw Failure(message: "unexpected character at byte \(start)")
            }
        }
    }
}
