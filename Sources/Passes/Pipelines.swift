// The standard pipelines, by name, so the CLI and the tests run the same passes.

import GraphIR

public enum Pipelines {
    public static let trainingForm = Pass("training-form") { try Passes.trainingForm($0) }
    public static let regularize = Pass("regularize") { try Passes.regularize($0) }
    public static let autodiff = Pass("autodiff") { try Passes.autodiff($0) }
    public static let optimizer = Pass("optimizer") { try optimizerUpdate($0) }
    public static let dce = Pass("dce") { try deadCodeElimination($0) }

    /// Model graph -> one training step (forward, loss, backward, update).
    public static var training: [Pass] { [trainingForm, regularize, autodiff, optimizer, dce] }
    /// Model graph -> inference (no passes yet beyond dead-code elimination).
    public static var inference: [Pass] { [dce] }

    public static var all: [Pass] { [trainingForm, regularize, autodiff, optimizer, dce] }
}
