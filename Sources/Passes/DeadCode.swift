// dce: removes nodes whose outputs nobody reads and that are not graph outputs. Update nodes
// are kept (they are the point of a training step), and so is everything they read.
//
//   a = relu(x)              a = relu(x)
//   b = softmax(x)     ==>   output a
//   output a

import GraphIR

public func deadCodeElimination(_ graph: Graph) throws -> Graph {
    var live = Set(graph.outputs)
    var keep = [Bool](repeating: false, count: graph.nodes.count)
    for (i, node) in graph.nodes.enumerated().reversed() {
        if node.op.isUpdate || node.outputs.contains(where: live.contains) {
            keep[i] = true
            live.formUnion(node.inputs)
        }
    }
    var g = graph
    g.nodes = graph.nodes.enumerated().filter { keep[$0.offset] }.map(\.element)
    return g.compacted()
}
