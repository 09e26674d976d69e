// Errors the executor reports instead of crashing: a malformed plan (at init), a batch size
// out of range, or a label out of range (at run time).

public enum ExecutorError: Error, CustomStringConvertible, Equatable {
    /// A problem with the plan as a whole (not one step).
    case invalidPlan(reason: String)
    /// Step `step` (named `name`, running `kernel`) does not fit its kernel.
    case invalidStep(step: Int, name: String, kernel: String, reason: String)
    /// `run(batch:)` with n outside 1...maxBatch.
    case invalidBatch(n: Int, maxBatch: Int)
    /// A label outside [0, classes) reached a softmax cross-entropy step.
    case invalidLabel(step: Int, name: String, sample: Int, label: Int32, classes: Int)

    public var description: String {
        switch self {
        case .invalidPlan(let reason):
            return "invalid plan: \(reason)"
        case .invalidStep(let step, let name, let kernel, let reason):
            return "invalid plan: step \(step) '\(name)' (\(kernel)): \(reason)"
        case .invalidBatch(let n, let maxBatch):
            return "batch size \(n) outside 1...\(maxBatch)"
        case .invalidLabel(let step, let name, let sample, let label, let classes):
            return "step \(step) '\(name)': label \(label) of sample \(sample) is outside [0, \(classes))"
        }
    }
}
