// A graph: named values (inputs, parameters, state, intermediates) and nodes in schedule
// order. Values are defined once (SSA); update nodes are the only writers of parameters and
// state after the start of a step, and they come after every reader.

public struct ValueID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var index: Int
    public init(_ index: Int) { self.index = index }
    public static func < (a: ValueID, b: ValueID) -> Bool { a.index < b.index }
    public var description: String { "%\(index)" }
}

public enum Initializer: Hashable, Sendable, CustomStringConvertible {
    case zeros
    case ones
    case constant(Double)
    /// Keras' default for kernels: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).
    case glorotUniform
    case glorotNormal
    case heNormal
    case heUniform

    public var description: String {
        switch self {
        case .zeros: return "zeros"
        case .ones: return "ones"
        case .constant(let v): return "constant(\(formatDouble(v)))"
        case .glorotUniform: return "glorot_uniform"
        case .glorotNormal: return "glorot_normal"
        case .heNormal: return "he_normal"
        case .heUniform: return "he_uniform"
        }
    }

    public static let names = ["zeros", "ones", "constant", "glorot_uniform", "glorot_normal",
                               "he_normal", "he_uniform"]
}

public struct MaxNorm: Hashable, Sendable {
    public var value: Double
    public var axis: MaxNormAxis
    public init(_ value: Double, axis: MaxNormAxis = .keras) {
        self.value = value
        self.axis = axis
    }
}

/// What a parameter or state tensor is, beyond its type.
public struct ParameterInfo: Hashable, Sendable {
    public var initializer: Initializer
    /// Trained by the optimizer. Batchnorm running statistics and optimizer state are `state`
    /// values instead; a frozen layer's weights are parameters with `trainable == false`.
    public var trainable: Bool
    /// The L2 factor: `l2 * sum(w^2)` is added to the loss.
    public var l2: Double
    public var maxNorm: MaxNorm?
    /// The factor on the optimizer's learning rate for this parameter (PyTorch's parameter
    /// groups, discriminative fine-tuning): its update uses `lr_scale * lr` in every step, the
    /// decoupled weight decay's pull included. 1 is the optimizer's rate; 0 leaves the
    /// parameter where it starts while gradients still flow through it.
    public var lrScale: Double

    public init(initializer: Initializer, trainable: Bool = true, l2: Double = 0, maxNorm: MaxNorm? = nil,
                lrScale: Double = 1) {
        self.initializer = initializer
        self.trainable = trainable
        self.l2 = l2
        self.maxNorm = maxNorm
        self.lrScale = lrScale
    }
}

public enum ValueKind: Hashable, Sendable {
    /// Fed by the caller for each batch (images, labels).
    case input
    /// Learned weights: persistent across steps.
    case parameter(ParameterInfo)
    /// Persistent, not learned by gradient: batchnorm running statistics, optimizer moments,
    /// the iteration counter.
    case state(Initializer)
    /// Computed by a node.
    case intermediate

    public var isPersistent: Bool {
        switch self {
        case .parameter, .state: return true
        case .input, .intermediate: return false
        }
    }
}

public struct Value: Hashable, Sendable {
    public var name: String
    public var type: TensorType
    public var kind: ValueKind
    public init(name: String, type: TensorType, kind: ValueKind) {
        self.name = name
        self.type = type
        self.kind = kind
    }
}

public struct Node: Hashable, Sendable {
    /// For diagnostics and `--print-after`; the first output's name when the node has one.
    public var name: String
    public var op: Op
    public var inputs: [ValueID]
    public var outputs: [ValueID]
    public init(name: String, op: Op, inputs: [ValueID], outputs: [ValueID]) {
        self.name = name
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
    }
}

public struct Graph: Sendable {
    public var name: String
    public private(set) var values: [Value] = []
    public var nodes: [Node] = []
    /// Values the caller reads after a run (logits, loss, gradients), in order.
    public var outputs: [ValueID] = []
    public var training: TrainingConfig?
    private var byName: [String: ValueID] = [:]

    public init(name: String) { self.name = name }

    public subscript(id: ValueID) -> Value { values[id.index] }

    public func id(named name: String) -> ValueID? { byName[name] }

    public var inputs: [ValueID] {
        values.indices.filter { values[$0].kind == .input }.map(ValueID.init)
    }

    public var parameters: [ValueID] {
        values.indices.filter { if case .parameter = values[$0].kind { return true } else { return false } }
            .map(ValueID.init)
    }

    public var states: [ValueID] {
        values.indices.filter { if case .state = values[$0].kind { return true } else { return false } }
            .map(ValueID.init)
    }

    /// Adds a value; names are unique, so an existing name is an error the caller reports.
    @discardableResult
    public mutating func addValue(_ value: Value) throws(GraphError) -> ValueID {
        if byName[value.name] != nil { throw GraphError.duplicateValue(value.name) }
        let id = ValueID(values.count)
        values.append(value)
        byName[value.name] = id
        return id
    }

    /// Adds a node computing `op` on `inputs`, inferring and creating its outputs (named by
    /// `outputNames`) from the op's shape rule.
    @discardableResult
    public mutating func addNode(
        _ op: Op, inputs: [ValueID], outputNames: [String], name: String? = nil
    ) throws(GraphError) -> [ValueID] {
        let types: [TensorType]
        do {
            types = try inferTypes(op, inputs.map { self[$0].type })
        } catch {
            throw GraphError.shape(node: name ?? outputNames.first ?? op.name, error)
        }
        guard types.count == outputNames.count else {
            throw GraphError.outputCount(node: name ?? op.name, op: op.name, expected: types.count, got: outputNames.count)
        }
        var outs: [ValueID] = []
        for (n, t) in zip(outputNames, types) {
            outs.append(try addValue(Value(name: n, type: t, kind: .intermediate)))
        }
        nodes.append(Node(name: name ?? outputNames.first ?? "\(op.name).\(nodes.count)", op: op,
                          inputs: inputs, outputs: outs))
        return outs
    }

    /// Renames nothing, changes no IDs: replaces a value's kind (used by passes that turn a
    /// parameter into a frozen one, for example).
    public mutating func setKind(_ id: ValueID, _ kind: ValueKind) {
        values[id.index].kind = kind
    }

    /// Replaces a value's type, IDs and names unchanged (used to re-infer the shapes of a graph
    /// fed another input size; the caller keeps the graph consistent).
    public mutating func setType(_ id: ValueID, _ type: TensorType) {
        values[id.index].type = type
    }

    /// A fresh value name with the given stem that no value uses yet.
    public func uniqueName(_ stem: String) -> String {
        if byName[stem] == nil { return stem }
        var i = 1
        while byName["\(stem).\(i)"] != nil { i += 1 }
        return "\(stem).\(i)"
    }

    /// For each value, the indices of the nodes that read it.
    public func consumers() -> [[Int]] {
        var c = Array(repeating: [Int](), count: values.count)
        for (i, node) in nodes.enumerated() {
            for v in node.inputs where c[v.index].last != i { c[v.index].append(i) }
        }
        return c
    }

    /// For each value, the index of the node that defines it (nil for inputs and persistent values).
    public func producers() -> [Int?] {
        var p = [Int?](repeating: nil, count: values.count)
        for (i, node) in nodes.enumerated() {
            for v in node.outputs { p[v.index] = i }
        }
        return p
    }

    /// Drops values no node or output refers to and renumbers the rest, keeping their order.
    public func compacted() -> Graph {
        var used = Set<ValueID>(outputs)
        for n in nodes { used.formUnion(n.inputs); used.formUnion(n.outputs) }
        for (i, v) in values.enumerated() where v.kind == .input || v.kind.isPersistent {
            used.insert(ValueID(i))
        }
        var g = Graph(name: name)
        g.training = training
        var map: [ValueID: ValueID] = [:]
        for (i, v) in values.enumerated() where used.contains(ValueID(i)) {
            map[ValueID(i)] = try! g.addValue(v)
        }
        g.nodes = nodes.map { Node(name: $0.name, op: $0.op, inputs: $0.inputs.map { map[$0]! },
                                   outputs: $0.outputs.map { map[$0]! }) }
        g.outputs = outputs.map { map[$0]! }
        return g
    }
}

public enum GraphError: Error, Sendable, Equatable, CustomStringConvertible {
    case duplicateValue(String)
    case shape(node: String, ShapeError)
    case outputCount(node: String, op: String, expected: Int, got: Int)

    public var description: String {
        switch self {
        case .duplicateValue(let n): return "value '\(n)' is already defined"
        case .shape(let node, let e): return "\(node): \(e.message)"
        case .outputCount(let node, let op, let expected, let got):
            return "\(node): \(op) has \(expected) output\(expected == 1 ? "" : "s"), but \(got) name\(got == 1 ? " was" : "s were") given"
        }
    }
}
