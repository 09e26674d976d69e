// Loading a model file and running pass pipelines, with errors a user can act on.

import Frontend
import GraphIR
import Passes

func loadGraph(_ path: String) throws -> Graph {
    do { return try Frontend.compile(path: path) } catch { throw cliError(error) }
}

/// `graph` with its train block changed by `fergc train --set` settings.
func withTrainSettings(_ graph: Graph, _ settings: [String]) throws -> Graph {
    do { return try Frontend.withTrainSettings(graph, settings) } catch { throw cliError(error) }
}

/// A frontend diagnostic as the command's error (its text without the final newline).
private func cliError(_ d: Diagnostic) -> CLIError {
    CLIError(d.description.hasSuffix("\n") ? String(d.description.dropLast()) : d.description)
}

/// Options shared by the commands that run pass pipelines.
enum PipelineOptions {
    static let specs: [OptionSpec] = [
        OptionSpec(name: "print-after", kind: .repeated("PASS"), help: "Print the IR after the named pass (to stderr); repeatable."),
        OptionSpec(name: "print-after-all", kind: .flag, help: "Print the IR after every pass."),
        OptionSpec(name: "disable-pass", kind: .repeated("PASS"), help: "Skip the named pass; repeatable."),
        OptionSpec(name: "time-passes", kind: .flag, help: "Print the time each pass took (to stderr)."),
    ]

    static func run(_ passes: [Pass], on graph: Graph, _ a: ParsedArguments, command: String) throws -> Graph {
        var pm = PassManager(passes)
        let known = Set(pm.names)
        for name in a.all("print-after") + a.all("disable-pass") where !known.contains(name) {
            let hint = didYouMean(name, pm.names)
            throw UsageError(message: "unknown pass '\(name)'\(hint); this pipeline runs: \(pm.names.joined(separator: ", "))", command: command)
        }
        pm.printAfter = Set(a.all("print-after"))
        if a.flag("print-after-all") { pm.printAfter.insert("all") }
        pm.disabled = Set(a.all("disable-pass"))
        let result = try pm.run(graph)
        if a.flag("time-passes") {
            var s = "pass timings:\n"
            for t in pm.timings { s += "  \(t.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(String(format: "%8.3f ms", t.seconds * 1000))\n" }
            Console.err(s)
        }
        return result
    }
}

import Foundation
