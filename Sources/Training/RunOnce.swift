// One run of a model on given weights and inputs: inference (batchnorm on running statistics,
// no dropout) or a training-mode forward and backward pass without an update. This is what
// `fergc run` does and what the parity tests check against PyTorch.

import GraphIR
import NumPyIO
import Passes
import Runtime

public struct RunOnceOptions: Sendable {
    /// Training mode: batch statistics, dropout (unless `dropout` is false), backward pass.
    public var train: Bool = false
    public var dropout: Bool = true
    public var seed: UInt64 = 1
    /// Run in double precision (a reference for checking float32 results).
    public var double = false
    public init(train: Bool = false, dropout: Bool = true, seed: UInt64 = 1, double: Bool = false) {
        self.train = train
        self.dropout = dropout
        self.seed = seed
        self.double = double
    }
}

public struct RunError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The training loss: the training section's, or the graph's single softmax_cross_entropy output.
public func lossValue(of graph: Graph) throws -> ValueID {
    if let name = graph.training?.loss {
        guard let id = graph.id(named: name) else { throw RunError("the training loss '\(name)' is not a value of '\(graph.name)'") }
        return id
    }
    let losses = graph.nodes.filter { if case .softmaxCrossEntropy = $0.op { return true } else { return false } }
    guard losses.count == 1 else {
        throw RunError("'\(graph.name)' has \(losses.count) softmax_cross_entropy nodes and no training section naming the loss")
    }
    return losses[0].outputs[0]
}

/// The logits a loss is computed from: the first input of the softmax_cross_entropy node.
public func logitsValue(of graph: Graph, loss: ValueID) -> ValueID? {
    for node in graph.nodes where node.outputs.contains(loss) {
        if case .softmaxCrossEntropy = node.op { return node.inputs[0] }
    }
    return nil
}

/// The number of classes the model's loss scores: its logits' width (0 when the loss reads no
/// logits).
public func classCount(of graph: Graph) throws -> Int {
    logitsValue(of: graph, loss: try lossValue(of: graph)).map { graph[$0].type.elementsPerSample } ?? 0
}

/// Runs `model` once. Returns, in order: `logits` and, in training mode, `loss` and
/// `grad.<name>` for every trainable parameter and every f32 input.
/// `runPasses` runs a pipeline (the CLI passes its --print-after/--disable-pass manager).
public func runOnce(
    model: Graph, weights: [String: NDArray], inputs: [String: NDArray], options: RunOnceOptions,
    runPasses: ([Pass], Graph) throws -> Graph = { passes, g in var pm = PassManager(passes); return try pm.run(g) }
) throws -> [(name: String, array: NDArray)] {
    var graph: Graph
    var named: [(String, String)] = []  // (dump name, value name)
    if options.train {
        let loss = try lossValue(of: model)
        let lossName = model[loss].name
        guard let logits = logitsValue(of: model, loss: loss) else {
            throw RunError("the loss '\(lossName)' is not a softmax_cross_entropy output")
        }
        graph = try runPasses([Pipelines.trainingForm], model)
        let wrt = graph.parameters.filter { if case .parameter(let p) = graph[$0].kind { return p.trainable } else { return false } }
            + graph.inputs.filter { graph[$0].type.dtype == .f32 }
        graph = try autodiff(graph, loss: lossName, wrt: wrt)
        named = [("logits", model[logits].name), ("loss", lossName)]
            + wrt.map { (gradientName(of: graph[$0].name), gradientName(of: graph[$0].name)) }
    } else {
        graph = model
        graph.training = nil  // inference computes no loss
        guard let first = graph.outputs.first else { throw RunError("'\(model.name)' declares no output") }
        named = [("logits", graph[first].name)]
    }
    graph.outputs = try named.map { _, value in
        guard let id = graph.id(named: value) else { throw RunError("no value '\(value)' after autodiff") }
        return id
    }
    graph = try runPasses([Pipelines.dce], graph)

    // Bind inputs: their batch size decides the plan's.
    var batch = 0
    var bound: [(ValueID, NDArray)] = []
    for id in graph.inputs {
        let v = graph[id]
        let candidates = v.type.dtype == .i32 ? [v.name, "y", "labels"] : [v.name]
        guard let arr = candidates.lazy.compactMap({ inputs[$0] }).first else {
            throw RunError("no input array for the graph input '\(v.name)' \(v.type) (have: \(inputs.keys.sorted().joined(separator: ", ")))")
        }
        guard arr.shape.count == v.type.rank, Array(arr.shape.dropFirst()) == v.type.perSample, let n = arr.shape.first, n >= 1 else {
            throw RunError("input '\(v.name)' has shape \(arr.shape), the graph expects \(v.type)")
        }
        if batch != 0, batch != n { throw RunError("inputs disagree on the batch size (\(batch) and \(n))") }
        batch = n
        bound.append((id, arr))
    }
    let plan = try lowerToPlan(graph, maxBatch: max(batch, 1))
    let results = options.double
        ? try execute(Double.self, plan, graph, weights: weights, bound: bound, batch: batch, options: options)
        : try execute(Float.self, plan, graph, weights: weights, bound: bound, batch: batch, options: options)
    return try named.map { dumpName, value in
        guard let id = graph.id(named: value), let values = results[id.index] else { throw RunError("no value '\(value)' in the plan") }
        return (name: dumpName, array: NDArray(floats: values, shape: plan.buffers[id.index].shape(batch: batch)))
    }
}

/// Runs `plan` once with element type T; returns the graph outputs' values by buffer index.
private func execute<T: BLASReal>(
    _: T.Type, _ plan: Plan, _ graph: Graph, weights: [String: NDArray], bound: [(ValueID, NDArray)],
    batch: Int, options: RunOnceOptions
) throws -> [Int: [Float]] {
    let ex = try Executor<T>(plan: plan)
    ex.dropoutEnabled = options.dropout
    ex.seed = options.seed
    var missing: [String] = []
    for id in graph.parameters + graph.states {
        let v = graph[id]
        guard let arr = weights[v.name] else { missing.append(v.name); continue }
        guard arr.shape == v.type.perSample else {
            throw RunError("weights: '\(v.name)' has shape \(arr.shape), the model expects \(v.type.perSample)")
        }
        let values = arr.floats
        if let problem = nonFiniteProblem(name: v.name, values) { throw RunError("weights: \(problem)") }
        ex.setBuffer(id.index, values.map { T($0) })
    }
    guard missing.isEmpty else {
        throw RunError("weights: missing \(missing.count) array\(missing.count == 1 ? "" : "s"): \(missing.prefix(8).joined(separator: ", "))\(missing.count > 8 ? ", ..." : "")")
    }
    for (id, arr) in bound {
        // Labels must be exact integers (2.5 or 2^40 is an error, not a truncation or a clamp);
        // float inputs must be finite.
        if graph[id].type.dtype == .i32 {
            ex.setBuffer(id.index, ints: try arr.exactInts(name: "input '\(graph[id].name)'"))
        } else {
            let values = arr.floats
            if let problem = nonFiniteProblem(name: graph[id].name, values) { throw RunError("input: \(problem)") }
            ex.setBuffer(id.index, values.map { T($0) })
        }
    }
    try ex.run(batch: batch)
    var out: [Int: [Float]] = [:]
    for o in plan.outputs { out[o] = ex.buffer(o).map { Float($0) } }
    return out
}

/// Reads an .npz into a dictionary by member name.
public func readArchive(_ path: String, maxBytes: Int = Int.max) throws -> [String: NDArray] {
    var out: [String: NDArray] = [:]
    for (name, array) in try NumPyIO.readNPZ(path: path, maxBytes: maxBytes) { out[name] = array }
    return out
}
