// Liveness of a plan's intermediate buffers on its linear step order. The memory planner uses
// it to place buffers, the validator to check a placement, and the executor to know which
// buffers die after a step; all three use these functions so that they cannot disagree.
//
// A buffer's lifetime is the closed range of steps during which its memory holds a value
// someone will read: from the step that first writes it to the last step that reads it. A
// step's inputs and outputs are live at the same time during the step, so they get distinct
// memory, except for the one hand-over `inPlaceSource` allows. Inputs a kernel uses for their
// shape only (see `StepRequirements.shapeOnly`) are not reads. Plan outputs are read by the
// caller after the last step, so they live to the end. An intermediate read before any step
// writes it (only a malformed or hand-made plan does that) lives through the whole plan, so
// no other buffer ever shares its memory.

/// Bytes every arena offset and every placed buffer size is a multiple of.
public let arenaAlignment = 64

/// The arena bytes a buffer takes at batch n: its size rounded up to `arenaAlignment`, and at
/// least one alignment unit, so that every buffer has an address of its own.
public func arenaSize(_ b: BufferDesc, batch n: Int) -> Int {
    let bytes = max(b.byteCount(batch: n), 1)
    return (bytes + arenaAlignment - 1) / arenaAlignment * arenaAlignment
}

/// The buffers step `step` reads (inputs used for their shape only excluded).
func readBuffers(of step: Step, buffers: [BufferDesc]) -> [Int] {
    let shapeOnly = (try? requirements(of: step, buffers: buffers))?.shapeOnly ?? []
    return step.inputs.enumerated().filter { !shapeOnly.contains($0.offset) }.map(\.element)
}

/// For each buffer, the steps during which an intermediate's memory must hold its value
/// (inclusive); nil for buffers that are not intermediates and for intermediates no step and
/// no plan output touches. Expects a plan whose indices are in range (a validated plan).
public func intermediateLifetimes(_ plan: Plan) -> [ClosedRange<Int>?] {
    let count = plan.buffers.count
    var firstWrite = [Int?](repeating: nil, count: count)
    var firstRead = [Int?](repeating: nil, count: count)
    var lastUse = [Int?](repeating: nil, count: count)
    for (s, step) in plan.steps.enumerated() {
        for b in readBuffers(of: step, buffers: plan.buffers) {
            if firstRead[b] == nil { firstRead[b] = s }
            lastUse[b] = s
        }
        for b in step.outputs {
            if firstWrite[b] == nil { firstWrite[b] = s }
            lastUse[b] = s
        }
    }
    let end = max(plan.steps.count - 1, 0)
    for o in plan.outputs {
        if firstRead[o] == nil { firstRead[o] = plan.steps.count }
        lastUse[o] = end
    }
    return plan.buffers.indices.map { b in
        guard plan.buffers[b].role == .intermediate, let last = lastUse[b] else { return nil }
        // Read before written (or in the same step, which reads first): live throughout.
        if let r = firstRead[b], firstWrite[b].map({ r <= $0 }) ?? true { return 0...end }
        return firstWrite[b]!...last
    }
}

/// Whether step `step`'s kernel may write its first output over an input.
public func mayRunInPlace(_ step: Step, buffers: [BufferDesc]) -> Bool {
    (try? requirements(of: step, buffers: buffers))?.inPlace ?? false
}

/// The intermediate whose memory the first output of step `s` may take over in place, if
/// any: the step's kernel may run in place, its first input is an intermediate of the same
/// element type and size as its first output (or larger, for a kernel that shrinks in place:
/// the output then takes the input's first bytes), not a plan output, and dies at this step
/// (read by no later step), while the first output is an intermediate first written here.
/// Only the first input is considered: every in-place kernel is safe with it (some, batchnorm
/// for instance, would not be with another input).
public func inPlaceSource(_ plan: Plan, step s: Int, lifetimes: [ClosedRange<Int>?]) -> Int? {
    let step = plan.steps[s]
    guard let x = step.inputs.first, let y = step.outputs.first, x != y,
          !step.outputs.contains(x), !plan.outputs.contains(x),
          let lx = lifetimes[x], let ly = lifetimes[y], lx.upperBound == s, lx.lowerBound < s,
          ly.lowerBound == s,
          plan.buffers[x].elementType == plan.buffers[y].elementType,
          let req = try? requirements(of: step, buffers: plan.buffers), req.inPlace
    else { return nil }
    let bx = plan.buffers[x], by = plan.buffers[y], n = plan.maxBatch
    let same = arenaSize(bx, batch: n) == arenaSize(by, batch: n) && bx.elementCount(batch: n) == by.elementCount(batch: n)
    let smaller = req.shrinksInPlace && by.elementCount(batch: n) <= bx.elementCount(batch: n) && bx.batched == by.batched
    return same || smaller ? x : nil
}
