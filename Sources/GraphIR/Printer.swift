// The canonical printer. Its output is valid graph-language text that the frontend parses
// back to an equal graph (the round-trip tests hold it to that), so IR dumps after any pass
// can be read, edited and fed back in.
//
//   model tiny
//   input x: f32[N, 1, 8, 8]
//   param c1.weight: f32[4, 1, 3, 3], init=glorot_uniform
//   c1 = conv2d(x, c1.weight, stride=1, padding=same)  # f32[N, 4, 8, 8]
//   output c1

extension Graph {
    public func printed(types: Bool = true) -> String {
        var out = "model \(name)\n"
        for v in values {
            switch v.kind {
            case .input:
                out += "input \(v.name): \(v.type)\n"
            case .parameter(let p):
                out += "param \(v.name): \(v.type)\(parameterAttributes(p))\n"
            case .state(let i):
                out += "state \(v.name): \(v.type), init=\(i)\n"
            case .intermediate:
                break
            }
        }
        for node in nodes {
            var line = ""
            if !node.outputs.isEmpty {
                line += node.outputs.map { self[$0].name }.joined(separator: ", ") + " = "
            }
            var args = node.inputs.map { self[$0].name }
            args += node.op.attributes.map { "\($0.0)=\($0.1)" }
            line += "\(node.op.name)(\(args.joined(separator: ", ")))"
            if types, !node.outputs.isEmpty {
                line += "  # " + node.outputs.map { self[$0].type.description }.joined(separator: ", ")
            }
            out += line + "\n"
        }
        if !outputs.isEmpty {
            out += "output " + outputs.map { self[$0].name }.joined(separator: ", ") + "\n"
        }
        if let t = training { out += t.printed() }
        return out
    }

    private func parameterAttributes(_ p: ParameterInfo) -> String {
        var s = ", init=\(p.initializer)"
        if !p.trainable { s += ", trainable=false" }
        if p.l2 != 0 { s += ", l2=\(formatDouble(p.l2))" }
        if let m = p.maxNorm { s += ", max_norm=\(formatDouble(m.value)), max_norm_axis=\(m.axis.rawValue)" }
        if p.lrScale != 1 { s += ", lr_scale=\(formatDouble(p.lrScale))" }
        return s
    }
}

extension TrainingConfig {
    public func printed() -> String {
        var s = "train {\n"
        s += "  loss = \(loss)\n"
        switch optimizer {
        case .sgd(let lr, let a):
            var wd = ""
            if a.weightDecay != 0 { wd = ", weight_decay=\(formatDouble(a.weightDecay))" + (a.decoupled ? ", decoupled=true" : "") }
            s += "  optimizer = sgd(lr=\(formatDouble(lr)), momentum=\(formatDouble(a.momentum)), nesterov=\(a.nesterov)\(wd))\n"
        case .adam(let lr, let a):
            s += "  optimizer = adam(lr=\(formatDouble(lr)), beta1=\(formatDouble(a.beta1)), beta2=\(formatDouble(a.beta2)), epsilon=\(formatDouble(a.epsilon)))\n"
        }
        s += "  schedule = \(schedule.printed)\n"
        s += "  batch = \(batchSize)\n"
        s += "  epochs = \(epochs)\n"
        s += "  seed = \(seed)\n"
        s += "  input_scale = \(formatDouble(inputScale))\n"
        s += "  augment = \(augmentation.printed)\n"
        if labelSmoothing != 0 { s += "  label_smoothing = \(formatDouble(labelSmoothing))\n" }
        if ema != 0 { s += "  ema = \(formatDouble(ema))\n" }
        if mixup != 0 { s += "  mixup = \(formatDouble(mixup))\n" }
        if distill != 0 { s += "  distill = \(formatDouble(distill))\n" }
        if distillTemperature != 1 { s += "  distill_temperature = \(formatDouble(distillTemperature))\n" }
        if compute != "f32" { s += "  compute = \(compute)\n" }
        if let f = finish {
            s += "  finish = finish(epochs=\(f.epochs), lr=\(formatDouble(f.learningRate)), schedule=\(f.schedule.printed)"
                + (f.augmentation.map { ", augment=\($0.printed)" } ?? "") + ")\n"
        }
        return s + "}\n"
    }
}

extension LRSchedule {
    /// As the train block writes it.
    public var printed: String {
        switch self {
        case .constant: return "constant"
        case .inverseTime(let d): return "inverse_time(decay=\(formatDouble(d)))"
        case .cosine(let m, let w): return "cosine(min_factor=\(formatDouble(m)), warmup_epochs=\(formatDouble(w)))"
        case .step(let every, let f): return "step(every=\(every), factor=\(formatDouble(f)))"
        }
    }
}

extension Augmentation {
    /// As the train block writes it.
    public var printed: String {
        if isNone { return "none" }
        var extra = ""
        if usesExtendedOptions {
            // crop=0 is "no crop", which the language writes by leaving crop out.
            extra = (crop != 0 ? ", crop=\(crop)" : "") + ", pad=\(pad), pad_mode=\(padMode.rawValue), rotate=\(formatDouble(rotate)), scale=\(formatDouble(scale))"
                + ", erase=\(formatDouble(erase)), erase_min=\(formatDouble(eraseMin)), erase_max=\(formatDouble(eraseMax))"
        }
        return "augment(hflip=\(horizontalFlip), shift=\(formatDouble(shift))\(extra))"
    }
}
