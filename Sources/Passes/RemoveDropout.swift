// remove-dropout (inference): dropout is the identity at inference, so each `dropout` node is
// removed and every reader of its output (nodes and graph outputs) reads its input instead.
//
//   a = relu(x)                         a = relu(x)
//   a.drop = dropout(a, rate=0.4)  ==>  b = conv2d(a, w, b.bias, stride=1, padding=same)
//   b = conv2d(a.drop, w, ...)
//
// Training-form `dropout_train` nodes are left alone: the pass belongs to inference pipelines.

import GraphIR

public func removeDropout(_ graph: Graph) throws -> Graph {
    var replacement: [ValueID: ValueID] = [:]
    func resolve(_ v: ValueID) -> ValueID { replacement[v].map(resolve) ?? v }
    var g = graph
    g.nodes = []
    for node in graph.nodes {
        if case .dropout = node.op {
            replacement[node.outputs[0]] = resolve(node.inputs[0])
            continue
        }
        var n = node
        n.inputs = node.inputs.map(resolve)
        g.nodes.append(n)
    }
    guard !replacement.isEmpty else { return graph }
    g.outputs = graph.outputs.map(resolve)
    return g.compacted()
}
