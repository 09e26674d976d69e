// A compiled inference plan as an ONNX model (IR version 7, opset 13). The export works from
// the plan's steps, which is what users have: each kernel becomes the ONNX op(s) that compute
// the same thing with explicit attributes (Conv and pooling with explicit pads, TensorFlow's
// `same` rule resolved into numbers; Gemm with transB=1; BatchNormalization with the model's
// epsilon). A fused step is written as its parts. The plan's input scale becomes a Mul on the
// input, so the ONNX model takes raw pixels as `Session.predictRaw` does, and a Softmax gives a
// `probabilities` output beside the logits.

import Runtime

public struct ExportError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public struct ExportOptions: Sendable {
    /// Add a Softmax after a single logits output, as the output `probabilities`.
    public var probabilities = true
    /// Written to the model's producer_version.
    public var producerVersion = "0.1.0"
    /// The plan's weights hash when the caller has it (a plan file records it); computed otherwise.
    public var weightsSHA256: String?
    public init() {}
}

/// The metadata keys fergc writes (and the importer reads back).
public enum ONNXMetadataKey {
    public static let classNames = "fergc.class_names"
    public static let inputScale = "fergc.input_scale"
    public static let inputLayout = "fergc.input_layout"
    public static let inputShape = "fergc.input_shape"
    public static let sourceHash = "fergc.source_hash"
    public static let weightsSHA256 = "fergc.weights_sha256"
    public static let modelName = "fergc.model_name"
    public static let scaleApplied = "fergc.input_scale_applied"
}

public func exportONNX(_ plan: Plan, _ options: ExportOptions = ExportOptions()) throws(ExportError) -> ONNXModel {
    var e = Exporter(plan: plan)
    try e.run(options)
    var m = ONNXModel()
    m.irVersion = 7
    m.opsetImports = [("", 13)]
    m.producerName = "fergc"
    m.producerVersion = options.producerVersion
    m.docString = "\(plan.metadata.modelName.isEmpty ? plan.name : plan.metadata.modelName), exported by fergc from a compiled plan"
    m.graph = e.graph
    let meta = plan.metadata
    m.metadataProps = [
        (ONNXMetadataKey.modelName, meta.modelName.isEmpty ? plan.name : meta.modelName),
        (ONNXMetadataKey.classNames, jsonStringArray(meta.classNames)),
        (ONNXMetadataKey.inputScale, "\(meta.inputScale)"),
        (ONNXMetadataKey.scaleApplied, meta.inputScale == 1 ? "false" : "true"),
        (ONNXMetadataKey.inputLayout, "NCHW"),
        (ONNXMetadataKey.inputShape, "[" + e.inputShape.map(String.init).joined(separator: ",") + "]"),
        (ONNXMetadataKey.sourceHash, meta.sourceHash),
        (ONNXMetadataKey.weightsSHA256, options.weightsSHA256 ?? weightsSHA256(plan)),
    ]
    return m
}

/// `["a","b"]` with JSON string escapes.
func jsonStringArray(_ items: [String]) -> String {
    func esc(_ s: String) -> String {
        var r = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            case "\t": r += "\\t"
            default:
                if u.value < 0x20 { r += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16) } else { r.unicodeScalars.append(u) }
            }
        }
        return r + "\""
    }
    return "[" + items.map(esc).joined(separator: ",") + "]"
}

/// Reads a JSON array of strings as `jsonStringArray` writes it (and any other simple one);
/// nil if it is not one.
public func parseJSONStringArray(_ text: String) -> [String]? {
    var s = Array(text.unicodeScalars)[...]
    func skipSpace() { while let c = s.first, c == " " || c == "\n" || c == "\t" || c == "\r" { s.removeFirst() } }
    skipSpace()
    guard s.popFirst() == "[" else { return nil }
    var out: [String] = []
    skipSpace()
    if s.first == "]" { s.removeFirst(); skipSpace(); return s.isEmpty ? out : nil }
    while true {
        skipSpace()
        guard s.popFirst() == "\"" else { return nil }
        var str = String.UnicodeScalarView()
        while true {
            guard let c = s.popFirst() else { return nil }
            if c == "\"" { break }
            if c == "\\" {
                guard let d = s.popFirst() else { return nil }
                switch d {
                case "\"": str.append("\"")
                case "\\": str.append("\\")
                case "/": str.append("/")
                case "n": str.append("\n")
                case "t": str.append("\t")
                case "r": str.append("\r")
                case "u":
                    guard s.count >= 4, let v = UInt32(String(String.UnicodeScalarView(s.prefix(4))), radix: 16),
                          let u = Unicode.Scalar(v) else { return nil }
                    s.removeFirst(4)
                    str.append(u)
                default: return nil
                }
            } else {
                str.append(c)
            }
        }
        out.append(String(str))
        skipSpace()
        guard let c = s.popFirst() else { return nil }
        if c == "]" { break }
        guard c == "," else { return nil }
    }
    skipSpace()
    return s.isEmpty ? out : nil
}

struct Exporter {
    let plan: Plan
    var graph = ONNXGraph()
    /// ONNX value name of each plan buffer (the buffer's name, or the scaled input).
    var valueName: [Int: String] = [:]
    var usedNames: Set<String> = []
    var inputShape: [Int] = []
    var nodeCount = 0

    init(plan: Plan) {
        self.plan = plan
    }

    mutating func fresh(_ stem: String) -> String {
        var n = stem, i = 1
        while usedNames.contains(n) { n = "\(stem).\(i)"; i += 1 }
        usedNames.insert(n)
        return n
    }

    mutating func node(_ op: String, _ inputs: [String], _ outputs: [String], _ attrs: [ONNXAttribute] = [], name: String) {
        graph.nodes.append(ONNXNode(name: fresh("node." + name), opType: op, inputs: inputs, outputs: outputs, attributes: attrs))
        nodeCount += 1
    }

    mutating func constant(_ stem: String, dims: [Int], floats: [Float]) -> String {
        let n = fresh(stem)
        graph.initializers.append(ONNXTensor(name: n, dims: dims, floats: floats))
        return n
    }

    mutating func constant(_ stem: String, int64s: [Int64]) -> String {
        let n = fresh(stem)
        graph.initializers.append(ONNXTensor(name: n, dims: [int64s.count], int64s: int64s))
        return n
    }

    func shape(_ b: Int) -> [ONNXDim] {
        let d = plan.buffers[b]
        return (d.batched ? [.param("N")] : []) + d.perSample.map { .value($0) }
    }

    mutating func run(_ options: ExportOptions) throws(ExportError) {
        guard plan.metadata.mode != "training" else {
            throw ExportError("'\(plan.name)' is a training plan (one training step, with its loss and updates); export an inference plan (compile without --train) or the .graph")
        }
        graph.name = plan.metadata.modelName.isEmpty ? plan.name : plan.metadata.modelName
        if graph.name.isEmpty { graph.name = "fergc" }
        for b in plan.buffers { usedNames.insert(b.name) }
        // Which buffers the steps read: inputs fed by the caller, parameters.
        var read = Set<Int>()
        for s in plan.steps { read.formUnion(s.inputs) }
        for (i, b) in plan.buffers.enumerated() where read.contains(i) {
            switch b.role {
            case .input:
                guard b.elementType == .f32 else {
                    throw ExportError("input '\(b.name)' is \(b.elementType.rawValue); an inference plan reads f32 inputs only (was the plan compiled with --train?)")
                }
                graph.inputs.append(ONNXValueInfo(name: b.name, elementType: ONNXDataType.float, shape: shape(i)))
                valueName[i] = b.name
                if inputShape.isEmpty { inputShape = b.perSample }
                let scale = plan.metadata.inputScale
                if scale != 1 {
                    let c = constant(b.name + ".input_scale", dims: [], floats: [Float(scale)])
                    let scaled = fresh(b.name + ".scaled")
                    node("Mul", [b.name, c], [scaled], name: b.name + ".input_scale")
                    valueName[i] = scaled
                }
            case .parameter, .state:
                let values = plan.parameters[b.name] ?? [Float](repeating: 0, count: b.elementsPerSample)
                guard values.count == b.elementsPerSample else {
                    throw ExportError("parameter '\(b.name)' has \(values.count) values for shape \(b.perSample)")
                }
                graph.initializers.append(ONNXTensor(name: b.name, dims: b.perSample, floats: values))
                valueName[i] = b.name
            case .intermediate:
                break
            }
        }
        for s in plan.steps { try emit(s) }
        guard !plan.outputs.isEmpty else { throw ExportError("the plan has no outputs") }
        for o in plan.outputs {
            guard let n = valueName[o] else { throw ExportError("output '\(plan.buffers[o].name)' is not computed by any step") }
            graph.outputs.append(ONNXValueInfo(name: n, elementType: ONNXDataType.float, shape: shape(o)))
        }
        if options.probabilities, plan.outputs.count == 1 {
            let o = plan.outputs[0]
            // Not after an output that already is probabilities (a softmax's, an ensemble's mean).
            if !plan.outputIsProbabilities, plan.buffers[o].batched, plan.buffers[o].perSample.count == 1 {
                let p = fresh("probabilities")
                node("Softmax", [valueName[o]!], [p], [ONNXAttribute(name: "axis", value: .int(-1))], name: "probabilities")
                graph.outputs.append(ONNXValueInfo(name: p, elementType: ONNXDataType.float, shape: shape(o)))
            }
        }
    }

    func input(_ s: Step, _ k: Int) throws(ExportError) -> String {
        guard k < s.inputs.count, let n = valueName[s.inputs[k]] else {
            throw ExportError("step '\(s.name)' (\(s.kernel.name)): input \(k) is not computed before it")
        }
        return n
    }

    /// ONNX pads [top, left, bottom, right] that give `out` positions with fergc's leading pads.
    static func pads(inH: Int, inW: Int, k: Int, kw: Int, stride: Int, top: Int, left: Int, outH: Int, outW: Int) -> [Int64] {
        let bottom = max(0, (outH - 1) * stride + k - inH - top)
        let right = max(0, (outW - 1) * stride + kw - inW - left)
        return [Int64(top), Int64(left), Int64(bottom), Int64(right)]
    }

    mutating func conv(_ s: Step, _ g: ConvGeometry, x: String, bias: String?, out: String) throws(ExportError) {
        let w = try input(s, 1)
        let pads = Exporter.pads(inH: g.inHeight, inW: g.inWidth, k: g.kernelHeight, kw: g.kernelWidth, stride: g.stride,
                                 top: g.padTop, left: g.padLeft, outH: g.outHeight, outW: g.outWidth)
        node("Conv", [x, w] + (bias.map { [$0] } ?? []), [out], [
            ONNXAttribute(name: "kernel_shape", value: .ints([Int64(g.kernelHeight), Int64(g.kernelWidth)])),
            ONNXAttribute(name: "strides", value: .ints([Int64(g.stride), Int64(g.stride)])),
            ONNXAttribute(name: "pads", value: .ints(pads)),
            ONNXAttribute(name: "dilations", value: .ints([1, 1])),
            ONNXAttribute(name: "group", value: .int(1)),
        ], name: s.name)
    }

    /// x flattened to [N, features] if the buffer is not already 2-d.
    mutating func asMatrix(_ s: Step, _ k: Int) throws(ExportError) -> String {
        let x = try input(s, k)
        if plan.buffers[s.inputs[k]].perSample.count == 1 { return x }
        let f = fresh(s.name + ".flat")
        node("Flatten", [x], [f], [ONNXAttribute(name: "axis", value: .int(1))], name: s.name + ".flatten")
        return f
    }

    mutating func gemm(_ s: Step, x: String, bias: String?, out: String) throws(ExportError) {
        node("Gemm", [x, try input(s, 1)] + (bias.map { [$0] } ?? []), [out], [
            ONNXAttribute(name: "transB", value: .int(1)),
        ], name: s.name)
    }

    mutating func batchnorm(_ s: Step, _ x: String, _ first: Int, epsilon: Float, out: String) throws(ExportError) {
        node("BatchNormalization", [x, try input(s, first), try input(s, first + 1), try input(s, first + 2), try input(s, first + 3)], [out], [
            ONNXAttribute(name: "epsilon", value: .float(epsilon)),
        ], name: s.name + ".batchnorm")
    }

    /// Axis (of the full tensor, batch first) along which a per-sample [outer, n * inner] split
    /// happens, found from the shape.
    func axis(of b: Int, outer: Int, inner: Int, size: Int) -> Int? {
        let dims = plan.buffers[b].perSample
        for a in dims.indices {
            let before = dims[..<a].reduce(1, *), after = dims[(a + 1)...].reduce(1, *)
            if before == outer, after == inner, dims[a] == size { return a + 1 }
        }
        return nil
    }

    mutating func emit(_ s: Step) throws(ExportError) {
        let outName: String
        if let o = s.outputs.first { outName = plan.buffers[o].name } else { outName = s.name }
        func done(_ n: String) { if let o = s.outputs.first { valueName[o] = n } }
        func unsupported(_ why: String) -> ExportError {
            ExportError("step '\(s.name)' (\(s.kernel.name)): \(why)")
        }
        let training = "a training kernel; export an inference plan (compile without --train)"
        switch s.kernel {
        case .conv2d(let g, let bias):
            try conv(s, g, x: try input(s, 0), bias: bias ? try input(s, 2) : nil, out: outName)
        case .dense(_, _, let bias):
            try gemm(s, x: try asMatrix(s, 0), bias: bias ? try input(s, 2) : nil, out: outName)
        case .relu:
            node("Relu", [try input(s, 0)], [outName], name: s.name)
        case .leakyRelu(let alpha):
            node("LeakyRelu", [try input(s, 0)], [outName], [ONNXAttribute(name: "alpha", value: .float(alpha))], name: s.name)
        case .batchnormInference(_, _, let eps):
            try batchnorm(s, try input(s, 0), 1, epsilon: eps, out: outName)
        case .maxpool(let g), .avgpool(let g):
            let isMax: Bool
            if case .maxpool = s.kernel { isMax = true } else { isMax = false }
            let pads = Exporter.pads(inH: g.inHeight, inW: g.inWidth, k: g.size, kw: g.size, stride: g.stride,
                                     top: g.padTop, left: g.padLeft, outH: g.outHeight, outW: g.outWidth)
            var attrs = [
                ONNXAttribute(name: "kernel_shape", value: .ints([Int64(g.size), Int64(g.size)])),
                ONNXAttribute(name: "strides", value: .ints([Int64(g.stride), Int64(g.stride)])),
                ONNXAttribute(name: "pads", value: .ints(pads)),
            ]
            // fergc averages over the in-bounds elements only.
            if !isMax { attrs.append(ONNXAttribute(name: "count_include_pad", value: .int(0))) }
            node(isMax ? "MaxPool" : "AveragePool", [try input(s, 0)], [outName], attrs, name: s.name)
        case .softmax:
            node("Softmax", [try input(s, 0)], [outName], [ONNXAttribute(name: "axis", value: .int(-1))], name: s.name)
        case .add, .mul:
            let op: String
            if case .add = s.kernel { op = "Add" } else { op = "Mul" }
            guard s.inputs.count >= 2 else { throw unsupported("needs two inputs or more") }
            var acc = try input(s, 0)
            for k in 1..<s.inputs.count {
                let target = k == s.inputs.count - 1 ? outName : fresh("\(outName).partial\(k)")
                node(op, [acc, try input(s, k)], [target], name: k == 1 ? s.name : "\(s.name).\(k)")
                acc = target
            }
        case .copy:
            guard let o = s.outputs.first else { throw unsupported("has no output") }
            let dims = plan.buffers[o].perSample
            if dims.count == 1 && plan.buffers[s.inputs[0]].perSample.count > 1 {
                node("Flatten", [try input(s, 0)], [outName], [ONNXAttribute(name: "axis", value: .int(1))], name: s.name)
            } else {
                let shape = constant(outName + ".shape", int64s: [-1] + dims.map { Int64($0) })
                node("Reshape", [try input(s, 0), shape], [outName], name: s.name)
            }
        case .concat(let outer, let inner, let sizes):
            guard let o = s.outputs.first, let a = axis(of: o, outer: outer, inner: inner, size: sizes.reduce(0, +)) else {
                throw unsupported("no axis of the output matches the concatenation")
            }
            node("Concat", try (0..<s.inputs.count).map { (k) throws(ExportError) in try input(s, k) }, [outName],
                 [ONNXAttribute(name: "axis", value: .int(Int64(a)))], name: s.name)
        case .slice(let outer, let inner, let total, let start, let length):
            guard let a = axis(of: s.inputs[0], outer: outer, inner: inner, size: total) else {
                throw unsupported("no axis of the input matches the slice")
            }
            let starts = constant(outName + ".starts", int64s: [Int64(start)])
            let ends = constant(outName + ".ends", int64s: [Int64(start + length)])
            let axes = constant(outName + ".axes", int64s: [Int64(a)])
            node("Slice", [try input(s, 0), starts, ends, axes], [outName], name: s.name)
        case .scale(let factor):
            let c = constant(outName + ".factor", dims: [], floats: [factor])
            node("Mul", [try input(s, 0), c], [outName], name: s.name)
        case .fused(let anchor, let e):
            var cur = try input(s, 0)
            let bias = e.bias ? try input(s, 2) : nil
            let bnFirst = e.bias ? 3 : 2
            // The anchor with its bias, then relu and batchnorm in the epilogue's order.
            var stages: [String] = []
            if e.batchnorm == .beforeRelu { stages.append("bn") }
            if e.relu { stages.append("relu") }
            if e.batchnorm == .afterRelu { stages.append("bn") }
            let anchorOut = stages.isEmpty ? outName : fresh(s.name + (anchor.isConv ? ".conv" : ".dense"))
            switch anchor {
            case .conv2d(let g): try conv(s, g, x: cur, bias: bias, out: anchorOut)
            case .dense: try gemm(s, x: try asMatrix(s, 0), bias: bias, out: anchorOut)
            }
            cur = anchorOut
            for (k, st) in stages.enumerated() {
                let target = k == stages.count - 1 ? outName : fresh("\(s.name).\(st)")
                if st == "relu" {
                    node("Relu", [cur], [target], name: s.name + ".relu")
                } else {
                    try batchnorm(s, cur, bnFirst, epsilon: e.epsilon, out: target)
                }
                cur = target
            }
        case .ttaViews, .ttaMean:
            throw unsupported("test-time augmentation has no ONNX export yet; export the plan compiled without --tta (and average the views' softmax outside)")
        case .preprocess(let t, _, _, _):
            throw unsupported("the preprocessing op \(t) has no ONNX equivalent; export a model without it and apply the preprocessing before ONNX Runtime")
        case .softmaxCrossEntropy, .softmaxCrossEntropySmoothed, .softmaxCrossEntropySoft, .constant, .l2Penalty:
            throw unsupported("computes a loss, which has no place in an exported inference model; export an inference plan (compile without --train)")
        case .batchnormTrain, .dropoutTrain, .conv2dGradInput, .conv2dGradWeight, .biasGrad, .denseGradInput,
             .denseGradWeight, .reluGrad, .leakyReluGrad, .batchnormTrainGrad, .batchnormInferenceGrad, .maxpoolGrad,
             .avgpoolGrad, .softmaxGrad, .softmaxCrossEntropyGrad, .l2PenaltyGrad, .sgdUpdate, .adamUpdate,
             .maxNormProject, .batchnormStatsUpdate, .increment, .fusedTrain, .fusedTrainGrad,
             .softmaxCrossEntropySmoothedGrad, .softmaxCrossEntropySoftGrad, .sgdWeightDecayUpdate:
            throw unsupported(training)
        }
        done(outName)
    }
}

extension FusedAnchor {
    var isConv: Bool { if case .conv2d = self { return true } else { return false } }
}
