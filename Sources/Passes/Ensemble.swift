// ensemble: several inference plans merged into one. One image input feeds every member (a
// member whose input scale differs gets a `scale` step first); the members' steps follow one
// another in one schedule; each member's class scores go through a softmax (unless they are
// probabilities already: a member ending in a softmax, a TTA plan, an ensemble), are
// multiplied by the member's weight (weights normalized to sum 1) and added: the output is the
// weighted mean of the members' probabilities, as Keras' `average` of softmax outputs. Buffers
// and parameters are renamed `m<k>.<name>`; the memory planner then runs over the whole
// schedule, so the members share one arena (a member's activations are dead before the next
// member starts). A member's parameter equal in name, shape and value to an earlier member's is
// not stored twice: its steps read the earlier one (the same model compiled for other views or
// another input side, merged into one plan, carries its weights once). A member that is itself
// an ensemble plan (a plan of several view sets, an earlier ensemble) joins as its members, each
// weighted by its weight there times the member's: the mean is the same, and each view set stays
// a member that `fergc ensemble --member` can take out and whose weights can be shared.

import Runtime

public struct EnsembleError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One member: its plan and a label for messages (its file name).
public struct EnsembleMember {
    public var label: String
    public var plan: Plan
    public init(label: String, plan: Plan) {
        self.label = label
        self.plan = plan
    }
}

/// Weights scaled to sum to 1, or nil unless they are finite, non-negative and not all zero.
/// Scaled by the largest first, so that neither 1e308s (whose sum is infinite) nor subnormals
/// (whose products with probabilities underflow) lose the ratios between them.
public func normalizedWeights(_ weights: [Double]) -> [Double]? {
    guard weights.allSatisfy({ $0.isFinite && $0 >= 0 }), let largest = weights.max(), largest > 0 else { return nil }
    let scaled = weights.map { $0 / largest }
    let total = scaled.reduce(0, +)
    return scaled.map { $0 / total }
}

/// The members merged into one plan, weighted by `given` (default: equal). With `flatten`, a
/// member that is an ensemble plan joins as its members (each taken out as `ensembleMember`
/// does, weighted by its weight there times the member's); one whose members cannot be taken
/// out (an ensemble nested by an older fergc) joins whole.
public func ensemblePlans(_ members: [EnsembleMember], weights given: [Double]? = nil, name: String = "ensemble",
                          flatten: Bool = true) throws -> Plan {
    guard members.count >= 2 else { throw EnsembleError("an ensemble needs at least two plans, got \(members.count)") }
    let weights = given ?? [Double](repeating: 1, count: members.count)
    guard weights.count == members.count else {
        throw EnsembleError("\(weights.count) weights for \(members.count) plans")
    }
    guard let outer = normalizedWeights(weights) else {
        throw EnsembleError("weights must be non-negative numbers with a positive sum, got \(weights)")
    }
    guard flatten else { return try merged(members, normalized: outer, name: name) }
    let (leaves, products) = flattened(members, weights: outer)
    guard let normalized = normalizedWeights(products) else {
        throw EnsembleError("the members' weights times their plans' own weights are all zero or out of range: \(products)")
    }
    return try merged(leaves, normalized: normalized, name: name)
}

/// Each member that is an ensemble plan replaced by its members, their weights there times its
/// own; the others as they are.
func flattened(_ members: [EnsembleMember], weights: [Double]) -> (members: [EnsembleMember], weights: [Double]) {
    var out: [EnsembleMember] = [], products: [Double] = []
    for (m, weight) in zip(members, weights) {
        guard let info = m.plan.metadata.ensemble, !info.members.isEmpty, m.plan.metadata.mode == "inference",
              let inner = try? (1...info.members.count).map({ try ensembleMember(m.plan, number: $0) }) else {
            out.append(m)
            products.append(weight)
            continue
        }
        for (k, p) in inner.enumerated() {
            out.append(EnsembleMember(label: "\(m.label) (its member \(k + 1))", plan: p))
            products.append(weight * info.members[k].weight)
        }
    }
    return (out, products)
}

/// The members merged, with weights already normalized.
private func merged(_ members: [EnsembleMember], normalized: [Double], name: String) throws -> Plan {

    // What every member must agree on: the image shape and the classes.
    var images: [Int] = [], outputs: [Int] = [], probabilities: [Bool] = []
    for m in members {
        let p = m.plan
        guard p.metadata.mode == "inference" else {
            throw EnsembleError("\(m.label): a \(p.metadata.mode) plan; ensembles take inference plans (fergc compile without --train)")
        }
        // Inputs no step reads (an inference plan keeps its unused labels) are left out.
        let read = Set(p.steps.flatMap(\.inputs))
        let inputs = p.buffers.indices.filter { p.buffers[$0].role == .input && read.contains($0) }
        guard inputs.count == 1, p.buffers[inputs[0]].elementType == .f32, p.buffers[inputs[0]].batched else {
            throw EnsembleError("\(m.label): expected one batched f32 image input, the plan has \(inputs.map { p.buffers[$0].name })")
        }
        guard let out = p.outputs.first, p.buffers[out].batched, p.buffers[out].perSample.count == 1 else {
            throw EnsembleError("\(m.label): the first output is not a batched vector of class scores")
        }
        images.append(inputs[0])
        outputs.append(out)
        probabilities.append(p.outputIsProbabilities)
    }
    let first = members[0].plan
    let shape = first.buffers[images[0]].perSample
    let classes = first.buffers[outputs[0]].perSample[0]
    for (k, m) in members.enumerated().dropFirst() {
        let s = m.plan.buffers[images[k]].perSample
        guard s == shape else {
            throw EnsembleError("input shapes differ: \(members[0].label) takes \(shape), \(m.label) takes \(s)")
        }
        let c = m.plan.buffers[outputs[k]].perSample[0]
        guard c == classes else {
            throw EnsembleError("class counts differ: \(members[0].label) has \(classes), \(m.label) has \(c)")
        }
        guard m.plan.metadata.classNames == first.metadata.classNames else {
            throw EnsembleError("class names differ: \(members[0].label) has \(first.metadata.classNames), \(m.label) has \(m.plan.metadata.classNames)")
        }
    }

    // The common input takes pixels times the first member's scale.
    let inputScale = first.metadata.inputScale
    var buffers = [BufferDesc(name: first.buffers[images[0]].name, perSample: shape, batched: true, role: .input)]
    var steps: [Step] = []
    var parameters: [String: [Float]] = [:]
    var winogradErrors: [String: Double] = [:]
    var scaled: [Int] = []
    func intermediate(_ name: String, _ perSample: [Int]) -> Int {
        buffers.append(BufferDesc(name: name, perSample: perSample, batched: true, role: .intermediate))
        return buffers.count - 1
    }
    // The earlier members' parameters, by name (without the prefix) and a hash of shape and
    // values: a later member's tensor of the same name, shape and values is shared. One to one,
    // so a member taken out again has the tensors it had; never two of one member's own.
    var stored: [Int: [(index: Int, name: String)]] = [:]
    var earlier: [Int: [(index: Int, name: String)]] = [:]
    func sameStored(_ b: BufferDesc, _ values: [Float]?) -> Int? {
        guard let values else { return nil }
        let key = storedKey(b.name, b.perSample, values)
        return earlier[key]?.first { e in
            e.name == b.name && buffers[e.index].perSample == b.perSample
                && parameters[buffers[e.index].name].map(bitwiseEqual(values)) == true
        }?.index
    }
    for (k, m) in members.enumerated() {
        let p = m.plan, prefix = "m\(k + 1)."
        var map = [Int](repeating: -1, count: p.buffers.count)
        let memberScale = p.metadata.inputScale
        if memberScale == inputScale {
            map[images[k]] = 0
        } else {
            map[images[k]] = intermediate(prefix + p.buffers[images[k]].name, shape)
            steps.append(Step(name: prefix + "input_scale", kernel: .scale(factor: Float(memberScale / inputScale)),
                              inputs: [0], outputs: [map[images[k]]]))
        }
        for (i, b) in p.buffers.enumerated() where i != images[k] && b.role != .input {
            let persistent = b.role == .parameter || b.role == .state
            if persistent, let shared = sameStored(b, p.parameters[b.name]) {
                map[i] = shared
                continue
            }
            var d = b
            d.name = prefix + b.name
            d.offset = nil
            buffers.append(d)
            map[i] = buffers.count - 1
            if persistent, let v = p.parameters[b.name] {
                parameters[d.name] = v
                stored[storedKey(b.name, b.perSample, v), default: []].append((map[i], b.name))
            }
        }
        earlier.merge(stored) { $0 + $1 }
        stored = [:]
        for s in p.steps {
            steps.append(Step(name: prefix + s.name, kernel: s.kernel, inputs: s.inputs.map { map[$0] },
                              outputs: s.outputs.map { map[$0] }, algorithm: s.algorithm))
        }
        for (n, e) in p.metadata.winogradErrors ?? [:] { winogradErrors[prefix + n] = e }
        var probs = map[outputs[k]]
        if !probabilities[k] {
            let softmax = intermediate(prefix + "probabilities", [classes])
            steps.append(Step(name: prefix + "softmax", kernel: .softmax(classes: classes), inputs: [probs], outputs: [softmax]))
            probs = softmax
        }
        let weighted = intermediate(prefix + "weighted", [classes])
        steps.append(Step(name: prefix + "weight", kernel: .scale(factor: Float(normalized[k])), inputs: [probs], outputs: [weighted]))
        scaled.append(weighted)
    }
    let out = intermediate("probabilities", [classes])
    steps.append(Step(name: "ensemble_mean", kernel: .add, inputs: scaled, outputs: [out]))

    var plan = Plan(name: name, buffers: buffers, steps: steps, maxBatch: members.map(\.plan.maxBatch).min()!, outputs: [out])
    plan.parameters = parameters
    var meta = PlanMetadata()
    meta.modelName = name
    meta.inputShape = first.metadata.inputShape.isEmpty ? shape : first.metadata.inputShape
    meta.inputScale = inputScale
    meta.classNames = first.metadata.classNames
    meta.passes = ["ensemble"]
    meta.mode = "inference"
    meta.producer = "fergc \(runtimeVersion)"
    meta.winogradErrors = winogradErrors.isEmpty ? nil : winogradErrors
    // Members stored as half keep the ensemble half (their values are already rounded).
    if members.allSatisfy({ $0.plan.metadata.weightsDType == "f16" }) { meta.weightsDType = "f16" }
    // Members that all ask for bf16 convolutions make a bf16 ensemble (one of them in f32: f32).
    if members.allSatisfy({ $0.plan.metadata.computeDType == "bf16" }) { meta.computeDType = "bf16" }
    meta.ensemble = EnsembleInfo(members: members.enumerated().map { k, m in
        EnsembleInfo.Member(name: m.plan.metadata.modelName, prefix: "m\(k + 1).", weight: normalized[k],
                            sourceHash: m.plan.metadata.sourceHash, training: m.plan.metadata.training,
                            passes: m.plan.metadata.passes, tta: m.plan.metadata.tta)
    })
    plan.metadata = meta
    return plannedWithWorkspace(plan, threads: members.compactMap { $0.plan.memory?.workspaceThreads }.max())
}

/// A hash of a parameter's name, shape and bit patterns (equal tensors, equal keys).
private func storedKey(_ name: String, _ shape: [Int], _ values: [Float]) -> Int {
    var h = Hasher()
    h.combine(name)
    h.combine(shape)
    for v in values { h.combine(v.bitPattern) }
    return h.finalize()
}

/// Whether two tensors hold the same bit patterns (so -0 and 0 differ, and a NaN equals itself).
private func bitwiseEqual(_ a: [Float]) -> ([Float]) -> Bool {
    { b in a.count == b.count && a.indices.allSatisfy { a[$0].bitPattern == b[$0].bitPattern } }
}

/// The plan with its arena planned and the executor's workspace counted for `threads` threads
/// (the compiling machine's, as the inputs recorded them; this machine's cores if they did not).
func plannedWithWorkspace(_ plan: Plan, threads recorded: Int?) -> Plan {
    var planned = planMemory(plan)
    let threads = recorded ?? onlineProcessors()
    let workspace = executorWorkspaceBytes(planned, threads: threads)
    planned.memory?.workspaceBytes = workspace
    planned.memory?.workspaceThreads = threads
    return planned
}

/// Member `number` (1-based, as `inspect` lists them) of an ensemble plan, taken out as an
/// inference plan of its own: its steps, buffers and parameters without the `m<k>.` prefix,
/// the ensemble's input (and, for a member whose input scale differed from the first's, the
/// scale step the ensemble gave it, so that it computes exactly what it computed inside), and
/// as output what entered the mean before its weight: the member's own class scores (logits,
/// or a TTA plan's or an inner ensemble's probabilities). It runs as it ran inside the
/// ensemble: the ensemble's compute type, its weights' values. What the ensemble does not
/// record of the original plan (the passes that made it; its TTA description in ensembles
/// merged before `tta` was kept per member) is not restored.
public func ensembleMember(_ e: Plan, number: Int) throws -> Plan {
    guard let info = e.metadata.ensemble else {
        throw EnsembleError("'\(e.metadata.modelName)' is not an ensemble plan (fergc ensemble): it has no members to take out")
    }
    guard !info.members.isEmpty else {
        throw EnsembleError("'\(e.metadata.modelName)' says it is an ensemble but lists no members: the file was not written by fergc ensemble")
    }
    guard number >= 1, number <= info.members.count else {
        throw EnsembleError("member \(number) does not exist: the ensemble has members 1-\(info.members.count)")
    }
    let member = info.members[number - 1], prefix = member.prefix
    func unprefixed(_ name: String) -> String { name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name }
    let own = e.steps.filter { $0.name.hasPrefix(prefix) }
    guard let weight = own.last, weight.name == prefix + "weight", weight.inputs.count == 1 else {
        throw EnsembleError("member \(number) ('\(member.name)'): its steps do not end in the ensemble's '\(prefix)weight' step; the plan was not written by fergc ensemble")
    }
    // The member's class scores: what its softmax (added by the ensemble for a member that gave
    // logits) read, or what its weight read.
    var body = Array(own.dropLast())
    var scores = weight.inputs[0]
    if let last = body.last, last.name == prefix + "softmax", case .softmax = last.kernel {
        scores = last.inputs[0]
        body.removeLast()
    }
    guard !body.isEmpty else { throw EnsembleError("member \(number) ('\(member.name)') has no steps of its own") }
    // A member that was itself an ensemble ends in its own mean, whose members the outer plan
    // does not describe: take the inner ensemble's members out of the file it came from.
    if let writer = body.last(where: { $0.outputs.contains(scores) }), writer.name == prefix + "ensemble_mean" {
        throw EnsembleError("member \(number) ('\(member.name)') is itself an ensemble; the plan does not describe its members, so it cannot be taken out")
    }

    // The buffers the member's steps touch, in the ensemble's order; the input first.
    let input = e.buffers.indices.first { e.buffers[$0].role == .input } ?? 0
    var used = Set(body.flatMap { $0.inputs + $0.outputs })
    used.insert(scores)
    var map = [Int](repeating: -1, count: e.buffers.count)
    var buffers: [BufferDesc] = []
    var names = Set<String>()
    for i in [input] + e.buffers.indices.filter({ $0 != input && used.contains($0) }) {
        var d = e.buffers[i]
        // Without its prefix, unless that name is taken (the member's scaled input 'm2.x'
        // beside the ensemble's input 'x' keeps its prefix). A parameter shared with an earlier
        // member carries that member's prefix, which goes too.
        var bare = unprefixed(d.name)
        if bare == d.name, d.role == .parameter || d.role == .state,
           let owner = info.members.first(where: { d.name.hasPrefix($0.prefix) }) {
            bare = String(d.name.dropFirst(owner.prefix.count))
        }
        if !names.contains(bare) { d.name = bare }
        names.insert(d.name)
        d.offset = nil
        map[i] = buffers.count
        buffers.append(d)
    }
    let steps = body.map {
        Step(name: unprefixed($0.name), kernel: $0.kernel, inputs: $0.inputs.map { map[$0] }, outputs: $0.outputs.map { map[$0] }, algorithm: $0.algorithm)
    }
    var plan = Plan(name: member.name, buffers: buffers, steps: steps, maxBatch: e.maxBatch, outputs: [map[scores]])
    for i in e.buffers.indices where map[i] >= 0 {
        if let v = e.parameters[e.buffers[i].name] { plan.parameters[buffers[map[i]].name] = v }
    }
    var meta = PlanMetadata()
    meta.modelName = member.name
    meta.sourceHash = member.sourceHash
    meta.training = member.training
    meta.inputShape = e.metadata.inputShape
    meta.inputScale = e.metadata.inputScale
    meta.classNames = e.metadata.classNames
    meta.passes = (member.passes ?? []) + ["ensemble-member"]
    meta.tta = member.tta
    meta.mode = "inference"
    meta.producer = "fergc \(runtimeVersion)"
    let errors = (e.metadata.winogradErrors ?? [:]).filter { $0.key.hasPrefix(prefix) }
    meta.winogradErrors = errors.isEmpty ? nil : Dictionary(uniqueKeysWithValues: errors.map { (unprefixed($0.key), $0.value) })
    meta.weightsDType = e.metadata.weightsDType
    meta.computeDType = e.metadata.computeDType
    plan.metadata = meta
    return plannedWithWorkspace(plan, threads: e.memory?.workspaceThreads)
}
