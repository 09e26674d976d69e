// tta: wraps an inference plan in test-time augmentation. The new plan takes faces
// [C, F, F] (F = 48 for FER2013) as its image input `x`; its first step writes each face's
// views (crops of the model's input side S, mirrored or not) as one batch of n*V samples, the
// model's steps run on that batch unchanged (their batched buffers get `views` = V, so one
// arena sized for maxBatch faces holds them), and a last step averages the class
// probabilities over each face's views into the plan's one output, `probabilities` [K]. Steps
// and buffers the first output does not need (a loss and its labels) are dropped; the memory
// is planned again.
//
//   flip       S = F: the face and its mirror image (2 views)
//   center     S < F: the centre crop (1 view): a model trained on crops, fed whole faces
//   center_flip S < F: the centre crop and its mirror image (2)
//   fivecrop   S < F: the four corner crops and the centre crop (5)
//   tencrop    S < F: the five crops and their mirror images (10)

import Runtime

public enum TTAKind: String, CaseIterable, Sendable {
    case flip, center, centerFlip = "center_flip", fivecrop, tencrop

    /// The views of a face of side `face` for a model whose input side is `side`.
    public func views(face: Int, side: Int) throws -> [TTAView] {
        let m = face - side, c = m / 2
        switch self {
        case .flip:
            guard m == 0 else {
                throw PassError(pass: "tta", message: "--tta flip mirrors whole faces; this model takes \(side)x\(side) inputs: use center_flip, fivecrop or tencrop, which crop the \(face)x\(face) face")
            }
            return [TTAView(row: 0, col: 0, flip: false), TTAView(row: 0, col: 0, flip: true)]
        case .center, .centerFlip, .fivecrop, .tencrop:
            guard m > 0 else {
                throw PassError(pass: "tta", message: "--tta \(rawValue) crops the \(face)x\(face) face to the model's input, but the model takes \(side)x\(side) inputs, the whole face: use --tta flip")
            }
            let centre = TTAView(row: c, col: c, flip: false)
            if self == .center { return [centre] }
            if self == .centerFlip { return [centre, TTAView(row: c, col: c, flip: true)] }
            let five = [TTAView(row: 0, col: 0, flip: false), TTAView(row: 0, col: m, flip: false),
                        TTAView(row: m, col: 0, flip: false), TTAView(row: m, col: m, flip: false), centre]
            if self == .fivecrop { return five }
            return five + five.map { TTAView(row: $0.row, col: $0.col, flip: true) }
        }
    }
}

/// The inference plan `plan` (image input `x` [C, S, S], class scores as its first output)
/// with test-time augmentation `kind` over faces of side `face`.
public func applyTTA(_ plan: Plan, kind: TTAKind, face: Int = 48) throws -> Plan {
    guard plan.metadata.mode == "inference" else {
        throw PassError(pass: "tta", message: "test-time augmentation needs an inference plan, not a \(plan.metadata.mode) plan")
    }
    guard let xIndex = plan.buffer(named: "x"), plan.buffers[xIndex].role == .input, plan.buffers[xIndex].batched,
          plan.buffers[xIndex].perSample.count == 3, plan.buffers[xIndex].perSample[1] == plan.buffers[xIndex].perSample[2] else {
        throw PassError(pass: "tta", message: "the plan needs a square image input 'x' [C, S, S]")
    }
    guard !plan.buffers.contains(where: { $0.views != nil }) else {
        throw PassError(pass: "tta", message: "the plan already has test-time augmentation")
    }
    let shape = plan.buffers[xIndex].perSample, side = shape[1]
    guard side <= face else { throw PassError(pass: "tta", message: "the model's input (\(side)x\(side)) is larger than the face (\(face)x\(face))") }
    guard let scores = plan.outputs.first, plan.buffers[scores].batched, plan.buffers[scores].perSample.count == 1 else {
        throw PassError(pass: "tta", message: "the plan's first output is not a batched vector of class scores")
    }
    let views = try kind.views(face: face, side: side)
    let k = plan.buffers[scores].perSample[0]

    // Keep what the scores need.
    var needed: Set<Int> = [scores]
    var keep = [Bool](repeating: false, count: plan.steps.count)
    for s in plan.steps.indices.reversed() where plan.steps[s].outputs.contains(where: needed.contains) {
        keep[s] = true
        needed.formUnion(plan.steps[s].inputs)
    }
    needed.insert(xIndex)
    let kept = plan.buffers.indices.filter(needed.contains)
    var newIndex = [Int: Int]()
    var buffers: [BufferDesc] = []
    for i in kept {
        var b = plan.buffers[i]
        b.offset = nil
        if b.batched { b.views = views.count }
        if i == xIndex {
            b.name = "tta.views"
            b.role = .intermediate
        }
        newIndex[i] = buffers.count
        buffers.append(b)
    }
    let faces = buffers.count
    buffers.append(BufferDesc(name: "x", perSample: [shape[0], face, face], batched: true, role: .input))
    let probabilities = buffers.count
    buffers.append(BufferDesc(name: "probabilities", perSample: [k], batched: true, role: .intermediate))

    let isSoftmax: Bool
    if let w = plan.steps.lastIndex(where: { $0.outputs.contains(scores) }), case .softmax = plan.steps[w].kernel { isSoftmax = true } else { isSoftmax = false }
    var steps = [Step(name: "tta.views", kernel: .ttaViews(TTAViews(channels: shape[0], faceSide: face, side: side, views: views)),
                      inputs: [faces], outputs: [newIndex[xIndex]!])]
    for (s, step) in plan.steps.enumerated() where keep[s] {
        var st = step
        st.inputs = step.inputs.map { newIndex[$0]! }
        st.outputs = step.outputs.map { newIndex[$0]! }
        steps.append(st)
    }
    steps.append(Step(name: "tta.mean", kernel: .ttaMean(classes: k, views: views.count, probabilities: isSoftmax),
                      inputs: [newIndex[scores]!], outputs: [probabilities]))

    var out = Plan(name: plan.name, buffers: buffers, steps: steps, maxBatch: plan.maxBatch, outputs: [probabilities])
    out.metadata = plan.metadata
    out.metadata.inputShape = [shape[0], face, face]
    out.metadata.tta = "\(kind.rawValue): \(views.count) view\(views.count == 1 ? "" : "s") of \(side)x\(side) from each \(face)x\(face) face, mean softmax"
    out.metadata.passes.append("tta")
    let names = Set(buffers.filter { $0.role == .parameter || $0.role == .state }.map(\.name))
    out.parameters = plan.parameters.filter { names.contains($0.key) }
    return planMemory(out)
}
