// How kernels read in tools and error messages: `conv2d 3x3/1 1->32 48x48 +bias +relu +bn`.

extension Kernel {
    /// The case name: "conv2d", "fused", "relu", ...
    public var name: String {
        Mirror(reflecting: self).children.first?.label ?? String(describing: self)
    }

    /// One line a person can read: the geometry and, for fused kernels, the epilogue.
    public var summary: String {
        switch self {
        case .conv2d(let g, let bias): return Kernel.describe(.conv2d(g)) + (bias ? " +bias" : "")
        case .dense(let i, let o, let bias): return Kernel.describe(.dense(inFeatures: i, outFeatures: o)) + (bias ? " +bias" : "")
        case .fused(let a, let e): return "fused " + Kernel.describe(a) + Kernel.describe(e)
        case .fusedTrain(let a, let e): return "fused (training) " + Kernel.describe(a) + Kernel.describe(e)
        case .fusedTrainGrad(let a, let e, let dx, let dw):
            let grads = [dx ? "dx" : nil, dw ? "dw" : nil].compactMap { $0 }.joined(separator: ", ")
            return "fused backward " + Kernel.describe(a) + Kernel.describe(e) + (grads.isEmpty ? "" : " -> " + grads)
        case .conv2dGradInput(let g): return "conv2d grad input " + Kernel.describe(.conv2d(g))
        case .conv2dGradWeight(let g): return "conv2d grad weight " + Kernel.describe(.conv2d(g))
        case .preprocess(let t, let p, let h, let w): return "preprocess \(t.name) \(p)x\(h)x\(w)"
        default: return String(describing: self).split(separator: "Runtime.", omittingEmptySubsequences: false).joined()
        }
    }

    static func describe(_ a: FusedAnchor) -> String {
        switch a {
        case .conv2d(let g):
            return "conv2d \(g.kernelHeight)x\(g.kernelWidth)/\(g.stride) \(g.inChannels)->\(g.outChannels) \(g.inHeight)x\(g.inWidth)->\(g.outHeight)x\(g.outWidth)"
        case .dense(let i, let o):
            return "dense \(i)->\(o)"
        }
    }

    static func describe(_ e: FusedEpilogue) -> String {
        var parts: [String] = []
        if e.bias { parts.append("+bias") }
        switch e.batchnorm {
        case .none: if e.relu { parts.append("+relu") }
        case .beforeRelu: parts.append("+bn"); if e.relu { parts.append("+relu") }
        case .afterRelu: if e.relu { parts.append("+relu") }; parts.append("+bn")
        }
        return parts.isEmpty ? "" : " " + parts.joined(separator: " ")
    }
}
