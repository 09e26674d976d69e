// fergc train --distributed: joining an MPI job (Sources/Distributed) for data-parallel training.

import Distributed
import Foundation
import Training

enum TrainDistributed {
    /// The group this process trains in: MPI when `mode` is "mpi", or "auto" (the default) and
    /// an MPI launcher started it; nil for "none" or a plain start.
    static func start(_ mode: String?) throws -> MPIGroup? {
        switch mode ?? "auto" {
        case "none": return nil
        case "auto": guard MPIGroup.launchedByMPI else { return nil }
        case "mpi": break
        default: throw UsageError(message: "--distributed expects auto, mpi or none, got '\(mode!)'", command: "train")
        }
        let group = try MPIGroup.start()
        if group.rank != 0 {
            // Only rank 0 talks: the others' standard output goes nowhere (errors still show).
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, 1); close(null) }
        }
        return group
    }

    /// The line that states the split, printed by rank 0.
    static func describe(_ group: MPIGroup, batch: Int) -> String {
        let shares = (0..<group.size).map { shardRange(batch, rank: $0, size: group.size).count }
        let share = Set(shares).count == 1 ? "\(shares[0]) per rank" : "per rank " + shares.map(String.init).joined(separator: ", ")
        return "distributed over \(group.size) rank\(group.size == 1 ? "" : "s") by \(group.transport): global batch \(batch), \(share)\n"
    }

    /// The line that states what the ranks sum per step.
    static func describeExchange(_ group: MPIGroup) -> String {
        String(format: "summed over the ranks per step: %.2f MB of gradients (%d tensors, each sent as soon as the backward has it), %.1f KB of batchnorm statistics\n",
               Double(group.gradientBytesPerStep) / 1e6, group.gradientTensors, Double(group.statisticsBytesPerStep) / 1e3)
    }

    /// Runs `body`; under MPI, an error on any rank ends the whole job (the others would wait
    /// for it in the next collective) after printing it with the rank.
    static func run(_ group: MPIGroup?, _ body: () throws -> Void) throws {
        guard let group else { return try body() }
        let start = Date()
        do {
            try body()
            Console.out(String(format: "waited for the other ranks' sums %.1f s in this run of %.1f s (loading included): gradients %.1f s, the rest batchnorm statistics, the loss and imbalance between ranks\n",
                               group.waitedSeconds, Date().timeIntervalSince(start), group.gradientWaitSeconds))
        } catch {
            let text = "\(error)"
            group.abort(text.hasPrefix("error: ") ? String(text.dropFirst(7)) : text)
        }
        group.finish()
    }
}
