// fergc bench: how fast a model trains or infers here, and where the time goes.
//
// Compiles the model with the standard optimized pipeline (no probe), seeded random weights and
// random inputs; runs K warm-up batches, then R timed batches with the executor's per-step
// timing hook on; prints img/s and ms per batch (median of the timed runs), a per-step table
// (the layer each step works for, time, share, GFLOP/s for the steps that do matrix work) and
// this machine's sgemm rate measured right there, so that every figure can be read against the
// BLAS ceiling.

import Foundation
import GraphIR
import Passes
import Runtime

enum BenchCommand {
    static let spec = CommandSpec(
        name: "bench",
        usage: "bench MODEL.graph|M.plan [--train|--infer] [--batch N] [--threads N] [--warmup K] [--runs R] [--winograd|--no-winograd] [--bf16|--f32] [--json]",
        summary: "Time a training step or an inference batch: img/s, ms per batch, a per-step profile, sgemm GFLOP/s.",
        options: [
            OptionSpec(name: "train", kind: .flag, help: "Time one training step: forward, backward, update (the default)."),
            OptionSpec(name: "infer", kind: .flag, help: "Time inference (dropout removed, batchnorm folded, fused)."),
            OptionSpec(name: "batch", kind: .value("N"), help: "Images per batch (default 128)."),
            OptionSpec(name: "threads", kind: .value("N"), help: "Threads (OpenBLAS and the executor); default: all cores."),
            OptionSpec(name: "warmup", kind: .value("K"), help: "Untimed batches first (default 2)."),
            OptionSpec(name: "runs", kind: .value("R"), help: "Timed batches, at least 5 (default 5)."),
            OptionSpec(name: "seed", kind: .value("S"), help: "Seed of the weights and inputs (default 1)."),
            OptionSpec(name: "reference-kernels", kind: .flag, help: "Run the generic reference kernels (the 'before' of docs/performance.md)."),
            OptionSpec(name: "winograd", kind: .flag, help: "Every 3x3 stride-1 convolution forward with Winograd F(4x4,3x3) (Executor.winograd = true)."),
            OptionSpec(name: "no-winograd", kind: .flag, help: "Every convolution direct (im2col + GEMM), whatever the plan chose (Executor.winograd = false)."),
            OptionSpec(name: "bf16", kind: .flag, help: "The convolutions in bf16 (on AMX; on AVX512_BF16 the dense layers and the convolutions of small planes), as a plan compiled with --compute bf16 (inference) or trained with 'compute = bf16' (training: the forwards, input and weight gradients of the convolutions and of the dense layers of 16+ inputs and units) runs; f32 where the CPU has neither (the output says which ran)."),
            OptionSpec(name: "f32", kind: .flag, help: "Everything in f32, whatever the plan or its train block asks (e.g. the f32 figure of a model whose train block says 'compute = bf16')."),
            OptionSpec(name: "no-sgemm", kind: .flag, help: "Skip measuring the machine's sgemm rate."),
            OptionSpec(name: "json", kind: .flag, help: "Print JSON: img_per_s, ms_per_batch, layers, sgemm_gflops, ..."),
        ],
        details: """
        Weights and inputs are random (timing only). GFLOP/s counts 2 flops per multiply-add of the
        convolutions and dense layers (forward, grad-input and grad-weight); other steps show '-'.
        Each step is named after the tensor it writes (a backward step after the gradient it
        writes: grad.block4_conv2 is block4_conv3's backward); the 'layer' column says which
        layer it works for and in which pass (block4_conv3, block4_conv3 backward, ... update).
        A training plan with a frozen prefix (the frozen-prefix pass, e.g. vgg16_pretrained's
        blocks 1-3) is timed twice: the whole step, and the step after the prefix as fergc train
        runs it once the prefix's output is cached.
        Without --winograd or --no-winograd each convolution runs as the compiled plan chose. The
        Winograd convolutions count the direct convolution's flops (an effective rate: they do 4x
        fewer multiplies).

        A .plan is timed as it was compiled (its mode, its weights, its compute type; --batch at
        most its largest batch, default that batch): e.g. a trained plan recompiled with
        `fergc compile M.plan --compute bf16 -o N.plan`.

        EXAMPLES:
          fergc bench Models/vgg_tuned.graph --train --batch 128
          fergc bench Models/trained/vgg_tuned.plan --batch 1 --runs 200
          fergc bench Models/vgg_tuned.graph --infer --batch 1 --runs 200 --json
          fergc bench Models/vgg_tuned.graph --infer --no-winograd    # direct vs
          fergc bench Models/vgg_tuned.graph --infer --winograd       # Winograd, same binary
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else { throw UsageError(message: "expected one model file", command: spec.name) }
        if a.flag("train") && a.flag("infer") { throw UsageError(message: "--train and --infer exclude each other", command: spec.name) }
        let path = a.positional[0]
        let compiledPlan: Plan?
        if path.hasSuffix(".plan") {
            do { compiledPlan = try readPlan(path: path) } catch { throw CLIError(error.description) }
        } else {
            compiledPlan = nil
        }
        let training = compiledPlan.map { $0.metadata.mode == "training" } ?? !a.flag("infer")
        if compiledPlan != nil, a.flag("train") != training && (a.flag("train") || a.flag("infer")) {
            throw UsageError(message: "\(path) is a\(training ? " training" : "n inference") plan; drop --\(training ? "infer" : "train")", command: spec.name)
        }
        let batch = try a.int("batch", spec.name, range: 1...(compiledPlan?.maxBatch ?? 1_048_576)) ?? compiledPlan?.maxBatch ?? 128
        let threads = try a.int("threads", spec.name, range: 1...256) ?? ProcessInfo.processInfo.activeProcessorCount
        let warmup = try a.int("warmup", spec.name, range: 0...10_000) ?? 2
        let runs = try a.int("runs", spec.name, range: 5...100_000) ?? 5
        let seed = UInt64(try a.int("seed", spec.name, range: 0...Int.max) ?? 1)

        let plan: Plan, modelName: String
        if let compiledPlan {
            plan = compiledPlan
            modelName = compiledPlan.metadata.modelName.isEmpty ? compiledPlan.name : compiledPlan.metadata.modelName
        } else {
            let model = try loadGraph(path)
            var options = CompileOptions()
            options.mode = training ? .training : .inference
            options.batch = batch
            options.probe = false
            options.seed = seed
            do { plan = try compile(model, options).plan } catch { throw CLIError("\(error)") }
            modelName = model.name
        }

        setBLASThreads(threads)
        let sgemm = a.flag("no-sgemm") ? nil : measureSgemmGFLOPs(size: 1024)

        let ex = try Executor<Float>(plan: plan)
        ex.seed = seed
        ex.threads = threads
        ex.fastKernels = !a.flag("reference-kernels")
        if a.flag("winograd") && a.flag("no-winograd") {
            throw UsageError(message: "--winograd and --no-winograd exclude each other", command: spec.name)
        }
        if a.flag("winograd") { ex.winograd = true }
        if a.flag("no-winograd") { ex.winograd = false }
        if a.flag("bf16") && a.flag("f32") {
            throw UsageError(message: "--bf16 and --f32 exclude each other", command: spec.name)
        }
        if a.flag("bf16") { ex.bf16 = true }
        if a.flag("f32") { ex.bf16 = false }
        fillInputs(ex, plan: plan, batch: batch, seed: seed)

        for _ in 0..<warmup { try ex.run(batch: batch) }
        let stepTimes = UnsafeMutablePointer<Double>.allocate(capacity: max(plan.steps.count, 1))
        defer { stepTimes.deallocate() }
        stepTimes.initialize(repeating: 0, count: max(plan.steps.count, 1))
        ex.stepTimes = stepTimes
        var times: [Double] = []
        for _ in 0..<runs {
            let start = monotonicNow()
            try ex.run(batch: batch)
            times.append(monotonicNow() - start)
        }
        ex.stepTimes = nil

        let sorted = times.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let total = (0..<plan.steps.count).reduce(0.0) { $0 + stepTimes[$1] }
        let totalFLOPs = plan.steps.reduce(0.0) { $0 + (stepFLOPs($1.kernel) ?? 0) } * Double(batch)
        let layers = plan.steps.enumerated().map { (s, step) -> Layer in
            let seconds = stepTimes[s] / Double(runs)
            let flops = stepFLOPs(step.kernel).map { $0 * Double(batch) }
            return Layer(name: step.name, layer: layerLabel(step, plan), kernel: kernelLabel(step.kernel), ms: seconds * 1000,
                         share: total > 0 ? stepTimes[s] / total : 0,
                         gflops: flops.map { seconds > 0 ? $0 / seconds / 1e9 : 0 })
        }

        var result = Result(model: modelName, mode: training ? "train" : "infer", batch: batch, threads: threads,
                            winograd: ex.winograd.map { $0 ? "all" : "none" } ?? "plan",
                            runs: times.map { $0 * 1000 }, msPerBatch: median * 1000, imgPerS: Double(batch) / median,
                            gflops: totalFLOPs / median / 1e9, sgemm: sgemm, layers: layers,
                            compute: ex.computesInBF16 ? "bf16 (\(bf16ComputeUnit ?? "?"))" : a.flag("bf16") ? "f32 (asked bf16; this CPU \(bf16ComputeMissing))" : "f32")
        if training, let p = plan.metadata.frozenPrefix {
            // The steady state of `fergc train` with the prefix cached: the steps after it.
            var cached: [Double] = []
            for _ in 0..<runs {
                let start = monotonicNow()
                try ex.run(batch: batch, steps: p.steps..<plan.steps.count)
                cached.append(monotonicNow() - start)
            }
            let m = cached.sorted()[cached.count / 2]
            result.prefixCached = (steps: p.steps, output: p.output, imgPerS: Double(batch) / m, msPerBatch: m * 1000)
        }
        if a.flag("json") { Console.out(try jsonText(result.json)) } else { Console.out(result.text) }
    }

    /// Random inputs: pixels uniform in 0..255 scaled as the model says, labels uniform over the
    /// classes, a learning rate of 1e-4; any other f32 input uniform in [-1, 1].
    static func fillInputs(_ ex: Executor<Float>, plan: Plan, batch: Int, seed: UInt64) {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> Double {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Double(state >> 11) / Double(1 << 53)
        }
        for (i, b) in plan.buffers.enumerated() where b.role == .input {
            let count = b.elementCount(batch: batch)
            switch b.elementType {
            case .i32:
                let classes = plan.steps.lazy.compactMap { step -> Int? in
                    guard step.inputs.contains(i) else { return nil }
                    if case .softmaxCrossEntropy(let k) = step.kernel { return k }
                    return nil
                }.first ?? 1
                ex.setBuffer(i, ints: (0..<count).map { _ in Int32(next() * Double(classes)) % Int32(classes) })
            case .f32:
                if b.name == "learning_rate" {
                    ex.setBuffer(i, [1e-4])
                } else if b.batched {
                    let scale = plan.metadata.inputScale
                    ex.setBuffer(i, (0..<count).map { _ in Float((next() * 255).rounded() * scale) })
                } else {
                    ex.setBuffer(i, (0..<max(count, 1)).map { _ in Float(next() * 2 - 1) })
                }
            }
        }
    }

    /// Floating-point operations per sample of a step's matrix work (2 per multiply-add), or nil.
    static func stepFLOPs(_ k: Kernel) -> Double? {
        func anchorMACs(_ a: FusedAnchor) -> Double {
            switch a {
            case .conv2d(let g): return Double(g.macsPerSample)
            case .dense(let i, let o): return Double(i * o)
            }
        }
        switch k {
        case .conv2d(let g, _), .conv2dGradInput(let g), .conv2dGradWeight(let g): return 2 * Double(g.macsPerSample)
        case .dense(let i, let o, _), .denseGradInput(let i, let o), .denseGradWeight(let i, let o): return 2 * Double(i * o)
        case .fused(let a, _), .fusedTrain(let a, _): return 2 * anchorMACs(a)
        case .fusedTrainGrad(let a, _, let inputGrad, let weightGrad):
            return 2 * anchorMACs(a) * Double((inputGrad ? 1 : 0) + (weightGrad ? 1 : 0))
        default: return nil
        }
    }

    /// A kernel's short name: "conv2d", "fusedTrainGrad(conv 32->32 3x3)", ...
    static func kernelLabel(_ k: Kernel) -> String {
        let base = String(String(describing: k).prefix { $0 != "(" })
        func anchor(_ a: FusedAnchor) -> String {
            switch a {
            case .conv2d(let g): return "conv \(g.inChannels)->\(g.outChannels) \(g.kernelHeight)x\(g.kernelWidth) @\(g.outHeight)x\(g.outWidth)"
            case .dense(let i, let o): return "dense \(i)->\(o)"
            }
        }
        switch k {
        case .fused(let a, _), .fusedTrain(let a, _), .fusedTrainGrad(let a, _, _, _): return "\(base) \(anchor(a))"
        case .conv2d(let g, _), .conv2dGradInput(let g), .conv2dGradWeight(let g): return "\(base) \(anchor(.conv2d(g)))"
        default: return base
        }
    }

    struct Layer {
        /// `layer`: the model's layer the step runs for, and which pass ("block4_conv3 backward").
        var name: String, layer: String, kernel: String, ms: Double, share: Double, gflops: Double?
    }

    /// The model layer a step works for. A forward step is named after its output, the layer; a
    /// backward step after the gradient it writes (`grad.block4_conv2` is block4_conv3's backward:
    /// the gradient of its input, and its weight gradient when fused), so it is named here after
    /// the gradient it reads; a step that sums a parameter's gradient parts after the parameter;
    /// an update (an in-place step: the optimizer's, batchnorm statistics', max-norm's) after
    /// the parameter it changes. "-" for constants.
    static func layerLabel(_ step: Step, _ plan: Plan) -> String {
        let own = Set(step.outputs)
        func name(_ i: Int) -> String { plan.buffers.indices.contains(i) ? plan.buffers[i].name : "" }
        func layer(ofParameter p: String) -> String {
            guard let suffix = [".weight", ".bias", ".gamma", ".beta"].first(where: p.hasSuffix) else { return p }
            return String(p.dropLast(suffix.count))
        }
        switch step.kernel {
        case .constant: return "-"
        case .increment: return "optimizer"
        default: break
        }
        if step.outputs.isEmpty, let dot = step.name.firstIndex(of: ".") {
            return layer(ofParameter: String(step.name[step.name.index(after: dot)...])) + " update"
        }
        guard step.name.hasPrefix("grad.") else { return step.name }
        // The incoming gradient, not a numbered part of the one this step writes (grad.c2.weight
        // sums grad.c2.weight.0, the data's, and the penalty's).
        func isPart(_ n: String) -> Bool {
            let number = n.dropFirst(step.name.count + 1)
            return n.hasPrefix(step.name + ".") && !number.isEmpty && number.allSatisfy(\.isNumber)
        }
        if let read = step.inputs.first(where: { !own.contains($0) && name($0).hasPrefix("grad.") && !isPart(name($0)) }) {
            return String(name(read).dropFirst(5)) + " backward"
        }
        let target = String(step.name.dropFirst(5))
        if plan.buffers.contains(where: { $0.name == target && $0.role == .parameter }) {
            return layer(ofParameter: target) + " backward"
        }
        return "-"
    }

    struct Result {
        var model: String, mode: String, batch: Int, threads: Int
        /// Which convolutions ran Winograd: "all", "none" or "plan" (the compiled choice).
        var winograd: String
        var runs: [Double]
        var msPerBatch: Double, imgPerS: Double, gflops: Double
        var sgemm: Double?
        var layers: [Layer]
        /// What the convolutions computed in: "f32", "bf16 (AMX)" or "bf16 (AVX512_BF16)".
        var compute = "f32"
        /// Training plans with a frozen prefix: the same step with the prefix's output cached
        /// (what `fergc train` runs after the first epoch).
        var prefixCached: (steps: Int, output: String, imgPerS: Double, msPerBatch: Double)? = nil

        var json: [String: Any] {
            var j: [String: Any] = [
                "model": model, "mode": mode, "batch": batch, "threads": threads, "winograd": winograd, "runs_ms": runs,
                "ms_per_batch": msPerBatch, "img_per_s": imgPerS, "gflops": gflops,
                "layers": layers.map { l -> [String: Any] in
                    var d: [String: Any] = ["name": l.name, "layer": l.layer, "kernel": l.kernel, "ms": l.ms, "share": l.share]
                    if let g = l.gflops { d["gflops"] = g }
                    return d
                },
            ]
            if let sgemm { j["sgemm_gflops"] = sgemm }
            j["openblas_core"] = openBLASCoreName()
            j["small_sgemm_level"] = smallSgemmLevel
            j["compute"] = compute
            if let p = prefixCached {
                j["frozen_prefix"] = ["steps": p.steps, "output": p.output, "img_per_s_cached": p.imgPerS,
                                      "ms_per_batch_cached": p.msPerBatch, "img_per_s_uncached": imgPerS]
            }
            return j
        }

        var text: String {
            var s = "\(model) \(mode) batch \(batch), \(threads) thread\(threads == 1 ? "" : "s"), winograd: \(winograd), \(runs.count) timed runs\n"
            s += String(format: "  %.1f img/s   %.2f ms per batch (median; min %.2f, max %.2f)   %.1f GFLOP/s in conv/dense\n",
                        imgPerS, msPerBatch, runs.min() ?? 0, runs.max() ?? 0, gflops)
            if let sgemm { s += String(format: "  machine sgemm 1024^3: %.1f GFLOP/s (%d thread%@)\n", sgemm, threads, threads == 1 ? "" : "s") }
            s += "  kernels: OpenBLAS \(openBLASCoreName()), small sgemm \(smallSgemmName), convolutions in \(compute)\n"
            if let p = prefixCached {
                s += String(format: "  frozen prefix (steps 0..<%d, '%@') cached, as fergc train runs after the first epoch: %.1f img/s, %.2f ms per batch (uncached: %.1f img/s)\n",
                            p.steps, p.output, p.imgPerS, p.msPerBatch, imgPerS)
            }
            s += "\n"
            let nameWidth = min(max(layers.map(\.name.count).max() ?? 4, 4), 40)
            let layerWidth = min(max(layers.map(\.layer.count).max() ?? 5, 5), 40)
            let kernelWidth = min(max(layers.map(\.kernel.count).max() ?? 6, 6), 48)
            func pad(_ t: String, _ w: Int) -> String { t.count >= w ? String(t.prefix(w)) : t + String(repeating: " ", count: w - t.count) }
            s += "  \(pad("step", nameWidth))  \(pad("layer", layerWidth))  \(pad("kernel", kernelWidth))        ms   share   GFLOP/s\n"
            for l in layers {
                let g = l.gflops.map { String(format: "%9.1f", $0) } ?? "        -"
                s += "  \(pad(l.name, nameWidth))  \(pad(l.layer, layerWidth))  \(pad(l.kernel, kernelWidth))  " + String(format: "%8.3f  %5.1f%%", l.ms, l.share * 100) + " \(g)\n"
            }
            return s
        }
    }
}
