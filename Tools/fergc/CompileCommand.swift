// fergc compile: parse, verify and transform a model; print its summary or its IR.

import Foundation
import GraphIR
import Passes

enum CompileCommand {
    static let spec = CommandSpec(
        name: "compile",
        usage: "compile MODEL.graph [--summary] [--json] [--train] [--emit ir|summary]",
        summary: "Compile a model: parse, check shapes, and print its summary or IR.",
        options: [
            OptionSpec(name: "summary", kind: .flag, help: "Print a Keras-like table: layer, op, output shape, params."),
            OptionSpec(name: "json", kind: .flag, help: "Print the summary as JSON (params_total, params_trainable, params_non_trainable, layers)."),
            OptionSpec(name: "train", kind: .flag, help: "Build one training step: forward, loss, backward and optimizer update."),
            OptionSpec(name: "emit", kind: .value("KIND"), help: "What to print: 'summary' (default) or 'ir' (the graph after the pipeline)."),
        ] + PipelineOptions.specs,
        details: """
        EXAMPLES:
          fergc compile Models/vgg_tuned.graph --summary
          fergc compile Models/vgg_tuned.graph --summary --json
          fergc compile Models/tiny.graph --train --emit ir
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else {
            throw UsageError(message: a.positional.isEmpty ? "missing the model file (MODEL.graph)" : "expected one model file, got \(a.positional.count): \(a.positional.joined(separator: " "))", command: spec.name)
        }
        let emit = a.value("emit") ?? "summary"
        guard ["summary", "ir"].contains(emit) else {
            throw UsageError(message: "--emit expects 'summary' or 'ir', got '\(emit)'", command: spec.name)
        }
        let model = try loadGraph(a.positional[0])
        if a.flag("train"), model.training == nil {
            throw CLIError("\(a.positional[0]): --train needs a 'train { ... }' section in the model (loss, optimizer, ...)")
        }
        let graph = try PipelineOptions.run(a.flag("train") ? Pipelines.training : Pipelines.inference, on: model, a, command: spec.name)
        if emit == "ir" {
            Console.out(graph.printed())
            return
        }
        // The summary describes the model as written: the training step's extra nodes and
        // optimizer state are not layers.
        let summary = model.summary()
        if a.flag("json") {
            Console.out(try jsonText(summaryJSON(summary)))
        } else {
            Console.out(summary.table())
        }
    }

    static func summaryJSON(_ s: ModelSummary) -> [String: Any] {
        [
            "model": s.model,
            "params_total": s.paramsTotal,
            "params_trainable": s.paramsTrainable,
            "params_non_trainable": s.paramsNonTrainable,
            "layers": s.layers.map { l -> [String: Any] in
                [
                    "name": l.name,
                    "op": l.ops.joined(separator: "+"),
                    "output_shape": l.outputType.map { $0.dims.map { d -> Any in d == .batch ? NSNull() : d.resolved(batch: 1) } } ?? [],
                    "params": l.params,
                ]
            },
        ]
    }
}
