// The training loop: one compiled training step (forward, loss, backward, update) run over
// shuffled batches, validation after each epoch on an inference plan that shares the weights,
// the best and last checkpoints, a JSONL event log, and a stop with a named culprit when a loss
// or gradient stops being finite.

import Foundation
import GraphIR
import Passes
import Runtime

public struct TrainOptions: Sendable {
    public var epochs: Int
    public var batchSize: Int
    public var seed: UInt64
    public var outDir: String
    /// Continue the run recorded in `outDir`'s last checkpoint.
    public var resume = false
    /// Also write the last checkpoint every this many steps (0: at epoch ends only).
    public var checkpointEvery = 0
    public var evalBatch = 256
    /// Stop after this many steps in total (for tests and smoke runs).
    public var maxSteps: Int?
    /// Resume even when the data or the epoch count differ from what the checkpoint recorded.
    public var forceResume = false
    /// The splits whose faces are the training set, in this order. With PublicTest among them
    /// the run has no validation split (`validationSplit`): a final retraining whose schedule
    /// was fixed in advance, e.g. on Training + PublicTest.
    public var trainSplits: [Split] = [.training]
    /// PublicTest, unless the run trains on it.
    public var validationSplit: Split? { trainSplits.contains(.publicTest) ? nil : .publicTest }
    /// Memory for the frozen-prefix cache (PrefixCache.swift); 0 turns it off.
    public var prefixCacheBytes = 2 << 30
    /// Data parallelism (DataParallel.swift): this process is one rank of the group.
    public var group: DataParallelGroup?
    /// Asked before every step: a reason (e.g. "SIGTERM") makes the run stop there, after a
    /// checkpoint, as `--max-steps` does; `Trainer.stoppedBy` then says why. Not asked in a
    /// data-parallel run (its ranks would stop at different steps and wait for each other).
    public var stopRequested: (@Sendable () -> String?)?
    /// The teacher's probabilities on the training faces, for a new run whose train block
    /// distils (`distill`); a resumed run reads its run directory's copy instead.
    public var teacher: TeacherProbabilities?

    public init(epochs: Int, batchSize: Int, seed: UInt64, outDir: String) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.seed = seed
        self.outDir = outDir
    }
}

/// What the trainer tells its caller while it runs.
public enum TrainEvent: Sendable {
    case started(trainImages: Int, valImages: Int, stepsPerEpoch: Int, parameters: Int, resumedAt: (epoch: Int, batch: Int)?)
    case step(epoch: Int, batch: Int, steps: Int, loss: Double, accuracy: Double, imagesPerSecond: Double, etaSeconds: Double)
    case epoch(EpochRecord, best: Bool)
    case finished(history: [EpochRecord], seconds: Double)
}

extension SegmentHost {
    /// This process's host as the start and resume events record it: the CPU, its cores,
    /// OpenBLAS's kernels (chosen per CPU, or by OPENBLAS_CORETYPE) and fergc's SIMD level, each
    /// of which rounds differently. (Here rather than in Segments.swift, which the event-log
    /// fuzz target builds alone.)
    static var currentEventFields: [String: Any] {
        ["cpu": cpuModelName() ?? NSNull(), "cores": ProcessInfo.processInfo.activeProcessorCount,
         "blas_core": openBLASCoreName(), "simd": smallSgemmName]
    }

    /// This process's host, read back from those fields as the report reads a segment's (nil
    /// without the CPU's name).
    public static var current: SegmentHost? { SegmentHost(event: currentEventFields) }
}

public struct TrainError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class Trainer {
    public let model: Graph
    public let training: TrainingConfig
    public let options: TrainOptions
    let trainSet: FaceSet
    let valSet: FaceSet
    let step: Plan
    let eval: Plan
    let stepExecutor: Executor<Float>
    let evalExecutor: Executor<Float>
    let persistent: [(name: String, stepIndex: Int, evalIndex: Int?)]
    let modelIR: String
    let modelHash: String
    /// The loss the step minimises (with regularizers, as Keras reports it).
    let stepLoss: String
    /// The data this run trains on, recorded in checkpoints and checked on resume.
    let dataFingerprint: DataFingerprint
    /// The teacher's probabilities (distillation), and their rows softened by the temperature.
    let teacher: TeacherProbabilities?
    let teacherRows: [Double]
    /// What checkpoints record of the teacher: where its probabilities came from (the plan a
    /// new run ran, kept by its resumes, which read the run directory's copy) and their hash.
    var teacherRecord: TeacherRecord?
    /// What `--init` loaded (`initialize(from:)`), for the start event; empty otherwise.
    var initRecord: [String: Any] = [:]
    /// The frozen-prefix cache, when the step has a prefix and nothing random feeds it.
    var prefixCache: PrefixCache?
    /// What the trainer did about a frozen prefix (nil: the model has none).
    public private(set) var prefixCacheNote: String?
    /// Why the last `run` stopped before its epochs ended at `options.stopRequested`'s word,
    /// and where (nil: it did not).
    public private(set) var stoppedBy: (reason: String, epoch: Int, batch: Int, stepsPerEpoch: Int)?

    /// What the training step computes in, when the train block asks for bf16 (nil for f32).
    public var computeNote: String? {
        guard stepExecutor.plan.metadata.computeDType == "bf16" else { return nil }
        guard stepExecutor.computesInBF16, let unit = bf16ComputeUnit else {
            return "compute: f32 (the train block asks for bf16; this CPU \(bf16ComputeMissing))"
        }
        let which = unit == "AMX" ? "the convolutions and dense layers"
            : "the dense layers and the convolutions of small planes (10x10, 5x5: where f32 Winograd gains least)"
        return "compute: bf16 on \(unit) (the products of \(which), forward and backward; weights, batchnorm and updates in f32)"
    }

    /// The compute as the start and resume events record it, and as a resume compares it.
    var computeRecord: String { computeNote ?? "compute: f32" }

    /// When resuming: what differs between the host the run's last segment trained on (its
    /// event log) and this one, in words; nil when nothing recorded differs, when not resuming,
    /// on ranks other than the writer, or when the log cannot be read (the report says why).
    public func hostChangeNote() -> String? {
        guard options.resume, isWriter,
              let last = (try? runSegments(dir: options.outDir, finalClock: nil))?.last else { return nil }
        return hostChange(last: last, host: .current, compute: computeRecord)
    }

    public var lastCheckpointPath: String { options.outDir + "/checkpoint-last.npz" }
    public var bestCheckpointPath: String { options.outDir + "/checkpoint-best.npz" }
    public var logPath: String { options.outDir + "/events.jsonl" }

    public init(model: Graph, data: FERData, options: TrainOptions) throws {
        guard var training = model.training else {
            throw TrainError("'\(model.name)' has no train { } section (loss, optimizer, ...)")
        }
        guard (1...maxTrainingEpochs).contains(options.epochs) else {
            throw TrainError("\(options.epochs) epochs: a run has 1 to \(maxTrainingEpochs)")
        }
        training.batchSize = options.batchSize
        training.epochs = options.epochs
        training.seed = options.seed
        self.training = training
        self.options = options
        var m = model
        m.training = training
        self.model = m
        trainSet = trainingFaces(data, splits: options.trainSplits)
        valSet = options.validationSplit.map { data[$0] } ?? FaceSet()
        let splitNames = options.trainSplits.map(\.rawValue).joined(separator: " + ")
        guard trainSet.count > 0 else { throw TrainError("\(data.source): no \(splitNames) rows") }
        dataFingerprint = DataFingerprint(source: data.source, train: trainSet, val: valSet,
                                          trainSplits: options.trainSplits == [.training] ? nil : options.trainSplits.map(\.rawValue))
        let side = training.augmentation.outputSide
        guard let xInput = model.id(named: "x"), model[xInput].kind == .input,
              model[xInput].type == .batched([1, side, side]) else {
            let crop = side == FaceSet.side ? "" : " (the train block's augment crop=\(side))"
            throw TrainError("'\(model.name)' must take FER2013 faces as 'input x: f32[N, 1, \(side), \(side)]'\(crop) to train on them")
        }
        guard let labelsInput = model.id(named: "labels"), model[labelsInput].type == .batched([], .i32) else {
            throw TrainError("'\(model.name)' must take the emotion labels as 'input labels: i32[N]' to train")
        }
        // The teacher: a new run's from the caller, a resumed run's from its run directory.
        let classes = try classCount(of: model)
        if training.distill > 0 {
            let t: TeacherProbabilities
            if options.resume {
                let path = options.outDir + "/" + TeacherProbabilities.fileName
                guard FileManager.default.fileExists(atPath: path) else {
                    throw TrainError("\(options.outDir): the run distils from a teacher (distill = \(formatDouble(training.distill))) but its run directory has no \(TeacherProbabilities.fileName)")
                }
                t = try TeacherProbabilities.read(path, faces: trainSet.count, classes: classes)
            } else {
                guard let given = options.teacher else {
                    throw TrainError("'\(model.name)' distils from a teacher (distill = \(formatDouble(training.distill))): give one with --teacher PLAN (an inference plan or a checkpoint)")
                }
                t = given
            }
            guard t.classes == classes, t.faces == trainSet.count else {
                throw TrainError("\(t.source): the teacher gave \(t.classes) probabilities for each of \(t.faces) faces; this run trains on \(trainSet.count) faces of \(classes) classes")
            }
            teacher = t
            teacherRecord = TeacherRecord(source: t.source, hash: t.hash)
            teacherRows = t.tempered(training.distillTemperature)
        } else {
            if options.teacher != nil {
                throw TrainError("'\(model.name)' has no teacher's weight in its train block: add 'distill = 0.5' (for example) to distil, or leave the teacher out")
            }
            teacher = nil
            teacherRows = []
        }
        modelIR = model.printed(types: false)
        modelHash = String(stringHash(modelIR), radix: 16)

        // One training step, optimized (fused) and memory-planned, with seeded initial weights.
        var compileOptions = CompileOptions()
        compileOptions.mode = .training
        compileOptions.batch = options.batchSize
        compileOptions.probe = false
        compileOptions.seed = options.seed
        let compiled = try compile(m, compileOptions)
        step = compiled.plan
        stepLoss = compiled.graph.training?.loss ?? training.loss

        let loss = try lossValue(of: model)
        guard let logits = logitsValue(of: model, loss: loss) else {
            throw TrainError("the loss '\(model[loss].name)' is not a softmax_cross_entropy output")
        }
        // Validation: inference with the loss, fused but not folded, so that the weights copied
        // from the step each epoch keep their names.
        var evalGraph = model
        evalGraph.outputs = [logits, loss]
        evalGraph.training = nil
        var pm = PassManager([Pipelines.removeDropout, Pipelines.fuse, Pipelines.dce], verifyEach: false)
        eval = planMemory(try lowerToPlan(try pm.run(evalGraph), maxBatch: options.evalBatch))

        let stepPlan = step, evalPlan = eval
        stepExecutor = try Executor<Float>(plan: stepPlan)
        evalExecutor = try Executor<Float>(plan: evalPlan)
        evalExecutor.dropoutEnabled = false
        persistent = stepPlan.buffers.enumerated().filter { $0.element.role == .parameter || $0.element.role == .state }
            .map { (name: $0.element.name, stepIndex: $0.offset, evalIndex: evalPlan.buffer(named: $0.element.name)) }
        let all = persistent
        averaged = training.ema > 0 ? all.indices.filter { all[$0].evalIndex != nil } : []
        prefixCacheNote = setUpPrefixCache(budgetBytes: options.prefixCacheBytes)
        if let group = options.group { try attachGroup(group) }
    }

    // MARK: - Weight averaging (ema = D in the train block)
    //
    // The average covers what inference reads: the weights and the batchnorm running
    // statistics (every persistent tensor the validation plan has; optimizer state is not
    // averaged). The statistics are averaged like the weights (as timm's ModelEmaV2 does): the
    // running statistics are themselves averages of the live weights' batch statistics, and
    // averaging them again keeps them about as far behind as the averaged weights are.
    // After step t (t = 1, 2, ...): avg = d * avg + (1 - d) * w, d = min(D, (1 + t) / (10 + t))
    // (the warm-up of TensorFlow's ExponentialMovingAverage with num_updates), so early
    // averages are not dominated by the random initial weights. The average starts equal to
    // the initial weights, is what validation measures and what the checkpoints store under
    // the tensors' own names (so `fergc eval`/`compile --weights` on a checkpoint use it); the
    // live weights are stored beside it as `train.<name>`, and resume restores both.

    /// Indices into `persistent` of the averaged tensors (empty without ema).
    let averaged: [Int]
    /// The averages, parallel to `averaged`.
    var average: [[Float]] = []

    static let livePrefix = "train."

    func startAverage() {
        average = averaged.map { stepExecutor.buffer(persistent[$0].stepIndex) }
    }

    func updateAverage(afterStep t: Int) {
        guard !averaged.isEmpty else { return }
        let d = Float(min(training.ema, Double(1 + t) / Double(10 + t)))
        // In place on the executor's storage (a copy of every weight per step cost 2-3% of a
        // vgg_k step), on the executor's threads; the same expression, so the same bits.
        for (k, p) in averaged.enumerated() {
            let w = stepExecutor.storage(persistent[p].stepIndex)
            average[k].withUnsafeMutableBufferPointer { a in
                averageUpdate(a.baseAddress!, w, count: a.count, decay: d, threads: stepExecutor.threads)
            }
        }
    }

    private func index(_ plan: Plan, _ name: String) throws -> Int {
        guard let i = plan.buffer(named: name) else { throw TrainError("internal: the plan has no buffer '\(name)'") }
        return i
    }

    /// Where a run is: what a checkpoint records besides the tensors.
    struct RunState {
        /// The next batch to train is `batch` of epoch `epoch` (both 0-based).
        var epoch = 0, batch = 0, iteration = 0
        var history: [EpochRecord] = []
        var best: Double?
        /// Seconds spent before this process took over the run.
        var elapsedBefore = 0.0
        /// Running sums of the current epoch: loss * images, correct, images.
        var lossSum = 0.0, correct = 0, seen = 0
        /// Seconds the current epoch ran before this process took over the run.
        var epochSecondsBefore = 0.0
    }

    /// The buffers a step reads and writes around each run.
    struct StepBuffers {
        /// `labels` is gone from a mixup step (its loss reads `targets`, Mixup.swift).
        var x: Int, labels: Int?, targets: Int?, learningRate: Int, loss: Int, logits: Int, classes: Int
        /// The step's f32 outputs (loss, logits, every gradient): valid after a run, whatever
        /// the memory plan did with the intermediates, so they are what the NaN check reads.
        var checked: [Int]
    }

    /// Runs the training; returns the per-epoch history.
    @discardableResult
    public func run(_ report: (TrainEvent) -> Void) throws -> [EpochRecord] {
        stoppedBy = nil
        if isWriter { try makeRunDirectory(options.outDir) }
        // One trainer per run directory (rank 0 of a data-parallel run holds it for the group);
        // temp files of killed checkpoint writers are removed.
        let lock = isWriter ? try RunLock(directory: options.outDir) : nil
        defer { lock?.release() }
        if isWriter { removeStaleCheckpointTemps(in: options.outDir) }
        let logits = try index(step, model[logitsValue(of: model, loss: try lossValue(of: model))!].name)
        let buffers = StepBuffers(
            x: try index(step, "x"), labels: step.buffer(named: "labels"),
            targets: training.usesSoftTargets ? try index(step, mixupTargetsName) : nil, learningRate: try index(step, "learning_rate"),
            loss: try index(step, stepLoss), logits: logits, classes: step.buffers[logits].perSample[0],
            checked: step.outputs.filter { step.buffers[$0].elementType == .f32 })
        var state = RunState()
        if options.resume { state = try resume() } else {
            if isWriter { try? FileManager.default.removeItem(atPath: logPath) }
            if isWriter, let teacher { try teacher.write(to: options.outDir + "/" + TeacherProbabilities.fileName) }
            startAverage()
        }
        let log = try EventLog(path: logPath, enabled: isWriter)
        let stepsPerEpoch = (trainSet.count + options.batchSize - 1) / options.batchSize
        report(.started(trainImages: trainSet.count, valImages: valSet.count, stepsPerEpoch: stepsPerEpoch,
                        parameters: model.summary().paramsTotal, resumedAt: options.resume ? (state.epoch, state.batch) : nil))
        log.write(["event": options.resume ? "resume" : "start", "model": model.name, "epoch": state.epoch,
                   "batch": state.batch, "iteration": state.iteration, "seed": NSNumber(value: options.seed), "batch_size": options.batchSize,
                   "epochs": options.epochs, "finish_epochs": training.finish?.epochs ?? 0, "train_images": trainSet.count, "val_images": valSet.count,
                   // What the segment's wall time was measured on (the report's segments table).
                   "elapsed_seconds": state.elapsedBefore, "compute": computeRecord]
                  .merging(SegmentHost.currentEventFields) { a, _ in a }
                  .merging(options.resume ? [:] : initRecord) { a, _ in a }
                  .merging(teacherRecord.map { ["teacher": $0.source, "teacher_hash": $0.hash, "distill": training.distill,
                                          "distill_temperature": training.distillTemperature] } ?? [:]) { a, _ in a }
                  .merging(options.group.map { ["ranks": $0.size, "rank_batch": shareDescription($0), "transport": $0.transport,
                                                "allreduce_bytes_per_step": $0.gradientBytesPerStep + $0.statisticsBytesPerStep] } ?? [:]) { a, _ in a })

        let runStart = monotonicSeconds()
        func elapsed() -> Double { state.elapsedBefore + monotonicSeconds() - runStart }
        var stepsThisRun = 0
        var batch = Batch(capacity: options.batchSize)
        try options.group?.synchronize("starting to train")
        while state.epoch < training.totalEpochs {
            let epoch = state.epoch
            let order = epochOrder(count: trainSet.count, seed: options.seed, epoch: epoch)
            // A resumed epoch's clock starts where the checkpoint left it.
            let epochStart = monotonicSeconds() - state.epochSecondsBefore
            state.epochSecondsBefore = 0
            func epochSeconds() -> Double { monotonicSeconds() - epochStart }
            var rate = 0.0
            while state.batch < stepsPerEpoch {
                if let m = options.maxSteps, stepsThisRun >= m {
                    try checkpoint(state, to: lastCheckpointPath, elapsed: elapsed(), epochSeconds: epochSeconds())
                    log.write(["event": "stopped", "reason": "max_steps", "epoch": epoch, "batch": state.batch, "iteration": state.iteration,
                               "elapsed_seconds": elapsed()])
                    return state.history
                }
                if options.group == nil, let why = options.stopRequested?() {
                    try checkpoint(state, to: lastCheckpointPath, elapsed: elapsed(), epochSeconds: epochSeconds())
                    log.write(["event": "stopped", "reason": why, "epoch": epoch, "batch": state.batch, "iteration": state.iteration,
                               "elapsed_seconds": elapsed()])
                    stoppedBy = (why, epoch, state.batch, stepsPerEpoch)
                    return state.history
                }
                let b = state.batch
                let indices = order[(b * options.batchSize)..<min((b + 1) * options.batchSize, trainSet.count)]
                rate = training.learningRate(iteration: state.iteration, stepsPerEpoch: stepsPerEpoch)
                let (loss, correct) = try trainStep(&batch, indices: indices, epoch: epoch, iteration: state.iteration, rate: rate, buffers)
                guard loss.isFinite, buffers.checked.allSatisfy(stepExecutor.isFinite) else {
                    log.write(["event": "non_finite", "epoch": epoch + 1, "batch": b + 1, "iteration": state.iteration])
                    throw TrainError(nonFiniteReport(loss: loss, iteration: state.iteration, epoch: epoch, batch: b))
                }
                state.lossSum += loss * Double(indices.count)
                state.correct += correct
                state.seen += indices.count
                state.iteration += 1
                updateAverage(afterStep: state.iteration)
                state.batch += 1
                stepsThisRun += 1
                let ips = Double(state.seen) / max(epochSeconds(), 1e-9)
                let remainingImages = Double(stepsPerEpoch - state.batch) * Double(options.batchSize)
                    + Double(training.totalEpochs - epoch - 1) * Double(trainSet.count)
                report(.step(epoch: epoch, batch: b, steps: stepsPerEpoch, loss: state.lossSum / Double(state.seen),
                             accuracy: Double(state.correct) / Double(state.seen), imagesPerSecond: ips, etaSeconds: remainingImages / max(ips, 1e-9)))
                if options.checkpointEvery > 0, state.iteration % options.checkpointEvery == 0, state.batch < stepsPerEpoch {
                    let clock = elapsed()
                    try checkpoint(state, to: lastCheckpointPath, elapsed: clock, epochSeconds: epochSeconds())
                    log.write(["event": "checkpoint", "epoch": epoch, "batch": state.batch, "iteration": state.iteration,
                               "elapsed_seconds": clock])
                }
            }
            let record = try finishEpoch(&state, seconds: epochSeconds(), rate: rate)
            let isBest = record.valAccuracy.map { $0 > (state.best ?? -1) } ?? true
            if isBest { state.best = record.valAccuracy ?? state.best }
            // Best before last: a kill between the two leaves a `last` of the previous epoch, so
            // the resumed run redoes this epoch and writes its best again (never lost).
            if isBest { try checkpoint(state, to: bestCheckpointPath, elapsed: elapsed()) }
            try checkpoint(state, to: lastCheckpointPath, elapsed: elapsed())
            var event: [String: Any] = ["event": "epoch", "epoch": record.epoch, "loss": record.loss, "accuracy": record.accuracy,
                                        "lr": rate, "seconds": record.seconds, "img_per_s": record.imagesPerSecond, "best": isBest,
                                        "elapsed_seconds": elapsed()]
            if epoch >= training.epochs { event["stage"] = "finish" }
            if let valLoss = record.valLoss, let valAccuracy = record.valAccuracy {
                event["val_loss"] = valLoss
                event["val_accuracy"] = valAccuracy
            }
            log.write(event)
            report(.epoch(record, best: isBest))
            if let group = options.group { try checkRanksAgree(group, after: "after epoch \(record.epoch)") }
        }
        log.write(["event": "end", "epochs": state.history.count, "best_val_accuracy": state.best ?? NSNull(), "elapsed_seconds": elapsed()])
        report(.finished(history: state.history, seconds: elapsed()))
        return state.history
    }

    /// Reusable batch storage.
    struct Batch {
        var x: [Float] = [], labels: [Int32] = []
        /// With mixup: the soft targets, and the label each image's prediction is scored against.
        var targets: [Float] = [], scored: [Int32] = []
        init(capacity: Int) { x.reserveCapacity(capacity * FaceSet.pixelsPerImage) }
    }

    /// One training step on the images `indices`: returns the loss and the number of correct
    /// predictions. Every random draw is keyed by (seed, epoch, batch) or the iteration.
    func trainStep(_ batch: inout Batch, indices: ArraySlice<Int>, epoch: Int, iteration: Int, rate: Double,
                   _ b: StepBuffers) throws -> (loss: Double, correct: Int) {
        if let group = options.group {
            return try shardedTrainStep(&batch, indices: indices, epoch: epoch, iteration: iteration, rate: rate, b, group: group)
        }
        fillTrainingBatch(&batch, indices: indices, epoch: epoch, classes: b.classes)
        stepExecutor.setBuffer(b.x, batch.x)
        if let labels = b.labels { stepExecutor.setBuffer(labels, ints: batch.labels) }
        if let targets = b.targets { stepExecutor.setBuffer(targets, batch.targets) }
        stepExecutor.setBuffer(b.learningRate, [Float(rate)])
        stepExecutor.seed = options.seed
        stepExecutor.runCounter = UInt64(iteration)
        if let cache = prefixCache {
            try runCachedStep(cache, x: batch.x, indices: indices, iteration: iteration, xIndex: b.x)
        } else {
            try stepExecutor.run(batch: indices.count)
        }
        let logits = stepExecutor.buffer(b.logits)
        var correct = 0
        for k in 0..<indices.count where argmax(logits, offset: k * b.classes, count: b.classes) == Int(batch.scored[k]) { correct += 1 }
        return (Double(stepExecutor.buffer(b.loss)[0]), correct)
    }

    /// The whole batch `indices` of `epoch`, augmented (draws keyed by the position of each image
    /// in the batch) and, with mixup, mixed (keyed by the batch): what every process of a
    /// data-parallel run fills alike before taking its share.
    func fillTrainingBatch(_ batch: inout Batch, indices: ArraySlice<Int>, epoch: Int, classes: Int) {
        let position = UInt64(indices.startIndex / options.batchSize)
        fillBatch(x: &batch.x, labels: &batch.labels, set: trainSet, indices: indices, scale: Float(training.inputScale),
                  augmentation: training.augmentation(epoch: epoch), augmentSeed: mixSeed(options.seed, 0x4155_4731, UInt64(epoch), position))
        guard training.usesSoftTargets else {
            batch.scored = batch.labels
            return
        }
        let own = ownTargets(labels: batch.labels, classes: classes, smoothing: training.labelSmoothing,
                             teacher: teacher == nil ? nil : (training.distill, teacherRows, Array(indices)))
        guard training.mixup > 0 else {
            batch.targets = own.map { Float($0) }
            batch.scored = batch.labels
            return
        }
        let draw = MixupDraw(count: indices.count, alpha: training.mixup, seed: mixSeed(options.seed, 0x4d49_5855, UInt64(epoch), position))
        let side = training.augmentation.outputSide
        batch.scored = applyMixup(draw, x: &batch.x, labels: batch.labels, own: own, targets: &batch.targets, pixels: side * side,
                                  classes: classes)
    }

    /// Validates, records the epoch in the history and moves the state to the next epoch.
    func finishEpoch(_ state: inout RunState, seconds: Double, rate: Double) throws -> EpochRecord {
        let (valLoss, valAccuracy) = valSet.count > 0 ? try validate() : (nil, nil)
        let seen = Double(max(state.seen, 1))
        let record = EpochRecord(epoch: state.epoch + 1, loss: state.lossSum / seen, accuracy: Double(state.correct) / seen,
                                 valLoss: valLoss, valAccuracy: valAccuracy, learningRate: rate, seconds: seconds,
                                 imagesPerSecond: Double(state.seen) / max(seconds, 1e-9))
        state.history.append(record)
        state.epoch += 1
        state.batch = 0
        (state.lossSum, state.correct, state.seen) = (0, 0, 0)
        return record
    }

    /// Restores the weights and the run state from the last checkpoint.
    func resume() throws -> RunState {
        let c = try Checkpoint.read(lastCheckpointPath)
        guard c.meta.modelHash == modelHash else {
            throw TrainError("\(lastCheckpointPath) was written for another model ('\(c.meta.model)', IR hash \(c.meta.modelHash)); this is '\(model.name)' (\(modelHash))")
        }
        guard (c.meta.ranks ?? 1) == (options.group?.size ?? 1) else {
            let n = c.meta.ranks ?? 1, now = options.group?.size ?? 1
            throw TrainError("\(lastCheckpointPath) was written by a run over \(n) rank\(n == 1 ? "" : "s") (\(n == 1 ? "one process" : "mpirun -np \(n)")); resume it with the same number (this run has \(now))")
        }
        guard c.meta.seed == options.seed, c.meta.batchSize == options.batchSize else {
            throw TrainError("\(lastCheckpointPath) used seed \(c.meta.seed) and batch \(c.meta.batchSize); resume with the same (got seed \(options.seed), batch \(options.batchSize); `fergc train --resume` takes both from the checkpoint when --seed and --batch are left out)")
        }
        let m = c.meta
        // The record's counters, before they index anything.
        let stepsPerEpoch = (trainSet.count + options.batchSize - 1) / options.batchSize
        func bad(_ what: String) -> TrainError { TrainError("\(lastCheckpointPath): the checkpoint record is inconsistent: \(what)") }
        let finishEpochs = m.finishEpochs ?? 0
        guard (1...maxTrainingEpochs).contains(m.epochs), (0...maxTrainingEpochs).contains(finishEpochs),
              (0...m.epochs + finishEpochs).contains(m.epoch) else {
            throw bad("epoch \(m.epoch) of \(m.epochs)" + (finishEpochs == 0 ? "" : " and \(finishEpochs) of finish"))
        }
        // Schedules take the step as a Double: past 2^53 it is no longer exact (nor a real run).
        guard (0...(1 << 53)).contains(m.iteration) else { throw bad("iteration \(m.iteration)") }
        // An epoch sees each training face once (on every rank of a data-parallel run); bounded
        // counters cannot overflow as the run adds to them.
        let ranks = max(options.group?.size ?? 1, 1)
        guard m.partialSeen >= 0, m.partialSeen <= trainSet.count * ranks, m.partialCorrect >= 0, m.partialCorrect <= m.partialSeen,
              m.partialLossSum.isFinite else {
            throw bad("partial epoch sums \(m.partialLossSum), \(m.partialCorrect), \(m.partialSeen)")
        }
        guard m.elapsedSeconds.isFinite, m.elapsedSeconds >= 0 else { throw bad("elapsed seconds \(m.elapsedSeconds)") }
        let partialSeconds = m.partialSeconds ?? 0
        guard partialSeconds.isFinite, partialSeconds >= 0 else { throw bad("epoch seconds \(partialSeconds)") }
        // The same schedule and data, or an explicit override.
        if !options.forceResume {
            guard m.epochs == options.epochs else {
                throw TrainError("\(lastCheckpointPath): the run was started for \(m.epochs) epochs, not \(options.epochs); the learning-rate schedule depends on it (resume without --epochs, or pass --force-resume to change the run)")
            }
            // The same faces (counts and hash), whatever path they are read from.
            if let recorded = m.data, recorded.hash != dataFingerprint.hash || recorded.trainImages != dataFingerprint.trainImages
                || recorded.valImages != dataFingerprint.valImages {
                throw TrainError("\(lastCheckpointPath): the run trained on \(recorded.source) (\(recorded.trainImages) training and \(recorded.valImages) validation faces, hash \(recorded.hash)); this data is \(dataFingerprint.source) (\(dataFingerprint.trainImages) and \(dataFingerprint.valImages), hash \(dataFingerprint.hash)). Resume with the same --data, or pass --force-resume to change the run")
            }
        }
        guard (0..<stepsPerEpoch).contains(m.batch) else { throw bad("batch \(m.batch); an epoch has \(stepsPerEpoch) steps") }
        // The teacher's probabilities the run started with (its run directory's copy).
        if let teacher, let record = teacherRecord {
            guard record.hash == m.teacher?.hash else {
                throw TrainError("\(teacher.source): these teacher's probabilities (hash \(record.hash)) are not the ones the run in \(options.outDir) trained with (\(m.teacher.map { "hash \($0.hash), from \($0.source)" } ?? "none recorded"))")
            }
            teacherRecord = m.teacher
        }
        let isAveraged = Set(averaged.map { persistent[$0].name })
        func tensor(_ name: String, _ p: (name: String, stepIndex: Int, evalIndex: Int?)) throws -> [Float] {
            guard let v = c.tensors[name], v.count == step.buffers[p.stepIndex].elementCount(batch: 1) else {
                throw TrainError("\(lastCheckpointPath): tensor '\(name)' is missing or has the wrong size")
            }
            if let problem = nonFiniteProblem(name: name, v) { throw TrainError("\(lastCheckpointPath): \(problem)") }
            return v
        }
        for p in persistent {
            stepExecutor.setBuffer(p.stepIndex, try tensor(isAveraged.contains(p.name) ? Trainer.livePrefix + p.name : p.name, p))
        }
        average = try averaged.map { try tensor(persistent[$0].name, persistent[$0]) }
        return RunState(epoch: m.epoch, batch: m.batch, iteration: m.iteration, history: m.history, best: m.bestValAccuracy,
                        elapsedBefore: m.elapsedSeconds, lossSum: m.partialLossSum, correct: m.partialCorrect, seen: m.partialSeen,
                        epochSecondsBefore: partialSeconds)
    }

    /// Copies the weights into the inference plan and evaluates the validation split.
    func validate() throws -> (Double, Double) {
        let result = try evaluate(set: valSet)
        return (result.loss, result.confusion.accuracy)
    }

    public func evaluate(set: FaceSet) throws -> (loss: Double, confusion: Confusion) {
        for p in persistent {
            if let e = p.evalIndex { evalExecutor.setBuffer(e, stepExecutor.buffer(p.stepIndex)) }
        }
        for (k, p) in averaged.enumerated() { evalExecutor.setBuffer(persistent[p].evalIndex!, average[k]) }
        return try evaluateInference(evalExecutor, plan: eval, set: set, inputScale: Float(training.inputScale))
    }

    /// `epochSeconds`: how long the current epoch has run (mid-epoch checkpoints; 0 at its end).
    func checkpoint(_ state: RunState, to path: String, elapsed: Double, epochSeconds: Double = 0) throws {
        guard isWriter else { return }
        var tensors: [String: [Float]] = [:]
        for p in persistent {
            let v = stepExecutor.buffer(p.stepIndex)
            // Never checkpoint a NaN: it would be resumed, evaluated and shipped.
            if let problem = nonFiniteProblem(name: p.name, v) {
                throw TrainError("at iteration \(state.iteration): \(problem); not writing \(path). \(lastGoodCheckpointNote())")
            }
            tensors[p.name] = v
        }
        for (k, p) in averaged.enumerated() {
            tensors[Trainer.livePrefix + persistent[p].name] = tensors[persistent[p].name]
            tensors[persistent[p].name] = average[k]
        }
        let meta = CheckpointMeta(model: model.name, modelHash: modelHash, modelIR: modelIR, epoch: state.epoch, batch: state.batch,
                                  iteration: state.iteration, seed: options.seed, epochs: options.epochs, batchSize: options.batchSize,
                                  bestValAccuracy: state.best, partialLossSum: state.lossSum, partialCorrect: state.correct,
                                  partialSeen: state.seen, partialSeconds: state.seen > 0 ? epochSeconds : nil,
                                  history: state.history, elapsedSeconds: elapsed, data: dataFingerprint,
                                  ranks: options.group?.size, checkpointEvery: options.checkpointEvery > 0 ? options.checkpointEvery : nil,
                                  teacher: teacherRecord, finishEpochs: training.finish?.epochs)
        try Checkpoint(meta: meta, tensors: tensors).write(to: path)
    }

    /// Names the first step (in schedule order) whose output is not finite, among the step's
    /// outputs: the loss and every gradient.
    func nonFiniteReport(loss: Double, iteration: Int, epoch: Int, batch: Int) -> String {
        var culprit = "the loss"
        // A learned parameter gone non-finite is the cause: name it first (its NaN would otherwise
        // be reported at whichever later step it reaches, e.g. 'loss.total'). State (running
        // statistics) follows the forward pass, so a non-finite forward is named by its step.
        for p in persistent where step.buffers[p.stepIndex].role == .parameter && !stepExecutor.isFinite(p.stepIndex) {
            return "a non-finite value at iteration \(iteration) (epoch \(epoch + 1), batch \(batch + 1)): loss \(loss); the tensor '\(p.name)' holds a NaN or an infinity. Training stopped. \(lastGoodCheckpointNote())"
        }
        search: for s in step.steps {
            for o in s.outputs where step.outputs.contains(o) && step.buffers[o].elementType == .f32 && !stepExecutor.isFinite(o) {
                culprit = "'\(step.buffers[o].name)', computed by step '\(s.name)' (\(s.kernel.name))"
                break search
            }
        }
        return "a non-finite value at iteration \(iteration) (epoch \(epoch + 1), batch \(batch + 1)): loss \(loss); the first non-finite output is \(culprit). Training stopped. \(lastGoodCheckpointNote())"
    }

    /// Which checkpoint to go back to after a failure, only naming files that exist.
    func lastGoodCheckpointNote() -> String {
        FileManager.default.fileExists(atPath: lastCheckpointPath)
            ? "The last checkpoint written is \(lastCheckpointPath)."
            : "No checkpoint was written."
    }
}

/// Why `plan` cannot be evaluated on FER2013 faces by `evaluateInference`, or nil: a plan read
/// from a file is valid for the executor but may still not be a classifier of 48x48 faces.
public func evaluationInterfaceProblem(_ plan: Plan) -> String? {
    guard let x = plan.buffer(named: "x") else { return "no image input 'x'" }
    let input = plan.buffers[x]
    guard input.elementType == .f32, input.batched, input.perSample.count == 3, input.perSample[0] == 1,
          input.perSample[1] == input.perSample[2], (1...FaceSet.side).contains(input.perSample[1]) else {
        return "the input 'x' is \(input.elementType.rawValue) \(input.perSample)\(input.batched ? "" : " (not batched)"); a batch of gray faces [1, S, S], S at most \(FaceSet.side), is expected"
    }
    if let l = plan.buffer(named: "labels") {
        let b = plan.buffers[l]
        guard b.elementType == .i32, b.batched, b.perSample.isEmpty else {
            return "the input 'labels' is \(b.elementType.rawValue) \(b.perSample); one i32 label per face is expected"
        }
    }
    guard let first = plan.outputs.first else { return "no outputs" }
    let out = plan.buffers[first]
    guard out.elementType == .f32, out.batched, out.perSample.count == 1, out.perSample[0] >= 1 else {
        return "the first output '\(out.name)' is \(out.elementType.rawValue) \(out.perSample); a batched vector of class scores is expected"
    }
    if plan.outputs.count > 1 {
        let loss = plan.buffers[plan.outputs[1]]
        guard loss.elementType == .f32, loss.elementsPerSample >= 1 else {
            return "the second output '\(loss.name)' is \(loss.elementType.rawValue) \(loss.perSample); a loss value is expected"
        }
    }
    return nil
}

/// Runs an inference plan (outputs: logits, loss) over a set in batches.
/// `each`, when given, sees every face's output row (logits, or probabilities when
/// `plan.outputIsProbabilities`) with the face's index in `set`, in order; `progress`, when
/// given, the number of faces done after each batch.
public func evaluateInference(_ ex: Executor<Float>, plan: Plan, set: FaceSet, inputScale: Float,
                              each: ((_ face: Int, _ scores: ArraySlice<Float>) -> Void)? = nil,
                              progress: ((_ done: Int) -> Void)? = nil) throws -> (loss: Double, confusion: Confusion) {
    if let problem = evaluationInterfaceProblem(plan) { throw TrainError("plan '\(plan.name)': \(problem)") }
    let x = plan.buffer(named: "x")!, labels = plan.buffer(named: "labels")
    let logitsIndex = plan.outputs[0]
    let classes = plan.buffers[logitsIndex].perSample[0]
    var confusion = Confusion(classes: classes)
    var lossSum = 0.0
    var xs: [Float] = [], ys: [Int32] = []
    var start = 0
    // A model trained on crops (x: [N, 1, S, S], S < 48) sees the centre crop.
    var view = Augmentation.none
    if let side = plan.buffers[x].perSample.last, side != FaceSet.side { view.crop = side }
    while start < set.count {
        let end = min(start + plan.maxBatch, set.count)
        fillBatch(x: &xs, labels: &ys, set: set, indices: Array(start..<end)[...], scale: inputScale, augmentation: view, augmentSeed: nil)
        ex.setBuffer(x, xs)
        if let labels { ex.setBuffer(labels, ints: ys) }
        try ex.run(batch: end - start)
        let logits = ex.buffer(logitsIndex)
        if plan.outputs.count > 1 { lossSum += Double(ex.buffer(plan.outputs[1])[0]) * Double(end - start) }
        for k in 0..<(end - start) {
            confusion.add(truth: Int(ys[k]), predicted: argmax(logits, offset: k * classes, count: classes))
            each?(start + k, logits[(k * classes)..<((k + 1) * classes)])
        }
        start = end
        progress?(end)
    }
    return (lossSum / Double(max(set.count, 1)), confusion)
}
