// Shape inference: for each op, the types of its outputs from the types of its inputs, or an
// error that names the inputs involved (by position) so that the frontend can point at the
// line where each of them was defined.

public struct ShapeError: Error, Sendable, Equatable {
    public var message: String
    /// Positions of the inputs the message is about.
    public var inputs: [Int]
    public init(_ message: String, inputs: [Int] = []) {
        self.message = message
        self.inputs = inputs
    }
}

/// The spatial output size of a window of `size` moved by `stride` over `n` positions.
public func windowOutput(_ n: Int, size: Int, stride: Int, padding: Padding) -> Int {
    switch padding {
    case .same: return n / stride + (n % stride == 0 ? 0 : 1)
    case .valid: return n >= size ? (n - size) / stride + 1 : 0
    }
}

/// Leading zero-padding of a `same` window (TensorFlow's rule: the extra goes at the end).
public func samePaddingBefore(_ n: Int, size: Int, stride: Int) -> Int {
    let out = windowOutput(n, size: size, stride: stride, padding: .same)
    let total = max((out - 1) * stride + size - n, 0)
    return total / 2
}

private func expectCount(_ op: Op, _ types: [TensorType], _ counts: ClosedRange<Int>) throws(ShapeError) {
    guard counts.contains(types.count) else {
        let want = counts.lowerBound == counts.upperBound ? "\(counts.lowerBound)" : "\(counts.lowerBound) to \(counts.upperBound)"
        throw ShapeError("\(op.name) takes \(want) input\(counts.upperBound == 1 ? "" : "s"), got \(types.count)")
    }
}

private func expectF32(_ op: Op, _ types: [TensorType], skip: Set<Int> = []) throws(ShapeError) {
    for (i, t) in types.enumerated() where !skip.contains(i) && t.dtype != .f32 {
        throw ShapeError("\(op.name) input \(i + 1) must be f32, got \(t)", inputs: [i])
    }
}

private func expectRank(_ op: Op, _ t: TensorType, _ rank: Int, input i: Int, what: String) throws(ShapeError) {
    guard t.rank == rank else {
        throw ShapeError("\(op.name) expects \(what) of rank \(rank), got \(t)", inputs: [i])
    }
}

private func expectSame(_ op: Op, _ types: [TensorType], _ i: Int, _ j: Int) throws(ShapeError) {
    guard types[i] == types[j] else {
        throw ShapeError("\(op.name) needs inputs of one type, got \(types[i]) and \(types[j])", inputs: [i, j])
    }
}

private func expectVector(_ op: Op, _ t: TensorType, length: Int, input i: Int, what: String) throws(ShapeError) {
    guard t == .fixed([length]) else {
        throw ShapeError("\(op.name) expects \(what) of shape [\(length)], got \(t)", inputs: [i])
    }
}

private func convOutput(_ op: Op, x: TensorType, w: TensorType, _ a: Conv2DAttrs) throws(ShapeError) -> TensorType {
    try expectRank(op, x, 4, input: 0, what: "an input [N, C, H, W]")
    try expectRank(op, w, 4, input: 1, what: "a weight [O, C, KH, KW]")
    guard !w.isBatched else { throw ShapeError("\(op.name) weight must not have a batch dimension, got \(w)", inputs: [1]) }
    let xs = x.perSample, ws = w.perSample
    guard xs[0] == ws[1] else {
        throw ShapeError("\(op.name) input has \(xs[0]) channels but the weight expects \(ws[1]): input \(x), weight \(w)", inputs: [0, 1])
    }
    let oh = windowOutput(xs[1], size: ws[2], stride: a.stride, padding: a.padding)
    let ow = windowOutput(xs[2], size: ws[3], stride: a.stride, padding: a.padding)
    guard oh > 0, ow > 0 else {
        throw ShapeError("\(op.name) kernel \(ws[2])x\(ws[3]) does not fit the \(xs[1])x\(xs[2]) input with padding=valid", inputs: [0, 1])
    }
    return TensorType(.f32, [x.dims[0], .fixed(ws[0]), .fixed(oh), .fixed(ow)])
}

private func poolOutput(_ op: Op, x: TensorType, _ a: PoolAttrs) throws(ShapeError) -> TensorType {
    try expectRank(op, x, 4, input: 0, what: "an input [N, C, H, W]")
    let xs = x.perSample
    let oh = windowOutput(xs[1], size: a.size, stride: a.stride, padding: a.padding)
    let ow = windowOutput(xs[2], size: a.size, stride: a.stride, padding: a.padding)
    guard oh > 0, ow > 0 else {
        throw ShapeError("\(op.name) window \(a.size)x\(a.size) does not fit the \(xs[1])x\(xs[2]) input with padding=valid", inputs: [0])
    }
    return TensorType(.f32, [x.dims[0], .fixed(xs[0]), .fixed(oh), .fixed(ow)])
}

/// The output types of `op` applied to inputs of the given types.
public func inferTypes(_ op: Op, _ t: [TensorType]) throws(ShapeError) -> [TensorType] {
    switch op {
    case .conv2d(let a):
        try expectCount(op, t, 2...3)
        try expectF32(op, t)
        let y = try convOutput(op, x: t[0], w: t[1], a)
        if t.count == 3 { try expectVector(op, t[2], length: t[1].perSample[0], input: 2, what: "a bias") }
        return [y]
    case .dense:
        try expectCount(op, t, 2...3)
        try expectF32(op, t)
        guard t[0].rank == 2 else {
            throw ShapeError("dense expects an input [N, I] of rank 2, got \(t[0]); flatten a 4-d input first", inputs: [0])
        }
        try expectRank(op, t[1], 2, input: 1, what: "a weight [O, I]")
        let i = t[0].perSample[0], w = t[1].perSample
        guard w[1] == i else {
            throw ShapeError("dense input has \(i) features but the weight expects \(w[1]): input \(t[0]), weight \(t[1])", inputs: [0, 1])
        }
        if t.count == 3 { try expectVector(op, t[2], length: w[0], input: 2, what: "a bias") }
        return [TensorType(.f32, [t[0].dims[0], .fixed(w[0])])]
    case .relu, .leakyRelu, .dropout, .softmax:
        try expectCount(op, t, 1...1)
        try expectF32(op, t)
        if case .softmax = op, t[0].rank < 1 { throw ShapeError("softmax needs at least one axis, got \(t[0])", inputs: [0]) }
        return [t[0]]
    case .dropoutTrain:
        try expectCount(op, t, 1...1)
        try expectF32(op, t)
        return [t[0], t[0]]
    case .batchnorm:
        try expectCount(op, t, 5...5)
        try expectF32(op, t)
        let c = try channels(op, t[0])
        for i in 1...4 { try expectVector(op, t[i], length: c, input: i, what: ["", "gamma", "beta", "a running mean", "a running variance"][i]) }
        return [t[0]]
    case .batchnormTrain:
        try expectCount(op, t, 3...3)
        try expectF32(op, t)
        let c = try channels(op, t[0])
        try expectVector(op, t[1], length: c, input: 1, what: "gamma")
        try expectVector(op, t[2], length: c, input: 2, what: "beta")
        return [t[0], .fixed([c]), .fixed([c])]
    case .maxpool(let a), .avgpool(let a):
        try expectCount(op, t, 1...1)
        try expectF32(op, t)
        return [try poolOutput(op, x: t[0], a)]
    case .flatten:
        try expectCount(op, t, 1...1)
        guard t[0].isBatched, t[0].rank >= 2 else {
            throw ShapeError("flatten expects a batched input of rank 2 or more, got \(t[0])", inputs: [0])
        }
        return [TensorType(t[0].dtype, [.batch, .fixed(t[0].elementsPerSample)])]
    case .softmaxCrossEntropy:
        try expectCount(op, t, 2...2)
        try expectF32(op, t, skip: [1])
        try expectRank(op, t[0], 2, input: 0, what: "logits [N, K]")
        // Labels, or soft targets of the logits' shape (mixup's training step: TrainingConfig.mixup).
        guard (t[1].dtype == .i32 && t[1].rank == 1 && t[1].dims[0] == t[0].dims[0]) || t[1] == t[0] else {
            throw ShapeError("softmax_cross_entropy expects labels i32[\(t[0].dims[0])] for logits \(t[0]), got \(t[1])", inputs: [0, 1])
        }
        return [.scalar]
    case .add, .mul:
        guard t.count >= 2 else { throw ShapeError("\(op.name) takes 2 or more inputs, got \(t.count)") }
        try expectF32(op, t)
        for i in 1..<t.count { try expectSame(op, t, 0, i) }
        return [t[0]]
    case .concat(let axis):
        guard t.count >= 1 else { throw ShapeError("concat takes 1 or more inputs, got none") }
        try expectF32(op, t)
        guard axis >= 1, axis < t[0].rank else {
            throw ShapeError("concat axis \(axis) is out of range for \(t[0]) (axes 1..<\(t[0].rank); axis 0 is the batch)", inputs: [0])
        }
        var total = 0
        for (i, ti) in t.enumerated() {
            guard ti.rank == t[0].rank, (0..<ti.rank).allSatisfy({ $0 == axis || ti.dims[$0] == t[0].dims[$0] }) else {
                throw ShapeError("concat inputs must agree on every axis but \(axis): \(t[0]) and \(ti)", inputs: [0, i])
            }
            let (sum, overflow) = total.addingReportingOverflow(ti.dims[axis].resolved(batch: 1))
            guard !overflow else { throw ShapeError("concat along axis \(axis) is too large", inputs: [i]) }
            total = sum
        }
        var dims = t[0].dims
        dims[axis] = .fixed(total)
        return [TensorType(.f32, dims)]
    case .conv2dGradInput(let a):
        try expectCount(op, t, 2...2)
        try expectF32(op, t)
        guard a.shape.count == 3 else { throw ShapeError("conv2d_grad_input shape must be [C, H, W], got \(Attribute.ints(a.shape))") }
        let x = TensorType(.f32, [t[0].dims.first ?? .batch] + a.shape.map { .fixed($0) })
        let y = try convOutput(op, x: x, w: t[1], a.conv)
        guard y == t[0] else { throw ShapeError("conv2d_grad_input dy is \(t[0]) but the convolution gives \(y)", inputs: [0, 1]) }
        return [x]
    case .conv2dGradWeight(let a):
        try expectCount(op, t, 2...2)
        try expectF32(op, t)
        guard a.shape.count == 4 else { throw ShapeError("conv2d_grad_weight shape must be [O, C, KH, KW], got \(Attribute.ints(a.shape))") }
        let w = TensorType.fixed(a.shape)
        let y = try convOutput(op, x: t[1], w: w, a.conv)
        guard y == t[0] else { throw ShapeError("conv2d_grad_weight dy is \(t[0]) but the convolution gives \(y)", inputs: [0, 1]) }
        return [w]
    case .biasGrad:
        try expectCount(op, t, 1...1)
        try expectF32(op, t)
        return [.fixed([try channels(op, t[0])])]
    case .denseGradInput:
        try expectCount(op, t, 2...2)
        try expectF32(op, t)
        try expectRank(op, t[0], 2, input: 0, what: "dy [N, O]")
        try expectRank(op, t[1], 2, input: 1, what: "a weight [O, I]")
        guard t[0].perSample[0] == t[1].perSample[0] else {
            throw ShapeError("dense_grad_input dy \(t[0]) does not match weight \(t[1])", inputs: [0, 1])
        }
        return [TensorType(.f32, [t[0].dims[0], t[1].dims[1]])]
    case .denseGradWeight:
        try expectCount(op, t, 2...2)
        try expectF32(op, t)
        try expectRank(op, t[0], 2, input: 0, what: "dy [N, O]")
        try expectRank(op, t[1], 2, input: 1, what: "an input [N, I]")
        guard t[0].dims[0] == t[1].dims[0] else {
            throw ShapeError("dense_grad_weight dy \(t[0]) and input \(t[1]) differ in batch", inputs: [0, 1])
        }
        return [.fixed([t[0].perSample[0], t[1].perSample[0]])]
    case .reluGrad, .leakyReluGrad, .softmaxGrad:
        try expectCount(op, t, 2...2)
        try expectF32(op, t)
        try expectSame(op, t, 0, 1)
        return [t[0]]
    case .batchnormTrainGrad:
        try expectCount(op, t, 5...5)
        try expectF32(op, t)
        try expectSame(op, t, 0, 1)
        let c = try channels(op, t[1])
        for i in 2...4 { try expectVector(op, t[i], length: c, input: i, what: ["", "", "gamma", "a batch mean", "a batch variance"][i]) }
        return [t[0], .fixed([c]), .fixed([c])]
    case .batchnormGrad:
        try expectCount(op, t, 3...3)
        try expectF32(op, t)
        let c = try channels(op, t[0])
        try expectVector(op, t[1], length: c, input: 1, what: "gamma")
        try expectVector(op, t[2], length: c, input: 2, what: "a running variance")
        return [t[0]]
    case .maxpoolGrad(let a), .avgpoolGrad(let a):
        try expectCount(op, t, 2...2)
        try expectF32(op, t)
        let y = try poolOutput(op, x: t[1], a)
        guard y == t[0] else { throw ShapeError("\(op.name) dy is \(t[0]) but pooling \(t[1]) gives \(y)", inputs: [0, 1]) }
        return [t[1]]
    case .reshape(let shape):
        try expectCount(op, t, 1...1)
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw ShapeError("reshape to \(Attribute.ints(shape)) has too many elements", inputs: [0]) }
            count = p
        }
        guard count == t[0].elementsPerSample else {
            throw ShapeError("reshape to \(Attribute.ints(shape)) needs \(count) elements per sample, input \(t[0]) has \(t[0].elementsPerSample)", inputs: [0])
        }
        return [TensorType(t[0].dtype, (t[0].isBatched ? [.batch] : []) + shape.map { .fixed($0) })]
    case .softmaxCrossEntropyGrad:
        try expectCount(op, t, 3...3)
        try expectF32(op, t, skip: [2])
        guard t[0] == .scalar else { throw ShapeError("softmax_cross_entropy_grad dloss must be a scalar, got \(t[0])", inputs: [0]) }
        _ = try inferTypes(.softmaxCrossEntropy, [t[1], t[2]])
        return [t[1]]
    case .slice(let axis, let start, let length):
        try expectCount(op, t, 1...1)
        guard axis >= 1, axis < t[0].rank else {
            throw ShapeError("slice axis \(axis) is out of range for \(t[0])", inputs: [0])
        }
        let n = t[0].dims[axis].resolved(batch: 1)
        guard start >= 0, length >= 1, start <= n, length <= n - start else {
            throw ShapeError("slice [\(start), \(start + length)) is out of range for axis \(axis) of \(t[0])", inputs: [0])
        }
        var dims = t[0].dims
        dims[axis] = .fixed(length)
        return [TensorType(t[0].dtype, dims)]
    case .scale:
        try expectCount(op, t, 1...1)
        try expectF32(op, t)
        return [t[0]]
    case .preprocess:
        try expectCount(op, t, 1...1)
        try expectF32(op, t)
        guard t[0].isBatched, t[0].rank == 4 else {
            throw ShapeError("\(op.name) works on images: it expects an input f32[N, C, H, W], got \(t[0])", inputs: [0])
        }
        return [t[0]]
    case .l2Penalty:
        try expectCount(op, t, 1...1)
        try expectF32(op, t)
        return [.scalar]
    case .l2PenaltyGrad:
        try expectCount(op, t, 2...2)
        try expectF32(op, t)
        try expectScalar(op, t[0], input: 0)
        return [t[1]]
    case .constant:
        try expectCount(op, t, 0...0)
        return [.scalar]
    case .sgdUpdate:
        try expectCount(op, t, 4...4)
        try expectF32(op, t)
        try expectSame(op, t, 0, 1)
        try expectSame(op, t, 0, 2)
        try expectScalar(op, t[3], input: 3)
        return []
    case .adamUpdate:
        try expectCount(op, t, 6...6)
        try expectF32(op, t)
        for i in 1...3 { try expectSame(op, t, 0, i) }
        try expectScalar(op, t[4], input: 4)
        try expectScalar(op, t[5], input: 5)
        return []
    case .maxNormProject:
        try expectCount(op, t, 1...1)
        try expectF32(op, t)
        guard t[0].rank == 2 || t[0].rank == 4, !t[0].isBatched else {
            throw ShapeError("max_norm_project expects a dense [O, I] or conv [O, C, KH, KW] weight, got \(t[0])", inputs: [0])
        }
        return []
    case .batchnormStatsUpdate:
        try expectCount(op, t, 5...5)
        try expectF32(op, t)
        let c = try channels(op, t[4], input: 4)
        for i in 0...3 { try expectVector(op, t[i], length: c, input: i, what: "a per-channel statistic") }
        return []
    case .increment:
        try expectCount(op, t, 1...1)
        try expectScalar(op, t[0], input: 0)
        return []
    case .fused(let a):
        try expectCount(op, t, fusedCount(a, batchnormInputs: 4)...fusedCount(a, batchnormInputs: 4))
        try expectF32(op, t)
        let y = try fusedAnchorOutput(op, x: t[0], w: t[1], a)
        try expectFusedVectors(op, t, from: 2, count: t.count - 2, length: y.perSample[0])
        return [y]
    case .fusedTrain(let a):
        try expectCount(op, t, fusedCount(a, batchnormInputs: 2)...fusedCount(a, batchnormInputs: 2))
        try expectF32(op, t)
        let y = try fusedAnchorOutput(op, x: t[0], w: t[1], a)
        let c = y.perSample[0]
        try expectFusedVectors(op, t, from: 2, count: t.count - 2, length: c)
        return a.hasBatchnorm ? [y, y, .fixed([c]), .fixed([c])] : [y]
    case .fusedTrainGrad(let g):
        let a = g.fused
        let count = 3 + (a.backwardReadsOutput ? 1 : 0) + (a.hasBatchnorm ? 4 : 0)
        try expectCount(op, t, count...count)
        try expectF32(op, t)
        let y = try fusedAnchorOutput(op, x: t[1], w: t[2], a, inputs: (1, 2))
        let c = y.perSample[0]
        guard t[0] == y else { throw ShapeError("\(op.name) dy is \(t[0]) but the anchor gives \(y)", inputs: [0, 1, 2]) }
        var k = 3
        if a.backwardReadsOutput {
            guard t[k] == y else { throw ShapeError("\(op.name) y is \(t[k]), expected \(y)", inputs: [k]) }
            k += 1
        }
        if a.hasBatchnorm {
            guard t[k] == y else { throw ShapeError("\(op.name) bn_input is \(t[k]), expected \(y)", inputs: [k]) }
            try expectFusedVectors(op, t, from: k + 1, count: 3, length: c)
        }
        var outs: [TensorType] = []
        if g.inputGrad { outs.append(t[1]) }
        if g.weightGrad { outs.append(t[2]); if a.bias { outs.append(.fixed([c])) } }
        if a.hasBatchnorm { outs += [.fixed([c]), .fixed([c])] }
        return outs
    }
}

/// Inputs of a fused node: x, w, the bias, and its batchnorm's inputs.
private func fusedCount(_ a: FusedAttrs, batchnormInputs: Int) -> Int {
    2 + (a.bias ? 1 : 0) + (a.hasBatchnorm ? batchnormInputs : 0)
}

private func expectFusedVectors(_ op: Op, _ t: [TensorType], from: Int, count: Int, length: Int) throws(ShapeError) {
    for i in from..<(from + count) {
        try expectVector(op, t[i], length: length, input: i, what: "a per-channel vector (bias or batchnorm)")
    }
}

/// The output of a fused node's anchor (conv2d or dense) on x and w at the given input positions.
private func fusedAnchorOutput(_ op: Op, x: TensorType, w: TensorType, _ a: FusedAttrs,
                               inputs: (Int, Int) = (0, 1)) throws(ShapeError) -> TensorType {
    guard a.relu || a.batchnorm != .afterRelu else {
        throw ShapeError("\(op.name) with batchnorm=after_relu needs relu=true")
    }
    do {
        if let c = a.conv { return try convOutput(op, x: x, w: w, c) }
        return try inferTypes(.dense, [x, w])[0]
    } catch {
        throw ShapeError(error.message, inputs: error.inputs.map { $0 == 0 ? inputs.0 : inputs.1 })
    }
}

private func expectScalar(_ op: Op, _ t: TensorType, input i: Int) throws(ShapeError) {
    guard t == .scalar else { throw ShapeError("\(op.name) input \(i + 1) must be a scalar f32[], got \(t)", inputs: [i]) }
}

/// The channel count of a batched tensor: axis 1 of [N, C, ...].
private func channels(_ op: Op, _ t: TensorType, input: Int = 0) throws(ShapeError) -> Int {
    guard t.isBatched, t.rank >= 2 else {
        throw ShapeError("\(op.name) expects a batched input [N, C, ...], got \(t)", inputs: [input])
    }
    return t.perSample[0]
}
