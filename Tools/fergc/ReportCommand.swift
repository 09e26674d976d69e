// fergc report: curves and a markdown summary of a training run.

import Foundation
import Training

enum ReportCommand {
    static let spec = CommandSpec(
        name: "report",
        usage: "report DIR",
        summary: "Write a run's loss and accuracy curves (loss.svg/.png, accuracy.svg/.png; a dashed line where a finish starts) and report.md (the recipe, the segments, a table of every epoch) into its directory, from its last checkpoint and event log.",
        options: [])

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else { throw UsageError(message: "expected one run directory", command: spec.name) }
        try writeReport(runDir: a.positional[0])
    }
}

func writeReport(runDir: String) throws {
    do {
        for path in try writeRunReport(dir: runDir) { Console.err("wrote \(path)\n") }
    } catch {
        throw CLIError("\(error)")
    }
}
