// training-form: rewrites a model graph into its training-mode form.
//
//   y = batchnorm(x, g, b, rm, rv, epsilon=e, momentum=m)
//     ==>
//   y, y.mean, y.var = batchnorm_train(x, g, b, epsilon=e, momentum=m)
//   batchnorm_stats_update(rm, rv, y.mean, y.var, x, momentum=m)
//
//   y = dropout(x, rate=r)   ==>   y, y.mask = dropout_train(x, rate=r)
//
// A batchnorm whose gamma is frozen (trainable=false) stays in inference form, as in Keras.
// The statistics updates are appended after every other node, so that nothing reads the
// running statistics after they change.

import GraphIR

public func trainingForm(_ graph: Graph) throws -> Graph {
    var g = graph
    var nodes: [Node] = []
    var updates: [Node] = []
    g.nodes = []
    for node in graph.nodes {
        switch node.op {
        case .batchnorm(let a) where isTrainable(graph, node.inputs[1]):
            let y = node.outputs[0]
            let yName = graph[y].name
            let c = graph[node.inputs[1]].type
            let mean = try g.addValue(Value(name: g.uniqueName(yName + ".mean"), type: c, kind: .intermediate))
            let variance = try g.addValue(Value(name: g.uniqueName(yName + ".var"), type: c, kind: .intermediate))
            nodes.append(Node(name: node.name, op: .batchnormTrain(a),
                              inputs: Array(node.inputs[0...2]), outputs: [y, mean, variance]))
            updates.append(Node(name: "batchnorm_stats_update.\(yName)", op: .batchnormStatsUpdate(momentum: a.momentum),
                                inputs: [node.inputs[3], node.inputs[4], mean, variance, node.inputs[0]], outputs: []))
        case .dropout(let rate):
            let y = node.outputs[0]
            let mask = try g.addValue(Value(name: g.uniqueName(graph[y].name + ".mask"), type: graph[y].type, kind: .intermediate))
            nodes.append(Node(name: node.name, op: .dropoutTrain(rate: rate), inputs: node.inputs, outputs: [y, mask]))
        default:
            nodes.append(node)
        }
    }
    g.nodes = nodes + updates
    return g
}

func isTrainable(_ g: Graph, _ v: ValueID) -> Bool {
    if case .parameter(let p) = g[v].kind { return p.trainable }
    return false
}
