// optimizer: appends the parameter updates of one training step, from the training section.
// After autodiff, for every trainable parameter p with gradient grad.p:
//
//   input learning_rate: f32[]                       (the host computes the schedule)
//   state optimizer.iterations: f32[], init=zeros
//   state adam.m.p: f32[...], init=zeros             (Adam)
//   state adam.v.p: f32[...], init=zeros
//   adam_update(p, grad.p, adam.m.p, adam.v.p, learning_rate, optimizer.iterations, ...)
//   max_norm_project(p, max_value=4.0, axis=keras)  (when p has max_norm)
//   ...
//   learning_rate.x0.1 = scale(learning_rate, factor=0.1)   (once per lr_scale other than 1;
//                                                            the updates of those parameters
//                                                            read it instead)
//   increment(optimizer.iterations)                  (last)
//
// Every update node, including batchnorm statistics updates from training-form, is moved after
// all other nodes, so the step reads every parameter before any is written.

import GraphIR

public func optimizerUpdate(_ graph: Graph) throws -> Graph {
    guard let training = graph.training else {
        throw PassError(pass: "optimizer", message: "the graph has no training section")
    }
    var g = graph
    let lr = try g.addValue(Value(name: "learning_rate", type: .scalar, kind: .input))
    let iterations = try g.addValue(Value(name: "optimizer.iterations", type: .scalar, kind: .state(.zeros)))
    var updates: [Node] = g.nodes.filter { $0.op.isUpdate }
    g.nodes.removeAll { $0.op.isUpdate }
    // One scaled rate per distinct lr_scale, computed before every update reads it.
    var scaledRates: [Double: ValueID] = [:]
    func rate(_ factor: Double) throws -> ValueID {
        if factor == 1 { return lr }
        if let id = scaledRates[factor] { return id }
        let name = "learning_rate.x\(formatDouble(factor))"
        let id = try g.addValue(Value(name: name, type: .scalar, kind: .intermediate))
        g.nodes.append(Node(name: name, op: .scale(factor: factor), inputs: [lr], outputs: [id]))
        scaledRates[factor] = id
        return id
    }
    for p in graph.parameters {
        guard case .parameter(let info) = graph[p].kind, info.trainable else { continue }
        let lr = try rate(info.lrScale)
        let pName = graph[p].name
        guard let grad = graph.id(named: gradientName(of: pName)) else {
            throw PassError(pass: "optimizer", message: "trainable parameter '\(pName)' has no gradient '\(gradientName(of: pName))'; run autodiff first (does the loss depend on it?)")
        }
        let type = graph[p].type
        switch training.optimizer {
        case .sgd(_, let a):
            let velocity = try g.addValue(Value(name: "sgd.velocity.\(pName)", type: type, kind: .state(.zeros)))
            updates.append(Node(name: "sgd_update.\(pName)", op: .sgdUpdate(a), inputs: [p, grad, velocity, lr], outputs: []))
        case .adam(_, let a):
            let m = try g.addValue(Value(name: "adam.m.\(pName)", type: type, kind: .state(.zeros)))
            let v = try g.addValue(Value(name: "adam.v.\(pName)", type: type, kind: .state(.zeros)))
            updates.append(Node(name: "adam_update.\(pName)", op: .adamUpdate(a), inputs: [p, grad, m, v, lr, iterations], outputs: []))
        }
        if let mn = info.maxNorm {
            updates.append(Node(name: "max_norm_project.\(pName)", op: .maxNormProject(maxValue: mn.value, axis: mn.axis), inputs: [p], outputs: []))
        }
    }
    updates.append(Node(name: "increment.optimizer.iterations", op: .increment, inputs: [iterations], outputs: []))
    g.nodes += updates
    return g
}
