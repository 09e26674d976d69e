// fergc eval: accuracy, per-class precision/recall/F1 and the confusion matrix of a trained
// model (a checkpoint) on a split of a FER2013 file.

import Foundation
import Frontend
import GraphIR
import Passes
import Runtime
import Training

enum EvalCommand {
    static let spec = CommandSpec(
        name: "eval",
        usage: "eval MODEL --data F [--split PublicTest|PrivateTest|Training] [--json] [--out DIR] [--predictions F.csv]",
        summary: "Evaluate a plan or a checkpoint on a FER2013 split: accuracy, per-class metrics, confusion matrix.",
        options: [
            OptionSpec(name: "data", kind: .value("F"), help: "FER2013 CSV (plain or .gz). Default: the embedded sample."),
            OptionSpec(name: "split", kind: .value("SPLIT"), help: "PublicTest (default), PrivateTest or Training."),
            OptionSpec(name: "json", kind: .flag, help: "Print the results as JSON (accuracy, per_class, confusion)."),
            OptionSpec(name: "out", kind: .value("DIR"), help: "Where to write confusion-SPLIT.svg and .png (default: a checkpoint's run directory; runs/eval/NAME for a plan NAME.plan)."),
            OptionSpec(name: "predictions", kind: .value("F.csv"), help: "Also write every face's probabilities to F.csv (see below)."),
            OptionSpec(name: "batch", kind: .value("N"), help: "Images per batch of a checkpoint's evaluation (default 256). A .plan runs at the largest batch it was compiled for (fergc compile --batch N; one face at a time by default)."),
            OptionSpec(name: "skip-bad-rows", kind: .flag, help: "Skip malformed CSV rows instead of stopping."),
        ],
        details: """
        MODEL is a compiled plan (fergc compile -o M.plan) or a checkpoint written by 'fergc train'.
        Progress goes to stderr: a line redrawn on a terminal, else (a log) a line every 30 s of a
        long evaluation, such as a plan of many views over a split.

        --predictions writes one line per face of the split, in file order: face (0-based among
        the split's faces read), label, predicted, then the seven class probabilities (Angry ...
        Neutral). For error analysis, or to weigh ensemble members without running them again.
        """)

    /// The --predictions file's header and one face's line (read back by `fergc ensemble --predictions`).
    static let predictionsHeader = "face,label,predicted," + Emotion.names.joined(separator: ",")
    static func predictionsLine<P: BinaryFloatingPoint & CVarArg>(face: Int, label: Int, predicted: Int, _ p: [P]) -> String {
        "\(face),\(label),\(predicted)," + p.map { String(format: "%.6f", $0) }.joined(separator: ",") + "\n"
    }

    /// A checkpoint's images go beside it, into its run directory; a plan's into
    /// runs/eval/NAME under the working directory, so that evaluating a plan that ships with a
    /// project (Models/trained/best.plan) leaves its folder as it was.
    static func defaultOutDir(_ modelPath: String) -> String {
        let url = URL(fileURLWithPath: modelPath)
        if url.pathExtension == "npz" { return url.deletingLastPathComponent().path }
        return "runs/eval/" + url.deletingPathExtension().lastPathComponent
    }

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else { throw UsageError(message: "expected one model (a .plan or a checkpoint)", command: spec.name) }
        let splitName = a.value("split") ?? "PublicTest"
        guard let split = Split(rawValue: splitName) else {
            let hint = didYouMean(splitName, Split.allCases.map(\.rawValue))
            throw UsageError(message: "unknown split '\(splitName)'\(hint); expected PublicTest, PrivateTest or Training", command: spec.name)
        }
        let modelPath = a.positional[0]
        let dataPath = a.value("data") ?? repoPath("Data/fer2013-sample.csv.gz")
        let data: FERData
        do { data = try loadFER2013(path: dataPath, options: LoadOptions(skipBadRows: a.flag("skip-bad-rows"), splits: [split])) } catch { throw CLIError("\(error)") }
        let set = data[split]
        guard set.count > 0 else { throw CLIError("\(dataPath) has no \(split.rawValue) rows") }
        let batch = try a.int("batch", spec.name, range: 1...maxPlanBatch)
        let (name, plan, ex) = try loadEvaluable(modelPath, batch: batch ?? 256)
        if let batch, isPlanFile(modelPath), batch != plan.maxBatch {
            Console.err("\(modelPath): a plan runs at the batch it was compiled for (\(plan.maxBatch)), not --batch \(batch); compile the model with --batch \(batch) for larger batches\n")
        }
        // The output directory before the evaluation, so that a bad --out fails in a second.
        let outDir = a.value("out") ?? defaultOutDir(modelPath)
        try makeDirectories(outDir)
        let predictionsPath = a.value("predictions")
        if let predictionsPath { try checkWritableParent(of: predictionsPath) }
        var predictions = predictionsPath == nil ? "" : predictionsHeader + "\n"
        let probabilities = plan.outputIsProbabilities
        let start = Date()
        let progress = EvalProgress(total: set.count, split: split.rawValue, interactive: isatty(2) != 0)
        let (meanLoss, confusion) = try evaluateInference(ex, plan: plan, set: set, inputScale: Float(plan.metadata.inputScale),
                                                          each: predictionsPath == nil ? nil : { face, scores in
            var p = Array(scores)
            if !probabilities { softmaxInPlace(&p, p.count) }
            predictions += predictionsLine(face: face, label: Int(set.labels[face]), predicted: argmax(p), p)
        }, progress: progress.show)
        progress.finish()
        let hasLoss = plan.outputs.count > 1
        let seconds = Date().timeIntervalSince(start)

        let svgPath = outDir + "/confusion-\(split.rawValue).svg", pngPath = outDir + "/confusion-\(split.rawValue).png"
        let title = String(format: "%@ on %@: accuracy %.2f%%", name, split.rawValue, confusion.accuracy * 100)
        // The images are optional: a read-only directory must not lose the results, which are
        // printed whatever happens here (with a warning on stderr when the images failed).
        var imageFailure: String?
        do {
            try writeFileAtomically(Array(confusionSVG(confusion, names: Emotion.names, title: title).utf8), to: svgPath)
            try writeFileAtomically(confusionPNG(confusion, names: Emotion.names, title: title), to: pngPath)
        } catch { imageFailure = "\(error)" }
        defer {
            if let imageFailure { Console.err("warning: the confusion images were not written: \(imageFailure) (use --out DIR)\n") }
        }

        if a.flag("json") {
            let perClass = Emotion.allCases.map { e -> [String: Any] in
                ["class": e.name, "precision": confusion.precision(e.rawValue), "recall": confusion.recall(e.rawValue),
                 "f1": confusion.f1(e.rawValue), "support": confusion.support(e.rawValue)]
            }
            Console.out(try jsonText([
                "model": name, "model_file": modelPath, "data": dataPath, "split": split.rawValue,
                "images": set.count, "accuracy": confusion.accuracy, "loss": hasLoss ? meanLoss : NSNull(), "per_class": perClass,
                "confusion": confusion.counts, "confusion_normalized": confusion.normalized, "seconds": seconds,
            ]))
        } else {
            var s = String(format: "%@ on %@ (%d faces): accuracy %.2f%%", name, split.rawValue, set.count, confusion.accuracy * 100)
            s += hasLoss ? String(format: ", loss %.4f\n\n", meanLoss) : "\n\n"
            s += "class       precision  recall     f1  support\n"
            for e in Emotion.allCases {
                s += e.name.padding(toLength: 10, withPad: " ", startingAt: 0)
                s += String(format: "%11.3f %7.3f %6.3f %8d\n", confusion.precision(e.rawValue), confusion.recall(e.rawValue), confusion.f1(e.rawValue), confusion.support(e.rawValue))
            }
            s += "\nconfusion (rows: true class, columns: predicted)\n" + "".padding(toLength: 10, withPad: " ", startingAt: 0)
            s += Emotion.allCases.map { String($0.name.prefix(7)).leftPadded(8) }.joined() + "\n"
            for e in Emotion.allCases {
                s += e.name.padding(toLength: 10, withPad: " ", startingAt: 0) + confusion.counts[e.rawValue].map { String($0).leftPadded(8) }.joined() + "\n"
            }
            if imageFailure == nil { s += "\nwrote \(svgPath) and \(pngPath)\n" }
            Console.out(s)
        }
        // After the results are printed: a failed write loses only this file, and says so.
        if let predictionsPath {
            do { try writeFileAtomically(Array(predictions.utf8), to: predictionsPath) } catch {
                throw CLIError("the predictions were not written: \(error)")
            }
            Console.err("wrote \(set.count) predictions to \(predictionsPath)\n")
        }
    }

    /// Fails early, before a long evaluation, when F's directory does not exist or cannot be
    /// written.
    static func checkWritableParent(of path: String) throws {
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
            throw CLIError("--predictions \(path): the directory \(parent) does not exist")
        }
        guard access(parent, W_OK) == 0 else { throw CLIError("--predictions \(path): the directory \(parent) is not writable") }
    }
}

/// Progress of a long evaluation on stderr (a plan of many views takes minutes over a split):
/// on a terminal one line redrawn after a batch, at most five times a second; otherwise, for
/// logs, a line every 30 s once the evaluation has run that long, so a short one prints nothing.
final class EvalProgress {
    let total: Int, split: String, interactive: Bool
    let start = monotonicSeconds()
    var lastLine: Double
    var drawn = false

    init(total: Int, split: String, interactive: Bool) {
        self.total = total
        self.split = split
        self.interactive = interactive
        lastLine = start
    }

    func show(_ done: Int) {
        let now = monotonicSeconds(), elapsed = now - start
        let rate = Double(done) / max(elapsed, 1e-9)
        let line = String(format: "%@: %d/%d faces  %.0f faces/s  ETA %@", split, done, total, rate, duration(Double(total - done) / max(rate, 1e-9)))
        if interactive {
            // A plan compiled for one face runs a batch per face: redrawn at most 5 times a second.
            guard now - lastLine >= 0.2 || done == total else { return }
            lastLine = now
            Console.err("\r\u{1B}[K" + line)
            drawn = true
        } else if now - lastLine >= 30, done < total {
            lastLine = now
            Console.err(line + "\n")
        }
    }

    /// Clears the redrawn line before the results.
    func finish() {
        if drawn { Console.err("\r\u{1B}[K") }
    }
}

/// A plan ready to evaluate, from a .plan file or a checkpoint (whose model IR is compiled to an
/// inference plan with the loss, fused but not folded).
func loadEvaluable(_ path: String, batch: Int) throws -> (name: String, plan: Plan, executor: Executor<Float>) {
    // The magic alone says which: the file is read whole once, by the reader it calls for.
    if isPlanFile(path) {
        let plan: Plan
        do { plan = try readPlan(path: path) } catch { throw CLIError("\(error)") }
        guard plan.buffer(named: "x") != nil else { throw CLIError("\(path): the plan has no image input 'x'") }
        guard plan.metadata.mode == "inference" else { throw CLIError("\(path): a \(plan.metadata.mode) plan; evaluate an inference plan (fergc compile without --train)") }
        let ex = try Executor<Float>(plan: plan)
        ex.dropoutEnabled = false
        return (plan.metadata.modelName, plan, ex)
    }
    let checkpoint: Checkpoint
    do { checkpoint = try Checkpoint.read(path) } catch {
        throw CLIError("\(path): neither a .plan nor a checkpoint: \(error)")
    }
    let graph: Graph
    do { graph = try Frontend.compile(source: checkpoint.meta.modelIR, file: "\(path)#model") } catch {
        throw CLIError("\(path): the model stored in the checkpoint does not compile: \(error)")
    }
    let loss = try lossValue(of: graph)
    guard let logits = logitsValue(of: graph, loss: loss) else { throw CLIError("the model's loss is not a softmax_cross_entropy output") }
    var inference = graph
    inference.outputs = [logits, loss]
    inference.training = nil
    var pm = PassManager([Pipelines.removeDropout, Pipelines.fuse, Pipelines.dce], verifyEach: false)
    var plan = planMemory(try lowerToPlan(try pm.run(inference), maxBatch: batch))
    plan.metadata.inputScale = graph.training?.inputScale ?? 1
    plan.metadata.modelName = graph.name
    let ex = try Executor<Float>(plan: plan)
    ex.dropoutEnabled = false
    for (i, b) in plan.buffers.enumerated() where b.role == .parameter || b.role == .state {
        guard let v = checkpoint.tensors[b.name], v.count == b.elementCount(batch: 1) else {
            throw CLIError("\(path): tensor '\(b.name)' is missing or has the wrong size")
        }
        ex.setBuffer(i, v)
    }
    return (graph.name, plan, ex)
}

/// mkdir -p: creates `path` and its missing parents, or throws naming the component that failed
/// and why (strerror).
func makeDirectories(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for part in path.split(separator: "/") {
        prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + part
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: prefix, isDirectory: &isDir) {
            guard isDir.boolValue else { throw CLIError("cannot create the directory \(path): \(prefix) is not a directory") }
            continue
        }
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
            throw CLIError("cannot create the directory \(path): \(prefix): \(String(cString: strerror(errno)))")
        }
    }
}
