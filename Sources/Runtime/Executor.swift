import CKernels

/// Runs a validated `Plan` on buffers it owns; `T` is Float in production, Double for checks.
///
/// Storage. `init` validates the plan (see PlanValidation.swift) and allocates once, sized for
/// `plan.maxBatch` and zero-filled: f32 buffers hold `T`, i32 buffers hold `Int32`. A planned
/// plan (one whose intermediates have arena offsets, see Passes/MemoryPlan.swift) gets one
/// arena of `memory.arenaBytes` (scaled by `T`'s size over 4 bytes: twice the offsets and the
/// size for Double) and its intermediates point into it; inputs, parameters and state always
/// have storage of their own, as does every buffer of an unplanned plan. Parameter and state
/// buffers start from `plan.parameters` when it names them, zeros otherwise. One im2col
/// workspace, sized to the largest convolution, is shared by all conv steps. `run` allocates
/// nothing: argument tables for variadic kernels (add, mul, concat) are built at init.
/// (Storage is raw memory owned by the executor, not Swift arrays, so that kernels get stable
/// pointers; `setBuffer` / `buffer` copy in and out as `[T]` / `[Int32]`.) Elementwise steps,
/// convolutions as large out as in, and unpadded pools may write their first output over their
/// first input (in place; see `StepRequirements.inPlace`).
///
/// Running. `run(batch: n)` executes the steps in order through one exhaustive `switch` over
/// `Kernel`; batched buffers use their first n samples (n*V for a buffer with `views` = V, in a
/// test-time-augmentation plan, whose steps between the views and the mean run with batch n*V). Persistent buffers (parameter, state)
/// simply keep their values between runs; update kernels write them in place. Nothing is
/// cleared between runs: every kernel overwrites its outputs. In a planned plan, memory is
/// reused once a value is dead: after a run only the plan's outputs (and inputs and persistent
/// buffers) are sure to hold their values; other intermediates may hold later values.
/// `poisonFreedBuffers` (a debugging aid) fills each dead intermediate with NaN right after its
/// last use, so that a step reading freed memory shows up in the results.
///
/// Dropout. When `dropoutEnabled` (the default) the mask of element i (counted over the whole
/// batch, sample-major) of step s is drawn from `counterHash(seed, runCounter, s, i)`, so it is
/// deterministic, independent of threading and different on every run; `runCounter` goes up by
/// one after each completed run. When `dropoutEnabled` is false, dropout steps write y = x and
/// mask = 1.
///
/// Errors. A malformed plan throws from init (naming the step); a batch outside 1...maxBatch or
/// a label outside [0, classes) throws from `run` (the latter naming the step). Misuse of the
/// accessors (an index out of range, a wrong element type or count) is a precondition failure.
/// A run that throws stops before the failing step: earlier steps have run, `runCounter` is not
/// incremented.
public final class Executor<T: BLASReal> {
    public let plan: Plan
    /// Keep dropout masks random (training) or pass x through (evaluation).
    public var dropoutEnabled = true
    /// The dropout seed.
    public var seed: UInt64 = 0
    /// Completed runs; part of the dropout hash.
    public var runCounter: UInt64 = 0
    /// The batch size of the last `run` (maxBatch before the first).
    public private(set) var lastBatch: Int
    /// Debugging aid: after each step, fill with NaN (i32: Int32.min) every intermediate whose
    /// last use was that step and that is not a plan output, so that reading freed memory
    /// changes the results.
    public var poisonFreedBuffers = false
    /// Profiling hook (off when nil): `run` adds each step's wall time in seconds to
    /// `stepTimes[s]`, so it must hold `plan.steps.count` values; the caller owns and zeroes it.
    /// When nil, the only cost is one branch per step.
    public var stepTimes: UnsafeMutablePointer<Double>?
    /// Threads the Float kernels may use (1...). Results are bitwise reproducible for a given
    /// count: each kernel splits its work the same way every run and reduces in a fixed order.
    public var threads = onlineProcessors()
    /// Use the fast Float kernels (FastConv.swift, CKernels) where a step has one; false runs
    /// the generic reference kernels (the Double executor always does).
    public var fastKernels = true
    /// Which forward convolutions (`conv2d`, fused inference and fused training steps with a
    /// 3x3, stride-1, "same" geometry) the fast Float path computes with the Winograd
    /// F(4x4,3x3) kernels of Winograd.swift instead of im2col + GEMM: nil (the default) those
    /// the plan marks `.winograd` (the compiler's per-layer choice), true all that can, false
    /// none. Winograd does 4x fewer multiplies; its outputs are within about 1e-5 of the direct
    /// path's (relative to their magnitude), not bitwise equal. The transformed filters of a
    /// step whose weights no step of the plan writes are cached and recomputed only after
    /// `setBuffer` writes the weights; those of training steps are recomputed every run. Caches
    /// and scratch are allocated by the first run that needs them.
    public var winograd: Bool? = nil
    /// Whether convolutions run in bf16 on AMX (BF16Conv.swift, `bf16Role` says which: in
    /// inference plans the convolutions and dense layers, in training plans the forward, input
    /// and weight gradients of the fused convolutions): nil (the
    /// default) as the plan asks (`metadata.computeDType == "bf16"`: `fergc compile --compute
    /// bf16`, a train block's `compute = bf16`), true always, false never. Only where the CPU
    /// has AMX (`bf16ComputeAvailable`); elsewhere f32. `computesInBF16` says what runs.
    public var bf16: Bool? = nil
    /// Data parallelism (Shards.swift): when set, this executor's batch is one shard of a
    /// global batch. Batchnorm statistics and gradient sums are summed over the shards through
    /// it, dropout draws by the whole batch's element index, and it is called around each step
    /// (where the gradients are exchanged). nil (the default): the batch is the whole batch.
    public var shards: ExecutorShards?
    /// The current run's view of the global batch (nil without `shards`).
    private var global: GlobalBatch?

    /// Storage of f32 buffers (nil for i32 buffers).
    private let floats: [UnsafeMutablePointer<T>?]
    /// Storage of i32 buffers (nil for f32 buffers).
    private let ints: [UnsafeMutablePointer<Int32>?]
    /// Per-sample element counts and batchedness, by buffer.
    private let perSample: [Int]
    private let batched: [Bool]
    /// Views per sample by buffer, and by step the factor its batch is of the run's (both 1
    /// except in a test-time-augmentation plan, Recipe.swift).
    private let views: [Int]
    private let stepBatchFactor: [Int]
    /// The arena holding a planned plan's intermediates (nil for an unplanned plan).
    private let arena: UnsafeMutableRawPointer?
    /// Whether buffer i has storage of its own (to free in deinit) rather than arena memory.
    private let ownsStorage: [Bool]
    /// im2col scratch, (C*KH*KW, OH*OW) of the largest convolution.
    private let workspace: UnsafeMutablePointer<T>
    /// Per-thread scratch of the fast kernels, allocated by the first run with a thread count.
    private var scratch: FastScratch?
    private var scratchThreads = 0
    /// The `winograd` setting `scratch` and the Winograd caches were sized for.
    private var scratchWinograd: Bool?? = .none
    /// Bytes of `scratch` and the Winograd filter areas (`executorWorkspaceBytes` less the
    /// shared im2col workspace).
    private var scratchBytes = 0
    /// Winograd filters, allocated by the first run with `winograd` on: per step, the cached
    /// transform (nil: none, or transformed every run into `winogradShared`) and whether it is
    /// stale; the shared transform area; and per step the weight buffer of a cached step (-1).
    private var winogradCache: [UnsafeMutablePointer<Float>?] = []
    /// Per step, the step whose cache and staleness it uses: itself, or the earlier step of the
    /// same weights and channels (`winogradFilterLayout`'s owner), whose cache it shares.
    private var winogradSlot: [Int] = []
    private var winogradStale: [Bool] = []
    private var winogradShared: UnsafeMutablePointer<Float>?
    private var winogradWeight: [Int] = []
    /// The bf16 path, allocated by the first run that takes it: per step its packed weights
    /// (nil: not a bf16 step), whether they are stale, their weight buffer (-1); per thread its
    /// scratch; and the thread count and byte total they were sized for.
    private var bf16Packed: [UnsafeMutablePointer<UInt16>?] = []
    private var bf16Stale: [Bool] = []
    private var bf16Weight: [Int] = []
    private var bf16Roles: [BF16Role?] = []
    private var bf16Scratch: [UnsafeMutableRawPointer] = []
    /// The dense steps' scratch, shared by the threads (`bf16DenseLayout`).
    private var bf16Shared: UnsafeMutableRawPointer? = nil
    private var bf16Threads = 0
    /// The bf16 unit (`fk_bf16_level`) the roles and packed weights were made for: which steps run
    /// in bf16 and how their weights are laid out depend on it (`bf16CompactConv`), so a change
    /// (`fk_limit_bf16`) between runs makes them again.
    private var bf16Level: Int32 = -1
    private var bf16Bytes = 0
    /// `computesInBF16`, taken once per run rather than at every step.
    private var bf16Active = false
    /// For add, mul and concat steps: the input pointers, by step (empty otherwise).
    private let inputTables: [UnsafeMutableBufferPointer<UnsafePointer<T>>]
    /// For each step, the intermediates that die after it, each with the first element that
    /// is free: 0, or for a buffer handed over to an in-place output, the output's size (what
    /// `poisonFreedBuffers` fills).
    private let freedAfter: [[(buffer: Int, from: Int)]]

    public init(plan: Plan) throws {
        try validate(plan)
        // What this executor allocates, checked before any allocation against what the process
        // may take (the machine, a container's limit, ulimit -v): a plan that needs more is an
        // error, never an abort inside the allocator.
        let needed = executorBytes(plan, elementSize: MemoryLayout<T>.stride)
        let limit = memoryLimit()
        if needed > limit.bytes {
            throw ExecutorError.invalidPlan(reason: "running this plan needs \(needed) bytes at batch \(plan.maxBatch), more than \(limit)")
        }
        self.plan = plan
        lastBatch = plan.maxBatch
        perSample = plan.buffers.map(\.elementsPerSample)
        batched = plan.buffers.map(\.batched)
        views = plan.buffers.map { $0.views ?? 1 }
        stepBatchFactor = plan.steps.map { batchFactor(of: $0, buffers: plan.buffers) }

        // Byte offsets are for 4-byte elements; T may be wider.
        let scale = max(MemoryLayout<T>.stride / 4, 1)
        let planned = plan.buffers.contains { $0.offset != nil }
        if planned, let memory = plan.memory {
            let bytes = max(memory.arenaBytes * scale, arenaAlignment)
            let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: arenaAlignment)
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            arena = raw
        } else {
            arena = nil
        }
        var floats: [UnsafeMutablePointer<T>?] = []
        var ints: [UnsafeMutablePointer<Int32>?] = []
        var owns: [Bool] = []
        var firstNamed: [String: Int] = [:]
        for (index, b) in plan.buffers.enumerated() where firstNamed[b.name] == nil { firstNamed[b.name] = index }
        for (index, b) in plan.buffers.enumerated() {
            let capacity = max(b.elementCount(batch: plan.maxBatch), 1)
            if let arena, let offset = b.offset {
                let at = arena + offset * scale
                switch b.elementType {
                case .f32: floats.append(at.bindMemory(to: T.self, capacity: capacity)); ints.append(nil)
                case .i32: floats.append(nil); ints.append(at.bindMemory(to: Int32.self, capacity: capacity))
                }
                owns.append(false)
                continue
            }
            // Initial values fill the parameter or state buffer validation checked them against
            // (the first of the name), never another buffer that happens to share its name.
            let initial = (b.role == .parameter || b.role == .state) && firstNamed[b.name] == index ? plan.parameters[b.name] : nil
            switch b.elementType {
            case .f32:
                let p = UnsafeMutablePointer<T>.allocate(capacity: capacity)
                p.initialize(repeating: 0, count: capacity)
                if let initial { for (k, v) in initial.enumerated() { p[k] = T(v) } }
                floats.append(p); ints.append(nil)
            case .i32:
                let p = UnsafeMutablePointer<Int32>.allocate(capacity: capacity)
                p.initialize(repeating: 0, count: capacity)
                if let initial { for (k, v) in initial.enumerated() { p[k] = Int32(exactly: v.rounded()) ?? 0 } }
                floats.append(nil); ints.append(p)
            }
            owns.append(true)
        }
        self.floats = floats
        self.ints = ints
        ownsStorage = owns
        let scratch = max(workspaceElements(plan), 1)
        workspace = UnsafeMutablePointer<T>.allocate(capacity: scratch)
        workspace.initialize(repeating: 0, count: scratch)
        inputTables = try plan.steps.map { step in
            guard try requirements(of: step, buffers: plan.buffers).variadic else {
                return UnsafeMutableBufferPointer<UnsafePointer<T>>(start: nil, count: 0)
            }
            let table = UnsafeMutableBufferPointer<UnsafePointer<T>>.allocate(capacity: step.inputs.count)
            for (k, i) in step.inputs.enumerated() { table[k] = UnsafePointer(floats[i]!) }
            return table
        }
        freedAfter = Executor.freedAfter(plan, floats: floats, ints: ints)
    }

    /// Intermediates dying at each step; an in-place source whose memory is the step's first
    /// output's is free only past the output's elements.
    private static func freedAfter(_ plan: Plan, floats: [UnsafeMutablePointer<T>?],
                                   ints: [UnsafeMutablePointer<Int32>?]) -> [[(buffer: Int, from: Int)]] {
        func address(_ i: Int) -> UnsafeMutableRawPointer? {
            floats[i].map(UnsafeMutableRawPointer.init) ?? ints[i].map(UnsafeMutableRawPointer.init)
        }
        let lifetimes = intermediateLifetimes(plan)
        var freed = [[(buffer: Int, from: Int)]](repeating: [], count: plan.steps.count)
        let outputs = Set(plan.outputs)
        for (i, life) in lifetimes.enumerated() {
            guard let life, !outputs.contains(i), life.upperBound < plan.steps.count else { continue }
            let s = life.upperBound, y = plan.steps[s].outputs.first
            if let y, inPlaceSource(plan, step: s, lifetimes: lifetimes) == i, address(i) == address(y) {
                let kept = plan.buffers[y].elementCount(batch: plan.maxBatch)
                if kept < plan.buffers[i].elementCount(batch: plan.maxBatch) { freed[s].append((i, kept)) }
                continue
            }
            freed[s].append((i, 0))
        }
        return freed
    }

    deinit {
        for (i, owned) in ownsStorage.enumerated() where owned {
            floats[i]?.deallocate()
            ints[i]?.deallocate()
        }
        arena?.deallocate()
        workspace.deallocate()
        freeScratch()
        freeWinograd()
        freeBF16()
        for t in inputTables { t.deallocate() }
    }

    // MARK: - Buffers

    /// Elements of buffer `index` for a batch of n.
    private func count(_ index: Int, _ n: Int) -> Int { batched[index] ? n * perSample[index] : perSample[index] }

    /// Writes an f32 buffer: `values.count` must be the buffer's element count, or for a batched
    /// buffer any whole number of samples up to maxBatch (filling the first samples).
    public func setBuffer(_ index: Int, _ values: [T]) {
        precondition(plan.buffers.indices.contains(index), "no buffer \(index)")
        guard let p = floats[index] else { preconditionFailure("buffer \(index) '\(plan.buffers[index].name)' is i32") }
        checkCount(index, values.count)
        values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: values.count) }
        for (s, w) in winogradWeight.enumerated() where w == index { winogradStale[s] = true }
        for (s, w) in bf16Weight.enumerated() where w == index { bf16Stale[s] = true }
    }

    /// Writes an i32 buffer (labels, counters); counts as for `setBuffer(_:_:)`.
    public func setBuffer(_ index: Int, ints values: [Int32]) {
        precondition(plan.buffers.indices.contains(index), "no buffer \(index)")
        guard let p = ints[index] else { preconditionFailure("buffer \(index) '\(plan.buffers[index].name)' is f32") }
        checkCount(index, values.count)
        values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: values.count) }
    }

    private func checkCount(_ index: Int, _ count: Int) {
        let each = perSample[index]
        if batched[index] {
            precondition(count > 0 && count % max(each, 1) == 0 && count <= each * plan.maxBatch,
                         "buffer \(index) '\(plan.buffers[index].name)': \(count) values is not 1...\(plan.maxBatch) samples of \(each)")
        } else {
            precondition(count == max(each, 1) || (each == 0 && count == 0),
                         "buffer \(index) '\(plan.buffers[index].name)': \(count) values, expected \(each)")
        }
    }

    /// An f32 buffer's values: for a batched buffer the first `lastBatch` samples.
    public func buffer(_ index: Int) -> [T] {
        precondition(plan.buffers.indices.contains(index), "no buffer \(index)")
        guard let p = floats[index] else { preconditionFailure("buffer \(index) '\(plan.buffers[index].name)' is i32") }
        return Array(UnsafeBufferPointer(start: p, count: count(index, lastBatch * views[index])))
    }

    /// An i32 buffer's values: for a batched buffer the first `lastBatch` samples.
    public func bufferInts(_ index: Int) -> [Int32] {
        precondition(plan.buffers.indices.contains(index), "no buffer \(index)")
        guard let p = ints[index] else { preconditionFailure("buffer \(index) '\(plan.buffers[index].name)' is f32") }
        return Array(UnsafeBufferPointer(start: p, count: count(index, lastBatch * views[index])))
    }

    /// Whether every value of an f32 buffer (its first `lastBatch` samples) is finite, without
    /// copying it out: the training loop checks losses and gradients after each step.
    public func isFinite(_ index: Int) -> Bool {
        precondition(plan.buffers.indices.contains(index), "no buffer \(index)")
        guard let p = floats[index] else { return true }
        let n = count(index, lastBatch * views[index])
        if T.self == Float.self {
            // The vectorized check (fk_all_finite): the generic loop below cost about a tenth of
            // a vgg_k training step, checking every gradient through Float's witness table.
            return UnsafeRawPointer(p).withMemoryRebound(to: Float.self, capacity: n) { fk_all_finite($0, n) } != 0
        }
        var ok = true
        for k in 0..<n where !p[k].isFinite { ok = false; break }
        return ok
    }

    /// The storage of buffer `index` (capacity: its element count at maxBatch), stable for the
    /// executor's lifetime: for hooks that exchange buffers in place (`shards`).
    public func storage(_ index: Int) -> UnsafeMutablePointer<T> {
        precondition(plan.buffers.indices.contains(index), "no buffer \(index)")
        guard let p = floats[index] else { preconditionFailure("buffer \(index) '\(plan.buffers[index].name)' is i32") }
        return p
    }

    /// The whole batch's index of buffer i's first element in this run (0 without `shards`).
    private func firstElement(_ i: Int) -> UInt64 {
        guard let shards, batched[i] else { return 0 }
        return UInt64(shards.firstSample * perSample[i])
    }

    // MARK: - Running

    /// Runs every step for a batch of n (1...maxBatch), then increments `runCounter`.
    public func run(batch n: Int) throws {
        guard n >= 1 && n <= plan.maxBatch else { throw ExecutorError.invalidBatch(n: n, maxBatch: plan.maxBatch) }
        lastBatch = n
        let fast = prepareFastKernels()
        global = shards.map { h in GlobalBatch(samples: h.globalBatch, sum: { [unowned h] in h.sumOverShards($0, count: $1) }) }
        for s in plan.steps.indices {
            let n = n * stepBatchFactor[s]
            if let shards { try shards.willRun(step: s) }
            if let stepTimes {
                let start = monotonicNow()
                if !(fast && runFastStep(s, n: n)) { try runStep(s, n: n) }
                stepTimes[s] += monotonicNow() - start
            } else {
                if !(fast && runFastStep(s, n: n)) { try runStep(s, n: n) }
            }
            if poisonFreedBuffers { poison(freedAfter[s]) }
            if let shards { try shards.didRun(step: s) }
        }
        runCounter &+= 1
    }

    /// Runs only the steps in `range` for a batch of n, leaving `runCounter` alone (dropout
    /// masks depend on the step index, so running a plan in parts draws the same masks as a
    /// whole run). The trainer's frozen-prefix cache runs the prefix alone to fill it, then
    /// the rest of the step on cached values.
    public func run(batch n: Int, steps range: Range<Int>) throws {
        guard n >= 1 && n <= plan.maxBatch else { throw ExecutorError.invalidBatch(n: n, maxBatch: plan.maxBatch) }
        precondition(range.lowerBound >= 0 && range.upperBound <= plan.steps.count, "steps \(range) outside the plan's \(plan.steps.count)")
        lastBatch = n
        let fast = prepareFastKernels()
        for s in range {
            if !(fast && runFastStep(s, n: n)) { try runStep(s, n: n) }
            if poisonFreedBuffers { poison(freedAfter[s]) }
        }
    }

    /// Fills the given buffers, at full capacity from element `from` on, with NaN (i32:
    /// Int32.min).
    private func poison(_ buffers: [(buffer: Int, from: Int)]) {
        for (i, from) in buffers {
            let count = plan.buffers[i].elementCount(batch: plan.maxBatch) - from
            if let p = floats[i] { (p + from).update(repeating: T.nan, count: count) }
            if let p = ints[i] { (p + from).update(repeating: Int32.min, count: count) }
        }
    }

    @inline(__always) private func f(_ i: Int) -> UnsafeMutablePointer<T> { floats[i].unsafelyUnwrapped }
    @inline(__always) private func c(_ i: Int) -> UnsafePointer<T> { UnsafePointer(floats[i].unsafelyUnwrapped) }
    @inline(__always) private func labels(_ i: Int) -> UnsafePointer<Int32> { UnsafePointer(ints[i].unsafelyUnwrapped) }

    /// A counter buffer's value (f32 or i32).
    private func counterValue(_ i: Int) -> Double {
        if let p = ints[i] { return Double(p[0]) }
        return Double(f(i)[0])
    }

    private func checkLabels(_ i: Int, step s: Int, n: Int, classes: Int) throws {
        if let bad = firstInvalidLabel(labels(i), n: n, classes: classes) {
            throw ExecutorError.invalidLabel(step: s, name: plan.steps[s].name, sample: bad,
                                             label: labels(i)[bad], classes: classes)
        }
    }

    private func runStep(_ s: Int, n: Int) throws {
        let step = plan.steps[s]
        let i = step.inputs, o = step.outputs
        switch step.kernel {
        // forward
        case .conv2d(let g, let bias):
            conv2dForward(f(o[0]), c(i[0]), c(i[1]), bias ? c(i[2]) : nil, n: n, g, workspace: workspace)
        case .dense(let inF, let outF, let bias):
            denseForward(f(o[0]), c(i[0]), c(i[1]), bias ? c(i[2]) : nil, n: n, inFeatures: inF, outFeatures: outF,
                         threads: threads)
        case .relu:
            reluForward(f(o[0]), c(i[0]), count: count(i[0], n))
        case .leakyRelu(let alpha):
            leakyReluForward(f(o[0]), c(i[0]), count: count(i[0], n), alpha: T(alpha))
        case .batchnormInference(let ch, let sp, let eps):
            batchnormInferenceForward(f(o[0]), c(i[0]), c(i[1]), c(i[2]), c(i[3]), c(i[4]),
                                      n: n, channels: ch, spatial: sp, epsilon: T(eps))
        case .batchnormTrain(let ch, let sp, let eps):
            batchnormTrainForward(f(o[0]), f(o[1]), f(o[2]), c(i[0]), c(i[1]), c(i[2]),
                                  n: n, channels: ch, spatial: sp, epsilon: T(eps), global: global)
        case .dropoutTrain(let rate):
            let total = count(i[0], n)
            if dropoutEnabled {
                dropoutForward(f(o[0]), f(o[1]), c(i[0]), count: total, rate: Double(rate),
                               seed: seed, run: runCounter, step: UInt64(s), first: firstElement(i[0]))
            } else {
                copyForward(f(o[0]), c(i[0]), count: total)
                constantForward(f(o[1]), count: total, value: 1)
            }
        case .maxpool(let g):
            maxpoolForward(f(o[0]), c(i[0]), n: n, g)
        case .avgpool(let g):
            avgpoolForward(f(o[0]), c(i[0]), n: n, g)
        case .softmax(let k):
            softmaxForward(f(o[0]), c(i[0]), n: n, classes: k)
        case .softmaxCrossEntropy(let k):
            try checkLabels(i[1], step: s, n: n, classes: k)
            softmaxCrossEntropyForward(f(o[0]), c(i[0]), labels(i[1]), n: n, classes: k)
        case .add:
            addForward(f(o[0]), UnsafeBufferPointer(inputTables[s]), count: count(o[0], n))
        case .mul:
            mulForward(f(o[0]), UnsafeBufferPointer(inputTables[s]), count: count(o[0], n))
        case .copy:
            copyForward(f(o[0]), c(i[0]), count: count(i[0], n))
        case .concat(let outer, let inner, let sizes):
            concatForward(f(o[0]), UnsafeBufferPointer(inputTables[s]), n: batched[o[0]] ? n : 1,
                          outer: outer, inner: inner, sizes: sizes)
        case .slice(let outer, let inner, let total, let start, let length):
            sliceForward(f(o[0]), c(i[0]), n: batched[o[0]] ? n : 1, outer: outer, inner: inner,
                         total: total, start: start, length: length)
        case .scale(let factor):
            scaleForward(f(o[0]), c(i[0]), count: count(i[0], n), factor: T(factor))
        case .l2Penalty(let factor):
            l2PenaltyForward(f(o[0]), c(i[0]), count: count(i[0], n), factor: T(factor), threads: threads)
        case .l2PenaltyGrad(let factor):
            l2PenaltyBackward(f(o[0]), c(i[0]), c(i[1]), count: count(i[1], n), factor: T(factor), threads: threads)
        case .constant(let value):
            constantForward(f(o[0]), count: count(o[0], n), value: T(value))

        // backward
        case .conv2dGradInput(let g):
            conv2dBackwardInput(f(o[0]), c(i[0]), c(i[1]), n: n, g, workspace: workspace)
        case .conv2dGradWeight(let g):
            conv2dBackwardWeight(f(o[0]), c(i[0]), c(i[1]), n: n, g, workspace: workspace)
        case .biasGrad(let ch, let sp):
            biasBackward(f(o[0]), c(i[0]), n: n, channels: ch, spatial: sp)
        case .denseGradInput(let inF, let outF):
            denseBackwardInput(f(o[0]), c(i[0]), c(i[1]), n: n, inFeatures: inF, outFeatures: outF)
        case .denseGradWeight(let inF, let outF):
            denseBackwardWeight(f(o[0]), c(i[0]), c(i[1]), n: n, inFeatures: inF, outFeatures: outF)
        case .reluGrad:
            reluBackward(f(o[0]), c(i[0]), c(i[1]), count: count(i[0], n))
        case .leakyReluGrad(let alpha):
            leakyReluBackward(f(o[0]), c(i[0]), c(i[1]), count: count(i[0], n), alpha: T(alpha))
        case .batchnormTrainGrad(let ch, let sp, let eps):
            batchnormTrainBackward(f(o[0]), f(o[1]), f(o[2]), c(i[0]), c(i[1]), c(i[2]), c(i[3]), c(i[4]),
                                   n: n, channels: ch, spatial: sp, epsilon: T(eps), global: global)
        case .batchnormInferenceGrad(let ch, let sp, let eps):
            batchnormInferenceBackward(f(o[0]), c(i[0]), c(i[1]), c(i[2]),
                                       n: n, channels: ch, spatial: sp, epsilon: T(eps))
        case .maxpoolGrad(let g):
            maxpoolBackward(f(o[0]), c(i[0]), c(i[1]), n: n, g)
        case .avgpoolGrad(let g):
            avgpoolBackward(f(o[0]), c(i[0]), n: n, g)
        case .softmaxGrad(let k):
            softmaxBackward(f(o[0]), c(i[0]), c(i[1]), n: n, classes: k)
        case .softmaxCrossEntropyGrad(let k):
            try checkLabels(i[2], step: s, n: n, classes: k)
            softmaxCrossEntropyBackward(f(o[0]), c(i[0]), c(i[1]), labels(i[2]), n: n, classes: k)

        // updates
        case .sgdUpdate(let momentum, let nesterov):
            sgdUpdate(f(i[0]), f(i[2]), c(i[1]), count: count(i[0], n), lr: c(i[3])[0],
                      momentum: T(momentum), nesterov: nesterov)
        case .adamUpdate(let beta1, let beta2, let eps):
            adamUpdate(f(i[0]), f(i[2]), f(i[3]), c(i[1]), count: count(i[0], n),
                       lr: Double(c(i[4])[0]), t: counterValue(i[5]) + 1,
                       beta1: T(beta1), beta2: T(beta2), epsilon: T(eps), threads: threads)
        case .maxNormProject(let maxValue, let mode, let shape):
            maxNormProject(f(i[0]), shape: shape, maxValue: Double(maxValue), mode: mode, threads: threads)
        case .batchnormStatsUpdate(let momentum, let ch, let sp):
            batchnormStatsUpdate(f(i[0]), f(i[1]), c(i[2]), c(i[3]), channels: ch,
                                 elementsPerChannel: (global?.samples ?? n) * sp, momentum: T(momentum))
        case .increment:
            if let p = ints[i[0]] { p[0] &+= 1 } else { f(i[0])[0] += 1 }

        // recipe and test-time augmentation (Recipe.swift)
        case .softmaxCrossEntropySmoothed(let k, let e):
            try checkLabels(i[1], step: s, n: n, classes: k)
            softmaxCrossEntropyForward(f(o[0]), c(i[0]), labels(i[1]), n: n, classes: k, smoothing: Double(e))
        case .softmaxCrossEntropySmoothedGrad(let k, let e):
            try checkLabels(i[2], step: s, n: n, classes: k)
            softmaxCrossEntropyBackward(f(o[0]), c(i[0]), c(i[1]), labels(i[2]), n: n, classes: k, smoothing: Double(e))
        case .softmaxCrossEntropySoft(let k):
            softTargetCrossEntropyForward(f(o[0]), c(i[0]), c(i[1]), n: n, classes: k)
        case .softmaxCrossEntropySoftGrad(let k):
            softTargetCrossEntropyBackward(f(o[0]), c(i[0]), c(i[1]), c(i[2]), n: n, classes: k)
        case .sgdWeightDecayUpdate(let momentum, let nesterov, let wd, let decoupled):
            sgdWeightDecayUpdate(f(i[0]), f(i[2]), c(i[1]), count: count(i[0], n), lr: c(i[3])[0], momentum: T(momentum),
                                 nesterov: nesterov, weightDecay: T(wd), decoupled: decoupled, threads: threads)
        case .ttaViews(let t):
            ttaViewsForward(f(o[0]), c(i[0]), n: n, t)
        case .ttaMean(let k, let v, let probabilities):
            ttaMeanForward(f(o[0]), c(i[0]), n: n, classes: k, views: v, probabilities: probabilities)

        // fused (FusedKernels.swift)
        case .fused(let a, let e):
            let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
            fusedForward(f(o[0]), c(i[0]), c(i[1]), e.bias ? c(i[2]) : nil,
                         gamma: bn ? c(i[k]) : nil, beta: bn ? c(i[k + 1]) : nil,
                         runningMean: bn ? c(i[k + 2]) : nil, runningVar: bn ? c(i[k + 3]) : nil,
                         n: n, a, e, workspace: workspace, threads: threads)
        case .fusedTrain(let a, let e):
            let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
            fusedTrainForward(f(o[0]), bn ? f(o[1]) : nil, bn ? f(o[2]) : nil, bn ? f(o[3]) : nil,
                              c(i[0]), c(i[1]), e.bias ? c(i[2]) : nil,
                              gamma: bn ? c(i[k]) : nil, beta: bn ? c(i[k + 1]) : nil,
                              n: n, a, e, workspace: workspace, global: global)
        case .fusedTrainGrad(let a, let e, let inputGrad, let weightGrad):
            let p = FusedGradSlots(e, inputGrad: inputGrad, weightGrad: weightGrad)
            fusedTrainBackward(dx: p.dx.map { f(o[$0]) }, dw: p.dw.map { f(o[$0]) }, db: p.db.map { f(o[$0]) },
                               dgamma: p.dgamma.map { f(o[$0]) }, dbeta: p.dbeta.map { f(o[$0]) },
                               dy: c(i[0]), x: c(i[1]), w: c(i[2]), y: p.y.map { c(i[$0]) },
                               bnInput: p.bnInput.map { c(i[$0]) }, gamma: p.gamma.map { c(i[$0]) },
                               mean: p.mean.map { c(i[$0]) }, variance: p.variance.map { c(i[$0]) },
                               n: n, a, e, workspace: workspace, global: global)

        // preprocessing
        case .preprocess(let t, let planes, let h, let w):
            preprocessForward(f(o[0]), c(i[0]), planes: n * planes, height: h, width: w, t, threads: max(threads, 1))
        }
    }

    // MARK: - Fast Float kernels

    private func freeScratch() {
        guard let scratch else { return }
        for p in scratch.floats { p.deallocate() }
        for p in scratch.doubles { p.deallocate() }
        self.scratch = nil
    }

    /// Per-thread scratch sized to the largest fast convolution of the plan.
    private func allocateScratch() {
        freeScratch()
        freeWinograd()
        let need = fastScratchElements(plan, winograd: winograd)
        if need.filters > 0 { allocateWinograd() }
        scratchWinograd = .some(winograd)
        let t = max(threads, 1)
        scratch = FastScratch(
            floats: (0..<t).map { _ in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: need.floats)
                p.initialize(repeating: 0, count: need.floats)
                return p
            },
            doubles: (0..<t).map { _ in
                let p = UnsafeMutablePointer<Double>.allocate(capacity: need.doubles)
                p.initialize(repeating: 0, count: need.doubles)
                return p
            },
            maxChunk: plan.maxBatch)
        scratchThreads = t
        scratchBytes = t * (need.floats * MemoryLayout<Float>.stride + need.doubles * MemoryLayout<Double>.stride)
            + need.filters * MemoryLayout<Float>.stride
    }

    /// The geometry of a step the Winograd path computes under the `winograd` setting, or nil.
    private func winogradGeometry(_ step: Step) -> ConvGeometry? {
        Runtime.winogradGeometry(step, winograd: winograd)
    }

    /// Bytes this executor has allocated for kernel scratch: the im2col workspace and, once a
    /// Float run has sized them, the fast kernels' per-thread scratch and the Winograd filter
    /// areas. Equals `executorWorkspaceBytes(plan, threads:, winograd:, elementBytes:)` for the
    /// thread count and setting of the last run (the tests check it).
    public var workspaceBytesAllocated: Int {
        max(workspaceElements(plan), 1) * MemoryLayout<T>.stride + scratchBytes + bf16Bytes
    }

    /// Whether runs compute the convolutions `bf16Role` names in bf16 (the `bf16` setting or the
    /// plan's request, the fast Float kernels, and AMX on this CPU).
    public var computesInBF16: Bool {
        T.self == Float.self && fastKernels
            && (bf16 ?? (plan.metadata.computeDType == "bf16")) && bf16ComputeAvailable
    }

    /// Before a run: whether it takes the fast Float kernels, their scratch sized for the thread
    /// count and settings, and the bf16 path's state (a training plan's packed weights redone,
    /// since its steps write the weights).
    private func prepareFastKernels() -> Bool {
        let fast = T.self == Float.self && fastKernels
        if fast && (scratchThreads != max(threads, 1) || scratchWinograd != .some(winograd)) { allocateScratch() }
        bf16Active = fast && computesInBF16
        if bf16Active && (bf16Threads != max(threads, 1) || bf16Level != fk_bf16_level()) { allocateBF16() }
        if bf16Active && isTrainingPlan { markBF16WeightsStale() }
        return fast
    }

    /// A training plan's steps write its weights: the packed copies are redone every run.
    private var isTrainingPlan: Bool { plan.metadata.mode != "inference" }

    private func markBF16WeightsStale() {
        for s in bf16Stale.indices { bf16Stale[s] = true }
    }

    private func freeBF16() {
        for p in bf16Packed { p?.deallocate() }
        for p in bf16Scratch { p.deallocate() }
        bf16Shared?.deallocate()
        bf16Packed = []; bf16Stale = []; bf16Weight = []; bf16Roles = []; bf16Scratch = []; bf16Shared = nil
        bf16Threads = 0; bf16Bytes = 0
    }

    /// The bf16 path's packed weights (packed by the first run that uses them) and per-thread
    /// scratch, sized as `bf16WorkspaceBytes` says.
    private func allocateBF16() {
        freeBF16()
        let t = max(threads, 1)
        let need = bf16WorkspaceBytes(plan, threads: t, enabled: true)
        for step in plan.steps {
            guard let role = bf16Role(of: step.kernel, mode: plan.metadata.mode, maxChunk: plan.maxBatch) else {
                bf16Packed.append(nil); bf16Weight.append(-1); bf16Roles.append(nil); continue
            }
            let count = role.packedWeightCount
            bf16Packed.append(count == 0 ? nil : {
                let p = UnsafeMutablePointer<UInt16>.allocate(capacity: count)
                p.initialize(repeating: 0, count: count)
                return p
            }())
            bf16Weight.append(step.inputs[role.weightSlot]); bf16Roles.append(role)
        }
        bf16Stale = [Bool](repeating: true, count: plan.steps.count)
        bf16Scratch = (0..<t).map { _ in
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(need.perThread, 64), alignment: 64)
            p.initializeMemory(as: UInt8.self, repeating: 0, count: max(need.perThread, 64))
            return p
        }
        if need.shared > 0 {
            let p = UnsafeMutableRawPointer.allocate(byteCount: need.shared, alignment: 64)
            p.initializeMemory(as: UInt8.self, repeating: 0, count: need.shared)
            bf16Shared = p
        }
        bf16Threads = t
        bf16Level = fk_bf16_level()
        bf16Bytes = t * need.perThread + need.shared + need.weights
    }

    /// Runs step s in bf16 when it is a bf16 step: true when it ran.
    private func runBF16Step(_ s: Int, n: Int) -> Bool {
        guard s < bf16Roles.count, let role = bf16Roles[s] else { return false }
        let step = plan.steps[s]
        let i = step.inputs, o = step.outputs, t = max(threads, 1)
        let packed = bf16Packed[s]
        if bf16Stale[s], let packed {
            switch role {
            case .forward(let g): bf16PackWeights(packed, cf(bf16Weight[s]), g, threads: t)
            case .backward(let g, _, _, _): bf16PackFlippedWeights(packed, cf(bf16Weight[s]), g, threads: t)
            case .denseForward(let inF, let outF), .denseBackward(let inF, let outF, _, _):
                var transposed = false
                if case .denseBackward = role { transposed = true }
                bf16PackDenseWeights(packed, cf(bf16Weight[s]), inFeatures: inF, outFeatures: outF, transposed: transposed,
                                     threads: t)
            }
            bf16Stale[s] = false
        }
        if case .denseForward(let inF, let outF) = role, case .fusedTrain(let a, let e) = step.kernel,
           let packed, let shared = bf16Shared {
            // The product on AMX into the batchnorm's input (or y), then the f32 epilogue.
            let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
            guard bf16DenseForward(bn ? ff(o[1]) : ff(o[0]), cf(i[0]), packed, e.bias ? cf(i[2]) : nil, n: n,
                                   inFeatures: inF, outFeatures: outF, threads: t, scratch: shared) else { return false }
            fusedTrainForward(ff(o[0]), bn ? ff(o[1]) : nil, bn ? ff(o[2]) : nil, bn ? ff(o[3]) : nil,
                              cf(i[0]), cf(i[1]), e.bias ? cf(i[2]) : nil,
                              gamma: bn ? cf(i[k]) : nil, beta: bn ? cf(i[k + 1]) : nil,
                              n: n, a, e, global: global, anchorComputed: true)
            return true
        }
        if case .denseBackward(let inF, let outF, _, _) = role,
           case .fusedTrainGrad(let a, let e, let inputGrad, let weightGrad) = step.kernel, let shared = bf16Shared {
            // The output gradient (and db, the batchnorm's) in f32, the products on AMX.
            guard bf16ComputeAvailable else { return false }
            let p = FusedGradSlots(e, inputGrad: inputGrad, weightGrad: weightGrad)
            fusedTrainBackward(dx: nil, dw: nil, db: p.db.map { ff(o[$0]) },
                               dgamma: p.dgamma.map { ff(o[$0]) }, dbeta: p.dbeta.map { ff(o[$0]) },
                               dy: cf(i[0]), x: cf(i[1]), w: cf(i[2]), y: p.y.map { cf(i[$0]) },
                               bnInput: p.bnInput.map { cf(i[$0]) }, gamma: p.gamma.map { cf(i[$0]) },
                               mean: p.mean.map { cf(i[$0]) }, variance: p.variance.map { cf(i[$0]) },
                               n: n, a, e, global: global, gradientOut: shared.assumingMemoryBound(to: Float.self))
            return bf16DenseBackward(dx: p.dx.map { ff(o[$0]) }, dw: p.dw.map { ff(o[$0]) }, x: cf(i[1]),
                                     w: packed.map { UnsafePointer($0) }, n: n, inFeatures: inF, outFeatures: outF,
                                     threads: t, scratch: shared)
        }
        if case .backward(let g, let flipped, let weightGrad, let samples) = role,
           case .fusedTrainGrad(_, let e, let inputGrad, let wantWeightGrad) = step.kernel {
            // dx and/or dw on AMX; the rest (and db, the batchnorm gradients) in f32, dw by
            // Winograd where it stays f32 and the plan computes this step's dw by Winograd.
            fastConvBackward(step, n: n, g, e, FusedGradSlots(e, inputGrad: inputGrad, weightGrad: wantWeightGrad),
                             gradInputFilters: nil, winogradWeightGrad: winogradGeometry(step) != nil,
                             bf16: BF16Backward(flipped: flipped, weights: packed.map { UnsafePointer($0) },
                                                weightGrad: weightGrad, samples: samples, scratch: bf16Scratch))
            return true
        }
        guard let packed else { return false }
        let w = UnsafePointer(packed)
        switch (step.kernel, role) {
        case (.conv2d(_, let bias), .forward(let g)), (.dense(_, _, let bias), .forward(let g)):
            return bf16ConvForward(ff(o[0]), cf(i[0]), w, bias ? cf(i[2]) : nil, preRelu: false, scale: nil, shift: nil,
                                   postRelu: false, n: n, g, threads: t, scratch: bf16Scratch, maxChunk: plan.maxBatch)
        case (.fused(_, let e), .forward(let g)):
            let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
            return bf16FusedConvForward(ff(o[0]), cf(i[0]), w, e.bias ? cf(i[2]) : nil,
                                        gamma: bn ? cf(i[k]) : nil, beta: bn ? cf(i[k + 1]) : nil,
                                        runningMean: bn ? cf(i[k + 2]) : nil, runningVar: bn ? cf(i[k + 3]) : nil,
                                        n: n, g, e, threads: t, scratch: bf16Scratch, maxChunk: plan.maxBatch)
        case (.fusedTrain(_, let e), .forward(let g)):
            let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
            return bf16FusedConvTrainForward(ff(o[0]), bn ? ff(o[1]) : nil, bn ? ff(o[2]) : nil, bn ? ff(o[3]) : nil,
                                             cf(i[0]), w, e.bias ? cf(i[2]) : nil,
                                             gamma: bn ? cf(i[k]) : nil, beta: bn ? cf(i[k + 1]) : nil,
                                             n: n, g, e, threads: t, scratch: scratch.unsafelyUnwrapped,
                                             bf16Scratch: bf16Scratch, maxChunk: plan.maxBatch, global: global)
        default:
            return false
        }
    }

    private func freeWinograd() {
        for (s, p) in winogradCache.enumerated() where winogradSlot[s] == s { p?.deallocate() }
        winogradShared?.deallocate()
        winogradCache = []
        winogradSlot = []
        winogradShared = nil
        winogradWeight = []
        winogradStale = []
    }

    /// The Winograd filter areas, once (`winogradFilterLayout`): a cache per step whose weights
    /// nothing in the plan writes, one shared area for the others (transformed every run).
    private func allocateWinograd() {
        let layout = winogradFilterLayout(plan, winograd: winograd)
        var cache: [UnsafeMutablePointer<Float>?] = [], weight: [Int] = [], slot: [Int] = []
        for (s, step) in plan.steps.enumerated() {
            if let o = layout.owner[s] {
                cache.append(cache[o]); weight.append(weight[o]); slot.append(o)
                continue
            }
            slot.append(s)
            guard let count = layout.cached[s] else { cache.append(nil); weight.append(-1); continue }
            let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
            p.initialize(repeating: 0, count: count)
            cache.append(p); weight.append(step.inputs[winogradWeightSlot(of: step.kernel)])
        }
        let shared = layout.shared
        winogradCache = cache
        winogradSlot = slot
        winogradWeight = weight
        winogradStale = [Bool](repeating: true, count: plan.steps.count)
        if shared > 0 {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: shared)
            p.initialize(repeating: 0, count: shared)
            winogradShared = p
        }
    }

    /// Step s's transformed filters (weights in buffer w): the cache, recomputed when stale, or
    /// the shared area, recomputed now.
    private func winogradFilters(_ s: Int, _ w: Int, _ g: ConvGeometry, threads: Int) -> UnsafePointer<Float> {
        let gradInput = winogradIsGradInput(plan.steps[s].kernel)
        func transform(_ u: UnsafeMutablePointer<Float>) {
            if gradInput {
                winogradGradInputFilterTransform(u, cf(w), g, threads: threads)
            } else {
                winogradFilterTransform(u, cf(w), g, threads: threads)
            }
        }
        let c = winogradSlot[s]
        if let u = winogradCache[c] {
            if winogradStale[c] {
                transform(u)
                winogradStale[c] = false
            }
            return UnsafePointer(u)
        }
        let u = winogradShared.unsafelyUnwrapped
        transform(u)
        return UnsafePointer(u)
    }

    @inline(__always) private func ff(_ i: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(floats[i].unsafelyUnwrapped).assumingMemoryBound(to: Float.self)
    }
    @inline(__always) private func cf(_ i: Int) -> UnsafePointer<Float> { UnsafePointer(ff(i)) }

    /// Runs step s with a fast Float kernel when it has one (T is Float); false otherwise.
    /// The fast fused conv backward of `step` (slots `p`), dx by Winograd when
    /// `gradInputFilters` (`winogradGradInputFilterTransform` of the weights) is given.
    private func fastConvBackward(_ step: Step, n: Int, _ g: ConvGeometry, _ e: FusedEpilogue, _ p: FusedGradSlots,
                                  gradInputFilters: UnsafePointer<Float>?, winogradWeightGrad: Bool = false,
                                  bf16: BF16Backward? = nil) {
        let i = step.inputs, o = step.outputs
        fastFusedConvTrainBackward(dx: p.dx.map { ff(o[$0]) }, dw: p.dw.map { ff(o[$0]) }, db: p.db.map { ff(o[$0]) },
                                   dgamma: p.dgamma.map { ff(o[$0]) }, dbeta: p.dbeta.map { ff(o[$0]) },
                                   dy: cf(i[0]), x: cf(i[1]), w: cf(i[2]), y: p.y.map { cf(i[$0]) },
                                   bnInput: p.bnInput.map { cf(i[$0]) }, gamma: p.gamma.map { cf(i[$0]) },
                                   mean: p.mean.map { cf(i[$0]) }, variance: p.variance.map { cf(i[$0]) },
                                   n: n, g, e, threads: max(threads, 1), scratch: scratch.unsafelyUnwrapped,
                                   gradInputFilters: gradInputFilters, global: global,
                                   winogradWeightGrad: winogradWeightGrad, bf16: bf16)
    }

    private func runFastStep(_ s: Int, n: Int) -> Bool {
        let step = plan.steps[s]
        let i = step.inputs, o = step.outputs
        let sc = scratch.unsafelyUnwrapped, t = max(threads, 1)
        let plain = FusedEpilogue(bias: false, relu: false, batchnorm: .none, epsilon: 0)
        if bf16Active, runBF16Step(s, n: n) { return true }
        if let g = winogradGeometry(step) {
            let u = winogradFilters(s, i[winogradWeightSlot(of: step.kernel)], g, threads: t)
            switch step.kernel {
            case .conv2d(_, let bias):
                winogradConvForward(ff(o[0]), cf(i[0]), u, bias ? cf(i[2]) : nil, preRelu: false, scale: nil, shift: nil,
                                    postRelu: false, stats: nil, n: n, g, threads: t, scratch: sc)
            case .fused(_, let e):
                let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
                winogradFusedConvForward(ff(o[0]), cf(i[0]), u, e.bias ? cf(i[2]) : nil,
                                         gamma: bn ? cf(i[k]) : nil, beta: bn ? cf(i[k + 1]) : nil,
                                         runningMean: bn ? cf(i[k + 2]) : nil, runningVar: bn ? cf(i[k + 3]) : nil,
                                         n: n, g, e, threads: t, scratch: sc)
            case .fusedTrain(_, let e):
                let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
                winogradFusedConvTrainForward(ff(o[0]), bn ? ff(o[1]) : nil, bn ? ff(o[2]) : nil, bn ? ff(o[3]) : nil,
                                              cf(i[0]), u, e.bias ? cf(i[2]) : nil,
                                              gamma: bn ? cf(i[k]) : nil, beta: bn ? cf(i[k + 1]) : nil,
                                              n: n, g, e, threads: t, scratch: sc, global: global)
            case .fusedTrainGrad(_, let e, let inputGrad, let weightGrad):
                // dx and dw by Winograd, the rest as the direct backward.
                fastConvBackward(step, n: n, g, e, FusedGradSlots(e, inputGrad: inputGrad, weightGrad: weightGrad),
                                 gradInputFilters: u, winogradWeightGrad: true)
            default:
                return false
            }
            return true
        }
        switch step.kernel {
        case .conv2d(let g, let bias):
            fastConvForward(ff(o[0]), cf(i[0]), cf(i[1]), bias ? cf(i[2]) : nil, preRelu: false, scale: nil, shift: nil,
                            postRelu: false, stats: nil, n: n, g, threads: t, scratch: sc)
        case .conv2dGradInput(let g):
            fastFusedConvTrainBackward(dx: ff(o[0]), dw: nil, db: nil, dgamma: nil, dbeta: nil, dy: cf(i[0]), x: cf(i[0]),
                                       w: cf(i[1]), y: nil, bnInput: nil, gamma: nil, mean: nil, variance: nil,
                                       n: n, g, plain, threads: t, scratch: sc)
        case .conv2dGradWeight(let g):
            fastFusedConvTrainBackward(dx: nil, dw: ff(o[0]), db: nil, dgamma: nil, dbeta: nil, dy: cf(i[0]), x: cf(i[1]),
                                       w: cf(i[0]), y: nil, bnInput: nil, gamma: nil, mean: nil, variance: nil,
                                       n: n, g, plain, threads: t, scratch: sc)
        case .fused(.conv2d(let g), let e):
            let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
            fastFusedConvForward(ff(o[0]), cf(i[0]), cf(i[1]), e.bias ? cf(i[2]) : nil,
                                 gamma: bn ? cf(i[k]) : nil, beta: bn ? cf(i[k + 1]) : nil,
                                 runningMean: bn ? cf(i[k + 2]) : nil, runningVar: bn ? cf(i[k + 3]) : nil,
                                 n: n, g, e, threads: t, scratch: sc)
        case .fusedTrain(.conv2d(let g), let e):
            let k = e.bias ? 3 : 2, bn = e.hasBatchnorm
            fastFusedConvTrainForward(ff(o[0]), bn ? ff(o[1]) : nil, bn ? ff(o[2]) : nil, bn ? ff(o[3]) : nil,
                                      cf(i[0]), cf(i[1]), e.bias ? cf(i[2]) : nil,
                                      gamma: bn ? cf(i[k]) : nil, beta: bn ? cf(i[k + 1]) : nil,
                                      n: n, g, e, threads: t, scratch: sc, global: global)
        case .fusedTrainGrad(.conv2d(let g), let e, let inputGrad, let weightGrad):
            fastConvBackward(step, n: n, g, e, FusedGradSlots(e, inputGrad: inputGrad, weightGrad: weightGrad),
                             gradInputFilters: nil)
        case .dropoutTrain(let rate):
            guard dropoutEnabled else { return false }
            fastDropout(ff(o[0]), ff(o[1]), cf(i[0]), count: count(i[0], n), rate: Double(rate),
                        seed: seed, run: runCounter, step: UInt64(s), threads: t, first: firstElement(i[0]))
        case .maxpool(let g):
            guard isPlain2x2(g) else { return false }
            fastMaxpool2x2(ff(o[0]), cf(i[0]), n: n, g, threads: t)
        case .maxpoolGrad(let g):
            guard isPlain2x2(g) else { return false }
            fastMaxpool2x2Backward(ff(o[0]), cf(i[0]), cf(i[1]), n: n, g, threads: t)
        case .mul, .add:
            // Two inputs (the gradient sums and dropout masks of training plans): one pass, split
            // over the threads; the same sum or product per element as the generic kernels.
            guard i.count == 2 else { return false }
            let total = count(o[0], n), y = ff(o[0]), a = cf(i[0]), b = cf(i[1])
            let parts = total >= 1 << 16 ? t : 1
            let isAdd: Bool
            if case .add = step.kernel { isAdd = true } else { isAdd = false }
            parallelFor(parts) { part in
                let r = splitRange(total, parts: parts, part)
                if isAdd {
                    fk_add(y + r.lowerBound, a + r.lowerBound, b + r.lowerBound, r.count)
                } else {
                    fk_mul(y + r.lowerBound, a + r.lowerBound, b + r.lowerBound, r.count)
                }
            }
        default:
            return false
        }
        return true
    }
}
