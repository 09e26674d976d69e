// What an executor allocates for kernel scratch, as a function of the plan, the thread count
// and the Winograd setting, so that the memory summary a plan carries (and `fergc compile`
// prints before anything runs) is what the executor will allocate:
//   - the im2col workspace of the generic kernels, sized to the largest convolution, one for
//     the executor (`workspaceElements`), always;
//   - on the fast Float path, per thread: the chunk panels of FastConv.swift and, for the
//     steps that run as Winograd, those of Winograd.swift, with chunks of at most the plan's
//     largest batch (`fastScratchElements`);
//   - the Winograd filter transforms: one per step whose weights nothing in the plan writes
//     (cached across runs), plus one shared area for the steps transformed every run
//     (training: the forward's and the input gradient's) (`winogradFilterLayout`). The
//     Winograd input gradient needs no panels of its own: it uses the backward's im2col panel;
//   - for a plan compiled with `--compute bf16` (or trained with `compute = bf16`) on a CPU
//     with AMX, per thread the bf16 panels, once the dense steps' shared panels and every bf16
//     step's packed weights (`bf16WorkspaceBytes`).
// The executor allocates with these same functions.

/// The geometry of a step the Winograd path computes under an executor's `winograd` setting
/// (nil: as the plan marks it), or nil.
func winogradGeometry(_ step: Step, winograd: Bool?) -> ConvGeometry? {
    guard winograd ?? (step.algorithm == .winograd) else { return nil }
    return winogradGeometry(of: step.kernel)
}

/// The Winograd filter areas: for each step, the floats of its cached transform (nil when it
/// has none), and the floats of the area shared by the steps transformed every run. A step's
/// transform is cached when its weights are not an intermediate and no step writes them (an
/// output, or an update's in-place input); training steps, whose weights the update changes
/// every run, use the shared area. Two forward steps of the same weights and channels (one
/// model run at two input sizes, its weights shared in one plan) use one cache: `owner` names
/// the earlier step for the later, whose `cached` is nil.
func winogradFilterLayout(_ plan: Plan, winograd: Bool?) -> (cached: [Int?], owner: [Int?], shared: Int) {
    var written = Set<Int>()
    for step in plan.steps {
        written.formUnion(step.outputs)
        switch step.kernel {
        case .sgdUpdate, .adamUpdate, .maxNormProject, .batchnormStatsUpdate, .increment: written.formUnion(step.inputs)
        default: break
        }
    }
    var cached: [Int?] = [], owner: [Int?] = [], shared = 0
    // The cached transforms so far, by weight buffer: (step, output channels, input channels).
    var byWeight: [Int: [(step: Int, o: Int, c: Int)]] = [:]
    for (s, step) in plan.steps.enumerated() {
        owner.append(nil)
        guard let g = winogradGeometry(step, winograd: winograd) else { cached.append(nil); continue }
        let w = step.inputs[winogradWeightSlot(of: step.kernel)]
        var cacheable = plan.buffers[w].role != .intermediate && !written.contains(w)
        if case .fusedTrain = step.kernel { cacheable = false }
        if winogradIsGradInput(step.kernel) { cacheable = false }
        if cacheable {
            // The transform depends on the weights and the channel counts only.
            if let first = byWeight[w]?.first(where: { $0.o == g.outChannels && $0.c == g.inChannels }) {
                cached.append(nil)
                owner[s] = first.step
            } else {
                cached.append(winogradFilterCount(g, gradInput: false))
                byWeight[w, default: []].append((s, g.outChannels, g.inChannels))
            }
        } else {
            cached.append(nil)
            shared = max(shared, winogradFilterCount(g, gradInput: winogradIsGradInput(step.kernel)))
        }
    }
    return (cached, owner, shared)
}

/// Per-thread scratch of the fast Float kernels (floats and doubles per thread), and the
/// floats of the Winograd filter areas (for the executor, not per thread).
public func fastScratchElements(_ plan: Plan, winograd: Bool? = nil) -> (floats: Int, doubles: Int, filters: Int) {
    var floats = 1, doubles = 1
    for step in plan.steps {
        let g: ConvGeometry
        switch step.kernel {
        case .conv2d(let c, _), .conv2dGradInput(let c), .conv2dGradWeight(let c): g = c
        case .fused(.conv2d(let c), _), .fusedTrain(.conv2d(let c), _), .fusedTrainGrad(.conv2d(let c), _, _, _): g = c
        default: continue
        }
        // Chunks never hold more samples than the plan's largest batch.
        let need = fastConvScratch(g, maxChunk: plan.maxBatch)
        floats = max(floats, need.floats)
        doubles = max(doubles, need.doubles)
        if let w = winogradGeometry(step, winograd: winograd) {
            if case .fusedTrainGrad(_, _, _, true) = step.kernel, winogradWeightGradPays(w) {  // dw by Winograd too
                floats = max(floats, fastConvWinogradBackwardScratch(w, maxChunk: plan.maxBatch).floats)
            }
            let more = winogradScratch(w, maxChunk: plan.maxBatch)
            floats = max(floats, more.floats)
            doubles = max(doubles, more.doubles)
        }
    }
    let layout = winogradFilterLayout(plan, winograd: winograd)
    return (floats, doubles, layout.cached.reduce(0) { $0 + ($1 ?? 0) } + layout.shared)
}

/// Bytes an executor of `plan` allocates for kernel scratch: the im2col workspace (elements
/// of `elementBytes`: 4 for Float, 8 for Double) and, for a Float executor with the fast
/// kernels, `threads` threads' scratch and the Winograd filter areas.
public func executorWorkspaceBytes(_ plan: Plan, threads: Int, winograd: Bool? = nil, elementBytes: Int = 4,
                                   fastKernels: Bool = true) -> Int {
    // Checked: a plan's sizes and a recorded thread count come from a file (Int.max when the
    // sum does not fit, which every memory check refuses).
    func times(_ a: Int, _ b: Int) -> Int {
        let (p, o) = a.multipliedReportingOverflow(by: b)
        return o ? Int.max : p
    }
    func sum(_ terms: Int...) -> Int {
        terms.reduce(0) { total, t in
            let (s, o) = total.addingReportingOverflow(t)
            return o ? Int.max : s
        }
    }
    let shared = times(max(workspaceElements(plan), 1), elementBytes)
    guard fastKernels && elementBytes == 4 else { return shared }
    let need = fastScratchElements(plan, winograd: winograd)
    let bf16 = bf16WorkspaceBytes(plan, threads: threads)
    let perThread = sum(times(need.floats, 4), times(need.doubles, 8), bf16.perThread)
    return sum(shared, times(max(threads, 1), perThread), times(need.filters, 4), bf16.shared, bf16.weights)
}
