// fergc check-grad: the compiled training step's gradients against float64 finite differences,
// per parameter (Passes/GradientCheck.swift).

import Foundation
import GraphIR
import Passes

enum CheckGradCommand {
    static let spec = CommandSpec(
        name: "check-grad",
        usage: "check-grad MODEL.graph [--weights W.npz|CHECKPOINT] [--layers P1,P2] [--samples N] [--batch B] [--tolerance T] [--json]",
        summary: "Check a model's training gradients against float64 finite differences, per parameter.",
        options: [
            OptionSpec(name: "weights", kind: .value("W"), help: "Weights (.npz or a checkpoint) to check at; default: the model's seeded initial weights."),
            OptionSpec(name: "layers", kind: .value("P1,P2"), help: "Only parameters whose names start with these prefixes (e.g. c1,d1)."),
            OptionSpec(name: "samples", kind: .value("N"), help: "Elements checked per parameter tensor (default 4)."),
            OptionSpec(name: "batch", kind: .value("B"), help: "Faces in the random batch (default 2; batchnorm needs at least 2)."),
            OptionSpec(name: "seed", kind: .value("S"), help: "Seed of the initial weights, the random faces and the dropout masks (default 1)."),
            OptionSpec(name: "tolerance", kind: .value("T"), help: "Fail when a relative error exceeds T (default 1e-4)."),
            OptionSpec(name: "step", kind: .value("H"), help: "The central-difference step (default 1e-6)."),
            OptionSpec(name: "jitter", kind: .value("J"), help: "Move every parameter by a uniform ±J first, off ReLU/max-pool kinks (default 0.05; 0: check at the weights as they are)."),
            OptionSpec(name: "unfused", kind: .flag, help: "Check the step without the fusion pass (tells a fused kernel's error from the rest)."),
            OptionSpec(name: "json", kind: .flag, help: "Print the table as JSON."),
        ],
        details: """
        The model is compiled as for training (training-form, regularize, fuse, autodiff, lowering)
        without the optimizer update, and run in double precision on a seeded random batch with
        the dropout masks held fixed, at the weights (given, or the seeded initial ones) moved by
        a small jitter: batchnorm's beta starts at exactly 0, a ReLU kink for a channel silenced
        by the ReLU before it, where a central difference measures half a one-sided slope. For
        N elements of each trainable parameter, the central difference (L(w+h) - L(w-h)) / 2h
        (h = 1e-6) of the loss (L2 terms included) is compared with the analytic gradient.
        Relative error: |analytic - numeric| / max(|analytic|, |numeric|, floor), the floor being
        the difference's rounding noise (32 x 2.2e-16 x |loss| / h) over the tolerance: about
        1.4e-4 for a loss near 2 at the defaults; errors on smaller gradients are not measurable.

        Kinks: one weight moves every activation after it, and one of the network's ReLU or
        max-pool units can cross its kink inside [w-h, w+h]; the central difference then
        averages two slopes. When it misses, the one-sided differences (L(w+h) - L(w)) / h and
        (L(w) - L(w-h)) / h are tried: if they disagree by more than the tolerance and the
        analytic gradient matches one of them (the slope on the side without the kink), the
        element passes and is counted in the 'kinks' column. When neither matches (kinks on both
        sides, or many: a first-layer weight moves thousands of units), the element is measured
        again at h/10 and h/100 and counted there too. A wrong gradient cannot pass so: where the
        loss is smooth the differences agree with each other at every step. Exit status 1 when
        any element's error exceeds the tolerance.

        EXAMPLES:
          fergc check-grad Models/tiny.graph
          fergc check-grad Models/vgg_tuned.graph --layers block1,dense --samples 2
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else { throw UsageError(message: "expected one model file", command: spec.name) }
        let path = a.positional[0]
        let model = try loadGraph(path)
        var options = GradientCheckOptions()
        options.samples = try a.int("samples", spec.name, range: 1...1000) ?? options.samples
        options.batch = try a.int("batch", spec.name, range: 2...256) ?? options.batch
        if let s = a.value("seed") {
            guard let v = UInt64(s) else { throw UsageError(message: "--seed expects a non-negative integer, got '\(s)'", command: spec.name) }
            options.seed = v
        }
        options.fuse = !a.flag("unfused")
        if let j = a.value("jitter") {
            guard let v = Double(j), v >= 0, v.isFinite else { throw UsageError(message: "--jitter expects a non-negative number, got '\(j)'", command: spec.name) }
            options.jitter = v
        }
        if let h = a.value("step") {
            guard let v = Double(h), v > 0, v.isFinite else { throw UsageError(message: "--step expects a positive number, got '\(h)'", command: spec.name) }
            options.step = v
        }
        options.layers = a.value("layers").map { $0.split(separator: ",").map(String.init) } ?? []
        if let w = a.value("weights") { options.weights = try loadWeights(w, for: model) }
        let tolerance = try a.value("tolerance").map { s -> Double in
            guard let t = Double(s), t > 0, t.isFinite else { throw UsageError(message: "--tolerance expects a positive number, got '\(s)'", command: spec.name) }
            return t
        } ?? options.tolerance
        options.tolerance = tolerance
        let start = Date()
        let rows: [GradientCheckRow]
        do { rows = try checkGradients(model, options) } catch { throw CLIError("\(path): \(error)") }
        let seconds = Date().timeIntervalSince(start)
        let worst = rows.map(\.maxRelativeError).max() ?? 0
        let passed = worst <= tolerance
        if a.flag("json") {
            Console.out(try jsonText([
                "model": model.name, "batch": options.batch, "samples": options.samples, "tolerance": tolerance,
                "passed": passed, "max_relative_error": worst, "seconds": seconds,
                "parameters": rows.map { ["name": $0.name, "elements": $0.elements, "checked": $0.checked,
                                          "max_relative_error": $0.maxRelativeError, "max_absolute_error": $0.maxAbsoluteError,
                                          "worst_index": $0.worstIndex, "analytic": $0.analytic, "numeric": $0.numeric,
                                          "difference": $0.difference, "kinks": $0.kinks] as [String: Any] },
            ]))
        } else {
            let width = max(rows.map(\.name.count).max() ?? 9, 9)
            var s = "\(model.name): gradients of \(rows.count) parameter tensors vs float64 central differences (batch \(options.batch), \(options.samples) elements each)\n"
            s += "parameter".padding(toLength: width, withPad: " ", startingAt: 0) + "  elements  max rel err  max abs err    analytic     numeric  kinks\n"
            for r in rows {
                s += r.name.padding(toLength: width, withPad: " ", startingAt: 0)
                s += String(format: " %9d  %11.2e  %11.2e  %10.3e  %10.3e  %5d%@\n", r.elements, r.maxRelativeError, r.maxAbsoluteError,
                            r.analytic, r.numeric, r.kinks, r.maxRelativeError > tolerance ? "  FAIL" : "")
            }
            let kinks = rows.reduce(0) { $0 + $1.kinks }
            s += String(format: "%@: max relative error %.2e (tolerance %.0e), %.1f s", passed ? "passed" : "FAILED", worst, tolerance, seconds)
            s += kinks == 0 ? "\n" : "; \(kinks) element\(kinks == 1 ? "" : "s") near a kink, measured by a one-sided difference or a smaller step\n"
            Console.out(s)
        }
        if !passed { throw CLIError("\(path): a gradient differs from its finite difference by more than \(tolerance) (relative)") }
    }
}
