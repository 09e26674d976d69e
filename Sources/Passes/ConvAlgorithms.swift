// choose-conv-algorithms: for each forward convolution of a lowered plan that Winograd
// F(4x4,3x3) can compute (3x3, stride 1, padding 1: `winogradGeometry(of:)`), and for each
// fused training backward of one that computes the input gradient (itself such a
// convolution, of dz with the rotated filters), decide between Winograd and the direct
// im2col + GEMM kernel, and record why.
//
// The check is per layer and against the direct kernel, on the layer's own weights: the plan
// runs once on a seeded probe batch (images in the input's range, every label 0, dropout
// off) with the direct kernels, unplanned so that every intermediate survives the run; then,
// for each candidate step, the Winograd kernel recomputes that step alone from the same input
// activations and parameter values (the plan's, taken before the run: a training plan updates
// its weights in the run), and
//
//   error = max |winograd - direct| / max |direct|        (over the step's first output:
//                                                          y forward, dx backward)
//
// is recorded in `PlanMetadata.winogradErrors` under the step's name (for a backward step that
// also computes the weight gradient, which Winograd then computes too, the larger of the dx
// error and the same measure over dw). Policy `auto` marks a
// step `.winograd` when its error is at most the tolerance and it has at least
// `winogradMinChannels` input channels (a convolution over one or two channels is a thin GEMM
// either way and Winograd's transforms cost more than they save); `winograd` marks every
// candidate whatever its error; `direct` marks none and skips the check. The filter
// transform is in double (Winograd.swift), so the error is that of the Float transforms and
// products, about 1e-5 for these layers.

import Runtime

public enum ConvAlgorithmPolicy: String, Sendable, CaseIterable {
    case auto, direct, winograd
}

/// Input channels below which `auto` keeps a convolution direct.
public let winogradMinChannels = 8

/// The plan with each candidate step's `algorithm` set, and the error of every candidate by
/// step name (empty for `direct`). `plan` must carry its parameter values.
public func chooseConvAlgorithms(_ plan: Plan, policy: ConvAlgorithmPolicy, tolerance: Double,
                                 inputRange: ClosedRange<Double>, seed: UInt64 = 0x5EED_F00D) throws -> (plan: Plan, errors: [String: Double]) {
    let candidates = plan.steps.indices.filter { winogradGeometry(of: plan.steps[$0].kernel) != nil }
    var out = plan
    for s in out.steps.indices { out.steps[s].algorithm = nil }
    guard policy != .direct, !candidates.isEmpty else { return (out, [:]) }

    // The direct run, unplanned (every intermediate keeps its value) and sized for the probe
    // batch only: a training plan for batch 128 unplanned would take its naive size (730 MB for
    // vgg_tuned) for a run of 4 samples.
    let batch = min(plan.maxBatch, 4)
    var probe = plan
    for i in probe.buffers.indices { probe.buffers[i].offset = nil }
    probe.memory = nil
    probe.maxBatch = batch
    let ex = try Executor<Float>(plan: probe)
    ex.winograd = false
    ex.dropoutEnabled = false
    var state = seed
    func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
    for (i, b) in probe.buffers.enumerated() where b.role == .input {
        let count = b.elementCount(batch: batch)
        switch (b.elementType, b.batched) {
        case (.i32, _): ex.setBuffer(i, ints: [Int32](repeating: 0, count: count))
        case (.f32, true): ex.setBuffer(i, (0..<count).map { _ in Float(inputRange.lowerBound + (inputRange.upperBound - inputRange.lowerBound) * uniform()) })
        case (.f32, false): ex.setBuffer(i, [Float](repeating: 1e-3, count: count))
        }
    }
    try ex.run(batch: batch)

    var errors: [String: Double] = [:]
    for s in candidates {
        let step = plan.steps[s]
        let g = winogradGeometry(of: step.kernel)!
        func parameter(_ k: Int) -> [Float] {
            let b = plan.buffers[step.inputs[k]]
            return plan.parameters[b.name] ?? ex.buffer(step.inputs[k])
        }
        // Pairs (winograd, direct) of the outputs Winograd computes: y forward; dx and, when the
        // step has it, dw backward (the error is the larger of the two).
        var pairs: [([Float], [Float])] = []
        if winogradIsGradInput(step.kernel) {
            // A parameter by name when the plan has it, else the run's value (batch statistics,
            // activations, the output gradient).
            func value(_ k: Int) -> [Float] { plan.parameters[plan.buffers[step.inputs[k]].name] ?? ex.buffer(step.inputs[k]) }
            let (dx, dw) = winogradGradInput(step, g, value: value, batch: batch)
            pairs.append((dx, ex.buffer(step.outputs[0])))
            if let dw, case .fusedTrainGrad(_, let e, let inputGrad, let weightGrad) = step.kernel,
               let slot = FusedGradSlots(e, inputGrad: inputGrad, weightGrad: weightGrad).dw {
                pairs.append((dw, ex.buffer(step.outputs[slot])))
            }
        } else {
            pairs.append((winogradForward(step, g, x: ex.buffer(step.inputs[0]), parameter: parameter, batch: batch),
                          ex.buffer(step.outputs[0])))
        }
        var error = 0.0
        for (winograd, direct) in pairs {
            var diff = 0.0, scale = 0.0
            for (a, b) in zip(winograd, direct) {
                diff = max(diff, abs(Double(a) - Double(b)))
                scale = max(scale, abs(Double(b)))
            }
            error = max(error, scale > 0 ? diff / scale : diff)
        }
        errors[step.name] = error
        let chosen: Bool
        switch policy {
        case .winograd: chosen = true
        case .auto: chosen = error <= tolerance && g.inChannels >= winogradMinChannels
        case .direct: chosen = false
        }
        out.steps[s].algorithm = chosen ? .winograd : .direct
    }
    return (out, errors)
}

/// Every array a kernel call of the check reads or writes, copied into memory owned here and
/// freed with this object.
private final class OwnedArrays {
    private var floats: [UnsafeMutableBufferPointer<Float>] = []
    private var doubles: [UnsafeMutableBufferPointer<Double>] = []
    deinit {
        for b in floats { b.deallocate() }
        for b in doubles { b.deallocate() }
    }
    func copy(_ values: [Float]) -> UnsafeMutablePointer<Float> {
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(values.count, 1))
        b.initialize(repeating: 0)
        _ = b.initialize(from: values)
        floats.append(b)
        return b.baseAddress!
    }
    func zeros(_ count: Int) -> UnsafeMutablePointer<Float> { copy([Float](repeating: 0, count: count)) }
    /// One thread's scratch of `need` elements, zeroed.
    func scratch(_ need: (floats: Int, doubles: Int), maxChunk: Int = .max) -> FastScratch {
        let d = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(need.doubles, 1))
        d.initialize(repeating: 0)
        doubles.append(d)
        return FastScratch(floats: [zeros(need.floats)], doubles: [d.baseAddress!], maxChunk: maxChunk)
    }
}

/// A fused training backward step's input gradient (its first output) with dx by Winograd and,
/// when the step computes it, its weight gradient with dw by Winograd, from the step's inputs
/// (by slot), for a batch of `batch`.
private func winogradGradInput(_ step: Step, _ g: ConvGeometry, value: (Int) -> [Float], batch n: Int) -> (dx: [Float], dw: [Float]?) {
    guard case .fusedTrainGrad(_, let e, let inputGrad, let weightGrad) = step.kernel else { return ([], nil) }
    let owned = OwnedArrays()
    let buffer = owned.copy, zeros = owned.zeros
    func slot(_ k: Int?) -> UnsafePointer<Float>? { k.map { UnsafePointer(buffer(value($0))) } }
    let scratch = owned.scratch(fastConvWinogradBackwardScratch(g, maxChunk: n), maxChunk: n)
    let u = zeros(winogradFilterCount(g, gradInput: true))
    winogradGradInputFilterTransform(u, buffer(value(2)), g)
    let p = FusedGradSlots(e, inputGrad: inputGrad, weightGrad: weightGrad)
    let O = g.outChannels, count = n * g.inChannels * g.inHeight * g.inWidth, wCount = O * g.inChannels * 9
    let dx = zeros(count), dw = p.dw == nil ? nil : zeros(wCount)
    // dgamma and dbeta always: the batchnorm backward needs its sums to form dz.
    fastFusedConvTrainBackward(dx: dx, dw: dw, db: nil, dgamma: e.hasBatchnorm ? zeros(O) : nil,
                               dbeta: e.hasBatchnorm ? zeros(O) : nil, dy: slot(0)!, x: slot(1)!, w: slot(2)!,
                               y: slot(p.y), bnInput: slot(p.bnInput), gamma: slot(p.gamma), mean: slot(p.mean),
                               variance: slot(p.variance), n: n, g, e, threads: 1, scratch: scratch, gradInputFilters: u,
                               winogradWeightGrad: true)
    return (Array(UnsafeBufferPointer(start: dx, count: count)), dw.map { Array(UnsafeBufferPointer(start: $0, count: wCount)) })
}

/// Step `step`'s first output computed by the Winograd kernels from input x and the step's
/// parameters (by input slot), for a batch of `batch`.
private func winogradForward(_ step: Step, _ g: ConvGeometry, x: [Float], parameter: (Int) -> [Float], batch n: Int) -> [Float] {
    let owned = OwnedArrays()
    let buffer = owned.copy, zeros = owned.zeros
    func slot(_ k: Int?) -> UnsafePointer<Float>? { k.map { UnsafePointer(buffer(parameter($0))) } }
    let scratch = owned.scratch(winogradScratch(g))
    let u = zeros(winogradFilterCount(g))
    winogradFilterTransform(u, buffer(parameter(1)), g)
    let O = g.outChannels, count = n * O * g.outHeight * g.outWidth
    let y = zeros(count), xp = UnsafePointer(buffer(x))
    switch step.kernel {
    case .conv2d(_, let bias):
        winogradConvForward(y, xp, u, slot(bias ? 2 : nil), preRelu: false, scale: nil, shift: nil,
                            postRelu: false, stats: nil, n: n, g, threads: 1, scratch: scratch)
    case .fused(_, let e):
        let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
        winogradFusedConvForward(y, xp, u, slot(e.bias ? 2 : nil), gamma: slot(bn ? k : nil), beta: slot(bn ? k + 1 : nil),
                                 runningMean: slot(bn ? k + 2 : nil), runningVar: slot(bn ? k + 3 : nil),
                                 n: n, g, e, threads: 1, scratch: scratch)
    case .fusedTrain(_, let e):
        let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
        winogradFusedConvTrainForward(y, bn ? zeros(count) : nil, bn ? zeros(O) : nil, bn ? zeros(O) : nil,
                                      xp, u, slot(e.bias ? 2 : nil), gamma: slot(bn ? k : nil), beta: slot(bn ? k + 1 : nil),
                                      n: n, g, e, threads: 1, scratch: scratch)
    default:
        break
    }
    return Array(UnsafeBufferPointer(start: y, count: count))
}
