// Reading attribute values: keyword arguments with their locations, `let` substitution, and
// typed conversions (integer, number, boolean, one-of-symbols, initializer, tensor type) that
// report a located error naming the attribute, with "did you mean" for misspelled names.

#if canImport(GraphIR)
import GraphIR
#endif

/// The largest integer an attribute or dimension may have, and the most elements a tensor (per
/// sample, for batched tensors) may hold: 2^31. Keeping user numbers this small means no size
/// computation in shape inference can overflow.
let maxInteger = Int(Int32.max)
let maxElements = 1 << 31

/// The product of `dims`, or nil if it overflows or exceeds `maxElements`.
func checkedElementCount(_ dims: [Int]) -> Int? {
    var n = 1
    for d in dims {
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow, p <= maxElements, p >= 0 else { return nil }
        n = p
    }
    return n
}

/// Keyword arguments of one call or declaration, consumed by name so that whatever is left is
/// reported as unknown.
struct Keywords {
    private(set) var entries: [(key: Name, value: Expr)] = []
    private var used = Set<String>()

    init(_ args: [Arg], source: SourceSet) throws(Diagnostic) {
        var seen: [String: Loc] = [:]
        for arg in args {
            guard let key = arg.key else { continue }
            if let first = seen[key.text] {
                throw source.error(key.loc, "attribute '\(key.text)' is given twice",
                                   notes: [source.note(first, "'\(key.text)' was first given here")])
            }
            seen[key.text] = key.loc
            entries.append((key, arg.value))
        }
    }

    var isEmpty: Bool { entries.isEmpty }
    var keys: [String] { entries.map(\.key.text) }

    mutating func take(_ key: String) -> (key: Name, value: Expr)? {
        guard let e = entries.first(where: { $0.key.text == key }) else { return nil }
        used.insert(key)
        return e
    }

    func contains(_ key: String) -> Bool { entries.contains { $0.key.text == key } }

    /// Removes and returns the entries whose keys are in `keys` (for handing to `Op.make`).
    mutating func takeAll(_ keys: Set<String>) -> [(key: Name, value: Expr)] {
        let taken = entries.filter { keys.contains($0.key.text) }
        for t in taken { used.insert(t.key.text) }
        return taken
    }

    /// Throws for the first keyword (in source order) nobody took.
    func finish(valid: [String], what: String, source: SourceSet) throws(Diagnostic) {
        guard let e = entries.first(where: { !used.contains($0.key.text) }) else { return }
        throw unknownAttribute(e.key, valid: valid, what: what, source: source)
    }
}

func unknownAttribute(_ key: Name, valid: [String], what: String, source: SourceSet) -> Diagnostic {
    if valid.isEmpty {
        return source.error(key.loc, "unknown attribute '\(key.text)': \(what) takes no attributes")
    }
    if let s = closestMatch(key.text, among: valid) {
        return source.error(key.loc, "unknown attribute '\(key.text)' for \(what) (did you mean '\(s)'?)")
    }
    return source.error(key.loc, "unknown attribute '\(key.text)' for \(what) (valid: \(valid.joined(separator: ", ")))")
}

extension Lowering {
    /// An identifier naming a `let` constant becomes that constant's value, located at the use.
    func resolved(_ e: Expr) -> Expr {
        guard case .ident(let n) = e.kind, let bound = lets[n] else { return e }
        var r = bound.value
        r.loc = e.loc
        r.viaLet = bound.name
        return r
    }

    private func letNotes(_ e: Expr) -> [Diagnostic] {
        e.viaLet.map { [source.note($0.loc, "'\($0.text)' is defined here")] } ?? []
    }

    /// "attribute 'l2' must be a number, got wdd" — or, for an unknown name close to a `let`
    /// constant or a valid symbol, "unknown name 'wdd' for attribute 'l2' (did you mean 'wd'?)".
    func mismatch(_ e: Expr, key: String, expected: String, symbols: [String] = []) -> Diagnostic {
        if case .ident(let n) = e.kind, e.viaLet == nil {
            if let s = closestMatch(n, among: symbols + lets.keys.sorted()) {
                if symbols.contains(s) {
                    return source.error(e.loc, "attribute '\(key)' must be \(expected), got \(n) (did you mean '\(s)'?)")
                }
                return source.error(e.loc, "unknown name '\(n)' for attribute '\(key)' (did you mean '\(s)'?)")
            }
        }
        return source.error(e.loc, "attribute '\(key)' must be \(expected), got \(e.described)", notes: letNotes(e))
    }

    func invalid(_ e: Expr, key: String, _ message: String) -> Diagnostic {
        source.error(e.loc, "attribute '\(key)': \(message)", notes: letNotes(e))
    }

    /// An integer literal's value, or an error if it does not fit `maxInteger`.
    func integer(_ e: Expr, key: String) throws(Diagnostic) -> Int {
        let r = resolved(e)
        guard case .number(let text) = r.kind, !isFloatLiteral(text) else {
            throw mismatch(r, key: key, expected: "an integer")
        }
        guard let v = Int(text), v >= -maxInteger, v <= maxInteger else {
            throw invalid(r, key: key, "integer \(text) is out of range (limit \(maxInteger))")
        }
        return v
    }

    func integer(_ e: Expr, key: String, atLeast low: Int) throws(Diagnostic) -> Int {
        let v = try integer(e, key: key)
        guard v >= low else { throw invalid(resolved(e), key: key, "must be at least \(low), got \(v)") }
        return v
    }

    func number(_ e: Expr, key: String) throws(Diagnostic) -> Double {
        let r = resolved(e)
        guard case .number(let text) = r.kind, let v = Double(text), v.isFinite else {
            throw mismatch(r, key: key, expected: "a number")
        }
        return v
    }

    /// A number that `valid` accepts; `valid` returns the reason otherwise ("must be positive").
    func number(_ e: Expr, key: String, _ rule: String, _ valid: (Double) -> Bool) throws(Diagnostic) -> Double {
        let v = try number(e, key: key)
        guard valid(v) else { throw invalid(resolved(e), key: key, "\(rule), got \(resolved(e).described)") }
        return v
    }

    func boolean(_ e: Expr, key: String) throws(Diagnostic) -> Bool {
        let r = resolved(e)
        if case .ident(let n) = r.kind {
            if n == "true" { return true }
            if n == "false" { return false }
        }
        throw mismatch(r, key: key, expected: "true or false", symbols: ["true", "false"])
    }

    func symbol(_ e: Expr, key: String, options: [String]) throws(Diagnostic) -> String {
        let r = resolved(e)
        if case .ident(let n) = r.kind, options.contains(n) { return n }
        throw mismatch(r, key: key, expected: "one of " + options.joined(separator: ", "), symbols: options)
    }

    func choice<E: RawRepresentable & CaseIterable>(_ e: Expr, key: String, as: E.Type) throws(Diagnostic) -> E
    where E.RawValue == String {
        let s = try symbol(e, key: key, options: E.allCases.map(\.rawValue))
        guard let v = E(rawValue: s) else { throw invalid(e, key: key, "unexpected value \(s)") }
        return v
    }

    /// `zeros`, `ones`, `constant(0.1)`, `glorot_uniform`, `glorot_normal`, `he_normal`, `he_uniform`.
    func initializer(_ e: Expr, key: String, allowed: [String] = Initializer.names) throws(Diagnostic) -> Initializer {
        let r = resolved(e)
        let shown = allowed.map { $0 == "constant" ? "constant(V)" : $0 }.joined(separator: ", ")
        switch r.kind {
        case .ident(let n) where allowed.contains(n):
            switch n {
            case "zeros": return .zeros
            case "ones": return .ones
            case "glorot_uniform": return .glorotUniform
            case "glorot_normal": return .glorotNormal
            case "he_normal": return .heNormal
            case "he_uniform": return .heUniform
            default: throw invalid(r, key: key, "'constant' needs a value, as in constant(0.1)")
            }
        case .call(let f, let args) where f.text == "constant" && allowed.contains("constant"):
            guard args.count == 1, let arg = args.first, arg.key == nil else {
                throw invalid(r, key: key, "constant takes one number, as in constant(0.1)")
            }
            return .constant(try number(arg.value, key: key))
        case .number, .list:
            throw mismatch(r, key: key, expected: "one of \(shown)")
        case .ident, .call:
            var n = ""
            if case .ident(let i) = r.kind { n = i }
            if case .call(let f, _) = r.kind { n = f.text }
            if Initializer.names.contains(n) {
                throw invalid(r, key: key, "\(n) is not allowed here; use one of \(shown)")
            }
            if let s = closestMatch(n, among: allowed) {
                throw source.error(r.loc, "unknown initializer '\(n)' for '\(key)' (did you mean '\(s)'?)")
            }
            if let s = closestMatch(n, among: lets.keys.sorted()) {
                throw source.error(r.loc, "unknown name '\(n)' for attribute '\(key)' (did you mean '\(s)'?)")
            }
            throw source.error(r.loc, "unknown initializer '\(n)' for '\(key)' (valid: \(shown))", notes: letNotes(r))
        }
    }

    /// A value as an op attribute for `Op.make`.
    func attribute(_ e: Expr, key: String) throws(Diagnostic) -> Attribute {
        let r = resolved(e)
        switch r.kind {
        case .number(let text):
            if isFloatLiteral(text) { return .float(try number(r, key: key)) }
            return .int(try integer(r, key: key))
        case .ident(let n):
            if n == "true" { return .bool(true) }
            if n == "false" { return .bool(false) }
            return .symbol(n)
        case .list(let items):
            var ints: [Int] = []
            for item in items {
                let i = resolved(item)
                guard case .number(let t) = i.kind, !isFloatLiteral(t) else {
                    throw source.error(i.loc, "attribute '\(key)' must be a list of integers, got \(i.described) in the list")
                }
                ints.append(try integer(i, key: key))
            }
            guard checkedElementCount(ints.map { max($0, 1) }) != nil else {
                throw invalid(r, key: key, "\(r.described) describes more than \(maxElements) elements")
            }
            return .ints(ints)
        case .call:
            throw source.error(r.loc, "attribute '\(key)' must be a plain value (number, name or list), not \(r.described)")
        }
    }

    /// `f32[N, 1, 48, 48]`: the batch dimension only first, and only where allowed.
    func tensorType(_ t: TypeExpr, allowBatch: Bool, what: String) throws(Diagnostic) -> TensorType {
        guard let dtype = DType(rawValue: t.dtype.text) else {
            let names = DType.allCases.map(\.rawValue)
            throw source.error(t.dtype.loc, "unknown element type '\(t.dtype.text)'\(didYouMean(t.dtype.text, names)); expected f32 or i32")
        }
        var dims: [Dim] = []
        for (k, d) in t.dims.enumerated() {
            if d.text == "N" {
                guard allowBatch else {
                    throw source.error(d.loc, "\(what) must have fixed dimensions; the batch dimension N is only for inputs")
                }
                guard k == 0 else {
                    throw source.error(d.loc, "the batch dimension N may only be the first dimension")
                }
                dims.append(.batch)
                continue
            }
            guard isWellFormedNumber(Array(d.text.unicodeScalars)) else {
                throw source.error(d.loc, "expected a dimension (a positive integer or N), found name '\(d.text)'")
            }
            guard !isFloatLiteral(d.text) else {
                throw source.error(d.loc, "a dimension must be an integer, got \(d.text)")
            }
            if d.text.hasPrefix("-") || Int(d.text) == 0 {
                throw source.error(d.loc, "a dimension must be positive, got \(d.text)")
            }
            guard let n = Int(d.text), n <= maxInteger else {
                throw source.error(d.loc, "dimension \(d.text) is too large (limit \(maxInteger))")
            }
            dims.append(.fixed(n))
        }
        let type = TensorType(dtype, dims)
        guard checkedElementCount(type.dims.compactMap { if case .fixed(let n) = $0 { return n } else { return nil } }) != nil else {
            throw source.error(t.dtype.loc, "\(type) has too many elements (limit \(maxElements)\(type.isBatched ? " per sample" : ""))")
        }
        return type
    }
}
