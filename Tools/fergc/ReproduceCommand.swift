// fergc reproduce: the paper's table from a manifest (Models/paper.json). Each row is trained
// (or adopted, or ensembled), compiled to a plan and evaluated; finished rows are skipped, an
// interrupted row resumes from its last checkpoint; then the table is written beside the
// paper's (ReproduceReport.swift).

import Foundation
import Frontend
import GraphIR
import Passes
import Runtime
import Training

enum ReproduceCommand {
    static let spec = CommandSpec(
        name: "reproduce",
        usage: "reproduce [--rows NAMES] [--data F] [--out DIR] [--runs DIR] [--plans DIR] [--manifest M.json] [--epochs N] [--report-only]",
        summary: "Train, evaluate and tabulate the paper's rows from a manifest (Models/paper.json).",
        options: [
            OptionSpec(name: "rows", kind: .value("A,B"), help: "Only these rows (default: all, in manifest order); a group name (study) selects all its rows (study/...)."),
            OptionSpec(name: "data", kind: .value("F"), help: "FER2013 CSV (default: the embedded sample)."),
            OptionSpec(name: "out", kind: .value("DIR"), help: "Where the table (README.md), row results and confusion matrices go (default docs/results/paper)."),
            OptionSpec(name: "runs", kind: .value("DIR"), help: "Where training runs (checkpoints, logs) go (default runs/paper)."),
            OptionSpec(name: "plans", kind: .value("DIR"), help: "Where rows without a plan path in the manifest put their plans (default: their run directory)."),
            OptionSpec(name: "manifest", kind: .value("M.json"), help: "The manifest (default Models/paper.json)."),
            OptionSpec(name: "epochs", kind: .value("N"), help: "Train every row for N epochs instead of its model's (small budgets, tests)."),
            OptionSpec(name: "batch", kind: .value("B"), help: "Batch size for every row instead of its model's."),
            OptionSpec(name: "report-only", kind: .flag, help: "Run nothing: rewrite the table from the row results already there."),
        ],
        details: """
        A row is done when OUT/rows/NAME.json exists (delete it to redo the row); the table is
        rewritten after each row that finishes. A row whose run directory holds a checkpoint
        continues from it exactly (fergc train --resume). A row initialized from another row
        ("init_from": "row:NAME") needs that row's best checkpoint first. Rows that have not
        run show as "not run" in the table, never as a number. Beside the table: each row's
        PublicTest confusion matrix (OUT/NAME-confusion-PublicTest.png) and the learning curves
        of the rows that recorded them (OUT/curves.svg and .png). Ctrl-C or SIGTERM stops a
        row in training after its step, with a checkpoint, and other rows after the one running
        (exit status 130 or 143); the same command continues where it stopped.

        The rows of the preprocessing study (Figure 12, named study/...) have their own table
        in the same README and a bar chart beside it (OUT/CHART.svg and .png, CHART named by
        the manifest's "study" section: figure12): the paper's figure, fergc as the paper
        computed it, and fergc as intended, per technique.

        EXAMPLES:
          fergc reproduce --data ../shared/data/fer2013-trainval.csv.gz --rows vgg_scratch
          fergc reproduce --data ../shared/data/fer2013-trainval.csv.gz --rows study
          fergc reproduce --data ../shared/data/fer2013-trainval.csv.gz --rows study/sobel_paper
          fergc reproduce --report-only --data ../shared/data/fer2013-trainval.csv.gz
        """)

    struct Settings {
        var manifestPath: String
        var dataPath: String
        var out: String
        var runs: String
        var plans: String?
        var epochs: Int?
        var batch: Int?
        /// Ctrl-C and SIGTERM while rows run (nil with --report-only).
        var signals: StopSignals? = nil
    }

    /// A row's training stopped by a signal, after its checkpoint: the rows stop there.
    struct Stopped: Error {
        let signal: Int32
        let row: String
        let epoch: Int, batch: Int, stepsPerEpoch: Int
    }

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.isEmpty else { throw UsageError(message: "unexpected argument '\(a.positional[0])'", command: spec.name) }
        var s = Settings(manifestPath: a.value("manifest") ?? repoPath("Models/paper.json"),
                         dataPath: a.value("data") ?? repoPath("Data/fer2013-sample.csv.gz"),
                         out: a.value("out") ?? "docs/results/paper", runs: a.value("runs") ?? "runs/paper",
                         plans: a.value("plans"), epochs: try a.int("epochs", spec.name), batch: try a.int("batch", spec.name))
        let manifest = try PaperManifest.load(s.manifestPath)
        var selected = manifest.rows.map(\.name)
        if let names = a.value("rows") {
            selected = []
            for n in names.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
                guard let rows = manifest.rows(selectedBy: n) else {
                    throw UsageError(message: "no row '\(n)' in \(s.manifestPath)\(didYouMean(n, manifest.rows.map(\.name))); rows: \(manifest.rows.map(\.name).joined(separator: ", "))", command: spec.name)
                }
                selected += rows.filter { !selected.contains($0) }
            }
        }
        try makeDirectories(s.out + "/rows")
        var failures: [String] = []
        if !a.flag("report-only") {
            // Ctrl-C or SIGTERM: a row in training stops after its step with a checkpoint (the
            // next `fergc reproduce` resumes it); otherwise the rows stop after the one running.
            let signals = StopSignals(notice: "stopping after this step (with a checkpoint) or this row's evaluation")
            defer { signals.stop() }
            s.signals = signals
            Console.err("loading \(s.dataPath) ...\n")
            let data: FERData
            do { data = try loadFER2013(path: s.dataPath, options: LoadOptions(splits: [.training, .publicTest, .privateTest])) } catch { throw CLIError("\(error)") }
            for row in manifest.rows where selected.contains(row.name) {
                if let number = signals.number {
                    try? writeTable(manifest, s, quiet: true)
                    Console.err("stopped by \(StopSignals.name(number)) before row \(row.name); continue with:\n  \(commandLine(args))\n")
                    throw ExitStatus(128 + number)
                }
                if FileManager.default.fileExists(atPath: resultPath(s, row.name)) {
                    Console.out("row \(row.name): done (\(resultPath(s, row.name))); skipped\n")
                    continue
                }
                do {
                    let result = try run(row, manifest, data, s)
                    try writeResult(result, s)
                    Console.out(String(format: "row %@: PublicTest %@\n", row.name, result.publicTest.map { String(format: "%.2f%%", $0 * 100) } ?? "-"))
                    // The table after every finished row, so a long run shows its progress (a
                    // failure to write it is reported by the final write below).
                    try? writeTable(manifest, s, quiet: true)
                } catch let stop as Stopped {
                    try? writeTable(manifest, s, quiet: true)
                    Console.err("stopped by \(StopSignals.name(stop.signal)) in row \(stop.row) at epoch \(stop.epoch + 1), step \(stop.batch) of \(stop.stepsPerEpoch), with a checkpoint; continue with:\n  \(commandLine(args))\n")
                    throw ExitStatus(128 + stop.signal)
                } catch {
                    Console.err("row \(row.name): not run: \(error)\n")
                    failures.append(row.name)
                }
            }
        }
        try writeTable(manifest, s, quiet: false)
        if !failures.isEmpty { throw CLIError("\(failures.count) row\(failures.count == 1 ? "" : "s") not run: \(failures.joined(separator: ", "))") }
    }

    /// The learning curves of the table's rows (not the study's) that trained here, one series
    /// per row, in manifest order.
    static func curveSeries(_ manifest: PaperManifest, results: [String: RowResult]) -> [ChartSeries] {
        let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        let rows = manifest.rows.filter { $0.study == nil && !(results[$0.name]?.curve ?? []).isEmpty }
        return rows.enumerated().map { i, row in
            (row.name, palette[i % palette.count], results[row.name]!.curve!.enumerated().map { (Double($0.offset + 1), $0.element) })
        }
    }

    /// OUT/README.md from the row results in OUT/rows, the study's chart and the rows' learning
    /// curves (OUT/curves.svg and .png) beside it.
    static func writeTable(_ manifest: PaperManifest, _ s: Settings, quiet: Bool) throws {
        let readme = s.out + "/README.md"
        let results = loadResults(manifest, s)
        func writeChart(_ stem: String, svg: String, png: [UInt8]) throws {
            for (ext, bytes) in [("svg", Array(svg.utf8)), ("png", png)] {
                let path = s.out + "/\(stem).\(ext)"
                do { try writeFileAtomically(bytes, to: path) } catch { throw CLIError("\(error)") }
                if !quiet { Console.out("wrote \(path)\n") }
            }
        }
        if let study = manifest.study {
            let chart = studyChart(manifest, results: results)
            try writeChart(study.chart, svg: chart.svg, png: chart.png)
        }
        let curves = curveSeries(manifest, results: results)
        if !curves.isEmpty {
            let title = "PublicTest accuracy by epoch"
            try writeChart("curves", svg: lineChartSVG(title: title, yLabel: "accuracy", series: curves),
                           png: lineChartPNG(title: title, yLabel: "accuracy", series: curves))
        }
        let text = paperReport(manifest, results: results, settings: s)
        do { try writeFileAtomically(Array(text.utf8), to: readme) } catch { throw CLIError("\(error)") }
        if !quiet { Console.out("wrote \(readme)\n") }
    }

    /// `fergc reproduce ARGS` as a shell command (arguments quoted where they need it).
    static func commandLine(_ args: [String]) -> String {
        (["fergc", "reproduce"] + args).map { a in
            a.allSatisfy({ $0.isLetter || $0.isNumber || "-_./,=:+@%".contains($0) }) && !a.isEmpty
                ? a : "'" + a.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }

    static func resultPath(_ s: Settings, _ name: String) -> String { s.out + "/rows/\(name).json" }

    static func writeResult(_ r: RowResult, _ s: Settings) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try makeDirectories(URL(fileURLWithPath: resultPath(s, r.name)).deletingLastPathComponent().path)
        do { try writeFileAtomically(Array(try encoder.encode(r)), to: resultPath(s, r.name)) } catch { throw CLIError("\(error)") }
    }

    static func loadResults(_ m: PaperManifest, _ s: Settings) -> [String: RowResult] {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        var out: [String: RowResult] = [:]
        for row in m.rows {
            if let d = FileManager.default.contents(atPath: resultPath(s, row.name)), let r = try? decoder.decode(RowResult.self, from: d) {
                out[row.name] = r
            }
        }
        return out
    }

    // MARK: - Running a row

    static func run(_ row: PaperManifest.Row, _ m: PaperManifest, _ data: FERData, _ s: Settings) throws -> RowResult {
        if let adopted = row.adopt {
            let plan = try readPlanOrFail(repoPath(adopted.plan))
            var r = try evaluate(row, plan: plan, planPath: adopted.plan, data: data, s)
            r.epochs = adopted.epochs
            r.wallSeconds = adopted.wallSeconds
            r.commands = adopted.commands
            return r
        }
        if let members = row.ensemble {
            var plans: [EnsembleMember] = []
            for name in members {
                guard let d = FileManager.default.contents(atPath: resultPath(s, name)) else {
                    throw CLIError("member row '\(name)' has not run yet")
                }
                let decoder = JSONDecoder()
                decoder.keyDecodingStrategy = .convertFromSnakeCase
                let member = try decoder.decode(RowResult.self, from: d)
                plans.append(EnsembleMember(label: member.planPath, plan: try readPlanOrFail(member.planPath)))
            }
            let plan: Plan
            do { plan = try ensemblePlans(plans, name: row.name) } catch { throw CLIError("\(error)") }
            let path = planPath(row, s)
            try makeDirectories(URL(fileURLWithPath: path).deletingLastPathComponent().path)
            do { try writePlan(plan, to: path) } catch { throw CLIError("\(error)") }
            var r = try evaluate(row, plan: plan, planPath: path, data: data, s)
            r.commands = ["fergc ensemble " + plans.map(\.label).joined(separator: " ") + " -o \(path)"]
            return r
        }
        return try train(row, m, data, s)
    }

    /// The manifest's plan path; else PLANS/NAME.plan; else RUNS/NAME/LAST.plan, LAST the last
    /// word of the name (runs/paper/study/sobel/sobel.plan).
    static func planPath(_ row: PaperManifest.Row, _ s: Settings) -> String {
        if let p = row.plan, s.plans == nil { return p }
        if let plans = s.plans { return plans + "/\(row.name).plan" }
        return s.runs + "/" + row.name + "/\(row.name.split(separator: "/").last!).plan"
    }

    static func readPlanOrFail(_ path: String) throws -> Plan {
        do { return try readPlan(path: path) } catch { throw CLIError(error.description) }
    }

    static func train(_ row: PaperManifest.Row, _ m: PaperManifest, _ data: FERData, _ s: Settings) throws -> RowResult {
        let modelPath = repoPath(row.model!)
        let model = try loadGraph(modelPath)
        guard let training = model.training else { throw CLIError("\(modelPath): no train { } section") }
        let dir = s.runs + "/" + row.name
        let epochs = s.epochs ?? row.epochs ?? training.epochs
        let batch = s.batch ?? training.batchSize
        var options = TrainOptions(epochs: epochs, batchSize: batch, seed: row.seed ?? training.seed, outDir: dir)
        options.checkpointEvery = 100
        if let signals = s.signals { options.stopRequested = { signals.reason } }
        var commands: [String] = []
        var trainCommand = "fergc train \(row.model!) --data \(s.dataPath) --out \(dir) --epochs \(epochs) --batch \(batch) --seed \(options.seed) --checkpoint-every 100"
        var initPath: String?
        switch row.initFrom {
        case "pretrained"?:
            initPath = repoPath(m.pretrained!.path)
            guard FileManager.default.fileExists(atPath: initPath!) else { throw CLIError("the pretrained weights \(initPath!) are not here") }
        case let from? where from.hasPrefix("row:"):
            initPath = s.runs + "/" + from.dropFirst(4) + "/checkpoint-best.npz"
            guard FileManager.default.fileExists(atPath: initPath!) else { throw CLIError("needs row '\(from.dropFirst(4))' trained first (\(initPath!) is missing)") }
        default: break
        }
        if let p = initPath { trainCommand += " --init \(p)" }
        commands.append(trainCommand)

        let resuming = FileManager.default.fileExists(atPath: dir + "/checkpoint-last.npz")
        var finished = false
        if resuming, let c = try? Checkpoint.read(dir + "/checkpoint-last.npz") { finished = c.meta.epoch >= epochs && c.meta.batch == 0 }
        if !finished {
            options.resume = resuming
            Console.out("row \(row.name): \(resuming ? "resuming" : "training") \(row.model!) for \(epochs) epochs in \(dir)\n")
            let trainer = try Trainer(model: model, data: data, options: options)
            if let note = trainer.prefixCacheNote { Console.out(note + "\n") }
            if let note = trainer.hostChangeNote() { Console.err("note: row \(row.name): \(note)\n") }
            if let p = initPath, !resuming { Console.out(try trainer.initialize(from: InitTensors.read(p)).lines(source: p)) }
            let progress = Progress(interactive: false)
            try trainer.run { progress.show($0) }
            try? writeReport(runDir: dir)
            if let stop = trainer.stoppedBy, let number = s.signals?.number {
                throw Stopped(signal: number, row: row.name, epoch: stop.epoch, batch: stop.batch, stepsPerEpoch: stop.stepsPerEpoch)
            }
        }
        let best = try Checkpoint.read(dir + "/checkpoint-best.npz")
        let last = try Checkpoint.read(dir + "/checkpoint-last.npz")

        var compileOptions = CompileOptions()
        compileOptions.weights = best.tensors
        compileOptions.seed = options.seed
        compileOptions.sourceHash = sourceHash(modelPath)
        var plan: Plan
        do { plan = try compile(model, compileOptions).plan } catch { throw CLIError("\(modelPath): \(error)") }
        let dtype = row.weightsDtype ?? "f32"
        if dtype == "f16" { plan = halfWeights(plan, path: modelPath) }
        plan.metadata.training = ["run": dir, "epochs": "\(last.meta.history.count)", "data": s.dataPath]
        let path = planPath(row, s)
        try makeDirectories(URL(fileURLWithPath: path).deletingLastPathComponent().path)
        do { try writePlan(plan, to: path) } catch { throw CLIError("\(error)") }
        commands.append("fergc compile \(row.model!) --weights \(dir)/checkpoint-best.npz\(dtype == "f16" ? " --weights-dtype f16" : "") -o \(path)")

        var r = try evaluate(row, plan: plan, planPath: path, data: data, s)
        r.epochs = last.meta.history.count
        r.wallSeconds = last.meta.elapsedSeconds
        r.curve = last.meta.history.compactMap(\.valAccuracy)
        r.bestEpoch = last.meta.history.max { ($0.valAccuracy ?? -1) < ($1.valAccuracy ?? -1) }?.epoch
        r.commands = commands + r.commands
        return r
    }

    /// PublicTest (and PrivateTest when the data has it) accuracy, the PublicTest confusion
    /// matrix as a PNG beside the table, and the plan's size.
    static func evaluate(_ row: PaperManifest.Row, plan: Plan, planPath: String, data: FERData, _ s: Settings) throws -> RowResult {
        let ex = try Executor<Float>(plan: plan)
        ex.dropoutEnabled = false
        for (i, b) in plan.buffers.enumerated() { if let v = plan.parameters[b.name] { ex.setBuffer(i, v) } }
        func accuracy(_ split: Split) throws -> Confusion? {
            guard data[split].count > 0 else { return nil }
            return try evaluateInference(ex, plan: plan, set: data[split], inputScale: Float(plan.metadata.inputScale)).confusion
        }
        let pub = try accuracy(.publicTest), priv = try accuracy(.privateTest)
        if let c = pub {
            let title = String(format: "%@ on PublicTest: %.2f%%", row.name, c.accuracy * 100)
            let png = s.out + "/\(row.name)-confusion-PublicTest.png"
            try makeDirectories(URL(fileURLWithPath: png).deletingLastPathComponent().path)
            do { try writeFileAtomically(confusionPNG(c, names: Emotion.names, title: title), to: png) } catch { throw CLIError("\(error)") }
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: planPath)[.size] as? Int) ?? encodePlan(plan).count
        let params = plan.buffers.filter { $0.role == .parameter || $0.role == .state }.reduce(0) { $0 + $1.elementCount(batch: 1) }
        return RowResult(name: row.name, data: s.dataPath, publicTest: pub?.accuracy, privateTest: priv?.accuracy,
                         publicImages: data[.publicTest].count, privateImages: data[.privateTest].count, confusionPublic: pub?.counts,
                         confusionPrivate: priv?.counts,
                         epochs: nil, bestEpoch: nil, wallSeconds: nil, planPath: planPath, planBytes: bytes, parameters: params,
                         weightsDtype: plan.metadata.weightsDType ?? "f32",
                         commands: ["fergc eval \(planPath) --data \(s.dataPath) --split PublicTest"], curve: nil)
    }
}
