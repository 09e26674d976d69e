// A small JSON codec for the structural sections of a .plan file (metadata, schedule, buffer
// layout), so that the runtime needs no Foundation. Two halves:
//   - `JSONValue` with a compact writer and a strict parser (RFC 8259; nesting limited to 64
//     levels; duplicate keys, lone surrogates, invalid UTF-8 and trailing bytes rejected, each
//     error with its byte offset);
//   - a `Swift.Encoder` / `Swift.Decoder` pair over `JSONValue`, so `Plan`'s synthesized
//     `Codable` conformances drive the format: a kernel added to `Kernel` is written and read
//     with no change here.
// Numbers keep their text: integers are written and read as decimal integers, floats with the
// shortest text that reads back to the same value (`Float.description`), so a round trip is
// exact. Non-finite floats, which JSON lacks, are the strings "nan", "inf" and "-inf". Object
// keys are written sorted (by UTF-8 bytes), so equal plans encode to equal bytes.

enum JSONValue {
    case null
    case bool(Bool)
    /// The number's text, as written.
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Keys in file order; no duplicates.
    case object([(String, JSONValue)])
}

// MARK: - Writing

extension JSONValue {
    func write(into out: inout [UInt8]) {
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .number(let s): out += Array(s.utf8)
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func writeString(_ s: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\t"): out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20: out += Array("\\u00".utf8) + [hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

// MARK: - Parsing

struct JSONSyntaxError: Error {
    /// Byte offset in the parsed text.
    var offset: Int
    var message: String
}

struct JSONParser {
    static let maxDepth = 64
    private let bytes: [UInt8]
    private var pos = 0

    /// Parses `bytes` as exactly one JSON value (surrounding whitespace allowed).
    static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        var p = JSONParser(bytes: bytes)
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.pos == bytes.count else { throw p.error("unexpected text after the JSON value") }
        return v
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(offset: pos, message: message) }

    private var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    private mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { pos += 1 }
    }

    private mutating func expect(_ c: UInt8) throws(JSONSyntaxError) {
        guard peek == c else {
            throw error(peek == nil ? "unexpected end of JSON, expected '\(Character(Unicode.Scalar(c)))'"
                                    : "expected '\(Character(Unicode.Scalar(c)))'")
        }
        pos += 1
    }

    private mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        skipSpace()
        guard depth < JSONParser.maxDepth else { throw error("JSON nested deeper than \(JSONParser.maxDepth) levels") }
        guard let c = peek else { throw error("unexpected end of JSON, expected a value") }
        switch c {
        case UInt8(ascii: "{"):
            pos += 1
            var members: [(String, JSONValue)] = []
            var seen = Set<String>()
            skipSpace()
            if peek == UInt8(ascii: "}") { pos += 1; return .object(members) }
            while true {
                skipSpace()
                let keyOffset = pos
                guard peek == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let key = try string()
                guard seen.insert(key).inserted else { throw JSONSyntaxError(offset: keyOffset, message: "duplicate key \"\(key)\"") }
                skipSpace()
                try expect(UInt8(ascii: ":"))
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                if peek == UInt8(ascii: ",") { pos += 1; continue }
                try expect(UInt8(ascii: "}"))
                return .object(members)
            }
        case UInt8(ascii: "["):
            pos += 1
            var items: [JSONValue] = []
            skipSpace()
            if peek == UInt8(ascii: "]") { pos += 1; return .array(items) }
            while true {
                items.append(try value(depth: depth + 1))
                skipSpace()
                if peek == UInt8(ascii: ",") { pos += 1; continue }
                try expect(UInt8(ascii: "]"))
                return .array(items)
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try number())
        default:
            throw error("unexpected byte 0x\(String(c, radix: 16)), expected a value")
        }
    }

    private mutating func literal(_ word: String) throws(JSONSyntaxError) {
        for b in word.utf8 {
            guard peek == b else { throw error("invalid literal, expected '\(word)'") }
            pos += 1
        }
    }

    private mutating func digits() -> Int {
        let start = pos
        while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { pos += 1 }
        return pos - start
    }

    private mutating func number() throws(JSONSyntaxError) -> String {
        let start = pos
        if peek == UInt8(ascii: "-") { pos += 1 }
        if peek == UInt8(ascii: "0") {
            pos += 1
        } else {
            guard digits() > 0 else { throw error("invalid number") }
        }
        if peek == UInt8(ascii: ".") {
            pos += 1
            guard digits() > 0 else { throw error("invalid number: no digits after '.'") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            pos += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { pos += 1 }
            guard digits() > 0 else { throw error("invalid number: no digits in the exponent") }
        }
        guard pos - start <= 64 else { throw JSONSyntaxError(offset: start, message: "number longer than 64 characters") }
        return String(decoding: bytes[start..<pos], as: UTF8.self)
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let c = peek else { throw error("unexpected end of JSON in a \\u escape") }
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit in a \\u escape")
            }
            v = v << 4 | UInt32(d)
            pos += 1
        }
        return v
    }

    private mutating func string() throws(JSONSyntaxError) -> String {
        let start = pos
        pos += 1  // the opening quote
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw JSONSyntaxError(offset: start, message: "unterminated string") }
            pos += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else {
                    throw JSONSyntaxError(offset: start, message: "string is not valid UTF-8")
                }
                return s
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw JSONSyntaxError(offset: start, message: "unterminated string") }
                pos += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard peek == UInt8(ascii: "\\") else { throw error("lone high surrogate in a \\u escape") }
                        pos += 1
                        guard peek == UInt8(ascii: "u") else { throw error("lone high surrogate in a \\u escape") }
                        pos += 1
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate in a \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("lone low surrogate in a \\u escape") }
                    out += Array(String(Character(u)).utf8)
                default:
                    throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
                }
            case 0..<0x20:
                throw error("control character 0x\(String(c, radix: 16)) in a string")
            default:
                out.append(c)
            }
        }
    }
}

// MARK: - Encoder

/// A value being built by the encoder: containers are references so nested containers can be
/// filled after they are handed out.
private final class EncodingNode {
    var single: JSONValue?
    var object: [String: EncodingNode]?
    var array: [EncodingNode]?

    var json: JSONValue {
        if let object {
            let keys = object.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            return .object(keys.map { ($0, object[$0]!.json) })
        }
        if let array { return .array(array.map(\.json)) }
        return single ?? .object([])
    }
}

private func number<F: BinaryFloatingPoint & LosslessStringConvertible>(_ v: F) -> JSONValue {
    if v.isNaN { return .string("nan") }
    if v.isInfinite { return .string(v < 0 ? "-inf" : "inf") }
    return .number(v.description)
}

/// Encodes `value` as compact JSON bytes with sorted keys.
func jsonEncode<T: Encodable>(_ value: T) throws -> [UInt8] {
    let node = EncodingNode()
    try value.encode(to: NodeEncoder(node: node, codingPath: []))
    var out: [UInt8] = []
    node.json.write(into: &out)
    return out
}

private struct NodeEncoder: Encoder {
    let node: EncodingNode
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if node.object == nil { node.object = [:] }
        return KeyedEncodingContainer(KeyedEncoder<Key>(node: node, codingPath: codingPath))
    }
    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if node.array == nil { node.array = [] }
        return UnkeyedEncoder(node: node, codingPath: codingPath)
    }
    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleEncoder(node: node, codingPath: codingPath)
    }
}

private struct SingleEncoder: SingleValueEncodingContainer {
    let node: EncodingNode
    var codingPath: [any CodingKey]
    mutating func encodeNil() { node.single = .null }
    mutating func encode(_ v: Bool) { node.single = .bool(v) }
    mutating func encode(_ v: String) { node.single = .string(v) }
    mutating func encode(_ v: Double) { node.single = number(v) }
    mutating func encode(_ v: Float) { node.single = number(v) }
    mutating func encode(_ v: Int) { node.single = .number(String(v)) }
    mutating func encode(_ v: Int8) { node.single = .number(String(v)) }
    mutating func encode(_ v: Int16) { node.single = .number(String(v)) }
    mutating func encode(_ v: Int32) { node.single = .number(String(v)) }
    mutating func encode(_ v: Int64) { node.single = .number(String(v)) }
    mutating func encode(_ v: UInt) { node.single = .number(String(v)) }
    mutating func encode(_ v: UInt8) { node.single = .number(String(v)) }
    mutating func encode(_ v: UInt16) { node.single = .number(String(v)) }
    mutating func encode(_ v: UInt32) { node.single = .number(String(v)) }
    mutating func encode(_ v: UInt64) { node.single = .number(String(v)) }
    mutating func encode<T: Encodable>(_ v: T) throws { try v.encode(to: NodeEncoder(node: node, codingPath: codingPath)) }
}

private struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    var codingPath: [any CodingKey]

    private func child(_ key: Key) -> EncodingNode {
        let c = EncodingNode()
        node.object![key.stringValue] = c
        return c
    }
    private func put(_ v: JSONValue, _ key: Key) { child(key).single = v }

    mutating func encodeNil(forKey key: Key) { put(.null, key) }
    mutating func encode(_ v: Bool, forKey key: Key) { put(.bool(v), key) }
    mutating func encode(_ v: String, forKey key: Key) { put(.string(v), key) }
    mutating func encode(_ v: Double, forKey key: Key) { put(number(v), key) }
    mutating func encode(_ v: Float, forKey key: Key) { put(number(v), key) }
    mutating func encode(_ v: Int, forKey key: Key) { put(.number(String(v)), key) }
    mutating func encode(_ v: Int8, forKey key: Key) { put(.number(String(v)), key) }
    mutating func encode(_ v: Int16, forKey key: Key) { put(.number(String(v)), key) }
    mutating func encode(_ v: Int32, forKey key: Key) { put(.number(String(v)), key) }
    mutating func encode(_ v: Int64, forKey key: Key) { put(.number(String(v)), key) }
    mutating func encode(_ v: UInt, forKey key: Key) { put(.number(String(v)), key) }
    mutating func encode(_ v: UInt8, forKey key: Key) { put(.number(String(v)), key) }
    mutating func encode(_ v: UInt16, forKey key: Key) { put(.number(String(v)), key) }
    mutating func encode(_ v: UInt32, forKey key: Key) { put(.number(String(v)), key) }
    mutating func encode(_ v: UInt64, forKey key: Key) { put(.number(String(v)), key) }
    mutating func encode<T: Encodable>(_ v: T, forKey key: Key) throws {
        try v.encode(to: NodeEncoder(node: child(key), codingPath: codingPath + [key]))
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(node: child(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        NodeEncoder(node: child(key), codingPath: codingPath + [key]).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder {
        let c = EncodingNode()
        node.object!["super"] = c
        return NodeEncoder(node: c, codingPath: codingPath)
    }
    mutating func superEncoder(forKey key: Key) -> any Encoder {
        NodeEncoder(node: child(key), codingPath: codingPath + [key])
    }
}

private struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { intValue.map(String.init) ?? "" }
    init(_ i: Int) { intValue = i }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

private struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let node: EncodingNode
    var codingPath: [any CodingKey]
    var count: Int { node.array!.count }

    private func next() -> EncodingNode {
        let c = EncodingNode()
        node.array!.append(c)
        return c
    }
    private func put(_ v: JSONValue) { next().single = v }

    mutating func encodeNil() { put(.null) }
    mutating func encode(_ v: Bool) { put(.bool(v)) }
    mutating func encode(_ v: String) { put(.string(v)) }
    mutating func encode(_ v: Double) { put(number(v)) }
    mutating func encode(_ v: Float) { put(number(v)) }
    mutating func encode(_ v: Int) { put(.number(String(v))) }
    mutating func encode(_ v: Int8) { put(.number(String(v))) }
    mutating func encode(_ v: Int16) { put(.number(String(v))) }
    mutating func encode(_ v: Int32) { put(.number(String(v))) }
    mutating func encode(_ v: Int64) { put(.number(String(v))) }
    mutating func encode(_ v: UInt) { put(.number(String(v))) }
    mutating func encode(_ v: UInt8) { put(.number(String(v))) }
    mutating func encode(_ v: UInt16) { put(.number(String(v))) }
    mutating func encode(_ v: UInt32) { put(.number(String(v))) }
    mutating func encode(_ v: UInt64) { put(.number(String(v))) }
    mutating func encode<T: Encodable>(_ v: T) throws {
        let path = codingPath + [IndexKey(count)]
        try v.encode(to: NodeEncoder(node: next(), codingPath: path))
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = codingPath + [IndexKey(count)]
        return NodeEncoder(node: next(), codingPath: path).container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = codingPath + [IndexKey(count)]
        return NodeEncoder(node: next(), codingPath: path).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder {
        let path = codingPath + [IndexKey(count)]
        return NodeEncoder(node: next(), codingPath: path)
    }
}

// MARK: - Decoder

/// Decodes a `T` from JSON bytes. Syntax errors are `JSONSyntaxError`; type and key errors are
/// `DecodingError`s (see `describe(_:)`).
func jsonDecode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
    try T(from: NodeDecoder(value: try JSONParser.parse(bytes), codingPath: []))
}

/// "steps[3].kernel.conv2d: expected a number" — where and what, for a `DecodingError`.
func describe(_ error: DecodingError) -> String {
    func path(_ keys: [any CodingKey]) -> String {
        var s = ""
        for k in keys {
            if let i = k.intValue, k.stringValue == String(i) || k.stringValue.isEmpty { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + k.stringValue }
        }
        return s.isEmpty ? "the top level" : s
    }
    switch error {
    case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
        return "\(path(c.codingPath)): \(c.debugDescription)"
    case .keyNotFound(let key, let c):
        return "\(path(c.codingPath)): missing key \"\(key.stringValue)\""
    @unknown default:
        return "\(error)"
    }
}

private func kind(_ v: JSONValue) -> String {
    switch v {
    case .null: return "null"
    case .bool: return "a boolean"
    case .number(let s): return "the number \(s)"
    case .string: return "a string"
    case .array: return "an array"
    case .object: return "an object"
    }
}

private func mismatch(_ expected: String, _ v: JSONValue, _ path: [any CodingKey]) -> DecodingError {
    .typeMismatch(Any.self, .init(codingPath: path, debugDescription: "expected \(expected), found \(kind(v))"))
}

private func decodeInteger<T: FixedWidthInteger>(_ v: JSONValue, _ path: [any CodingKey]) throws -> T {
    guard case .number(let s) = v, let n = T(s, radix: 10) else {
        throw mismatch("an integer in \(T.min)...\(T.max)", v, path)
    }
    return n
}

private func decodeFloat<F: BinaryFloatingPoint & LosslessStringConvertible>(_ v: JSONValue, _ path: [any CodingKey]) throws -> F {
    switch v {
    case .number(let s): if let f = F(s) { return f }
    case .string("nan"): return .nan
    case .string("inf"): return .infinity
    case .string("-inf"): return -.infinity
    default: break
    }
    throw mismatch("a number", v, path)
}

private struct NodeDecoder: Decoder {
    let value: JSONValue
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch("an object", value, codingPath) }
        return KeyedDecodingContainer(KeyedDecoder<Key>(members: members, codingPath: codingPath))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch("an array", value, codingPath) }
        return UnkeyedDecoder(items: items, codingPath: codingPath)
    }
    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleDecoder(value: value, codingPath: codingPath)
    }
}

private struct SingleDecoder: SingleValueDecodingContainer {
    let value: JSONValue
    var codingPath: [any CodingKey]
    func decodeNil() -> Bool { if case .null = value { return true } else { return false } }
    func decode(_ type: Bool.Type) throws -> Bool {
        guard case .bool(let b) = value else { throw mismatch("a boolean", value, codingPath) }
        return b
    }
    func decode(_ type: String.Type) throws -> String {
        guard case .string(let s) = value else { throw mismatch("a string", value, codingPath) }
        return s
    }
    func decode(_ type: Double.Type) throws -> Double { try decodeFloat(value, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { try decodeFloat(value, codingPath) }
    func decode(_ type: Int.Type) throws -> Int { try decodeInteger(value, codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decodeInteger(value, codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decodeInteger(value, codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decodeInteger(value, codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decodeInteger(value, codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try decodeInteger(value, codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decodeInteger(value, codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decodeInteger(value, codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decodeInteger(value, codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decodeInteger(value, codingPath) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: NodeDecoder(value: value, codingPath: codingPath)) }
}

private struct KeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [(String, JSONValue)]
    var codingPath: [any CodingKey]
    var allKeys: [Key] { members.compactMap { Key(stringValue: $0.0) } }

    func contains(_ key: Key) -> Bool { members.contains { $0.0 == key.stringValue } }

    private func child(_ key: Key) throws -> SingleDecoder {
        guard let v = members.first(where: { $0.0 == key.stringValue })?.1 else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing key"))
        }
        return SingleDecoder(value: v, codingPath: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { try child(key).decodeNil() }
    func decode(_ t: Bool.Type, forKey key: Key) throws -> Bool { try child(key).decode(t) }
    func decode(_ t: String.Type, forKey key: Key) throws -> String { try child(key).decode(t) }
    func decode(_ t: Double.Type, forKey key: Key) throws -> Double { try child(key).decode(t) }
    func decode(_ t: Float.Type, forKey key: Key) throws -> Float { try child(key).decode(t) }
    func decode(_ t: Int.Type, forKey key: Key) throws -> Int { try child(key).decode(t) }
    func decode(_ t: Int8.Type, forKey key: Key) throws -> Int8 { try child(key).decode(t) }
    func decode(_ t: Int16.Type, forKey key: Key) throws -> Int16 { try child(key).decode(t) }
    func decode(_ t: Int32.Type, forKey key: Key) throws -> Int32 { try child(key).decode(t) }
    func decode(_ t: Int64.Type, forKey key: Key) throws -> Int64 { try child(key).decode(t) }
    func decode(_ t: UInt.Type, forKey key: Key) throws -> UInt { try child(key).decode(t) }
    func decode(_ t: UInt8.Type, forKey key: Key) throws -> UInt8 { try child(key).decode(t) }
    func decode(_ t: UInt16.Type, forKey key: Key) throws -> UInt16 { try child(key).decode(t) }
    func decode(_ t: UInt32.Type, forKey key: Key) throws -> UInt32 { try child(key).decode(t) }
    func decode(_ t: UInt64.Type, forKey key: Key) throws -> UInt64 { try child(key).decode(t) }
    func decode<T: Decodable>(_ t: T.Type, forKey key: Key) throws -> T { try child(key).decode(t) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let c = try child(key)
        return try NodeDecoder(value: c.value, codingPath: c.codingPath).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let c = try child(key)
        return try NodeDecoder(value: c.value, codingPath: c.codingPath).unkeyedContainer()
    }
    func superDecoder() throws -> any Decoder {
        let v = members.first(where: { $0.0 == "super" })?.1 ?? .null
        return NodeDecoder(value: v, codingPath: codingPath)
    }
    func superDecoder(forKey key: Key) throws -> any Decoder {
        let c = try child(key)
        return NodeDecoder(value: c.value, codingPath: c.codingPath)
    }
}

private struct UnkeyedDecoder: UnkeyedDecodingContainer {
    let items: [JSONValue]
    var codingPath: [any CodingKey]
    var currentIndex = 0
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(items: [JSONValue], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    private mutating func next() throws -> SingleDecoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [IndexKey(currentIndex)], debugDescription: "array has only \(items.count) elements"))
        }
        defer { currentIndex += 1 }
        return SingleDecoder(value: items[currentIndex], codingPath: codingPath + [IndexKey(currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, case .null = items[currentIndex] else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode(_ t: Bool.Type) throws -> Bool { try next().decode(t) }
    mutating func decode(_ t: String.Type) throws -> String { try next().decode(t) }
    mutating func decode(_ t: Double.Type) throws -> Double { try next().decode(t) }
    mutating func decode(_ t: Float.Type) throws -> Float { try next().decode(t) }
    mutating func decode(_ t: Int.Type) throws -> Int { try next().decode(t) }
    mutating func decode(_ t: Int8.Type) throws -> Int8 { try next().decode(t) }
    mutating func decode(_ t: Int16.Type) throws -> Int16 { try next().decode(t) }
    mutating func decode(_ t: Int32.Type) throws -> Int32 { try next().decode(t) }
    mutating func decode(_ t: Int64.Type) throws -> Int64 { try next().decode(t) }
    mutating func decode(_ t: UInt.Type) throws -> UInt { try next().decode(t) }
    mutating func decode(_ t: UInt8.Type) throws -> UInt8 { try next().decode(t) }
    mutating func decode(_ t: UInt16.Type) throws -> UInt16 { try next().decode(t) }
    mutating func decode(_ t: UInt32.Type) throws -> UInt32 { try next().decode(t) }
    mutating func decode(_ t: UInt64.Type) throws -> UInt64 { try next().decode(t) }
    mutating func decode<T: Decodable>(_ t: T.Type) throws -> T { try next().decode(t) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let c = try next()
        return try NodeDecoder(value: c.value, codingPath: c.codingPath).container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let c = try next()
        return try NodeDecoder(value: c.value, codingPath: c.codingPath).unkeyedContainer()
    }
    mutating func superDecoder() throws -> any Decoder {
        let c = try next()
        return NodeDecoder(value: c.value, codingPath: c.codingPath)
    }
}
