// The `train { }` block: `key = value` lines mapped to GraphIR's `TrainingConfig`.
//
//   train {
//     loss = loss
//     optimizer = adam(lr=1e-4, decay=1e-6)     # Keras decay: schedule inverse_time(decay=1e-6)
//     batch = 128
//     epochs = 100
//   }

#if canImport(GraphIR)
import GraphIR
#endif

struct TrainSection {
    var keyword: Loc
    var loss: Name
    var optimizer: OptimizerConfig
    var schedule: LRSchedule
    var batch = 128
    var epochs = 100
    var seed: UInt64 = 1
    var inputScale = 1.0
    var augmentation = Augmentation.none
    var labelSmoothing = 0.0
    var ema = 0.0
    var mixup = 0.0
    var distill = 0.0
    var distillTemperature: (value: Double, loc: Loc)?
    var compute = "f32"
    var finish: FinishStage?
}

let trainKeys = ["loss", "optimizer", "schedule", "batch", "epochs", "seed", "input_scale", "augment", "label_smoothing", "ema",
                 "mixup", "distill", "distill_temperature", "compute", "finish"]

/// The error for a key that is not a train setting (in the block, or given with `--set`).
func unknownTrainKey(_ key: String) -> String {
    let hint = closestMatch(key, among: trainKeys).map { " (did you mean '\($0)'?)" }
        ?? " (valid: \(trainKeys.joined(separator: ", ")))"
    return "unknown train setting '\(key)'\(hint)"
}

extension Lowering {
    func lowerTrain(keyword: Loc, entries: [Arg], close: Loc) throws(Diagnostic) -> TrainSection {
        var seen: [String: Loc] = [:]
        var loss: Name?
        var optimizer: OptimizerConfig?
        var decay: (value: Double, loc: Loc)?
        var schedule: (value: LRSchedule, loc: Loc)?
        var finishAugment: Loc?
        var section = TrainSection(keyword: keyword, loss: Name(text: "", loc: keyword),
                                   optimizer: .adam(lr: 1e-3, AdamAttrs()), schedule: .constant)
        for entry in entries {
            guard let key = entry.key else { continue }
            guard trainKeys.contains(key.text) else { throw source.error(key.loc, unknownTrainKey(key.text)) }
            if let first = seen[key.text] {
                throw source.error(key.loc, "'\(key.text)' is set twice in the train block",
                                   notes: [source.note(first, "first set here")])
            }
            seen[key.text] = key.loc
            let v = entry.value
            switch key.text {
            case "loss":
                guard case .ident(let n) = v.kind else {
                    throw source.error(v.loc, "'loss' must name a scalar value of the graph, got \(v.described)")
                }
                loss = Name(text: n, loc: v.loc)
            case "optimizer":
                let (opt, d) = try optimizerSetting(v)
                optimizer = opt
                decay = d
            case "schedule":
                schedule = (try scheduleSetting(v), v.loc)
            case "batch":
                section.batch = try integer(v, key: key.text, atLeast: 1)
            case "epochs":
                section.epochs = try integer(v, key: key.text, atLeast: 1)
            case "seed":
                let r = resolved(v)
                guard case .number(let text) = r.kind, !isFloatLiteral(text) else {
                    throw mismatch(r, key: key.text, expected: "a non-negative integer")
                }
                guard let s = UInt64(text) else {
                    throw invalid(r, key: key.text, "must be an integer from 0 to \(UInt64.max), got \(text)")
                }
                section.seed = s
            case "input_scale":
                section.inputScale = try number(v, key: key.text, "must be positive") { $0 > 0 }
            case "augment":
                section.augmentation = try augmentSetting(v)
            case "label_smoothing":
                section.labelSmoothing = try number(v, key: key.text, "must be in [0, 1)") { $0 >= 0 && $0 < 1 }
            case "ema":
                section.ema = try number(v, key: key.text, "must be 0 (off) or in (0, 1)") { $0 >= 0 && $0 < 1 }
            case "mixup":
                section.mixup = try number(v, key: key.text, "must be 0 (off) or a Beta(a, a) parameter a in (0, 100]") { $0 >= 0 && $0 <= 100 }
            case "distill":
                section.distill = try number(v, key: key.text, "must be 0 (off) or the teacher's weight in the targets, in (0, 1]") { $0 >= 0 && $0 <= 1 }
            case "distill_temperature":
                section.distillTemperature = (try number(v, key: key.text, "must be in (0, 100]") { $0 > 0 && $0 <= 100 }, key.loc)
            case "compute":
                let r = resolved(v)
                guard case .ident(let name) = r.kind, ["f32", "bf16"].contains(name) else {
                    throw mismatch(r, key: key.text, expected: "f32 or bf16", symbols: ["f32", "bf16"])
                }
                section.compute = name
            case "finish":
                (section.finish, finishAugment) = try finishSetting(v)
            default:
                break
            }
        }
        guard let loss else {
            throw source.error(keyword, "the train block needs 'loss = NAME' (the scalar to minimise)")
        }
        guard let optimizer else {
            throw source.error(keyword, "the train block needs 'optimizer = adam(lr=...)' or 'optimizer = sgd(lr=...)'")
        }
        if let t = section.distillTemperature, section.distill == 0 {
            throw source.error(t.loc, "distill_temperature = \(formatDouble(t.value)) without a teacher's weight: add 'distill = 0.5' (for example) or remove it")
        }
        if let f = section.finish, let a = f.augmentation, a.outputSide != section.augmentation.outputSide,
           let loc = finishAugment {
            func side(_ a: Augmentation) -> String { a.crop == 0 ? "the whole 48x48 face" : "\(a.crop)x\(a.crop) crops" }
            throw source.error(loc, "the finish's augment trains on \(side(a)) but the run's on \(side(section.augmentation)): the model's input side does not change within a run; give the finish's augment crop=\(section.augmentation.crop == 0 ? "48 or leave crop out" : String(section.augmentation.crop))",
                               notes: seen["augment"].map { [source.note($0, "the run's augment is set here")] } ?? [])
        }
        section.loss = loss
        section.optimizer = optimizer
        if let decay, decay.value != 0 {
            if let schedule, schedule.value != .constant {
                throw source.error(decay.loc, "decay=\(formatDouble(decay.value)) conflicts with the schedule: Keras' decay is the inverse_time schedule; give one or the other",
                                   notes: [source.note(schedule.loc, "schedule given here")])
            }
            section.schedule = .inverseTime(decay: decay.value)
        } else {
            section.schedule = schedule?.value ?? .constant
        }
        return section
    }

    /// Checks the loss now that the whole file is lowered.
    func trainingConfig(_ t: TrainSection) throws(Diagnostic) -> TrainingConfig {
        guard let id = graph.id(named: t.loss.text) else {
            throw source.error(t.loss.loc, "unknown value '\(t.loss.text)' for the loss\(didYouMean(t.loss.text, graph.values.map(\.name)))")
        }
        guard graph[id].type == .scalar else {
            throw source.error(t.loss.loc, "the loss must be a scalar f32[], but '\(t.loss.text)' is \(graph[id].type)",
                               notes: definitionNote(t.loss.text))
        }
        var config = TrainingConfig(loss: t.loss.text, optimizer: t.optimizer, schedule: t.schedule, batchSize: t.batch,
                                    epochs: t.epochs, seed: t.seed, inputScale: t.inputScale, augmentation: t.augmentation)
        config.labelSmoothing = t.labelSmoothing
        config.compute = t.compute
        config.ema = t.ema
        config.mixup = t.mixup
        config.distill = t.distill
        config.distillTemperature = t.distillTemperature?.value ?? 1
        config.finish = t.finish
        return config
    }

    /// A setting written as `name` or `name(key=value, ...)`: its name and keywords.
    private func call(_ v: Expr, key: String, options: [String]) throws(Diagnostic) -> (Name, Keywords) {
        let r = resolved(v)
        switch r.kind {
        case .ident(let n) where options.contains(n):
            return (Name(text: n, loc: r.loc), try Keywords([], source: source))
        case .call(let f, let args) where options.contains(f.text):
            if let p = args.first(where: { $0.key == nil }) {
                throw source.error(p.value.loc, "\(f.text) settings are written key=value, got \(p.value.described)")
            }
            return (f, try Keywords(args, source: source))
        case .call(let f, _):
            throw source.error(f.loc, "unknown \(key) '\(f.text)'\(didYouMean(f.text, options)) (valid: \(options.joined(separator: ", ")))")
        case .ident, .number, .list:
            throw mismatch(r, key: key, expected: "one of " + options.joined(separator: ", "), symbols: options)
        }
    }

    private func optimizerSetting(_ v: Expr) throws(Diagnostic) -> (OptimizerConfig, (value: Double, loc: Loc)?) {
        var (name, kw) = try call(v, key: "optimizer", options: ["adam", "sgd"])
        guard let (lk, lv) = kw.take("lr") else {
            throw source.error(name.loc, "missing required attribute 'lr' for \(name.text)")
        }
        let lr = try number(lv, key: lk.text, "must be positive") { $0 > 0 }
        var decay: (value: Double, loc: Loc)?
        if let (k, v) = kw.take("decay") { decay = (try number(v, key: k.text, "must be zero or positive") { $0 >= 0 }, v.loc) }
        let unit = "must be in [0, 1)"
        if name.text == "adam" {
            var a = AdamAttrs()
            if let (k, v) = kw.take("beta1") { a.beta1 = try number(v, key: k.text, unit) { $0 >= 0 && $0 < 1 } }
            if let (k, v) = kw.take("beta2") { a.beta2 = try number(v, key: k.text, unit) { $0 >= 0 && $0 < 1 } }
            if let (k, v) = kw.take("epsilon") { a.epsilon = try number(v, key: k.text, "must be positive") { $0 > 0 } }
            try kw.finish(valid: ["lr", "beta1", "beta2", "epsilon", "decay"], what: "adam", source: source)
            return (.adam(lr: lr, a), decay)
        }
        var s = SGDAttrs()
        if let (k, v) = kw.take("momentum") { s.momentum = try number(v, key: k.text, unit) { $0 >= 0 && $0 < 1 } }
        if let (k, v) = kw.take("nesterov") { s.nesterov = try boolean(v, key: k.text) }
        if let (k, v) = kw.take("weight_decay") { s.weightDecay = try number(v, key: k.text, "must be zero or positive") { $0 >= 0 } }
        if let (k, v) = kw.take("decoupled") { s.decoupled = try boolean(v, key: k.text) }
        try kw.finish(valid: ["lr", "momentum", "nesterov", "weight_decay", "decoupled", "decay"], what: "sgd", source: source)
        return (.sgd(lr: lr, s), decay)
    }

    private func scheduleSetting(_ v: Expr) throws(Diagnostic) -> LRSchedule {
        var (name, kw) = try call(v, key: "schedule", options: ["constant", "inverse_time", "cosine", "step"])
        func need(_ key: String, _ kw: inout Keywords) throws(Diagnostic) -> (key: Name, value: Expr) {
            guard let e = kw.take(key) else {
                throw source.error(name.loc, "missing required attribute '\(key)' for \(name.text)")
            }
            return e
        }
        let schedule: LRSchedule
        switch name.text {
        case "inverse_time":
            let (k, d) = try need("decay", &kw)
            schedule = .inverseTime(decay: try number(d, key: k.text, "must be zero or positive") { $0 >= 0 })
            try kw.finish(valid: ["decay"], what: name.text, source: source)
        case "cosine":
            var minFactor = 0.0, warmup = 0.0
            if let (k, v) = kw.take("min_factor") { minFactor = try number(v, key: k.text, "must be in [0, 1]") { $0 >= 0 && $0 <= 1 } }
            if let (k, v) = kw.take("warmup_epochs") { warmup = try number(v, key: k.text, "must be zero or positive") { $0 >= 0 } }
            try kw.finish(valid: ["min_factor", "warmup_epochs"], what: name.text, source: source)
            schedule = .cosine(minFactor: minFactor, warmupEpochs: warmup)
        case "step":
            let (ek, ev) = try need("every", &kw)
            let every = try integer(ev, key: ek.text, atLeast: 1)
            let (fk, fv) = try need("factor", &kw)
            let factor = try number(fv, key: fk.text, "must be positive") { $0 > 0 }
            try kw.finish(valid: ["every", "factor"], what: name.text, source: source)
            schedule = .step(every: every, factor: factor)
        default:
            try kw.finish(valid: [], what: name.text, source: source)
            schedule = .constant
        }
        return schedule
    }

    /// `finish = none` or `finish(epochs=E, lr=R[, schedule=S][, augment=A])`, and where its
    /// augment is written.
    private func finishSetting(_ v: Expr) throws(Diagnostic) -> (FinishStage?, Loc?) {
        var (name, kw) = try call(v, key: "finish", options: ["none", "finish"])
        guard name.text == "finish" else {
            try kw.finish(valid: [], what: name.text, source: source)
            return (nil, nil)
        }
        guard let (ek, ev) = kw.take("epochs") else {
            throw source.error(name.loc, "missing required attribute 'epochs' for finish (the epochs after the main ones)")
        }
        let epochs = try integer(ev, key: ek.text, atLeast: 1)
        guard let (lk, lv) = kw.take("lr") else {
            throw source.error(name.loc, "missing required attribute 'lr' for finish (the rate its schedule starts from)")
        }
        var stage = FinishStage(epochs: epochs, learningRate: try number(lv, key: lk.text, "must be positive") { $0 > 0 })
        if let (_, sv) = kw.take("schedule") { stage.schedule = try scheduleSetting(sv) }
        var augmentLoc: Loc?
        if let (_, av) = kw.take("augment") {
            stage.augmentation = try augmentSetting(av)
            augmentLoc = av.loc
        }
        try kw.finish(valid: ["epochs", "lr", "schedule", "augment"], what: name.text, source: source)
        return (stage, augmentLoc)
    }

    private func augmentSetting(_ v: Expr) throws(Diagnostic) -> Augmentation {
        var (name, kw) = try call(v, key: "augment", options: ["none", "augment"])
        var a = Augmentation()
        if name.text == "augment" {
            if let (k, v) = kw.take("hflip") { a.horizontalFlip = try boolean(v, key: k.text) }
            if let (k, v) = kw.take("shift") { a.shift = try number(v, key: k.text, "must be in [0, 1)") { $0 >= 0 && $0 < 1 } }
            if let (k, v) = kw.take("crop") {
                a.crop = try integer(v, key: k.text, atLeast: 1)
                guard a.crop <= 48 else { throw invalid(resolved(v), key: k.text, "must be at most 48 (the face's side), got \(a.crop)") }
            }
            if let (k, v) = kw.take("pad") {
                a.pad = try integer(v, key: k.text, atLeast: 0)
                guard a.pad <= 24 else { throw invalid(resolved(v), key: k.text, "must be at most 24, got \(a.pad)") }
            }
            if let (k, v) = kw.take("pad_mode") { a.padMode = try choice(v, key: k.text, as: Augmentation.PadMode.self) }
            if let (k, v) = kw.take("rotate") { a.rotate = try number(v, key: k.text, "must be in [0, 180] degrees") { $0 >= 0 && $0 <= 180 } }
            if let (k, v) = kw.take("scale") { a.scale = try number(v, key: k.text, "must be in [0, 1)") { $0 >= 0 && $0 < 1 } }
            if let (k, v) = kw.take("erase") { a.erase = try number(v, key: k.text, "must be a probability in [0, 1]") { $0 >= 0 && $0 <= 1 } }
            if let (k, v) = kw.take("erase_min") { a.eraseMin = try number(v, key: k.text, "must be in (0, 1]") { $0 > 0 && $0 <= 1 } }
            if let (k, v) = kw.take("erase_max") { a.eraseMax = try number(v, key: k.text, "must be in (0, 1]") { $0 > 0 && $0 <= 1 } }
            if a.eraseMin > a.eraseMax {
                throw source.error(name.loc, "erase_min=\(formatDouble(a.eraseMin)) is larger than erase_max=\(formatDouble(a.eraseMax))")
            }
        }
        try kw.finish(valid: name.text == "augment" ? ["hflip", "shift", "crop", "pad", "pad_mode", "rotate", "scale", "erase", "erase_min", "erase_max"] : [],
                      what: name.text, source: source)
        return a
    }
}
