// Data-parallel training over MPI: a `DataParallelGroup` (Training/DataParallel.swift) whose
// ranks are the processes of an MPI job (mpirun, srun). Open MPI's libmpi is loaded at run time
// by the CMPIShim C target, so fergc builds and runs where MPI is not installed; a distributed
// run then says MPI is unavailable.
//
// What travels, per training step (docs/distributed.md has the figures):
//   - every gradient (the inputs the optimizer's update steps read), summed in place with a
//     non-blocking MPI_Iallreduce started as soon as the step that last writes it has run (the
//     backward computes the last layers' gradients first) and waited for just before the first
//     step that reads it, so the exchange overlaps with the rest of the backward;
//   - per batchnorm layer, the per-channel sums of the forward statistics and of the backward
//     (a few KB), summed before the normalization that needs them;
//   - the loss and correct count of the shard (two doubles).
// Collectives start in the plan's step order, the same on every rank, and a sum over the same
// contributions in the same communicator and sizes follows the same schedule every time:
// results do not depend on timing. Every wait polls with a deadline (FERGC_MPI_TIMEOUT seconds,
// default 30, within a training step; FERGC_MPI_SYNC_TIMEOUT, default 1800, at the meeting points
// before training and after each epoch, where the ranks may legitimately differ by loading,
// compiling, validation or rank 0's checkpoint): a rank that stops answering ends the job with
// an error instead of a hang.

import CMPIShim
import Foundation
import Runtime
import Training

/// The text of a NUL-terminated C buffer.
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

public struct MPIError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class MPIGroup: DataParallelGroup, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public let transport: String
    /// Seconds a collective of a training step waits for the other ranks before ending the
    /// job, and a `synchronize` between phases (FERGC_MPI_SYNC_TIMEOUT, default 1800).
    public let timeout: Double
    public let syncTimeout: Double
    private var exchange: StepExchange?
    /// Seconds spent waiting for sums to complete (what the overlap did not hide), and of those
    /// the waits for gradients.
    public private(set) var waitedSeconds = 0.0
    public private(set) var gradientWaitSeconds = 0.0

    /// Whether an MPI launcher started this process: Open MPI's mpirun (OMPI_COMM_WORLD_SIZE)
    /// or a PMI/PMIx launcher such as Slurm's srun (PMIX_RANK, PMI_RANK).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_RANK"] != nil
    }

    /// Loads Open MPI (FERGC_LIBMPI, else libmpi.so.40, else libmpi.so), initializes it and
    /// joins the job's world.
    public static func start() throws -> MPIGroup {
        let env = ProcessInfo.processInfo.environment
        var why = [CChar](repeating: 0, count: 1024)
        let library = env["FERGC_LIBMPI"]
        let loaded = library.map { fm_mpi_load($0, &why, Int32(why.count)) } ?? fm_mpi_load(nil, &why, Int32(why.count))
        guard loaded == 0 else {
            throw MPIError("distributed training is unavailable: Open MPI's library could not be loaded (\(cText(why))). Install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev) or point FERGC_LIBMPI at libmpi.so")
        }
        var r: Int32 = 0, s: Int32 = 0
        let rc = fm_mpi_init(&r, &s)
        guard rc == 0 else { throw MPIError("MPI_Init failed: \(errorString(rc))") }
        var version = [CChar](repeating: 0, count: 256)
        fm_mpi_library_version(&version, Int32(version.count))
        func seconds(_ name: String, _ fallback: Double) throws -> Double {
            guard let t = env[name] else { return fallback }
            guard let v = Double(t), v > 0, v.isFinite else { throw MPIError("\(name) must be a positive number of seconds, got '\(t)'") }
            return v
        }
        return MPIGroup(rank: Int(r), size: Int(s), transport: "MPI (\(cText(version)))",
                        timeout: try seconds("FERGC_MPI_TIMEOUT", 30), syncTimeout: try seconds("FERGC_MPI_SYNC_TIMEOUT", 1800))
    }

    init(rank: Int, size: Int, transport: String, timeout: Double, syncTimeout: Double) {
        self.rank = rank
        self.size = size
        self.transport = transport
        self.timeout = timeout
        self.syncTimeout = syncTimeout
    }

    static func errorString(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: 512)
        fm_mpi_error_string(code, &text, Int32(text.count))
        return cText(text)
    }

    /// Ends every rank of the job after printing `message` (prefixed with this rank).
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("\nerror: rank \(rank) of \(size): \(message)\n".utf8))
        usleep(500_000)  // MPI_Abort kills at once: let the launcher forward the message first
        fm_mpi_abort(1)
        exit(1)
    }

    /// Leaves MPI at the end of a successful run.
    public func finish() { _ = fm_mpi_finalize() }

    // MARK: - Collectives

    /// Waits for `request` to complete, polling, until the deadline; past it the job ends.
    func wait(_ request: inout UnsafeMutableRawPointer?, gradient: Bool = false, deadline: Double? = nil,
              _ what: @autoclosure () -> String) {
        let start = monotonicNow(), limit = deadline ?? timeout
        var spins = 0
        while true {
            var done: Int32 = 0
            let rc = fm_mpi_test(&request, &done)
            if rc != 0 { abort("\(what()) failed: \(MPIGroup.errorString(rc)) (another rank was probably lost)") }
            if done != 0 {
                let waited = monotonicNow() - start
                waitedSeconds += waited
                if gradient { gradientWaitSeconds += waited }
                return
            }
            spins += 1
            if spins > 200 {
                if monotonicNow() - start > limit {
                    // Which rank is missing a collective cannot tell, except with two.
                    let others = size == 2 ? "rank \(1 - rank)" : "the other ranks (at least one)"
                    abort("\(what()): no answer from \(others) within \(Int(limit)) s (\(deadline == nil ? "FERGC_MPI_TIMEOUT" : "FERGC_MPI_SYNC_TIMEOUT")): it was lost, stopped, or is that much slower, so the job ends here. The last checkpoint is intact: --resume it with the same number of ranks.")
                }
                usleep(spins > 2000 ? 500 : 50)
            }
        }
    }

    /// Sums `count` doubles over every rank, in place.
    func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int, _ what: @autoclosure () -> String) {
        var request: UnsafeMutableRawPointer?
        let rc = fm_mpi_iallreduce_sum_double(values, Int32(count), &request)
        if rc != 0 { abort("\(what()): MPI_Iallreduce failed: \(MPIGroup.errorString(rc))") }
        wait(&request, what())
    }

    public func synchronize(_ what: String) throws {
        let value = UnsafeMutablePointer<Double>.allocate(capacity: 1)
        defer { value.deallocate() }
        value.initialize(to: 0)
        let waited = (waitedSeconds, gradientWaitSeconds)
        var request: UnsafeMutableRawPointer?
        let rc = fm_mpi_iallreduce_sum_double(value, 1, &request)
        if rc != 0 { abort("\(what): MPI_Iallreduce failed: \(MPIGroup.errorString(rc))") }
        wait(&request, deadline: syncTimeout, "\(what) (waiting for every rank)")
        // Waits between phases are not the exchange's cost.
        (waitedSeconds, gradientWaitSeconds) = waited
    }

    public func sum(_ values: [Double]) throws -> [Double] {
        var v = values
        v.withUnsafeMutableBufferPointer { sumInPlace($0.baseAddress!, count: $0.count, "summing the step's loss and accuracy") }
        return v
    }

    // MARK: - The training step

    public func attach(to executor: Executor<Float>, lossGradient: Int) throws {
        let e = try StepExchange(group: self, executor: executor, lossGradient: lossGradient)
        exchange = e
        executor.shards = e
        // The ranks on this machine share its cores.
        let local = Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? "") ?? size
        executor.threads = max(1, onlineProcessors() / max(local, 1))
    }

    public func setShard(globalBatch: Int, range: Range<Int>) {
        exchange?.globalBatch = globalBatch
        exchange?.firstSample = range.lowerBound
        exchange?.localSamples = range.count
    }

    /// Bytes summed per training step: every gradient (floats), and the batchnorm statistics
    /// (doubles) with the loss and correct count.
    public var gradientBytesPerStep: Int { 4 * (exchange?.gradients.reduce(0) { $0 + $1.count } ?? 0) }
    public var statisticsBytesPerStep: Int { 8 * ((exchange?.batchnormDoubles ?? 0) + 2) }
    /// Gradient tensors summed per step.
    public var gradientTensors: Int { exchange?.gradients.count ?? 0 }
}

/// The executor hook: scales the loss-gradient seed to the shard's share, sums the batchnorm
/// sums, and sums each gradient (non-blocking) between its last write and its first read.
final class StepExchange: ExecutorShards {
    unowned let group: MPIGroup
    let plan: Plan
    let seed: UnsafeMutablePointer<Float>
    let seedStep: Int
    /// The gradients: buffer, storage, element count.
    let gradients: [(buffer: Int, pointer: UnsafeMutablePointer<Float>, count: Int)]
    /// By step: the gradients whose sum starts after it, and those to wait for before it.
    let startAfter: [[Int]]
    let waitBefore: [[Int]]
    var pending: [UnsafeMutableRawPointer?]
    var outstanding = 0
    var globalBatch = 1, firstSample = 0, localSamples = 1
    let batchnormDoubles: Int

    init(group: MPIGroup, executor: Executor<Float>, lossGradient: Int) throws {
        self.group = group
        plan = executor.plan
        let steps = plan.steps
        guard let s = steps.lastIndex(where: { $0.outputs.contains(lossGradient) }) else {
            throw MPIError("internal: no step of the training plan writes the loss gradient '\(plan.buffers[lossGradient].name)'")
        }
        seedStep = s
        seed = executor.storage(lossGradient)
        var grads: [Int] = []
        for step in steps {
            switch step.kernel {
            case .sgdUpdate, .adamUpdate:
                if !grads.contains(step.inputs[1]) { grads.append(step.inputs[1]) }
            default: break
            }
        }
        var after = [[Int]](repeating: [], count: steps.count), before = after
        var list: [(buffer: Int, pointer: UnsafeMutablePointer<Float>, count: Int)] = []
        let outputs = Set(plan.outputs)
        for g in grads {
            let b = plan.buffers[g]
            guard !b.batched, b.elementType == .f32 else { throw MPIError("internal: gradient '\(b.name)' is not an f32 tensor of fixed size") }
            guard let last = steps.lastIndex(where: { $0.outputs.contains(g) }) else {
                throw MPIError("internal: no step writes the gradient '\(b.name)'")
            }
            guard let read = steps.indices.first(where: { $0 > last && steps[$0].inputs.contains(g) }) else { continue }
            let slot = list.count
            list.append((g, executor.storage(g), b.elementCount(batch: 1)))
            after[last].append(slot)
            // A gradient whose memory the planner may hand to a later value is summed at once.
            before[outputs.contains(g) || b.offset == nil ? read : last + 1].append(slot)
        }
        gradients = list
        startAfter = after
        waitBefore = before
        pending = [UnsafeMutableRawPointer?](repeating: nil, count: list.count)
        var bn = 0
        for step in steps {
            switch step.kernel {
            case .batchnormTrain(let c, _, _): bn += 4 * c
            case .batchnormTrainGrad(let c, _, _): bn += 2 * c
            case .fusedTrain(let a, let e) where e.hasBatchnorm: bn += 2 * a.outputChannels
            case .fusedTrainGrad(let a, let e, _, _) where e.hasBatchnorm: bn += 2 * a.outputChannels
            default: break
            }
        }
        batchnormDoubles = bn
    }

    func sumOverShards(_ values: UnsafeMutablePointer<Double>, count: Int) {
        group.sumInPlace(values, count: count, "summing batchnorm statistics")
    }

    func willRun(step: Int) throws {
        for slot in waitBefore[step] { finish(slot) }
    }

    func didRun(step: Int) throws {
        if step == seedStep {
            // The loss is this shard's mean: seeded with its share of the batch, every gradient
            // is this shard's contribution to the whole batch's (and the regularizers' are
            // counted once over the ranks).
            seed[0] *= Float(Double(localSamples) / Double(globalBatch))
        }
        for slot in startAfter[step] {
            let g = gradients[slot]
            var request: UnsafeMutableRawPointer?
            let rc = fm_mpi_iallreduce_sum_float(g.pointer, Int32(g.count), &request)
            if rc != 0 { group.abort("summing gradient '\(plan.buffers[g.buffer].name)': MPI_Iallreduce failed: \(MPIGroup.errorString(rc))") }
            pending[slot] = request
            outstanding += 1
        }
        // Let the sums in flight progress while the backward goes on.
        if outstanding > 0 && startAfter[step].isEmpty {
            for slot in pending.indices where pending[slot] != nil {
                var done: Int32 = 0
                let rc = fm_mpi_test(&pending[slot], &done)
                if rc != 0 { group.abort("summing gradient '\(plan.buffers[gradients[slot].buffer].name)' failed: \(MPIGroup.errorString(rc)) (another rank was probably lost)") }
                if done != 0 { pending[slot] = nil; outstanding -= 1 }
            }
        }
        if step == plan.steps.count - 1 {
            for slot in pending.indices where pending[slot] != nil { finish(slot) }
        }
    }

    private func finish(_ slot: Int) {
        guard pending[slot] != nil else { return }
        group.wait(&pending[slot], gradient: true, "summing gradient '\(plan.buffers[gradients[slot].buffer].name)'")
        pending[slot] = nil
        outstanding -= 1
    }
}
