// fergc: compile, run and (later) train facial-emotion CNNs written in the graph language.

import Foundation
import GraphIR

let commands: [(spec: CommandSpec, run: ([String]) throws -> Void)] = [
    (CompileCommand.spec, CompileCommand.main),
    (RunCommand.spec, RunCommand.main),
    (TrainCommand.spec, TrainCommand.main),
    (EvalCommand.spec, EvalCommand.main),
    (ReportCommand.spec, ReportCommand.main),
    (DataCommand.spec, DataCommand.main),
    (InspectCommand.spec, InspectCommand.main),
    (ExplainCommand.spec, ExplainCommand.main),
    (PredictCommand.spec, PredictCommand.main),
    (BenchCommand.spec, BenchCommand.main),
    (CheckGradCommand.spec, CheckGradCommand.main),
    (ExportCommand.spec, ExportCommand.main),
    (ImportCommand.spec, ImportCommand.main),
    (BenchDetectCommand.spec, BenchDetectCommand.main),
    (EnsembleCommand.spec, EnsembleCommand.main),
    (ReproduceCommand.spec, ReproduceCommand.main),
]

let topHelp = """
USAGE: fergc <command> [options]

fergc compiles models written in a small graph language (Models/*.graph) into an IR,
optimizes them, and runs them forward and backward on a CPU.

COMMANDS:
\(commands.map { "  " + $0.spec.name.padding(toLength: max(10, (commands.map(\.spec.name.count).max() ?? 0) + 2), withPad: " ", startingAt: 0) + $0.spec.summary }.joined(separator: "\n"))

Run 'fergc <command> --help' for a command's options.

"""

@MainActor
func fergcMain() -> Int32 {
    let args = Array(CommandLine.arguments.dropFirst())
    guard let first = args.first, first != "-h", first != "--help", first != "help" else {
        Console.out(topHelp)
        return args.isEmpty ? 2 : 0
    }
    guard let command = commands.first(where: { $0.spec.name == first }) else {
        let hint = didYouMean(first, commands.map(\.spec.name))
        Console.err("error: unknown command '\(first)'\(hint)\nRun 'fergc --help' for the list of commands.\n")
        return 2
    }
    do {
        try command.run(Array(args.dropFirst()))
        return 0
    } catch let e as ExitStatus {
        return e.code
    } catch is HelpRequested {
        Console.out(command.spec.help)
        return 0
    } catch let e as UsageError {
        Console.err(e.description + "\n")
        return 2
    } catch let e as CustomStringConvertible {
        let text = e.description
        Console.err(text.hasPrefix("error:") || text.contains(": error: ") ? text : "error: \(text)")
        if !text.hasSuffix("\n") { Console.err("\n") }
        return 1
    } catch {
        Console.err("error: \(error)\n")
        return 1
    }
}

useBetterOpenBLASCore()
exit(fergcMain())
