// Diagnostics: an error at a source location, rendered the way compilers do —
//
//   tiny.graph:7:5: error: unknown op 'conv2' (did you mean 'conv2d'?)
//   c = conv2(x, filters=8)
//       ^
//
// followed by notes (for example where each input of a mismatched node was defined), rendered
// the same way with "note:".

public struct Diagnostic: Error, Sendable, CustomStringConvertible {
    public var file: String
    /// 1-based.
    public var line: Int
    /// 1-based, counting Unicode scalars; a tab counts as one column.
    public var column: Int
    public var message: String
    /// The text of that line (without its line terminator).
    public var sourceLine: String
    public var notes: [Diagnostic]

    public init(file: String, line: Int, column: Int, message: String, sourceLine: String,
                notes: [Diagnostic] = []) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.sourceLine = sourceLine
        self.notes = notes
    }

    public var description: String { rendered(as: "error") }

    private func rendered(as severity: String) -> String {
        var s = "\(file):\(line):\(column): \(severity): \(message)\n\(sourceLine)\n"
        s += String(repeating: " ", count: max(0, column - 1)) + "^\n"
        for note in notes { s += note.rendered(as: "note") }
        return s
    }
}

/// A position in the source: 1-based line and column.
struct Loc: Hashable, Sendable {
    var line: Int
    var col: Int
}

/// The text being compiled, split into lines for diagnostics.
struct SourceFile: Sendable {
    let name: String
    let lines: [String]

    init(name: String, scalars: [Unicode.Scalar]) {
        self.name = name
        var lines: [String] = []
        var current = String.UnicodeScalarView()
        for s in scalars {
            if s == "\n" {
                lines.append(Self.trimmedCR(current))
                current = String.UnicodeScalarView()
            } else {
                current.append(s)
            }
        }
        lines.append(Self.trimmedCR(current))
        self.lines = lines
    }

    private static func trimmedCR(_ v: String.UnicodeScalarView) -> String {
        var v = v
        if v.last == "\r" { v.removeLast() }
        return String(v)
    }

    func line(_ n: Int) -> String { n >= 1 && n <= lines.count ? lines[n - 1] : "" }

    func error(_ loc: Loc, _ message: String, notes: [Diagnostic] = []) -> Diagnostic {
        Diagnostic(file: name, line: loc.line, column: loc.col, message: message,
                   sourceLine: line(loc.line), notes: notes)
    }

    func note(_ loc: Loc, _ message: String) -> Diagnostic {
        Diagnostic(file: name, line: loc.line, column: loc.col, message: message, sourceLine: line(loc.line))
    }
}

// MARK: - "did you mean"

/// The candidate closest to `name` by edit distance (a transposition counts as one edit), if
/// it is close enough to be a plausible typo.
func closest(to name: String, among candidates: [String]) -> String? {
    let a = Array(name.lowercased().unicodeScalars)
    guard !a.isEmpty, a.count <= 64 else { return nil }
    let limit = a.count <= 2 ? 1 : (a.count <= 5 ? 2 : 3)
    var best: (String, Int)?
    for c in candidates where c != name {
        let b = Array(c.lowercased().unicodeScalars)
        guard abs(b.count - a.count) <= limit, b.count <= 64 else { continue }
        let d = editDistance(a, b)
        guard d <= limit, d < max(a.count, b.count) else { continue }
        if let (_, bestDistance) = best, bestDistance <= d { continue }
        best = (c, d)
    }
    return best?.0
}

/// " (did you mean 'x'?)" or "".
func didYouMean(_ name: String, _ candidates: [String]) -> String {
    closest(to: name, among: candidates).map { " (did you mean '\($0)'?)" } ?? ""
}

/// Optimal-string-alignment distance.
private func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev2 = [Int](repeating: 0, count: b.count + 1)
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            var d = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d = min(d, prev2[j - 2] + 1) }
            cur[j] = d
        }
        (prev2, prev, cur) = (prev, cur, prev2)
    }
    return prev[b.count]
}
