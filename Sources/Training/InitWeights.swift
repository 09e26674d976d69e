// Starting a training run from named weights (`fergc train M.graph --init W.npz`): every
// parameter of the model (and every model state, such as batchnorm running statistics) whose
// name is in the file takes the file's values; the rest keep their seeded initial values.
// Optimizer state (Adam moments, the iteration counter) is never taken from the file, so a run
// initialized from another run's checkpoint starts a fresh optimizer, as Keras does when a
// loaded model is compiled again.
//
// The file may also be an inference plan (`--init M.plan`), for a run whose checkpoint is gone:
// its stored values are the model's weights only where no pass changed them, so a model with
// batchnorm is refused (the fold moved the statistics into the convolutions before them, and a
// training step would normalize again what is already normalized). The folded convolutions
// (`X.weight.folded`, `X.bias.folded`) start instead the convolutions X, with a bias, of the
// same model written without its batchnorm. A plan stored as f16 gives its values widened, as
// the runtime reads them.

import Foundation
import GraphIR
import NumPyIO
import Passes
import Runtime

/// Named tensors to start from, with their shapes when the file records them (an `.npz` of
/// weights does; a fergc checkpoint stores flat tensors, so only sizes are compared).
public struct InitTensors: Sendable {
    public var source: String
    public var tensors: [String: (shape: [Int]?, values: [Float])]
    /// The tensors are an inference plan's: batchnorm, if the model had any, is folded into them.
    public var fromPlan: Bool

    public init(source: String, tensors: [String: (shape: [Int]?, values: [Float])], fromPlan: Bool = false) {
        self.source = source
        self.tensors = tensors
        self.fromPlan = fromPlan
    }

    /// Reads a fergc checkpoint, an `.npz` of float tensors, or an inference plan.
    public static func read(_ path: String) throws -> InitTensors {
        if isPlanFile(path) {
            let parameters: [String: [Float]]
            do { parameters = try inferencePlanParameters(path: path) } catch { throw TrainError("--init: \(error)") }
            // A convolution whose batchnorm was folded into it stores `X.weight.folded` and
            // `X.bias.folded`: offered as `X.weight` and `X.bias`, they start the convolution X
            // of the same model written without the batchnorm (the fold made for good).
            let unfolded: [String: [Float]]
            do { unfolded = try unfoldedNames(parameters) } catch let e as PassError { throw TrainError("--init \(path): \(e.message)") }
            return InitTensors(source: path, tensors: unfolded.mapValues { (shape: nil, values: $0) }, fromPlan: true)
        }
        if let c = try? Checkpoint.read(path) {
            return InitTensors(source: path, tensors: c.tensors.mapValues { (shape: nil, values: $0) })
        }
        var out: [String: (shape: [Int]?, values: [Float])] = [:]
        let members: [(name: String, array: NDArray)]
        do { members = try NumPyIO.readNPZ(path: path) } catch { throw TrainError("--init \(path): \(error)") }
        for (name, array) in members {
            guard array.dtype == .float32 || array.dtype == .float64 else {
                throw TrainError("--init \(path): '\(name)' is \(array.dtype.rawValue); weights must be float32 or float64")
            }
            out[name] = (shape: array.shape, values: array.floats)
        }
        return InitTensors(source: path, tensors: out)
    }
}

/// What `--init` did: which model tensors came from the file, which kept their initial values,
/// and which file tensors the model has no use for.
public struct InitReport: Sendable, Equatable {
    public var loaded: [String] = []
    public var notLoaded: [String] = []
    public var unused: [String] = []
    /// Elements loaded.
    public var loadedElements = 0
    /// FNV-1a over the loaded values' bits, tensor by tensor in the model's order (hex): which
    /// weights the run started from, whatever the file was called.
    public var valuesHash = ""

    public func lines(source: String) -> String {
        var s = "init from \(source): loaded \(loaded.count) tensor\(loaded.count == 1 ? "" : "s") (\(loadedElements) values)"
        s += loaded.isEmpty ? "\n" : ": " + loaded.joined(separator: ", ") + "\n"
        s += "  initialized as usual (not in the file): " + (notLoaded.isEmpty ? "none" : notLoaded.joined(separator: ", ")) + "\n"
        if !unused.isEmpty { s += "  in the file but not in the model (ignored): " + unused.joined(separator: ", ") + "\n" }
        return s
    }
}

/// The model's tensors that `--init` may set, in declaration order: parameters and the
/// model's own states (not the optimizer's, which the training passes add later).
func initializableValues(_ model: Graph) -> [(name: String, shape: [Int])] {
    model.values.filter { $0.kind.isPersistent }.map { (name: $0.name, shape: $0.type.perSample) }
}

/// Checks `file` against the model and picks what to load; throws on a shape mismatch, naming
/// the tensor and both shapes.
public func planInit(model: Graph, file: InitTensors) throws -> (report: InitReport, values: [String: [Float]]) {
    var report = InitReport()
    var values: [String: [Float]] = [:]
    if file.fromPlan, let bn = model.nodes.first(where: { switch $0.op { case .batchnorm, .batchnormTrain: return true; default: return false } }) {
        throw TrainError("--init \(file.source): '\(model.name)' has batchnorm ('\(bn.name)'), which the plan folded into the convolution before it: its values are not this model's weights. Start from the run's checkpoint, or write the model without its batchnorm layers (each convolution before one with bias=true), which the plan's folded values start")
    }
    let wanted = initializableValues(model)
    for (name, shape) in wanted {
        guard let t = file.tensors[name] else { report.notLoaded.append(name); continue }
        let count = shape.reduce(1, *)
        if let s = t.shape {
            guard s == shape else {
                throw TrainError("--init \(file.source): '\(name)' has shape \(s) in the file but \(shape) in the model")
            }
        } else if t.values.count != count {
            throw TrainError("--init \(file.source): '\(name)' has \(t.values.count) values in the file but the model's is \(shape) (\(count) values)")
        }
        guard t.values.count == count else {
            throw TrainError("--init \(file.source): '\(name)' holds \(t.values.count) values for shape \(shape)")
        }
        values[name] = t.values
        report.loaded.append(name)
        report.loadedElements += count
    }
    var h = FloatHash()
    for name in report.loaded { h.add(values[name]!) }
    report.valuesHash = h.hex
    let names = Set(wanted.map(\.name))
    // Optimizer state in a checkpoint is not "unused" in any useful sense: leave it out.
    report.unused = file.tensors.keys.filter { !names.contains($0) && !isOptimizerState($0) }.sorted()
    return (report, values)
}

/// Optimizer and schedule tensors that a checkpoint carries besides the model's own.
private func isOptimizerState(_ name: String) -> Bool {
    name.hasPrefix("adam.") || name.hasPrefix("sgd.") || name.hasPrefix("optimizer.")
}

extension Trainer {
    /// Loads the matching tensors of `file` into the training step (before the first step).
    @discardableResult
    public func initialize(from file: InitTensors) throws -> InitReport {
        let (report, values) = try planInit(model: model, file: file)
        for p in persistent {
            if let v = values[p.name] { stepExecutor.setBuffer(p.stepIndex, v) }
        }
        // The start event records it, so the run's report says where its weights came from.
        initRecord = ["init": file.source, "init_kind": file.fromPlan ? "plan" : "weights",
                      "init_tensors": report.loaded.count, "init_values": report.loadedElements,
                      "init_hash": report.valuesHash]
        return report
    }
}
