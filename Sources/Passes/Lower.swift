// lower: graph -> plan. Each value becomes a buffer (same index, same name), each node a step
// whose kernel has its geometry resolved from the value types. The plan knows nothing of ops:
// `dropout` (inference form) and `flatten`/`reshape` become copies, `batchnorm` the inference
// kernel, and so on. Memory planning is a later pass over the plan's buffers.

import GraphIR
import Runtime

public func lowerToPlan(_ graph: Graph, maxBatch: Int) throws -> Plan {
    guard maxBatch >= 1 else { throw PassError(pass: "lower", message: "the batch size must be at least 1, got \(maxBatch)") }
    let buffers = graph.values.map { v -> BufferDesc in
        let role: BufferRole
        switch v.kind {
        case .input: role = .input
        case .parameter: role = .parameter
        case .state: role = .state
        case .intermediate: role = .intermediate
        }
        return BufferDesc(name: v.name, elementType: v.type.dtype == .i32 ? .i32 : .f32,
                          perSample: v.type.perSample, batched: v.type.isBatched, role: role)
    }
    let steps = try graph.nodes.map { node in
        Step(name: node.name, kernel: try kernel(for: node, in: graph),
             inputs: node.inputs.map(\.index), outputs: node.outputs.map(\.index))
    }
    return Plan(name: graph.name, buffers: buffers, steps: steps, maxBatch: maxBatch,
                outputs: graph.outputs.map(\.index))
}

func convGeometry(x: [Int], w: [Int], _ a: Conv2DAttrs) -> ConvGeometry {
    let oh = windowOutput(x[1], size: w[2], stride: a.stride, padding: a.padding)
    let ow = windowOutput(x[2], size: w[3], stride: a.stride, padding: a.padding)
    let same = a.padding == .same
    return ConvGeometry(
        inChannels: x[0], inHeight: x[1], inWidth: x[2], outChannels: w[0], kernelHeight: w[2],
        kernelWidth: w[3], stride: a.stride,
        padTop: same ? samePaddingBefore(x[1], size: w[2], stride: a.stride) : 0,
        padLeft: same ? samePaddingBefore(x[2], size: w[3], stride: a.stride) : 0,
        outHeight: oh, outWidth: ow)
}

func poolGeometry(x: [Int], _ a: PoolAttrs) -> PoolGeometry {
    let same = a.padding == .same
    return PoolGeometry(
        channels: x[0], inHeight: x[1], inWidth: x[2], size: a.size, stride: a.stride,
        padTop: same ? samePaddingBefore(x[1], size: a.size, stride: a.stride) : 0,
        padLeft: same ? samePaddingBefore(x[2], size: a.size, stride: a.stride) : 0,
        outHeight: windowOutput(x[1], size: a.size, stride: a.stride, padding: a.padding),
        outWidth: windowOutput(x[2], size: a.size, stride: a.stride, padding: a.padding))
}

/// [N, C, rest...] seen as channels and spatial size.
private func channelsSpatial(_ t: TensorType) -> (Int, Int) {
    let s = t.perSample
    return (s[0], s.dropFirst().reduce(1, *))
}

/// For concat/slice along `axis`: elements before the axis (per sample) and after it.
private func outerInner(_ t: TensorType, axis: Int) -> (Int, Int) {
    let s = t.perSample  // axis counts the batch as 0
    return (s[..<(axis - 1)].reduce(1, *), s[axis...].reduce(1, *))
}

func kernel(for node: Node, in g: Graph) throws -> Kernel {
    let t = node.inputs.map { g[$0].type }
    switch node.op {
    case .conv2d(let a):
        return .conv2d(convGeometry(x: t[0].perSample, w: t[1].perSample, a), bias: t.count == 3)
    case .dense:
        return .dense(inFeatures: t[0].perSample[0], outFeatures: t[1].perSample[0], bias: t.count == 3)
    case .relu: return .relu
    case .leakyRelu(let alpha): return .leakyRelu(alpha: Float(alpha))
    case .batchnorm(let a):
        let (c, s) = channelsSpatial(t[0])
        return .batchnormInference(channels: c, spatial: s, epsilon: Float(a.epsilon))
    case .batchnormTrain(let a):
        let (c, s) = channelsSpatial(t[0])
        return .batchnormTrain(channels: c, spatial: s, epsilon: Float(a.epsilon))
    case .dropout: return .copy
    case .dropoutTrain(let rate): return .dropoutTrain(rate: Float(rate))
    case .maxpool(let a): return .maxpool(poolGeometry(x: t[0].perSample, a))
    case .avgpool(let a): return .avgpool(poolGeometry(x: t[0].perSample, a))
    case .flatten, .reshape: return .copy
    case .softmax: return .softmax(classes: t[0].perSample.last ?? 1)
    case .softmaxCrossEntropy:
        if t[1].dtype == .f32 { return .softmaxCrossEntropySoft(classes: t[0].perSample[0]) }
        if let e = g.training?.labelSmoothing, e > 0 { return .softmaxCrossEntropySmoothed(classes: t[0].perSample[0], smoothing: Float(e)) }
        return .softmaxCrossEntropy(classes: t[0].perSample[0])
    case .add: return .add
    case .mul: return .mul
    case .concat(let axis):
        let (outer, inner) = outerInner(t[0], axis: axis)
        return .concat(outer: outer, inner: inner, sizes: t.map { $0.dims[axis].resolved(batch: 1) })
    case .conv2dGradInput(let a):
        return .conv2dGradInput(convGeometry(x: a.shape, w: t[1].perSample, a.conv))
    case .conv2dGradWeight(let a):
        return .conv2dGradWeight(convGeometry(x: t[1].perSample, w: a.shape, a.conv))
    case .biasGrad:
        let (c, s) = channelsSpatial(t[0])
        return .biasGrad(channels: c, spatial: s)
    case .denseGradInput:
        return .denseGradInput(inFeatures: t[1].perSample[1], outFeatures: t[1].perSample[0])
    case .denseGradWeight:
        return .denseGradWeight(inFeatures: t[1].perSample[0], outFeatures: t[0].perSample[0])
    case .reluGrad: return .reluGrad
    case .leakyReluGrad(let alpha): return .leakyReluGrad(alpha: Float(alpha))
    case .batchnormTrainGrad(let eps):
        let (c, s) = channelsSpatial(t[1])
        return .batchnormTrainGrad(channels: c, spatial: s, epsilon: Float(eps))
    case .batchnormGrad(let eps):
        let (c, s) = channelsSpatial(t[0])
        return .batchnormInferenceGrad(channels: c, spatial: s, epsilon: Float(eps))
    case .maxpoolGrad(let a): return .maxpoolGrad(poolGeometry(x: t[1].perSample, a))
    case .avgpoolGrad(let a): return .avgpoolGrad(poolGeometry(x: t[1].perSample, a))
    case .softmaxCrossEntropyGrad:
        if t[2].dtype == .f32 { return .softmaxCrossEntropySoftGrad(classes: t[1].perSample[0]) }
        if let e = g.training?.labelSmoothing, e > 0 { return .softmaxCrossEntropySmoothedGrad(classes: t[1].perSample[0], smoothing: Float(e)) }
        return .softmaxCrossEntropyGrad(classes: t[1].perSample[0])
    case .softmaxGrad: return .softmaxGrad(classes: t[0].perSample.last ?? 1)
    case .slice(let axis, let start, let length):
        let (outer, inner) = outerInner(t[0], axis: axis)
        return .slice(outer: outer, inner: inner, total: t[0].dims[axis].resolved(batch: 1), start: start, length: length)
    case .scale(let f): return .scale(factor: Float(f))
    case .l2Penalty(let f): return .l2Penalty(factor: Float(f))
    case .l2PenaltyGrad(let f): return .l2PenaltyGrad(factor: Float(f))
    case .constant(let v): return .constant(value: Float(v))
    case .sgdUpdate(let a):
        if a.weightDecay > 0 {
            return .sgdWeightDecayUpdate(momentum: Float(a.momentum), nesterov: a.nesterov, weightDecay: Float(a.weightDecay), decoupled: a.decoupled)
        }
        return .sgdUpdate(momentum: Float(a.momentum), nesterov: a.nesterov)
    case .adamUpdate(let a): return .adamUpdate(beta1: Float(a.beta1), beta2: Float(a.beta2), epsilon: Float(a.epsilon))
    case .maxNormProject(let v, let axis):
        let mode: MaxNormMode
        switch axis {
        case .keras: mode = .keras
        case .perFilter: mode = .perFilter
        }
        return .maxNormProject(maxValue: Float(v), mode: mode, shape: t[0].perSample)
    case .batchnormStatsUpdate(let m):
        let (c, s) = channelsSpatial(t[4])
        return .batchnormStatsUpdate(momentum: Float(m), channels: c, spatial: s)
    case .increment: return .increment
    case .fused(let a): return .fused(fusedAnchor(a, x: t[0], w: t[1]), fusedEpilogue(a))
    case .fusedTrain(let a): return .fusedTrain(fusedAnchor(a, x: t[0], w: t[1]), fusedEpilogue(a))
    case .fusedTrainGrad(let g):
        return .fusedTrainGrad(fusedAnchor(g.fused, x: t[1], w: t[2]), fusedEpilogue(g.fused),
                               inputGrad: g.inputGrad, weightGrad: g.weightGrad)
    case .preprocess(let p):
        let s = t[0].perSample
        return .preprocess(preprocessTechnique(p), planes: s[0], height: s[1], width: s[2])
    }
}

func fusedAnchor(_ a: FusedAttrs, x: TensorType, w: TensorType) -> FusedAnchor {
    if let c = a.conv { return .conv2d(convGeometry(x: x.perSample, w: w.perSample, c)) }
    return .dense(inFeatures: x.perSample[0], outFeatures: w.perSample[0])
}

func fusedEpilogue(_ a: FusedAttrs) -> FusedEpilogue {
    let placement: BatchnormPlacement
    switch a.batchnorm {
    case .none: placement = .none
    case .beforeRelu: placement = .beforeRelu
    case .afterRelu: placement = .afterRelu
    }
    return FusedEpilogue(bias: a.bias, relu: a.relu, batchnorm: placement, epsilon: Float(a.epsilon))
}

func preprocessTechnique(_ p: Preprocess) -> PreprocessTechnique {
    switch p {
    case .equalizeLocal(let r): return .equalizeLocal(radius: r)
    case .equalizeHist: return .equalizeHist
    case .clahe(let clip): return .clahe(clip: clip)
    case .normalizeMinmax: return .normalizeMinmax
    case .sobel: return .sobel
    case .scharr: return .scharr
    case .prewitt: return .prewitt
    case .roberts: return .roberts
    case .threshold(.yen): return .thresholdYen
    case .threshold(.isodata): return .thresholdIsodata
    case .threshold(.mean): return .thresholdMean
    case .standardize: return .standardize
    case .truncate: return .truncate
    }
}
