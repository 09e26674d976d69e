// The protobuf wire format, by hand: the part of it ONNX files use. A reader that checks every
// length against the bytes it has (and against the message that encloses it), accepts packed and
// unpacked repeated scalars, and reports problems with the field path and byte offset; and a
// writer that produces the canonical encoding (fields in the order given, repeated scalars packed).

/// A problem in a protobuf message: what, where (a field path such as
/// `model.graph.node[3].attribute[0].ints`) and at which byte offset of the file.
public struct ProtobufError: Error, Sendable, CustomStringConvertible, Equatable {
    public var path: String
    public var offset: Int
    public var message: String
    public init(path: String, offset: Int, message: String) {
        self.path = path
        self.offset = offset
        self.message = message
    }
    public var description: String { "\(path) at byte offset \(offset): \(message)" }
}

/// The wire types of protobuf (groups, 3 and 4, are deprecated and refused).
public enum WireType: Int, Sendable {
    case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5

    var name: String {
        switch self {
        case .varint: return "varint"
        case .fixed64: return "64-bit"
        case .lengthDelimited: return "length-delimited"
        case .fixed32: return "32-bit"
        }
    }
}

/// One field as it appears on the wire: its number, wire type, and where its payload is.
public struct WireField: Sendable {
    public var number: Int
    public var wireType: WireType
    /// Offset of the field's tag in the buffer.
    public var tagOffset: Int
    /// For varint fields, the value; for fixed fields, the raw bits.
    public var scalar: UInt64
    /// For length-delimited fields, the payload's range in the buffer.
    public var payload: Range<Int>
}

/// Reads the fields of one message, in order, from a byte buffer shared by all readers of a
/// file. Every length is checked against the end of the enclosing message.
public struct WireReader {
    public let bytes: [UInt8]
    public private(set) var position: Int
    public let end: Int
    /// The field path for errors, e.g. `model.graph.node[2]`.
    public let path: String
    /// Names of the message's fields by number, for errors about a field before it is decoded.
    public var fieldNames: [Int: String] = [:]

    public init(_ bytes: [UInt8], range: Range<Int>? = nil, path: String) {
        self.bytes = bytes
        let r = range ?? 0..<bytes.count
        position = r.lowerBound
        end = r.upperBound
        self.path = path
    }

    public var atEnd: Bool { position >= end }

    func error(_ message: String, at offset: Int? = nil, field: String? = nil) -> ProtobufError {
        ProtobufError(path: field.map { path.isEmpty ? $0 : path + "." + $0 } ?? path, offset: offset ?? position, message: message)
    }

    /// A base-128 varint of at most 10 bytes whose value fits in 64 bits.
    mutating func varint(field: String? = nil) throws(ProtobufError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else {
                throw error("truncated varint (the message ends at offset \(end))", at: start, field: field)
            }
            let b = bytes[position]
            position += 1
            if shift == 63 && b > 1 {
                throw error("varint overflows 64 bits", at: start, field: field)
            }
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw error("varint longer than 10 bytes", at: start, field: field) }
        }
    }

    mutating func fixed(_ n: Int, field: String? = nil) throws(ProtobufError) -> UInt64 {
        guard end - position >= n else {
            throw error("truncated \(n * 8)-bit value: \(end - position) bytes left in the message", field: field)
        }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
        position += n
        return v
    }

    /// The next field, or nil at the end of the message.
    public mutating func next() throws(ProtobufError) -> WireField? {
        guard position < end else { return nil }
        let tagOffset = position
        let key = try varint()
        guard key >> 3 >= 1, key >> 3 <= 536_870_911 else {
            throw error("invalid field number \(key >> 3)", at: tagOffset)
        }
        let number = Int(key >> 3)
        guard let wt = WireType(rawValue: Int(key & 7)) else {
            let k = key & 7
            throw error("field \(number) has wire type \(k)\(k == 3 || k == 4 ? " (groups are not supported)" : " (not a protobuf wire type)")", at: tagOffset)
        }
        var f = WireField(number: number, wireType: wt, tagOffset: tagOffset, scalar: 0, payload: position..<position)
        switch wt {
        case .varint: f.scalar = try varint()
        case .fixed64: f.scalar = try fixed(8)
        case .fixed32: f.scalar = try fixed(4)
        case .lengthDelimited:
            let lenOffset = position
            let len = try varint()
            guard len <= UInt64(end - position) else {
                let label = fieldNames[number].map { "field \(number) (\($0))" } ?? "field \(number)"
                throw error("\(label): length \(len) runs past the end of the enclosing message (\(end - position) bytes left)", at: lenOffset)
            }
            f.payload = position..<(position + Int(len))
            position += Int(len)
        }
        return f
    }
}

// MARK: - Typed access to a field's value

extension WireReader {
    func expect(_ f: WireField, _ wt: WireType, _ name: String) throws(ProtobufError) {
        guard f.wireType == wt else {
            throw error("expected a \(wt.name) field, got \(f.wireType.name)", at: f.tagOffset, field: name)
        }
    }

    public func int64(_ f: WireField, _ name: String) throws(ProtobufError) -> Int64 {
        try expect(f, .varint, name)
        return Int64(bitPattern: f.scalar)
    }

    /// An int32 (negative values are sign-extended to 64 bits on the wire).
    public func int32(_ f: WireField, _ name: String) throws(ProtobufError) -> Int32 {
        try expect(f, .varint, name)
        let v = Int64(bitPattern: f.scalar)
        guard let r = Int32(exactly: v) else { throw error("value \(v) does not fit in int32", at: f.tagOffset, field: name) }
        return r
    }

    public func float(_ f: WireField, _ name: String) throws(ProtobufError) -> Float {
        try expect(f, .fixed32, name)
        return Float(bitPattern: UInt32(truncatingIfNeeded: f.scalar))
    }

    public func bytesValue(_ f: WireField, _ name: String) throws(ProtobufError) -> [UInt8] {
        try expect(f, .lengthDelimited, name)
        return Array(bytes[f.payload])
    }

    /// A string field: UTF-8, checked.
    public func string(_ f: WireField, _ name: String) throws(ProtobufError) -> String {
        try expect(f, .lengthDelimited, name)
        guard let s = String(validating: bytes[f.payload], as: UTF8.self) else {
            throw error("string is not valid UTF-8", at: f.payload.lowerBound, field: name)
        }
        return s
    }

    /// A reader for an embedded message.
    public func message(_ f: WireField, _ name: String) throws(ProtobufError) -> WireReader {
        try expect(f, .lengthDelimited, name)
        return WireReader(bytes, range: f.payload, path: path.isEmpty ? name : path + "." + name)
    }

    /// Appends the values of a repeated varint field, packed (length-delimited) or not.
    public func appendVarints(_ f: WireField, _ name: String, to out: inout [Int64]) throws(ProtobufError) {
        switch f.wireType {
        case .varint: out.append(Int64(bitPattern: f.scalar))
        case .lengthDelimited:
            var r = WireReader(bytes, range: f.payload, path: path)
            while !r.atEnd { out.append(Int64(bitPattern: try r.varint(field: name))) }
        case .fixed32, .fixed64:
            throw error("expected varints (packed or not), got a \(f.wireType.name) field", at: f.tagOffset, field: name)
        }
    }

    /// Appends the values of a repeated fixed-width field (4 or 8 bytes each), packed or not.
    public func appendFixed(_ f: WireField, _ name: String, width: Int, to out: inout [UInt64]) throws(ProtobufError) {
        let wt: WireType = width == 4 ? .fixed32 : .fixed64
        switch f.wireType {
        case wt: out.append(f.scalar)
        case .lengthDelimited:
            guard f.payload.count % width == 0 else {
                throw error("packed \(width * 8)-bit values: length \(f.payload.count) is not a multiple of \(width)", at: f.payload.lowerBound, field: name)
            }
            out.reserveCapacity(out.count + f.payload.count / width)
            var i = f.payload.lowerBound
            while i < f.payload.upperBound {
                var v: UInt64 = 0
                for k in 0..<width { v |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
                out.append(v)
                i += width
            }
        default:
            throw error("expected \(width * 8)-bit values (packed or not), got a \(f.wireType.name) field", at: f.tagOffset, field: name)
        }
    }
}

// MARK: - Writing

/// Builds one message's bytes. Embedded messages are built by their own writer and appended.
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func tag(_ number: Int, _ wt: WireType) { varint(UInt64(number) << 3 | UInt64(wt.rawValue)) }

    public mutating func int64(_ number: Int, _ v: Int64) {
        tag(number, .varint)
        varint(UInt64(bitPattern: v))
    }

    public mutating func float(_ number: Int, _ v: Float) {
        tag(number, .fixed32)
        let b = v.bitPattern
        for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * UInt32(k)))) }
    }

    public mutating func bytesField(_ number: Int, _ v: [UInt8]) {
        tag(number, .lengthDelimited)
        varint(UInt64(v.count))
        bytes += v
    }

    public mutating func string(_ number: Int, _ s: String) { bytesField(number, Array(s.utf8)) }

    public mutating func message(_ number: Int, _ m: WireWriter) { bytesField(number, m.bytes) }

    /// A repeated varint field, packed.
    public mutating func packedInt64(_ number: Int, _ values: [Int64]) {
        var inner = WireWriter()
        for v in values { inner.varint(UInt64(bitPattern: v)) }
        bytesField(number, inner.bytes)
    }

    /// A repeated float field, packed.
    public mutating func packedFloats(_ number: Int, _ values: [Float]) {
        var raw: [UInt8] = []
        raw.reserveCapacity(values.count * 4)
        for v in values {
            let b = v.bitPattern
            for k in 0..<4 { raw.append(UInt8(truncatingIfNeeded: b >> (8 * UInt32(k)))) }
        }
        bytesField(number, raw)
    }
}
