// A Keras-like model summary: one row per layer (the nodes whose names share the part before
// the first '.', so `c1.preact = conv2d` and `c1 = relu` are the layer `c1`), with the op
// chain, the output shape and the parameter count; totals split as Keras splits them.

public struct LayerSummary: Sendable, Equatable {
    public var name: String
    public var ops: [String]
    public var outputType: TensorType?
    public var params: Int
}

public struct ModelSummary: Sendable, Equatable {
    public var model: String
    public var layers: [LayerSummary]
    public var paramsTotal: Int
    public var paramsTrainable: Int
    public var paramsNonTrainable: Int
}

extension Graph {
    public func summary() -> ModelSummary {
        var layers: [LayerSummary] = []
        var index: [String: Int] = [:]
        var counted = Set<ValueID>()
        var trainable = 0, nonTrainable = 0
        for node in nodes {
            let layer = String(node.name.split(separator: ".", maxSplits: 1).first ?? Substring(node.name))
            var params = 0
            for input in node.inputs where self[input].kind.isPersistent && !counted.contains(input) {
                counted.insert(input)
                let n = self[input].type.elementCount(batch: 1)
                params += n
                if case .parameter(let p) = self[input].kind, p.trainable { trainable += n } else { nonTrainable += n }
            }
            let out = node.outputs.first.map { self[$0].type }
            if let i = index[layer] {
                layers[i].ops.append(node.op.summaryName)
                layers[i].params += params
                if let out { layers[i].outputType = out }
            } else {
                index[layer] = layers.count
                layers.append(LayerSummary(name: layer, ops: [node.op.summaryName], outputType: out, params: params))
            }
        }
        return ModelSummary(model: name, layers: layers, paramsTotal: trainable + nonTrainable,
                            paramsTrainable: trainable, paramsNonTrainable: nonTrainable)
    }
}

extension ModelSummary {
    /// The table as text, Keras' columns.
    public func table() -> String {
        let rows = layers.map { l -> [String] in
            [l.name, l.ops.joined(separator: "+"), l.outputType?.description ?? "-", grouped(l.params)]
        }
        let header = ["Layer", "Op", "Output shape", "Params"]
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ r: [String]) -> String {
            r.enumerated().map { i, c in
                i == 3 ? String(repeating: " ", count: widths[i] - c.count) + c
                       : c + String(repeating: " ", count: widths[i] - c.count)
            }.joined(separator: "  ")
        }
        let rule = String(repeating: "─", count: widths.reduce(0, +) + 6)
        var s = "Model: \(model)\n\(rule)\n\(line(header))\n\(rule)\n"
        for r in rows { s += line(r) + "\n" }
        s += "\(rule)\nTotal params: \(grouped(paramsTotal))\nTrainable params: \(grouped(paramsTrainable))\n"
        s += "Non-trainable params: \(grouped(paramsNonTrainable))\n"
        return s
    }
}

/// 3066471 -> "3,066,471"
public func grouped(_ n: Int) -> String {
    let s = String(abs(n))
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0, (s.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return n < 0 ? "-" + out : out
}
