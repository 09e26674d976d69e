// fergc run: one forward pass (inference mode), or with --train one forward and backward pass
// (training mode, no update), on given weights and inputs; dumps logits, loss and gradients.

import Foundation
import GraphIR
import NumPyIO
import Passes
import Training
import Runtime

enum RunCommand {
    static let spec = CommandSpec(
        name: "run",
        usage: "run MODEL.graph --weights W.npz --input X.npz --dump OUT.npz [--train] [--no-dropout]",
        summary: "Run a model once on given weights and inputs and dump the results as .npz.",
        options: [
            OptionSpec(name: "weights", kind: .value("W.npz"), help: "Parameters and batchnorm statistics by name (e.g. block1_conv1.weight, fc6_bn.running_var)."),
            OptionSpec(name: "input", kind: .value("X.npz"), help: "The graph's inputs by name; labels may be called 'y'."),
            OptionSpec(name: "dump", kind: .value("OUT.npz"), help: "Where to write logits, loss and grad.<name> arrays."),
            OptionSpec(name: "train", kind: .flag, help: "Training mode: batchnorm on batch statistics, backward pass to every parameter and the input (no update)."),
            OptionSpec(name: "no-dropout", kind: .flag, help: "With --train: dropout passes values through unchanged."),
            OptionSpec(name: "compressed", kind: .flag, help: "Write the dump deflate-compressed (like np.savez_compressed)."),
            OptionSpec(name: "seed", kind: .value("S"), help: "Dropout seed with --train (default 1)."),
            OptionSpec(name: "precision", kind: .value("f32|f64"), help: "Arithmetic: f32 (default, the production runtime) or f64 (a reference to check against)."),
        ] + PipelineOptions.specs,
        details: """
        Without --train the dump holds 'logits' (the graph's first output). With --train it
        holds 'logits' (the loss's input), 'loss' (mean softmax cross-entropy, without
        regularizers), and 'grad.<name>' for every trainable parameter and every f32 input.

        Gradients of batchnorm networks fed raw pixels are ill-conditioned: a one-ulp change of
        the float32 weights moves some of vgg_tuned's gradients by 1e-3 (relative). Compare
        with a float64 framework using --precision f64.

        EXAMPLE:
          fergc run Models/vgg_tuned.graph --weights fixture.npz --input fixture.npz \\
              --train --no-dropout --dump out.npz
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else {
            throw UsageError(message: "expected one model file, got \(a.positional.count)", command: spec.name)
        }
        guard let weightsPath = a.value("weights"), let inputPath = a.value("input"), let dumpPath = a.value("dump") else {
            throw UsageError(message: "--weights, --input and --dump are required", command: spec.name)
        }
        if a.flag("no-dropout"), !a.flag("train") {
            throw UsageError(message: "--no-dropout only applies with --train (inference never drops)", command: spec.name)
        }
        let model = try loadGraph(a.positional[0])
        var seed: UInt64 = 1
        if let s = a.value("seed") {
            guard let v = UInt64(s) else { throw UsageError(message: "--seed expects a non-negative integer, got '\(s)'", command: spec.name) }
            seed = v
        }
        let inputs = try archive(inputPath)
        let weights = try archive(weightsPath)
        let options = RunOnceOptions(train: a.flag("train"), dropout: !a.flag("no-dropout"), seed: seed, double: try precisionIsDouble(a))
        let dump = try runOnce(model: model, weights: weights, inputs: inputs, options: options) { passes, g in
            try PipelineOptions.run(passes, on: g, a, command: spec.name)
        }
        try NumPyIO.writeNPZ(dump, compressed: a.flag("compressed"), to: dumpPath)
        Console.err("wrote \(dump.count) arrays to \(dumpPath)\n")
    }

    static func precisionIsDouble(_ a: ParsedArguments) throws -> Bool {
        switch a.value("precision") ?? "f32" {
        case "f32": return false
        case "f64": return true
        case let p: throw UsageError(message: "--precision expects f32 or f64, got '\(p)'", command: spec.name)
        }
    }

    static func archive(_ path: String) throws -> [String: NDArray] {
        do { return try readArchive(path) } catch { throw CLIError("\(error)") }  // the error names the file
    }
}
