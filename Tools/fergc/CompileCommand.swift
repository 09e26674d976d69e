// fergc compile: parse, verify and optimize a model, plan its memory, and print its summary,
// its IR or its memory — or write the static plan to a .plan file.

import Foundation
import GraphIR
import Passes
import Runtime
import Training
import NumPyIO

enum CompileCommand {
    static let spec = CommandSpec(
        name: "compile",
        usage: "compile MODEL.graph [-o M.plan] [--weights W.npz|CHECKPOINT|M.plan ...] [--train] [--batch N] [--summary] [--json] [--emit ir]",
        summary: "Compile a model: check shapes, optimize, plan memory; print a summary or IR, or write a .plan.",
        options: [
            OptionSpec(name: "output", kind: .value("M.plan"), help: "Write the compiled plan here (also -o)."),
            OptionSpec(name: "weights", kind: .repeated("W"), help: "Parameter values: an .npz by name, a training checkpoint, or an inference .plan compiled from the same model (its stored values, batchnorm folded: to recompile with other views, input size or batch when the checkpoint is gone; its folded convolutions also compile the model written without its batchnorm, each convolution with a bias). Given more than once (all checkpoints and .npz files, or all plans): their element-by-element mean, a uniform soup of fine-tunes started from the same weights (inference plans only). Default: seeded initial values."),
            OptionSpec(name: "weights-dtype", kind: .value("f32|f16"), help: "How the plan file stores the weights: f32 (default) or f16 (IEEE half, half the size, widened to f32 when loaded; plan format 1.1). A tensor holding a value beyond the half range (±65504) stays f32, and is named (format 1.2)."),
            OptionSpec(name: "compute", kind: .value("f32|bf16"), help: "What the plan's convolutions compute in: f32 (default) or bf16 (weights and activations rounded to bf16 for the products, sums in f32, on AMX or AVX512_BF16 where the CPU has one; f32 elsewhere). Inference plans: every convolution and dense layer of 16+ inputs; training plans (--train, or the train block's 'compute = bf16'): the forwards, input and weight gradients of the convolutions and of the dense layers of 16+ inputs and units. Also on a .plan: compile M.plan --compute bf16 -o N.plan."),
            OptionSpec(name: "train", kind: .flag, help: "Compile one training step: forward, loss, backward and optimizer update."),
            OptionSpec(name: "batch", kind: .value("N"), help: "The largest batch the plan runs (default: 1 for inference, the model's batch for --train)."),
            OptionSpec(name: "summary", kind: .flag, help: "Print a Keras-like table: layer, op, output shape, params; then the memory plan."),
            OptionSpec(name: "json", kind: .flag, help: "Print the summary as JSON (params_total, params_trainable, params_non_trainable, layers, memory)."),
            OptionSpec(name: "emit", kind: .value("KIND"), help: "What to print: 'summary' (default) or 'ir' (the graph after the pipeline)."),
            OptionSpec(name: "passes", kind: .value("A,B,..."), help: "Run these passes instead of the standard pipeline (names as in --print-after)."),
            OptionSpec(name: "max-memory", kind: .value("BYTES"), help: "Fail if the plan needs more than BYTES in total (suffixes K, M, G allowed)."),
            OptionSpec(name: "no-probe", kind: .flag, help: "Skip checking each pass against the unoptimized graph on a probe batch."),
            OptionSpec(name: "winograd", kind: .value("auto|on|off"), help: "3x3 stride-1 convolutions (forward, and in training plans the input and weight gradients) as Winograd F(4x4,3x3): 'auto' (default) where its measured error is within 1e-4 and the layer has 8+ input channels, 'on' wherever possible, 'off' never."),
            OptionSpec(name: "input-side", kind: .value("S"), help: "Compile the model for S x S images instead of the side its input declares; every shape after the input is inferred again, and a pooling over a whole map stays global. For a model trained on crops shown whole faces (--input-side 48 --weights M.plan --tta flip); refused where a parameter's shape would change."),
            OptionSpec(name: "seed", kind: .value("S"), help: "Seed of the initial weights when no --weights are given (default: the model's)."),
            OptionSpec(name: "tta", kind: .value("KIND"), help: "Test-time augmentation inside the plan: it takes 48x48 faces and outputs the mean softmax over each face's views, run as one batch. KIND: flip (the face and its mirror; models taking 48x48), center, center_flip, fivecrop, tencrop (crops of the model's input side from the face; models trained on crops), whole_flip (the whole face and its mirror for a model trained on crops: the model compiled again at 48x48, which a global pooling allows); several sets joined by '+' (center_flip+whole_flip) average all their views in one plan that stores the weights once."),
        ] + PipelineOptions.specs,
        details: """
        Pipelines: inference runs \(Pipelines.inferenceOptimized.map(\.name).joined(separator: ", "));
        --train runs \(Pipelines.trainingOptimized.map(\.name).joined(separator: ", ")).
        Each pass is checked against the graph before it on a fixed probe batch, in double precision;
        a pass that changes the results fails the compile and is named.

        EXAMPLES:
          fergc compile Models/vgg_tuned.graph --summary
          fergc compile Models/vgg_tuned.graph --summary --json
          fergc compile Models/tiny.graph --train --emit ir
          fergc compile Models/vgg_tuned.graph --weights runs/x/checkpoint-best.npz -o vgg_tuned.plan
          fergc compile Models/vgg_k.graph --weights runs/k/checkpoint-best.npz --tta tencrop -o vgg_k.plan
          fergc compile Models/vgg16_gap.graph --weights runs/v/checkpoint-last.npz --tta center_flip+whole_flip -o v.plan
          fergc compile Models/vgg16_gap.graph --weights v40.plan --input-side 48 --tta flip -o v48.plan
          fergc compile Models/vgg16_gap.graph --weights runs/a/checkpoint-last.npz --weights runs/b/checkpoint-last.npz -o soup.plan
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else {
            throw UsageError(message: a.positional.isEmpty ? "missing the model file (MODEL.graph)" : "expected one model file, got \(a.positional.count): \(a.positional.joined(separator: " "))", command: spec.name)
        }
        let emit = a.value("emit") ?? "summary"
        guard ["summary", "ir"].contains(emit) else {
            throw UsageError(message: "--emit expects 'summary' or 'ir', got '\(emit)'", command: spec.name)
        }
        let path = a.positional[0]
        if path.hasSuffix(".plan") { return try restore(path, a) }
        var model = try loadGraph(path)
        let train = a.flag("train")
        if let side = try a.int("input-side", spec.name, range: 1...4096) {
            guard !train else {
                throw UsageError(message: "--input-side builds an inference plan (the train section's augmentation is written for the model's own input); it does not combine with --train", command: spec.name)
            }
            do { model = try withInputSide(model, side: side) } catch { throw CLIError("\(path): \(error)") }
        }
        if train, model.training == nil {
            throw CLIError("\(path): --train needs a 'train { ... }' section in the model (loss, optimizer, ...)")
        }
        var options = CompileOptions()
        options.mode = train ? .training : .inference
        options.batch = try a.int("batch", spec.name, range: 1...maxPlanBatch) ?? (train ? model.training?.batchSize ?? 128 : 1)
        options.probe = !a.flag("no-probe")
        switch a.value("winograd") ?? "auto" {
        case "auto": options.convAlgorithms = .auto
        case "on": options.convAlgorithms = .winograd
        case "off": options.convAlgorithms = .direct
        case let other: throw UsageError(message: "--winograd expects auto, on or off, got '\(other)'", command: spec.name)
        }
        options.seed = try a.value("seed").map { s -> UInt64 in
            guard let v = UInt64(s) else { throw UsageError(message: "--seed expects a non-negative integer, got '\(s)'", command: spec.name) }
            return v
        } ?? model.training?.seed ?? 1
        options.sourceHash = sourceHash(path)
        let pipeline = try selectPasses(a, mode: options.mode)
        options.passes = pipeline
        options.disabled = Set(a.all("disable-pass"))
        options.printAfter = Set(a.all("print-after"))
        if a.flag("print-after-all") { options.printAfter.insert("all") }
        options.printer = { Console.err($0) }
        let weightFiles = a.all("weights")
        if let w = weightFiles.first {
            if weightFiles.count > 1 {
                guard !train else { throw UsageError(message: "--weights given \(weightFiles.count) times averages the values for an inference plan; to train from the average, compile it to a plan and start with 'fergc train --init M.plan'", command: spec.name) }
                let plans = weightFiles.filter(isPlanFile)
                guard plans.isEmpty || plans.count == weightFiles.count else {
                    throw UsageError(message: "--weights: \(plans[0]) is a plan and \(weightFiles.first { !isPlanFile($0) }!) is not: average plans with plans (their batchnorm folded) or checkpoints and .npz files with each other", command: spec.name)
                }
            }
            do {
                if isPlanFile(w) {
                    guard !train else { throw UsageError(message: "--weights \(w) is a plan: a plan's values start an inference compile (new views or input size); a training plan starts from a checkpoint or an .npz", command: spec.name) }
                    var soup = Soup()
                    for f in weightFiles { try soup.add(try inferencePlanParameters(path: f), from: f) }
                    options.planWeights = soup.mean
                } else {
                    var soup = Soup()
                    for f in weightFiles { try soup.add(try loadWeights(f, for: model), from: f) }
                    options.weights = soup.mean
                }
            } catch let e as UsageError { throw e } catch let e as CLIError { throw e } catch {
                throw CLIError("\(error)")
            }
            if weightFiles.count > 1 {
                Console.err("weights: the element-by-element mean of \(weightFiles.count) files' values (a uniform soup): \(weightFiles.joined(separator: ", "))\n")
            }
        }

        var compiled: Compiled
        do { compiled = try compile(model, options) } catch let e as PassError {
            throw CLIError("\(path): \(e)")
        }
        switch a.value("weights-dtype") ?? "f32" {
        case "f32": break
        case "f16": compiled.plan = halfWeights(compiled.plan, path: path)
        case let other: throw UsageError(message: "--weights-dtype expects f32 or f16, got '\(other)'", command: spec.name)
        }
        if let c = a.value("compute") {
            compiled.plan = try withComputeType(compiled.plan, c)
        }
        if a.flag("time-passes") {
            var s = "pass timings:\n"
            for t in compiled.timings { s += "  \(t.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(String(format: "%8.3f ms", t.seconds * 1000))\n" }
            Console.err(s)
        }
        if let kind = a.value("tta") {
            guard let sets = ViewSet.parse(kind) else {
                throw UsageError(message: "--tta expects one of \(ViewSet.names.joined(separator: ", ")), or several joined by '+' (each once), got '\(kind)'", command: spec.name)
            }
            guard !train else { throw UsageError(message: "--tta builds an inference plan; it does not combine with --train", command: spec.name) }
            if sets.contains(.wholeFlip), a.value("input-side") != nil {
                throw UsageError(message: "--tta whole_flip compiles the model at the face's side itself; it does not combine with --input-side", command: spec.name)
            }
            do { compiled.plan = try applyViewSets(compiled.plan, sets: sets, model: model, options: options) } catch let e as PassError { throw CLIError("\(path): \(e)") }
        }
        let memory = compiled.plan.memory ?? MemorySummary()
        if let limit = try a.value("max-memory").map({ try parseBytes($0) }), memory.totalBytes > limit {
            throw CLIError("\(path): the plan needs \(memory.totalBytes) bytes (\(megabytes(memory.totalBytes))), more than --max-memory \(limit) (\(megabytes(limit))): \(memoryReport(compiled.plan))")
        }
        if let out = a.value("output") {
            do { try writePlan(compiled.plan, to: out) } catch { throw CLIError("\(error)") }  // the error names the file
            Console.err("wrote \(out): \(compiled.plan.steps.count) steps, \(memoryReport(compiled.plan))\n")
            if !a.flag("summary"), !a.flag("json"), a.value("emit") == nil { return }
        }
        if emit == "ir" {
            Console.out(compiled.graph.printed())
            return
        }
        // The summary describes the model as written: the training step's extra nodes and
        // optimizer state are not layers.
        let summary = model.summary()
        if a.flag("json") {
            var json = summaryJSON(summary)
            json["memory"] = [
                "arena_bytes": memory.arenaBytes, "naive_bytes": memory.naiveBytes,
                "parameter_bytes": memory.parameterBytes, "optimizer_bytes": memory.optimizerBytes,
                "workspace_bytes": memory.workspaceBytes, "workspace_threads": memory.workspaceThreads ?? 0, "input_bytes": memory.inputBytes,
                "total_bytes": memory.totalBytes, "batch": options.batch, "mode": options.mode.rawValue,
            ]
            json["probe_errors"] = compiled.plan.metadata.probeErrors
            json["winograd"] = winogradJSON(compiled.plan)
            json["passes"] = compiled.plan.metadata.passes
            Console.out(try jsonText(json))
        } else {
            Console.out(summary.table() + "\nPlan (\(options.mode.rawValue), batch \(options.batch)): \(compiled.plan.steps.count) steps; " + memoryReport(compiled.plan) + "\n")
        }
    }

    /// The passes to run: --passes, or the standard pipeline; names checked with suggestions.
    static func selectPasses(_ a: ParsedArguments, mode: CompileMode) throws -> [Pass] {
        let registry = Pipelines.all + Pipelines.inferenceOptimized + Pipelines.trainingOptimized
        let standard = standardPipeline(mode)
        var passes = standard
        if let list = a.value("passes") {
            passes = try list.split(separator: ",").map { name in
                let n = name.trimmingCharacters(in: .whitespaces)
                let candidates = registry.filter { $0.name == n }
                guard let p = candidates.first(where: { c in standard.contains { $0.name == c.name } }) ?? candidates.first else {
                    let hint = didYouMean(n, registry.map(\.name))
                    throw UsageError(message: "unknown pass '\(n)'\(hint)", command: spec.name)
                }
                return p
            }
        }
        let names = passes.map(\.name)
        for name in a.all("print-after") + a.all("disable-pass") where !names.contains(name) {
            let hint = didYouMean(name, names)
            throw UsageError(message: "unknown pass '\(name)'\(hint); this pipeline runs: \(names.joined(separator: ", "))", command: spec.name)
        }
        return passes
    }

    static func summaryJSON(_ s: ModelSummary) -> [String: Any] {
        [
            "model": s.model,
            "params_total": s.paramsTotal,
            "params_trainable": s.paramsTrainable,
            "params_non_trainable": s.paramsNonTrainable,
            "layers": s.layers.map { l -> [String: Any] in
                [
                    "name": l.name,
                    "op": l.ops.joined(separator: "+"),
                    "output_shape": l.outputType.map { $0.dims.map { d -> Any in d == .batch ? NSNull() : d.resolved(batch: 1) } } ?? [],
                    "params": l.params,
                ]
            },
        ]
    }
}

/// Parameter values from an .npz or a training checkpoint. Each array must have the model's
/// exact shape, or be 1-D with the right element count (how checkpoints store tensors): a Keras
/// HWIO kernel or a transposed dense weight is refused, not silently reinterpreted. The archive
/// may declare at most what the model's tensors (with Adam's two moments) can need, checked
/// before anything is inflated.
func loadWeights(_ path: String, for model: Graph) throws -> [String: [Float]] {
    var shapes: [String: [Int]] = [:]
    var elements = 0
    for id in model.parameters + model.states {
        let v = model[id]
        shapes[v.name] = v.type.perSample
        elements += v.type.perSample.reduce(1, *)
    }
    let budget = elements * 4 * 3 + (16 << 20)
    if isPlanFile(path) {
        throw CLIError("\(path): a compiled plan; its values are the plan's (batchnorm folded), not the model's: give a checkpoint or an .npz here")
    }
    if let c = try? Checkpoint.read(path, maxBytes: budget) { return c.tensors }
    let arrays: [String: NDArray]
    do { arrays = try readArchive(path, maxBytes: budget) } catch { throw CLIError("\(error)") }
    var out: [String: [Float]] = [:]
    for (name, array) in arrays {
        if let shape = shapes[name] {
            let count = shape.reduce(1, *)
            let given: [Int] = array.shape
            let flat: Bool = given.count <= 1 && given.reduce(1, *) == count
            guard given == shape || flat else {
                throw CLIError("\(path): '\(name)' has shape \(array.shape), the model expects \(shape) (or a flat [\(count)])")
            }
        }
        out[name] = array.floats
    }
    return out
}

/// "123", "64K", "1.5M", "2G" -> bytes (powers of 1024).
func parseBytes(_ s: String) throws -> Int { try parseBytes(s, option: "--max-memory", command: "compile") }

func parseBytes(_ s: String, option: String, command: String) throws -> Int {
    let units: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024]
    var text = s.uppercased()
    if text.hasSuffix("B") { text.removeLast() }
    var factor = 1.0
    if let last = text.last, let u = units[last] { factor = u; text.removeLast() }
    // Under 2^62 bytes: the count must fit an Int (1e300 would trap in the conversion).
    guard let v = Double(text), v >= 0, v.isFinite, v * factor < 0x1p62 else {
        throw UsageError(message: "\(option) expects bytes like 500000000, 512M or 2G (under 2^62), got '\(s)'", command: command)
    }
    return Int(v * factor)
}

func megabytes(_ n: Int) -> String { String(format: "%.1f MB", Double(n) / 1e6) }

/// FNV-1a of a file's bytes, hex: identifies the source a plan was compiled from.
func sourceHash(_ path: String) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "" }
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in data { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return String(h, radix: 16)
}

/// The plan with its weights rounded to IEEE half and marked to be stored so. A tensor holding a
/// value beyond the half range keeps its f32 values (the file says so per tensor, format 1.2),
/// and stderr names it.
func halfWeights(_ plan: Plan, path: String) -> Plan {
    var p = plan
    p.parameters = roundedToHalf(plan.parameters)
    p.metadata.weightsDType = "f16"
    let kept = halfKeptTensors(p.parameters)
    if !kept.isEmpty {
        let list = kept.map { "'\($0.name)' (holds \($0.value))" }.joined(separator: ", ")
        Console.err("\(path): --weights-dtype f16: kept in f32, beyond the half range (±\(halfMax)): \(list)\n")
    }
    return p
}

/// The plan marked to compute its convolutions in `type` ("f32" or "bf16"), its workspace
/// re-counted (the bf16 path's panels and packed weights where this CPU has AMX).
func withComputeType(_ plan: Plan, _ type: String) throws -> Plan {
    guard computeDTypes.contains(type) else {
        throw UsageError(message: "--compute expects \(computeDTypes.joined(separator: " or ")), got '\(type)'", command: "compile")
    }
    var p = plan
    p.metadata.computeDType = type == "f32" ? nil : type
    if let threads = p.memory?.workspaceThreads {
        let bytes = executorWorkspaceBytes(p, threads: threads)
        p.memory?.workspaceBytes = bytes
    }
    return p
}

/// `fergc compile M.plan --weights-dtype f16|f32 --compute f32|bf16 -o N.plan`: the same plan
/// with its weights stored another way (f32 -> f16 rounds them; f16 -> f32 keeps the rounded
/// values), or computing its convolutions in another type.
private func restore(_ path: String, _ a: ParsedArguments) throws {
    let dtype = a.value("weights-dtype"), compute = a.value("compute")
    if let w = a.all("weights").first {
        throw UsageError(message: "\(path) is recompiled with its own values; to compile it with other values (--weights \(w)), compile the model: compile M.graph --weights \(w) -o N.plan", command: "compile")
    }
    guard dtype != nil || compute != nil, let out = a.value("output") else {
        throw UsageError(message: "a .plan is recompiled only to change how it stores weights or what it computes in: compile M.plan --weights-dtype f16 -o N.plan, or compile M.plan --compute bf16 -o N.plan", command: "compile")
    }
    var plan: Plan
    do { plan = try readPlan(path: path) } catch { throw CLIError(error.description) }
    var said: [String] = []
    switch dtype {
    case nil: break
    case "f16": plan = halfWeights(plan, path: path); said.append("weights stored as f16")
    case "f32": plan.metadata.weightsDType = nil; said.append("weights stored as f32")
    case let other?: throw UsageError(message: "--weights-dtype expects f32 or f16, got '\(other)'", command: "compile")
    }
    if let compute {
        plan = try withComputeType(plan, compute)
        said.append("convolutions in \(compute)" + (compute == "bf16" && !bf16ComputeAvailable ? " (this CPU \(bf16ComputeMissing): it will run them in f32)" : ""))
    }
    do { try writePlan(plan, to: out) } catch { throw CLIError("\(out): \(error)") }
    Console.err("wrote \(out): \(path) with its \(said.joined(separator: ", "))\n")
}
