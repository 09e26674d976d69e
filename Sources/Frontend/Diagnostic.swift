// Diagnostics: an error at a source location, rendered the way compilers do —
//
//   tiny.graph:7:5: error: unknown op 'conv2' (did you mean 'conv2d'?)
//   c = conv2(x, filters=8)
//       ^
//
// (the quoted line and the caret left out when the line is empty), followed by notes (for
// example where each input of a mismatched node was defined), rendered the same way with "note:".

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
        var s = "\(file):\(line):\(column): \(severity): \(message)\n"
        // An empty line (or a file that could not be read) has nothing for a caret to point at.
        if !sourceLine.isEmpty {
            s += "\(sourceLine)\n" + String(repeating: " ", count: max(0, column - 1)) + "^\n"
        }
        for note in notes { s += note.rendered(as: "note") }
        return s
    }
}

/// A position in the source: 1-based line and column, in the file compiled (`file` 0) or in one
/// it imports (its index in `SourceSet.files`).
struct Loc: Hashable, Sendable {
    var line: Int
    var col: Int
    var file = 0
}

/// The files of one compile: the one compiled first, then those it imports in the order they
/// were read. A location's diagnostic quotes the file it is in.
struct SourceSet: Sendable {
    var files: [SourceFile]

    func error(_ loc: Loc, _ message: String, notes: [Diagnostic] = []) -> Diagnostic {
        file(loc).error(loc, message, notes: notes)
    }

    func note(_ loc: Loc, _ message: String) -> Diagnostic {
        file(loc).note(loc, message)
    }

    /// The name of the file `loc` is in.
    func name(_ loc: Loc) -> String { file(loc).name }

    private func file(_ loc: Loc) -> SourceFile { files.indices.contains(loc.file) ? files[loc.file] : files[0] }
}

/// The text being compiled; a line's text is made only when a diagnostic quotes it (making
/// every line a String up front was a tenth of a compile).
struct SourceFile: Sendable {
    let name: String
    private let scalars: [Unicode.Scalar]
    /// The index in `scalars` where each line starts (after a "\n").
    private let lineStarts: [Int]

    init(name: String, scalars: [Unicode.Scalar]) {
        self.name = name
        self.scalars = scalars
        var starts = [0]
        for (i, s) in scalars.enumerated() where s == "\n" { starts.append(i + 1) }
        lineStarts = starts
    }

    /// Line `n` (1-based) without its terminator ("\n", and a "\r" before it), or "".
    func line(_ n: Int) -> String {
        guard n >= 1, n <= lineStarts.count else { return "" }
        let start = lineStarts[n - 1]
        var end = n < lineStarts.count ? lineStarts[n] - 1 : scalars.count
        if end > start, scalars[end - 1] == "\r" { end -= 1 }
        var v = String.UnicodeScalarView()
        v.append(contentsOf: scalars[start..<end])
        return String(v)
    }

    func error(_ loc: Loc, _ message: String, notes: [Diagnostic] = []) -> Diagnostic {
        Diagnostic(file: name, line: loc.line, column: loc.col, message: message,
                   sourceLine: line(loc.line), notes: notes)
    }

    func note(_ loc: Loc, _ message: String) -> Diagnostic {
        Diagnostic(file: name, line: loc.line, column: loc.col, message: message, sourceLine: line(loc.line))
    }
}
