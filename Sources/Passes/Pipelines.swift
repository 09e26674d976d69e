// The standard pipelines, by name, so the CLI and the tests run the same passes.

import GraphIR

public enum Pipelines {
    public static let trainingForm = Pass("training-form") { try Passes.trainingForm($0) }
    public static let regularize = Pass("regularize") { try Passes.regularize($0) }
    public static let autodiff = Pass("autodiff") { try Passes.autodiff($0) }
    public static let optimizer = Pass("optimizer") { try optimizerUpdate($0) }
    public static let dce = Pass("dce") { try deadCodeElimination($0) }
    public static let removeDropout = Pass("remove-dropout") { try Passes.removeDropout($0) }
    /// Drops the recipes: the compile driver calls `foldBatchnorm(_:)` itself to keep them.
    public static let foldBatchnorm = Pass("fold-batchnorm") { try Passes.foldBatchnorm($0).graph }
    public static let fuse = Pass("fuse") { try Passes.fuse($0, mode: .inference) }
    /// The same pass for training graphs (one name, so `--disable-pass fuse` works in both).
    public static let fuseTraining = Pass("fuse") { try Passes.fuse($0, mode: .training) }
    /// Training graphs: the frozen, per-image part first (FrozenPrefix.swift).
    public static let frozenPrefix = Pass("frozen-prefix") { try markFrozenPrefix($0) }

    /// Model graph -> one training step (forward, loss, backward, update).
    public static var training: [Pass] { [trainingForm, regularize, autodiff, optimizer, dce] }
    /// Model graph -> inference (no passes yet beyond dead-code elimination).
    public static var inference: [Pass] { [dce] }

    /// Model graph -> inference with dropout removed, batchnorm folded where it directly follows
    /// a conv/dense, and conv/dense + bias + relu + batchnorm fused.
    public static var inferenceOptimized: [Pass] { [removeDropout, foldBatchnorm, fuse, dce] }
    /// Model graph -> one fused training step (fusion before autodiff: see Fuse.swift).
    public static var trainingOptimized: [Pass] { [trainingForm, regularize, fuseTraining, autodiff, optimizer, dce, frozenPrefix] }

    public static var all: [Pass] { [trainingForm, regularize, autodiff, optimizer, dce, removeDropout, foldBatchnorm, fuse, frozenPrefix] }
}
