// fold-batchnorm (inference only): an inference-form batchnorm that reads a conv2d or dense
// output nobody else reads becomes part of that layer's weights. Per output channel o, with
// s = gamma / sqrt(running_var + epsilon) (the model's own epsilon, in double):
//
//   w'[o, ...] = w[o, ...] * s[o]        b'[o] = (b[o] - running_mean[o]) * s[o] + beta[o]
//
// (b = 0 for a layer without bias: the folded layer always has one.)
//
//   param c.weight: f32[8, 4, 3, 3]             param c.weight.folded: f32[8, 4, 3, 3], init=glorot_uniform, trainable=false
//   param bn.gamma ... state bn.running_var     param c.bias.folded: f32[8], init=zeros, trainable=false
//   c = conv2d(x, c.weight, stride=1, ...)  ==> bn = conv2d(x, c.weight.folded, c.bias.folded, stride=1, ...)
//   bn = batchnorm(c, bn.gamma, bn.beta,        r = relu(bn)
//        bn.running_mean, bn.running_var, ...)
//   r = relu(bn)
//
// Parameter values are not part of the graph, so the pass returns, beside the graph, one
// `FoldRecipe` per fold: the names of the tensors it combines and how. `applyFolds` computes
// the folded tensors from real weights (in double), so the compile driver calls
// `foldBatchnorm(_:)` directly, keeps the recipes, and stores `applyFolds(recipes, weights:)`
// in the plan. The `Pipelines.foldBatchnorm` pass wraps the same function and drops the
// recipes (for --print-after and structural tests); `probePipeline` (ProbeCheck.swift) calls
// the function itself for that pass. The source parameters of a fold that nothing else reads
// are removed from the graph.
//
// The paper's order conv -> relu -> batchnorm does not match (relu sits between): that
// batchnorm becomes the fused kernel's scale/shift epilogue instead (Fuse.swift). The training
// pipeline never folds.

import GraphIR

/// What the fold appends to the names of the weight and bias it makes (`c.weight.folded`): a
/// plan's folded tensors, which `fergc train --init P.plan` and `fergc compile --weights P.plan`
/// offer under the names without it.
public let foldedSuffix = ".folded"

/// A plan's values with each folded tensor (`X.weight.folded`, `X.bias.folded`) under the name
/// without the suffix, for the convolution X (with a bias) of the model written without its
/// batchnorm; names in `keep` stay as they are (a model that folds again). Throws when a plan
/// holds both names of one tensor.
public func unfoldedNames(_ values: [String: [Float]], keep: Set<String> = []) throws -> [String: [Float]] {
    var out: [String: [Float]] = [:]
    for (name, v) in values.sorted(by: { $0.key < $1.key }) {
        let key = name.hasSuffix(foldedSuffix) && !keep.contains(name) ? String(name.dropLast(foldedSuffix.count)) : name
        guard out[key] == nil else {
            throw PassError(pass: "fold-batchnorm", message: "the plan holds both '\(key)' and '\(key)\(foldedSuffix)'")
        }
        out[key] = v
    }
    return out
}

/// How one folded layer's weight and bias are computed from the original tensors (by name).
public struct FoldRecipe: Hashable, Sendable, Codable {
    /// Names of the folded tensors the rewritten layer reads.
    public var weight: String
    public var bias: String
    /// Names of the tensors they are computed from; `sourceBias` nil for a layer without bias.
    public var sourceWeight: String
    public var sourceBias: String?
    public var gamma: String
    public var beta: String
    public var runningMean: String
    public var runningVar: String
    public var epsilon: Double
    /// Output channels (conv filters or dense units): the leading axis of the weight.
    public var channels: Int

    public init(weight: String, bias: String, sourceWeight: String, sourceBias: String?, gamma: String, beta: String,
                runningMean: String, runningVar: String, epsilon: Double, channels: Int) {
        self.weight = weight
        self.bias = bias
        self.sourceWeight = sourceWeight
        self.sourceBias = sourceBias
        self.gamma = gamma
        self.beta = beta
        self.runningMean = runningMean
        self.runningVar = runningVar
        self.epsilon = epsilon
        self.channels = channels
    }
}

/// Folds every conv2d/dense -> batchnorm pair it can; returns the graph and one recipe per fold.
public func foldBatchnorm(_ graph: Graph) throws -> (graph: Graph, recipes: [FoldRecipe]) {
    let consumers = graph.consumers()
    let producers = graph.producers()
    let outputs = Set(graph.outputs)
    var g = graph
    var recipes: [FoldRecipe] = []
    var replace: [Int: Node] = [:]  // batchnorm node index -> the folded layer
    var remove = Set<Int>()
    var sources = Set<ValueID>()

    for (bnIndex, bn) in graph.nodes.enumerated() {
        guard case .batchnorm(let attrs) = bn.op,
              let anchorIndex = producers[bn.inputs[0].index], !remove.contains(anchorIndex) else { continue }
        let anchor = graph.nodes[anchorIndex]
        let z = bn.inputs[0]
        switch anchor.op {
        case .conv2d, .dense: break
        default: continue
        }
        guard consumers[z.index] == [bnIndex], !outputs.contains(z),
              (anchor.inputs.dropFirst() + bn.inputs.dropFirst()).allSatisfy({ graph[$0].kind.isPersistent })
        else { continue }
        let w = anchor.inputs[1], b = anchor.inputs.count == 3 ? anchor.inputs[2] : nil
        let wName = graph[w].name
        let layer = wName.hasSuffix(".weight") ? String(wName.dropLast(".weight".count)) : wName
        let channels = graph[w].type.perSample[0]
        let info = { (v: ValueID) -> ParameterInfo in
            guard case .parameter(let p) = graph[v].kind else { return ParameterInfo(initializer: .zeros, trainable: false) }
            return ParameterInfo(initializer: p.initializer, trainable: false)
        }
        let wFolded = try g.addValue(Value(name: g.uniqueName(layer + ".weight" + foldedSuffix), type: graph[w].type, kind: .parameter(info(w))))
        let bFolded = try g.addValue(Value(name: g.uniqueName(layer + ".bias" + foldedSuffix), type: .fixed([channels]),
                                           kind: .parameter(b.map(info) ?? ParameterInfo(initializer: .zeros, trainable: false))))
        recipes.append(FoldRecipe(
            weight: g[wFolded].name, bias: g[bFolded].name, sourceWeight: wName, sourceBias: b.map { graph[$0].name },
            gamma: graph[bn.inputs[1]].name, beta: graph[bn.inputs[2]].name,
            runningMean: graph[bn.inputs[3]].name, runningVar: graph[bn.inputs[4]].name,
            epsilon: attrs.epsilon, channels: channels))
        let y = bn.outputs[0]
        replace[bnIndex] = Node(name: graph[y].name, op: anchor.op, inputs: [anchor.inputs[0], wFolded, bFolded], outputs: [y])
        remove.insert(anchorIndex)
        sources.formUnion(anchor.inputs.dropFirst())
        sources.formUnion(bn.inputs.dropFirst())
    }
    guard !recipes.isEmpty else { return (graph, []) }
    g.nodes = graph.nodes.enumerated().compactMap { i, node in
        remove.contains(i) ? nil : (replace[i] ?? node)
    }
    // Drop the sources nothing reads any more (a weight shared with another layer stays).
    let stillRead = Set(g.nodes.flatMap(\.inputs)).union(g.outputs)
    return (g.compacted().removingValues(named: Set(sources.filter { !stillRead.contains($0) }.map { graph[$0].name })), recipes)
}

/// The folded tensors of `recipes`, computed in double from `weights` (by name) and added to a
/// copy of it. Throws when a source tensor is missing or has the wrong size.
public func applyFolds<T: BinaryFloatingPoint>(_ recipes: [FoldRecipe], weights: [String: [T]]) throws -> [String: [T]] {
    var out = weights
    for r in recipes {
        func tensor(_ name: String, count: Int? = nil) throws -> [Double] {
            guard let v = weights[name] else {
                throw PassError(pass: "fold-batchnorm", message: "no values for '\(name)' (folding into '\(r.weight)')")
            }
            guard v.count == (count ?? r.channels) else {
                throw PassError(pass: "fold-batchnorm", message: "'\(name)' has \(v.count) values, expected \(count ?? r.channels)")
            }
            return v.map { Double($0) }
        }
        guard let wCount = weights[r.sourceWeight]?.count, r.channels > 0, wCount % r.channels == 0 else {
            throw PassError(pass: "fold-batchnorm", message: "no values for '\(r.sourceWeight)' divisible into \(r.channels) channels")
        }
        let w = try tensor(r.sourceWeight, count: wCount)
        let b = try r.sourceBias.map { try tensor($0) } ?? [Double](repeating: 0, count: r.channels)
        let gamma = try tensor(r.gamma), beta = try tensor(r.beta)
        let mean = try tensor(r.runningMean), variance = try tensor(r.runningVar)
        let per = wCount / r.channels
        var wFolded = [T](repeating: 0, count: wCount)
        var bFolded = [T](repeating: 0, count: r.channels)
        for o in 0..<r.channels {
            let s = gamma[o] / (variance[o] + r.epsilon).squareRoot()
            for k in 0..<per { wFolded[o * per + k] = T(w[o * per + k] * s) }
            bFolded[o] = T((b[o] - mean[o]) * s + beta[o])
        }
        out[r.weight] = wFolded
        out[r.bias] = bFolded
    }
    return out
}

extension Graph {
    /// The graph without the named values, which no node or output may refer to.
    func removingValues(named names: Set<String>) -> Graph {
        guard !names.isEmpty else { return self }
        var g = Graph(name: name)
        g.training = training
        var map: [ValueID: ValueID] = [:]
        for (i, v) in values.enumerated() where !names.contains(v.name) {
            map[ValueID(i)] = try! g.addValue(v)
        }
        g.nodes = nodes.map { Node(name: $0.name, op: $0.op, inputs: $0.inputs.map { map[$0]! },
                                   outputs: $0.outputs.map { map[$0]! }) }
        g.outputs = outputs.map { map[$0]! }
        return g
    }
}
