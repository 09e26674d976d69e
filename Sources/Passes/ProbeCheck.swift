// Probe check: does an optimized graph still compute what the original computes? Both are
// lowered and run on one fixed, seeded probe batch — random images in the input's range
// (raw pixels by default), labels cycling over the classes, and the same parameter values by
// name (given, or seeded random ones drawn per initializer; folded tensors via `applyFolds`) —
// and each output of the original is compared with the optimized graph's value of that name:
//
//   error = max |optimized - original| / max |original|     (per output, over all elements)
//
// `probePipeline` runs a pipeline pass by pass and probes after each, so that a pass that
// changes the results beyond the tolerance is named in the `PassError`. Passes that change
// the semantics on purpose (training-form: batch statistics instead of running ones) re-base
// the reference instead of being compared with it. The compile driver stores the final errors
// in `PlanMetadata.probeErrors`.

import GraphIR
import Runtime

public struct ProbeOptions: Sendable {
    public var batch: Int
    public var seed: UInt64
    /// Range of the probe images; nil: 0 ... 255 * the training section's input_scale (or 255).
    public var inputRange: ClosedRange<Double>?
    /// Run in Double (structural checks, errors near 1e-15) or Float (what a plan computes).
    public var double: Bool
    public init(batch: Int = 4, seed: UInt64 = 0x5EED_F00D, inputRange: ClosedRange<Double>? = nil, double: Bool = true) {
        self.batch = batch
        self.seed = seed
        self.inputRange = inputRange
        self.double = double
    }
}

/// Seeded random values for every parameter and state of `graph`, by name: glorot-like
/// uniform for kernels, around 1 for `ones` (gamma, running variance), small for `zeros`
/// (non-negative for state: running means, optimizer moments).
public func probeWeights(for graph: Graph, seed: UInt64 = ProbeOptions().seed) -> [String: [Double]] {
    var out: [String: [Double]] = [:]
    for id in graph.parameters + graph.states { out[graph[id].name] = probeValues(graph[id], seed: seed) }
    return out
}

private func probeValues(_ v: Value, seed: UInt64) -> [Double] {
    var rng = ProbeRandom(seed: seed, name: v.name)
    let shape = v.type.perSample
    let count = shape.reduce(1, *)
    let initializer: Initializer
    var isState = false
    switch v.kind {
    case .parameter(let p): initializer = p.initializer
    case .state(let i): initializer = i; isState = true
    case .input, .intermediate: return []
    }
    switch initializer {
    case .zeros: return (0..<count).map { _ in isState ? rng.uniform(0, 0.1) : rng.uniform(-0.1, 0.1) }
    case .ones: return (0..<count).map { _ in rng.uniform(0.5, 1.5) }
    case .constant(let c): return [Double](repeating: c, count: count)
    case .glorotUniform, .glorotNormal, .heNormal, .heUniform:
        let receptive = shape.count > 2 ? shape.dropFirst(2).reduce(1, *) : 1
        let fanIn = (shape.count > 1 ? shape[1] : 1) * receptive
        let fanOut = (shape.first ?? 1) * receptive
        let limit = (6.0 / Double(max(fanIn + fanOut, 1))).squareRoot()
        return (0..<count).map { _ in rng.uniform(-limit, limit) }
    }
}

/// The probe value of an input: images in `range`, labels cycling over `classes`, scalars 1e-3.
private func probeInput(_ v: Value, batch: Int, classes: Int, range: ClosedRange<Double>, seed: UInt64) -> [Double] {
    var rng = ProbeRandom(seed: seed, name: v.name)
    let count = v.type.elementCount(batch: batch)
    if v.type.dtype == .i32 { return (0..<count).map { Double($0 % max(classes, 1)) } }
    if !v.type.isBatched { return [Double](repeating: 1e-3, count: count) }
    return (0..<count).map { _ in rng.uniform(range.lowerBound, range.upperBound) }
}

/// Max relative error per output of `original` (by name) of `optimized` on the probe batch:
/// the largest absolute difference over the output's largest reference magnitude.
/// `weights` default to `probeWeights(for: original)`; `folds` add the folded tensors.
public func probeCheck(original: Graph, optimized: Graph, folds: [FoldRecipe] = [],
                       weights: [String: [Double]]? = nil, options: ProbeOptions = ProbeOptions()) throws -> [String: Double] {
    try probeDifferences(original: original, optimized: optimized, folds: folds, weights: weights, options: options)
        .mapValues { $0.scale > 0 ? $0.maxAbs / $0.scale : $0.maxAbs }
}

/// Per output of `original` (by name): the largest absolute difference of `optimized` from it on
/// the probe batch, and the output's largest reference magnitude. An output that is zero in
/// exact arithmetic (the gradient of a bias that a batchnorm follows) holds only rounding
/// noise, so a relative error means nothing for it: compare `maxAbs` with another scale.
public func probeDifferences(original: Graph, optimized: Graph, folds: [FoldRecipe] = [],
                             weights: [String: [Double]]? = nil,
                             options: ProbeOptions = ProbeOptions()) throws -> [String: (maxAbs: Double, scale: Double)] {
    let base = try applyFolds(folds, weights: weights ?? probeWeights(for: original, seed: options.seed))
    let reference = try probeRun(original, weights: base, options: options)
    let result = try probeRun(optimized, weights: base, options: options)
    var errors: [String: (maxAbs: Double, scale: Double)] = [:]
    for (k, o) in original.outputs.enumerated() {
        let name = original[o].name
        // By name; by position for an output a pass renamed (remove-dropout drops `x.drop`).
        let match = optimized.outputs.firstIndex { optimized[$0].name == name } ?? (k < optimized.outputs.count ? k : nil)
        guard let match, let a = result[match], let b = reference[k] else {
            throw PassError(pass: "probe", message: "the optimized graph has no f32 output '\(name)'")
        }
        guard a.count == b.count else {
            throw PassError(pass: "probe", message: "output '\(name)' has \(a.count) values, the original \(b.count)")
        }
        let scale = b.map(abs).max() ?? 0
        var worst = 0.0
        for (x, y) in zip(a, b) {
            let e = abs(x - y)
            if e.isNaN { worst = .infinity; break }
            worst = max(worst, e)
        }
        errors[name] = (worst, scale)
    }
    return errors
}

/// Runs `graph` on the probe batch; returns its f32 outputs' values, by output position.
private func probeRun(_ graph: Graph, weights: [String: [Double]], options: ProbeOptions) throws -> [Int: [Double]] {
    // Only the outputs are compared: a graph whose activations would take more than 256 MB
    // (10^5 layers took 7.3 GB) is memory-planned so that intermediates share an arena. Smaller
    // graphs keep separate buffers (the reference every pass is measured against).
    var plan = try lowerToPlan(graph, maxBatch: options.batch)
    if executorBytes(plan, elementSize: 8) > 256 << 20 { plan = planMemory(plan) }
    let range = options.inputRange ?? 0...(255 * (graph.training?.inputScale ?? 1))
    var inputs: [Int: [Double]] = [:]
    for id in graph.inputs {
        inputs[id.index] = probeInput(graph[id], batch: options.batch, classes: classes(of: id, in: graph),
                                      range: range, seed: options.seed)
    }
    var persistent: [Int: [Double]] = [:]
    for id in graph.parameters + graph.states {
        persistent[id.index] = weights[graph[id].name] ?? probeValues(graph[id], seed: options.seed)
    }
    return options.double
        ? try execute(Double.self, plan, graph, inputs: inputs, persistent: persistent, batch: options.batch)
        : try execute(Float.self, plan, graph, inputs: inputs, persistent: persistent, batch: options.batch)
}

private func execute<T: BLASReal>(_: T.Type, _ plan: Plan, _ graph: Graph, inputs: [Int: [Double]],
                                  persistent: [Int: [Double]], batch: Int) throws -> [Int: [Double]] {
    let ex: Executor<T>
    do {
        ex = try Executor<T>(plan: plan)
    } catch let ExecutorError.invalidPlan(reason) {
        // Said as what compile was doing, not as a plan the user never gave it.
        throw PassError(pass: "probe", message: "checking the passes on a probe batch of \(batch): \(reason) (compile without the probe to skip the check)")
    }
    ex.dropoutEnabled = false
    for (i, v) in persistent {
        guard v.count == plan.buffers[i].elementCount(batch: batch) else {
            throw PassError(pass: "probe", message: "'\(plan.buffers[i].name)' has \(v.count) values, the graph expects \(plan.buffers[i].elementCount(batch: batch))")
        }
        // A float64 probe hands the weights over as they are: a converted copy of a large
        // weight is an allocation that the executor's memory check does not count.
        if T.self == Double.self { ex.setBuffer(i, unsafeBitCast(v, to: [T].self)) } else { ex.setBuffer(i, v.map { T($0) }) }
    }
    for (i, v) in inputs {
        if plan.buffers[i].elementType == .i32 { ex.setBuffer(i, ints: v.map { Int32($0) }) } else { ex.setBuffer(i, v.map { T($0) }) }
    }
    try ex.run(batch: batch)
    var out: [Int: [Double]] = [:]
    for (k, i) in plan.outputs.enumerated() where plan.buffers[i].elementType == .f32 {
        out[k] = ex.buffer(i).map { Double($0) }
    }
    return out
}

/// The class count of a label input: the logits width of the loss that reads it (1 if none).
private func classes(of label: ValueID, in g: Graph) -> Int {
    for node in g.nodes {
        if case .softmaxCrossEntropy = node.op, node.inputs[1] == label { return g[node.inputs[0]].type.perSample[0] }
    }
    return 1
}

/// What `probePipeline` saw: the final graph, the folds made on the way, and the errors after
/// each pass (against the reference of that moment).
public struct ProbeReport: Sendable {
    public var graph: Graph
    public var folds: [FoldRecipe]
    public var errors: [(pass: String, errors: [String: Double])]
}

/// Runs `passes` one by one (verifying each result) and probes after each; throws
/// `PassError(pass:)` naming the first pass whose probe error exceeds `tolerance`. Passes in
/// `rebase` change the semantics on purpose: the graph after them becomes the reference. The
/// fold-batchnorm pass is run through `foldBatchnorm(_:)` to keep its recipes.
public func probePipeline(_ graph: Graph, passes: [Pass], tolerance: Double, weights: [String: [Double]]? = nil,
                          options: ProbeOptions = ProbeOptions(), disabled: Set<String> = [],
                          rebase: Set<String> = ["training-form"],
                          after: (_ pass: String, _ graph: Graph, _ seconds: Double) -> Void = { _, _, _ in }) throws -> ProbeReport {
    var g = graph
    var reference = graph
    var folds: [FoldRecipe] = []
    var referenceFolds: [FoldRecipe] = []
    var base = weights ?? probeWeights(for: graph, seed: options.seed)
    var rows: [(pass: String, errors: [String: Double])] = []
    for pass in passes where !disabled.contains(pass.name) {
        let start = monotonicSeconds()
        do {
            if pass.name == Pipelines.foldBatchnorm.name {
                let r = try foldBatchnorm(g)
                g = r.graph
                folds += r.recipes
            } else {
                g = try pass.run(g)
            }
            try g.verify()
        } catch let e as PassError {
            throw e
        } catch {
            throw PassError(pass: pass.name, message: "\(error)")
        }
        after(pass.name, g, monotonicSeconds() - start)
        if rebase.contains(pass.name) {
            reference = g
            base = try applyFolds(folds, weights: base)
            referenceFolds = folds
            continue
        }
        let newFolds = Array(folds.dropFirst(referenceFolds.count))
        let errors = try probeCheck(original: reference, optimized: g, folds: newFolds,
                                    weights: try applyFolds(referenceFolds, weights: base), options: options)
        rows.append((pass.name, errors))
        if let worst = errors.max(by: { $0.value < $1.value }), !(worst.value <= tolerance) {
            throw PassError(pass: pass.name, message: "probe error \(worst.value) on output '\(worst.key)' exceeds the tolerance \(tolerance)")
        }
    }
    return ProbeReport(graph: g, folds: folds, errors: rows)
}

/// splitmix64 seeded by the probe seed and a value's name, so that every value gets the same
/// numbers whichever graph (original or optimized) it is drawn for.
private struct ProbeRandom {
    var state: UInt64
    init(seed: UInt64, name: String) {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a
        for byte in name.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
        state = seed ^ h
    }
    mutating func next() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }
    mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * next() }
}
