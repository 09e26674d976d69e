// Attribute values as they appear in the graph language (`stride=2`, `padding=same`,
// `shape=[576]`) and the helpers ops use to read them with defaults and type checks.

public enum Attribute: Hashable, Sendable, CustomStringConvertible {
    case int(Int)
    case float(Double)
    case bool(Bool)
    case symbol(String)
    case ints([Int])

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .float(let v): return formatDouble(v)
        case .bool(let v): return v ? "true" : "false"
        case .symbol(let s): return s
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        }
    }

    public var kindName: String {
        switch self {
        case .int: return "integer"
        case .float: return "number"
        case .bool: return "boolean"
        case .symbol: return "name"
        case .ints: return "list of integers"
        }
    }
}

/// Formats a double so that parsing the text gives back the same double, with no needless
/// digits: `0.4`, `1e-06`, `4.0`.
public func formatDouble(_ v: Double) -> String { "\(v)" }

/// An error in an op's attributes; the frontend attaches the source location.
public struct AttributeError: Error, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case unknown(name: String, valid: [String])
        case wrongType(name: String, expected: String, got: String)
        case invalidValue(name: String, message: String)
        case missing(name: String)
    }
    public var kind: Kind

    public var message: String {
        switch kind {
        case .unknown(let name, let valid):
            let list = valid.isEmpty ? "it takes no attributes" : "valid: \(valid.joined(separator: ", "))"
            return "unknown attribute '\(name)' (\(list))"
        case .wrongType(let name, let expected, let got):
            return "attribute '\(name)' must be \(expected), got \(got)"
        case .invalidValue(let name, let message):
            return "attribute '\(name)': \(message)"
        case .missing(let name):
            return "missing attribute '\(name)'"
        }
    }
}

/// Reads attributes by name, consuming them, so that whatever is left over is reported as unknown.
public struct AttributeReader {
    private var remaining: [String: Attribute]
    private var known: [String] = []

    public init(_ attributes: [String: Attribute]) { remaining = attributes }

    public mutating func int(_ name: String, default value: Int? = nil) throws(AttributeError) -> Int {
        known.append(name)
        guard let a = remaining.removeValue(forKey: name) else {
            if let value { return value }
            throw AttributeError(kind: .missing(name: name))
        }
        if case .int(let v) = a { return v }
        throw AttributeError(kind: .wrongType(name: name, expected: "an integer", got: a.description))
    }

    public mutating func double(_ name: String, default value: Double? = nil) throws(AttributeError) -> Double {
        known.append(name)
        guard let a = remaining.removeValue(forKey: name) else {
            if let value { return value }
            throw AttributeError(kind: .missing(name: name))
        }
        switch a {
        case .int(let v): return Double(v)
        case .float(let v): return v
        default: throw AttributeError(kind: .wrongType(name: name, expected: "a number", got: a.description))
        }
    }

    public mutating func bool(_ name: String, default value: Bool? = nil) throws(AttributeError) -> Bool {
        known.append(name)
        guard let a = remaining.removeValue(forKey: name) else {
            if let value { return value }
            throw AttributeError(kind: .missing(name: name))
        }
        if case .bool(let v) = a { return v }
        throw AttributeError(kind: .wrongType(name: name, expected: "true or false", got: a.description))
    }

    public mutating func ints(_ name: String, default value: [Int]? = nil) throws(AttributeError) -> [Int] {
        known.append(name)
        guard let a = remaining.removeValue(forKey: name) else {
            if let value { return value }
            throw AttributeError(kind: .missing(name: name))
        }
        switch a {
        case .ints(let v): return v
        case .int(let v): return [v]
        default:
            throw AttributeError(kind: .wrongType(name: name, expected: "a list of integers", got: a.description))
        }
    }

    public mutating func choice<E: RawRepresentable & CaseIterable>(
        _ name: String, default value: E? = nil
    ) throws(AttributeError) -> E where E.RawValue == String {
        known.append(name)
        guard let a = remaining.removeValue(forKey: name) else {
            if let value { return value }
            throw AttributeError(kind: .missing(name: name))
        }
        let options = E.allCases.map(\.rawValue)
        if case .symbol(let s) = a, let v = E(rawValue: s) { return v }
        throw AttributeError(kind: .wrongType(
            name: name, expected: "one of " + options.joined(separator: ", "), got: a.description))
    }

    /// Throws for the first attribute nobody consumed (alphabetically, for stable messages).
    public func finish() throws(AttributeError) {
        if let name = remaining.keys.sorted().first {
            throw AttributeError(kind: .unknown(name: name, valid: known))
        }
    }
}
