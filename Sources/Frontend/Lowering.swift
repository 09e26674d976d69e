// Lowering: statements to GraphIR, one at a time, in source order. Every value records where
// it was defined, so that errors can point at the use and add a note at the definition; the
// graph that comes out has passed `Graph.verify()`.

#if canImport(GraphIR)
import GraphIR
#endif

struct Lowering {
    /// The file compiled and those it imports (Imports.swift).
    var source: SourceSet
    var graph = Graph(name: "model")
    var model: Name?
    /// Where each value and each `let` constant was defined (one namespace for both).
    var definitions: [String: Loc] = [:]
    var lets: [String: (name: Name, value: Expr)] = [:]
    /// Persistent values an update node has written, with the node and its location.
    var writers: [ValueID: (node: String, loc: Loc)] = [:]
    /// Where each node was written, by node name (first wins), for verifier errors.
    var nodeLocs: [String: Loc] = [:]
    var outputLocs: [ValueID: Loc] = [:]
    var train: TrainSection?
    /// The blocks defined so far (Blocks.swift), the statements their calls have expanded to, and
    /// the calls being expanded (innermost last).
    var blocks: [String: BlockDefinition] = [:]
    var expandedStatements = 0
    var callStack: [String] = []
    /// Whether `import` may read files (only for a model compiled from a file), the files read
    /// (canonical paths), the imports being read (innermost last) and the bytes read so far.
    var importsAllowed = false
    var imported = Set<String>()
    var importStack: [String] = []
    var importedBytes = 0

    init(source: SourceFile) { self.source = SourceSet(files: [source]) }

    mutating func lower(_ statement: Statement) throws(Diagnostic) {
        if model == nil {
            guard case .model = statement else {
                throw source.error(statement.loc, "missing 'model NAME': the file must start with it")
            }
        }
        switch statement {
        case .model(let keyword, let name):
            if let first = model {
                throw source.error(keyword, "duplicate 'model' statement",
                                   notes: [source.note(first.loc, "the model was first named '\(first.text)' here")])
            }
            model = name
            graph = Graph(name: name.text)
        case .letBinding(_, let name, let value):
            try define(name)
            lets[name.text] = (name, resolved(value))
        case .declaration(let kind, _, let name, let type, let attributes):
            try lowerDeclaration(kind, name: name, type: type, attributes: attributes)
        case .node(let outputs, let op, let args, let close):
            if let b = blocks[op.text] {
                return try expandCall(b, outputs: outputs, op: op, args: args, close: close, prefix: outputs.first?.text ?? "")
            }
            try lowerNode(outputs: outputs, op: op, args: args, close: close)
        case .output(_, let names):
            for name in names {
                let id = try valueRef(Expr(kind: .ident(name.text), loc: name.loc))
                if let first = outputLocs[id] {
                    throw source.error(name.loc, "'\(name.text)' is already an output",
                                       notes: [source.note(first, "first listed here")])
                }
                outputLocs[id] = name.loc
                graph.outputs.append(id)
            }
        case .train(let keyword, let entries, let close):
            if let first = train {
                throw source.error(keyword, "duplicate 'train' block",
                                   notes: [source.note(first.keyword, "the first train block is here")])
            }
            train = try lowerTrain(keyword: keyword, entries: entries, close: close)
        case .block(let b):
            try defineBlock(b)
        case .returnValues(let keyword, _):
            throw source.error(keyword, "'return' outside a block: it ends a block's body")
        case .importFile(let keyword, let path, let pathLoc):
            try importFile(keyword: keyword, path: path, pathLoc: pathLoc)
        }
    }

    /// The graph, after the end-of-file checks and the verifier.
    mutating func finish() throws(Diagnostic) -> Graph {
        guard model != nil else {
            throw source.error(Loc(line: 1, col: 1), "empty file: a model file must start with 'model NAME'")
        }
        if let train {
            graph.training = try trainingConfig(train)
            try checkPreprocessScale(train)
        }
        do throws(VerifierError) {
            try graph.verify()
        } catch {
            let loc = error.node.flatMap { nodeLocs[$0] } ?? model?.loc ?? Loc(line: 1, col: 1)
            throw source.error(loc, "internal error: the lowered graph fails verification: \(error.description)")
        }
        return graph
    }

    // MARK: names

    /// Records a new name, or reports it as a redefinition with a note at the first one.
    mutating func define(_ name: Name, created what: String? = nil, at loc: Loc? = nil) throws(Diagnostic) {
        let loc = loc ?? name.loc
        if let first = definitions[name.text] {
            let extra = what.map { " (\($0))" } ?? ""
            throw source.error(loc, "'\(name.text)' is already defined\(extra)",
                               notes: [source.note(first, "'\(name.text)' was first defined here")])
        }
        definitions[name.text] = loc
    }

    /// A positional argument: the name of a value defined earlier.
    func valueRef(_ e: Expr) throws(Diagnostic) -> ValueID {
        guard case .ident(let n) = e.kind else {
            throw source.error(e.loc, "expected a value name, found \(e.described) (attributes are written key=value)")
        }
        if let id = graph.id(named: n) { return id }
        if let bound = lets[n] {
            throw source.error(e.loc, "'\(n)' is a let constant, not a tensor value; use it as an attribute value (key=\(n))",
                               notes: [source.note(bound.name.loc, "'\(n)' is defined here")])
        }
        throw source.error(e.loc, "unknown value '\(n)'\(didYouMean(n, graph.values.map(\.name)))")
    }

    // MARK: declarations

    private mutating func lowerDeclaration(_ kind: DeclarationKind, name: Name, type: TypeExpr,
                                           attributes: [Arg]) throws(Diagnostic) {
        try define(name)
        var kw = try Keywords(attributes, source: source)
        switch kind {
        case .input:
            let t = try tensorType(type, allowBatch: true, what: "an input")
            try kw.finish(valid: [], what: "an input", source: source)
            try add(Value(name: name.text, type: t, kind: .input), at: name.loc)
        case .param:
            let t = try tensorType(type, allowBatch: false, what: "a parameter")
            let info = try parameterInfo(&kw, type: t, defaultInit: t.rank >= 2 ? .glorotUniform : .zeros,
                                         prefix: "", what: "a param")
            try kw.finish(valid: ["init", "trainable", "l2", "max_norm", "max_norm_axis", "lr_scale"], what: "a param",
                          source: source)
            try add(Value(name: name.text, type: t, kind: .parameter(info)), at: name.loc)
        case .state:
            let t = try tensorType(type, allowBatch: false, what: "a state value")
            var initializer = Initializer.zeros
            if let (k, v) = kw.take("init") {
                initializer = try self.initializer(v, key: k.text, allowed: ["zeros", "ones", "constant"])
            }
            try kw.finish(valid: ["init"], what: "a state value", source: source)
            try add(Value(name: name.text, type: t, kind: .state(initializer)), at: name.loc)
        }
    }

    @discardableResult
    mutating func add(_ value: Value, at loc: Loc) throws(Diagnostic) -> ValueID {
        do throws(GraphError) {
            return try graph.addValue(value)
        } catch {
            throw source.error(loc, error.description)
        }
    }

    /// `init` (read as `prefix + key`), `trainable`, `l2`, `max_norm`, `max_norm_axis`, `lr_scale`.
    func parameterInfo(_ kw: inout Keywords, type: TensorType, defaultInit: Initializer, prefix: String,
                       what: String) throws(Diagnostic) -> ParameterInfo {
        var info = ParameterInfo(initializer: defaultInit)
        if let (k, v) = kw.take(prefix + "init") { info.initializer = try initializer(v, key: k.text) }
        if let (k, v) = kw.take("trainable") { info.trainable = try boolean(v, key: k.text) }
        if let (k, v) = kw.take("l2") {
            info.l2 = try number(v, key: k.text, "must be zero or positive") { $0 >= 0 }
        }
        let axis = kw.take("max_norm_axis")
        if let (k, v) = kw.take("max_norm") {
            let value = try number(v, key: k.text, "must be positive") { $0 > 0 }
            guard type.rank == 2 || type.rank == 4 else {
                throw source.error(v.loc, "max_norm applies to dense [O, I] and conv [O, C, KH, KW] weights, not \(type)")
            }
            var m = MaxNorm(value)
            if let (ak, av) = axis { m.axis = try choice(av, key: ak.text, as: MaxNormAxis.self) }
            info.maxNorm = m
        } else if let (ak, _) = axis {
            throw source.error(ak.loc, "max_norm_axis needs max_norm (the norm limit) in \(what)")
        }
        info.lrScale = try lrScale(&kw, trainable: info.trainable, what: what)
        return info
    }

    /// `lr_scale`: the factor on the optimizer's learning rate (1 when absent), zero or positive,
    /// and only where there is something to train.
    func lrScale(_ kw: inout Keywords, trainable: Bool, what: String) throws(Diagnostic) -> Double {
        guard let (k, v) = kw.take("lr_scale") else { return 1 }
        let value = try number(v, key: k.text, "must be zero or positive (the factor on the learning rate)") {
            $0 >= 0 && $0.isFinite
        }
        guard trainable else {
            throw source.error(k.loc, "lr_scale has no effect on \(what): it has trainable=false, so nothing updates it")
        }
        return value
    }

    // MARK: nodes

    private mutating func lowerNode(outputs: [Name], op: Name, args: [Arg], close: Loc) throws(Diagnostic) {
        guard Op.allNames.contains(op.text) else {
            throw source.error(op.loc, "unknown op '\(op.text)'\(didYouMean(op.text, Op.allNames + blocks.keys.sorted()))")
        }
        var positional: [Expr] = []
        var firstKeyword: Name?
        for arg in args {
            if let key = arg.key {
                firstKeyword = firstKeyword ?? key
            } else if let k = firstKeyword {
                throw source.error(arg.value.loc, "positional argument after the keyword argument '\(k.text)'; inputs come first")
            } else {
                positional.append(arg.value)
            }
        }
        var kw = try Keywords(args, source: source)
        var inputs: [ValueID] = []
        for e in positional {
            let id = try valueRef(e)
            inputs.append(id)
        }
        if positional.count == 1, let layer = LayerKind(rawValue: op.text) {
            return try lowerLayer(layer, outputs: outputs, op: op, x: positional[0], input: inputs[0], kw: &kw)
        }
        var attributes: [String: Attribute] = [:]
        for (k, v) in kw.entries { attributes[k.text] = try attribute(v, key: k.text) }
        let maybe: Op?
        do throws(AttributeError) {
            maybe = try Op.make(name: op.text, attributes: attributes)
        } catch {
            throw attributeError(error, op: op, kw: kw)
        }
        guard let made = maybe else { throw source.error(op.loc, "unknown op '\(op.text)'") }
        try checkArity(made, op: op, positional: positional, close: close)
        if case .flatten = made, let x = inputs.first, graph[x].type.isBatched, graph[x].type.rank <= 2 {
            throw source.error(positional[0].loc, "flatten of '\(graph[x].name)' does nothing: it is \(graph[x].type), already flat (flatten takes [N, C, H, W])",
                               notes: definitionNote(graph[x].name))
        }
        if made.isUpdate {
            if let first = outputs.first {
                throw source.error(first.loc, "\(op.text) updates its inputs in place and has no outputs; write it without '\(first.text) ='")
            }
            for p in made.writtenInputs where p < inputs.count {
                let v = graph[inputs[p]]
                guard v.kind.isPersistent else {
                    let what = v.kind == .input ? "an input" : "an intermediate value"
                    throw source.error(positional[p].loc, "\(op.text) writes its input \(p + 1) in place, so '\(v.name)' must be a param or state, not \(what)",
                                       notes: definitionNote(v.name))
                }
            }
        } else if outputs.isEmpty {
            throw source.error(op.loc, "the result of \(op.text) must be named, as in 'y = \(op.text)(...)'")
        }
        // Soft targets are the training step's own (training-form, with mixup), never a model
        // file's: the trainer feeds only the labels.
        // (Other label types are the shape check's to report.)
        if case .softmaxCrossEntropy = made, inputs.count == 2, positional.count == 2, graph[inputs[1]].type == graph[inputs[0]].type {
            let logits = graph[inputs[0]].type
            throw source.error(positional[1].loc, "softmax_cross_entropy expects labels i32[\(logits.dims.first.map { "\($0)" } ?? "N")] for logits \(logits), got \(logits) (soft targets are made by the trainer: train { mixup = ... })",
                               notes: definitionNote(graph[inputs[1]].name))
        }
        let nodeName = outputs.first?.text ?? (op.text + (positional.first.map { "." + $0.described } ?? ""))
        try addNode(made, inputs: inputs, argLocs: positional.map(\.loc), outputs: outputs, op: op, name: nodeName)
    }

    /// Adds a node (defining its outputs), mapping shape errors to located diagnostics.
    @discardableResult
    mutating func addNode(_ made: Op, inputs: [ValueID], argLocs: [Loc], outputs: [Name], op: Name,
                          name: String) throws(Diagnostic) -> [ValueID] {
        if !made.isUpdate {
            for (i, id) in inputs.enumerated() {
                if let w = writers[id] {
                    throw source.error(i < argLocs.count ? argLocs[i] : op.loc,
                                       "'\(graph[id].name)' is read after '\(w.node)' updated it in place; updates must come after every reader",
                                       notes: [source.note(w.loc, "updated here")])
                }
            }
        }
        for o in outputs { try define(o) }
        let ids: [ValueID]
        do throws(GraphError) {
            ids = try graph.addNode(made, inputs: inputs, outputNames: outputs.map(\.text), name: name)
        } catch {
            switch error {
            case .shape(_, let e):
                throw shapeError(e, op: op, inputs: inputs, argLocs: argLocs)
            case .outputCount(_, let opName, let expected, let got):
                throw source.error(outputs.first?.loc ?? op.loc,
                                   "\(opName) has \(expected) output\(expected == 1 ? "" : "s"), but \(got) name\(got == 1 ? " was" : "s were") given")
            case .duplicateValue(let n):
                throw source.error(outputs.first(where: { $0.text == n })?.loc ?? op.loc, "'\(n)' is already defined")
            }
        }
        for (o, id) in zip(outputs, ids) {
            let t = graph[id].type
            guard checkedElementCount(t.perSample) != nil else {
                throw source.error(o.loc, "'\(o.text)' would be \(t), more than \(maxElements) elements\(t.isBatched ? " per sample" : "")")
            }
        }
        if nodeLocs[name] == nil { nodeLocs[name] = op.loc }
        for p in made.writtenInputs where p < inputs.count { writers[inputs[p]] = (name, op.loc) }
        return ids
    }

    func definitionNote(_ name: String) -> [Diagnostic] {
        guard let loc = definitions[name], let id = graph.id(named: name) else { return [] }
        return [source.note(loc, "'\(name)' is \(graph[id].type), defined here")]
    }

    /// A shape error, at the one input involved or else at the op, with a note at the
    /// definition of each input involved (when it is on another line).
    func shapeError(_ e: ShapeError, op: Name, inputs: [ValueID], argLocs: [Loc]) -> Diagnostic {
        let involved = e.inputs.filter { $0 >= 0 && $0 < inputs.count }
        var loc = op.loc
        if involved.count == 1, involved[0] < argLocs.count { loc = argLocs[involved[0]] }
        var notes: [Diagnostic] = []
        var noted = Set<ValueID>()
        for i in involved where noted.insert(inputs[i]).inserted {
            let name = graph[inputs[i]].name
            if let d = definitions[name], d.line != op.loc.line { notes += definitionNote(name) }
        }
        return source.error(loc, e.message, notes: notes)
    }

    func attributeError(_ error: AttributeError, op: Name, kw: Keywords) -> Diagnostic {
        func entry(_ key: String) -> (key: Name, value: Expr)? { kw.entries.first { $0.key.text == key } }
        switch error.kind {
        case .unknown(let name, let valid):
            let key = entry(name)?.key ?? op
            return unknownAttribute(key, valid: valid, what: op.text, source: source)
        case .wrongType(let name, let expected, _):
            guard let (_, v) = entry(name) else { return source.error(op.loc, error.message) }
            let r = resolved(v)
            var symbols: [String] = []
            if expected.hasPrefix("one of ") {
                symbols = expected.dropFirst("one of ".count).split(separator: ",").map { $0.trimmingSpaces }
            }
            if expected == "true or false" { symbols = ["true", "false"] }
            return mismatch(r, key: name, expected: expected, symbols: symbols)
        case .invalidValue(let name, let message):
            guard let (_, v) = entry(name) else { return source.error(op.loc, error.message) }
            return invalid(resolved(v), key: name, message)
        case .missing(let name):
            if let typo = kw.entries.first(where: { closestMatch($0.key.text, among: [name]) != nil }) {
                return source.error(typo.key.loc, "unknown attribute '\(typo.key.text)' for \(op.text) (did you mean '\(name)'?)")
            }
            return source.error(op.loc, "missing required attribute '\(name)' for \(op.text)")
        }
    }

    private func checkArity(_ made: Op, op: Name, positional: [Expr], close: Loc) throws(Diagnostic) {
        let (low, high) = inputArity(made)
        let n = positional.count
        let want: String
        if let high, high == low { want = "\(low) input\(low == 1 ? "" : "s")" }
        else if let high { want = "\(low) to \(high) inputs" }
        else { want = "\(low) or more inputs" }
        let got = "got \(n)"
        if let high, n > high {
            throw source.error(positional[high].loc, "too many inputs: \(op.text) takes \(want), \(got)")
        }
        if n < low {
            throw source.error(close, "too few inputs: \(op.text) takes \(want), \(got)")
        }
    }
}

extension Substring {
    /// Without the spaces and tabs at its ends.
    var trimmingSpaces: String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(drop(while: blank).reversed().drop(while: blank).reversed())
    }
}

/// How many positional inputs each op takes (the shape rules check them too; this gives the
/// error a better location). A nil upper bound means "or more".
func inputArity(_ op: Op) -> (Int, Int?) {
    switch op {
    case .conv2d, .dense: return (2, 3)
    case .batchnorm, .batchnormTrainGrad, .batchnormStatsUpdate: return (5, 5)
    case .batchnormTrain, .batchnormGrad, .softmaxCrossEntropyGrad: return (3, 3)
    case .relu, .leakyRelu, .dropout, .dropoutTrain, .maxpool, .avgpool, .flatten, .softmax,
         .biasGrad, .reshape, .slice, .scale, .l2Penalty, .maxNormProject, .increment, .preprocess:
        return (1, 1)
    case .softmaxCrossEntropy, .conv2dGradInput, .conv2dGradWeight, .denseGradInput,
         .denseGradWeight, .reluGrad, .leakyReluGrad, .maxpoolGrad, .avgpoolGrad, .softmaxGrad,
         .l2PenaltyGrad:
        return (2, 2)
    case .add, .mul: return (2, nil)
    case .concat: return (1, nil)
    case .constant: return (0, 0)
    case .sgdUpdate: return (4, 4)
    case .adamUpdate: return (6, 6)
    case .fused, .fusedTrain, .fusedTrainGrad: return (2, nil)  // exact counts: ShapeInference.swift
    }
}

extension Lowering {
    /// Preprocessing ops read raw pixels 0..255 (GraphIR/Preprocess.swift): one that reads the
    /// model's input needs the input unscaled.
    func checkPreprocessScale(_ train: TrainSection) throws(Diagnostic) {
        guard train.inputScale != 1 else { return }
        for node in graph.nodes {
            guard case .preprocess(let p) = node.op, p.readsPixelScale,
                  let x = node.inputs.first, graph[x].kind == .input else { continue }
            throw source.error(nodeLocs[node.name] ?? train.keyword,
                               "\(p.name) reads raw pixels 0..255, but the train block scales the input '\(graph[x].name)' by input_scale = \(formatDouble(train.inputScale)); set input_scale = 1 and scale after the op, e.g. 'y = scale(\(node.name), factor=0.00392156862745098)'",
                               notes: [source.note(train.keyword, "the train block is here")])
        }
    }
}
