// A plan: what the runtime executes. It knows nothing of graphs: a list of buffers (with the
// role each plays and its per-sample shape) and a list of steps, each a kernel with its
// geometry resolved and the buffers it reads and writes. The batch size is bound when the plan
// runs (any n up to `maxBatch`), so one plan serves full and partial batches.

public enum ElementType: String, Sendable, Hashable, Codable {
    case f32, i32
}

public enum BufferRole: String, Sendable, Hashable, Codable {
    /// Fed by the caller for each batch.
    case input
    /// Learned weights, persistent.
    case parameter
    /// Persistent but not learned by gradient (batchnorm running statistics, optimizer state).
    case state
    /// Computed by a step.
    case intermediate
}

public struct BufferDesc: Sendable, Hashable, Codable {
    public var name: String
    public var elementType: ElementType
    /// Shape without the batch dimension.
    public var perSample: [Int]
    /// Whether the buffer has a leading batch dimension.
    public var batched: Bool
    public var role: BufferRole
    /// Byte offset in the plan's arena (intermediates placed by the memory planner); nil means
    /// the buffer has storage of its own (parameters, state, inputs, or an unplanned plan).
    public var offset: Int?
    /// In a test-time-augmentation plan, the views per face of a batched buffer between the
    /// views step and the mean step: it holds n*views samples for a batch of n faces. Nil: 1.
    public var views: Int?

    public init(name: String, elementType: ElementType = .f32, perSample: [Int], batched: Bool, role: BufferRole, offset: Int? = nil) {
        self.name = name
        self.elementType = elementType
        self.perSample = perSample
        self.batched = batched
        self.role = role
        self.offset = offset
    }

    /// Bytes for a batch of n.
    public func byteCount(batch n: Int) -> Int { elementCount(batch: n) * 4 }

    public var elementsPerSample: Int { perSample.reduce(1, *) }
    public func elementCount(batch n: Int) -> Int { batched ? n * (views ?? 1) * elementsPerSample : elementsPerSample }
    /// Full shape for a batch of n.
    public func shape(batch n: Int) -> [Int] { batched ? [n * (views ?? 1)] + perSample : perSample }
}

/// The geometry of a 2-d convolution over one sample, NCHW / OIHW, zero padding.
public struct ConvGeometry: Sendable, Hashable, Codable {
    public var inChannels: Int, inHeight: Int, inWidth: Int
    public var outChannels: Int, kernelHeight: Int, kernelWidth: Int
    public var stride: Int
    /// Zero rows/columns added before the input (after-padding is implied by the output size).
    public var padTop: Int, padLeft: Int
    public var outHeight: Int, outWidth: Int

    public init(inChannels: Int, inHeight: Int, inWidth: Int, outChannels: Int, kernelHeight: Int,
                kernelWidth: Int, stride: Int, padTop: Int, padLeft: Int, outHeight: Int, outWidth: Int) {
        self.inChannels = inChannels; self.inHeight = inHeight; self.inWidth = inWidth
        self.outChannels = outChannels; self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
        self.stride = stride; self.padTop = padTop; self.padLeft = padLeft
        self.outHeight = outHeight; self.outWidth = outWidth
    }

    /// Multiply-adds of the forward pass for one sample.
    public var macsPerSample: Int { outChannels * outHeight * outWidth * inChannels * kernelHeight * kernelWidth }
}

/// The geometry of a 2-d pooling window over one sample.
public struct PoolGeometry: Sendable, Hashable, Codable {
    public var channels: Int, inHeight: Int, inWidth: Int
    public var size: Int, stride: Int
    public var padTop: Int, padLeft: Int
    public var outHeight: Int, outWidth: Int

    public init(channels: Int, inHeight: Int, inWidth: Int, size: Int, stride: Int, padTop: Int,
                padLeft: Int, outHeight: Int, outWidth: Int) {
        self.channels = channels; self.inHeight = inHeight; self.inWidth = inWidth
        self.size = size; self.stride = stride; self.padTop = padTop; self.padLeft = padLeft
        self.outHeight = outHeight; self.outWidth = outWidth
    }
}

/// Which axes a max-norm constraint measures the norm over, for a weight in fergc's layout
/// (conv `[O, C, KH, KW]`, dense `[O, I]`).
public enum MaxNormMode: String, Sendable, Hashable, Codable {
    /// Keras' `MaxNorm(axis=0)` on Keras' layouts: conv norms over KH for each (O, C, KW);
    /// dense norms over I for each O.
    case keras
    /// One norm per output filter/unit, over everything else.
    case perFilter
}

/// The conv2d or dense a fused kernel is built around.
public enum FusedAnchor: Sendable, Hashable, Codable {
    case conv2d(ConvGeometry)
    case dense(inFeatures: Int, outFeatures: Int)
}

/// Where a fused kernel's batchnorm sits relative to its relu.
public enum BatchnormPlacement: String, Sendable, Hashable, Codable {
    case none, beforeRelu, afterRelu
}

/// What a fused kernel applies after its anchor: bias, then relu and batchnorm in the order
/// `batchnorm` says.
public struct FusedEpilogue: Sendable, Hashable, Codable {
    public var bias: Bool
    public var relu: Bool
    public var batchnorm: BatchnormPlacement
    public var epsilon: Float
    public init(bias: Bool, relu: Bool, batchnorm: BatchnormPlacement, epsilon: Float) {
        self.bias = bias
        self.relu = relu
        self.batchnorm = batchnorm
        self.epsilon = epsilon
    }
    public var hasBatchnorm: Bool { batchnorm != .none }
    /// Whether the backward reads y (the relu mask when relu comes last).
    public var backwardReadsOutput: Bool { relu && batchnorm != .afterRelu }
}

/// A kernel with its geometry. Inputs and outputs are buffer indices in the step; the comments
/// give them in order. "count" sizes are per sample; the executor multiplies by the batch for
/// batched buffers. Channel-wise kernels see a tensor as [N, channels, spatial].
public enum Kernel: Sendable, Hashable, Codable {
    // MARK: forward
    /// (x, w, b?) -> y
    case conv2d(ConvGeometry, bias: Bool)
    /// (x[N,I], w[O,I], b?) -> y[N,O]
    case dense(inFeatures: Int, outFeatures: Int, bias: Bool)
    /// (x) -> y
    case relu
    /// (x) -> y
    case leakyRelu(alpha: Float)
    /// (x, gamma, beta, running_mean, running_var) -> y
    case batchnormInference(channels: Int, spatial: Int, epsilon: Float)
    /// (x, gamma, beta) -> (y, batch_mean, batch_var) — biased variance.
    case batchnormTrain(channels: Int, spatial: Int, epsilon: Float)
    /// (x) -> (y, mask), mask in {0, 1/(1-rate)}, drawn from the executor's counter-based RNG.
    case dropoutTrain(rate: Float)
    /// (x) -> y
    case maxpool(PoolGeometry)
    /// (x) -> y, averaging over the window's in-bounds elements only.
    case avgpool(PoolGeometry)
    /// (x[N,K]) -> y, softmax over K.
    case softmax(classes: Int)
    /// (logits[N,K], labels i32[N]) -> loss[]: mean over the batch of -log softmax[label].
    case softmaxCrossEntropy(classes: Int)
    /// (a, b, ...) -> sum
    case add
    /// (a, b, ...) -> elementwise product
    case mul
    /// (x) -> y: the same elements (flatten, reshape).
    case copy
    /// (x1, x2, ...) -> y: per sample, each input is [outer, size_i * inner] and they are
    /// placed side by side along the middle axis.
    case concat(outer: Int, inner: Int, sizes: [Int])
    /// (x) -> y: per sample, x is [outer, total * inner] and y takes [start, start+length).
    case slice(outer: Int, inner: Int, total: Int, start: Int, length: Int)
    /// (x) -> x * factor
    case scale(factor: Float)
    /// (w) -> factor * sum(w^2)
    case l2Penalty(factor: Float)
    /// (dloss[], w) -> 2 * factor * dloss * w
    case l2PenaltyGrad(factor: Float)
    /// () -> value (a scalar)
    case constant(value: Float)

    // MARK: backward
    /// (dy, w) -> dx
    case conv2dGradInput(ConvGeometry)
    /// (dy, x) -> dw
    case conv2dGradWeight(ConvGeometry)
    /// (dy) -> db: sum over N and spatial for each channel.
    case biasGrad(channels: Int, spatial: Int)
    /// (dy[N,O], w[O,I]) -> dx[N,I]
    case denseGradInput(inFeatures: Int, outFeatures: Int)
    /// (dy[N,O], x[N,I]) -> dw[O,I]
    case denseGradWeight(inFeatures: Int, outFeatures: Int)
    /// (dy, y) -> dx
    case reluGrad
    /// (dy, x) -> dx
    case leakyReluGrad(alpha: Float)
    /// (dy, x, gamma, batch_mean, batch_var) -> (dx, dgamma, dbeta)
    case batchnormTrainGrad(channels: Int, spatial: Int, epsilon: Float)
    /// (dy, gamma, running_var) -> dx
    case batchnormInferenceGrad(channels: Int, spatial: Int, epsilon: Float)
    /// (dy, x) -> dx: to the first maximum of each window.
    case maxpoolGrad(PoolGeometry)
    /// (dy, x) -> dx; x for its shape only.
    case avgpoolGrad(PoolGeometry)
    /// (dy, y) -> dx, y the softmax output.
    case softmaxGrad(classes: Int)
    /// (dloss[], logits, labels) -> dlogits
    case softmaxCrossEntropyGrad(classes: Int)

    // MARK: updates (write inputs in place; no outputs)
    /// (param, grad, velocity, lr[]): v = momentum*v - lr*g; p += v, or with Nesterov
    /// p += momentum*v - lr*g (Keras' SGD). With momentum 0: p -= lr*g.
    case sgdUpdate(momentum: Float, nesterov: Bool)
    /// (param, grad, m, v, lr[], iterations[]): t = iterations + 1,
    /// lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t), m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2,
    /// p -= lr_t * m / (sqrt(v) + epsilon) — Keras' Adam.
    case adamUpdate(beta1: Float, beta2: Float, epsilon: Float)
    /// (param): w *= clip(norm, 0, maxValue) / (1e-7 + norm), norms per `mode`; `shape` is the
    /// weight's shape ([O,C,KH,KW] or [O,I]).
    case maxNormProject(maxValue: Float, mode: MaxNormMode, shape: [Int])
    /// (running_mean, running_var, batch_mean, batch_var, x): r = momentum*r + (1-momentum)*b,
    /// with the batch variance made unbiased (times m/(m-1), m = N*spatial).
    case batchnormStatsUpdate(momentum: Float, channels: Int, spatial: Int)
    /// (counter[]): counter += 1
    case increment

    // MARK: recipe and test-time augmentation (Recipe.swift)
    /// (logits, labels) -> loss[]: cross-entropy against (1 - smoothing) onehot + smoothing / K
    case softmaxCrossEntropySmoothed(classes: Int, smoothing: Float)
    /// (dloss[], logits, labels) -> dlogits
    case softmaxCrossEntropySmoothedGrad(classes: Int, smoothing: Float)
    /// (logits, targets) -> loss[]: cross-entropy against soft targets [N, K] (mixup's step)
    case softmaxCrossEntropySoft(classes: Int)
    /// (dloss[], logits, targets) -> dlogits
    case softmaxCrossEntropySoftGrad(classes: Int)
    /// (param, grad, velocity, lr[]): `sgdUpdate` with weight decay, coupled (PyTorch) or
    /// decoupled (SGDW)
    case sgdWeightDecayUpdate(momentum: Float, nesterov: Bool, weightDecay: Float, decoupled: Bool)
    /// (faces [C, F, F]) -> views [C, S, S] with `views` = V: the views of each face
    case ttaViews(TTAViews)
    /// (scores [K] with `views` = V) -> probabilities [K]: the mean softmax over each face's
    /// views (the mean of the scores when they already are probabilities)
    case ttaMean(classes: Int, views: Int, probabilities: Bool)

    // MARK: fused (FusedKernels.swift)
    /// (x, w, b?, gamma?, beta?, running_mean?, running_var?) -> y
    case fused(FusedAnchor, FusedEpilogue)
    /// (x, w, b?, gamma?, beta?) -> (y, bn_input?, batch_mean?, batch_var?)
    case fusedTrain(FusedAnchor, FusedEpilogue)
    /// (dy, x, w, y?, bn_input?, gamma?, batch_mean?, batch_var?) -> (dx?, dw?, db?, dgamma?, dbeta?);
    /// slots as `FusedGradSlots` says.
    case fusedTrainGrad(FusedAnchor, FusedEpilogue, inputGrad: Bool, weightGrad: Bool)

    // MARK: preprocessing (Runtime/Preprocess.swift)
    /// (x) -> y: a technique applied to each of `planes` (per sample) image planes of height x width.
    case preprocess(PreprocessTechnique, planes: Int, height: Int, width: Int)
}

/// How a forward convolution step is computed on the fast Float path.
public enum ConvAlgorithm: String, Sendable, Hashable, Codable {
    /// im2col panels and a GEMM (FastConv.swift).
    case direct
    /// Winograd F(4x4,3x3) (Winograd.swift): 3x3, stride 1, padding 1 only.
    case winograd
}

public struct Step: Sendable, Hashable, Codable {
    public var name: String
    public var kernel: Kernel
    public var inputs: [Int]
    public var outputs: [Int]
    /// For a forward convolution (conv2d, fused, fusedTrain with a conv anchor) or a fused
    /// training backward that computes a conv's input gradient, the algorithm the compiler
    /// chose (`winogradGeometry(of:)` names the steps it may be set on); nil means direct.
    /// Absent from plans written before it existed.
    public var algorithm: ConvAlgorithm?
    public init(name: String, kernel: Kernel, inputs: [Int], outputs: [Int], algorithm: ConvAlgorithm? = nil) {
        self.name = name
        self.kernel = kernel
        self.inputs = inputs
        self.outputs = outputs
        self.algorithm = algorithm
    }
}

/// What a plan says about itself: provenance and the facts an embedder needs.
public struct PlanMetadata: Sendable, Codable, Equatable {
    public var modelName: String = ""
    /// Hash of the model source the plan was compiled from.
    public var sourceHash: String = ""
    /// Per-sample shape of the image input, e.g. [1, 48, 48].
    public var inputShape: [Int] = []
    /// Pixels are multiplied by this before entering the plan.
    public var inputScale: Double = 1
    public var classNames: [String] = []
    /// The passes that produced the plan, in order.
    public var passes: [String] = []
    /// Max error of the optimized plan against the unoptimized graph on the probe batch, by output.
    public var probeErrors: [String: Double] = [:]
    /// For each forward convolution that could run as Winograd F(4x4,3x3), by step name: the
    /// largest difference between its Winograd and direct outputs on the probe batch, relative
    /// to the largest direct output (`chooseConvAlgorithms`). Nil in plans compiled without the
    /// check (and in those written before it existed).
    public var winogradErrors: [String: Double]?
    /// "inference" or "training".
    public var mode: String = "inference"
    /// Test-time augmentation compiled into the plan, e.g. "tencrop: 10 views of 40x40 from
    /// each 48x48 face, mean softmax"; nil without.
    public var tta: String?
    /// Free-form training provenance (run, epochs, validation accuracy, data), when known.
    public var training: [String: String] = [:]
    public var producer: String = ""
    /// Training plans: the frozen prefix the `frozen-prefix` pass put first (nil: none).
    public var frozenPrefix: FrozenPrefixInfo?
    /// Ensemble plans (`fergc ensemble`): the members, whose weighted mean is the output.
    public var ensemble: EnsembleInfo?
    /// How the file stores the weights: nil or "f32", or "f16" (IEEE half, widened to f32 when
    /// loaded; `fergc compile --weights-dtype f16`).
    public var weightsDType: String?
    /// What the plan asks its convolutions to compute in: nil or "f32", or "bf16" (inference
    /// plans; `fergc compile --compute bf16`): on a CPU with AMX the executor rounds weights and
    /// activations to bf16 for the convolution products (BF16Conv.swift), elsewhere it runs f32.
    public var computeDType: String?
    public init() {}
}

/// The memory a plan needs, decided before it runs (bytes, at maxBatch).
public struct MemorySummary: Sendable, Codable, Equatable {
    /// Activations and temporaries after reuse: the arena.
    public var arenaBytes: Int = 0
    /// The same values without any reuse.
    public var naiveBytes: Int = 0
    public var parameterBytes: Int = 0
    /// Optimizer state (moments, velocities, counters) and batchnorm running statistics.
    public var optimizerBytes: Int = 0
    /// Kernel scratch: the im2col workspace, the fast kernels' per-thread panels for
    /// `workspaceThreads` threads and the Winograd filter transforms
    /// (`executorWorkspaceBytes`).
    public var workspaceBytes: Int = 0
    /// The thread count `workspaceBytes` is for (the compiling machine's cores); nil in plans
    /// written before it was recorded, whose workspace counted the im2col workspace only.
    public var workspaceThreads: Int?
    /// Caller-fed inputs.
    public var inputBytes: Int = 0
    public var totalBytes: Int { arenaBytes + parameterBytes + optimizerBytes + workspaceBytes + inputBytes }
    public init() {}
}

public struct Plan: Sendable, Codable {
    public var name: String
    public var buffers: [BufferDesc]
    public var steps: [Step]
    /// The largest batch the plan runs.
    public var maxBatch: Int
    /// Buffers the caller reads after a run, in order.
    public var outputs: [Int]
    public var metadata = PlanMetadata()
    /// Set by the memory planner; nil for a plan whose buffers each have their own storage.
    public var memory: MemorySummary?
    /// Initial values of parameter and state buffers, by buffer name (empty: zeros).
    public var parameters: [String: [Float]] = [:]

    public init(name: String, buffers: [BufferDesc], steps: [Step], maxBatch: Int, outputs: [Int]) {
        self.name = name
        self.buffers = buffers
        self.steps = steps
        self.maxBatch = maxBatch
        self.outputs = outputs
    }

    public func buffer(named name: String) -> Int? { buffers.firstIndex { $0.name == name } }
}

extension Plan {
    /// Whether the first output is already a probability vector: an ensemble's (the weighted
    /// mean of its members' probabilities), a test-time-augmentation plan's (the mean softmax
    /// over the views) or one written by a softmax. Otherwise it holds logits. The one answer
    /// for the runtime (which applies a softmax to logits) and for `fergc ensemble` (which must
    /// not apply a second one to probabilities).
    public var outputIsProbabilities: Bool {
        if metadata.ensemble != nil { return true }
        guard let out = outputs.first, let writer = steps.lastIndex(where: { $0.outputs.contains(out) }) else { return false }
        switch steps[writer].kernel {
        case .softmax, .ttaMean: return true
        default: return false
        }
    }
}
