// Writing to stdout/stderr and failing with a message and a non-zero exit code.

import Foundation

enum Console {
    static func out(_ s: String) {
        FileHandle.standardOutput.write(Data(s.utf8))
    }
    static func err(_ s: String) {
        FileHandle.standardError.write(Data(s.utf8))
    }
}

/// An error the CLI reports as `error: message` and exit status 1 — or, for a located
/// diagnostic that already reads `FILE:LINE:COL: error: ...`, as it is.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { isLocatedDiagnostic ? message : "error: \(message)" }

    private var isLocatedDiagnostic: Bool {
        let head = message.prefix { $0 != "\n" }
        guard let r = head.range(of: ": error: ") else { return false }
        let location = head[..<r.lowerBound].split(separator: ":")
        return location.count >= 3 && location.suffix(2).allSatisfy { $0.allSatisfy(\.isNumber) && !$0.isEmpty }
    }
}

/// JSON text for a value built from dictionaries, arrays, strings, numbers and booleans, with
/// keys in a stable order.
func jsonText(_ value: Any) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self) + "\n"
}

/// Ends the command with this exit status (its messages are already printed).
struct ExitStatus: Error {
    var code: Int32
    init(_ code: Int32) { self.code = code }
}
