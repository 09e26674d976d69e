// frozen-prefix: marks the part of a training step that is frozen and deterministic per image
// — it reads only the image input and weights that nothing updates (trainable=false), with no
// dropout and no batch statistics — by moving it to the front of the schedule. Its one output
// read by the rest (the cut) then depends on nothing but the image, so the trainer can compute
// it once per image and feed it on later epochs, running only the steps after the prefix.
//
//   x = input                                   (same nodes, prefix first)
//   c1 = conv2d(x, w1)        w1 frozen          c1 = conv2d(x, w1)
//   l2 = l2_penalty(w2)                          p1 = maxpool(c1)        <- cut: block3_pool
//   p1 = maxpool(c1)                      ==>    l2 = l2_penalty(w2)
//   c2 = conv2d(p1, w2)       w2 trained         c2 = conv2d(p1, w2)
//
// The prefix is the largest set of nodes reachable from the image input whose every input is
// the image, a trainable=false parameter or a state that no update writes, or another prefix
// node's output, and whose op treats each sample alone (not dropout, not batchnorm on batch
// statistics). It counts only if it reads at least one frozen parameter and is read by the rest through exactly one
// value. `frozenPrefixInfo` finds it in a graph this pass has run on; the compile driver
// records it in the plan's metadata (`fergc explain` shows it).

import GraphIR
import Runtime

/// The frozen prefix of a training graph: its nodes (in graph order) and the value it hands on.
public struct FrozenPrefixAnalysis: Sendable {
    public var nodes: [Int]
    public var cut: ValueID
    public var input: ValueID
}

/// The prefix, or why there is none (nil reason and nil analysis: no frozen weights at all).
public func analyzeFrozenPrefix(_ graph: Graph) -> (analysis: FrozenPrefixAnalysis?, reason: String?) {
    guard let x = graph.inputs.first(where: { graph[$0].type.dtype == .f32 && graph[$0].type.isBatched }) else {
        return (nil, "no batched f32 input")
    }
    var written = Set<ValueID>()
    for node in graph.nodes where node.op.isUpdate { written.insert(node.inputs[0]) }
    for node in graph.nodes {
        switch node.op {
        case .adamUpdate: written.formUnion(node.inputs[2...3])
        case .sgdUpdate: written.insert(node.inputs[2])
        case .batchnormStatsUpdate: written.formUnion(node.inputs[0...1])
        default: break
        }
    }
    var inPrefix = Set<ValueID>([x])
    var nodes: [Int] = []
    var readsFrozen = false
    for (i, node) in graph.nodes.enumerated() where !node.op.isUpdate && perSample(node.op) {
        var fromImage = false, ok = true, frozen = false
        for v in node.inputs {
            if inPrefix.contains(v) { fromImage = true }
            else if case .parameter(let p) = graph[v].kind, !p.trainable, !written.contains(v) { frozen = true }
            else if case .state = graph[v].kind, !written.contains(v) { continue }
            else { ok = false; break }
        }
        guard ok, fromImage else { continue }
        nodes.append(i)
        inPrefix.formUnion(node.outputs)
        readsFrozen = readsFrozen || frozen
    }
    guard readsFrozen else { return (nil, nil) }
    let prefixNodes = Set(nodes)
    var cut = Set<ValueID>()
    for (i, node) in graph.nodes.enumerated() where !prefixNodes.contains(i) {
        for v in node.inputs where inPrefix.contains(v) { cut.insert(v) }
    }
    for v in graph.outputs where inPrefix.contains(v) { cut.insert(v) }
    guard cut.count == 1, let c = cut.first else {
        let names = cut.map { graph[$0].name }.sorted().joined(separator: ", ")
        return (nil, "the frozen part hands \(cut.count) values to the rest (\(names)); caching needs exactly one")
    }
    guard c != x else { return (nil, "the frozen part's only output is the image itself") }
    return (FrozenPrefixAnalysis(nodes: nodes, cut: c, input: x), nil)
}

/// Whether an op computes each sample from that sample alone (and the same way every run).
private func perSample(_ op: Op) -> Bool {
    if case .dropout = op { return false }
    if case .dropoutTrain = op { return false }
    if case .batchnormTrain = op { return false }
    if case .fusedTrain(let a) = op, a.hasBatchnorm { return false }
    if case .softmaxCrossEntropy = op { return false }
    if case .constant = op { return false }
    return true
}

/// The pass: the prefix's nodes first, everything else after in its order.
public func markFrozenPrefix(_ graph: Graph) throws -> Graph {
    guard let a = analyzeFrozenPrefix(graph).analysis else { return graph }
    let prefix = Set(a.nodes)
    var g = graph
    g.nodes = a.nodes.map { graph.nodes[$0] } + graph.nodes.indices.filter { !prefix.contains($0) }.map { graph.nodes[$0] }
    return g
}

/// What the plan records: the first `steps` steps are the prefix (the graph's first nodes
/// after `markFrozenPrefix`); nil when the graph has no prefix or it is not at the front.
public func frozenPrefixInfo(_ graph: Graph) -> FrozenPrefixInfo? {
    guard let a = analyzeFrozenPrefix(graph).analysis, a.nodes == Array(0..<a.nodes.count) else { return nil }
    let cut = graph[a.cut]
    return FrozenPrefixInfo(steps: a.nodes.count, input: graph[a.input].name, output: cut.name,
                            outputPerSample: cut.type.perSample,
                            frozenParameters: Set(a.nodes.flatMap { graph.nodes[$0].inputs }.filter {
                                if case .parameter = graph[$0].kind { return true } else { return false }
                            }).map { graph[$0].name }.sorted())
}
