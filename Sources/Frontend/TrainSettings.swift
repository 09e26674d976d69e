// Train-block settings given outside the model file (`fergc train M.graph --set KEY=VALUE`): a
// recipe changed for one run without a copy of the model that differs in one line.
//
//   let g = try Frontend.compile(path: "Models/vgg_k_narrow_gap.graph")
//   let light = try Frontend.withTrainSettings(g, ["augment=augment(hflip=true, crop=40)", "seed=10"])
//
// Each VALUE is written as in the train block and checked by the same code, so what a model file
// refuses (`epochs=0`, `augment(crop=60)`, an unknown key) is refused here with the same words,
// located in the setting. The result's printed IR carries the changed block: a checkpoint written
// from it records the recipe that ran, and `--resume` needs nothing more.

#if canImport(GraphIR)
import GraphIR
#endif

extension Frontend {
    /// `graph` with the named train-block settings replaced (or added, for a key its block does
    /// not print), each written `KEY=VALUE`. Errors are diagnostics whose file is `origin` and whose
    /// source line is the setting as given.
    public static func withTrainSettings(_ graph: Graph, _ settings: [String], origin: String = "--set") throws(Diagnostic) -> Graph {
        guard let training = graph.training else {
            throw Diagnostic(file: origin, line: 1, column: 1,
                             message: "the model '\(graph.name)' has no train { } section to change", sourceLine: settings.first ?? "")
        }
        if settings.isEmpty { return graph }

        // Each setting: its key, its value, and the column (1-based) where the value starts.
        var parsed: [(key: String, value: String, valueColumn: Int, text: String)] = []
        for text in settings {
            func fail(_ column: Int, _ message: String) -> Diagnostic {
                Diagnostic(file: origin, line: 1, column: column, message: message, sourceLine: text)
            }
            guard let eq = text.firstIndex(of: "=") else {
                throw fail(1, "a train setting is written KEY=VALUE (for example epochs=30), got '\(text)'")
            }
            let key = text[..<eq].trimmingSpaces
            let rawValue = text[text.index(after: eq)...]
            let value = rawValue.trimmingSpaces
            guard !key.isEmpty else { throw fail(1, "missing the train setting's name before '='") }
            guard trainKeys.contains(key) else { throw fail(1, unknownTrainKey(key)) }
            let equalsColumn = text[..<eq].unicodeScalars.count + 1
            guard !value.isEmpty else { throw fail(equalsColumn + 1, "missing the value of '\(key)' after '='") }
            // One value of the train block: never a newline, a comment, or a brace that would end
            // the block and start something else.
            if let bad = text.unicodeScalars.firstIndex(where: { "\n\r#{};".unicodeScalars.contains($0) }) {
                let column = text.unicodeScalars.distance(from: text.unicodeScalars.startIndex, to: bad) + 1
                throw fail(column, "a train setting's value is one expression on one line; '\(text.unicodeScalars[bad].escaped(asASCII: true))' cannot be part of it")
            }
            if let first = parsed.first(where: { $0.key == key }) {
                throw fail(1, "'\(key)' is set twice (first: '\(first.text)')")
            }
            let leading = rawValue.unicodeScalars.prefix { $0 == " " || $0 == "\t" }.count
            parsed.append((key, value, equalsColumn + 1 + leading, text))
        }

        // The model as its IR prints it, its train block with the printed lines of those keys
        // dropped and the settings added at its end.
        var body = graph
        body.training = nil
        let bodyText = body.printed(types: false)
        var lines = bodyText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        lines.append("train {")
        for line in training.printed().split(separator: "\n").map(String.init) {
            guard line.hasPrefix("  ") else { continue }  // "train {" and "}"
            let key = line.dropFirst(2).prefix { $0 != " " && $0 != "=" }
            if parsed.contains(where: { $0.key == key }) { continue }
            lines.append(line)
        }
        var settingLine: [Int: Int] = [:]  // line number (1-based) -> index in `parsed`
        let indent = "  "
        for (i, s) in parsed.enumerated() {
            lines.append(indent + s.key + " = " + s.value)
            settingLine[lines.count] = i
        }
        lines.append("}")
        let source = lines.joined(separator: "\n") + "\n"

        let changed: Graph
        do {
            changed = try compile(source: source, file: origin)
        } catch {
            if let i = settingLine[error.line] {
                let s = parsed[i]
                // Columns in the value map to the setting as given; anything before it is the key.
                let valueStart = indent.count + s.key.count + 3 + 1
                let column = error.column >= valueStart ? s.valueColumn + (error.column - valueStart) : 1
                throw Diagnostic(file: origin, line: 1, column: column, message: error.message, sourceLine: s.text)
            }
            throw Diagnostic(file: origin, line: 1, column: 1,
                             message: error.message + " (in the train block of '\(graph.name)' with \(settings.map { "--set \($0)" }.joined(separator: " ")))",
                             sourceLine: settings.joined(separator: " "))
        }
        // Only the train block may change.
        var check = changed
        check.training = nil
        guard check.printed(types: false) == bodyText else {
            throw Diagnostic(file: origin, line: 1, column: 1, message: "the settings changed more than the train block",
                             sourceLine: settings.joined(separator: " "))
        }
        return changed
    }
}
