// training-form: rewrites a model graph into its training-mode form.
//
//   y = batchnorm(x, g, b, rm, rv, epsilon=e, momentum=m)
//     ==>
//   y, y.mean, y.var = batchnorm_train(x, g, b, epsilon=e, momentum=m)
//   batchnorm_stats_update(rm, rv, y.mean, y.var, x, momentum=m)
//
//   y = dropout(x, rate=r)   ==>   y, y.mask = dropout_train(x, rate=r)
//
//   loss = softmax_cross_entropy(logits, labels)   ==>   loss = softmax_cross_entropy(logits, targets)
//     with the train block's mixup or distill on: a new input 'targets: f32[N, K]' of soft
//     targets (the trainer's: the mix of each image's and its partner's labels, the teacher's
//     probabilities, label smoothing included)
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
    if let t = graph.training, t.usesSoftTargets { try softTargets(&g, for: t.mixup > 0 ? "mixup" : "distill") }
    return g
}

/// The name of the soft-target input that training-form gives a mixup or distillation step.
public let mixupTargetsName = "targets"

/// Every cross-entropy of the labels reads soft targets instead (one input for all of them:
/// they share the batch).
private func softTargets(_ g: inout Graph, for what: String) throws {
    guard let labels = g.id(named: "labels"), g[labels].kind == .input else {
        throw PassError(pass: "training-form", message: "\(what) needs the labels as 'input labels: i32[N]'")
    }
    var targets: ValueID?
    for k in g.nodes.indices {
        guard case .softmaxCrossEntropy = g.nodes[k].op, g.nodes[k].inputs[1] == labels else { continue }
        let logitsType = g[g.nodes[k].inputs[0]].type
        if targets == nil {
            targets = try g.addValue(Value(name: mixupTargetsName, type: logitsType, kind: .input))
        }
        guard let t = targets, g[t].type == logitsType else {
            throw PassError(pass: "training-form", message: "\(what): the losses of the labels have logits of different shapes")
        }
        g.nodes[k].inputs[1] = t
    }
    guard targets != nil else {
        throw PassError(pass: "training-form", message: "\(what): no softmax_cross_entropy reads the labels")
    }
}

func isTrainable(_ g: Graph, _ v: ValueID) -> Bool {
    if case .parameter(let p) = g[v].kind { return p.trainable }
    return false
}
