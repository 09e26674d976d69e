// A small command-line parser: each command declares its options once, and the same
// declaration drives parsing, errors ("unknown option '--sumary' (did you mean '--summary'?)")
// and the --help text.

import GraphIR

struct OptionSpec {
    enum Kind { case flag, value(String), repeated(String) }
    var name: String
    var kind: Kind
    var help: String
}

struct CommandSpec {
    var name: String
    var usage: String
    var summary: String
    var options: [OptionSpec]
    var details: String = ""

    var help: String {
        var s = "USAGE: fergc \(usage)\n\n\(summary)\n"
        if !options.isEmpty {
            s += "\nOPTIONS:\n"
            let rows = options.map { o -> (String, String) in
                switch o.kind {
                case .flag: return ("--\(o.name)", o.help)
                case .value(let v), .repeated(let v): return ("--\(o.name) \(v)", o.help)
                }
            } + [("-h, --help", "Show this help.")]
            let width = rows.map(\.0.count).max() ?? 0
            for (l, r) in rows { s += "  " + l + String(repeating: " ", count: width - l.count + 2) + r + "\n" }
        }
        if !details.isEmpty { s += "\n" + details + "\n" }
        return s
    }
}

struct UsageError: Error, CustomStringConvertible {
    var message: String
    var command: String
    var description: String { "error: \(message)\nRun 'fergc \(command) --help' for usage." }
}

struct HelpRequested: Error {}

struct ParsedArguments {
    var positional: [String] = []
    var flags: Set<String> = []
    var values: [String: [String]] = [:]

    func flag(_ name: String) -> Bool { flags.contains(name) }
    func value(_ name: String) -> String? { values[name]?.last }
    func all(_ name: String) -> [String] { values[name] ?? [] }

    func int(_ name: String, _ command: String, range: ClosedRange<Int> = 1...Int.max) throws -> Int? {
        guard let v = value(name) else { return nil }
        guard let n = Int(v), range.contains(n) else {
            throw UsageError(message: "--\(name) expects an integer in \(range.lowerBound)...\(range.upperBound == Int.max ? "" : String(range.upperBound)), got '\(v)'", command: command)
        }
        return n
    }
}

func parseArguments(_ args: [String], _ spec: CommandSpec) throws -> ParsedArguments {
    var result = ParsedArguments()
    var i = 0
    var onlyPositional = false
    while i < args.count {
        let a = args[i]
        i += 1
        if onlyPositional || !a.hasPrefix("-") || a == "-" {
            result.positional.append(a)
            continue
        }
        if a == "--" { onlyPositional = true; continue }
        if a == "-h" || a == "--help" { throw HelpRequested() }
        var name = String(a.drop(while: { $0 == "-" }))
        if name == "o" { name = "output" }  // the one short option: -o FILE
        var inline: String?
        if let eq = name.firstIndex(of: "=") {
            inline = String(name[name.index(after: eq)...])
            name = String(name[..<eq])
        }
        guard let o = spec.options.first(where: { $0.name == name }) else {
            let hint = closestMatch(name, among: spec.options.map(\.name)).map { " (did you mean '--\($0)'?)" } ?? ""
            throw UsageError(message: "unknown option '\(a)'\(hint)", command: spec.name)
        }
        switch o.kind {
        case .flag:
            if inline != nil { throw UsageError(message: "option '--\(name)' takes no value", command: spec.name) }
            result.flags.insert(name)
        case .value(let v), .repeated(let v):
            let value: String
            if let inline { value = inline } else {
                guard i < args.count else { throw UsageError(message: "option '--\(name)' needs a value (\(v))", command: spec.name) }
                value = args[i]
                i += 1
            }
            result.values[name, default: []].append(value)
        }
    }
    return result
}

/// "5400", "90m", "1h30m", "1.5h", "45s" -> seconds: a number of seconds, or numbers with the
/// units h, m and s in that order, each at most once; more than 0 and at most a year.
func parseDuration(_ s: String, option: String, command: String) throws -> Double {
    let bad = UsageError(message: "\(option) expects a time like 5400 (seconds), 90m, 1h30m or 2h, more than 0 and at most a year, got '\(s)'", command: command)
    var seconds = 0.0
    if s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), let v = Double(s) {
        seconds = v
    } else {
        let units: [(Character, Double)] = [("h", 3600), ("m", 60), ("s", 1)]
        var next = 0, number = "", sawUnit = false
        for c in s {
            if c.isASCII, c.isNumber || c == "." { number.append(c); continue }
            guard let k = units[next...].firstIndex(where: { $0.0 == c }), let v = Double(number) else { throw bad }
            seconds += v * units[k].1
            next = k + 1
            number = ""
            sawUnit = true
        }
        // Nothing may follow the last unit: "1h30" is refused, not read as 1h30s or 1h30m.
        guard sawUnit, number.isEmpty else { throw bad }
    }
    guard seconds.isFinite, seconds > 0, seconds <= 366 * 86400 else { throw bad }
    return seconds
}

/// 5400 -> "1h30m", 45 -> "45s", 0.5 -> "0.5s": a duration as `parseDuration` reads it.
func durationWords(_ seconds: Double) -> String {
    guard seconds == seconds.rounded(), seconds >= 1 else { return String(format: "%gs", seconds) }
    let t = Int(seconds)
    let parts = [(t / 3600, "h"), (t % 3600 / 60, "m"), (t % 60, "s")].filter { $0.0 > 0 }
    return parts.map { "\($0.0)\($0.1)" }.joined()
}
