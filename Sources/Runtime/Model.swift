// The embedding API: load a .plan once, classify images from any number of threads.
//
//   let model = try LoadedPlan(path: "vgg_tuned.plan")      // read, check, validate: once
//   let session = try Session(model)                         // one per thread
//   let probs = try session.predictRaw(pixels: faces)        // [[Float]], one row per image
//
// Threads. A `LoadedPlan` is immutable and `Sendable`: share one across threads. A `Session`
// owns an `Executor<Float>` (the plan's arena, buffers and scratch) and is not thread-safe:
// give each thread its own session (sessions on one plan are independent; they share only the
// immutable plan). A session may move between threads as long as one thread uses it at a time.
//
// What a plan must look like to classify: one f32 batched input holding the image (the one
// whose per-sample shape is `metadata.inputShape`, or the only f32 batched input), other inputs
// (labels, if the plan still computes a loss) are left at zero; its first output is a batched
// f32 [K] of class scores. If the step writing that output is a softmax, it is returned as is,
// otherwise a softmax is applied here. Dropout is off in sessions.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Names used when a plan's metadata has none and it has seven classes (FER2013's order).
public let fer2013ClassNames = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]

public struct ModelError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A plan read and validated once; immutable, shared by sessions on any thread.
public final class LoadedPlan: Sendable {
    public let plan: Plan
    /// Format version, producer, sections and weights hash when loaded from a file.
    public let file: PlanFile?
    /// The buffer the images go into, and the buffer the class scores come out of.
    public let inputBuffer: Int
    public let outputBuffer: Int
    /// Whether the output already is probabilities (`Plan.outputIsProbabilities`, Plan.swift: written by
    /// a softmax step, the mean of a test-time-augmentation plan, or an ensemble's).
    public let outputIsProbabilities: Bool
    /// Per-image shape (e.g. [1, 48, 48]) and element count.
    public let inputShape: [Int]
    public let inputElements: Int
    public let classNames: [String]
    /// Raw pixels are multiplied by this (`metadata.inputScale`) in `predictRaw`.
    public let inputScale: Float
    /// Parameter buffers the plan has no initial values for (they start at zero).
    public let parametersWithoutValues: [String]

    public var classes: Int { classNames.count }
    public var maxBatch: Int { plan.maxBatch }

    /// Loads and validates a .plan file.
    public convenience init(path: String) throws(PlanFileError) {
        let file = try readPlanFile(path: path)
        do { try self.init(plan: file.plan, file: file) } catch { throw PlanFileError(.invalidPlan, "\(error)", path: path) }
    }

    /// Decodes and validates the bytes of a .plan file.
    public convenience init(bytes: [UInt8]) throws(PlanFileError) {
        let file = try decodePlanFile(bytes)
        do { try self.init(plan: file.plan, file: file) } catch { throw PlanFileError(.invalidPlan, "\(error)") }
    }

    /// Validates an in-memory plan and finds its image input and class output.
    public init(plan: Plan, file: PlanFile? = nil) throws(ModelError) {
        do { try checkPlan(plan) } catch { throw ModelError(error.description) }
        // A training step normalises with the batch's own statistics: classifying with it gives
        // 1/K for every class of a single image. Refused, as `fergc eval` does.
        guard plan.metadata.mode != "training" else {
            throw ModelError("plan '\(plan.name)' is a training plan (batchnorm uses each batch's statistics); compile an inference plan (without --train) to classify")
        }
        self.plan = plan
        self.file = file
        let images = plan.buffers.indices.filter {
            plan.buffers[$0].role == .input && plan.buffers[$0].elementType == .f32 && plan.buffers[$0].batched
        }
        let shape = plan.metadata.inputShape
        let matching = shape.isEmpty ? images : images.filter { plan.buffers[$0].perSample == shape }
        guard matching.count == 1 else {
            let listed = images.map { "'\(plan.buffers[$0].name)' \(plan.buffers[$0].perSample)" }.joined(separator: ", ")
            throw ModelError("plan '\(plan.name)': cannot tell which input is the image: \(matching.count) of its batched f32 inputs (\(listed.isEmpty ? "none" : listed)) match the input shape \(shape.isEmpty ? "(unset)" : "\(shape)")")
        }
        inputBuffer = matching[0]
        inputShape = plan.buffers[inputBuffer].perSample
        inputElements = plan.buffers[inputBuffer].elementsPerSample
        guard let out = plan.outputs.first else { throw ModelError("plan '\(plan.name)' has no outputs") }
        let ob = plan.buffers[out]
        guard ob.elementType == .f32, ob.batched, ob.elementsPerSample >= 1 else {
            throw ModelError("plan '\(plan.name)': the first output '\(ob.name)' (\(ob.elementType.rawValue), \(ob.perSample), \(ob.batched ? "batched" : "not batched")) is not a batched f32 vector of class scores")
        }
        outputBuffer = out
        let k = ob.elementsPerSample
        outputIsProbabilities = plan.outputIsProbabilities
        let names = plan.metadata.classNames
        if names.isEmpty {
            classNames = k == fer2013ClassNames.count ? fer2013ClassNames : (0..<k).map { "class \($0)" }
        } else {
            guard names.count == k else {
                throw ModelError("plan '\(plan.name)': the metadata names \(names.count) classes but the output '\(ob.name)' has \(k)")
            }
            classNames = names
        }
        let scale = Float(plan.metadata.inputScale)
        guard scale.isFinite else { throw ModelError("plan '\(plan.name)': input scale \(plan.metadata.inputScale) is not finite") }
        inputScale = scale
        parametersWithoutValues = plan.buffers.filter { $0.role == .parameter && plan.parameters[$0.name] == nil }.map(\.name)
    }
}

/// One thread's inference context on a `LoadedPlan`: its own executor, not thread-safe.
public final class Session {
    public let model: LoadedPlan
    private var executor: Executor<Float>
    /// The batch the executor is sized for. A plan without arena offsets is sized for the
    /// batches actually run (starting at 16, growing by doubling up to maxBatch), not for
    /// maxBatch up front; a planned plan's arena is laid out for maxBatch and used as is.
    private var capacity: Int

    public init(_ model: LoadedPlan) throws {
        self.model = model
        let planned = model.plan.buffers.contains { $0.offset != nil }
        capacity = planned ? model.plan.maxBatch : min(model.plan.maxBatch, 16)
        executor = try Session.makeExecutor(model.plan, batch: capacity)
    }

    private static func makeExecutor(_ plan: Plan, batch: Int) throws -> Executor<Float> {
        var p = plan
        p.maxBatch = batch
        let executor = try Executor<Float>(plan: p)
        executor.dropoutEnabled = false
        for (i, b) in p.buffers.enumerated() {
            if let values = p.parameters[b.name] { executor.setBuffer(i, values) }
        }
        return executor
    }

    /// Class probabilities of `n` images at `images` (n * inputElements floats, already scaled),
    /// written to `probabilities` (n * classes floats, image-major). Any n >= 1: batches of up to
    /// maxBatch run in turn.
    public func predict(images: UnsafePointer<Float>, count n: Int, into probabilities: UnsafeMutablePointer<Float>) throws {
        guard n >= 1 else { throw ModelError("predict needs at least one image, got \(n)") }
        let per = model.inputElements, k = model.classes
        // Non-finite pixels would come out as plausible probabilities (1/K each): refused.
        let (total, overflow) = n.multipliedReportingOverflow(by: per)
        guard !overflow else { throw ModelError("\(n) images of \(per) values is too many") }
        if let bad = firstNonFinite(UnsafeBufferPointer(start: images, count: total)) {
            throw ModelError("image \(bad.index / per) holds a non-finite value (\(bad.value) at element \(bad.index % per))")
        }
        var done = 0
        while done < n {
            let m = min(model.maxBatch, n - done)
            if m > capacity {
                capacity = min(model.plan.maxBatch, max(m, capacity * 2))
                executor = try Session.makeExecutor(model.plan, batch: capacity)
            }
            executor.setBuffer(model.inputBuffer, Array(UnsafeBufferPointer(start: images + done * per, count: m * per)))
            try executor.run(batch: m)
            let scores = executor.buffer(model.outputBuffer)
            for i in 0..<m {
                let row = probabilities + (done + i) * k
                for j in 0..<k { row[j] = scores[i * k + j] }
                if !model.outputIsProbabilities { softmaxInPlace(row, k) }
            }
            done += m
        }
    }

    /// Class probabilities, one row of `classes` per image.
    public func predict(images: UnsafePointer<Float>, count n: Int) throws -> [[Float]] {
        let k = model.classes
        var flat = [Float](repeating: 0, count: n * k)
        try flat.withUnsafeMutableBufferPointer { try predict(images: images, count: n, into: $0.baseAddress!) }
        return (0..<n).map { Array(flat[$0 * k..<($0 + 1) * k]) }
    }

    /// Class probabilities of `images.count / inputElements` images (already scaled).
    public func predict(images: [Float]) throws -> [[Float]] {
        let per = model.inputElements
        guard !images.isEmpty, images.count % per == 0 else {
            throw ModelError("\(images.count) values is not a whole number of images of \(per) (\(model.inputShape))")
        }
        return try images.withUnsafeBufferPointer { try predict(images: $0.baseAddress!, count: images.count / per) }
    }

    /// The same for `count` images, checking that `images` holds exactly that many.
    public func predict(images: [Float], count n: Int) throws -> [[Float]] {
        guard images.count == n * model.inputElements else {
            throw ModelError("\(images.count) values for \(n) images of \(model.inputElements) (\(model.inputShape))")
        }
        return try predict(images: images)
    }

    /// Class probabilities of raw 8-bit pixels (e.g. 48x48 grayscale faces, row-major), scaled
    /// by the plan's `inputScale` first.
    public func predictRaw(pixels: [UInt8]) throws -> [[Float]] {
        let scale = model.inputScale
        return try predict(images: pixels.map { Float($0) * scale })
    }
}

/// softmax over k values in place (max-subtracted): the one the runtime applies to logits.
public func softmaxInPlace(_ p: UnsafeMutablePointer<Float>, _ k: Int) {
    var m = -Float.infinity
    for j in 0..<k { m = max(m, p[j]) }
    var sum: Float = 0
    for j in 0..<k {
        p[j] = m.isFinite ? expf(p[j] - m) : (p[j] == m ? 1 : 0)
        sum += p[j]
    }
    for j in 0..<k { p[j] /= sum }
}

/// The index of the largest probability (the first, on ties).
public func argmax(_ values: [Float]) -> Int {
    var best = 0
    for i in values.indices where values[i] > values[best] { best = i }
    return best
}
