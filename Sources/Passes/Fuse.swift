// fuse: a conv2d or dense anchor with the relu and batchnorm that follow it becomes one fused
// node, whose kernel applies bias, relu and batchnorm as an epilogue of the anchor
// (Runtime/FusedKernels.swift). Both orders match: anchor -> batchnorm -> relu and the paper's
// anchor -> relu -> batchnorm; so do anchor -> relu and anchor -> batchnorm alone.
//
// The anchor is found by its trait (`pattern == .convLike`, forward ops only); the chain grows
// while the current value has exactly one forward reader, reads it as its first input, and is
// not a graph output: at most one relu and one batchnorm. Every value inside the chain
// disappears, except (training) the batchnorm's input, which the fused node keeps as an output
// for the backward and for `batchnorm_stats_update`.
//
// Inference (`mode: .inference`; after remove-dropout and fold-batchnorm), batchnorm on the
// running statistics, as a per-channel scale and shift:
//
//   c.preact = conv2d(x, c.weight, c.bias, stride=1, padding=same)
//   c = relu(c.preact)                                             ==>
//   bn = batchnorm(c, bn.gamma, bn.beta, bn.running_mean, bn.running_var, epsilon=0.001, ...)
//
//   bn = fused_conv2d(x, c.weight, c.bias, bn.gamma, bn.beta, bn.running_mean, bn.running_var,
//                     stride=1, padding=same, bias=true, relu=true, batchnorm=after_relu, epsilon=0.001)
//
// Training (`mode: .training`; after training-form, before autodiff), batch statistics, never
// folded:
//
//   c.preact = conv2d(x, c.weight, c.bias, stride=1, padding=same)
//   c = relu(c.preact)                                             ==>
//   bn, bn.mean, bn.var = batchnorm_train(c, bn.gamma, bn.beta, epsilon=0.001, momentum=0.99)
//   batchnorm_stats_update(bn.running_mean, bn.running_var, bn.mean, bn.var, c, momentum=0.99)
//
//   bn, c, bn.mean, bn.var = fused_conv2d_train(x, c.weight, c.bias, bn.gamma, bn.beta, stride=1,
//                     padding=same, bias=true, relu=true, batchnorm=after_relu, epsilon=0.001)
//   batchnorm_stats_update(bn.running_mean, bn.running_var, bn.mean, bn.var, c, momentum=0.99)
//
// Why before autodiff: the fused training op has one gradient rule (Autodiff.swift) giving one
// fused backward node, `fused_conv2d_train_grad`, so the backward chain is fused by
// construction instead of being pattern-matched out of autodiff's output. What the backward
// keeps alive is exactly the unfused backward's (the batchnorm input and the batch statistics,
// or y for a trailing relu's mask); the pre-activation and its gradient live only inside the
// kernels (one sample at a time in the backward's workspace), so the training memory plan
// loses two activation-sized values per fused layer. A frozen batchnorm (inference form in a
// training graph) is not fused: the training form keeps the relu mask it would need.

import GraphIR

public enum FusionMode: Sendable {
    /// Batchnorm in inference form (running statistics) joins the fused node.
    case inference
    /// `batchnorm_train` joins; the fused node is the training form with a gradient rule.
    case training
}

public func fuse(_ graph: Graph, mode: FusionMode) throws -> Graph {
    let consumers = graph.consumers()
    let outputs = Set(graph.outputs)
    var replacement: [Int: Node] = [:]
    var removed = Set<Int>()

    for (anchorIndex, anchor) in graph.nodes.enumerated() where anchor.op.pattern == .convLike {
        let conv: Conv2DAttrs?
        switch anchor.op {
        case .conv2d(let a): conv = a
        case .dense: conv = nil
        default: continue  // backward and already fused ops are convLike too
        }
        var chain = [anchorIndex]
        var current = anchor.outputs[0]
        var relu = false
        var batchnorm: (node: Node, epsilon: Double, placement: FusedBatchnorm)?
        grow: while !outputs.contains(current) {
            let readers = consumers[current.index]
            let forward = readers.filter { !graph.nodes[$0].op.isUpdate }
            guard forward.count == 1 else { break }
            let next = graph.nodes[forward[0]]
            guard next.inputs[0] == current, !next.inputs.dropFirst().contains(current) else { break }
            // A value that vanishes must have no other reader; only the training batchnorm's
            // input survives (as an output), so updates may read it.
            let vanishes = readers.count == 1
            switch (next.op, mode) {
            case (.relu, _) where !relu && vanishes:
                relu = true
            case (.batchnorm(let a), .inference) where batchnorm == nil && vanishes:
                batchnorm = (next, a.epsilon, relu ? .afterRelu : .beforeRelu)
            case (.batchnormTrain(let a), .training) where batchnorm == nil:
                batchnorm = (next, a.epsilon, relu ? .afterRelu : .beforeRelu)
            default:
                break grow
            }
            chain.append(forward[0])
            current = next.outputs[0]
        }
        guard chain.count > 1 else { continue }

        let attrs = FusedAttrs(conv: conv, bias: anchor.inputs.count == 3, relu: relu,
                               batchnorm: batchnorm?.placement ?? .none, epsilon: batchnorm?.epsilon ?? 1e-3)
        var inputs = anchor.inputs
        var outs = [current]
        let op: Op
        switch mode {
        case .inference:
            if let bn = batchnorm { inputs += bn.node.inputs[1...4] }
            op = .fused(attrs)
        case .training:
            if let bn = batchnorm {
                inputs += bn.node.inputs[1...2]
                outs += [bn.node.inputs[0], bn.node.outputs[1], bn.node.outputs[2]]
            }
            op = .fusedTrain(attrs)
        }
        replacement[chain.last!] = Node(name: graph[current].name, op: op, inputs: inputs, outputs: outs)
        removed.formUnion(chain.dropLast())
    }
    guard !replacement.isEmpty else { return graph }
    var g = graph
    g.nodes = graph.nodes.enumerated().compactMap { i, node in removed.contains(i) ? nil : (replacement[i] ?? node) }
    return g.compacted()
}
