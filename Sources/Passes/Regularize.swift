// regularize: adds each parameter's L2 term to the training loss, as Keras adds
// `kernel_regularizer` losses to the model's loss.
//
//   train { loss = loss }                       fc6.weight has l2=1e-06
//     ==>
//   fc6.weight.l2 = l2_penalty(fc6.weight, factor=1e-06)
//   loss.total = add(loss, fc6.weight.l2)
//   train { loss = loss.total }
//
// Autodiff then produces the regularizer gradients (l2_penalty_grad) like any other.

import GraphIR

public func regularize(_ graph: Graph) throws -> Graph {
    guard let training = graph.training, let loss = graph.id(named: training.loss) else {
        throw PassError(pass: "regularize", message: "the graph has no training section naming its loss")
    }
    var g = graph
    var terms = [loss]
    for p in graph.parameters {
        guard case .parameter(let info) = graph[p].kind, info.trainable, info.l2 != 0 else { continue }
        let name = g.uniqueName(graph[p].name + ".l2")
        terms += try g.addNode(.l2Penalty(factor: info.l2), inputs: [p], outputNames: [name])
    }
    guard terms.count > 1 else { return graph }
    let total = g.uniqueName(training.loss + ".total")
    let out = try g.addNode(.add, inputs: terms, outputNames: [total])
    g.training?.loss = total
    if !g.outputs.contains(out[0]) { g.outputs.append(out[0]) }
    return g
}
