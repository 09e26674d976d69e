// fergc inspect: what a .plan file holds — model, format and producer, input, classes, passes,
// probe errors, memory, buffers, steps, parameters and the weights' SHA-256 — without running it.

import Foundation
import Passes
import Runtime

enum InspectCommand {
    static let spec = CommandSpec(
        name: "inspect",
        usage: "inspect M.plan [--json]",
        summary: "Describe a compiled .plan file: model, format, input, classes, memory, weights hash.",
        options: [
            OptionSpec(name: "json", kind: .flag, help: "Print as JSON (keys include format_version, input_shape, classes, weights_sha256)."),
        ],
        details: """
        The file is fully checked first (magic, version, CRC of every section, plan validation),
        so inspect is also the way to tell whether a .plan file is intact.

        EXAMPLE:
          fergc inspect vgg_tuned.plan --json
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else {
            throw UsageError(message: a.positional.isEmpty ? "missing the plan file (M.plan)" : "expected one plan file, got \(a.positional.count)", command: spec.name)
        }
        let path = a.positional[0]
        let file: PlanFile
        do { file = try readPlanFile(path: path) } catch { throw CLIError(error.description) }
        let facts = PlanFacts(file)
        Console.out(a.flag("json") ? try jsonText(facts.json(path: path)) : facts.text(path: path))
    }
}

/// What inspect reports, computed once for both the text and the JSON.
struct PlanFacts {
    let file: PlanFile
    var plan: Plan { file.plan }
    /// Nil when the plan is not a classifier (a training step, say); the reason is kept.
    let model: LoadedPlan?
    let notAClassifier: String?

    init(_ file: PlanFile) {
        self.file = file
        do {
            model = try LoadedPlan(plan: file.plan, file: file)
            notAClassifier = nil
        } catch {
            model = nil
            notAClassifier = error.description
        }
    }

    var classNames: [String] { model?.classNames ?? plan.metadata.classNames }
    var inputShape: [Int] { model?.inputShape ?? plan.metadata.inputShape }
    var parameterCount: Int { plan.parameters.values.reduce(0) { $0 + $1.count } }
    func count(_ role: BufferRole) -> Int { plan.buffers.filter { $0.role == role }.count }
    /// Steps by kernel name, most frequent first.
    var kernelCounts: [(String, Int)] {
        var counts: [String: Int] = [:]
        for s in plan.steps { counts[s.kernel.name, default: 0] += 1 }
        return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
    }
    var memory: MemorySummary? { plan.memory }

    func json(path: String) -> [String: Any] {
        var j: [String: Any] = [
            "file": path,
            "file_bytes": file.fileBytes,
            "model": plan.name,
            "format_version": file.formatVersion,
            "weights_dtype": plan.metadata.weightsDType ?? "f32",
            "weights_kept_f32": plan.metadata.weightsDType == "f16" ? halfKeptTensors(plan.parameters).map(\.name) : [String](),
            "compute_dtype": plan.metadata.computeDType ?? "f32",
            "producer": file.producer,
            "compiled_by": plan.metadata.producer,
            "source_hash": plan.metadata.sourceHash,
            "sections": file.sections.map { ["tag": $0.tag, "offset": $0.offset, "bytes": $0.length] as [String: Any] },
            "mode": plan.metadata.mode,
            "input_shape": inputShape,
            "input_scale": plan.metadata.inputScale,
            "max_batch": plan.maxBatch,
            "classes": classNames,
            "passes": plan.metadata.passes,
            "ensemble": plan.metadata.ensemble.map { e in e.members.map { ["name": $0.name, "prefix": $0.prefix, "weight": $0.weight, "tta": $0.tta ?? NSNull()] as [String: Any] } } ?? NSNull(),
            "frozen_prefix": plan.metadata.frozenPrefix.map { ["steps": $0.steps, "output": $0.output, "frozen_parameters": $0.frozenParameters] as [String: Any] } ?? NSNull(),
            "probe_errors": plan.metadata.probeErrors,
            "winograd": winogradJSON(plan),
            "training": plan.metadata.training,
            "tta": plan.metadata.tta ?? NSNull(),
            "buffers": plan.buffers.count,
            "buffer_roles": ["input": count(.input), "parameter": count(.parameter), "state": count(.state), "intermediate": count(.intermediate)],
            "steps": plan.steps.count,
            "kernels": Dictionary(uniqueKeysWithValues: kernelCounts),
            "parameter_count": parameterCount,
            "parameter_tensors": plan.parameters.count,
            "weights_sha256": file.weightsSHA256,
        ]
        if let model {
            j["input"] = plan.buffers[model.inputBuffer].name
            j["output"] = plan.buffers[model.outputBuffer].name
            j["output_is_probabilities"] = model.outputIsProbabilities
            j["parameters_without_values"] = model.parametersWithoutValues
        } else {
            j["not_a_classifier"] = notAClassifier ?? ""
        }
        if let m = memory {
            j["memory"] = ["arena_bytes": m.arenaBytes, "naive_bytes": m.naiveBytes, "parameter_bytes": m.parameterBytes,
                           "optimizer_bytes": m.optimizerBytes, "workspace_bytes": m.workspaceBytes, "workspace_threads": m.workspaceThreads ?? 0,
                           "input_bytes": m.inputBytes, "total_bytes": m.totalBytes]
        } else {
            j["memory"] = NSNull()
        }
        return j
    }

    func text(path: String) -> String {
        func row(_ key: String, _ value: String) -> String { "  " + key.padding(toLength: 14, withPad: " ", startingAt: 0) + value + "\n" }
        var s = "\(path): model '\(plan.name)' (\(plan.metadata.mode))\n"
        s += row("format", "\(file.formatVersion), written by \(file.producer)" + (plan.metadata.producer.isEmpty ? "" : "; compiled by \(plan.metadata.producer)"))
        s += row("file", "\(file.fileBytes) bytes: " + file.sections.map { "\($0.tag) \($0.length)" }.joined(separator: ", "))
        if !plan.metadata.sourceHash.isEmpty { s += row("source", plan.metadata.sourceHash) }
        if let model {
            s += row("input", "'\(plan.buffers[model.inputBuffer].name)' \(model.inputShape), pixels x \(plan.metadata.inputScale), batch up to \(plan.maxBatch)")
            s += row("output", "'\(plan.buffers[model.outputBuffer].name)' (\(model.outputIsProbabilities ? "probabilities" : "logits; the runtime applies softmax"))")
        } else {
            s += row("input", "\(inputShape), batch up to \(plan.maxBatch)")
            s += row("classifier", "no: \(notAClassifier ?? "")")
        }
        s += row("classes", "\(classNames.count): " + classNames.joined(separator: ", "))
        s += row("passes", plan.metadata.passes.isEmpty ? "(none recorded)" : plan.metadata.passes.joined(separator: ", "))
        if let e = plan.metadata.ensemble {
            s += row("ensemble", "mean of \(e.members.count) members' probabilities: " + e.members.map { "\($0.prefix)* '\($0.name)' x \(String(format: "%.3g", $0.weight))" + memberViews($0.tta) }.joined(separator: ", "))
        }
        if let p = plan.metadata.frozenPrefix { s += row("frozen prefix", "steps 0..<\(p.steps) -> \(p.output) \(p.outputPerSample)") }
        if !plan.metadata.probeErrors.isEmpty {
            s += row("probe errors", plan.metadata.probeErrors.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.3g", $0.value))" }.joined(separator: ", "))
        }
        if let w = winogradText(plan) { s += row("winograd", w) }
        if let t = plan.metadata.tta { s += row("tta", t) }
        for (k, v) in plan.metadata.training.sorted(by: { $0.key < $1.key }) {
            s += row("training", "\(k) = " + v.replacingOccurrences(of: "\n", with: "\\n"))
        }
        s += row("memory", memory == nil ? "not planned (every buffer has its own storage)" : String(memoryReport(plan).dropFirst("memory: ".count)))
        s += row("buffers", "\(plan.buffers.count) (\(count(.input)) inputs, \(count(.parameter)) parameters, \(count(.state)) state, \(count(.intermediate)) intermediates)")
        s += row("steps", "\(plan.steps.count): " + kernelCounts.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        s += row("parameters", "\(parameterCount) values in \(plan.parameters.count) tensors")
        if let missing = model?.parametersWithoutValues, !missing.isEmpty {
            s += row("warning", "no values for \(missing.count) parameters (they start at zero): \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? ", ..." : "")")
        }
        s += row("weights", (plan.metadata.weightsDType == "f16" ? "stored as f16 (IEEE half, widened to f32 when loaded); " : "") + "sha256 \(file.weightsSHA256)")
        if plan.metadata.weightsDType == "f16" {
            let kept = halfKeptTensors(plan.parameters)
            if !kept.isEmpty {
                s += row("kept f32", "\(kept.count) tensor\(kept.count == 1 ? "" : "s") beyond the half range: " + kept.prefix(5).map(\.name).joined(separator: ", ") + (kept.count > 5 ? ", ..." : ""))
            }
        }
        if plan.metadata.computeDType == "bf16" {
            s += row("compute", "convolutions in bf16 (sums in f32) " + (bf16ComputeUnit.map { "on this CPU's \($0)" } ?? "where the CPU has AMX or AVX512_BF16; this one \(bf16ComputeMissing): f32 here"))
        }
        return terminalSafe(s)
    }
}

/// The steps that could run as Winograd F(4x4,3x3) (forward convolutions, and in training
/// plans the fused backward steps' input gradients), in step order: the algorithm the plan
/// chose and the measured error (`PlanMetadata.winogradErrors`).
func winogradJSON(_ plan: Plan) -> [[String: Any]] {
    plan.steps.filter { winogradGeometry(of: $0.kernel) != nil }.map { step in
        var row: [String: Any] = ["step": step.name, "algorithm": (step.algorithm ?? .direct).rawValue,
                                  "computes": winogradComputes(step.kernel)]
        if let e = plan.metadata.winogradErrors?[step.name] { row["error"] = e }
        return row
    }
}

/// What a Winograd candidate computes: "forward", or for a fused backward step "input gradient"
/// or, when the step also has the weight gradient (Winograd computes both), "input and weight
/// gradients".
func winogradComputes(_ k: Kernel) -> String {
    guard winogradIsGradInput(k) else { return "forward" }
    if case .fusedTrainGrad(_, _, _, true) = k { return "input and weight gradients" }
    return "input gradient"
}

/// "5 of 7 convolutions (block1_conv2 9.1e-06, ...), direct: block1_conv1 (1 input channel)", or
/// nil when the plan has no candidate. In a training plan the backward steps that compute an
/// input gradient count as convolutions too (named after the gradient they produce).
func winogradText(_ plan: Plan) -> String? {
    let rows = plan.steps.filter { winogradGeometry(of: $0.kernel) != nil }
    guard !rows.isEmpty else { return nil }
    func error(_ name: String) -> String {
        plan.metadata.winogradErrors?[name].map { " " + String(format: "%.2g", $0) } ?? ""
    }
    let on = rows.filter { $0.algorithm == .winograd }, off = rows.filter { $0.algorithm != .winograd }
    var s = "\(on.count) of \(rows.count) convolutions"
    if !on.isEmpty { s += " (" + on.map { $0.name + error($0.name) }.joined(separator: ", ") + ")" }
    if !off.isEmpty { s += "; direct: " + off.map { $0.name + error($0.name) }.joined(separator: ", ") }
    if plan.metadata.winogradErrors == nil { s += " (not checked)" }
    return s
}

/// `text` with control characters (other than newlines) and bidirectional overrides shown as
/// \u{...} escapes: names from a hostile plan cannot drive the terminal or reorder the line.
func terminalSafe(_ text: String) -> String {
    var out = String.UnicodeScalarView()
    for u in text.unicodeScalars {
        let v = u.value
        if (v < 0x20 && v != 0x0A) || (0x7F...0x9F).contains(v) || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) {
            out.append(contentsOf: "\\u{\(String(v, radix: 16))}".unicodeScalars)
        } else {
            out.append(u)
        }
    }
    return String(out)
}

/// A member's views, from its TTA description ("center_flip: 2 views of 40x40 from each 48x48
/// face, mean softmax" -> " (center_flip: 2 views of 40x40)"); empty without TTA.
func memberViews(_ tta: String?) -> String {
    guard let tta, !tta.isEmpty else { return "" }
    let short = tta.range(of: " from each").map { String(tta[..<$0.lowerBound]) } ?? tta
    return " (\(short))"
}
