// fergc export / fergc import: ONNX in and out (Sources/Interop; docs/onnx.md).

import Foundation
import Frontend
import GraphIR
import Interop
import NumPyIO
import Passes
import Runtime

enum ExportCommand {
    static let spec = CommandSpec(
        name: "export",
        usage: "export M.plan|M.graph [--weights W] -o M.onnx",
        summary: "Write a model as ONNX (IR version 7, opset 13) for ONNX Runtime and other frameworks.",
        options: [
            OptionSpec(name: "output", kind: .value("M.onnx"), help: "Where to write the ONNX model (also -o). Required."),
            OptionSpec(name: "weights", kind: .value("W"), help: "With a .graph: parameter values (an .npz by name or a training checkpoint). Default: seeded initial values."),
            OptionSpec(name: "no-probabilities", kind: .flag, help: "Do not add the Softmax output 'probabilities' beside the logits."),
        ],
        details: """
        A .graph is compiled for inference first (dropout removed, batchnorm folded where it can
        be), so the export always works from a plan's steps; a training plan is refused. Each
        kernel becomes ONNX ops with explicit attributes: Conv and MaxPool/AveragePool with
        explicit pads (TensorFlow's 'same' resolved to numbers), BatchNormalization with the
        model's epsilon, Gemm with transB=1, Relu/LeakyRelu, Flatten/Reshape, Concat, Add, Softmax.
        The input takes raw pixels: a plan's input scale becomes a Mul on the input. The model
        outputs the logits and, unless --no-probabilities, their Softmax as 'probabilities'.
        Metadata props: fergc.class_names, fergc.input_scale, fergc.input_layout, fergc.input_shape,
        fergc.source_hash, fergc.weights_sha256, fergc.model_name (docs/onnx.md).

        EXAMPLES:
          fergc export Models/trained/vgg_tuned.plan -o vgg_tuned.onnx
          fergc export Models/tiny.graph --weights w.npz -o tiny.onnx
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else {
            throw UsageError(message: a.positional.isEmpty ? "missing the model (M.plan or M.graph)" : "expected one model, got \(a.positional.count): \(a.positional.joined(separator: " "))", command: spec.name)
        }
        guard let out = a.value("output") else { throw UsageError(message: "missing -o M.onnx", command: spec.name) }
        let path = a.positional[0]
        let plan: Plan
        var hash: String?
        if path.hasSuffix(".graph") {
            let model = try loadGraph(path)
            var options = CompileOptions()
            options.mode = .inference
            options.batch = 1
            options.seed = model.training?.seed ?? 1
            options.sourceHash = sourceHash(path)
            if let w = a.value("weights") { options.weights = try loadWeights(w, for: model) }
            do { plan = try compile(model, options).plan } catch let e as PassError { throw CLIError("\(path): \(e)") }
        } else {
            if a.value("weights") != nil {
                throw UsageError(message: "--weights applies to a .graph; a plan holds its weights", command: spec.name)
            }
            do {
                let file = try readPlanFile(path: path)
                plan = file.plan
                hash = file.weightsSHA256
            } catch { throw CLIError("\(error)") }
        }
        var options = ExportOptions()
        options.probabilities = !a.flag("no-probabilities")
        options.weightsSHA256 = hash
        let model: ONNXModel
        do { model = try exportONNX(plan, options) } catch { throw CLIError("\(path): cannot export: \(error)") }
        do { try writeONNXModel(model, to: out) } catch { throw CLIError("\(error)") }
        let ops = Dictionary(grouping: model.graph.nodes, by: \.opType).map { "\($0.key) \($0.value.count)" }.sorted()
        let scale = plan.metadata.inputScale == 1 ? "" : " (raw pixels: x \(plan.metadata.inputScale) inside the model)"
        Console.err("wrote \(out): ONNX IR 7, opset 13, \(model.graph.nodes.count) nodes (\(ops.joined(separator: ", "))), \(model.graph.initializers.count) initializers; input \(model.graph.inputs.map(\.name).joined(separator: ", "))\(scale); outputs \(model.graph.outputs.map(\.name).joined(separator: ", "))\n")
    }
}

enum ImportCommand {
    static let spec = CommandSpec(
        name: "import",
        usage: "import M.onnx -o M.graph [--weights-out W.npz] [--name NAME]",
        summary: "Read an ONNX model made of ops fergc has into a .graph file and its weights (.npz).",
        options: [
            OptionSpec(name: "output", kind: .value("M.graph"), help: "Where to write the graph (also -o). Required."),
            OptionSpec(name: "weights-out", kind: .value("W.npz"), help: "Where to write the weights (default: M.npz beside the graph)."),
            OptionSpec(name: "name", kind: .value("NAME"), help: "The model's name in the graph (default: the file's name without .onnx)."),
        ],
        details: """
        Reads Conv, BatchNormalization, Relu, LeakyRelu, MaxPool, AveragePool, Gemm, MatMul (+ Add
        of a constant, as a dense layer with a bias), Flatten, Reshape, Softmax, Concat, Add,
        Mul by a scalar constant, Dropout and Identity (dropped), Constant, and Transpose when
        transposes cancel (an NHWC input transposed to NCHW) or fold into a dense layer's weights
        (a channels-last flatten, as Keras exports have). Paddings must be 'valid' or TensorFlow's
        'same'. Anything else is refused, naming the node and its op. Then compile it:
          fergc compile M.graph --weights W.npz -o M.plan
        The graph has no labels, loss or 'train { }' block: add them (docs/graph-language.md)
        to train it.

        EXAMPLE:
          fergc import ../shared/fixtures/mini_tuned_parity.onnx -o mini.graph
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else {
            throw UsageError(message: a.positional.isEmpty ? "missing the ONNX model (M.onnx)" : "expected one ONNX model, got \(a.positional.count): \(a.positional.joined(separator: " "))", command: spec.name)
        }
        guard let out = a.value("output") else { throw UsageError(message: "missing -o M.graph", command: spec.name) }
        let path = a.positional[0]
        let weightsOut = a.value("weights-out") ?? (out.hasSuffix(".graph") ? String(out.dropLast(6)) : out) + ".npz"
        guard weightsOut != out else { throw UsageError(message: "--weights-out must differ from -o", command: spec.name) }
        let onnx: ONNXModel
        do { onnx = try readONNXModel(path: path) } catch { throw CLIError("\(error)") }
        var options = ImportOptions()
        if let n = a.value("name") {
            guard graphName(for: n) == n else { throw UsageError(message: "--name '\(n)' is not a valid model name (letters, digits, '_', '.')", command: spec.name) }
            options.modelName = n
        } else {
            // The file's name says more than exporters' graph names ("main_graph", "tf2onnx").
            let stem = (path as NSString).lastPathComponent
            options.modelName = graphName(for: stem.hasSuffix(".onnx") ? String(stem.dropLast(5)) : stem)
        }
        let imported: ImportedModel
        do { imported = try importONNX(onnx, options) } catch { throw CLIError("\(path): cannot import: \(error)") }
        let header = """
        # Imported by fergc from \((path as NSString).lastPathComponent) (\(onnx.producerName.isEmpty ? "unknown producer" : onnx.producerName) \(onnx.producerVersion), ONNX IR \(onnx.irVersion), opset \(onnx.defaultOpset ?? 0)).
        # Weights: \((weightsOut as NSString).lastPathComponent). Compile: fergc compile \((out as NSString).lastPathComponent) --weights \((weightsOut as NSString).lastPathComponent) -o M.plan

        """
        let text = header + imported.graph.printed()
        // What is written must read back as the same graph.
        do {
            let back = try Frontend.compile(source: text, file: out)
            guard back.printed() == imported.graph.printed() else { throw CLIError("\(path): internal error: the imported graph does not print back identically") }
        } catch let d as Diagnostic {
            throw CLIError("\(path): internal error: the imported graph does not parse back: \(d)")
        }
        let arrays = imported.weights.map { (name: $0.name, array: NDArray(floats: $0.values, shape: $0.shape)) }
        try NumPyIO.writeNPZ(arrays, compressed: false, to: weightsOut)
        do { try writeFileAtomically(Array(text.utf8), to: out) } catch { throw CLIError("\(error)") }
        for n in imported.notes { Console.err("note: \(n)\n") }
        let params = imported.weights.reduce(0) { $0 + $1.values.count }
        Console.err("wrote \(out): \(imported.graph.nodes.count) nodes, outputs \(imported.graph.outputs.map { imported.graph[$0].name }.joined(separator: ", ")); \(weightsOut): \(imported.weights.count) tensors, \(params) values\n")
    }
}
