// The compile driver: model graph -> optimized graph -> plan, in one call, as `fergc compile`,
// `fergc train` and `fergc bench` need it.
//
//   1. run the pipeline (inference: remove-dropout, fold-batchnorm, fuse, dce; training:
//      training-form, regularize, fuse, autodiff, optimizer, dce), probing after each pass on a
//      fixed batch in double precision: a pass whose results drift past the tolerance fails
//      the compile and is named;
//   2. lower to a plan for the batch size, plan memory over the whole step (one arena);
//   3. attach parameter values — the given weights with batchnorm folds applied, or seeded
//      initial values — and the metadata (model, source hash, input shape, classes, passes,
//      probe errors);
//   4. choose each forward 3x3 convolution's algorithm, Winograd or direct, by its measured
//      error against the direct kernel (ConvAlgorithms.swift: one run of the plan on a probe
//      batch of at most 4, then each candidate layer alone).

import GraphIR
import Runtime

public enum CompileMode: String, Sendable {
    case inference, training
}

public struct CompileOptions {
    public var mode: CompileMode = .inference
    public var batch: Int = 1
    /// The pipeline; nil for the standard optimized one of the mode.
    public var passes: [Pass]?
    public var disabled: Set<String> = []
    public var printAfter: Set<String> = []
    public var printer: (String) -> Void = { _ in }
    /// Probe each pass in double precision and fail past `probeTolerance`.
    public var probe = true
    public var probeTolerance = 1e-6
    /// Parameter and state values by name; nil: initial values drawn with `seed`.
    public var weights: [String: [Float]]?
    /// The parameters of a plan already compiled from this model (`fergc compile M.graph
    /// --weights P.plan`), folds applied: they go into the new plan's buffers by name as they
    /// are, and the new plan must have exactly those tensors. The probe checks the passes on
    /// seeded values (a batchnorm folded away cannot be unfolded); the convolution algorithm
    /// is chosen on these. Not with `weights`. A folded convolution's `X.weight.folded` and
    /// `X.bias.folded` go to `X.weight`/`X.bias` where the new plan has no folded tensor (the
    /// model written without its batchnorm).
    public var planWeights: [String: [Float]]?
    public var seed: UInt64 = 1
    /// Hash of the model source, for the metadata.
    public var sourceHash = ""
    /// Winograd or direct forward convolutions (`chooseConvAlgorithms`).
    public var convAlgorithms: ConvAlgorithmPolicy = .auto
    /// The largest per-layer Winograd error `auto` accepts (relative to the layer's output).
    public var winogradTolerance = 1e-4
    public init() {}
}

public struct Compiled {
    public var plan: Plan
    public var graph: Graph
    public var timings: [PassTiming]
    public var probeErrors: [(pass: String, errors: [String: Double])]
}

public let emotionClasses = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]

public func standardPipeline(_ mode: CompileMode) -> [Pass] {
    mode == .training ? Pipelines.trainingOptimized : Pipelines.inferenceOptimized
}

public func compile(_ model: Graph, _ options: CompileOptions) throws -> Compiled {
    // Every size is computed from the batch: bound it before anything is sized by it.
    guard (1...maxPlanBatch).contains(options.batch) else {
        throw PassError(pass: "compile", message: "batch \(options.batch) is outside 1...\(maxPlanBatch)")
    }
    // Weights are materialised (Float, and Double for the probe) before any plan exists: their
    // total must fit the machine, checked before the first allocation.
    var parameterElements = 0
    for id in model.parameters + model.states {
        var n = 1
        for d in model[id].type.perSample {
            let (p, o) = n.multipliedReportingOverflow(by: max(d, 0))
            n = o ? Int.max / 16 : min(p, Int.max / 16)
        }
        parameterElements = min(parameterElements + n, Int.max / 16)
    }
    let weightBytes = parameterElements * (options.probe ? 12 : 4)
    let limit = memoryLimit()
    guard weightBytes <= limit.bytes else {
        throw PassError(pass: "compile", message: "the model's \(parameterElements) parameter values need \(weightBytes) bytes to compile\(options.probe ? " (with the probe's float64 copy)" : ""), more than \(limit)")
    }
    // Values entering a plan must be finite (a NaN weight is silently zeroed by ReLU).
    guard options.weights == nil || options.planWeights == nil else {
        throw PassError(pass: "compile", message: "weights: give a model's values or a compiled plan's, not both")
    }
    for (name, values) in (options.weights ?? options.planWeights ?? [:]).sorted(by: { $0.key < $1.key }) {
        if let problem = nonFiniteProblem(name: name, values) { throw PassError(pass: "compile", message: "weights: \(problem)") }
    }
    var input = model
    if options.mode == .inference {
        // Inference computes the model's first output (the logits), not the loss.
        input.training = nil
        if let first = input.outputs.first { input.outputs = [first] }
    } else if model.training == nil {
        throw PassError(pass: "training-form", message: "'\(model.name)' has no train { } section: a training plan needs its loss and optimizer")
    }
    let passes = (options.passes ?? standardPipeline(options.mode)).filter { !options.disabled.contains($0.name) }

    // Passes, with the probe after each (fold-batchnorm through foldBatchnorm to keep recipes).
    var graph = input
    var folds: [FoldRecipe] = []
    var timings: [PassTiming] = []
    var probeErrors: [(pass: String, errors: [String: Double])] = []
    let after = { (name: String, g: Graph, seconds: Double) in
        timings.append(PassTiming(name: name, seconds: seconds))
        if options.printAfter.contains(name) || options.printAfter.contains("all") {
            options.printer("// ----- IR after \(name) -----\n" + g.printed())
        }
    }
    if options.probe {
        let report = try probePipeline(input, passes: passes, tolerance: options.probeTolerance,
                                       weights: options.weights.map { $0.mapValues { $0.map(Double.init) } }, after: after)
        graph = report.graph
        folds = report.folds
        probeErrors = report.errors
    } else {
        for pass in passes {
            let start = monotonicSeconds()
            if pass.name == Pipelines.foldBatchnorm.name {
                let r = try foldBatchnorm(graph)
                graph = r.graph
                folds += r.recipes
            } else {
                graph = try pass.run(graph)
            }
            after(pass.name, graph, monotonicSeconds() - start)
        }
    }

    var plan = planMemory(try lowerToPlan(graph, maxBatch: options.batch))

    // Parameter values: given (with folds), or initial.
    let values: [String: [Float]]
    var planValues: [String: [Float]]?
    if let w = options.planWeights {
        // A plan of a model with batchnorm, given to the same model written without it: its
        // folded convolutions `X.weight.folded`/`X.bias.folded` are the convolutions X (with a
        // bias) of that model, as `fergc train --init M.plan` offers them.
        let renamed: [String: [Float]]
        do { renamed = try unfoldedNames(w, keep: Set(plan.buffers.map(\.name))) } catch let e as PassError {
            throw PassError(pass: "compile", message: "weights: \(e.message)")
        }
        planValues = renamed
        values = renamed
    } else if let w = options.weights {
        values = try applyFolds(folds, weights: w)
    } else {
        values = try applyFolds(folds, weights: initialWeights(input, seed: options.seed))
    }
    var missing: [String] = []
    for b in plan.buffers where b.role == .parameter || b.role == .state {
        if let v = values[b.name] {
            guard v.count == b.elementCount(batch: 1) else {
                throw PassError(pass: "compile", message: "weights: '\(b.name)' has \(v.count) values, the model needs \(b.elementCount(batch: 1))")
            }
            plan.parameters[b.name] = v
        } else if options.weights != nil || options.planWeights != nil, b.name != "optimizer.iterations", !b.name.hasPrefix("adam."), !b.name.hasPrefix("sgd.") {
            missing.append(b.name)
        }
    }
    if !missing.isEmpty {
        throw PassError(pass: "compile", message: "weights: missing \(missing.count) tensor\(missing.count == 1 ? "" : "s"): \(missing.prefix(8).joined(separator: ", "))\(missing.count > 8 ? ", ..." : "")")
    }
    if let w = planValues {
        // A plan's tensors that this one does not use: it was compiled from another model.
        let extra = w.keys.filter { plan.parameters[$0] == nil }.sorted()
        if !extra.isEmpty {
            throw PassError(pass: "compile", message: "weights: the plan has \(extra.count) tensor\(extra.count == 1 ? "" : "s") this model does not: \(extra.prefix(8).joined(separator: ", "))\(extra.count > 8 ? ", ..." : "")")
        }
    }

    var meta = PlanMetadata()
    meta.modelName = model.name
    meta.sourceHash = options.sourceHash
    if let x = model.inputs.first(where: { model[$0].type.dtype == .f32 }) { meta.inputShape = model[x].type.perSample }
    meta.inputScale = model.training?.inputScale ?? 1
    meta.classNames = emotionClasses
    meta.passes = passes.map(\.name)
    meta.mode = options.mode.rawValue
    for row in probeErrors {
        for (output, e) in row.errors { meta.probeErrors[output] = max(meta.probeErrors[output] ?? 0, e) }
    }
    meta.producer = "fergc \(runtimeVersion)"
    if options.mode == .training { meta.frozenPrefix = frozenPrefixInfo(graph) }
    if options.mode == .training, model.training?.compute == "bf16" { meta.computeDType = "bf16" }
    plan.metadata = meta
    if meta.computeDType != nil, plan.memory != nil {
        // The bf16 path's packed weights and scratch (none on a CPU without AMX).
        let bytes = executorWorkspaceBytes(plan, threads: plan.memory?.workspaceThreads ?? onlineProcessors())
        plan.memory?.workspaceBytes = bytes
    }

    let policy = options.convAlgorithms
    if policy != .direct {
        let scale = model.training?.inputScale ?? 1
        let chosen = try chooseConvAlgorithms(plan, policy: policy, tolerance: options.winogradTolerance,
                                              inputRange: 0...(255 * scale))
        plan = chosen.plan
        if !chosen.errors.isEmpty { plan.metadata.winogradErrors = chosen.errors }
        // The Winograd steps' scratch and filter transforms.
        let workspace = executorWorkspaceBytes(plan, threads: plan.memory?.workspaceThreads ?? onlineProcessors())
        plan.memory?.workspaceBytes = workspace
    }
    return Compiled(plan: plan, graph: graph, timings: timings, probeErrors: probeErrors)
}
