// The operations of the IR. One enum, attribute structs per case, exhaustive switches and no
// `default:`, so that a new op makes the compiler list every place that must learn about it.
//
// Three families:
// - forward ops, written by users in `.graph` files (conv2d, dense, relu, batchnorm, ...);
// - backward ops, produced by the autodiff pass (conv2d_grad_input, relu_grad, ...);
// - update ops, produced by the optimizer pass: they write their first input(s) in place
//   (parameters, batchnorm running statistics, optimizer state) and have no outputs.

public enum Padding: String, Hashable, Sendable, CaseIterable { case same, valid }

public struct Conv2DAttrs: Hashable, Sendable {
    public var stride: Int
    public var padding: Padding
    public init(stride: Int = 1, padding: Padding = .same) {
        self.stride = stride
        self.padding = padding
    }
}

/// A convolution's backward op needs the spatial size of the forward input, which the output
/// alone does not determine when the stride is larger than one.
public struct ConvGradAttrs: Hashable, Sendable {
    public var conv: Conv2DAttrs
    /// `[C, H, W]` of the forward input (grad_input) or `[O, C, KH, KW]` of the weight (grad_weight).
    public var shape: [Int]
    public init(conv: Conv2DAttrs, shape: [Int]) {
        self.conv = conv
        self.shape = shape
    }
}

public struct PoolAttrs: Hashable, Sendable {
    public var size: Int
    public var stride: Int
    public var padding: Padding
    public init(size: Int = 2, stride: Int = 2, padding: Padding = .valid) {
        self.size = size
        self.stride = stride
        self.padding = padding
    }
}

public struct BatchNormAttrs: Hashable, Sendable {
    public var epsilon: Double
    public var momentum: Double
    public init(epsilon: Double = 1e-3, momentum: Double = 0.99) {
        self.epsilon = epsilon
        self.momentum = momentum
    }
}

/// Which axes `max_norm` measures a weight's norm over.
public enum MaxNormAxis: String, Hashable, Sendable, CaseIterable {
    /// Keras' `MaxNorm(axis=0)` on Keras layouts: a conv kernel `(kh, kw, in, out)` is normed over
    /// `kh` for each `(kw, in, out)`; a dense kernel `(in, out)` over `in` for each output unit.
    case keras
    /// One norm per output filter or unit, over everything else.
    case perFilter = "per_filter"
}

public struct SGDAttrs: Hashable, Sendable {
    public var momentum: Double
    public var nesterov: Bool
    /// PyTorch's `weight_decay`: g += weight_decay * p before the momentum step, for every
    /// trainable parameter (a rate-scaled pull towards zero, independent of any layer's l2=).
    public var weightDecay: Double
    /// Decoupled weight decay (Loshchilov & Hutter's SGDW): p -= lr * weight_decay * p after
    /// the momentum step, outside the velocity, instead of adding it to the gradient.
    public var decoupled: Bool
    public init(momentum: Double = 0, nesterov: Bool = false, weightDecay: Double = 0, decoupled: Bool = false) {
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.decoupled = decoupled
    }
}

public struct AdamAttrs: Hashable, Sendable {
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-7) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }
}

/// Where a fused node's batchnorm sits relative to its relu (see Passes/Fuse.swift).
public enum FusedBatchnorm: String, Hashable, Sendable, CaseIterable {
    case none
    /// anchor -> batchnorm -> relu
    case beforeRelu = "before_relu"
    /// anchor -> relu -> batchnorm (the paper's order)
    case afterRelu = "after_relu"
}

/// A conv2d or dense anchor with its bias, relu and batchnorm epilogue, as one node.
public struct FusedAttrs: Hashable, Sendable {
    /// The convolution's attributes; nil when the anchor is dense.
    public var conv: Conv2DAttrs?
    public var bias: Bool
    public var relu: Bool
    public var batchnorm: FusedBatchnorm
    /// The batchnorm's epsilon (unused without one).
    public var epsilon: Double
    public init(conv: Conv2DAttrs?, bias: Bool, relu: Bool, batchnorm: FusedBatchnorm, epsilon: Double = 1e-3) {
        self.conv = conv
        self.bias = bias
        self.relu = relu
        self.batchnorm = batchnorm
        self.epsilon = epsilon
    }
    public var hasBatchnorm: Bool { batchnorm != .none }
    /// Input position of gamma (the first batchnorm input).
    public var batchnormInput: Int { bias ? 3 : 2 }
    /// Whether the backward reads the output y (the relu mask when relu comes last).
    public var backwardReadsOutput: Bool { relu && batchnorm != .afterRelu }
}

/// The fused backward: which gradients it produces besides the batchnorm's.
public struct FusedGradAttrs: Hashable, Sendable {
    public var fused: FusedAttrs
    /// Produce dx.
    public var inputGrad: Bool
    /// Produce dw (and db when the node has a bias).
    public var weightGrad: Bool
    public init(fused: FusedAttrs, inputGrad: Bool, weightGrad: Bool) {
        self.fused = fused
        self.inputGrad = inputGrad
        self.weightGrad = weightGrad
    }
}

public enum Op: Hashable, Sendable {
    // MARK: forward
    /// (x[N,C,H,W], w[O,C,KH,KW], b[O]?) -> y[N,O,H',W']
    case conv2d(Conv2DAttrs)
    /// (x[N,I], w[O,I], b[O]?) -> y[N,O]
    case dense
    case relu
    case leakyRelu(alpha: Double)
    /// Inference form: (x, gamma, beta, running_mean, running_var) -> y. Channel axis 1.
    case batchnorm(BatchNormAttrs)
    /// Training form: (x, gamma, beta) -> (y, batch_mean, batch_var) with the biased variance.
    case batchnormTrain(BatchNormAttrs)
    /// Identity at inference.
    case dropout(rate: Double)
    /// Training form, inverted dropout: (x) -> (y, mask) with mask in {0, 1/(1-rate)}.
    case dropoutTrain(rate: Double)
    case maxpool(PoolAttrs)
    /// Averages over the window's elements inside the input (padding not counted).
    case avgpool(PoolAttrs)
    /// [N, C, H, W] -> [N, C*H*W] in channel-major order.
    case flatten
    /// Softmax over the last axis.
    case softmax
    /// (logits[N,K], labels i32[N]) -> mean cross-entropy, a scalar.
    case softmaxCrossEntropy
    /// Elementwise sum of two or more tensors of one type.
    case add
    case concat(axis: Int)

    // MARK: backward
    /// (dy, w) -> dx
    case conv2dGradInput(ConvGradAttrs)
    /// (dy, x) -> dw
    case conv2dGradWeight(ConvGradAttrs)
    /// (dy[N,C,...]) -> db[C]: the sum over every axis but 1.
    case biasGrad
    /// (dy[N,O], w[O,I]) -> dx[N,I]
    case denseGradInput
    /// (dy[N,O], x[N,I]) -> dw[O,I]
    case denseGradWeight
    /// (dy, y) -> dx, where y is relu's output.
    case reluGrad
    /// (dy, x) -> dx
    case leakyReluGrad(alpha: Double)
    /// (dy, x, gamma, batch_mean, batch_var) -> (dx, dgamma, dbeta)
    case batchnormTrainGrad(epsilon: Double)
    /// (dy, gamma, running_var) -> dx: the backward of the inference form (frozen batchnorm).
    case batchnormGrad(epsilon: Double)
    /// Elementwise product of two tensors of one type.
    case mul
    /// (dy, x) -> dx: the gradient goes to the first maximum of each window.
    case maxpoolGrad(PoolAttrs)
    /// (dy, x) -> dx; x is read for its shape only.
    case avgpoolGrad(PoolAttrs)
    /// Reshape keeping the batch dimension: `shape` is the per-sample shape.
    case reshape(shape: [Int])
    /// (dloss, logits, labels) -> dlogits
    case softmaxCrossEntropyGrad
    /// (dy, y) -> dx, where y is softmax's output.
    case softmaxGrad
    /// A slice of `length` along `axis` starting at `start`.
    case slice(axis: Int, start: Int, length: Int)
    /// x * factor
    case scale(factor: Double)
    /// (w) -> factor * sum(w^2), a scalar: an L2 regularizer's loss term.
    case l2Penalty(factor: Double)
    /// (dloss, w) -> 2 * factor * dloss * w: the gradient of l2_penalty.
    case l2PenaltyGrad(factor: Double)
    /// () -> a scalar of the given value.
    case constant(value: Double)

    // MARK: updates (write their first input in place; no outputs)
    /// (param, grad, velocity, lr): the learning rate is a scalar input, computed by the host
    /// from the schedule (Keras' `decay`: lr / (1 + decay * iterations)).
    case sgdUpdate(SGDAttrs)
    /// (param, grad, m, v, lr, iterations): Keras' Adam, bias correction folded into lr_t, with
    /// t = iterations + 1.
    case adamUpdate(AdamAttrs)
    /// (param): the constraint projection after the update.
    case maxNormProject(maxValue: Double, axis: MaxNormAxis)
    /// (running_mean, running_var, batch_mean, batch_var, x): moving averages with the unbiased
    /// batch variance; x is read for the element count per channel only.
    case batchnormStatsUpdate(momentum: Double)
    /// (iterations): iterations += 1, after every other update of the step.
    case increment

    // MARK: fused (produced by the fuse pass; `fused_conv2d...` or `fused_dense...` by anchor)
    /// Inference: (x, w, b?, gamma?, beta?, running_mean?, running_var?) -> y. The anchor, its
    /// bias, then relu and batchnorm (a per-channel scale and shift) in the order `batchnorm` says.
    case fused(FusedAttrs)
    /// Training: (x, w, b?, gamma?, beta?) -> (y, bn_input?, batch_mean?, batch_var?) with batch
    /// statistics; bn_input is what the batchnorm normalized (the anchor's or the relu's output),
    /// saved for the backward and the running-statistics update.
    case fusedTrain(FusedAttrs)
    /// (dy, x, w, y?, bn_input?, gamma?, batch_mean?, batch_var?) -> (dx?, dw?, db?, dgamma?, dbeta?):
    /// y when `backwardReadsOutput`, the batchnorm values when there is one; dx when
    /// `inputGrad`, dw (and db) when `weightGrad`, dgamma and dbeta with a batchnorm.
    case fusedTrainGrad(FusedGradAttrs)

    // MARK: preprocessing (forward only, per image plane; GraphIR/Preprocess.swift)
    /// (x[N,C,H,W]) -> y of the same type: one of the Figure 12 techniques.
    case preprocess(Preprocess)
}

/// How an op's elements relate to its input's, for fusion and in-place reuse.
public enum OpPattern: Sendable {
    /// Each output element depends on the same element of each input.
    case elementwise
    /// Reduces or broadcasts along known axes (batchnorm, softmax, bias_grad).
    case reduction
    /// Convolution- or matmul-like: the anchor of a fusion group.
    case convLike
    /// Moves or reshapes data without arithmetic.
    case injective
    /// Writes state in place.
    case update
    case opaque
}

extension Op {
    /// The op's name in the graph language (snake_case).
    public var name: String {
        switch self {
        case .conv2d: return "conv2d"
        case .dense: return "dense"
        case .relu: return "relu"
        case .leakyRelu: return "leaky_relu"
        case .batchnorm: return "batchnorm"
        case .batchnormTrain: return "batchnorm_train"
        case .dropout: return "dropout"
        case .dropoutTrain: return "dropout_train"
        case .maxpool: return "maxpool"
        case .avgpool: return "avgpool"
        case .flatten: return "flatten"
        case .softmax: return "softmax"
        case .softmaxCrossEntropy: return "softmax_cross_entropy"
        case .add: return "add"
        case .concat: return "concat"
        case .conv2dGradInput: return "conv2d_grad_input"
        case .conv2dGradWeight: return "conv2d_grad_weight"
        case .biasGrad: return "bias_grad"
        case .denseGradInput: return "dense_grad_input"
        case .denseGradWeight: return "dense_grad_weight"
        case .reluGrad: return "relu_grad"
        case .leakyReluGrad: return "leaky_relu_grad"
        case .batchnormTrainGrad: return "batchnorm_train_grad"
        case .batchnormGrad: return "batchnorm_grad"
        case .mul: return "mul"
        case .maxpoolGrad: return "maxpool_grad"
        case .avgpoolGrad: return "avgpool_grad"
        case .reshape: return "reshape"
        case .softmaxCrossEntropyGrad: return "softmax_cross_entropy_grad"
        case .softmaxGrad: return "softmax_grad"
        case .slice: return "slice"
        case .scale: return "scale"
        case .l2Penalty: return "l2_penalty"
        case .l2PenaltyGrad: return "l2_penalty_grad"
        case .constant: return "constant"
        case .sgdUpdate: return "sgd_update"
        case .adamUpdate: return "adam_update"
        case .maxNormProject: return "max_norm_project"
        case .batchnormStatsUpdate: return "batchnorm_stats_update"
        case .increment: return "increment"
        case .fused(let a): return a.conv == nil ? "fused_dense" : "fused_conv2d"
        case .fusedTrain(let a): return a.conv == nil ? "fused_dense_train" : "fused_conv2d_train"
        case .fusedTrainGrad(let a): return a.fused.conv == nil ? "fused_dense_train_grad" : "fused_conv2d_train_grad"
        case .preprocess(let p): return p.name
        }
    }

    /// Every op name of the language, for "did you mean" suggestions.
    public static let allNames: [String] = [
        "conv2d", "dense", "relu", "leaky_relu", "batchnorm", "batchnorm_train", "dropout",
        "dropout_train", "maxpool", "avgpool", "flatten", "softmax", "softmax_cross_entropy", "add",
        "concat", "conv2d_grad_input", "conv2d_grad_weight", "bias_grad", "dense_grad_input",
        "dense_grad_weight", "relu_grad", "leaky_relu_grad", "batchnorm_train_grad", "batchnorm_grad",
        "mul", "maxpool_grad", "avgpool_grad", "reshape", "softmax_cross_entropy_grad",
        "softmax_grad", "slice", "scale", "l2_penalty", "l2_penalty_grad", "constant", "sgd_update", "adam_update",
        "max_norm_project", "batchnorm_stats_update", "increment",
        "fused_conv2d", "fused_dense", "fused_conv2d_train", "fused_dense_train",
        "fused_conv2d_train_grad", "fused_dense_train_grad",
    ] + Preprocess.names

    /// The attributes as the printer writes them, in a fixed order, every one explicit.
    public var attributes: [(String, Attribute)] {
        switch self {
        case .conv2d(let a):
            return [("stride", .int(a.stride)), ("padding", .symbol(a.padding.rawValue))]
        case .conv2dGradInput(let a), .conv2dGradWeight(let a):
            return [("stride", .int(a.conv.stride)), ("padding", .symbol(a.conv.padding.rawValue)),
                    ("shape", .ints(a.shape))]
        case .maxpool(let a), .avgpool(let a), .maxpoolGrad(let a), .avgpoolGrad(let a):
            return [("size", .int(a.size)), ("stride", .int(a.stride)),
                    ("padding", .symbol(a.padding.rawValue))]
        case .batchnorm(let a), .batchnormTrain(let a):
            return [("epsilon", .float(a.epsilon)), ("momentum", .float(a.momentum))]
        case .batchnormTrainGrad(let eps), .batchnormGrad(let eps):
            return [("epsilon", .float(eps))]
        case .dropout(let rate), .dropoutTrain(let rate):
            return [("rate", .float(rate))]
        case .leakyRelu(let alpha), .leakyReluGrad(let alpha):
            return [("alpha", .float(alpha))]
        case .concat(let axis):
            return [("axis", .int(axis))]
        case .reshape(let shape):
            return [("shape", .ints(shape))]
        case .slice(let axis, let start, let length):
            return [("axis", .int(axis)), ("start", .int(start)), ("length", .int(length))]
        case .scale(let f), .l2Penalty(let f), .l2PenaltyGrad(let f):
            return [("factor", .float(f))]
        case .constant(let v):
            return [("value", .float(v))]
        case .sgdUpdate(let a):
            var attrs: [(String, Attribute)] = [("momentum", .float(a.momentum)), ("nesterov", .bool(a.nesterov))]
            if a.weightDecay != 0 { attrs += [("weight_decay", .float(a.weightDecay)), ("decoupled", .bool(a.decoupled))] }
            return attrs
        case .adamUpdate(let a):
            return [("beta1", .float(a.beta1)), ("beta2", .float(a.beta2)), ("epsilon", .float(a.epsilon))]
        case .maxNormProject(let v, let axis):
            return [("max_value", .float(v)), ("axis", .symbol(axis.rawValue))]
        case .batchnormStatsUpdate(let m):
            return [("momentum", .float(m))]
        case .fused(let a), .fusedTrain(let a):
            return fusedAttributes(a)
        case .fusedTrainGrad(let a):
            return fusedAttributes(a.fused) + [("input_grad", .bool(a.inputGrad)), ("weight_grad", .bool(a.weightGrad))]
        case .dense, .relu, .flatten, .softmax, .softmaxCrossEntropy, .add, .biasGrad,
             .denseGradInput, .denseGradWeight, .reluGrad, .mul, .softmaxCrossEntropyGrad,
             .softmaxGrad, .increment:
            return []
        case .preprocess(let p):
            return p.attributes
        }
    }

    private func fusedAttributes(_ a: FusedAttrs) -> [(String, Attribute)] {
        var r: [(String, Attribute)] = []
        if let c = a.conv { r = [("stride", .int(c.stride)), ("padding", .symbol(c.padding.rawValue))] }
        return r + [("bias", .bool(a.bias)), ("relu", .bool(a.relu)),
                    ("batchnorm", .symbol(a.batchnorm.rawValue)), ("epsilon", .float(a.epsilon))]
    }

    /// Builds an op from its language name and attributes, applying documented defaults.
    /// Returns nil for an unknown name; throws for unknown or ill-typed attributes.
    public static func make(name: String, attributes: [String: Attribute]) throws(AttributeError) -> Op? {
        var r = AttributeReader(attributes)
        let op: Op
        func conv(_ r: inout AttributeReader) throws(AttributeError) -> Conv2DAttrs {
            let stride = try r.int("stride", default: 1)
            guard stride >= 1 else { throw AttributeError(kind: .invalidValue(name: "stride", message: "must be at least 1, got \(stride)")) }
            return Conv2DAttrs(stride: stride, padding: try r.choice("padding", default: Padding.same))
        }
        func pool(_ r: inout AttributeReader) throws(AttributeError) -> PoolAttrs {
            let size = try r.int("size", default: 2)
            let stride = try r.int("stride", default: size)
            guard size >= 1 else { throw AttributeError(kind: .invalidValue(name: "size", message: "must be at least 1, got \(size)")) }
            guard stride >= 1 else { throw AttributeError(kind: .invalidValue(name: "stride", message: "must be at least 1, got \(stride)")) }
            return PoolAttrs(size: size, stride: stride, padding: try r.choice("padding", default: Padding.valid))
        }
        func bn(_ r: inout AttributeReader) throws(AttributeError) -> BatchNormAttrs {
            let eps = try r.double("epsilon", default: 1e-3)
            guard eps > 0 else { throw AttributeError(kind: .invalidValue(name: "epsilon", message: "must be positive, got \(eps)")) }
            let momentum = try r.double("momentum", default: 0.99)
            guard momentum >= 0, momentum <= 1 else { throw AttributeError(kind: .invalidValue(name: "momentum", message: "must be in [0, 1], got \(momentum)")) }
            return BatchNormAttrs(epsilon: eps, momentum: momentum)
        }
        func rate(_ r: inout AttributeReader) throws(AttributeError) -> Double {
            let rate = try r.double("rate")
            guard rate >= 0, rate < 1 else { throw AttributeError(kind: .invalidValue(name: "rate", message: "must be in [0, 1), got \(rate)")) }
            return rate
        }
        func positive(_ r: inout AttributeReader, _ name: String) throws(AttributeError) -> [Int] {
            let v = try r.ints(name)
            guard v.allSatisfy({ $0 > 0 }) else { throw AttributeError(kind: .invalidValue(name: name, message: "dimensions must be positive, got \(Attribute.ints(v))")) }
            return v
        }
        func fused(_ r: inout AttributeReader, conv isConv: Bool) throws(AttributeError) -> FusedAttrs {
            var c: Conv2DAttrs?
            if isConv { c = try conv(&r) }
            let a = FusedAttrs(conv: c, bias: try r.bool("bias", default: true), relu: try r.bool("relu", default: true),
                               batchnorm: try r.choice("batchnorm", default: FusedBatchnorm.none),
                               epsilon: try r.double("epsilon", default: 1e-3))
            guard a.epsilon > 0 else { throw AttributeError(kind: .invalidValue(name: "epsilon", message: "must be positive, got \(a.epsilon)")) }
            guard a.relu || a.batchnorm != .afterRelu else {
                throw AttributeError(kind: .invalidValue(name: "batchnorm", message: "after_relu needs relu=true"))
            }
            return a
        }
        func fusedGrad(_ r: inout AttributeReader, conv isConv: Bool) throws(AttributeError) -> FusedGradAttrs {
            FusedGradAttrs(fused: try fused(&r, conv: isConv), inputGrad: try r.bool("input_grad", default: true),
                           weightGrad: try r.bool("weight_grad", default: true))
        }
        switch name {
        case "conv2d": op = .conv2d(try conv(&r))
        case "dense": op = .dense
        case "relu": op = .relu
        case "leaky_relu": op = .leakyRelu(alpha: try r.double("alpha", default: 0.3))
        case "batchnorm": op = .batchnorm(try bn(&r))
        case "batchnorm_train": op = .batchnormTrain(try bn(&r))
        case "dropout": op = .dropout(rate: try rate(&r))
        case "dropout_train": op = .dropoutTrain(rate: try rate(&r))
        case "maxpool": op = .maxpool(try pool(&r))
        case "avgpool": op = .avgpool(try pool(&r))
        case "flatten": op = .flatten
        case "softmax": op = .softmax
        case "softmax_cross_entropy": op = .softmaxCrossEntropy
        case "add": op = .add
        case "concat": op = .concat(axis: try r.int("axis", default: 1))
        case "conv2d_grad_input":
            let c = try conv(&r)
            op = .conv2dGradInput(ConvGradAttrs(conv: c, shape: try positive(&r, "shape")))
        case "conv2d_grad_weight":
            let c = try conv(&r)
            op = .conv2dGradWeight(ConvGradAttrs(conv: c, shape: try positive(&r, "shape")))
        case "bias_grad": op = .biasGrad
        case "dense_grad_input": op = .denseGradInput
        case "dense_grad_weight": op = .denseGradWeight
        case "relu_grad": op = .reluGrad
        case "leaky_relu_grad": op = .leakyReluGrad(alpha: try r.double("alpha", default: 0.3))
        case "batchnorm_train_grad": op = .batchnormTrainGrad(epsilon: try r.double("epsilon", default: 1e-3))
        case "batchnorm_grad": op = .batchnormGrad(epsilon: try r.double("epsilon", default: 1e-3))
        case "mul": op = .mul
        case "maxpool_grad": op = .maxpoolGrad(try pool(&r))
        case "avgpool_grad": op = .avgpoolGrad(try pool(&r))
        case "reshape": op = .reshape(shape: try positive(&r, "shape"))
        case "softmax_cross_entropy_grad": op = .softmaxCrossEntropyGrad
        case "softmax_grad": op = .softmaxGrad
        case "slice":
            op = .slice(axis: try r.int("axis", default: 1), start: try r.int("start"), length: try r.int("length"))
        case "scale": op = .scale(factor: try r.double("factor"))
        case "l2_penalty": op = .l2Penalty(factor: try r.double("factor"))
        case "l2_penalty_grad": op = .l2PenaltyGrad(factor: try r.double("factor"))
        case "constant": op = .constant(value: try r.double("value"))
        case "sgd_update":
            op = .sgdUpdate(SGDAttrs(momentum: try r.double("momentum", default: 0),
                                     nesterov: try r.bool("nesterov", default: false),
                                     weightDecay: try r.double("weight_decay", default: 0),
                                     decoupled: try r.bool("decoupled", default: false)))
        case "adam_update":
            op = .adamUpdate(AdamAttrs(beta1: try r.double("beta1", default: 0.9),
                                       beta2: try r.double("beta2", default: 0.999),
                                       epsilon: try r.double("epsilon", default: 1e-7)))
        case "max_norm_project":
            op = .maxNormProject(maxValue: try r.double("max_value"),
                                 axis: try r.choice("axis", default: MaxNormAxis.keras))
        case "batchnorm_stats_update": op = .batchnormStatsUpdate(momentum: try r.double("momentum", default: 0.99))
        case "increment": op = .increment
        case "fused_conv2d": op = .fused(try fused(&r, conv: true))
        case "fused_dense": op = .fused(try fused(&r, conv: false))
        case "fused_conv2d_train": op = .fusedTrain(try fused(&r, conv: true))
        case "fused_dense_train": op = .fusedTrain(try fused(&r, conv: false))
        case "fused_conv2d_train_grad": op = .fusedTrainGrad(try fusedGrad(&r, conv: true))
        case "fused_dense_train_grad": op = .fusedTrainGrad(try fusedGrad(&r, conv: false))
        case _ where Preprocess.names.contains(name):
            guard let p = try Preprocess.read(name, &r) else { return nil }
            op = .preprocess(p)
        default: return nil
        }
        try r.finish()
        return op
    }

    public var pattern: OpPattern {
        switch self {
        case .conv2d, .dense, .conv2dGradInput, .conv2dGradWeight, .denseGradInput, .denseGradWeight,
             .fused, .fusedTrain, .fusedTrainGrad:
            return .convLike
        case .relu, .leakyRelu, .dropout, .dropoutTrain, .add, .reluGrad, .leakyReluGrad, .mul,
             .scale, .batchnormGrad, .l2PenaltyGrad:
            return .elementwise
        case .batchnorm, .batchnormTrain, .softmax, .softmaxCrossEntropy, .biasGrad,
             .batchnormTrainGrad, .softmaxCrossEntropyGrad, .softmaxGrad, .l2Penalty:
            return .reduction
        case .flatten, .reshape, .concat, .slice, .constant:
            return .injective
        case .maxpool, .avgpool, .maxpoolGrad, .avgpoolGrad, .preprocess:
            return .opaque
        case .sgdUpdate, .adamUpdate, .maxNormProject, .batchnormStatsUpdate, .increment:
            return .update
        }
    }

    /// Update ops write (some of) their inputs in place and define no values.
    public var isUpdate: Bool { pattern == .update }

    /// The input positions an update op writes.
    public var writtenInputs: [Int] {
        switch self {
        case .sgdUpdate: return [0, 2]
        case .adamUpdate: return [0, 2, 3]
        case .maxNormProject, .increment: return [0]
        case .batchnormStatsUpdate: return [0, 1]
        case .conv2d, .dense, .relu, .leakyRelu, .batchnorm, .batchnormTrain, .dropout, .dropoutTrain,
             .maxpool, .avgpool, .flatten, .softmax, .softmaxCrossEntropy, .add, .concat,
             .conv2dGradInput, .conv2dGradWeight, .biasGrad, .denseGradInput, .denseGradWeight,
             .reluGrad, .leakyReluGrad, .batchnormTrainGrad, .batchnormGrad, .mul, .maxpoolGrad,
             .avgpoolGrad, .reshape, .softmaxCrossEntropyGrad, .softmaxGrad, .slice, .scale,
             .l2Penalty, .l2PenaltyGrad, .constant, .fused, .fusedTrain, .fusedTrainGrad,
             .preprocess:
            return []
        }
    }

    /// Whether the output may share the first input's buffer (same size, each element read
    /// before it is written).
    public var mayRunInPlace: Bool {
        switch self {
        case .relu, .leakyRelu, .dropout, .add, .mul, .scale, .reluGrad, .leakyReluGrad, .flatten,
             .reshape, .batchnormGrad:
            return true
        case .conv2d, .dense, .batchnorm, .batchnormTrain, .dropoutTrain, .maxpool, .avgpool,
             .softmax, .softmaxCrossEntropy, .concat, .conv2dGradInput, .conv2dGradWeight,
             .biasGrad, .denseGradInput, .denseGradWeight, .batchnormTrainGrad, .maxpoolGrad,
             .avgpoolGrad, .softmaxCrossEntropyGrad, .softmaxGrad, .slice, .l2Penalty,
             .l2PenaltyGrad, .constant, .fused, .fusedTrain, .fusedTrainGrad,
             .sgdUpdate, .adamUpdate, .maxNormProject, .batchnormStatsUpdate, .increment,
             .preprocess:
            return false
        }
    }
}
