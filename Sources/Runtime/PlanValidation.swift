// Checks a plan before the executor allocates anything, so that a malformed plan becomes an
// `ExecutorError` naming the step rather than an out-of-bounds access in a kernel:
//   - maxBatch >= 1, plan outputs and every step's buffer indices in range;
//   - each step has its kernel's number of inputs and outputs, and every buffer has the
//     element type, batchedness and per-sample element count its slot requires;
//   - geometries are positive, pools have no window entirely in padding, slices and concats
//     fit, dropout rates are in [0, 1), max-norm shapes match;
//   - outputs are distinct; an output may alias an input only as a kernel's first output when
//     the kernel may run in place (elementwise kernels: relu, scale, add, ...; convolutions
//     whose output is as large as their input; pools without padding); update kernels' inputs
//     are distinct;
//   - initial values (`plan.parameters`) name parameter or state buffers and have their sizes;
//   - a planned plan (one with arena offsets) places every intermediate and nothing else, each
//     inside the arena at an aligned offset, and no two buffers live at the same step share a
//     byte, except an input and the first output of an in-place step that takes over its memory
//     (`inPlaceSource`): at that step the output sits at the input's offset and, when smaller
//     (a pool), the input's remaining bytes still belong to the input. Plans are read from
//     files: a bad placement must not become a kernel writing over a value another step still
//     needs.

/// What one input or output slot of a kernel requires of its buffer.
struct SlotRequirement {
    /// Per-sample element count, or nil for any.
    var count: Int?
    /// Whether the buffer must (true) or must not (false) be batched; nil for either.
    var batched: Bool?
    /// The element type, or nil for either (counters).
    var type: ElementType?

    static func batch(_ count: Int) -> SlotRequirement { .init(count: count, batched: true, type: .f32) }
    static func fixed(_ count: Int) -> SlotRequirement { .init(count: count, batched: false, type: .f32) }
    static func like(_ b: BufferDesc) -> SlotRequirement {
        .init(count: b.elementsPerSample, batched: b.batched, type: .f32)
    }
    static let anyF32 = SlotRequirement(count: nil, batched: nil, type: .f32)
    static let anyFixedF32 = SlotRequirement(count: nil, batched: false, type: .f32)
    static let labels = SlotRequirement(count: 1, batched: true, type: .i32)
    static let scalar = SlotRequirement.fixed(1)
    static let counter = SlotRequirement(count: 1, batched: false, type: nil)
}

/// The slots of one step, and whether its first output may alias an input.
struct StepRequirements {
    var inputs: [SlotRequirement]
    var outputs: [SlotRequirement]
    /// Whether the first output may be written over the first input. Elementwise kernels read
    /// element i before writing element i. A convolution copies each sample's input into its
    /// im2col panel before writing that sample's output (Conv.swift, FastConv.swift), so it
    /// may when the output of a sample is exactly as large as its input. A pool without
    /// padding may too, with a smaller output: it writes output k after reading its window,
    /// and every window of a later output starts at or after input element k (see
    /// `shrinksInPlace`).
    var inPlace = false
    /// Whether the in-place output may be smaller than the input: it then takes over the
    /// input's first bytes (pools).
    var shrinksInPlace = false
    var isUpdate = false
    /// Elements of im2col scratch the kernel needs.
    var workspace = 0
    /// Whether the kernel takes its inputs as a pointer table (add, mul, concat).
    var variadic = false
    /// Input slots the kernel uses for their shape only and never reads (liveness skips them).
    var shapeOnly: [Int] = []
}

struct StepError: Error { var reason: String }

private func ensure(_ condition: Bool, _ reason: @autoclosure () -> String) throws {
    if !condition { throw StepError(reason: reason()) }
}

/// The largest value a geometry field may hold: the C kernels take Int32, and sums and
/// products of two fields must stay far from overflow.
let maxGeometryField = 1 << 20

/// Every field in 0...maxGeometryField and the per-sample element counts (channels x height x
/// width) within Int32, so that nothing computed from them overflows here or in C.
private func checkRanges(_ what: String, _ fields: [(String, Int)], planes: [(Int, Int, Int)]) throws {
    for (name, v) in fields where !(0...maxGeometryField).contains(v) {
        throw StepError(reason: "\(what) geometry: \(name) \(v) is outside 0...\(maxGeometryField)")
    }
    for (c, h, w) in planes {
        let (ch, o1) = c.multipliedReportingOverflow(by: h)
        let (chw, o2) = ch.multipliedReportingOverflow(by: w)
        try ensure(!o1 && !o2 && chw <= Int(Int32.max), "\(what) geometry: \(c)x\(h)x\(w) elements per sample exceed \(Int32.max)")
    }
}

/// A window of `k` at `stride` with `padTop` zeros before the input must produce exactly `out`
/// positions over `input`: the padding after the input it implies, `(out-1)*stride + k - input
/// - padTop`, lies in (-stride, padTop + 1] ("valid" drops at most stride-1 trailing rows,
/// "same" and explicit padding add at most one more row after than before), and padTop < k.
private func checkWindow(_ what: String, _ axis: String, input: Int, out: Int, k: Int, stride: Int, pad: Int) throws {
    let after = (out - 1) * stride + k - input - pad
    try ensure(pad < k && after > -stride && after <= pad + 1,
               "\(what) geometry: \(out) output \(axis)s do not follow from input \(input), window \(k), stride \(stride), padding \(pad) (padding after would be \(after))")
}

private func check(_ g: ConvGeometry) throws {
    try checkRanges("conv", [("inChannels", g.inChannels), ("inHeight", g.inHeight), ("inWidth", g.inWidth),
                             ("outChannels", g.outChannels), ("kernelHeight", g.kernelHeight), ("kernelWidth", g.kernelWidth),
                             ("stride", g.stride), ("padTop", g.padTop), ("padLeft", g.padLeft),
                             ("outHeight", g.outHeight), ("outWidth", g.outWidth)],
                    planes: [(g.inChannels, g.inHeight, g.inWidth), (g.outChannels, g.outHeight, g.outWidth),
                             (g.outChannels, g.inChannels, g.kernelHeight * g.kernelWidth)])
    try ensure(g.inChannels > 0 && g.inHeight > 0 && g.inWidth > 0 && g.outChannels > 0
               && g.kernelHeight > 0 && g.kernelWidth > 0 && g.stride > 0
               && g.outHeight > 0 && g.outWidth > 0, "conv geometry has a non-positive size: \(g)")
    try ensure(g.padTop >= 0 && g.padLeft >= 0, "conv geometry has negative padding: \(g)")
    try checkWindow("conv", "row", input: g.inHeight, out: g.outHeight, k: g.kernelHeight, stride: g.stride, pad: g.padTop)
    try checkWindow("conv", "column", input: g.inWidth, out: g.outWidth, k: g.kernelWidth, stride: g.stride, pad: g.padLeft)
}

private func check(_ g: PoolGeometry) throws {
    try checkRanges("pool", [("channels", g.channels), ("inHeight", g.inHeight), ("inWidth", g.inWidth), ("size", g.size),
                             ("stride", g.stride), ("padTop", g.padTop), ("padLeft", g.padLeft),
                             ("outHeight", g.outHeight), ("outWidth", g.outWidth)],
                    planes: [(g.channels, g.inHeight, g.inWidth), (g.channels, g.outHeight, g.outWidth)])
    try ensure(g.channels > 0 && g.inHeight > 0 && g.inWidth > 0 && g.size > 0 && g.stride > 0
               && g.outHeight > 0 && g.outWidth > 0, "pool geometry has a non-positive size: \(g)")
    try ensure(g.padTop >= 0 && g.padLeft >= 0 && g.padTop < g.size && g.padLeft < g.size
               && (g.outHeight - 1) * g.stride - g.padTop < g.inHeight
               && (g.outWidth - 1) * g.stride - g.padLeft < g.inWidth,
               "pool geometry has a window entirely in padding: \(g)")
    try checkWindow("pool", "row", input: g.inHeight, out: g.outHeight, k: g.size, stride: g.stride, pad: g.padTop)
    try checkWindow("pool", "column", input: g.inWidth, out: g.outWidth, k: g.size, stride: g.stride, pad: g.padLeft)
}

private func positive(_ values: Int...) throws {
    try ensure(values.allSatisfy { $0 > 0 }, "sizes must be positive: \(values)")
    // Within Int32 each (BLAS and the C kernels take Int32), and a product that cannot overflow.
    try ensure(values.allSatisfy { $0 <= Int(Int32.max) }, "sizes must be at most \(Int32.max): \(values)")
    var product = 1
    for v in values {
        let (p, overflow) = product.multipliedReportingOverflow(by: v)
        try ensure(!overflow && p <= 1 << 40, "sizes \(values) multiply to more than 2^40")
        product = p
    }
}

/// The slot requirements of `step`, given the plan's buffers (indices already range-checked).
func requirements(of step: Step, buffers: [BufferDesc]) throws -> StepRequirements {
    let first = step.inputs.first.map { buffers[$0] }
    func likeFirst() throws -> SlotRequirement {
        guard let first else { throw StepError(reason: "needs at least one input") }
        return .like(first)
    }
    switch step.kernel {
    case .conv2d(let g, let bias):
        try check(g)
        let x = SlotRequirement.batch(g.inChannels * g.inHeight * g.inWidth)
        let w = SlotRequirement.fixed(g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth)
        return .init(inputs: [x, w] + (bias ? [.fixed(g.outChannels)] : []),
                     outputs: [.batch(g.outChannels * g.outHeight * g.outWidth)], inPlace: convRunsInPlace(g),
                     workspace: im2colCount(g))
    case .dense(let i, let o, let bias):
        try positive(i, o)
        return .init(inputs: [.batch(i), .fixed(o * i)] + (bias ? [.fixed(o)] : []), outputs: [.batch(o)])
    case .relu, .leakyRelu, .copy, .scale:
        let x = try likeFirst()
        return .init(inputs: [x], outputs: [x], inPlace: true)
    case .batchnormInference(let c, let s, _):
        try positive(c, s)
        return .init(inputs: [.batch(c * s), .fixed(c), .fixed(c), .fixed(c), .fixed(c)],
                     outputs: [.batch(c * s)], inPlace: true)
    case .batchnormTrain(let c, let s, _):
        try positive(c, s)
        return .init(inputs: [.batch(c * s), .fixed(c), .fixed(c)],
                     outputs: [.batch(c * s), .fixed(c), .fixed(c)])
    case .dropoutTrain(let rate):
        try ensure(rate >= 0 && rate < 1, "dropout rate \(rate) is outside [0, 1)")
        let x = try likeFirst()
        return .init(inputs: [x], outputs: [x, x], inPlace: true)
    case .maxpool(let g), .avgpool(let g):
        try check(g)
        // Output k's window starts at input (c*H + oh*stride)*W + ow*stride >= k when nothing
        // pads before the input (OH <= H, OW <= W): writing k never clobbers a later read.
        let unpadded = g.padTop == 0 && g.padLeft == 0
        return .init(inputs: [.batch(g.channels * g.inHeight * g.inWidth)],
                     outputs: [.batch(g.channels * g.outHeight * g.outWidth)],
                     inPlace: unpadded, shrinksInPlace: unpadded)
    case .softmax(let k):
        try positive(k)
        return .init(inputs: [.batch(k)], outputs: [.batch(k)], inPlace: true)
    case .softmaxCrossEntropy(let k):
        try positive(k)
        return .init(inputs: [.batch(k), .labels], outputs: [.scalar])
    case .add, .mul:
        let x = try likeFirst()
        return .init(inputs: Array(repeating: x, count: step.inputs.count), outputs: [x], inPlace: true,
                     variadic: true)
    case .concat(let outer, let inner, let sizes):
        try positive(outer, inner)
        try ensure(!sizes.isEmpty && sizes.allSatisfy { $0 > 0 && $0 <= Int(Int32.max) }, "concat sizes must be in 1...\(Int32.max): \(sizes)")
        let batched = first?.batched ?? true
        func slot(_ size: Int) -> SlotRequirement { .init(count: outer * size * inner, batched: batched, type: .f32) }
        return .init(inputs: sizes.map(slot), outputs: [slot(sizes.reduce(0, +))], variadic: true)
    case .slice(let outer, let inner, let total, let start, let length):
        try positive(outer, inner, total, length)
        try ensure(start >= 0 && start <= total && length <= total - start, "slice of \(length) at \(start) exceeds \(total)")
        let batched = first?.batched ?? true
        return .init(inputs: [.init(count: outer * total * inner, batched: batched, type: .f32)],
                     outputs: [.init(count: outer * length * inner, batched: batched, type: .f32)])
    case .l2Penalty:
        return .init(inputs: [.anyF32], outputs: [.scalar])
    case .l2PenaltyGrad:
        let w = step.inputs.count > 1 ? SlotRequirement.like(buffers[step.inputs[1]]) : .anyF32
        return .init(inputs: [.scalar, w], outputs: [w])
    case .constant:
        return .init(inputs: [], outputs: [.anyF32])

    case .conv2dGradInput(let g):
        try check(g)
        return .init(inputs: [.batch(g.outChannels * g.outHeight * g.outWidth),
                              .fixed(g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth)],
                     outputs: [.batch(g.inChannels * g.inHeight * g.inWidth)], workspace: im2colCount(g))
    case .conv2dGradWeight(let g):
        try check(g)
        return .init(inputs: [.batch(g.outChannels * g.outHeight * g.outWidth),
                              .batch(g.inChannels * g.inHeight * g.inWidth)],
                     outputs: [.fixed(g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth)],
                     workspace: im2colCount(g))
    case .biasGrad(let c, let s):
        try positive(c, s)
        return .init(inputs: [.batch(c * s)], outputs: [.fixed(c)])
    case .denseGradInput(let i, let o):
        try positive(i, o)
        return .init(inputs: [.batch(o), .fixed(o * i)], outputs: [.batch(i)])
    case .denseGradWeight(let i, let o):
        try positive(i, o)
        return .init(inputs: [.batch(o), .batch(i)], outputs: [.fixed(o * i)])
    case .reluGrad, .leakyReluGrad:
        let x = try likeFirst()
        return .init(inputs: [x, x], outputs: [x], inPlace: true)
    case .batchnormTrainGrad(let c, let s, _):
        try positive(c, s)
        return .init(inputs: [.batch(c * s), .batch(c * s), .fixed(c), .fixed(c), .fixed(c)],
                     outputs: [.batch(c * s), .fixed(c), .fixed(c)])
    case .batchnormInferenceGrad(let c, let s, _):
        try positive(c, s)
        return .init(inputs: [.batch(c * s), .fixed(c), .fixed(c)], outputs: [.batch(c * s)], inPlace: true)
    case .maxpoolGrad(let g), .avgpoolGrad(let g):
        try check(g)
        let x = SlotRequirement.batch(g.channels * g.inHeight * g.inWidth)
        let shapeOnly: [Int]
        if case .avgpoolGrad = step.kernel { shapeOnly = [1] } else { shapeOnly = [] }
        return .init(inputs: [.batch(g.channels * g.outHeight * g.outWidth), x], outputs: [x], shapeOnly: shapeOnly)
    case .softmaxGrad(let k):
        try positive(k)
        return .init(inputs: [.batch(k), .batch(k)], outputs: [.batch(k)], inPlace: true)
    case .softmaxCrossEntropyGrad(let k):
        try positive(k)
        return .init(inputs: [.scalar, .batch(k), .labels], outputs: [.batch(k)])

    case .sgdUpdate:
        let p = first.map { SlotRequirement.fixed($0.elementsPerSample) } ?? .anyFixedF32
        return .init(inputs: [p, p, p, .scalar], outputs: [], isUpdate: true)
    case .adamUpdate:
        let p = first.map { SlotRequirement.fixed($0.elementsPerSample) } ?? .anyFixedF32
        return .init(inputs: [p, p, p, p, .scalar, .counter], outputs: [], isUpdate: true)
    case .maxNormProject(let maxValue, let mode, let shape):
        try ensure(maxValue >= 0, "max-norm value \(maxValue) is negative")
        try ensure(shape.allSatisfy { $0 > 0 }, "max-norm shape \(shape) has a non-positive size")
        switch mode {
        case .keras: try ensure(shape.count == 2 || shape.count == 4, "keras max-norm needs a rank-2 or rank-4 shape, got \(shape)")
        case .perFilter: try ensure(shape.count >= 1, "per-filter max-norm needs a shape")
        }
        return .init(inputs: [.fixed(shape.reduce(1, *))], outputs: [], isUpdate: true)
    case .batchnormStatsUpdate(_, let c, let s):
        try positive(c, s)
        return .init(inputs: [.fixed(c), .fixed(c), .fixed(c), .fixed(c), .batch(c * s)],
                     outputs: [], isUpdate: true, shapeOnly: [4])
    case .increment:
        return .init(inputs: [.counter], outputs: [], isUpdate: true)

    case .softmaxCrossEntropySmoothed(let k, let e):
        try positive(k)
        try ensure(e >= 0 && e < 1, "label smoothing \(e) is outside [0, 1)")
        return .init(inputs: [.batch(k), .labels], outputs: [.scalar])
    case .softmaxCrossEntropySmoothedGrad(let k, let e):
        try positive(k)
        try ensure(e >= 0 && e < 1, "label smoothing \(e) is outside [0, 1)")
        return .init(inputs: [.scalar, .batch(k), .labels], outputs: [.batch(k)])
    case .softmaxCrossEntropySoft(let k):
        try positive(k)
        return .init(inputs: [.batch(k), .batch(k)], outputs: [.scalar])
    case .softmaxCrossEntropySoftGrad(let k):
        try positive(k)
        return .init(inputs: [.scalar, .batch(k), .batch(k)], outputs: [.batch(k)])
    case .sgdWeightDecayUpdate(_, _, let wd, _):
        try ensure(wd >= 0 && wd.isFinite, "weight decay \(wd) is negative or not finite")
        let p = first.map { SlotRequirement.fixed($0.elementsPerSample) } ?? .anyFixedF32
        return .init(inputs: [p, p, p, .scalar], outputs: [], isUpdate: true)
    case .ttaViews(let t):
        try positive(t.channels, t.faceSide, t.side)
        try ensure(!t.views.isEmpty && t.views.count <= 64, "has \(t.views.count) views; 1...64 are allowed")
        try ensure(t.side <= t.faceSide, "views of side \(t.side) do not fit in a face of side \(t.faceSide)")
        for v in t.views {
            try ensure(v.row >= 0 && v.col >= 0 && v.row + t.side <= t.faceSide && v.col + t.side <= t.faceSide,
                       "a view at (\(v.row), \(v.col)) of side \(t.side) leaves the \(t.faceSide)x\(t.faceSide) face")
        }
        return .init(inputs: [.batch(t.channels * t.faceSide * t.faceSide)], outputs: [.batch(t.channels * t.side * t.side)])
    case .ttaMean(let k, let v, _):
        try positive(k, v)
        return .init(inputs: [.batch(k)], outputs: [.batch(k)])

    case .fused(let a, let e):
        let s = try fusedSlots(a, e)
        var inPlace = false
        if case .conv2d(let g) = a { inPlace = convRunsInPlace(g) }
        return .init(inputs: [s.x, s.w] + (e.bias ? [s.vector] : []) + (e.hasBatchnorm ? Array(repeating: s.vector, count: 4) : []),
                     outputs: [s.y], inPlace: inPlace, workspace: fusedForwardWorkspace(a))
    case .fusedTrain(let a, let e):
        let s = try fusedSlots(a, e)
        return .init(inputs: [s.x, s.w] + (e.bias ? [s.vector] : []) + (e.hasBatchnorm ? [s.vector, s.vector] : []),
                     outputs: [s.y] + (e.hasBatchnorm ? [s.y, s.vector, s.vector] : []), workspace: fusedForwardWorkspace(a))
    case .fusedTrainGrad(let a, let e, let inputGrad, let weightGrad):
        let s = try fusedSlots(a, e)
        let p = FusedGradSlots(e, inputGrad: inputGrad, weightGrad: weightGrad)
        var inputs: [SlotRequirement] = [s.y, s.x, s.w]
        if p.y != nil { inputs.append(s.y) }
        if e.hasBatchnorm { inputs += [s.y, s.vector, s.vector, s.vector] }
        var outputs: [SlotRequirement] = []
        if p.dx != nil { outputs.append(s.x) }
        if p.dw != nil { outputs.append(s.w) }
        if p.db != nil { outputs.append(s.vector) }
        if e.hasBatchnorm { outputs += [s.vector, s.vector] }
        return .init(inputs: inputs, outputs: outputs, workspace: fusedTrainBackwardWorkspace(a))
    case .preprocess(let t, let planes, let h, let w):
        try positive(planes, h, w)
        let (size, overflow) = h.multipliedReportingOverflow(by: w)
        let (count, overflow2) = size.multipliedReportingOverflow(by: planes)
        try ensure(!overflow && !overflow2, "preprocess size \(planes)x\(h)x\(w) overflows")
        switch t {
        case .equalizeLocal(let r):
            try ensure(r >= 1 && r <= PreprocessTechnique.maxRadius, "equalize_local radius \(r) is outside 1...\(PreprocessTechnique.maxRadius)")
        case .clahe(let clip):
            try ensure(clip >= 0 && clip <= 1, "clahe clip \(clip) is outside [0, 1]")
        case .equalizeHist, .normalizeMinmax, .sobel, .scharr, .prewitt, .roberts, .thresholdYen,
             .thresholdIsodata, .thresholdMean, .standardize, .truncate:
            break
        }
        return .init(inputs: [.batch(count)], outputs: [.batch(count)])
    }
}

/// The geometry of a step the Winograd path can compute (forward convolutions whose geometry
/// `isWinogradGeometry` accepts, and the fused training backward of one when it computes the
/// input gradient: that is a 3x3 "same" convolution too), or nil.
public func winogradGeometry(of k: Kernel) -> ConvGeometry? {
    switch k {
    case .conv2d(let g, _), .fused(.conv2d(let g), _), .fusedTrain(.conv2d(let g), _):
        return isWinogradGeometry(g) ? g : nil
    case .fusedTrainGrad(.conv2d(let g), _, true, _):
        return isWinogradGeometry(g) ? g : nil
    default: return nil
    }
}

/// The input slot of a Winograd step's weights (after dy in the backward).
public func winogradWeightSlot(of k: Kernel) -> Int {
    if case .fusedTrainGrad = k { return 2 }
    return 1
}

/// Whether a Winograd step transforms its filters for the input gradient (a backward step).
public func winogradIsGradInput(_ k: Kernel) -> Bool {
    if case .fusedTrainGrad = k { return true }
    return false
}

/// Whether a convolution's output may overwrite its input: only when a sample's output is
/// exactly as large as its input (each sample's input is copied to the im2col panel before
/// the sample's output is written, and samples do not overlap).
func convRunsInPlace(_ g: ConvGeometry) -> Bool {
    g.outChannels * g.outHeight * g.outWidth == g.inChannels * g.inHeight * g.inWidth
}

/// The slots a fused kernel's anchor implies: x, w, y and per-channel vectors.
private func fusedSlots(_ a: FusedAnchor, _ e: FusedEpilogue) throws -> (x: SlotRequirement, w: SlotRequirement, y: SlotRequirement, vector: SlotRequirement) {
    switch a {
    case .conv2d(let g): try check(g)
    case .dense(let i, let o): try positive(i, o)
    }
    try ensure(e.relu || e.batchnorm != .afterRelu, "a batchnorm after relu needs relu")
    try ensure(!e.hasBatchnorm || e.epsilon > 0, "batchnorm epsilon \(e.epsilon) is not positive")
    return (.batch(a.inputCount), .fixed(a.weightCount), .batch(a.outputChannels * a.outputSpatial), .fixed(a.outputChannels))
}


private func describe(_ b: BufferDesc, _ index: Int) -> String {
    "buffer \(index) '\(b.name)' (\(b.elementType.rawValue), per sample \(b.perSample), \(b.batched ? "batched" : "not batched"))"
}

private func check(_ index: Int, _ req: SlotRequirement, slot: String, buffers: [BufferDesc]) throws {
    let b = buffers[index]
    if let type = req.type {
        try ensure(b.elementType == type, "\(slot) is \(describe(b, index)); expected \(type.rawValue)")
    }
    if let batched = req.batched {
        try ensure(b.batched == batched, "\(slot) is \(describe(b, index)); expected \(batched ? "a batched" : "an unbatched") buffer")
    }
    if let count = req.count {
        try ensure(b.elementsPerSample == count,
                   "\(slot) is \(describe(b, index)) with \(b.elementsPerSample) elements per sample; expected \(count)")
    }
}

/// Throws `ExecutorError` for the first problem found in `plan`.
func validate(_ plan: Plan) throws {
    guard plan.maxBatch >= 1 else { throw ExecutorError.invalidPlan(reason: "maxBatch \(plan.maxBatch) < 1") }
    if let c = plan.metadata.computeDType, !computeDTypes.contains(c) {
        throw ExecutorError.invalidPlan(reason: "compute type '\(c)' is not one of \(computeDTypes.joined(separator: ", "))")
    }
    // Class names key `predict`'s records and `eval`'s tables: each must be there once.
    var classNames = Set<String>()
    for name in plan.metadata.classNames {
        guard !name.isEmpty else { throw ExecutorError.invalidPlan(reason: "the metadata has an empty class name") }
        guard classNames.insert(name).inserted else {
            throw ExecutorError.invalidPlan(reason: "the metadata names class '\(name)' twice")
        }
    }
    for b in plan.buffers where b.perSample.contains(where: { $0 < 0 }) {
        throw ExecutorError.invalidPlan(reason: "buffer '\(b.name)' has a negative dimension \(b.perSample)")
    }
    for b in plan.buffers {
        if let v = b.views {
            guard (1...64).contains(v), b.batched else {
                throw ExecutorError.invalidPlan(reason: "buffer '\(b.name)' has \(v) views per sample; 1...64 on a batched buffer are allowed")
            }
        }
        // Sizes a file could make overflow: elements at maxBatch, times 8 bytes (Double).
        var elements = plan.maxBatch * (b.views ?? 1)
        for d in b.perSample {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow, p <= Int.max / 8 else {
                throw ExecutorError.invalidPlan(reason: "buffer '\(b.name)' \(b.perSample) is too large at batch \(plan.maxBatch)")
            }
            elements = p
        }
    }
    for o in plan.outputs where !plan.buffers.indices.contains(o) {
        throw ExecutorError.invalidPlan(reason: "plan output \(o) is not a buffer index (0..<\(plan.buffers.count))")
    }
    for (s, step) in plan.steps.enumerated() {
        do {
            for (k, i) in (step.inputs + step.outputs).enumerated() where !plan.buffers.indices.contains(i) {
                let slot = k < step.inputs.count ? "input \(k)" : "output \(k - step.inputs.count)"
                throw StepError(reason: "\(slot) is buffer \(i), not in 0..<\(plan.buffers.count)")
            }
            let req = try requirements(of: step, buffers: plan.buffers)
            try ensure(step.inputs.count == req.inputs.count,
                       "has \(step.inputs.count) inputs; the kernel takes \(req.inputs.count)")
            try ensure(step.outputs.count == req.outputs.count,
                       "has \(step.outputs.count) outputs; the kernel produces \(req.outputs.count)")
            for (k, i) in step.inputs.enumerated() {
                try check(i, req.inputs[k], slot: "input \(k)", buffers: plan.buffers)
            }
            for (k, i) in step.outputs.enumerated() {
                try check(i, req.outputs[k], slot: "output \(k)", buffers: plan.buffers)
            }
            try ensure(Set(step.outputs).count == step.outputs.count, "writes the same buffer twice")
            for (k, o) in step.outputs.enumerated() where step.inputs.contains(o) {
                try ensure(req.inPlace && k == 0, "output \(k) (buffer \(o)) aliases an input; this kernel cannot run in place")
            }
            if req.isUpdate {
                try ensure(Set(step.inputs).count == step.inputs.count, "an update kernel's inputs must be distinct buffers")
            }
            try checkViews(step, buffers: plan.buffers)
            if step.algorithm == .winograd {
                try ensure(winogradGeometry(of: step.kernel) != nil,
                           "is marked winograd, which needs a forward 3x3 convolution with stride 1 and padding 1")
            }
        } catch let e as StepError {
            throw ExecutorError.invalidStep(step: s, name: step.name, kernel: "\(step.kernel)", reason: e.reason)
        }
    }
    try validateParameters(plan)
    try validatePlacement(plan)
}

/// Initial values must name a parameter or state buffer and fill it exactly.
private func validateParameters(_ plan: Plan) throws {
    for (name, values) in plan.parameters.sorted(by: { $0.key < $1.key }) {
        guard let i = plan.buffer(named: name) else {
            throw ExecutorError.invalidPlan(reason: "initial values for '\(name)', which is not a buffer")
        }
        let b = plan.buffers[i]
        guard b.role == .parameter || b.role == .state else {
            throw ExecutorError.invalidPlan(reason: "initial values for '\(name)', a buffer of role \(b.role.rawValue); only parameter and state buffers have them")
        }
        guard values.count == b.elementCount(batch: plan.maxBatch) else {
            throw ExecutorError.invalidPlan(reason: "initial values for '\(name)': \(values.count) values, the buffer holds \(b.elementCount(batch: plan.maxBatch))")
        }
        if let problem = nonFiniteProblem(name: name, values) {
            throw ExecutorError.invalidPlan(reason: "initial values: \(problem)")
        }
    }
}

/// The arena placement of a planned plan (see the comment at the top). Byte ranges are the
/// buffers' real sizes at maxBatch, so a hand-made plan need not pad them.
private func validatePlacement(_ plan: Plan) throws {
    guard plan.buffers.contains(where: { $0.offset != nil }) else { return }
    guard let memory = plan.memory else {
        throw ExecutorError.invalidPlan(reason: "buffers have arena offsets but the plan has no memory summary (arena size)")
    }
    let arena = memory.arenaBytes
    guard arena >= 0 else { throw ExecutorError.invalidPlan(reason: "arena size \(arena) is negative") }
    func bytes(_ i: Int) -> Int { plan.buffers[i].byteCount(batch: plan.maxBatch) }
    for (i, b) in plan.buffers.enumerated() {
        guard b.role == .intermediate else {
            guard b.offset == nil else {
                throw ExecutorError.invalidPlan(reason: "buffer \(i) '\(b.name)' is \(b.role.rawValue) storage but has an arena offset")
            }
            continue
        }
        guard let offset = b.offset else {
            throw ExecutorError.invalidPlan(reason: "intermediate buffer \(i) '\(b.name)' has no arena offset in a planned plan")
        }
        // (An empty buffer still gets an address inside the arena.)
        guard offset >= 0, offset % arenaAlignment == 0, offset <= arena - max(bytes(i), 4) else {
            throw ExecutorError.invalidPlan(reason: "buffer \(i) '\(b.name)' at offset \(offset) (\(bytes(i)) bytes) is not an aligned place inside the \(arena)-byte arena")
        }
    }
    // Buffers live at the same step must not share a byte. Each buffer is a rectangle (steps it
    // is live) x (its bytes); an in-place step's source is dropped at that step when its output
    // sits exactly on it (a shrinking hand-over keeps the source's bytes past the output's).
    // One sweep over the steps keeps the live ranges sorted by offset (they never overlap, or
    // the sweep has already failed) and checks each range as it starts against its neighbours:
    // O(n log n + n x live) instead of steps x buffers.
    let lifetimes = intermediateLifetimes(plan)
    let lastStep = max(plan.steps.count, 1) - 1
    var handOvers: [Int: [(step: Int, kept: Int)]] = [:]
    for s in 0..<plan.steps.count {
        if let x = inPlaceSource(plan, step: s, lifetimes: lifetimes),
           plan.buffers[x].offset == plan.buffers[plan.steps[s].outputs[0]].offset {
            handOvers[x, default: []].append((s, bytes(plan.steps[s].outputs[0])))
        }
    }
    struct Piece { var buffer: Int, first: Int, last: Int, start: Int, end: Int }
    var pieces: [Piece] = []
    for i in plan.buffers.indices {
        guard let life = lifetimes[i], bytes(i) > 0 else { continue }
        let first = max(life.lowerBound, 0), last = min(life.upperBound, lastStep)
        guard first <= last else { continue }
        let offset = plan.buffers[i].offset!, full = offset + bytes(i)
        var from = first
        for h in (handOvers[i] ?? []).sorted(by: { $0.step < $1.step }) where (first...last).contains(h.step) {
            if from < h.step { pieces.append(Piece(buffer: i, first: from, last: h.step - 1, start: offset, end: full)) }
            if h.kept < bytes(i) { pieces.append(Piece(buffer: i, first: h.step, last: h.step, start: offset + h.kept, end: full)) }
            from = h.step + 1
        }
        if from <= last { pieces.append(Piece(buffer: i, first: from, last: last, start: offset, end: full)) }
    }
    pieces.sort { ($0.first, $0.start, $0.buffer) < ($1.first, $1.start, $1.buffer) }
    func overlap(_ p: Piece, _ q: Piece, at s: Int) -> ExecutorError {
        let (a, b) = p.start <= q.start ? (p, q) : (q, p)
        let an = plan.buffers[a.buffer], bn = plan.buffers[b.buffer]
        return ExecutorError.invalidPlan(reason: "buffers \(a.buffer) '\(an.name)' and \(b.buffer) '\(bn.name)' are both live at step \(s) and overlap in the arena ([\(an.offset!), \(an.offset! + bytes(a.buffer))) and [\(bn.offset!), \(bn.offset! + bytes(b.buffer))))")
    }
    var live: [Piece] = []   // sorted by start, pairwise disjoint
    var next = 0
    while next < pieces.count {
        let s = pieces[next].first
        live.removeAll { $0.last < s }
        while next < pieces.count, pieces[next].first == s {
            let p = pieces[next]
            next += 1
            // First live range starting at or after p (binary search), and the one before it.
            var lo = 0, hi = live.count
            while lo < hi { let mid = (lo + hi) / 2; if live[mid].start < p.start { lo = mid + 1 } else { hi = mid } }
            if lo < live.count, live[lo].start < p.end { throw overlap(p, live[lo], at: s) }
            if lo > 0, live[lo - 1].end > p.start { throw overlap(p, live[lo - 1], at: s) }
            live.insert(p, at: lo)
        }
    }
    // (After the overlap sweep, whose errors say more.) The arena may not be larger than what its buffers reach (rounded to the alignment): a
    // hostile plan cannot make a session allocate gigabytes nothing uses.
    var reach = 0
    for i in plan.buffers.indices where plan.buffers[i].role == .intermediate {
        reach = max(reach, plan.buffers[i].offset! + max(bytes(i), 4))
    }
    let needed = (reach + arenaAlignment - 1) / arenaAlignment * arenaAlignment
    guard arena <= max(needed, arenaAlignment) else {
        throw ExecutorError.invalidPlan(reason: "arena size \(arena) bytes is larger than the \(needed) bytes its buffers reach")
    }
}

/// The im2col workspace (elements) the largest convolution of a validated plan needs: the
/// executor allocates one such scratch buffer (of `T`: 4 bytes an element for Float).
public func workspaceElements(_ plan: Plan) -> Int {
    plan.steps.map { (try? requirements(of: $0, buffers: plan.buffers).workspace) ?? 0 }.max() ?? 0
}

/// The views per face of a step's batched buffers (a test-time-augmentation plan): the views
/// step reads faces (1) and writes V views, the mean step reads V and writes faces; every
/// other step's batched buffers have one count, which the executor multiplies its batch by.
private func checkViews(_ step: Step, buffers: [BufferDesc]) throws {
    func views(_ i: Int) -> Int { buffers[i].views ?? 1 }
    switch step.kernel {
    case .ttaViews(let t):
        try ensure(views(step.inputs[0]) == 1, "reads faces, but its input has \(views(step.inputs[0])) views")
        try ensure(views(step.outputs[0]) == t.views.count, "writes \(t.views.count) views per face into a buffer of \(views(step.outputs[0]))")
    case .ttaMean(_, let v, _):
        try ensure(views(step.inputs[0]) == v, "averages \(v) views per face from a buffer of \(views(step.inputs[0]))")
        try ensure(views(step.outputs[0]) == 1, "writes faces, but its output has \(views(step.outputs[0])) views")
    default:
        let counts = Set((step.inputs + step.outputs).filter { buffers[$0].batched }.map(views))
        try ensure(counts.count <= 1, "mixes buffers of \(counts.sorted()) views per sample")
    }
}

/// The factor a step's batch is of the run's: the views of its batched buffers (1 for the
/// test-time-augmentation steps themselves, which take the face count).
func batchFactor(of step: Step, buffers: [BufferDesc]) -> Int {
    switch step.kernel {
    case .ttaViews, .ttaMean: return 1
    default:
        return (step.outputs + step.inputs).first { buffers[$0].batched }.flatMap { buffers[$0].views } ?? 1
    }
}
