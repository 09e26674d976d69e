// The parser: tokens to statements, one statement at a time, so that the lowering can report
// the first error in source order. Grammar (docs/graph-language.md has the full EBNF):
//
//   statement = "model" NAME | "let" NAME "=" value | ("input"|"param"|"state") NAME ":" type
//               {"," NAME "=" value} | "output" NAME {"," NAME} | "train" "{" {entry} "}"
//             | "block" NAME "(" [NAME ["=" value] {"," ...}] ")" "{" {statement} "}"
//             | "return" NAME {"," NAME}                      (the last statement of a block)
//             | "import" STRING                               (a file of blocks)
//             | [NAME {"," NAME} "="] NAME "(" [args] ")"
//   value     = NUMBER | NAME | "[" [value {"," value}] "]" | NAME "(" [args] ")"
//
// Keywords are contextual: `output = relu(x)` defines a value named `output`.

/// A name with where it was written.
struct Name: Sendable {
    var text: String
    var loc: Loc
}

indirect enum ExprKind: Sendable {
    case number(String)
    case ident(String)
    case list([Expr])
    case call(Name, [Arg])
}

struct Expr: Sendable {
    var kind: ExprKind
    var loc: Loc
    /// Set when the value came from a `let`: its name and where it was defined.
    var viaLet: Name?

    var described: String {
        switch kind {
        case .number(let t): return t
        case .ident(let n): return n
        case .list(let items): return "[" + items.map(\.described).joined(separator: ", ") + "]"
        case .call(let f, let args): return f.text + "(" + args.map(\.described).joined(separator: ", ") + ")"
        }
    }
}

/// `value` (positional) or `key=value` (keyword).
struct Arg: Sendable {
    var key: Name?
    var value: Expr
    var described: String { (key.map { $0.text + "=" } ?? "") + value.described }
}

struct Dimension: Sendable {
    /// `N` or a number literal.
    var text: String
    var loc: Loc
}

struct TypeExpr: Sendable {
    var dtype: Name
    var dims: [Dimension]
}

enum DeclarationKind: String, Sendable { case input, param, state }

/// A parameter of a block: `filters`, or `kernel=3` with its default.
struct BlockParameter: Sendable {
    var name: Name
    var defaultValue: Expr?
}

/// `block NAME(PARAMS) { STATEMENTS }`: the statements as written (the lowering checks them when
/// the block is defined and expands them at each call).
struct BlockDefinition: Sendable {
    var keyword: Loc
    var name: Name
    var parameters: [BlockParameter]
    var body: [Statement]
    var close: Loc
}

enum Statement: Sendable {
    case model(keyword: Loc, name: Name)
    case letBinding(keyword: Loc, name: Name, value: Expr)
    case declaration(DeclarationKind, keyword: Loc, name: Name, type: TypeExpr, attributes: [Arg])
    /// `outs = op(args)`, or `op(args)` for an update with no outputs.
    case node(outputs: [Name], op: Name, args: [Arg], close: Loc)
    case output(keyword: Loc, names: [Name])
    case train(keyword: Loc, entries: [Arg], close: Loc)
    case block(BlockDefinition)
    /// `return NAME, ...`: what a block's call defines (only as a block's last statement).
    case returnValues(keyword: Loc, names: [Name])
    /// `import "path"`: the blocks of another file (Imports.swift).
    case importFile(keyword: Loc, path: String, pathLoc: Loc)

    var loc: Loc {
        switch self {
        case .model(let k, _), .letBinding(let k, _, _), .declaration(_, let k, _, _, _),
             .output(let k, _), .train(let k, _, _), .returnValues(let k, _), .importFile(let k, _, _):
            return k
        case .block(let b): return b.keyword
        case .node(let outputs, let op, _, _): return outputs.first?.loc ?? op.loc
        }
    }
}

struct Parser {
    private let tokens: [Token]
    private let lexError: Diagnostic?
    private let source: SourceFile
    private var pos = 0

    init(tokens: [Token], lexError: Diagnostic?, source: SourceFile) {
        self.tokens = tokens.isEmpty ? [Token(kind: .eof, text: "", loc: Loc(line: 1, col: 1))] : tokens
        self.lexError = lexError
        self.source = source
    }

    // MARK: token access

    private func peek(_ ahead: Int = 0) throws(Diagnostic) -> Token {
        let t = tokens[min(pos + ahead, tokens.count - 1)]
        if t.kind == .error, ahead == 0, let e = lexError { throw e }
        return t
    }

    @discardableResult
    private mutating func next() throws(Diagnostic) -> Token {
        let t = try peek()
        if pos < tokens.count - 1 { pos += 1 }
        return t
    }

    private mutating func accept(_ kind: Token.Kind) throws(Diagnostic) -> Token? {
        try peek().kind == kind ? try next() : nil
    }

    private mutating func expect(_ kind: Token.Kind, _ what: String) throws(Diagnostic) -> Token {
        let t = try peek()
        guard t.kind == kind else { throw source.error(t.loc, "expected \(what), found \(t.described)") }
        return try next()
    }

    private mutating func expectName(_ what: String) throws(Diagnostic) -> Name {
        let t = try expect(.ident, what)
        return Name(text: t.text, loc: t.loc)
    }

    private mutating func endOfStatement(_ what: String) throws(Diagnostic) {
        let t = try peek()
        switch t.kind {
        case .newline: try next()
        case .eof: break
        default: throw source.error(t.loc, "unexpected \(t.described) after \(what)")
        }
    }

    // MARK: statements

    /// The next top-level statement, or nil at the end of the file; a syntax error after an
    /// unterminated bracket is reported as the bracket's (the lexer's error), which comes first.
    mutating func nextTopLevelStatement() throws(Diagnostic) -> Statement? {
        do throws(Diagnostic) {
            return try nextStatement()
        } catch {
            if let lexError, (lexError.line, lexError.column) <= (error.line, error.column) { throw lexError }
            throw error
        }
    }

    /// The next statement, or nil at the end of the file.
    mutating func nextStatement() throws(Diagnostic) -> Statement? {
        while try peek().kind == .newline { try next() }
        let first = try peek()
        switch first.kind {
        case .eof: return nil
        case .ident: break
        default:
            throw source.error(first.loc, "unexpected \(first.described) at the start of a statement")
        }
        let after = try peek(1).kind
        let isKeyword = after != .equals && after != .comma && after != .lparen
        if isKeyword {
            switch first.text {
            case "model":
                try next()
                let name = try expectName("a model name after 'model'")
                try endOfStatement("the model name")
                return .model(keyword: first.loc, name: name)
            case "let":
                try next()
                let name = try expectName("a name after 'let'")
                _ = try expect(.equals, "'=' after 'let \(name.text)'")
                let value = try parseValue(depth: 0)
                try endOfStatement("the value of '\(name.text)'")
                return .letBinding(keyword: first.loc, name: name, value: value)
            case "input", "param", "state":
                return try parseDeclaration(DeclarationKind(rawValue: first.text) ?? .input)
            case "output":
                try next()
                return .output(keyword: first.loc, names: try nameList(after: "output", ending: "the output names"))
            case "train":
                return try parseTrain()
            case "block":
                return try parseBlock()
            case "return":
                try next()
                return .returnValues(keyword: first.loc, names: try nameList(after: "return", ending: "the returned names"))
            case "import":
                try next()
                let path = try expect(.string, "a file name in quotes after 'import', as in import \"blocks.graph\"")
                try endOfStatement("the imported file's name")
                return .importFile(keyword: first.loc, path: path.text, pathLoc: path.loc)
            default:
                break
            }
        }
        return try parseNode()
    }

    /// `NAME {"," NAME}` after `keyword`, through the end of the statement.
    private mutating func nameList(after keyword: String, ending what: String) throws(Diagnostic) -> [Name] {
        var names = [try expectName("a value name after '\(keyword)'")]
        while try accept(.comma) != nil { names.append(try expectName("a value name after ','")) }
        try endOfStatement(what)
        return names
    }

    private mutating func parseDeclaration(_ kind: DeclarationKind) throws(Diagnostic) -> Statement {
        let keyword = try next()
        let name = try expectName("a value name after '\(kind.rawValue)'")
        _ = try expect(.colon, "':' and a type after '\(kind.rawValue) \(name.text)'")
        let type = try parseType()
        var attributes: [Arg] = []
        while try accept(.comma) != nil {
            let key = try expectName("an attribute name (like init=...) after ','")
            _ = try expect(.equals, "'=' after '\(key.text)'")
            attributes.append(Arg(key: key, value: try parseValue(depth: 0)))
        }
        try endOfStatement("the declaration of '\(name.text)'")
        return .declaration(kind, keyword: keyword.loc, name: name, type: type, attributes: attributes)
    }

    /// `f32[N, 1, 48, 48]`, `i32[N]`, `f32[]`.
    private mutating func parseType() throws(Diagnostic) -> TypeExpr {
        let dtype = try expectName("a type like f32[N, 1, 48, 48]")
        _ = try expect(.lbracket, "'[' after the element type '\(dtype.text)'")
        var dims: [Dimension] = []
        if try accept(.rbracket) == nil {
            repeat {
                let t = try peek()
                guard t.kind == .number || t.kind == .ident else {
                    throw source.error(t.loc, "expected a dimension (a positive integer or N), found \(t.described)")
                }
                try next()
                dims.append(Dimension(text: t.text, loc: t.loc))
            } while try accept(.comma) != nil
            _ = try expect(.rbracket, "',' or ']' in the type")
        }
        return TypeExpr(dtype: dtype, dims: dims)
    }

    private mutating func parseTrain() throws(Diagnostic) -> Statement {
        let keyword = try next()
        _ = try expect(.lbrace, "'{' after 'train'")
        var entries: [Arg] = []
        while true {
            while true {
                let k = try peek().kind
                guard k == .newline || k == .comma else { break }
                try next()
            }
            if let close = try accept(.rbrace) {
                try endOfStatement("the train block")
                return .train(keyword: keyword.loc, entries: entries, close: close.loc)
            }
            let key = try expectName("a setting like 'loss = NAME' or '}'")
            _ = try expect(.equals, "'=' after '\(key.text)'")
            entries.append(Arg(key: key, value: try parseValue(depth: 0)))
            let t = try peek()
            guard t.kind == .newline || t.kind == .comma || t.kind == .rbrace else {
                throw source.error(t.loc, "unexpected \(t.described) after the value of '\(key.text)'")
            }
        }
    }

    /// `block NAME(x, filters, kernel=3) {` NEWLINE statements `}`. The body's statements are
    /// parsed as the file's are; which kinds a block may hold is the lowering's to say.
    private mutating func parseBlock() throws(Diagnostic) -> Statement {
        let keyword = try next()
        let name = try expectName("a block name after 'block'")
        _ = try expect(.lparen, "'(' and the block's parameters after 'block \(name.text)'")
        var parameters: [BlockParameter] = []
        if try accept(.rparen) == nil {
            repeat {
                let p = try expectName("a parameter name")
                var value: Expr?
                if try accept(.equals) != nil { value = try parseValue(depth: 1) }
                parameters.append(BlockParameter(name: p, defaultValue: value))
            } while try accept(.comma) != nil
            _ = try expect(.rparen, "',' or ')' in the parameter list")
        }
        _ = try expect(.lbrace, "'{' after the parameters of block '\(name.text)'")
        var body: [Statement] = []
        while true {
            while try peek().kind == .newline { try next() }
            if let close = try accept(.rbrace) {
                try endOfStatement("the block '\(name.text)'")
                return .block(BlockDefinition(keyword: keyword.loc, name: name, parameters: parameters,
                                              body: body, close: close.loc))
            }
            guard let statement = try nextStatement() else {
                throw source.error(keyword.loc, "block '\(name.text)' has no closing '}'")
            }
            body.append(statement)
        }
    }

    private mutating func parseNode() throws(Diagnostic) -> Statement {
        var outputs: [Name] = []
        if try peek(1).kind != .lparen {
            outputs.append(try expectName("a value name"))
            while try accept(.comma) != nil { outputs.append(try expectName("a value name after ','")) }
            let t = try peek()
            guard t.kind == .equals else {
                if outputs.count == 1, let k = outputs.first, ["model", "let", "input", "param", "state", "output", "train", "block", "return"].contains(k.text) {
                    throw source.error(t.loc, "unexpected \(t.described) after '\(k.text)'")
                }
                throw source.error(t.loc, "expected '=' or '(' after '\(outputs.last?.text ?? "")', found \(t.described)")
            }
            try next()
        }
        let op = try expectName("an op name like conv2d(...)")
        _ = try expect(.lparen, "'(' after '\(op.text)'")
        let (args, close) = try parseArgs(depth: 1)
        try endOfStatement("'\(op.text)(...)'")
        return .node(outputs: outputs, op: op, args: args, close: close)
    }

    /// Arguments after an opening parenthesis, through the closing one.
    private mutating func parseArgs(depth: Int) throws(Diagnostic) -> ([Arg], Loc) {
        var args: [Arg] = []
        if let close = try accept(.rparen) { return (args, close.loc) }
        while true {
            if try peek().kind == .ident, try peek(1).kind == .equals {
                let key = try next()
                try next()
                args.append(Arg(key: Name(text: key.text, loc: key.loc), value: try parseValue(depth: depth)))
            } else {
                args.append(Arg(key: nil, value: try parseValue(depth: depth)))
            }
            if let close = try accept(.rparen) { return (args, close.loc) }
            _ = try expect(.comma, "',' or ')' in the argument list")
        }
    }

    private mutating func parseValue(depth: Int) throws(Diagnostic) -> Expr {
        let t = try peek()
        guard depth < maxNesting else { throw source.error(t.loc, "values nested too deeply") }
        switch t.kind {
        case .number:
            try next()
            return Expr(kind: .number(t.text), loc: t.loc)
        case .ident:
            try next()
            if try accept(.lparen) != nil {
                let (args, _) = try parseArgs(depth: depth + 1)
                return Expr(kind: .call(Name(text: t.text, loc: t.loc), args), loc: t.loc)
            }
            return Expr(kind: .ident(t.text), loc: t.loc)
        case .lbracket:
            try next()
            var items: [Expr] = []
            if try accept(.rbracket) == nil {
                repeat { items.append(try parseValue(depth: depth + 1)) } while try accept(.comma) != nil
                _ = try expect(.rbracket, "',' or ']' in the list")
            }
            return Expr(kind: .list(items), loc: t.loc)
        default:
            throw source.error(t.loc, "expected a value (a number, a name or a [list]), found \(t.described)")
        }
    }
}
