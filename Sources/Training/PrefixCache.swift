// The frozen-prefix cache: when a training plan starts with a frozen, per-image prefix (the
// `frozen-prefix` pass, recorded in the plan's metadata), its output for each training image
// is computed once — by the step plan's own prefix steps, so with the same kernels — and kept;
// later steps write the cached values into the prefix's output buffer and run only the steps
// after it. Images beyond the memory budget are recomputed every time. Augmentation changes
// the prefix's input every epoch, so with augmentation the cache is off (and says so).
// Results equal the uncached run's: the prefix computes each image from that image alone.

import Runtime

final class PrefixCache {
    let info: FrozenPrefixInfo
    let outputIndex: Int
    let perImage: Int
    /// Images with an index below this are kept.
    let capacity: Int
    private var values: [Float]
    private var filled: [Bool]
    /// Prefix outputs computed and served from the cache, for the report.
    private(set) var computed = 0, served = 0

    init(info: FrozenPrefixInfo, outputIndex: Int, images: Int, budgetBytes: Int) {
        self.info = info
        self.outputIndex = outputIndex
        perImage = info.outputElementsPerSample
        capacity = min(images, max(budgetBytes, 0) / max(perImage * 4, 1))
        values = []
        filled = [Bool](repeating: false, count: capacity)
    }

    var bytes: Int { capacity * perImage * 4 }

    func has(_ image: Int) -> Bool { image < capacity && filled[image] }

    func store(_ image: Int, _ v: ArraySlice<Float>) {
        computed += 1
        guard image < capacity else { return }
        if values.isEmpty { values = [Float](repeating: 0, count: capacity * perImage) }
        values.replaceSubrange((image * perImage)..<((image + 1) * perImage), with: v)
        filled[image] = true
    }

    func copy(_ image: Int, into out: inout [Float]) {
        served += 1
        out.append(contentsOf: values[(image * perImage)..<((image + 1) * perImage)])
    }
}

extension Trainer {
    /// Turns the cache on when the step plan has a frozen prefix and nothing random feeds it;
    /// returns a line saying what it did (nil: the plan has no frozen prefix).
    func setUpPrefixCache(budgetBytes: Int) -> String? {
        guard let info = step.metadata.frozenPrefix else { return nil }
        let what = "frozen prefix (steps 0..<\(info.steps), '\(info.output)' \(info.outputPerSample))"
        guard budgetBytes > 0 else { return "\(what): cache off (--prefix-cache 0)" }
        guard options.group == nil else { return "\(what): cache off in a data-parallel run (each rank recomputes its share)" }
        guard !training.augmentsAnyEpoch else {
            return "\(what): cache off, because augmentation (flips/shifts) feeds the prefix and changes its output every epoch"
        }
        guard training.mixup == 0 else {
            return "\(what): cache off, because mixup feeds the prefix a new mix of images every step"
        }
        guard let index = step.buffer(named: info.output), step.buffer(named: info.input) != nil else {
            return "\(what): cache off (the plan lacks its buffers)"
        }
        let cache = PrefixCache(info: info, outputIndex: index, images: trainSet.count, budgetBytes: budgetBytes)
        prefixCache = cache
        let mb = Double(cache.bytes) / 1e6
        if cache.capacity == trainSet.count {
            return "\(what): cached for all \(trainSet.count) training images after the first epoch (\(String(format: "%.1f", mb)) MB)"
        }
        return "\(what): cached for \(cache.capacity) of \(trainSet.count) training images (\(String(format: "%.1f", mb)) MB budget); the rest are recomputed each step"
    }

    /// The step with the cache: the prefix runs only for images not cached (and stores them),
    /// then the rest of the step runs on the prefix outputs in batch order.
    func runCachedStep(_ cache: PrefixCache, x: [Float], indices: ArraySlice<Int>, iteration: Int, xIndex: Int) throws {
        let pixels = FaceSet.pixelsPerImage
        let missing = indices.enumerated().filter { !cache.has($0.element) }
        var computedOut: [Int: ArraySlice<Float>] = [:]
        if !missing.isEmpty {
            var sub: [Float] = []
            sub.reserveCapacity(missing.count * pixels)
            for (k, _) in missing { sub.append(contentsOf: x[(k * pixels)..<((k + 1) * pixels)]) }
            stepExecutor.setBuffer(xIndex, sub)
            try stepExecutor.run(batch: missing.count, steps: 0..<cache.info.steps)
            let out = stepExecutor.buffer(cache.outputIndex)
            for (j, (_, image)) in missing.enumerated() {
                let v = out[(j * cache.perImage)..<((j + 1) * cache.perImage)]
                cache.store(image, v)
                computedOut[image] = v
            }
        }
        var cut: [Float] = []
        cut.reserveCapacity(indices.count * cache.perImage)
        for image in indices {
            if let v = computedOut[image] { cut.append(contentsOf: v) } else { cache.copy(image, into: &cut) }
        }
        stepExecutor.setBuffer(cache.outputIndex, cut)
        stepExecutor.runCounter = UInt64(iteration)
        try stepExecutor.run(batch: indices.count, steps: cache.info.steps..<step.steps.count)
        stepExecutor.runCounter = UInt64(iteration) &+ 1
    }
}
