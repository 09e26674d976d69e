// autodiff: reverse-mode differentiation on the IR. Appends, after the forward nodes, the nodes
// that compute d(loss)/d(v) for every value v in `wrt` (by default every trainable parameter),
// named `grad.<v>` and added to the graph's outputs.
//
//   h = dense(x, w, b)                 h = dense(x, w, b)
//   loss = softmax_cross_entropy(h, y) loss = softmax_cross_entropy(h, y)
//                                ==>   grad.loss = constant(value=1.0)
//                                      grad.h = softmax_cross_entropy_grad(grad.loss, h, y)
//                                      grad.w = dense_grad_weight(grad.h, x)
//                                      grad.b = bias_grad(grad.h)
//
// Only values on a path from `wrt` to the loss get gradients. A value read by several nodes
// gets one contribution from each, named `grad.<v>.<k>`, summed by an `add` into `grad.<v>`.
// The rules, one per op, are in `gradientRule`.

import GraphIR

/// One backward node: an op applied to inputs, whose outputs are the gradients of the forward
/// node's inputs at the given positions.
struct GradientNode {
    var op: Op
    var inputs: [ValueID]
    /// For each output of `op`, the forward input position it is the gradient of.
    var gradientOf: [Int]
}

/// The backward nodes of `node` given the gradients of its outputs (nil where an output does
/// not reach the loss). `needs` tells which input positions want a gradient.
func gradientRule(_ node: Node, _ g: Graph, dys: [ValueID?], needs: (Int) -> Bool) throws -> [GradientNode] {
    let x = node.inputs
    guard let dy = dys[0] else { return [] }
    switch node.op {
    case .conv2d(let a):
        var r: [GradientNode] = []
        if needs(0) { r.append(GradientNode(op: .conv2dGradInput(ConvGradAttrs(conv: a, shape: g[x[0]].type.perSample)), inputs: [dy, x[1]], gradientOf: [0])) }
        if needs(1) { r.append(GradientNode(op: .conv2dGradWeight(ConvGradAttrs(conv: a, shape: g[x[1]].type.perSample)), inputs: [dy, x[0]], gradientOf: [1])) }
        if x.count == 3, needs(2) { r.append(GradientNode(op: .biasGrad, inputs: [dy], gradientOf: [2])) }
        return r
    case .dense:
        var r: [GradientNode] = []
        if needs(0) { r.append(GradientNode(op: .denseGradInput, inputs: [dy, x[1]], gradientOf: [0])) }
        if needs(1) { r.append(GradientNode(op: .denseGradWeight, inputs: [dy, x[0]], gradientOf: [1])) }
        if x.count == 3, needs(2) { r.append(GradientNode(op: .biasGrad, inputs: [dy], gradientOf: [2])) }
        return r
    case .relu:
        return [GradientNode(op: .reluGrad, inputs: [dy, node.outputs[0]], gradientOf: [0])]
    case .leakyRelu(let alpha):
        return [GradientNode(op: .leakyReluGrad(alpha: alpha), inputs: [dy, x[0]], gradientOf: [0])]
    case .batchnormTrain(let a):
        return [GradientNode(op: .batchnormTrainGrad(epsilon: a.epsilon),
                             inputs: [dy, x[0], x[1], node.outputs[1], node.outputs[2]], gradientOf: [0, 1, 2])]
    case .batchnorm(let a):
        if needs(1) || needs(2) {
            throw PassError(pass: "autodiff", message: "\(node.name): batchnorm in inference form has trainable gamma/beta; run training-form first")
        }
        return [GradientNode(op: .batchnormGrad(epsilon: a.epsilon), inputs: [dy, x[1], x[4]], gradientOf: [0])]
    case .dropout:
        return [GradientNode(op: .scale(factor: 1), inputs: [dy], gradientOf: [0])]
    case .dropoutTrain:
        return [GradientNode(op: .mul, inputs: [dy, node.outputs[1]], gradientOf: [0])]
    case .maxpool(let a):
        return [GradientNode(op: .maxpoolGrad(a), inputs: [dy, x[0]], gradientOf: [0])]
    case .avgpool(let a):
        return [GradientNode(op: .avgpoolGrad(a), inputs: [dy, x[0]], gradientOf: [0])]
    case .flatten, .reshape:
        return [GradientNode(op: .reshape(shape: g[x[0]].type.perSample), inputs: [dy], gradientOf: [0])]
    case .softmax:
        return [GradientNode(op: .softmaxGrad, inputs: [dy, node.outputs[0]], gradientOf: [0])]
    case .softmaxCrossEntropy:
        return [GradientNode(op: .softmaxCrossEntropyGrad, inputs: [dy, x[0], x[1]], gradientOf: [0])]
    case .add:
        return x.indices.filter(needs).map { GradientNode(op: .scale(factor: 1), inputs: [dy], gradientOf: [$0]) }
    case .mul:
        guard x.count == 2 else { throw PassError(pass: "autodiff", message: "\(node.name): mul of \(x.count) inputs has no gradient rule; use nested muls") }
        var r: [GradientNode] = []
        if needs(0) { r.append(GradientNode(op: .mul, inputs: [dy, x[1]], gradientOf: [0])) }
        if needs(1) { r.append(GradientNode(op: .mul, inputs: [dy, x[0]], gradientOf: [1])) }
        return r
    case .concat(let axis):
        var start = 0
        var r: [GradientNode] = []
        for (i, v) in x.enumerated() {
            let n = g[v].type.dims[axis].resolved(batch: 1)
            if needs(i) { r.append(GradientNode(op: .slice(axis: axis, start: start, length: n), inputs: [dy], gradientOf: [i])) }
            start += n
        }
        return r
    case .scale(let f):
        return [GradientNode(op: .scale(factor: f), inputs: [dy], gradientOf: [0])]
    case .l2Penalty(let f):
        return [GradientNode(op: .l2PenaltyGrad(factor: f), inputs: [dy, x[0]], gradientOf: [0])]
    case .constant:
        return []
    case .fusedTrain(let a):
        // One fused backward: relu mask, batchnorm backward and the anchor's gradients.
        let inputGrad = needs(0), weightGrad = needs(1) || (a.bias && needs(2))
        let bn = a.batchnormInput
        var inputs = [dy, x[0], x[1]]
        if a.backwardReadsOutput { inputs.append(node.outputs[0]) }
        if a.hasBatchnorm { inputs += [node.outputs[1], x[bn], node.outputs[2], node.outputs[3]] }
        var of: [Int] = []
        if inputGrad { of.append(0) }
        if weightGrad { of += a.bias ? [1, 2] : [1] }
        if a.hasBatchnorm { of += [bn, bn + 1] }
        return [GradientNode(op: .fusedTrainGrad(FusedGradAttrs(fused: a, inputGrad: inputGrad, weightGrad: weightGrad)),
                             inputs: inputs, gradientOf: of)]
    case .preprocess(let p):
        // Reached only when a value to differentiate lies upstream: the op has no gradient.
        throw PassError(pass: "autodiff", message: "\(node.name): \(p.name) is a preprocessing op, which passes no gradient; put it on the model's input, before every trainable parameter (and ask for no gradient of the input through it)")
    case .fused:
        throw PassError(pass: "autodiff", message: "\(node.name): \(node.op.name) is the inference form (running statistics); fuse a training graph in training mode")
    case .conv2dGradInput, .conv2dGradWeight, .biasGrad, .denseGradInput, .denseGradWeight,
         .reluGrad, .leakyReluGrad, .batchnormTrainGrad, .batchnormGrad, .maxpoolGrad,
         .avgpoolGrad, .softmaxCrossEntropyGrad, .softmaxGrad, .slice, .l2PenaltyGrad,
         .sgdUpdate, .adamUpdate, .maxNormProject, .batchnormStatsUpdate, .increment, .fusedTrainGrad:
        throw PassError(pass: "autodiff", message: "\(node.name): \(node.op.name) has no gradient rule (second derivatives are not supported)")
    }
}

/// Whether input `i` of `op` carries a gradient at all (labels and statistics do not).
private func isDifferentiableInput(_ op: Op, _ i: Int) -> Bool {
    switch op {
    case .softmaxCrossEntropy: return i == 0
    case .batchnorm: return i != 3 && i != 4
    default: return !op.isUpdate
    }
}

/// Differentiates `loss` with respect to `wrt` (default: the trainable parameters).
public func autodiff(_ graph: Graph, loss lossName: String? = nil, wrt: [ValueID]? = nil) throws -> Graph {
    guard let name = lossName ?? graph.training?.loss, let loss = graph.id(named: name) else {
        throw PassError(pass: "autodiff", message: "no loss to differentiate: give the graph a training section or name the loss")
    }
    guard graph[loss].type == .scalar else {
        throw PassError(pass: "autodiff", message: "the loss '\(name)' must be a scalar, it is \(graph[loss].type)")
    }
    let targets = wrt ?? graph.parameters.filter { isTrainable(graph, $0) }
    var g = graph

    // Values that depend on a target (forward) and that the loss depends on (backward).
    var fromTarget = Set(targets)
    for node in graph.nodes where !node.op.isUpdate {
        if node.inputs.enumerated().contains(where: { isDifferentiableInput(node.op, $0.offset) && fromTarget.contains($0.element) }) {
            fromTarget.formUnion(node.outputs)
        }
    }
    var toLoss: Set<ValueID> = [loss]
    for node in graph.nodes.reversed() where !node.op.isUpdate && node.outputs.contains(where: toLoss.contains) {
        toLoss.formUnion(node.inputs)
    }
    let relevant = fromTarget.intersection(toLoss)
    guard relevant.contains(loss) else {
        throw PassError(pass: "autodiff", message: "the loss '\(name)' does not depend on any value to differentiate")
    }
    func needs(_ node: Node, _ i: Int) -> Bool {
        isDifferentiableInput(node.op, i) && relevant.contains(node.inputs[i])
    }

    // How many contributions each value's gradient will receive, to name single ones directly.
    var expected: [ValueID: Int] = [:]
    for node in graph.nodes where !node.op.isUpdate && node.outputs.contains(where: relevant.contains) {
        for i in node.inputs.indices where needs(node, i) { expected[node.inputs[i], default: 0] += 1 }
    }

    var contributions: [ValueID: [ValueID]] = [:]
    var gradient: [ValueID: ValueID] = [:]
    func finish(_ v: ValueID) throws {
        guard gradient[v] == nil, let parts = contributions[v], !parts.isEmpty else { return }
        if parts.count == 1 {
            gradient[v] = parts[0]
        } else {
            gradient[v] = try g.addNode(.add, inputs: parts, outputNames: [g.uniqueName("grad." + graph[v].name)])[0]
        }
    }
    gradient[loss] = try g.addNode(.constant(value: 1), inputs: [], outputNames: [g.uniqueName("grad." + name)])[0]

    for node in graph.nodes.reversed() where !node.op.isUpdate {
        guard node.outputs.contains(where: relevant.contains) else { continue }
        for o in node.outputs { try finish(o) }
        let dys = node.outputs.map { relevant.contains($0) ? gradient[$0] : nil }
        for rule in try gradientRule(node, graph, dys: dys, needs: { needs(node, $0) }) {
            let names = rule.gradientOf.map { i -> String in
                let v = node.inputs[i]
                let base = "grad." + graph[v].name
                return expected[v, default: 0] > 1 ? g.uniqueName("\(base).\(contributions[v, default: []].count)") : g.uniqueName(base)
            }
            let outs = try g.addNode(rule.op, inputs: rule.inputs, outputNames: names)
            for (o, i) in zip(outs, rule.gradientOf) { contributions[node.inputs[i], default: []].append(o) }
        }
    }
    for t in targets {
        try finish(t)
        if let d = gradient[t], !g.outputs.contains(d) { g.outputs.append(d) }
    }
    return g
}

/// The gradient value of `v` after autodiff, by the naming convention.
public func gradientName(of name: String) -> String { "grad." + name }
