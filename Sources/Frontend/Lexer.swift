// The lexer: text to tokens. Line-oriented: a newline ends a statement unless it is inside
// parentheses or brackets (braces hold the lines of a `train { }` block, so newlines stay
// significant there). Brackets are matched here, so an unterminated or mismatched bracket is
// reported at its opener, and nesting deeper than `maxNesting` is refused before the parser
// could recurse on it.
//
// A lexical error stops the lexer: the token list then ends with an `.error` token, and the
// parser reports the error when it reaches it, so errors come out in source order.

struct Token: Sendable {
    enum Kind: Sendable, Equatable {
        case ident, number, string
        case lparen, rparen, lbracket, rbracket, lbrace, rbrace
        case comma, equals, colon
        case newline, eof, error
    }
    var kind: Kind
    /// The identifier's or number's text; the punctuation itself otherwise.
    var text: String
    var loc: Loc

    /// How a message names this token: `name 'x'`, `number '3'`, `'('`, `end of line`.
    var described: String {
        switch kind {
        case .ident: return "name '\(text)'"
        case .number: return "number '\(text)'"
        case .string: return "string \"\(text)\""
        case .newline: return "end of line"
        case .eof, .error: return "end of file"
        case .lparen, .rparen, .lbracket, .rbracket, .lbrace, .rbrace, .comma, .equals, .colon:
            return "'\(text)'"
        }
    }
}

/// Brackets nested deeper than this are an error (no valid model comes close).
let maxNesting = 32

/// The longest string literal (a path).
let maxStringLength = 1024

struct Lexer {
    private let s: [Unicode.Scalar]
    private let source: SourceFile
    /// The file's index in the compile's `SourceSet`, stamped on every location.
    private let file: Int
    private var i = 0
    private var line = 1
    private var col = 1
    private var tokens: [Token] = []
    /// Open brackets: the character and where it is.
    private var open: [(Unicode.Scalar, Loc)] = []

    static func tokenize(_ scalars: [Unicode.Scalar], source: SourceFile, file: Int = 0) -> (tokens: [Token], error: Diagnostic?) {
        var lexer = Lexer(s: scalars, source: source, file: file)
        let error = lexer.run()
        let end = lexer.here
        if let error {
            lexer.tokens.append(Token(kind: .error, text: "", loc: Loc(line: error.line, col: error.column, file: file)))
            return (lexer.tokens, error)
        }
        lexer.tokens.append(Token(kind: .eof, text: "", loc: end))
        return (lexer.tokens, nil)
    }

    private init(s: [Unicode.Scalar], source: SourceFile, file: Int) {
        self.s = s
        self.source = source
        self.file = file
    }

    private var here: Loc { Loc(line: line, col: col, file: file) }

    private mutating func advance(_ n: Int = 1) {
        for _ in 0..<n where i < s.count {
            if s[i] == "\n" {
                line += 1
                col = 1
            } else {
                col += 1
            }
            i += 1
        }
    }

    private mutating func emit(_ kind: Token.Kind, _ text: String, at loc: Loc) {
        tokens.append(Token(kind: kind, text: text, loc: loc))
    }

    /// Lexes everything; returns the first error, if any.
    private mutating func run() -> Diagnostic? {
        while i < s.count {
            let c = s[i]
            let loc = here
            switch c {
            case "\n":
                if let top = open.last?.0, top == "(" || top == "[" {
                    // a statement continues inside parentheses and brackets
                } else if tokens.last.map({ $0.kind != .newline }) ?? false {
                    // At the end of the line's text (before a CR of a CRLF).
                    let end = i > 0 && s[i - 1] == "\r" ? Loc(line: loc.line, col: max(1, loc.col - 1), file: file) : loc
                    emit(.newline, "\n", at: end)
                }
                advance()
            case " ", "\t", "\r":
                advance()
            case "#":
                while i < s.count, s[i] != "\n" { advance() }
            case "(", "[", "{":
                if open.count >= maxNesting {
                    return source.error(loc, "brackets nested too deeply (more than \(maxNesting) levels)")
                }
                open.append((c, loc))
                emit(c == "(" ? .lparen : c == "[" ? .lbracket : .lbrace, String(c), at: loc)
                advance()
            case ")", "]", "}":
                let opener: Unicode.Scalar = c == ")" ? "(" : c == "]" ? "[" : "{"
                guard let top = open.last else {
                    return source.error(loc, "unexpected '\(c)' with no matching '\(opener)'")
                }
                if top.0 != opener {
                    if open.contains(where: { $0.0 == opener }) {
                        return unterminated(top, before: "'\(c)'")
                    }
                    return source.error(loc, "unexpected '\(c)' with no matching '\(opener)'",
                                        notes: [source.note(top.1, "'\(top.0)' opened here is still open")])
                }
                open.removeLast()
                emit(c == ")" ? .rparen : c == "]" ? .rbracket : .rbrace, String(c), at: loc)
                advance()
            case ",": emit(.comma, ",", at: loc); advance()
            case "=": emit(.equals, "=", at: loc); advance()
            case ":": emit(.colon, ":", at: loc); advance()
            case "\"":
                if let error = lexString() { return error }
            default:
                if isIdentStart(c) {
                    lexIdent()
                } else if isDigit(c) || (c == "-" && i + 1 < s.count && isDigit(s[i + 1])) {
                    if let error = lexNumber() { return error }
                } else {
                    return source.error(loc, unexpectedCharacter(c))
                }
            }
        }
        if let top = open.last { return unterminated(top, before: "the end of the file") }
        if tokens.last.map({ $0.kind != .newline }) ?? false { emit(.newline, "\n", at: here) }
        return nil
    }

    private func unterminated(_ top: (Unicode.Scalar, Loc), before what: String) -> Diagnostic {
        let closer = top.0 == "(" ? ")" : top.0 == "[" ? "]" : "}"
        return source.error(top.1, "unterminated '\(top.0)': no matching '\(closer)' before \(what)")
    }

    private mutating func lexIdent() {
        let loc = here
        var text = String.UnicodeScalarView()
        while i < s.count, isIdentChar(s[i]) { text.append(s[i]); advance() }
        // Dotted names: `block1_conv1.weight`, `grad.fc6.bias`, `x.1`.
        while i + 1 < s.count, s[i] == ".", isIdentChar(s[i + 1]) {
            text.append(s[i]); advance()
            while i < s.count, isIdentChar(s[i]) { text.append(s[i]); advance() }
        }
        emit(.ident, String(text), at: loc)
    }

    /// A number: `-?digits(.digits)?([eE][+-]?digits)?`. Letters, digits, dots and exponent
    /// signs that follow are taken into the literal so that `1.2.3` or `3x` is one bad literal.
    private mutating func lexNumber() -> Diagnostic? {
        let loc = here
        var text = String.UnicodeScalarView()
        text.append(s[i]); advance()
        while i < s.count {
            let c = s[i]
            if isIdentChar(c) || c == "." {
                text.append(c); advance()
            } else if (c == "+" || c == "-"), let last = text.last, last == "e" || last == "E",
                      text.first.map({ isDigit($0) || $0 == "-" }) ?? false {
                text.append(c); advance()
            } else {
                break
            }
        }
        let literal = String(text)
        guard isWellFormedNumber(Array(text)) else {
            return source.error(loc, "bad number literal '\(literal)'")
        }
        if let v = Double(literal), !v.isFinite {
            return source.error(loc, "number '\(literal)' is out of range")
        }
        emit(.number, literal, at: loc)
        return nil
    }

    /// A string: `"`, printable ASCII other than `"` and `\`, on one line, `"`; at most
    /// `maxStringLength` characters (only `import` reads one: a path).
    private mutating func lexString() -> Diagnostic? {
        let loc = here
        advance()
        var text = String.UnicodeScalarView()
        while true {
            guard i < s.count, s[i] != "\n" else {
                return source.error(loc, "unterminated string: no closing '\"' on its line")
            }
            let c = s[i]
            if c == "\"" { advance(); break }
            guard c.value >= 0x20, c.value < 0x7F, c != "\\" else {
                let why = c == "\\" ? "'\\' in a string: there are no escapes (write paths with '/')"
                    : c.value < 0x20 || c.value == 0x7F ? "control character \(Lexer.code(c)) in a string"
                    : "non-ASCII character '\(c)' (\(Lexer.code(c))) in a string; strings are ASCII"
                return source.error(here, "unexpected " + why)
            }
            guard text.count < maxStringLength else {
                return source.error(loc, "string longer than \(maxStringLength) characters")
            }
            text.append(c)
            advance()
        }
        emit(.string, String(text), at: loc)
        return nil
    }

    /// `U+00E9`.
    private static func code(_ c: Unicode.Scalar) -> String {
        let hex = String(c.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    private func unexpectedCharacter(_ c: Unicode.Scalar) -> String {
        let code = Lexer.code(c)
        if c.value < 0x20 || c.value == 0x7F {
            return "unexpected control character \(code)"
        }
        if c.value == 0xFFFD { return "unexpected character \(code) (invalid UTF-8?)" }
        if c.value > 0x7F { return "unexpected non-ASCII character '\(c)' (\(code)); only comments may contain it" }
        return "unexpected character '\(c)'"
    }
}

func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 48 && c.value <= 57 }
func isIdentStart(_ c: Unicode.Scalar) -> Bool {
    (c.value >= 65 && c.value <= 90) || (c.value >= 97 && c.value <= 122) || c == "_"
}
func isIdentChar(_ c: Unicode.Scalar) -> Bool { isIdentStart(c) || isDigit(c) }

/// Whether the text is `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
func isWellFormedNumber(_ t: [Unicode.Scalar]) -> Bool {
    var j = 0
    func digits() -> Bool {
        let start = j
        while j < t.count, isDigit(t[j]) { j += 1 }
        return j > start
    }
    if j < t.count, t[j] == "-" { j += 1 }
    guard digits() else { return false }
    if j < t.count, t[j] == "." {
        j += 1
        guard digits() else { return false }
    }
    if j < t.count, t[j] == "e" || t[j] == "E" {
        j += 1
        if j < t.count, t[j] == "+" || t[j] == "-" { j += 1 }
        guard digits() else { return false }
    }
    return j == t.count
}

/// Whether a well-formed number literal is a float (has a fraction or an exponent).
func isFloatLiteral(_ text: String) -> Bool { text.contains(".") || text.contains("e") || text.contains("E") }
