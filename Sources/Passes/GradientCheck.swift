// `fergc check-grad`: the compiled training step's gradients against central finite
// differences of its loss, in float64, per parameter tensor.
//
// The step is compiled as for training (training-form, regularize, fuse, autodiff, lowering),
// without the optimizer update: its outputs are the loss (with the L2 terms) and the gradient
// of every trainable parameter. It runs in double precision on a seeded random batch of faces
// with dropout masks held fixed (the same seed and run counter on every run), so the loss is a
// deterministic smooth function of each weight away from ReLU/max-pool kinks. For a few
// elements of each parameter, (L(w + h) - L(w - h)) / 2h is compared with the analytic
// gradient; the table reports the worst relative error per tensor.
//
// Kinks: a change of one weight by h moves every activation downstream of it, and in a
// network of 10^5 ReLU units one of them can cross zero inside [w - h, w + h] (roughly one
// element in ten for a first-layer weight of `small`). The central difference then averages
// two slopes and matches neither. When it misses the analytic gradient, the one-sided
// differences (L(w + h) - L(w)) / h and (L(w) - L(w - h)) / h are compared too: if they
// disagree with each other by more than the tolerance (the kink lies in one of the two
// intervals) and the analytic gradient matches one of them (the slope on the kink-free side,
// which is the slope at w), the element passes and is counted as a kink. When neither matches
// (kinks on both sides, or many small ones: a first-layer weight moves thousands of units at
// once), the element is measured again with a tenth of the step, up to `kinkRetries` times,
// the floor growing with the noise. A wrong gradient of a smooth loss cannot pass so: there
// the central difference misses it at every step, and the one-sided ones agree with the
// central one (to h |L''|).

import GraphIR
import Runtime

public struct GradientCheckOptions: Sendable {
    /// Faces in the probe batch (at least 2: batchnorm normalises over it).
    public var batch = 2
    /// Elements checked per parameter tensor (spread over the tensor).
    public var samples = 4
    /// Central-difference step.
    public var step = 1e-6
    /// Seed of the initial weights (when none are given), the inputs and the dropout masks.
    public var seed: UInt64 = 1
    /// Only parameters whose name starts with one of these (all when empty).
    public var layers: [String] = []
    /// Parameter and state values by name; nil: initial values drawn with `seed`.
    public var weights: [String: [Float]]?
    /// The relative error above which an element fails (and above which two one-sided
    /// differences count as disagreeing: a kink).
    public var tolerance = 1e-4
    /// A relative error is |analytic - numeric| / max(|analytic|, |numeric|, floor), where the
    /// floor is at least the central difference's rounding noise divided by the tolerance:
    /// below it a relative error of `tolerance` is not measurable (see `lossNoiseUlps`).
    public var floor = 1e-7
    /// Run the fusion pass, as training does (false: the unfused step, to tell a fused
    /// kernel's error from the rest).
    public var fuse = true
    /// Parameters (not state) move by a uniform ±jitter before the check, off the kinks where a
    /// starting point can sit exactly: batchnorm's beta starts at 0, and for a channel the ReLU
    /// before it silenced on the batch the output is then exactly 0, ReLU's kink (and max-pool's
    /// ties with dropped zeros); a central difference there measures half a one-sided slope.
    public var jitter = 0.05
    /// How many times an element that misses is measured again with a tenth of the step
    /// (kinks on both sides of w, or many: see the file comment).
    public var kinkRetries = 2
    public init() {}
}

/// One parameter tensor's check.
public struct GradientCheckRow: Sendable {
    public var name: String
    public var elements: Int
    public var checked: Int
    public var maxRelativeError: Double
    public var maxAbsoluteError: Double
    /// The element with the largest relative error, and its two gradients.
    public var worstIndex: Int
    public var analytic: Double
    public var numeric: Double
    /// Which difference `numeric` is (`GradientElementMeasurement.difference`).
    public var difference: String
    /// Elements whose central difference at the nominal step missed and that another
    /// measurement matched: a one-sided difference or a smaller step (see the file comment).
    public var kinks: Int
}

/// The loss's rounding noise assumed for the floor, in units of eps |L|: the loss sums
/// thousands of terms in float64 (the batch's cross-entropies, every weight's L2 term), and the
/// two evaluations of a difference round differently. Measured: up to 3 units on `small`'s
/// zero gradients (a bias before batchnorm); 32 leaves a margin of ten.
public let lossNoiseUlps = 32.0

/// The magnitude below which a gradient is compared against the floor rather than itself:
/// the central difference's noise (`lossNoiseUlps` x eps x |L| / h) over the tolerance. An
/// error below the noise cannot be measured (tiny gradients of wide dense layers otherwise
/// "fail" on it: fc6.weight of vgg_tuned, |g| = 3.5e-8, |error| = 8.7e-11; a bias before
/// batchnorm, whose gradient is exactly 0, measures as 1e-9 or so). Per step: a smaller step
/// has more noise.
public func gradientCheckFloor(loss: Double, step: Double, tolerance: Double, minimum: Double) -> Double {
    max(minimum, lossNoiseUlps * Double.ulpOfOne * max(abs(loss), 1) / step / tolerance)
}

public struct GradientCheckError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Checks the gradients of `model`'s compiled training step (see the file comment).
public func checkGradients(_ model: Graph, _ options: GradientCheckOptions = GradientCheckOptions()) throws -> [GradientCheckRow] {
    guard let training = model.training else {
        throw GradientCheckError(message: "'\(model.name)' has no train { } section (loss, optimizer)")
    }
    guard (2...256).contains(options.batch) else { throw GradientCheckError(message: "batch \(options.batch) is outside 2...256") }
    guard options.samples >= 1, options.step > 0, options.step.isFinite else {
        throw GradientCheckError(message: "samples must be at least 1 and the step positive")
    }
    guard options.tolerance > 0, options.tolerance.isFinite else {
        throw GradientCheckError(message: "the tolerance must be positive, got \(options.tolerance)")
    }
    var g = try trainingForm(model)
    g = try regularize(g)
    if options.fuse { g = try fuse(g, mode: .training) }
    g = try autodiff(g)
    let trainable = g.parameters.filter {
        guard case .parameter(let info) = g[$0].kind, info.trainable else { return false }
        let name = g[$0].name
        return options.layers.isEmpty || options.layers.contains { name.hasPrefix($0) }
    }
    guard !trainable.isEmpty else {
        throw GradientCheckError(message: options.layers.isEmpty ? "'\(model.name)' has no trainable parameters"
                                 : "no trainable parameter starts with \(options.layers.joined(separator: ", "))")
    }
    guard let loss = g.id(named: g.training?.loss ?? training.loss) else { throw GradientCheckError(message: "the step has no loss") }
    var outputs = [loss]
    var names: [String] = []
    for p in trainable {
        let name = g[p].name
        guard let grad = g.id(named: gradientName(of: name)) else {
            throw GradientCheckError(message: "autodiff produced no gradient for '\(name)'")
        }
        outputs.append(grad)
        names.append(name)
    }
    g.outputs = outputs
    g = try deadCodeElimination(g)
    let plan = try lowerToPlan(g, maxBatch: options.batch)
    let ex = try Executor<Double>(plan: plan)

    // Weights, batchnorm statistics, inputs.
    let values = options.weights ?? initialWeights(model, seed: options.seed)
    var rng = SplitMix(state: options.seed ^ 0x6772_6164)
    var current: [String: [Double]] = [:]
    for (i, b) in plan.buffers.enumerated() where b.role == .parameter || b.role == .state || b.role == .input {
        let n = b.elementCount(batch: options.batch)
        if b.role == .input {
            if b.elementType == .i32 {
                let classes = 7
                ex.setBuffer(i, ints: (0..<n).map { Int32($0 % classes) })
            } else {
                let scale = training.inputScale
                ex.setBuffer(i, (0..<n).map { _ in Double(Int(rng.next() * 256) % 256) * scale })
            }
            continue
        }
        var v: [Double]
        if let given = values[b.name] {
            guard given.count == n else {
                throw GradientCheckError(message: "weights: '\(b.name)' has \(given.count) values, the model needs \(n)")
            }
            v = given.map(Double.init)
        } else {
            v = [Double](repeating: b.name.hasSuffix("running_var") ? 1 : 0, count: n)
        }
        if b.role == .parameter, options.jitter > 0 {
            for k in v.indices { v[k] += options.jitter * (2 * rng.next() - 1) }
        }
        if let problem = nonFiniteProblem(name: b.name, v.map(Float.init)) { throw GradientCheckError(message: "weights: \(problem)") }
        current[b.name] = v
        ex.setBuffer(i, v)
    }
    ex.seed = options.seed
    func lossValue() throws -> Double {
        ex.runCounter = 0  // the same dropout masks on every run
        try ex.run(batch: options.batch)
        return ex.buffer(plan.outputs[0])[0]
    }
    let base = try lossValue()
    guard base.isFinite else { throw GradientCheckError(message: "the loss is \(base) at the starting point") }
    // One run gives every analytic gradient (the step's outputs); then two runs per element.
    var analyticByName: [String: [Double]] = [:]
    for name in names {
        guard let gradIndex = plan.buffer(named: gradientName(of: name)) else {
            throw GradientCheckError(message: "the step has no buffer '\(gradientName(of: name))'")
        }
        analyticByName[name] = ex.buffer(gradIndex)
    }
    var rows: [GradientCheckRow] = []
    for name in names {
        guard let index = plan.buffer(named: name), var x = current[name] else { continue }
        let analytic = analyticByName[name] ?? []
        let count = x.count
        var row = GradientCheckRow(name: name, elements: count, checked: 0, maxRelativeError: 0, maxAbsoluteError: 0,
                                   worstIndex: 0, analytic: 0, numeric: 0, difference: "central", kinks: 0)
        // One element in each of `samples` equal strata of the tensor (all when it is smaller).
        let n = min(options.samples, count)
        let picks = (0..<n).map { s -> Int in
            let lo = s * count / n, hi = (s + 1) * count / n
            return lo + min(Int(rng.next() * Double(hi - lo)), hi - lo - 1)
        }
        for e in picks {
            let a = analytic[e]
            let saved = x[e]
            let m = try measureGradientElement(analytic: a, loss: base, step: options.step, tolerance: options.tolerance,
                                               minimumFloor: options.floor, retries: options.kinkRetries) { d in
                x[e] = saved + d
                ex.setBuffer(index, x)
                defer { x[e] = saved; ex.setBuffer(index, x) }
                return try lossValue()
            }
            let numeric = m.numeric, relative = m.relative
            if m.nearKink { row.kinks += 1 }
            let absolute = abs(a - numeric)
            row.checked += 1
            row.maxAbsoluteError = max(row.maxAbsoluteError, absolute)
            if relative > row.maxRelativeError || row.checked == 1 {
                row.maxRelativeError = relative
                row.worstIndex = e
                row.analytic = a
                row.numeric = numeric
                row.difference = m.difference
            }
        }
        rows.append(row)
    }
    return rows
}

/// One element's finite-difference measurement (see the file comment).
public struct GradientElementMeasurement: Sendable, Equatable {
    /// The difference the analytic gradient was compared with, and its relative error.
    public var numeric: Double
    public var relative: Double
    /// "central", "forward" or "backward", with ", h = ..." when a smaller step was needed.
    public var difference: String
    /// The step of that difference.
    public var step: Double
    /// The nominal central difference missed and another measurement matched: a kink.
    public var nearKink: Bool
}

/// Measures d loss / dw at one element: `loss(d)` is the loss with the element moved by d,
/// `base` the loss at d = 0. Tries the central difference at `step`; when it misses by more
/// than `tolerance`, the one-sided differences (taken when they disagree with each other and one
/// of them matches), then the same at step / 10, up to `retries` times. When nothing matches,
/// the result is the central difference at the nominal step (what failed).
public func measureGradientElement(analytic a: Double, loss base: Double, step nominal: Double, tolerance: Double,
                                   minimumFloor: Double, retries: Int,
                                   loss: (Double) throws -> Double) rethrows -> GradientElementMeasurement {
    var first: GradientElementMeasurement?
    var step = nominal
    for attempt in 0...max(0, retries) {
        if attempt > 0 { step /= 10 }
        let plus = try loss(step), minus = try loss(-step)
        let floor = gradientCheckFloor(loss: base, step: step, tolerance: tolerance, minimum: minimumFloor)
        func relativeError(_ u: Double, _ v: Double) -> Double { abs(u - v) / max(abs(u), abs(v), floor) }
        let suffix = attempt == 0 ? "" : ", h = \(step)"
        let central = (plus - minus) / (2 * step)
        let centralMeasurement = GradientElementMeasurement(numeric: central, relative: relativeError(a, central),
                                                            difference: "central" + suffix, step: step, nearKink: attempt > 0)
        if first == nil { first = centralMeasurement }
        if centralMeasurement.relative <= tolerance { return centralMeasurement }
        let forward = (plus - base) / step, backward = (base - minus) / step
        if relativeError(forward, backward) > tolerance {
            let forwardError = relativeError(a, forward), backwardError = relativeError(a, backward)
            let (side, error, name) = forwardError <= backwardError ? (forward, forwardError, "forward") : (backward, backwardError, "backward")
            if error <= tolerance {
                return GradientElementMeasurement(numeric: side, relative: error, difference: name + suffix,
                                                  step: step, nearKink: true)
            }
        }
        // Kinks on both sides of w, or many small ones (a first-layer weight moves thousands
        // of units): a tenth of the step (the next attempt) leaves a tenth of them inside it. A
        // wrong gradient of a smooth loss misses at every step.
    }
    // The loop ran at least once (attempt 0), so `first` is set: the nominal central difference.
    return first ?? GradientElementMeasurement(numeric: .nan, relative: .infinity, difference: "central", step: nominal, nearKink: false)
}

/// SplitMix64, for the check's inputs and sample positions.
struct SplitMix {
    var state: UInt64
    mutating func next() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
}
