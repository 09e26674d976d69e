// An ONNX model as a GraphIR graph and its weights. Only models made of ops fergc has are read:
// Conv, BatchNormalization, Relu, LeakyRelu, MaxPool, AveragePool, Gemm, MatMul (+ Add of a
// constant: a dense layer with a bias), Flatten, Reshape, Softmax, Concat, Add, Mul (by a scalar
// constant: `scale`), Dropout and Identity (dropped), Constant, and Transpose when the
// permutations cancel (an NHWC input transposed to NCHW) or fold into the next dense layer's
// weights (Keras' channels-last flatten). Anything else is refused, naming the node and its op.
//
// Weights must be initializers (or Constant nodes): they become `param`s (batchnorm statistics
// become `state`s) whose values the caller writes to an .npz beside the graph.

import GraphIR

public struct ImportError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public struct ImportOptions: Sendable {
    /// The graph's `model` name (default: the ONNX graph's name, made a valid name).
    public var modelName: String?
    /// Treat these graph inputs as constants with these values (a test harness feeds the
    /// weight inputs of ONNX's node tests this way).
    public var constants: [ONNXTensor] = []
    public init() {}
}

public struct ImportedModel: Sendable {
    public var graph: Graph
    /// Parameter and state values by name, in declaration order, with their shapes.
    public var weights: [(name: String, shape: [Int], values: [Float])]
    /// Things a user should know (an input whose layout changed, nodes dropped).
    public var notes: [String]
}

/// The ops the importer reads (ONNX names).
public let onnxImportedOps = ["Add", "AveragePool", "BatchNormalization", "Concat", "Constant", "Conv", "Dropout",
                              "Flatten", "Gemm", "Identity", "LeakyRelu", "MatMul", "MaxPool", "Mul", "Relu",
                              "Reshape", "Softmax", "Transpose"]

public func importONNX(_ model: ONNXModel, _ options: ImportOptions = ImportOptions()) throws(ImportError) -> ImportedModel {
    var i = Importer(model: model, options: options)
    try i.run()
    return ImportedModel(graph: i.graph, weights: i.weights, notes: i.notes)
}

/// The product of dimensions, nil past 2^31 (the most elements a fergc tensor holds per sample).
func product(_ dims: [Int]) -> Int? {
    var p = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (r, o) = p.multipliedReportingOverflow(by: d)
        guard !o, r <= 1 << 31 else { return nil }
        p = r
    }
    return p
}

/// A float attribute as the double whose shortest text is the float's (1e-3, not
/// 0.0010000000474974513): it converts back to the same float, and reads as the author wrote it.
func decimal(_ f: Float) -> Double { Double("\(f)") ?? Double(f) }

/// A valid graph-language name for an ONNX name: `[A-Za-z_][A-Za-z0-9_]*(.[A-Za-z0-9_]+)*`.
public func graphName(for onnxName: String) -> String {
    var segments: [[UInt8]] = []
    for seg in onnxName.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: true) {
        segments.append(seg.map { c in
            let ok = c == UInt8(ascii: "_") || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
                || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
            return ok ? c : UInt8(ascii: "_")
        })
    }
    if segments.isEmpty { return "v" }
    if let f = segments[0].first, f >= UInt8(ascii: "0"), f <= UInt8(ascii: "9") { segments[0] = Array("v_".utf8) + segments[0] }
    return String(decoding: Array(segments.joined(separator: [UInt8(ascii: ".")])), as: UTF8.self)
}

struct Importer {
    let model: ONNXModel
    let options: ImportOptions
    var graph: Graph
    var weights: [(name: String, shape: [Int], values: [Float])] = []
    var notes: [String] = []

    /// What an ONNX value is on the fergc side.
    struct Val {
        var id: ValueID
        /// The ONNX value is `transpose(fergc value, perm)` (full rank, batch first; perm[0] == 0).
        var perm: [Int]?
        /// For a flattened value: ONNX element i (per sample) is fergc element flat[i].
        var flat: [Int]?
    }
    var vals: [String: Val] = [:]
    var consts: [String: ONNXTensor] = [:]
    var paramCache: [String: ValueID] = [:]
    var declaredBatch: Int?
    var opset: Int64 = 13
    var consumers: [String: [Int]] = [:]
    var graphOutputs: Set<String> = []
    /// MatMul node index -> (Add node index, bias constant name).
    var matmulBias: [Int: (add: Int, bias: String)] = [:]
    var absorbed: Set<Int> = []

    init(model: ONNXModel, options: ImportOptions) {
        self.model = model
        self.options = options
        graph = Graph(name: options.modelName ?? graphName(for: model.graph.name.isEmpty ? "imported" : model.graph.name))
    }

    func label(_ k: Int) -> String {
        let n = model.graph.nodes[k]
        return "node \(n.name.isEmpty ? "#\(k)" : "'\(n.name)'") (\(n.opType))"
    }

    // MARK: values

    func fresh(_ onnxName: String) -> String { graph.uniqueName(graphName(for: onnxName)) }

    mutating func param(_ tensor: String, key: String, dims: [Int], values: [Float], state: Initializer? = nil, initializer: Initializer? = nil, tag: String = "") throws(ImportError) -> ValueID {
        let cacheKey = tensor + "|" + key + "|" + tag
        if let id = paramCache[cacheKey] { return id }
        let name = fresh(key.isEmpty ? tensor : tensor + "." + key)
        let kind: ValueKind = state.map { .state($0) } ?? .parameter(ParameterInfo(initializer: initializer ?? (dims.count >= 2 ? .glorotUniform : .zeros)))
        let id: ValueID
        do { id = try graph.addValue(Value(name: name, type: .fixed(dims), kind: kind)) } catch { throw ImportError("\(error)") }
        paramCache[cacheKey] = id
        weights.append((name, dims, values))
        return id
    }

    func constFloats(_ k: Int, _ name: String, what: String) throws(ImportError) -> ONNXTensor {
        guard let t = consts[name] else {
            if vals[name] != nil {
                throw ImportError("\(label(k)): \(what) '\(name)' is computed by the graph; fergc needs it as a constant (an initializer)")
            }
            throw ImportError("\(label(k)): \(what) '\(name)' is not defined")
        }
        guard t.floats != nil else {
            throw ImportError("\(label(k)): \(what) '\(name)' is \(ONNXDataType.name(t.dataType)); fergc reads float weights")
        }
        return t
    }

    func constInts(_ k: Int, _ name: String, what: String) throws(ImportError) -> [Int64] {
        guard let t = consts[name] else { throw ImportError("\(label(k)): \(what) '\(name)' must be a constant (an initializer)") }
        guard let v = t.int64s else { throw ImportError("\(label(k)): \(what) '\(name)' is \(ONNXDataType.name(t.dataType)), expected int64") }
        return v
    }

    func tensor(_ k: Int, _ name: String, allowLayout: Bool = false) throws(ImportError) -> Val {
        guard let v = vals[name] else {
            if consts[name] != nil {
                throw ImportError("\(label(k)): input '\(name)' is a constant; fergc reads this input as a computed tensor only")
            }
            throw ImportError("\(label(k)): input '\(name)' is not defined before the node")
        }
        if !allowLayout, v.perm != nil || v.flat != nil {
            throw ImportError("\(label(k)): input '\(name)' is in a transposed layout: a Transpose before it neither cancels nor folds into the weights of a dense layer")
        }
        return v
    }

    func type(_ v: Val) -> TensorType { graph[v.id].type }

    mutating func add(_ k: Int, _ op: Op, _ inputs: [ValueID], output: String) throws(ImportError) -> ValueID {
        do {
            return try graph.addNode(op, inputs: inputs, outputNames: [fresh(output)])[0]
        } catch {
            throw ImportError("\(label(k)): \(error)")
        }
    }

    // MARK: attributes

    func int(_ k: Int, _ n: String, _ def: Int64) throws(ImportError) -> Int64 {
        switch model.graph.nodes[k].attribute(n) {
        case nil: return def
        case .int(let v)?: return v
        case let other?: throw ImportError("\(label(k)): attribute '\(n)' should be an int, got \(other)")
        }
    }

    func float(_ k: Int, _ n: String, _ def: Float) throws(ImportError) -> Float {
        switch model.graph.nodes[k].attribute(n) {
        case nil: return def
        case .float(let v)?: return v
        case let other?: throw ImportError("\(label(k)): attribute '\(n)' should be a float, got \(other)")
        }
    }

    func ints(_ k: Int, _ n: String) throws(ImportError) -> [Int64]? {
        switch model.graph.nodes[k].attribute(n) {
        case nil: return nil
        case .ints(let v)?: return v
        case let other?: throw ImportError("\(label(k)): attribute '\(n)' should be a list of ints, got \(other)")
        }
    }

    func string(_ k: Int, _ n: String, _ def: String) throws(ImportError) -> String {
        switch model.graph.nodes[k].attribute(n) {
        case nil: return def
        case .string(let v)?: return String(decoding: v, as: UTF8.self)
        case let other?: throw ImportError("\(label(k)): attribute '\(n)' should be a string, got \(other)")
        }
    }

    // MARK: the model

    mutating func run() throws(ImportError) {
        guard model.irVersion >= 3 else {
            throw ImportError("IR version \(model.irVersion) is older than fergc reads (3 or later: models with opset imports)")
        }
        guard let o = model.defaultOpset else { throw ImportError("the model imports no opset of the default ONNX domain") }
        guard (9...22).contains(o) else {
            throw ImportError("the model uses opset \(o); fergc reads opsets 9 to 22 of the default domain")
        }
        opset = o
        let g = model.graph
        guard g.sparseInitializerCount == 0 else { throw ImportError("the graph has sparse initializers, which fergc does not read") }
        for t in g.initializers + options.constants {
            consts[t.name] = t
        }
        for (k, n) in g.nodes.enumerated() {
            for inp in n.inputs where !inp.isEmpty { consumers[inp, default: []].append(k) }
        }
        graphOutputs = Set(g.outputs.map(\.name))
        findDenseBiases()
        try declareInputs()
        for k in g.nodes.indices where !absorbed.contains(k) {
            try node(k)
        }
        guard !g.outputs.isEmpty else { throw ImportError("the graph has no outputs") }
        for out in g.outputs {
            guard let v = vals[out.name] else {
                throw ImportError("output '\(out.name)' is \(consts[out.name] != nil ? "a constant" : "not computed by any node")")
            }
            guard v.perm == nil, v.flat == nil else {
                throw ImportError("output '\(out.name)' is in a transposed layout (a Transpose that does not cancel)")
            }
            guard graph[v.id].kind == .intermediate else { throw ImportError("output '\(out.name)' is a graph input, unchanged") }
            if let shape = out.shape {
                let mine = graph[v.id].type.perSample
                let theirs = shape.dropFirst()
                if shape.count != mine.count + 1 || zip(theirs, mine).contains(where: { if case .value(let d) = $0.0 { return d != $0.1 } else { return false } }) {
                    throw ImportError("output '\(out.name)': the model declares shape \(describe(shape)), fergc computes [N, \(mine.map(String.init).joined(separator: ", "))]")
                }
            }
            guard !graph.outputs.contains(v.id) else { throw ImportError("output '\(out.name)' is listed twice") }
            graph.outputs.append(v.id)
        }
        graph = graph.compacted()
        do { try graph.verify() } catch { throw ImportError("the imported graph does not verify: \(error)") }
    }

    func describe(_ shape: [ONNXDim]) -> String {
        "[" + shape.map { d -> String in
            switch d {
            case .value(let v): return String(v)
            case .param(let p): return p.isEmpty ? "?" : p
            case .unknown: return "?"
            }
        }.joined(separator: ", ") + "]"
    }

    /// MatMul whose only consumer is an Add of a constant vector: a dense layer with a bias.
    mutating func findDenseBiases() {
        let nodes = model.graph.nodes
        for (k, n) in nodes.enumerated() where n.opType == "MatMul" && n.outputs.count == 1 && n.inputs.count == 2 {
            guard let w = consts[n.inputs[1]], w.dims.count == 2, w.floats != nil else { continue }
            let out = n.outputs[0]
            guard !graphOutputs.contains(out), let c = consumers[out], c.count == 1 else { continue }
            let a = nodes[c[0]]
            guard a.opType == "Add", a.domain.isEmpty || a.domain == "ai.onnx", a.inputs.count == 2, a.outputs.count == 1 else { continue }
            let other = a.inputs[0] == out ? a.inputs[1] : a.inputs[0]
            guard other != out, let b = consts[other], b.floats != nil, b.elementCount == w.dims[1],
                  b.dims == [w.dims[1]] || b.dims == [1, w.dims[1]] else { continue }
            matmulBias[k] = (c[0], other)
            absorbed.insert(c[0])
        }
    }

    mutating func declareInputs() throws(ImportError) {
        for inp in model.graph.inputs where consts[inp.name] == nil {
            guard inp.elementType == ONNXDataType.float else {
                throw ImportError("input '\(inp.name)' is \(inp.elementType.map { ONNXDataType.name($0) } ?? "not a tensor"); fergc model inputs are float tensors")
            }
            guard let shape = inp.shape, shape.count >= 2 else {
                throw ImportError("input '\(inp.name)' has \(inp.shape.map { "shape \(describe($0))" } ?? "no shape"); fergc needs a batch dimension first and fixed dimensions after it")
            }
            var per: [Int] = []
            for d in shape.dropFirst() {
                guard case .value(let v) = d, v > 0 else {
                    throw ImportError("input '\(inp.name)' has shape \(describe(shape)); fergc needs fixed positive dimensions after the batch")
                }
                per.append(v)
            }
            guard product(per) != nil else {
                throw ImportError("input '\(inp.name)' has shape \(describe(shape)): more than 2^31 elements per sample")
            }
            if case .value(let b) = shape[0], declaredBatch == nil { declaredBatch = b }
            // An NHWC input read only through Transpose(perm=[0,3,1,2]) is declared NCHW.
            var perm: [Int]?
            if per.count == 3, let c = consumers[inp.name], !c.isEmpty, !graphOutputs.contains(inp.name),
               c.allSatisfy({ model.graph.nodes[$0].opType == "Transpose" && (try? ints($0, "perm")) == [0, 3, 1, 2] }) {
                per = [per[2], per[0], per[1]]
                perm = [0, 2, 3, 1]
                notes.append("input '\(inp.name)' is NHWC \(describe(shape)) in the ONNX model and is transposed to NCHW by its first node: the fergc graph takes it as NCHW [N, \(per.map(String.init).joined(separator: ", "))]")
            }
            let id: ValueID
            do { id = try graph.addValue(Value(name: fresh(inp.name), type: .batched(per), kind: .input)) } catch { throw ImportError("\(error)") }
            vals[inp.name] = Val(id: id, perm: perm)
        }
    }

    // MARK: nodes

    mutating func node(_ k: Int) throws(ImportError) {
        let n = model.graph.nodes[k]
        guard n.domain.isEmpty || n.domain == "ai.onnx" else {
            throw ImportError("\(label(k)): domain '\(n.domain)' is not ONNX's default domain; fergc reads only standard ops")
        }
        guard let out = n.outputs.first, !out.isEmpty else { throw ImportError("\(label(k)): has no output") }
        let inputs = n.inputs
        func need(_ range: ClosedRange<Int>) throws(ImportError) {
            guard range.contains(inputs.count) else {
                throw ImportError("\(label(k)): expected \(range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)") inputs, got \(inputs.count)")
            }
            guard n.outputs.dropFirst().allSatisfy({ $0.isEmpty || (consumers[$0] == nil && !graphOutputs.contains($0)) }) else {
                throw ImportError("\(label(k)): uses outputs beyond the first, which fergc does not compute")
            }
        }
        switch n.opType {
        case "Constant":
            try need(0...0)
            guard let a = n.attributes.first, n.attributes.count == 1 else { throw ImportError("\(label(k)): needs exactly one value attribute") }
            let t: ONNXTensor
            switch (a.name, a.value) {
            case ("value", .tensor(let v)): t = ONNXTensor(name: out, dims: v.dims, dataType: v.dataType, data: v.data)
            case ("value_float", .float(let f)): t = ONNXTensor(name: out, dims: [], floats: [f])
            case ("value_floats", .floats(let f)): t = ONNXTensor(name: out, dims: [f.count], floats: f)
            case ("value_int", .int(let i)): t = ONNXTensor(name: out, dims: [], int64s: [i])
            case ("value_ints", .ints(let i)): t = ONNXTensor(name: out, dims: [i.count], int64s: i)
            default: throw ImportError("\(label(k)): attribute '\(a.name)' is not a value fergc reads")
            }
            consts[out] = t
        case "Identity", "Dropout":
            try need(1...3)
            if n.opType == "Dropout", inputs.count == 3, !inputs[2].isEmpty {
                let training = consts[inputs[2]]
                guard let t = training, t.elementCount == 1, case .unsupported(ONNXDataType.bool) = t.data else {
                    throw ImportError("\(label(k)): training_mode must be a constant false")
                }
                // A bool constant's value is not decoded: refuse rather than guess.
                throw ImportError("\(label(k)): training_mode is given; fergc imports inference models (drop the input)")
            }
            guard n.opType == "Dropout" || inputs.count == 1 else { throw ImportError("\(label(k)): expected 1 input, got \(inputs.count)") }
            if let c = consts[inputs[0]] { consts[out] = ONNXTensor(name: out, dims: c.dims, dataType: c.dataType, data: c.data); return }
            vals[out] = try tensor(k, inputs[0], allowLayout: true)
        case "Relu", "LeakyRelu":
            try need(1...1)
            let x = try tensor(k, inputs[0], allowLayout: true)
            let op: Op = n.opType == "Relu" ? .relu : .leakyRelu(alpha: decimal(try float(k, "alpha", 0.01)))
            vals[out] = Val(id: try add(k, op, [x.id], output: out), perm: x.perm, flat: x.flat)
        case "Softmax":
            try need(1...1)
            let x = try tensor(k, inputs[0], allowLayout: true)
            guard x.perm == nil else { throw ImportError("\(label(k)): input '\(inputs[0])' is in a transposed layout") }
            let rank = type(x).rank
            var axis = try int(k, "axis", opset >= 13 ? -1 : 1)
            if axis < 0 { axis += Int64(rank) }
            guard axis == Int64(rank - 1), rank == 2 else {
                throw ImportError("\(label(k)): softmax over axis \(axis) of a rank-\(rank) tensor; fergc's softmax takes [N, classes] (axis 1)")
            }
            vals[out] = Val(id: try add(k, .softmax, [x.id], output: out), flat: x.flat)
        case "Transpose":
            try need(1...1)
            let x = try tensor(k, inputs[0], allowLayout: true)
            guard x.flat == nil else { throw ImportError("\(label(k)): transposes a flattened tensor") }
            let rank = type(x).rank
            let perm = try ints(k, "perm")?.map { Int($0) } ?? Array((0..<rank).reversed())
            guard perm.count == rank, Set(perm) == Set(0..<rank) else {
                throw ImportError("\(label(k)): perm \(perm) is not a permutation of the \(rank) axes")
            }
            guard perm[0] == 0 else { throw ImportError("\(label(k)): perm \(perm) moves the batch axis, which fergc keeps first") }
            let p = x.perm ?? Array(0..<rank)
            let composed = perm.map { p[$0] }
            vals[out] = Val(id: x.id, perm: composed == Array(0..<rank) ? nil : composed)
        case "Conv":
            try conv(k, out)
        case "MaxPool", "AveragePool":
            try pool(k, out)
        case "BatchNormalization":
            try need(5...5)
            guard try int(k, "training_mode", 0) == 0 else { throw ImportError("\(label(k)): training_mode=1; fergc imports inference models") }
            if opset < 9 { throw ImportError("\(label(k)): opset \(opset) batchnorm semantics are not supported") }
            let x = try tensor(k, inputs[0])
            let t = type(x)
            guard t.rank >= 2 else { throw ImportError("\(label(k)): input of rank \(t.rank)") }
            let c = t.perSample[0]
            var ids: [ValueID] = []
            for (i, what) in ["scale", "B", "mean", "var"].enumerated() {
                let v = try constFloats(k, inputs[i + 1], what: what)
                guard v.elementCount == c else {
                    throw ImportError("\(label(k)): \(what) '\(inputs[i + 1])' has \(v.elementCount) values for \(c) channels")
                }
                ids.append(try param(inputs[i + 1], key: "", dims: [c], values: v.floats!, state: i < 2 ? nil : (i == 2 ? .zeros : .ones), initializer: i == 0 ? .ones : nil))
            }
            let eps = decimal(try float(k, "epsilon", 1e-5))
            guard eps > 0, eps.isFinite else { throw ImportError("\(label(k)): epsilon \(eps) must be positive") }
            var momentum = decimal(try float(k, "momentum", 0.9))
            if !(0...1).contains(momentum) { momentum = 0.9 }
            vals[out] = Val(id: try add(k, .batchnorm(BatchNormAttrs(epsilon: eps, momentum: momentum)), [x.id] + ids, output: out))
        case "Gemm":
            try need(2...3)
            let a = try tensor(k, inputs[0], allowLayout: true)
            guard a.perm == nil else { throw ImportError("\(label(k)): input '\(inputs[0])' is in a transposed layout") }
            guard try int(k, "transA", 0) == 0 else { throw ImportError("\(label(k)): transA=1 transposes the batch, which fergc keeps first") }
            let transB = try int(k, "transB", 0) != 0
            let alpha = try float(k, "alpha", 1), beta = try float(k, "beta", 1)
            let b = try constFloats(k, inputs[1], what: "B")
            let bias = inputs.count == 3 && !inputs[2].isEmpty ? inputs[2] : nil
            try dense(k, out, a, weight: b, transposed: transB, alpha: alpha, bias: bias, beta: beta)
        case "MatMul":
            try need(2...2)
            let a = try tensor(k, inputs[0], allowLayout: true)
            guard a.perm == nil else { throw ImportError("\(label(k)): input '\(inputs[0])' is in a transposed layout") }
            let b = try constFloats(k, inputs[1], what: "B")
            let fused = matmulBias[k]
            let name = fused.map { model.graph.nodes[$0.add].outputs[0] } ?? out
            try dense(k, name, a, weight: b, transposed: false, alpha: 1, bias: fused?.bias, beta: 1)
        case "Flatten":
            try need(1...1)
            let x = try tensor(k, inputs[0], allowLayout: true)
            let rank = type(x).rank
            var axis = try int(k, "axis", 1)
            if axis < 0 { axis += Int64(rank) }
            guard axis == 1 else {
                throw ImportError("\(label(k)): flatten at axis \(axis) of a rank-\(rank) tensor; fergc flattens everything after the batch (axis 1)")
            }
            try flatten(k, out, x, target: [type(x).elementsPerSample])
        case "Reshape":
            try need(2...2)
            let x = try tensor(k, inputs[0], allowLayout: true)
            let shape = try constInts(k, inputs[1], what: "shape")
            let allowZero = try int(k, "allowzero", 0) != 0
            let target = try reshapeTarget(k, x, shape, allowZero: allowZero)
            try flatten(k, out, x, target: target)
        case "Add", "Mul":
            try need(2...2)
            let isAdd = n.opType == "Add"
            if !isAdd, let c = consts[inputs[1]] ?? consts[inputs[0]], let f = c.floats, f.count == 1 {
                let other = consts[inputs[1]] != nil ? inputs[0] : inputs[1]
                let x = try tensor(k, other, allowLayout: true)
                vals[out] = Val(id: try add(k, .scale(factor: decimal(f[0])), [x.id], output: out), perm: x.perm, flat: x.flat)
                return
            }
            for i in inputs where consts[i] != nil {
                throw ImportError("\(label(k)): adds or multiplies the constant '\(i)'; fergc reads \(n.opType) of two computed tensors of one shape\(isAdd ? " (or a bias after MatMul)" : " (or a product with a scalar constant)")")
            }
            let a = try tensor(k, inputs[0]), b = try tensor(k, inputs[1])
            guard type(a) == type(b) else {
                throw ImportError("\(label(k)): inputs of types \(type(a)) and \(type(b)); fergc does not broadcast")
            }
            vals[out] = Val(id: try add(k, isAdd ? .add : .mul, [a.id, b.id], output: out))
        case "Concat":
            guard !inputs.isEmpty else { throw ImportError("\(label(k)): no inputs") }
            try need(1...inputs.count)
            var ids: [ValueID] = []
            for i in inputs { ids.append(try tensor(k, i).id) }
            let rank = graph[ids[0]].type.rank
            var axis = try int(k, "axis", 1)
            if axis < 0 { axis += Int64(rank) }
            guard axis >= 1, axis < rank else {
                throw ImportError("\(label(k)): concatenation along axis \(axis) of rank-\(rank) tensors; fergc concatenates along axes 1 to rank-1 (never the batch)")
            }
            if ids.count == 1 { vals[out] = Val(id: ids[0]); return }
            vals[out] = Val(id: try add(k, .concat(axis: Int(axis)), ids, output: out))
        default:
            throw ImportError("\(label(k)): fergc has no op for ONNX '\(n.opType)' (it imports \(onnxImportedOps.joined(separator: ", ")))")
        }
    }

    /// A per-sample reshape target from an ONNX shape, keeping the batch first.
    func reshapeTarget(_ k: Int, _ x: Val, _ shape: [Int64], allowZero: Bool) throws(ImportError) -> [Int] {
        let inPer = type(x).perSample
        let inFull = [declaredBatch ?? -1] + inPer  // the ONNX tensor's dims (per-sample part permuted if x.perm)
        var onnxPer = inPer
        if let p = x.perm { onnxPer = p.dropFirst().map { inFull[$0] } }
        let total = inPer.reduce(1, *)
        guard !shape.isEmpty else { throw ImportError("\(label(k)): reshape to a scalar drops the batch") }
        if allowZero, shape.contains(0) { throw ImportError("\(label(k)): allowzero=1 with a zero dimension") }
        var dims = shape.map { Int(clamping: $0) }
        // Zeros copy the input's dimension at the same position.
        for i in dims.indices where dims[i] == 0 {
            guard i == 0 || i - 1 < onnxPer.count else { throw ImportError("\(label(k)): shape \(shape) copies a dimension the input does not have") }
            dims[i] = i == 0 ? -2 : onnxPer[i - 1]
        }
        let rest = Array(dims.dropFirst())
        guard rest.filter({ $0 == -1 }).count + (dims[0] == -1 ? 1 : 0) <= 1 else {
            throw ImportError("\(label(k)): shape \(shape) has more than one -1")
        }
        guard rest.allSatisfy({ $0 == -1 || $0 > 0 }) else { throw ImportError("\(label(k)): shape \(shape) has an invalid dimension") }
        // The first dimension must stay the batch: 0, or the ONNX input's fixed batch, or -1 with
        // the rest fixed to the per-sample size.
        let known = rest.filter { $0 > 0 }.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        let batchKept = dims[0] == -2 || (declaredBatch != nil && dims[0] == declaredBatch!) || (dims[0] == -1 && !rest.contains(-1) && known == total)
        guard batchKept else {
            throw ImportError("\(label(k)): reshape to \(shape) changes the batch dimension, which fergc keeps first")
        }
        var per = rest
        if let m = per.firstIndex(of: -1) {
            guard known > 0, total % known == 0 else { throw ImportError("\(label(k)): shape \(shape) does not fit \(total) elements per sample") }
            per[m] = total / known
        }
        guard let count = product(per), count == total else {
            throw ImportError("\(label(k)): shape \(shape) does not have the input's \(total) elements per sample")
        }
        return per
    }

    /// Flatten or reshape `x` to the per-sample `target`, folding a pending transpose into an
    /// element order when the result is flat.
    mutating func flatten(_ k: Int, _ out: String, _ x: Val, target: [Int]) throws(ImportError) {
        let per = type(x).perSample
        if let p = x.perm {
            guard target.count == 1 else {
                throw ImportError("\(label(k)): reshapes a transposed tensor to \(target); fergc folds a Transpose only into a flatten before a dense layer")
            }
            // ONNX element i (in the transposed order) is fergc element flat[i].
            let onnxDims = p.dropFirst().map { per[$0 - 1] }
            var strides = [Int](repeating: 1, count: per.count)
            for a in stride(from: per.count - 2, through: 0, by: -1) { strides[a] = strides[a + 1] * per[a + 1] }
            var flat = [Int](repeating: 0, count: target[0])
            var idx = [Int](repeating: 0, count: onnxDims.count)
            for i in 0..<target[0] {
                var f = 0
                for a in idx.indices { f += idx[a] * strides[p[a + 1] - 1] }
                flat[i] = f
                var a = idx.count - 1
                while a >= 0 {
                    idx[a] += 1
                    if idx[a] < onnxDims[a] { break }
                    idx[a] = 0
                    a -= 1
                }
            }
            let id = per.count == 1 ? x.id : try add(k, per.count == 3 ? .flatten : .reshape(shape: target), [x.id], output: out)
            vals[out] = Val(id: id, flat: flat)
            return
        }
        if target == per { vals[out] = x; return }
        guard x.flat == nil else { throw ImportError("\(label(k)): reshapes a flattened, reordered tensor to \(target)") }
        let op: Op = target.count == 1 && per.count == 3 ? .flatten : .reshape(shape: target)
        vals[out] = Val(id: try add(k, op, [x.id], output: out))
    }

    mutating func dense(_ k: Int, _ out: String, _ a: Val, weight b: ONNXTensor, transposed: Bool, alpha: Float, bias: String?, beta: Float) throws(ImportError) {
        let t = type(a)
        guard t.rank == 2 else { throw ImportError("\(label(k)): input of type \(t); fergc's dense takes [N, features]") }
        guard b.dims.count == 2 else { throw ImportError("\(label(k)): weight '\(b.name)' has shape \(b.dims); expected a matrix") }
        let (o, i) = transposed ? (b.dims[0], b.dims[1]) : (b.dims[1], b.dims[0])
        guard i == t.perSample[0] else {
            throw ImportError("\(label(k)): weight '\(b.name)' \(b.dims) expects \(i) features, the input has \(t.perSample[0])")
        }
        let src = b.floats!
        var w = [Float](repeating: 0, count: o * i)
        if transposed, alpha == 1, a.flat == nil {
            w = src
        } else {
            transform(src, into: &w, o: o, i: i, transposed: transposed, alpha: alpha, flat: a.flat)
        }
        let key = (transposed ? "" : "T") + (alpha != 1 ? "a\(alpha)" : "") + (a.flat != nil ? "P\(k)" : "")
        let wid = try param(b.name, key: key.isEmpty ? "" : "dense", dims: [o, i], values: w, tag: key)
        var ins = [a.id, wid]
        if let bias {
            let c = try constFloats(k, bias, what: "C")
            let bv = c.floats!
            let values: [Float]
            if c.elementCount == o, c.dims.count <= 2, c.dims.count < 2 || c.dims[0] == 1 {
                values = bv.map { beta * $0 }
            } else if c.elementCount == 1 {
                values = [Float](repeating: beta * bv[0], count: o)
            } else {
                throw ImportError("\(label(k)): bias '\(bias)' of shape \(c.dims) is not a vector of \(o) (fergc adds one bias per output)")
            }
            ins.append(try param(bias, key: beta != 1 || c.elementCount != o ? "bias" : "", dims: [o], values: values, tag: "\(beta)"))
        }
        vals[out] = Val(id: try add(k, .dense, ins, output: out))
    }

    /// w[r, flat[c]] = alpha * B[r, c] (B given [O, I], or [I, O] when not transposed).
    func transform(_ src: [Float], into w: inout [Float], o: Int, i: Int, transposed: Bool, alpha: Float, flat: [Int]?) {
        for r in 0..<o {
            for c in 0..<i {
                let v = transposed ? src[r * i + c] : src[c * o + r]
                w[r * i + (flat?[c] ?? c)] = alpha * v
            }
        }
    }

    /// The fergc padding (same or valid) that gives these ONNX pads, or an error.
    func padding(_ k: Int, h: Int, w: Int, kh: Int, kw: Int, stride s: Int, ceil: Bool) throws(ImportError) -> Padding {
        let autoPad = try string(k, "auto_pad", "NOTSET")
        func same(_ n: Int, _ size: Int) -> (Int, Int) {
            let out = windowOutput(n, size: size, stride: s, padding: .same)
            let total = max((out - 1) * s + size - n, 0)
            return (total / 2, total - total / 2)
        }
        let (t, b) = same(h, kh), (l, r) = same(w, kw)
        let pads: [Int]
        switch autoPad {
        case "VALID": pads = [0, 0, 0, 0]
        case "SAME_UPPER": pads = [t, l, b, r]
        case "SAME_LOWER": pads = [b, r, t, l]
        case "NOTSET", "":
            let p = try ints(k, "pads")?.map { Int(clamping: $0) } ?? [0, 0, 0, 0]
            guard p.count == 4, p.allSatisfy({ $0 >= 0 && $0 <= 1 << 20 }) else { throw ImportError("\(label(k)): pads \(p) for a 2-d window") }
            pads = p
        default: throw ImportError("\(label(k)): unknown auto_pad '\(autoPad)'")
        }
        // Output sizes ONNX gives with these pads.
        func onnxOut(_ n: Int, _ size: Int, _ p0: Int, _ p1: Int) -> Int {
            let span = n + p0 + p1 - size
            guard span >= 0 else { return 0 }
            return (ceil ? (span + s - 1) / s : span / s) + 1
        }
        let outH = onnxOut(h, kh, pads[0], pads[2]), outW = onnxOut(w, kw, pads[1], pads[3])
        if pads == [0, 0, 0, 0], outH == windowOutput(h, size: kh, stride: s, padding: .valid), outW == windowOutput(w, size: kw, stride: s, padding: .valid), outH > 0, outW > 0 {
            return .valid
        }
        if pads == [t, l, b, r], outH == windowOutput(h, size: kh, stride: s, padding: .same), outW == windowOutput(w, size: kw, stride: s, padding: .same) {
            return .same
        }
        throw ImportError("\(label(k)): pads \(pads) (top, left, bottom, right)\(ceil ? " with ceil_mode=1" : "") on a \(h)x\(w) input are neither 'valid' (no padding) nor TensorFlow's 'same' ([\(t), \(l), \(b), \(r)]), the two paddings fergc has")
    }

    mutating func conv(_ k: Int, _ out: String) throws(ImportError) {
        let n = model.graph.nodes[k]
        guard (2...3).contains(n.inputs.count) else { throw ImportError("\(label(k)): expected 2 or 3 inputs, got \(n.inputs.count)") }
        let x = try tensor(k, n.inputs[0])
        let t = type(x)
        guard t.rank == 4 else { throw ImportError("\(label(k)): input of type \(t); fergc convolves 2-d images [N, C, H, W]") }
        let wt = try constFloats(k, n.inputs[1], what: "weight")
        guard wt.dims.count == 4 else { throw ImportError("\(label(k)): weight '\(wt.name)' has shape \(wt.dims); expected [O, C, KH, KW]") }
        guard try int(k, "group", 1) == 1 else { throw ImportError("\(label(k)): grouped convolution (group=\(try int(k, "group", 1))); fergc has ordinary convolutions only") }
        if let d = try ints(k, "dilations"), d.contains(where: { $0 != 1 }) { throw ImportError("\(label(k)): dilations \(d); fergc has undilated convolutions only") }
        if let ks = try ints(k, "kernel_shape"), ks.map({ Int($0) }) != Array(wt.dims[2...]) {
            throw ImportError("\(label(k)): kernel_shape \(ks) does not match the weight \(wt.dims)")
        }
        let strides = try ints(k, "strides") ?? [1, 1]
        guard strides.count == 2, strides[0] == strides[1], strides[0] >= 1, strides[0] <= 1 << 20 else {
            throw ImportError("\(label(k)): strides \(strides); fergc has one stride for both axes")
        }
        let ps = t.perSample
        guard wt.dims[1] == ps[0] else { throw ImportError("\(label(k)): weight '\(wt.name)' \(wt.dims) expects \(wt.dims[1]) input channels, the input has \(ps[0])") }
        let pad = try padding(k, h: ps[1], w: ps[2], kh: wt.dims[2], kw: wt.dims[3], stride: Int(strides[0]), ceil: false)
        var ins = [x.id, try param(wt.name, key: "", dims: wt.dims, values: wt.floats!)]
        if n.inputs.count == 3, !n.inputs[2].isEmpty {
            let b = try constFloats(k, n.inputs[2], what: "bias")
            guard b.elementCount == wt.dims[0] else { throw ImportError("\(label(k)): bias '\(b.name)' has \(b.elementCount) values for \(wt.dims[0]) filters") }
            ins.append(try param(b.name, key: "", dims: [wt.dims[0]], values: b.floats!))
        }
        vals[out] = Val(id: try add(k, .conv2d(Conv2DAttrs(stride: Int(strides[0]), padding: pad)), ins, output: out))
    }

    mutating func pool(_ k: Int, _ out: String) throws(ImportError) {
        let n = model.graph.nodes[k]
        guard n.inputs.count == 1 else { throw ImportError("\(label(k)): expected 1 input, got \(n.inputs.count)") }
        guard n.outputs.dropFirst().allSatisfy({ $0.isEmpty || (consumers[$0] == nil && !graphOutputs.contains($0)) }) else {
            throw ImportError("\(label(k)): uses the Indices output, which fergc does not compute")
        }
        let isMax = n.opType == "MaxPool"
        let x = try tensor(k, n.inputs[0])
        let t = type(x)
        guard t.rank == 4 else { throw ImportError("\(label(k)): input of type \(t); fergc pools 2-d images [N, C, H, W]") }
        guard let ks = try ints(k, "kernel_shape"), ks.count == 2 else { throw ImportError("\(label(k)): needs kernel_shape of two values") }
        guard ks[0] == ks[1], ks[0] >= 1, ks[0] <= 1 << 20 else { throw ImportError("\(label(k)): kernel_shape \(ks); fergc pools square windows") }
        let strides = try ints(k, "strides") ?? [1, 1]
        guard strides.count == 2, strides[0] == strides[1], strides[0] >= 1, strides[0] <= 1 << 20 else {
            throw ImportError("\(label(k)): strides \(strides); fergc has one stride for both axes")
        }
        if let d = try ints(k, "dilations"), d.contains(where: { $0 != 1 }) { throw ImportError("\(label(k)): dilations \(d); fergc pools undilated windows") }
        if isMax, try int(k, "storage_order", 0) != 0 { throw ImportError("\(label(k)): storage_order=1 (column-major indices)") }
        let ceil = try int(k, "ceil_mode", 0) != 0
        let ps = t.perSample
        let size = Int(ks[0]), s = Int(strides[0])
        let pad = try padding(k, h: ps[1], w: ps[2], kh: size, kw: size, stride: s, ceil: ceil)
        func padTotal(_ n: Int) -> Int { max((windowOutput(n, size: size, stride: s, padding: .same) - 1) * s + size - n, 0) }
        if !isMax, pad == .same, try int(k, "count_include_pad", 0) != 0, padTotal(ps[1]) + padTotal(ps[2]) > 0 {
            throw ImportError("\(label(k)): count_include_pad=1 with padding; fergc averages over the in-bounds elements only")
        }
        let attrs = PoolAttrs(size: size, stride: s, padding: pad)
        vals[out] = Val(id: try add(k, isMax ? .maxpool(attrs) : .avgpool(attrs), [x.id], output: out))
    }
}
