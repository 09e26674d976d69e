// Layer sugar: `conv2d`, `dense` and `batchnorm` called with one positional input create their
// own parameters, Keras-style, and lower to the explicit form the printer writes:
//
//   c1 = conv2d(x, filters=32, activation=relu, max_norm=4)
// becomes
//   param c1.weight: f32[32, 1, 3, 3], init=glorot_uniform, max_norm=4.0, max_norm_axis=keras
//   param c1.bias: f32[32], init=zeros
//   c1.preact = conv2d(x, c1.weight, c1.bias, stride=1, padding=same)
//   c1 = relu(c1.preact)
//
// `l2` and `max_norm` apply to the weight only (Keras' kernel_regularizer and
// kernel_constraint); `trainable=false` freezes every parameter the layer creates, and
// `lr_scale` multiplies the optimizer's learning rate for every parameter it creates.

#if canImport(GraphIR)
import GraphIR
#endif

enum LayerKind: String {
    case conv2d, dense, batchnorm

    var keys: [String] {
        switch self {
        case .conv2d:
            return ["filters", "kernel", "stride", "padding", "bias", "activation", "alpha", "init", "bias_init",
                    "l2", "max_norm", "max_norm_axis", "trainable", "lr_scale"]
        case .dense:
            return ["units", "bias", "activation", "alpha", "init", "bias_init", "l2", "max_norm", "max_norm_axis",
                    "trainable", "lr_scale"]
        case .batchnorm:
            return ["epsilon", "momentum", "trainable", "lr_scale"]
        }
    }
}

private enum Activation: String, CaseIterable { case none, relu, leaky_relu }

extension Lowering {
    mutating func lowerLayer(_ kind: LayerKind, outputs: [Name], op: Name, x: Expr, input: ValueID,
                             kw: inout Keywords) throws(Diagnostic) {
        guard outputs.count == 1, let y = outputs.first else {
            if outputs.count > 1 {
                throw source.error(outputs[1].loc, "a \(op.text) layer has one output, but \(outputs.count) names were given")
            }
            throw source.error(op.loc, "the \(op.text) layer must be named, as in 'y = \(op.text)(\(x.described), ...)'")
        }
        for (k, _) in kw.entries where !kind.keys.contains(k.text) {
            throw unknownAttribute(k, valid: kind.keys, what: "the \(op.text) layer", source: source)
        }
        let xt = graph[input].type
        switch kind {
        case .conv2d:
            guard xt.dtype == .f32, xt.isBatched, xt.rank == 4 else {
                throw source.error(x.loc, "a conv2d layer expects an input f32[N, C, H, W], but '\(x.described)' is \(xt)",
                                   notes: definitionNote(x.described))
            }
            let filters = try required("filters", kw: &kw, op: op)
            var kernel = [3, 3]
            if let (k, v) = kw.take("kernel") { kernel = try kernelSize(v, key: k.text) }
            let conv = try makeOp("conv2d", kw.takeAll(["stride", "padding"]), op: op, kw: kw)
            try weightedLayer(kind, y: y, op: op, x: x, input: input, kw: &kw, made: conv,
                              weightDims: [filters.value, xt.perSample[0], kernel[0], kernel[1]], sizeLoc: filters.loc)
        case .dense:
            guard xt.dtype == .f32, xt.rank == 2 else {
                let hint = xt.rank > 2 ? "; flatten it first: 'f = flatten(\(x.described))'" : ""
                throw source.error(x.loc, "a dense layer expects an input f32[N, I], but '\(x.described)' is \(xt)\(hint)",
                                   notes: definitionNote(x.described))
            }
            let units = try required("units", kw: &kw, op: op)
            try weightedLayer(kind, y: y, op: op, x: x, input: input, kw: &kw, made: .dense,
                              weightDims: [units.value, xt.perSample[xt.isBatched ? 0 : 1]], sizeLoc: units.loc)
        case .batchnorm:
            guard xt.dtype == .f32, xt.isBatched, xt.rank >= 2 else {
                throw source.error(x.loc, "a batchnorm layer expects an input f32[N, C, ...], but '\(x.described)' is \(xt)",
                                   notes: definitionNote(x.described))
            }
            let bn = try makeOp("batchnorm", kw.takeAll(["epsilon", "momentum"]), op: op, kw: kw)
            var trainable = true
            if let (k, v) = kw.take("trainable") { trainable = try boolean(v, key: k.text) }
            let rate = try lrScale(&kw, trainable: trainable, what: "the \(op.text) layer")
            let c = xt.perSample[0]
            var ids = [input]
            let members: [(String, ValueKind)] = [
                ("gamma", .parameter(ParameterInfo(initializer: .ones, trainable: trainable, lrScale: rate))),
                ("beta", .parameter(ParameterInfo(initializer: .zeros, trainable: trainable, lrScale: rate))),
                ("running_mean", .state(.zeros)),
                ("running_var", .state(.ones)),
            ]
            for (suffix, valueKind) in members {
                ids.append(try createValue(y, suffix, .fixed([c]), valueKind, op: op))
            }
            try addNode(bn, inputs: ids, argLocs: [x.loc], outputs: [y], op: op, name: y.text)
        }
    }

    private mutating func weightedLayer(_ kind: LayerKind, y: Name, op: Name, x: Expr, input: ValueID,
                                        kw: inout Keywords, made: Op, weightDims: [Int], sizeLoc: Loc) throws(Diagnostic) {
        let weightType = TensorType.fixed(weightDims)
        guard checkedElementCount(weightDims) != nil else {
            throw source.error(sizeLoc, "the weight \(weightType) would have more than \(maxElements) elements")
        }
        var bias = true
        if let (k, v) = kw.take("bias") { bias = try boolean(v, key: k.text) }
        var activation = Activation.none
        if let (k, v) = kw.take("activation") { activation = try choice(v, key: k.text, as: Activation.self) }
        var alpha = 0.3
        if let (k, v) = kw.take("alpha") {
            guard activation == .leaky_relu else {
                throw source.error(k.loc, "alpha applies only with activation=leaky_relu")
            }
            alpha = try number(v, key: k.text)
        }
        let info = try parameterInfo(&kw, type: weightType, defaultInit: .glorotUniform, prefix: "",
                                     what: "the \(op.text) layer")
        var biasInit = Initializer.zeros
        if let (k, v) = kw.take("bias_init") {
            guard bias else { throw source.error(k.loc, "bias_init given, but the layer has bias=false") }
            biasInit = try initializer(v, key: k.text)
        }
        try kw.finish(valid: kind.keys, what: "the \(op.text) layer", source: source)

        var inputs = [input]
        inputs.append(try createValue(y, "weight", weightType, .parameter(info), op: op))
        if bias {
            let biasInfo = ParameterInfo(initializer: biasInit, trainable: info.trainable, lrScale: info.lrScale)
            inputs.append(try createValue(y, "bias", .fixed([weightDims[0]]), .parameter(biasInfo), op: op))
        }
        let preact = activation == .none ? y : Name(text: y.text + ".preact", loc: y.loc)
        let pre = try addNode(made, inputs: inputs, argLocs: [x.loc], outputs: [preact], op: op, name: preact.text)
        switch activation {
        case .none: break
        case .relu:
            try addNode(.relu, inputs: pre, argLocs: [op.loc], outputs: [y], op: op, name: y.text)
        case .leaky_relu:
            try addNode(.leakyRelu(alpha: alpha), inputs: pre, argLocs: [op.loc], outputs: [y], op: op, name: y.text)
        }
    }

    /// A parameter or state value a layer creates, named `<layer>.<suffix>`.
    private mutating func createValue(_ y: Name, _ suffix: String, _ type: TensorType, _ kind: ValueKind,
                                      op: Name) throws(Diagnostic) -> ValueID {
        let name = Name(text: y.text + "." + suffix, loc: y.loc)
        try define(name, created: "the \(op.text) layer '\(y.text)' creates it")
        return try add(Value(name: name.text, type: type, kind: kind), at: y.loc)
    }

    private func required(_ key: String, kw: inout Keywords, op: Name) throws(Diagnostic) -> (value: Int, loc: Loc) {
        guard let (k, v) = kw.take(key) else {
            throw source.error(op.loc, "missing required attribute '\(key)' for the \(op.text) layer")
        }
        return (try integer(v, key: k.text, atLeast: 1), v.loc)
    }

    /// `kernel=3` or `kernel=[3, 5]`.
    private func kernelSize(_ e: Expr, key: String) throws(Diagnostic) -> [Int] {
        let r = resolved(e)
        switch r.kind {
        case .number:
            let k = try integer(r, key: key, atLeast: 1)
            return [k, k]
        case .list(let items) where items.count == 2:
            return [try integer(items[0], key: key, atLeast: 1), try integer(items[1], key: key, atLeast: 1)]
        case .list, .ident, .call:
            throw mismatch(r, key: key, expected: "an integer or a list [kh, kw]")
        }
    }

    /// Builds an op from some of the layer's keywords (stride, padding, epsilon, momentum).
    private func makeOp(_ name: String, _ entries: [(key: Name, value: Expr)], op: Name, kw: Keywords) throws(Diagnostic) -> Op {
        var attributes: [String: Attribute] = [:]
        for (k, v) in entries { attributes[k.text] = try attribute(v, key: k.text) }
        let made: Op?
        do throws(AttributeError) {
            made = try Op.make(name: name, attributes: attributes)
        } catch {
            throw attributeError(error, op: op, kw: kw)
        }
        guard let made else { throw source.error(op.loc, "unknown op '\(name)'") }
        return made
    }
}
