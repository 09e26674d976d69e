// fergc train: train a model on FER2013 (or the embedded sample), with progress, validation,
// checkpoints and a report.

import Distributed
import Foundation
import GraphIR
import Runtime
import Training

enum TrainCommand {
    static let defaultModel = "Models/small.graph"
    static let spec = CommandSpec(
        name: "train",
        usage: "train [MODEL.graph] [--data F] [--epochs N] [--batch B] [--seed S] [--set KEY=VALUE ...] [--out DIR] [--resume DIR] [--init W.npz|CHECKPOINT|M.plan]",
        summary: "Train a model on FER2013 (the embedded sample when no --data is given).",
        options: [
            OptionSpec(name: "data", kind: .value("F"), help: "FER2013 CSV in Kaggle's format (emotion,pixels,Usage), plain or .gz. Default: the embedded sample."),
            OptionSpec(name: "epochs", kind: .value("N"), help: "Epochs (default: the model's train section); a train block's finish = finish(epochs=E, ...) adds its E epochs after them."),
            OptionSpec(name: "batch", kind: .value("B"), help: "Batch size (default: the model's train section, or the resumed run's)."),
            OptionSpec(name: "seed", kind: .value("S"), help: "Seed for weights, shuffling, augmentation and dropout (default: the model's, or the resumed run's)."),
            OptionSpec(name: "out", kind: .value("DIR"), help: "Where checkpoints, the event log and the report go (default: runs/<model>-<time>)."),
            OptionSpec(name: "set", kind: .repeated("KEY=VALUE"), help: "Change one setting of the model's train { } block for this run, written as in the block (e.g. --set 'augment=augment(hflip=true, crop=40)' --set label_smoothing=0); repeatable. The run records the changed block: --resume needs no --set."),
            OptionSpec(name: "resume", kind: .value("DIR"), help: "Continue the run in DIR exactly where its last checkpoint left it, with the model, data, epochs, seed and batch it recorded."),
            OptionSpec(name: "checkpoint-every", kind: .value("STEPS"), help: "Also checkpoint every STEPS steps within an epoch (default: epoch ends only, or the resumed run's; 0: epoch ends only, also after --resume)."),
            OptionSpec(name: "skip-bad-rows", kind: .flag, help: "Skip malformed CSV rows (counted and reported) instead of stopping."),
            OptionSpec(name: "max-steps", kind: .value("N"), help: "Stop after N steps (smoke tests)."),
            OptionSpec(name: "stop-after", kind: .value("TIME"), help: "Stop once this process has run TIME (e.g. 5400, 90m, 1h30m; loading included), after the step it is in and with a checkpoint, as SIGTERM does, with exit status 75: for sessions and jobs with a time limit (leave a margin for the step, the checkpoint and the report). Continue with --resume DIR."),
            OptionSpec(name: "train-on", kind: .value("SPLITS"), help: "The splits to train on, comma-separated, e.g. Training,PublicTest (default: Training, or the resumed run's). With PublicTest among them nothing is validated: for a final retraining whose schedule was fixed in advance."),
            OptionSpec(name: "force-resume", kind: .flag, help: "With --resume: continue even if --data or --epochs differ from what the checkpoint recorded (no longer an exact resume)."),
            OptionSpec(name: "prefix-cache", kind: .value("BYTES"), help: "Memory for the frozen-prefix cache (e.g. 512M, 2G; 0 turns it off). Default 2G."),
            OptionSpec(name: "init", kind: .value("W"), help: "Start from named weights: an .npz (e.g. ../shared/pretrained/vgg16_blocks1-4.npz), a checkpoint, or an inference plan (its stored values, widened from f16 if so stored; an ensemble plan wants fergc ensemble --member K first). A plan's values are refused for a model with batchnorm, which the plan folded into the convolution before it; they start the same model written without it, each such convolution with bias=true, the folded values becoming its weights and bias. Matching parameters (and batchnorm statistics) are loaded, the rest initialized as usual; a shape mismatch is an error. Ignored by --resume."),
            OptionSpec(name: "teacher", kind: .value("T"), help: "For a model whose train block distils (distill = A): the teacher, an inference plan (e.g. an ensemble) or a checkpoint, run once over the training faces before the first step; or a teacher.npy of an earlier run over the same faces. Stored in the run directory: --resume needs no teacher."),
            OptionSpec(name: "distributed", kind: .value("MODE"), help: "Data-parallel training over MPI: 'auto' (default: when mpirun or srun started fergc), 'mpi' or 'none'. See docs/distributed.md."),
        ],
        details: """
        With no arguments, trains Models/small.graph on the embedded FER2013 sample
        (Data/fer2013-sample.csv.gz, 1,084 faces) for a quick end-to-end check.
        For the real thing, get Kaggle's fer2013.csv and run for example:
          fergc train Models/vgg_tuned.graph --data fer2013.csv --out runs/vgg_tuned
        Ctrl-C or SIGTERM stops after the current step with a checkpoint (exit status 130 or 143);
        continue with --resume DIR. A second one stops at once. --stop-after TIME does the same
        by itself once the process has run TIME (exit status 75, EX_TEMPFAIL: come back later):
          fergc train Models/vgg_tuned.graph --data fer2013.csv --out runs/v --stop-after 2h45m
          fergc train --resume runs/v --stop-after 2h45m      # the next session, until it ends
        On several processes or machines (docs/distributed.md), each rank training on its
        share of every batch:
          mpirun -np 2 fergc train Models/vgg_tuned.graph --data fer2013.csv --out runs/vgg_tuned
        The recipe (optimizer, schedule, augmentation, ...) is the model file's train { } block
        (docs/graph-language.md); --set KEY=VALUE changes one of its settings for one run:
          fergc train Models/vgg_k_narrow_gap.graph --data fer2013.csv --set 'augment=augment(hflip=true, crop=40)'
        Its 'finish = finish(epochs=E, lr=R, augment=A)' adds E last epochs after the main
        schedule, from rate R (cosine to 0) with augmentation A, e.g. light ones after heavy:
          fergc train Models/vgg_k_narrow_gap.graph --data fer2013.csv \\
              --set 'finish=finish(epochs=2, lr=0.001, augment=augment(hflip=true, crop=40, pad=0, pad_mode=reflect))'
        The block's 'compute = bf16' trains with the products of the convolutions and
        dense layers in bf16 on AMX where the CPU has it (1.2-1.5x faster), on AVX512_BF16 where
        it has that instead (Zen 4: the dense layers and the convolutions of small planes, where
        f32 Winograd gains least; vgg_k 1.7x); weights and updates stay f32.
        A model whose train block says 'distill = 0.5' learns from a teacher's probabilities as
        well as from the labels (knowledge distillation); the teacher runs once, before the
        first step, and its probabilities stay in the run directory for --resume:
          fergc train M.graph --data fer2013.csv --teacher Models/trained/best-ensemble.plan
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        let group = try TrainDistributed.start(a.value("distributed"))
        try TrainDistributed.run(group) { try train(a, group: group) }
    }

    /// The exit status of a run stopped by `--stop-after` (sysexits' EX_TEMPFAIL: try again later).
    static let stoppedByTimeStatus: Int32 = 75

    static func train(_ a: ParsedArguments, group: MPIGroup?) throws {
        let processStart = DispatchTime.now().uptimeNanoseconds
        let stopAfter = try a.value("stop-after").map { try parseDuration($0, option: "--stop-after", command: spec.name) }
        if stopAfter != nil, group != nil {
            throw UsageError(message: "--stop-after is not available in a data-parallel run (its ranks must stop at the same step); use the job's time limit with --checkpoint-every", command: spec.name)
        }
        guard a.positional.count <= 1 else { throw UsageError(message: "expected at most one model file, got \(a.positional.count)", command: spec.name) }
        let resumeDir = a.value("resume")
        var modelPath = a.positional.first
        // The checkpoint remembers the model, the data, the epoch count, the seed, the batch and
        // the checkpoint interval: --resume DIR alone continues the run as it was started.
        let resumed = try resumeDir.map { try Checkpoint.read($0 + "/checkpoint-last.npz").meta }
        if let dir = resumeDir, modelPath == nil {
            modelPath = try ResumeInfo.modelPath(dir)
        }
        let path = modelPath ?? repoPath(defaultModel)
        let settings = a.all("set")
        if !settings.isEmpty, resumeDir != nil {
            throw UsageError(message: "--set is for a new run; a resumed run continues with the train block its checkpoint recorded", command: spec.name)
        }
        var model = try loadGraph(path)
        if !settings.isEmpty {
            model = try withTrainSettings(model, settings)
            Console.err("train block of \(path) with " + settings.map { "--set \($0)" }.joined(separator: " ") + "\n")
        }
        guard let training = model.training else { throw CLIError("\(path): the model has no train { } section") }
        let recordedData = resumed?.data.map { $0.source }
        let usingSample = a.value("data") == nil && recordedData == nil
        let dataPath = a.value("data") ?? recordedData ?? repoPath("Data/fer2013-sample.csv.gz")
        let epochs = try a.int("epochs", spec.name, range: 1...maxTrainingEpochs) ?? resumed?.epochs ?? training.epochs
        // The plan format's batch limit, checked before anything is sized by it.
        let batch = try a.int("batch", spec.name, range: 1...maxPlanBatch) ?? resumed?.batchSize ?? training.batchSize
        guard (1...maxPlanBatch).contains(batch) else {
            throw CLIError("\(path): batch_size \(batch) is outside 1...\(maxPlanBatch)")
        }
        let seed = try a.value("seed").map { s -> UInt64 in
            guard let v = UInt64(s) else { throw UsageError(message: "--seed expects a non-negative integer, got '\(s)'", command: spec.name) }
            return v
        } ?? resumed?.seed ?? training.seed
        let trainSplits = try a.value("train-on").map { try parseSplits($0) }
            ?? resumed?.data?.trainSplits.map { try parseSplits($0.joined(separator: ",")) } ?? [.training]
        let outDir = resumeDir ?? a.value("out") ?? "runs/\(model.name)-\(timestamp())"
        if resumeDir == nil, FileManager.default.fileExists(atPath: outDir + "/checkpoint-last.npz") {
            throw CLIError("\(outDir) already holds a run; use --resume \(outDir) to continue it or another --out")
        }

        let teacherPath = a.value("teacher")
        if let teacherPath {
            guard resumeDir == nil else {
                throw UsageError(message: "--teacher is for a new run; a resumed run trains with the teacher's probabilities in its run directory (\(TeacherProbabilities.fileName))", command: spec.name)
            }
            guard training.distill > 0 else {
                throw UsageError(message: "--teacher \(teacherPath): \(path) does not distil (its train block has no 'distill = A')", command: spec.name)
            }
        }

        let loadStart = Date()
        Console.err("loading \(dataPath)\(usingSample ? " (the embedded sample)" : "") ...\n")
        let data = try loadFER2013(path: dataPath, options: LoadOptions(skipBadRows: a.flag("skip-bad-rows"), splits: Set(trainSplits + [.publicTest])))
        if data.skippedRows > 0 {
            Console.err("skipped \(data.skippedRows) malformed row\(data.skippedRows == 1 ? "" : "s"), for example:\n" + data.skippedExamples.map { "  \($0)\n" }.joined())
        }
        var options = TrainOptions(epochs: epochs, batchSize: batch, seed: seed, outDir: outDir)
        options.trainSplits = trainSplits
        let trainFaces = trainSplits.map { data[$0].count }.reduce(0, +)
        let what = trainSplits == [.training] ? "training" : "training (\(trainSplits.map(\.rawValue).joined(separator: " + ")))"
        Console.err(String(format: "loaded %d %@ and %d validation faces in %.1f s\n", trainFaces, what,
                           options.validationSplit.map { data[$0].count } ?? 0, Date().timeIntervalSince(loadStart)))
        if options.validationSplit == nil {
            Console.err("no validation split: PublicTest is trained on; the last checkpoint is the run's result\n")
        }
        if let teacherPath {
            options.teacher = try teacherProbabilities(teacherPath, model: model, faces: trainingFaces(data, splits: trainSplits))
        }

        options.resume = resumeDir != nil
        options.checkpointEvery = try a.int("checkpoint-every", spec.name, range: 0...Int.max) ?? resumed?.checkpointEvery ?? 0
        options.maxSteps = try a.int("max-steps", spec.name)
        options.forceResume = a.flag("force-resume")
        if let b = a.value("prefix-cache") { options.prefixCacheBytes = try parseBytes(b, option: "--prefix-cache", command: spec.name) }
        options.group = group
        // Ctrl-C or SIGTERM: stop after the step, with a checkpoint (not in a data-parallel run,
        // whose ranks must stop together).
        let signals = group == nil ? StopSignals() : nil
        defer { signals?.stop() }
        if let signals {
            let limit = stopAfter.map { (seconds: $0, words: "--stop-after \(durationWords($0))") }
            options.stopRequested = {
                if let reason = signals.reason { return reason }
                guard let limit else { return nil }
                return Double(DispatchTime.now().uptimeNanoseconds - processStart) / 1e9 >= limit.seconds ? limit.words : nil
            }
        }
        if let group { Console.out(TrainDistributed.describe(group, batch: batch)) }
        let trainer = try Trainer(model: model, data: data, options: options)
        if let group { Console.out(TrainDistributed.describeExchange(group)) }
        if let note = trainer.prefixCacheNote { Console.out(note + "\n") }
        if let note = trainer.computeNote { Console.out(note + "\n") }
        if let note = trainer.hostChangeNote() { Console.err("note: \(note)\n") }
        if let w = a.value("init") {
            if options.resume {
                Console.err("--init \(w) ignored: resuming from \(outDir)/checkpoint-last.npz\n")
            } else {
                let report = try trainer.initialize(from: InitTensors.read(w))
                Console.out(report.lines(source: w))
            }
        }
        let progress = Progress(interactive: isatty(1) != 0)
        try trainer.run { progress.show($0) }
        if let group, group.rank != 0 { return }
        try writeReport(runDir: outDir)
        // Only the checkpoints that exist (a run stopped by --max-steps has no best yet).
        let written = [(trainer.bestCheckpointPath, "best"), (trainer.lastCheckpointPath, "last")]
            .filter { FileManager.default.fileExists(atPath: $0.0) }.map { "\($0.0) (\($0.1))" }
        Console.out("checkpoints: \(written.isEmpty ? "none written" : written.joined(separator: ", "))\n")
        Console.out("report: \(outDir)/report.md\n")
        if let stop = trainer.stoppedBy {
            Console.err("stopped by \(stop.reason) at epoch \(stop.epoch + 1), step \(stop.batch) of \(stop.stepsPerEpoch); continue with:\n"
                        + "  fergc train --resume \(outDir)\n")
            throw ExitStatus(signals?.number.map { 128 + $0 } ?? stoppedByTimeStatus)
        }
        if usingSample {
            Console.out("This trained on the embedded 1,084-face sample. To train on the full FER2013, pass --data fer2013.csv\n(Kaggle's file, or any CSV with emotion,pixels,Usage columns), e.g.:\n  fergc train Models/vgg_tuned.graph --data fer2013.csv\n")
        }
    }

    /// A teacher's probabilities on `faces`: read from a .npy, or computed by running a plan or a
    /// checkpoint over them (with progress: the ensemble of four takes minutes on two cores).
    static func teacherProbabilities(_ path: String, model: Graph, faces: FaceSet) throws -> TeacherProbabilities {
        if path.hasSuffix(".npy") {
            return try TeacherProbabilities.read(path, faces: faces.count, classes: classCount(of: model))
        }
        let (name, plan, ex) = try loadEvaluable(path, batch: 256)
        let start = Date()
        let interactive = isatty(2) != 0
        Console.err("teacher: running \(name) (\(path)) over the \(faces.count) training faces ...\(interactive ? "" : "\n")")
        let t = try computeTeacherProbabilities(ex, plan: plan, set: faces, source: path) { done in
            let s = Date().timeIntervalSince(start)
            let line = String(format: "teacher: %d of %d faces, %.0f s", done, faces.count, s)
            if interactive { Console.err("\r" + line) } else if done == faces.count || done % 8192 == 0 { Console.err(line + "\n") }
        }
        if interactive { Console.err("\n") }
        var agree = 0
        for f in 0..<t.faces where argmax(Array(t.values[(f * t.classes)..<((f + 1) * t.classes)])) == Int(faces.labels[f]) { agree += 1 }
        Console.err(String(format: "teacher: %.2f%% of the training faces' labels are its most probable class (%.1f s)\n",
                           100 * Double(agree) / Double(max(faces.count, 1)), Date().timeIntervalSince(start)))
        return t
    }

    /// "Training,PublicTest" -> [.training, .publicTest]: known names, each once, Training's
    /// spelling as in the CSV's Usage column.
    static func parseSplits(_ text: String) throws -> [Split] {
        var out: [Split] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let s = Split(rawValue: part) else {
                throw UsageError(message: "--train-on: unknown split '\(part.prefix(40))'; expected a comma-separated list of Training, PublicTest and PrivateTest", command: spec.name)
            }
            guard !out.contains(s) else { throw UsageError(message: "--train-on: \(part) is listed twice", command: spec.name) }
            out.append(s)
        }
        return out
    }

    static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        return f.string(from: Date())
    }
}

enum ResumeInfo {
    /// The model of a run directory: the checkpoint's IR written back to a file beside it.
    static func modelPath(_ dir: String) throws -> String {
        let c = try Checkpoint.read(dir + "/checkpoint-last.npz")
        let path = dir + "/model.graph"
        do { try writeFileAtomically(Array(c.meta.modelIR.utf8), to: path) } catch { throw CLIError(error.description) }
        return path
    }
}

/// The one-line progress display: redrawn in place on a terminal, plain lines otherwise.
final class Progress {
    let interactive: Bool
    var lastPlain = 0.0
    init(interactive: Bool) { self.interactive = interactive }

    func show(_ e: TrainEvent) {
        switch e {
        case .started(let train, let val, let steps, let params, let resumed):
            var s = "training on \(train) faces (\(steps) steps per epoch), validating on \(val); \(grouped(params)) parameters\n"
            if let r = resumed { s += "resuming at epoch \(r.epoch + 1), batch \(r.batch + 1)\n" }
            Console.out(s)
        case .step(let epoch, let batch, let steps, let loss, let acc, let ips, let eta):
            let line = String(format: "epoch %d  batch %d/%d  %.0f img/s  ETA %@  loss %.4f  acc %.3f",
                              epoch + 1, batch + 1, steps, ips, duration(eta), loss, acc)
            if interactive {
                Console.out("\r\u{1B}[K" + line)
            } else if monotonic() - lastPlain >= 10 || batch + 1 == steps {
                lastPlain = monotonic()
                Console.out(line + "\n")
            }
        case .epoch(let r, let best):
            if interactive { Console.out("\r\u{1B}[K") }
            var s = String(format: "epoch %d: loss %.4f acc %.4f", r.epoch, r.loss, r.accuracy)
            if let vl = r.valLoss, let va = r.valAccuracy { s += String(format: "  val_loss %.4f val_acc %.4f", vl, va) }
            s += String(format: "  lr %.3g  %.1f s (%.0f img/s)%@\n", r.learningRate, r.seconds, r.imagesPerSecond, best && r.valAccuracy != nil ? "  best" : "")
            Console.out(s)
        case .finished(let history, let seconds):
            Console.out(String(format: "finished %d epochs in %@\n", history.count, duration(seconds)))
        }
    }

    func monotonic() -> Double { Date().timeIntervalSince1970 }
}

func duration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}

/// A path relative to the repository when fergc runs from it, else relative to the binary's
/// checkout (.build/<config>/fergc -> ../..).
func repoPath(_ relative: String) -> String {
    if FileManager.default.fileExists(atPath: relative) { return relative }
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(relative).path
        if FileManager.default.fileExists(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return relative
}
