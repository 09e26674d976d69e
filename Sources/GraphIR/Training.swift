// The training section of a model: optimizer, learning-rate schedule, batch size, epochs, seed,
// input preprocessing and augmentation. The graph carries it so that `fergc train` and the
// printer see one source of truth; the optimizer pass turns it into update nodes.

public enum OptimizerConfig: Hashable, Sendable {
    case sgd(lr: Double, SGDAttrs)
    case adam(lr: Double, AdamAttrs)

    public var learningRate: Double {
        switch self {
        case .sgd(let lr, _), .adam(let lr, _): return lr
        }
    }
}

public enum LRSchedule: Hashable, Sendable {
    case constant
    /// Keras' `decay`: lr / (1 + decay * iterations), iterations counted in steps.
    case inverseTime(decay: Double)
    /// Cosine from lr to lr * minFactor over all epochs, after `warmupEpochs` of linear warm-up.
    case cosine(minFactor: Double, warmupEpochs: Double)
    /// lr * factor^(floor(epoch / every)).
    case step(every: Int, factor: Double)

    /// The learning rate at a step, given the base rate, the steps per epoch and the epochs.
    public func rate(base: Double, iteration: Int, stepsPerEpoch: Int, epochs: Int) -> Double {
        switch self {
        case .constant:
            return base
        case .inverseTime(let decay):
            return base / (1 + decay * Double(iteration))
        case .cosine(let minFactor, let warmupEpochs):
            let total = Double(max(1, stepsPerEpoch * epochs))
            let warm = warmupEpochs * Double(stepsPerEpoch)
            let t = Double(iteration)
            if t < warm { return base * (t + 1) / warm }
            let p = min(1, (t - warm) / max(1, total - warm))
            return base * (minFactor + (1 - minFactor) * 0.5 * (1 + cos(Double.pi * p)))
        case .step(let every, let factor):
            let epoch = iteration / max(1, stepsPerEpoch)
            return base * pow(factor, Double(epoch / max(1, every)))
        }
    }
}

public struct Augmentation: Hashable, Sendable {
    /// Mirror each training image left-right with probability 1/2.
    public var horizontalFlip: Bool
    /// Shift by up to this fraction of the width and height (zeros enter at the edges).
    public var shift: Double
    /// Side of the square the model sees (0: the whole 48x48 face). Training takes a random
    /// crop of this side from the face padded by `pad` pixels on every side; validation and
    /// evaluation take the centre crop.
    public var crop: Int = 0
    /// Pixels of padding around the face before a random crop.
    public var pad: Int = 0
    /// What the padding (and any pixel outside the face after rotation or zoom) holds.
    public var padMode: PadMode = .zero
    /// Rotate by an angle drawn uniformly from [-rotate, rotate] degrees (bilinear).
    public var rotate: Double = 0
    /// Zoom by a factor drawn uniformly from [1 - scale, 1 + scale] (bilinear, about the centre).
    public var scale: Double = 0
    /// Random erasing: with this probability, a rectangle of the crop is set to zero.
    public var erase: Double = 0
    /// The erased rectangle's area, as a fraction of the crop's, is drawn from this range; its
    /// aspect ratio log-uniformly from [0.3, 1/0.3].
    public var eraseMin: Double = 0.02
    public var eraseMax: Double = 0.25

    public enum PadMode: String, Hashable, Sendable, CaseIterable {
        /// Zeros outside the face.
        case zero
        /// The face mirrored at its edges (without repeating the edge pixel).
        case reflect
        /// The nearest edge pixel.
        case edge
    }

    public init(horizontalFlip: Bool = false, shift: Double = 0) {
        self.horizontalFlip = horizontalFlip
        self.shift = shift
    }
    public static let none = Augmentation()
    public var isNone: Bool { !horizontalFlip && shift == 0 && !usesExtendedOptions }
    /// Whether any option beyond flips and shifts is set (crop, pad, rotation, zoom, erasing).
    public var usesExtendedOptions: Bool { crop != 0 || pad != 0 || padMode != .zero || rotate != 0 || scale != 0 || erase != 0 }
    /// Whether a random draw changes anything (a centre crop alone is deterministic).
    /// The side of the images the model is trained on.
    public var outputSide: Int { crop == 0 ? 48 : crop }
    public var isRandom: Bool { horizontalFlip || shift != 0 || pad != 0 || rotate != 0 || scale != 0 || erase != 0 }
}

/// The last epochs of a run, after the main schedule has ended, with their own learning rate,
/// schedule and augmentation (`finish = finish(epochs=2, lr=0.001, augment=augment(hflip=true, crop=40))`):
/// the light final phase that lifted models trained with rotation, zoom and erasing
/// (docs/results/best/README.md, session 45's rule E), planned into the run instead of a
/// second `fergc train --init`. The optimizer's momentum and the weight average carry on across
/// the change; every random draw stays keyed by (seed, epoch, position), so a run resumes
/// exactly inside its finish too.
public struct FinishStage: Hashable, Sendable {
    /// Epochs after the main ones (at least 1).
    public var epochs: Int
    /// The rate the finish starts from; its schedule runs over the finish's epochs alone.
    public var learningRate: Double
    public var schedule: LRSchedule
    /// The finish's augmentation (nil: the run's own). Its crop is the run's: the model's input
    /// side does not change.
    public var augmentation: Augmentation?

    public init(epochs: Int, learningRate: Double, schedule: LRSchedule = .cosine(minFactor: 0, warmupEpochs: 0),
                augmentation: Augmentation? = nil) {
        self.epochs = epochs
        self.learningRate = learningRate
        self.schedule = schedule
        self.augmentation = augmentation
    }
}

/// The most epochs a run (its main epochs, or its finish's) may ask for: the graph language's
/// integer limit, so that steps counted over a run (epochs times steps per epoch) stay far from
/// Int's range whatever `--epochs` or a checkpoint's record says.
public let maxTrainingEpochs = Int(Int32.max)

public struct TrainingConfig: Hashable, Sendable {
    /// The name of the scalar value to minimise (before regularizers are added).
    public var loss: String
    public var optimizer: OptimizerConfig
    public var schedule: LRSchedule
    public var batchSize: Int
    public var epochs: Int
    public var seed: UInt64
    /// Pixels are multiplied by this before entering the graph (1 = raw 0..255, as in the paper).
    public var inputScale: Double
    public var augmentation: Augmentation
    /// Label smoothing of the softmax cross-entropy losses in the training step: the target is
    /// (1 - smoothing) on the label plus smoothing / classes on every class. Validation and
    /// evaluation losses stay the plain cross-entropy.
    public var labelSmoothing: Double = 0
    /// Decay of an exponential moving average of the weights and batchnorm statistics, kept by
    /// the trainer (0: none). Validation and the checkpoints' weights are the average.
    public var ema: Double = 0
    /// Mixup (Zhang et al. 2018): 0 for none, or the parameter a of Beta(a, a). Each training
    /// batch draws one weight l from Beta(a, a) and a pairing of its images; every image
    /// becomes l x + (1 - l) x' of itself and its partner (after their augmentation), and its
    /// target l q(y) + (1 - l) q(y') (q: the label smoothing's target), so the training step's
    /// loss reads soft targets, an input 'targets: f32[N, K]' that training-form adds.
    /// Validation and evaluation are unchanged.
    public var mixup: Double = 0
    /// Knowledge distillation (Hinton, Vinyals and Dean 2015): 0 for none, or the weight a in
    /// [0, 1] of a teacher's probabilities in each training image's target,
    /// (1 - a) q(y) + a p(T) (q: the label smoothing's target; p(T): the teacher's probabilities
    /// on the face, raised to 1/T and renormalized, T = `distillTemperature`). The teacher is a
    /// plan run once over the training faces before the first step (`fergc train --teacher`);
    /// like mixup, the step's loss reads soft targets. With mixup both images' targets are mixed.
    public var distill: Double = 0
    /// The temperature T that softens the teacher's probabilities (1: as the teacher gives them).
    public var distillTemperature: Double = 1
    /// Whether the training step's loss reads soft targets instead of the labels.
    public var usesSoftTargets: Bool { mixup > 0 || distill > 0 }
    /// What the training step's convolutions compute in: "f32", or "bf16" (their forwards, input
    /// and weight gradients with bf16 products and f32 sums, on AMX or AVX512_BF16; the weights,
    /// batchnorm, the loss and the update in f32; all f32 where the CPU has neither). The training plan carries it
    /// (`PlanMetadata.computeDType`); plans compiled for inference stay f32.
    public var compute = "f32"
    /// The run's last epochs with their own rate, schedule and augmentation (nil: none).
    public var finish: FinishStage? = nil

    /// The epochs the run trains: the main `epochs` and the finish's.
    public var totalEpochs: Int { epochs + (finish?.epochs ?? 0) }

    /// The learning rate of step `iteration` (0-based, counted over the whole run): the main
    /// schedule over `epochs`, then the finish's schedule from its own rate over its epochs.
    public func learningRate(iteration: Int, stepsPerEpoch: Int) -> Double {
        let mainSteps = stepsPerEpoch * epochs
        if let f = finish, iteration >= mainSteps {
            return f.schedule.rate(base: f.learningRate, iteration: iteration - mainSteps, stepsPerEpoch: stepsPerEpoch, epochs: f.epochs)
        }
        return schedule.rate(base: optimizer.learningRate, iteration: iteration, stepsPerEpoch: stepsPerEpoch, epochs: epochs)
    }

    /// The augmentation of epoch `epoch` (0-based): the finish's in its epochs, else the run's.
    public func augmentation(epoch: Int) -> Augmentation {
        if epoch >= epochs, let a = finish?.augmentation { return a }
        return augmentation
    }

    /// Whether any epoch's training images are augmented.
    public var augmentsAnyEpoch: Bool { !augmentation.isNone || !(finish?.augmentation?.isNone ?? true) }

    public init(loss: String, optimizer: OptimizerConfig, schedule: LRSchedule = .constant,
                batchSize: Int = 128, epochs: Int = 100, seed: UInt64 = 1, inputScale: Double = 1,
                augmentation: Augmentation = .none) {
        self.loss = loss
        self.optimizer = optimizer
        self.schedule = schedule
        self.batchSize = batchSize
        self.epochs = epochs
        self.seed = seed
        self.inputScale = inputScale
        self.augmentation = augmentation
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
