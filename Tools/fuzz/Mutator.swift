// The mutation driver: applies a small program of edits, read from fuzzer bytes, to a seed
// model's text. Each edit is three bytes (kind, a, b); at most 24 edits apply.

/// Tokens that stress the frontend when spliced in.
let nastyTokens: [String] = [
    "(", ")", "[", "]", "{", "}", "=", ",", ":", "\n", "#", "\t", "\r\n", "\r", "é", "\u{0}", "\u{FFFD}",
    "0", "-1", "1.5", "1e999", "2147483648", "99999999999999999999", "65536", "1e-320", "-0.0", "N",
    "true", "model m", "train {", "output x", "let a = ", "input z: f32[N, 3]", "param p: f32[3, 3]",
    "state s: f32[]", "increment(s)", "x.1", "relu(", "flatten(x)", "dense(", "conv2d(", ".", "..",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "((((((((((((((((((((((((((((((((((((((((",
]

func mutate(_ seed: [UInt8], program: ArraySlice<UInt8>) -> [UInt8] {
    var text = seed
    var p = program.startIndex
    var edits = 0
    while p + 2 < program.endIndex, edits < 24 {
        let kind = program[p], a = Int(program[p + 1]), b = Int(program[p + 2])
        p += 3
        edits += 1
        let position = text.isEmpty ? 0 : ((a << 8) | b) % (text.count + 1)
        switch kind % 9 {
        case 0:  // truncate
            text.removeSubrange(position..<text.count)
        case 1:  // delete a short range
            text.removeSubrange(position..<min(text.count, position + 1 + b % 32))
        case 2:  // duplicate a line
            var lines = splitLines(text)
            if !lines.isEmpty { let i = a % lines.count; lines.insert(lines[i], at: (i + 1 + b % 4) % (lines.count + 1)) }
            text = joinLines(lines)
        case 3:  // swap two lines
            var lines = splitLines(text)
            if !lines.isEmpty { lines.swapAt(a % lines.count, b % lines.count) }
            text = joinLines(lines)
        case 4:  // a noise byte
            text.insert(UInt8(b), at: position)
        case 5:  // overwrite a byte
            if position < text.count { text[position] = UInt8(b) }
        case 6:  // splice in a nasty token
            text.insert(contentsOf: Array(nastyTokens[b % nastyTokens.count].utf8), at: position)
        case 7:  // replace the number or name at the position with a nasty token
            var end = position
            while end < text.count, isWordByte(text[end]) { end += 1 }
            var start = position
            while start > 0, isWordByte(text[start - 1]) { start -= 1 }
            text.replaceSubrange(start..<end, with: Array(nastyTokens[b % nastyTokens.count].utf8))
        default:  // delete a line
            var lines = splitLines(text)
            if !lines.isEmpty { lines.remove(at: a % lines.count) }
            text = joinLines(lines)
        }
    }
    return text
}

private func isWordByte(_ c: UInt8) -> Bool {
    (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 46 || c == 45
}

private func splitLines(_ text: [UInt8]) -> [ArraySlice<UInt8>] {
    text.split(separator: 10, omittingEmptySubsequences: false)
}

private func joinLines(_ lines: [ArraySlice<UInt8>]) -> [UInt8] {
    Array(lines.joined(separator: [10]))
}
