// Blocks: a named group of statements with parameters, expanded at each call, so that a model
// repeated by stage is written once:
//
//   block conv_bn_relu(x, filters, kernel=3) {
//     conv = conv2d(x, filters=filters, kernel=kernel, padding=same, bias=false)
//     bn = batchnorm(conv)
//     out = relu(bn)
//     return out
//   }
//   s1 = conv_bn_relu(x, filters=32)
//
// The call lowers to the body's statements with each parameter replaced by its argument (a value
// name where the body reads a tensor, a number, symbol or list where it reads an attribute) and
// each name the body defines prefixed by the call's first output, `s1.conv`, `s1.bn` (so the
// layers' weights are `s1.conv.weight`, `s1.bn.gamma`); the returned values take the call's
// names (`s1`). The graph has no trace of the block: its printed form is the expanded one.
//
// Checked when the block is defined: its statements are nodes, `let`s, `param`s and `state`s
// ending with one `return`; every op is an op or a block defined before this one (so there is no
// recursion); every value a node reads is a parameter or one the body defined before; no name
// is defined twice. Checked at each call: the arguments against the parameters, then every
// statement as if written there; an error inside the body gets a note at the call (and at each
// call around it).

#if canImport(GraphIR)
import GraphIR
#endif

/// How many statements calls may expand to in one file (a block calling another twice per
/// level grows as 2^depth: bounded here, not by the memory it would take).
let maxBlockStatements = 100_000

extension Lowering {
    /// Checks a block's definition and records it.
    mutating func defineBlock(_ b: BlockDefinition) throws(Diagnostic) {
        let name = b.name
        if Op.allNames.contains(name.text) {
            throw source.error(name.loc, "'\(name.text)' is an op; a block needs another name")
        }
        if let first = blocks[name.text] {
            throw source.error(name.loc, "block '\(name.text)' is already defined",
                               notes: [source.note(first.name.loc, "it was first defined here")])
        }
        var parameters: [String: Loc] = [:]
        for p in b.parameters {
            if let first = parameters[p.name.text] {
                throw source.error(p.name.loc, "block '\(name.text)' has two parameters named '\(p.name.text)'",
                                   notes: [source.note(first, "the first is here")])
            }
            parameters[p.name.text] = p.name.loc
        }
        for statement in b.body.dropLast() {
            if case .returnValues(let k, _) = statement {
                throw source.error(k, "'return' must be the last statement of block '\(name.text)'")
            }
        }
        guard case .returnValues(_, let returned)? = b.body.last else {
            throw source.error(b.close, "block '\(name.text)' must end with 'return NAME': the values a call defines")
        }
        var locals: [String: Loc] = [:]
        var lets = Set<String>()
        func defineLocal(_ n: Name) throws(Diagnostic) {
            if let p = parameters[n.text] {
                throw source.error(n.loc, "'\(n.text)' is a parameter of block '\(name.text)'; name the value otherwise",
                                   notes: [source.note(p, "the parameter is here")])
            }
            if let first = locals[n.text] {
                throw source.error(n.loc, "'\(n.text)' is already defined in block '\(name.text)'",
                                   notes: [source.note(first, "'\(n.text)' was first defined here")])
            }
            locals[n.text] = n.loc
        }
        for statement in b.body.dropLast() {
            switch statement {
            case .letBinding(_, let n, _):
                try defineLocal(n)
                lets.insert(n.text)
            case .declaration(.input, let k, _, _, _):
                throw source.error(k, "a block's inputs are its parameters: 'input' belongs at the top of the file")
            case .declaration(_, _, let n, _, _):
                try defineLocal(n)
            case .node(let outputs, let op, let args, _):
                if op.text == name.text {
                    throw source.error(op.loc, "block '\(name.text)' calls itself; a block may call only blocks defined before it")
                }
                if !Op.allNames.contains(op.text), blocks[op.text] == nil {
                    throw source.error(op.loc, "unknown op or block '\(op.text)'\(didYouMean(op.text, Op.allNames + blocks.keys.sorted()))")
                }
                // An op's positional arguments are tensors; a block's may be attribute values
                // too (symbols, the file's lets), so those are checked at the call.
                for arg in args where arg.key == nil && blocks[op.text] == nil {
                    guard case .ident(let n) = arg.value.kind else { continue }
                    if parameters[n] != nil || (locals[n] != nil && !lets.contains(n)) { continue }
                    let known = b.parameters.map(\.name.text) + locals.keys.filter { !lets.contains($0) }.sorted()
                    throw source.error(arg.value.loc,
                                       unreadable(n, in: name.text) + didYouMean(n, known))
                }
                for o in outputs { try defineLocal(o) }
            case .returnValues:
                break  // reported above
            case .block(let inner):
                throw source.error(inner.keyword, "blocks are defined at the top level, not inside block '\(name.text)'")
            case .importFile(let k, _, _):
                throw source.error(k, "'import' belongs at the top level, not inside block '\(name.text)'")
            case .model(let k, _), .output(let k, _), .train(let k, _, _):
                throw source.error(k, "a block holds nodes, 'let', 'param' and 'state' statements and a 'return'; this belongs at the top of the file")
            }
        }
        var seen = Set<String>()
        for r in returned {
            if parameters[r.text] != nil {
                throw source.error(r.loc, "block '\(name.text)' returns its parameter '\(r.text)'; a block returns values it computes")
            }
            guard locals[r.text] != nil, !lets.contains(r.text) else {
                throw source.error(r.loc, "block '\(name.text)' returns '\(r.text)', which it does not define\(didYouMean(r.text, locals.keys.filter { !lets.contains($0) }.sorted()))")
            }
            guard seen.insert(r.text).inserted else {
                throw source.error(r.loc, "block '\(name.text)' returns '\(r.text)' twice")
            }
        }
        blocks[name.text] = b
    }

    /// Lowers `outputs = block(args)`: the body, with its parameters bound and its names prefixed
    /// by `prefix` (the call's first output at the top level; inside a body, the name that output
    /// would have had if the body did not return it, so that a returned call's names cannot meet
    /// the body's own).
    mutating func expandCall(_ b: BlockDefinition, outputs: [Name], op: Name, args: [Arg],
                             close: Loc, prefix: String) throws(Diagnostic) {
        guard case .returnValues(_, let returned)? = b.body.last else { return }
        let signature = b.parameters.map { $0.name.text + ($0.defaultValue.map { "=" + $0.described } ?? "") }
            .joined(separator: ", ")
        guard !outputs.isEmpty else {
            throw source.error(op.loc, "the result of block '\(b.name.text)' must be named, as in 'y = \(b.name.text)(...)'")
        }
        guard outputs.count == returned.count else {
            let r = returned.count
            throw source.error(outputs[0].loc,
                               "block '\(b.name.text)' returns \(r) value\(r == 1 ? "" : "s") (\(returned.map(\.text).joined(separator: ", "))), but \(outputs.count) name\(outputs.count == 1 ? " was" : "s were") given",
                               notes: [source.note(b.name.loc, "block '\(b.name.text)' is defined here")])
        }
        guard callStack.count < maxNesting else {
            throw source.error(op.loc, "blocks call each other more than \(maxNesting) levels deep")
        }
        expandedStatements += b.body.count - 1
        guard expandedStatements <= maxBlockStatements else {
            throw source.error(op.loc, "the blocks' calls expand to more than \(maxBlockStatements) statements")
        }

        // The arguments, bound to the parameters.
        var bound: [String: Expr] = [:]
        var firstKeyword: Name?
        var next = 0
        for arg in args {
            if let key = arg.key {
                firstKeyword = firstKeyword ?? key
                guard b.parameters.contains(where: { $0.name.text == key.text }) else {
                    throw source.error(key.loc, "block '\(b.name.text)' has no parameter '\(key.text)'\(didYouMean(key.text, b.parameters.map(\.name.text))); it takes (\(signature))")
                }
                guard bound[key.text] == nil else {
                    throw source.error(key.loc, "'\(key.text)' is given twice in the call of block '\(b.name.text)'")
                }
                bound[key.text] = arg.value
            } else {
                if let k = firstKeyword {
                    throw source.error(arg.value.loc, "positional argument after the keyword argument '\(k.text)'; positional ones come first")
                }
                guard next < b.parameters.count else {
                    throw source.error(arg.value.loc, "too many arguments: block '\(b.name.text)' takes (\(signature))")
                }
                bound[b.parameters[next].name.text] = arg.value
                next += 1
            }
        }
        for p in b.parameters where bound[p.name.text] == nil {
            guard let d = p.defaultValue else {
                throw source.error(close, "missing argument '\(p.name.text)' for block '\(b.name.text)'; it takes (\(signature))",
                                   notes: [source.note(p.name.loc, "the parameter is here")])
            }
            bound[p.name.text] = d
        }

        // The body's names: the returned ones take the call's, the others the prefix.
        var renamed: [String: Name] = [:]
        var localLets: [String: String] = [:]
        for (r, o) in zip(returned, outputs) { renamed[r.text] = o }
        func local(_ n: Name) -> Name { renamed[n.text] ?? Name(text: prefix + "." + n.text, loc: n.loc) }

        callStack.append(b.name.text)
        defer { callStack.removeLast() }
        for statement in b.body.dropLast() {
            let expanded: Statement
            switch statement {
            case .letBinding(let k, let n, let value):
                let m = local(n)
                expanded = .letBinding(keyword: k, name: m, value: substitute(value, bound, localLets))
                localLets[n.text] = m.text
            case .declaration(let kind, let k, let n, let type, let attributes):
                let m = local(n)
                renamed[n.text] = m
                expanded = .declaration(kind, keyword: k, name: m, type: type,
                                        attributes: attributes.map { Arg(key: $0.key, value: substitute($0.value, bound, localLets)) })
            case .node(let outs, let nodeOp, let nodeArgs, let nodeClose):
                var newArgs: [Arg] = []
                for a in nodeArgs {
                    if a.key == nil, case .ident(let n) = a.value.kind {
                        if let v = bound[n] { newArgs.append(Arg(key: nil, value: v)); continue }
                        if let m = renamed[n] { newArgs.append(Arg(key: nil, value: Expr(kind: .ident(m.text), loc: a.value.loc))); continue }
                        if graph.id(named: n) != nil {  // only a block call's arguments get here
                            throw noted(source.error(a.value.loc, unreadable(n, in: b.name.text)),
                                        call: op, of: b)
                        }
                    }
                    newArgs.append(Arg(key: a.key, value: substitute(a.value, bound, localLets)))
                }
                let newOuts = outs.map(local)
                for (o, m) in zip(outs, newOuts) { renamed[o.text] = m }
                if let inner = blocks[nodeOp.text] {
                    do throws(Diagnostic) {
                        try expandCall(inner, outputs: newOuts, op: nodeOp, args: newArgs, close: nodeClose,
                                       prefix: prefix + "." + (outs.first?.text ?? ""))
                    } catch {
                        throw noted(error, call: op, of: b)
                    }
                    continue
                }
                expanded = .node(outputs: newOuts, op: nodeOp, args: newArgs, close: nodeClose)
            default:
                continue  // checked when the block was defined
            }
            do throws(Diagnostic) {
                try lower(expanded)
            } catch {
                throw noted(error, call: op, of: b)
            }
        }
    }

    /// Why a body may not read `n`: it is neither a parameter nor a value the body defined before.
    private func unreadable(_ n: String, in block: String) -> String {
        "'\(n)' is not a parameter of block '\(block)' nor a value it defined before; a block reads only those (pass '\(n)' as a parameter)"
    }

    /// `error` with a note at the call of `b` it happened in (unless it is on the call's line).
    private func noted(_ error: Diagnostic, call op: Name, of b: BlockDefinition) -> Diagnostic {
        var e = error
        if e.line != op.loc.line || e.file != source.name(op.loc) {
            e.notes.append(source.note(op.loc, "in the call of block '\(b.name.text)' here"))
        }
        return e
    }

    /// An attribute value of the body: parameters replaced by their arguments, the body's `let`s
    /// by their expanded names; other names (symbols, the file's `let`s) as written.
    private func substitute(_ e: Expr, _ bound: [String: Expr], _ localLets: [String: String]) -> Expr {
        switch e.kind {
        case .number: return e
        case .ident(let n):
            if let v = bound[n] { return v }
            if let m = localLets[n] { return Expr(kind: .ident(m), loc: e.loc, viaLet: e.viaLet) }
            return e
        case .list(let items):
            return Expr(kind: .list(items.map { substitute($0, bound, localLets) }), loc: e.loc, viaLet: e.viaLet)
        case .call(let f, let args):
            return Expr(kind: .call(f, args.map { Arg(key: $0.key, value: substitute($0.value, bound, localLets)) }),
                        loc: e.loc, viaLet: e.viaLet)
        }
    }
}
